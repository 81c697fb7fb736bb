// Batch::check: the structural contract between the scheduler and every runner.
#include "engine/batch.h"

#include "nanovllm/error.h"

namespace nanovllm {

void Batch::check() const {
  const int T = num_tokens();
  NV_CHECK(block_size > 0, "batch without a block size");
  NV_CHECK(static_cast<int>(positions.size()) == T, "one position per token");
  int t = 0;
  for (const SeqSlice& seq : seqs) {
    NV_CHECK(seq.num_new > 0 && seq.num_cached >= 0, "a slice computes at least one token");
    const int len = seq.num_cached + seq.num_new;
    NV_CHECK(static_cast<int>(seq.block_table.size()) * block_size >= len, "block table too short");
    NV_CHECK(t + seq.num_new <= T, "slices cover more tokens than the batch has");
    for (int i = 0; i < seq.num_new; ++i, ++t) NV_CHECK(positions[t] == seq.num_cached + i, "positions follow num_cached");
  }
  NV_CHECK(t == T, "slices must cover every token of the batch");
}

}  // namespace nanovllm
