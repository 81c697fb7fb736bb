#!/usr/bin/env python3
"""onnxruntime-genai's own generator on a model its builder wrote, in the shape of
`nanovllm bench --batch B --input-len L --output-len N --json`:

    onnx_genai_bench.py GENAI_DIR --batch B --input-len L --output-len N [--threads T] [--seed S]

B random prompts of L tokens go in as one batch (append_tokens: the prefill), then greedy
decoding to L + N tokens. Prints one JSON line: prefill tok/s (B*L over the prefill's time),
decode tok/s (the B*(N-1) tokens after every sequence had its first one, over the time since
then, as `nanovllm bench` and llama-batched-bench's S_TG count them).
"""
import argparse
import json
import time

import numpy as np
import onnxruntime_genai as og


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--input-len", type=int, default=128)
    ap.add_argument("--output-len", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    # ORT's intra-op threads are a session option of the model's genai_config.json.
    path = f"{a.model}/genai_config.json"
    genai = json.load(open(path))
    options = genai["model"]["decoder"].setdefault("session_options", {})
    if options.get("intra_op_num_threads") != a.threads:
        options["intra_op_num_threads"] = a.threads
        json.dump(genai, open(path, "w"), indent=2)
    config = og.Config(a.model)
    config.clear_providers()  # the CPU
    model = og.Model(config)
    vocab = genai["model"]["vocab_size"]
    prompts = np.random.default_rng(a.seed).integers(0, min(vocab, 150000), (a.batch, a.input_len)).astype(np.int32)
    total = a.input_len + a.output_len
    params = og.GeneratorParams(model)
    # Greedy, and never stopping early at an EOS (random weights): exactly N new tokens each.
    params.set_search_options(do_sample=False, max_length=total, min_length=total, batch_size=a.batch)
    generator = og.Generator(model, params)

    t0 = time.perf_counter()
    generator.append_tokens(prompts)
    generator.generate_next_token()  # every sequence's first token
    t1 = time.perf_counter()
    steps = 0
    while not generator.is_done():
        generator.generate_next_token()
        steps += 1
    t2 = time.perf_counter()
    out = generator.get_sequence(0)
    assert len(out) == total, (len(out), total)
    print(json.dumps({"engine": f"onnxruntime-genai {og.__version__}", "batch": a.batch, "input_len": a.input_len,
                      "output_len": a.output_len, "threads": a.threads,
                      "prefill_tok_s": a.batch * a.input_len / (t1 - t0),
                      "decode_tok_s": a.batch * steps / (t2 - t1)}))


if __name__ == "__main__":
    main()
