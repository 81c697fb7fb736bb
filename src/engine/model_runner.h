// The interface every backend implements: one forward over a flattened batch per step.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/batch.h"

namespace nanovllm {

// Sampling defaults read from generation_config.json; unset fields keep SamplingParams' own.
struct GenerationDefaults {
  std::optional<float> temperature, top_p, min_p, repetition_penalty;
  std::optional<int> top_k;
};

// What the engine needs to know about the model behind a runner.
struct ModelInfo {
  std::string architecture;           // e.g. "Qwen3ForCausalLM"
  int vocab_size = 0;                 // rows of the logits
  int max_position_embeddings = 0;    // context length the model was trained for
  std::optional<int> bos_token_id;
  std::vector<int> eos_token_ids;     // all of them (config.json and generation_config.json)
  int64_t weight_bytes = 0;           // bytes of weights as stored
  GenerationDefaults generation;
};

class ModelRunner {
 public:
  virtual ~ModelRunner() = default;

  virtual const ModelInfo& info() const = 0;

  // Bytes one KV block of `block_size` tokens takes across all layers (K and V).
  virtual int64_t kv_block_bytes(int block_size) const = 0;

  // Bytes of memory on the runner's device the KV cache could take now (free host memory for a
  // CPU runner, free GPU memory for a CUDA one); the engine sizes its cache from this, times
  // Config::kv_cache_memory_fraction, unless it is given a size. 0 = unknown.
  virtual int64_t kv_capacity_bytes() const = 0;
  // KV blocks of `block_size` tokens that fit in kv_capacity_bytes().
  int64_t kv_capacity_blocks(int block_size) const {
    return kv_capacity_bytes() / std::max<int64_t>(kv_block_bytes(block_size), 1);
  }

  // Allocates the paged KV cache; called once before the first forward.
  virtual void allocate_kv_cache(int num_blocks, int block_size) = 0;

  // Computes the K/V of every token of the batch into the cache and the logits of the
  // sampling positions into `out` (resized by the runner).
  virtual void forward(const Batch& batch, Logits* out) = 0;
};

}  // namespace nanovllm
