// BlockManager: allocation, reference counts and the prefix cache's known failure modes.
#include "engine/block_manager.h"

#include <gtest/gtest.h>

#include <numeric>

#include "engine/sequence.h"

namespace nanovllm {
namespace {

Sequence make_seq(int64_t id, std::vector<int> tokens) {
  return Sequence(id, std::move(tokens), SamplingParams{}, 0);
}

std::vector<int> iota(int n, int start = 100) {
  std::vector<int> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

// Admits `seq` the way the scheduler does and pretends its whole prompt was computed.
void admit_and_compute(BlockManager& bm, Sequence& seq) {
  const std::vector<int> cached = bm.find_cached_prefix(seq);
  bm.allocate(seq, cached, seq.num_tokens());
  seq.num_computed = seq.num_tokens();
  bm.register_computed(seq);
}

TEST(BlockManager, AllocatesAndFreesEveryBlock) {
  BlockManager bm(8, 4, true);
  Sequence a = make_seq(0, iota(10));
  ASSERT_TRUE(bm.can_allocate({}, 10));
  bm.allocate(a, {}, 10);
  EXPECT_EQ(a.block_table.size(), 3u);
  EXPECT_EQ(bm.num_free_blocks(), 5);
  ASSERT_TRUE(bm.can_grow(a, 13));
  bm.grow(a, 13);
  EXPECT_EQ(a.block_table.size(), 4u);
  EXPECT_FALSE(bm.can_grow(a, 100));
  bm.free(a);
  EXPECT_EQ(bm.num_free_blocks(), 8);
  EXPECT_TRUE(a.block_table.empty());
  bm.check_invariants();
}

TEST(BlockManager, DoubleFreeIsCaught) {
  BlockManager bm(4, 4, true);
  Sequence a = make_seq(0, iota(4));
  bm.allocate(a, {}, 4);
  std::vector<int> table = a.block_table;
  bm.free(a);
  a.block_table = table;  // a bug elsewhere would look like this
  EXPECT_THROW(bm.free(a), std::logic_error);
}

TEST(BlockManager, PrefixHitSharesBlocksAndCountsReferences) {
  BlockManager bm(16, 4, true);
  Sequence a = make_seq(0, iota(10));
  admit_and_compute(bm, a);
  std::vector<int> b_tokens = iota(8);
  b_tokens.push_back(7);
  b_tokens.push_back(7);
  Sequence b = make_seq(1, b_tokens);
  const std::vector<int> hits = bm.find_cached_prefix(b);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0], a.block_table[0]);
  EXPECT_EQ(hits[1], a.block_table[1]);
  bm.allocate(b, hits, b.num_tokens());
  EXPECT_EQ(b.num_computed, 8);
  EXPECT_EQ(bm.ref_count(a.block_table[0]), 2);
  EXPECT_NE(b.block_table[2], a.block_table[2]);  // the partial block is never shared
  bm.check_invariants();
}

TEST(BlockManager, NoHitBeforeKvIsComputed) {
  // Two requests with the same new prefix admitted in one step: the second must not be
  // handed the first one's blocks, whose KV does not exist yet.
  BlockManager bm(16, 4, true);
  Sequence a = make_seq(0, iota(9));
  Sequence b = make_seq(1, iota(9));
  bm.allocate(a, bm.find_cached_prefix(a), 9);
  EXPECT_TRUE(bm.find_cached_prefix(b).empty());
  a.num_computed = 4;  // first chunk done: only block 0 is computed
  bm.register_computed(a);
  EXPECT_EQ(bm.find_cached_prefix(b).size(), 1u);
}

TEST(BlockManager, FullyCachedPromptLeavesOneTokenToCompute) {
  BlockManager bm(16, 4, true);
  Sequence a = make_seq(0, iota(8));
  admit_and_compute(bm, a);
  Sequence b = make_seq(1, iota(8));
  const std::vector<int> hits = bm.find_cached_prefix(b);
  EXPECT_EQ(hits.size(), 1u);  // the last block is recomputed, so its last token has logits
  bm.allocate(b, hits, 8);
  EXPECT_EQ(b.num_computed, 4);
  EXPECT_LT(b.num_computed, b.num_tokens());
}

TEST(BlockManager, FreedBlocksAreRevivedFromTheCache) {
  BlockManager bm(4, 4, true);
  Sequence a = make_seq(0, iota(9));
  admit_and_compute(bm, a);
  const std::vector<int> a_blocks = a.block_table;
  bm.free(a);
  EXPECT_EQ(bm.num_free_blocks(), 4);
  Sequence b = make_seq(1, iota(9));
  const std::vector<int> hits = bm.find_cached_prefix(b);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0], a_blocks[0]);
  ASSERT_TRUE(bm.can_allocate(hits, 9));
  bm.allocate(b, hits, 9);
  EXPECT_EQ(bm.num_free_blocks(), 1);
  bm.check_invariants();
}

TEST(BlockManager, StaleHashOfReusedBlockIsNeverHit) {
  // A freed, hashed block is reused for other tokens: its old hash must stop resolving.
  BlockManager bm(2, 4, true);
  Sequence a = make_seq(0, iota(5));
  admit_and_compute(bm, a);  // block a0 hashed with tokens 100..103
  bm.free(a);
  Sequence c = make_seq(1, iota(8, 500));
  bm.allocate(c, bm.find_cached_prefix(c), 8);  // takes both blocks, overwriting a0
  c.num_computed = 8;
  bm.register_computed(c);
  Sequence d = make_seq(2, iota(5));
  EXPECT_TRUE(bm.find_cached_prefix(d).empty());
  bm.check_invariants();
}

TEST(BlockManager, PrefixCachingOff) {
  BlockManager bm(8, 4, false);
  Sequence a = make_seq(0, iota(9));
  admit_and_compute(bm, a);
  Sequence b = make_seq(1, iota(9));
  EXPECT_TRUE(bm.find_cached_prefix(b).empty());
}

TEST(BlockManager, RevivingCountsAgainstTheFreePool) {
  BlockManager bm(3, 4, true);
  Sequence a = make_seq(0, iota(9));
  admit_and_compute(bm, a);  // 3 blocks, 2 hashed
  bm.free(a);
  Sequence b = make_seq(1, iota(13));  // needs 4 blocks: 2 revived + 2 fresh > 3
  const std::vector<int> hits = bm.find_cached_prefix(b);
  EXPECT_EQ(hits.size(), 2u);
  EXPECT_FALSE(bm.can_allocate(hits, 13));
  EXPECT_TRUE(bm.can_allocate(hits, 12));
}

}  // namespace
}  // namespace nanovllm
