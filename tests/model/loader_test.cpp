// Loading: sharded and aliased checkpoints, config parsing, and clear errors for damaged input.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "nanovllm/error.h"
#include "model/llama2c.h"
#include "model/model_config.h"
#include "model/safetensors.h"
#include "model/weights.h"
#include "model_test_util.h"

namespace nanovllm::test {
namespace {

namespace fs = std::filesystem;

std::string tmp_dir(const std::string& name) {
  std::string d = std::string(NANOVLLM_BINARY_DIR) + "/test-tmp/" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// Copies a golden checkpoint to `name`, rewriting model.safetensors with `edit` applied to
// the tensor list (drop, rename or reshape entries; data is copied by original name).
std::string edited_copy(const std::string& name, const std::function<void(std::vector<TensorSpec>&)>& edit) {
  const std::string src = data_dir() + "/llama-f32", dst = tmp_dir(name);
  fs::copy(src + "/config.json", dst + "/config.json");
  SafetensorsFile in(src + "/model.safetensors");
  std::vector<TensorSpec> specs;
  std::vector<const TensorInfo*> data;
  for (const auto& [n, t] : in.tensors()) {
    specs.push_back({n, t.dtype, t.shape});
    data.push_back(&t);
  }
  std::vector<TensorSpec> edited = specs;
  edit(edited);
  write_safetensors(dst + "/model.safetensors", edited, [&](size_t i, std::span<uint8_t> out) {
    for (size_t k = 0; k < specs.size(); ++k)
      if (specs[k].name == edited[i].name) std::memcpy(out.data(), data[k]->data, std::min(out.size(), data[k]->nbytes));
  });
  return dst;
}

// Runs `load` and returns the Error's message ("" when nothing was thrown).
std::string error_of(const std::function<void()>& load) {
  try {
    load();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string load_error(const std::string& dir) {
  return error_of([&] { make_native_runner(dir); });
}

TEST(Loader, MissingTensorNamesFileAndTensor) {
  const char* victim = "model.layers.1.self_attn.k_proj.weight";
  std::string dir = edited_copy("missing", [&](auto& specs) {
    std::erase_if(specs, [&](const TensorSpec& t) { return t.name == victim; });
  });
  std::string msg = load_error(dir);
  EXPECT_NE(msg.find(dir + "/model.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find(victim), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
}

TEST(Loader, WrongShapeNamesFileTensorAndShapes) {
  std::string dir = edited_copy("shape", [](auto& specs) {
    for (TensorSpec& t : specs)
      if (t.name == "model.layers.0.mlp.down_proj.weight") t.shape = {128, 64};  // transposed
  });
  std::string msg = load_error(dir);
  EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.layers.0.mlp.down_proj.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[128, 64]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected [64, 128]"), std::string::npos) << msg;
}

TEST(Loader, TruncatedFileNamesATensor) {
  std::string dir = edited_copy("truncated", [](auto&) {});
  const std::string file = dir + "/model.safetensors";
  fs::resize_file(file, fs::file_size(file) - 1000);
  std::string msg = load_error(dir);
  EXPECT_NE(msg.find(file), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tensor '"), std::string::npos) << msg;
}

TEST(Loader, BadHeader) {
  std::string dir = edited_copy("badheader", [](auto&) {});
  const std::string file = dir + "/model.safetensors";
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    uint64_t huge = 1ull << 40;
    f.write(reinterpret_cast<const char*>(&huge), 8);
  }
  std::string msg = load_error(dir);
  EXPECT_NE(msg.find(file), std::string::npos) << msg;
  EXPECT_NE(msg.find("header length"), std::string::npos) << msg;
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    uint64_t small = 16;  // cuts the JSON short
    f.write(reinterpret_cast<const char*>(&small), 8);
  }
  msg = load_error(dir);
  EXPECT_NE(msg.find("invalid JSON"), std::string::npos) << msg;
}

TEST(Loader, UnsupportedArchitecture) {
  std::string dir = edited_copy("arch", [](auto&) {});
  nlohmann::json cfg = read_json(dir + "/config.json");
  cfg["architectures"] = {"GPT2LMHeadModel"};
  std::ofstream(dir + "/config.json") << cfg.dump();
  std::string msg = load_error(dir);
  EXPECT_NE(msg.find(dir + "/config.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unsupported architecture 'GPT2LMHeadModel'"), std::string::npos) << msg;
}

TEST(Loader, NoWeightsFile) {
  std::string dir = tmp_dir("noweights");
  fs::copy(data_dir() + "/llama-f32/config.json", dir + "/config.json");
  EXPECT_NE(load_error(dir).find("no model.safetensors"), std::string::npos);
}

TEST(Loader, BadKvCacheDtype) {
  EXPECT_NE(error_of([] { make_native_runner(data_dir() + "/llama-f32", {.kv_cache_dtype = "f16"}); }).find("f16"),
            std::string::npos);
}

TEST(Loader, BadQuantization) {
  EXPECT_NE(error_of([] { make_native_runner(data_dir() + "/llama-f32", {.quantization = "int4"}); }).find("int4"),
            std::string::npos);
}

// Two shards and an index, as save_pretrained writes big models: same outputs as one file.
TEST(Loader, ShardedCheckpoint) {
  const std::string src = data_dir() + "/llama-f32", dst = tmp_dir("sharded");
  fs::copy(src + "/config.json", dst + "/config.json");
  SafetensorsFile in(src + "/model.safetensors");
  std::vector<TensorSpec> shard[2];
  std::vector<const TensorInfo*> data[2];
  nlohmann::json weight_map;
  for (const auto& [n, t] : in.tensors()) {
    int s = n.find("layers.1.") != std::string::npos || n == "lm_head.weight";
    shard[s].push_back({n, t.dtype, t.shape});
    data[s].push_back(&t);
    weight_map[n] = "model-0000" + std::to_string(s + 1) + "-of-00002.safetensors";
  }
  for (int s = 0; s < 2; ++s)
    write_safetensors(dst + "/model-0000" + std::to_string(s + 1) + "-of-00002.safetensors", shard[s],
                      [&](size_t i, std::span<uint8_t> out) { std::memcpy(out.data(), data[s][i]->data, out.size()); });
  std::ofstream(dst + "/model.safetensors.index.json") << nlohmann::json{{"metadata", {}}, {"weight_map", weight_map}}.dump();
  const nlohmann::json golden = read_json(src + ".golden.json");
  const auto& p = golden["prompts"][1];
  std::vector<int> want = p["greedy_ids"].get<std::vector<int>>();
  EXPECT_EQ(greedy_from(dst, p["prompt_ids"].get<std::vector<int>>(), 16, 0, {.kv_dtype = "f32"}), want);
}

TEST(Loader, ShardsMustNotRepeatTensorsOrPointElsewhere) {
  const std::string dst = tmp_dir("dup-shards");
  const TensorSpec norm{"model.norm.weight", kernels::DType::F32, {4}}, embed{"model.embed_tokens.weight", kernels::DType::F32, {4}};
  auto zeros = [](size_t, std::span<uint8_t> out) { std::fill(out.begin(), out.end(), 0); };
  write_safetensors(dst + "/a.safetensors", {norm}, zeros);
  write_safetensors(dst + "/b.safetensors", {norm, embed}, zeros);
  auto index = [&](const nlohmann::json& weight_map) {
    std::ofstream(dst + "/model.safetensors.index.json") << nlohmann::json{{"weight_map", weight_map}}.dump();
    return error_of([&] { Checkpoint c(dst); });
  };
  EXPECT_NE(index({{"model.norm.weight", "a.safetensors"}, {"model.embed_tokens.weight", "b.safetensors"}})
                .find("tensor 'model.norm.weight' is in both"),
            std::string::npos);
  EXPECT_NE(index({{"model.norm.weight", "../dup-shards/a.safetensors"}}).find("is not a file name"), std::string::npos);
  EXPECT_NE(index({{"model.norm.weight", 7}}).find("is not a file name"), std::string::npos);
}

// The tensor list make-model writes is exactly the one transformers saved for each architecture.
TEST(Loader, HfTensorSpecsMatchTransformersCheckpoints) {
  for (const char* name : {"llama-f32", "mistral-f32", "qwen2-f32", "qwen3-f32", "qwen3-bf16"}) {
    const std::string dir = data_dir() + "/" + name;
    SafetensorsFile file(dir + "/model.safetensors");
    std::map<std::string, std::vector<int64_t>> stored, specs;
    for (const auto& [n, t] : file.tensors()) stored[n] = t.shape;
    for (const TensorSpec& t : hf_tensor_specs(load_model_config(dir), kernels::DType::F32)) specs[t.name] = t.shape;
    EXPECT_EQ(specs, stored) << name;
  }
}

TEST(ModelConfig, ArchitectureOptions) {
  ModelConfig q3 = load_model_config(data_dir() + "/qwen3-f32");
  EXPECT_TRUE(q3.qk_norm);
  EXPECT_FALSE(q3.qkv_bias);
  EXPECT_EQ(q3.head_dim, 32);  // explicit, not hidden / heads
  EXPECT_TRUE(q3.tie_word_embeddings);
  ModelConfig q2 = load_model_config(data_dir() + "/qwen2-f32");
  EXPECT_TRUE(q2.qkv_bias);
  EXPECT_FALSE(q2.o_bias);
  ModelConfig llama = load_model_config(data_dir() + "/llama-f32");
  EXPECT_DOUBLE_EQ(llama.rope_scaling.factor, 4.0);
  EXPECT_DOUBLE_EQ(llama.rope_theta, 50000.0);
  EXPECT_EQ(llama.rope_scaling.original_max_position_embeddings, 64);
  EXPECT_FALSE(llama.tie_word_embeddings);
}

// Real published shapes (transformers 4 style: rope_theta + rope_scaling, torch_dtype).
TEST(ModelConfig, RealConfigs) {
  ModelConfig l = load_model_config_file(shared_dir() + "/configs/llama-3.2-1b.json");
  EXPECT_EQ(l.head_dim, 64);
  EXPECT_DOUBLE_EQ(l.rope_scaling.factor, 32.0);
  EXPECT_DOUBLE_EQ(l.rope_theta, 500000.0);
  EXPECT_EQ(l.eos_token_ids, std::vector<int>{128001});
  ModelConfig q = load_model_config_file(shared_dir() + "/configs/qwen2.5-0.5b.json");
  EXPECT_EQ(q.head_dim, 64);  // 896 / 14
  EXPECT_TRUE(q.qkv_bias);
  EXPECT_EQ(q.max_position_embeddings, 32768);  // use_sliding_window false: window ignored
}

// Llama 3 scaling keeps high frequencies, divides low ones by factor and blends in between;
// values printed by transformers' _compute_llama3_parameters for head_dim 16, theta 50000,
// factor 4, low 1, high 4, original context 64.
TEST(ModelConfig, Llama3InvFreq) {
  std::vector<float> f = rope_inv_freq(load_model_config(data_dir() + "/llama-f32"));
  const float want[8] = {1.0f, 0.1702933f, 0.016718509f, 0.0043234085f, 0.001118034f,
                         0.00028912374f, 7.4767442e-05f, 1.933487e-05f};
  ASSERT_EQ(f.size(), 8u);
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(f[i], want[i], 1e-6 * want[i]) << i;
}

// A safetensors file written by hand: `header` as given (so names may repeat), then `data_bytes`.
std::string raw_safetensors(const std::string& name, const std::string& header, size_t data_bytes) {
  const std::string file = tmp_dir(name) + "/model.safetensors";
  std::ofstream out(file, std::ios::binary);
  const uint64_t len = header.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out << header << std::string(data_bytes, '\0');
  return file;
}

std::string open_error(const std::string& name, const std::string& header, size_t data_bytes) {
  const std::string file = raw_safetensors(name, header, data_bytes);
  return error_of([&] { SafetensorsFile f(file); });
}

TEST(Safetensors, TensorsMustNotRepeatOverlapOrLeaveGaps) {
  const std::string a04 = R"("a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]})";
  const std::string b48 = R"("b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]})";
  EXPECT_EQ(open_error("st-ok", "{" + a04 + ", " + b48 + "}", 8), "");
  // The same name twice: the parsed header kept only the last entry.
  const std::string a48 = R"("a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]})";
  EXPECT_NE(open_error("st-dup", "{" + a04 + ", " + a48 + "}", 8).find("tensor 'a' appears twice"), std::string::npos);
  // Two names for the same bytes, a tensor inside another, bytes of no tensor.
  const std::string b04 = R"("b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]})";
  EXPECT_NE(open_error("st-same", "{" + a04 + ", " + b04 + "}", 4).find("tensors 'a' and 'b' overlap"), std::string::npos);
  const std::string c08 = R"("c": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})";
  EXPECT_NE(open_error("st-inside", "{" + c08 + ", " + b48 + "}", 8).find("overlap"), std::string::npos);
  EXPECT_NE(open_error("st-gap", "{" + b48 + "}", 8).find("4 bytes before tensor 'b' belong to no tensor"),
            std::string::npos);
  EXPECT_NE(open_error("st-tail", "{" + a04 + "}", 8).find("the last 4 data bytes belong to no tensor"),
            std::string::npos);
}

