#!/usr/bin/env python3
"""Python `tokenizers` encode throughput (MB/s) on the golden corpus, the same loop as
bench/tokenizer_throughput.cpp: encode(text, add_special_tokens=True) string by string, then all strings
joined into one document.

Usage: RAYON_NUM_THREADS=1 .venv-ref/bin/python scripts/bench_tokenizer_py.py [REPEATS] [NAME...]
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_tokenizer_goldens import load_tokenizer  # noqa: E402  (handles TinyLlama's merges)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")
NAMES = ["gpt2", "llama3", "qwen2.5", "qwen3", "mistral", "tinyllama", "tinystories-656k"]


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    names = sys.argv[2:] or NAMES
    with open(os.path.join(ROOT, "tests", "data", "tokenizer", "corpus.jsonl"), encoding="utf-8") as f:
        corpus = [json.loads(line)["text"] for line in f]
    nbytes = sum(len(t.encode("utf-8")) for t in corpus)
    print(f"corpus: {len(corpus)} strings, {nbytes / 1e6:.2f} MB per pass, {repeats} passes")
    for name in names:
        sub = os.path.join("models", name) if name == "tinystories-656k" else os.path.join("tokenizers", name)
        tok, _ = load_tokenizer(os.path.join(SHARED, sub))
        tokens = 0
        t0 = time.perf_counter()
        for _ in range(repeats):
            for t in corpus:
                tokens += len(tok.encode(t, add_special_tokens=True).ids)
        s = time.perf_counter() - t0
        joined = "".join(t + "\n" for t in corpus)
        long_tokens, t1 = 0, time.perf_counter()
        for _ in range(repeats):
            long_tokens += len(tok.encode(joined, add_special_tokens=True).ids)
        s2 = time.perf_counter() - t1
        jbytes = len(joined.encode("utf-8"))
        print(f"{name:<18} strings {nbytes * repeats / 1e6 / s:8.2f} MB/s {tokens / s:10.0f} tok/s | "
              f"one document {jbytes * repeats / 1e6 / s2:8.2f} MB/s {long_tokens / s2:10.0f} tok/s")


if __name__ == "__main__":
    main()
