"""Continuing an interrupted run: its config, its RNG states, its replay buffer and its logs.

``vlmrm train --resume RUN_DIR`` reads ``RUN_DIR/config.yaml`` (``--set`` may change only the
fields in :data:`RESUME_SAFE_FIELDS`), loads the newest sound checkpoint and continues at its step.

Logs: values the interrupted process logged *after* that checkpoint's step describe training
that the resumed run does again, so they are removed first: rows of ``logs/progress.csv`` whose
``step`` is larger, and events of the existing TensorBoard files whose step is larger. The resumed
process then appends to ``progress.csv`` and writes a new events file in ``logs/``. For every
tag, the steps of the whole run are strictly increasing: no step twice (no overlap), and logging
continues right after the checkpoint step (no gap).
"""

from __future__ import annotations

import csv
import io
import logging
import random
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.logger import CSVOutputFormat, Logger, TensorBoardOutputFormat

from vlmrm.config import TrainConfig, apply_overrides, config_from_dict, read_yaml
from vlmrm.errors import ConfigError, RunDirectoryError
from vlmrm.rl.buffers import RelabelingReplayBuffer
from vlmrm.rl.checkpoints import atomic_write, atomic_write_bytes

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
STEP_COLUMN = "step"

# Fields --set may change when resuming: budgets, logging and how (not what) rewards are computed.
RESUME_SAFE_FIELDS: tuple[str, ...] = (
    "rl.total_steps",
    "rl.vec_env",
    "reward.batch_size",
    "reward.device",
    "reward.overlap_scoring",
    "reward.backend",
    "reward.num_workers",
    "reward.cpus_per_worker",
    "reward.ray_address",
    "logging.*",
)


def _is_safe(field: str) -> bool:
    if field == "logging.run_dir":
        return False
    return any(field == safe or (safe.endswith(".*") and field.startswith(safe[:-1])) for safe in RESUME_SAFE_FIELDS)


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    return {f"{section}.{name}": value for section, values in data.items() for name, value in values.items()}


def check_resume_changes(before: dict[str, Any], after: TrainConfig, origin: str) -> None:
    """Refuse changes to anything the checkpoint was trained with (env, reward, algorithm, ...)."""
    old = _fields(before)
    new = _fields(after.model_dump(mode="json"))
    problems = []
    for name in sorted(old.keys() & new.keys()):  # a field only one version of vlmrm knows cannot be compared
        if name == "logging.run_dir" or _is_safe(name) or old[name] == new[name]:
            continue
        problems.append(f"  {name}: {old[name]!r} in {origin}, {new[name]!r} requested.")
    if problems:
        allowed = ", ".join(RESUME_SAFE_FIELDS)
        raise ConfigError(
            "--resume cannot change what the checkpoint was trained with:\n"
            + "\n".join(problems)
            + f"\nWhen resuming, --set may change only: {allowed}. To change anything else, start a new run."
        )


def load_run_config(run_dir: Path, overrides: list[str] | None = None) -> TrainConfig:
    """The config of the run in ``run_dir`` with the (safe) ``overrides`` applied."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirectoryError(f"Cannot resume: run directory {str(run_dir)!r} does not exist.")
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise RunDirectoryError(
            f"Cannot resume: {str(run_dir)!r} is not a vlmrm run directory (it has no {CONFIG_FILE})."
        )
    stored = read_yaml(path)
    for text in overrides or []:
        if text.split("=", 1)[0].strip() == "logging.run_dir":
            raise ConfigError(
                f"--set {text!r}: a resumed run continues in {str(run_dir)!r}; to continue elsewhere, "
                "copy the run directory and resume the copy."
            )
    source = f"config {str(path)!r}" + (" with --set overrides" if overrides else "")
    stored_config = config_from_dict(dict(stored), source=f"config {str(path)!r}")
    data = apply_overrides(stored_config.model_dump(mode="json"), list(overrides or []))
    config = config_from_dict(data, source=source)
    check_resume_changes(stored_config.model_dump(mode="json"), config, str(path))
    config.logging.run_dir = str(run_dir)
    return config


# -- RNG states ---------------------------------------------------------------------------------------------


def capture_rng(model: Any = None) -> dict[str, Any]:
    """Python, NumPy and torch RNG states, and that of the algorithm's action space (random actions)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
    space_rng = getattr(getattr(model, "action_space", None), "np_random", None)
    if space_rng is not None:
        state["action_space"] = space_rng.bit_generator.state
    return state


