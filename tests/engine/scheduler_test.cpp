// Scheduler: token budget, decodes before prefill chunks, chunked prefill, preemption.
#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <numeric>

namespace nanovllm {
namespace {

std::unique_ptr<Sequence> make_seq(int64_t id, int n, int start = 100) {
  std::vector<int> v(n);
  std::iota(v.begin(), v.end(), start);
  return std::make_unique<Sequence>(id, std::move(v), SamplingParams{}, 0);
}

// Runs the model-free half of a step: every sampling slice "samples" token 7.
void finish_step(Scheduler& s, const ScheduledStep& step) {
  std::vector<int> sampled(step.batch.num_sampled(), 7);
  s.postprocess(step, sampled);
}

SchedulerConfig config(int budget, int seqs, int blocks, int block_size) {
  return SchedulerConfig{budget, seqs, blocks, block_size, true};
}

TEST(Scheduler, ChunksALongPromptUnderTheTokenBudget) {
  Scheduler s(config(8, 4, 64, 4));
  s.add(make_seq(0, 20));
  std::vector<int> chunks;
  while (true) {
    ScheduledStep step = s.schedule();
    ASSERT_FALSE(step.empty());
    chunks.push_back(step.batch.num_tokens());
    const bool sampled = step.batch.seqs[0].sample;
    finish_step(s, step);
    if (sampled) break;
  }
  EXPECT_EQ(chunks, (std::vector<int>{8, 8, 4}));
}

TEST(Scheduler, MixesDecodesWithAPrefillChunkAndPutsDecodesFirst) {
  Scheduler s(config(6, 4, 64, 4));
  s.add(make_seq(0, 3));
  ScheduledStep first = s.schedule();
  finish_step(s, first);  // seq 0 is now decoding
  s.add(make_seq(1, 20, 500));
  ScheduledStep step = s.schedule();
  ASSERT_EQ(step.batch.seqs.size(), 2u);
  EXPECT_EQ(step.batch.seqs[0].seq_id, 0);
  EXPECT_EQ(step.batch.seqs[0].num_new, 1);
  EXPECT_TRUE(step.batch.seqs[0].sample);
  EXPECT_EQ(step.batch.seqs[1].seq_id, 1);
  EXPECT_EQ(step.batch.seqs[1].num_new, 5);  // the rest of the budget
  EXPECT_FALSE(step.batch.seqs[1].sample);
  EXPECT_EQ(step.batch.num_tokens(), 6);
  EXPECT_EQ(step.batch.positions[0], 3);
}

// vLLM's long_prefill_token_threshold: a long prompt gets at most that many tokens a step even
// when the budget has room for all of it, so the decoding stream beside it samples every step.
TEST(Scheduler, LongPrefillThresholdChunksAPromptWhileADecodeRunsEveryStep) {
  SchedulerConfig c = config(64, 4, 64, 4);
  c.long_prefill_token_threshold = 8;
  Scheduler s(c);
  s.add(make_seq(0, 3));
  finish_step(s, s.schedule());  // seq 0 is now decoding
  s.add(make_seq(1, 30, 500));
  std::vector<int> chunks;
  for (bool sampled = false; !sampled;) {
    ScheduledStep step = s.schedule();
    ASSERT_EQ(step.batch.seqs.size(), 2u);
    EXPECT_EQ(step.batch.seqs[0].seq_id, 0);
    EXPECT_TRUE(step.batch.seqs[0].sample);  // one decode token every step
    chunks.push_back(step.batch.seqs[1].num_new);
    sampled = step.batch.seqs[1].sample;
    finish_step(s, step);
  }
  EXPECT_EQ(chunks, (std::vector<int>{8, 8, 8, 6}));
}

// The cap is per sequence: short prompts go whole, several prompts share the budget, and a
// budget below the cap still binds.
TEST(Scheduler, LongPrefillThresholdIsPerSequenceAndTheBudgetStillBinds) {
  SchedulerConfig c = config(20, 4, 64, 4);
  c.long_prefill_token_threshold = 8;
  Scheduler s(c);
  s.add(make_seq(0, 5));
  s.add(make_seq(1, 30, 200));
  s.add(make_seq(2, 30, 400));
  ScheduledStep step = s.schedule();
  ASSERT_EQ(step.batch.seqs.size(), 3u);
  EXPECT_EQ(step.batch.seqs[0].num_new, 5);
  EXPECT_EQ(step.batch.seqs[1].num_new, 8);
  EXPECT_EQ(step.batch.seqs[2].num_new, 7);  // what is left of 20
}

TEST(Scheduler, RespectsMaxNumSeqs) {
  Scheduler s(config(100, 2, 64, 4));
  for (int i = 0; i < 4; ++i) s.add(make_seq(i, 3, 100 * i));
  ScheduledStep step = s.schedule();
  EXPECT_EQ(step.batch.seqs.size(), 2u);
  EXPECT_EQ(s.num_waiting(), 2);
}

TEST(Scheduler, PreemptsTheNewestSequenceWhenBlocksRunOut) {
  Scheduler s(config(100, 4, 4, 4));  // 16 slots
  s.add(make_seq(0, 7));
  s.add(make_seq(1, 7, 300));
  finish_step(s, s.schedule());  // both prefilled: 8 tokens each = 4 blocks, pool full
  ASSERT_EQ(s.num_running(), 2);
  ScheduledStep step = s.schedule();  // decodes fit: position 7 is in block 1 of each
  finish_step(s, step);
  step = s.schedule();  // position 8 needs a new block for each: preempt seq 1
  ASSERT_EQ(step.batch.seqs.size(), 1u);
  EXPECT_EQ(step.batch.seqs[0].seq_id, 0);
  EXPECT_EQ(s.num_preemptions(), 1);
  EXPECT_EQ(s.num_waiting(), 1);
  const Sequence* victim = s.find(1);
  ASSERT_NE(victim, nullptr);
  EXPECT_EQ(victim->num_computed, 0);
  EXPECT_EQ(victim->num_tokens(), 9);  // its tokens survive preemption
  EXPECT_TRUE(victim->block_table.empty());
}

TEST(Scheduler, PreemptionFollowedByAPrefixHit) {
  Scheduler s(config(100, 4, 5, 4));
  s.add(make_seq(0, 8));
  s.add(make_seq(1, 8, 300));
  finish_step(s, s.schedule());  // 9 tokens each now, blocks: 2 + 2, one free
  ScheduledStep step = s.schedule();  // both need a 3rd block: only one left
  ASSERT_EQ(step.batch.seqs.size(), 1u);
  finish_step(s, step);
  auto done = s.finish(0, FinishReason::kStop);
  ASSERT_TRUE(done);
  step = s.schedule();  // seq 1 comes back: its first two blocks are still cached
  ASSERT_EQ(step.batch.seqs.size(), 1u);
  EXPECT_EQ(step.batch.seqs[0].seq_id, 1);
  EXPECT_EQ(step.batch.seqs[0].num_cached, 8);
  EXPECT_EQ(step.batch.seqs[0].num_new, 1);
}

TEST(Scheduler, FinishReturnsEveryBlock) {
  Scheduler s(config(100, 4, 8, 4));
  s.add(make_seq(0, 9));
  s.add(make_seq(1, 3));
  finish_step(s, s.schedule());
  EXPECT_TRUE(s.finish(0, FinishReason::kAbort));
  EXPECT_TRUE(s.finish(1, FinishReason::kAbort));
  EXPECT_FALSE(s.finish(1, FinishReason::kAbort));
  EXPECT_EQ(s.block_manager().num_free_blocks(), 8);
  EXPECT_FALSE(s.has_unfinished());
}

}  // namespace
}  // namespace nanovllm
