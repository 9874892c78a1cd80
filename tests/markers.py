"""Skip markers for tests that need an optional tool some machines lack (the GPU image has neither).

A skip says which package to install; it never hides a failure of vlmrm's own code.
"""

from __future__ import annotations

import importlib.util

import pytest

from vlmrm.rl.video import video_encoder_problem

requires_pygame = pytest.mark.skipif(
    importlib.util.find_spec("pygame") is None,
    reason="Gymnasium's own classic-control rendering needs pygame (pip install 'gymnasium[classic-control]')",
)
requires_box2d = pytest.mark.skipif(
    importlib.util.find_spec("Box2D") is None, reason="Gymnasium's Box2D envs need box2d (pip install 'vlmrm[box2d]')"
)
requires_video_encoder = pytest.mark.skipif(
    video_encoder_problem() is not None, reason=f"no mp4 can be written here: {video_encoder_problem()}"
)


def skip_without_pygame() -> None:
    """In a fixture (marks do not apply to fixtures): skip the tests that use it where pygame is missing."""
    if importlib.util.find_spec("pygame") is None:
        pytest.skip(requires_pygame.kwargs["reason"])


def skip_without_video_encoder() -> None:
    """In a fixture: skip the tests that use it where no mp4 can be written."""
    if video_encoder_problem() is not None:
        pytest.skip(requires_video_encoder.kwargs["reason"])
