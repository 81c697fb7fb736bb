"""nano-vllm's example.py, unchanged but for where the model and tokenizer come from: the
prompts go through the model's chat template, then LLM.generate. No PyTorch, no GPU.

    python examples/example.py [--model PATH] [--max-tokens N]
"""

import argparse

from nanovllm import LLM, SamplingParams

from _model import default_model, model_or_exit


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=default_model(), help="checkpoint folder or GGUF file")
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--temperature", type=float, default=0.6)
    args = ap.parse_args()
    path = model_or_exit(args.model)

    llm = LLM(path, enforce_eager=True, tensor_parallel_size=1)
    tokenizer = llm.tokenizer  # nano-vllm takes transformers' AutoTokenizer; this is the same files

    sampling_params = SamplingParams(temperature=args.temperature, max_tokens=args.max_tokens)
    prompts = [
        "introduce yourself",
        "list all prime numbers within 100",
    ]
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}],
            tokenize=False,
            add_generation_prompt=True,
            enable_thinking=True,
        )
        for prompt in prompts
    ]
    outputs = llm.generate(prompts, sampling_params)

    for prompt, output in zip(prompts, outputs):
        print("\n")
        print(f"Prompt: {prompt!r}")
        print(f"Completion: {output['text']!r}")


if __name__ == "__main__":
    main()
