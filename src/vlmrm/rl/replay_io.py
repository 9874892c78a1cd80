"""Replay buffers in checkpoints: only the transitions a buffer holds, streamed to and from one file.

stable-baselines3 preallocates a replay buffer's arrays for ``buffer_size`` transitions; pickling
the buffer writes them whole (5.66 GB for Humanoid's 1,000,000 float64 observations of 348
numbers, however few steps were taken). This module writes only the filled rows (positions
``[0, pos)``, or all of them once the buffer has wrapped) and reads them back into the arrays of
the buffer that the loaded model already allocated, so neither side makes a second copy.

The file, ``checkpoints/step_<N>.replay`` (version 1)::

    b"VLMRM-REPLAY\\n"         13 bytes, the magic string
    header length             8-byte little-endian unsigned integer
    header                    UTF-8 JSON object, that many bytes
    arrays                    one array per name in header["arrays"], in that order, each in
                              NumPy's .npy format (numpy.lib.format: its own magic, a header
                              giving dtype and shape, then the raw C-order bytes)

The JSON header::

    {"format": 1, "buffer": "ReplayBuffer" | "RelabelingReplayBuffer", "buffer_size": ..., "n_envs": ...,
     "optimize_memory_usage": ..., "pos": ..., "full": ..., "rows": R,
     "arrays": ["observations", "next_observations", "actions", "rewards", "dones", "timeouts", "extra.ready", ...],
     "extra": {...}}

Each array holds the first ``R`` rows (first-axis positions) of the buffer array of that name:
``R = pos`` before the buffer wraps, ``buffer_size`` after (``full``). With
``optimize_memory_usage`` there is no ``next_observations`` and ``observations`` holds one row
more (the next observation of the last transition). ``extra.<name>`` arrays and ``extra`` are
the state of a :class:`~vlmrm.rl.buffers.RelabelingReplayBuffer` beyond a ``ReplayBuffer``'s
(:meth:`~vlmrm.rl.buffers.RelabelingReplayBuffer.extra_state`). The SHA-256 of the file is
computed while it is written; checkpoints record it with the size (see :mod:`vlmrm.run.checkpoints`).

Only these two buffer classes are written this way (:func:`supports`); a subclass or another
kind (``DictReplayBuffer``, ``HerReplayBuffer``) may hold state this format does not know, so
checkpoints pickle those whole, as before.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.lib import format as npy
from stable_baselines3.common.buffers import ReplayBuffer

from vlmrm.rl.buffers import RelabelingReplayBuffer

MAGIC = b"VLMRM-REPLAY\n"
FORMAT = 1
_LENGTH = struct.Struct("<Q")
_EXTRA = "extra."
_READ_CHUNK = 64 << 20  # bytes per readinto call
_MAX_HEADER = 1 << 30  # the JSON header lists running episodes' positions, never more than the buffer holds


@dataclass(frozen=True)
class ReplayFileInfo:
    """What :func:`save_replay_buffer` wrote: the file's size and SHA-256, and the transitions it holds."""

    size: int
    sha256: str
    transitions: int


def supports(buffer: Any) -> bool:
    """Whether :func:`save_replay_buffer` knows all of ``buffer``'s state (exact classes, not subclasses)."""
    return type(buffer) in (ReplayBuffer, RelabelingReplayBuffer)


def save_replay_buffer(buffer: ReplayBuffer, path: Path) -> ReplayFileInfo:
    """Write the transitions ``buffer`` holds to ``path`` (format: see the module docstring).

    Streams each array to the file in chunks, hashing as it goes: memory use does not grow with
    the buffer. Not atomic by itself: checkpoints call it on a temporary file
    (:func:`~vlmrm.files.atomic_write`). A :class:`RelabelingReplayBuffer` first waits
    for the rewards still being computed, so the file holds every reward known so far.
    """
    if not supports(buffer):
        raise TypeError(f"cannot save a {type(buffer).__name__} in the vlmrm replay format; pickle it")
    extra_arrays, extra = buffer.extra_state() if isinstance(buffer, RelabelingReplayBuffer) else ({}, {})
    arrays = _arrays(buffer, extra_arrays)
    rows = _rows(buffer.pos, buffer.full, buffer.buffer_size)
    header = {
        "format": FORMAT,
        "buffer": type(buffer).__name__,
        "buffer_size": int(buffer.buffer_size),
        "n_envs": int(buffer.n_envs),
        "optimize_memory_usage": bool(buffer.optimize_memory_usage),
        "pos": int(buffer.pos),
        "full": bool(buffer.full),
        "rows": rows,
        "arrays": list(arrays),
        "extra": extra,
    }
    encoded = json.dumps(header, separators=(",", ":")).encode()
    with open(path, "wb") as handle:
        writer = _HashingWriter(handle)
        writer.write(MAGIC)
        writer.write(_LENGTH.pack(len(encoded)))
        writer.write(encoded)
        for name, array in arrays.items():
            npy.write_array(writer, array[: _array_rows(buffer, name, rows)], allow_pickle=False)
    return ReplayFileInfo(writer.size, writer.digest.hexdigest(), rows * int(buffer.n_envs))


