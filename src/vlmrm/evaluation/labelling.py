"""A local web page for labelling dataset frames yes / no / skip against a task's sentence.

``vlmrm dataset label DIR --task TASK`` serves the page on localhost with :mod:`http.server`.
Every answer is written at once, atomically, to the labels file (default ``DIR/labels.json``),
so closing the page or stopping the server loses nothing; opening the page again resumes at the
first unlabelled frame.

The page (``labeller/index.html``, ``app.js``, ``style.css``, shipped as package data) talks to a
small JSON API:

``GET /api/state``
    task, sentence, the frame list, the labels so far and the first unlabelled position.
``GET /frames/<index>``
    frame ``index`` as PNG (frames are addressed by index, never by a client-supplied path).
``POST /api/label`` with ``{"frame": <path>, "answer": "yes"|"no"|"skip"}``
    saves one answer; replies with the updated counts.

Only the page itself may use the API: every request must name this server in its ``Host`` header
(``127.0.0.1:PORT`` or ``localhost:PORT``) and, when it has an ``Origin`` header, come from the
page's own origin. Anything else gets 403, so another web site open in the same browser cannot
write labels, neither by a cross-site request nor by DNS rebinding (a foreign name that resolves to
127.0.0.1). A browser that goes away mid-transfer is normal and is not reported as an error.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import webbrowser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from vlmrm.evaluation.dataset import (
    ANSWERS,
    LABELS_FORMAT,
    Dataset,
    DatasetError,
    labels_path,
    load_dataset,
    read_labels,
)
from vlmrm.files import atomic_write_json

logger = logging.getLogger(__name__)

STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}


def _static(name: str) -> bytes:
    return (resources.files("vlmrm.evaluation") / "labeller" / name).read_bytes()


class LabelStore:
    """The answers for one dataset and task, saved atomically after every change (thread-safe)."""

    def __init__(self, dataset: Dataset, task: str, sentence: str, path: Path):
        self.dataset = dataset
        self.task = task
        self.sentence = sentence
        self.path = path
        self.frames = [str(r["frame"]) for r in dataset.records]
        self._known = set(self.frames)
        self._lock = threading.Lock()
        self.labels: dict[str, str] = {}
        if path.exists():
            data = read_labels(path)
            if data.get("sentence") not in (None, sentence):
                raise DatasetError(
                    f"{path} holds labels for another task ({data.get('task')!r}: {data.get('sentence')!r}). "
                    f"Label this task into another file with --labels, e.g. "
                    f"--labels {path.parent / f'labels-{_slug(task)}.json'}."
                )
            self.labels = {k: v for k, v in data["labels"].items() if v in ANSWERS}
        else:
            self._save()

    def first_unlabelled(self) -> int | None:
        """The position of the first frame without an answer, or ``None`` when all are answered."""
        for position, frame in enumerate(self.frames):
            if frame not in self.labels:
                return position
        return None

    def counts(self) -> dict[str, int]:
        counts = {answer: 0 for answer in ANSWERS}
        for frame in self.frames:
            answer = self.labels.get(frame)
            if answer is not None:
                counts[answer] += 1
        counts["unlabelled"] = len(self.frames) - sum(counts[a] for a in ANSWERS)
        counts["total"] = len(self.frames)
        return counts

    def set(self, frame: str, answer: str) -> None:
        """Record ``answer`` for ``frame`` and write the labels file before returning."""
        if frame not in self._known:
            raise KeyError(frame)
        if answer not in ANSWERS:
            raise ValueError(answer)
        with self._lock:
            self.labels[frame] = answer
            self._save()

    def _save(self) -> None:
        atomic_write_json(
            self.path,
            {
                "format": LABELS_FORMAT,
                "task": self.task,
                "sentence": self.sentence,
                "dataset": self.dataset.root.name,
                "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "labels": {frame: self.labels[frame] for frame in self.frames if frame in self.labels},
            },
        )

    def state(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "sentence": self.sentence,
            "frames": self.frames,
            "labels": dict(self.labels),
            "position": self.first_unlabelled(),
            "counts": self.counts(),
            "labels_file": str(self.path),
        }


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")[:40] or "task"


LOCAL_NAMES = ("127.0.0.1", "localhost")
"""Host names the page may be opened at, besides the address the server listens on (127.0.0.1 by default)."""

_HANG_UPS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)
"""What a write or read raises when the browser closed the connection (a page closed while images load)."""


def _log_hang_up(client: Any, exc: BaseException) -> None:
    logger.debug("labeller: %s closed the connection (%s)", client, exc)


class _LabelServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A closed connection is normal (the browser went away); anything else is reported as usual."""
        error = sys.exc_info()[1]
        if isinstance(error, _HANG_UPS):
            _log_hang_up(client_address, error)
        else:
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    store: LabelStore  # set on the subclass made per server
    server_version = "vlmrm-labeller"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("labeller: " + format, *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
        except _HANG_UPS as exc:
            self.close_connection = True
            _log_hang_up(self.client_address, exc)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _foreign(self) -> str | None:
        """Why this request does not come from the labelling page itself, or ``None`` when it does."""
        address, port = self.server.server_address[:2]  # type: ignore[index,str-unpack]  # AF_INET: (host, port)
        names = {*LOCAL_NAMES, str(address)}
        allowed = {f"{name}:{port}" for name in names}
        if port == 80:
            allowed.update(names)
        host = (self.headers.get("Host") or "").strip().lower()
        if host not in allowed:
            return f"Host {host!r} is not this server; open the labeller at http://127.0.0.1:{port}/"
        origin = self.headers.get("Origin")
        if origin is not None and origin.strip().lower() != f"http://{host}":
            return f"requests from {origin!r} are not accepted; open the labeller at http://{host}/"
        return None

    def _refuse_foreign(self) -> bool:
        """Answer 403 to a request from another site (cross-site or DNS rebinding); True when refused."""
        why = self._foreign()
        if why is None:
            return False
        logger.warning("labeller: refused %s %s: %s", self.command, self.path, why)
        self.close_connection = True  # an unread request body must not be taken for the next request
        self._json(HTTPStatus.FORBIDDEN, {"error": f"refused: {why}"})
        return True

    def do_GET(self) -> None:
        if self._refuse_foreign():
            return
        path = urlparse(self.path).path
        if path in STATIC_FILES:
            name, content_type = STATIC_FILES[path]
            self._send(HTTPStatus.OK, _static(name), content_type)
        elif path == "/api/state":
            self._json(HTTPStatus.OK, self.store.state())
        elif path.startswith("/frames/"):
            try:
                index = int(path.removeprefix("/frames/"))
                if index < 0:
                    raise IndexError(index)
                record = self.store.dataset.records[index]
                body = self.store.dataset.frame_path(record).read_bytes()
            except (ValueError, IndexError, OSError):
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no frame {path}"})
                return
            self._send(HTTPStatus.OK, body, "image/png")
        elif path == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no page {path}"})

    def do_POST(self) -> None:
        if self._refuse_foreign():
            return
        if urlparse(self.path).path != "/api/label":
            self._json(HTTPStatus.NOT_FOUND, {"error": "unknown endpoint"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            payload = json.loads(self.rfile.read(min(length, 1 << 16)) or b"{}")
            frame, answer = str(payload["frame"]), str(payload["answer"])
            self.store.set(frame, answer)
        except (ValueError, KeyError, TypeError) as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"bad label request: {exc!r}"})
            return
        except _HANG_UPS as exc:  # the browser went away while sending the request
            self.close_connection = True
            _log_hang_up(self.client_address, exc)
            return
        except OSError as exc:
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"could not save the label: {exc}"})
            return
        self._json(
            HTTPStatus.OK, {"ok": True, "counts": self.store.counts(), "position": self.store.first_unlabelled()}
        )


