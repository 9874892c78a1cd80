"""Choose an offscreen OpenGL backend for MuJoCo before MuJoCo is imported.

MuJoCo's default backend (GLFW) needs a display, which servers and CI machines lack. When the
user has not set ``MUJOCO_GL`` we probe EGL, then OSMesa, each in a short subprocess (a backend
cannot be switched once MuJoCo is loaded), and export the first that works. Subprocesses
inherit the environment variables, so vector-env workers use the same backend.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from vlmrm.errors import RenderBackendError

logger = logging.getLogger(__name__)

CANDIDATE_BACKENDS: tuple[str, ...] = ("egl", "osmesa")

_PROBE = "import mujoco\nctx = mujoco.GLContext(16, 16)\nctx.make_current()\nctx.free()\n"


def _backend_env(backend: str) -> dict[str, str]:
    env = {"MUJOCO_GL": backend}
    # PyOpenGL must agree with MuJoCo; "glfw" is the only value PyOpenGL does not understand.
    if backend in ("egl", "osmesa"):
        env["PYOPENGL_PLATFORM"] = backend
    return env


def probe_backend(backend: str, timeout: float = 60.0) -> tuple[bool, str]:
    """Try to create a MuJoCo GL context with ``backend`` in a fresh process.

    Returns ``(works, error_text)``.
    """
    env = {**os.environ, **_backend_env(backend)}
    try:
        result = subprocess.run(
            [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    if result.returncode == 0:
        return True, ""
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    return False, lines[-1] if lines else f"exit code {result.returncode}"


def ensure_gl_backend() -> str:
    """Make sure MuJoCo will render offscreen; return the backend in use.

    Respects a ``MUJOCO_GL`` the user set. Otherwise probes :data:`CANDIDATE_BACKENDS` and
    exports the first that works. Raises :class:`RenderBackendError` naming every backend tried
    when none works.
    """
    chosen = os.environ.get("MUJOCO_GL")
    if chosen:
        for key, value in _backend_env(chosen).items():
            os.environ.setdefault(key, value)
        return chosen
    if "mujoco" in sys.modules:
        logger.warning(
            "mujoco was imported before vlmrm chose a GL backend; offscreen rendering may fail. "
            "Set MUJOCO_GL=egl (or osmesa) before starting Python."
        )
    failures: list[str] = []
    for backend in CANDIDATE_BACKENDS:
        works, error = probe_backend(backend)
        if works:
            os.environ.update(_backend_env(backend))
            logger.info("vlmrm: rendering MuJoCo offscreen with MUJOCO_GL=%s", backend)
            return backend
        failures.append(f"  MUJOCO_GL={backend}: {error}")
    raise RenderBackendError(
        "No offscreen OpenGL backend works for MuJoCo on this machine.\n"
        + "\n".join(failures)
        + "\nFix one of them: EGL needs a GPU driver or Mesa's libEGL (apt-get install libegl1 "
        "libgl1-mesa-dri); OSMesa needs apt-get install libosmesa6. Then run again, or set "
        "MUJOCO_GL yourself to a backend that works."
    )
