"""Humanoid success detectors and hand-built poses (kinematics only: no rendering, no simulation)."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from vlmrm.envs.humanoid.success import (
    POSE_NAMES,
    POSE_RECIPES,
    Rule,
    build_qpos,
    expected_success,
    humanoid_pose,
    lowest_body_point,
    named_pose,
    pose_checks,
    validate_task,
)
from vlmrm.envs.humanoid.tasks import TASK_PROMPTS, TASKS
from vlmrm.errors import ConfigError


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    from vlmrm.envs.humanoid.scene import gymnasium_humanoid_xml_path

    return mujoco.MjModel.from_xml_path(str(gymnasium_humanoid_xml_path()))


@pytest.fixture(scope="module")
def checks_by_pose() -> dict[str, dict]:
    return {pose: pose_checks(named_pose(pose)) for pose in POSE_NAMES}


def test_every_task_has_a_prompt_and_a_success_pose() -> None:
    assert set(TASK_PROMPTS) == set(TASKS)
    assert set(TASKS) <= set(POSE_RECIPES)
    assert "fallen" in POSE_NAMES and "start" in POSE_NAMES


@pytest.mark.parametrize("task", TASKS)
def test_detector_accepts_its_success_pose(task: str, checks_by_pose: dict[str, dict]) -> None:
    check = checks_by_pose[task][task]
    assert check.success, check.describe()
    assert check.margin >= 0


@pytest.mark.parametrize("task", TASKS)
def test_detector_rejects_start_pose_other_tasks_and_fallen(task: str, checks_by_pose: dict[str, dict]) -> None:
    failing = [pose for pose in POSE_NAMES if not expected_success(task, pose)]
    assert "fallen" in failing
    if task != "standing":
        assert "start" in failing and "standing" in failing
    for pose in failing:
        check = checks_by_pose[pose][task]
        assert not check.success, f"{task} detector accepted the {pose} pose:\n{check.describe()}"
        assert check.margin < 0


def test_standing_accepts_all_standing_poses(checks_by_pose: dict[str, dict]) -> None:
    for pose in ("start", "standing", "arms-raised", "hands-on-hips", "arms-crossed", "one-leg"):
        assert checks_by_pose[pose]["standing"].success, pose
    for pose in ("kneeling", "lotus", "splits", "fallen"):
        assert not checks_by_pose[pose]["standing"].success, pose


def _turned_and_moved(qpos: np.ndarray, yaw_deg: float, dx: float, dy: float) -> np.ndarray:
    turned = qpos.copy()
    yaw = np.zeros(4)
    mujoco.mju_axisAngle2Quat(yaw, np.array([0.0, 0.0, 1.0]), np.deg2rad(yaw_deg))
    mujoco.mju_mulQuat(turned[3:7], yaw, qpos[3:7])
    rotation = np.array(
        [
            [np.cos(np.deg2rad(yaw_deg)), -np.sin(np.deg2rad(yaw_deg))],
            [np.sin(np.deg2rad(yaw_deg)), np.cos(np.deg2rad(yaw_deg))],
        ]
    )
    turned[:2] = rotation @ qpos[:2] + np.array([dx, dy])
    return turned


@pytest.mark.parametrize("task", TASKS)
def test_detectors_do_not_depend_on_heading_or_place(task: str) -> None:
    qpos = _turned_and_moved(humanoid_pose(task), yaw_deg=123.0, dx=3.0, dy=-7.5)
    checks = pose_checks(qpos)
    assert checks[task].success, checks[task].describe()
    reference = pose_checks(humanoid_pose(task))
    assert checks[task].margin == pytest.approx(reference[task].margin, abs=1e-9)


def test_lifted_standing_pose_is_a_jump_not_standing() -> None:
    qpos = humanoid_pose("standing")
    qpos[2] += 0.5
    assert not pose_checks(qpos, ["standing"])["standing"].success


def test_one_leg_needs_the_raised_foot_high_enough(model: mujoco.MjModel) -> None:
    recipe = POSE_RECIPES["one-leg"]
    barely = build_qpos(model, {**recipe.angles, "right_hip_y": -20, "right_knee": -30})
    assert not pose_checks(barely, ["one-leg"])["one-leg"].success


@pytest.mark.parametrize("pose", [p for p in POSE_NAMES if p not in ("start", "fallen")])
def test_poses_touch_the_floor_and_respect_joint_ranges(pose: str, model: mujoco.MjModel) -> None:
    qpos = named_pose(pose)
    data = mujoco.MjData(model)
    data.qpos[:] = qpos
    mujoco.mj_kinematics(model, data)
    assert lowest_body_point(model, data) == pytest.approx(0.0, abs=1e-9)
    assert np.linalg.norm(qpos[3:7]) == pytest.approx(1.0)
    for joint in range(1, model.njnt):  # joint 0 is the free root
        low, high = model.jnt_range[joint]
        value = qpos[model.jnt_qposadr[joint]]
        assert low - 1e-9 <= value <= high + 1e-9, f"{pose}: {model.joint(joint).name}={np.rad2deg(value):.1f} deg"


def test_start_pose_is_gymnasium_reset_state(model: mujoco.MjModel) -> None:
    np.testing.assert_array_equal(humanoid_pose(None, "start"), model.qpos0)
    np.testing.assert_array_equal(humanoid_pose("lotus", "start"), model.qpos0)


def test_pose_errors_name_the_choices(model: mujoco.MjModel) -> None:
    with pytest.raises(ConfigError, match="kneeling"):
        validate_task("kneel")
    with pytest.raises(ConfigError, match="start"):
        humanoid_pose("lotus", "middle")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs a task"):
        humanoid_pose(None, "success")
    with pytest.raises(ConfigError, match="Unknown humanoid joint"):
        build_qpos(model, {"right_wrist": 10})


def test_rule_slack_and_margin() -> None:
    assert Rule("r", 0.3, low=0.1, high=0.5).slack == pytest.approx(0.2)
    assert Rule("r", 0.6, low=0.1, high=0.5).slack == pytest.approx(-0.1)
    assert not Rule("r", 0.6, high=0.5).passed
    assert Rule("r", 0.6, low=0.5).passed
    check = pose_checks(humanoid_pose("kneeling"), ["kneeling"])["kneeling"]
    assert check.margin == min(rule.slack for rule in check.rules)
    assert "kneeling: success" in check.describe()
