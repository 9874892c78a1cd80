"""Stop a sweep's local Ray processes if the sweep command itself is killed.

``ray.shutdown()`` stops the local cluster a sweep started, but a ``vlmrm sweep`` killed with
SIGKILL never gets there: Ray's raylet and GCS die with it, yet its dashboard and runtime-env
agents wait about a minute (a 60 s GCS timeout) before they exit, and a trial's env worker
processes may outlive them. This watchdog runs beside the sweep, as a separate process started
as a script (``python reaper.py PID TOKEN``, importing nothing of vlmrm). While the sweep lives,
it notes every descendant process of the sweep, twice a second. When the sweep has died without
writing ``done`` on the watchdog's stdin, it kills what is left of the sweep's Ray:

- the processes it noted that are still the same processes;
- every process whose environment carries ``VLMRM_SWEEP_TOKEN=TOKEN`` (set by the sweep before it
  starts Ray, so Ray's workers inherit it);
- every process with a file open in the Ray session's directory, which the sweep writes on the
  watchdog's stdin as ``session PATH`` (Ray's agents rewrite their environment with their process
  title, and keep their logs open there).

The last two find the processes started after the last look, or no longer under the sweep. It
says in one line what it stopped, and exits.

Only the sweep's death ends the watch: a closed pipe alone does not (the sweep may close it).
It uses psutil.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Any

TOKEN_VARIABLE = "VLMRM_SWEEP_TOKEN"
POLL_SECONDS = 0.5


def _read_messages(done: threading.Event, sessions: list[str]) -> None:
    for line in sys.stdin:
        if line.strip() == "done":
            done.set()
        elif line.startswith("session "):
            sessions.append(os.path.join(line.removeprefix("session ").strip(), ""))


def _alive(process: Any) -> bool:
    import psutil

    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _belongs(process: Any, token: str, sessions: list[str]) -> bool:
    """Whether ``process`` carries the sweep's token or has a file open in one of its Ray sessions."""
    import psutil

    with contextlib.suppress(psutil.Error):
        if process.environ().get(TOKEN_VARIABLE) == token:
            return True
    with contextlib.suppress(psutil.Error):
        return any(file.path.startswith(tuple(sessions)) for file in process.open_files()) if sessions else False
    return False


def main(argv: list[str]) -> int:
    import psutil

    try:
        sweep, token = psutil.Process(int(argv[1])), argv[2]
    except (IndexError, ValueError, psutil.Error):
        print("usage: python reaper.py SWEEP_PID TOKEN (of a running process)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C for the sweep is not for its watchdog
    done, sessions = threading.Event(), list[str]()
    threading.Thread(target=_read_messages, args=(done, sessions), daemon=True).start()
    seen: dict[int, psutil.Process] = {}
    while not done.is_set() and _alive(sweep):
        with contextlib.suppress(psutil.Error):
            for child in sweep.children(recursive=True):
                seen.setdefault(child.pid, child)
        done.wait(POLL_SECONDS)
    if done.is_set():
        return 0
    me = os.getpid()
    left = {pid: process for pid, process in seen.items() if pid != me and process.is_running()}  # same pid and start
    for process in psutil.process_iter():
        if process.pid not in left and process.pid not in (me, sweep.pid) and _belongs(process, token, sessions):
            left[process.pid] = process
    for process in left.values():
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(list(left.values()), timeout=10)
    if left:
        print(f"vlmrm sweep (pid {sweep.pid}) was killed: stopped the {len(left)} processes it left", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
