// Helpers of the model tests: driving a ModelRunner by hand (batches, block tables) and goldens.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "engine/batch.h"
#include "kernels/kernels.h"
#include "nanovllm/error.h"
#include "engine/model_runner.h"
#include "backends/native/native_runner.h"
#ifdef NANOVLLM_HAVE_TORCH
#include "backends/torch/torch_runner.h"
#endif
#ifdef NANOVLLM_HAVE_ONNX
#include "backends/onnx/onnx_runner.h"
#endif

namespace nanovllm::test {

// The kernel table the process started with (restored after tests that force another).
inline const char* best_isa() {
  static const char* const name = kernels::isa_name();
  return name;
}
[[maybe_unused]] static const char* const kInitialIsa = best_isa();

inline std::string data_dir() { return std::string(NANOVLLM_SOURCE_DIR) + "/tests/data/model"; }
inline std::string shared_dir() { return NANOVLLM_SHARED_DIR; }

// The model of `make demo` (SmolLM2-135M-Instruct, GGUF Q4_1 with Q8_0 embeddings): runs
// scripts/fetch-demo-model.sh (a download on the first run only) and returns the file's path.
inline std::string demo_model() {
  static const std::string path = [] {
    const std::string cmd = "bash " + std::string(NANOVLLM_SOURCE_DIR) + "/scripts/fetch-demo-model.sh";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[512];
    while (p && fgets(buf, sizeof buf, p)) out += buf;
    if (p) pclose(p);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }();
  return path;
}

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  return nlohmann::json::parse(in);
}

// A sequence driven by hand: its tokens, how many have K/V in the cache, and its blocks
// (a contiguous range of physical blocks, sized for max_len tokens up front).
struct TestSeq {
  std::vector<int> tokens;
  int num_cached = 0;
  int num_prompt = 0;  // tokens appended after construction are generated ones
  std::vector<int> blocks;

  TestSeq(std::vector<int> prompt, int first_block, int max_len, int block_size)
      : tokens(std::move(prompt)), num_prompt(static_cast<int>(tokens.size())) {
    for (int b = 0; b < (max_len + block_size - 1) / block_size; ++b) blocks.push_back(first_block + b);
  }
  int pending() const { return static_cast<int>(tokens.size()) - num_cached; }
};

// One part of a step: compute `n` next tokens of `seq`; `sample` asks for logits of the last.
struct Part {
  TestSeq* seq;
  int n;
  bool sample;
};

// Runs one forward over the parts (in order) and advances each sequence's num_cached.
inline Logits run_step(ModelRunner& runner, int block_size, const std::vector<Part>& parts) {
  Batch b;
  b.block_size = block_size;
  for (const Part& p : parts) {
    SeqSlice s;
    s.seq_id = static_cast<int64_t>(b.seqs.size());
    s.num_cached = p.seq->num_cached;
    s.num_new = p.n;
    s.num_prompt = p.seq->num_prompt;
    s.sample = p.sample;
    s.block_table = p.seq->blocks;
    for (int i = 0; i < p.n; ++i) {
      b.token_ids.push_back(p.seq->tokens[p.seq->num_cached + i]);
      b.positions.push_back(p.seq->num_cached + i);
    }
    b.seqs.push_back(s);
  }
  Logits out;
  runner.forward(b, &out);
  for (const Part& p : parts) p.seq->num_cached += p.n;
  return out;
}

inline int argmax(const float* row, int n) { return static_cast<int>(std::max_element(row, row + n) - row); }

struct RunnerSetup {
  int block_size = 16;
  int num_blocks = 64;
  std::string kv_dtype = "f32";
  int threads = 0;
  bool prefault = false;
  std::string quantization = "";
};

// Where ctest's fixture onnx_exports (tests/onnx/export-test-models.sh) exported checkpoint `dir`.
inline std::string onnx_export_dir(const std::string& dir) {
  std::string name = dir.substr(dir.find_last_of('/') + 1);
  return std::string(NANOVLLM_BINARY_DIR) + "/onnx-models/" + name;
}

// The backend open_runner builds: "native" unless a test switches it (the invariance tests run
// once per native kernel table, once on the torch backend, f32 on the CPU, and once on the onnx
// backend, with the checkpoint's export).
inline std::string& test_backend() {
  static std::string name = "native";
  return name;
}