TEST(Safetensors, ShapesAndOffsetsAreValidated) {
  // 2^32 * 2^32 * 4 bytes wrapped around to 0 and matched an empty range (signed overflow in numel).
  EXPECT_NE(open_error("st-huge", R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})", 0)
                .find("tensor 'a': shape [4294967296,4294967296] is too large"),
            std::string::npos);
  EXPECT_NE(open_error("st-neg", R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4).find("shape [-1]"),
            std::string::npos);
  EXPECT_NE(open_error("st-negoff", R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", 4)
                .find("data_offsets [-4,0] is not a pair of non-negative integers"),
            std::string::npos);
  EXPECT_NE(open_error("st-meta", R"({"__metadata__": [1], "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 4)
                .find("__metadata__ is not an object"),
            std::string::npos);
  const std::string deep = "{\"a\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_NE(open_error("st-deep", deep, 0).find("nested deeper than"), std::string::npos);
}

// A copy of llama-f32 whose config.json has `edit` applied; the load error ("" if it loads).
std::string config_error(const std::string& name, const std::function<void(nlohmann::json&)>& edit) {
  std::string dir = edited_copy(name, [](auto&) {});
  nlohmann::json cfg = read_json(dir + "/config.json");
  edit(cfg);
  std::ofstream(dir + "/config.json") << cfg.dump();
  return load_error(dir);
}

