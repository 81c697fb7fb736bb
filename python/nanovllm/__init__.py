"""nano-vllm's Python API on nano-vllm-cpp's C++ engine: no PyTorch, no GPU.

    from nanovllm import LLM, SamplingParams
    llm = LLM("/path/to/model", enforce_eager=True, tensor_parallel_size=1)
    outputs = llm.generate(["Hello, Nano-vLLM."], SamplingParams(temperature=0.6, max_tokens=256))
    print(outputs[0]["text"])
"""

from .llm import (LLM, AsyncLLM, GuidedDecodingParams, SamplingParams, Stream, StructuredOutputsParams,
                  Tokenizer)

__all__ = ["LLM", "AsyncLLM", "GuidedDecodingParams", "SamplingParams", "Stream", "StructuredOutputsParams",
           "Tokenizer"]
__version__ = "0.1.0"
