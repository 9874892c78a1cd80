"""docs/api.md documents the public API only: what modules declare in ``__all__``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
SRC = ROOT / "src"


def declared_all(module: str) -> list[str] | None:
    """The ``__all__`` of ``module`` (read from its source, not imported), ``None`` when it has none."""
    base = SRC.joinpath(*module.split("."))
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    return None


def is_module(name: str) -> bool:
    base = SRC.joinpath(*name.split("."))
    return base.is_dir() or base.with_suffix(".py").is_file()


def test_the_api_page_shows_only_names_in_an_all() -> None:
    page = (ROOT / "docs" / "api.md").read_text()
    assert "members:" not in page, "list a module's public names in its __all__, not in docs/api.md"
    problems = []
    for target in re.findall(r"^::: ([\w.]+)", page, flags=re.MULTILINE):
        if is_module(target):
            if declared_all(target) is None:
                problems.append(f"{target} has no __all__")
            continue
        module, _, name = target.rpartition(".")
        packages = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
        if not any(name in (declared_all(owner) or []) for owner in [module, *packages]):
            problems.append(f"{target} is in no __all__ of {module} or its packages")
    assert not problems, problems
