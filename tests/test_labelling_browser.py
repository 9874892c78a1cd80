"""End to end in a real headless Chromium: collect -> label by keyboard and buttons -> reload -> epic."""

from __future__ import annotations

import csv
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from vlmrm.cli.main import main
from vlmrm.evaluation.dataset import collect_dataset, load_dataset, task_sentence
from vlmrm.evaluation.labelling import make_label_server

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore:.*RANDOM weights:UserWarning")]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    playwright_api = pytest.importorskip(
        "playwright.sync_api", reason="the browser test needs the playwright package: pip install playwright"
    )
    if not Path(CHROMIUM).exists():
        pytest.skip("the browser test needs Chromium at /usr/bin/chromium: apt-get install chromium")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def labelling(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "cartpole"
    collect_dataset("cartpole", root, episodes=1, episode_length=12, every=2, render_size=64, seed=3)
    server, _ = make_label_server(root, "cartpole", task_sentence("cartpole"), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def saved_labels(root: Path) -> dict[str, str]:
    return json.loads((root / "labels.json").read_text())["labels"]


def test_label_in_the_browser_then_resume_then_epic(browser, labelling: tuple[str, Path], tmp_path: Path) -> None:
    url, root = labelling
    frames = [r["frame"] for r in load_dataset(root).records]
    assert len(frames) == 6
    page = browser.new_page()
    page.set_default_timeout(10_000)
    page.goto(url)
    page.wait_for_selector("body[data-ready='true']")
    assert page.inner_text("[data-testid=sentence]") == task_sentence("cartpole")
    assert page.get_attribute("[data-testid=frame]", "data-index") == "0"

    def answered(n: int) -> None:
        page.wait_for_selector(f"[data-testid=progress][data-labelled='{n}']")
        page.wait_for_selector("body[data-pending='0']")

    # Keyboard: y, n; buttons: skip, yes.
    page.keyboard.press("y")
    answered(1)
    page.keyboard.press("n")
    answered(2)
    page.click("[data-testid=skip]")
    answered(3)
    page.click("[data-testid=yes]")
    answered(4)
    assert saved_labels(root) == {frames[0]: "yes", frames[1]: "no", frames[2]: "skip", frames[3]: "yes"}
    # The frame shown is a real image from the server.
    assert page.evaluate("document.getElementById('frame').naturalWidth") == 64

    # Close and reopen: labelling resumes at the first unlabelled frame.
    page.close()
    page = browser.new_page()
    page.set_default_timeout(10_000)
    page.goto(url)
    page.wait_for_selector("body[data-ready='true']")
    assert page.get_attribute("[data-testid=frame]", "data-index") == "4"
    assert "4 / 6 labelled" in page.inner_text("[data-testid=progress]")

    # Back to frame 3 (labelled yes), change it to no; labelling continues at frame 4.
    page.keyboard.press("ArrowLeft")
    assert page.get_attribute("[data-testid=frame]", "data-index") == "3"
    assert page.inner_text("[data-testid=current]") == "Labelled: yes"
    page.keyboard.press("n")
    page.wait_for_selector("body[data-pending='0']")
    assert page.get_attribute("[data-testid=frame]", "data-index") == "4"
    page.keyboard.press("y")
    answered(5)
    page.keyboard.press("n")
    answered(6)
    page.wait_for_selector("[data-testid=done]:not([hidden])")
    assert page.is_disabled("[data-testid=yes]")
    page.close()

    labels = json.loads((root / "labels.json").read_text())
    assert labels["task"] == "cartpole" and labels["sentence"] == task_sentence("cartpole")
    assert labels["labels"] == {
        frames[0]: "yes",
        frames[1]: "no",
        frames[2]: "skip",
        frames[3]: "no",
        frames[4]: "yes",
        frames[5]: "no",
    }

    # The labelled dataset goes straight into `vlmrm epic`.
    out = tmp_path / "epic"
    assert main(["epic", str(root), "--model", "tiny-random", "--alpha", "0", "--alpha", "1", "--out", str(out)]) == 0
    with (out / "epic.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["alpha"]) for r in rows] == [0.0, 1.0]
    assert all(r["frames"] == "5" and r["positives"] == "2" for r in rows)  # the skipped frame is left out
    assert all(0.0 <= float(r["epic_distance"]) <= 1.0 for r in rows)
    assert (out / "epic.png").stat().st_size > 5_000
