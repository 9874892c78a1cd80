"""Faults during a run: NaN rewards, a full disk, a failing build, a busy run directory, signals."""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import yaml
from stable_baselines3 import DQN
from stable_baselines3.common.base_class import BaseAlgorithm

from faultkit import NaNEmbedder, color_reward, frame_of_png, run_config
from markers import requires_video_encoder
from vlmrm.config import config_from_dict
from vlmrm.errors import ConfigError, RewardError, RunDirectoryError, WriteError
from vlmrm.reward import VLMReward as ColorReward
from vlmrm.run.lock import RunLock
from vlmrm.testing import ColorEmbedder
from vlmrm.training.guards import GracefulInterrupt, RewardGuard
from vlmrm.training.trainer import resume, train

pytestmark = pytest.mark.filterwarnings("ignore:vlmrm. model:UserWarning")


def write_config(tmp_path: Path, cfg: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(
    ("episode_end_batching", "nan_call", "step", "where"),
    [
        # Step mode: one call per vector step of 2 envs; the 5th is step 10.
        (False, 5, 10, "(env 0)"),
        # Episode-end batching: both envs end their 20-step episodes every 40 steps; the 3rd call is step 120.
        (True, 3, 120, "(frame 0 of the 40 episode frames scored when episodes ended (episode-end batching))"),
    ],
)
def test_a_nan_reward_stops_the_run_and_saves_the_frame(
    tmp_path: Path,
    episode_end_batching: bool,
    nan_call: int,
    step: int,
    where: str,
) -> None:
    run_dir = tmp_path / "run"
    cfg = run_config(run_dir, 200, eval_freq=0)
    cfg["rl"]["n_envs"] = 2
    # CartPole does not end when the pole falls (the paper's dynamics): every episode lasts 20 steps.
    cfg["reward"]["episode_end_batching"] = episode_end_batching
    with pytest.raises(RewardError) as info:
        train(config_from_dict(cfg), reward_fn=color_reward(NaNEmbedder(nan_call=nan_call)))
    err = f"error: {info.value}\n"
    png = run_dir / "bad_frames" / f"step_{step:010d}_{'frame' if episode_end_batching else 'env'}_0.png"
    assert list((run_dir / "bad_frames").iterdir()) == [png]
    frames = 40 if episode_end_batching else 2
    assert (
        f"error: The reward model returned NaN for 1 of {frames} frames at step {step} {where}. "
        f"Training stopped before the value reached the policy. The offending frames:\n  {png}\n"
        "Check the reward model on these frames (reward.model; reward.dtype=fp16 can overflow, try fp32)."
    ) in err
    assert frame_of_png(png).shape == (16, 16, 3)
    assert "Traceback" not in err
    assert (run_dir / "config.yaml").is_file()  # the run directory stays usable


def test_a_nan_reward_scored_in_the_background_stops_the_run(tmp_path: Path) -> None:
    """With overlapped scoring the NaN is found in the scorer thread; the error still ends the run cleanly."""
    run_dir = tmp_path / "run"
    cfg = run_config(run_dir, 200, eval_freq=0)
    cfg["rl"]["n_envs"] = 2
    cfg["reward"]["episode_end_batching"] = True
    cfg["reward"]["overlap_scoring"] = True
    with pytest.raises(RewardError) as info:
        train(config_from_dict(cfg), reward_fn=color_reward(NaNEmbedder(nan_call=2)))
    err = f"error: {info.value}\n"
    [png] = list((run_dir / "bad_frames").iterdir())  # which step depends on the thread's timing
    assert png.name.endswith("_frame_0.png")
    assert "error: The reward model returned NaN for 1 of " in err
    assert f"Training stopped before the value reached the policy. The offending frames:\n  {png}\n" in err
    assert "Traceback" not in err
    assert (run_dir / "config.yaml").is_file()


def test_reward_guard_checks_shape_and_infinity(tmp_path: Path) -> None:
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    frames[1] = 200
    guard = RewardGuard(lambda f: np.array([0.0, np.inf, 1.0]), tmp_path, step=lambda: 7, label="eval_env")
    with pytest.raises(RewardError, match=r"returned infinity for 1 of 3 frames at step 7 \(eval_env 1\)"):
        guard(frames)
    assert (frame_of_png(tmp_path / "step_0000000007_eval_env_1.png") == 200).all()
    with pytest.raises(RewardError, match=r"rewards of shape \(2,\) for 3 frames at step 7"):
        RewardGuard(lambda f: np.zeros(2), tmp_path, step=lambda: 7)(frames)
    np.testing.assert_array_equal(RewardGuard(lambda f: np.ones(3), tmp_path)(frames), np.ones(3, np.float32))


@pytest.mark.slow
def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    checkpoints = run_dir / "checkpoints"
    real_save = BaseAlgorithm.save
    calls = []

    def save_then_disk_full(self, path, *args, **kwargs):
        if Path(path).name.startswith(".step_"):  # a checkpoint's temporary file, not best.zip's
            calls.append(path)
        if len(calls) == 2 and Path(path).name.startswith(".step_0000000100"):
            # the checkpoint at step 100: write half of it, then the disk is full
            real_save(self, path, *args, **kwargs)
            Path(path).write_bytes(Path(path).read_bytes()[:1000])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(self, path, *args, **kwargs)

    monkeypatch.setattr(BaseAlgorithm, "save", save_then_disk_full)
    with pytest.raises(WriteError) as info:
        train(config_from_dict(run_config(run_dir, 150)), reward_fn=color_reward())
    err = f"error: {info.value}\n"
    assert (
        f"error: Could not write {checkpoints / 'step_0000000100.zip'}: No space left on device [ENOSPC].\n"
        "Free disk space (logging.keep_checkpoints and logging.save_replay_buffer=false use less).\n"
        f"The previous checkpoint {checkpoints / 'step_0000000050.zip'} is intact; once fixed, resume with:\n"
        f"  vlmrm train --resume {run_dir}\n"
    ) in err
    # No orphan replay buffer of the checkpoint that failed, and no temporary file.
    assert sorted(p.name for p in checkpoints.glob("step_*")) == ["step_0000000050.replay", "step_0000000050.zip"]
    assert not [p for p in checkpoints.iterdir() if p.name.startswith(".")], "no temporary file is left"
    assert DQN.load(checkpoints / "step_0000000050.zip").num_timesteps == 50

    monkeypatch.setattr(BaseAlgorithm, "save", real_save)  # space freed
    summary = resume(run_dir, reward_fn=color_reward()).summary
    assert summary["total_steps"] == 150 and summary["resumed_at_steps"] == [50]
    assert not (checkpoints / "step_0000000100.zip.corrupt").exists()


@requires_video_encoder
def test_a_full_disk_during_a_video_names_the_video(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vlmrm.training.callbacks as callbacks

    run_dir = tmp_path / "run"

    def disk_full(frames, path, fps=30):
        Path(path).write_bytes(b"\0" * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(callbacks, "write_video", disk_full)
    with pytest.raises(WriteError) as info:
        train(config_from_dict(run_config(run_dir, 100, video_freq=60)), reward_fn=color_reward())
    err = f"error: {info.value}\n"
    video = run_dir / "videos" / "step_0000000060.mp4"
    assert f"error: Could not write {video}: No space left on device [ENOSPC]." in err
    assert f"The previous checkpoint {run_dir / 'checkpoints' / 'step_0000000050.zip'} is intact" in err
    assert list((run_dir / "videos").iterdir()) == []  # neither a torn mp4 nor a temporary file


@pytest.mark.slow
def test_envs_and_reward_are_closed_when_the_algorithm_cannot_be_built(tmp_path: Path) -> None:
    class ClosingReward(ColorReward):
        closed = 0

        def close(self) -> None:
            type(self).closed += 1

    cfg = run_config(tmp_path / "run", 100)
    cfg["rl"].update(n_envs=2, vec_env="subproc")
    cfg["rl"]["hyperparameters"]["buffer_size"] = 10**13  # no memory holds this buffer
    with pytest.raises(ConfigError, match=r"rl\.hyperparameters\.buffer_size=10000000000000: the replay buffer"):
        train(config_from_dict(cfg), reward_fn=ClosingReward(ColorEmbedder(), target_prompts=["a red pole"]))
    assert ClosingReward.closed == 1
    assert child_processes() == []  # the subprocess env workers were closed
    assert not (tmp_path / "run").exists()


def child_processes() -> list[int]:
    """Live child processes of this process (Linux), but multiprocessing's resource tracker (it outlives pools)."""
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    pids = [int(pid) for pid in children.read_text().split()] if children.exists() else []
    return [pid for pid in pids if _running(pid) and b"resource_tracker" not in _cmdline(pid)]


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_a_run_directory_in_use_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(run_config(run_dir, 100)))
    with RunLock(run_dir), pytest.raises(RunDirectoryError) as info:
        resume(run_dir, reward_fn=color_reward())
    assert str(info.value) == (
        f"Run directory {str(run_dir)!r} is in use by another vlmrm process (pid {os.getpid()}). "
        "Wait for it to finish or stop it (it writes a checkpoint on SIGTERM), then resume."
    )


def test_a_lock_file_that_is_a_directory_is_refused_with_a_message(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / ".lock").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(run_config(run_dir, 100)))
    with pytest.raises(RunDirectoryError) as info:
        resume(run_dir, reward_fn=color_reward())
    assert str(info.value).startswith(f"{str(run_dir / '.lock')!r} is a directory, but vlmrm keeps its lock file")


def test_graceful_interrupt_flags_the_first_signal_and_gives_way_to_the_second() -> None:
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    with GracefulInterrupt() as interrupt:
        os.kill(os.getpid(), signal.SIGTERM)
        assert interrupt.received == signal.SIGTERM and interrupt.exit_code == 143
    assert {signum: signal.getsignal(signum) for signum in before} == before
    with GracefulInterrupt() as interrupt, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        assert interrupt.received == signal.SIGINT and interrupt.exit_code == 130
        os.kill(os.getpid(), signal.SIGINT)  # the second one interrupts at once
    assert {signum: signal.getsignal(signum) for signum in before} == before


def test_a_full_disk_while_tensorboard_writes_names_the_events_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from tensorboard.compat.tensorflow_stub.io.gfile import LocalFileSystem

    run_dir = tmp_path / "run"
    real_append, appended = LocalFileSystem.append, []

    def append_until_full(self, filename, file_content, binary_mode=False):
        appended.append(filename)
        if len(appended) > 20:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a write to a full disk: no file name
        return real_append(self, filename, file_content, binary_mode)

    thread_errors: list[object] = []
    monkeypatch.setattr(threading, "excepthook", thread_errors.append)
    monkeypatch.setattr(LocalFileSystem, "append", append_until_full)
    with pytest.raises(WriteError) as info:
        train(config_from_dict(run_config(run_dir, 150)), reward_fn=color_reward())
    (events,) = run_dir.glob("events.out.tfevents.*")
    assert str(info.value).startswith(f"Could not write {events}: No space left on device [ENOSPC].")
    assert thread_errors == []  # no traceback from TensorBoard's writer thread


def test_sizes_that_do_not_fit_in_memory_are_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vlmrm.memory

    monkeypatch.setattr(vlmrm.memory, "available_memory", lambda: 2_000_000)
    run_dir = tmp_path / "run"
    big_buffer = run_config(run_dir, 100)
    big_buffer["rl"]["hyperparameters"]["buffer_size"] = 100_000
    big_buffer["logging"]["video_size"] = None  # 2 MB holds no 512 px video either
    with pytest.raises(ConfigError) as info:
        train(config_from_dict(big_buffer), reward_fn=color_reward())
    # The arrays of the (relabelling) replay buffer, per CartPole transition: 61 bytes.
    assert str(info.value) == (
        "rl.hyperparameters.buffer_size=100000: the replay buffer does not fit in memory: 100000 transitions × "
        "61 bytes = 6.1 MB, more than the 2.0 MB of memory available on this machine now. Lower "
        "rl.hyperparameters.buffer_size (to at most 32786 here)."
    )
    long_episodes = run_config(run_dir, 100)
    long_episodes["env"]["episode_length"] = 1_000_000
    long_episodes["rl"]["hyperparameters"]["learning_starts"] = 1_000_000
    long_episodes["logging"]["video_size"] = None
    with pytest.raises(ConfigError) as info:
        train(config_from_dict(long_episodes), reward_fn=color_reward())
    assert str(info.value) == (
        "env.episode_length=1000000: episodes are scored when they end, so their frames are kept until then: "
        "2 envs (1 training, 1 evaluation) × 1000000 frames × 16×16×3 bytes = 1.5 GB, more than the 2.0 MB of "
        "memory available on this machine now. Lower env.episode_length or env.render_size, or set "
        "reward.episode_end_batching=false."
    )
    big_videos = run_config(run_dir, 100)
    big_videos["logging"]["video_size"] = 4096
    with pytest.raises(ConfigError) as info:
        train(config_from_dict(big_videos), reward_fn=color_reward())
    episode = big_videos["env"]["episode_length"]
    assert str(info.value).startswith(
        f"logging.video_size=4096: a policy video's episode is kept until it is written: {episode} frames × "
        "4096×4096×3 bytes = "
    )
    assert str(info.value).endswith("Lower logging.video_size (null: the model's frames, as they are).")
    assert not run_dir.exists()
