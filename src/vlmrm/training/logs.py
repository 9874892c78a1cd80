"""The run's logs: TensorBoard and ``progress.csv``, one row per step, cut back when a run resumes.

:class:`StepLogger` is stable-baselines3's :class:`~stable_baselines3.common.logger.Logger` with one
change: dumps at the same step are merged into one row. stable-baselines3 dumps its own values
at the end of an env step, and an evaluation (a callback) may dump at the same step just before;
without merging, a tag such as ``rollout/exploration_rate`` would be logged twice at one step. A
dumped row is therefore *held* until a dump at another step arrives, :meth:`StepLogger.release_before`
is called with a later step (the trainer does so at every step), or the logger closes.

Resuming: values the interrupted process logged *after* the checkpoint's step describe training
that the resumed run does again, so they are removed first (:func:`truncate_logs`): rows of
``progress.csv`` whose ``step`` is larger, and events of the existing TensorBoard files whose step
is larger. The checkpoint carries what was held or recorded but not yet written at its step
(:meth:`StepLogger.state_dict`), so the checkpoint step's own row is cut too and written again,
whole, by the resumed process. For every tag, the steps of the whole run are strictly increasing:
no step twice (no overlap), and logging continues right after the checkpoint step (no gap).
"""

from __future__ import annotations

import csv
import io
import logging
import numbers
import struct
from pathlib import Path
from typing import Any

from stable_baselines3.common.logger import CSVOutputFormat, KVWriter, Logger, TensorBoardOutputFormat

from vlmrm.files import atomic_write, atomic_write_bytes

logger = logging.getLogger(__name__)

STEP_COLUMN = "step"


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


class StepLogger(Logger):
    """A stable-baselines3 logger that writes one row per step (see the module docstring)."""

    def __init__(self, folder: str | None, output_formats: list[KVWriter]):
        super().__init__(folder, output_formats)
        self._held: tuple[int, dict[str, Any], dict[str, tuple[str, ...]]] | None = None

    def dump(self, step: int = 0) -> None:
        values, excluded = dict(self.name_to_value), dict(self.name_to_excluded)
        self.name_to_value.clear()
        self.name_to_count.clear()
        self.name_to_excluded.clear()
        if self._held is not None and self._held[0] == step:
            self._held[1].update(values)
            self._held[2].update(excluded)
            return
        self._write_held()
        self._held = (step, values, excluded)

    def release_before(self, step: int) -> None:
        """Write the held row if it is of a step before ``step`` (nothing can be logged at its step any more)."""
        if self._held is not None and self._held[0] < step:
            self._write_held()

    def _write_held(self) -> None:
        if self._held is None:
            return
        step, values, excluded = self._held
        self._held = None
        for output in self.output_formats:
            output.write(values, excluded, step)

    def close(self) -> None:
        self._write_held()
        super().close()

    def state_dict(self) -> dict[str, Any]:
        """What is held or recorded but not written yet (numbers only: images are not carried): a checkpoint
        carries it."""

        def numbers_of(values: dict[str, Any]) -> dict[str, Any]:
            return {key: value for key, value in values.items() if isinstance(value, numbers.Number)}

        def excluded_of(values: dict[str, Any], excluded: dict[str, Any]) -> dict[str, Any]:
            # Only for the values kept: TensorBoard's writer pairs each value with its exclusions.
            return {key: value for key, value in excluded.items() if key in values}

        held = None
        if self._held is not None:
            kept = numbers_of(self._held[1])
            held = [self._held[0], kept, excluded_of(kept, self._held[2])]
        values = numbers_of(self.name_to_value)
        return {
            "held": held,
            "values": values,
            "counts": {key: count for key, count in self.name_to_count.items() if key in values},
            "excluded": excluded_of(values, self.name_to_excluded),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Hold and record again what :meth:`state_dict` captured."""
        held = state.get("held")
        self._held = None if held is None else (int(held[0]), dict(held[1]), dict(held[2]))
        self.name_to_value.update(state.get("values", {}))
        self.name_to_count.update(state.get("counts", {}))
        self.name_to_excluded.update(state.get("excluded", {}))


def make_logger(logs_dir: Path) -> StepLogger:
    """TensorBoard (a new events file) and ``progress.csv`` (appended) in ``logs_dir``."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    formats = [TensorBoardOutputFormat(str(logs_dir)), AppendingCSVOutputFormat(logs_dir / "progress.csv")]
    return StepLogger(folder=str(logs_dir), output_formats=formats)


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
