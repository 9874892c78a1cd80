"""``vlmrm push RUN --repo ID``: a run as a Hub repository; offline, through --dry-run and a recording HfApi."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import huggingface_hub
import pytest
import yaml

from vlmrm.cli.main import main
from vlmrm.config import config_from_dict
from vlmrm.rl.video import video_encoder_problem
from vlmrm.training.trainer import train

pytestmark = pytest.mark.filterwarnings("ignore:vlmrm. model:UserWarning")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-step CartPole DQN run with tiny-random and its own prompts."""
    run_dir = tmp_path_factory.mktemp("push") / "run"
    config = config_from_dict(
        {
            "env": {"name": "cartpole", "episode_length": 20, "render_size": 32},
            "reward": {"model": "tiny-random", "target_prompts": ["a balanced pole"], "baseline_prompts": ["a pole"]},
            "rl": {"algorithm": "dqn", "total_steps": 40, "hyperparameters": {"learning_starts": 20}},
            "logging": {"run_dir": str(run_dir), "eval_episodes": 1, "progress_bar": False, "inspect": False},
        }
    )
    return train(config).run_dir


def front_matter(card: str) -> dict[str, Any]:
    _, header, _ = card.split("---\n", 2)
    return yaml.safe_load(header)


def test_dry_run_writes_model_config_video_and_card(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "repo"
    assert main(["push", str(run), "--repo", "someone/cartpole-vlm", "--dry-run", str(out)]) == 0
    assert "nothing uploaded" in capsys.readouterr().out
    names = {p.name for p in out.iterdir()}
    assert {"README.md", "config.yaml", "model.zip", "summary.json"} <= names
    assert ("replay.mp4" in names) is (video_encoder_problem() is None)
    card = (out / "README.md").read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "stable-baselines3" and "cartpole" in meta["tags"]
    metrics = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert {"mean_reward", "mean_env_return", "success_rate"} <= set(metrics)
    assert "  - a balanced pole" in card and "  - a pole" in card and "`tiny-random`" in card
    assert 'hf_hub_download("someone/cartpole-vlm", "model.zip")' in card
    # The folder is enough to watch the policy again.
    assert main(["enjoy", str(out), "--checkpoint", str(out / "model.zip"), "--episodes", "1", "--no-video"]) == 0
    assert "env return:" in capsys.readouterr().out


def test_dry_run_refuses_a_directory_holding_files(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["push", str(run), "--dry-run", str(tmp_path)]) == 2
    assert "exists and is not an empty directory" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


class RecordingApi:
    """Stands in for huggingface_hub.HfApi: records the calls and the uploaded files."""

    calls: list[tuple[str, Any]] = []  # noqa: RUF012

    def __init__(self, token: str | None = None):
        pass

    def create_repo(self, repo_id: str, **kwargs: Any) -> None:
        self.calls.append(("create_repo", (repo_id, kwargs["private"])))

    def upload_folder(self, folder_path: str, repo_id: str, **kwargs: Any) -> str:
        files = sorted(p.name for p in Path(folder_path).iterdir())
        self.calls.append(("upload_folder", (repo_id, files)))
        return "https://huggingface.co/someone/cartpole-vlm/commit/abc"


def test_push_uploads_the_folder(
    run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    RecordingApi.calls = []
    assert main(["push", str(run), "--repo", "someone/cartpole-vlm", "--private"]) == 0
    assert RecordingApi.calls[0] == ("create_repo", ("someone/cartpole-vlm", True))
    name, (repo, files) = RecordingApi.calls[1]
    assert name == "upload_folder" and repo == "someone/cartpole-vlm"
    assert {"README.md", "config.yaml", "model.zip", "summary.json"} <= set(files)
    assert "commit/abc" in capsys.readouterr().out


def test_hub_failures_and_bad_arguments_are_one_line_errors(
    run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Unreachable(RecordingApi):
        def create_repo(self, repo_id: str, **kwargs: Any) -> None:
            raise ConnectionError("Failed to resolve 'huggingface.co'\nmore detail")

    monkeypatch.setattr(huggingface_hub, "HfApi", Unreachable)
    for argv, message in [
        (
            ["--repo", "someone/cartpole-vlm"],
            "Cannot push to the Hub repository 'someone/cartpole-vlm': ConnectionError",
        ),
        (["--repo", "no-owner"], "expected a Hub model id like user/cartpole-vlm"),
        ([], "Give the Hub repository with --repo ID"),
    ]:
        assert main(["push", str(run), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
