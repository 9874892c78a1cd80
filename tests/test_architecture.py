"""The layout stays a layout: every import runs down the floors, and no import circles, not even through imports
inside functions (the floors are written down in CONTRIBUTING.md and docs/architecture.md)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).parents[1] / "src"

FLOORS: list[tuple[str, ...]] = [
    (
        "vlmrm._version",
        "vlmrm._moved",
        "vlmrm._lazy",
        "vlmrm.errors",
        "vlmrm.validation",
        "vlmrm.device_options",
        "vlmrm.files",
        "vlmrm.memory",
    ),
    ("vlmrm.envs",),
    ("vlmrm.config",),
    ("vlmrm.reward",),
    ("vlmrm.rl",),
    ("vlmrm.run",),
    ("vlmrm.evaluation", "vlmrm.benchmark", "vlmrm.testing", "vlmrm.push"),
    ("vlmrm.training",),
    ("vlmrm.experiments",),
    ("vlmrm.cli",),
    ("vlmrm",),  # the package's own __init__: the public names, loaded lazily
]
"""The floors of src/vlmrm, from the ground up: a module imports only from its own floor and those below."""


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


def floor_of(module: str) -> int:
    """The floor of ``module``: that of the longest entry of :data:`FLOORS` it is or lies under."""
    best, floor = -1, -1
    for index, entries in enumerate(FLOORS):
        for entry in entries:
            if (module == entry or module.startswith(entry + ".")) and len(entry) > best:
                best, floor = len(entry), index
    return floor


def test_every_module_has_a_floor() -> None:
    homeless = sorted(name for name in map(module_name, SRC.rglob("*.py")) if floor_of(name) < 0)
    assert not homeless, f"modules on no floor (add them to FLOORS and CONTRIBUTING.md): {homeless}"


def test_imports_run_down_the_floors() -> None:
    paths = {module_name(path): path for path in SRC.rglob("*.py")}
    upward = [
        f"{name} (floor {floor_of(name)}) imports {target} (floor {floor_of(target)})"
        for name, path in sorted(paths.items())
        for target in sorted(imports_of(path, set(paths)))
        if floor_of(target) > floor_of(name)
    ]
    assert not upward, "imports running back up:\n  " + "\n  ".join(upward)


def test_the_floor_test_sees_imports_inside_functions() -> None:
    modules = {module_name(path) for path in SRC.rglob("*.py")}
    # training/callbacks.py imports the inspection inside a function, a floor down.
    callbacks = imports_of(SRC / "vlmrm" / "training" / "callbacks.py", modules)
    assert "vlmrm.evaluation.inspection_plots" in callbacks
    assert floor_of("vlmrm.training.callbacks") > floor_of("vlmrm.evaluation.inspection_plots")


ENV_PACKAGES = tuple(
    f"vlmrm.envs.{path.parent.name}"
    for path in sorted((SRC / "vlmrm" / "envs").glob("*/__init__.py"))
    if path.parent.name != "vector"
)
"""One package per env; what they share (``vlmrm.envs.vector``, ``classic``, ``spec``, ...) sits beside them."""
REGISTRATION_TABLES = ("vlmrm.envs.registry", "vlmrm.envs.gym_ids")
"""The two tables that name every built-in env (vlmrm's names, and the Gymnasium ids with the Humanoid's tasks)."""


def test_each_env_is_one_package_and_shared_code_knows_none_of_them() -> None:
    paths = {module_name(path): path for path in SRC.rglob("*.py")}

    def env_package(module: str) -> str | None:
        return next((package for package in ENV_PACKAGES if module.startswith(package)), None)

    crossings = [
        f"{name} imports {target}"
        for name, path in sorted(paths.items())
        if name.startswith("vlmrm.envs.") and name not in REGISTRATION_TABLES
        for target in sorted(imports_of(path, set(paths)))
        if env_package(target) is not None and env_package(target) != env_package(name)
    ]
    assert not crossings, "env code reaching into another env's package:\n  " + "\n  ".join(crossings)
    assert {"vlmrm.envs.cartpole", "vlmrm.envs.mountaincar", "vlmrm.envs.humanoid"} <= set(ENV_PACKAGES)
