// The engine loop (see llm_engine.h): admission checks, one forward per step, sampling,
// stop conditions and incremental text.
#include "engine/llm_engine.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "nanovllm/error.h"
#include "engine/detokenizer.h"
#include "engine/progress.h"
#include "engine/sampler.h"

namespace nanovllm {

struct LLMEngine::RequestState {
  std::unique_ptr<IncrementalDetokenizer> detok;
  std::string text;        // output text so far; cut at the stop string once one appears
  size_t emitted_text = 0;  // bytes of `text` already handed out
  size_t max_stop_len = 0;
  bool counted = false;     // admission counted in stats
};

namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The end of `text` that is safe to hand out: not past `limit`, and not inside a UTF-8 character.
size_t utf8_floor(const std::string& text, size_t limit) {
  while (limit > 0 && limit < text.size() && (static_cast<unsigned char>(text[limit]) & 0xC0) == 0x80) --limit;
  return limit;
}

}  // namespace

LLMEngine::LLMEngine(Config config, std::unique_ptr<ModelRunner> runner,
                     std::shared_ptr<const Tokenizer> tokenizer)
    : config_(std::move(config)),
      runner_(std::move(runner)),
      tokenizer_(std::move(tokenizer)),
      seed_state_(std::random_device{}()) {
  config_.validate();
  NV_CHECK(runner_ != nullptr, "no model runner");
  const ModelInfo& info = runner_->info();
  eos_ids_ = info.eos_token_ids;
  if (eos_ids_.empty() && tokenizer_ && tokenizer_->eos_token_id()) eos_ids_.push_back(*tokenizer_->eos_token_id());
  max_model_len_ = config_.max_model_len > 0 ? config_.max_model_len : info.max_position_embeddings;
  if (max_model_len_ <= 0) throw Error("max_model_len is unknown: the model config has no max_position_embeddings; set it");
  size_kv_cache();
}

LLMEngine::~LLMEngine() = default;

// Blocks from the byte budget, capped at what max_num_seqs full-length sequences could use.
void LLMEngine::size_kv_cache() {
  const int bs = config_.block_size;
  const int64_t block_bytes = runner_->kv_block_bytes(bs);
  const int blocks_per_seq = (max_model_len_ + bs - 1) / bs;
  int64_t n = config_.num_kv_blocks;
  if (n == 0) {
    const int64_t budget = config_.kv_cache_bytes > 0
                               ? config_.kv_cache_bytes
                               : static_cast<int64_t>(config_.kv_cache_memory_fraction * runner_->kv_capacity_bytes());
    n = std::min<int64_t>(budget / std::max<int64_t>(block_bytes, 1),
                          static_cast<int64_t>(config_.max_num_seqs) * blocks_per_seq);
  }
  if (n < blocks_per_seq) {
    if (config_.max_model_len > 0) {
      std::ostringstream msg;
      msg << "the KV cache holds " << n * bs << " tokens (" << n << " blocks of " << bs
          << "), less than max_model_len=" << config_.max_model_len
          << "; give it more memory or lower max_model_len";
      throw Error(msg.str());
    }
    max_model_len_ = static_cast<int>(n * bs);  // the model's own limit does not fit: shrink it
    if (max_model_len_ < 2) throw Error("the KV-cache budget is too small for even one sequence");
  }
  runner_->allocate_kv_cache(static_cast<int>(n), bs);
  SchedulerConfig sc{config_.max_num_batched_tokens, config_.max_num_seqs, static_cast<int>(n), bs,
                     config_.enable_prefix_caching, config_.long_prefill_token_threshold};
  scheduler_ = std::make_unique<Scheduler>(sc);
}

SamplingParams LLMEngine::default_sampling_params() const {
  SamplingParams p;
  const GenerationDefaults& g = runner_->info().generation;
  if (g.temperature) p.temperature = *g.temperature;
  if (g.top_p) p.top_p = *g.top_p;
  if (g.top_k) p.top_k = *g.top_k;
  if (g.min_p) p.min_p = *g.min_p;
  if (g.repetition_penalty) p.repetition_penalty = *g.repetition_penalty;
  return p;
}

int64_t LLMEngine::add_request(std::string_view prompt, const SamplingParams& params) {
  if (!tokenizer_) throw Error("this engine has no tokenizer: pass token ids");
  return add_request(tokenizer_->encode(prompt, true), params);
}

