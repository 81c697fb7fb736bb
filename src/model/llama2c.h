// Conversion of Karpathy's llama2.c checkpoints (legacy format) to a Hugging Face layout.
#pragma once

#include <string>

#include "model/model_config.h"

namespace nanovllm {

// Reads a llama2.c legacy checkpoint (7 int32: dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size (negative: separate classifier), seq_len; then f32 weights in llama2.c's order)
// and writes out_dir/config.json, generation_config.json and model.safetensors (f32), with
// the rows of wq/wk permuted from llama2.c's interleaved RoPE pairs to rotate-half.
// Returns the config it wrote; throws Error naming the file when it is short or inconsistent.
ModelConfig convert_llama2c_checkpoint(const std::string& bin_path, const std::string& out_dir);

}  // namespace nanovllm
