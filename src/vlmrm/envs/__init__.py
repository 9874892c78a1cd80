"""Environments that render square frames for vision-language reward models.

The registry (and Gymnasium with it) is imported on first use, so that ``vlmrm --help`` and
:mod:`vlmrm.envs.humanoid.tasks` stay free of simulator imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmrm._lazy import lazy_getattr

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


_EXPORTS = {
    "EnvSpec": "vlmrm.envs.spec",
    **{name: "vlmrm.envs.registry" for name in __all__ if name != "EnvSpec"},
}
__getattr__ = lazy_getattr(__name__, _EXPORTS)
