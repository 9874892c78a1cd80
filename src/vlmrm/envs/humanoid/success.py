"""Success detectors for the Humanoid tasks, and hand-built poses that show each task.

A detector reads the MuJoCo state (body and geom positions after ``mj_forward`` or a step) and
checks a few geometric rules; the pose counts as the task when every rule holds. Each rule has a
*slack* (in metres, or as a cosine for uprightness) that is positive when it holds, so a state's
*margin* (the smallest slack) says how clearly it passes or fails.

Positions are read in the humanoid's own *heading frame*: ``forward`` is the torso's facing
direction projected onto the floor, ``left`` is perpendicular to it on the floor (the humanoid's
left, Gymnasium's +y at the start), and heights are world z (the floor is at z = 0). Detectors are
therefore unchanged when the humanoid turns or walks away from the origin.

The measured points:

* torso, pelvis: the body origins; the torso origin sits between the shoulders (1.29 m high when
  standing on the floor, 0.93 m when kneeling upright, 0.5 m when seated).
* hip, knee: the origins of a thigh body (the hip joint) and a shin body (the knee joint).
* elbow: the origin of a lower-arm body.
* hand, foot, head: the centres of the ``*_hand``, ``*_foot`` and ``head`` sphere geoms.
* foot clearance: the foot sphere's lowest point above the floor.
* uprightness: the cosine of the angle between the torso's up axis and the vertical.

Hand-built poses (:func:`humanoid_pose`, :func:`named_pose`) set joint angles by name, within the
model's joint ranges, and place the root so the lowest point of the body touches the floor. The
humanoid's joints limit what it can do: the hips barely rotate outwards, so "lotus" is a
cross-legged seat (knees out wide, feet folded in towards the midline) rather than a full lotus,
and the shoulders cannot bring a hand to the opposite elbow, so "arms crossed" means the forearms
cross in front of the belly.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from vlmrm.envs.humanoid.scene import gymnasium_humanoid_xml_path
from vlmrm.envs.humanoid.tasks import TASKS
from vlmrm.errors import ConfigError

# ---------------------------------------------------------------------------------------------
# Thresholds. Every value is used by exactly one rule below; the docstrings of the detectors
# say what each means.
STAND_TORSO_MIN = 1.05  # m: torso origin height when standing (1.29 upright, 0.93 kneeling)
STAND_UPRIGHT_MIN = 0.85  # cosine: torso tilt below ~32 degrees
FOOT_ON_FLOOR_MAX = 0.15  # m: clearance of a foot that carries weight
KNEEL_KNEE_MAX = 0.20  # m: knee joint height when the knee rests on the floor (0.08 in the pose)
KNEEL_FOOT_BEHIND_MIN = 0.10  # m: how far each foot is behind its knee
KNEEL_UPRIGHT_MIN = 0.80  # cosine: torso tilt below ~37 degrees
KNEEL_TORSO_MIN = 0.60  # m: torso height; lower means sitting, not kneeling
SEATED_PELVIS_MAX = 0.30  # m: pelvis origin height when sitting on the floor (0.15 lotus, 0.09 splits)
LOTUS_UPRIGHT_MIN = 0.80  # cosine
LOTUS_KNEES_APART_MIN = 0.50  # m: sideways distance between the knees (0.76 in the pose)
LOTUS_FEET_TUCKED_MIN = 0.15  # m: each foot is this much nearer the midline than its knee
LOTUS_FOOT_HEIGHT_MAX = 0.25  # m: foot clearance; feet rest on or near the floor
LOTUS_FEET_AHEAD_MAX = 0.55  # m: feet lie in front of the pelvis, no farther than this
SPLITS_FEET_APART_MIN = 1.20  # m: sideways distance between the feet (1.54 in the pose)
SPLITS_UPRIGHT_MIN = 0.70  # cosine: torso tilt below ~45 degrees
SPLITS_LEG_EXTENSION_MIN = 0.68  # m: hip to foot centre (0.75 straight; 0.68 is a ~50 degree knee bend)
RAISED_ABOVE_HEAD_MIN = 0.10  # m: each hand above the centre of the head
HIPS_HAND_DISTANCE_MAX = 0.15  # m: hand to its hip point (pelvis + 0.08 up + 0.18 sideways)
HIPS_ELBOW_OUT_MIN = 0.03  # m: each elbow sideways beyond its hand
CROSS_MIDLINE_MIN = 0.02  # m: hand across the body midline, elbow on its own side
CROSS_HAND_AHEAD_MIN = 0.05  # m: hands in front of the torso origin
CROSS_HAND_AHEAD_MAX = 0.50  # m
CROSS_HAND_ABOVE_TORSO_MAX = 0.15  # m: hands no higher than this above the torso origin
ONE_LEG_RAISED_MIN = 0.25  # m: clearance of the raised foot


@dataclass(frozen=True)
class Rule:
    """One condition of a detector: ``low <= value <= high`` (either bound may be absent)."""

    name: str
    value: float
    low: float | None = None
    high: float | None = None

    @property
    def slack(self) -> float:
        """How far inside its bounds the value is; negative when the rule fails."""
        slacks = [np.inf]
        if self.low is not None:
            slacks.append(self.value - self.low)
        if self.high is not None:
            slacks.append(self.high - self.value)
        return float(min(slacks))

    @property
    def passed(self) -> bool:
        """Whether the value is within its bounds."""
        return self.slack >= 0.0

    def describe(self) -> str:
        """``ok``/``FAIL``, the rule's name, its value and its bounds, on one line."""
        bounds = []
        if self.low is not None:
            bounds.append(f">= {self.low:g}")
        if self.high is not None:
            bounds.append(f"<= {self.high:g}")
        mark = "ok  " if self.passed else "FAIL"
        return f"{mark} {self.name}: {self.value:.3f} ({' and '.join(bounds)})"


