"""Without HF_HUB_OFFLINE, an unreachable hub costs seconds, not half a minute of retries.

Each test runs ``vlmrm`` in a subprocess (the hub's endpoint and offline mode are read at import)
with ``HF_ENDPOINT`` pointing at a local server that never answers, or at a port that refuses.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from test_vlm_reward import save_checkpoint_dir

MODEL = "openai/clip-vit-base-patch32"  # not in the (empty) cache of the test
CACHED = "vlmrm-test/tiny-clip"  # put in the cache by the test

SCRIPT = """
import sys, time
import vlmrm.evaluation.landscape, vlmrm.reward  # imports are not what is timed
from transformers import AutoConfig, AutoModel, AutoTokenizer
from vlmrm.cli.main import main
from vlmrm.reward import VLMReward
cached, argv = sys.argv[1], sys.argv[2:]
start = time.monotonic()
rc = main(argv)
print(f"command: rc {rc} in {time.monotonic() - start:.1f} s")
start = time.monotonic()
reward = VLMReward.from_pretrained(cached, ["a red car"], dtype="fp32")
print(f"cached: {reward.encoder.name} in {time.monotonic() - start:.1f} s")
"""


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """An HTTP endpoint on localhost that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        server.close()


@contextlib.contextmanager
def refusing_port() -> Iterator[str]:
    """An HTTP endpoint on localhost whose port is bound but not listening: connections are refused."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{bound.getsockname()[1]}"


def cache_a_model(hf_home: Path) -> None:
    """Lay out a tiny CLIP in the hub cache the way a download leaves it."""
    repo = hf_home / "hub" / f"models--{CACHED.replace('/', '--')}"
    revision = "0" * 40
    save_checkpoint_dir(repo / "snapshots" / revision, "clip")
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)


@pytest.mark.slow  # two subprocesses that import torch and transformers
@pytest.mark.parametrize(("endpoint", "cause"), [(silent_server, "timed out"), (refusing_port, "refused")])
def test_unreachable_hub_fails_fast_with_one_message(endpoint, cause: str, tmp_path: Path) -> None:
    cache_a_model(tmp_path / "hf")
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith(("_OFFLINE", "_PROXY"))}
    with endpoint() as url:
        env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=url)
        argv = ["landscape", "cartpole", "--model", MODEL, "--out", str(tmp_path / "out")]
        result = subprocess.run(
            [sys.executable, "-c", SCRIPT, CACHED, *argv],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    out, err = result.stdout, result.stderr
    assert result.returncode == 0, err  # the cached model loaded after the failed command
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == len(set(lines)), err  # no line twice
    assert "Traceback" not in err and "Retrying" not in err, err
    message = f"error: Cannot load model {MODEL!r}: the Hugging Face hub could not be reached ({url}"
    assert message in err and cause in err, err
    assert "  - or use --model tiny-random to test the pipeline" in err
    # Generous bounds against ~40 s of retries: a 3 s probe, then the cache alone.
    command_s = float(out.split("command: rc 2 in ")[1].split(" s")[0])
    cached_s = float(out.split(f"cached: {CACHED} in ")[1].split(" s")[0])
    assert command_s < 10 and cached_s < 10, out


def test_a_cached_model_looks_for_no_adapter_on_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With peft installed, transformers' AutoModel looks for an adapter_config.json, with its own arguments only:
    without local_files_only there, loading a cached model asked the hub (retried for ~40 s where it was down).
    peft is not installed here, so its presence is stood in for and the look-up recorded."""
    import transformers.models.auto.auto_factory as auto_factory

    from vlmrm.reward.encoders import _load_checkpoint

    lookups: list[dict] = []

    def find_adapter_config_file(model_id: str, **kwargs: object) -> None:
        lookups.append(kwargs)

    monkeypatch.setattr(auto_factory, "is_peft_available", lambda: True)
    monkeypatch.setattr(auto_factory, "find_adapter_config_file", find_adapter_config_file)
    save_checkpoint_dir(tmp_path / "clip", "clip")
    _load_checkpoint(str(tmp_path / "clip"), torch.float32, local_files_only=True)
    assert lookups and all(kwargs.get("local_files_only") is True for kwargs in lookups)
