#!/usr/bin/env python3
"""Makes the model goldens under tests/data/model/ with Hugging Face transformers (the oracle).

Run by hand (needs PyTorch from PyPI): .venv-ref/bin/python scripts/gen_model_goldens.py
    [--nanovllm build/bin/nanovllm]   # also convert stories260K with our tool and record its goldens

Writes, for tiny random checkpoints of each architecture made by transformers itself
(from_config with a fixed seed, save_pretrained):
  tests/data/model/<name>/            the checkpoint (config.json, model.safetensors, ...)
  tests/data/model/<name>.golden.json the prompts, the logits of every prompt position (f32)
                                      and 16 greedy token ids (model.generate, do_sample=False)
and for the real checkpoints in ../shared/models: tinystories-656k.golden.json and
stories260k.golden.json (greedy ids and decoded text).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
import transformers
from transformers import (AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config,
                          Qwen3Config)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "model")
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
N_GREEDY = 16
MIN_MARGIN = 2e-3

# Shared tiny shape: hidden 64, 2 layers, 4 heads / 2 KV heads, vocab 300, intermediate 128.
# initializer_range 0.1 (HF default 0.02) gives logits a range of a few units, so greedy
# choices are decided by clear margins rather than by rounding.
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            vocab_size=300, intermediate_size=128, initializer_range=0.1, rms_norm_eps=1e-5,
            max_position_embeddings=256, bos_token_id=1, eos_token_id=2)

CHECKPOINTS = {
    # Llama with Llama 3 RoPE scaling: with head_dim 16 and original_max_position_embeddings 64
    # the frequencies fall in all three bands (kept, interpolated, divided by factor).
    "llama": (LlamaConfig, dict(tie_word_embeddings=False, rope_parameters=dict(
        rope_type="llama3", rope_theta=50000.0, factor=4.0, low_freq_factor=1.0,
        high_freq_factor=4.0, original_max_position_embeddings=64))),
    "mistral": (MistralConfig, dict(tie_word_embeddings=False, sliding_window=None,
                                    rope_parameters=dict(rope_type="default", rope_theta=10000.0))),
    "qwen2": (Qwen2Config, dict(tie_word_embeddings=True,
                                rope_parameters=dict(rope_type="default", rope_theta=1000000.0))),
    # head_dim 32 != hidden / heads = 16, as in the real Qwen3 models.
    "qwen3": (Qwen3Config, dict(tie_word_embeddings=True, head_dim=32,
                                rope_parameters=dict(rope_type="default", rope_theta=1000000.0))),
}
# Extra stored dtypes: the weights rounded to bf16 / f16; the golden is transformers' f32
# forward of those rounded weights (what our runner computes: f32 activations).
EXTRA_DTYPES = {"qwen3-bf16": ("qwen3", torch.bfloat16), "llama-f16": ("llama", torch.float16)}


def perturb(model, seed):
    """Norm weights and biases start as 1 and 0 in HF; randomise them so a mix-up shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def prompts_for(vocab, seed):
    g = torch.Generator().manual_seed(seed)
    return [[1] + torch.randint(3, vocab, (n - 1,), generator=g).tolist() for n in (5, 23)]


def greedy(model, ids, n):
    out = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=n,
                         min_new_tokens=0, eos_token_id=None, pad_token_id=0)
    new = out[0, len(ids):].tolist()
    assert len(new) == n, "generate stopped early"
    return new


def relative_margin(logits_row):
    """Gap between the top two logits over the row's range: how decisive a greedy choice is."""
    top = torch.topk(logits_row, 2).values
    return float((top[0] - top[1]) / (logits_row.max() - logits_row.min()))


def greedy_margins(model, ids, new):
    """The relative margin of each greedy choice (logits of the positions that chose `new`)."""
    with torch.no_grad():
        full = model(torch.tensor([ids + new])).logits[0].float()
    return [round(relative_margin(full[r]), 6) for r in range(len(ids) - 1, len(ids) + len(new) - 1)]


def golden_for(model, prompts):
    entries = []
    for ids in prompts:
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float()
        new = greedy(model, ids, N_GREEDY)
        entries.append({"prompt_ids": ids, "greedy_ids": new,
                        "greedy_margins": greedy_margins(model, ids, new),
                        "logits": [[round(float(x), 6) for x in row] for row in logits]})
    return {"reference": f"transformers {transformers.__version__}, torch {torch.__version__}",
            "prompts": entries}


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", os.path.relpath(path, ROOT), f"({os.path.getsize(path)} bytes)")


