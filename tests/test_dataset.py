"""Labelled state datasets: collection, the labelling server's API, and EPIC against labels."""

from __future__ import annotations

import csv
import json
import math
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlmrm.cli.main import main
from vlmrm.envs import make_env
from vlmrm.errors import CheckpointError, ConfigError
from vlmrm.evaluation.dataset import (
    DatasetError,
    atomic_write_json,
    binary_labels,
    collect_dataset,
    load_dataset,
    task_sentence,
)
from vlmrm.evaluation.epic import pearson_distance
from vlmrm.evaluation.epic_study import epic_to_labels, labelled_frames
from vlmrm.evaluation.labelling import make_label_server
from vlmrm.reward import VLMReward
from vlmrm.testing import ColorEmbedder, color_reward_reference

pytestmark = pytest.mark.filterwarnings("ignore:.*RANDOM weights:UserWarning")


@pytest.fixture(scope="module")
def cartpole_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data") / "cartpole"
    collect_dataset("cartpole", out, episodes=2, episode_length=12, every=3, render_size=48, seed=1)
    return out


def test_collect_saves_frames_states_and_a_manifest(cartpole_dataset: Path) -> None:
    dataset = load_dataset(cartpole_dataset)
    assert dataset.metadata["env"] == "cartpole" and dataset.metadata["render_size"] == 48
    assert len(dataset.records) == len(list((cartpole_dataset / "frames").glob("*.png")))
    assert [r["index"] for r in dataset.records] == list(range(len(dataset.records)))
    assert {r["episode"] for r in dataset.records} == {0, 1}
    assert all((r["step"] - 1) % 3 == 0 for r in dataset.records)
    # Each stored state reproduces its frame exactly.
    env = make_env("cartpole", render_size=48)
    env.reset(seed=0)
    for record in dataset.records:
        assert len(record["state"]) == 4
        env.unwrapped.set_sim_state(record)
        stored = np.asarray(Image.open(cartpole_dataset / record["frame"]).convert("RGB"))
        np.testing.assert_array_equal(env.render(), stored)
    assert dataset.load_frames().shape == (len(dataset.records), 48, 48, 3)


def test_collect_refuses_to_overwrite_and_checks_the_detector(tmp_path: Path, cartpole_dataset: Path) -> None:
    with pytest.raises(DatasetError, match="not empty"):
        collect_dataset("cartpole", cartpole_dataset, episodes=1)
    with pytest.raises(ConfigError, match=r"no success flag .*\(give the task whose detector to use"):
        collect_dataset(
            "humanoid", tmp_path / "h", episodes=1, episode_length=2, render_size=16, label_with_detector=True
        )
    dataset = collect_dataset(
        "mountaincar", tmp_path / "m", episodes=1, episode_length=6, render_size=32, label_with_detector=True
    )
    assert all(r["is_success"] is False for r in dataset.records)
    assert len(dataset.records[0]["state"]) == 2


def test_collect_with_a_stable_baselines3_checkpoint(tmp_path: Path) -> None:
    from stable_baselines3 import PPO

    env = make_env("cartpole", render_size=32)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=32, seed=0, device="cpu")
    model.save(tmp_path / "ppo.zip")
    code = main(
        [
            *("dataset", "collect", "cartpole", "--policy", str(tmp_path / "ppo.zip"), "--episodes", "1"),
            *("--episode-length", "5", "--render-size", "32", "--deterministic", "--out", str(tmp_path / "d")),
        ]
    )
    assert code == 0
    dataset = load_dataset(tmp_path / "d")
    assert dataset.metadata["policy"].endswith("ppo.zip") and 1 <= len(dataset.records) <= 5
    # A checkpoint for another env is refused with a clear message.
    with pytest.raises(CheckpointError, match="is of another environment"):
        collect_dataset("mountaincar", tmp_path / "m", episodes=1, policy=str(tmp_path / "ppo.zip"))
    with pytest.raises(CheckpointError, match="No checkpoint"):
        collect_dataset("cartpole", tmp_path / "x", episodes=1, policy=str(tmp_path / "missing.zip"))


