"""Video-window rewards (``video:``): each step's clip of recent frames against the prompt; and CartPole training
with a ``video:`` and a ``vqa:`` reward, end to end."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

import vlmrm.reward.encoders as encoders
from vlmrm.cli.main import main
from vlmrm.errors import ConfigError, ModelLoadError
from vlmrm.evaluation.epic_study import epic_to_labels
from vlmrm.reward import VLMReward
from vlmrm.reward.architectures import build_random_model
from vlmrm.reward.video import VideoReward, clip_indices
from vlmrm.rl.rollout_rewards import RolloutRewards
from vlmrm.rl.vec_env import VecVLMReward
from vlmrm.rl.wrappers import RenderFrameInInfo
from vlmrm.testing import ColorClipEmbedder, StepColorEnv, color_reward, color_reward_reference
from vlmrm.training.guards import RewardGuard

pytestmark = pytest.mark.filterwarnings("ignore:vlmrm. model:UserWarning")
ROOT = Path(__file__).resolve().parents[1]


def solid(rgb: tuple[int, int, int], size: int = 16) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (size, size, 3)).copy()


def test_clip_indices_take_the_last_frames_at_a_stride() -> None:
    assert clip_indices(5, 3, 2, "window").tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 1, 3], [0, 2, 4]]
    assert clip_indices(2, 3, 1, "episode").tolist() == [[0, 0, 1]]


def test_window_rewards_follow_the_clip() -> None:
    reward = VideoReward(ColorClipEmbedder(), "a red pole", stride=1)  # type: ignore[arg-type]
    episode = np.stack([solid((255, 0, 0))] * 4 + [solid((0, 0, 255))] * 4)
    values = reward.score_episodes([episode])[0]
    clips = episode[clip_indices(len(episode), 3, 1, "window")].astype(np.float64).mean(axis=1)
    np.testing.assert_allclose(values, color_reward_reference(clips, (1.0, 0.0, 0.0)), atol=1e-5)
    assert values[3] > values[4] > values[5] > values[6]  # the goal colour leaves the window frame by frame
    # One frame alone is a still clip: the frame-by-frame reward of the same frame.
    np.testing.assert_allclose(reward(episode[:1]), values[:1], atol=1e-6)


def test_episode_form_is_one_sparse_reward_at_the_end() -> None:
    reward = VideoReward(ColorClipEmbedder(), "a red pole", form="episode")  # type: ignore[arg-type]
    episode = np.stack([solid((255, 0, 0)), solid((0, 255, 0)), solid((0, 0, 255)), solid((255, 0, 0))])
    values = reward.score_episodes([episode])[0]
    assert values[:-1].tolist() == [0.0, 0.0, 0.0]
    expected = color_reward_reference(episode[[0, 2, 3]].astype(np.float64).mean(axis=0)[None], (1.0, 0.0, 0.0))
    np.testing.assert_allclose(values[-1:], expected, atol=1e-5)


@pytest.mark.parametrize("overlap", [False, True])
def test_episode_end_batching_scores_windows_of_the_held_frames(overlap: bool) -> None:
    reward = VideoReward(ColorClipEmbedder(), "a red pole", stride=2)  # type: ignore[arg-type]
    venv = VecVLMReward(
        DummyVecEnv([lambda i=i: RenderFrameInInfo(StepColorEnv(env_id=i, length=5)) for i in range(2)]),
        RewardGuard(reward, Path("unused")),
        mode="episode",
        overlap=overlap,
    )
    venv.reset()
    for _ in range(5):
        _, _, dones, infos = venv.step(np.zeros(2, dtype=np.int64))
    assert dones.all()
    for env_id, info in enumerate(infos):
        episode = np.stack([StepColorEnv.frame_for(t, env_id) for t in range(1, 6)])
        np.testing.assert_allclose(info["vlm_episode_rewards"].result(), reward.score_episodes([episode])[0])
    venv.close()


def test_tools_that_score_independent_frames_say_a_video_model_sees_still_clips(
    caplog: pytest.LogCaptureFixture,
) -> None:
    frames = np.stack([solid((255, 0, 0)), solid((0, 0, 255)), solid((0, 255, 0))])
    labels = np.array([1, 0, 0])
    with caplog.at_level(logging.INFO, logger="vlmrm"):
        epic_to_labels({"video": VideoReward(ColorClipEmbedder(), "a red pole")}, frames, labels, [0.0])  # type: ignore[arg-type]
        epic_to_labels({"image": color_reward()}, frames, labels, [0.0])
    notes = [record.getMessage() for record in caplog.records if "still clip" in record.getMessage()]
    assert len(notes) == 1 and "the dataset's frames" in notes[0] and "repeated 3 times" in notes[0]


def gae(rewards, values, starts, last_values, dones, gamma, lam):  # type: ignore[no-untyped-def]
    """Generalised advantage estimates, as stable-baselines3's RolloutBuffer computes them."""
    advantages, last = np.zeros_like(rewards), 0.0
    for t in reversed(range(len(rewards))):
        following, alive = (last_values, 1.0 - dones) if t == len(rewards) - 1 else (values[t + 1], 1.0 - starts[t + 1])
        delta = rewards[t] + gamma * following * alive - values[t]
        advantages[t] = last = delta + gamma * lam * alive * last
    return advantages


