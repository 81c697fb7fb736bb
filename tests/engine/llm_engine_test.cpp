// LLMEngine with the fake runner and toy tokenizer: outputs, stop conditions, text, errors.
#include "engine/llm_engine.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "nanovllm/error.h"
#include "fakes.h"

namespace nanovllm {
namespace {

using testing::FakeRunner;
using testing::FakeTokenizer;
using testing::fake_reference;

constexpr int kVocab = 64;

std::unique_ptr<LLMEngine> make_engine(int blocks = 64, int block_size = 4, int max_len = 128) {
  Config c;
  c.num_kv_blocks = blocks;
  c.block_size = block_size;
  c.max_num_batched_tokens = 16;
  return std::make_unique<LLMEngine>(c, std::make_unique<FakeRunner>(kVocab, max_len),
                                     std::make_shared<FakeTokenizer>());
}

SamplingParams greedy(int max_tokens, bool ignore_eos = true) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.max_tokens = max_tokens;
  p.ignore_eos = ignore_eos;
  return p;
}

struct Streamed {
  std::vector<int> ids;
  std::string text;
  StepOutput last;
};

Streamed stream(LLMEngine& engine, int64_t id) {
  Streamed s;
  while (engine.has_unfinished()) {
    for (const StepOutput& o : engine.step()) {
      if (o.request_id != id) continue;
      s.ids.insert(s.ids.end(), o.new_token_ids.begin(), o.new_token_ids.end());
      s.text += o.new_text;
      // A delta never ends inside a UTF-8 character.
      if (!o.new_text.empty()) {
        EXPECT_NE(static_cast<unsigned char>(o.new_text.back()) & 0xC0, 0x80);
      }
      s.last = o;
    }
  }
  return s;
}

TEST(LLMEngine, GenerateMatchesTheReferenceInPromptOrder) {
  auto engine = make_engine();
  std::vector<std::vector<int>> prompts = {{2, 3, 4}, {5}, {6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}};
  const auto out = engine->generate(prompts, {greedy(20, false)}, false);
  ASSERT_EQ(out.size(), 3u);
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(out[i].prompt_token_ids, prompts[i]);
    EXPECT_EQ(out[i].token_ids, fake_reference(prompts[i], 20, false, kVocab));
  }
  EXPECT_EQ(engine->stats().kv_blocks_free, 64);
}

TEST(LLMEngine, StreamedTextEqualsDecodingAllIds) {
  auto engine = make_engine();
  const int64_t id = engine->add_request(std::vector<int>{29, 30}, greedy(40));
  const Streamed s = stream(*engine, id);
  FakeTokenizer tok;
  EXPECT_EQ(s.text, tok.decode(s.ids, true));
  EXPECT_EQ(s.last.finish_reason, FinishReason::kLength);
  EXPECT_EQ(s.last.num_output_tokens, 40);
}

TEST(LLMEngine, StopStringEndsTheRequestAndNeverReachesTheCaller) {
  const std::vector<int> prompt = {2, 3, 4, 5};
  const std::vector<int> ref = fake_reference(prompt, 40, true, kVocab);
  FakeTokenizer tok;
  const std::string full = tok.decode(ref, true);
  // A stop string spanning several tokens in the middle of the reference text.
  std::string stop;
  for (size_t at = 10; at + 3 < full.size() && stop.empty(); ++at) {
    std::string cand = full.substr(at, 3);
    if (cand.find('\xEF') == std::string::npos && (cand[0] & 0x80) == 0) stop = cand;
  }
  ASSERT_FALSE(stop.empty());
  auto engine = make_engine();
  SamplingParams p = greedy(40);
  p.stop = {stop, "this never appears"};
  const Streamed s = stream(*engine, engine->add_request(prompt, p));
  EXPECT_EQ(s.text, full.substr(0, full.find(stop)));
  EXPECT_EQ(s.last.finish_reason, FinishReason::kStop);
  EXPECT_EQ(s.last.stop_reason, stop);
  // include_stop_str_in_output: the text ends with the stop string, nothing after it.
  p.include_stop_str_in_output = true;
  const Streamed kept = stream(*engine, engine->add_request(prompt, p));
  EXPECT_EQ(kept.text, full.substr(0, full.find(stop) + stop.size()));
  EXPECT_EQ(kept.last.finish_reason, FinishReason::kStop);
  EXPECT_EQ(engine->stats().kv_blocks_free, 64);
}

