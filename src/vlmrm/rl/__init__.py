"""RL integration: reward wrappers, episode-end relabelling, stable-baselines3 glue and training."""

from vlmrm.rl.buffers import RelabelingReplayBuffer
from vlmrm.rl.vec_env import VecVLMReward
from vlmrm.rl.wrappers import RenderFrameInInfo, VLMRewardWrapper

__all__ = ["RelabelingReplayBuffer", "RenderFrameInInfo", "VLMRewardWrapper", "VecVLMReward"]
