// The one decoder behind every supported architecture: a forward over a flattened batch,
// reading and writing a paged KV cache.
#pragma once

#include <functional>
#include <vector>

#include "engine/batch.h"
#include "kernels/kernels.h"
#include "model/aligned_buffer.h"
#include "model/model_config.h"
#include "model/op_profile.h"
#include "model/weights.h"

namespace nanovllm {

// Rows [begin, end) of a step's activations, all of one role.
struct RoleRun {
  int begin = 0, end = 0;
  kernels::RowRole role = kernels::RowRole::kDecode;
};

// Activation buffers of one step, grown to the largest step seen and reused after that.
struct StepScratch {
  std::vector<float> x, h, qkv, q, k, v, attn, gate_up, act, last, part;
  std::vector<int> slots, sample_rows;
  std::vector<kernels::AttnSeq> attn_seqs;
  // Runs of rows of one role (kernels::RowRole), in row order: of the step's tokens, and of the
  // sampling rows.
  std::vector<RoleRun> token_runs, sample_runs;
};

// Tensor parallelism (src/parallel): sums a [n] buffer in place over the ranks, after the
// row-split o_proj and down_proj; empty when the decoder runs alone.
using Allreduce = std::function<void(float* data, size_t n)>;

class Transformer {
 public:
  // cfg and weights must outlive the decoder. Under tensor parallelism cfg and weights are the
  // rank's shard (its heads, its part of the MLP and of the vocabulary) and allreduce is set.
  Transformer(const ModelConfig& cfg, const ModelWeights& weights, Allreduce allreduce = {});

  int64_t kv_block_bytes(int block_size, kernels::DType kv_dtype) const;
  // prefault: write every page now (committed memory, no first-touch faults inside steps).
  void allocate_kv_cache(int num_blocks, int block_size, kernels::DType kv_dtype, bool prefault = false);
  void forward(const Batch& batch, Logits* out);

 private:
  void prepare_step(const Batch& batch);
  void attention_block(const LayerWeights& w, const kernels::KVLayer& kv, const Batch& batch);
  void mlp_block(const LayerWeights& w, int T);
  void split_qkv(int T);
  void project(const float* x, int T, const kernels::WeightView& merged, const std::vector<kernels::WeightView>& parts,
               const std::vector<float>& bias, float* y);
  void compute_logits(Logits* out);
  // kernels::matmul over rows of x, each run of rows by its role.
  void matmul(const float* x, const std::vector<RoleRun>& runs, const kernels::WeightView& w, const float* bias,
              float* y);

  const ModelConfig& cfg_;
  const ModelWeights& w_;
  Allreduce allreduce_;
  std::vector<float> inv_freq_;
  std::vector<AlignedBuffer> kv_storage_;  // K and V of each layer
  std::vector<kernels::KVLayer> kv_;
  int num_blocks_ = 0;
  StepScratch s_;
  OpProfile prof_;
};

}  // namespace nanovllm