int64_t LLMEngine::add_request(std::vector<int> ids, const SamplingParams& params) {
  params.validate();
  const ModelInfo& info = runner_->info();
  if (ids.empty()) {
    if (!info.bos_token_id) throw Error("empty prompt, and the model has no BOS token to start from");
    ids.push_back(*info.bos_token_id);
  }
  for (int t : ids) {
    if (t < 0 || t >= info.vocab_size) {
      throw Error("prompt token id " + std::to_string(t) + " is outside the vocabulary [0, " +
                  std::to_string(info.vocab_size) + ")");
    }
  }
  for (const auto& [t, bias] : params.logit_bias) {
    if (t >= info.vocab_size) {
      throw Error("logit_bias token id " + std::to_string(t) + " is outside the vocabulary [0, " +
                  std::to_string(info.vocab_size) + ")");
    }
  }
  if (static_cast<int>(ids.size()) >= max_model_len_) {
    throw Error("the prompt is " + std::to_string(ids.size()) + " tokens long; the context holds " +
                std::to_string(max_model_len_) + " (max_model_len), prompt and new tokens together");
  }
  if (!params.stop.empty() && !tokenizer_) throw Error("stop strings need a tokenizer");
  std::unique_ptr<Constraint> constraint;
  if (params.structured_outputs.active()) {
    if (!compiler_) throw Error("structured outputs are not available: this engine has no grammar compiler (no tokenizer?)");
    constraint = compiler_->compile(params.structured_outputs);  // throws Error naming what is invalid
  }
  const uint64_t seed = params.seed ? *params.seed : splitmix64(seed_state_);
  const int64_t id = next_id_++;
  auto state = std::make_unique<RequestState>();
  if (tokenizer_) {
    state->detok = std::make_unique<IncrementalDetokenizer>(*tokenizer_, ids, params.skip_special_tokens);
  }
  // Text that a stop string could still claim is held back, unless the stop string stays in.
  if (!params.include_stop_str_in_output)
    for (const std::string& s : params.stop) state->max_stop_len = std::max(state->max_stop_len, s.size());
  requests_.emplace(id, std::move(state));
  auto seq = std::make_unique<Sequence>(id, std::move(ids), params, seed);
  seq->constraint = std::move(constraint);
  scheduler_->add(std::move(seq));
  return id;
}

bool LLMEngine::abort(int64_t request_id) {
  std::unique_ptr<Sequence> seq = scheduler_->finish(request_id, FinishReason::kAbort);
  if (!seq) return false;
  StepOutput out;
  out.request_id = request_id;
  out.finished = true;
  out.finish_reason = FinishReason::kAbort;
  out.num_prompt_tokens = seq->num_prompt_tokens();
  out.num_cached_tokens = seq->num_cached_prompt_tokens;
  out.num_output_tokens = seq->num_output_tokens();
  aborted_.push_back(std::move(out));
  requests_.erase(request_id);
  return true;
}

std::vector<StepOutput> LLMEngine::step() {
  std::vector<StepOutput> outputs = std::move(aborted_);
  aborted_.clear();
  ScheduledStep step = scheduler_->schedule();
  if (step.empty()) {
    NV_CHECK(!scheduler_->has_unfinished(), "requests are waiting but none could be scheduled");
    return outputs;
  }
  std::future<void> masks = start_masks(step);
  runner_->forward(step.batch, &logits_);
  if (masks.valid()) masks.get();  // rethrows a mask failure
  const std::vector<int> sampled = sample_all(step);
  scheduler_->postprocess(step, sampled);
  record_step(step);
  for (size_t i = 0; i < step.seqs.size(); ++i) {
    if (!step.batch.seqs[i].sample) continue;
    Sequence& seq = *step.seqs[i];
    RequestState& state = *requests_.at(seq.id());
    if (seq.constraint) advance_grammar(seq);
    check_stop(seq, state);
    outputs.push_back(emit(seq, 1));
    if (seq.finish_reason != FinishReason::kNone) {
      const int64_t id = seq.id();
      scheduler_->finish(id, seq.finish_reason);
      requests_.erase(id);
    }
  }
  return outputs;
}

