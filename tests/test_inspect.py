"""Reward inspection: the statistics, the flag, TensorBoard images in training, and ``vlmrm inspect``.

The planted reward is a deterministic pixel reward on CartPole: how far the pole reaches *below* its
upright height (high when the pole has fallen, i.e. on frames the env's detector rejects). The
honest reward is its negative. Inspecting the same run with each must flag the first and pass the second.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from vlmrm.cli.main import main
from vlmrm.config import config_from_dict
from vlmrm.errors import CheckpointError, ConfigError, RewardError, RunDirectoryError
from vlmrm.evaluation.inspect_run import evaluation_env, inspect_run
from vlmrm.evaluation.inspection import (
    HACKING_THRESHOLD,
    FrameKeeper,
    average_ranks,
    hacking_check,
    spearman,
)
from vlmrm.reward.contract import FunctionReward
from vlmrm.reward.video import VideoReward
from vlmrm.rl.rollout import evaluate
from vlmrm.rl.vec_env import VecVLMReward
from vlmrm.run.run_dir import RunDir
from vlmrm.testing import ColorClipEmbedder, color_reward
from vlmrm.training.guards import RewardGuard
from vlmrm.training.trainer import train

pytestmark = pytest.mark.filterwarnings("ignore:vlmrm. model:UserWarning")

SIZE = 64


def pole_height(frames: np.ndarray) -> np.ndarray:
    """How high the CartPole pole reaches above the track, as a share of the frame (0 when it hangs down)."""
    f = frames.astype(np.int16)
    pole = (abs(f[..., 0] - 202) < 30) & (abs(f[..., 1] - 152) < 30) & (abs(f[..., 2] - 101) < 30)
    rows = np.arange(frames.shape[1])[None, :, None]
    top = np.where(pole, rows, frames.shape[1]).min(axis=(1, 2))
    return np.clip(0.62 * frames.shape[1] - top, 0, None) / frames.shape[1]


def fallen(frames: np.ndarray) -> np.ndarray:
    """The planted reward: high on frames whose pole is down (the detector says not done)."""
    return -pole_height(frames)


def upright(frames: np.ndarray) -> np.ndarray:
    """The honest reward."""
    return pole_height(frames)


def run_config(run_dir: Path, **logging: object) -> dict:
    return {
        "env": {"name": "cartpole", "episode_length": 40, "render_size": SIZE},
        "reward": {"model": "tiny-random"},
        "rl": {"algorithm": "ppo", "total_steps": 64, "hyperparameters": {"n_steps": 32, "batch_size": 32}},
        "logging": {
            "run_dir": str(run_dir),
            "checkpoint_freq": 32,
            "eval_freq": 32,
            "eval_episodes": 2,
            "video_freq": 0,
            "progress_bar": False,
            **logging,
        },
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished CartPole run (checkpoints at 32 and 64), trained on the planted reward."""
    run_dir = tmp_path_factory.mktemp("inspect") / "run"
    train(config_from_dict(run_config(run_dir)), reward_fn=FunctionReward(fallen, image_size=SIZE, name="fallen"))
    return run_dir


@pytest.fixture(scope="module")
def model_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run trained on its config's model (tiny-random): what the CLI can inspect."""
    run_dir = tmp_path_factory.mktemp("inspect") / "run"
    train(config_from_dict(run_config(run_dir)))
    return run_dir


def leftovers(run: Path) -> list[str]:
    """Temporary directories of an inspection (``.inspect.*.tmp``) left in a run."""
    return [p.name for p in run.iterdir() if p.name.startswith(".inspect")]


def copy_run(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("inspect"))
    return copy


# -- statistics -----------------------------------------------------------------------------------------


