"""``vlmrm sweep``: experiment files, their grids, smoke sweeps of the paper's experiments on Ray Tune,
a sweep killed and re-run, failing trials, and bad input.

The smoke sweeps share one local Ray instance (started once for the module, seconds); the sweep
that is killed with SIGKILL starts its own, in a subprocess, as the command does.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import yaml

from test_ray_backend import alive, descendants
from vlmrm.cli.main import main
from vlmrm.envs.humanoid.options import GYMNASIUM_CAMERA, PAPER_CAMERA, HumanoidOptions
from vlmrm.envs.humanoid.tasks import TASKS
from vlmrm.errors import RunDirectoryError
from vlmrm.experiments.grid import plan_trials
from vlmrm.experiments.report import build_report
from vlmrm.experiments.runner import SweepOptions, prepare, run_sweep
from vlmrm.experiments.schema import load_experiment
from vlmrm.experiments.trial import run_trial

try:
    import ray
    import ray.tune  # its extras (pandas, pyarrow) may be missing
except ImportError:
    ray = None
needs_tune = pytest.mark.skipif(ray is None, reason="Ray Tune is not installed (pip install 'vlmrm[ray]')")

pytestmark = pytest.mark.filterwarnings("ignore:vlmrm. model:UserWarning")

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "experiments" / "paper"
CONFIGS = ROOT / "configs"

# results.md: the paper's Humanoid success table, the kneeling ablation and the model-size study.
PAPER_TASK_SUCCESS = {
    "kneeling": 1.0, "lotus": 1.0, "standing": 1.0, "arms-raised": 1.0, "splits": 1.0,
    "hands-on-hips": 0.64, "arms-crossed": 0.0, "one-leg": 0.0,
}  # fmt: skip
PAPER_ABLATION = {("mujoco", "gymnasium"): 0.36, ("textured", "gymnasium"): 0.91, ("textured", "paper"): 1.0}
PAPER_MODEL_SIZE = {
    "open_clip:RN50/openai": 0.0,
    "open_clip:ViT-L-14/laion2b_s32b_b82k": 0.0,
    "open_clip:ViT-H-14/laion2b_s32b_b79k": 0.0,
    "open_clip:ViT-bigG-14/laion2b_s39b_b160k": 1.0,
}


# -- the paper's experiment files, as plans ------------------------------------------------------------------


def plan(name: str, **kwargs):
    return plan_trials(load_experiment(PAPER / name), **kwargs)


def test_every_paper_result_has_an_experiment_file() -> None:
    assert sorted(p.name for p in PAPER.glob("*.yaml")) == [
        "cartpole-alpha.yaml", "humanoid-tasks.yaml", "kneeling-ablation.yaml", "model-size.yaml",
        "mountaincar-alpha-look.yaml",
    ]  # fmt: skip
    for path in PAPER.glob("*.yaml"):
        text = path.read_text()
        assert "Compute" in text and "vlmrm sweep experiments/paper/" in text, path.name  # compute and command named


def test_humanoid_tasks_are_the_eight_presets_beside_the_papers_table() -> None:
    humanoid = plan("humanoid-tasks.yaml")
    assert [cell.label for cell in humanoid.cells] == [f"humanoid-{task}" for task in TASKS]
    assert {cell.label: cell.paper_success_rate for cell in humanoid.cells} == {
        f"humanoid-{task}": value for task, value in PAPER_TASK_SUCCESS.items()
    }
    assert [cell.config for cell in humanoid.cells] == [CONFIGS / f"humanoid-{task}.yaml" for task in TASKS]
    assert len(humanoid.trials) == 8 * 3 and {t.config["rl"]["total_steps"] for t in humanoid.trials} == {10_000_000}


def test_kneeling_ablation_is_three_cells_of_look_and_camera() -> None:
    ablation = plan("kneeling-ablation.yaml")
    seen = {}
    for cell in ablation.cells:
        trial = next(t for t in ablation.trials if t.cell == cell.label)
        options = HumanoidOptions.model_validate(trial.config["env"]["options"])
        look = "textured" if options.look.textured else "mujoco"
        camera = {GYMNASIUM_CAMERA: "gymnasium", PAPER_CAMERA: "paper"}[options.camera]
        assert options.task == "kneeling"
        seen[(look, camera)] = cell.paper_success_rate
    assert seen == PAPER_ABLATION


def test_model_size_runs_the_four_open_clip_models_and_classic_control_has_no_paper_column() -> None:
    sizes = plan("model-size.yaml")
    models = {t.config["reward"]["model"]: c.paper_success_rate for c in sizes.cells for t in sizes.trials
              if t.cell == c.label}  # fmt: skip
    assert models == PAPER_MODEL_SIZE
    cartpole = plan("cartpole-alpha.yaml")
    assert [c.label for c in cartpole.cells] == ["alpha=0.0", "alpha=0.5", "alpha=1.0"]
    mountaincar = plan("mountaincar-alpha-look.yaml")
    assert len(mountaincar.cells) == 6 and mountaincar.cells[1].label == "alpha=0.0, textured=true"
    assert all(c.paper_success_rate is None for c in [*cartpole.cells, *mountaincar.cells])


def test_a_trial_config_is_the_config_then_overrides_cell_seed_and_set(tmp_path: Path) -> None:
    experiment = tmp_path / "e.yaml"
    experiment.write_text(yaml.safe_dump({
        "configs": [str(CONFIGS / "cartpole-dqn.yaml")],
        "overrides": {"rl.total_steps": 1000, "reward.alpha": 0.25},
        "grid": {"reward.alpha": [0.0, 1.0], "env.episode_length": [50]},
        "seeds": [3, 7],
    }, sort_keys=False))  # fmt: skip
    trials = plan_trials(load_experiment(experiment), ["rl.total_steps=200", "reward.model=tiny-random"]).trials
    assert [t.name for t in trials] == [
        "alpha-0.0_episode_length-50-seed3", "alpha-0.0_episode_length-50-seed7",
        "alpha-1.0_episode_length-50-seed3", "alpha-1.0_episode_length-50-seed7",
    ]  # fmt: skip
    config = trials[2].config
    assert config["reward"]["alpha"] == 1.0 and config["rl"]["seed"] == 3  # the cell over the overrides
    assert config["rl"]["total_steps"] == 200 and config["reward"]["model"] == "tiny-random"  # --set over all
    assert config["logging"]["progress_bar"] is False
    assert config["rl"]["hyperparameters"]["learning_rate"] == 0.0023  # the rest is the config file's
    limited = plan_trials(load_experiment(experiment), seeds=1, cells=1).trials
    assert [t.name for t in limited] == ["alpha-0.0_episode_length-50-seed3"]


# -- bad input: one line, nothing written ------------------------------------------------------------------


def experiment_file(tmp_path: Path, **fields) -> Path:
    data = {"configs": [str(CONFIGS / "cartpole-dqn.yaml")], "grid": {"reward.alpha": [0.0, 0.5]}, **fields}
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


BAD_EXPERIMENTS = {
    "unknown config": ({"configs": [str(CONFIGS / "humanoid-kneling.yaml")]}, [], "does not exist",
                       "Did you mean"),
    "empty grid": ({"grid": {}}, [], "the grid is empty", "reward.alpha"),
    "grid key with no values": ({"grid": {"reward.alpha": []}}, [], "has no values", "reward.alpha"),
    "grid key not a field": ({"grid": {"reward.alhpa": [0.0]}}, [], "is not a config field",
                             "Did you mean 'reward.alpha'?"),
    "grid key not an option": ({"grid": {"env.options.terminate_on_fal": [True]}}, [], "is not an option of cartpole",
                               "Did you mean 'env.options.terminate_on_fall'?"),
    "grid value invalid": ({"grid": {"reward.alpha": [0.0, 2.0]}}, [], "trial alpha-2.0-seed0",
                           "less than or equal to 1"),
    "set key not a field": ({}, ["--set", "rl.totl_steps=5"], "is not a config field",
                            "Did you mean 'rl.total_steps'?"),
    "set seed": ({}, ["--set", "rl.seed=4"], "use --seeds", "rl.seed"),
    "unknown field in the file": ({"seed": 3}, [], "seed: unknown field", "Did you mean 'seeds'?"),
    "paper names no cell": ({"paper": {"source": "x", "success_rate": {"alpha=0.25": 1.0}}}, [],
                            "does not have", "alpha=0.5"),
    "name a path up": ({"name": "../../../../x"}, [], "name: '../../../../x' is not a plain name",
                       "a name, not a path"),
    "name an absolute path": ({"name": "/tmp/x"}, [], "is not a plain name"),
    "name a hidden folder": ({"name": ".."}, [], "is not a plain name"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_EXPERIMENTS))
def test_bad_experiments_are_one_line_errors_and_write_nothing(tmp_path: Path, capsys, case: str) -> None:
    fields, extra, *expected = BAD_EXPERIMENTS[case]
    path = experiment_file(tmp_path, **fields)
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert all(text in err for text in expected), err
    assert not out.exists()


def test_a_name_that_is_a_path_writes_nothing_outside_sweeps(tmp_path: Path, monkeypatch, capsys) -> None:
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    path = experiment_file(tmp_path, name="../../x")
    assert main(["sweep", str(path)]) == 2  # no --out: the default is sweeps/<name>
    assert "is not a plain name" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "experiment.yaml"]
    assert list(work.iterdir()) == []


def test_a_truncated_manifest_is_rebuilt_for_the_same_experiment_only(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    path = experiment_file(tmp_path, name="demo")
    plan, directory = prepare(path, SweepOptions(out=str(out)))
    directory.write_manifest(plan)
    manifest = directory.manifest_path.read_text()
    directory.manifest_path.write_text(manifest[: len(manifest) // 2])  # a crash mid-write elsewhere, a full disk
    # Another experiment file: the damaged manifest stays, and the error says how to continue.
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(RunDirectoryError, match=r"is damaged .* re-run `vlmrm sweep EXPERIMENT.yaml --out "):
        prepare(experiment_file(other, name="demo", seeds=2), SweepOptions(out=str(out)))
    # The same experiment: sweep.json is rebuilt (the damaged copy is kept), and the trials are the same.
    plan_again, directory = prepare(path, SweepOptions(out=str(out)))
    assert (out / "sweep.json.damaged").read_text() == manifest[: len(manifest) // 2]
    directory.write_manifest(plan_again)
    assert directory.read_manifest() == json.loads(manifest)


def test_an_unreachable_ray_address_is_a_clear_error_before_anything_is_written(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    import vlmrm.experiments.runner as runner

    monkeypatch.setattr(runner, "RAY_CONNECT_SECONDS", 1.0)  # the default (10 s) waits for a cluster starting up
    out = tmp_path / "sweep"
    path = experiment_file(tmp_path)
    for address in ("127.0.0.1:1", "ray://127.0.0.1:1"):
        assert main(["sweep", str(path), "--address", address, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith(f"error: Cannot reach the Ray cluster at {address}") and "ray start --head" in err
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    assert main(["sweep", str(path), "--out", str(out)]) == 2
    assert "Cannot reach the Ray cluster at 127.0.0.1:1" in capsys.readouterr().err
    assert not out.exists()


def test_an_out_directory_holding_other_files_is_refused(tmp_path: Path, capsys) -> None:
    out = tmp_path / "elsewhere"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["sweep", str(experiment_file(tmp_path)), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is not a sweep directory" in err and err.count("\n") == 1
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


# -- one trial, without Ray ------------------------------------------------------------------------------


def test_a_trial_whose_reward_raises_is_recorded_and_runs_again_later(tmp_path: Path) -> None:
    trial = plan_trials(
        load_experiment(experiment_file(tmp_path)),
        ["reward.model=tiny-random", "rl.total_steps=60", "env.episode_length=20", "env.render_size=32",
         "logging.eval_episodes=1", "rl.hyperparameters.learning_starts=40"],
        cells=1, seeds=1,
    ).trials[0]  # fmt: skip

    def broken(frames):
        raise ValueError("the reward server is down\nsecond line")

    sweep = tmp_path / "sweep"
    outcome = run_trial(sweep, trial.name, trial.config, reward_fn=broken)
    assert outcome["state"] == "failed" and outcome["error"] == "ValueError: the reward server is down"
    record = json.loads((sweep / "failures" / f"{trial.name}.json").read_text())
    assert record["error"] == outcome["error"]
    assert "Traceback" in (sweep / "logs" / f"{trial.name}.log").read_text()  # the whole story is in the log
    outcome = run_trial(sweep, trial.name, trial.config)  # fixed: the same trial runs again and finishes
    assert outcome["state"] == "done" and not (sweep / "failures" / f"{trial.name}.json").exists()
    assert run_trial(sweep, trial.name, trial.config)["state"] == "skipped"


def test_a_trial_that_ends_past_its_total_steps_is_done_and_not_run_again(tmp_path: Path) -> None:
    trial = plan_trials(
        load_experiment(experiment_file(tmp_path)),
        ["reward.model=tiny-random", "rl.total_steps=102", "rl.n_envs=4", "rl.vec_env=dummy", "env.episode_length=20",
         "env.render_size=32", "logging.eval_episodes=1", "rl.hyperparameters.learning_starts=80"],
        cells=1, seeds=1,
    ).trials[0]  # fmt: skip
    sweep = tmp_path / "sweep"
    assert run_trial(sweep, trial.name, trial.config)["state"] == "done"
    summary = json.loads((sweep / "trials" / trial.name / "summary.json").read_text())
    assert summary["total_steps"] > 102  # 4 envs step at once: 102 steps end at 104 or later
    assert run_trial(sweep, trial.name, trial.config)["state"] == "skipped"
    main_args = ["train", "--resume", str(sweep / "trials" / trial.name)]
    assert main(main_args) == 2  # resuming says it finished, as for a run that ended on its total


# -- smoke sweeps of the paper's experiments, on one Ray instance ---------------------------------------------

CHEAP = [
    "reward.model=tiny-random", "rl.total_steps=200", "rl.n_envs=1", "rl.vec_env=dummy", "env.render_size=32",
    "env.episode_length=20", "logging.eval_episodes=1", "rl.hyperparameters.learning_starts=40",
    "rl.hyperparameters.batch_size=32", "rl.hyperparameters.buffer_size=1000", "logging.video_size=null",
]  # fmt: skip
SAC_CHEAP = ["rl.hyperparameters.gradient_steps=4"]
HUMANOID_CHEAP = [*SAC_CHEAP, "rl.total_steps=100"]  # rendering MuJoCo on a CPU is the cost
FAST_LOOK = ["env.options.look={textured: true, shadows: false, reflections: false, antialiasing: false}"]
ABLATION_CELLS = ["MuJoCo look, Gymnasium camera", "textured, Gymnasium camera", "textured, paper camera"]
SMOKE = {  # file: (extra --set, --cells, the report's rows); two seeds for CartPole, one for the rest (time)
    "cartpole-alpha.yaml": ([], None, ["alpha=0.0", "alpha=0.5", "alpha=1.0"]),
    "mountaincar-alpha-look.yaml": (SAC_CHEAP, 2, ["alpha=0.0, textured=false", "alpha=0.0, textured=true"]),
    "humanoid-tasks.yaml": (HUMANOID_CHEAP + FAST_LOOK, None, [f"humanoid-{task}" for task in TASKS]),
    "kneeling-ablation.yaml": ([*SAC_CHEAP, "rl.total_steps=60"], None, ABLATION_CELLS),  # looks are its cells
    "model-size.yaml": (HUMANOID_CHEAP + FAST_LOOK, 2, ["RN50 (openai)", "ViT-L-14 (LAION-2B)"]),
}  # fmt: skip


@pytest.fixture(scope="module")
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield
    ray.shutdown()


@needs_tune
@pytest.mark.slow
@pytest.mark.parametrize("name", list(SMOKE))
def test_every_paper_experiment_runs_as_a_smoke_sweep_and_reports(
    ray_instance, tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    extra, cells, rows = SMOKE[name]
    seeds = 2 if name == "cartpole-alpha.yaml" else 1
    with warnings.catch_warnings(), caplog.at_level(logging.INFO, logger="vlmrm.experiments.runner"):
        warnings.simplefilter("ignore")
        result = run_sweep(
            PAPER / name,
            SweepOptions(overrides=CHEAP + extra, out=tmp_path / "sweep", seeds=seeds, cells=cells, cpus_per_trial=1),
        )
    lines = [record.getMessage() for record in caplog.records if record.name == "vlmrm.experiments.runner"]
    assert result.ok, [s for s in result.states.values() if s.state != "done"]
    trials = seeds * len(rows)
    assert len(result.states) == trials and f"[{trials}/{trials} done" in lines[-1]
    report = build_report(tmp_path / "sweep")
    assert [cell.label for cell in report.cells] == rows and all(cell.done == seeds for cell in report.cells)
    table = report.table.splitlines()
    assert len(table) == 2 + len(rows)
    assert ("| paper success |" in table[0]) == (name not in ("cartpole-alpha.yaml", "mountaincar-alpha-look.yaml"))
    if name == "humanoid-tasks.yaml":
        assert table[2].startswith("| humanoid-kneeling | 1/1 |") and table[2].endswith("| 100 % |")
        assert table[8].endswith("| 0 % |")  # arms crossed: the paper's 0 %
    assert len(report.figures) == 3 and all(f.stat().st_size > 10_000 for f in report.figures)


# -- a sweep killed and re-run; a failing trial; no process left ---------------------------------------------


def sweep_command(experiment: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "vlmrm.cli.main", "sweep", str(experiment), "--out", str(out),
            "--max-concurrent", "1", "--cpus-per-trial", "1"]  # fmt: skip


def watch(process: subprocess.Popen, until, timeout: float = 300) -> dict[int, str]:
    """Poll until ``until()`` (or the process ends); return every descendant process seen meanwhile."""
    seen: dict[int, str] = {}
    deadline = time.monotonic() + timeout
    while process.poll() is None and not until() and time.monotonic() < deadline:
        seen.update(descendants(process.pid))
        time.sleep(0.3)
    seen.update(descendants(process.pid))
    return seen


def wait_dead(pids: dict[int, str], timeout: float = 20) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = {pid: name for pid, name in pids.items() if alive(pid)}
        if not left:
            return {}
        time.sleep(0.5)
    return left


@needs_tune
@pytest.mark.slow
def test_a_killed_sweep_resumes_without_rerunning_finished_trials(tmp_path: Path) -> None:
    experiment = tmp_path / "kill.yaml"
    experiment.write_text(yaml.safe_dump({
        "name": "kill",
        "configs": [str(CONFIGS / "cartpole-dqn.yaml")],
        "overrides": {"reward.model": "tiny-random", "rl.total_steps": 600, "env.episode_length": 50,
                      "env.render_size": 32, "rl.hyperparameters.learning_starts": 100,
                      "rl.hyperparameters.train_freq": 50, "rl.hyperparameters.gradient_steps": 5,
                      "logging.checkpoint_freq": 100, "logging.eval_episodes": 1, "logging.video_freq": 0},
        "cells": [
            {"name": "first", "set": {"reward.alpha": 0.0}},
            {"name": "second", "set": {"reward.alpha": 1.0}},
            {"name": "broken", "set": {"reward.model": str(tmp_path / "no-such-model")}},  # fails at train time
        ],
    }, sort_keys=False))  # fmt: skip
    out = tmp_path / "sweep"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    trials = out / "trials"

    def one_done_one_checkpointed() -> bool:
        done = [d for d in trials.glob("*") if (d / "summary.json").exists()]
        started = [d for d in trials.glob("*") if not (d / "summary.json").exists() and
                   any((d / "checkpoints").glob("step_*.zip"))]  # fmt: skip
        return bool(done and started)

    log = tmp_path / "first.log"  # a file, not a pipe nobody reads while the sweep runs
    with log.open("w") as first_output:
        first = subprocess.Popen(sweep_command(experiment, out), env=env, stdout=first_output,
                                 stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        seen = watch(first, one_done_one_checkpointed)
        assert first.poll() is None, log.read_text()[-3000:]
        assert "raylet" in " ".join(seen.values())
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    left = wait_dead(seen)
    assert left == {}, f"Ray processes outlived the killed sweep: {left}; its output:\n{log.read_text()[-3000:]}"
    assert "was killed: stopped the" in log.read_text()  # the watchdog, not Ray's own timeouts, stopped them
    finished = {
        d.name: (d / "summary.json").stat().st_mtime_ns for d in trials.glob("*") if (d / "summary.json").exists()
    }
    interrupted = [
        d.name for d in trials.glob("*") if d.name not in finished and any((d / "checkpoints").glob("*.zip"))
    ]
    assert len(finished) == 1 and len(interrupted) == 1

    second = subprocess.Popen(sweep_command(experiment, out), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)  # fmt: skip
    seen = watch(second, lambda: False)
    output = second.communicate(timeout=300)[0]
    assert second.returncode == 1, output[-3000:]  # one trial failed
    assert wait_dead(seen) == {}, "Ray processes outlived the sweep"
    assert "1 finished before, 2 to run" in output
    assert f"started {next(iter(finished))}" not in output  # finished trials are not run again
    for name, mtime in finished.items():
        assert (trials / name / "summary.json").stat().st_mtime_ns == mtime
    resumed = json.loads((trials / interrupted[0] / "summary.json").read_text())
    assert resumed["total_steps"] == 600 and resumed["resumed_at_steps"]  # continued from its checkpoint
    failed_line = next(line for line in output.splitlines() if line.startswith("  failed broken-seed0: "))
    assert "no-such-model" in failed_line
    assert "trials: 2/3 done, 1 failed, 0 not finished" in output
    report = build_report(out)
    assert [c.done for c in report.cells] == [1, 1, 0]
    assert "| broken-seed0 | failed | " in report.path.read_text()


def test_every_trial_is_tagged_with_its_sweep_for_wandb() -> None:
    from vlmrm.config import config_from_dict
    from vlmrm.experiments.grid import plan_trials
    from vlmrm.experiments.schema import load_experiment

    experiment = load_experiment(ROOT / "experiments" / "paper" / "cartpole-alpha.yaml")
    plan = plan_trials(experiment, ["logging.wandb.enabled=true", "logging.wandb.tags=[mine]"], seeds=1)
    for trial in plan.trials:
        wandb = config_from_dict(trial.config).logging.wandb
        assert wandb.enabled and wandb.group == experiment.name
        assert wandb.tags[0] == "mine" and f"sweep:{experiment.name}" in wandb.tags
        assert any(tag.startswith("cell:") for tag in wandb.tags)
