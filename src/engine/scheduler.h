// Continuous batching: decides, each step, which tokens of which sequences the model computes.
#pragma once

#include <deque>
#include <memory>
#include <vector>

#include "engine/batch.h"
#include "engine/block_manager.h"
#include "engine/sequence.h"

namespace nanovllm {

struct SchedulerConfig {
  int max_num_batched_tokens = 2048;
  int max_num_seqs = 256;
  int num_blocks = 0;
  int block_size = 16;
  bool enable_prefix_caching = true;
  // > 0: at most this many tokens of one sequence per step (vLLM's
  // long_prefill_token_threshold), so a long prompt is prefilled in chunks across steps
  // while the running streams keep decoding every step; 0 = only the step budget limits it.
  int long_prefill_token_threshold = 0;
};

// One step's work: the model input and the sequences its slices belong to (same order).
struct ScheduledStep {
  Batch batch;
  std::vector<Sequence*> seqs;
  bool empty() const { return seqs.empty(); }
};

class Scheduler {
 public:
  explicit Scheduler(const SchedulerConfig& config);

  void add(std::unique_ptr<Sequence> seq);
  bool has_unfinished() const { return !waiting_.empty() || !running_.empty(); }
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  int num_running() const { return static_cast<int>(running_.size()); }

  // Fills the token budget: running sequences first (decodes, then unfinished prefill
  // chunks), then new sequences from the waiting queue. Preempts by recompute when the KV
  // pool runs out.
  ScheduledStep schedule();

  // After the forward: advances num_computed, registers newly full blocks in the prefix cache
  // and appends the sampled tokens (one per sampling slice, in slice order).
  void postprocess(const ScheduledStep& step, const std::vector<int>& sampled);

  // Ends a request (stop condition met or aborted) and returns its blocks to the pool.
  std::unique_ptr<Sequence> finish(int64_t seq_id, FinishReason reason);

  Sequence* find(int64_t seq_id);
  const BlockManager& block_manager() const { return blocks_; }
  int64_t num_preemptions() const { return num_preemptions_; }
  // Every live sequence; for invariant checks.
  std::vector<const Sequence*> live_sequences() const;

 private:
  bool schedule_running(Sequence& seq, int& budget, ScheduledStep& step);
  bool schedule_waiting(Sequence& seq, int& budget, ScheduledStep& step);
  void preempt(Sequence& seq);
  void add_slice(Sequence& seq, int num_new, ScheduledStep& step);
  int chunk_size(int num_uncomputed, int budget) const;

  SchedulerConfig config_;
  BlockManager blocks_;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;  // in admission order
  int64_t num_preemptions_ = 0;
};

}  // namespace nanovllm