@dataclass(frozen=True)
class PoseCheck:
    """The result of one detector on one state."""

    task: str
    rules: tuple[Rule, ...]

    @property
    def success(self) -> bool:
        """Whether every rule holds."""
        return all(rule.passed for rule in self.rules)

    @property
    def margin(self) -> float:
        """The smallest slack over the rules: >= 0 exactly when the pose counts as the task."""
        return min(rule.slack for rule in self.rules)

    @property
    def failed(self) -> list[str]:
        """The names of the rules that do not hold."""
        return [rule.name for rule in self.rules if not rule.passed]

    def describe(self) -> str:
        """One line per rule, for logs and debugging."""
        head = f"{self.task}: {'success' if self.success else 'no'} (margin {self.margin:+.3f})"
        return "\n".join([head, *("  " + rule.describe() for rule in self.rules)])


class BodyState:
    """Positions of the humanoid's parts, read from a MuJoCo model and data after ``mj_forward``."""

    def __init__(self, model: Any, data: Any):
        def body(name: str) -> np.ndarray:
            return np.array(data.body(name).xpos, dtype=np.float64)

        def geom(name: str) -> np.ndarray:
            return np.array(data.geom(name).xpos, dtype=np.float64)

        self.torso = body("torso")
        self.pelvis = body("pelvis")
        self.head = geom("head")
        self.hand = {side: geom(f"{side}_hand") for side in ("right", "left")}
        self.elbow = {side: body(f"{side}_lower_arm") for side in ("right", "left")}
        self.knee = {side: body(f"{side}_shin") for side in ("right", "left")}
        self.foot = {side: geom(f"{side}_foot") for side in ("right", "left")}
        self.foot_radius = float(model.geom("right_foot").size[0])
        self.hip = {side: body(f"{side}_thigh") for side in ("right", "left")}
        torso_axes = np.array(data.body("torso").xmat, dtype=np.float64).reshape(3, 3)
        self.uprightness = float(torso_axes[2, 2])
        heading = torso_axes[:, 0].copy()
        heading[2] = 0.0
        if np.linalg.norm(heading) < 1e-6:  # facing straight up or down: use the head's direction
            heading = torso_axes[:, 2].copy()
            heading[2] = 0.0
        self.forward_axis = heading / max(float(np.linalg.norm(heading)), 1e-9)
        self.left_axis = np.array([-self.forward_axis[1], self.forward_axis[0], 0.0])

    def ahead(self, point: np.ndarray, origin: np.ndarray) -> float:
        """How far ``point`` is in front of ``origin`` along the humanoid's heading (metres)."""
        return float(np.dot(point - origin, self.forward_axis))

    def leftward(self, point: np.ndarray, origin: np.ndarray | None = None) -> float:
        """How far ``point`` is to the humanoid's left of ``origin`` (default: the torso's midline)."""
        origin = self.torso if origin is None else origin
        return float(np.dot(point - origin, self.left_axis))

    def foot_clearance(self, side: str) -> float:
        """Height of the lowest point of a foot above the floor."""
        return float(self.foot[side][2] - self.foot_radius)


