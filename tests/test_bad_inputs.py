"""Bad configs and bad command lines, each with the exact message a user sees (and exit status 2)."""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import pytest
import yaml

from faultkit import ROOT, run_config
from vlmrm.cli.main import main
from vlmrm.config import config_from_dict

CARTPOLE = str(ROOT / "configs" / "cartpole-dqn.yaml")
MOUNTAINCAR = str(ROOT / "configs" / "mountaincar.yaml")


def fake_checkpoint(path: Path, config: dict) -> None:
    """A checkpoint that passes the integrity checks (what resume checks before loading anything)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"step": int(path.stem.split("_")[1]), "config": config, "replay_buffer": None}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", "{}")
        archive.writestr("policy.pth", b"weights")
        archive.writestr("vlmrm_state.pkl", pickle.dumps(state))


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, str]:
    """Run directories in the states the table needs; values are paths for str.format."""
    config = config_from_dict(run_config(tmp_path / "run", 100)).model_dump(mode="json")

    def make(name: str) -> Path:
        path = tmp_path / name
        path.mkdir()
        config["logging"]["run_dir"] = str(path)
        (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    make("run")
    corrupt = make("corrupt")
    (corrupt / "checkpoints").mkdir()
    (corrupt / "checkpoints" / "step_0000000050.zip").write_bytes(b"PK\x03\x04 torn")
    finished = make("finished")
    fake_checkpoint(finished / "checkpoints" / "step_0000000100.zip", config)
    (finished / "summary.json").write_text(json.dumps({"total_steps": 100}))
    # 100 steps with 32 envs end at 128: stable-baselines3 steps all envs at once.
    past = make("past")
    fake_checkpoint(past / "checkpoints" / "step_0000000128.zip", config)
    (past / "summary.json").write_text(json.dumps({"total_steps": 128}))
    midway = make("midway")
    fake_checkpoint(midway / "checkpoints" / "step_0000000100.zip", config)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "notes.txt").write_text("mine")
    (tmp_path / "empty").mkdir()
    names = ("run", "corrupt", "finished", "past", "midway", "notes")
    return {"tmp": str(tmp_path), **{name: str(tmp_path / name) for name in names}}


# (command line, the exact lines of the message after "error: "), paths as {run}, {tmp}, ...
CASES: list[tuple[str, list[str], str]] = [
    (
        "no-config",
        ["train"],
        "Give a config file (e.g. vlmrm train configs/cartpole.yaml) or --resume RUN_DIR to continue a run.",
    ),
    (
        "resume-and-config",
        ["train", CARTPOLE, "--resume", "{run}"],
        f"--resume continues the run with its own config.yaml; drop the config file {CARTPOLE!r} "
        "(change the budget with --set rl.total_steps=N).",
    ),
    (
        "resume-and-overwrite",
        ["train", "--resume", "{run}", "--overwrite"],
        "--overwrite and --resume contradict each other: --overwrite deletes the run directory, --resume continues "
        "it. Pass one of them.",
    ),
    (
        "resume-and-run-dir",
        ["train", "--resume", "{run}", "--run-dir", "{tmp}/elsewhere"],
        "--run-dir cannot be combined with --resume: the run continues in '{run}'.",
    ),
    (
        "resume-missing-dir",
        ["train", "--resume", "{tmp}/nothing"],
        "Cannot resume: run directory '{tmp}/nothing' does not exist.",
    ),
    (
        "resume-a-file",
        ["train", "--resume", "{run}/config.yaml"],
        "Cannot resume: '{run}/config.yaml' is a file, not a run directory; give the directory holding its "
        "config.yaml.",
    ),
    (
        "report-a-file",
        ["report", "{run}/config.yaml"],
        "'{run}/config.yaml' is a file, not a sweep directory; give the --out of a vlmrm sweep.",
    ),
    (
        "resume-not-a-run",
        ["train", "--resume", "{tmp}/empty"],
        "Cannot resume: '{tmp}/empty' is not a vlmrm run directory (it has no config.yaml).",
    ),
    (
        "resume-changes-reward",
        ["train", "--resume", "{run}", "--set", "reward.alpha=0.5", "--set", "reward.baseline_prompts=[a pole]"],
        "--resume cannot change what the checkpoint was trained with:\n"
        "  reward.alpha: 0.0 in {run}/config.yaml, 0.5 requested.\n"
        "  reward.baseline_prompts: [] in {run}/config.yaml, ['a pole'] requested.\n"
        "When resuming, --set may change only: reward.batch_size, reward.device, reward.overlap_scoring, "
        "reward.compile, reward.backend, reward.ray.*, rl.total_steps, rl.vec_env, logging.checkpoint_freq, "
        "logging.video_freq, logging.video_size, logging.eval_freq, logging.eval_episodes, logging.keep_checkpoints, "
        "logging.save_replay_buffer, logging.progress_bar, logging.inspect, logging.wandb.*. "
        "To change anything else, start a new run.",
    ),
    (
        "resume-changes-env",
        ["train", "--resume", "{run}", "--set", "env.name=mountaincar", "--set", "rl.algorithm=sac"],
        "  env.name: 'cartpole' in {run}/config.yaml, 'mountaincar' requested.\n"
        "  rl.algorithm: 'dqn' in {run}/config.yaml, 'sac' requested.",
    ),
    (
        "resume-moves-run-dir",
        ["train", "--resume", "{run}", "--set", "logging.run_dir={tmp}/x"],
        "--set 'logging.run_dir={tmp}/x': a resumed run continues in '{run}'; to continue elsewhere, copy the run "
        "directory and resume the copy.",
    ),
    (
        "resume-all-corrupt",
        ["train", "--resume", "{corrupt}"],
        "No usable checkpoint in {corrupt}/checkpoints:\n"
        "  {corrupt}/checkpoints/step_0000000050.zip: it is truncated or corrupt (File is not a zip file)\n"
        "Move these files away to resume from step 0, or start a new run.",
    ),
    (
        "resume-finished",
        ["train", "--resume", "{finished}"],
        "The run in '{finished}' already finished its 100 steps. To train longer:\n"
        "  vlmrm train --resume {finished} --set rl.total_steps=200",
    ),
    (
        "resume-finished-past-its-total",
        ["train", "--resume", "{past}"],
        "The run in '{past}' already finished its 128 steps. To train longer:\n"
        "  vlmrm train --resume {past} --set rl.total_steps=256",
    ),
    (
        "resume-below-checkpoint",
        ["train", "--resume", "{midway}", "--set", "rl.total_steps=60"],
        "rl.total_steps=60 is below the step of the checkpoint to resume from (100); "
        "pass --set rl.total_steps=N with N >= 100.",
    ),
    (
        "run-dir-holds-a-run",
        ["train", CARTPOLE, "--run-dir", "{run}"],
        "Run directory '{run}' already holds a run. Continue it with:\n  vlmrm train --resume {run}\n"
        "or pass --overwrite to delete it and start over, or choose another logging.run_dir or --run-dir.",
    ),
    (
        "overwrite-foreign-dir",
        ["train", CARTPOLE, "--run-dir", "{notes}", "--overwrite"],
        "Run directory '{notes}' already exists and holds files vlmrm did not write (notes.txt). Choose another "
        "logging.run_dir or --run-dir; vlmrm does not --overwrite a directory holding other files.",
    ),
    (
        "alpha-out-of-range",
        ["train", CARTPOLE, "--set", "reward.alpha=1.5"],
        f"Invalid config {CARTPOLE!r}:\n  reward.alpha: Input should be less than or equal to 1 (got 1.5).",
    ),
    (
        "steps-in-e-notation",
        ["train", CARTPOLE, "--set", "rl.total_steps=1e5"],
        "  rl.total_steps: Input should be a valid integer (got '1e5'). "
        "YAML reads 1e5 as text; write the number in full, e.g. 100000.",
    ),
    (
        "negative-seed",
        ["train", CARTPOLE, "--set", "rl.seed=-1"],
        "  rl.seed: Input should be greater than or equal to 0 (got -1).",
    ),
    (
        "zero-keep-checkpoints",
        ["train", CARTPOLE, "--set", "logging.keep_checkpoints=0"],
        "  logging.keep_checkpoints: Input should be greater than 0 (got 0).",
    ),
    (
        "misspelled-logging-field",
        ["train", CARTPOLE, "--set", "logging.chekpoint_freq=5"],
        "  logging.chekpoint_freq: unknown field. Did you mean 'logging.checkpoint_freq'? Valid fields here: run_dir, "
        "checkpoint_freq, video_freq, video_size, eval_freq, eval_episodes, keep_checkpoints, save_replay_buffer, "
        "progress_bar, inspect, wandb.",
    ),
    (
        "unknown-env",
        ["train", CARTPOLE, "--set", "env.name=cartpol"],
        "  env.name: Unknown environment 'cartpol'. Did you mean 'cartpole'?",
    ),
    (
        "misspelled-env-option",
        ["train", MOUNTAINCAR, "--set", "env.options.terminate_at_gaol=true"],
        "  env.options.terminate_at_gaol: unknown field. Did you mean 'env.options.terminate_at_goal'? "
        "Valid fields here: renderer, terminate_at_goal, clip_at_goal, textured.",
    ),
    (
        "env-option-type",
        ["train", MOUNTAINCAR, "--set", "env.options.textured=maybe"],
        "  env.options.textured: Input should be a valid boolean (got 'maybe').",
    ),
    (
        "misspelled-hyperparameter",
        ["train", CARTPOLE, "--set", "rl.hyperparameters.learning_rat=0.1"],
        "  rl.hyperparameters.learning_rat: DQN has no such parameter. Did you mean 'learning_rate'?",
    ),
    (
        "misspelled-policy",
        ["train", CARTPOLE, "--set", "rl.policy=MLPPolicy"],
        "  rl.policy: DQN has no policy 'MLPPolicy'. Did you mean 'MlpPolicy'? Valid: CnnPolicy, MlpPolicy, "
        "MultiInputPolicy.",
    ),
    (
        "episode-batching-with-ppo",
        ["train", CARTPOLE, "--set", "rl.algorithm=ppo", "--set", "reward.episode_end_batching=true"],
        "  reward.episode_end_batching: needs an off-policy algorithm (sac, dqn), not ppo; set it to false.",
    ),
    (
        "override-without-value",
        ["train", CARTPOLE, "--set", "rl.total_steps"],
        "--set 'rl.total_steps': expected KEY=VALUE, e.g. --set rl.total_steps=2000.",
    ),
    (
        "empty-model",
        ["train", CARTPOLE, "--set", "reward.model=''"],
        "  reward.model: the model is empty; name one, e.g. openai/clip-vit-base-patch32 or tiny-random (got '').",
    ),
    (
        "boolean-as-steps",
        ["train", CARTPOLE, "--set", "rl.total_steps=true"],
        "  rl.total_steps: Input should be a valid integer (got True).",
    ),
    (
        "train-freq-zero",
        ["train", CARTPOLE, "--set", "rl.hyperparameters.train_freq=0"],
        "  rl.hyperparameters.train_freq: must be a positive integer, or [N, step] / [N, episode] (got 0).",
    ),
    (
        "negative-layer-size",
        ["train", CARTPOLE, "--set", "rl.hyperparameters.policy_kwargs={{net_arch: [-1]}}"],
        "  rl.hyperparameters.policy_kwargs: must be a mapping whose net_arch is a list of positive layer sizes, "
        "e.g. [64, 64], or one per network, e.g. {{pi: [64], qf: [64]}} (got {{'net_arch': [-1]}}).",
    ),
    (
        "infinite-learning-rate",
        ["train", CARTPOLE, "--set", "rl.hyperparameters.learning_rate=.inf"],
        "  rl.hyperparameters.learning_rate: must be a finite number > 0 (got inf).",
    ),
    (
        "empty-run-dir",
        ["train", CARTPOLE, "--set", "reward.model=tiny-random", "--run-dir", ""],
        "The run directory is empty; give a path or leave it out (default runs/<env>-<date>).",
    ),
    (
        "config-is-a-directory",
        ["train", "{tmp}/empty"],
        "Config '{tmp}/empty' is a directory; give a YAML file, e.g. configs/cartpole.yaml.",
    ),
    (
        "bench-too-many-envs",
        ["bench", "cartpole", "--model", "tiny-random", "--n-envs", "100000"],
        "n_envs (--n-envs) must be at most 4096, got 100000: every env is a simulator of its own, built and warmed "
        "up before measuring.",
    ),
    (
        "landscape-unknown-env-first",
        ["landscape", "pendulum", "--out", "{tmp}/x"],
        "Unknown environment 'pendulum'. Known environments: cartpole, humanoid, mountaincar; "
        "to train: gym:<id>, any Gymnasium id that renders rgb_array frames.",
    ),
]


@pytest.mark.parametrize(("argv", "message"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_gives_one_clear_message(
    argv: list[str], message: str, runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([arg.format(**runs) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert message.format(**runs) in err, err
    # Nothing was written into the run directories by a refused command.
    assert sorted(p.name for p in Path(runs["run"]).iterdir()) in (["config.yaml"], [".lock", "config.yaml"])
    assert sorted(p.name for p in Path(runs["notes"]).iterdir()) == ["notes.txt"]


def test_a_huge_replay_buffer_is_a_message_and_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    argv = [
        "train",
        CARTPOLE,
        "--set",
        "reward.model=tiny-random",
        "--set",
        "rl.hyperparameters.buffer_size=100000000000",
    ]
    assert main([*argv, "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "rl.hyperparameters.buffer_size=100000000000: the replay buffer does not fit in memory" in err
    assert "Traceback" not in err and not run_dir.exists()  # the same command can run again once fixed


def test_an_unwritable_landscape_output_is_refused_before_any_work(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["landscape", "cartpole", "--model", "tiny-random", "--out", "/proc/vlmrm-landscape"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Cannot write to '/proc/vlmrm-landscape'") and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["render", "kneeling", "--size", "100000", "--out", "{tmp}/pose.png"],
            "--size 100000: 2 images of 100000×100000×3 bytes = 60.0 GB, more than the 1.0 GB of memory available "
            "on this machine now. Use a smaller --size.",
        ),
        (
            ["landscape", "cartpole", "--model", "tiny-random", "--points", "100000000", "--out", "{tmp}/l"],
            "--points 100000000: each state is at least one row of the landscape, about 360 bytes in memory: "
            "100000000 states × 360 bytes = 36.0 GB, more than the 1.0 GB of memory available on this machine now. "
            "Use fewer --points (a plot shows a few hundred at most).",
        ),
    ],
    ids=["render-size", "landscape-points"],
)
def test_sizes_beyond_the_machines_memory_are_refused_with_the_arithmetic(
    argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import vlmrm.memory

    monkeypatch.setattr(vlmrm.memory, "available_memory", lambda: 10**9)
    assert main([arg.format(tmp=tmp_path) for arg in argv]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {message}\n"
    assert list(tmp_path.iterdir()) == []
