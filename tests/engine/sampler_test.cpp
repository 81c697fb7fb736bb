// Sampler: greedy, masks, penalties, filters and per-request seeded draws.
#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <set>

#include "engine/sequence.h"
#include "nanovllm/config.h"

namespace nanovllm {
namespace {

Sequence seq_with(SamplingParams p, std::vector<int> prompt = {5}, uint64_t seed = 1) {
  return Sequence(0, std::move(prompt), p, seed);
}

SamplingParams greedy() {
  SamplingParams p;
  p.temperature = 0.0f;
  return p;
}

TEST(Sampler, GreedyTakesTheFirstMaximum) {
  std::vector<float> logits = {0.1f, 2.0f, -1.0f, 2.0f};
  Sequence s = seq_with(greedy());
  EXPECT_EQ(sample_token(logits, s, {}, nullptr), 1);
}

TEST(Sampler, MinTokensMasksEosAndStopTokens) {
  SamplingParams p = greedy();
  p.min_tokens = 2;
  p.stop_token_ids = {2};
  Sequence s = seq_with(p);
  std::vector<float> logits = {0.0f, 5.0f, 4.0f, 3.0f};
  const int eos[] = {1};
  EXPECT_EQ(sample_token(logits, s, eos, nullptr), 3);
  s.append_token(3);
  s.append_token(3);  // two outputs now: eos allowed again
  std::vector<float> again = {0.0f, 5.0f, 4.0f, 3.0f};
  EXPECT_EQ(sample_token(again, s, eos, nullptr), 1);
}

TEST(Sampler, IgnoreEosStillMasksNothingButStops) {
  SamplingParams p = greedy();
  p.min_tokens = 3;
  p.ignore_eos = true;
  Sequence s = seq_with(p);
  std::vector<float> logits = {0.0f, 5.0f, 4.0f};
  const int eos[] = {1};
  EXPECT_EQ(sample_token(logits, s, eos, nullptr), 1);  // eos is an ordinary token then
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegative) {
  SamplingParams p = greedy();
  p.repetition_penalty = 2.0f;
  Sequence s = seq_with(p, {0, 2});
  std::vector<float> logits = {3.0f, 2.5f, -1.0f};
  sample_token(logits, s, {}, nullptr);
  EXPECT_FLOAT_EQ(logits[0], 1.5f);
  EXPECT_FLOAT_EQ(logits[1], 2.5f);
  EXPECT_FLOAT_EQ(logits[2], -2.0f);
}

TEST(Sampler, FrequencyAndPresencePenaltiesCountOutputTokensOnly) {
  SamplingParams p = greedy();
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  Sequence s = seq_with(p, {1});
  s.append_token(0);
  s.append_token(0);
  std::vector<float> logits = {3.0f, 3.0f, 0.0f};
  sample_token(logits, s, {}, nullptr);
  EXPECT_FLOAT_EQ(logits[0], 3.0f - 1.0f - 0.25f);
  EXPECT_FLOAT_EQ(logits[1], 3.0f);  // prompt tokens are not penalised
}

TEST(Sampler, TopKOneIsGreedy) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 1;
  Sequence s = seq_with(p);
  for (int i = 0; i < 50; ++i) {
    std::vector<float> logits = {0.0f, 1.0f, 0.9f, -3.0f};
    EXPECT_EQ(sample_token(logits, s, {}, nullptr), 1);
  }
}

TEST(Sampler, TopPAndMinPKeepOnlyTheHead) {
  // probabilities 0.5, 0.3, 0.15, 0.05
  const std::vector<float> base = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  SamplingParams p;
  p.top_p = 0.75f;  // {0.5, 0.3} reach 0.8 >= 0.75
  Sequence s = seq_with(p);
  std::set<int> seen;
  for (int i = 0; i < 400; ++i) {
    std::vector<float> logits = base;
    seen.insert(sample_token(logits, s, {}, nullptr));
  }
  EXPECT_EQ(seen, (std::set<int>{0, 1}));
  SamplingParams q;
  q.min_p = 0.25f;  // keeps p >= 0.125: {0.5, 0.3, 0.15}
  Sequence t = seq_with(q);
  seen.clear();
  for (int i = 0; i < 400; ++i) {
    std::vector<float> logits = base;
    seen.insert(sample_token(logits, t, {}, nullptr));
  }
  EXPECT_EQ(seen, (std::set<int>{0, 1, 2}));
}

TEST(Sampler, DrawsFollowTheDistribution) {
  const std::vector<float> base = {std::log(0.6f), std::log(0.3f), std::log(0.1f)};
  SamplingParams p;
  Sequence s = seq_with(p, {5}, 42);
  std::map<int, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    std::vector<float> logits = base;
    ++counts[sample_token(logits, s, {}, nullptr)];
  }
  EXPECT_NEAR(counts[0] / double(n), 0.6, 0.02);
  EXPECT_NEAR(counts[1] / double(n), 0.3, 0.02);
  EXPECT_NEAR(counts[2] / double(n), 0.1, 0.02);
}

