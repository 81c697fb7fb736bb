// llama2.c → Hugging Face: header, weight layout, RoPE row permutation, config files.
#include "model/llama2c.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "nanovllm/error.h"
#include "model/safetensors.h"
#include "model/weights.h"

namespace nanovllm {

using json = nlohmann::json;

namespace {

// Where one Hugging Face tensor lives in the llama2.c file; heads > 0 asks for the RoPE permutation.
struct Source {
  const float* data = nullptr;
  int heads = 0;
};

ModelConfig config_from_header(const int32_t h[7], const std::string& path) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = h[0];
  c.intermediate_size = h[1];
  c.num_layers = h[2];
  c.num_heads = h[3];
  c.num_kv_heads = h[4];
  c.vocab_size = h[5] < 0 ? -h[5] : h[5];
  c.tie_word_embeddings = h[5] > 0;
  c.max_position_embeddings = h[6];
  for (int i = 0; i < 7; ++i)
    if (i != 5 && h[i] <= 0) throw Error(path + ": not a llama2.c checkpoint (bad header)");
  if (c.hidden_size % c.num_heads || c.num_heads % c.num_kv_heads)
    throw Error(path + ": dim must divide by n_heads, n_heads by n_kv_heads");
  c.head_dim = c.hidden_size / c.num_heads;
  c.rms_norm_eps = 1e-5;  // llama2.c's rmsnorm
  c.rope_theta = 10000;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

// Maps every Hugging Face tensor name to its place in the file (llama2.c's order: all layers of
// one kind together), checking that the file is long enough.
std::map<std::string, Source> locate_weights(const ModelConfig& c, const MappedFile& f) {
  const int64_t d = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), hid = c.intermediate_size, L = c.num_layers;
  const float* p = reinterpret_cast<const float*>(f.data() + 28);
  const float* end = reinterpret_cast<const float*>(f.data() + f.size());
  std::map<std::string, Source> m;
  auto take = [&](int64_t n) {
    // Compared as counts: a huge header size would wrap the pointer past `end` unnoticed.
    if (n < 0 || n > end - p) throw Error(f.path() + ": truncated (shorter than its header says)");
    const float* at = p;
    p += n;
    return at;
  };
  auto per_layer = [&](const std::string& name, int64_t n, int heads) {
    for (int64_t l = 0; l < L; ++l) m["model.layers." + std::to_string(l) + "." + name] = {take(n), heads};
  };
  m["model.embed_tokens.weight"] = {take(c.vocab_size * d)};
  per_layer("input_layernorm.weight", d, 0);
  per_layer("self_attn.q_proj.weight", q * d, c.num_heads);
  per_layer("self_attn.k_proj.weight", kv * d, c.num_kv_heads);
  per_layer("self_attn.v_proj.weight", kv * d, 0);
  per_layer("self_attn.o_proj.weight", d * q, 0);
  per_layer("post_attention_layernorm.weight", d, 0);
  per_layer("mlp.gate_proj.weight", hid * d, 0);  // w1
  per_layer("mlp.down_proj.weight", d * hid, 0);  // w2
  per_layer("mlp.up_proj.weight", hid * d, 0);    // w3
  m["model.norm.weight"] = {take(d)};
  take(static_cast<int64_t>(c.max_position_embeddings) * c.head_dim);  // freq_cis real + imag, unused
  if (!c.tie_word_embeddings) m["lm_head.weight"] = {take(c.vocab_size * d)};
  return m;
}

// llama2.c rotates pairs (2j, 2j+1) of each head; Hugging Face rotates (j, j + head_dim/2).
void permute_rope_rows(const float* src, int heads, int64_t rows, int64_t cols, float* dst) {
  const int64_t hd = rows / heads, half = hd / 2;
  for (int h = 0; h < heads; ++h)
    for (int64_t r = 0; r < hd; ++r) {
      int64_t from = h * hd + 2 * (r % half) + r / half;
      std::memcpy(dst + (h * hd + r) * cols, src + from * cols, cols * sizeof(float));
    }
}

void write_json(const std::string& path, const json& j) {
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  if (!out) throw Error(path + ": write failed");
}

json hf_config_json(const ModelConfig& c) {
  return {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"},
          {"hidden_size", c.hidden_size}, {"intermediate_size", c.intermediate_size},
          {"num_hidden_layers", c.num_layers}, {"num_attention_heads", c.num_heads},
          {"num_key_value_heads", c.num_kv_heads}, {"head_dim", c.head_dim},
          {"vocab_size", c.vocab_size}, {"max_position_embeddings", c.max_position_embeddings},
          {"rms_norm_eps", c.rms_norm_eps}, {"rope_theta", c.rope_theta},
          {"hidden_act", "silu"}, {"attention_bias", false}, {"mlp_bias", false},
          {"tie_word_embeddings", c.tie_word_embeddings}, {"initializer_range", 0.02},
          {"bos_token_id", 1}, {"eos_token_id", 2}, {"torch_dtype", "float32"}};
}

}  // namespace

ModelConfig convert_llama2c_checkpoint(const std::string& bin_path, const std::string& out_dir) {
  MappedFile f(bin_path);
  if (f.size() < 28) throw Error(bin_path + ": too short for a llama2.c header");
  int32_t header[7];
  std::memcpy(header, f.data(), sizeof header);
  ModelConfig cfg = config_from_header(header, bin_path);
  std::map<std::string, Source> where = locate_weights(cfg, f);
  std::vector<TensorSpec> specs = hf_tensor_specs(cfg, kernels::DType::F32);
  std::filesystem::create_directories(out_dir);
  write_safetensors(out_dir + "/model.safetensors", specs, [&](size_t i, std::span<uint8_t> out) {
    const TensorSpec& t = specs[i];
    const Source& s = where.at(t.name);
    float* dst = reinterpret_cast<float*>(out.data());
    if (s.heads > 0)
      permute_rope_rows(s.data, s.heads, t.shape[0], t.shape[1], dst);
    else
      std::memcpy(dst, s.data, out.size());
  }, {{"format", "pt"}});
  write_json(out_dir + "/config.json", hf_config_json(cfg));
  write_json(out_dir + "/generation_config.json", {{"bos_token_id", 1}, {"eos_token_id", 2}});
  return cfg;
}

}  // namespace nanovllm
