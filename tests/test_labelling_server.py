"""The labelling server's edges: browsers that hang up mid-transfer, requests from other sites, bad requests,
frames outside the dataset, and two servers on one labels file."""

from __future__ import annotations

import http.client
import json
import logging
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vlmrm.evaluation.dataset import DatasetError
from vlmrm.evaluation.labelling import make_label_server
from vlmrm.files import atomic_write_json

Labeller = tuple[int, Path, list[str], str]
"""A running server: its port, labels file, frames and write token."""


@pytest.fixture
def labeller(tmp_path: Path) -> Iterator[Labeller]:
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
        yield server.server_address[1], store.path, [r["frame"] for r in records], page_token(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def page_token(port: int) -> str:
    """The write token in the page the server serves (what the page's script sends)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/")
        page = connection.getresponse().read().decode()
    finally:
        connection.close()
    match = re.search(r'<meta name="vlmrm-token" content="([^"]+)">', page)
    assert match is not None, page
    return match.group(1)


def hang_up(sock: socket.socket) -> None:
    """Close with a reset, as a browser does when the page goes away mid-transfer."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("when", ["while the image is sent", "while the request is read"])
def test_a_closed_connection_prints_no_traceback(
    labeller: Labeller,
    when: str,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    port, _, _, _ = labeller
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
    port: int,
    method: str,
    path: str,
    host: str,
    origin: str | None = None,
    body: dict | None = None,
    token: str | None = None,
) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = {"Host": host, "Content-Type": "application/json"}
    if origin is not None:
        headers["Origin"] = origin
    if token is not None:
        headers["X-Vlmrm-Token"] = token
    try:
        connection.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_requests_from_other_sites_are_refused(labeller: Labeller) -> None:
    port, labels, frames, token = labeller
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
        status, reply = request(port, "POST", "/api/label", host, origin, label, token)
        assert status == 403 and "error" in reply, (host, origin)
        assert request(port, "GET", "/api/state", host, origin)[0] == 403, (host, origin)
    assert labels.read_bytes() == before  # not rewritten
    # The page's own requests still work, by either local name, with or without an Origin.
    for host, origin, answer in [
        (f"127.0.0.1:{port}", f"http://127.0.0.1:{port}", "yes"),
        (f"localhost:{port}", f"http://localhost:{port}", "no"),
        (f"LocalHost:{port}", None, "skip"),
    ]:
        label = {"frame": frames[1], "answer": answer}
        status, reply = request(port, "POST", "/api/label", host, origin, label, token)
        assert status == 200 and reply["ok"], (host, origin)
        assert json.loads(labels.read_text())["labels"] == {frames[1]: answer}
        assert request(port, "GET", "/api/state", host, origin)[0] == 200


def raw_request(port: int, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send ``head`` (request line and headers, ``\\n``-separated) and ``body`` as they are; the status and reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.strip().replace("\n", "\r\n").encode() + b"\r\n\r\n" + body)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else 0
    return status, reply


def test_writes_need_the_session_token_from_the_served_page(labeller: Labeller) -> None:
    port, labels, frames, token = labeller
    before = labels.read_bytes()
    host = f"127.0.0.1:{port}"
    label = {"frame": frames[1], "answer": "yes"}
    for wrong in (None, "", token[:-1] + ("A" if token[-1] != "A" else "B"), "x" * 200):
        status, reply = request(port, "POST", "/api/label", host, None, label, wrong)
        assert status == 403 and "token" in reply["error"], wrong
    # Two token headers (one right), or a form's content type with the right token: refused too.
    two = json.dumps(label).encode()
    head = f"POST /api/label HTTP/1.1\nHost: {host}\nContent-Type: application/json\nContent-Length: {len(two)}\n"
    assert raw_request(port, head + f"X-Vlmrm-Token: nope\nX-Vlmrm-Token: {token}", two)[0] == 403
    form = head.replace("application/json", "text/plain") + f"X-Vlmrm-Token: {token}"
    assert raw_request(port, form, two)[0] == 403
    assert labels.read_bytes() == before
    assert request(port, "POST", "/api/label", host, None, label, token)[0] == 200
    # The token is per session: another server over the same dataset has another one.
    assert token != secrets_of_a_new_server(labels)


def secrets_of_a_new_server(labels: Path) -> str:
    server, _ = make_label_server(labels.parent, "t", "a red square", labels=labels.parent / "other.json", port=0)
    try:
        return server.token  # type: ignore[attr-defined]
    finally:
        server.server_close()


def test_duplicated_host_or_origin_and_absolute_targets_are_refused(labeller: Labeller) -> None:
    port, labels, frames, token = labeller
    before = labels.read_bytes()
    body = json.dumps({"frame": frames[1], "answer": "yes"}).encode()
    good = f"Content-Type: application/json\nContent-Length: {len(body)}\nX-Vlmrm-Token: {token}"
    host = f"127.0.0.1:{port}"
    refused = [
        f"POST /api/label HTTP/1.1\nHost: {host}\nHost: evil.example\n{good}",
        f"POST /api/label HTTP/1.1\nHost: {host}\nOrigin: http://{host}\nOrigin: http://evil.example\n{good}",
        f"POST http://evil.example/api/label HTTP/1.1\nHost: {host}\n{good}",
        f"POST http://{host}/api/label HTTP/1.1\nHost: {host}\n{good}",
    ]
    for head in refused:
        status, reply = raw_request(port, head, body)
        assert status == 403, (head, reply)
    assert raw_request(port, f"GET http://evil.example/frames/1 HTTP/1.1\nHost: {host}")[0] == 403
    assert labels.read_bytes() == before
    assert raw_request(port, f"POST /api/label HTTP/1.1\nHost: {host}\n{good}", body)[0] == 200


@pytest.mark.parametrize(
    ("length", "body"),
    [
        ("-1", b'{"frame": "x", "answer": "yes"}'),
        ("abc", b"{}"),
        ("1e3", b"{}"),
        (str(1 << 30), b"{}"),
        (None, b"[" * 60_000),  # under the size cap: the parser itself must not recurse out
        (None, b"[1, 2, 3]"),
        (None, b"5"),
        (None, b"\xff\xfe"),
    ],
    ids=["negative length", "text length", "float length", "huge length", "nested", "list", "number", "not utf-8"],
)
def test_bad_bodies_get_a_400_answer(labeller: Labeller, length: str | None, body: bytes) -> None:
    port, labels, frames, token = labeller
    before = labels.read_bytes()
    head = (
        f"POST /api/label HTTP/1.1\nHost: 127.0.0.1:{port}\nContent-Type: application/json\nX-Vlmrm-Token: {token}\n"
        f"Content-Length: {len(body) if length is None else length}"
    )
    status, reply = raw_request(port, head, body)
    assert status == 400, reply[-300:]
    assert b"bad label request" in reply
    assert labels.read_bytes() == before
    # The server still answers.
    assert (
        request(port, "POST", "/api/label", f"127.0.0.1:{port}", None, {"frame": frames[0], "answer": "no"}, token)[0]
        == 200
    )


def write_dataset(root: Path, frames: list[str]) -> None:
    """A dataset whose manifest names ``frames`` (the first two written as 8x8 PNGs inside ``root``)."""
    (root / "frames").mkdir(parents=True, exist_ok=True)
    records = []
    for i, frame in enumerate(frames):
        if i < 2:
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / frame)
        records.append({"index": i, "frame": frame, "episode": 0, "step": i + 1, "state": [0.0]})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    atomic_write_json(root / "dataset.json", {"env": "colours"})


