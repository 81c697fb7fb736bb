// Grammar-constrained decoding in the engine, with a fake grammar: masks reach the sampler,
// the grammar follows exactly the output tokens (batching, chunked prefill, preemption), free
// requests in the same batch are untouched, and masks are computed off the engine thread.
#include <gtest/gtest.h>

#include <mutex>
#include <thread>

#include "engine/constraint.h"
#include "engine/llm_engine.h"
#include "fakes.h"
#include "nanovllm/error.h"

namespace nanovllm {
namespace {

using testing::FakeRunner;
using testing::FakeTokenizer;

constexpr int kVocab = 64;

// Allows tokens t with t % modulus == residue (never EOS), and stops after `length` tokens.
// Records what it saw, so tests can check it followed the output exactly.
struct FakeGrammarLog {
  std::mutex mu;
  std::vector<std::thread::id> mask_threads;
};

class FakeConstraint : public Constraint {
 public:
  FakeConstraint(int modulus, int residue, int length, FakeGrammarLog* log, std::vector<int>* accepted)
      : modulus_(modulus), residue_(residue), length_(length), log_(log), accepted_(accepted) {}
  void fill_mask(std::span<uint32_t> mask) override {
    std::fill(mask.begin(), mask.end(), 0u);
    for (int t = 0; t < kVocab; ++t)
      if (allows(t)) mask[t / 32] |= 1u << (t % 32);
    std::lock_guard<std::mutex> lock(log_->mu);
    log_->mask_threads.push_back(std::this_thread::get_id());
  }
  void accept(int token) override {
    if (!allows(token) || is_stopped()) throw Error("token " + std::to_string(token) + " refused");
    accepted_->push_back(token);
  }
  bool is_stopped() const override { return static_cast<int>(accepted_->size()) >= length_; }

