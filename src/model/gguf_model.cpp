// llama.cpp's GGUF conventions (convert_hf_to_gguf.py, llama-model.cpp) mapped back to the
// Hugging Face ones the rest of the loader speaks: keys -> ModelConfig, tensor names and dims,
// and the llama q/k row permutation undone.
#include "model/gguf_model.h"

#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>

#include "nanovllm/error.h"

namespace nanovllm {

using kernels::DType;

bool is_gguf_file(const std::string& path) {
  if (std::filesystem::path(path).extension() == ".gguf") return true;
  char magic[4] = {};
  std::ifstream(path, std::ios::binary).read(magic, 4);
  return std::memcmp(magic, "GGUF", 4) == 0;
}

namespace {

int int_field(const GgufFile& f, const std::string& key, std::optional<int> fallback = std::nullopt) {
  std::optional<uint64_t> v = f.get_uint(key);
  if (!v) {
    if (fallback) return *fallback;
    throw Error(f.path() + ": missing metadata '" + key + "'");
  }
  if (*v > INT_MAX) throw Error(f.path() + ": metadata '" + key + "' = " + std::to_string(*v) + " is out of range");
  return static_cast<int>(*v);
}

// llama.cpp's architecture name -> the Hugging Face class our decoder knows it by.
std::string hf_architecture(const GgufFile& f, const std::string& arch) {
  if (arch == "llama") return "LlamaForCausalLM";
  if (arch == "qwen2") return "Qwen2ForCausalLM";
  if (arch == "qwen3") return "Qwen3ForCausalLM";
  throw Error(f.path() + ": unsupported architecture '" + arch + "' (general.architecture; supported: llama, qwen2, qwen3)");
}

void set_rope(const GgufFile& f, const std::string& a, ModelConfig* c) {
  c->rope_theta = f.get_float(a + ".rope.freq_base").value_or(10000.0);
  const std::string type = f.get_string(a + ".rope.scaling.type").value_or("none");
  const double factor = f.get_float(a + ".rope.scaling.factor").value_or(0.0);
  if (type != "none" && !(type == "linear" && factor == 1.0))
    throw Error(f.path() + ": unsupported rope scaling type '" + type + "' (" + a + ".rope.scaling.type; supported: none)");
  // Llama 3.1's frequency scaling comes as the per-frequency divisors of tensor rope_freqs.
  if (const GgufTensor* t = f.find_tensor("rope_freqs.weight")) {
    if (t->type != GgmlType::F32 || t->ne.size() != 1 || t->ne[0] != c->head_dim / 2)
      throw Error(f.path() + ": tensor 'rope_freqs.weight' must be F32 [" + std::to_string(c->head_dim / 2) + "], is " +
                  t->dims_string());
    c->rope_freq_factors.resize(static_cast<size_t>(t->ne[0]));
    std::memcpy(c->rope_freq_factors.data(), t->data, t->nbytes);
  }
}

void set_special_ids(const GgufFile& f, ModelConfig* c) {
  auto id = [&](const char* key) -> std::optional<int> {
    std::optional<uint64_t> v = f.get_uint(key);
    if (!v) return std::nullopt;
    if (*v >= static_cast<uint64_t>(c->vocab_size))
      throw Error(f.path() + ": metadata '" + key + "' = " + std::to_string(*v) + " is outside the vocabulary of " +
                  std::to_string(c->vocab_size));
    return static_cast<int>(*v);
  };
  c->bos_token_id = id("tokenizer.ggml.bos_token_id");
  // eot / eom end a turn in Llama 3 chat (generation_config.json lists them as eos there).
  for (const char* key : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"})
    if (auto v = id(key); v && std::find(c->eos_token_ids.begin(), c->eos_token_ids.end(), *v) == c->eos_token_ids.end())
      c->eos_token_ids.push_back(*v);
}

}  // namespace

ModelConfig gguf_model_config(const GgufFile& f) {
  const std::string a = f.get_string("general.architecture").value_or("");
  if (a.empty()) throw Error(f.path() + ": missing metadata 'general.architecture'");
  ModelConfig c;
  c.architecture = hf_architecture(f, a);
  c.hidden_size = int_field(f, a + ".embedding_length");
  c.intermediate_size = int_field(f, a + ".feed_forward_length");
  c.num_layers = int_field(f, a + ".block_count");
  c.num_heads = int_field(f, a + ".attention.head_count");
  c.num_kv_heads = int_field(f, a + ".attention.head_count_kv", c.num_heads);
  c.head_dim = int_field(f, a + ".attention.key_length", c.num_heads ? c.hidden_size / c.num_heads : 0);
  if (int v = int_field(f, a + ".attention.value_length", c.head_dim); v != c.head_dim)
    throw Error(f.path() + ": " + a + ".attention.value_length " + std::to_string(v) + " differs from key_length " +
                std::to_string(c.head_dim));
  c.max_position_embeddings = int_field(f, a + ".context_length", 2048);
  c.rms_norm_eps = f.get_float(a + ".attention.layer_norm_rms_epsilon").value_or(1e-6);
  const std::vector<GgufValue>* tokens = f.get_array("tokenizer.ggml.tokens", GgufType::STRING);
  const GgufTensor* embd = f.find_tensor("token_embd.weight");
  if (!embd || embd->ne.size() != 2) throw Error(f.path() + ": missing 2-D tensor 'token_embd.weight'");
  c.vocab_size = tokens ? static_cast<int>(tokens->size()) : int_field(f, a + ".vocab_size", static_cast<int>(embd->ne[1]));
  set_rope(f, a, &c);
  c.tie_word_embeddings = f.find_tensor("output.weight") == nullptr;
  c.qk_norm = a == "qwen3";
  c.qkv_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  c.o_bias = f.find_tensor("blk.0.attn_output.bias") != nullptr;
  c.mlp_bias = f.find_tensor("blk.0.ffn_gate.bias") != nullptr;
  validate_model_config(c, f.path());
  set_special_ids(f, &c);
  return c;
}

DType gguf_tensor_dtype(const GgufFile& f, const GgufTensor& t) {
  switch (t.type) {
    case GgmlType::F32: return DType::F32;
    case GgmlType::F16: return DType::F16;
    case GgmlType::BF16: return DType::BF16;
    case GgmlType::Q8_0: return DType::Q8_0;
    case GgmlType::Q4_0: return DType::Q4_0;
    case GgmlType::Q4_1: return DType::Q4_1;
    case GgmlType::Q4_K: return DType::Q4_K;
    case GgmlType::Q5_K: return DType::Q5_K;
    case GgmlType::Q6_K: return DType::Q6_K;
    default:
      throw Error(f.path() + ": tensor '" + t.name + "' is " + ggml_type_info(static_cast<uint32_t>(t.type))->name +
                  ", which the kernels do not read (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K)");
  }
}

namespace {

// llama.cpp's tensor names -> Hugging Face's (blk.N. -> model.layers.N.); "" when unknown.
std::string hf_name(const std::string& name) {
  static const std::map<std::string, std::string> top = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"},
  };
  static const std::map<std::string, std::string> layer = {
      {"attn_norm", "input_layernorm"},     {"ffn_norm", "post_attention_layernorm"},
      {"attn_q", "self_attn.q_proj"},       {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},       {"attn_output", "self_attn.o_proj"},
      {"attn_q_norm", "self_attn.q_norm"},  {"attn_k_norm", "self_attn.k_norm"},
      {"ffn_gate", "mlp.gate_proj"},        {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"},
  };
  if (auto it = top.find(name); it != top.end()) return it->second;
  static const std::regex blk(R"(blk\.(\d{1,6})\.([a-z_]+)\.(weight|bias))");
  std::smatch m;
  if (!std::regex_match(name, m, blk)) return "";
  auto it = layer.find(m[2].str());
  if (it == layer.end()) return "";
  return "model.layers." + m[1].str() + "." + it->second + "." + m[3].str();
}

// What a GGUF file holds for the model, kept alive by the Checkpoint: the mapping and the
// rows that had to be rewritten.
struct GgufStorage {
  std::shared_ptr<const GgufFile> file;
  std::vector<std::vector<uint8_t>> rewritten;
};

// llama.cpp's converter stores each head's q (k) rows as interleaved pairs (row 2i + j holds
// Hugging Face's row j * head_dim/2 + i), its RoPE's layout; our rope is rotate-half, so the
// rows go back. A pure row permutation: a quantized row moves as a whole.
std::vector<uint8_t> unpermute_rows(const TensorInfo& t, int n_heads) {
  const size_t rows = static_cast<size_t>(t.shape[0]);
  const size_t row_bytes = t.nbytes / rows;
  const size_t hd = rows / static_cast<size_t>(n_heads), half = hd / 2;
  std::vector<uint8_t> out(t.nbytes);
  const auto* src = static_cast<const uint8_t*>(t.data);
  for (size_t h = 0; h < static_cast<size_t>(n_heads); ++h)
    for (size_t j = 0; j < 2; ++j)
      for (size_t i = 0; i < half; ++i)
        std::memcpy(out.data() + (h * hd + j * half + i) * row_bytes, src + (h * hd + 2 * i + j) * row_bytes, row_bytes);
  return out;
}

}  // namespace

Checkpoint gguf_checkpoint(std::shared_ptr<const GgufFile> file, const ModelConfig& cfg) {
  auto storage = std::make_shared<GgufStorage>();
  storage->file = file;
  std::vector<TensorInfo> tensors;
  for (const GgufTensor& g : file->tensors()) {
    if (g.name == "rope_freqs.weight") continue;  // read into the config
    const std::string name = hf_name(g.name);
    if (name.empty())
      throw Error(file->path() + ": tensor '" + g.name + "' is not one llama.cpp writes for " + cfg.architecture);
    TensorInfo t;
    t.name = name;
    t.file = file->path();
    t.dtype = gguf_tensor_dtype(*file, g);
    t.shape.assign(g.ne.rbegin(), g.ne.rend());  // ggml lists the contiguous dim first
    t.data = g.data;
    t.nbytes = g.nbytes;
    tensors.push_back(std::move(t));
  }
  if (cfg.architecture == "LlamaForCausalLM") {
    for (TensorInfo& t : tensors) {
      const bool q = t.name.ends_with("q_proj.weight") || t.name.ends_with("q_proj.bias");
      const bool k = t.name.ends_with("k_proj.weight") || t.name.ends_with("k_proj.bias");
      if (!q && !k) continue;
      const int heads = q ? cfg.num_heads : cfg.num_kv_heads;
      if (t.shape[0] != static_cast<int64_t>(heads) * cfg.head_dim)
        throw Error(file->path() + ": tensor for '" + t.name + "' has " + std::to_string(t.shape[0]) + " rows, expected " +
                    std::to_string(heads * cfg.head_dim));
      if (t.shape.size() == 1) t.shape = {t.shape[0], 1};  // a bias: one value per row
      storage->rewritten.push_back(unpermute_rows(t, heads));
      if (t.name.ends_with(".bias")) t.shape = {t.shape[0]};
      t.data = storage->rewritten.back().data();
    }
  }
  return Checkpoint(file->path(), std::move(tensors), storage);
}

}  // namespace nanovllm
