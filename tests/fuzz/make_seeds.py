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


def gguf_bytes(kv, tensors, alignment=32):
    """A GGUF v3 file: kv is [(key, type, value)] (type 8 string, 9 array as (elem, items),
    4 u32, 6 f32, 7 bool), tensors [(name, ne, ggml_type, bytes)], data aligned as llama.cpp writes."""
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b

    def value(t, v):
        if t == 8:
            return s(v)
        if t == 9:
            elem, items = v
            return struct.pack("<IQ", elem, len(items)) + b"".join(value(elem, i) for i in items)
        return struct.pack({4: "<I", 5: "<i", 6: "<f", 7: "<?"}[t], v)

    out = struct.pack("<IIQQ", 0x46554747, 3, len(tensors), len(kv))
    out += b"".join(s(k) + struct.pack("<I", t) + value(t, v) for k, t, v in kv)
    offset, data = 0, b""
    for name, ne, gt, raw in tensors:
        out += s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        out += struct.pack("<IQ", gt, offset)
        pad = (-len(raw)) % alignment
        data += raw + b"\0" * pad
        offset += len(raw) + pad
    out += b"\0" * ((-len(out)) % alignment)
    return out + data


def gguf_seeds():
    """Tiny models in llama.cpp's layout (names, metadata of each architecture) with a trimmed
    byte-level and SentencePiece vocabulary, a chat template, and a header cut short."""
    f32 = lambda n: struct.pack(f"<{n}f", *[0.5] * n)
    tok = json.loads((SHARED / "tokenizers/qwen3/tokenizer.json").read_text())
    vocab = sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])[:300]
    tokens = [t for t, _ in vocab] + ["<|im_start|>", "<|im_end|>"]
    kept = {t for t, _ in vocab}
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    merges = [m for m in merges if all(p in kept for p in m.split(" ")) and m.replace(" ", "") in kept][:200]
    template = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    for arch, pre in [("llama", "smollm"), ("qwen2", "qwen2"), ("qwen3", "llama-bpe")]:
        kv = [("general.architecture", 8, arch), (f"{arch}.block_count", 4, 1), (f"{arch}.context_length", 4, 64),
              (f"{arch}.embedding_length", 4, 8), (f"{arch}.feed_forward_length", 4, 16),
              (f"{arch}.attention.head_count", 4, 2), (f"{arch}.attention.head_count_kv", 4, 1),
              (f"{arch}.rope.freq_base", 6, 10000.0), (f"{arch}.attention.layer_norm_rms_epsilon", 6, 1e-5),
              ("tokenizer.ggml.model", 8, "gpt2"), ("tokenizer.ggml.pre", 8, pre),
              ("tokenizer.ggml.tokens", 9, (8, tokens)), ("tokenizer.ggml.token_type", 9, (5, [1] * 300 + [3, 3])),
              ("tokenizer.ggml.merges", 9, (8, merges)), ("tokenizer.ggml.bos_token_id", 4, 300),
              ("tokenizer.ggml.eos_token_id", 4, 301), ("tokenizer.ggml.add_bos_token", 7, arch == "llama"),
              ("tokenizer.chat_template", 8, template)]
        V = len(tokens)
        tensors = [("token_embd.weight", [8, V], 0, f32(8 * V)), ("output_norm.weight", [8], 0, f32(8)),
                   ("blk.0.attn_norm.weight", [8], 0, f32(8)), ("blk.0.ffn_norm.weight", [8], 0, f32(8)),
                   ("blk.0.attn_q.weight", [8, 8], 1, b"\0\x38" * 64), ("blk.0.attn_k.weight", [8, 4], 0, f32(32)),
                   ("blk.0.attn_v.weight", [8, 4], 0, f32(32)), ("blk.0.attn_output.weight", [8, 8], 0, f32(64)),
                   ("blk.0.ffn_gate.weight", [8, 16], 0, f32(128)), ("blk.0.ffn_up.weight", [8, 16], 0, f32(128)),
                   ("blk.0.ffn_down.weight", [16, 8], 0, f32(128))]
        if arch == "qwen2":
            tensors += [(f"blk.0.attn_{x}.bias", [n], 0, f32(n)) for x, n in [("q", 8), ("k", 4), ("v", 4)]]
        if arch == "qwen3":
            tensors += [(f"blk.0.attn_{x}_norm.weight", [4], 0, f32(4)) for x in "qk"]
        data = gguf_bytes(kv, tensors)
        write("gguf", f"{arch}-{pre}", data)
        if arch == "llama":
            write("gguf", "llama-header-only", data[: len(data) - 4096])
    # SentencePiece ("llama") vocabulary: the real TinyLlama pieces, trimmed, with scores and types.
    sp = json.loads((SHARED / "tokenizers/tinyllama/tokenizer.json").read_text())
    pieces = [t for t, _ in sorted(sp["model"]["vocab"].items(), key=lambda kv: kv[1])][:400]
    types = [2, 3, 3] + [6 if p.startswith("<0x") else 1 for p in pieces[3:]]
    kv = [("general.architecture", 8, "llama"), ("tokenizer.ggml.model", 8, "llama"),
          ("tokenizer.ggml.tokens", 9, (8, pieces)), ("tokenizer.ggml.scores", 9, (6, [-float(i) for i in range(400)])),
          ("tokenizer.ggml.token_type", 9, (5, types)), ("tokenizer.ggml.bos_token_id", 4, 1),
          ("tokenizer.ggml.eos_token_id", 4, 2), ("tokenizer.ggml.unknown_token_id", 4, 0),
          ("tokenizer.ggml.add_bos_token", 7, True)]
    write("gguf", "llama-spm-vocab", gguf_bytes(kv, []))


if __name__ == "__main__":
    safetensors_seeds()
    model_config_seeds()
    hf_tokenizer_seeds()
    jinja_seeds()
    openai_request_seeds()
    gguf_seeds()