def test_task_sentences() -> None:
    assert task_sentence("cartpole") == "pole vertically upright on top of the cart"
    assert task_sentence("a red car on a hill") == "a red car on a hill"
    with pytest.raises(ConfigError, match="Did you mean 'cartpole'"):
        task_sentence("cartpol")


@pytest.fixture
def server(tmp_path: Path, cartpole_dataset: Path) -> Iterator[tuple[str, Path]]:
    labels = tmp_path / "labels.json"
    srv, _ = make_label_server(cartpole_dataset, "cartpole", task_sentence("cartpole"), labels=labels, port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", labels
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def page_token(base: str) -> str:
    """The write token in the page the server serves, as the page's script reads it."""
    with urllib.request.urlopen(base + "/", timeout=5) as response:
        match = re.search(r'name="vlmrm-token" content="([^"]+)"', response.read().decode())
    assert match is not None
    return match.group(1)


def request(url: str, data: dict | None = None) -> tuple[int, bytes]:
    body = None if data is None else json.dumps(data).encode()
    headers = {"Content-Type": "application/json"}
    if data is not None:
        headers["X-Vlmrm-Token"] = page_token(url.split("/api/")[0])
    req = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_label_server_api_saves_every_answer_and_resumes(server: tuple[str, Path], cartpole_dataset: Path) -> None:
    url, labels = server
    status, body = request(url + "/api/state")
    state = json.loads(body)
    assert status == 200 and state["position"] == 0 and state["sentence"].startswith("pole vertically")
    frames = state["frames"]
    assert json.loads(labels.read_text())["labels"] == {}  # created at start

    for frame, answer in zip(frames[:3], ["yes", "no", "skip"], strict=True):
        status, body = request(url + "/api/label", {"frame": frame, "answer": answer})
        assert status == 200
        # Written before the reply: the file already holds the answer.
        assert json.loads(labels.read_text())["labels"][frame] == answer
    assert json.loads(body)["counts"] == {
        "yes": 1,
        "no": 1,
        "skip": 1,
        "unlabelled": len(frames) - 3,
        "total": len(frames),
    }
    assert json.loads(request(url + "/api/state")[1])["position"] == 3
    # Relabelling an earlier frame keeps the resume point.
    request(url + "/api/label", {"frame": frames[1], "answer": "yes"})
    saved = json.loads(labels.read_text())
    assert saved["labels"][frames[1]] == "yes" and saved["task"] == "cartpole"

    assert request(url + "/")[1].startswith(b"<!doctype html>")
    assert b"addEventListener" in request(url + "/static/app.js")[1]
    status, png = request(url + "/frames/2")
    assert status == 200 and png == (cartpole_dataset / frames[2]).read_bytes()
    for bad in ("/frames/-1", "/frames/999", "/frames/..%2Fmanifest.jsonl", "/nothing"):
        assert request(url + bad)[0] == 404, bad
    assert request(url + "/api/label", {"frame": "../etc/passwd", "answer": "yes"})[0] == 400
    assert request(url + "/api/label", {"frame": frames[0], "answer": "maybe"})[0] == 400
    assert request(url + "/api/label", {"frame": frames[0]})[0] == 400
    assert len(json.loads(labels.read_text())["labels"]) == 3


def test_labels_of_another_task_are_not_mixed(tmp_path: Path, cartpole_dataset: Path) -> None:
    labels = tmp_path / "labels.json"
    atomic_write_json(labels, {"task": "x", "sentence": "a red car", "labels": {}})
    with pytest.raises(DatasetError, match="another task"):
        make_label_server(cartpole_dataset, "cartpole", task_sentence("cartpole"), labels=labels, port=0)


def write_labels(dataset_dir: Path, answers: dict[str, str], sentence: str = "a red cart") -> None:
    atomic_write_json(dataset_dir / "labels.json", {"task": "t", "sentence": sentence, "labels": answers})


def write_colour_dataset(root: Path, n: int = 24, size: int = 16, seed: int = 0) -> np.ndarray:
    """A dataset of flat-coloured frames, written the way ``collect`` writes one."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 256, size=(n, 3), dtype=np.uint8)
    frames = np.broadcast_to(colours[:, None, None, :], (n, size, size, 3)).copy()
    (root / "frames").mkdir(parents=True)
    records = []
    for i, frame in enumerate(frames):
        name = f"frames/{i:04d}.png"
        Image.fromarray(frame).save(root / name)
        records.append({"index": i, "frame": name, "episode": 0, "step": i + 1, "state": colours[i].tolist()})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    atomic_write_json(root / "dataset.json", {"env": "colours", "render_size": size})
    return frames


def test_epic_to_labels_matches_an_independent_computation(tmp_path: Path) -> None:
    frames_all = write_colour_dataset(tmp_path / "ds")
    dataset = load_dataset(tmp_path / "ds")
    # "yes" for reddish frames, with every third frame skipped and two answers flipped (human noise).
    redness = color_reward_reference(frames_all, (1, 0, 0))
    answers = {}
    for i, record in enumerate(dataset.records):
        red = redness[i] > np.median(redness)
        answers[record["frame"]] = "skip" if i % 3 == 2 else ("yes" if red != (i in (4, 7)) else "no")
    labels_file = tmp_path / "my-labels.json"
    atomic_write_json(labels_file, {"task": "t", "sentence": "a red square", "labels": answers})

    frames, labels, sentence = labelled_frames(dataset, "human", labels_file)
    kept = [i for i in range(len(dataset.records)) if i % 3 != 2]
    np.testing.assert_array_equal(frames, frames_all[kept])
    np.testing.assert_array_equal(labels, [int(answers[dataset.records[i]["frame"]] == "yes") for i in kept])
    assert sentence == "a red square" and 0 < labels.sum() < len(labels)

    model = VLMReward(ColorEmbedder(), [sentence], ["a blue square"])
    rows = epic_to_labels({"color": model}, frames, labels, [0.0, 1.0])
    assert [(r["model"], r["alpha"]) for r in rows] == [("color", 0.0), ("color", 1.0)]
    expected = pearson_distance(color_reward_reference(frames, (1, 0, 0)), labels)
    assert rows[0]["epic_distance"] == pytest.approx(expected, abs=1e-5)
    assert rows[0]["epic_distance"] < 0.5  # the reward follows redness, and so do the labels
    assert rows[0]["frames"] == len(kept) and rows[0]["positives"] == int(labels.sum())
    assert math.isclose(rows[0]["epic_distance"], math.sqrt((1 - rows[0]["correlation"]) / 2), abs_tol=1e-9)
    assert rows[1]["epic_distance"] != pytest.approx(rows[0]["epic_distance"], abs=1e-6)


def test_epic_needs_both_answers(tmp_path: Path, cartpole_dataset: Path) -> None:
    dataset = load_dataset(cartpole_dataset)
    labels_file = tmp_path / "l.json"
    atomic_write_json(labels_file, {"sentence": "s", "labels": {r["frame"]: "yes" for r in dataset.records}})
    with pytest.raises(DatasetError, match="both yes and no"):
        labelled_frames(dataset, "human", labels_file)
    with pytest.raises(DatasetError, match="No labels file"):
        binary_labels(dataset, "human", tmp_path / "none.json")
    with pytest.raises(DatasetError, match="no detector labels"):
        binary_labels(dataset, "detector")


def test_epic_cli_writes_a_table_csv_and_plot(
    tmp_path: Path, cartpole_dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = load_dataset(cartpole_dataset)
    answers = {r["frame"]: ("yes" if r["step"] < 5 else "no") for r in dataset.records}
    labels_file = tmp_path / "labels.json"
    atomic_write_json(labels_file, {"task": "cartpole", "sentence": task_sentence("cartpole"), "labels": answers})
    out = tmp_path / "epic"
    code = main(
        [
            *("epic", str(cartpole_dataset), "--model", "tiny-random", "--alpha", "0", "--alpha", "0.5"),
            *("--labels", str(labels_file), "--out", str(out)),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "EPIC distance" in printed and "tiny-random" in printed
    with (out / "epic.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["model"], float(r["alpha"])) for r in rows] == [("tiny-random", 0.0), ("tiny-random", 0.5)]
    for row in rows:
        assert 0.0 <= float(row["epic_distance"]) <= 1.0
        assert int(row["frames"]) == len(answers)
    assert (out / "epic.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_errors_are_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["epic", str(tmp_path), "--model", "tiny-random"]) == 2
    assert "not a dataset directory" in capsys.readouterr().err
    assert main(["dataset", "collect", "cartpole", "--out", str(tmp_path / "x"), "--option", "oops"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    code = main(["dataset", "collect", "cartpole", "--out", str(tmp_path / "y"), "--option", "textured=true"])
    assert code == 2
    assert "textured: unknown field. Valid fields here: renderer, terminate_on_fall." in capsys.readouterr().err


def write_detector_dataset(root: Path, task: str = "kneeling", n: int = 16) -> None:
    """A hand-written humanoid dataset labelled by the success detector (collecting one needs MuJoCo and minutes)."""
    write_colour_dataset(root, n=n)
    records = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    for record in records:
        record["is_success"] = record["index"] % 3 == 0
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    atomic_write_json(
        root / "dataset.json",
        {"env": "humanoid", "env_options": {"task": task}, "task": task, "label_with_detector": True},
    )


def epic_rows(dataset: Path, out: Path, *extra: str) -> list[dict[str, str]]:
    args = ["epic", str(dataset), "--model", "tiny-random", "--alpha", "0", "--alpha", "1", "--out", str(out)]
    assert main([*args, *extra]) == 0
    with (out / "epic.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_epic_with_the_detector_scores_the_tasks_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "kneeling"
    write_detector_dataset(root)
    detector = epic_rows(root, tmp_path / "a", "--detector")
    printed = " ".join(capsys.readouterr().out.split())
    sentence = epic_rows(root, tmp_path / "b", "--detector", "--prompt", "a humanoid robot kneeling")
    bare = epic_rows(root, tmp_path / "c", "--detector", "--prompt", "kneeling")
    assert detector == sentence
    for row, other in zip(detector, bare, strict=True):
        assert row["epic_distance"] != other["epic_distance"]
    assert {(r["target_prompt"], r["baseline_prompt"]) for r in detector} == {
        ("a humanoid robot kneeling", "a humanoid robot")
    }
    assert {r["target_prompt"] for r in bare} == {"kneeling"}
    # The table's title names both prompts.
    assert "'a humanoid robot kneeling'" in printed and "'a humanoid robot'" in printed


def test_epic_titles_name_the_target_and_baseline_prompts() -> None:
    from vlmrm.evaluation.epic_study import epic_title

    rows = [
        {"model": "m", "target_prompt": "a red square | a crimson square", "baseline_prompt": "a square"},
        {"model": "n", "target_prompt": "a red square | a crimson square", "baseline_prompt": "a square"},
    ]
    title = epic_title(rows, "ds (10 frames, 4 yes)")
    assert title.startswith("ds (10 frames, 4 yes)")
    assert "'a red square', 'a crimson square'" in title and "'a square'" in title
    unlike = [{**rows[0], "baseline_prompt": ""}, rows[1]]
    assert "m: " in epic_title(unlike, "ds") and "baseline: none" in epic_title(unlike, "ds")


def test_relative_labels_paths_resolve_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ds"
    write_colour_dataset(root)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    dataset = load_dataset(root)
    answers = {r["frame"]: ("yes" if r["index"] % 2 else "no") for r in dataset.records}
    atomic_write_json(work / "rel.json", {"task": "t", "sentence": "a red square", "labels": answers})
    rows = epic_rows(root, tmp_path / "out", "--labels", "rel.json", "--baseline", "a blue square")
    assert {int(r["frames"]) for r in rows} == {len(answers)}
    # The labeller writes a relative --labels file into the working directory too; the default stays DIR/labels.json.
    server, store = make_label_server(root, "t", "a red square", labels="new.json", port=0)
    server.server_close()
    assert store.path.resolve() == (work / "new.json").resolve() and store.path.is_file()
    assert not (root / "new.json").exists()
    server, store = make_label_server(root, "t", "a red square", port=0)
    server.server_close()
    assert store.path.resolve() == (root / "labels.json").resolve()


def test_collect_shows_a_progress_bar_over_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--episode-length", "5", "--render-size", "32"]
    assert main(["dataset", "collect", "mountaincar", "--episodes", "2", *args, "--out", str(tmp_path / "m")]) == 0
    last = capsys.readouterr().err.split("\r")[-1]
    assert "100%" in last and "10.0/10.0" in last and "step/s" in last
    # Episodes that end early (a falling pole, with Gymnasium's rule) shorten the bar, which still ends full.
    args = ["--episode-length", "200", "--render-size", "32", "--every", "50", "--option", "terminate_on_fall=true"]
    assert main(["dataset", "collect", "cartpole", "--episodes", "2", *args, "--out", str(tmp_path / "c")]) == 0
    last = capsys.readouterr().err.split("\r")[-1]
    counts = re.search(r"([\d.]+)/([\d.]+) \[", last)
    assert counts is not None and "100%" in last, last
    assert counts[1] == counts[2] and float(counts[2]) < 400


def test_collect_with_a_run_directory_uses_its_newest_good_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stable_baselines3 import DQN

    from vlmrm.run.checkpoints import checkpoint_path

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    env = make_env("cartpole", render_size=32)
    for step in (50, 100):
        DQN("MlpPolicy", env, buffer_size=64, learning_starts=0, seed=step, device="cpu").save(
            checkpoint_path(run / "checkpoints", step)
        )
    checkpoint_path(run / "checkpoints", 200).write_bytes(b"")  # a write cut short: skipped
    newest = checkpoint_path(run / "checkpoints", 100)
    args = ["--episodes", "1", "--episode-length", "4", "--render-size", "32"]
    assert main(["dataset", "collect", "cartpole", "--policy", str(run), *args, "--out", str(tmp_path / "d")]) == 0
    captured = capsys.readouterr()
    assert str(newest) in captured.out
    assert load_dataset(tmp_path / "d").metadata["policy"] == str(newest.resolve())
    # The checkpoints folder itself works too.
    out = str(tmp_path / "e")
    assert main(["dataset", "collect", "cartpole", "--policy", str(run / "checkpoints"), *args, "--out", out]) == 0
    assert load_dataset(tmp_path / "e").metadata["policy"] == str(newest.resolve())
    capsys.readouterr()
    # An unpadded name (as the docs once showed) says which checkpoints exist.
    wrong = run / "checkpoints" / "step_100.zip"
    assert main(["dataset", "collect", "cartpole", "--policy", str(wrong), *args, "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert "step_0000000100.zip" in err and "step_0000000050.zip" in err and str(run) in err
    (tmp_path / "empty").mkdir()
    empty = str(tmp_path / "empty")
    assert main(["dataset", "collect", "cartpole", "--policy", empty, *args, "--out", str(tmp_path / "g")]) == 2
    assert "no checkpoint" in capsys.readouterr().err.lower()
