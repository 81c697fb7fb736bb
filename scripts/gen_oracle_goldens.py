#!/usr/bin/env python3
"""Records llama.cpp's answers as the goldens of tests/oracles (tests/data/oracles/*.json).

llama.cpp takes 15+ minutes to build on 2 cores, more than CI can give it, so the tests run
transformers and llama.cpp's converter live and read llama.cpp's side from here. Run by hand:

    python=$(scripts/setup-oracles.sh build --llama-cpp)
    LLAMA_CPP_LIB_PATH=build/oracles/llama-build/bin \
    PYTHONPATH=build/oracles/llama_cpp_python-0.3.36 \
    $python scripts/gen_oracle_goldens.py --build build --smollm2 FILE.gguf

Each golden names the sha256 of the file it was made from; the tests check their file is that
one (the converted checkpoints are rebuilt deterministically by the tests' own fixtures).
"""
import argparse
import json
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "oracles"))
import oracles  # noqa: E402

TOP = 20


def top_logprobs(logits, k=TOP):
    """The k most likely (id, logprob) pairs of one row, and the row's logit range."""
    row = np.asarray(logits, dtype=np.float64)
    lp = row - row.max() - np.log(np.exp(row - row.max()).sum())
    best = np.argsort(-lp, kind="stable")[:k]
    return {"top": [[int(i), round(float(lp[i]), 6)] for i in best],
            "range": round(float(row.max() - row.min()), 6)}


def greedy_record(path, prompt_ids, n, eos):
    ids, logits = oracles.llama_cpp_greedy(path, prompt_ids, n, eos)
    return {"prompt_ids": prompt_ids, "greedy_ids": ids,
            "positions": [top_logprobs(row) for row in logits]}


def smollm2(path, n):
    eos = int(oracles.gguf_metadata(path, "tokenizer.ggml.eos_token_id"))
    chats = []
    for messages in oracles.CHATS:
        text = oracles.llama_cpp_chat_text(path, messages)
        ids = oracles.llama_cpp_tokenize(path, text)
        chats.append({"messages": messages, "text": text, **greedy_record(path, ids, n, eos)})
    raw = [{"text": t, **greedy_record(path, oracles.llama_cpp_tokenize(path, t), n, eos)}
           for t in oracles.RAW_PROMPTS]
    return {"file": path.name, "sha256": oracles.sha256(path), "eos": eos, "max_tokens": n,
            "chats": chats, "raw": raw}


def converted(build, name, outtype, n):
    path = oracles.converted_gguf(build, name, outtype)
    return {"file": path.name, "sha256": oracles.sha256(path), "max_tokens": n,
            "prompts": [greedy_record(path, p, n, eos=-1) for p in oracles.CONVERTED_PROMPTS]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="build directory holding oracles/")
    ap.add_argument("--smollm2", type=pathlib.Path, required=True, help="SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--max-tokens", type=int, default=32)
    a = ap.parse_args()
    oracles.DATA.mkdir(parents=True, exist_ok=True)
    goldens = {"smollm2-q4_1": smollm2(a.smollm2.resolve(), a.max_tokens)}
    for name in oracles.CONVERTED:
        for outtype in oracles.OUTTYPES:
            goldens[f"{name}-{outtype}"] = converted(a.build, name, outtype, 16)
    for key, value in goldens.items():
        out = oracles.DATA / f"{key}.llama-cpp.json"
        out.write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