def test_only_files_inside_the_dataset_are_served(tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not for the browser")
    root = tmp_path / "ds"
    (root / "frames").mkdir(parents=True)
    (root / "frames" / "link.png").symlink_to(secret)
    write_dataset(root, ["frames/a.png", "frames/b.png", "/etc/passwd", "../secret.png", "frames/link.png", "."])
    server, _ = make_label_server(root, "t", "a red square", port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        host = f"127.0.0.1:{port}"
        assert raw_request(port, f"GET /frames/0 HTTP/1.1\nHost: {host}")[0] == 200
        for index in (2, 3, 4, 5):
            status, reply = raw_request(port, f"GET /frames/{index} HTTP/1.1\nHost: {host}")
            assert status == 404 and b"root:" not in reply and b"not for the browser" not in reply, index
        token = page_token(port)
        status, _ = request(port, "POST", "/api/label", host, None, {"frame": "/etc/passwd", "answer": "yes"}, token)
        assert status == 500  # named by the manifest, but not a frame of the dataset: nothing saved
        assert json.loads((root / "labels.json").read_text())["labels"] == {}
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_second_server_on_one_labels_file_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_dataset(root, ["frames/a.png", "frames/b.png"])
    first, store = make_label_server(root, "t", "a red square", port=0)
    try:
        with pytest.raises(DatasetError, match=r"Another `vlmrm dataset label` \(pid \d+\) is writing .*labels.json"):
            make_label_server(root, "t", "a red square", port=0)
        store.set("frames/a.png", "yes")
        # Another labels file on the same dataset is fine.
        other, _ = make_label_server(root, "t", "a red square", labels=tmp_path / "mine.json", port=0)
        other.server_close()
    finally:
        first.server_close()
    second, store = make_label_server(root, "t", "a red square", port=0)  # free again once the first stops
    second.server_close()
    assert store.labels == {"frames/a.png": "yes"}


def test_answers_for_frames_not_in_the_manifest_are_kept(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_dataset(root, ["frames/a.png", "frames/b.png"])
    kept = {"frames/old_000.png": "yes", "frames/old_001.png": "no"}
    atomic_write_json(root / "labels.json", {"task": "t", "sentence": "a red square", "labels": kept})
    server, store = make_label_server(root, "t", "a red square", port=0)
    try:
        assert store.counts()["total"] == 2 and store.first_unlabelled() == 0
        store.set("frames/a.png", "no")
    finally:
        server.server_close()
    saved = json.loads((root / "labels.json").read_text())
    assert saved["labels"] == {**kept, "frames/a.png": "no"}


def test_answers_are_tied_to_the_image_they_judged(tmp_path: Path) -> None:
    """A frame collected again (new image, same name) is asked again; its old answer is kept aside."""
    root = tmp_path / "ds"
    write_dataset(root, ["frames/a.png", "frames/b.png"])
    server, store = make_label_server(root, "t", "a red square", port=0)
    store.set("frames/a.png", "yes")
    store.set("frames/b.png", "no")
    server.server_close()
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(root / "frames" / "a.png")  # `collect --overwrite`
    server, store = make_label_server(root, "t", "a red square", port=0)
    try:
        assert store.labels == {"frames/b.png": "no"} and store.first_unlabelled() == 0
        store.set("frames/b.png", "yes")
    finally:
        server.server_close()
    saved = json.loads((root / "labels.json").read_text())
    assert saved["labels"] == {"frames/b.png": "yes"}
    assert saved["stale"]["frames/a.png"]["answer"] == "yes"
