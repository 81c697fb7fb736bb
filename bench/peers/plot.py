#!/usr/bin/env python3
"""Decode throughput against batch size, every engine of a bench/peers run (means over rounds).

Usage: plot.py RUN_DIR[,RUN_DIR...] OUT.png     (RUN_DIR holds results.jsonl and meta.json)
"""
import json
import os
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {"ours": ("o-", "nano-vllm-cpp"), "vllm": ("s-", "vLLM CPU"), "openvino": ("^-", "OpenVINO GenAI"),
         "llama.cpp": ("v-", "llama.cpp")}


def main(runs, dst):
    by = {}  # engine -> batch -> [decode tok/s]
    meta = {}
    for d in runs.split(","):
        for line in open(os.path.join(d, "results.jsonl")):
            r = json.loads(line)
            if r["work"].startswith("batch_") and "decode_tok_s" in r:
                by.setdefault(r["engine"], {}).setdefault(int(r["work"][6:]), []).append(r["decode_tok_s"])
        if os.path.exists(os.path.join(d, "meta.json")):
            meta = json.load(open(os.path.join(d, "meta.json")))
    fig, ax = plt.subplots(figsize=(6, 4))
    batches = sorted({b for e in by.values() for b in e})
    for engine, (style, label) in STYLE.items():
        pts = sorted((b, statistics.mean(v)) for b, v in by.get(engine, {}).items())
        if pts:
            ax.plot([b for b, _ in pts], [v for _, v in pts], style, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches)
    ax.set_xticklabels([str(b) for b in batches])
    ax.set_xlabel("concurrent sequences" + (" (smoke shapes)" if meta.get("smoke") else " (128 in / 128 out)"))
    ax.set_ylabel("decode tokens/s")
    ax.set_title(f"Qwen3-0.6B shape, BF16, {meta.get('threads', '?')} threads\n{meta.get('cpu', '')}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(dst, dpi=120)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
