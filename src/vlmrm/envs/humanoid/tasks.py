"""The Humanoid tasks and their sentences: plain data, importable without MuJoCo or Gymnasium.

``vlmrm --help``, ``vlmrm render`` and the env's options list the tasks from here without loading the simulator.
"""

from __future__ import annotations

TASKS: tuple[str, ...] = (
    "kneeling",
    "lotus",
    "standing",
    "arms-raised",
    "splits",
    "hands-on-hips",
    "arms-crossed",
    "one-leg",
)
"""The Humanoid tasks of the paper (Rocamonde et al. 2023, table 2)."""

TASK_PROMPTS: dict[str, str] = {
    "kneeling": "a humanoid robot kneeling",
    "lotus": "a humanoid robot seated down, meditating in the lotus position",
    "standing": "a humanoid robot standing up",
    "arms-raised": "a humanoid robot standing up, with both arms raised",
    "splits": "a humanoid robot practicing gymnastics, doing the side splits",
    "hands-on-hips": "a humanoid robot standing up with hands on hips",
    "arms-crossed": "a humanoid robot standing up, with its arms crossed",
    "one-leg": "a humanoid robot standing up on one leg",
}
"""The paper's goal sentence for each task."""

DEFAULT_TASK = "kneeling"
"""The task of landscapes and prompts when none is named."""

BASELINE_PROMPT = "a humanoid robot"
"""The paper's baseline sentence for every Humanoid task."""