def _standing_rules(body: BodyState) -> list[Rule]:
    return [
        Rule("torso height", body.torso[2], low=STAND_TORSO_MIN),
        Rule("torso uprightness", body.uprightness, low=STAND_UPRIGHT_MIN),
        Rule(
            "lower foot clearance",
            min(body.foot_clearance("right"), body.foot_clearance("left")),
            high=FOOT_ON_FLOOR_MAX,
        ),
    ]


def standing_rules(body: BodyState) -> list[Rule]:
    """Standing up: the torso origin is at least 1.05 m high (1.29 m when standing straight,
    0.93 m when kneeling), the torso is upright (cosine of its tilt >= 0.85, i.e. within ~32
    degrees of vertical) and at least one foot is on the floor (clearance <= 0.15 m), so a jump
    does not count."""
    return _standing_rules(body)


def kneeling_rules(body: BodyState) -> list[Rule]:
    """Kneeling: both knee joints are at most 0.20 m above the floor, each foot is at least
    0.10 m behind its knee (shins folded back along the floor), the torso is upright (cosine >=
    0.80) and its origin at least 0.60 m high (lower is sitting, not kneeling)."""
    rules = [Rule(f"{side} knee height", body.knee[side][2], high=KNEEL_KNEE_MAX) for side in ("right", "left")]
    rules += [
        Rule(f"{side} foot behind knee", -body.ahead(body.foot[side], body.knee[side]), low=KNEEL_FOOT_BEHIND_MIN)
        for side in ("right", "left")
    ]
    rules.append(Rule("torso uprightness", body.uprightness, low=KNEEL_UPRIGHT_MIN))
    rules.append(Rule("torso height", body.torso[2], low=KNEEL_TORSO_MIN))
    return rules


def lotus_rules(body: BodyState) -> list[Rule]:
    """Seated cross-legged (the lotus position as far as this humanoid's hips allow): the pelvis
    origin is at most 0.30 m high (seated on the floor), the torso is upright (cosine >= 0.80), the
    knees are at least 0.50 m apart sideways, each foot is at least 0.15 m nearer the body's
    midline (sideways) than its own knee (legs folded in), each foot is at most 0.25 m above the
    floor, and the feet lie in front of the pelvis, between 0 and 0.55 m ahead of it."""
    rules = [
        Rule("pelvis height", body.pelvis[2], high=SEATED_PELVIS_MAX),
        Rule("torso uprightness", body.uprightness, low=LOTUS_UPRIGHT_MIN),
        Rule(
            "knees apart",
            body.leftward(body.knee["left"]) - body.leftward(body.knee["right"]),
            low=LOTUS_KNEES_APART_MIN,
        ),
    ]
    for side in ("right", "left"):
        tucked = abs(body.leftward(body.knee[side], body.pelvis)) - abs(body.leftward(body.foot[side], body.pelvis))
        rules.append(Rule(f"{side} foot tucked in", tucked, low=LOTUS_FEET_TUCKED_MIN))
        rules.append(Rule(f"{side} foot clearance", body.foot_clearance(side), high=LOTUS_FOOT_HEIGHT_MAX))
        rules.append(
            Rule(
                f"{side} foot ahead of pelvis",
                body.ahead(body.foot[side], body.pelvis),
                low=0.0,
                high=LOTUS_FEET_AHEAD_MAX,
            )
        )
    return rules


