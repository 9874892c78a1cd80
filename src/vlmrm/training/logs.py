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

import numpy as np
from stable_baselines3.common.logger import CSVOutputFormat, KVWriter, Logger, TensorBoardOutputFormat, Video

from vlmrm.files import atomic_write, atomic_write_bytes
from vlmrm.run.checkpoints import unused_name

logger = logging.getLogger(__name__)

STEP_COLUMN = "step"


class AppendingCSVOutputFormat(CSVOutputFormat):
    """stable-baselines3's CSV log, but appending to an existing ``progress.csv`` and with a ``step`` column."""

    def __init__(self, filename: str | Path):
        path = Path(filename)
        # surrogateescape: bytes that are not UTF-8 (a damaged file) are read and written back as they are.
        if path.is_file() and path.stat().st_size > 0:
            with open(path, newline="", errors="surrogateescape") as handle:
                header = next(csv.reader(handle), [])
            self.file = open(path, "r+", errors="surrogateescape")  # noqa: SIM115 (closed by close())
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


class _ErrorKeepingFile:
    """The events file under TensorBoard's writer thread: an ``OSError`` (a full disk) is kept for the
    training thread to raise, instead of ending the writer thread with a traceback of its own."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.error: OSError | None = None

    def _call(self, method: str, *args: Any) -> None:
        if self.error is None:
            try:
                getattr(self.inner, method)(*args)
            except OSError as exc:
                self.error = exc

    def write(self, data: bytes) -> None:
        self._call("write", data)

    def flush(self) -> None:
        self._call("flush")

    def close(self) -> None:
        self._call("close")

    @property
    def closed(self) -> bool:
        return bool(self.inner.closed)


def gif_bytes(frames: np.ndarray, fps: float) -> bytes:
    """An animated GIF (looping) of ``(T, H, W, 3)`` uint8 frames, as TensorBoard shows a video.

    >>> gif_bytes(np.zeros((2, 4, 4, 3), dtype=np.uint8), fps=10)[:6]
    b'GIF89a'
    """
    from PIL import Image as PILImage

    images = [PILImage.fromarray(frame) for frame in frames]
    buffer = io.BytesIO()
    duration = max(20, round(1000 / fps))  # milliseconds per frame; browsers slow anything under 20 ms
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=duration, loop=0)
    return buffer.getvalue()


def video_frames(video: Video) -> np.ndarray:
    """The ``(T, H, W, 3)`` uint8 frames of stable-baselines3's :class:`Video` (``(1, T, C, H, W)`` or
    ``(T, C, H, W)``; floats in [0, 1] or uint8)."""
    frames = np.asarray(video.frames.detach().cpu() if hasattr(video.frames, "detach") else video.frames)
    if frames.ndim == 5:
        frames = frames[0]
    if frames.ndim != 4 or frames.shape[1] not in (1, 3):
        raise ValueError(f"a video's frames are (1, T, C, H, W) with C 1 or 3, not {tuple(frames.shape)}")
    frames = np.moveaxis(frames, 1, -1)
    if frames.dtype != np.uint8:
        frames = (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)
    return np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames


class EventsOutputFormat(TensorBoardOutputFormat):
    """stable-baselines3's TensorBoard output, whose write errors name the events file (and print no thread
    traceback).

    A :class:`~stable_baselines3.common.logger.Video` (``(1, T, C, H, W)`` frames) is written as an animated
    GIF image summary encoded with Pillow: TensorBoard's own ``add_video`` needs moviepy 1 (``moviepy.editor``),
    which vlmrm does not install, and without it writes an empty summary.
    """

    def __init__(self, folder: str):
        super().__init__(folder)
        self.path = Path(folder)
        self._file: _ErrorKeepingFile | None = None
        try:  # TensorBoard's internals: without them, errors are TensorBoard's own
            event_writer = self.writer._get_file_writer().event_writer
            records = event_writer._async_writer._writer  # the RecordWriter the writer thread writes through
            self.path = Path(event_writer._file_name)
            self._file = records._writer = _ErrorKeepingFile(records._writer)
        except AttributeError:
            logger.debug("vlmrm: TensorBoard's event writer has changed; its write errors are its own")

    def _raise_kept_error(self) -> None:
        error = self._file.error if self._file is not None else None
        if error is not None:
            raise OSError(error.errno, error.strerror or str(error), str(self.path)) from error

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        others = {key: value for key, value in key_values.items() if not isinstance(value, Video)}
        for key, value in key_values.items():
            if isinstance(value, Video) and "tensorboard" not in (key_excluded.get(key) or ()):
                self._write_video(key, value, step)
        excluded = {key: key_excluded.get(key, ()) for key in others}
        super().write(others, excluded, step)  # ends with a flush: the thread has written it all
        self._raise_kept_error()

    def _write_video(self, key: str, video: Video, step: int) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        frames = video_frames(video)
        _, height, width, channels = frames.shape
        image = Summary.Image(
            height=height, width=width, colorspace=channels, encoded_image_string=gif_bytes(frames, video.fps)
        )
        self.writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=key, image=image)]), step)

    def close(self) -> None:
        super().close()
        self._raise_kept_error()


def make_logger(logs_dir: Path, events_dir: Path | None = None) -> StepLogger:
    """``progress.csv`` (appended) in ``logs_dir`` and TensorBoard (a new events file) in ``events_dir``
    (default: ``logs_dir``; a run's is :attr:`vlmrm.run.run_dir.RunDir.events_dir`)."""
    events_dir = logs_dir if events_dir is None else events_dir
    logs_dir.mkdir(parents=True, exist_ok=True)
    events_dir.mkdir(parents=True, exist_ok=True)
    formats = [EventsOutputFormat(str(events_dir)), AppendingCSVOutputFormat(logs_dir / "progress.csv")]
    return StepLogger(folder=str(logs_dir), output_formats=formats)


def truncate_progress_csv(path: Path, step: int) -> int:
    """Drop the rows of ``progress.csv`` logged after ``step`` (and a half-written last line); return how many.

    The file is handled as bytes: a line that is not UTF-8 (a damaged disk block) is kept or dropped by its
    step like any other, never rewritten.
    """
    if not path.is_file():
        return 0
    lines = path.read_bytes().splitlines(keepends=True)
    if not lines:
        return 0
    header = next(csv.reader([lines[0].decode(errors="replace")]))
    if STEP_COLUMN not in header:
        logger.warning("vlmrm: %s has no %r column; its rows after step %d are kept", path, STEP_COLUMN, step)
        return 0
    column = header.index(STEP_COLUMN)
    kept = [lines[0] if lines[0].endswith(b"\n") else lines[0] + b"\n"]
    dropped = 0
    for line in lines[1:]:
        if not line.endswith(b"\n"):  # killed mid-line
            dropped += 1
            continue
        row = next(csv.reader([line.decode(errors="replace")]), [])
        try:
            row_step = float(row[column])
        except (IndexError, ValueError):
            row_step = float("inf")
        if row_step <= step:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        atomic_write_bytes(path, b"".join(kept))
    return dropped


_HEADER = 12  # uint64 length, uint32 masked CRC of the length
_FOOTER = 4  # uint32 masked CRC of the data


def _record_at(data: bytes, offset: int) -> bytes | None:
    """The TFRecord starting at ``offset`` when its length and data pass their CRCs, else ``None``."""
    from tensorboard.summary.writer.record_writer import masked_crc32c

    if offset + _HEADER > len(data):
        return None
    header = data[offset : offset + 8]
    (length,) = struct.unpack("<Q", header)
    end = offset + _HEADER + length + _FOOTER
    if end > len(data):  # what most bytes read as a length give: ruled out before any CRC
        return None
    (header_crc,) = struct.unpack("<I", data[offset + 8 : offset + _HEADER])
    if header_crc != masked_crc32c(header):
        return None
    record = data[offset + _HEADER : end - _FOOTER]
    (record_crc,) = struct.unpack("<I", data[end - _FOOTER : end])
    return record if record_crc == masked_crc32c(record) else None


def _records(data: bytes) -> tuple[list[bytes], list[tuple[int, int]]]:
    """The sound records of a TFRecord file's bytes, and the ``(start, end)`` byte ranges that are not records.

    Past a damaged record, reading resumes at the next offset where a sound record starts: one bad byte
    costs the record that holds it, not the rest of the file.
    """
    records: list[bytes] = []
    unreadable: list[tuple[int, int]] = []
    offset = 0
    while offset < len(data):
        record = _record_at(data, offset)
        if record is not None:
            records.append(record)
            offset += _HEADER + len(record) + _FOOTER
            continue
        start = offset
        offset += 1
        while offset < len(data) and _record_at(data, offset) is None:
            offset += 1
        unreadable.append((start, offset))
    return records, unreadable


def _torn_tail(data: bytes, unreadable: list[tuple[int, int]]) -> bool:
    """Whether the only unreadable bytes are a last record cut short by a kill (its length itself is sound)."""
    if len(unreadable) != 1 or unreadable[0][1] != len(data):
        return False
    start = unreadable[0][0]
    if len(data) - start < _HEADER:
        return True
    from tensorboard.summary.writer.record_writer import masked_crc32c

    header = data[start : start + 8]
    (length,) = struct.unpack("<Q", header)
    (header_crc,) = struct.unpack("<I", data[start + 8 : start + _HEADER])
    return header_crc == masked_crc32c(header) and start + _HEADER + length + _FOOTER > len(data)


def damaged_copy_path(events_file: Path) -> Path:
    """Where the original of a damaged events file is kept: beside it, under a name TensorBoard does not read
    (it reads every file whose name holds ``tfevents``)."""
    return events_file.with_name(events_file.name.replace("tfevents", "damaged"))


def _event_step(record: bytes) -> int | None:
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
    from tensorboard.compat.proto.event_pb2 import Event

    try:
        return int(Event.FromString(record).step)
    except DecodeError:  # its CRCs pass but it is no event: not ours to judge
        return None


def truncate_event_files(logs_dir: Path, step: int) -> int:
    """Drop the TensorBoard events logged after ``step`` from the events files in ``logs_dir``; return how many.

    Every sound record up to ``step`` is kept, also past a damaged one. A file with damaged bytes other
    than a last record cut short by a kill is first copied whole to :func:`damaged_copy_path`.
    """
    from tensorboard.summary.writer.record_writer import RecordWriter

    dropped = 0
    for path in sorted(logs_dir.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        records, unreadable = _records(data)
        kept = [record for record in records if (_event_step(record) or 0) <= step]
        if len(kept) == len(records) and not unreadable:
            continue
        dropped += len(records) - len(kept)
        if unreadable and not _torn_tail(data, unreadable):
            copy = unused_name(damaged_copy_path(path))
            atomic_write_bytes(copy, data)
            logger.warning(
                "vlmrm: %s has %d unreadable bytes in %d places; its %d sound records are kept, and the whole "
                "file as it was in %s",
                path, sum(end - begin for begin, end in unreadable), len(unreadable), len(records), copy.name,
            )  # fmt: skip

        def rewrite(tmp: Path, kept: list[bytes] = kept) -> None:
            with open(tmp, "wb") as handle:
                writer = RecordWriter(handle)
                for record in kept:
                    writer.write(record)

        atomic_write(path, rewrite)
    return dropped


def truncate_logs(logs_dir: Path, step: int, events_dir: Path | None = None) -> None:
    """Remove what the interrupted process logged after ``step`` (see the module docstring): ``progress.csv`` in
    ``logs_dir``, the events files in ``events_dir`` (default: ``logs_dir``)."""
    rows = truncate_progress_csv(logs_dir / "progress.csv", step)
    events = truncate_event_files(logs_dir if events_dir is None else events_dir, step)
    if rows or events:
        logger.info(
            "vlmrm: removed %d progress.csv rows and %d TensorBoard events logged after step %d "
            "(that training is done again)",
            rows,
            events,
            step,
        )
