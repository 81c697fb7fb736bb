// `nanovllm make-model`: a random-weight Hugging Face checkpoint of any supported shape.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "commands.h"
#include "nanovllm/error.h"
#include "model/model_config.h"
#include "model/safetensors.h"
#include "model/weights.h"

namespace nanovllm::tools {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct MakeModelArgs {
  std::string config, out, dtype = "bf16", tokenizer;
  uint64_t seed = 0;
};

// A counter-based generator (splitmix64 of seed, tensor, index): element values do not
// depend on how the work is split between threads.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Two independent N(0, std) values from one hash (Box-Muller).
void normal_pair(uint64_t key, float std, float* a, float* b) {
  uint64_t r = mix(key);
  float u1 = (static_cast<float>(r >> 40) + 1.0f) * 0x1p-24f;  // (0, 1]
  float u2 = static_cast<float>((r >> 16) & 0xffffff) * 0x1p-24f;
  float radius = std * std::sqrt(-2.0f * std::log(u1));
  *a = radius * std::cos(6.2831853f * u2);
  *b = radius * std::sin(6.2831853f * u2);
}

uint16_t to_bf16(float f) {  // round to nearest even, as torch does
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}

void store(float v, kernels::DType dt, uint8_t* out, int64_t i) {
  if (dt == kernels::DType::F32) {
    std::memcpy(out + 4 * i, &v, 4);
  } else {
    uint16_t h = to_bf16(v);
    std::memcpy(out + 2 * i, &h, 2);
  }
}

// Hugging Face's init: Linear and Embedding weights N(0, initializer_range), norms 1, biases 0.
void fill_tensor(const TensorSpec& t, size_t index, uint64_t seed, float std, std::span<uint8_t> out) {
  const int64_t n = static_cast<int64_t>(out.size() / kernels::dtype_size(t.dtype));
  const bool is_norm = t.name.find("norm") != std::string::npos;
  const bool is_bias = t.name.size() > 5 && t.name.ends_with(".bias");
  if (is_norm || is_bias) {
    for (int64_t i = 0; i < n; ++i) store(is_norm ? 1.0f : 0.0f, t.dtype, out.data(), i);
    return;
  }
  const uint64_t base = mix(seed ^ mix(index + 1));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i += 2) {
    float a, b;
    normal_pair(base + static_cast<uint64_t>(i), std, &a, &b);
    store(a, t.dtype, out.data(), i);
    if (i + 1 < n) store(b, t.dtype, out.data(), i + 1);
  }
}

void write_json_file(const std::string& path, const json& j) {
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  if (!out) throw Error(path + ": write failed");
}

// Tokenizer files next to the config (or in --tokenizer DIR) come along, so the checkpoint runs.
void copy_tokenizer_files(const fs::path& from, const fs::path& out) {
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "tokenizer.model",
                           "special_tokens_map.json", "generation_config.json"}) {
    if (fs::exists(from / name) && !fs::equivalent(from, out))
      fs::copy_file(from / name, out / name, fs::copy_options::overwrite_existing);
  }
}

void run_make_model(const MakeModelArgs& a) {
  const ModelConfig cfg = load_model_config_file(a.config);  // validates the architecture
  const kernels::DType dtype = a.dtype == "f32" ? kernels::DType::F32 : kernels::DType::BF16;
  std::ifstream in(a.config);
  json config = json::parse(in);
  config["torch_dtype"] = a.dtype == "f32" ? "float32" : "bfloat16";
  if (config.contains("dtype")) config["dtype"] = config["torch_dtype"];
  const float std = config.value("initializer_range", 0.02f);
  fs::create_directories(a.out);
  const fs::path config_dir = fs::absolute(a.config).parent_path();
  copy_tokenizer_files(a.tokenizer.empty() ? config_dir : fs::path(a.tokenizer), a.out);
  write_json_file(a.out + "/config.json", config);
  if (!fs::exists(a.out + "/generation_config.json")) {
    json gen = json::object();
    if (config.contains("bos_token_id")) gen["bos_token_id"] = config["bos_token_id"];
    if (config.contains("eos_token_id")) gen["eos_token_id"] = config["eos_token_id"];
    write_json_file(a.out + "/generation_config.json", gen);
  }
  const std::vector<TensorSpec> specs = hf_tensor_specs(cfg, dtype);
  size_t bytes = 0;
  for (const TensorSpec& t : specs) bytes += t.nbytes();
  write_safetensors(a.out + "/model.safetensors", specs, [&](size_t i, std::span<uint8_t> out) {
    fill_tensor(specs[i], i, a.seed, std, out);
  }, {{"format", "pt"}});
  std::printf("wrote %s: %s, %zu tensors, %.1f MB (%s)\n", a.out.c_str(), cfg.architecture.c_str(),
              specs.size(), bytes / 1e6, a.dtype.c_str());
}

}  // namespace

void add_make_model_command(CLI::App& app) {
  auto args = std::make_shared<MakeModelArgs>();
  CLI::App* cmd = app.add_subcommand(
      "make-model",
      "Write a random-weight checkpoint (Hugging Face layout) with the shape of a config.json; "
      "weights ~ N(0, initializer_range), norms 1, biases 0, as transformers initialises them");
  cmd->add_option("--config", args->config, "config.json of the shape to make (e.g. ../shared/configs/qwen3-0.6b.json)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", args->out, "output directory (created)")->required();
  cmd->add_option("--dtype", args->dtype, "stored dtype of the weights")
      ->check(CLI::IsMember({"bf16", "f32"}))
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "random seed (same seed, same weights)")->capture_default_str();
  cmd->add_option("--tokenizer", args->tokenizer,
                  "directory whose tokenizer files to copy (default: the config's directory)")
      ->check(CLI::ExistingDirectory);
  cmd->callback([args] { run_make_model(*args); });
}

}  // namespace nanovllm::tools