TEST(ModelConfig, FieldsOutOfRangeAreErrorsNamingTheField) {
  EXPECT_EQ(config_error("cfg-ok", [](auto&) {}), "");
  // vocab_size 2^32 + 300 and hidden_size 2^32 + 64 were truncated to the checkpoint's 300 and
  // 64, and the model loaded.
  const std::pair<const char*, nlohmann::json> cases[] = {
      {"vocab_size", 4294967596LL}, {"hidden_size", 4294967360LL}, {"num_hidden_layers", -1},
      {"intermediate_size", -128},  {"num_attention_heads", 2147483648LL}, {"max_position_embeddings", -256},
      {"bos_token_id", 1LL << 40},  {"eos_token_id", nlohmann::json::array({2, -7})}, {"head_dim", "16"}};
  for (const auto& [field, value] : cases) {
    const std::string msg = config_error("cfg-range", [&](auto& c) { c[field] = value; });
    EXPECT_NE(msg.find("config.json: field '" + std::string(field) + "'"), std::string::npos) << field << ": " << msg;
  }
}

TEST(ModelConfig, ValuesTheDecoderCannotUseAreErrors) {
  auto error = [](const char* field, const nlohmann::json& value) {
    return config_error("cfg-value", [&](auto& c) {
      if (std::string(field).starts_with("rope_parameters.")) c["rope_parameters"][std::string(field).substr(16)] = value;
      else c[field] = value;
    });
  };
  EXPECT_NE(error("rms_norm_eps", -1e-5).find("field 'rms_norm_eps' = -1e-05: expected >= 0"), std::string::npos);
  EXPECT_NE(error("rope_parameters.rope_theta", 0).find("field 'rope_theta' = 0: expected > 0"), std::string::npos);
  EXPECT_NE(error("rope_parameters.rope_theta", -10000).find("field 'rope_theta'"), std::string::npos);
  EXPECT_NE(error("rope_parameters.factor", 0).find("field 'rope_scaling.factor' = 0: expected > 0"), std::string::npos);
  EXPECT_NE(error("rope_parameters.high_freq_factor", 1.0).find("rope_scaling.high_freq_factor"), std::string::npos);
  // 2^31 - 1 positions overflowed the engine's block arithmetic (UBSan).
  EXPECT_NE(error("max_position_embeddings", 2147483647).find("field 'max_position_embeddings' = 2147483647: expected 1 to 2^30"),
            std::string::npos);
  EXPECT_NE(error("num_attention_heads", 1 << 28).find("num_attention_heads"), std::string::npos);
}