TEST(Sampler, SameSeedSameDraws) {
  SamplingParams p;
  p.temperature = 0.9f;
  Sequence a = seq_with(p, {5}, 7), b = seq_with(p, {5}, 7), c = seq_with(p, {5}, 8);
  std::vector<int> ra, rb, rc;
  for (int i = 0; i < 64; ++i) {
    std::vector<float> la(32), lb, lc;
    for (int v = 0; v < 32; ++v) la[v] = std::sin(v * 1.3f + i);
    lb = la;
    lc = la;
    ra.push_back(sample_token(la, a, {}, nullptr));
    rb.push_back(sample_token(lb, b, {}, nullptr));
    rc.push_back(sample_token(lc, c, {}, nullptr));
  }
  EXPECT_EQ(ra, rb);
  EXPECT_NE(ra, rc);
}

TEST(Sampler, LogprobsComeFromTheRawDistribution) {
  SamplingParams p = greedy();
  p.logprobs = 2;
  p.repetition_penalty = 3.0f;
  Sequence s = seq_with(p, {0});
  std::vector<float> logits = {2.0f, 1.0f, 0.0f};
  TokenLogprob lp;
  const int t = sample_token(logits, s, {}, &lp);
  EXPECT_EQ(t, 1);  // the penalty moved the choice ...
  const double lse = std::log(std::exp(2.0) + std::exp(1.0) + 1.0);
  EXPECT_NEAR(lp.logprob, 1.0 - lse, 1e-5);  // ... but logprobs are the model's
  ASSERT_EQ(lp.top.size(), 2u);
  EXPECT_EQ(lp.top[0].first, 0);
  EXPECT_NEAR(lp.top[0].second, 2.0 - lse, 1e-5);
}

TEST(Sampler, NanLogitsAreNeverChosen) {
  const float nan = std::nanf("");
  std::vector<float> logits = {nan, 1.0f, 3.0f, nan};
  Sequence g = seq_with(greedy());
  EXPECT_EQ(sample_token(logits, g, {}, nullptr), 2);
  SamplingParams p;
  p.temperature = 1.0f;
  Sequence s = seq_with(p);
  for (int i = 0; i < 50; ++i) {
    std::vector<float> l = {nan, 1.0f, 3.0f, nan};
    const int t = sample_token(l, s, {}, nullptr);
    EXPECT_TRUE(t == 1 || t == 2) << t;
  }
}

// Vocabulary-sized rows against a plain first-maximum loop: random positions of the maximum,
// ties, NaN, -inf, the maximum in the tail past the eight-way pass, all-NaN rows.
TEST(Sampler, GreedyMatchesAFirstMaximumLoopOnLargeRows) {
  const float nan = std::nanf(""), inf = std::numeric_limits<float>::infinity();
  auto first_max = [](const std::vector<float>& v) {
    int best = -1;
    for (int t = 0; t < static_cast<int>(v.size()); ++t)
      if (!std::isnan(v[t]) && (best < 0 || v[t] > v[best])) best = t;
    return best < 0 ? static_cast<int>(v.size()) - 1 : best;
  };
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.f, 3.f);
  Sequence g = seq_with(greedy());
  for (int n : {1, 7, 8, 9, 151936, 151939}) {
    for (int trial = 0; trial < 12; ++trial) {
      std::vector<float> v(n);
      for (float& x : v) x = d(rng);
      std::uniform_int_distribution<int> at(0, n - 1);
      for (int k = 0; k < n / 50; ++k) v[at(rng)] = nan;
      if (trial % 3 == 1) v[at(rng)] = v[at(rng)] = 100.f;  // a tie: the first one wins
      if (trial % 3 == 2) v[n - 1] = 50.f;                  // in the tail past the 8-way pass
      if (trial == 4) std::fill(v.begin(), v.end(), -inf);
      if (trial == 5) std::fill(v.begin(), v.end(), nan);
      if (trial == 6) v.assign(n, nan), v[n / 2] = -inf;
      std::vector<float> logits = v;
      EXPECT_EQ(sample_token(logits, g, {}, nullptr), first_max(v)) << "n " << n << " trial " << trial;
    }
  }
}

