#!/usr/bin/env python3
"""Draws decode throughput against batch size from bench/out/e2e.jsonl (written by bench/run.sh).

Usage: python3 bench/plot.py bench/out/e2e.jsonl[,more.jsonl] bench/decode_throughput.png [llama_cpp.txt[,more.txt]]
(several runs of either, comma-separated, are averaged)
Two llama.cpp series: measured on this machine by bench/llama_cpp_baseline.sh (batch 1 is
llama-bench tg128, the others llama-batched-bench S_TG; read from its output when given, else
the means recorded in bench/RESULTS.md), and the table of the performance issue (means of its
two runs), measured on an AVX-512 BF16 CPU.
"""
import json
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Means of the three same-CPU runs beside ours in bench/RESULTS.md (2026-12-01).
LLAMA_CPP_HERE = {1: 16.2, 4: 32.6, 16: 49.9, 64: 56.9}
LLAMA_CPP_ISSUE = {1: (29.0 + 29.9) / 2, 4: (47.0 + 46.3) / 2, 16: (87.0 + 86.1) / 2, 64: (103 + 108) / 2}


def parse_llama_cpp(path):
    """Decode tok/s by batch from bench/llama_cpp_baseline.sh's output."""
    out = {}
    with open(path) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) >= 7 and cells[-2] == "tg128":
                out[1] = float(re.match(r"[0-9.]+", cells[-1]).group())
            elif len(cells) == 10 and cells[0].isdigit():
                out[int(cells[2])] = float(cells[7])  # B, S_TG t/s
    return out


def mean_by_batch(tables):
    batches = set().union(*tables)
    return {b: sum(t[b] for t in tables if b in t) / sum(b in t for t in tables) for b in batches}


def main(src, dst, llama=None):
    here = mean_by_batch([parse_llama_cpp(p) for p in llama.split(",")]) if llama else LLAMA_CPP_HERE
    runs = {}  # batch -> decode tok/s of each run; src may name several runs, comma-separated
    for path in src.split(","):
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                if row["name"].startswith("decode_b"):
                    runs.setdefault(row["num_seqs"], []).append(row["decode_tok_s"])
    ours = {b: sum(v) / len(v) for b, v in runs.items()}
    batches = sorted(set(ours) | set(here))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([b for b in batches if b in ours], [ours[b] for b in batches if b in ours], "o-",
            label="nano-vllm-cpp")
    ax.plot(sorted(here), [here[b] for b in sorted(here)], "s-", label="llama.cpp, same CPU (AVX2)")
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
    main(*sys.argv[1:4])