def load_replay_buffer(buffer: ReplayBuffer, path: Path) -> int:
    """Read the file :func:`save_replay_buffer` wrote into ``buffer``; return the transitions restored.

    ``buffer`` must be of the saved class and configuration (size, envs, spaces), as the buffer of
    a model loaded from the same checkpoint is. Each array is read straight into the first rows of
    ``buffer``'s own array, then ``pos`` and ``full`` are set. Raises ``ValueError`` saying what
    does not match or where the file ends early; ``buffer``'s contents are then undefined.
    """
    if not supports(buffer):
        raise TypeError(f"cannot load the vlmrm replay format into a {type(buffer).__name__}")
    with open(path, "rb") as handle:
        header = _read_header(handle)
        _check_header(header, buffer)
        rows = _rows(header["pos"], header["full"], buffer.buffer_size)
        if header["rows"] != rows:
            raise ValueError(f"the header says {header['rows']} rows for pos={header['pos']}, full={header['full']}")
        extra_arrays = buffer.extra_state()[0] if isinstance(buffer, RelabelingReplayBuffer) else {}
        arrays = _arrays(buffer, extra_arrays)
        if header["arrays"] != list(arrays):
            raise ValueError(f"the file holds the arrays {header['arrays']}, this buffer has {list(arrays)}")
        for name, array in arrays.items():
            _read_array_into(handle, name, array[: _array_rows(buffer, name, rows)])
        if handle.read(1):
            raise ValueError("the file has bytes after its last array (not a vlmrm replay file?)")
    buffer.pos = int(header["pos"])
    buffer.full = bool(header["full"])
    if isinstance(buffer, RelabelingReplayBuffer):
        buffer.load_extra_state(header["extra"], rows)
    return rows * int(buffer.n_envs)


# -- the parts --------------------------------------------------------------------------------------------------


def _rows(pos: int, full: bool, buffer_size: int) -> int:
    return buffer_size if full else pos


def _array_rows(buffer: ReplayBuffer, name: str, rows: int) -> int:
    """With ``optimize_memory_usage`` the last transition's next observation is the row after it."""
    if name == "observations" and buffer.optimize_memory_usage and 0 < rows < buffer.buffer_size:
        return rows + 1
    return rows


def _arrays(buffer: ReplayBuffer, extra_arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The buffer's per-position arrays by name, in file order; all indexed by position on their first axis."""
    arrays = {"observations": buffer.observations}
    if not buffer.optimize_memory_usage:
        arrays["next_observations"] = buffer.next_observations
    arrays.update(actions=buffer.actions, rewards=buffer.rewards, dones=buffer.dones, timeouts=buffer.timeouts)
    arrays.update({_EXTRA + name: array for name, array in extra_arrays.items()})
    for name, array in arrays.items():
        if array.shape[:1] != (buffer.buffer_size,) or not array.flags.c_contiguous:
            raise ValueError(f"buffer array {name} of shape {array.shape} is not a C-contiguous per-position array")
    return arrays


class _HashingWriter:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, handle: BinaryIO):
        self.handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data)
        self.digest.update(view)
        self.handle.write(view)
        self.size += view.nbytes
        return view.nbytes


def _read_exactly(handle: BinaryIO, size: int, what: str) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise ValueError(f"the file ends inside {what} (truncated)")
    return data


def _read_header(handle: BinaryIO) -> dict[str, Any]:
    if handle.read(len(MAGIC)) != MAGIC:
        raise ValueError("it is not a vlmrm replay buffer file (wrong magic bytes)")
    (length,) = _LENGTH.unpack(_read_exactly(handle, _LENGTH.size, "the header length"))
    if length > _MAX_HEADER:
        raise ValueError(f"its header claims {length} bytes (corrupt)")
    try:
        header = json.loads(_read_exactly(handle, length, "the header"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"its header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else None
        raise ValueError(f"it has replay format {found!r}; this vlmrm reads format {FORMAT}")
    return header


def _check_header(header: dict[str, Any], buffer: ReplayBuffer) -> None:
    expected = {
        "buffer": type(buffer).__name__,
        "buffer_size": int(buffer.buffer_size),
        "n_envs": int(buffer.n_envs),
        "optimize_memory_usage": bool(buffer.optimize_memory_usage),
    }
    for key, value in expected.items():
        if header.get(key) != value:
            raise ValueError(f"it was saved from a buffer with {key}={header.get(key)!r}; this one has {value!r}")
    pos = header.get("pos")
    if not isinstance(pos, int) or not 0 <= pos < buffer.buffer_size or not isinstance(header.get("full"), bool):
        raise ValueError(f"its header has an impossible position (pos={pos!r}, full={header.get('full')!r})")


def _read_array_into(handle: io.BufferedIOBase, name: str, target: np.ndarray) -> None:
    """Read one .npy-format array from ``handle`` into ``target`` (same dtype and shape), without a copy."""
    try:
        version = npy.read_magic(handle)
        if version == (1, 0):
            shape, fortran_order, dtype = npy.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran_order, dtype = npy.read_array_header_2_0(handle)
        else:
            raise ValueError(f".npy version {version}")
    except ValueError as exc:
        raise ValueError(f"array {name}: its .npy header is unreadable or truncated ({exc})") from exc
    if fortran_order or dtype != target.dtype or tuple(shape) != target.shape:
        raise ValueError(
            f"array {name} is {dtype}{list(shape)}{' (Fortran order)' if fortran_order else ''}; "
            f"this buffer needs {target.dtype}{list(target.shape)}"
        )
    view = target.reshape(-1).view(np.uint8).data
    offset = 0
    while offset < view.nbytes:
        count = handle.readinto(view[offset : offset + _READ_CHUNK])
        if not count:
            raise ValueError(f"the file ends inside array {name} (truncated)")
        offset += count
