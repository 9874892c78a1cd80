"""Weights & Biases tracking, in W&B's offline mode (no network): config, scalars, images, videos, resume."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vlmrm.config import config_from_dict, is_resume_safe
from vlmrm.errors import ConfigError
from vlmrm.reward.contract import FunctionReward
from vlmrm.training.trainer import resume, train

wandb = pytest.importorskip("wandb", reason="the tracking tests need the wandb package: pip install 'vlmrm[wandb]'")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:vlmrm. model:UserWarning")


def brightness(frames: Any) -> Any:
    return frames.mean(axis=(1, 2, 3)) / 255.0


def records(path: Path) -> Iterator[Any]:
    """The records of an offline W&B run file (``run-<id>.wandb``: W&B's LevelDB-style log of protobufs)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, block, pending = 7, 32 * 1024, b""
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if length == 0 and kind == 0:
            break
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def offline_run(wandb_dir: Path, run_id: str) -> dict[str, Any]:
    """What the offline runs with ``run_id`` recorded: run settings, config, history keys, summary keys."""
    wandb.teardown()  # run.finish() may return before W&B's service has written the last TensorBoard rows
    files = sorted(wandb_dir.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert files, f"no offline run {run_id} in {wandb_dir}"
    found: dict[str, Any] = {"sessions": len(files), "history": [], "summary": set(), "config": {}}
    for file in files:
        for record in records(file):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                found.update(project=record.run.project, group=record.run.run_group, tags=list(record.run.tags))
                found["name"] = record.run.display_name
                found["config"].update({item.key: json.loads(item.value_json) for item in record.run.config.update})
            elif kind == "history":
                found["history"].append({item.key or "/".join(item.nested_key) for item in record.history.item})
            elif kind == "summary":
                found["summary"] |= {item.key or item.nested_key[0] for item in record.summary.update}
    return found


def config(run_dir: Path, steps: int) -> dict[str, Any]:
    return {
        "env": {"name": "cartpole", "episode_length": 16, "render_size": 32},
        "rl": {"algorithm": "ppo", "total_steps": steps, "hyperparameters": {"n_steps": 16, "batch_size": 16}},
        "logging": {
            "run_dir": str(run_dir),
            "checkpoint_freq": 16,
            "eval_freq": 16,
            "video_freq": 32,
            "eval_episodes": 1,
            "progress_bar": False,
            "wandb": {"enabled": True, "mode": "offline", "project": "vlmrm-tests", "tags": ["sweep-7"], "group": "g"},
        },
    }


@pytest.mark.slow
def test_a_run_streams_its_config_logs_images_and_videos_and_resumes_its_wandb_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_dir = tmp_path / "run"
    reward = FunctionReward(brightness, image_size=32)
    train(config_from_dict(config(run_dir, 32)), reward_fn=reward)
    run_id = json.loads((run_dir / "logs" / "wandb.json").read_text())["id"]
    found = offline_run(tmp_path, run_id)
    assert (found["project"], found["group"], found["tags"], found["name"]) == ("vlmrm-tests", "g", ["sweep-7"], "run")
    # The resolved config: defaults filled in (render size, prompts, learning rate left to the algorithm).
    assert found["config"]["env"]["render_size"] == 32 and found["config"]["reward"]["target_prompts"]
    assert found["config"]["logging"]["run_dir"] == str(run_dir)
    keys = set().union(*found["history"])
    assert {"eval/env_return", "rollout/vlm_return", "global_step"} <= keys  # TensorBoard scalars
    assert {"inspect/extremes/filenames", "inspect/episode/filenames"} <= keys  # inspection images
    assert any(key.startswith("videos/policy") for key in keys)  # the final video
    assert {"eval_env_return", "total_steps"} <= found["summary"]

    # Resuming continues the same W&B run, and only what is new is logged again.
    resume(run_dir, ["rl.total_steps=48"], reward_fn=reward)
    assert json.loads((run_dir / "logs" / "wandb.json").read_text())["id"] == run_id
    again = offline_run(tmp_path, run_id)
    assert again["sessions"] == 2
    steps = [row for row in again["history"][len(found["history"]) :] if "eval/env_return" in row]
    assert steps  # the resumed session logged its own evaluations


def test_wandb_settings_are_checked_and_resume_safe() -> None:
    base = {"env": {"name": "cartpole"}, "rl": {"algorithm": "dqn", "total_steps": 10}}
    off = config_from_dict(base)
    assert off.logging.wandb.enabled is False and off.logging.inspect is True  # the defaults
    with pytest.raises(ConfigError, match=r"logging\.wandb\.tags: Input should be a valid list"):
        config_from_dict({**base, "logging": {"wandb": {"tags": "sweep-1"}}})
    with pytest.raises(ConfigError, match=r"logging\.wandb\.mode"):
        config_from_dict({**base, "logging": {"wandb": {"mode": "sometimes"}}})
    assert is_resume_safe("logging.wandb.tags") and is_resume_safe("logging.wandb.group")
    assert is_resume_safe("logging.inspect")


def test_tracking_off_writes_no_wandb_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    data = config(tmp_path / "run", 16)
    data["logging"]["wandb"] = {"tags": ["x"]}  # tags alone do not turn tracking on
    data["logging"]["inspect"] = False
    train(config_from_dict(data), reward_fn=FunctionReward(brightness, image_size=32))
    assert not (tmp_path / "wandb").exists() and not (tmp_path / "run" / "logs" / "wandb.json").exists()


def test_wandb_files_go_into_the_run_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not ``./wandb/``: the offline run lies in ``RUN/wandb/``, and TensorBoard still lists one run, by its name."""
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    data = config(tmp_path / "runs" / "run", 16)
    data["logging"].update(inspect=False, video_freq=0)
    train(config_from_dict(data), reward_fn=FunctionReward(brightness, image_size=32))
    run_id = json.loads((tmp_path / "runs" / "run" / "logs" / "wandb.json").read_text())["id"]
    assert offline_run(tmp_path / "runs" / "run", run_id)["sessions"] == 1
    assert not (tmp_path / "wandb").exists()
    # W&B keeps no copy of the events files in its own files: TensorBoard would list it as a second run.
    assert set(EventMultiplexer().AddRunsFromDirectory(str(tmp_path / "runs")).Runs()) == {"run"}


def test_wandb_dir_decides_where_wandb_writes_when_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vlmrm.training.tracking import wandb_root

    monkeypatch.delenv("WANDB_DIR", raising=False)
    assert wandb_root(tmp_path / "run") == str(tmp_path / "run")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))
    assert wandb_root(tmp_path / "run") is None  # W&B reads WANDB_DIR itself