def make_label_server(
    root: str | Path,
    task: str,
    sentence: str,
    labels: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8765,
) -> tuple[ThreadingHTTPServer, LabelStore]:
    """Build (but do not start) the labelling server; ``port=0`` picks a free port.

    Call ``server.serve_forever()`` to run it and ``server.shutdown()`` from another thread to stop it.
    """
    dataset = load_dataset(root)
    if not dataset.records:
        raise DatasetError(f"{root} has no frames to label.")
    store = LabelStore(dataset, task, sentence, labels_path(root, labels))
    handler = type("LabelHandler", (_Handler,), {"store": store})
    try:
        server = _LabelServer((host, port), handler)
    except OSError as exc:
        raise DatasetError(f"Cannot listen on {host}:{port} ({exc.strerror}); choose another --port.") from exc
    return server, store


def serve_labeller(
    root: str | Path,
    task: str,
    sentence: str,
    labels: str | Path | None = None,
    port: int = 8765,
    open_browser: bool = True,
) -> LabelStore:
    """Serve the labelling page until interrupted (Ctrl-C); returns the final labels."""
    server, store = make_label_server(root, task, sentence, labels, port=port)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    counts = store.counts()
    logger.info("Labelling %d frames of %s (%d left) for: %s", counts["total"], root, counts["unlabelled"], sentence)
    logger.info("Open %s — keys: y = yes, n = no, s = skip, ← = back. Labels: %s. Ctrl-C to stop.", url, store.path)
    if open_browser:
        threading.Timer(0.3, webbrowser.open, args=(url,)).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    counts = store.counts()
    logger.info("Saved %d yes, %d no, %d skip to %s.", counts["yes"], counts["no"], counts["skip"], store.path)
    return store
