"""The sweep's watchdog (vlmrm.experiments.reaper) with plain processes standing in for Ray's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from test_ray_backend import alive
from vlmrm.experiments import reaper

pytest.importorskip("psutil")

# A stand-in for `vlmrm sweep`: starts the watchdog the way the sweep does, one child, and two processes
# that are no longer its descendants (their parent exited): one carries the token, as Ray's workers do;
# one has lost it but keeps a file open in the Ray session's directory, as Ray's agents do.
SWEEP = textwrap.dedent(
    """
    import os, subprocess, sys, time
    token = sys.argv[2]
    os.environ[sys.argv[3]] = token
    watchdog = subprocess.Popen([sys.executable, sys.argv[1], str(os.getpid()), token],
                                stdin=subprocess.PIPE, text=True, start_new_session=True)
    child = subprocess.Popen(["sleep", "300"])
    orphan = subprocess.run(["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True)
    session = sys.argv[5]
    watchdog.stdin.write(f"session {session}\\n"); watchdog.stdin.flush()
    holds_a_log = f"sleep 300 3>{session}/agent.log >/dev/null 2>&1 & echo $!"
    agent = subprocess.run(["env", "-u", sys.argv[3], "sh", "-c", holds_a_log], capture_output=True, text=True)
    print(child.pid, orphan.stdout.strip(), agent.stdout.strip(), watchdog.pid, flush=True)
    if sys.argv[4] == "finish":
        watchdog.stdin.write("done\\n"); watchdog.stdin.close(); watchdog.wait(10)
        print("finished", flush=True)
    elif sys.argv[4] == "close":
        watchdog.stdin.close()
    time.sleep(300)
    """
)


def start(tmp_path: Path, mode: str) -> tuple[subprocess.Popen, list[int], Path]:
    script = tmp_path / "sweep.py"
    script.write_text(SWEEP)
    stderr = tmp_path / "stderr.txt"
    session = tmp_path / "session_1"
    session.mkdir()
    with stderr.open("w") as err:
        sweep = subprocess.Popen(
            [sys.executable, str(script), reaper.__file__, "t0k3n", reaper.TOKEN_VARIABLE, mode, str(session)],
            stdout=subprocess.PIPE, stderr=err, text=True,
        )  # fmt: skip
    assert sweep.stdout is not None
    pids = [int(pid) for pid in sweep.stdout.readline().split()]
    return sweep, pids, stderr


def wait_until(condition, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def kill(pids: list[int]) -> None:
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_killed_sweep_leaves_no_process_behind_not_even_one_no_longer_its_descendant(tmp_path: Path) -> None:
    sweep, (child, orphan, agent, watchdog), stderr = start(tmp_path, "run")
    try:
        time.sleep(1.5)  # a few looks at the sweep's descendants
        sweep.kill()
        sweep.wait(10)
        assert wait_until(lambda: not any(map(alive, (child, orphan, agent, watchdog))))
        assert "was killed: stopped the 3 processes it left" in stderr.read_text()
    finally:
        kill([child, orphan, agent, watchdog])


def test_a_closed_pipe_alone_does_not_set_the_watchdog_off(tmp_path: Path) -> None:
    sweep, (child, orphan, agent, watchdog), _ = start(tmp_path, "close")
    try:
        time.sleep(1.5)
        assert all(map(alive, (child, orphan, agent, watchdog)))
        sweep.kill()
        sweep.wait(10)
        assert wait_until(lambda: not any(map(alive, (child, orphan, agent, watchdog))))
    finally:
        kill([child, orphan, agent, watchdog])


def test_a_sweep_that_says_done_keeps_its_processes(tmp_path: Path) -> None:
    sweep, (child, orphan, agent, watchdog), stderr = start(tmp_path, "finish")
    try:
        assert sweep.stdout is not None and sweep.stdout.readline().strip() == "finished"
        assert not alive(watchdog)
        sweep.kill()
        sweep.wait(10)
        time.sleep(1.0)
        assert all(map(alive, (child, orphan, agent)))
        assert stderr.read_text() == ""
    finally:
        kill([child, orphan, agent, watchdog])
