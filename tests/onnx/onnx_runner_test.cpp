// The onnx runner's own part, on a small graph with a decoder's inputs and output
// (make_runner_graph.py): what it feeds (slots, block tables, query offsets, logits_indices) is
// right when a prompt gives the same logits in one step, in chunks over its cached prefix, and
// batched with another sequence; a graph it cannot feed is refused by name.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "backends/onnx/onnx_runner.h"
#include "engine/batch.h"
#include "nanovllm/error.h"
#include "nanovllm/llm.h"

namespace nanovllm {
namespace {

constexpr int kBlock = 4;

// Debian's python3-onnx belongs to Debian's interpreter (a python3 earlier in PATH may lack it).
std::string make_graph(const std::string& damage = "") {
  const std::string dir = (std::filesystem::path(NANOVLLM_BINARY_DIR) / "test-tmp" / "onnx" /
                           ("runner-" + (damage.empty() ? std::string("ok") : damage) + "-" + std::to_string(getpid())))
                              .string();
  const std::string cmd = "/usr/bin/python3 " NANOVLLM_SOURCE_DIR "/tests/onnx/make_runner_graph.py " + dir +
                          (damage.empty() ? "" : " --break " + damage);
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd << "\n(needs Debian's python3-onnx: make deps)";
  return dir;
}

// Removes the graph's folder once what was opened from it has read it.
struct RemoveAfter {
  std::string dir;
  ~RemoveAfter() { std::filesystem::remove_all(dir); }
};

std::unique_ptr<ModelRunner> open_runner(const std::string& damage = "") {
  RemoveAfter graph{make_graph(damage)};
  return make_onnx_runner(graph.dir, OnnxRunnerOptions{.threads = 1});
}

// One step: slices (seq, num_cached, num_new), each with blocks [first_block, ...) and sampling.
struct Slice {
  int first_block, num_cached, num_new;
};
Batch make_batch(const std::vector<int>& prompt_a, const std::vector<int>& prompt_b, const std::vector<Slice>& slices) {
  Batch b;
  b.block_size = kBlock;
  for (size_t s = 0; s < slices.size(); ++s) {
    const std::vector<int>& prompt = s == 0 ? prompt_a : prompt_b;
    const Slice& sl = slices[s];
    SeqSlice seq;  // by field: a positional init would shift when SeqSlice gains a field
    seq.seq_id = int64_t(s);
    seq.num_cached = sl.num_cached;
    seq.num_new = sl.num_new;
    seq.sample = true;
    for (int blk = 0; blk * kBlock < sl.num_cached + sl.num_new; ++blk) seq.block_table.push_back(sl.first_block + blk);
    for (int p = sl.num_cached; p < sl.num_cached + sl.num_new; ++p) {
      b.token_ids.push_back(prompt[p]);
      b.positions.push_back(p);
    }
    b.seqs.push_back(seq);
  }
  return b;
}

void expect_rows_equal(const Logits& a, int ra, const Logits& b, int rb) {
  ASSERT_EQ(a.vocab, b.vocab);
  for (int j = 0; j < a.vocab; ++j) ASSERT_NEAR(a.row(ra)[j], b.row(rb)[j], 1e-4) << "logit " << j;
}

TEST(OnnxRunner, ChunkedAndBatchedStepsGiveTheLogitsOfOneStep) {
  auto runner = open_runner();
  EXPECT_EQ(runner->info().vocab_size, 32);
  EXPECT_EQ(runner->kv_block_bytes(kBlock), 2LL * 2 * kBlock * 2 * 8 * 4);  // f32 K+V of 2 layers
  EXPECT_GT(runner->kv_capacity_bytes(), 0);
  runner->allocate_kv_cache(16, kBlock);
  const std::vector<int> a = {1, 5, 9, 3, 30, 7, 7, 2, 11, 4, 19}, b = {8, 6, 31, 0, 12, 13};
  const int n = int(a.size());

  Logits whole, chunks, batched;
  runner->forward(make_batch(a, b, {{0, 0, n}}), &whole);  // blocks 0..2
  ASSERT_EQ(whole.rows, 1);
  ASSERT_EQ(whole.vocab, 32);
  for (float x : whole.data) ASSERT_TRUE(std::isfinite(x));

  // The same prompt in blocks 4..6: a prefill chunk of 6, then a chunk of 3, then two decodes.
  runner->forward(make_batch(a, b, {{4, 0, 6}}), &chunks);
  runner->forward(make_batch(a, b, {{4, 6, 3}}), &chunks);
  runner->forward(make_batch(a, b, {{4, 9, 1}}), &chunks);
  runner->forward(make_batch(a, b, {{4, 10, 1}}), &chunks);
  expect_rows_equal(whole, 0, chunks, 0);

  // Blocks 8..10 for a, 12..13 for b: one step with a's last token (cached prefix) and b's prefill.
  runner->forward(make_batch(a, b, {{8, 0, n - 1}}), &batched);
  runner->forward(make_batch(a, b, {{8, n - 1, 1}, {12, 0, int(b.size())}}), &batched);
  ASSERT_EQ(batched.rows, 2);
  expect_rows_equal(whole, 0, batched, 0);
  Logits b_alone;
  runner->forward(make_batch(b, a, {{1, 0, int(b.size())}}), &b_alone);  // blocks 1..2 (whole's, done with)
  expect_rows_equal(b_alone, 0, batched, 1);
}

TEST(OnnxRunner, GraphsItCannotFeedAreRefusedByName) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"old-cache-layout", "the op reads [num_blocks, 2 (kv heads), block_size (symbolic), 8 (head_dim)]"},
      {"extra-input", "graph input 'attention_mask' is not one the onnx runner feeds"},
      {"no-positions", "graph has no input 'positions'"},
      {"two-outputs", "graph must have the one output 'logits'"},
  };
  for (const auto& [damage, message] : cases) {
    try {
      open_runner(damage);
      ADD_FAILURE() << damage << ": loaded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << damage << ": " << e.what();
    }
  }
}

// An export folder has model.onnx where a checkpoint has model.safetensors: LLM opens it
// (it used to refuse the folder before any backend saw it).
TEST(OnnxRunner, LlmRunsAnExportFolder) {
  Config config;
  config.backend = "onnx";
  config.num_kv_blocks = 8;
  config.threads = 1;
  RemoveAfter graph{make_graph()};
  LLM llm(graph.dir, config);
  SamplingParams greedy;
  greedy.temperature = 0;
  greedy.max_tokens = 5;
  greedy.ignore_eos = true;
  const std::vector<RequestOutput> out = llm.generate(std::vector<std::vector<int>>{{1, 5, 9}, {3, 4}}, greedy);
  ASSERT_EQ(out.size(), 2u);
  for (const RequestOutput& r : out) EXPECT_EQ(r.token_ids.size(), 5u);
}

TEST(OnnxRunner, AFolderWithoutModelOnnxNamesTheExport) {
  RemoveAfter graph{make_graph()};
  std::filesystem::remove(std::filesystem::path(graph.dir) / "model.onnx");
  try {
    make_onnx_runner(graph.dir);
    ADD_FAILURE() << "loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.onnx: not found; the onnx backend runs a decoder exported with "
                                         "`make export-onnx"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace nanovllm
