// Randomized workloads against the fake runner: thousands of configurations, arrivals, aborts
// and preemptions, checking the block-pool invariants after every step and every output
// against a reference computed without the engine.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "engine/llm_engine.h"
#include "fakes.h"

namespace nanovllm {
namespace {

using testing::FakeRunner;
using testing::fake_reference;

constexpr int kVocab = 64;
constexpr int kMaxLen = 64;

struct Request {
  std::vector<int> prompt;
  SamplingParams params;
  int arrival_step = 0;
  int abort_step = -1;  // -1: never
};

struct Workload {
  Config config;
  std::vector<Request> requests;
};

Workload random_workload(std::mt19937& rng) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Workload w;
  const int block_sizes[] = {1, 2, 3, 4, 8, 16};
  w.config.block_size = block_sizes[pick(0, 5)];
  w.config.max_num_batched_tokens = pick(0, 3) == 0 ? pick(1, 4) : pick(5, 96);
  w.config.max_num_seqs = pick(1, 8);
  const int min_blocks = (kMaxLen + w.config.block_size - 1) / w.config.block_size;
  w.config.num_kv_blocks = min_blocks + pick(0, 2 * min_blocks);
  w.config.enable_prefix_caching = pick(0, 3) != 0;
  std::vector<std::vector<int>> prefixes(3);
  for (auto& p : prefixes) for (int i = pick(1, 24); i > 0; --i) p.push_back(pick(2, kVocab - 1));
  for (int r = pick(1, 8); r > 0; --r) {
    Request req;
    if (pick(0, 2) != 0) req.prompt = prefixes[pick(0, 2)];
    for (int i = pick(req.prompt.empty() ? 1 : 0, 16); i > 0; --i) req.prompt.push_back(pick(2, kVocab - 1));
    req.params.max_tokens = pick(1, 30);
    req.params.ignore_eos = pick(0, 1) == 1;
    if (pick(0, 1) == 1) {
      req.params.temperature = 0.0f;
    } else {
      req.params.temperature = 0.8f;
      req.params.seed = static_cast<uint64_t>(pick(0, 1 << 30));
    }
    req.arrival_step = pick(0, 1) ? 0 : pick(0, 12);
    if (pick(0, 9) == 0) req.abort_step = req.arrival_step + pick(0, 6);
    w.requests.push_back(std::move(req));
  }
  return w;
}

// Reference counts must equal the number of block tables holding each block.
void check_pool(const LLMEngine& engine) {
  const BlockManager& bm = engine.scheduler().block_manager();
  bm.check_invariants();
  std::vector<int> holders(bm.num_blocks(), 0);
  for (const Sequence* s : engine.scheduler().live_sequences()) {
    for (int b : s->block_table) ++holders[b];
  }
  for (int b = 0; b < bm.num_blocks(); ++b) {
    ASSERT_EQ(bm.ref_count(b), holders[b]) << "block " << b;
  }
}

struct Result {
  std::vector<int> tokens;
  FinishReason reason = FinishReason::kNone;
};

// Runs the workload; returns each request's output, keyed by its index.
std::map<int, Result> run(const Workload& w, int64_t* preemptions, int64_t* cached_tokens) {
  LLMEngine engine(w.config, std::make_unique<FakeRunner>(kVocab, kMaxLen), nullptr);
  std::map<int64_t, int> index;
  std::map<int, Result> results;
  size_t finished = 0;
  for (int step = 0; finished < w.requests.size(); ++step) {
    if (step > 20000) ADD_FAILURE() << "no progress";
    if (step > 20000) break;
    for (size_t i = 0; i < w.requests.size(); ++i) {
      const Request& r = w.requests[i];
      if (r.arrival_step == step) index[engine.add_request(r.prompt, r.params)] = static_cast<int>(i);
      if (r.abort_step == step) {
        for (const auto& [id, idx] : index) if (idx == static_cast<int>(i)) engine.abort(id);
      }
    }
    for (const StepOutput& o : engine.step()) {
      Result& res = results[index.at(o.request_id)];
      res.tokens.insert(res.tokens.end(), o.new_token_ids.begin(), o.new_token_ids.end());
      if (o.finished) {
        res.reason = o.finish_reason;
        ++finished;
      }
    }
    check_pool(engine);
    if (::testing::Test::HasFatalFailure()) break;
  }
  const EngineStats st = engine.stats();
  EXPECT_EQ(st.kv_blocks_free, st.kv_blocks_total) << "blocks leaked";
  EXPECT_FALSE(engine.has_unfinished());
  *preemptions += st.num_preemptions;
  *cached_tokens += st.cached_prompt_tokens;
  return results;
}

TEST(EngineProperty, RandomWorkloadsKeepInvariantsAndMatchTheReference) {
  constexpr int kWorkloads = 2500;
  int64_t preemptions = 0, cached = 0, ample_preemptions = 0, ignored = 0;
  for (int n = 0; n < kWorkloads; ++n) {
    std::mt19937 rng(n);
    const Workload w = random_workload(rng);
    SCOPED_TRACE("workload " + std::to_string(n));
    const std::map<int, Result> got = run(w, &preemptions, &cached);
    // The same requests with room for everything: no preemption, one big step budget.
    Workload ample = w;
    ample.config.num_kv_blocks = 4096;
    ample.config.max_num_batched_tokens = 4096;
    ample.config.max_num_seqs = 64;
    const std::map<int, Result> want = run(ample, &ample_preemptions, &ignored);
    for (size_t i = 0; i < w.requests.size(); ++i) {
      const Request& r = w.requests[i];
      const Result& res = got.at(static_cast<int>(i));
      if (res.reason == FinishReason::kAbort || r.abort_step >= 0) continue;
      ASSERT_EQ(res.tokens, want.at(static_cast<int>(i)).tokens) << "request " << i;
      if (r.params.temperature == 0.0f) {
        const std::vector<int> ref = fake_reference(r.prompt, r.params.max_tokens, r.params.ignore_eos,
                                                    kVocab, kMaxLen);
        ASSERT_EQ(res.tokens, ref) << "request " << i;
      }
      const bool ended_by_eos = !r.params.ignore_eos && !res.tokens.empty() && res.tokens.back() == testing::kFakeEos;
      ASSERT_EQ(res.reason, ended_by_eos ? FinishReason::kStop : FinishReason::kLength);
      if (!ended_by_eos) {
        const int expected = std::min<int>(r.params.max_tokens, kMaxLen - static_cast<int>(r.prompt.size()));
        ASSERT_EQ(static_cast<int>(res.tokens.size()), expected) << "request " << i;
      }
    }
    if (HasFatalFailure()) return;
  }
  // The workloads must really exercise preemption and the prefix cache.
  EXPECT_GT(preemptions, 100);
  EXPECT_GT(cached, 1000);
  EXPECT_EQ(ample_preemptions, 0);
  std::printf("%d workloads: %lld preemptions, %lld prompt tokens from the prefix cache\n", kWorkloads,
              static_cast<long long>(preemptions), static_cast<long long>(cached));
}

}  // namespace
}  // namespace nanovllm
