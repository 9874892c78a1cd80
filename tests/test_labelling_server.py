"""The labelling server's edges: browsers that hang up mid-transfer, and requests from other sites."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlmrm.evaluation.labelling import make_label_server
from vlmrm.files import atomic_write_json


@pytest.fixture
def labeller(tmp_path: Path) -> Iterator[tuple[int, Path, list[str]]]:
    """A server on a free port over a hand-written dataset whose first frame is large.

    The first frame (7 MB of noise, stored uncompressed) is larger than the most a socket's send buffer
    grows to (4 MB by default on Linux), so sending it blocks until the client reads or hangs up.
    """
    root = tmp_path / "ds"
    (root / "frames").mkdir(parents=True)
    rng = np.random.default_rng(0)
    records = []
    for i, size in enumerate((1536, 8, 8)):
        name = f"frames/{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / name, compress_level=0)
        records.append({"index": i, "frame": name, "episode": 0, "step": i + 1, "state": [0.0]})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    atomic_write_json(root / "dataset.json", {"env": "colours"})
    server, store = make_label_server(root, "t", "a red square", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], store.path, [r["frame"] for r in records]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def hang_up(sock: socket.socket) -> None:
    """Close with a reset, as a browser does when the page goes away mid-transfer."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("when", ["while the image is sent", "while the request is read"])
def test_a_closed_connection_prints_no_traceback(
    labeller: tuple[int, Path, list[str]],
    when: str,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    port, _, _ = labeller
    caplog.set_level(logging.DEBUG, logger="vlmrm.evaluation.labelling")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    if when == "while the image is sent":
        sock.sendall(f"GET /frames/0 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        assert sock.recv(16).startswith(b"HTTP/1.0 200")  # the server is writing 7 MB into a small window
    else:
        sock.sendall(b"GET /frames/0 HT")
        time.sleep(0.1)
    hang_up(sock)
    err = ""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "Traceback" not in err:
        err += capfd.readouterr().err
        if any("closed the connection" in r.getMessage() for r in caplog.records):
            break
        time.sleep(0.05)
    time.sleep(0.1)
    err += capfd.readouterr().err
    assert "Traceback" not in err and "Broken pipe" not in err and "reset by peer" not in err, err
    assert any("closed the connection" in r.getMessage() for r in caplog.records)


def request(
    port: int, method: str, path: str, host: str, origin: str | None = None, body: dict | None = None
) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"Host": host, "Content-Type": "application/json"}
    if origin is not None:
        headers["Origin"] = origin
    try:
        connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_requests_from_other_sites_are_refused(labeller: tuple[int, Path, list[str]]) -> None:
    port, labels, frames = labeller
    before = labels.read_bytes()
    label = {"frame": frames[1], "answer": "yes"}
    refused = [
        ("evil.example", None),  # DNS rebinding: another name that resolves to 127.0.0.1
        (f"evil.example:{port}", None),
        (f"127.0.0.1:{port + 1}", None),
        (f"127.0.0.1:{port}", "http://evil.example"),  # a cross-site form or fetch
        (f"127.0.0.1:{port}", f"http://evil.example:{port}"),
        (f"127.0.0.1:{port}", "null"),  # a sandboxed frame or a file:// page
        (f"localhost:{port}", f"http://127.0.0.1:{port}"),  # another origin than the page's
    ]
    for host, origin in refused:
        status, reply = request(port, "POST", "/api/label", host, origin, label)
        assert status == 403 and "error" in reply, (host, origin)
        assert request(port, "GET", "/api/state", host, origin)[0] == 403, (host, origin)
    assert labels.read_bytes() == before  # not rewritten
    # The page's own requests still work, by either local name, with or without an Origin.
    for host, origin, answer in [
        (f"127.0.0.1:{port}", f"http://127.0.0.1:{port}", "yes"),
        (f"localhost:{port}", f"http://localhost:{port}", "no"),
        (f"LocalHost:{port}", None, "skip"),
    ]:
        status, reply = request(port, "POST", "/api/label", host, origin, {"frame": frames[1], "answer": answer})
        assert status == 200 and reply["ok"], (host, origin)
        assert json.loads(labels.read_text())["labels"] == {frames[1]: answer}
        assert request(port, "GET", "/api/state", host, origin)[0] == 200