TEST(LLMEngine, StopTokenIdEndsTheRequestAndStaysInTheIds) {
  const std::vector<int> prompt = {9, 9};
  const std::vector<int> ref = fake_reference(prompt, 30, true, kVocab);
  SamplingParams p = greedy(30);
  p.stop_token_ids = {ref[5]};
  auto engine = make_engine();
  const Streamed s = stream(*engine, engine->add_request(prompt, p));
  const size_t first = std::find(ref.begin(), ref.end(), ref[5]) - ref.begin();
  EXPECT_EQ(s.ids, std::vector<int>(ref.begin(), ref.begin() + first + 1));
  EXPECT_EQ(s.last.finish_reason, FinishReason::kStop);
  EXPECT_EQ(s.last.stop_reason, std::to_string(ref[5]));
}

// vLLM's rule: the token that ends a request (EOS, a stop_token_ids hit) adds no text, unless
// include_stop_str_in_output; its id stays in the output ids either way. skip_special_tokens is
// off, so the EOS token has text ("</s>") that could leak.
TEST(LLMEngine, StopTokenTextIsLeftOutUnlessIncluded) {
  std::vector<int> prompt;
  for (int a = 2; a < kVocab && prompt.empty(); ++a) {
    const auto r = fake_reference({a}, 8, false, kVocab);
    if (r.size() > 1 && r.back() == testing::kFakeEos) prompt = {a};
  }
  ASSERT_FALSE(prompt.empty());
  const std::vector<int> ref = fake_reference(prompt, 8, false, kVocab);
  FakeTokenizer tok;
  for (bool include : {false, true}) {
    SamplingParams p = greedy(8, false);
    p.skip_special_tokens = false;
    p.include_stop_str_in_output = include;
    auto engine = make_engine();
    const Streamed s = stream(*engine, engine->add_request(prompt, p));
    EXPECT_EQ(s.ids, ref);
    EXPECT_EQ(s.last.finish_reason, FinishReason::kStop);
    const std::vector<int> shown(ref.begin(), include ? ref.end() : ref.end() - 1);
    EXPECT_EQ(s.text, tok.decode(shown, false)) << "include_stop_str_in_output=" << include;
    EXPECT_EQ(s.text.find("</s>") != std::string::npos, include);
  }
  // A stop_token_ids hit on an ordinary letter: the letter is not in the text.
  const std::vector<int> letters = fake_reference({9, 9}, 30, true, kVocab);
  size_t at = 3;
  while (at < letters.size() && !(letters[at] >= 2 && letters[at] <= 27)) ++at;
  ASSERT_LT(at, letters.size());
  const size_t first = std::find(letters.begin(), letters.end(), letters[at]) - letters.begin();
  for (bool include : {false, true}) {
    SamplingParams p = greedy(30);
    p.stop_token_ids = {letters[at]};
    p.include_stop_str_in_output = include;
    auto engine = make_engine();
    const Streamed s = stream(*engine, engine->add_request(std::vector<int>{9, 9}, p));
    EXPECT_EQ(s.ids, std::vector<int>(letters.begin(), letters.begin() + first + 1));
    EXPECT_EQ(s.text, tok.decode(std::vector<int>(letters.begin(), letters.begin() + first + (include ? 1 : 0)), true));
  }
}

// OpenAI's logit_bias through the whole engine: +100 makes a token win every step, -100 keeps
// the greedy choice out; ids outside the vocabulary are refused.
TEST(LLMEngine, LogitBiasForcesAndBansTokens) {
  const std::vector<int> prompt = {7, 8};
  const std::vector<int> ref = fake_reference(prompt, 6, true, kVocab);
  const int forced = (ref[0] + 5) % kVocab;
  SamplingParams p = greedy(6);
  p.logit_bias = {{forced, 100.0f}};
  auto engine = make_engine();
  const auto out = engine->generate({prompt}, {p}, false);
  EXPECT_EQ(out[0].token_ids, std::vector<int>(6, forced));
  p.logit_bias = {{ref[0], -100.0f}};
  const auto banned = engine->generate({prompt}, {p}, false);
  EXPECT_NE(banned[0].token_ids[0], ref[0]);
  EXPECT_EQ(std::count(banned[0].token_ids.begin(), banned[0].token_ids.end(), ref[0]), 0);
  p.logit_bias = {{kVocab, 1.0f}};
  EXPECT_THROW(engine->add_request(prompt, p), Error);
  EXPECT_FALSE(engine->has_unfinished());
}

