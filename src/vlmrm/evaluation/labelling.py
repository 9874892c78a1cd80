"""A local web page for labelling dataset frames yes / no / skip against a task's sentence.

``vlmrm dataset label DIR --task TASK`` serves the page on localhost with :mod:`http.server`.
Every answer is written at once, atomically, to the labels file (default ``DIR/labels.json``),
so closing the page or stopping the server loses nothing; opening the page again resumes at the
first unlabelled frame. One server at a time may write a labels file (a lock beside it,
``.labels.json.lock``, says so to a second one). Answers for frames that are not in the manifest
are kept as they are; an answer whose frame has changed since it was judged (the dataset was
collected again) is asked again, and the old answer is kept under ``stale``.

The page (``labeller/index.html``, ``app.js``, ``style.css``, shipped as package data) talks to a
small JSON API:

``GET /api/state``
    task, sentence, the frame list, the labels so far and the first unlabelled position.
``GET /frames/<index>``
    frame ``index`` as PNG (frames are addressed by index, never by a client-supplied path, and
    only files inside the dataset directory are served, whatever the manifest says).
``POST /api/label`` with ``{"frame": <path>, "answer": "yes"|"no"|"skip"}``
    saves one answer; replies with the updated counts.

Only the page itself may use the API: every request must name this server in its ``Host`` header
(``127.0.0.1:PORT`` or ``localhost:PORT``, given once) and, when it has an ``Origin`` header (once),
come from the page's own origin; the request target must be a path, not an absolute URI. Every
write must also carry the session's token (:data:`TOKEN_HEADER`), which only the page the server
serves knows. Anything else gets 403, so another web site open in the same browser cannot write
labels, neither by a cross-site request nor by DNS rebinding (a foreign name that resolves to
127.0.0.1). A label body must be a JSON object of at most 64 KiB with a valid ``Content-Length``;
anything else gets 400. A browser that goes away mid-transfer is normal and is not reported as
an error.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
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

from vlmrm.errors import ConfigError
from vlmrm.evaluation.dataset import (
    ANSWERS,
    LABELS_FORMAT,
    Dataset,
    DatasetError,
    labels_path,
    load_dataset,
    read_labels,
    stale_labels,
)
from vlmrm.files import atomic_write_json
from vlmrm.run.lock import LockHeld, take_lock

logger = logging.getLogger(__name__)

STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}


TOKEN_HEADER = "X-Vlmrm-Token"
"""The header every write carries: the per-session token written into the page the server serves."""

TOKEN_PLACEHOLDER = b"__VLMRM_SESSION_TOKEN__"
"""Where ``index.html`` holds the token; the server replaces it with the session's token."""

MAX_BODY = 1 << 16
"""The largest label request body accepted (a label is a few dozen bytes)."""


def _static(name: str) -> bytes:
    return (resources.files("vlmrm.evaluation") / "labeller" / name).read_bytes()