def splits_rules(body: BodyState) -> list[Rule]:
    """Side splits: the feet are at least 1.20 m apart sideways (the legs are 0.85 m long, so a
    standing straddle reaches ~0.9 m), the pelvis origin is at most 0.30 m high, both legs are
    nearly straight (hip joint to foot centre >= 0.68 m: 0.75 m when straight, so knees bent less
    than ~50 degrees) and the torso is roughly upright (cosine >= 0.70)."""
    rules = [
        Rule(
            "feet apart",
            body.leftward(body.foot["left"]) - body.leftward(body.foot["right"]),
            low=SPLITS_FEET_APART_MIN,
        ),
        Rule("pelvis height", body.pelvis[2], high=SEATED_PELVIS_MAX),
    ]
    rules += [
        Rule(
            f"{side} leg extension",
            float(np.linalg.norm(body.foot[side] - body.hip[side])),
            low=SPLITS_LEG_EXTENSION_MIN,
        )
        for side in ("right", "left")
    ]
    rules.append(Rule("torso uprightness", body.uprightness, low=SPLITS_UPRIGHT_MIN))
    return rules


def arms_raised_rules(body: BodyState) -> list[Rule]:
    """Standing with both arms raised: the standing rules, and each hand's centre at least 0.10 m
    above the centre of the head."""
    rules = _standing_rules(body)
    rules += [
        Rule(f"{side} hand above head", body.hand[side][2] - body.head[2], low=RAISED_ABOVE_HEAD_MIN)
        for side in ("right", "left")
    ]
    return rules


def hands_on_hips_rules(body: BodyState) -> list[Rule]:
    """Standing with hands on hips: the standing rules; each hand within 0.15 m of its hip point
    (0.08 m above the pelvis origin and 0.18 m out to that side); and each elbow at least 0.03 m
    farther out sideways than its hand (elbows out, not arms hanging down)."""
    rules = _standing_rules(body)
    up = np.array([0.0, 0.0, 1.0])
    for side, sign in (("right", -1.0), ("left", 1.0)):
        hip = body.pelvis + 0.08 * up + sign * 0.18 * body.left_axis
        rules.append(
            Rule(f"{side} hand to hip", float(np.linalg.norm(body.hand[side] - hip)), high=HIPS_HAND_DISTANCE_MAX)
        )
        elbow_out = sign * (body.leftward(body.elbow[side]) - body.leftward(body.hand[side]))
        rules.append(Rule(f"{side} elbow out", elbow_out, low=HIPS_ELBOW_OUT_MIN))
    return rules


def arms_crossed_rules(body: BodyState) -> list[Rule]:
    """Standing with arms crossed: the standing rules; each forearm crosses the body's midline
    (the hand at least 0.02 m past it on the other side, the elbow at least 0.02 m on its own
    side), so the forearms form an X in front of the body; the hands are 0.05 to 0.50 m in front
    of the torso origin and between the pelvis origin and 0.15 m above the torso origin in height."""
    rules = _standing_rules(body)
    for side, sign in (("right", -1.0), ("left", 1.0)):
        rules.append(Rule(f"{side} hand across", -sign * body.leftward(body.hand[side]), low=CROSS_MIDLINE_MIN))
        rules.append(Rule(f"{side} elbow on own side", sign * body.leftward(body.elbow[side]), low=CROSS_MIDLINE_MIN))
        rules.append(
            Rule(
                f"{side} hand in front",
                body.ahead(body.hand[side], body.torso),
                low=CROSS_HAND_AHEAD_MIN,
                high=CROSS_HAND_AHEAD_MAX,
            )
        )
        rules.append(
            Rule(
                f"{side} hand height",
                body.hand[side][2],
                low=body.pelvis[2],
                high=body.torso[2] + CROSS_HAND_ABOVE_TORSO_MAX,
            )
        )
    return rules


