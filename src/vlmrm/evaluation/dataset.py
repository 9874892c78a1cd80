"""Labelled state datasets: frames of rollouts, their simulator states, and yes/no labels.

A dataset directory holds::

    DIR/dataset.json        what was collected: env, options, render size, policy, episodes, seed
    DIR/manifest.jsonl      one JSON object per frame (see :func:`collect_dataset`)
    DIR/frames/*.png        the frames, at the env's render size
    DIR/labels.json         answers from ``vlmrm dataset label`` (written atomically after each one),
                            each with the SHA-256 of the frame it judged

Each manifest record has ``index``, ``frame`` (path relative to DIR), ``episode``, ``step`` and the
simulator state that produced the frame: ``state`` (the state vector) for classic control,
``qpos`` and ``qvel`` for MuJoCo. With ``label_with_detector`` it also has ``is_success``, the
env's own success detector for that state, so studies can run without a human.

The frame of a step shows the state the step reached (``s'`` of the transition), which is what a
VLM reward scores.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlmrm.errors import CheckpointError, ConfigError, VLMRMError
from vlmrm.files import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

DATASET_FORMAT = "vlmrm-dataset/1"
LABELS_FORMAT = "vlmrm-labels/2"
"""Labels files since format 2 hold ``sha256``: the digest of each labelled frame's PNG when it was judged."""
MANIFEST = "manifest.jsonl"
METADATA = "dataset.json"
LABELS = "labels.json"
FRAMES = "frames"
ANSWERS = ("yes", "no", "skip")


class DatasetError(VLMRMError):
    """A dataset directory is missing, incomplete or inconsistent."""


# -- tasks -------------------------------------------------------------------------------------------


def known_tasks(env: str | None = None) -> dict[str, str]:
    """Task names and their sentences (:meth:`EnvSpec.task_sentences <vlmrm.envs.spec.EnvSpec.task_sentences>`):
    every env's default goal, and the named tasks of ``env`` (of every env when ``env`` is ``None``)."""
    from vlmrm.envs.registry import ENV_REGISTRY

    tasks: dict[str, str] = {}
    for name, spec in ENV_REGISTRY.items():
        if not spec.tasks or env is None or env.lower().startswith(name):
            tasks.update(spec.task_sentences())
    return tasks