class _LabelsFileLock:
    """An exclusive lock on ``.<labels file>.lock`` beside the labels file, held while a server runs.

    Two servers writing one labels file would each overwrite the other's answers (each writes the
    whole file). The lock is released when the process ends, even on SIGKILL.
    """

    def __init__(self, labels: Path):
        self.labels = labels
        self.path = labels.with_name(f".{labels.name}.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = take_lock(self.path)
        except LockHeld as held:
            raise DatasetError(
                f"Another `vlmrm dataset label` (pid {held.holder}) is writing {self.labels}; "
                "label in its page, or stop it first (two servers would overwrite each other's answers)."
            ) from None
        except OSError as exc:
            raise DatasetError(
                f"Cannot write the labels file {self.labels} "
                f"({exc.strerror or exc}); give --labels in a folder you can write to."
            ) from None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class LabelStore:
    """The answers for one dataset and task, saved atomically after every change (thread-safe).

    The store holds the labels file's lock from its creation until :meth:`close`.
    """

    def __init__(self, dataset: Dataset, task: str, sentence: str, path: Path):
        self.dataset = dataset
        self.task = task
        self.sentence = sentence
        self.path = path
        self.frames = [str(r["frame"]) for r in dataset.records]
        self._records = {str(r["frame"]): r for r in dataset.records}
        self._lock = threading.Lock()
        self.labels: dict[str, str] = {}
        self.digests: dict[str, str] = {}
        self._others: dict[str, Any] = {"labels": {}, "sha256": {}}  # frames not in the manifest: kept as they are
        self._stale: dict[str, Any] = {}
        if path.is_dir():
            raise DatasetError(f"The labels file {path} is a directory; give another --labels file.")
        self._file_lock = _LabelsFileLock(path)
        self._file_lock.acquire()
        try:
            if path.exists():
                self._load(read_labels(path))
            else:
                self._save()
        except BaseException:
            self.close()
            raise

    def _load(self, data: dict[str, Any]) -> None:
        if data.get("sentence") not in (None, self.sentence):
            raise DatasetError(
                f"{self.path} holds labels for another task ({data.get('task')!r}: {data.get('sentence')!r}). "
                f"Label this task into another file with --labels, e.g. "
                f"--labels {self.path.parent / f'labels-{_slug(self.task)}.json'}."
            )
        answers = {str(k): v for k, v in data["labels"].items() if v in ANSWERS}
        digests = data.get("sha256") or {}
        ours = [frame for frame in answers if frame in self._records]
        stale, _ = stale_labels(self.dataset, data, ours)
        self._stale = dict(data.get("stale") or {}) if isinstance(data.get("stale"), dict) else {}
        for frame in stale:
            self._stale[frame] = {"answer": answers[frame], "sha256": digests[frame]}
        if stale:
            logger.warning(
                "%d answers in %s judged images that have changed since (the dataset was collected again, "
                "e.g. %s); these frames are asked again, and the old answers are kept under 'stale'",
                len(stale),
                self.path,
                stale[0],
            )
        changed = set(stale)
        current = [frame for frame in ours if frame not in changed]
        self.labels = {frame: answers[frame] for frame in current}
        self.digests = {frame: digests[frame] for frame in current if frame in digests}
        self._others = {
            "labels": {frame: answer for frame, answer in answers.items() if frame not in self._records},
            "sha256": {frame: digests[frame] for frame in answers if frame not in self._records and frame in digests},
        }

    def close(self) -> None:
        """Release the labels file for another server."""
        self._file_lock.release()

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
        """Record ``answer`` for ``frame`` (with the digest of its image) and write the labels file."""
        if frame not in self._records:
            raise KeyError(frame)
        if answer not in ANSWERS:
            raise ValueError(answer)
        digest = self.dataset.frame_digest(self._records[frame])
        with self._lock:
            self.labels[frame] = answer
            self.digests[frame] = digest
            self._stale.pop(frame, None)
            self._save()

    def _save(self) -> None:
        ours = [frame for frame in self.frames if frame in self.labels]
        data: dict[str, Any] = {
            "format": LABELS_FORMAT,
            "task": self.task,
            "sentence": self.sentence,
            "dataset": self.dataset.root.name,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "labels": {**self._others["labels"], **{frame: self.labels[frame] for frame in ours}},
            "sha256": {**self._others["sha256"], **{f: self.digests[f] for f in ours if f in self.digests}},
        }
        if self._stale:
            data["stale"] = self._stale
        try:
            atomic_write_json(self.path, data)
        except OSError as exc:
            raise DatasetError(
                f"Cannot write the labels file {self.path} ({exc.strerror or exc}); "
                "give --labels in a folder you can write to."
            ) from exc

    def state(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "sentence": self.sentence,
            "frames": self.frames,
            "labels": {frame: self.labels[frame] for frame in self.frames if frame in self.labels},
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
    token: str
    """This session's write token (see :data:`TOKEN_HEADER`)."""
    store: LabelStore

    def server_close(self) -> None:
        """Stop listening and release the labels file."""
        super().server_close()
        self.store.close()

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
        if not self.path.startswith("/"):  # an absolute URI ("http://evil/...") or "*": a proxy request
            return f"the request target {self.path[:80]!r} is not a path on this server"
        for header in ("Host", "Origin"):
            if len(self.headers.get_all(header) or []) > 1:
                return f"the request has more than one {header} header"
        host = (self.headers.get("Host") or "").strip().lower()
        if host not in allowed:
            return f"Host {host!r} is not this server; open the labeller at http://127.0.0.1:{port}/"
        origin = self.headers.get("Origin")
        if origin is not None and origin.strip().lower() != f"http://{host}":
            return f"requests from {origin!r} are not accepted; open the labeller at http://{host}/"
        return None

    def _untrusted_write(self) -> str | None:
        """Why this write does not come from the page this server served, or ``None`` when it does."""
        token = self.headers.get_all(TOKEN_HEADER) or []
        expected = self.server.token.encode()  # type: ignore[attr-defined]
        if len(token) != 1 or not hmac.compare_digest(token[0].strip().encode(errors="replace"), expected):
            return f"a write needs this session's token ({TOKEN_HEADER} header); reload the labeller page"
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return f"a label must be sent as application/json, not {content_type or 'no content type'!r}"
        return None

    def _body(self) -> bytes:
        """The request body; :class:`ValueError` unless its ``Content-Length`` is one integer in [0, 64 KiB]."""
        lengths = self.headers.get_all("Content-Length") or []
        if len(lengths) != 1 or not lengths[0].strip().isdigit():
            raise ValueError(f"Content-Length must be one non-negative integer, got {lengths!r}")
        length = int(lengths[0])
        if length > MAX_BODY:
            raise ValueError(f"the body is {length} bytes; a label is at most {MAX_BODY}")
        return self.rfile.read(length)

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
            body = _static(name)
            if name == "index.html":
                body = body.replace(TOKEN_PLACEHOLDER, self.server.token.encode())  # type: ignore[attr-defined]
            self._send(HTTPStatus.OK, body, content_type)
        elif path == "/api/state":
            self._json(HTTPStatus.OK, self.store.state())
        elif path.startswith("/frames/"):
            try:
                index = int(path.removeprefix("/frames/"))
                if index < 0:
                    raise IndexError(index)
                record = self.store.dataset.records[index]
                body = self.store.dataset.frame_path(record).read_bytes()
            except (ValueError, IndexError, OSError, DatasetError):
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
        self.close_connection = True  # a refused or bad request's body is never taken for the next request
        untrusted = self._untrusted_write()
        if untrusted is not None:
            logger.warning("labeller: refused %s %s: %s", self.command, self.path, untrusted)
            self._json(HTTPStatus.FORBIDDEN, {"error": f"refused: {untrusted}"})
            return
        if urlparse(self.path).path != "/api/label":
            self._json(HTTPStatus.NOT_FOUND, {"error": "unknown endpoint"})
            return
        try:
            payload = json.loads(self._body() or b"{}")
            if not isinstance(payload, dict):
                raise TypeError(f"a label is a JSON object, got {type(payload).__name__}")
            frame, answer = str(payload["frame"]), str(payload["answer"])
            self.store.set(frame, answer)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            message = "nested too deeply" if isinstance(exc, RecursionError) else repr(exc)
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"bad label request: {message}"})
            return
        except _HANG_UPS as exc:  # the browser went away while sending the request
            _log_hang_up(self.client_address, exc)
            return
        except (OSError, DatasetError) as exc:
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

    Call ``server.serve_forever()`` to run it, ``server.shutdown()`` from another thread to stop it,
    and ``server.server_close()`` to release the port and the labels file. ``server.token`` is the
    session's write token (the served page holds it).
    """
    if isinstance(port, bool) or not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535 (0: any free port), got {port}.")
    dataset = load_dataset(root)
    if not dataset.records:
        raise DatasetError(f"{root} has no frames to label.")
    store = LabelStore(dataset, task, sentence, labels_path(root, labels))
    handler = type("LabelHandler", (_Handler,), {"store": store})
    try:
        server = _LabelServer((host, port), handler)
    except OSError as exc:
        store.close()
        raise DatasetError(f"Cannot listen on {host}:{port} ({exc.strerror}); choose another --port.") from exc
    server.token = secrets.token_urlsafe(32)
    server.store = store
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