def one_leg_rules(body: BodyState) -> list[Rule]:
    """Standing on one leg: the torso origin at least 1.05 m high and upright (cosine >= 0.85),
    the lower foot on the floor (clearance <= 0.15 m) and the other foot at least 0.25 m above
    the floor."""
    clearances = sorted((body.foot_clearance("right"), body.foot_clearance("left")))
    return [
        Rule("torso height", body.torso[2], low=STAND_TORSO_MIN),
        Rule("torso uprightness", body.uprightness, low=STAND_UPRIGHT_MIN),
        Rule("lower foot clearance", clearances[0], high=FOOT_ON_FLOOR_MAX),
        Rule("raised foot clearance", clearances[1], low=ONE_LEG_RAISED_MIN),
    ]


DETECTORS: dict[str, Callable[[BodyState], list[Rule]]] = {
    "kneeling": kneeling_rules,
    "lotus": lotus_rules,
    "standing": standing_rules,
    "arms-raised": arms_raised_rules,
    "splits": splits_rules,
    "hands-on-hips": hands_on_hips_rules,
    "arms-crossed": arms_crossed_rules,
    "one-leg": one_leg_rules,
}
"""Each task's rules; see the functions' docstrings for the rules and thresholds."""


def check_task(task: str, model: Any, data: Any) -> PoseCheck:
    """Run ``task``'s detector on the current MuJoCo state (positions must be up to date)."""
    return PoseCheck(validate_task(task), tuple(DETECTORS[task](BodyState(model, data))))


def validate_task(task: str) -> str:
    """Return ``task`` if it is a Humanoid task, else raise :class:`ConfigError` naming the tasks."""
    if task not in DETECTORS:
        import difflib

        close = difflib.get_close_matches(str(task), TASKS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"Unknown humanoid task {task!r}.{hint} Tasks: {', '.join(TASKS)}.")
    return task


# ---------------------------------------------------------------------------------------------
# Hand-built poses.

ArmAngles = tuple[float, float, float]  # shoulder1, shoulder2, elbow (degrees, right-arm convention)
LegAngles = tuple[float, float, float, float]  # hip_x, hip_z, hip_y, knee (degrees)

ARMS_DOWN: ArmAngles = (45, -35, -90)
ARMS_UP: ArmAngles = (-85, 20, -90)
ARMS_OUT: ArmAngles = (-50, -35, -90)
HANDS_ON_HIPS: ArmAngles = (50, -85, -10)
HANDS_ON_KNEES: ArmAngles = (0, -10, -45)
STRAIGHT_LEG: LegAngles = (0, 0, 0, -2)  # the knee range is -160..-2 degrees; -2 is straight


def arm_angles(right: ArmAngles, left: ArmAngles | None = None) -> dict[str, float]:
    """Joint angles (degrees) for both arms; ``left`` defaults to the mirror image of ``right``.

    The left shoulder joints' axes are the mirror images of the right ones, so mirroring negates
    the shoulder angles and keeps the elbow angle.
    """
    left = right if left is None else left
    return {
        "right_shoulder1": right[0],
        "right_shoulder2": right[1],
        "right_elbow": right[2],
        "left_shoulder1": -left[0],
        "left_shoulder2": -left[1],
        "left_elbow": left[2],
    }


def leg_angles(right: LegAngles, left: LegAngles | None = None) -> dict[str, float]:
    """Joint angles (degrees) for both legs; ``left`` defaults to the mirror image of ``right``.

    The left hip axes mirror the right ones with flipped signs, so mirrored legs share angles.
    """
    left = right if left is None else left
    angles: dict[str, float] = {}
    for side, values in (("right", right), ("left", left)):
        for joint, value in zip(("hip_x", "hip_z", "hip_y", "knee"), values, strict=True):
            angles[f"{side}_{joint}"] = value
    return angles


