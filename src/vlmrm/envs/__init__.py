"""Environments that render square frames for vision-language reward models."""

from vlmrm.envs.registry import ENV_REGISTRY, EnvSpec, available_envs, get_env_spec, make_env, register_env

__all__ = ["ENV_REGISTRY", "EnvSpec", "available_envs", "get_env_spec", "make_env", "register_env"]
