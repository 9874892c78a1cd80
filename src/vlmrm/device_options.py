"""What a user may write for the reward model's device and dtype, in the words every help text uses.

:mod:`vlmrm.reward.devices` implements these rules; the CLI help, the config schema and the error
messages quote them from here. This module imports nothing heavy, so ``vlmrm --help`` stays
instant (anything under ``vlmrm.reward`` imports torch).
"""

from __future__ import annotations

DTYPE_CHOICES: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
"""The dtype names the CLI and configs accept."""

AUTO_DTYPE_RULE = "auto: fp16 on CUDA, bf16 on CPUs with AMX (Intel Xeon 4th generation or newer), else fp32"
"""What ``dtype="auto"`` picks (:func:`vlmrm.reward.devices.resolve_dtype`); quoted in help texts."""

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
"""The device names the CLI and configs accept (``auto``: CUDA when available, else the CPU)."""