@pytest.mark.parametrize("form", ["window", "episode"])
def test_ppo_rollouts_get_the_rewards_of_whole_episodes(form: str) -> None:
    # Episodes of 5 steps, rollouts of 3: episodes cross rollouts, and end inside them.
    reward = VideoReward(ColorClipEmbedder(), "a red pole", ["a blue pole"], alpha=0.5, stride=2, form=form)  # type: ignore[arg-type]
    envs = [lambda i=i: RenderFrameInInfo(StepColorEnv(env_id=i, length=5)) for i in range(2)]
    venv = VecVLMReward(DummyVecEnv(envs), RewardGuard(reward, Path("unused"), per_env=False), mode="rollout")
    seen: list[dict[str, np.ndarray]] = []

    class Capture(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            buffer = self.model.rollout_buffer
            names = ("rewards", "values", "episode_starts", "advantages", "returns")
            seen.append({name: getattr(buffer, name).copy() for name in names})
            seen[-1]["last"] = self.locals["values"].cpu().numpy().ravel()
            seen[-1]["dones"] = np.asarray(self.locals["dones"], dtype=np.float32)

    model = PPO("MlpPolicy", venv, n_steps=3, batch_size=6, n_epochs=1, gamma=0.9, gae_lambda=0.8, seed=0, device="cpu")
    model.learn(24, callback=[RolloutRewards(), Capture()])  # 4 rollouts: 12 steps of each env
    for env_id in range(2):
        episode = np.stack([StepColorEnv.frame_for(t, env_id) for t in range(1, 6)])
        whole = reward.score_episodes([episode])[0]
        unfinished = whole[:2] if form == "window" else np.zeros(2, np.float32)  # the third episode's 2 steps
        expected = np.concatenate([whole, whole, unfinished])
        np.testing.assert_allclose(np.concatenate([r["rewards"][:, env_id] for r in seen]), expected, atol=1e-6)
    for r in seen:  # the advantages and returns are those of the VLM rewards
        advantages = gae(r["rewards"], r["values"], r["episode_starts"], r["last"], r["dones"], 0.9, 0.8)
        np.testing.assert_allclose(r["advantages"], advantages, atol=1e-5)
        np.testing.assert_allclose(r["returns"], advantages + r["values"], atol=1e-5)
    # A finished episode's VLM return reaches stable-baselines3's episode statistics (rollout/ep_rew_mean) at the
    # next step after its rollout: the first episodes here (the second ones end in the last rollout).
    returns = sorted(round(info["r"], 4) for info in model.ep_info_buffer)
    wholes = [reward.score_episodes([np.stack([StepColorEnv.frame_for(t, i) for t in range(1, 6)])])[0] for i in (0, 1)]
    assert returns == sorted(round(float(w.sum()), 4) for w in wholes)
    venv.close()


def test_window_must_be_the_models() -> None:
    with pytest.raises(ConfigError, match="takes clips of 3 frames"):
        VideoReward(ColorClipEmbedder(), "a red pole", window=8)  # type: ignore[arg-type]


def test_tiny_random_xclip_scores_frames_and_episodes() -> None:
    reward = VLMReward.from_pretrained("video:tiny-random", "a red pole", ["a pole"], alpha=0.5, device="cpu")
    assert isinstance(reward, VideoReward) and reward.window == 4 and reward.image_size == 32
    episode = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    values = reward.score_episodes([episode])[0]
    assert values.shape == (6,) and values.dtype == np.float32 and np.isfinite(values).all()
    np.testing.assert_array_equal(values, reward.score_episodes([episode])[0])
    np.testing.assert_allclose(values[:1], reward(episode[:1]), atol=1e-5)


def test_step_mode_training_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "train",
            str(ROOT / "configs" / "cartpole-dqn.yaml"),
            "--set",
            "reward.model=video:tiny-random",
            "--set",
            "reward.episode_end_batching=false",
            "--set",
            f"logging.run_dir={tmp_path / 'run'}",
        ]
    )
    assert code == 2
    assert "episode-end batching" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "preset"),
    [
        ("vqa:tiny-random", "cartpole"),
        ("vqa:tiny-random", "cartpole-dqn"),
        ("video:tiny-random", "cartpole-dqn"),
        ("video:tiny-random", "cartpole"),
    ],
)
def test_cartpole_trains_end_to_end(model: str, preset: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    settings = {
        "reward.model": model,
        "rl.total_steps": "120",
        "env.episode_length": "30",
        "rl.hyperparameters.learning_starts": "30",
        "logging.checkpoint_freq": "120",
        "logging.video_freq": "0",
        "logging.eval_freq": "120",
        "logging.eval_episodes": "1",
        "logging.progress_bar": "false",
        "logging.run_dir": str(run_dir),
    }
    if preset == "cartpole":  # PPO: 3 rollouts of 4 envs x 10 steps, scored as each ends; episodes cross them
        del settings["rl.hyperparameters.learning_starts"]
        settings.update({"rl.n_envs": "4", "rl.hyperparameters.n_steps": "10", "rl.hyperparameters.batch_size": "40"})
    overrides = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    assert main(["train", str(ROOT / "configs" / f"{preset}.yaml"), *overrides]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["model"] == model and summary["total_steps"] == 120
    assert np.isfinite(summary["eval_vlm_return"]) and summary["eval_vlm_return"] != 0.0


def test_unusable_specs_are_one_clear_error(tmp_path: Path) -> None:
    model, tokenizer, _, _ = build_random_model("tiny-random")
    model.save_pretrained(tmp_path / "clip")
    tokenizer.save_pretrained(tmp_path / "clip")
    with pytest.raises(ModelLoadError, match="video: rewards take X-CLIP models"):
        VLMReward.from_pretrained(f"video:{tmp_path / 'clip'}", "a red pole", device="cpu")
    with pytest.raises(ModelLoadError, match="names no model"):
        VLMReward.from_pretrained("video:", "a red pole", device="cpu")
    with pytest.raises(ModelLoadError, match="does not exist"):
        VLMReward.from_pretrained(f"vqa:{tmp_path / 'missing'}", "a red pole", device="cpu")


def test_an_unreachable_hub_is_one_message_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(encoders, "_offline", lambda: False)
    monkeypatch.setattr(encoders, "hub_unreachable", lambda: "http://hub.invalid: refused")
    with pytest.raises(ModelLoadError, match="could not be reached") as caught:
        VLMReward.from_pretrained("video:no-such-owner/no-such-xclip", "a red pole", device="cpu")
    assert caught.value.alternative == "video:tiny-random"
