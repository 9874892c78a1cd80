"""Training: one run from a config to a run directory, and continuing it.

- :mod:`~vlmrm.training.trainer`: :func:`~vlmrm.training.trainer.train` and :func:`~vlmrm.training.trainer.resume`.
- :mod:`~vlmrm.training.resume`: where and how an interrupted run continues.
- :mod:`~vlmrm.training.callbacks`: checkpoints, evaluations, progress and stopping, as SB3 callbacks.
- :mod:`~vlmrm.training.logs`: TensorBoard and CSV logs, cut back when a run resumes.
- :mod:`~vlmrm.training.tracking`: Weights & Biases.
- :mod:`~vlmrm.training.guards`: NaN rewards, signals and write errors.
- :mod:`~vlmrm.training.trainer_state`: what a checkpoint carries besides the model.

Above :mod:`vlmrm.evaluation` (training evaluates and inspects its policy); the stable-baselines3 glue it
drives is :mod:`vlmrm.rl`, the run directory :mod:`vlmrm.run`. The names below load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vlmrm._lazy import lazy_getattr

if TYPE_CHECKING:
    from vlmrm.training.trainer import TrainResult, resume, train

_EXPORTS = {
    "train": "vlmrm.training.trainer",
    "resume": "vlmrm.training.trainer",
    "TrainResult": "vlmrm.training.trainer",
}
__all__ = ["TrainResult", "resume", "train"]


__getattr__ = lazy_getattr(__name__, _EXPORTS)
