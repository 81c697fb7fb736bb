// The paged KV cache's bookkeeping: a pool of fixed-size blocks, reference counts, and the
// chained-hash prefix cache. Knows nothing of the model; the runner owns the memory.
#pragma once

#include <cstdint>
#include <list>
#include <span>
#include <unordered_map>
#include <vector>

namespace nanovllm {

class Sequence;

class BlockManager {
 public:
  BlockManager(int num_blocks, int block_size, bool enable_prefix_caching);

  int block_size() const { return block_size_; }
  int num_blocks() const { return static_cast<int>(blocks_.size()); }
  int num_free_blocks() const { return static_cast<int>(free_.size()); }
  int blocks_for(int num_tokens) const { return (num_tokens + block_size_ - 1) / block_size_; }

  // Prefix cache: the longest run of full blocks at the start of the sequence whose KV is
  // cached, leaving at least one token to compute (its logits are needed).
  std::vector<int> find_cached_prefix(const Sequence& seq) const;

  // Check/action pair for a sequence that holds no blocks: take `cached` (from
  // find_cached_prefix) and fresh blocks so that the first `num_tokens` tokens have slots.
  bool can_allocate(std::span<const int> cached, int num_tokens) const;
  void allocate(Sequence& seq, std::span<const int> cached, int num_tokens);

  // Check/action pair for a sequence that holds blocks: extend its table to `num_tokens`.
  bool can_grow(const Sequence& seq, int num_tokens) const;
  void grow(Sequence& seq, int num_tokens);

  // Drops the sequence's references; blocks at zero go back to the pool but keep their hash,
  // so a later request with the same prefix can revive them until they are reused.
  void free(Sequence& seq);

  // Registers the hash of every full block whose KV is now computed (seq.num_computed).
  void register_computed(const Sequence& seq);

  // Introspection for tests and metrics.
  int ref_count(int block) const { return blocks_[block].ref; }
  bool is_free(int block) const { return blocks_[block].in_free; }
  int num_cached_blocks() const { return static_cast<int>(hash_to_block_.size()); }
  // Checks every internal invariant; throws std::logic_error on the first broken one.
  void check_invariants() const;

 private:
  struct Block {
    int ref = 0;
    bool has_hash = false;
    bool in_free = false;
    uint64_t hash = 0;
    uint64_t prev_hash = 0;
    std::vector<int> tokens;  // the block's token ids, compared on a hash hit
    std::list<int>::iterator free_pos;
  };

  uint64_t chain_hash(uint64_t prev, std::span<const int> tokens) const;
  int take_free_block();
  void take_ref(int block);
  void drop_hash(int block);

  int block_size_;
  bool prefix_caching_;
  std::vector<Block> blocks_;
  std::list<int> free_;  // least recently freed first: reused first
  std::unordered_map<uint64_t, int> hash_to_block_;
};

}  // namespace nanovllm
