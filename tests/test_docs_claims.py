"""What the docs claim about installing and running is true: extras exist, named scripts run, the API
reference shows no raw reST."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs").glob("*.ipynb"))]
TEXTS = [
    *PAGES,
    *sorted((ROOT / "src").rglob("*.py")),
    *sorted((ROOT / "experiments").rglob("*.yaml")),
    *sorted((ROOT / "configs").rglob("*.yaml")),
]
EXTRAS = re.compile(r"(?:vlmrm|[\"']\.)\[([A-Za-z0-9_.,\- ]+)\]")
"""``vlmrm[ray,open-clip]`` or ``".[open-clip]"`` in an install line."""
SCRIPT = re.compile(r"\b(benchmarks/[A-Za-z0-9_]+\.py)\b")
RAW_ROLE = re.compile(r":(?:py:)?(?:class|func|mod|meth|attr|data|exc|obj|const):(?:<code>|`)")


def declared_extras() -> set[str]:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        return set(tomllib.load(handle)["project"]["optional-dependencies"])


def test_every_documented_install_extra_exists() -> None:
    """pip installs nothing for an extra that is not declared (``vlmrm[open_clip]`` when it is ``open-clip``)."""
    named: dict[str, str] = {}
    for path in TEXTS:
        for match in EXTRAS.finditer(path.read_text(encoding="utf-8")):
            for extra in match.group(1).split(","):
                named.setdefault(extra.strip(), str(path.relative_to(ROOT)))
    assert {"open-clip", "ray", "wandb", "warp"} <= set(named)  # the scan finds the install lines
    missing = {extra: where for extra, where in named.items() if extra not in declared_extras()}
    assert not missing, f"extras the docs name but pyproject.toml does not declare: {missing}"


def test_the_docs_name_the_hugging_face_cli_that_is_installed() -> None:
    """huggingface-hub 1.x and later install only ``hf``; ``huggingface-cli download`` is gone."""
    for page in PAGES:
        assert "huggingface-cli download" not in page.read_text(encoding="utf-8"), page


def documented_files() -> list[str]:
    return sorted({m for page in PAGES for m in SCRIPT.findall(page.read_text(encoding="utf-8"))})


def documented_scripts() -> list[str]:
    """The files the docs name that run as programs (a module they name, such as the study's oracles, does not)."""
    return [name for name in documented_files() if "__main__" in (ROOT / name).read_text(encoding="utf-8")]


def test_every_file_the_docs_name_exists() -> None:
    missing = [name for name in documented_files() if not (ROOT / name).is_file()]
    assert not missing, f"the docs name files that do not exist: {missing}"


def test_the_docs_name_scripts() -> None:
    assert "benchmarks/ray_backend.py" in documented_scripts()


@pytest.mark.slow
@pytest.mark.parametrize("script", documented_scripts())
def test_every_script_the_docs_name_runs_with_help(script: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage:"), result.stdout[:500]


def sphinx_roles_extension():
    spec = importlib.util.spec_from_file_location("sphinx_roles", ROOT / "docs" / "_griffe" / "sphinx_roles.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docstrings_lose_their_sphinx_roles_and_double_colons() -> None:
    pytest.importorskip("griffe", reason="the API reference needs the docs extra: pip install 'vlmrm[docs]'")
    convert = sphinx_roles_extension().markdown_docstring
    text = (
        "A :class:`~vlmrm.reward.VLMReward` or :func:`vlmrm.rl.trainer.train`; :meth:`.close` and "
        ":py:attr:`alpha`.\n\nExample::\n\n    reward = VLMReward(...)\n\nA run holds:\n\n::\n\n    RUN/\n"
    )
    assert convert(text) == (
        "A `VLMReward` or `vlmrm.rl.trainer.train`; `close` and `alpha`.\n\n"
        "Example:\n\n    reward = VLMReward(...)\n\nA run holds:\n\n\n    RUN/\n"
    )
    doctest = "Use it:\n\n>>> f(1)\n2\n>>> g(\n...     3)\n\nMore text.\n\n  >>> h()"
    assert convert(doctest) == (
        "Use it:\n\n```pycon\n>>> f(1)\n2\n>>> g(\n...     3)\n```\n\nMore text.\n\n  ```pycon\n  >>> h()\n  ```"
    )


@pytest.mark.slow
def test_the_built_api_reference_shows_no_raw_sphinx_roles(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="building the docs needs the docs extra: pip install 'vlmrm[docs]'")
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    assert "VLMReward" in api and "Example:</p>" in api
    assert "<blockquote>" not in api  # doctests read as nested quotes and joined into one line
    assert api.count('<span class="gp">&gt;&gt;&gt; </span>') >= 20  # they are code blocks
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        raw = [html[max(0, m.start() - 80) : m.end() + 40] for m in RAW_ROLE.finditer(html)]
        assert not raw, f"{page.relative_to(site)}: {raw[:3]}"
        assert "::</p>" not in html, page.relative_to(site)
