"""Old import paths of modules that moved keep working, with a :class:`DeprecationWarning` naming the new place.

``import vlmrm.rl.trainer`` gives :mod:`vlmrm.training.trainer` itself (the same module object, so
monkeypatching either name patches both). Installed by ``vlmrm/__init__.py``; the table is in
CHANGELOG.md too. To be removed in vlmrm 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
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
}
"""Old module name -> new module name (vlmrm 0.2)."""


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old names of :data:`MOVED`; loading one puts the new module in its place."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec:
        if fullname not in MOVED:
            return None  # type: ignore[return-value]
        return importlib.util.spec_from_loader(fullname, self)  # type: ignore[return-value]

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # a placeholder, replaced in exec_module

    def exec_module(self, module: ModuleType) -> None:
        new = MOVED[module.__name__]
        warnings.warn(
            f"{module.__name__} moved to {new} in vlmrm 0.2; import it from there (the old name goes in 0.3).",
            DeprecationWarning,
            stacklevel=2,
        )
        # The import system returns what sys.modules holds once the loader is done: the new module.
        sys.modules[module.__name__] = importlib.import_module(new)


def install() -> None:
    """Add the finder after the usual ones (once): only names no file answers reach it."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
