"""Fixtures for the server tests: `nanovllm serve` processes on free loopback ports.

The binary comes from $NANOVLLM_BIN (ctest sets it), else build/bin/nanovllm. Models: the real
TinyStories-656K checkpoint from ../shared, and for chat a random-weight Qwen3-shaped model made
with `nanovllm make-model` around the real Qwen3 tokenizer (TinyStories has no chat template).
"""
import json
import os
import pathlib
import signal
import subprocess
import time

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
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
    d = tmp_path_factory.mktemp("qwen3-tiny")
    config = json.loads((SHARED / "configs" / "qwen3-0.6b.json").read_text())
    config.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, max_position_embeddings=1024)
    (d / "config.json").write_text(json.dumps(config))
    out = d / "model"
    subprocess.run([nanovllm_bin(), "make-model", "--config", str(d / "config.json"), "--out", str(out),
                    "--tokenizer", str(QWEN3_TOKENIZER), "--seed", "7"], check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def chat_server(chat_model):
    server = Server(chat_model, "--max-model-len", "1024", name="qwen3-tiny")
    yield server
    assert server.stop() == 0
