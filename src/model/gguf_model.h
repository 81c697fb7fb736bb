// A GGUF file as a model: llama.cpp's metadata keys to ModelConfig, and its tensors renamed,
// reshaped and (for the llama architecture) re-permuted to the Hugging Face layout that
// load_weights reads. Weights stay in the file's dtype, mmapped.
#pragma once

#include <string>

#include "model/gguf.h"
#include "model/model_config.h"
#include "model/weights.h"

namespace nanovllm {

// True for a path ending in .gguf or a file that starts with the GGUF magic.
bool is_gguf_file(const std::string& path);

// Architectures llama (Llama 2/3, TinyLlama, Mistral, SmolLM2), qwen2 and qwen3; any other is
// an Error naming it. Throws Error naming the file and key for missing or invalid metadata.
ModelConfig gguf_model_config(const GgufFile& file);

// The tensors under their Hugging Face names ("model.layers.0.self_attn.q_proj.weight") and
// shapes ([rows, cols]); q/k rows of the llama architecture back in rotate-half order (copied:
// the only tensors that are). A tensor llama.cpp's converter would not write for cfg is an Error.
Checkpoint gguf_checkpoint(std::shared_ptr<const GgufFile> file, const ModelConfig& cfg);

// The kernels' dtype of a ggml type, or an Error naming the tensor when the kernels lack it.
kernels::DType gguf_tensor_dtype(const GgufFile& file, const GgufTensor& t);

}  // namespace nanovllm