def make_random_checkpoints():
    for i, (name, (cls, extra)) in enumerate(CHECKPOINTS.items()):
        config = cls(**TINY, **extra)
        torch.manual_seed(1000 + i)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
        perturb(model, 2000 + i)
        path = os.path.join(OUT, f"{name}-f32")
        shutil.rmtree(path, ignore_errors=True)
        model.save_pretrained(path)
        # Prompts whose greedy choices all win by >= MIN_MARGIN of the logit range, so the test
        # checks the computation, not which way a rounding-level near-tie falls.
        for seed in range(3000 + 100 * i, 3000 + 100 * i + 100):
            golden = golden_for(model, prompts_for(config.vocab_size, seed))
            if min(min(p["greedy_margins"]) for p in golden["prompts"]) >= MIN_MARGIN:
                break
        write_json(path + ".golden.json", golden)
        print(f"  {name}: min greedy margin", min(min(p["greedy_margins"]) for p in golden["prompts"]))
    for name, (base, dtype) in EXTRA_DTYPES.items():
        src = os.path.join(OUT, f"{base}-f32")
        model = AutoModelForCausalLM.from_pretrained(src, dtype=dtype)
        path = os.path.join(OUT, name)
        shutil.rmtree(path, ignore_errors=True)
        model.save_pretrained(path)
        rounded = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
        prompts = [p["prompt_ids"] for p in json.load(open(src + ".golden.json"))["prompts"]]
        golden = golden_for(rounded, prompts)
        write_json(path + ".golden.json", golden)
        print(f"  {name}: min greedy margin", min(min(p["greedy_margins"]) for p in golden["prompts"]))


TINYSTORIES_PROMPTS = ["Once upon a time", "Tom and his dog went", "The little bird was sad because"]
TINYSTORIES_STORY = ("Once upon a time, there was a little girl named Lily. She had a toy car that "
                     "she loved very much. One day, she went to the park")


def tinystories_goldens():
    from tokenizers import Tokenizer
    path = os.path.join(SHARED, "models", "tinystories-656k")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tok = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
    runs = [("", [1], 64)] + [(p, tok.encode(p).ids, 32) for p in TINYSTORIES_PROMPTS]
    entries = []
    for text, ids, n in runs:
        new = greedy(model, ids, n)
        entries.append({"prompt": text, "prompt_ids": ids, "greedy_ids": new,
                        "greedy_margins": greedy_margins(model, ids, new),
                        "text": tok.decode(new)})
        print("  tinystories:", repr(entries[-1]["text"][:100]))
    assert entries[0]["text"].startswith(TINYSTORIES_STORY), entries[0]["text"]
    # How many greedy ids spell the README's sentence: what a bf16 KV cache must reproduce.
    bos_ids = entries[0]["greedy_ids"]
    entries[0]["story_tokens"] = next(k for k in range(len(bos_ids) + 1)
                                      if tok.decode(bos_ids[:k]).startswith(TINYSTORIES_STORY))
    write_json(os.path.join(OUT, "tinystories-656k.golden.json"),
               {"reference": f"transformers {transformers.__version__}", "runs": entries})


STORIES260K_STORY = ("Once upon a time, there was a little girl named Lily. She loved to play outside "
                     "in the park. One day, she saw a big, red ball. She wanted to play with it, but "
                     "it was too high.")


def stories260k_goldens(nanovllm):
    """transformers on the checkpoint our `convert llama2c` wrote: the converter's oracle."""
    from tokenizers import Tokenizer
    src = os.path.join(SHARED, "models", "stories260k")
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([nanovllm, "convert", "llama2c", "--checkpoint", f"{src}/stories260K.bin",
                        "--tokenizer", f"{src}/tok512.model", "--out", out], check=True)
        model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
        tok = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
        new = greedy(model, [1], 200)
        # The converted tokenizer.json tokenizes as SentencePiece does (texts without runs of
        # spaces, which SentencePiece collapses and the Llama 2 style normalizer keeps).
        import sentencepiece
        sp = sentencepiece.SentencePieceProcessor(model_file=f"{src}/tok512.model")
        for t in [STORIES260K_STORY, "Tom's dog ran 123 miles!", "ünïcödé 日本語 🙂"]:
            assert tok.encode(t).ids == [1] + sp.encode(t), t
        text = tok.decode(new)
    print("  stories260k:", repr(text[:200]))
    assert text.startswith(STORIES260K_STORY), text
    write_json(os.path.join(OUT, "stories260k.golden.json"),
               {"reference": f"transformers {transformers.__version__} on the converted checkpoint",
                "prompt_ids": [1], "greedy_ids": new, "text": text})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nanovllm", help="our built tool, to convert stories260K")
    ap.add_argument("--only", choices=["random", "tinystories", "stories260k"])
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    if args.only in (None, "random"):
        make_random_checkpoints()
    if args.only in (None, "tinystories"):
        tinystories_goldens()
    if args.nanovllm and args.only in (None, "stories260k"):
        stories260k_goldens(args.nanovllm)
    elif args.only == "stories260k":
        sys.exit("--only stories260k needs --nanovllm")


if __name__ == "__main__":
    main()
