"""Checkpoints written atomically, so a kill or a full disk during a write never destroys the previous one.

A checkpoint at step ``N`` is::

    checkpoints/step_<N>.zip          the stable-baselines3 model (policy, optimiser, step counter, ...)
                                      plus a ``vlmrm_state.pkl`` member: RNG states, trainer state and
                                      the size and SHA-256 of the replay buffer file
    checkpoints/step_<N>.replay       the replay buffer (off-policy algorithms, ``logging.save_replay_buffer``):
                                      only the transitions it holds, in the format of :mod:`vlmrm.rl.replay_io`
    checkpoints/step_<N>.replay.pkl   instead, the whole buffer pickled: buffers that format does not know
                                      (``DictReplayBuffer``, ...) and checkpoints of older vlmrm versions

The replay buffer is written first and the zip last, each with :func:`vlmrm.files.atomic_write`: a checkpoint
exists once its zip exists, and the zip records what its replay buffer must look like, so a
half-written or mismatched pair is recognised and skipped (see :func:`find_latest_good_checkpoint`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmrm.errors import CheckpointError
from vlmrm.files import atomic_write, atomic_write_text

logger = logging.getLogger(__name__)

CHECKPOINT_PATTERN = re.compile(r"^step_(\d+)\.zip$")
REPLAY_SUFFIX = ".replay"
LEGACY_REPLAY_SUFFIX = ".replay.pkl"  # a pickled buffer
REPLAY_SUFFIXES = (REPLAY_SUFFIX, LEGACY_REPLAY_SUFFIX)
_COMPANION_PATTERN = re.compile(r"^(step_\d+)(\.replay|\.replay\.pkl)$")
CORRUPT_SUFFIX = ".corrupt"
STATE_MEMBER = "vlmrm_state.pkl"  # not *.pth: stable-baselines3 would try to load it as a state dict
STATE_FORMAT = 1


def checkpoint_path(directory: Path, step: int) -> Path:
    return directory / f"step_{step:010d}.zip"


def replay_path(checkpoint: Path, pickled: bool = False) -> Path:
    """``step_<N>.replay`` (``step_<N>.replay.pkl`` when ``pickled``) next to ``step_<N>.zip``."""
    return checkpoint.with_suffix(LEGACY_REPLAY_SUFFIX if pickled else REPLAY_SUFFIX)


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every checkpoint in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def prune_checkpoints(directory: Path, keep: int, companions: tuple[str, ...] = REPLAY_SUFFIXES) -> None:
    """Delete all but the newest ``keep`` checkpoints (and their companion files, by suffix)."""
    for _, path in list_checkpoints(directory)[:-keep] if keep > 0 else []:
        path.unlink(missing_ok=True)  # the zip first: a kill here leaves an orphan replay buffer, not a broken pair
        for suffix in companions:
            path.with_suffix(suffix).unlink(missing_ok=True)


def remove_orphan_companions(directory: Path) -> list[Path]:
    """Delete replay buffers whose checkpoint zip does not exist (a write interrupted between the two)."""
    removed = []
    if directory.is_dir():
        for path in directory.iterdir():
            match = _COMPANION_PATTERN.match(path.name)
            if match and not path.with_name(match.group(1) + ".zip").exists():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checkpoint(model: Any, path: Path, state: dict[str, Any], save_replay_buffer: bool) -> Path:
    """Write ``model`` (and its replay buffer) as the checkpoint ``path`` with ``state`` inside the zip.

    Raises ``OSError`` naming the file that could not be written; the previous checkpoints are
    untouched either way.
    """
    state = {**state, "format": STATE_FORMAT, "replay_buffer": None}
    buffer = getattr(model, "replay_buffer", None) if save_replay_buffer else None
    if buffer is not None:
        from vlmrm.rl import replay_io  # here: importing stable-baselines3 is slow, and only this needs it

        compact = replay_io.supports(buffer)
        replay = replay_path(path, pickled=not compact)
        info: dict[str, Any] = {}

        def write_replay(tmp: Path) -> None:
            if compact:
                written = replay_io.save_replay_buffer(buffer, tmp)
                info.update(file=replay.name, size=written.size, sha256=written.sha256)
                return
            with open(tmp, "wb") as handle:
                pickle.dump(buffer, handle, protocol=pickle.HIGHEST_PROTOCOL)
            info.update(file=replay.name, size=tmp.stat().st_size, sha256=_sha256(tmp))

        atomic_write(replay, write_replay, tmp_suffix="" if compact else ".pkl")
        state["replay_buffer"] = info

    def write_zip(tmp: Path) -> None:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(STATE_MEMBER, pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))

    try:
        atomic_write(path, write_zip, tmp_suffix=".zip")
    except BaseException:
        if state["replay_buffer"] is not None and not path.exists():  # no zip names it: an orphan
            (path.parent / state["replay_buffer"]["file"]).unlink(missing_ok=True)
        raise
    # Written again at the same step (say, interrupted right after resuming from it), a checkpoint
    # may leave a buffer file (of the other format, say) that its new zip does not name: delete it.
    kept = (state["replay_buffer"] or {}).get("file")
    for suffix in REPLAY_SUFFIXES:
        if path.with_suffix(suffix).name != kept:
            path.with_suffix(suffix).unlink(missing_ok=True)
    return path


def restore_replay_buffer(model: Any, path: Path) -> int:
    """Load the replay buffer file ``path`` of a checkpoint into ``model``; return the transitions it holds.

    ``step_<N>.replay`` is read into the buffer ``model`` already has (:mod:`vlmrm.rl.replay_io`);
    a pickled ``step_<N>.replay.pkl`` replaces it (stable-baselines3's ``load_replay_buffer``).
    """
    path = Path(path)
    if path.name.endswith(LEGACY_REPLAY_SUFFIX):
        model.load_replay_buffer(path)
        buffer = model.replay_buffer
        return (buffer.buffer_size if buffer.full else buffer.pos) * buffer.n_envs
    from vlmrm.rl import replay_io

    return replay_io.load_replay_buffer(model.replay_buffer, path)


@dataclass
class CheckpointInfo:
    """A checkpoint that passed :func:`verify_checkpoint`."""

    step: int
    path: Path
    state: dict[str, Any] | None  # None: written by a vlmrm without resume support
    replay: Path | None = None
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # newer checkpoints that were corrupt


def _step_of(path: Path) -> int:
    match = CHECKPOINT_PATTERN.match(path.name)
    if match is None:
        raise CheckpointError(f"{str(path)!r} is not a checkpoint file (expected checkpoints/step_<N>.zip).")
    return int(match.group(1))


def _problem(path: Path) -> tuple[dict[str, Any] | None, Path | None, str | None]:
    """``(state, replay_path, None)`` for a sound checkpoint, ``(None, None, why)`` otherwise."""
    try:
        if path.stat().st_size == 0:
            return None, None, "it is empty (truncated)"
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = {"data", "policy.pth"} - names
            if missing:
                return None, None, f"it is truncated or corrupt (the archive lacks {', '.join(sorted(missing))})"
            bad = archive.testzip()
            if bad is not None:
                return None, None, f"it is corrupt (member {bad!r} fails its CRC check)"
            state = pickle.loads(archive.read(STATE_MEMBER)) if STATE_MEMBER in names else None
    except FileNotFoundError:
        return None, None, "the file does not exist"
    except (zipfile.BadZipFile, EOFError, pickle.UnpicklingError, ValueError, OSError) as exc:
        return None, None, f"it is truncated or corrupt ({exc})"
    replay = None
    info = (state or {}).get("replay_buffer")
    if info:
        replay = path.parent / info["file"]
        if not replay.is_file():
            return None, None, f"its replay buffer {replay.name} is missing"
        size = replay.stat().st_size
        if size != info["size"]:
            return None, None, f"its replay buffer {replay.name} has {size} bytes, not {info['size']} (truncated)"
        if _sha256(replay) != info["sha256"]:
            return None, None, f"its replay buffer {replay.name} does not match its SHA-256 (corrupt)"
    return state, replay, None


def verify_checkpoint(path: Path) -> CheckpointInfo:
    """Check that ``path`` is a complete checkpoint; raise :class:`CheckpointError` naming the last good one if not."""
    path = Path(path)
    state, replay, why = _problem(path)
    if why is None:
        return CheckpointInfo(_step_of(path), path, state, replay)
    older = [p for step, p in list_checkpoints(path.parent) if step < _step_of(path)]
    good = next((p for p in reversed(older) if _problem(p)[2] is None), None)
    hint = f" The last good checkpoint is {good}." if good else " There is no older good checkpoint."
    raise CheckpointError(f"Checkpoint {path} is unusable: {why}.{hint}")


def find_latest_good_checkpoint(
    directory: Path, unusable: list[tuple[Path, str]] | None = None
) -> CheckpointInfo | None:
    """The newest sound checkpoint in ``directory`` (``None`` when there is none at all).

    ``unusable`` lists checkpoints already found not to load, with why; they and newer checkpoints
    that are truncated or corrupt are listed in ``skipped`` (the caller warns and sets them aside);
    when every checkpoint is unusable, :class:`CheckpointError` lists them.
    """
    skipped: list[tuple[Path, str]] = list(unusable or [])
    known = {path for path, _ in skipped}
    for step, path in reversed(list_checkpoints(directory)):
        if path in known:
            continue
        state, replay, why = _problem(path)
        if why is None:
            return CheckpointInfo(step, path, state, replay, skipped)
        skipped.append((path, why))
    if skipped:
        listing = "\n".join(f"  {path}: {why}" for path, why in skipped)
        raise CheckpointError(
            f"No usable checkpoint in {directory}:\n{listing}\n"
            "Move these files away to resume from step 0, or start a new run."
        )
    return None


def unused_name(path: Path) -> Path:
    """``path`` if nothing is there, else ``path.1``, ``path.2``, ...: never replace what a user may need."""
    candidate, number = path, 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.{number}")
    return candidate


def set_aside(path: Path) -> Path:
    """Rename a corrupt checkpoint (and its replay buffer) to ``*.corrupt`` (``*.corrupt.1``, ... when taken).

    Out of the way, never deleted, and an earlier corrupt copy of the same step is kept too.
    """
    target = unused_name(path.with_name(path.name + CORRUPT_SUFFIX))
    os.replace(path, target)
    suffix = target.name.removeprefix(path.name)  # ".corrupt" or ".corrupt.N", the same for every file
    for pickled in (False, True):
        replay = replay_path(path, pickled)
        if replay.exists():
            os.replace(replay, unused_name(replay.with_name(replay.name + suffix)))
    return target


# -- loading a checkpoint's model ----------------------------------------------------------------------------

_SB3_MODULE = re.compile(r"^stable_baselines3\.(\w+)\.")


def _saved_data(path: Path) -> dict[str, Any] | None:
    """The ``data`` member of a stable-baselines3 ``.zip``, read as JSON (nothing is unpickled)."""
    import json

    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return data if isinstance(data, dict) else None


def saved_algorithm(path: Path) -> str | None:
    """The algorithm (``sac``, ``dqn``, ``ppo``, ...) that saved a stable-baselines3 ``.zip``, from the module of
    the policy class it names; ``None`` when the file does not say."""
    policy = (_saved_data(path) or {}).get("policy_class")
    module = policy.get("__module__") if isinstance(policy, dict) else None
    match = _SB3_MODULE.match(module) if isinstance(module, str) else None
    if match is None:
        return None
    # stable_baselines3.common.policies.ActorCriticPolicy: PPO's (A2C shares it; vlmrm does not train A2C).
    return "ppo" if match.group(1) == "common" else match.group(1)


def saved_step(path: Path) -> int | None:
    """The environment step of a stable-baselines3 ``.zip`` (its ``num_timesteps``); ``None`` if it has none."""
    step = (_saved_data(path) or {}).get("num_timesteps")
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def _acts_in(model: Any, env: Any) -> bool:
    """Whether ``model`` can act in ``env``: observations of one shape, actions of one kind and shape.

    Not exact equality: a policy trained on Gymnasium's CartPole-v1 (angle bounds 0.42 rad) acts in vlmrm's
    CartPole (no termination, bounds pi) all the same.
    """
    model_actions, env_actions = model.action_space, env.action_space
    return (
        model.observation_space.shape == env.observation_space.shape
        and type(model_actions) is type(env_actions)
        and model_actions.shape == env_actions.shape
        and getattr(model_actions, "n", None) == getattr(env_actions, "n", None)
    )


def load_model(path: Path, algorithm: str, env: Any = None, device: str = "cpu", attach_env: bool = False) -> Any:
    """The stable-baselines3 model of the checkpoint ``path``, loaded as ``algorithm`` (a run's ``rl.algorithm``).

    With ``env``, the model must act in its spaces: ``attach_env`` loads it with the env to train on
    (stable-baselines3 checks the spaces), otherwise it is loaded alone, and a policy that cannot act in
    the env (other observation shape, other kind of actions) is refused with both spaces named. Raises
    :class:`CheckpointError` for a checkpoint that does not load.
    """
    from vlmrm.config import ALGORITHM_CLASSES, algorithm_class

    if algorithm not in ALGORITHM_CLASSES:
        raise CheckpointError(
            f"Checkpoint {str(path)!r}: unknown algorithm {algorithm!r}; vlmrm loads {', '.join(ALGORITHM_CLASSES)}."
        )
    cls = algorithm_class(algorithm)
    try:
        model = cls.load(path, env=env if attach_env else None, device=device)
    except Exception as exc:  # a wrong algorithm or a damaged file fails in many ways
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise CheckpointError(
            f"Checkpoint {str(path)!r} does not load as {cls.__name__} (rl.algorithm {algorithm}): "
            f"{type(exc).__name__}{': ' + first if first else ''}."
        ) from exc
    if env is not None and not attach_env and not _acts_in(model, env):
        raise CheckpointError(
            f"Checkpoint {str(path)!r} is of another environment: it takes observations {model.observation_space} "
            f"and actions {model.action_space}; the env has {env.observation_space} and {env.action_space}."
        )
    return model


# -- the best policy so far ---------------------------------------------------------------------------------
#
# stable-baselines3's EvalCallback(best_model_save_path=...) convention: after every evaluation the policy
# is compared with the best so far and kept when it scores higher. The score is the mean eval VLM return
# (what a user without a true reward has); env return and success are kept beside it.
#
#     checkpoints/best.zip            the best policy (a stable-baselines3 model, no replay buffer), with
#                                     its record as a ``vlmrm_best.json`` member: the zip is the truth
#     checkpoints/best.json           the same record, readable (rewritten from the zip when they differ)
#     checkpoints/best_previous.zip   the best before it: the fallback when best.zip is corrupt

BEST_FILE = "best.zip"
BEST_RECORD_FILE = "best.json"
PREVIOUS_BEST_FILE = "best_previous.zip"
BEST_MEMBER = "vlmrm_best.json"


@dataclass(frozen=True)
class BestRecord:
    """The evaluation that made a policy the best so far.

    Attributes:
        step: the environment step of the evaluation.
        vlm_return: its mean VLM return: the score policies are compared by.
        env_return: its mean env return.
        success_rate: its success rate (``None``: the env has no success condition).
        step_success_rate: its share of steps that met the success condition.
        episodes: the episodes it ran.
    """

    step: int
    vlm_return: float
    env_return: float | None = None
    success_rate: float | None = None
    step_success_rate: float | None = None
    episodes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "vlm_return": self.vlm_return,
            "env_return": self.env_return,
            "success_rate": self.success_rate,
            "step_success_rate": self.step_success_rate,
            "episodes": self.episodes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BestRecord:
        return cls(
            step=int(data["step"]),
            vlm_return=float(data["vlm_return"]),
            env_return=data.get("env_return"),
            success_rate=data.get("success_rate"),
            step_success_rate=data.get("step_success_rate"),
            episodes=data.get("episodes"),
        )


def beats(score: float, best: BestRecord | None) -> bool:
    """Whether an evaluation scoring ``score`` (mean VLM return) replaces ``best``: strictly higher, as in SB3."""
    return best is None or score > best.vlm_return


def write_best(model: Any, directory: Path, record: BestRecord) -> Path:
    """Keep ``model`` as ``directory/best.zip`` with ``record`` inside it and in ``best.json``; return its path.

    The former best becomes ``best_previous.zip`` first: a kill at any moment leaves a sound best or its
    predecessor, which :func:`recover_best` finds.
    """
    path = directory / BEST_FILE
    if path.exists():
        os.replace(path, directory / PREVIOUS_BEST_FILE)
    text = json.dumps(record.to_dict(), indent=2)

    def write_zip(tmp: Path) -> None:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(BEST_MEMBER, text)

    atomic_write(path, write_zip, tmp_suffix=".zip")
    atomic_write_text(directory / BEST_RECORD_FILE, text)
    return path


def _best_problem(path: Path) -> tuple[BestRecord | None, str | None]:
    """``(record, None)`` for a sound best policy file, ``(None, why)`` otherwise."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = {"data", "policy.pth", BEST_MEMBER} - names
            if missing:
                return None, f"it is truncated or corrupt (the archive lacks {', '.join(sorted(missing))})"
            bad = archive.testzip()
            if bad is not None:
                return None, f"it is corrupt (member {bad!r} fails its CRC check)"
            return BestRecord.from_dict(json.loads(archive.read(BEST_MEMBER))), None
    except FileNotFoundError:
        return None, "the file does not exist"
    except (zipfile.BadZipFile, EOFError, ValueError, KeyError, TypeError, OSError) as exc:
        return None, f"it is truncated or corrupt ({exc})"


def read_best(directory: Path) -> BestRecord | None:
    """The record of ``directory/best.zip`` when it is sound (read-only: nothing is moved or written)."""
    return _best_problem(Path(directory) / BEST_FILE)[0]


def recover_best(directory: Path) -> BestRecord | None:
    """Before a resumed run goes on: the best policy's record, ``None`` when there is no sound one.

    A corrupt ``best.zip`` is set aside (``best.zip.corrupt``) and its predecessor ``best_previous.zip``
    takes its place, as a corrupt checkpoint gives way to the one before it; ``best.json`` is rewritten
    from the zip it describes.
    """
    directory = Path(directory)
    path = directory / BEST_FILE
    record, why = _best_problem(path)
    if record is None and path.exists():
        aside = set_aside(path)
        logger.warning("vlmrm: best policy %s is unusable (%s); kept as %s", path, why, aside.name)
    previous = directory / PREVIOUS_BEST_FILE
    if record is None and previous.exists():
        record, why = _best_problem(previous)
        if record is None:
            aside = set_aside(previous)
            logger.warning("vlmrm: best policy %s is unusable (%s); kept as %s", previous, why, aside.name)
        else:
            os.replace(previous, path)
            logger.warning("vlmrm: the best policy falls back to the one before it (step %d)", record.step)
    if record is not None:
        atomic_write_text(directory / BEST_RECORD_FILE, json.dumps(record.to_dict(), indent=2))
    else:
        (directory / BEST_RECORD_FILE).unlink(missing_ok=True)
    return record


__all__ = [
    "BEST_FILE",
    "BEST_RECORD_FILE",
    "PREVIOUS_BEST_FILE",
    "BestRecord",
    "CheckpointInfo",
    "beats",
    "find_latest_good_checkpoint",
    "load_model",
    "read_best",
    "recover_best",
    "saved_algorithm",
    "saved_step",
    "verify_checkpoint",
    "write_best",
    "write_checkpoint",
]