TEST(ModelConfig, LayerCountMustMatchTheTensors) {
  // One layer fewer: layer 1's tensors were silently ignored and a different model ran.
  const std::string fewer = config_error("layers-fewer", [](auto& c) { c["num_hidden_layers"] = 1; });
  EXPECT_NE(fewer.find("tensor 'model.layers.1."), std::string::npos) << fewer;
  EXPECT_NE(fewer.find("num_hidden_layers = 1"), std::string::npos) << fewer;
  const std::string more = config_error("layers-more", [](auto& c) { c["num_hidden_layers"] = 3; });
  EXPECT_NE(more.find("missing tensor 'model.layers.2."), std::string::npos) << more;
}

TEST(ModelConfig, GenerationConfigIsValidated) {
  std::string dir = edited_copy("gencfg", [](auto&) {});
  fs::copy(data_dir() + "/llama-f32/generation_config.json", dir + "/generation_config.json");
  nlohmann::json g = read_json(dir + "/generation_config.json");
  g["top_k"] = 1LL << 33;
  std::ofstream(dir + "/generation_config.json") << g.dump();
  ModelConfig cfg = load_model_config(dir);
  EXPECT_NE(error_of([&] { load_generation_config(dir, &cfg); }).find("field 'top_k'"), std::string::npos);
}

