"""What a command prints for a warning: one line with the message, never the library line that raised it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlmrm.cli.main import one_line_warning
from vlmrm.evaluation.dataset import atomic_write_json

ROOT = Path(__file__).parents[1]


def test_a_warning_is_formatted_as_its_message_alone() -> None:
    text = one_line_warning(UserWarning("vlmrm: model 'tiny-random' has RANDOM weights"), UserWarning, "x.py", 3, "y")
    assert text == "warning: vlmrm: model 'tiny-random' has RANDOM weights\n"


@pytest.mark.slow
def test_a_tiny_random_command_prints_the_random_weights_warning_as_one_line(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "frames").mkdir(parents=True)
    records, labels = [], {}
    for i in range(4):
        name = f"frames/{i}.png"
        Image.fromarray(np.full((8, 8, 3), 60 * i, np.uint8)).save(root / name)
        records.append({"index": i, "frame": name, "episode": 0, "step": i + 1, "state": [0.0]})
        labels[name] = "yes" if i % 2 else "no"
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    atomic_write_json(root / "dataset.json", {"env": "colours"})
    atomic_write_json(root / "labels.json", {"task": "t", "sentence": "a red square", "labels": labels})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "vlmrm.cli.main", "epic", str(root), "--model", "tiny-random"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    warning = "warning: vlmrm: model 'tiny-random' has RANDOM weights: its rewards are meaningless."
    assert any(line.startswith(warning) for line in result.stderr.splitlines()), result.stderr
    assert "from_pretrained(" not in result.stderr and "UserWarning" not in result.stderr, result.stderr
    assert "not writable" not in result.stderr, result.stderr