 private:
  bool allows(int t) const { return t != testing::kFakeEos && t % modulus_ == residue_; }
  int modulus_, residue_, length_;
  FakeGrammarLog* log_;
  std::vector<int>* accepted_;
};

// spec.regex = "M R" (modulus, residue, and, after a space, a length: "M R L"); one accepted-token log per compile.
class FakeCompiler : public ConstraintCompiler {
 public:
  std::unique_ptr<Constraint> compile(const StructuredOutputs& spec) const override {
    if (spec.regex == "bad") throw Error("the regular expression is invalid: bad");
    int m = 2, r = 0, length = 1000;
    std::sscanf(spec.regex.c_str(), "%d %d %d", &m, &r, &length);
    accepted.push_back(std::make_unique<std::vector<int>>());
    return std::make_unique<FakeConstraint>(m, r, length, &log, accepted.back().get());
  }
  mutable FakeGrammarLog log;
  mutable std::vector<std::unique_ptr<std::vector<int>>> accepted;
};

std::unique_ptr<LLMEngine> make_engine(int blocks, std::shared_ptr<FakeCompiler> compiler) {
  Config c;
  c.num_kv_blocks = blocks;
  c.block_size = 4;
  c.max_num_batched_tokens = 16;  // long prompts are chunked
  auto e = std::make_unique<LLMEngine>(c, std::make_unique<FakeRunner>(kVocab, 256), std::make_shared<FakeTokenizer>());
  e->set_constraint_compiler(std::move(compiler));
  return e;
}

SamplingParams params(float temperature, int max_tokens, const std::string& regex = "", int length = 0) {
  SamplingParams p;
  p.temperature = temperature;
  p.seed = 7;
  p.max_tokens = max_tokens;
  p.ignore_eos = true;
  p.structured_outputs.regex = regex.empty() || length == 0 ? regex : regex + " " + std::to_string(length);
  return p;
}

std::vector<int> prompt(int n, int salt) {
  std::vector<int> p;
  for (int i = 0; i < n; ++i) p.push_back(2 + (i * 7 + salt) % (kVocab - 2));
  return p;
}

TEST(Constraint, MaskedTokensOnlyAndTheGrammarEndsTheRequest) {
  auto compiler = std::make_shared<FakeCompiler>();
  auto engine = make_engine(64, compiler);
  for (float temperature : {0.0f, 1.0f}) {
    const auto out = engine->generate({prompt(5, 1)}, {params(temperature, 50, "3 1", 9)}, false);
    ASSERT_EQ(out[0].token_ids.size(), 9u);  // the grammar stopped it, not max_tokens
    EXPECT_EQ(out[0].finish_reason, FinishReason::kStop);
    for (int t : out[0].token_ids) EXPECT_EQ(t % 3, 1) << t;
    EXPECT_EQ(*compiler->accepted.back(), out[0].token_ids);
  }
}

TEST(Constraint, FreeRequestsInAMixedBatchGetTheirUnconstrainedIds) {
  auto compiler = std::make_shared<FakeCompiler>();
  auto alone = make_engine(64, compiler);
  std::vector<std::vector<int>> free_prompts = {prompt(6, 2), prompt(23, 3)};  // 23: chunked prefill
  const auto reference = alone->generate(free_prompts, {params(1.0f, 20)}, false);
  auto mixed = make_engine(64, compiler);
  std::vector<std::vector<int>> prompts = {prompt(6, 2), prompt(9, 4), prompt(23, 3), prompt(30, 5)};
  std::vector<SamplingParams> ps = {params(1.0f, 20), params(1.0f, 20, "2 0"), params(1.0f, 20), params(0.0f, 20, "5 3")};
  const auto out = mixed->generate(prompts, ps, false);
  EXPECT_EQ(out[0].token_ids, reference[0].token_ids);
  EXPECT_EQ(out[2].token_ids, reference[1].token_ids);
  for (int t : out[1].token_ids) EXPECT_EQ(t % 2, 0);
  for (int t : out[3].token_ids) EXPECT_EQ(t % 5, 3);
  // The masks were filled off the engine thread, while the forward ran.
  for (std::thread::id id : compiler->log.mask_threads) EXPECT_NE(id, std::this_thread::get_id());
  EXPECT_FALSE(compiler->log.mask_threads.empty());
}

TEST(Constraint, PreemptedRequestsResumeWithTheirGrammarInStep) {
  auto compiler = std::make_shared<FakeCompiler>();
  std::vector<std::vector<int>> prompts;
  std::vector<SamplingParams> ps;
  for (int i = 0; i < 6; ++i) {
    prompts.push_back(prompt(10 + i, i));
    ps.push_back(params(1.0f, 40, std::to_string(2 + i % 3) + " 1"));
    ps.back().seed = 100 + i;
  }
  auto ample = make_engine(256, compiler);
  const auto reference = ample->generate(prompts, ps, false);
  auto tight = make_engine(40, compiler);  // 6 x (16 + 40) tokens do not fit in 160 slots
  const auto out = tight->generate(prompts, ps, false);
  EXPECT_GT(tight->stats().num_preemptions, 0);
  for (size_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(out[i].token_ids, reference[i].token_ids) << i;
    EXPECT_EQ(*compiler->accepted[6 + i], out[i].token_ids) << i;  // followed each token once
  }
}

TEST(Constraint, InvalidGrammarOrNoCompilerIsABadRequest) {
  auto engine = make_engine(64, std::make_shared<FakeCompiler>());
  EXPECT_THROW(engine->add_request(prompt(3, 0), params(0.0f, 4, "bad")), Error);
  EXPECT_FALSE(engine->has_unfinished());
  Config c;
  c.num_kv_blocks = 16;
  LLMEngine bare(c, std::make_unique<FakeRunner>(kVocab, 64), nullptr);
  EXPECT_THROW(bare.add_request(prompt(3, 0), params(0.0f, 4, "2 0")), Error);
  SamplingParams two = params(0.0f, 4, "2 0");
  two.structured_outputs.json_object = true;
  EXPECT_THROW(two.validate(), std::invalid_argument);
}

}  // namespace
}  // namespace nanovllm
