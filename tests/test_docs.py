"""The README and the docs say what is true: their commands run as written, the config page names every field."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from markers import skip_without_pygame
from vlmrm.config import TrainConfig, flatten

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SELF_CONTAINED = re.compile(r"^vlmrm (train|landscape|bench) .*tiny-random|^vlmrm render ")
"""Commands that need no pretrained weights and no file an earlier command writes (datasets, runs)."""


def code_blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", path.read_text(), flags=re.MULTILINE | re.DOTALL)


def runnable_commands() -> list[str]:
    """The ``vlmrm`` command lines of the README and docs that run anywhere: tiny-random runs, landscapes and
    benchmarks, and renders (commands with pretrained weights are for a machine that has them)."""
    commands: dict[str, None] = {}
    for page in PAGES:
        for block in code_blocks(page, "bash"):
            for line in block.replace("\\\n", " ").splitlines():
                command = line.split(" #")[0].strip()
                if SELF_CONTAINED.search(command):
                    commands[command] = None
    return list(commands)


def test_the_docs_have_runnable_smoke_commands() -> None:
    assert "vlmrm train configs/cartpole.yaml --set reward.model=tiny-random --set rl.total_steps=2000" in (
        runnable_commands()
    )


@pytest.mark.slow
@pytest.mark.parametrize("command", runnable_commands())
def test_a_docs_command_runs_as_written(command: str, tmp_path: Path) -> None:
    """Run in a fresh directory that has the repository's configs, as a user in a clone would."""
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    argv = shlex.split(command)
    if argv[1] == "bench" and "--no-reference" not in argv:
        skip_without_pygame()  # the reference row renders with Gymnasium's own renderer
    pythonpath = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))  # keep the rest
    result = subprocess.run(
        [sys.executable, "-m", "vlmrm.cli.main", *argv[1:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": pythonpath},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    if argv[1] == "train" and "--run-dir" not in argv:
        assert "steps/s" in result.stdout and list((tmp_path / "runs").glob("*/summary.json"))


@pytest.mark.slow
def test_the_readme_python_example_runs_as_written(tmp_path: Path) -> None:
    [block] = [b for b in code_blocks(ROOT / "README.md", "python") if "reward_fn=" in b]
    result = subprocess.run(
        [sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((tmp_path / "runs").glob("cartpole-*/summary.json"))
    # It uses what train returned: the best policy's checkpoint, which exists.
    printed = re.fullmatch(r"best policy: (\S+) \(step \d+, success \d+%\)\n", result.stdout)
    assert printed, result.stdout
    assert (tmp_path / printed.group(1)).is_file()


def test_the_configuration_page_names_every_field() -> None:
    [yaml_block] = [block for block in code_blocks(ROOT / "docs" / "configuration.md", "yaml") if "logging:" in block]
    defaults = TrainConfig.model_validate(
        {"env": {"name": "cartpole"}, "rl": {"algorithm": "dqn", "total_steps": 1}}
    ).model_dump()
    for dotted in flatten(defaults):
        name = dotted.split(".")[-1]
        assert re.search(rf"\b{name}\b", yaml_block), f"{dotted} is not described in docs/configuration.md"
