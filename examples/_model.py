"""The examples' default model: the SmolLM2-135M-Instruct GGUF that scripts/fetch-demo-model.sh
keeps in the cache ($NANOVLLM_CACHE, else ~/.cache/nanovllm); --model takes any other."""

import os
import sys


def default_model() -> str:
    cache = os.environ.get("NANOVLLM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "nanovllm")
    return os.path.join(cache, "SmolLM2-135M-Instruct.Q4_1.gguf")


def model_or_exit(model: str) -> str:
    if not os.path.exists(model):
        sys.exit(f"no model at {model}: run scripts/fetch-demo-model.sh (the SmolLM2-135M-Instruct demo "
                 "model), or pass --model DIR (a Hugging Face checkpoint folder)")
    return model
