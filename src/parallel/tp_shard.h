// Tensor parallelism's split of one checkpoint over `size` ranks, Megatron-style: attention by
// KV-head groups (each rank its q heads and the KV heads they read), the MLP's gate/up by rows
// (output columns) and down by columns, the lm_head by vocabulary. o_proj and down_proj then give
// partial sums that an allreduce completes. Nothing here talks to other ranks.
#pragma once

#include "model/model_config.h"
#include "model/weights.h"

namespace nanovllm {

struct TpRank {
  int rank = 0;
  int size = 1;
};

// [begin, end) of rank r's part when n items split over size ranks (the first n % size get one more).
struct Range {
  int begin = 0, end = 0;
  int size() const { return end - begin; }
};
Range tp_range(int n, TpRank r);

// The rank's decoder shape: its heads and its part of the intermediate size. Throws Error when
// the heads or the intermediate size do not split evenly (the message names the numbers).
ModelConfig shard_config(const ModelConfig& full, TpRank r);

// Reads only the rank's slices of each matrix from the mapped checkpoint (so only those pages
// are touched), prepared as load_weights prepares whole ones. The embedding stays whole and
// mapped (a step reads only its tokens' rows); o_proj's and down_proj's biases are on rank 0
// only, so the allreduce adds them once.
ModelWeights load_weight_shard(const Checkpoint& ckpt, const ModelConfig& full, TpRank r, const WeightOptions& opts);

}  // namespace nanovllm
