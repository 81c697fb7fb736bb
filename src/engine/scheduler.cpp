// Continuous batching with chunked prefill mixed with decodes, and preemption by recompute.
#include "engine/scheduler.h"

#include <algorithm>

#include "nanovllm/error.h"

namespace nanovllm {
namespace {

bool contains(const std::vector<Sequence*>& seqs, const Sequence* seq) {
  return std::find(seqs.begin(), seqs.end(), seq) != seqs.end();
}

}  // namespace

Scheduler::Scheduler(const SchedulerConfig& config)
    : config_(config),
      blocks_(config.num_blocks, config.block_size, config.enable_prefix_caching) {}

void Scheduler::add(std::unique_ptr<Sequence> seq) {
  seq->status = SeqStatus::kWaiting;
  waiting_.push_back(std::move(seq));
}

ScheduledStep Scheduler::schedule() {
  ScheduledStep step;
  step.batch.block_size = config_.block_size;
  int budget = config_.max_num_batched_tokens;
  // Decodes first so that a long prompt never stalls the running streams, then the
  // unfinished prefills of running sequences, then new admissions.
  for (bool decodes : {true, false}) {
    for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
      Sequence& seq = *running_[i];
      if ((seq.num_uncomputed() == 1) != decodes || contains(step.seqs, &seq)) continue;
      if (!schedule_running(seq, budget, step)) break;
    }
  }
  while (!waiting_.empty() && budget > 0 &&
         static_cast<int>(running_.size()) < config_.max_num_seqs) {
    if (!schedule_waiting(*waiting_.front(), budget, step)) break;
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  return step;
}

// Returns false when `seq` itself had to be preempted (nothing else was left to evict).
bool Scheduler::schedule_running(Sequence& seq, int& budget, ScheduledStep& step) {
  const int n = chunk_size(seq.num_uncomputed(), budget);
  while (!blocks_.can_grow(seq, seq.num_computed + n)) {
    Sequence* victim = nullptr;
    for (auto it = running_.rbegin(); it != running_.rend() && !victim; ++it) {
      if (it->get() != &seq && !contains(step.seqs, it->get())) victim = it->get();
    }
    preempt(victim ? *victim : seq);
    if (!victim) return false;
  }
  blocks_.grow(seq, seq.num_computed + n);
  add_slice(seq, n, step);
  budget -= n;
  return true;
}

// Returns false when the head of the queue does not fit this step (FIFO: nothing overtakes it).
bool Scheduler::schedule_waiting(Sequence& seq, int& budget, ScheduledStep& step) {
  const std::vector<int> cached = blocks_.find_cached_prefix(seq);
  const int num_cached = static_cast<int>(cached.size()) * config_.block_size;
  const int n = chunk_size(seq.num_tokens() - num_cached, budget);
  if (!blocks_.can_allocate(cached, num_cached + n)) return false;
  blocks_.allocate(seq, cached, num_cached + n);
  if (!seq.admitted_before) {
    seq.num_cached_prompt_tokens = std::min(num_cached, seq.num_prompt_tokens());
    seq.admitted_before = true;
  }
  seq.status = SeqStatus::kRunning;
  add_slice(seq, n, step);
  budget -= n;
  return true;
}

// Tokens of one sequence computed this step: what it has left, within the step's budget and
// the long-prefill cap. The cap bounds the step's time, and so the wait of every stream
// decoding beside the prompt, to about `threshold` tokens of prefill.
int Scheduler::chunk_size(int num_uncomputed, int budget) const {
  const int cap = config_.long_prefill_token_threshold;
  return std::min({num_uncomputed, budget, cap > 0 ? cap : budget});
}

// Recompute-style preemption: the KV goes back to the pool (still hashed, so the
// re-admission will likely hit the prefix cache); the tokens stay.
void Scheduler::preempt(Sequence& seq) {
  auto it = std::find_if(running_.begin(), running_.end(),
                         [&](const auto& p) { return p.get() == &seq; });
  NV_CHECK(it != running_.end(), "preempting a sequence that is not running");
  blocks_.free(seq);
  seq.status = SeqStatus::kWaiting;
  waiting_.push_front(std::move(*it));
  running_.erase(it);
  ++num_preemptions_;
}

void Scheduler::add_slice(Sequence& seq, int num_new, ScheduledStep& step) {
  NV_CHECK(num_new > 0, "empty slice");
  SeqSlice slice;
  slice.seq_id = seq.id();
  slice.num_cached = seq.num_computed;
  slice.num_new = num_new;
  slice.num_prompt = seq.num_prompt_tokens();
  slice.sample = seq.num_computed + num_new == seq.num_tokens();
  slice.block_table = seq.block_table;
  const std::vector<int>& tokens = seq.token_ids();
  for (int p = seq.num_computed; p < seq.num_computed + num_new; ++p) {
    step.batch.token_ids.push_back(tokens[p]);
    step.batch.positions.push_back(p);
  }
  step.batch.seqs.push_back(slice);
  step.seqs.push_back(&seq);
}

void Scheduler::postprocess(const ScheduledStep& step, const std::vector<int>& sampled) {
  size_t next = 0;
  for (size_t i = 0; i < step.seqs.size(); ++i) {
    Sequence& seq = *step.seqs[i];
    const SeqSlice& slice = step.batch.seqs[i];
    seq.num_computed += slice.num_new;
    blocks_.register_computed(seq);
    if (slice.sample) {
      NV_CHECK(next < sampled.size(), "fewer sampled tokens than sampling slices");
      seq.append_token(sampled[next++]);
    }
  }
  NV_CHECK(next == sampled.size(), "more sampled tokens than sampling slices");
}

std::unique_ptr<Sequence> Scheduler::finish(int64_t seq_id, FinishReason reason) {
  std::unique_ptr<Sequence> out;
  auto match = [&](const auto& p) { return p->id() == seq_id; };
  if (auto it = std::find_if(running_.begin(), running_.end(), match); it != running_.end()) {
    out = std::move(*it);
    running_.erase(it);
  } else if (auto wit = std::find_if(waiting_.begin(), waiting_.end(), match); wit != waiting_.end()) {
    out = std::move(*wit);
    waiting_.erase(wit);
  } else {
    return nullptr;
  }
  blocks_.free(*out);
  out->status = SeqStatus::kFinished;
  out->finish_reason = reason;
  return out;
}

Sequence* Scheduler::find(int64_t seq_id) {
  for (auto& p : running_) if (p->id() == seq_id) return p.get();
  for (auto& p : waiting_) if (p->id() == seq_id) return p.get();
  return nullptr;
}

std::vector<const Sequence*> Scheduler::live_sequences() const {
  std::vector<const Sequence*> out;
  for (const auto& p : running_) out.push_back(p.get());
  for (const auto& p : waiting_) out.push_back(p.get());
  return out;
}

}  // namespace nanovllm
