"""Stop a sweep's local Ray processes if the sweep command itself is killed.

``ray.shutdown()`` stops the local cluster a sweep started, but a ``vlmrm sweep`` killed with
SIGKILL never gets there: Ray's raylet and GCS die with it, yet its dashboard and runtime-env
agents wait about a minute (a 60 s GCS timeout) before they exit, and a trial's env worker
processes may outlive them. This watchdog runs beside the sweep, as a separate process started
as a script (``python reaper.py PID``, importing nothing of vlmrm): while the sweep lives it notes
every descendant process of it, once a second; when the sweep's pipe to it closes without the
word ``done`` (the sweep died), it kills those that are still the same processes, and exits.

It uses psutil, which Ray itself depends on.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

POLL_SECONDS = 0.5


def _watch_stdin(done: threading.Event, closed: threading.Event) -> None:
    for line in sys.stdin:
        if line.strip() == "done":
            done.set()
    closed.set()


def main(argv: list[str]) -> int:
    import psutil

    try:
        sweep = psutil.Process(int(argv[1]))
    except (IndexError, ValueError, psutil.Error):
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C for the sweep is not for its watchdog
    done, closed = threading.Event(), threading.Event()
    threading.Thread(target=_watch_stdin, args=(done, closed), daemon=True).start()
    seen: dict[int, psutil.Process] = {}
    while not closed.is_set() and sweep.is_running():
        try:
            for child in sweep.children(recursive=True):
                if child.pid != os.getpid():
                    seen.setdefault(child.pid, child)
        except psutil.Error:
            pass
        closed.wait(POLL_SECONDS)
    if done.is_set():
        return 0
    left = [process for process in seen.values() if process.is_running()]  # same pid *and* start time
    for process in left:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(left, timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
