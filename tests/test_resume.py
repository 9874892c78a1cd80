"""Interrupt runs for real (SIGTERM, SIGKILL, truncation) and resume them.

"No gap or overlap" in the logs is defined by :func:`faultkit.assert_no_gap_or_overlap`.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import pickle
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from stable_baselines3 import DQN

from faultkit import (
    ROOT,
    assert_no_gap_or_overlap,
    color_reward,
    csv_steps,
    events_file_steps,
    events_files,
    load_dqn_checkpoint,
    run_config,
    tensorboard_steps,
)
from vlmrm.cli.main import main
from vlmrm.config import config_from_dict
from vlmrm.errors import CheckpointError, ConfigError, TrainingInterrupted
from vlmrm.run.checkpoints import (
    STATE_MEMBER,
    find_latest_good_checkpoint,
    list_checkpoints,
    replay_path,
    verify_checkpoint,
)
from vlmrm.training.trainer import resume, train

pytestmark = pytest.mark.filterwarnings("ignore:vlmrm. model:UserWarning")


def wait_for(condition, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the run ended early: {process.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def has_a_checkpoint(run_dir: Path) -> bool:
    """Whether a step checkpoint exists: any, since the first (step 40) lives only until the fourth is written
    (keep_checkpoints 3), a fraction of a second on a fast machine, which a poll can miss."""
    return any((run_dir / "checkpoints").glob("step_*.zip"))


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_and_the_printed_command_resumes_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "vlmrm.cli.main", "train", str(ROOT / "configs" / "cartpole-dqn.yaml"),
        "--set", "reward.model=tiny-random", "--set", "rl.total_steps=100000", "--set", "env.episode_length=20",
        "--set", "env.render_size=64", "--set", "rl.hyperparameters.learning_starts=40",
        "--set", "rl.hyperparameters.train_freq=8", "--set", "rl.hyperparameters.gradient_steps=2",
        "--set", "rl.hyperparameters.buffer_size=2000", "--set", "logging.checkpoint_freq=40",
        "--set", "logging.eval_freq=20", "--set", "logging.eval_episodes=1", "--set", "logging.video_freq=0",
        "--set", "logging.progress_bar=false", "--run-dir", str(run_dir),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        wait_for(lambda: has_a_checkpoint(run_dir), 240, process)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 143, stderr
    match = re.search(r"Training interrupted by SIGTERM at step (\d+) of 100000; checkpoint written: (\S+)", stderr)
    assert match, stderr
    step, checkpoint = int(match.group(1)), Path(match.group(2))
    assert checkpoint == run_dir / "checkpoints" / f"step_{step:010d}.zip" and step >= 40
    assert DQN.load(checkpoint).num_timesteps == step
    assert (run_dir / "checkpoints" / f"step_{step:010d}.replay").is_file()
    resume_line = stderr.split("Resume with:\n", 1)[1].splitlines()[0].strip()
    assert resume_line == f"vlmrm train --resume {shlex.quote(str(run_dir))}"

    # Resume with the printed command, in this process (no second start-up), to a total of step + 60.
    total = (step // 20 + 3) * 20
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*shlex.split(resume_line)[1:], "--set", f"rl.total_steps={total}"]) == 0
    final = DQN.load(run_dir / "checkpoints" / f"step_{total:010d}.zip")
    assert final.num_timesteps == total
    assert "total_steps: 100000" not in (run_dir / "config.yaml").read_text()
    # The interrupted process's rows up to its checkpoint step stay; the checkpoint step's own row is written
    # again, whole, by the resumed process (from what the checkpoint carries), then everything after it.
    first, second = events_files(run_dir)
    assert max(events_file_steps(first)) < step <= min(events_file_steps(second))
    assert_no_gap_or_overlap(run_dir, eval_freq=20, total_steps=total)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 150-step run with checkpoints at 50, 100 and 150 and evaluations every 25 steps."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    train(config_from_dict(run_config(run_dir, 150)), reward_fn=color_reward())
    return run_dir


def test_resume_falls_back_past_a_truncated_checkpoint(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    (run_dir / "summary.json").unlink()  # as if killed before the end
    checkpoints = run_dir / "checkpoints"
    newest = checkpoints / "step_0000000150.zip"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a torn write
    leftover = checkpoints / ".step_0000000200.zip.x1y2z3.tmp.zip"  # what a kill mid-write leaves
    leftover.write_bytes(b"partial")

    with pytest.raises(CheckpointError) as info:
        verify_checkpoint(newest)
    assert str(info.value).startswith(f"Checkpoint {newest} is unusable: it is truncated or corrupt")
    assert str(info.value).endswith(f"The last good checkpoint is {checkpoints / 'step_0000000100.zip'}.")

    with caplog.at_level("WARNING"):
        result = resume(run_dir, reward_fn=color_reward())
    assert (
        f"checkpoint {newest} is unusable (it is truncated or corrupt" in caplog.text
        and f"resuming from {checkpoints / 'step_0000000100.zip'} instead" in caplog.text
    )
    assert result.summary["total_steps"] == 150 and result.summary["resumed_at_steps"] == [100]
    assert (checkpoints / "step_0000000150.zip.corrupt").is_file()  # set aside, not deleted
    assert not leftover.exists()
    assert DQN.load(newest).num_timesteps == 150  # written again by the resumed run
    assert [step for step, _ in list_checkpoints(checkpoints)] == [50, 100, 150]
    # Steps 101-150 were logged twice (before the kill and after the resume) but appear once.
    assert_no_gap_or_overlap(run_dir, eval_freq=25, total_steps=150)


def test_resume_restores_counters_replay_buffer_and_trainer_state(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    before = load_dqn_checkpoint(run_dir, 150)
    resume(run_dir, ["rl.total_steps=200"], reward_fn=color_reward())
    after = load_dqn_checkpoint(run_dir, 200)
    assert after.num_timesteps == 200 and after._n_updates > before._n_updates
    # The buffer kept the first 150 steps' transitions (one step per checkpoint is not stored).
    assert after.replay_buffer.pos == before.replay_buffer.pos + 50 - 1
    # Transitions of the episode running at step 150 were dropped from the pending relabelling list.
    assert all(pos >= before.replay_buffer.pos for pos in after.replay_buffer._pending[0])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [entry["step"] for entry in summary["eval_history"]] == [25, 50, 75, 100, 125, 150, 175, 200]
    assert summary["resumed_at_steps"] == [150]
    assert_no_gap_or_overlap(run_dir, eval_freq=25, total_steps=200)


def as_written_before_replay_io(checkpoint: Path) -> Path:
    """Turn a checkpoint into what older vlmrm versions wrote: the whole buffer pickled as step_<N>.replay.pkl."""
    model = load_dqn_checkpoint(checkpoint.parents[1], int(checkpoint.stem.split("_")[1]))
    legacy = replay_path(checkpoint, pickled=True)
    legacy.write_bytes(pickle.dumps(model.replay_buffer, protocol=pickle.HIGHEST_PROTOCOL))
    replay_path(checkpoint).unlink()
    with zipfile.ZipFile(checkpoint) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    state = pickle.loads(members[STATE_MEMBER])
    digest = hashlib.sha256(legacy.read_bytes()).hexdigest()
    state["replay_buffer"] = {"file": legacy.name, "size": legacy.stat().st_size, "sha256": digest}
    members[STATE_MEMBER] = pickle.dumps(state)
    with zipfile.ZipFile(checkpoint, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return legacy


def test_a_checkpoint_with_a_pickled_replay_buffer_still_resumes(finished_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    checkpoints = run_dir / "checkpoints"
    legacy = as_written_before_replay_io(checkpoints / "step_0000000150.zip")
    before = pickle.loads(legacy.read_bytes())
    resume(run_dir, ["rl.total_steps=200"], reward_fn=color_reward())
    after = load_dqn_checkpoint(run_dir, 200)
    assert after.replay_buffer.pos == before.pos + 50 - 1  # the pickled transitions were restored
    np.testing.assert_array_equal(after.replay_buffer.observations[: before.pos], before.observations[: before.pos])
    assert sorted(p.name for p in checkpoints.iterdir() if p.name.startswith("step_")) == [
        "step_0000000100.replay",
        "step_0000000100.zip",
        "step_0000000150.replay.pkl",
        "step_0000000150.zip",
        "step_0000000200.replay",
        "step_0000000200.zip",
    ]


def test_resume_may_switch_on_overlapped_scoring(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How rewards are scheduled is not what they are: a run may resume with overlap_scoring changed."""
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    resume(run_dir, ["rl.total_steps=200", "reward.overlap_scoring=true"], reward_fn=color_reward())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["overlap_scoring"] is True and summary["resumed_at_steps"] == [150]
    after = load_dqn_checkpoint(run_dir, 200)
    buffer = after.replay_buffer
    assert buffer._in_flight == [] and buffer.ready.sum() > 0
    assert np.all(buffer.rewards[buffer.ready] != 0)  # relabelled, not placeholders