inline std::unique_ptr<ModelRunner> open_runner(const std::string& dir, const RunnerSetup& s) {
#ifdef NANOVLLM_HAVE_TORCH
  if (test_backend() == "torch") {
    NV_CHECK(s.quantization.empty(), "the torch backend has no int8 weights");
    auto r = make_torch_runner(dir, {.device = "cpu", .dtype = "f32", .kv_cache_dtype = s.kv_dtype, .threads = s.threads});
    r->allocate_kv_cache(s.num_blocks, s.block_size);
    return r;
  }
#endif
#ifdef NANOVLLM_HAVE_ONNX
  if (test_backend() == "onnx") {
    NV_CHECK(s.quantization.empty() && s.kv_dtype == "f32", "the exported graphs are f32 with f32 caches");
    auto r = make_onnx_runner(onnx_export_dir(dir), {.threads = s.threads});
    r->allocate_kv_cache(s.num_blocks, s.block_size);
    return r;
  }
#endif
  NV_CHECK(test_backend() == "native", "backend not compiled in");
  NativeRunnerOptions o;
  o.kv_cache_dtype = s.kv_dtype;
  o.threads = s.threads;
  o.prefault_kv_cache = s.prefault;
  o.quantization = s.quantization;
  auto r = make_native_runner(dir, o);
  r->allocate_kv_cache(s.num_blocks, s.block_size);
  return r;
}

// Prefills the pending tokens of seq in chunks of `chunk` (0 = all at once), sampling the end
// of every chunk; returns those logits rows (the last one is the prompt's last position).
inline std::vector<std::vector<float>> prefill(ModelRunner& r, int block_size, TestSeq& seq, int chunk) {
  std::vector<std::vector<float>> rows;
  while (seq.pending() > 0) {
    int n = chunk > 0 ? std::min(chunk, seq.pending()) : seq.pending();
    Logits l = run_step(r, block_size, {{&seq, n, true}});
    rows.emplace_back(l.row(0), l.row(0) + l.vocab);
  }
  return rows;
}

// Greedy decoding: prompt prefilled in chunks, then one decode slice per step.
inline std::vector<int> greedy(ModelRunner& r, int block_size, TestSeq& seq, int n_new, int chunk) {
  std::vector<int> out;
  std::vector<float> last = prefill(r, block_size, seq, chunk).back();
  for (int i = 0; i < n_new; ++i) {
    out.push_back(argmax(last.data(), static_cast<int>(last.size())));
    seq.tokens.push_back(out.back());
    if (i + 1 == n_new) break;
    Logits l = run_step(r, block_size, {{&seq, 1, true}});
    last.assign(l.row(0), l.row(0) + l.vocab);
  }
  return out;
}

inline std::vector<int> greedy_from(const std::string& dir, const std::vector<int>& prompt, int n_new,
                                    int chunk, const RunnerSetup& s) {
  auto r = open_runner(dir, s);
  TestSeq seq(prompt, 0, static_cast<int>(prompt.size()) + n_new, s.block_size);
  return greedy(*r, s.block_size, seq, n_new, chunk);
}

// Helpers of the suites that hold another backend against the native runner (tests/torch, tests/onnx).

// Every checkpoint of tests/data/model, then TinyStories-656K.
inline std::vector<std::string> test_checkpoint_dirs() {
  std::vector<std::string> dirs;
  for (const auto& e : std::filesystem::directory_iterator(data_dir()))
    if (e.is_directory()) dirs.push_back(e.path().string());
  std::sort(dirs.begin(), dirs.end());
  dirs.push_back(shared_dir() + "/models/tinystories-656k");
  return dirs;
}

// A runner of `backend` on dir with 64 blocks of f32 KV cache.
inline std::unique_ptr<ModelRunner> runner(const std::string& backend, const std::string& dir, int block_size) {
  test_backend() = backend;
  auto r = open_runner(dir, {.block_size = block_size, .num_blocks = 64, .kv_dtype = "f32"});
  test_backend() = "native";
  return r;
}

// Largest |a - b| over the row, as a fraction of the reference row's range.
inline double relative_error(const float* ref, const float* got, int n) {
  const auto [lo, hi] = std::minmax_element(ref, ref + n);
  double worst = 0;
  for (int i = 0; i < n; ++i) worst = std::max(worst, static_cast<double>(std::abs(ref[i] - got[i])));
  return worst / std::max(1e-30, static_cast<double>(*hi - *lo));
}

}  // namespace nanovllm::test