TEST(LLMEngine, StopStringsWaitForMinTokens) {
  // A prompt whose first output token is a letter, used as the stop string, and whose
  // output is plain ASCII.
  FakeTokenizer tok;
  auto ascii = [](int t) { return (t >= 2 && t <= 28) || t >= 32; };
  std::vector<int> prompt, ref;
  for (int a = 2; a < kVocab && prompt.empty(); ++a) {
    ref = fake_reference({a, a}, 12, true, kVocab);
    if (ref[0] >= 2 && ref[0] <= 27 && std::all_of(ref.begin(), ref.end(), ascii)) prompt = {a, a};
  }
  ASSERT_FALSE(prompt.empty());
  const std::string stop = tok.decode(std::vector<int>{ref[0]}, true);
  SamplingParams p = greedy(12);
  p.min_tokens = 4;
  p.stop = {stop};
  auto engine = make_engine();
  const Streamed s = stream(*engine, engine->add_request(prompt, p));
  // The first match that ends after min_tokens tokens ends the request; not the one at token 0.
  const std::string full = tok.decode(ref, true);
  const std::string head = tok.decode(std::vector<int>(ref.begin(), ref.begin() + 3), true);
  const size_t cut = full.find(stop, head.size());
  EXPECT_GE(s.ids.size(), 4u);
  EXPECT_EQ(s.text, full.substr(0, cut));
  EXPECT_EQ(s.last.finish_reason, cut == std::string::npos ? FinishReason::kLength : FinishReason::kStop);
}

TEST(LLMEngine, GenerateQueuesNothingWhenOnePromptIsBad) {
  auto engine = make_engine(64, 4, 32);
  EXPECT_THROW(engine->generate({{5, 6}, {5, kVocab}}, {greedy(3)}, false), Error);
  EXPECT_FALSE(engine->has_unfinished());
  EXPECT_TRUE(engine->step().empty());
  EXPECT_EQ(engine->stats().kv_blocks_free, 64);
}

TEST(LLMEngine, EosStopsUnlessIgnored) {
  // Find a prompt whose greedy continuation reaches EOS early.
  std::vector<int> prompt;
  for (int a = 2; a < kVocab && prompt.empty(); ++a) {
    const auto r = fake_reference({a}, 8, false, kVocab);
    if (r.back() == testing::kFakeEos) prompt = {a};
  }
  ASSERT_FALSE(prompt.empty());
  auto engine = make_engine();
  const auto out = engine->generate({prompt, prompt}, {greedy(8, false), greedy(8, true)}, false);
  EXPECT_EQ(out[0].finish_reason, FinishReason::kStop);
  EXPECT_EQ(out[0].token_ids.back(), testing::kFakeEos);
  EXPECT_EQ(out[1].finish_reason, FinishReason::kLength);
  EXPECT_EQ(out[1].token_ids.size(), 8u);
}

TEST(LLMEngine, AbortReturnsEveryBlockAndReportsIt) {
  auto engine = make_engine();
  const int64_t a = engine->add_request(std::vector<int>{2, 3, 4, 5, 6, 7, 8, 9, 10}, greedy(50));
  const int64_t b = engine->add_request(std::vector<int>{4, 4}, greedy(5));
  engine->step();
  engine->step();
  EXPECT_LT(engine->stats().kv_blocks_free, 64);
  EXPECT_TRUE(engine->abort(a));
  EXPECT_FALSE(engine->abort(a));
  const Streamed rest = stream(*engine, b);
  EXPECT_EQ(rest.last.finish_reason, FinishReason::kLength);
  EXPECT_EQ(engine->stats().kv_blocks_free, 64);
}

TEST(LLMEngine, BadRequestsAreRejectedAndTheEngineKeepsServing) {
  auto engine = make_engine(64, 4, 32);
  EXPECT_THROW(engine->add_request(std::vector<int>(32, 5), greedy(4)), Error);  // too long
  EXPECT_THROW(engine->add_request(std::vector<int>{5, kVocab}, greedy(4)), Error);
  EXPECT_THROW(engine->add_request(std::vector<int>{5, -1}, greedy(4)), Error);
  SamplingParams bad = greedy(4);
  bad.top_p = 2.0f;
  EXPECT_THROW(engine->add_request(std::vector<int>{5}, bad), std::invalid_argument);
  EXPECT_FALSE(engine->has_unfinished());
  try {
    engine->add_request(std::vector<int>(40, 5), greedy(4));
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("40 tokens"), std::string::npos) << e.what();
  }
  const auto out = engine->generate({{5, 6}}, {greedy(3)}, false);
  EXPECT_EQ(out[0].token_ids.size(), 3u);
}

TEST(LLMEngine, LengthIsCappedByTheContext) {
  auto engine = make_engine(64, 4, 16);
  const auto out = engine->generate({std::vector<int>(10, 7)}, {greedy(100)}, false);
  EXPECT_EQ(out[0].token_ids.size(), 6u);
  EXPECT_EQ(out[0].finish_reason, FinishReason::kLength);
}

TEST(LLMEngine, EmptyPromptStartsFromBos) {
  auto engine = make_engine();
  const auto out = engine->generate(std::vector<std::vector<int>>{std::vector<int>{}}, {greedy(5)}, false);
  EXPECT_EQ(out[0].prompt_token_ids, std::vector<int>{testing::kFakeBos});
  EXPECT_EQ(out[0].token_ids, fake_reference({testing::kFakeBos}, 5, true, kVocab));
}

