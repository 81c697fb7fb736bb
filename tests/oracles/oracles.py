"""Three engines on one GGUF file: llama.cpp, transformers' own GGUF loader, and ours.

- llama.cpp: llama-cpp-python's bindings over the libllama.so that scripts/setup-oracles.sh
  --llama-cpp builds from the llama.cpp its sdist vendors. Only scripts/gen_oracle_goldens.py
  runs it (the build is too slow for CI); the tests read its answers from tests/data/oracles.
- transformers: AutoModelForCausalLM.from_pretrained(dir, gguf_file=...), which dequantizes
  every tensor to f32, and the tokenizer it rebuilds from the file's tokenizer.ggml.* keys.
- ours: the `nanovllm` command ($NANOVLLM_BIN).
Greedy runs stop after the file's EOS token (kept) or after `n` new tokens.
"""
import hashlib
import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = pathlib.Path(os.environ.get("NANOVLLM_SHARED_DIR", ROOT.parent / "shared"))
DATA = ROOT / "tests" / "data" / "oracles"
THREADS = 2

# The conversations go through each engine's own rendering of the file's chat template.
CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "You are a concise assistant."},
     {"role": "user", "content": "Name three primary colors."}],
    [{"role": "user", "content": "Hi!"},
     {"role": "assistant", "content": "Hello! How can I help you today?"},
     {"role": "user", "content": "Write a haiku about the sea."}],
]
RAW_PROMPTS = [
    "The capital of France is",
    "Once upon a time, there was a",
    "def fibonacci(n):\n    ",
    "Les étoiles brillent ☀ et 42 + 17 =",
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def gguf_metadata(path, key):
    """One metadata value of a GGUF file, read with PyPI's gguf package (None when absent)."""
    import gguf
    field = gguf.GGUFReader(str(path)).get_field(key)
    return None if field is None else field.contents()


def gguf_tensor(path, name):
    """One tensor of a GGUF file as a numpy array, read with PyPI's gguf package (None when absent)."""
    import gguf
    import numpy as np
    for t in gguf.GGUFReader(str(path)).tensors:
        if t.name == name:
            return np.array(t.data)
    return None


def truncate_at_eos(ids, eos):
    return ids[: ids.index(eos) + 1] if eos in ids else ids


def common_prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def oracle_rule_violation(ours, a, b, names=("llama.cpp", "transformers")):
    """None when `ours` passes the rule, else why not. Rule: where the two oracles agree we
    agree with them; where they part (a near-tie that their different arithmetic breaks
    differently) we follow one of them, the whole way from its first token to its last."""
    if ours == a or ours == b:
        return None
    shared = common_prefix(a, b)
    where = common_prefix(ours, a if common_prefix(ours, a) >= common_prefix(ours, b) else b)
    return (f"ours {ours}\n{names[0]:>12} {a}\n{names[1]:>12} {b}\n"
            f"the oracles share {shared} tokens; ours leaves the closer one at token {where}")


# ---------------------------------------------------------------- llama.cpp (goldens only)
_llama = {}


def llama_cpp(path):
    from llama_cpp import Llama
    if path not in _llama:
        _llama[path] = Llama(model_path=str(path), n_ctx=1024, n_batch=512, n_threads=THREADS,
                             logits_all=True, verbose=False)
    return _llama[path]


def llama_cpp_tokenize(path, text):
    # add_bos=True means "add the specials the vocabulary asks for" (tokenizer.ggml.add_bos_token).
    return llama_cpp(path).tokenize(text.encode(), add_bos=True, special=True)


def llama_cpp_greedy(path, prompt_ids, n, eos):
    """Greedy ids and the logits of every new position (f32 lists)."""
    import numpy as np
    llm = llama_cpp(path)
    llm.reset()
    llm.eval(prompt_ids)
    ids, logits = [], []
    while len(ids) < n:
        row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        logits.append(row)
        ids.append(int(row.argmax()))
        if ids[-1] == eos:
            break
        llm.eval([ids[-1]])
    return ids, logits


def llama_cpp_chat_text(path, messages):
    """The prompt llama-cpp-python renders with the file's tokenizer.chat_template (jinja2)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    llm = llama_cpp(path)
    text = lambda tok: llm.detokenize([tok], special=True).decode()
    fmt = Jinja2ChatFormatter(template=llm.metadata["tokenizer.chat_template"],
                              eos_token=text(llm.token_eos()), bos_token=text(llm.token_bos()),
                              add_generation_prompt=True)
    return fmt(messages=messages).prompt


# ---------------------------------------------------------------- transformers
_hf = {}


def transformers_model(path, rope_parameters=None):
    """transformers' GGUF loader on `path`, f32. rope_parameters replace the ones it reads from the
    file: llama.cpp's converter writes Llama 3 rope scaling as tensor rope_freqs.weight (one divisor
    per frequency), which transformers' loader ignores (5.24: config 'default' rope, the tensor
    dropped; see rope_freqs_ignored). So for such a file the caller passes the source checkpoint's
    rope_parameters, and this checks that transformers then rotates with exactly the file's
    frequencies: base^(-2i/d) / rope_freqs[i]. A tensor it leaves unloaded or re-initializes fails."""
    import numpy as np
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    key = (str(path), json.dumps(rope_parameters, sort_keys=True))
    if key not in _hf:
        path = pathlib.Path(path)
        torch.set_num_threads(THREADS)
        config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
        if rope_parameters is not None:
            config.rope_parameters = dict(rope_parameters)
        # transformers 5.24 maps no ARCH.attention.key_length for qwen3: it keeps Qwen3Config's
        # head_dim of 128 and re-initializes q/k/v/o and the q/k norms at random, with a warning,
        # on a file whose heads are another size. The file's own key sets it here.
        arch = gguf_metadata(path, "general.architecture")
        head_dim = gguf_metadata(path, f"{arch}.attention.key_length")
        if head_dim is not None and getattr(config, "head_dim", None) is not None:
            config.head_dim = int(head_dim)
        model, info = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, config=config,
                                                           dtype=torch.float32, output_loading_info=True)
        assert not any(info.get(k) for k in ("missing_keys", "mismatched_keys")), f"{path}: transformers loaded {info}"
        factors = gguf_tensor(path, "rope_freqs.weight")
        if factors is not None:
            assert rope_parameters is not None, f"{path} scales its rope (rope_freqs.weight): pass rope_parameters"
            inv = model.model.rotary_emb.inv_freq.double().numpy()
            d = 2 * len(inv)
            want = config.rope_parameters["rope_theta"] ** (-np.arange(0, d, 2) / d) / factors
            np.testing.assert_allclose(inv, want, rtol=1e-6, err_msg="rope_parameters do not give the file's rope_freqs")
        _hf[key] = model.eval()
    return _hf[key]


def transformers_tokenizer(path):
    """The tokenizer transformers rebuilds from the file's tokenizer.ggml.* keys (slow for a large
    vocabulary, so apart from the model)."""
    from transformers import AutoTokenizer
    path = pathlib.Path(path)
    if ("tok", str(path)) not in _hf:
        _hf[("tok", str(path))] = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    return _hf[("tok", str(path))]


def rope_freqs_ignored(path):
    """The minimal repro of transformers' gap: True when the file holds rope_freqs.weight with a
    factor other than 1 while the config transformers' GGUF loader builds from it has plain rope."""
    from transformers import AutoConfig
    path = pathlib.Path(path)
    factors = gguf_tensor(path, "rope_freqs.weight")
    rope = AutoConfig.from_pretrained(path.parent, gguf_file=path.name).rope_parameters
    return factors is not None and bool((factors != 1).any()) and rope.get("rope_type") == "default"


