"""`nanovllm serve --backend onnx` on a checkpoint exported by scripts/export_onnx.py answers as
`nanovllm serve` does on the checkpoint itself: a chat completion through the real Qwen3 chat
template (qwen3-tiny, random weights around the real tokenizer), streamed and not, and a raw
completion of the real TinyStories-656K. The exports come from ctest's fixture onnx_exports
(tests/onnx/export-test-models.sh) in $NANOVLLM_ONNX_MODELS.
"""
import json
import os
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "server"))
from conftest import STORIES, Server  # noqa: E402

MODELS = pathlib.Path(os.environ.get("NANOVLLM_ONNX_MODELS", pathlib.Path(__file__).resolve().parents[2] / "build" / "onnx-models"))


def serve(model, *extra):
    assert (pathlib.Path(model) / "config.json").exists(), f"{model}: missing (ctest's fixture onnx_exports makes it)"
    return Server(model, "--kv-cache-dtype", "f32", *extra)


@pytest.fixture(scope="module")
def servers(request):
    """(native, onnx) for request.param = (source checkpoint, its export, more serve flags)."""
    source, export, *extra = request.param
    # The native server on its AVX2 table, which keeps activations f32 for BF16 weights (qwen3-tiny's):
    # AVX-512 BF16 rounds them to bf16, as llama.cpp does, and logprobs would move by ~1e-3.
    os.environ["NANOVLLM_ISA"] = "avx2"
    try:
        native = serve(source, *extra)
    finally:
        del os.environ["NANOVLLM_ISA"]
    onnx = serve(export, "--backend", "onnx", *extra)
    yield native, onnx
    assert native.stop() == 0
    assert onnx.stop() == 0


def streamed_text(server, path, body):
    r = server.post(path, dict(body, stream=True), stream=True)
    assert r.status_code == 200, r.text
    text = ""
    for line in r.iter_lines(decode_unicode=True):
        if line.startswith("data: ") and line != "data: [DONE]":
            choice = json.loads(line[6:])["choices"][0]
            text += (choice.get("delta") or {}).get("content") or choice.get("text") or ""
    return text


# Random weights spread the probability almost evenly over 151k tokens: greedy text repeats one
# token whatever the graph computes, and a seeded sample follows the last bits of the logits.
# Greedy text plus every token's top logprobs decide.
CHAT = {"model": "test-model", "max_tokens": 32, "temperature": 0, "ignore_eos": True,
        "logprobs": True, "top_logprobs": 3,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the capital of France?"}],
        "chat_template_kwargs": {"enable_thinking": False}}


def logprobs(response):
    return [(t["token"], t["logprob"], [(a["token"], a["logprob"]) for a in t["top_logprobs"]])
            for t in response["choices"][0]["logprobs"]["content"]]


@pytest.mark.parametrize("servers", [(MODELS / "src" / "model", MODELS / "qwen3-tiny", "--max-model-len", "1024")], indirect=True)
def test_chat_completion_equals_native(servers):
    native, onnx = servers
    want = native.post("/v1/chat/completions", CHAT).json()
    got = onnx.post("/v1/chat/completions", CHAT).json()
    assert got["choices"][0]["message"] == want["choices"][0]["message"]
    assert got["usage"] == want["usage"]
    assert want["usage"]["completion_tokens"] == 32
    # f32 on both sides: logprobs agree to far better than 1e-3 (a RoPE sign error moves them ~1e-2).
    for (tok, lp, top), (want_tok, want_lp, want_top) in zip(logprobs(got), logprobs(want), strict=True):
        assert tok == want_tok and [a for a, _ in top] == [a for a, _ in want_top]
        assert lp == pytest.approx(want_lp, abs=1e-3)
        assert [b for _, b in top] == pytest.approx([b for _, b in want_top], abs=1e-3)
    assert streamed_text(onnx, "/v1/chat/completions", CHAT) == want["choices"][0]["message"]["content"]


@pytest.mark.parametrize("servers", [(STORIES, MODELS / "tinystories-656k")], indirect=True)
def test_completion_of_tinystories_equals_native(servers):
    native, onnx = servers
    body = {"model": "test-model", "prompt": "Once upon a time", "max_tokens": 40, "temperature": 0}
    want = native.post("/v1/completions", body).json()["choices"][0]["text"]
    assert "Lily" in want  # the real model's story
    assert onnx.post("/v1/completions", body).json()["choices"][0]["text"] == want
    assert streamed_text(onnx, "/v1/completions", body) == want
