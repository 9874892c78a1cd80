"""``reward.compile``: the image tower's forward through ``torch.compile``, for one fixed batch shape.

Modes (:data:`vlmrm.config.CompileMode`):

``none``
    The encoder's ``encode_images`` as it is (eager PyTorch). The default: compiling costs seconds (a
    tiny model on a CPU) to minutes (a ViT-L with autotuning), paid when the model loads.
``compile``
    Inductor-compiled (:func:`torch_compile_mode`): elementwise work fused into a few kernels, and on
    CUDA the matrix products autotuned. No CUDA graphs, so the compiled forward may run on any thread
    and any CUDA stream (the background scorer's, :mod:`vlmrm.rl.streams`).
``cuda-graphs``
    ``compile`` plus replaying the forward as a CUDA graph (``mode="reduce-overhead"``): one launch
    instead of hundreds of kernel launches, which is what bounds a small model or a small batch on a
    fast GPU. CUDA only; see :class:`CompiledImageForward` for the threading rule.

Fixed shapes: every call is padded with zero images to ``batch_size`` (:class:`~vlmrm.reward.VLMReward`
calls with at most that many), compiled with ``dynamic=False``, and the embeddings of the padding are
dropped. One batch shape means one compiled graph (and one CUDA graph), so no call ever recompiles; the
price is that a call of ``n`` frames costs as much as one of ``batch_size``: set ``reward.batch_size``
to the frames a call usually carries (episode-end batching fills whole batches; per-step scoring sends
``n_envs`` frames per call).
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from typing import Any

import torch

from vlmrm.config import CompileMode, compile_problem
from vlmrm.errors import ConfigError, ModelLoadError
from vlmrm.reward.encoders import ImageTextEncoder

logger = logging.getLogger(__name__)

TORCH_COMPILE_MODES: dict[tuple[str, str], str | None] = {
    ("compile", "cuda"): "max-autotune-no-cudagraphs",
    ("compile", "cpu"): None,
    ("cuda-graphs", "cuda"): "reduce-overhead",
}
"""``torch.compile``'s ``mode`` for each (``reward.compile``, device type); other device types use the CPU's.

- ``compile`` on CUDA: ``max-autotune-no-cudagraphs``. The batch shape is fixed, so the autotuning (Triton
  templates against cuBLAS for each matrix product, fused epilogues) happens once, when the model loads,
  and pays on every call after; no CUDA graphs, so nothing is captured and any thread may call.
- ``compile`` on a CPU: torch's default mode. Inductor's fusion and its C++/OpenMP kernels are the gain;
  ``max-autotune`` on a CPU only adds timing C++ GEMM templates against oneDNN, which doubled the compile
  time of a ViT-B/32 for no measured gain (docs/benchmark.md).
