"""nano-vllm's Python API on nano-vllm-cpp's C++ engine: no PyTorch, no GPU.

    from nanovllm import LLM, SamplingParams
    llm = LLM("/path/to/model", enforce_eager=True, tensor_parallel_size=1)
    outputs = llm.generate(["Hello, Nano-vLLM."], SamplingParams(temperature=0.6, max_tokens=256))
    print(outputs[0]["text"])
"""

import os

# libgomp reads how long an idle thread spins before sleeping once, when the extension loads
# it: its default (milliseconds) collapses throughput when another process holds a core. The
# `nanovllm` command sets the same (tools/omp_wait_policy.cpp); a value the user set stays.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "1000"

from .llm import (LLM, AsyncLLM, GuidedDecodingParams, SamplingParams, Stream, StructuredOutputsParams,
                  Tokenizer)

__all__ = ["LLM", "AsyncLLM", "GuidedDecodingParams", "SamplingParams", "Stream", "StructuredOutputsParams",
           "Tokenizer"]
__version__ = "0.1.0"
