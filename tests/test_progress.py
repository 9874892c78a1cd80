"""Training progress: a tqdm bar on a terminal, a log line every few percent elsewhere (files, CI logs)."""

from __future__ import annotations

import logging
import re
from types import SimpleNamespace

import pytest

from vlmrm.training.callbacks import ProgressBar


def drive(bar: ProgressBar, model: SimpleNamespace, steps: range) -> None:
    bar.init_callback(model)  # type: ignore[arg-type]
    bar.on_training_start({}, {})
    for step in steps:
        model.num_timesteps = step
        bar.on_step()
    bar.on_training_end()


def test_without_a_terminal_a_line_every_few_percent_with_rate_and_time_left(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = iter(float(t) for t in range(10_000))  # one second per reading: at the start and at each line
    model = SimpleNamespace(num_timesteps=0)
    bar = ProgressBar(1000, tty=False, every_percent=10, clock=lambda: next(clock))
    with caplog.at_level(logging.INFO, logger="vlmrm.training.callbacks"):
        drive(bar, model, range(4, 1001, 4))
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 10  # at 10 %, 20 %, ..., 100 %
    assert lines[0] == "vlmrm: step 100 of 1000 (10%), 100.0 steps/s, 00:09 left"
    assert re.fullmatch(r"vlmrm: step 1000 of 1000 \(100%\), \d+\.\d steps/s, 00:00 left", lines[-1])
    assert "\r" not in capsys.readouterr().err  # no bar updates


def test_a_resumed_run_counts_its_rate_from_where_it_resumed(caplog: pytest.LogCaptureFixture) -> None:
    clock = iter(float(t) for t in range(10_000))
    model = SimpleNamespace(num_timesteps=500)
    bar = ProgressBar(1000, initial_steps=500, tty=False, every_percent=25, clock=lambda: next(clock))
    with caplog.at_level(logging.INFO, logger="vlmrm.training.callbacks"):
        drive(bar, model, range(510, 1001, 10))
    assert caplog.records[0].getMessage() == (
        "vlmrm: step 750 of 1000 (75%), 250.0 steps/s, 00:01 left"  # 250 steps in the first second, not 750
    )


def test_on_a_terminal_a_tqdm_bar(capsys: pytest.CaptureFixture[str]) -> None:
    model = SimpleNamespace(num_timesteps=0)
    drive(ProgressBar(100, tty=True), model, range(10, 101, 10))
    assert "100/100" in capsys.readouterr().err
