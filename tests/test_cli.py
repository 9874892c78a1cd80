"""The command line as a user meets it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vlmrm.cli.main import main

ROOT = Path(__file__).parents[1]


def test_help_lists_train(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "train" in capsys.readouterr().out


def test_config_error_is_one_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "env: {name: cartpole}\nreward: {target_prompts: [x], alpah: 0.5}\nrl: {algorithm: dqn, total_steps: 5}\n"
    )
    assert main(["train", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "error: Invalid config" in err and "Did you mean 'reward.alpha'?" in err
    assert "Traceback" not in err


def test_bad_override_and_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(ROOT / "configs" / "cartpole.yaml"), "--set", "rl.total_steps"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert main(["train", "no/such/config.yaml"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_readme_quickstart_command(tmp_path: Path) -> None:
    """The README's quickstart, as a subprocess: trains CartPole and prints steps/s."""
    result = subprocess.run(
        [
            sys.executable, "-m", "vlmrm.cli.main", "train", str(ROOT / "configs" / "cartpole.yaml"),
            "--set", "reward.model=tiny-random", "--set", "rl.total_steps=400",
            "--set", "logging.progress_bar=false", "--run-dir", str(tmp_path / "run"),
        ],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "RANDOM weights" in result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["total_steps"] == 400
    assert "steps/s" in result.stdout
