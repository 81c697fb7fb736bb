// The description of one engine step handed to a ModelRunner: what to compute, where the KV lives.
// Plain data that owns all of it (no pointers into the engine's Sequences), so a batch can be
// copied, queued or sent to a runner in another thread or process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace nanovllm {

// One sequence's part of a step: `num_new` tokens at positions [num_cached, num_cached + num_new).
// Positions below num_cached already have their K/V in the cache (an earlier chunk, or a
// prefix-cache hit); the runner writes the K/V of the new tokens into the slots that
// block_table maps them to, then attends over positions [0, num_cached + num_new).
struct SeqSlice {
  int64_t seq_id = 0;
  int num_cached = 0;
  int num_new = 0;
  // Positions below num_prompt are the request's prompt, the rest tokens it generated: the
  // runner computes a token by its role (kernels::RowRole), whatever else shares the step, so a
  // token's result does not depend on chunking or batching. 0: every token computed as generated.
  int num_prompt = 0;
  bool sample = false;             // the last new token's logits are wanted
  std::vector<int> block_table;    // physical blocks covering [0, num_cached + num_new)
};

// All tokens of the step, flattened in slice order ([T] like flash-attention's varlen layout).
struct Batch {
  std::vector<int> token_ids;  // [T]
  std::vector<int> positions;  // [T]
  std::vector<SeqSlice> seqs;
  int block_size = 0;

  int num_tokens() const { return static_cast<int>(token_ids.size()); }
  // The shape every runner relies on (NV_CHECK otherwise): one position per token, slices of at
  // least one token covering the batch in order, positions following num_cached, block tables
  // long enough. Block ids and token ids are the runner's to check against its own sizes.
  void check() const;
  int num_sampled() const {
    int n = 0;
    for (const SeqSlice& s : seqs) n += s.sample ? 1 : 0;
    return n;
  }
};

// Logits of the sampling positions: one row per slice with sample = true, in slice order.
struct Logits {
  int rows = 0;
  int vocab = 0;
  std::vector<float> data;  // rows * vocab

  float* row(int r) { return data.data() + static_cast<size_t>(r) * vocab; }
  const float* row(int r) const { return data.data() + static_cast<size_t>(r) * vocab; }
};

}  // namespace nanovllm