@dataclass(frozen=True)
class PoseRecipe:
    """A pose as joint angles (degrees) by joint name, plus the root's heading and tilt.

    ``yaw`` turns the body about the vertical (0: facing +x, towards the default camera);
    ``pitch`` tilts it about its side axis (positive leans forward). Joints not named keep their
    reference angle (0).
    """

    angles: Mapping[str, float]
    yaw: float = 0.0
    pitch: float = 0.0
    description: str = ""


POSE_RECIPES: dict[str, PoseRecipe] = {
    "standing": PoseRecipe(
        {**leg_angles(STRAIGHT_LEG), **arm_angles(ARMS_DOWN)}, description="standing straight, arms at the sides"
    ),
    "kneeling": PoseRecipe(
        {**leg_angles((0, 0, 0, -90)), **arm_angles(ARMS_DOWN)},
        yaw=35.0,
        description="upright on both knees, shins flat behind; turned 35 degrees so the camera sees the folded legs",
    ),
    "lotus": PoseRecipe(
        {"abdomen_y": -62, **leg_angles((5, -60, -73, -160)), **arm_angles(HANDS_ON_KNEES)},
        description="seated cross-legged: knees out wide, feet folded in to the midline, hands on the knees",
    ),
    "splits": PoseRecipe(
        {"abdomen_y": -16, **leg_angles((-25, -60, -65, -2)), **arm_angles(ARMS_OUT)},
        description="seated straddle with straight legs 1.5 m apart, arms out to the sides",
    ),
    "arms-raised": PoseRecipe(
        {**leg_angles(STRAIGHT_LEG), **arm_angles(ARMS_UP)}, description="standing, both arms raised in a V"
    ),
    "hands-on-hips": PoseRecipe(
        {**leg_angles(STRAIGHT_LEG), **arm_angles(HANDS_ON_HIPS)},
        description="standing, hands on the hips, elbows out",
    ),
    "arms-crossed": PoseRecipe(
        {**leg_angles(STRAIGHT_LEG), **arm_angles((60, 0, -55), (60, -10, -40))},
        description="standing, forearms crossed in front of the belly (right over left)",
    ),
    "one-leg": PoseRecipe(
        {**leg_angles((0, 0, -90, -90), STRAIGHT_LEG), **arm_angles(ARMS_OUT)},
        description="standing on the left leg, right thigh raised level, arms out for balance",
    ),
    "fallen": PoseRecipe(
        {**leg_angles((0, 0, -10, -20)), **arm_angles(ARMS_DOWN)},
        pitch=-90.0,
        description="lying on the back",
    ),
}
"""Hand-built poses by name: every task's success pose, plus ``fallen``."""

POSE_NAMES: tuple[str, ...] = ("start", *POSE_RECIPES)
"""Names :func:`named_pose` accepts: ``start`` (the reset state without noise) and the recipes."""

STANDING_POSES: frozenset[str] = frozenset(
    {"start", "standing", "arms-raised", "hands-on-hips", "arms-crossed", "one-leg"}
)
"""Poses in which the humanoid stands, so the ``standing`` detector accepts them."""


def expected_success(task: str, pose: str) -> bool:
    """Whether ``task``'s detector must accept the hand-built pose ``pose``.

    Every detector accepts its own success pose and rejects all other hand-built poses, except
    that ``standing`` accepts every pose in :data:`STANDING_POSES`.
    """
    return pose == task or (task == "standing" and pose in STANDING_POSES)


@functools.lru_cache(maxsize=1)
def _kinematics_model() -> Any:
    """Gymnasium's humanoid model, used to build poses (only kinematics; never rendered)."""
    import mujoco

    return mujoco.MjModel.from_xml_path(str(gymnasium_humanoid_xml_path()))


