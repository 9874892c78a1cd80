"""Vision-language reward models: encoders, preprocessing, and :class:`VLMReward`."""

from vlmrm.reward.contract import FunctionReward, RewardFunction, as_reward_function
from vlmrm.reward.encoders import (
    ImageTextEncoder,
    OpenCLIPEncoder,
    TransformersEncoder,
    encoder_backends,
    load_encoder,
    register_encoder,
)
from vlmrm.reward.preprocessing import FramePreprocessor, ImageSpec
from vlmrm.reward.projection import goal_baseline_projection, mean_direction, normalize, projected_reward
from vlmrm.reward.vlm_reward import VLMReward

__all__ = [
    "FramePreprocessor",
    "FunctionReward",
    "ImageSpec",
    "ImageTextEncoder",
    "OpenCLIPEncoder",
    "RewardFunction",
    "TransformersEncoder",
    "VLMReward",
    "as_reward_function",
    "encoder_backends",
    "goal_baseline_projection",
    "load_encoder",
    "mean_direction",
    "normalize",
    "projected_reward",
    "register_encoder",
]