def restore_rng(state: dict[str, Any], model: Any = None) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    cuda = state.get("torch_cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    space_rng = getattr(getattr(model, "action_space", None), "np_random", None)
    if space_rng is not None and "action_space" in state:
        try:
            space_rng.bit_generator.state = state["action_space"]
        except (TypeError, ValueError):  # another bit generator: keep the fresh one
            logger.debug("vlmrm: action space RNG state not restored")


# -- the replay buffer ---------------------------------------------------------------------------------------


def drop_unfinished_episodes(buffer: Any) -> int:
    """Forget the transitions of episodes running at the checkpoint (see
    :meth:`RelabelingReplayBuffer.drop_unfinished_episodes`); other buffers have none to forget."""
    return buffer.drop_unfinished_episodes() if isinstance(buffer, RelabelingReplayBuffer) else 0


def close_last_transitions(buffer: Any) -> None:
    """With ``optimize_memory_usage`` the next observation is the next slot's: end the stored trajectory."""
    if getattr(buffer, "optimize_memory_usage", False) and (buffer.full or buffer.pos > 0):
        buffer.dones[(buffer.pos - 1) % buffer.buffer_size] = True


# -- logs ----------------------------------------------------------------------------------------------------


class AppendingCSVOutputFormat(CSVOutputFormat):
    """stable-baselines3's CSV log, but appending to an existing ``progress.csv`` and with a ``step`` column."""

    def __init__(self, filename: str | Path):
        path = Path(filename)
        if path.is_file() and path.stat().st_size > 0:
            with open(path, newline="") as handle:
                header = next(csv.reader(handle), [])
            self.file = open(path, "r+")  # noqa: SIM115 (closed by close())
            self.file.seek(0, io.SEEK_END)
            self.keys = list(header)
        else:
            self.file = open(path, "w+")  # noqa: SIM115
            self.keys = []
        self.separator = ","
        self.quotechar = '"'

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        super().write({STEP_COLUMN: step, **key_values}, key_excluded, step)


def make_logger(logs_dir: Path) -> Logger:
    """TensorBoard (a new events file) and ``progress.csv`` (appended) in ``logs_dir``."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    formats = [TensorBoardOutputFormat(str(logs_dir)), AppendingCSVOutputFormat(logs_dir / "progress.csv")]
    return Logger(folder=str(logs_dir), output_formats=formats)


def truncate_progress_csv(path: Path, step: int) -> int:
    """Drop the rows of ``progress.csv`` logged after ``step`` (and a half-written last line); return how many."""
    if not path.is_file():
        return 0
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    if not lines:
        return 0
    header = next(csv.reader([lines[0]]))
    if STEP_COLUMN not in header:
        logger.warning("vlmrm: %s has no %r column; its rows after step %d are kept", path, STEP_COLUMN, step)
        return 0
    column = header.index(STEP_COLUMN)
    kept = [lines[0] if lines[0].endswith("\n") else lines[0] + "\n"]
    dropped = 0
    for line in lines[1:]:
        if not line.endswith("\n"):  # killed mid-line
            dropped += 1
            continue
        row = next(csv.reader([line]), [])
        try:
            row_step = float(row[column])
        except (IndexError, ValueError):
            row_step = float("inf")
        if row_step <= step:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        atomic_write_bytes(path, "".join(kept).encode())
    return dropped


def _records(path: Path) -> list[bytes]:
    """The records of a TFRecord file, stopping at a truncated or corrupt one (a write cut short)."""
    from tensorboard.summary.writer.record_writer import masked_crc32c

    records = []
    data = path.read_bytes()
    offset = 0
    while offset + 12 <= len(data):
        header = data[offset : offset + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[offset + 8 : offset + 12])
        end = offset + 12 + length + 4
        if header_crc != masked_crc32c(header) or end > len(data):
            break
        record = data[offset + 12 : offset + 12 + length]
        (record_crc,) = struct.unpack("<I", data[end - 4 : end])
        if record_crc != masked_crc32c(record):
            break
        records.append(record)
        offset = end
    return records


def truncate_event_files(logs_dir: Path, step: int) -> int:
    """Drop the TensorBoard events logged after ``step`` from the events files in ``logs_dir``; return how many."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    dropped = 0
    for path in sorted(logs_dir.glob("events.out.tfevents.*")):
        records = _records(path)
        kept = [record for record in records if Event.FromString(record).step <= step]
        complete = sum(12 + len(r) + 4 for r in records) == path.stat().st_size
        if len(kept) == len(records) and complete:
            continue
        dropped += len(records) - len(kept)

        def rewrite(tmp: Path, kept: list[bytes] = kept) -> None:
            with open(tmp, "wb") as handle:
                writer = RecordWriter(handle)
                for record in kept:
                    writer.write(record)

        atomic_write(path, rewrite)
    return dropped


def truncate_logs(logs_dir: Path, step: int) -> None:
    """Remove what the interrupted process logged after ``step`` (see the module docstring)."""
    rows = truncate_progress_csv(logs_dir / "progress.csv", step)
    events = truncate_event_files(logs_dir, step)
    if rows or events:
        logger.info(
            "vlmrm: removed %d progress.csv rows and %d TensorBoard events logged after step %d "
            "(that training is done again)",
            rows,
            events,
            step,
        )