def test_a_run_killed_during_its_final_evaluation_only_evaluates_again(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    (run_dir / "summary.json").unlink()  # killed after the final checkpoint, before the summary
    before = (run_dir / "checkpoints" / "step_0000000150.zip").read_bytes()
    summary = resume(run_dir, reward_fn=color_reward()).summary
    assert summary["total_steps"] == 150 and summary["resumed_at_steps"] == [150]
    assert (run_dir / "checkpoints" / "step_0000000150.zip").read_bytes() == before  # no training, no new checkpoint
    assert_no_gap_or_overlap(run_dir, eval_freq=25, total_steps=150)
    # The final row is whole again: the rollout values logged since the last dump travelled in the checkpoint.
    with open(run_dir / "logs" / "progress.csv", newline="") as handle:
        last = list(csv.DictReader(handle))[-1]
    assert last["step"] == "150" and last["eval/env_return"] and last["rollout/vlm_return"]


def test_sigint_during_the_final_evaluation_stops_it_and_exits_as_interrupted(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from vlmrm.training.callbacks import EvaluationCallback

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    (run_dir / "summary.json").unlink()  # the final evaluation is still to do
    real_run = EvaluationCallback.run

    def interrupted_run(self, step, episodes, video):
        if video:  # the final evaluation
            os.kill(os.getpid(), signal.SIGINT)
        return real_run(self, step, episodes, video)

    monkeypatch.setattr(EvaluationCallback, "run", interrupted_run)
    with caplog.at_level("WARNING"), pytest.raises(TrainingInterrupted) as info:
        resume(run_dir, reward_fn=color_reward())
    final = run_dir / "checkpoints" / "step_0000000150.zip"
    assert info.value.exit_code == 130 and info.value.step == 150
    assert str(info.value) == (
        f"Training interrupted by SIGINT at its final evaluation (step 150 of 150); the final checkpoint is written: "
        f"{final}\nEvaluate it and write summary.json with:\n  vlmrm train --resume {run_dir}"
    )
    assert "SIGINT received during the final evaluation: stopping it" in caplog.text
    assert "writing a checkpoint" not in caplog.text
    assert not (run_dir / "summary.json").exists()
    monkeypatch.setattr(EvaluationCallback, "run", real_run)
    assert resume(run_dir, reward_fn=color_reward()).summary["total_steps"] == 150


KILL_MID_WRITE = textwrap.dedent(
    """
    import importlib.util, sys, time
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("checkpoints", sys.argv[1])
    checkpoints = sys.modules["checkpoints"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(checkpoints)  # without importing torch: the kill comes sooner

    def slow_write(tmp):
        with open(tmp, "wb") as handle:
            handle.write(b"PK" + b"0" * 4096)
            handle.flush()
            print("writing", flush=True)
            time.sleep(60)

    checkpoints.atomic_write(Path(sys.argv[2]), slow_write, tmp_suffix=".zip")
    """
)


def test_sigkill_during_a_checkpoint_write_leaves_the_previous_checkpoints(finished_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    checkpoints = run_dir / "checkpoints"
    target = checkpoints / "step_0000000200.zip"
    module = ROOT / "src" / "vlmrm" / "files.py"
    process = subprocess.Popen(
        [sys.executable, "-c", KILL_MID_WRITE, str(module), str(target)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "writing"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    assert not target.exists()
    assert [p.name for p in checkpoints.iterdir() if p.name.startswith(".")], "the torn temporary file is left"
    latest = find_latest_good_checkpoint(checkpoints)
    assert latest is not None and latest.step == 150 and latest.skipped == []
    assert DQN.load(latest.path).num_timesteps == 150


def test_a_checkpoint_that_passes_the_zip_checks_but_does_not_load_is_set_aside(
    finished_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A junk policy.pth with valid CRCs: resume falls back to the older checkpoint, as for a corrupt one."""
    import zipfile

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    (run_dir / "summary.json").unlink()
    checkpoints = run_dir / "checkpoints"
    newest = checkpoints / "step_0000000150.zip"
    with zipfile.ZipFile(newest) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["policy.pth"] = b"not a torch file"
    with zipfile.ZipFile(newest, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    assert find_latest_good_checkpoint(checkpoints).step == 150  # the integrity checks pass
    (checkpoints / "step_0000000150.zip.corrupt").write_bytes(b"set aside by an earlier resume")
    with caplog.at_level("WARNING"):
        summary = resume(run_dir, reward_fn=color_reward()).summary
    assert "step_0000000150.zip' does not load as DQN" in caplog.text
    assert summary["total_steps"] == 150 and summary["resumed_at_steps"] == [100]
    # Set aside beside the earlier copy of the same step, which is kept.
    assert (checkpoints / "step_0000000150.zip.corrupt").read_bytes() == b"set aside by an earlier resume"
    assert (checkpoints / "step_0000000150.zip.corrupt.1").is_file()


def test_a_finished_run_with_an_unreadable_summary_evaluates_again(finished_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    (run_dir / "summary.json").write_text("{garbage")
    before = (run_dir / "checkpoints" / "step_0000000150.zip").read_bytes()
    summary = resume(run_dir, reward_fn=color_reward()).summary
    assert summary["total_steps"] == 150 and json.loads((run_dir / "summary.json").read_text()) == summary
    assert (run_dir / "checkpoints" / "step_0000000150.zip").read_bytes() == before  # evaluated, not trained
    assert_no_gap_or_overlap(run_dir, eval_freq=25, total_steps=150)


def test_resume_keeps_every_sound_log_record_past_damaged_bytes(
    finished_run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    (run_dir / "summary.json").unlink()  # as if killed after the checkpoint at step 100
    for path in (run_dir / "checkpoints").glob("step_0000000150.*"):
        path.unlink()
    logs = run_dir / "logs"
    (events,) = run_dir.glob("events.out.tfevents.*")
    steps_before = events_file_steps(events)
    damaged = bytearray(events.read_bytes())
    damaged[300] ^= 0x10  # one flipped bit, early in the file
    events.write_bytes(bytes(damaged))
    progress = logs / "progress.csv"
    lines = progress.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b",", b",\xff", 1)  # a row that is not UTF-8, logged before step 100
    progress.write_bytes(b"".join(lines))

    with caplog.at_level("WARNING"):
        resume(run_dir, reward_fn=color_reward())
    kept = events_file_steps(events)
    expected = [step for step in steps_before if step < 100]
    # One scalar record held the flipped bit; every other one up to the checkpoint stays.
    assert len(kept) == len(expected) - 1 and set(kept) <= set(expected) and max(kept) == max(expected)
    copy = run_dir / events.name.replace("tfevents", "damaged")
    assert copy.read_bytes() == bytes(damaged) and f"the whole file as it was in {copy.name}" in caplog.text
    assert lines[2] in progress.read_bytes().splitlines(keepends=True)  # kept as it was
    assert tensorboard_steps(run_dir)["eval/env_return"][-1] == 150


def resumable_copy(finished_run: Path, tmp_path: Path) -> Path:
    """A copy of the finished run as if killed after its checkpoint at step 100."""
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    (run_dir / "summary.json").unlink()
    for path in (run_dir / "checkpoints").glob("step_0000000150.*"):
        path.unlink()
    return run_dir


def test_resume_refuses_a_config_yaml_that_differs_from_the_checkpoint(finished_run: Path, tmp_path: Path) -> None:
    run_dir = resumable_copy(finished_run, tmp_path)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["reward"]["target_prompts"] = ["a blue pole"]
    config["rl"]["hyperparameters"]["learning_rate"] = 0.5
    config["logging"]["eval_episodes"] = 2  # resume-safe, as with --set
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    before = {path.name: path.read_bytes() for path in (run_dir / "logs").iterdir()}
    with pytest.raises(ConfigError) as info:
        resume(run_dir, reward_fn=color_reward())
    assert str(info.value).startswith(
        f"{str(run_dir / 'config.yaml')!r} differs from what checkpoint step_0000000100.zip was trained with:\n"
        "  reward.target_prompts: ['a red pole'] in checkpoint step_0000000100.zip, ['a blue pole'] in config.yaml.\n"
        "  rl.hyperparameters.learning_rate: not set in checkpoint step_0000000100.zip, 0.5 in config.yaml.\n"
        "Restore these fields in config.yaml to resume (only reward.batch_size, "
    )
    assert {path.name: path.read_bytes() for path in (run_dir / "logs").iterdir()} == before  # nothing was touched


def test_a_run_trained_on_a_python_reward_function_is_not_resumed_or_inspected_on_another(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = resumable_copy(finished_run, tmp_path)
    name = color_reward().name
    for argv, call in (
        (["train", "--resume", str(run_dir)], f"vlmrm.resume({str(run_dir)!r}, reward_fn=...)"),
        (["inspect", str(run_dir)], f"inspect_run({str(run_dir)!r}, reward_fn=...)"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(
            f"error: The run in {str(run_dir)!r} was trained on the Python reward function {name!r} "
            "(vlmrm.train(config, reward_fn=...)), not on its config's reward.model"
        ), err
        assert call in err and "Traceback" not in err
    assert not (run_dir / "inspect").exists()
    assert resume(run_dir, reward_fn=color_reward()).summary["total_steps"] == 150  # with the function, it resumes


def test_one_row_per_step_when_an_evaluation_and_stable_baselines3_log_at_the_same_step(tmp_path: Path) -> None:
    """Evaluating at every step lands on the steps where DQN dumps its own values (every 4 episodes)."""
    run_dir = tmp_path / "run"
    config = run_config(run_dir, 100, eval_freq=1, checkpoint_freq=0, inspect=False)  # 100 evaluations: no images
    train(config_from_dict(config), reward_fn=color_reward())
    rows = csv_steps(run_dir / "logs")
    for source, steps in (("TensorBoard", tensorboard_steps(run_dir)), ("progress.csv", rows)):
        for tag, tag_steps in steps.items():
            assert all(a < b for a, b in itertools.pairwise(tag_steps)), f"{source}: {tag} logged twice at a step"
    with open(run_dir / "logs" / "progress.csv", newline="") as handle:
        logged = [int(row["step"]) for row in csv.DictReader(handle)]
    assert logged == sorted(set(logged)) and 80 in rows["rollout/exploration_rate"] and 80 in rows["eval/env_return"]


@pytest.mark.slow
def test_sigkill_with_subprocess_envs_leaves_no_worker_and_no_traceback(tmp_path: Path) -> None:
    """Env workers die with the trainer (PR_SET_PDEATHSIG), quietly: no ConnectionResetError tracebacks."""
    run_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "vlmrm.cli.main", "train", str(ROOT / "configs" / "cartpole-dqn.yaml"),
        "--set", "reward.model=tiny-random", "--set", "rl.total_steps=100000", "--set", "env.episode_length=20",
        "--set", "env.render_size=32", "--set", "rl.n_envs=2", "--set", "rl.vec_env=subproc",
        "--set", "rl.hyperparameters.learning_starts=40", "--set", "logging.checkpoint_freq=40",
        "--set", "logging.eval_freq=0", "--set", "logging.video_freq=0", "--set", "logging.progress_bar=false",
        "--run-dir", str(run_dir),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        wait_for(lambda: has_a_checkpoint(run_dir), 240, process)
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        workers = [int(pid) for pid in children if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()]
        os.kill(process.pid, signal.SIGKILL)
        _, stderr = process.communicate(timeout=60)  # EOF: every process holding the pipe has ended
    finally:
        process.kill()
    assert len(workers) == 2
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), 10)
    assert "Traceback" not in stderr and "ConnectionResetError" not in stderr, stderr[-2000:]
