"""Fixtures for the server tests: `nanovllm serve` processes on free loopback ports.

The binary comes from $NANOVLLM_BIN (ctest sets it), else build/bin/nanovllm. Models: the real
TinyStories-656K checkpoint from ../shared, and for chat a random-weight Qwen3-shaped model made
with `nanovllm make-model` around the real Qwen3 tokenizer (TinyStories has no chat template).
"""
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "common"))
from tiny_models import make_qwen3_tiny  # noqa: E402
SHARED = pathlib.Path(os.environ.get("NANOVLLM_SHARED_DIR", ROOT.parent / "shared"))
STORIES = SHARED / "models" / "tinystories-656k"
QWEN3_TOKENIZER = SHARED / "tokenizers" / "qwen3"


def nanovllm_bin():
    path = os.environ.get("NANOVLLM_BIN", str(ROOT / "build" / "bin" / "nanovllm"))
    assert os.path.exists(path), f"nanovllm binary not found at {path} (set NANOVLLM_BIN)"
    return path


class Server:
    """A running `nanovllm serve`; .url is its base address, .stop() sends SIGTERM."""

    def __init__(self, model, *extra, name="test-model"):
        self.name = name
        args = [nanovllm_bin(), "serve", "--model", str(model), "--port", "0",
                "--served-model-name", name, "--kv-cache-memory", "32MiB", "--threads", "2", *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r} {self.proc.stderr.read()}")
        self.url = line.strip().rsplit(" ", 1)[-1]
        deadline = time.time() + 30
        while requests.get(self.url + "/health", timeout=5).status_code != 200:
            assert time.time() < deadline, "server never became healthy"
            time.sleep(0.05)

    def post(self, path, body, **kw):
        return requests.post(self.url + path, json=body, timeout=60, **kw)

    def metrics(self):
        """The /metrics gauges and counters as {name: value} (labels dropped, buckets skipped)."""
        out = {}
        for line in requests.get(self.url + "/metrics", timeout=10).text.splitlines():
            if line.startswith("#") or "_bucket{" in line or not line:
                continue
            name, value = line.rsplit(" ", 1)
            key = name.split("{")[0]
            if "finished_reason" in name:
                key += "." + name.split('finished_reason="')[1].split('"')[0]
            out[key] = float(value)
        return out

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


@pytest.fixture(scope="session")
def story_server():
    server = Server(STORIES, "--max-num-seqs", "64")
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="session")
def chat_model(tmp_path_factory):
    """A random-weight Qwen3-shaped checkpoint with the real Qwen3 tokenizer and chat template."""
    return make_qwen3_tiny(nanovllm_bin(), SHARED, tmp_path_factory.mktemp("qwen3-tiny"))


@pytest.fixture(scope="session")
def chat_server(chat_model):
    server = Server(chat_model, "--max-model-len", "1024", name="qwen3-tiny")
    yield server
    assert server.stop() == 0
