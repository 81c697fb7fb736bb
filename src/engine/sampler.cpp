// Sampling: logit bias, penalties, masks, greedy or temperature / min-p / top-k / top-p with a per-request
// generator. Everything is O(vocab) except top-p, which sorts only as much as it needs.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>
#include <vector>

#include "engine/sequence.h"

namespace nanovllm {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// OpenAI's logit_bias: added to the model's logits, so +100 all but forces a token and -100
// all but bans it. Ids outside this row were refused by LLMEngine::add_request.
void apply_logit_bias(std::span<float> logits, const SamplingParams& p) {
  for (const auto& [token, bias] : p.logit_bias) {
    if (token < static_cast<int>(logits.size())) logits[token] += bias;
  }
}

void apply_penalties(std::span<float> logits, const Sequence& seq) {
  const SamplingParams& p = seq.params();
  const std::vector<int>& tokens = seq.token_ids();
  const int vocab = static_cast<int>(logits.size());
  if (p.repetition_penalty != 1.0f) {
    std::vector<bool> seen(vocab, false);
    for (int t : tokens) {
      if (t < 0 || t >= vocab || seen[t]) continue;
      seen[t] = true;
      float& l = logits[t];
      l = l > 0 ? l / p.repetition_penalty : l * p.repetition_penalty;
    }
  }
  if (p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f) {
    std::unordered_map<int, int> counts;
    for (size_t i = seq.num_prompt_tokens(); i < tokens.size(); ++i) ++counts[tokens[i]];
    for (const auto& [t, n] : counts) {
      if (t < 0 || t >= vocab) continue;
      logits[t] -= p.frequency_penalty * static_cast<float>(n) + p.presence_penalty;
    }
  }
}

void mask_stop_tokens(std::span<float> logits, const Sequence& seq, std::span<const int> eos_ids) {
  const SamplingParams& p = seq.params();
  if (seq.num_output_tokens() >= p.min_tokens) return;
  const int vocab = static_cast<int>(logits.size());
  auto mask = [&](int t) { if (t >= 0 && t < vocab) logits[t] = kNegInf; };
  if (!p.ignore_eos) for (int t : eos_ids) mask(t);
  for (int t : p.stop_token_ids) mask(t);
}

// Structured output: every token the grammar does not allow next is impossible.
void apply_grammar_mask(std::span<float> logits, std::span<const uint32_t> allowed) {
  for (size_t t = 0; t < logits.size(); ++t) {
    if (!mask_allows(allowed, static_cast<int>(t))) logits[t] = kNegInf;
  }
}

// The first token the grammar allows; -1 when it allows none.
int first_allowed(std::span<const uint32_t> allowed, int vocab) {
  for (int t = 0; t < vocab; ++t)
    if (mask_allows(allowed, t)) return t;
  return -1;
}

// The first maximum, skipping NaN (std::max_element would get stuck on a leading NaN); the
// last index when every logit is NaN. Two passes: the maximum over eight independent running
// maxima, then the first position holding it. A single running index is one long chain of
// dependent compares: ~0.14 ms per row of a 152k vocabulary, ~2 ms (1.3 %) of a batch-16 step.
int argmax(std::span<const float> logits) {
  constexpr int kLanes = 8;
  const size_t n = logits.size();
  float m[kLanes];
  std::fill(m, m + kLanes, kNegInf);
  size_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) m[j] = logits[i + j] > m[j] ? logits[i + j] : m[j];
  for (; i < n; ++i) m[0] = logits[i] > m[0] ? logits[i] : m[0];
  const float top = *std::max_element(m, m + kLanes);
  for (size_t t = 0; t < n; ++t)
    if (logits[t] == top) return static_cast<int>(t);
  return n > 0 ? static_cast<int>(n - 1) : 0;  // all NaN
}

float log_sum_exp(std::span<const float> x) {
  const float m = *std::max_element(x.begin(), x.end());
  double sum = 0;
  for (float v : x) sum += std::exp(static_cast<double>(v - m));
  return m + static_cast<float>(std::log(sum));
}