TEST(LLMEngine, TextPromptsGoThroughTheTokenizer) {
  auto engine = make_engine();
  const int64_t id = engine->add_request(std::string_view("abc"), greedy(4));
  const Streamed s = stream(*engine, id);
  EXPECT_EQ(s.ids, fake_reference({0, 2, 3, 4}, 4, true, kVocab));
}

TEST(LLMEngine, SharedPrefixIsServedFromTheCache) {
  auto engine = make_engine(64, 4);
  std::vector<int> prefix(12, 3);
  std::vector<int> a = prefix, b = prefix;
  a.push_back(5);
  b.push_back(6);
  engine->generate({a}, {greedy(2)}, false);
  const auto out = engine->generate({b}, {greedy(2)}, false);
  EXPECT_EQ(out[0].num_cached_tokens, 12);
  EXPECT_EQ(out[0].token_ids, fake_reference(b, 2, true, kVocab));
}

// A long prompt arriving while a stream decodes: with the long-prefill cap the stream gets a
// token from every step, no step computes more than its decode plus the cap, and both
// requests still produce the reference tokens.
TEST(LLMEngine, LongPrefillCapKeepsARunningStreamDecodingEveryStep) {
  auto runner = std::make_unique<FakeRunner>(kVocab, 256);
  FakeRunner* fake = runner.get();
  Config c;
  c.num_kv_blocks = 64;
  c.block_size = 4;
  c.max_num_batched_tokens = 128;
  c.long_prefill_token_threshold = 16;
  LLMEngine engine(c, std::move(runner), std::make_shared<FakeTokenizer>());
  const std::vector<int> short_prompt{5, 6, 7}, long_prompt(100, 9);
  const int64_t streaming = engine.add_request(short_prompt, greedy(20));
  std::vector<int> streamed;
  auto collect = [&](const std::vector<StepOutput>& outs) {
    int tokens = 0;
    for (const StepOutput& o : outs)
      if (o.request_id == streaming) {
        streamed.insert(streamed.end(), o.new_token_ids.begin(), o.new_token_ids.end());
        tokens += static_cast<int>(o.new_token_ids.size());
      }
    return tokens;
  };
  collect(engine.step());  // the short prompt's prefill
  const int64_t late = engine.add_request(long_prompt, greedy(2));
  std::vector<int> late_ids;
  int prefill_steps = 0;
  while (late_ids.empty()) {
    const std::vector<StepOutput> outs = engine.step();
    ++prefill_steps;
    EXPECT_EQ(collect(outs), 1) << "step " << prefill_steps;
    for (const StepOutput& o : outs)
      if (o.request_id == late) late_ids = o.new_token_ids;
  }
  EXPECT_EQ(prefill_steps, 7);  // ceil(100 / 16)
  EXPECT_EQ(fake->max_tokens_in_step, 1 + 16);
  while (engine.has_unfinished()) {
    const std::vector<StepOutput> outs = engine.step();
    collect(outs);
    for (const StepOutput& o : outs)
      if (o.request_id == late) late_ids.insert(late_ids.end(), o.new_token_ids.begin(), o.new_token_ids.end());
  }
  EXPECT_EQ(late_ids, fake_reference(long_prompt, 2, true, kVocab));
  EXPECT_EQ(streamed, fake_reference(short_prompt, 20, true, kVocab));
}

// The KV cache is sized from the runner's own report of its device memory, not from the
// host's: a GPU runner has its own memory, and a host with many GiB free must not matter.
TEST(LLMEngine, KvCacheIsSizedFromTheRunnersCapacity) {
  auto runner = std::make_unique<FakeRunner>(kVocab, 128);
  runner->capacity_bytes = 8LL * 4 * 100;  // 100 blocks of 4 tokens at 8 bytes a token
  FakeRunner* fake = runner.get();
  Config c;
  c.block_size = 4;
  c.kv_cache_memory_fraction = 0.5;
  LLMEngine engine(c, std::move(runner), std::make_shared<FakeTokenizer>());
  EXPECT_EQ(fake->allocated_blocks, 50);
  EXPECT_EQ(fake->kv_capacity_blocks(4), 100);
  EXPECT_EQ(engine.max_model_len(), 128);
}

TEST(LLMEngine, TooSmallKvCacheForAnExplicitContextIsAnError) {
  Config c;
  c.num_kv_blocks = 2;
  c.block_size = 4;
  c.max_model_len = 64;
  EXPECT_THROW(LLMEngine(c, std::make_unique<FakeRunner>(kVocab, 128), nullptr), Error);
}

}  // namespace
}  // namespace nanovllm
