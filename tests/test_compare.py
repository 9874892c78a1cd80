"""``vlmrm rewards compare``: reward models of every family ranked on one labelled CartPole dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vlmrm.cli.main import main
from vlmrm.evaluation.compare import hacking_share, roc_auc

pytestmark = pytest.mark.filterwarnings("ignore:vlmrm. model:UserWarning")


def test_roc_auc_and_hacking_share_count_pairs_and_the_top_decile() -> None:
    labels = np.array([0] * 10 + [1] * 10)
    separated = np.arange(20, dtype=float)
    assert roc_auc(separated, labels) == 1.0 and roc_auc(-separated, labels) == 0.0
    assert roc_auc(np.zeros(20), labels) == 0.5  # ties count half
    assert hacking_share(separated, labels) == 0.0  # the top two frames are successes
    assert hacking_share(-separated, labels) == 1.0
    assert hacking_share(np.array([3.0, 2.0, 1.0]), np.array([0, 1, 1])) == 1.0  # at least one frame


@pytest.mark.slow
def test_compare_prints_the_table_for_clip_vqa_and_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "cartpole"
    collect = ["dataset", "collect", "cartpole", "--episodes", "3", "--episode-length", "30", "--every", "3"]
    assert main([*collect, "--render-size", "32", "--label-with-detector", "--out", str(data)]) == 0
    capsys.readouterr()
    models = ["tiny-random", "vqa:tiny-random", "video:tiny-random"]
    args = ["rewards", "compare", str(data), "--detector", "--alpha", "0", "--alpha", "1"]
    assert main([*args, *[arg for m in models for arg in ("--model", m)]]) == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| ") and "tiny-random" in line]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == [m for m in models for _ in range(2)]
    for row in rows:  # EPIC distance, correlations, AUC and hacking share are numbers in range
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert 0 <= float(cells[2]) <= 1 and -1 <= float(cells[3]) <= 1 and 0 <= float(cells[5]) <= 1
        assert float(cells[7]) > 0
    assert (data / "compare" / "compare.md").read_text().strip() in printed
    assert (data / "compare" / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