def lowest_body_point(model: Any, data: Any) -> float:
    """The height of the lowest point of any of the humanoid's geoms (spheres and capsules)."""
    import mujoco

    lowest = np.inf
    for geom in range(model.ngeom):
        if model.geom_bodyid[geom] == 0:  # the floor
            continue
        radius = float(model.geom_size[geom, 0])
        centre_z = float(data.geom_xpos[geom, 2])
        if model.geom_type[geom] == mujoco.mjtGeom.mjGEOM_CAPSULE:
            half = float(model.geom_size[geom, 1]) * abs(float(data.geom_xmat[geom, 8]))
            centre_z -= half
        lowest = min(lowest, centre_z - radius)
    return float(lowest)


def build_qpos(
    model: Any,
    angles: Mapping[str, float],
    yaw: float = 0.0,
    pitch: float = 0.0,
    on_floor: bool = True,
) -> np.ndarray:
    """A ``qpos`` with the named joints at ``angles`` (degrees) and the root at the origin.

    The root is turned by ``yaw`` and tilted by ``pitch`` (degrees). With ``on_floor`` the root
    height is chosen (by forward kinematics) so the lowest point of the body touches the floor.
    Unknown joint names raise :class:`ConfigError`.
    """
    import mujoco

    qpos = np.array(model.qpos0, dtype=np.float64)
    quat = np.zeros(4)
    mujoco.mju_euler2Quat(quat, np.deg2rad([0.0, pitch, yaw]), "XYZ")
    qpos[3:7] = quat
    names = {model.joint(j).name for j in range(model.njnt)}
    for name, degrees in angles.items():
        if name not in names:
            raise ConfigError(f"Unknown humanoid joint {name!r}; joints: {', '.join(sorted(names))}.")
        qpos[model.joint(name).qposadr[0]] = np.deg2rad(degrees)
    if on_floor:
        data = mujoco.MjData(model)
        data.qpos[:] = qpos
        mujoco.mj_kinematics(model, data)
        qpos[2] -= lowest_body_point(model, data)
    return qpos


def named_pose(name: str) -> np.ndarray:
    """The hand-built pose ``name`` (one of :data:`POSE_NAMES`) as a ``qpos`` vector.

    ``start`` is Gymnasium's reset state without noise (standing, 1.4 m root height, which leaves
    the feet 0.11 m above the floor as in Humanoid-v5).
    """
    model = _kinematics_model()
    if name == "start":
        return np.array(model.qpos0, dtype=np.float64)
    if name not in POSE_RECIPES:
        import difflib

        close = difflib.get_close_matches(str(name), POSE_NAMES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"Unknown humanoid pose {name!r}.{hint} Poses: {', '.join(POSE_NAMES)}.")
    recipe = POSE_RECIPES[name]
    return build_qpos(model, recipe.angles, yaw=recipe.yaw, pitch=recipe.pitch)


def humanoid_pose(task: str | None = None, which: Literal["start", "success"] = "success") -> np.ndarray:
    """A ``qpos`` for ``task``: the reset state (``which="start"``) or its hand-built success pose.

    The start pose is the same for every task (and ``task`` may be ``None`` for it). Useful as the
    two ends of a reward landscape: interpolate joint angles between them (normalise the root
    quaternion, ``qpos[3:7]``, after interpolating).
    """
    if which == "start":
        return named_pose("start")
    if which != "success":
        raise ConfigError(f"Unknown pose kind {which!r}; use 'start' or 'success'.")
    if task is None:
        raise ConfigError("A success pose needs a task; tasks: " + ", ".join(TASKS) + ".")
    return named_pose(validate_task(task))


def pose_checks(qpos: Sequence[float] | np.ndarray, tasks: Sequence[str] = TASKS) -> dict[str, PoseCheck]:
    """Run the detectors of ``tasks`` on the pose ``qpos`` (kinematics only, no simulation)."""
    import mujoco

    model = _kinematics_model()
    data = mujoco.MjData(model)
    data.qpos[:] = np.asarray(qpos, dtype=np.float64)
    mujoco.mj_kinematics(model, data)
    return {task: check_task(task, model, data) for task in tasks}
