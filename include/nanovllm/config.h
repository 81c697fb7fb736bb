// Engine configuration: batch budgets, KV-cache size and threads.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace nanovllm {

struct Config {
  std::string model;                  // checkpoint directory (Hugging Face layout)
  int max_num_batched_tokens = 2048;  // token budget of one step (prefill chunks + decodes)
  int max_num_seqs = 256;             // sequences in one step at most
  // > 0: one sequence gets at most this many tokens per step (vLLM's
  // long_prefill_token_threshold): a long prompt is chunked, so that the streams decoding
  // beside it wait for a step of about this many prefill tokens, not for the whole prompt.
  int long_prefill_token_threshold = 0;
  int max_model_len = 0;              // 0 = the model's max_position_embeddings
  // A max_model_len above max_position_embeddings is refused unless this is set (or the
  // environment has VLLM_ALLOW_LONG_MAX_MODEL_LEN=1, as vLLM reads it): positions the model
  // was never trained on give garbage, so it must be asked for, and it prints a warning.
  bool allow_long_max_model_len = false;
  int block_size = 16;                // tokens per KV block
  int64_t kv_cache_bytes = 0;         // KV budget in bytes; 0 = use kv_cache_memory_fraction
  double kv_cache_memory_fraction = 0.5;  // of the memory available at start-up
  int num_kv_blocks = 0;              // > 0 overrides the budget (tests)
  std::string kv_cache_dtype = "bf16";  // "bf16" or "f32"
  // Touch the whole KV cache at start-up, as vLLM and llama.cpp do with theirs: the memory is
  // committed and no step pays first-touch page faults (in a VM ~20 us per fresh 4 KiB page).
  bool kv_cache_prefault = false;
  // "int8": matmul weights rounded to int8 per output row at load time (as vLLM's
  // quantization="fp8" does to a bf16 checkpoint); "" keeps the checkpoint's dtype.
  std::string quantization;
  bool enable_prefix_caching = true;
  int threads = 0;                    // 0 = all cores
  // > 1: the model split over that many MPI ranks (mpirun -np N; a build with NANOVLLM_WITH_MPI).
  int tensor_parallel_size = 1;
  std::string backend = "native";     // one of compiled_backends() (nanovllm/llm.h)
  // Settings of the chosen backend, e.g. {"device": "cuda:0", "dtype": "bf16"} for torch; the
  // backend reads them into its own typed options and refuses a key it does not know.
  std::map<std::string, std::string> backend_options;

  // Throws std::invalid_argument naming the first bad field and its allowed range.
  void validate() const;
};

}  // namespace nanovllm
