"""The layout stays a layout: no import circles in src/vlmrm, not even through imports inside functions."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).parents[1] / "src"


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(SRC).with_suffix("").parts)
    return name.removesuffix(".__init__")


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The vlmrm modules ``path`` imports, at any depth (functions too), but not under ``if TYPE_CHECKING``."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            names: list[str] = []
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                names = [child.module, *(f"{child.module}.{alias.name}" for alias in child.names)]
            elif isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            for name in names:
                while name and name not in modules:
                    name = name.rpartition(".")[0]
                if name:
                    found.add(name)
            visit(child)

    visit(ast.parse(path.read_text()))
    return found - {module_name(path)}


def test_no_import_circles() -> None:
    paths = {module_name(path): path for path in SRC.rglob("*.py")}
    graph = defaultdict(set, {name: imports_of(path, set(paths)) for name, path in paths.items()})
    # A package imports its parent packages implicitly; those edges are not circles of the code's making.
    circles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1 and not node.startswith(target + "."):
                circles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[node] = 2

    for name in sorted(paths):
        if name not in state:
            visit(name, [])
    assert not circles, "import circles: " + "; ".join(" -> ".join(circle) for circle in circles)
