"""Sizes checked against the machine's memory before they are allocated, with the arithmetic in the message.

NumPy and the operating system commit memory lazily: a replay buffer or a frame store larger than
the machine is accepted, then fails (or the kernel kills the process) hours into a run. What a
command will hold is computed first and compared with the memory available now.

>>> format_bytes(24 * 10**9)
'24.0 GB'
>>> check_fits(1_000, "a small array", "make it smaller", available=10**6)
"""

from __future__ import annotations

import os
from pathlib import Path

from vlmrm.errors import ConfigError


def format_bytes(size: float) -> str:
    """``size`` bytes in decimal units (``'24.0 GB'``)."""
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def available_memory() -> int | None:
    """Bytes of memory a new allocation can have now (Linux's ``MemAvailable``), or ``None`` when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(need: int, arithmetic: str, fix: str, available: int | None = None) -> None:
    """Raise :class:`ConfigError` when ``need`` bytes exceed the memory available now.

    ``arithmetic`` says what takes the memory and how it adds up (``"2 envs × 1000000 frames × 64×64×3
    bytes"``); ``fix`` says what to change. ``available`` defaults to :func:`available_memory` (unknown:
    nothing is checked).
    """
    available = available_memory() if available is None else available
    if available is None or need <= available:
        return
    raise ConfigError(
        f"{arithmetic} = {format_bytes(need)}, more than the {format_bytes(available)} of memory available "
        f"on this machine now. {fix}"
    )
