"""Frames drawn on one CUDA stream, scored on another: the background scorer's own stream.

The batched envs draw each step's frames on the stepping thread's current stream. The overlapped scorer
(:class:`~vlmrm.rl.vec_env.BackgroundScorer`) scores finished episodes from its own thread; on the same
stream its model kernels would queue behind the next steps' drawing, and its host copy of the rewards would
wait for all of it. So it scores on a stream of its own, ordered after the frames it reads by an event
recorded where the frames were made (no device-wide synchronisation), and tells the caching allocator that
the frames are in use there (``record_stream``), so their memory is not reused while it reads them.

Off CUDA (host arrays, CPU tensors) every function here does nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch


def _cuda_device(frames: Sequence[Any]) -> torch.device | None:
    first = frames[0] if len(frames) else None
    return first.device if isinstance(first, torch.Tensor) and first.is_cuda else None


def frames_ready(frames: Sequence[Any]) -> torch.cuda.Event | None:
    """An event recorded on the current stream after the work that made ``frames`` (CUDA tensors); ``None``
    for host frames. Call it on the thread that made them, when handing them over."""
    device = _cuda_device(frames)
    if device is None:
        return None
    event = torch.cuda.Event()
    event.record(torch.cuda.current_stream(device))
    return event


class ScoringStream:
    """The scorer thread's CUDA stream (one per device, made on first use)."""

    def __init__(self) -> None:
        self._streams: dict[torch.device, torch.cuda.Stream] = {}

    @contextlib.contextmanager
    def reading(self, frames: Sequence[Any], ready: Sequence[torch.cuda.Event | None]) -> Iterator[None]:
        """Run the body on the scorer's stream, after the events ``ready`` and with ``frames`` marked as in use
        there; a plain block for host frames."""
        device = _cuda_device(frames)
        if device is None:
            yield
            return
        stream = self._streams.get(device)
        if stream is None:
            stream = self._streams[device] = torch.cuda.Stream(device)
        for event in ready:
            if event is not None:
                stream.wait_event(event)
        marked = set()
        for frame in frames:  # frames of one step share a storage: mark each storage once
            storage = frame.untyped_storage().data_ptr()
            if storage not in marked:
                marked.add(storage)
                frame.record_stream(stream)
        with torch.cuda.stream(stream):
            yield
