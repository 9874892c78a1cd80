"""``vlmrm score``: images, videos and .npy frames in, a table or JSON of rewards out; bad input is one line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from markers import skip_without_video_encoder
from vlmrm.cli.main import main
from vlmrm.evaluation.scoring import FrameError, read_frames, score
from vlmrm.reward.video import VideoReward
from vlmrm.rl.video import write_video
from vlmrm.testing import ColorClipEmbedder, ColorEmbedder, color_reward, color_reward_reference

pytestmark = pytest.mark.filterwarnings("ignore:vlmrm. model:UserWarning")


def solid(rgb: tuple[int, int, int], size: int = 32) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, np.uint8), (size, size, 3)).copy()


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    skip_without_video_encoder()
    red, blue = tmp_path / "red.png", tmp_path / "blue.png"
    Image.fromarray(solid((230, 20, 20))).save(red)
    Image.fromarray(solid((20, 20, 230), size=48)).convert("L").save(blue)  # grey: becomes RGB
    video = write_video([solid((10 * i, 100, 50), size=64) for i in range(6)], tmp_path / "clip.mp4", fps=5)
    array = tmp_path / "frames.npy"
    np.save(array, np.stack([solid((0, 200, 0)), solid((255, 255, 255))]))
    return {"red": red, "blue": blue, "video": video, "array": array}


def test_rewards_follow_the_picture(inputs: dict[str, Path]) -> None:
    frames = read_frames([inputs["red"], inputs["array"]])
    assert [(Path(f.source).name, f.index) for f in frames] == [("red.png", 0), ("frames.npy", 0), ("frames.npy", 1)]
    reward = color_reward(ColorEmbedder(), target="a red pole", baseline_prompts=["a blue pole"])
    columns, table = score(frames, {"color": reward}, [0.0, 1.0])
    assert columns == ["α=0", "α=1"]
    expected = color_reward_reference(np.stack([f.image for f in frames]), (1.0, 0.0, 0.0))
    assert table[:, 0] == pytest.approx(expected, abs=1e-5)
    assert table[0, 0] == table[:, 0].max()  # the red frame is the reddest
    assert table[:, 1] == pytest.approx(reward.reward_from_embeddings(reward.embed_images(
        np.stack([f.image for f in frames])), alpha=1.0).numpy(), abs=1e-5)  # fmt: skip


def test_a_video_model_scores_a_video_files_frames_as_clips(
    inputs: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    frames = read_frames([inputs["red"], inputs["video"], inputs["array"]], every=2)
    reward = VideoReward(ColorClipEmbedder(), "a red pole", ["a blue pole"], alpha=0.5)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="vlmrm"):
        _, table = score(frames, {"video": reward}, [0.5, 0.0])
    in_video = [i for i, f in enumerate(frames) if f.source.endswith(".mp4")]
    stills = [i for i in range(len(frames)) if i not in in_video]
    episode = np.stack([frames[i].image for i in in_video])  # every 2nd frame of the video, in order
    assert table[in_video, 0] == pytest.approx(reward.score_episodes([episode])[0], abs=1e-6)
    reward.alpha = 0.0
    assert table[in_video, 1] == pytest.approx(reward.score_episodes([episode])[0], abs=1e-6)
    assert table[stills, 1] == pytest.approx(reward(np.stack([frames[i].image for i in stills])), abs=1e-6)
    assert np.abs(table[in_video, 1] - reward(episode)).max() > 1e-4  # clips, not still frames
    notes = [r.getMessage() for r in caplog.records if "still clip" in r.getMessage()]
    assert len(notes) == 1 and "images and .npy frames" in notes[0]


def test_cli_prints_a_table_of_every_frame(inputs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(inputs["red"]), str(inputs["blue"]), str(inputs["video"]), "--every", "2"]
    assert main(["score", *args, "--prompt", "a red square", "--model", "tiny-random"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["source", "frame", "reward"]
    rows = [line.split() for line in lines[2:] if not line.startswith("-")]
    assert [row[1] for row in rows[:5]] == ["0", "0", "0", "2", "4"]  # images, then every 2nd video frame
    assert [row[0] for row in rows[5:]] == ["mean", "min", "max"]
    assert all(np.isfinite(float(row[-1])) for row in rows)


def test_cli_json_has_a_column_per_model_and_alpha(inputs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    args = ["score", str(inputs["array"]), "--prompt", "a green square", "--baseline", "a square", "--json"]
    assert main([*args, "--model", "tiny-random", "--alpha", "0", "--alpha", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["columns"] == ["α=0", "α=1"] and data["baseline_prompts"] == ["a square"]
    assert [(f["frame"], sorted(f["rewards"])) for f in data["frames"]] == [(0, ["α=0", "α=1"]), (1, ["α=0", "α=1"])]


def test_a_directory_scores_its_frame_files(inputs: dict[str, Path]) -> None:
    frames = read_frames([inputs["red"].parent], every=3)
    assert sorted({Path(f.source).name for f in frames}) == ["blue.png", "clip.mp4", "frames.npy", "red.png"]
    assert [f.index for f in frames if f.source.endswith(".mp4")] == [0, 3]


def bad_input(directory: Path, kind: str) -> Path:
    """A frame input that cannot be scored."""
    path = directory / {"shape": "bad.npy", "dtype": "f.npy", "video": "broken.mp4", "image": "broken.png"}.get(
        kind, kind
    )
    if kind == "shape":
        np.save(path, np.zeros((4, 8, 8), np.uint8))
    elif kind == "dtype":
        np.save(path, np.zeros((8, 8, 3), np.float32))
    elif kind == "video":
        path.write_text("not a video")
    elif kind == "image":
        path.write_bytes(b"\x89PNG nonsense")
    elif kind == "empty":
        path.mkdir()
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("shape", "shape (4, 8, 8)"),
        ("dtype", "(float32)"),
        ("video", "Cannot read video"),
        ("image", "Cannot read image"),
        ("missing.png", "does not exist"),
        ("empty", "holds no images"),
    ],
)
def test_bad_frames_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, message: str) -> None:
    path = bad_input(tmp_path, kind)
    with pytest.raises(FrameError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_frames([path])
    assert main(["score", str(path), "--prompt", "a red square", "--model", "tiny-random"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_bad_arguments_fail_before_a_model_loads(inputs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    image = str(inputs["red"])
    for args, message in [
        ([image], "--prompt TEXT"),
        ([image, "--prompt", "x", "--alpha", "0.5"], "needs baseline prompts"),
        ([image, "--prompt", "x", "--baseline", "y", "--alpha", "2"], "--alpha must lie in [0, 1]"),
        ([image, "--prompt", "x", "--every", "0"], "--every must be a positive whole number"),
    ]:
        # A model that does not exist: these errors come first.
        assert main(["score", *args, "--model", "no-such/model-anywhere"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err
