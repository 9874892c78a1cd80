"""Old import paths of modules that moved keep working, with a :class:`DeprecationWarning` naming the new place.

``import vlmrm.rl.trainer`` gives :mod:`vlmrm.training.trainer` itself (the same module object, so
monkeypatching either name patches both). A module that was split (``vlmrm.envs.classic_control`` became
one package per env) gives a module whose names are looked up in its successors, in order. Installed by
``vlmrm/__init__.py``; the table is in CHANGELOG.md too. To be removed in vlmrm 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Callable
from types import ModuleType

MOVED = {
    "vlmrm.rl.checkpoints": "vlmrm.run.checkpoints",
    "vlmrm.rl.run_dir": "vlmrm.run.run_dir",
    "vlmrm.rl.trainer": "vlmrm.training.trainer",
    "vlmrm.rl.resume": "vlmrm.training.resume",
    "vlmrm.rl.callbacks": "vlmrm.training.callbacks",
    "vlmrm.rl.logs": "vlmrm.training.logs",
    "vlmrm.rl.tracking": "vlmrm.training.tracking",
    "vlmrm.rl.trainer_state": "vlmrm.training.trainer_state",
    "vlmrm.rl.guards": "vlmrm.training.guards",
    "vlmrm.envs.mountaincar_textured": "vlmrm.envs.mountaincar.textured",
    "vlmrm.envs.vector.textured": "vlmrm.envs.mountaincar.vector",
}
"""Old module name -> new module name (vlmrm 0.2)."""

SPLIT = {
    "vlmrm.envs.classic_control": (
        "vlmrm.envs.classic",
        "vlmrm.envs.cartpole.spec",
        "vlmrm.envs.cartpole.draw",
        "vlmrm.envs.cartpole.env",
        "vlmrm.envs.mountaincar.spec",
        "vlmrm.envs.mountaincar.draw",
        "vlmrm.envs.mountaincar.env",
    ),
    "vlmrm.envs.vector.classic_control": ("vlmrm.envs.cartpole.vector", "vlmrm.envs.mountaincar.vector"),
}
"""Old module name -> the modules its public names went to (vlmrm 0.2)."""


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old names of :data:`MOVED`; loading one puts the new module in its place."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec:
        if fullname not in MOVED and fullname not in SPLIT:
            return None  # type: ignore[return-value]
        return importlib.util.spec_from_loader(fullname, self)  # type: ignore[return-value]

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # a placeholder, replaced in exec_module

    def exec_module(self, module: ModuleType) -> None:
        if module.__name__ in SPLIT:
            _forward(module, SPLIT[module.__name__])
            return
        new = MOVED[module.__name__]
        warnings.warn(
            f"{module.__name__} moved to {new} in vlmrm 0.2; import it from there (the old name goes in 0.3).",
            DeprecationWarning,
            stacklevel=2,
        )
        # The import system returns what sys.modules holds once the loader is done: the new module.
        sys.modules[module.__name__] = importlib.import_module(new)


def _forward(module: ModuleType, successors: tuple[str, ...]) -> None:
    """Make ``module`` answer each name from the first successor that has it, warning once per name."""
    warnings.warn(
        f"{module.__name__} was split into {', '.join(successors)} in vlmrm 0.2; import from those "
        "(the old name goes in 0.3).",
        DeprecationWarning,
        stacklevel=3,
    )

    def __getattr__(name: str) -> object:
        for successor in successors:
            new = importlib.import_module(successor)
            if not name.startswith("__") and hasattr(new, name):
                value = getattr(new, name)
                setattr(module, name, value)  # found once, then an ordinary attribute
                return value
        raise AttributeError(
            f"module {module.__name__!r} has no attribute {name!r} (it was split into {', '.join(successors)})"
        )

    module.__getattr__ = __getattr__  # type: ignore[method-assign]


def install() -> None:
    """Add the finder after the usual ones (once): only names no file answers reach it."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())


def moved_names(module: str, names: dict[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for names that left ``module`` while the module stayed: each gives the object
    from its new module, with a :class:`DeprecationWarning` naming it."""

    def __getattr__(name: str) -> object:
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(
            f"{module}.{name} moved to {names[name]} in vlmrm 0.2; import it from there (the old name goes in 0.3).",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(names[name]), name)

    return __getattr__
