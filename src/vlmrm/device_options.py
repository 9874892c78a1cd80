"""What a user may write for the reward model's device and dtype, in the words every help text uses.

:mod:`vlmrm.reward.devices` implements these rules; the CLI help, the config schema and the error
messages quote them from here. This module imports nothing heavy, so ``vlmrm --help`` stays
instant (anything under ``vlmrm.reward`` imports torch).
"""

from __future__ import annotations

DTYPE_CHOICES: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16", "int8")
"""The dtype names the CLI and configs accept."""

AUTO_DTYPE_RULE = (
    "auto: fp16 on CUDA; on a CPU, bf16 where timing the loaded model on one small batch (about a second) finds "
    "it at least 1.1 times as fast as fp32, else fp32, remembered per CPU model, torch version and architecture in "
    "the cache folder (VLMRM_CACHE_DIR, default $XDG_CACHE_HOME/vlmrm) so later runs do not time it again"
)
"""What ``dtype="auto"`` picks (:mod:`vlmrm.reward.dtype_choice`); quoted in help texts."""

INT8_RULE = (
    "int8: the linear layers of both towers quantised to int8 on the fly (torch dynamic quantisation), CPUs only, "
    "accepted where the same timing finds it at least 1.1 times as fast as fp32; rewards differ slightly from fp32"
)
"""What ``dtype="int8"`` means and where it is accepted (:mod:`vlmrm.reward.dtype_choice`)."""

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
"""The device names the CLI and configs accept (``auto``: CUDA when available, else the CPU)."""

COMPILE_CHOICES: tuple[str, ...] = ("none", "compile", "cuda-graphs")
"""The ``reward.compile`` values the CLI and configs accept (:data:`vlmrm.config.CompileMode`)."""

COMPILE_RULE = (
    "none: eager; compile: the image tower through torch.compile for one batch shape, every call padded to the batch "
    "size, compiled when the model loads; cuda-graphs: that, replayed as CUDA graphs (CUDA only)"
)
"""What each ``reward.compile`` value means (:mod:`vlmrm.reward.compiled`); quoted in help texts."""
