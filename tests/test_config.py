"""Config validation and --set overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlmrm.config import apply_overrides, config_from_dict, load_config, parse_override
from vlmrm.errors import ConfigError

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))


def minimal() -> dict:
    return {
        "env": {"name": "cartpole"},
        "reward": {"target_prompts": ["pole upright"]},
        "rl": {"algorithm": "dqn", "total_steps": 100},
    }


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_are_valid(path: Path) -> None:
    config = load_config(path)
    assert config.reward.target_prompts


def test_defaults() -> None:
    config = config_from_dict(minimal())
    assert config.reward.model == "openai/clip-vit-base-patch32"
    assert config.reward.alpha == 0.0 and config.rl.n_envs == 1


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"env": {"nmae": "cartpole"}}, "env.nmae: unknown field. Did you mean 'env.name'?"),
        ({"reward": {"target_prompts": ["x"], "alpah": 0.5}}, "Did you mean 'reward.alpha'?"),
        ({"rewards": {}}, "rewards: unknown field. Did you mean 'reward'?"),
        ({"reward": {"target_prompts": ["x"], "alpha": 1.5}}, "reward.alpha: Input should be less than or equal to 1"),
        ({"reward": {"target_prompts": [" "]}}, "prompt 0 is empty"),
        ({"reward": {"target_prompts": []}}, "reward.target_prompts"),
        ({"reward": {"target_prompts": ["x"], "alpha": 0.5}}, "needs baseline_prompts"),
        ({"reward": {"target_prompts": ["x"], "batch_size": 0}}, "reward.batch_size: Input should be greater than 0"),
        ({"reward": {"target_prompts": ["x"], "device": "gpu"}}, "unknown device 'gpu'"),
        ({"reward": {"target_prompts": ["x"], "dtype": "fp8"}}, "reward.dtype"),
        ({"rl": {"algorithm": "ddpg", "total_steps": 5}}, "rl.algorithm"),
        ({"rl": {"algorithm": "dqn", "total_steps": -5}}, "rl.total_steps: Input should be greater than 0"),
        ({"env": {"name": "cartpole", "render_size": 0}}, "env.render_size"),
    ],
)
def test_config_errors_name_the_field(patch: dict, message: str) -> None:
    data = minimal()
    for key, value in patch.items():
        data[key] = value
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert message in str(info.value)


def test_overrides() -> None:
    assert parse_override("reward.alpha=0.5") == (["reward", "alpha"], 0.5)
    assert parse_override("reward.target_prompts=[a, b]") == (["reward", "target_prompts"], ["a", "b"])
    data = apply_overrides(minimal(), ["rl.total_steps=7", "rl.hyperparameters.gamma=0.9", "reward.model=tiny-random"])
    config = config_from_dict(data)
    assert config.rl.total_steps == 7 and config.rl.hyperparameters == {"gamma": 0.9}
    assert config.reward.model == "tiny-random"
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override("rl.total_steps")
    with pytest.raises(ConfigError, match="is a value, not a section"):
        apply_overrides(minimal(), ["rl.total_steps.x=1"])


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("env: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_config(listy)


def test_a_key_set_twice_is_refused_naming_it_and_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text(
        "env:\n  name: cartpole\nreward:\n  alpha: 0.0\n  target_prompts: [a pole]\n  alpha: 0.7\n"
        "rl: {algorithm: dqn, total_steps: 100}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"Config file {str(path)!r} sets 'alpha' twice in one section (lines 4 and 6); YAML would keep only the "
        "second. Delete one of them."
    )
    # The same key in different sections, and YAML merge keys, are fine.
    path.write_text(
        "env: {name: cartpole}\nreward: {target_prompts: [a pole]}\n"
        "rl: &rl {algorithm: dqn, total_steps: 100}\nlogging: {run_dir: x}\n"
    )
    assert load_config(path).rl.total_steps == 100
    path.write_text(
        "defaults: &d {algorithm: dqn, total_steps: 50}\nenv: {name: cartpole}\nrl: {<<: *d, total_steps: 100}\n"
    )
    with pytest.raises(ConfigError, match="defaults: unknown field"):  # merged, not refused as a repeat
        load_config(path)


# -- rules across fields, resolution, resume safety ---------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"rl": {"algorithm": "sac", "total_steps": 100}}, "rl.algorithm: sac needs continuous actions; cartpole"),
        ({"rl": {"algorithm": "dqn", "total_steps": True}}, "rl.total_steps: Input should be a valid integer"),
        (
            {"rl": {"algorithm": "dqn", "total_steps": 100, "hyperparameters": {"train_freq": 0}}},
            "rl.hyperparameters.train_freq: must be a positive integer, or [N, step] / [N, episode] (got 0).",
        ),
        (
            {"rl": {"algorithm": "dqn", "total_steps": 100, "hyperparameters": {"batch_size": True}}},
            "rl.hyperparameters.batch_size: must be a positive integer (got True).",
        ),
        (
            {"rl": {"algorithm": "ppo", "total_steps": 100}, "reward": {"episode_end_batching": True}},
            "reward.episode_end_batching: needs an off-policy algorithm (sac, dqn), not ppo",
        ),
        ({"reward": {"alpha": 0.5, "target_prompts": ["x"]}}, "reward.alpha=0.5 needs baseline_prompts"),
        (
            {"rl": {"algorithm": "dqn", "total_steps": 100, "hyperparameters": {"learning_rate": float("inf")}}},
            "rl.hyperparameters.learning_rate: must be a finite number > 0 (got inf).",
        ),
        (
            {"rl": {"algorithm": "dqn", "total_steps": 100, "hyperparameters": {"learning_rate": float("nan")}}},
            "rl.hyperparameters.learning_rate: must be a finite number > 0 (got nan).",
        ),
        (
            {"rl": {"algorithm": "dqn", "total_steps": 100, "hyperparameters": {"exploration_fraction": -1}}},
            "rl.hyperparameters.exploration_fraction: must be a number in [0, 1] (got -1).",
        ),
        (
            {
                "rl": {
                    "algorithm": "dqn",
                    "total_steps": 100,
                    "hyperparameters": {"exploration_final_eps": float("nan")},
                }
            },
            "rl.hyperparameters.exploration_final_eps: must be a number in [0, 1] (got nan).",
        ),
        (
            {"rl": {"algorithm": "ppo", "total_steps": 100, "hyperparameters": {"max_grad_norm": float("inf")}}},
            "rl.hyperparameters.max_grad_norm: must be a finite number > 0 (got inf).",
        ),
        (
            {"rl": {"algorithm": "ppo", "total_steps": 100, "hyperparameters": {"gae_lambda": 1.5}}},
            "rl.hyperparameters.gae_lambda: must be a number in [0, 1] (got 1.5).",
        ),
        (
            {"rl": {"algorithm": "dqn", "total_steps": 100, "hyperparameters": {"policy_kwargs": {"net_arch": [-1]}}}},
            "rl.hyperparameters.policy_kwargs: must be a mapping whose net_arch is a list of positive layer sizes",
        ),
        (
            {"rl": {"algorithm": "dqn", "total_steps": 100, "hyperparameters": {"gamma": float("nan")}}},
            "rl.hyperparameters.gamma: must be a number in [0, 1] (got nan).",
        ),
        (
            {
                "rl": {
                    "algorithm": "ppo",
                    "total_steps": 100,
                    "hyperparameters": {"normalize_advantage": True, "policy_kwargs": {"log_std_init": float("-inf")}},
                }
            },
            "rl.hyperparameters.policy_kwargs: must hold finite numbers, not NaN or infinity",
        ),
        ({"env": {"name": "cartpole", "options": {"terminate_on_fall": "no"}}}, "env.options.terminate_on_fall:"),
    ],
)
def test_rules_across_fields_are_checked_with_the_config(patch: dict, message: str) -> None:
    data = {**minimal(), **patch}
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert message in str(info.value)


def test_a_learning_start_below_one_round_of_episodes_is_raised_with_one_line(caplog: pytest.LogCaptureFixture) -> None:
    """A preset's learning_starts (tuned for one env) with more envs: raised to n_envs * episode_length, said once,
    so a GPU run that raises rl.n_envs needs no second change. At or above it, or without batching, it is kept."""
    import logging

    from vlmrm.config import RewardFacts, resolve

    facts = RewardFacts(image_size=32, device="cpu", dtype="fp32")

    def resolved(n_envs: int, starts: int, batching: bool = True) -> int:
        data = {
            "env": {"name": "cartpole", "episode_length": 50},
            "reward": {"episode_end_batching": batching},
            "rl": {
                "algorithm": "dqn",
                "total_steps": 100,
                "n_envs": n_envs,
                "hyperparameters": {"learning_starts": starts},
            },
        }
        return resolve(config_from_dict(data), facts, run_dir="runs/x").rl.hyperparameters["learning_starts"]

    with caplog.at_level(logging.INFO, logger="vlmrm.config"):
        assert resolved(16, 1000) == 1000  # 16 x 50 = 800 <= 1000: kept
        caplog.clear()
        assert resolved(32, 1000) == 1600
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "vlmrm: rl.hyperparameters.learning_starts raised from 1000 to n_envs * episode_length = 32 x 50 = 1600: "
        "with episode-end batching no reward is known before the first episodes end"
    ]
    assert resolved(32, 1000, batching=False) == 1000


@pytest.mark.parametrize(
    ("env", "device", "rl", "reward", "expected"),
    [
        ({"name": "cartpole"}, "cpu", {}, {}, False),  # Pillow on the host is as fast on a CPU
        ({"name": "cartpole"}, "cuda", {}, {}, True),
        ({"name": "mountaincar", "options": {"textured": True}}, "cuda:1", {"algorithm": "sac"}, {}, True),
        ({"name": "cartpole"}, "cuda", {"vec_env": "subproc"}, {}, False),  # worker processes want host frames
        ({"name": "cartpole"}, "cuda", {}, {"backend": "ray"}, False),
        ({"name": "cartpole", "options": {"renderer": "torch"}}, "cpu", {}, {}, True),  # only the batched env has it
        ({"name": "humanoid"}, "cuda", {"algorithm": "sac"}, {}, False),  # OpenGL frames come through the host
        ({"name": "cartpole", "vectorized": False}, "cuda", {}, {}, False),  # an explicit choice stays
        ({"name": "cartpole", "vectorized": True}, "cpu", {}, {}, True),
    ],
)
def test_vectorized_auto_picks_the_batched_env_where_frames_are_drawn_on_the_gpu(
    env: dict, device: str, rl: dict, reward: dict, expected: bool
) -> None:
    from vlmrm.config import RewardFacts, resolve

    data = {"env": env, "reward": reward, "rl": {"algorithm": "dqn", "total_steps": 100, **rl}}
    config = config_from_dict(data)
    assert config.env.vectorized == env.get("vectorized", "auto")
    assert resolve(config, RewardFacts(image_size=32, device=device), run_dir="runs/x").env.vectorized is expected


def test_resolve_fills_every_default_once() -> None:
    from vlmrm.config import RewardFacts, resolve

    config = config_from_dict({"env": {"name": "mountaincar"}, "rl": {"algorithm": "sac", "total_steps": 10}})
    assert config.reward.target_prompts
    assert config.env.options == {
        "renderer": "auto",
        "terminate_at_goal": False,
        "clip_at_goal": True,
        "textured": False,
    }
    cpu = resolve(config, RewardFacts(image_size=224, device="cpu", dtype="fp32"), run_dir="runs/x")
    assert (cpu.env.episode_length, cpu.env.render_size, cpu.reward.device, cpu.reward.dtype) == (
        200,
        224,
        "cpu",
        "fp32",
    )
    assert cpu.reward.episode_end_batching is True and cpu.reward.overlap_scoring is False
    assert cpu.logging.save_replay_buffer is True and cpu.logging.run_dir == "runs/x"
    assert cpu.rl.hyperparameters["learning_starts"] == 200
    assert resolve(cpu, RewardFacts(224, "cuda")) == cpu  # resolving twice changes nothing
    gpu = resolve(config, RewardFacts(image_size=336, device="cuda", dtype="fp16"))
    assert gpu.reward.overlap_scoring is True and gpu.env.render_size == 336 and gpu.reward.dtype == "fp16"


def test_resume_safety_is_a_property_of_each_field() -> None:
    from vlmrm.config import is_resume_safe, resume_safe_fields

    assert is_resume_safe("rl.total_steps") and is_resume_safe("reward.ray.address")
    assert is_resume_safe("logging.eval_freq") and not is_resume_safe("logging.run_dir")
    assert not is_resume_safe("reward.alpha") and not is_resume_safe("rl.hyperparameters")
    assert "reward.ray.*" in resume_safe_fields() and "reward.model" not in resume_safe_fields()