// The grammar masks of this step's constrained samplers, computed on a helper thread while
// the forward runs (each mask costs up to ~1 ms on a 152k vocabulary; the forward, many).
// Each sequence's mask depends only on tokens already sampled, so nothing waits on the forward.
std::future<void> LLMEngine::start_masks(const ScheduledStep& step) {
  std::vector<Sequence*> todo;
  for (size_t i = 0; i < step.seqs.size(); ++i) {
    if (step.batch.seqs[i].sample && step.seqs[i]->constraint) todo.push_back(step.seqs[i]);
  }
  if (todo.empty()) return {};
  const size_t words = (static_cast<size_t>(runner_->info().vocab_size) + 31) / 32;
  return std::async(std::launch::async, [todo = std::move(todo), words] {
    for (Sequence* seq : todo) {
      seq->allowed.resize(words);
      seq->constraint->fill_mask(seq->allowed);
    }
  });
}

// The grammar follows the sampled token. A refusal cannot happen with the mask applied; if
// it does (a library error), the request ends rather than continuing unconstrained.
void LLMEngine::advance_grammar(Sequence& seq) {
  try {
    seq.constraint->accept(seq.last_token());
  } catch (const Error& e) {
    std::fprintf(stderr, "nanovllm: request %lld: %s\n", static_cast<long long>(seq.id()), e.what());
    seq.finish_reason = FinishReason::kAbort;
  }
}

std::vector<int> LLMEngine::sample_all(const ScheduledStep& step) {
  NV_CHECK(logits_.rows == step.batch.num_sampled(), "runner returned the wrong number of logit rows");
  std::vector<int> sampled;
  int row = 0;
  for (size_t i = 0; i < step.seqs.size(); ++i) {
    if (!step.batch.seqs[i].sample) continue;
    Sequence& seq = *step.seqs[i];
    TokenLogprob lp;
    std::span<float> logits(logits_.row(row++), logits_.vocab);
    sampled.push_back(sample_token(logits, seq, eos_ids_, &lp));
    if (seq.params().logprobs) seq.logprobs.push_back(std::move(lp));
  }
  return sampled;
}

// Decides whether the token just appended ends the request, and extends its text. As in vLLM,
// the token that ends it (EOS, a stop_token_ids hit) adds no text and a stop string is cut
// off, unless include_stop_str_in_output; the token ids keep the stop token either way.
void LLMEngine::check_stop(Sequence& seq, RequestState& state) {
  const SamplingParams& p = seq.params();
  const int token = seq.last_token();
  const bool is_eos = std::find(eos_ids_.begin(), eos_ids_.end(), token) != eos_ids_.end();
  if (is_eos && !p.ignore_eos) {
    seq.finish_reason = FinishReason::kStop;
  } else if (std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), token) != p.stop_token_ids.end()) {
    seq.finish_reason = FinishReason::kStop;
    seq.stop_reason = std::to_string(token);
  }
  const bool stop_token = seq.finish_reason == FinishReason::kStop;
  const size_t old_len = state.text.size();
  if (state.detok && (!stop_token || p.include_stop_str_in_output)) state.text += state.detok->push(token);
  // As in vLLM: no stop string before min_tokens.
  if (!stop_token && seq.num_output_tokens() >= p.min_tokens) {
    size_t best = std::string::npos;
    for (const std::string& s : p.stop) {
      const size_t from = old_len >= s.size() ? old_len - s.size() + 1 : 0;
      const size_t pos = state.text.find(s, from);
      if (pos < best) {
        best = pos;
        seq.stop_reason = s;
      }
    }
    if (best != std::string::npos) {
      // Never handed out: the text was held back (or, when it stays in, ends with it).
      state.text.resize(p.include_stop_str_in_output ? best + seq.stop_reason.size() : best);
      seq.finish_reason = FinishReason::kStop;
      return;
    }
  }
  // A complete grammar allows nothing more (an EOS it allowed was caught above).
  if (seq.finish_reason == FinishReason::kNone && seq.constraint && seq.constraint->is_stopped()) {
    seq.finish_reason = FinishReason::kStop;
  }
  if (seq.finish_reason == FinishReason::kNone &&
      (seq.num_output_tokens() >= p.max_tokens || seq.num_tokens() >= max_model_len_)) {
    seq.finish_reason = FinishReason::kLength;
  }
  if (seq.finish_reason != FinishReason::kNone && state.detok) state.text += state.detok->flush();
}