// A llama2.c header whose sizes multiply past 2^64 bytes is a truncation error, not a wild read.
TEST(Loader, Llama2cHeaderWithHugeSizesIsTruncated) {
  const std::string dir = tmp_dir("llama2c-huge");
  const int32_t big = 2147483647;
  const int32_t header[7] = {big, big, 1, 1, 1, big, 1};  // dim, hidden, layers, heads, kv, vocab, seq
  std::ofstream(dir + "/bad.bin", std::ios::binary).write(reinterpret_cast<const char*>(header), sizeof header);
  try {
    convert_llama2c_checkpoint(dir + "/bad.bin", dir + "/out");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace nanovllm::test

namespace nanovllm::test {
namespace {

// Two runners in one process keep their own OpenMP team size: the one built last does not
// decide the other's (the native runner used to set the process-wide count when built). Each
// runner's steps run inside a scope of its kernels::Context, which sets the team size for the
// scope only (before, a step left it set for the caller: KernelContext tests).
TEST(NativeRunner, EachRunnerKeepsItsOwnThreadCount) {
  const int before = omp_get_max_threads();
  const kernels::Context one("", 1), three("", 3);
  {
    kernels::Context::Scope a(one);
    EXPECT_EQ(omp_get_max_threads(), 1);
    {
      kernels::Context::Scope b(three);
      EXPECT_EQ(omp_get_max_threads(), 3);
    }
    EXPECT_EQ(omp_get_max_threads(), 1);
  }
  EXPECT_EQ(omp_get_max_threads(), before);
  auto r1 = open_runner(data_dir() + "/llama-f32", {.block_size = 4, .num_blocks = 8, .threads = 1});
  auto r3 = open_runner(data_dir() + "/llama-f32", {.block_size = 4, .num_blocks = 8, .threads = 3});
  TestSeq x({1, 2, 3}, 0, 8, 4), y({1, 2, 3}, 0, 8, 4);
  const Logits l1 = run_step(*r1, 4, {{&x, 3, true}}), l3 = run_step(*r3, 4, {{&y, 3, true}});
  EXPECT_EQ(l1.data, l3.data);  // the team size changes how work is split, not the result
  EXPECT_EQ(omp_get_max_threads(), before);
}

}  // namespace
}  // namespace nanovllm::test
