"""``vlmrm render``: draw a Humanoid pose with the project's scene and camera.

Renders the start state or a task's hand-built success pose to a PNG, exactly as the training
environment would show it to the reward model, and says whether the task's detector accepts it.
``vlmrm render all`` draws a labelled contact sheet of the start state and every success pose.
"""

from __future__ import annotations

import argparse
import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmrm.envs.humanoid.tasks import TASKS
from vlmrm.errors import ConfigError

if TYPE_CHECKING:
    from vlmrm.envs.humanoid.env import VLMHumanoidEnv


def register(subparsers: Any) -> None:
    """Add the ``render`` subcommand."""
    parser = subparsers.add_parser(
        "render",
        help="Render a Humanoid pose (start state or a task's success pose) to a PNG.",
        description=(
            "Render the Humanoid's start state or a task's hand-built success pose with the training "
            "scene and camera, and report whether the task's success detector accepts the pose. "
            "TASK 'all' draws a contact sheet of the start state and every task's success pose."
        ),
    )
    parser.add_argument("task", metavar="TASK", help=f"one of: {', '.join(TASKS)}; or 'all' for a contact sheet")
    parser.add_argument(
        "--pose", choices=("start", "success"), default="success", help="which pose to draw (default: success)"
    )
    parser.add_argument("--out", required=True, help="PNG file to write (parent folders are created)")
    parser.add_argument("--size", type=int, default=224, help="frame size in pixels (default: 224)")
    parser.add_argument("--no-textures", action="store_true", help="Gymnasium's plain look instead of the scene")
    parser.add_argument("--no-shadows", action="store_true", help="render without shadows")
    parser.add_argument("--no-reflections", action="store_true", help="render without reflections")
    parser.add_argument("--no-skybox", action="store_true", help="render without the sky (black background)")
    parser.add_argument("--no-antialiasing", action="store_true", help="render without multisampling (faster)")
    parser.add_argument(
        "--camera",
        choices=("paper", "gymnasium"),
        default="paper",
        help="camera preset: the paper's (default) or Gymnasium Humanoid-v5's; the options below change it",
    )
    parser.add_argument("--camera-distance", type=float, help="metres (paper: 3.5)")
    parser.add_argument("--camera-elevation", type=float, help="degrees (paper: -10)")
    parser.add_argument("--camera-azimuth", type=float, help="degrees, 180 faces the front (paper: 180)")
    parser.add_argument(
        "--camera-lookat", type=float, nargs=3, metavar=("X", "Y", "Z"), help="point looked at (paper: 0 0 1)"
    )
    parser.add_argument(
        "--camera-tracking", action="store_true", help="follow the torso (the look-at point moves with it)"
    )
    parser.set_defaults(handler=run_render)


def _check_task(task: str) -> str:
    if task == "all" or task in TASKS:
        return task
    close = difflib.get_close_matches(task, [*TASKS, "all"], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"Unknown humanoid task {task!r}.{hint} Tasks: {', '.join(TASKS)}, or 'all'.")


def _contact_sheet(frames: list[tuple[str, Any]], columns: int = 3) -> Any:
    """Frames in a grid, each with its label underneath."""
    from PIL import Image, ImageDraw, ImageFont

    size = frames[0][1].shape[0]
    label_h = max(16, size // 10)
    font = ImageFont.load_default(size=max(10, int(label_h * 0.6)))
    rows = (len(frames) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * size, rows * (size + label_h)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (label, frame) in enumerate(frames):
        x, y = (i % columns) * size, (i // columns) * (size + label_h)
        sheet.paste(Image.fromarray(frame), (x, y))
        draw.text((x + 4, y + size + label_h * 0.15), label, fill=(0, 0, 0), font=font)
    return sheet


def run_render(args: argparse.Namespace) -> int:
    """Render the requested pose(s) and write the PNG."""
    from vlmrm.memory import check_fits

    task = _check_task(args.task)
    if args.size <= 0:
        raise ConfigError(f"--size must be a positive number of pixels, got {args.size}.")
    images = len(TASKS) + 3 if task == "all" and args.pose != "start" else 2  # the frames, the sheet, the PNG
    check_fits(
        images * args.size * args.size * 3,
        f"--size {args.size}: {images} images of {args.size}×{args.size}×3 bytes",
        "Use a smaller --size.",
    )
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out must name a .png file, got {str(out)!r}.")

    import logging

    from PIL import Image

    from vlmrm.envs.humanoid.options import CAMERA_PRESETS
    from vlmrm.envs.humanoid.success import humanoid_pose
    from vlmrm.envs.registry import make_env

    logging.getLogger("OpenGL").setLevel(logging.WARNING)  # PyOpenGL's "no OpenGL_accelerate" notice
    camera = CAMERA_PRESETS[args.camera].model_dump()
    changes = {
        "distance": args.camera_distance,
        "elevation": args.camera_elevation,
        "azimuth": args.camera_azimuth,
        "lookat": args.camera_lookat,
        "tracking": args.camera_tracking or None,
    }
    camera.update({key: value for key, value in changes.items() if value is not None})
    look = {
        "textured": not args.no_textures,
        "shadows": not args.no_shadows,
        "reflections": not args.no_reflections,
        "skybox": not args.no_skybox,
        "antialiasing": not args.no_antialiasing,
    }
    import mujoco

    try:
        env = make_env("humanoid", render_size=args.size, camera=camera, look=look)
        env.reset(seed=0)
    except mujoco.FatalError as exc:
        raise ConfigError(f"MuJoCo cannot draw {args.size}×{args.size} frames ({exc}); use a smaller --size.") from None
    try:
        humanoid: VLMHumanoidEnv = env.unwrapped  # type: ignore[assignment]

        def draw(qpos: Any) -> Any:
            humanoid.set_qpos(qpos)
            return humanoid.render()

        if task == "all" and args.pose == "start":
            image = Image.fromarray(draw(humanoid_pose(None, "start")))
            summary = "the start state (the same for every task)"
        elif task == "all":
            frames = [("start", draw(humanoid_pose(None, "start")))]
            for name in TASKS:
                frame = draw(humanoid_pose(name, "success"))
                check = humanoid.check_pose(name)
                frames.append((f"{name} ({'detected' if check.success else 'NOT detected'})", frame))
            image = _contact_sheet(frames)
            summary = f"contact sheet of the start state and {len(TASKS)} success poses"
        else:
            frame = draw(humanoid_pose(task, args.pose))
            check = humanoid.check_pose(task)
            image = Image.fromarray(frame)
            verdict = "accepts" if check.success else "rejects"
            summary = f"{task} {args.pose} pose; the {task} detector {verdict} it (margin {check.margin:+.3f})"
    finally:
        env.close()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        image.save(out)
    except OSError as exc:
        raise ConfigError(f"Cannot write {str(out)!r}: {exc}") from exc
    print(f"wrote {out} ({image.width}x{image.height}): {summary}")
    return 0