def transformers_greedy(path, prompt_ids, n, eos, rope_parameters=None):
    """Greedy ids and the logits of every new position, f32 throughout."""
    import torch
    model = transformers_model(path, rope_parameters)
    ids, logits, past = [], [], None
    step = torch.tensor([prompt_ids])
    with torch.no_grad():
        while len(ids) < n:
            out = model(step, past_key_values=past, use_cache=True)
            past = out.past_key_values
            row = out.logits[0, -1].float()
            logits.append(row.numpy())
            ids.append(int(row.argmax()))
            if ids[-1] == eos:
                break
            step = torch.tensor([[ids[-1]]])
    return ids, logits


def transformers_logprobs(path, ids, rope_parameters=None):
    """Log-probabilities (float64 numpy, one row per position of `ids`) and logit ranges, from one
    f32 forward pass over the whole sequence."""
    import torch
    model = transformers_model(path, rope_parameters)
    with torch.no_grad():
        logits = model(torch.tensor([list(ids)])).logits[0].double()
    return (torch.log_softmax(logits, -1).numpy(),
            (logits.max(-1).values - logits.min(-1).values).numpy())


def transformers_agrees(path, prompt_ids, ids, rope_parameters=None):
    """Whether transformers' greedy run from prompt_ids gives `ids` (cut at EOS or the length):
    its argmax at each prefix of our path is our next token. One forward pass instead of a
    token-by-token run (which would give the same ids when this holds)."""
    lp, _ = transformers_logprobs(path, list(prompt_ids) + list(ids), rope_parameters)
    start = len(prompt_ids) - 1
    return all(int(lp[start + k].argmax()) == t for k, t in enumerate(ids))


def oracle_rule_check(path, ours, golden_ids, prompt_ids, n, eos, rope_parameters=None):
    """oracle_rule_violation with llama.cpp's golden ids and transformers' greedy ids, running
    transformers token by token only when the quick check (transformers_agrees) fails."""
    if ours == golden_ids or transformers_agrees(path, prompt_ids, ours, rope_parameters):
        return None
    hf, _ = transformers_greedy(path, prompt_ids, n, eos, rope_parameters)
    return oracle_rule_violation(ours, golden_ids, hf)


def transformers_chat_text(path, messages):
    tok = transformers_tokenizer(path)
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def transformers_tokenize(path, text):
    tok = transformers_tokenizer(path)
    return tok(text, add_special_tokens=True)["input_ids"]