- ``cuda-graphs``: ``reduce-overhead``, Inductor's CUDA-graph trees.
"""


def torch_compile_mode(mode: CompileMode, device: torch.device) -> str | None:
    """``torch.compile``'s ``mode`` for ``reward.compile: mode`` on ``device`` (``None``: torch's default)."""
    kind = "cuda" if device.type == "cuda" else "cpu"
    return TORCH_COMPILE_MODES[(mode, kind)]


class CompiledImageForward:
    """``encoder.encode_images`` compiled for batches of exactly ``batch_size`` images, called with at most that many.

    Calls pad to ``batch_size`` with zero images and return the embeddings of the images given (the
    padding never mixes with them: every image goes through the tower on its own). The compiled graph is
    built, and run once, in the constructor: a model that cannot be compiled fails there, as a
    :class:`~vlmrm.errors.ModelLoadError`, before any training step.

    **Threads and CUDA graphs, the rule** (that of :data:`vlmrm.envs.vector.raster.CAPTURE_ERROR_MODE`:
    *capture in thread-local mode, and capture up front*):

    - Up front: dynamo and Inductor (seconds to minutes) run here, on the constructing thread, when the
      reward loads; with ``cuda-graphs`` the constructor also runs the forward three times (torch's graph
      trees warm up, capture, replay), so the capture happens here too, before training starts a renderer
      capture or a scorer thread. torch binds the graph to the graph-tree manager of the thread that first
      ran it (this one), so later calls from any thread, the background scorer of
      ``reward.overlap_scoring`` on its own CUDA stream included, replay it: the hot path never compiles
      (one batch shape) and never captures.
    - Thread-local: torch's graph trees capture with ``capture_error_mode="thread_local"``, the mode of the
      renderers' captures, so a capture here restricts only this thread. Never capture in ``global`` mode
      anywhere in vlmrm: a ``.cpu()`` in another thread would break it.
    - Calls take turns: one graph has one set of static inputs and outputs, so a lock lets one thread at a
      time replay it (an evaluation scoring in the stepping thread while the scorer thread scores waits).
      Each call marks a new step (``torch.compiler.cudagraph_mark_step_begin``) and returns a copy, since
      the next replay overwrites the graph's output.
    """

    def __init__(self, encoder: ImageTextEncoder, batch_size: int, mode: CompileMode):
        if mode == "none":
            raise ValueError("CompiledImageForward compiles; call encoder.encode_images for reward.compile: none")
        problem = compile_problem(mode, encoder.name, str(encoder.device))
        if problem is not None:
            raise ConfigError(problem)
        self.encoder = encoder
        self.batch_size = batch_size
        self.mode = mode
        self.torch_mode = torch_compile_mode(mode, encoder.device)
        self.cuda_graphs = mode == "cuda-graphs"
        self._replay_lock = threading.Lock()
        # encode_images without its inference_mode decorator: dynamo cannot trace into inference mode
        # ("Cannot set version_counter for inference tensor"); callers run it under inference mode instead.
        forward = functools.partial(inspect.unwrap(type(encoder).encode_images), encoder)
        self._compiled: Any = torch.compile(forward, mode=self.torch_mode, dynamic=False)
        self._warm_up()

    def _warm_up(self) -> None:
        size = self.encoder.image_spec.size
        logger.info(
            "vlmrm: compiling %s's image tower (reward.compile: %s, torch.compile mode %s, batch %d)",
            self.encoder.name,
            self.mode,
            self.torch_mode or "default",
            self.batch_size,
        )
        try:
            with torch.inference_mode():  # an inference tensor, as every later call's: the guards check it
                pixels = torch.zeros(
                    (self.batch_size, 3, size, size), device=self.encoder.device, dtype=self.encoder.dtype
                )
                for _ in range(3 if self.cuda_graphs else 1):  # graph trees: warm up, record, replay
                    self(pixels)
        except Exception as exc:  # dynamo and Inductor raise many kinds; each means "this model does not compile"
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(
                f"reward.compile: {self.mode}: torch.compile failed on {self.encoder.name!r} "
                f"({type(exc).__name__}: {reason}); set reward.compile: none."
            ) from exc

    def __call__(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(N, 3, S, S)`` preprocessed images, ``N <= batch_size`` -> ``(N, D)`` embeddings (call under
        ``torch.inference_mode``)."""
        count = pixel_values.shape[0]
        if count > self.batch_size:
            raise ValueError(f"{count} images in one call; the compiled forward takes at most {self.batch_size}")
        # Strides, and whether a tensor is an inference tensor, are part of the compiled graph's guards.
        batch = pixel_values.contiguous() if pixel_values.is_inference() else pixel_values.clone()
        if count < self.batch_size:
            batch = torch.cat([batch, batch.new_zeros((self.batch_size - count, *batch.shape[1:]))])
        if not self.cuda_graphs:
            return self._compiled(batch)[:count]
        with self._replay_lock:
            torch.compiler.cudagraph_mark_step_begin()
            return self._compiled(batch)[:count].clone()


__all__ = ["TORCH_COMPILE_MODES", "CompiledImageForward", "torch_compile_mode"]
