"""The one way a vlmrm package loads its public names on first use (importing torch takes seconds)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``name`` is imported from the module ``exports[name]`` when first
    asked for (``__getattr__ = lazy_getattr(__name__, _EXPORTS)``; list the names under ``TYPE_CHECKING`` too)."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
