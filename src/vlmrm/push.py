"""``vlmrm push RUN --repo ID``: a run on the Hugging Face Hub, as rl-baselines3-zoo shares its agents.

The repository holds ``model.zip`` (one stable-baselines3 checkpoint, without its replay buffer),
the run's ``config.yaml`` and ``summary.json``, ``replay.mp4`` (the newest policy video; rl-baselines3-zoo's
name, which the Hub shows) and a model card (``README.md``) with the prompts, the reward model, the
algorithm and the results, whose metadata the Hub shows (``library_name: stable-baselines3``, a
``model-index`` with the evaluation's mean VLM and env returns). Downloaded, it is enough for
``vlmrm enjoy DIR --checkpoint DIR/model.zip``. :func:`write_push_folder` writes that folder (``--dry-run``);
:func:`push_run` uploads it with ``huggingface_hub``.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from vlmrm._version import __version__
from vlmrm.config import TrainConfig
from vlmrm.errors import ConfigError, VLMRMError
from vlmrm.evaluation.enjoy import find_checkpoint
from vlmrm.run.run_dir import CONFIG_FILE, SUMMARY_FILE, RunDir

VIDEO_PATTERN = re.compile(r"^step_(\d+)\.mp4$")
MODEL_FILE = "model.zip"
VIDEO_FILE = "replay.mp4"


class PushError(VLMRMError):
    """The Hub refused the upload or could not be reached."""


def newest_video(run_dir: Path) -> Path | None:
    """The run's policy video of the highest step (``videos/step_<N>.mp4``), ``None`` when it has none."""
    videos = [
        (int(m.group(1)), p) for p in (run_dir / "videos").glob("step_*.mp4") if (m := VIDEO_PATTERN.match(p.name))
    ]
    return max(videos)[1] if videos else None


def _figure(value: Any, spec: str = ".2f") -> str:
    return "n/a" if value is None else f"{value:{spec}}"


def model_card(config: TrainConfig, summary: dict[str, Any], checkpoint: str, repo_id: str | None) -> str:
    """``README.md`` of the repository: Hub metadata, then prompts, model, results and how to use it."""
    algorithm, env, reward = config.rl.algorithm.upper(), config.env.name, config.reward
    metrics = [
        {"type": "mean_reward", "name": "mean VLM return", "value": summary.get("eval_vlm_return")},
        {"type": "mean_env_return", "name": "mean env return", "value": summary.get("eval_env_return")},
    ]
    if summary.get("eval_success_rate") is not None:
        metrics.append({"type": "success_rate", "name": "success rate", "value": summary["eval_success_rate"]})
    metadata = {
        "library_name": "stable-baselines3",
        "tags": ["reinforcement-learning", "stable-baselines3", "vlmrm", "vision-language-reward", env],
        "model-index": [
            {
                "name": algorithm,
                "results": [
                    {
                        "task": {"type": "reinforcement-learning", "name": "reinforcement-learning"},
                        "dataset": {"name": env, "type": env},
                        "metrics": metrics,
                    }
                ],
            }
        ],
    }
    targets = "\n".join(f"  - {prompt}" for prompt in reward.target_prompts or [])
    baselines = "\n".join(f"  - {prompt}" for prompt in reward.baseline_prompts or []) or "  - (none)"
    where = repo_id or "REPO_ID"
    return f"""---
{yaml.safe_dump(metadata, sort_keys=False).strip()}
---

# {algorithm} on `{env}`, rewarded by a sentence

A {algorithm} agent ([stable-baselines3](https://github.com/DLR-RM/stable-baselines3)) trained by
[vlmrm](https://github.com/vlmrm/vlmrm) with no reward but a vision-language model's: the reward of each
frame is its similarity to the target prompts (Rocamonde et al., ICLR 2024, arXiv:2310.12921).

## Reward

- model: `{reward.model}`
- alpha: {reward.alpha:g} (goal-baseline regularisation)
- target prompts:
{targets}
- baseline prompts:
{baselines}

## Results

Final evaluation ({summary.get("eval_episodes", "?")} episodes, deterministic actions) after
{summary.get("total_steps", "?")} environment steps:

| figure | value |
| --- | --- |
| mean VLM return (the reward trained on) | {_figure(summary.get("eval_vlm_return"), ".3f")} |
| mean env return (the environment's own reward) | {_figure(summary.get("eval_env_return"))} |
| success rate | {_figure(summary.get("eval_success_rate"))} |

## Use

Watch it with vlmrm (the run's `config.yaml` says the env, the reward and the algorithm):

```bash
huggingface-cli download {where} --local-dir run
vlmrm enjoy run --checkpoint run/model.zip --episodes 5
```

or load the policy with stable-baselines3 (`{checkpoint}` of the run):

```python
from huggingface_hub import hf_hub_download
from stable_baselines3 import {algorithm}

model = {algorithm}.load(hf_hub_download("{where}", "model.zip"))
```

Pushed with vlmrm {__version__}.
"""


def write_push_folder(
    run_dir: str | Path, out_dir: str | Path, checkpoint: str | int | None = None, repo_id: str | None = None
) -> Path:
    """Write what :func:`push_run` uploads into ``out_dir`` (new, or empty); return it."""
    run_files, out = RunDir(run_dir), Path(out_dir)
    run_files.require()
    config = run_files.config()
    path = find_checkpoint(run_files, checkpoint).path
    run = run_files.path
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{str(out)!r} exists and is not an empty directory; give a new or empty one.")
    summary_path = run / SUMMARY_FILE
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, out / MODEL_FILE)
    shutil.copy2(run / CONFIG_FILE, out / CONFIG_FILE)
    if summary_path.is_file():
        shutil.copy2(summary_path, out / SUMMARY_FILE)
    video = newest_video(run)
    if video is not None:
        shutil.copy2(video, out / VIDEO_FILE)
    card = model_card(config, summary, f"checkpoints/{path.name}", repo_id)
    (out / "README.md").write_text(card)
    return out


def push_run(
    run_dir: str | Path,
    repo_id: str,
    checkpoint: str | int | None = None,
    private: bool = False,
    token: str | None = None,
) -> str:
    """Upload the run to the Hub model repository ``repo_id`` (created if needed); return the commit's URL."""
    from huggingface_hub import HfApi

    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise ConfigError(f"--repo {repo_id!r}: expected a Hub model id like user/cartpole-vlm.")
    with tempfile.TemporaryDirectory(prefix="vlmrm-push-") as folder:
        write_push_folder(run_dir, folder, checkpoint, repo_id)
        api = HfApi(token=token)
        try:
            api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            commit = api.upload_folder(
                folder_path=folder, repo_id=repo_id, repo_type="model", commit_message="vlmrm push"
            )
        except Exception as exc:  # any Hub or network failure: one line, what was tried
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise PushError(
                f"Cannot push to the Hub repository {repo_id!r}: {type(exc).__name__}{': ' + first if first else ''}. "
                "Check the network and your token (huggingface-cli login), or write the folder with --dry-run DIR."
            ) from None
    return str(getattr(commit, "commit_url", commit))
