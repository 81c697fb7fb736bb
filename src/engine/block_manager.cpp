// Block allocation, reference counting and prefix-cache lookups (see block_manager.h).
#include "engine/block_manager.h"

#include <algorithm>
#include <string>

#include "nanovllm/error.h"
#include "engine/sequence.h"

namespace nanovllm {
namespace {

constexpr uint64_t kRootHash = 0x9e3779b97f4a7c15ULL;

uint64_t mix(uint64_t x) {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

BlockManager::BlockManager(int num_blocks, int block_size, bool enable_prefix_caching)
    : block_size_(block_size), prefix_caching_(enable_prefix_caching), blocks_(num_blocks) {
  NV_CHECK(num_blocks > 0 && block_size > 0, "empty KV pool");
  for (int b = 0; b < num_blocks; ++b) {
    blocks_[b].free_pos = free_.insert(free_.end(), b);
    blocks_[b].in_free = true;
  }
}

uint64_t BlockManager::chain_hash(uint64_t prev, std::span<const int> tokens) const {
  uint64_t h = mix(prev);
  for (int t : tokens) h = mix(h ^ static_cast<uint32_t>(t));
  return h;
}

std::vector<int> BlockManager::find_cached_prefix(const Sequence& seq) const {
  std::vector<int> hits;
  if (!prefix_caching_) return hits;
  const std::vector<int>& tokens = seq.token_ids();
  const int max_blocks = (seq.num_tokens() - 1) / block_size_;
  uint64_t prev = kRootHash;
  for (int i = 0; i < max_blocks; ++i) {
    std::span<const int> chunk(tokens.data() + static_cast<size_t>(i) * block_size_, block_size_);
    const uint64_t h = chain_hash(prev, chunk);
    auto it = hash_to_block_.find(h);
    if (it == hash_to_block_.end()) break;
    const Block& b = blocks_[it->second];
    // A 64-bit hash can collide: trust a hit only if the parent and the tokens match.
    if (b.prev_hash != prev || !std::equal(chunk.begin(), chunk.end(), b.tokens.begin(), b.tokens.end())) break;
    hits.push_back(it->second);
    prev = h;
  }
  return hits;
}

bool BlockManager::can_allocate(std::span<const int> cached, int num_tokens) const {
  int revived = 0;
  for (int b : cached) revived += blocks_[b].ref == 0 ? 1 : 0;
  const int fresh = std::max(0, blocks_for(num_tokens) - static_cast<int>(cached.size()));
  return fresh + revived <= num_free_blocks();
}

void BlockManager::allocate(Sequence& seq, std::span<const int> cached, int num_tokens) {
  NV_CHECK(seq.block_table.empty(), "sequence already holds blocks");
  NV_CHECK(can_allocate(cached, num_tokens), "allocate without can_allocate");
  for (int b : cached) {
    take_ref(b);
    seq.block_table.push_back(b);
  }
  seq.num_computed = static_cast<int>(cached.size()) * block_size_;
  grow(seq, num_tokens);
}

bool BlockManager::can_grow(const Sequence& seq, int num_tokens) const {
  const int needed = blocks_for(num_tokens) - static_cast<int>(seq.block_table.size());
  return needed <= num_free_blocks();
}

void BlockManager::grow(Sequence& seq, int num_tokens) {
  NV_CHECK(can_grow(seq, num_tokens), "grow without can_grow");
  while (static_cast<int>(seq.block_table.size()) < blocks_for(num_tokens)) {
    seq.block_table.push_back(take_free_block());
  }
}

void BlockManager::free(Sequence& seq) {
  // Release the tail first: it is the least likely to be shared, so it is reused first.
  for (auto it = seq.block_table.rbegin(); it != seq.block_table.rend(); ++it) {
    Block& b = blocks_[*it];
    NV_CHECK(b.ref > 0 && !b.in_free, "double free of block " + std::to_string(*it));
    if (--b.ref == 0) {
      b.free_pos = free_.insert(free_.end(), *it);
      b.in_free = true;
    }
  }
  seq.block_table.clear();
  seq.num_computed = 0;
}

void BlockManager::register_computed(const Sequence& seq) {
  if (!prefix_caching_) return;
  const int full = std::min(seq.num_computed / block_size_, static_cast<int>(seq.block_table.size()));
  // The hashed blocks of a table are a prefix of it (hits first, then blocks registered in
  // order, never unhashed while held), so only the blocks past it need work: O(new blocks)
  // per step instead of a walk over the whole table.
  int i = full;
  while (i > 0 && !blocks_[seq.block_table[i - 1]].has_hash) --i;
  uint64_t prev = i > 0 ? blocks_[seq.block_table[i - 1]].hash : kRootHash;
  for (; i < full; ++i) {
    Block& b = blocks_[seq.block_table[i]];
    const int* first = seq.token_ids().data() + static_cast<size_t>(i) * block_size_;
    b.hash = chain_hash(prev, std::span<const int>(first, block_size_));
    b.prev_hash = prev;
    b.tokens.assign(first, first + block_size_);
    b.has_hash = true;
    // The first block computed with this content stays the one a lookup finds.
    hash_to_block_.emplace(b.hash, seq.block_table[i]);
    prev = b.hash;
  }
}

int BlockManager::take_free_block() {
  NV_CHECK(!free_.empty(), "KV pool exhausted");
  const int id = free_.front();
  take_ref(id);
  drop_hash(id);  // its old content is about to be overwritten
  return id;
}

void BlockManager::take_ref(int id) {
  Block& b = blocks_[id];
  if (b.in_free) {
    free_.erase(b.free_pos);
    b.in_free = false;
  }
  ++b.ref;
}

void BlockManager::drop_hash(int id) {
  Block& b = blocks_[id];
  if (!b.has_hash) return;
  auto it = hash_to_block_.find(b.hash);
  if (it != hash_to_block_.end() && it->second == id) hash_to_block_.erase(it);
  b.has_hash = false;
  b.tokens.clear();
}

void BlockManager::check_invariants() const {
  int free_count = 0;
  for (size_t id = 0; id < blocks_.size(); ++id) {
    const Block& b = blocks_[id];
    NV_CHECK(b.ref >= 0, "negative ref count");
    NV_CHECK(b.in_free == (b.ref == 0), "block " + std::to_string(id) + " free flag disagrees with ref");
    free_count += b.in_free ? 1 : 0;
  }
  NV_CHECK(free_count == num_free_blocks(), "free list size disagrees with free flags");
  for (const auto& [hash, id] : hash_to_block_) {
    NV_CHECK(blocks_[id].has_hash && blocks_[id].hash == hash, "stale hash entry for block " + std::to_string(id));
  }
}

}  // namespace nanovllm
