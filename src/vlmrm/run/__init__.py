"""A run's files and their one owner, :class:`~vlmrm.run.run_dir.RunDir`.

- :mod:`~vlmrm.run.run_dir`: the run directory: config, summary, checkpoints, lock.
- :mod:`~vlmrm.run.checkpoints`: the checkpoint files, written atomically, checked and loaded.
- :mod:`~vlmrm.run.lock`: :class:`~vlmrm.run.lock.RunLock`, one writer per run directory.

Below :mod:`vlmrm.evaluation` and :mod:`vlmrm.training`, above :mod:`vlmrm.rl`.
"""

from vlmrm.run.lock import RunLock
from vlmrm.run.run_dir import RunDir, resume_command

__all__ = ["RunDir", "RunLock", "resume_command"]