# ---------------------------------------------------------------- ours
def nanovllm_bin():
    path = os.environ.get("NANOVLLM_BIN", str(ROOT / "build" / "bin" / "nanovllm"))
    assert os.path.exists(path), f"nanovllm binary not found at {path} (set NANOVLLM_BIN)"
    return path


def run(args, stdin=None, env=None):
    proc = subprocess.run([nanovllm_bin(), *map(str, args)], input=stdin, capture_output=True,
                          text=True, timeout=600, env=None if env is None else {**os.environ, **env})
    assert proc.returncode == 0, f"nanovllm {' '.join(map(str, args))}: {proc.stderr}"
    return proc.stdout


# The scalar kernel table keeps activations f32 in quantized matmuls, as transformers does. The
# SIMD tables round them to int8 blocks as ggml does, but sum in their own order: one ulp there
# moves a quantized model's logprobs by 0.1-0.4 nats (bench/NOTES.md, seventh session), so their
# greedy ids part from llama.cpp's on near-ties differently on AVX2 and AVX-512 machines.
F32_ACTIVATIONS = {"NANOVLLM_ISA": "scalar"}


def ours_generate(model, prompts=(), prompt_ids=(), n=1, extra=(), env=None):
    """`nanovllm generate --json` on text prompts or id lists: one dict per prompt, in order."""
    args = ["generate", "--model", model, "--json", "-q", "--temperature", "0", "--threads",
            THREADS, "--max-tokens", n, "--kv-cache-dtype", "f32", "--kv-cache-memory", "256MiB",
            *extra]
    for p in prompts:
        args += ["--prompt", p]
    for ids in prompt_ids:
        args += ["--prompt-ids", ",".join(map(str, ids))]
    # split on "\n" only: str.splitlines() also splits inside texts holding U+2028, U+0085, ...
    rows = [json.loads(line) for line in run(args, env=env).split("\n") if line.strip()]
    return sorted(rows, key=lambda r: r["index"])


def ours_chat_text(model, messages):
    return run(["chat-template", "--model", model, "--messages", "-"], stdin=json.dumps(messages))


# ---------------------------------------------------------------- converted test checkpoints
# Our random test checkpoints (tests/data/model) have 300-token vocabularies, and llama.cpp's
# converter needs a real tokenizer beside the weights that fits the vocabulary. So each is
# made again by `nanovllm make-model` with its config and the vocabulary of a real tokenizer
# (seeded: the same bytes on every machine, which the goldens check through sha256).
CONVERTED = {  # name: (config of the shape, tokenizer folder, vocab_size)
    "llama": (ROOT / "tests/data/model/llama-f32/config.json", SHARED / "tokenizers/tinyllama", 32000),
    "qwen3": (ROOT / "tests/data/model/qwen3-f32/config.json", SHARED / "tokenizers/qwen3", 151936),
}
OUTTYPES = ["f32", "f16", "q8_0"]
# Their prompts, as ids: the weights are random, so text would mean nothing.
CONVERTED_PROMPTS = [[1, 450, 4996, 17354, 1701, 432, 6, 3], [7, 7, 7, 7], [250, 9, 31999, 42, 1000]]


def llama_cpp_src(build_dir):
    found = sorted(pathlib.Path(build_dir, "oracles").glob("llama_cpp_python-*/vendor/llama.cpp"))
    assert found, f"no llama.cpp sources under {build_dir}/oracles: run scripts/setup-oracles.sh"
    return found[-1]


def convert_to_gguf(build_dir, model_dir, outtype, out, vocab_only=False):
    """llama.cpp's convert_hf_to_gguf.py, with the gguf-py it ships, in the oracle venv."""
    src = llama_cpp_src(build_dir)
    env = dict(os.environ, PYTHONPATH=str(src / "gguf-py"))
    args = [sys.executable, str(src / "convert_hf_to_gguf.py"), str(model_dir), "--outtype", outtype,
            "--outfile", str(out)] + (["--vocab-only"] if vocab_only else [])
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"convert_hf_to_gguf.py {model_dir}: {proc.stderr[-3000:]}"
    return out


def converted_checkpoint(build_dir, name):
    """The safetensors checkpoint `name` (made once, cached under BUILD_DIR/oracles/converted)."""
    config, tokenizer, vocab = CONVERTED[name]
    work = pathlib.Path(build_dir, "oracles", "converted")
    ckpt = work / f"{name}-f32"
    if not (ckpt / "model.safetensors").exists():
        work.mkdir(parents=True, exist_ok=True)
        shape = json.loads(config.read_text())
        shape["vocab_size"] = vocab
        (work / f"{name}-config.json").write_text(json.dumps(shape, indent=2))
        run(["make-model", "--config", work / f"{name}-config.json", "--out", ckpt, "--dtype", "f32",
             "--seed", "0", "--tokenizer", tokenizer])
    return ckpt


def converted_gguf(build_dir, name, outtype):
    ckpt = converted_checkpoint(build_dir, name)
    out = ckpt.parent / f"{name}-{outtype}.gguf"
    if not out.exists():
        convert_to_gguf(build_dir, ckpt, outtype, str(out) + ".tmp")
        os.replace(str(out) + ".tmp", out)
    return out
