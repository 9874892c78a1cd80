"""`vlmrm dataset` and `vlmrm epic` on damaged datasets and bad arguments: one clear message, exit 2, data kept."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlmrm.cli.main import main
from vlmrm.evaluation.dataset import atomic_write_json
from vlmrm.evaluation.labelling import make_label_server

pytestmark = pytest.mark.filterwarnings("ignore:.*RANDOM weights:UserWarning")


def write_dataset(root: Path, n: int = 6) -> list[str]:
    """A dataset of flat-coloured 8x8 frames, alternately reddish and bluish; its frame names."""
    (root / "frames").mkdir(parents=True)
    records = []
    for i in range(n):
        name = f"frames/{i:04d}.png"
        colour = (200, 30 * i, 20) if i % 2 == 0 else (20, 30 * i, 200)
        Image.fromarray(np.full((8, 8, 3), colour, np.uint8)).save(root / name)
        records.append({"index": i, "frame": name, "episode": 0, "step": i + 1, "state": [float(i)]})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    atomic_write_json(root / "dataset.json", {"env": "colours"})
    return [r["frame"] for r in records]


def label_all(root: Path) -> None:
    """Answer every frame through the labelling server's store (yes for the reddish ones)."""
    server, store = make_label_server(root, "t", "a red square", port=0)
    try:
        for i, frame in enumerate(store.frames):
            store.set(frame, "yes" if i % 2 == 0 else "no")
    finally:
        server.server_close()


def damage(what: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        if what == "manifest list":
            (root / "manifest.jsonl").write_text("[1, 2, 3]\n")
        elif what == "manifest number":
            (root / "manifest.jsonl").write_text("5\n")
        elif what == "dataset.json not JSON":
            (root / "dataset.json").write_text("{env: ")
        elif what == "dataset.json a list":
            (root / "dataset.json").write_text("[1]")
        elif what == "labels.json a directory":
            (root / "labels.json").mkdir()
        elif what == "labels in a file":
            (root / "notes").write_text("mine")
        elif what == "frame missing":
            label_all(root)
            (root / "frames" / "0002.png").unlink()

    return apply


LABEL = ["dataset", "label", "{root}", "--task", "a red square", "--no-browser", "--port", "0"]
EPIC = ["epic", "{root}", "--model", "tiny-random", "--out", "{tmp}/epic"]
CASES = [
    ("manifest line a list", "manifest list", LABEL, r"manifest.jsonl, line 1: not a frame record .*'\[1, 2, 3\]'"),
    ("manifest line a number", "manifest number", LABEL, r"manifest.jsonl, line 1: not a frame record .*'5'"),
    ("dataset.json not JSON", "dataset.json not JSON", LABEL, r"dataset.json is not valid JSON"),
    ("dataset.json not an object", "dataset.json a list", LABEL, r"dataset.json holds a list, not a JSON object"),
    ("labels.json a directory", "labels.json a directory", LABEL, r"labels file .*labels.json is a directory"),
    ("port too large", None, [*LABEL[:-1], "99999"], r"--port must be between 0 and 65535 .* got 99999"),
    ("port negative", None, [*LABEL[:-1], "-1"], r"--port must be between 0 and 65535 .* got -1"),
    (
        "labels under a file",
        "labels in a file",
        [*LABEL, "--labels", "{root}/notes/labels.json"],
        r"Cannot write the labels file .*notes/labels.json .*give --labels in a folder you can write to",
    ),
    (
        "collect --out a file",
        "labels in a file",
        ["dataset", "collect", "cartpole", "--out", "{root}/notes"],
        r"is a file",
    ),
    ("epic with a frame missing", "frame missing", EPIC, r"Cannot read frame .*0002.png \(it is missing\)"),
]


@pytest.mark.parametrize(("what", "argv", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_datasets_and_arguments_give_one_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], what: str | None, argv: list[str], message: str
) -> None:
    root = tmp_path / "ds"
    write_dataset(root)
    if what is not None:
        damage(what)(root)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert main([a.format(root=root, tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err
    assert all(p.read_bytes() == data for p, data in before.items())  # nothing rewritten


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into any folder")
def test_labels_in_an_unwritable_folder_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "ds"
    write_dataset(root)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    argv = [a.format(root=root) for a in LABEL] + ["--labels", str(locked / "labels.json")]
    assert main(argv) == 2
    assert "Cannot write the labels file" in capsys.readouterr().err


def test_epic_refuses_labels_of_frames_collected_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`collect --overwrite` writes new images under the old names; the old answers must not score them."""
    root = tmp_path / "cartpole"
    collect = ["dataset", "collect", "cartpole", "--out", str(root), "--episodes", "1", "--episode-length", "8"]
    collect += ["--render-size", "32", "--every", "2"]
    assert main([*collect, "--seed", "1"]) == 0
    label_all(root)
    epic = ["epic", str(root), "--model", "tiny-random", "--prompt", "a red square", "--out", str(tmp_path / "e")]
    assert main(epic) == 0  # the labels judged these frames
    assert main([*collect, "--seed", "2", "--overwrite"]) == 0
    capsys.readouterr()
    assert main(epic) == 2
    err = capsys.readouterr().err
    assert "judged other images than the frames now in" in err and "vlmrm dataset label" in err, err
