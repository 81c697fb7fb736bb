#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/) from real files.

Run from the repository root: python3 tests/fuzz/make_seeds.py [SHARED_DIR]. The seeds are
committed; this script documents where each one came from and rebuilds them. Real files are
used as they are where they are small; larger ones are trimmed (kept tensors, kept vocabulary)
so that one fuzz input stays a few KB and each execution stays fast.
"""
import json
import pathlib
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ROOT.parent / "shared")
CORPUS = ROOT / "tests/fuzz/corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def safetensors_seeds():
    """Real checkpoints' headers: each file cut to its small tensors (norms, biases) with their
    real bytes, plus one whole header with no data (the truncated-file path)."""
    files = sorted((ROOT / "tests/data/model").glob("*/model.safetensors"))
    files.append(SHARED / "models/tinystories-656k/model.safetensors")
    for f in files:
        raw = f.read_bytes()
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8 : 8 + n])
        data = raw[8 + n :]
        kept, out, offset = {}, b"", 0
        for name, e in header.items():
            if name == "__metadata__":
                kept[name] = e
                continue
            begin, end = e["data_offsets"]
            if end - begin > 1024:
                continue
            kept[name] = {**e, "data_offsets": [offset, offset + end - begin]}
            out += data[begin:end]
            offset += end - begin
        h = json.dumps(kept, separators=(",", ":")).encode()
        h += b" " * (-len(h) % 8)
        model = f.parent.name
        write("safetensors", f"{model}-small-tensors", struct.pack("<Q", len(h)) + h + out)
        if f.parent.parent.name == "model" and model.endswith("f32"):
            continue  # one header-only seed per layout is enough
        write("safetensors", f"{model}-header-only", raw[: 8 + n])


def model_config_seeds():
    for f in sorted((SHARED / "configs").glob("*.json")):
        write("model_config", f.name, f.read_bytes())
    write("model_config", "tinystories-656k.json", (SHARED / "models/tinystories-656k/config.json").read_bytes())
    write("model_config", "tinystories-656k-generation.json",
          (SHARED / "models/tinystories-656k/generation_config.json").read_bytes())
    for d in sorted((ROOT / "tests/data/model").iterdir()):
        if (d / "config.json").exists():
            write("model_config", f"{d.name}.json", (d / "config.json").read_bytes())


def trimmed_tokenizer(path, keep):
    """The tokenizer with its `keep` lowest vocabulary ids (plus byte-fallback / byte-level
    base pieces among them), the merges among kept pieces, and all added tokens."""
    tok = json.loads(path.read_text())
    model = tok["model"]
    vocab = {p: i for p, i in model["vocab"].items() if i < keep}
    model["vocab"] = vocab
    if "merges" in model:
        merges = []
        for m in model["merges"]:
            a, b = m.split(" ", 1) if isinstance(m, str) else m
            if a in vocab and b in vocab and a + b in vocab:
                merges.append(m)
        model["merges"] = merges
    # Added tokens keep their ids, renumbered right after the kept vocabulary.
    for i, t in enumerate(tok.get("added_tokens", [])[:16]):
        t["id"] = keep + i
    tok["added_tokens"] = tok.get("added_tokens", [])[:16]
    return json.dumps(tok, ensure_ascii=False, separators=(",", ":"))


def hf_tokenizer_seeds():
    for name, keep in [("gpt2", 400), ("qwen3", 400), ("llama3", 400), ("mistral", 500), ("tinyllama", 500)]:
        write("hf_tokenizer", name, trimmed_tokenizer(SHARED / f"tokenizers/{name}/tokenizer.json", keep))
    write("hf_tokenizer", "tinystories-656k",
          trimmed_tokenizer(SHARED / "models/tinystories-656k/tokenizer.json", 1200))


def jinja_seeds():
    for d in sorted((SHARED / "tokenizers").iterdir()):
        t = json.loads((d / "tokenizer_config.json").read_text()).get("chat_template")
        if isinstance(t, str):
            write("jinja", d.name, t)
    extra = json.loads((ROOT / "tests/data/chat_template/extra_templates.json").read_text())
    for t in extra["templates"]:
        write("jinja", t["name"].replace("/", "_"), t["template"])
    cases = json.loads((ROOT / "tests/data/chat_template/jinja_cases.json").read_text())["cases"]
    for i, c in enumerate(cases):  # one small template per construct the engine supports
        write("jinja", f"case-{i:03d}", c["template"])


def openai_request_seeds():
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    requests = {
        "completion": {"model": "tinystories", "prompt": "Once upon a time", "max_tokens": 16, "temperature": 0},
        "completion-ids-n": {"prompt": [[1, 2, 3], [4, 5]], "n": 2, "seed": 7, "top_p": 0.9, "top_k": 40},
        "completion-stream": {"prompt": ["a", "b"], "stream": True, "stream_options": {"include_usage": True},
                              "stop": ["\n", "."], "logprobs": 2, "echo": False, "max_tokens": 5},
        "completion-penalties": {"prompt": "Tom", "presence_penalty": 0.5, "frequency_penalty": 0.3,
                                 "repetition_penalty": 1.1, "min_p": 0.05, "min_tokens": 2,
                                 "ignore_eos": True, "stop_token_ids": [2], "skip_special_tokens": False},
        "chat": {"model": "tinystories", "messages": msgs, "max_tokens": 8},
        "chat-tools": {"messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "21 C"}], "tools": tools},
        "chat-kwargs-logprobs": {"messages": msgs, "chat_template_kwargs": {"enable_thinking": False},
                                 "logprobs": True, "top_logprobs": 3, "max_completion_tokens": 4,
                                 "add_generation_prompt": True, "stream": True},
        "chat-list-content": {"messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
                              "continue_final_message": False},
        "tokenize": {"prompt": "Hello there", "return_token_strs": True, "add_special_tokens": False},
        "tokenize-chat": {"messages": msgs, "tools": tools},
        "detokenize": {"tokens": [1, 300, 301, 302]},
    }
    for name, body in requests.items():
        write("openai_request", name, json.dumps(body))


if __name__ == "__main__":
    safetensors_seeds()
    model_config_seeds()
    hf_tokenizer_seeds()
    jinja_seeds()
    openai_request_seeds()