def task_sentence(task: str, env: str | None = None) -> str:
    """The sentence for ``task``: a known task name (``cartpole``, ``mountaincar``, a humanoid task),
    or, if it contains a space, the sentence itself."""
    text = task.strip()
    if not text:
        raise ConfigError("The task is empty; give a task name or a sentence that describes the goal.")
    tasks = known_tasks(env)
    if text in tasks:
        return tasks[text]
    if text.lower() in tasks:
        return tasks[text.lower()]
    if " " in text:
        return text
    import difflib

    close = difflib.get_close_matches(text, list(tasks), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(
        f"Unknown task {task!r}.{hint} Give one of {', '.join(sorted(tasks))} or a sentence "
        "(in quotes) that describes the goal."
    )


# -- reading datasets ------------------------------------------------------------------------------


@dataclass
class Dataset:
    """A dataset directory loaded into memory (frames are read on demand)."""

    root: Path
    metadata: dict[str, Any]
    records: list[dict[str, Any]]

    @property
    def env(self) -> str:
        return str(self.metadata.get("env", ""))

    def frame_path(self, record: Mapping[str, Any]) -> Path:
        """The file of ``record``'s frame; :class:`DatasetError` unless it lies inside the dataset directory.

        A manifest is data, not a list of files to hand out: ``/etc/passwd``, ``../x`` or a link out of
        the directory are refused, whatever the manifest says (paths are compared resolved).
        """
        root = self.root.resolve()
        path = (root / str(record["frame"])).resolve()
        if not path.is_relative_to(root) or path == root:
            raise DatasetError(
                f"{self.root / MANIFEST}: frame {record['frame']!r} is not a file inside {self.root}; "
                "frames must be paths relative to the dataset directory (collect the dataset again)."
            )
        return path

    def frame_digest(self, record: Mapping[str, Any]) -> str:
        """The SHA-256 of ``record``'s frame file (labels are tied to the image they judged by it)."""
        path = self.frame_path(record)
        try:
            return hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise DatasetError(_unreadable_frame(path, exc)) from None

    def load_frames(self, records: Iterable[Mapping[str, Any]] | None = None) -> np.ndarray:
        """The frames of ``records`` (default: all) as ``(N, H, W, 3)`` uint8."""
        from PIL import Image, UnidentifiedImageError

        chosen = self.records if records is None else list(records)
        frames = []
        for record in chosen:
            path = self.frame_path(record)
            try:
                with Image.open(path) as image:
                    frames.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
            except (OSError, UnidentifiedImageError) as exc:
                raise DatasetError(_unreadable_frame(path, exc)) from None
        if not frames:
            return np.zeros((0, 1, 1, 3), np.uint8)
        shapes = {f.shape for f in frames}
        if len(shapes) > 1:
            raise DatasetError(f"Frames in {self.root} differ in size: {sorted(shapes)}.")
        return np.stack(frames)


def _unreadable_frame(path: Path, exc: BaseException) -> str:
    why = "it is missing" if isinstance(exc, FileNotFoundError) else f"{type(exc).__name__}: {exc}"
    return (
        f"Cannot read frame {path} ({why}); the dataset is incomplete. Collect it again with "
        "`vlmrm dataset collect ENV --out DIR --overwrite`."
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"Cannot read {path} ({type(exc).__name__}: {exc}).") from None


def load_dataset(root: str | Path) -> Dataset:
    """Read ``dataset.json`` and ``manifest.jsonl`` of a dataset directory."""
    root = Path(root)
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise DatasetError(
            f"{root} is not a dataset directory: {MANIFEST} is missing. Collect one with "
            "`vlmrm dataset collect ENV --out DIR`."
        )
    metadata: dict[str, Any] = {}
    if (root / METADATA).exists():
        try:
            metadata = json.loads(_read_text(root / METADATA))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{root / METADATA} is not valid JSON ({exc}); collect the dataset again.") from None
        if not isinstance(metadata, dict):
            raise DatasetError(
                f"{root / METADATA} holds a {type(metadata).__name__}, not a JSON object; collect the dataset again."
            )
    records = []
    for number, line in enumerate(_read_text(manifest).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{manifest}, line {number}: not valid JSON ({exc.msg}).") from exc
        if not isinstance(record, dict) or not isinstance(record.get("frame"), str):
            raise DatasetError(
                f"{manifest}, line {number}: not a frame record (a JSON object with a 'frame' path), "
                f"got {line.strip()[:60]!r}."
            )
        records.append(record)
    return Dataset(root, metadata, records)


# -- labels ------------------------------------------------------------------------------------------


def labels_path(root: str | Path, labels: str | Path | None = None) -> Path:
    """The labels file: ``labels`` as given (a relative path is relative to the working directory, like
    any path on a command line), default ``root/labels.json``."""
    if labels is None:
        return Path(root) / LABELS
    return Path(labels).absolute()


def read_labels(path: str | Path) -> dict[str, Any]:
    """Read a labels file: ``{"format", "task", "sentence", "labels": {frame: "yes"|"no"|"skip"}}``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(
            f"No labels file at {path}; label frames with `vlmrm dataset label DIR --task TASK`."
        ) from None
    except IsADirectoryError:
        raise DatasetError(f"The labels file {path} is a directory; give another --labels file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"Cannot read the labels file {path} ({type(exc).__name__}: {exc}).") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is not valid JSON ({exc.msg}).") from exc
    if not isinstance(data, dict) or not isinstance(data.get("labels"), dict):
        raise DatasetError(f"{path} is not a labels file (no 'labels' object).")
    if not isinstance(data.get("sha256", {}), dict):
        raise DatasetError(f"{path} is not a labels file ('sha256' is not an object).")
    return data


def stale_labels(dataset: Dataset, data: Mapping[str, Any], frames: Iterable[str]) -> tuple[list[str], list[str]]:
    """Of the labelled ``frames``: those whose image changed since it was judged, and those with no digest.

    A labels file records the SHA-256 of each frame it judged (``sha256``); a frame collected again
    (``collect --overwrite``) has another digest, and its old answer says nothing about the new image.
    Files written before format 2 have no digests, so their answers cannot be checked.
    """
    digests = data.get("sha256") or {}
    records = {str(r["frame"]): r for r in dataset.records}
    stale, unchecked = [], []
    for frame in frames:
        if frame not in digests:
            unchecked.append(frame)
        elif digests[frame] != dataset.frame_digest(records[frame]):
            stale.append(frame)
    return stale, unchecked


def dataset_task(dataset: Dataset) -> str | None:
    """The task a dataset was collected for: ``collect --task``, else its env's ``task`` option."""
    task = dataset.metadata.get("task") or (dataset.metadata.get("env_options") or {}).get("task")
    return str(task) if task else None


def detector_sentence(dataset: Dataset) -> str | None:
    """The sentence of the task whose success detector labelled ``dataset`` (``None`` when unknown).

    The detector labels a task *name* (``kneeling``); the reward must score that task's sentence
    (``a humanoid robot kneeling``), the same one :func:`task_sentence` gives the labeller.
    """
    task = dataset_task(dataset)
    if task is None:
        return None
    try:
        return task_sentence(task, dataset.env or None)
    except ConfigError as exc:
        logger.warning("The dataset's task has no known sentence (%s)", exc)
        return None


def binary_labels(
    dataset: Dataset, source: str = "human", labels_file: str | Path | None = None
) -> tuple[list[dict[str, Any]], np.ndarray, str | None]:
    """The records with a yes/no label, their labels as 0/1, and the labelled task's sentence.

    ``source`` is ``human`` (the labels file; skipped and unlabelled frames are left out) or
    ``detector`` (the manifest's ``is_success``, from ``collect --label-with-detector``).
    """
    if source == "detector":
        chosen = [r for r in dataset.records if r.get("is_success") is not None]
        if not chosen:
            raise DatasetError(
                f"{dataset.root} has no detector labels; collect with --label-with-detector "
                "(needs an env that reports info['is_success'])."
            )
        return chosen, np.array([int(bool(r["is_success"])) for r in chosen]), detector_sentence(dataset)
    if source != "human":
        raise ConfigError(f"Unknown label source {source!r}; use human or detector.")
    path = labels_path(dataset.root, labels_file)
    data = read_labels(path)
    answers = data["labels"]
    chosen, values = [], []
    for record in dataset.records:
        answer = answers.get(str(record["frame"]))
        if answer in ("yes", "no"):
            chosen.append(record)
            values.append(1 if answer == "yes" else 0)
    stale, unchecked = stale_labels(dataset, data, [str(r["frame"]) for r in chosen])
    if stale:
        raise DatasetError(
            f"{len(stale)} of the {len(chosen)} yes/no answers in {path} judged other images than the frames now "
            f"in {dataset.root} (e.g. {stale[0]}; the dataset was collected again). Label the new frames: "
            f"`vlmrm dataset label {dataset.root}` asks again for these frames, or give another --labels file."
        )
    if unchecked:
        logger.warning(
            "%d answers in %s have no image digest (written by an older vlmrm); they cannot be checked against "
            "the frames, so make sure the dataset was not collected again since it was labelled",
            len(unchecked),
            path,
        )
    return chosen, np.array(values, dtype=int), data.get("sentence")


# -- collecting ----------------------------------------------------------------------------------------

Policy = Callable[[Any], Any]


def policy_checkpoint(policy: str | Path) -> Path:
    """The checkpoint file that ``policy`` names: a ``.zip`` file, or a vlmrm run directory (or its
    ``checkpoints`` folder), which stands for its newest good checkpoint.

    Checkpoints are named ``checkpoints/step_<N>.zip`` with ``N`` zero-padded (``step_0000100000.zip``),
    so a path typed from memory often misses; the error then lists the checkpoints that exist.
    """
    from vlmrm.run.checkpoints import find_latest_good_checkpoint

    path = Path(policy)
    if path.is_file():
        return path
    if not path.is_dir():
        raise CheckpointError(_missing_policy_message(path))
    directory = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    try:
        found = find_latest_good_checkpoint(directory)
    except CheckpointError as exc:
        raise CheckpointError(f"Cannot use --policy {path}: {exc}") from None
    if found is None:
        raise CheckpointError(
            f"No checkpoint in {directory} (checkpoints are saved as checkpoints/step_<N>.zip during training); "
            "give --policy random, a stable-baselines3 .zip or a vlmrm run directory that has checkpoints."
        )
    for bad, why in found.skipped:
        logger.warning("checkpoint %s is unusable (%s); using %s instead", bad, why, found.path)
    logger.debug("policy: %s (step %d), the newest good checkpoint in %s", found.path, found.step, directory)
    return found.path


def _missing_policy_message(path: Path) -> str:
    """Say what exists near a ``--policy`` path that does not: the checkpoints, or the run directories."""
    from vlmrm.run.checkpoints import list_checkpoints

    existing = next(parent for parent in path.parents if parent.is_dir()) if path.parents else Path(".")
    found = list_checkpoints(existing) or list_checkpoints(existing / "checkpoints")
    if found:
        folder = found[0][1].parent
        run = folder.parent if folder.name == "checkpoints" else folder
        names = ", ".join(p.name for _, p in found[-6:])
        more = f" (and {len(found) - 6} older)" if len(found) > 6 else ""
        return (
            f"No checkpoint at {path}. {folder} holds: {names}{more}. Give one of these, or --policy {run} "
            "for its newest good checkpoint."
        )
    runs = sorted(d.name for d in existing.iterdir() if (d / "checkpoints").is_dir())
    if runs:
        return f"No checkpoint at {path}. Run directories in {existing}: {', '.join(runs)}; give --policy RUN_DIR."
    return f"No checkpoint at {path}; give --policy random, a stable-baselines3 .zip or a vlmrm run directory."


def load_sb3_policy(path: str | Path, env: Any, deterministic: bool = False) -> Policy:
    """A policy ``obs -> action`` from a stable-baselines3 checkpoint: a ``.zip`` file, or a vlmrm run directory
    (its newest good checkpoint, see :func:`policy_checkpoint`).

    A checkpoint of a vlmrm run loads as the run's ``rl.algorithm``; another ``.zip`` as the algorithm that
    saved it. A policy of another env is refused.
    """
    from vlmrm.run.checkpoints import load_model, saved_algorithm
    from vlmrm.run.run_dir import RunDir

    path = policy_checkpoint(path)
    run = RunDir.of_checkpoint(path)
    if run is not None:
        model = run.load_model(path, env=env)
    else:
        algorithm = saved_algorithm(path)
        if algorithm is None:
            raise CheckpointError(
                f"Cannot load {path}: it is not a stable-baselines3 checkpoint (a .zip that model.save wrote)."
            )
        model = load_model(path, algorithm, env=env)
    logger.info("loaded %s policy from %s", type(model).__name__, path)

    def act(obs: Any) -> Any:
        action, _ = model.predict(obs, deterministic=deterministic)
        return action

    return act


def simulator_state(env: Any) -> dict[str, list[float]]:
    """The state that reproduces the current frame: ``qpos``/``qvel`` (MuJoCo) or ``state`` (classic control)."""
    from vlmrm.envs.states import sim_state

    return {key: np.asarray(value, float).ravel().tolist() for key, value in sim_state(env).items()}


@dataclass(frozen=True)
class CollectSettings:
    """What :func:`collect_dataset` collects (``vlmrm dataset collect`` has one flag per field).

    Attributes:
        episodes: number of episodes.
        policy: ``random`` (uniform actions), a stable-baselines3 ``.zip`` checkpoint, or a vlmrm run
            directory (its newest good checkpoint; see :func:`policy_checkpoint`).
        render_size: frame size in pixels (use the reward model's input size, usually 224).
        episode_length: steps per episode (default: the env's).
        every: keep one frame in ``every`` steps.
        label_with_detector: store the env's ``info["is_success"]`` of each frame.
        deterministic: act with the policy's mean action instead of sampling.
        seed: seeds the env resets and random actions.
        task: the task name the detector (and later labelling) refers to; stored in dataset.json.
        env_options: options for :func:`vlmrm.envs.make_env` (e.g. ``{"textured": True}``).
        overwrite: replace an existing dataset in the output directory.
        progress_bar: show a tqdm bar over the steps on stderr (collecting can take minutes).
    """

    episodes: int = 5
    policy: str = "random"
    render_size: int = 224
    episode_length: int | None = None
    every: int = 1
    label_with_detector: bool = False
    deterministic: bool = False
    seed: int = 0
    task: str | None = None
    env_options: Mapping[str, Any] = field(default_factory=dict)
    overwrite: bool = False
    progress_bar: bool = True

    def __post_init__(self) -> None:
        if self.episodes <= 0:
            raise ConfigError(f"episodes must be positive, got {self.episodes}.")
        if self.every <= 0:
            raise ConfigError(f"every must be positive, got {self.every}.")


def collect_dataset(
    env_name: str, out_dir: str | Path, settings: CollectSettings | None = None, **fields: Any
) -> Dataset:
    """Roll out a policy in ``env_name`` and save every ``every``-th frame with its state to ``out_dir``.

    ``settings`` (or the same fields as keywords: ``collect_dataset("cartpole", out, episodes=2)``) say
    what to collect; see :class:`CollectSettings`. ``out_dir`` is created and must be empty unless
    ``overwrite``.
    """
    from vlmrm.envs import get_env_spec, make_env

    settings = settings or CollectSettings(**fields)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise DatasetError(f"--out {out} is a file, not a directory; choose another --out.")
    if not out.exists() and any(parent.exists() and not parent.is_dir() for parent in out.parents):
        raise DatasetError(f"--out {out} lies under a file, not a directory; choose another --out.")
    if out.exists() and any(out.iterdir()) and not settings.overwrite:
        raise DatasetError(f"{out} is not empty; choose another --out or pass --overwrite.")
    options = dict(settings.env_options)
    spec = get_env_spec(env_name)
    if settings.task is not None and "task" in spec.option_names() and "task" not in options:
        options["task"] = settings.task  # e.g. the humanoid's success detector
    checkpoint = None if settings.policy == "random" else policy_checkpoint(settings.policy)
    env = make_env(env_name, render_size=settings.render_size, episode_length=settings.episode_length, **options)
    length = settings.episode_length or spec.default_episode_length
    try:
        if checkpoint is None:
            env.action_space.seed(settings.seed)
            act: Policy = lambda obs: env.action_space.sample()  # noqa: E731
        else:
            act = load_sb3_policy(checkpoint, env, settings.deterministic)
        records = _roll_out(env, act, out, settings, length, f"collect {env_name}")
    finally:
        env.close()
    if settings.label_with_detector and all(record["is_success"] is None for record in records):
        hint = " (give the task whose detector to use, e.g. --task kneeling)" if "task" in spec.option_names() else ""
        raise ConfigError(
            f"Environment {env_name!r} reports no success flag (info['is_success']){hint}; "
            "collect without --label-with-detector and label the frames by hand."
        )
    atomic_write_text(out / MANIFEST, "".join(json.dumps(r) + "\n" for r in records))
    metadata = {
        "format": DATASET_FORMAT,
        "env": env_name,
        **asdict(settings),
        "env_options": options,
        "policy": "random" if checkpoint is None else str(checkpoint.resolve()),
        "frames": len(records),
    }
    metadata.pop("overwrite"), metadata.pop("progress_bar")
    atomic_write_json(out / METADATA, metadata)
    logger.debug("wrote %d frames to %s", len(records), out)
    return Dataset(out, metadata, records)


def _roll_out(
    env: Any, act: Policy, out: Path, settings: CollectSettings, length: int, description: str
) -> list[dict[str, Any]]:
    """Run the episodes, save the kept frames as PNG under ``out/frames``; return their manifest records."""
    from PIL import Image
    from tqdm.auto import tqdm

    frames_dir = out / FRAMES
    frames_dir.mkdir(parents=True, exist_ok=True)
    for stale in frames_dir.glob("*.png"):
        stale.unlink()
    records: list[dict[str, Any]] = []
    total, quiet = settings.episodes * length, not settings.progress_bar
    with tqdm(total=total, disable=quiet, unit="step", unit_scale=True, dynamic_ncols=True, desc=description) as bar:
        for episode in range(settings.episodes):
            obs, _ = env.reset(seed=settings.seed + episode)
            step, done = 0, False
            while not done:
                obs, _, terminated, truncated, info = env.step(act(obs))
                step += 1
                bar.update(1)
                done = bool(terminated or truncated)
                if done and step < length and bar.total is not None:  # ended early: the total shrinks
                    bar.total -= length - step
                    bar.refresh()
                if (step - 1) % settings.every:
                    continue
                name = f"{FRAMES}/e{episode:04d}_s{step:05d}.png"
                Image.fromarray(np.asarray(env.render(), dtype=np.uint8)).save(out / name, optimize=False)
                record = {"index": len(records), "frame": name, "episode": episode, "step": step}
                record.update(simulator_state(env))
                if settings.label_with_detector:
                    record["is_success"] = bool(info["is_success"]) if "is_success" in info else None
                records.append(record)
    return records