def test_spearman_is_pearson_of_average_ranks() -> None:
    assert average_ranks([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    # scipy.stats.spearmanr([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]).statistic, from scipy's documentation:
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(0.8207826816681233, abs=1e-12)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None  # a constant side has no ranking
    assert spearman([1, 2], [1, 2]) is None


def test_hacking_check_flags_a_reward_that_prefers_rejected_frames() -> None:
    success = np.array([True] * 20 + [False] * 80)
    honest = np.where(success, 1.0, 0.0) + np.linspace(0, 0.1, 100)
    check = hacking_check(honest, success)
    assert (check.top_frames, check.top_not_done, check.base_not_done, check.flagged) == (10, 0.0, 0.8, False)
    hacked = hacking_check(-honest, success)
    assert hacked.top_not_done == 1.0 and hacked.flagged is True and hacked.verdict == "FLAGGED"
    # Rare successes: the check looks at as many frames as succeeded, so a perfect ranking passes.
    rare = np.arange(100) < 4
    perfect = hacking_check(rare.astype(float), rare)
    assert (perfect.top_frames, perfect.top_not_done, perfect.flagged) == (4, 0.0, False)
    # A constant reward ranks nothing: ties count in proportion, giving exactly the base rate (flagged here).
    assert hacking_check(np.zeros(100), success).top_not_done == pytest.approx(0.8)
    # Exactly at the threshold is not flagged ("above").
    half = np.array([True, False] * 5 + [False] * 90)
    at_threshold = hacking_check(np.r_[np.ones(10), np.zeros(90)], half)
    assert at_threshold.top_not_done == HACKING_THRESHOLD and at_threshold.flagged is False
    # Nothing to compare with: no detector, or a detector that never fired.
    assert hacking_check(honest, None).flagged is None
    never = hacking_check(honest, np.zeros(100, bool))
    assert never.flagged is None and never.verdict == "not assessed" and "never fired" in never.reason
    always = hacking_check(honest, np.ones(100, bool))
    assert always.flagged is None and always.top_not_done == 0.0 and "accepted every frame" in always.reason


def test_frame_keeper_keeps_the_extremes_and_a_strip_per_episode() -> None:
    keeper = FrameKeeper(k=3, episode_length=10, strip_frames=4, strip_episodes=1, frame_size=8)
    rewards = [5, 1, 9, 9, 3, 0, 7, 2, 8, 0]  # ties: the earlier frame first
    for step, reward in enumerate(rewards):
        keeper(0, step, np.full((16, 16, 3), step, np.uint8), float(reward))
    for step in range(4):  # a second episode: ranked, but no strip
        keeper(1, step, np.full((16, 16, 3), 100 + step, np.uint8), 4.5)
    assert [(f.episode, f.step, f.reward) for f in keeper.highest()] == [(0, 2, 9), (0, 3, 9), (0, 8, 8)]
    assert [(f.episode, f.step) for f in keeper.lowest()] == [(0, 5), (0, 9), (0, 1)]
    assert keeper.highest()[0].image.shape == (8, 8, 3) and keeper.highest()[0].image[0, 0, 0] == 2
    assert [step for step, _ in keeper.strip(0)] == [0, 3, 6, 9]  # every ceil(10 / 4) = 3 steps, and the last
    assert keeper.strip(1) == []


# -- the planted reward: the report flags it -------------------------------------------------------------------


def read_steps(out: Path) -> list[dict[str, str]]:
    with open(out / "steps.csv") as handle:
        return list(csv.DictReader(handle))


def test_report_flags_a_reward_that_likes_rejected_frames(run: Path, tmp_path: Path) -> None:
    copy = copy_run(run, tmp_path)
    hacked = inspect_run(copy, episodes=2, reward_fn=FunctionReward(fallen, image_size=SIZE, name="fallen"))
    main = hacked.summary["rewards"][0]
    assert hacked.summary["has_success_detector"] is True and hacked.summary["step"] == 64
    assert main["flagged"] is True and main["top_not_done_share"] > HACKING_THRESHOLD
    assert main["spearman_success"] < 0
    page = (copy / "inspect" / "report.html").read_text()
    assert '<body data-flagged="true">' in page and 'data-testid="verdict">FLAGGED<' in page
    # Each top frame of the planted reward is one the detector rejects.
    steps = read_steps(copy / "inspect")
    assert len(steps) == 80 and {row["success"] for row in steps} == {"0", "1"}
    ranked = sorted(steps, key=lambda row: -float(row["reward"]))[: main["top_frames"]]
    assert all(row["success"] == "0" for row in ranked)

    honest = inspect_run(copy, episodes=2, reward_fn=FunctionReward(upright, image_size=SIZE, name="upright"))
    good = honest.summary["rewards"][0]
    assert good["flagged"] is False and good["top_not_done_share"] < HACKING_THRESHOLD
    assert good["spearman_success"] > 0.5
    assert '<body data-flagged="false">' in (copy / "inspect" / "report.html").read_text()
    # The second inspection replaced the first whole: no leftovers, no temporary directories.
    assert leftovers(copy) == []
    print(f"planted reward: {json.dumps(main)}\nhonest reward: {json.dumps(good)}")


def test_inspect_writes_pngs_and_a_self_contained_page(run: Path, tmp_path: Path) -> None:
    copy = copy_run(run, tmp_path)
    result = inspect_run(copy, episodes=2, k=4, reward_fn=FunctionReward(fallen, image_size=SIZE, name="fallen"))
    out = copy / "inspect"
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "episode_0.png",
        "episode_1.png",
        "report.html",
        "reward_correlation.png",
        "reward_extremes.png",
        "reward_landscape.png",
        "steps.csv",
        "summary.json",
    ]
    for png in out.glob("*.png"):
        with Image.open(png) as image:
            assert image.width >= 600 and image.height >= 250
            assert len(np.unique(np.asarray(image.convert("L")))) > 20  # a drawing, not a blank canvas
    page = result.report.read_text()
    assert page.count('src="data:image/png;base64,') == 5  # every PNG inline
    assert "http://" not in page and "https://" not in page  # nothing to fetch: opens offline
    assert json.loads((out / "summary.json").read_text())["rewards"][0]["key"] == "reward"


@pytest.mark.slow
def test_alpha_variants_come_from_the_same_embeddings(run: Path, tmp_path: Path) -> None:
    copy = copy_run(run, tmp_path)
    mixed = color_reward(target="a red pole", baseline_prompts=["a blue pole"], alpha=0.5)
    first = inspect_run(copy, episodes=1, reward_fn=mixed)
    keys = [r["key"] for r in first.summary["rewards"]]
    assert keys == ["reward", "alpha0", "alpha1"] and "α = 0.5" in first.summary["rewards"][0]["label"]
    assert {"alpha0_extremes.png", "alpha1_landscape.png"} <= {p.name for p in (copy / "inspect").iterdir()}
    with_variants = read_steps(copy / "inspect")
    inspect_run(copy, episodes=1, reward_fn=color_reward(target="a red pole", baseline_prompts=["a blue pole"]))
    goal_only = read_steps(copy / "inspect")
    assert [float(r["alpha0"]) for r in with_variants] == pytest.approx([float(r["reward"]) for r in goal_only])


def test_cli_inspects_with_the_runs_model(model_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = copy_run(model_run, tmp_path)
    assert main(["inspect", str(copy), "--episodes", "1", "--checkpoint", "32", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "trained on" in out and "projected reward (α = 1)" in out and "report.html" in out
    summary = json.loads((copy / "inspect" / "summary.json").read_text())
    assert summary["reward_model"] == "tiny-random" and summary["step"] == 32
    assert [r["key"] for r in summary["rewards"]] == ["reward", "alpha1"]  # the run's alpha is 0


# -- bad input: one line, nothing written -------------------------------------------------------------------------


def cli_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_inputs_are_one_line_and_write_nothing(
    model_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = copy_run(model_run, tmp_path)
    assert "positive number of episodes" in cli_error(["inspect", str(copy), "--episodes", "0"], capsys)
    missing = cli_error(["inspect", str(copy), "--checkpoint", "7"], capsys)
    assert "no checkpoint at step 7; its steps: 32, 64" in missing
    assert "does not exist" in cli_error(["inspect", str(tmp_path / "nowhere")], capsys)
    assert "not a vlmrm run directory" in cli_error(["inspect", str(tmp_path)], capsys)
    config_file = str(copy / "config.yaml")
    assert f"{config_file!r} is a file, not a run directory" in cli_error(["inspect", config_file], capsys)
    assert "--seed must be an integer from 0 to 4294967295, got -5." in cli_error(
        ["inspect", str(copy), "--seed", "-5"], capsys
    )
    empty = tmp_path / "empty"
    (empty / "checkpoints").mkdir(parents=True)
    shutil.copy(copy / "config.yaml", empty / "config.yaml")
    assert "has no checkpoint yet" in cli_error(["inspect", str(empty)], capsys)
    # A checkpoint of another env: this CartPole policy in a MountainCar run.
    other = tmp_path / "mountaincar"
    (other / "checkpoints").mkdir(parents=True)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["env"].update(name="mountaincar", options={})
    config["reward"].update(target_prompts=None, baseline_prompts=None)
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    shutil.copy(copy / "checkpoints" / "step_0000000064.zip", other / "checkpoints")
    assert "is of another environment" in cli_error(["inspect", str(other)], capsys)
    for directory in (copy, empty, other):
        assert not (directory / "inspect").exists() and leftovers(directory) == []


def test_a_run_with_a_report_can_still_be_overwritten(run: Path, tmp_path: Path) -> None:
    from vlmrm.run import RunDir

    copy = copy_run(run, tmp_path)
    inspect_run(copy, episodes=1, reward_fn=FunctionReward(upright, image_size=SIZE))
    RunDir(copy).check_free(overwrite=True)  # inspect/ is vlmrm's own: `vlmrm train --overwrite` may delete it
    with pytest.raises(RunDirectoryError, match="already holds a run"):
        RunDir(copy).check_free(overwrite=False)


def test_a_failed_inspection_keeps_the_previous_report(run: Path, tmp_path: Path) -> None:
    copy = copy_run(run, tmp_path)
    inspect_run(copy, episodes=1, reward_fn=FunctionReward(upright, image_size=SIZE))
    before = {p.name: p.read_bytes() for p in (copy / "inspect").iterdir()}

    def broken(frames: np.ndarray) -> np.ndarray:
        return np.full(len(frames), np.nan)

    with pytest.raises(RewardError, match="not a finite number"):
        inspect_run(copy, episodes=1, reward_fn=broken)
    with pytest.raises(ConfigError, match="positive number of episodes"):
        inspect_run(copy, episodes=0)
    with pytest.raises(RunDirectoryError):
        inspect_run(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="does not exist"):
        inspect_run(copy, checkpoint=tmp_path / "none.zip")
    assert {p.name: p.read_bytes() for p in (copy / "inspect").iterdir()} == before
    assert leftovers(copy) == []


def test_inspect_says_when_it_passes_over_a_corrupt_newest_checkpoint(
    run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    copy = copy_run(run, tmp_path)
    newest = copy / "checkpoints" / "step_0000000064.zip"
    newest.write_bytes(newest.read_bytes()[:1000])  # a torn write
    with caplog.at_level("WARNING"):
        result = inspect_run(copy, "latest", episodes=1, reward_fn=FunctionReward(upright, image_size=SIZE))
    assert result.summary["step"] == 32
    assert f"checkpoint {newest} is unusable (it is truncated or corrupt" in caplog.text
    assert "inspecting step_0000000032.zip instead" in caplog.text


# -- training: TensorBoard images at every evaluation -----------------------------------------------------------------


def tensorboard_images(events_dir: Path) -> dict[str, list[tuple[int, tuple[int, int]]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(events_dir), size_guidance={"images": 0})
    events.Reload()
    return {
        tag: [(event.step, (event.width, event.height)) for event in events.Images(tag)]
        for tag in events.Tags()["images"]
    }


def test_training_logs_inspection_images_at_every_evaluation(run: Path) -> None:
    images = tensorboard_images(run)
    assert sorted(images) == ["eval/video", "inspect/episode", "inspect/extremes"]  # the final policy's video too
    assert [step for step, _ in images["inspect/extremes"]] == [32, 64]  # the periodic and the final evaluation
    assert all(width >= 600 and height >= 300 for _, (width, height) in images["inspect/episode"])
    with open(run / "logs" / "progress.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("inspect/top_not_done_share")]
    assert [int(float(row["step"])) for row in rows] == [32, 64]
    assert float(rows[-1]["inspect/flagged"]) == 1.0  # the final policy, as `vlmrm inspect` sees it below


def test_inspect_false_logs_no_images(tmp_path: Path) -> None:
    config = run_config(tmp_path / "run", inspect=False)
    config["rl"]["total_steps"] = 32
    train(config_from_dict(config), reward_fn=FunctionReward(fallen, image_size=SIZE))
    assert not [tag for tag in tensorboard_images(tmp_path / "run") if tag.startswith("inspect/")]
    with open(tmp_path / "run" / "logs" / "progress.csv") as handle:
        assert not any(column.startswith("inspect/") for column in next(csv.reader(handle)))


# -- the page in a real browser --------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Chromium at /usr/bin/chromium: apt-get install chromium")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"], headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.mark.browser
def test_report_opens_offline_in_chromium(browser, run: Path, tmp_path: Path) -> None:
    copy = copy_run(run, tmp_path)
    report = inspect_run(copy, episodes=2, reward_fn=FunctionReward(fallen, image_size=SIZE)).report
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(report.as_uri())
    page.wait_for_load_state("load")
    assert page.inner_text("[data-testid=verdict]") == "FLAGGED"
    assert page.get_attribute("[data-testid=verdict-reward]", "data-flagged") == "true"
    widths = page.eval_on_selector_all("img", "images => images.map(i => i.complete ? i.naturalWidth : 0)")
    assert len(widths) == 5 and all(width >= 600 for width in widths)
    assert all(url.startswith(("file:", "data:")) for url in requests)  # nothing from the network
    page.close()


def test_a_run_resumes_from_a_checkpoint_taken_at_an_inspected_evaluation(run: Path, tmp_path: Path) -> None:
    """The checkpoint at step 32 carries the logger's unwritten row of the evaluation at 32, images left out."""
    from vlmrm.training.trainer import resume

    copy = copy_run(run, tmp_path)
    (copy / "checkpoints" / "step_0000000064.zip").unlink()  # as if killed between the checkpoints at 32 and 64
    (copy / "summary.json").unlink()
    resume(copy, reward_fn=FunctionReward(fallen, image_size=SIZE))
    steps = [step for step, _ in tensorboard_images(copy)["inspect/extremes"]]
    assert steps == [64]  # the images of 32 were logged after the checkpoint: cut, and not carried by it
    with open(copy / "logs" / "progress.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("inspect/top_not_done_share")]
    assert [int(float(row["step"])) for row in rows] == [32, 64]  # the numbers are carried


def test_inspect_scores_a_video_model_by_the_clips_training_scores(run: Path, tmp_path: Path) -> None:
    copy = copy_run(run, tmp_path)

    def video(alpha: float) -> VideoReward:
        return VideoReward(ColorClipEmbedder(), "a red pole", ["a blue pole"], alpha=alpha, stride=2)  # type: ignore[arg-type]

    inspected = inspect_run(copy, episodes=1, reward_fn=video(0.5))
    steps = read_steps(copy / "inspect")
    # The same episode through training's evaluation env: episode-end batching, the reward guard.
    directory = RunDir(copy)
    inner = evaluation_env(directory.config())
    venv = VecVLMReward(inner, RewardGuard(video(0.5), tmp_path / "bad"), mode="episode")
    trained = evaluate(directory.load_model(directory.policy(), env=inner), venv, 1, record_frames=True)
    venv.close()
    frames = np.stack(trained.frames)
    windows = video(0.5).score_episodes([frames])[0]
    np.testing.assert_allclose(trained.traces[0].vlm_rewards, windows, atol=1e-6)
    np.testing.assert_allclose([float(r["reward"]) for r in steps], windows, atol=1e-5)
    np.testing.assert_allclose([float(r["alpha0"]) for r in steps], video(0.0).score_episodes([frames])[0], atol=1e-5)
    assert inspected.summary["mean_VLM_return"] == pytest.approx(trained.vlm_returns[0], abs=1e-4)
    assert np.abs(windows - video(0.5)(frames)).max() > 1e-4  # still clips would score otherwise
