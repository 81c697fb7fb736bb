#!/usr/bin/env python3
"""The markdown table of bench/gguf_vs_llama_cpp.sh's results: tok/s of both engines and ours
over llama.cpp's, per file and workload. Usage: bench/gguf_table.py bench/out/gguf_vs_llama_cpp.jsonl"""
import json
import sys


def speed(row):
    """Prefill rows: prompt tok/s; decode rows: tok/s after every sequence had its first token."""
    prefill = row["work"].startswith("prefill")
    if row["engine"] == "ours":
        return row["prefill_tok_s" if prefill else "decode_tok_s"]
    return row["avg_ts"] if "avg_ts" in row else row["speed_tg"]


def main(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    table = {}
    for r in rows:
        table.setdefault((r["file"], r["work"]), {})[r["engine"]] = speed(r)
    print("| file | workload | llama.cpp tok/s | ours tok/s | ours / llama.cpp |")
    print("|---|---|---|---|---|")
    for (f, work), s in table.items():
        ratio = s["ours"] / s["llama.cpp"] if s.get("llama.cpp") else float("nan")
        print(f"| {f} | {work} | {s.get('llama.cpp', float('nan')):.1f} | {s.get('ours', float('nan')):.1f} | **{ratio:.2f}** |")


if __name__ == "__main__":
    main(sys.argv[1])
