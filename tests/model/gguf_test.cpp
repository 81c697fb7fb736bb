// The GGUF reader (every metadata type, limits, corrupt and truncated files) and GGUF models:
// our test checkpoints written as llama.cpp's converter writes them (names, ggml dims order,
// the llama q/k row permutation, rope_freqs) must run exactly as the safetensors originals.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "gguf_convert.h"
#include "gguf_writer.h"
#include "model/gguf.h"
#include "model/gguf_model.h"
#include "model_test_util.h"
#include "nanovllm/error.h"

namespace nanovllm::test {
namespace {

namespace fs = std::filesystem;
using W = GgufWriter;

std::string tmp_path(const std::string& name) {
  const std::string d = std::string(NANOVLLM_BINARY_DIR) + "/test-tmp/gguf";
  fs::create_directories(d);
  return d + "/" + name;
}

std::string write_bytes(const std::string& name, const std::string& bytes) {
  const std::string p = tmp_path(name);
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
  return p;
}

std::string error_of(const std::string& path) {
  try {
    GgufFile f(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(GgufReader, ReadsEveryValueType) {
  W w;
  w.u32("a.u32", 7);
  w.i32("a.i32", -5);
  w.f32("a.f32", 1.5f);
  w.boolean("a.bool", true);
  w.u64("a.u64", 1ull << 40);
  w.str("a.str", "héllo");
  w.strings("a.strs", {"x", "", "zz"});
  w.array<float>("a.f32s", 6, {0.25f, -1});
  w.array<int32_t>("a.i32s", 5, {3, -4});
  std::string nested;  // an array of two arrays of u8
  W::put<uint32_t>(nested, 9);
  W::put<uint32_t>(nested, 9);
  W::put<uint64_t>(nested, 2);
  for (int k = 0; k < 2; ++k) {
    W::put<uint32_t>(nested, 0);
    W::put<uint64_t>(nested, 1);
    W::put<uint8_t>(nested, static_cast<uint8_t>(10 + k));
  }
  w.raw("a.nested", nested);
  std::string small;  // u8, i8, u16, i16, i64, f64
  for (auto [type, bytes] : std::vector<std::pair<uint32_t, std::string>>{
           {0, std::string("\xff", 1)}, {1, std::string("\xfe", 1)}, {2, std::string("\x01\x02", 2)},
           {3, std::string("\xff\xff", 2)}, {11, std::string("\xf6\xff\xff\xff\xff\xff\xff\xff", 8)}}) {
    std::string v;
    W::put<uint32_t>(v, type);
    w.raw("t" + std::to_string(type), v + bytes);
  }
  std::string f64;
  W::put<uint32_t>(f64, 12);
  W::put<double>(f64, 0.125);
  w.raw("a.f64", f64);
  w.u32("general.alignment", 64);
  w.tensor_f32("v", {3, 2}, {1, 2, 3, 4, 5, 6});
  w.tensor_f32("n", {5}, {9, 8, 7, 6, 5});
  const std::string p = tmp_path("types.gguf");
  std::ofstream(p, std::ios::binary) << w.bytes(3, 64);
  GgufFile f(p);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.get_uint("a.u32"), 7u);
  EXPECT_EQ(f.find("a.i32")->i, -5);
  EXPECT_EQ(f.get_float("a.f32"), 1.5);
  EXPECT_EQ(f.get_bool("a.bool"), true);
  EXPECT_EQ(f.get_uint("a.u64"), 1ull << 40);
  EXPECT_EQ(f.get_string("a.str"), "héllo");
  const auto* strs = f.get_array("a.strs", GgufType::STRING);
  ASSERT_EQ(strs->size(), 3u);
  EXPECT_EQ((*strs)[2].s, "zz");
  EXPECT_EQ((*f.get_array("a.f32s", GgufType::F32))[0].f, 0.25);
  EXPECT_EQ((*f.get_array("a.i32s", GgufType::I32))[1].i, -4);
  const GgufValue* n = f.find("a.nested");
  ASSERT_EQ(n->arr.size(), 2u);
  EXPECT_EQ(n->arr[1].arr[0].u, 11u);
  EXPECT_EQ(f.find("t0")->u, 255u);
  EXPECT_EQ(f.find("t1")->i, -2);
  EXPECT_EQ(f.find("t2")->u, 0x0201u);
  EXPECT_EQ(f.find("t3")->i, -1);
  EXPECT_EQ(f.find("t11")->i, -10);
  EXPECT_EQ(f.get_float("a.f64"), 0.125);
  const GgufTensor* v = f.find_tensor("v");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->ne, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(v->rows(), 2);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(v->data) % 64, 0u);
  EXPECT_EQ(reinterpret_cast<const float*>(f.find_tensor("n")->data)[4], 5.0f);
  // Wrong types are errors naming the key.
  EXPECT_THROW(f.get_string("a.u32"), Error);
  EXPECT_THROW(f.get_uint("a.i32"), Error);
  EXPECT_THROW(f.get_array("a.strs", GgufType::I32), Error);
  // Version 2 has the same layout.
  const std::string p2 = tmp_path("types-v2.gguf");
  std::ofstream(p2, std::ios::binary) << w.bytes(2, 64);
  EXPECT_EQ(GgufFile(p2).version(), 2u);
}

W small_file() {
  W w;
  w.str("general.architecture", "llama");
  w.strings("tokenizer.ggml.tokens", {"a", "b", "c"});
  w.tensor_f32("x", {4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  w.tensor_f32("y", {8}, {1, 2, 3, 4, 5, 6, 7, 8});
  return w;
}

// Every prefix of a valid file is refused with an Error (never a crash or a read past the end),
// up to where the last tensor's bytes end.
TEST(GgufReader, EveryTruncationIsAnError) {
  const std::string full = small_file().bytes();
  const size_t data_end = full.size();  // the last tensor (32 bytes) fills its aligned slot
  for (size_t n = 0; n < data_end; ++n) {
    const std::string p = write_bytes("cut.gguf", full.substr(0, n));
    const std::string e = error_of(p);
    EXPECT_NE(e, "") << "a file cut at " << n << " of " << full.size() << " bytes loaded";
    EXPECT_NE(e.find(p), std::string::npos) << e;
  }
  EXPECT_EQ(error_of(write_bytes("whole.gguf", full)), "");
}

// Corrupt headers, each an Error naming the file and the field.
TEST(GgufReader, CorruptFieldsAreNamed) {
  const std::string good = small_file().bytes();
  auto patched = [&](size_t at, const std::string& bytes) {
    std::string b = good;
    b.replace(at, bytes.size(), bytes);
    return b;
  };
  auto u64 = [](uint64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); };
  auto u32 = [](uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); };
  // Header: magic 0, version 4, tensor count 8, kv count 16, first key at 24.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {patched(0, "GGUX"), "not a GGUF file"},
      {patched(4, u32(1)), "GGUF version 1 is not supported"},
      {patched(8, u64(1ull << 40)), "tensor count"},
      {patched(8, u64(1000)), "tensor count 1000 cannot fit"},
      {patched(16, u64(1ull << 20)), "metadata count"},
      {patched(24, u64(1ull << 62)), "metadata key 0"},  // a key longer than the file
      {patched(24 + 8 + 20, u32(13)), "unknown value type 13"},
      {patched(24 + 8 + 20 + 4, u64(1ull << 40)), "exceeds the limit"},  // string length
  };
  for (const auto& [bytes, want] : cases) {
    const std::string p = write_bytes("corrupt.gguf", bytes);
    const std::string e = error_of(p);
    EXPECT_NE(e.find(want), std::string::npos) << "want '" << want << "', got: " << e;
    EXPECT_NE(e.find(p), std::string::npos) << e;
  }
  // Tensor infos: n_dims, dims, type, offset.
  auto with_tensor = [](uint32_t n_dims, uint64_t dim, uint32_t type, uint64_t offset, const std::string& extra = "") {
    W w;
    std::string b = w.bytes();  // no tensors, no kv: patch in one tensor info by hand
    b.replace(8, 8, std::string("\x01\0\0\0\0\0\0\0", 8));
    std::string info;
    W::put_str(info, "t");
    W::put<uint32_t>(info, n_dims);
    for (uint32_t d = 0; d < std::min(n_dims, 4u); ++d) W::put<uint64_t>(info, dim);
    W::put<uint32_t>(info, type);
    W::put<uint64_t>(info, offset);
    b = b.substr(0, 24) + info;
    b.append((32 - b.size() % 32) % 32, '\0');
    return b + extra + std::string(64, '\0');
  };
  const std::vector<std::pair<std::string, std::string>> tensor_cases = {
      {with_tensor(5, 2, 0, 0), "n_dims 5"},
      {with_tensor(0, 2, 0, 0), "n_dims 0"},
      {with_tensor(1, 0, 0, 0), "dim 0 = 0"},
      {with_tensor(1, 2, 99, 0), "unknown or unsupported ggml type 99"},
      {with_tensor(1, 4, 0, 8), "not a multiple of the alignment"},
      {with_tensor(1, 4, 0, 1ull << 50), "exceed the file's"},
      {with_tensor(4, 1ull << 39, 0, 0), "too large"},
      {with_tensor(1, 48, 8, 0), "not a whole number of Q8_0 blocks"},
  };
  for (const auto& [bytes, want] : tensor_cases) {
    const std::string p = write_bytes("corrupt-tensor.gguf", bytes);
    const std::string e = error_of(p);
    EXPECT_NE(e.find(want), std::string::npos) << "want '" << want << "', got: " << e;
    EXPECT_NE(e.find("tensor 't'"), std::string::npos) << e;
  }
  // A tensor name given twice.
  W overlap;
  overlap.tensor_f32("a", {8}, std::vector<float>(8));
  overlap.tensor_f32("a", {8}, std::vector<float>(8));
  EXPECT_NE(error_of(write_bytes("twice.gguf", overlap.bytes())).find("tensor 'a' appears twice"), std::string::npos);
}

// ---- GGUF models --------------------------------------------------------------------------

// tests/data/model/<name> as llama.cpp's converter would write it (gguf_convert.h).
std::string convert(const std::string& name, const std::string& f32_suffix = "") {
  return convert_to_gguf(name, tmp_path(name + f32_suffix + ".gguf"), {.f32_suffix = f32_suffix});
}

std::vector<std::vector<float>> logits_of(const std::string& model, const std::vector<int>& prompt) {
  auto r = open_runner(model, {});
  TestSeq seq(prompt, 0, static_cast<int>(prompt.size()), 16);
  return prefill(*r, 16, seq, 1);  // one row per position
}

// Each architecture's checkpoint, written as GGUF, loads into the same config and computes the
// same logits bit for bit, and the golden (transformers) greedy ids.
TEST(GgufModel, ConvertedCheckpointsRunAsTheOriginals) {
  for (const char* name : {"llama-f32", "llama-f16", "mistral-f32", "qwen2-f32", "qwen3-f32", "qwen3-bf16"}) {
    SCOPED_TRACE(name);
    const std::string dir = data_dir() + "/" + name, gguf = convert(name);
    const ModelConfig want = load_model_config(dir);
    const ModelConfig got = gguf_model_config(GgufFile(gguf));
    EXPECT_EQ(got.architecture, want.architecture == "MistralForCausalLM" ? "LlamaForCausalLM" : want.architecture);
    EXPECT_EQ(got.num_layers, want.num_layers);
    EXPECT_EQ(got.num_kv_heads, want.num_kv_heads);
    EXPECT_EQ(got.head_dim, want.head_dim);
    EXPECT_EQ(got.tie_word_embeddings, want.tie_word_embeddings);
    EXPECT_EQ(got.qkv_bias, want.qkv_bias);
    EXPECT_EQ(got.qk_norm, want.qk_norm);
    EXPECT_EQ(rope_inv_freq(got), rope_inv_freq(want));
    const nlohmann::json golden = read_json(data_dir() + "/" + name + ".golden.json");
    for (const auto& p : golden["prompts"]) {
      const std::vector<int> prompt = p["prompt_ids"].get<std::vector<int>>();
      EXPECT_EQ(logits_of(gguf, prompt), logits_of(dir, prompt));
      const auto ids = p["greedy_ids"].get<std::vector<int>>();
      EXPECT_EQ(greedy_from(gguf, prompt, 4, 0, {}), std::vector<int>(ids.begin(), ids.begin() + 4));
    }
  }
}

// A file whose q/k/v (or gate/up) differ in dtype runs them as separate matmuls: k and gate
// in f32 beside f16 siblings give the logits of the all-f16 file (the f16 values are exact in
// f32; only the order of the sums may differ).
TEST(GgufModel, MixedDtypesStaySeparate) {
  const std::string same = convert("llama-f16");
  for (const std::string& suffix : {std::string("attn_k.weight"), std::string("ffn_gate.weight")}) {
    const std::string mixed = convert("llama-f16", suffix);
    const std::vector<int> prompt = {1, 9, 165, 176, 119};
    const auto a = logits_of(same, prompt), b = logits_of(mixed, prompt);
    ASSERT_EQ(a.size(), b.size());
    for (size_t r = 0; r < a.size(); ++r)
      for (size_t i = 0; i < a[r].size(); ++i) ASSERT_NEAR(a[r][i], b[r][i], 1e-4) << suffix << " row " << r << " " << i;
  }
}

// Quantized matrices (Q8_0) take one path for prompt tokens and another for generated ones
// (kernels::RowRole): a prompt's logits must not depend on what shares its steps. The 28-token
// prompt prefilled alone in one step, and again in chunks of 5, 1, 20 and 2 beside other
// sequences' decode rows (before and after its rows, so its rows sit at other places of the
// kernels' register tiles): the same logits bit for bit, and so is the next generated token's.
// A switch by the number of rows in the matmul (as the quantized GEMM once had, from 16 rows
// on) fails this.
TEST(GgufModel, QuantizedPromptRowsDoNotDependOnTheStep) {
  GgufConvertOptions q8_0;
  q8_0.q8_0 = true;
  const std::string gguf = convert_to_gguf("llama-f32", tmp_path("llama-f32-q8_0.gguf"), q8_0);
  const nlohmann::json golden = read_json(data_dir() + "/llama-f32.golden.json");
  std::vector<int> prompt;
  for (const auto& p : golden["prompts"])
    for (int id : p["prompt_ids"].get<std::vector<int>>()) prompt.push_back(id);
  ASSERT_EQ(prompt.size(), 28u);
  for (const char* isa : kernels::kIsaNames) {
    if (!kernels::force_isa(isa)) continue;  // a table this CPU lacks
    SCOPED_TRACE(isa);
    const int bs = 4;
    auto r = open_runner(gguf, {.block_size = bs, .num_blocks = 96, .kv_dtype = "f32"});
    TestSeq alone(prompt, 0, 40, bs);
    const std::vector<float> want = run_step(*r, bs, {{&alone, 28, true}}).data;
    alone.tokens.push_back(argmax(want.data(), static_cast<int>(want.size())));
    const std::vector<float> want_next = run_step(*r, bs, {{&alone, 1, true}}).data;
    // Two other sequences, prefilled, then decoding beside the prompt's chunks.
    TestSeq a({1, 9, 165, 176, 119}, 16, 40, bs), b({1, 7, 42}, 32, 40, bs), p(prompt, 48, 40, bs);
    run_step(*r, bs, {{&a, 5, true}, {&b, 3, true}});
    std::vector<float> got;
    for (int chunk : {5, 1, 20, 2}) {
      a.tokens.push_back(11);
      b.tokens.push_back(12);
      const bool last = chunk == p.pending();
      const Logits l = run_step(*r, bs, {{&a, 1, true}, {&p, chunk, last}, {&b, 1, true}});
      if (last) got.assign(l.row(1), l.row(1) + l.vocab);
    }
    EXPECT_EQ(got, want) << "the prompt's last logits beside decode rows";
    p.tokens.push_back(alone.tokens.back());
    a.tokens.push_back(13);
    const Logits l = run_step(*r, bs, {{&a, 1, true}, {&p, 1, true}});
    EXPECT_EQ(std::vector<float>(l.row(1), l.row(1) + l.vocab), want_next) << "the first generated token";
  }
  kernels::force_isa(best_isa());
}

TEST(GgufModel, UnsupportedArchitectureIsNamed) {
  W x;
  x.str("general.architecture", "gemma3");
  const std::string p = tmp_path("gemma.gguf");
  x.write(p);
  try {
    gguf_model_config(GgufFile(p));
    FAIL() << "gemma3 loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unsupported architecture 'gemma3'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace nanovllm::test
