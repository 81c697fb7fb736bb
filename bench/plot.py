#!/usr/bin/env python3
"""Draws decode throughput against batch size from bench/out/e2e.jsonl (written by bench/run.sh).

Usage: python3 bench/plot.py bench/out/e2e.jsonl bench/decode_throughput.png
Two llama.cpp series: measured on this machine by bench/llama_cpp_baseline.sh (2026-11-25, AMD
EPYC, AVX2; batch 1 is llama-bench tg128, the others llama-batched-bench S_TG), and the table
of the performance issue (means of its two runs), measured on an AVX-512 BF16 CPU.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LLAMA_CPP_HERE = {1: 19.7, 4: 37.8, 16: 54.9, 64: 62.6}
LLAMA_CPP_ISSUE = {1: (29.0 + 29.9) / 2, 4: (47.0 + 46.3) / 2, 16: (87.0 + 86.1) / 2, 64: (103 + 108) / 2}


def main(src, dst):
    ours = {}
    with open(src) as f:
        for line in f:
            row = json.loads(line)
            if row["name"].startswith("decode_b"):
                ours[row["num_seqs"]] = row["decode_tok_s"]
    batches = sorted(set(ours) | set(LLAMA_CPP_HERE))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([b for b in batches if b in ours], [ours[b] for b in batches if b in ours], "o-",
            label="nano-vllm-cpp")
    ax.plot(list(LLAMA_CPP_HERE), list(LLAMA_CPP_HERE.values()), "s-", label="llama.cpp, same CPU (AVX2)")
    ax.plot(list(LLAMA_CPP_ISSUE), list(LLAMA_CPP_ISSUE.values()), "^:", color="gray",
            label="llama.cpp, issue table (AVX-512 BF16 CPU)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches)
    ax.set_xticklabels([str(b) for b in batches])
    ax.set_xlabel("concurrent sequences")
    ax.set_ylabel("decode tokens/s")
    ax.set_title("Qwen3-0.6B shape, BF16 weights, 2 threads")
    ax.grid(True, alpha=0.3)
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(dst, dpi=120)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
