"""nano-vllm's bench.py: random token-id prompts of random lengths, random output lengths with
ignore_eos, one generate call; prints the decode throughput. nano-vllm runs 256 sequences of up
to 1024 + 1024 tokens on a GPU; the defaults here are scaled to a small CPU, the flags scale up.

    python examples/bench.py [--model PATH] [--num-seqs 16] [--max-input-len 256] [--max-output-len 128]
"""

import argparse
import time
from random import randint, seed

from nanovllm import LLM, SamplingParams

from _model import default_model, model_or_exit


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=default_model(), help="checkpoint folder or GGUF file")
    ap.add_argument("--num-seqs", type=int, default=16)
    ap.add_argument("--max-input-len", type=int, default=256)
    ap.add_argument("--max-output-len", type=int, default=128)
    ap.add_argument("--max-model-len", type=int, default=0, help="0: the model's")
    ap.add_argument("--threads", type=int, default=0, help="0: all cores")
    args = ap.parse_args()
    path = model_or_exit(args.model)

    seed(0)
    llm = LLM(path, enforce_eager=False, max_model_len=args.max_model_len, threads=args.threads)
    # Lengths shrink to the model's context; ids stay inside its vocabulary (nano-vllm: < 10000).
    max_input_len = min(args.max_input_len, llm.max_model_len - args.max_output_len)
    if max_input_len < 1:
        raise SystemExit(f"--max-output-len {args.max_output_len} leaves no room for a prompt in "
                         f"the context of {llm.max_model_len} tokens")
    max_id = min(10000, llm.vocab_size - 1)
    min_input_len = min(100, max_input_len)
    min_output_len = min(100, args.max_output_len)
    prompt_token_ids = [[randint(0, max_id) for _ in range(randint(min_input_len, max_input_len))]
                        for _ in range(args.num_seqs)]
    sampling_params = [SamplingParams(temperature=0.6, ignore_eos=True,
                                      max_tokens=randint(min_output_len, args.max_output_len))
                       for _ in range(args.num_seqs)]

    llm.generate(["Benchmark: "], SamplingParams())  # warm-up, as nano-vllm
    t = time.time()
    llm.generate(prompt_token_ids, sampling_params, use_tqdm=False)
    t = time.time() - t
    total_tokens = sum(sp.max_tokens for sp in sampling_params)
    throughput = total_tokens / t
    print(f"Total: {total_tokens}tok, Time: {t:.2f}s, Throughput: {throughput:.2f}tok/s")


if __name__ == "__main__":
    main()