TEST(Sampler, InfiniteLogitTakesAllTheMass) {
  const float inf = std::numeric_limits<float>::infinity();
  SamplingParams p;
  p.temperature = 0.7f;
  Sequence s = seq_with(p);
  for (int i = 0; i < 20; ++i) {
    std::vector<float> l = {0.5f, inf, 2.0f, 1.0f};
    EXPECT_EQ(sample_token(l, s, {}, nullptr), 1);
  }
}

TEST(Sampler, LogitBiasIsAddedBeforeSampling) {
  SamplingParams p = greedy();
  p.logit_bias = {{0, 100.0f}};
  Sequence s = seq_with(p);
  std::vector<float> logits = {0.0f, 5.0f, 4.0f};
  EXPECT_EQ(sample_token(logits, s, {}, nullptr), 0);
  EXPECT_FLOAT_EQ(logits[0], 100.0f);
  p.logit_bias = {{1, -100.0f}, {2, -0.5f}};
  Sequence banned = seq_with(p);
  std::vector<float> l2 = {0.0f, 5.0f, 4.0f};
  EXPECT_EQ(sample_token(l2, banned, {}, nullptr), 2);
  EXPECT_FLOAT_EQ(l2[1], -95.0f);
  EXPECT_FLOAT_EQ(l2[2], 3.5f);
  // Sampled too: +100 takes all the mass at temperature 1, whatever the draw.
  p = SamplingParams{};
  p.logit_bias = {{3, 100.0f}};
  Sequence sampled = seq_with(p);
  for (int i = 0; i < 50; ++i) {
    std::vector<float> l = {1.0f, 2.0f, 3.0f, 0.0f};
    EXPECT_EQ(sample_token(l, sampled, {}, nullptr), 3);
  }
}

TEST(Sampler, LogprobsIgnoreTheLogitBias) {  // vLLM's default: raw model log-probabilities
  SamplingParams p = greedy();
  p.logprobs = 1;
  p.logit_bias = {{0, 100.0f}};
  Sequence s = seq_with(p);
  std::vector<float> logits = {0.0f, 1.0f};
  TokenLogprob lp;
  EXPECT_EQ(sample_token(logits, s, {}, &lp), 0);
  EXPECT_NEAR(lp.logprob, -std::log1p(std::exp(1.0f)), 1e-5);
  ASSERT_EQ(lp.top.size(), 1u);
  EXPECT_EQ(lp.top[0].first, 1);
}

TEST(SamplingParams, ValidationNamesTheField) {
  SamplingParams p;
  p.top_p = 0.0f;
  try {
    p.validate();
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("top_p"), std::string::npos);
  }
  p = SamplingParams{};
  p.max_tokens = 0;
  EXPECT_THROW(p.validate(), std::invalid_argument);
  p = SamplingParams{};
  p.temperature = -1;
  EXPECT_THROW(p.validate(), std::invalid_argument);
  p = SamplingParams{};
  p.stop = {""};
  EXPECT_THROW(p.validate(), std::invalid_argument);
  for (auto [token, bias] : {std::pair{-1, 1.0f}, {5, 100.5f}, {5, -101.0f}, {5, std::nanf("")}}) {
    p = SamplingParams{};
    p.logit_bias = {{token, bias}};
    try {
      p.validate();
      ADD_FAILURE() << token << ": " << bias;
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()).rfind("logit_bias", 0), 0u) << e.what();
    }
  }
  p = SamplingParams{};
  p.logit_bias = {{0, -100.0f}, {7, 100.0f}};
  EXPECT_NO_THROW(p.validate());
  EXPECT_NO_THROW(SamplingParams{}.validate());
}

TEST(Config, ValidationNamesTheField) {
  Config c;
  c.block_size = 0;
  EXPECT_THROW(c.validate(), std::invalid_argument);
  c = Config{};
  c.kv_cache_dtype = "f16";
  EXPECT_THROW(c.validate(), std::invalid_argument);
  // Lengths near INT_MAX would overflow the engine's block arithmetic (len + block_size - 1).
  c = Config{};
  c.max_model_len = 2147483647;
  EXPECT_THROW(c.validate(), std::invalid_argument);
  c.max_model_len = 1 << 30;
  EXPECT_NO_THROW(c.validate());
  EXPECT_NO_THROW(Config{}.validate());
}

}  // namespace
}  // namespace nanovllm
