// The engine loop: requests in, one scheduled forward per step, sampled tokens and text out.
#pragma once

#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/constraint.h"
#include "engine/model_runner.h"
#include "engine/scheduler.h"
#include "engine/tokenizer.h"
#include "nanovllm/config.h"
#include "nanovllm/outputs.h"
#include "nanovllm/sampling_params.h"

namespace nanovllm {

class IncrementalDetokenizer;

// Counters for progress bars, metrics and tests.
struct EngineStats {
  int num_running = 0;
  int num_waiting = 0;
  int kv_blocks_total = 0;
  int kv_blocks_free = 0;
  int64_t prompt_tokens = 0;         // prompt tokens of admitted requests
  int64_t cached_prompt_tokens = 0;  // of which served by the prefix cache
  int64_t prefill_tokens = 0;        // tokens computed in prefill chunks (incl. recompute)
  int64_t decode_tokens = 0;         // tokens computed by decodes
  int64_t num_preemptions = 0;
  int64_t num_steps = 0;
};

class LLMEngine {
 public:
  // tokenizer may be null: then prompts are token ids and outputs carry no text.
  LLMEngine(Config config, std::unique_ptr<ModelRunner> runner,
            std::shared_ptr<const Tokenizer> tokenizer);
  ~LLMEngine();

  // Validates and queues a request; throws nanovllm::Error / std::invalid_argument on bad
  // input (nothing is queued then). Returns the request id.
  int64_t add_request(std::vector<int> prompt_token_ids, const SamplingParams& params);
  int64_t add_request(std::string_view prompt, const SamplingParams& params);

  // One scheduled forward; returns a delta for every request that produced something
  // (and for requests aborted since the last step).
  std::vector<StepOutput> step();

  // Ends a request now; its blocks return to the pool. False when the id is unknown.
  bool abort(int64_t request_id);
  bool has_unfinished() const { return scheduler_->has_unfinished(); }

  // Runs the given prompts to completion (nano-vllm's LLM.generate), in prompt order.
  // A progress bar goes to stderr when it is a terminal and show_progress is set.
  std::vector<RequestOutput> generate(const std::vector<std::vector<int>>& prompts,
                                      const std::vector<SamplingParams>& params,
                                      bool show_progress = true);

  // SamplingParams{} overlaid with the model's generation_config.json defaults.
  SamplingParams default_sampling_params() const;

  // What turns a request's structured_outputs into its grammar (src/constraint/); without
  // one, such requests are refused.
  void set_constraint_compiler(std::shared_ptr<const ConstraintCompiler> compiler) { compiler_ = std::move(compiler); }
  const std::vector<int>& eos_ids() const { return eos_ids_; }

  EngineStats stats() const;
  const Config& config() const { return config_; }
  // The context this engine serves: the configured or model length, shrunk to the KV pool.
  int max_model_len() const { return max_model_len_; }
  const ModelInfo& model_info() const { return runner_->info(); }
  const Tokenizer* tokenizer() const { return tokenizer_.get(); }
  const Scheduler& scheduler() const { return *scheduler_; }

 private:
  struct RequestState;

  void size_kv_cache();
  std::future<void> start_masks(const ScheduledStep& step);
  std::vector<int> sample_all(const ScheduledStep& step);
  void advance_grammar(Sequence& seq);
  StepOutput emit(Sequence& seq, int num_new_tokens);
  void check_stop(Sequence& seq, RequestState& state);
  void record_step(const ScheduledStep& step);

  Config config_;
  std::unique_ptr<ModelRunner> runner_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::shared_ptr<const ConstraintCompiler> compiler_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unordered_map<int64_t, std::unique_ptr<RequestState>> requests_;
  std::vector<StepOutput> aborted_;
  std::vector<int> eos_ids_;
  int max_model_len_ = 0;
  Logits logits_;
  int64_t next_id_ = 0;
  uint64_t seed_state_;
  EngineStats stats_;
};

}  // namespace nanovllm
