// nanovllm.PagedAttention run by ONNX Runtime in a one-node graph (made at test time by
// make_paged_attention_graph.py with Debian's python3-onnx), under every kernel table the CPU
// has, against a dense causal softmax in doubles: prefills, decodes and chunks after cached
// prefixes of several sequences in one call, GQA, odd head_dim and block sizes, both cache
// dtypes. The caches are the test's own buffers: the op must write the new rows into them.
#include <gtest/gtest.h>

#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "backends/onnx/onnx_runner.h"
#include "kernels/kernels.h"
#include "nanovllm/error.h"

namespace nanovllm {
namespace {

struct Shape {
  int n_heads, n_kv_heads, head_dim, block_size;
  bool bf16_cache;
  std::vector<std::pair<int, int>> seqs;  // (tokens cached by an earlier call, new tokens)
};

// Debian's python3-onnx belongs to Debian's interpreter (a python3 earlier in PATH may lack it).
constexpr const char* kPython = "/usr/bin/python3";

// Writes the graph for these attributes; fails the test (never skips) when it cannot.
std::string make_graph(const Shape& s, int sliding_window = 0) {
  const std::filesystem::path dir = std::filesystem::path(NANOVLLM_BINARY_DIR) / "test-tmp" / "onnx";
  std::filesystem::create_directories(dir);
  const std::string out = (dir / ("pa-" + std::to_string(s.n_heads) + "-" + std::to_string(s.n_kv_heads) + "-" +
                                  std::to_string(s.head_dim) + "-" + (s.bf16_cache ? "bf16" : "f32") + "-w" +
                                  std::to_string(sliding_window) + "-" + std::to_string(getpid()) + ".onnx"))
                              .string();
  const std::string cmd = std::string(kPython) + " " NANOVLLM_SOURCE_DIR "/tests/onnx/make_paged_attention_graph.py " +
                          out + " --num-heads " + std::to_string(s.n_heads) + " --num-kv-heads " +
                          std::to_string(s.n_kv_heads) + " --head-dim " + std::to_string(s.head_dim) +
                          " --sliding-window " + std::to_string(sliding_window) + " --cache-type " +
                          (s.bf16_cache ? "bfloat16" : "float");
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd << "\n(needs Debian's python3-onnx: make deps)";
  return out;
}

Ort::Env& env() {
  nanovllm::onnx_runtime_version();  // the version check, and the C++ API's table
  static Ort::Env e(ORT_LOGGING_LEVEL_WARNING, "paged_attention_op_test");
  return e;
}

Ort::Session open_session(const std::string& path) {
  Ort::Env& e = env();  // first: it sets up the C++ API
  Ort::SessionOptions so;
  so.SetIntraOpNumThreads(1);
  add_paged_attention_op(so);
  return Ort::Session(e, path.c_str(), so);
}

// Random floats that bf16 represents exactly, so both cache dtypes hold the same values.
std::vector<float> bf16_exact(size_t n, std::mt19937& rng, float scale) {
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (float& f : v) {
    uint32_t u;
    f = d(rng);
    std::memcpy(&u, &f, 4);
    u &= 0xffff0000u;
    std::memcpy(&f, &u, 4);
  }
  return v;
}

float cache_value(const std::vector<uint8_t>& cache, bool bf16, size_t i) {
  if (!bf16) return reinterpret_cast<const float*>(cache.data())[i];
  const uint32_t u = uint32_t(reinterpret_cast<const uint16_t*>(cache.data())[i]) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// One call of the op: the metadata of some sequences' rows, as a runner builds it.
struct Call {
  std::vector<float> q, k, v;
  std::vector<int64_t> slots;
  std::vector<int32_t> tables, ctx_lens, qsl{0};
  std::vector<int> seq_ids;  // the test's sequence of each of the call's
  int max_blocks = 0;
};

class PagedAttentionOp {
 public:
  PagedAttentionOp(const Shape& s, uint32_t seed, int sliding_window = 0)
      : s_(s), rng_(seed), session_(open_session(make_graph(s, sliding_window))) {
    const int n = int(s.seqs.size());
    for (auto [cached, fresh] : s.seqs) num_blocks_ += (cached + fresh + s.block_size - 1) / s.block_size + 1;
    std::vector<int> perm(num_blocks_);
    for (int i = 0; i < num_blocks_; ++i) perm[i] = i;
    std::shuffle(perm.begin(), perm.end(), rng_);  // block tables out of order
    const size_t row = size_t(s.n_kv_heads) * s.head_dim, elem = s.bf16_cache ? 2 : 4;
    kc_.assign(size_t(num_blocks_) * s.block_size * row * elem, 0xff);  // NaN in either dtype
    vc_ = kc_;
    int next = 0;
    for (int i = 0; i < n; ++i) {
      const int len = s.seqs[i].first + s.seqs[i].second, nb = (len + s.block_size - 1) / s.block_size + 1;
      tables_.emplace_back(perm.begin() + next, perm.begin() + next + nb);
      next += nb;
      keys_.push_back(bf16_exact(size_t(len) * row, rng_, 2.f));
      vals_.push_back(bf16_exact(size_t(len) * row, rng_, 2.f));
    }
  }

  // Positions [from[i], to[i]) of every sequence i with from < to, in one call.
  Call make_call(const std::vector<int>& from, const std::vector<int>& to) {
    Call c;
    const size_t row = size_t(s_.n_kv_heads) * s_.head_dim, qrow = size_t(s_.n_heads) * s_.head_dim;
    for (const auto& t : tables_) c.max_blocks = std::max(c.max_blocks, int(t.size()));
    for (size_t i = 0; i < tables_.size(); ++i) {
      if (from[i] >= to[i]) continue;
      for (int p = from[i]; p < to[i]; ++p) {
        c.k.insert(c.k.end(), keys_[i].begin() + p * row, keys_[i].begin() + (p + 1) * row);
        c.v.insert(c.v.end(), vals_[i].begin() + p * row, vals_[i].begin() + (p + 1) * row);
        c.slots.push_back(int64_t(tables_[i][p / s_.block_size]) * s_.block_size + p % s_.block_size);
      }
      std::vector<int32_t> padded(c.max_blocks, 0);
      std::copy(tables_[i].begin(), tables_[i].end(), padded.begin());
      c.tables.insert(c.tables.end(), padded.begin(), padded.end());
      c.ctx_lens.push_back(to[i]);
      c.seq_ids.push_back(int(i));
      c.qsl.push_back(c.qsl.back() + to[i] - from[i]);
    }
    c.q = bf16_exact(size_t(c.qsl.back()) * qrow, rng_, 1.f);
    return c;
  }

  // Runs the op on `c` over the test's caches; returns out [T, Hq*D].
  std::vector<float> run(Call& c) {
    const auto cpu = Ort::MemoryInfo::CreateCpu(OrtDeviceAllocator, OrtMemTypeDefault);
    const int64_t T = int64_t(c.slots.size()), B = int64_t(c.ctx_lens.size()), D = s_.head_dim;
    const std::vector<int64_t> cache_shape{num_blocks_, s_.n_kv_heads, s_.block_size, D};
    const auto cache_type = s_.bf16_cache ? ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16 : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    auto f32 = [&](std::vector<float>& v, int64_t width) {
      const std::vector<int64_t> shape{T, width};
      return Ort::Value::CreateTensor<float>(cpu, v.data(), v.size(), shape.data(), 2);
    };
    auto raw = [&](void* p, size_t bytes, std::vector<int64_t> shape, ONNXTensorElementDataType t) {
      return Ort::Value::CreateTensor(cpu, p, bytes, shape.data(), shape.size(), t);
    };
    std::vector<Ort::Value> in;
    in.push_back(f32(c.q, s_.n_heads * D));
    in.push_back(f32(c.k, s_.n_kv_heads * D));
    in.push_back(f32(c.v, s_.n_kv_heads * D));
    in.push_back(raw(kc_.data(), kc_.size(), cache_shape, cache_type));
    in.push_back(raw(vc_.data(), vc_.size(), cache_shape, cache_type));
    in.push_back(raw(c.slots.data(), c.slots.size() * 8, {T}, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64));
    in.push_back(raw(c.tables.data(), c.tables.size() * 4, {B, c.max_blocks}, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32));
    in.push_back(raw(c.ctx_lens.data(), c.ctx_lens.size() * 4, {B}, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32));
    in.push_back(raw(c.qsl.data(), c.qsl.size() * 4, {B + 1}, ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32));
    const char* names[] = {"q", "k", "v", "k_cache", "v_cache", "slot_mapping", "block_tables", "context_lens",
                           "query_start_loc"};
    const char* out_name = "out";
    auto outs = session_.Run(Ort::RunOptions{nullptr}, names, in.data(), in.size(), &out_name, 1);
    const float* o = outs[0].GetTensorData<float>();
    EXPECT_EQ(outs[0].GetTensorTypeAndShapeInfo().GetShape(), (std::vector<int64_t>{T, s_.n_heads * D}));
    return std::vector<float>(o, o + T * s_.n_heads * D);
  }

  // Every output row of `c` against the dense softmax over its sequence's keys [0, position].
  void check_outputs(const Call& c, const std::vector<float>& out) const {
    const int hd = s_.head_dim, group = s_.n_heads / s_.n_kv_heads, row = s_.n_kv_heads * hd;
    const double scale = 1.0 / std::sqrt(double(hd));
    for (size_t b = 0; b < c.seq_ids.size(); ++b) {
      const int i = c.seq_ids[b], q_len = c.qsl[b + 1] - c.qsl[b], start = c.ctx_lens[b] - q_len;
      for (int t = 0; t < q_len; ++t)
        for (int h = 0; h < s_.n_heads; ++h) {
          const size_t at = (size_t(c.qsl[b] + t) * s_.n_heads + h) * hd;
          const int L = start + t + 1, kvh = h / group;
          std::vector<double> sc(L);
          double mx = -INFINITY, sum = 0;
          for (int p = 0; p < L; ++p) {
            double d = 0;
            for (int j = 0; j < hd; ++j) d += double(c.q[at + j]) * keys_[i][size_t(p) * row + kvh * hd + j];
            mx = std::max(mx, sc[p] = d * scale);
          }
          for (double& x : sc) sum += (x = std::exp(x - mx));
          for (int j = 0; j < hd; ++j) {
            double o = 0;
            for (int p = 0; p < L; ++p) o += sc[p] * vals_[i][size_t(p) * row + kvh * hd + j];
            ASSERT_NEAR(out[at + j], o / sum, 2e-5) << "sequence " << i << " row " << t << " head " << h << " dim " << j;
          }
        }
    }
  }

  // The test's own cache buffers hold every written row where [block, kv head, offset] puts it.
  void check_cache(const std::vector<int>& upto) const {
    const int hd = s_.head_dim, bs = s_.block_size, row = s_.n_kv_heads * hd;
    for (size_t i = 0; i < tables_.size(); ++i)
      for (int p = 0; p < upto[i]; ++p)
        for (int h = 0; h < s_.n_kv_heads; ++h)
          for (int j = 0; j < hd; ++j) {
            const size_t at = ((size_t(tables_[i][p / bs]) * s_.n_kv_heads + h) * bs + p % bs) * hd + j;
            ASSERT_EQ(cache_value(kc_, s_.bf16_cache, at), keys_[i][size_t(p) * row + h * hd + j]) << "K seq " << i << " pos " << p;
            ASSERT_EQ(cache_value(vc_, s_.bf16_cache, at), vals_[i][size_t(p) * row + h * hd + j]) << "V seq " << i << " pos " << p;
          }
  }

  // The cached prefixes in a first call, then every sequence's new tokens in a second one.
  void prefix_then_new() {
    const int n = int(s_.seqs.size());
    std::vector<int> zero(n, 0), cached(n), all(n);
    for (int i = 0; i < n; ++i) cached[i] = s_.seqs[i].first, all[i] = cached[i] + s_.seqs[i].second;
    Call first = make_call(zero, cached);
    if (!first.slots.empty()) {
      std::vector<float> out = run(first);
      check_outputs(first, out);
      check_cache(cached);
    }
    Call second = make_call(cached, all);
    std::vector<float> out = run(second);
    check_outputs(second, out);
    check_cache(all);
  }

 private:
  Shape s_;
  std::mt19937 rng_;
  Ort::Session session_;
  int num_blocks_ = 0;
  std::vector<uint8_t> kc_, vc_;
  std::vector<std::vector<int>> tables_;
  std::vector<std::vector<float>> keys_, vals_;
};

class OnnxPagedAttention : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    best_ = kernels::isa_name();
    if (!kernels::force_isa(GetParam())) GTEST_SKIP() << "this CPU lacks " << GetParam();
  }
  void TearDown() override { kernels::force_isa(best_); }
  const char* best_ = nullptr;
};

TEST_P(OnnxPagedAttention, MatchesDenseSoftmaxOverCachedPrefixes) {
  uint32_t seed = 1;
  for (bool bf16 : {false, true}) {
    const std::vector<Shape> shapes = {
        {4, 4, 16, 4, bf16, {{0, 9}, {17, 1}, {5, 6}}},           // MHA: a prefill, a decode, a chunk
        {8, 2, 64, 16, bf16, {{0, 33}, {40, 1}, {3, 3}, {0, 1}}},  // GQA 4:1
        {6, 3, 30, 5, bf16, {{7, 5}, {0, 3}, {12, 1}}},           // odd head_dim / block size, group 2
        {7, 1, 2, 1, bf16, {{3, 2}, {0, 1}}},                     // MQA of 7 heads, one-token blocks
    };
    for (const Shape& s : shapes) {
      SCOPED_TRACE(testing::Message() << "heads " << s.n_heads << "/" << s.n_kv_heads << " head_dim " << s.head_dim
                                      << " block " << s.block_size << (bf16 ? " bf16" : " f32") << " cache");
      PagedAttentionOp op(s, seed++);
      op.prefix_then_new();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isa, OnnxPagedAttention, ::testing::ValuesIn(kernels::kIsaNames));

// A bad input is a failed Run naming the problem, never a read outside the cache.
std::string run_error(PagedAttentionOp& op, Call& c) {
  try {
    op.run(c);
  } catch (const Ort::Exception& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(OnnxPagedAttentionInput, BadMetadataIsAnErrorNamingIt) {
  const Shape s{4, 2, 8, 4, false, {{0, 5}, {0, 3}}};
  PagedAttentionOp op(s, 7);
  Call c = op.make_call({0, 0}, {5, 3});
  Call bad = c;
  bad.tables[1] = 1000;
  EXPECT_NE(run_error(op, bad).find("block id 1000 outside the cache"), std::string::npos) << run_error(op, bad);
  bad = c;
  bad.ctx_lens[0] = 2;  // fewer than its 5 query rows
  EXPECT_NE(run_error(op, bad).find("context_len 2 is below its 5 query rows"), std::string::npos);
  bad = c;
  bad.slots[3] = 1 << 20;
  EXPECT_NE(run_error(op, bad).find("slot 1048576 of token 3 is outside"), std::string::npos);
  bad = c;
  bad.qsl[2] = 7;  // rows do not add up to T
  EXPECT_NE(run_error(op, bad).find("query_start_loc must run from 0 to the token count 8"), std::string::npos);
  // The good call still runs in the same session afterwards.
  std::vector<float> out = op.run(c);
  op.check_outputs(c, out);
}

// Our kernel attends over the whole context: that is the windowed attention only inside the
// window, so a longer context is refused rather than computed differently.
TEST(OnnxPagedAttentionInput, ContextBeyondSlidingWindowIsRefused) {
  PagedAttentionOp op(Shape{2, 2, 8, 4, false, {{0, 6}}}, 3, /*sliding_window=*/4);
  Call inside = op.make_call({0}, {4});
  std::vector<float> out = op.run(inside);
  op.check_outputs(inside, out);
  Call beyond = op.make_call({4}, {6});
  EXPECT_NE(run_error(op, beyond).find("context of 6 tokens exceeds the sliding window 4"), std::string::npos)
      << run_error(op, beyond);
}

TEST(OnnxPagedAttentionInput, BadAttributesFailTheSession) {
  const std::string path = make_graph(Shape{6, 4, 8, 4, false, {}});  // 6 heads over 4 KV heads
  try {
    open_session(path);
    ADD_FAILURE() << "a session with num_heads 6, num_kv_heads 4 was created";
  } catch (const Ort::Exception& e) {
    EXPECT_NE(std::string(e.what()).find("heads must be a multiple of KV heads"), std::string::npos) << e.what();
  }
}

TEST(OnnxRuntimeVersion, TooOldIsRefusedByName) {
  EXPECT_EQ(onnx_runtime_version(), OrtGetApiBase()->GetVersionString());
  EXPECT_NO_THROW(check_onnx_runtime_version("1.32.0"));
  EXPECT_NO_THROW(check_onnx_runtime_version("1.21.0"));
  for (const char* old : {"1.20.1", "0.99.0", "garbage"}) {
    try {
      check_onnx_runtime_version(old);
      ADD_FAILURE() << old << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("ONNX Runtime ") + old + " is too old"), std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace nanovllm