void fill_logprob(std::span<const float> raw, int token, int top_n, TokenLogprob* out) {
  const float lse = log_sum_exp(raw);
  out->token_id = token;
  out->logprob = raw[token] - lse;
  out->top.clear();
  top_n = std::min<int>(top_n, static_cast<int>(raw.size()));
  if (top_n <= 0) return;
  std::vector<int> idx(raw.size());
  std::iota(idx.begin(), idx.end(), 0);
  auto better = [&](int a, int b) { return raw[a] > raw[b] || (raw[a] == raw[b] && a < b); };
  std::partial_sort(idx.begin(), idx.begin() + top_n, idx.end(), better);
  for (int i = 0; i < top_n; ++i) out->top.emplace_back(idx[i], raw[idx[i]] - lse);
}

struct Candidate {
  int token;
  float weight;  // exp(logit / T - max), unnormalised probability
};

// NaN and -inf logits are never candidates; +inf ones, if any, share all the mass.
std::vector<Candidate> softmax_candidates(std::span<const float> logits, float temperature) {
  const float inv_t = 1.0f / temperature;
  const float top = logits[argmax(logits)];
  const float m = top * inv_t;
  std::vector<Candidate> c;
  c.reserve(logits.size());
  for (size_t t = 0; t < logits.size(); ++t) {
    if (!(logits[t] > kNegInf)) continue;
    if (std::isinf(top)) {  // exp(inf - inf) would be NaN
      if (logits[t] == top) c.push_back({static_cast<int>(t), 1.0f});
    } else {
      c.push_back({static_cast<int>(t), std::exp(logits[t] * inv_t - m)});
    }
  }
  return c;
}

bool heavier(const Candidate& a, const Candidate& b) {
  return a.weight > b.weight || (a.weight == b.weight && a.token < b.token);
}

// Keeps the smallest most-likely set whose mass reaches top_p, sorting only a growing head.
void keep_top_p(std::vector<Candidate>& c, float top_p) {
  double total = 0;
  for (const Candidate& x : c) total += x.weight;
  for (size_t head = std::min<size_t>(256, c.size());; head = std::min(head * 4, c.size())) {
    std::partial_sort(c.begin(), c.begin() + head, c.end(), heavier);
    double cum = 0;
    for (size_t i = 0; i < head; ++i) {
      cum += c[i].weight;
      if (cum >= top_p * total) {
        c.resize(i + 1);
        return;
      }
    }
    if (head == c.size()) return;
  }
}

int draw(const std::vector<Candidate>& c, double u) {
  double total = 0;
  for (const Candidate& x : c) total += x.weight;
  const double target = u * total;
  double cum = 0;
  for (const Candidate& x : c) {
    cum += x.weight;
    if (cum > target) return x.token;
  }
  return c.back().token;  // u * total rounded up to the full mass
}

int sample_random(std::span<const float> logits, Sequence& seq) {
  const SamplingParams& p = seq.params();
  std::vector<Candidate> c = softmax_candidates(logits, p.temperature);
  if (c.empty()) return argmax(logits);  // everything masked: nothing better to do
  if (p.min_p > 0.0f) {  // the most likely candidate has weight 1
    std::erase_if(c, [&](const Candidate& x) { return x.weight < p.min_p; });
  }
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < c.size()) {
    std::nth_element(c.begin(), c.begin() + p.top_k, c.end(), heavier);
    c.resize(p.top_k);
    std::sort(c.begin(), c.end(), heavier);
  }
  if (p.top_p < 1.0f) keep_top_p(c, p.top_p);
  return draw(c, seq.next_uniform());
}

}  // namespace

int sample_token(std::span<float> logits, Sequence& seq, std::span<const int> eos_ids,
                 TokenLogprob* logprob) {
  const SamplingParams& p = seq.params();
  // As in vLLM, the grammar's mask comes first: the logprobs are those of the allowed tokens.
  if (seq.constraint) apply_grammar_mask(logits, seq.allowed);
  std::vector<float> raw;
  if (p.logprobs && logprob) raw.assign(logits.begin(), logits.end());
  apply_logit_bias(logits, p);
  apply_penalties(logits, seq);
  mask_stop_tokens(logits, seq, eos_ids);
  int token = p.temperature == 0.0f ? argmax(logits) : sample_random(logits, seq);
  // The grammar wins over min_tokens and penalties: when they left no allowed token (it wants
  // to end, min_tokens forbids EOS), the output still follows the grammar.
  if (seq.constraint && !mask_allows(seq.allowed, token)) {
    const int allowed = first_allowed(seq.allowed, static_cast<int>(logits.size()));
    if (allowed >= 0) token = allowed;
  }
  if (p.logprobs && logprob) fill_logprob(raw, token, *p.logprobs, logprob);
  return token;
}

}  // namespace nanovllm
