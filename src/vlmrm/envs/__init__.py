"""Environments that render square frames for vision-language reward models.

The registry (and Gymnasium with it) is imported on first use, so that ``vlmrm --help`` and
:mod:`vlmrm.envs.humanoid.tasks` stay free of simulator imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vlmrm.envs.registry import (
        ENV_REGISTRY,
        available_envs,
        get_env_spec,
        make_env,
        make_vector_env,
        register_env,
        vectorized_envs,
    )
    from vlmrm.envs.spec import EnvSpec

__all__ = [
    "ENV_REGISTRY",
    "EnvSpec",
    "available_envs",
    "get_env_spec",
    "make_env",
    "make_vector_env",
    "register_env",
    "vectorized_envs",
]


def __getattr__(name: str) -> Any:
    if name == "EnvSpec":
        return importlib.import_module("vlmrm.envs.spec").EnvSpec
    if name in __all__:
        return getattr(importlib.import_module("vlmrm.envs.registry"), name)
    raise AttributeError(f"module 'vlmrm.envs' has no attribute {name!r}")