// The delta of this step. While a stop string could still complete, its possible start is
// held back, so that text already streamed never has to be taken back.
StepOutput LLMEngine::emit(Sequence& seq, int num_new_tokens) {
  RequestState& state = *requests_.at(seq.id());
  StepOutput out;
  out.request_id = seq.id();
  const std::vector<int>& tokens = seq.token_ids();
  out.new_token_ids.assign(tokens.end() - num_new_tokens, tokens.end());
  if (seq.params().logprobs) {
    out.new_logprobs.assign(seq.logprobs.end() - num_new_tokens, seq.logprobs.end());
  }
  out.finished = seq.finish_reason != FinishReason::kNone;
  size_t end = state.text.size();
  if (!out.finished && state.max_stop_len > 1) {
    end = utf8_floor(state.text, end > state.max_stop_len - 1 ? end - (state.max_stop_len - 1) : 0);
  }
  if (end > state.emitted_text) {
    out.new_text = state.text.substr(state.emitted_text, end - state.emitted_text);
    state.emitted_text = end;
  }
  out.finish_reason = seq.finish_reason;
  out.stop_reason = seq.stop_reason;
  out.num_prompt_tokens = seq.num_prompt_tokens();
  out.num_cached_tokens = seq.num_cached_prompt_tokens;
  out.num_output_tokens = seq.num_output_tokens();
  return out;
}

void LLMEngine::record_step(const ScheduledStep& step) {
  ++stats_.num_steps;
  for (size_t i = 0; i < step.seqs.size(); ++i) {
    const Sequence& seq = *step.seqs[i];
    const SeqSlice& slice = step.batch.seqs[i];
    const bool decode = slice.num_new == 1 && slice.num_cached >= seq.num_prompt_tokens();
    (decode ? stats_.decode_tokens : stats_.prefill_tokens) += slice.num_new;
    RequestState& state = *requests_.at(seq.id());
    if (!state.counted) {
      state.counted = true;
      stats_.prompt_tokens += seq.num_prompt_tokens();
      stats_.cached_prompt_tokens += seq.num_cached_prompt_tokens;
    }
  }
}

EngineStats LLMEngine::stats() const {
  EngineStats s = stats_;
  s.num_running = scheduler_->num_running();
  s.num_waiting = scheduler_->num_waiting();
  s.kv_blocks_total = scheduler_->block_manager().num_blocks();
  s.kv_blocks_free = scheduler_->block_manager().num_free_blocks();
  s.num_preemptions = scheduler_->num_preemptions();
  return s;
}

std::vector<RequestOutput> LLMEngine::generate(const std::vector<std::vector<int>>& prompts,
                                               const std::vector<SamplingParams>& params,
                                               bool show_progress) {
  NV_CHECK(params.size() == 1 || params.size() == prompts.size(), "one SamplingParams, or one per prompt");
  std::vector<RequestOutput> results(prompts.size());
  std::unordered_map<int64_t, size_t> index;
  for (size_t i = 0; i < prompts.size(); ++i) {
    int64_t id = 0;
    try {
      id = add_request(prompts[i], params.size() == 1 ? params[0] : params[i]);
    } catch (...) {  // all or nothing: no half of the batch left running unseen
      const size_t pending_aborts = aborted_.size();
      for (const auto& [queued, unused] : index) abort(queued);
      aborted_.resize(pending_aborts);
      throw;
    }
    index[id] = i;
    results[i].request_id = id;
    results[i].prompt_token_ids = scheduler_->find(id)->token_ids();
  }
  ProgressBar bar(static_cast<int>(prompts.size()), show_progress);
  const EngineStats start = stats_;
  int done = 0;
  while (done < static_cast<int>(prompts.size())) {
    for (StepOutput& o : step()) {
      auto it = index.find(o.request_id);
      if (it == index.end()) continue;  // a request added by someone else
      results[it->second].append(o);
      if (o.finished) ++done;
    }
    bar.update(done, stats_.prefill_tokens - start.prefill_tokens, stats_.decode_tokens - start.decode_tokens);
  }
  return results;
}

}  // namespace nanovllm
