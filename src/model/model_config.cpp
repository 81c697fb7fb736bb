// Parsing of config.json / generation_config.json into ModelConfig, and the RoPE frequencies.
#include "model/model_config.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <climits>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/json.h"
#include "nanovllm/error.h"

namespace nanovllm {

using json = nlohmann::json;

namespace {

json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  json j = parse_json(text.str(), path);
  if (!j.is_object()) throw Error(path + ": not a JSON object");
  return j;
}

// An integer field, which must fit an int and not be negative: a checkpoint's vocab_size of
// 2^32 + 8 must not become 8. `path` names the file in the error.
int checked_int(const json& v, const std::string& path, const std::string& key) {
  if (!v.is_number_integer())
    throw Error(path + ": field '" + key + "' must be an integer, got " + v.dump());
  if (v.is_number_unsigned() ? v.get<uint64_t>() > INT_MAX : (v.get<int64_t>() < 0 || v.get<int64_t>() > INT_MAX))
    throw Error(path + ": field '" + key + "' = " + v.dump() + " is out of range (0 to " + std::to_string(INT_MAX) + ")");
  return v.get<int>();
}

// A required integer field.
int get_int(const json& j, const std::string& path, const char* key) {
  if (!j.contains(key) || j[key].is_null()) throw Error(path + ": missing field '" + key + "'");
  return checked_int(j[key], path, key);
}

// An optional integer field: absent or null gives `fallback`.
int get_int_or(const json& j, const std::string& path, const char* key, int fallback) {
  return j.contains(key) && !j[key].is_null() ? checked_int(j[key], path, key) : fallback;
}

// An optional number field: absent or null gives `fallback`.
double get_num_or(const json& j, const std::string& path, const char* key, double fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_number()) throw Error(path + ": field '" + key + "' must be a number, got " + j[key].dump());
  return j[key].get<double>();
}

bool get_bool_or(const json& j, const char* key, bool fallback) {
  return j.contains(key) && j[key].is_boolean() ? j[key].get<bool>() : fallback;
}

// eos_token_id is an int or a list of ints; appends the ones not seen yet.
void add_eos_ids(const json& j, const std::string& path, std::vector<int>* ids) {
  if (!j.contains("eos_token_id")) return;
  const json& e = j["eos_token_id"];
  auto add = [&](const json& v) {
    if (v.is_null()) return;
    int id = checked_int(v, path, "eos_token_id");
    if (std::find(ids->begin(), ids->end(), id) == ids->end()) ids->push_back(id);
  };
  if (e.is_array())
    for (const json& v : e) add(v);
  else
    add(e);
}

// Architecture flags: the only places where the four families differ.
void set_architecture_options(const json& j, const std::string& path, ModelConfig* c) {
  const std::string& a = c->architecture;
  if (a == "LlamaForCausalLM" || a == "MistralForCausalLM") {
    c->qkv_bias = c->o_bias = get_bool_or(j, "attention_bias", false);
    c->mlp_bias = get_bool_or(j, "mlp_bias", false);
  } else if (a == "Qwen2ForCausalLM") {
    c->qkv_bias = true;
  } else if (a == "Qwen3ForCausalLM") {
    c->qkv_bias = c->o_bias = get_bool_or(j, "attention_bias", false);
    c->qk_norm = true;
  } else {
    throw Error(path + ": unsupported architecture '" + a +
                "' (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, "
                "Qwen3ForCausalLM)");
  }
}

// RoPE settings: transformers 4 writes rope_theta + rope_scaling, transformers 5 rope_parameters.
void set_rope(const json& j, const std::string& path, ModelConfig* c) {
  c->rope_theta = get_num_or(j, path, "rope_theta", 10000.0);
  const json* scaling = nullptr;
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) {
    scaling = &j["rope_parameters"];
    c->rope_theta = get_num_or(*scaling, path, "rope_theta", c->rope_theta);
  } else if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) {
    scaling = &j["rope_scaling"];
  }
  if (!scaling) return;
  std::string type = scaling->value("rope_type", scaling->value("type", std::string("default")));
  if (type == "default") return;
  if (type != "llama3")
    throw Error(path + ": unsupported rope scaling type '" + type + "' (supported: llama3)");
  c->llama3_rope = true;
  RopeScaling& r = c->rope_scaling;
  r.factor = get_num_or(*scaling, path, "factor", 8.0);
  r.low_freq_factor = get_num_or(*scaling, path, "low_freq_factor", 1.0);
  r.high_freq_factor = get_num_or(*scaling, path, "high_freq_factor", 4.0);
  r.original_max_position_embeddings = get_int_or(*scaling, path, "original_max_position_embeddings", 8192);
}

void set_shape(const json& j, const std::string& path, ModelConfig* c) {
  c->vocab_size = get_int(j, path, "vocab_size");
  c->hidden_size = get_int(j, path, "hidden_size");
  c->intermediate_size = get_int(j, path, "intermediate_size");
  c->num_layers = get_int(j, path, "num_hidden_layers");
  c->num_heads = get_int(j, path, "num_attention_heads");
  c->num_kv_heads = get_int_or(j, path, "num_key_value_heads", c->num_heads);
  c->head_dim = get_int_or(j, path, "head_dim", c->num_heads ? c->hidden_size / c->num_heads : 0);
  c->max_position_embeddings = get_int_or(j, path, "max_position_embeddings", 2048);
  // A sliding window (Mistral v0.1, Qwen2 with use_sliding_window): our attention is full,
  // which equals windowed attention only within the window, so the context stops there.
  int window = get_int_or(j, path, "sliding_window", 0);
  bool uses_window = c->architecture == "MistralForCausalLM" || get_bool_or(j, "use_sliding_window", false);
  if (uses_window && window > 0 && window < c->max_position_embeddings) c->max_position_embeddings = window;
}

}  // namespace

// Positions are ints in the engine (block counts, position + offset): no model is trained for
// more than about 10M, and 2^30 leaves room for that arithmetic.
constexpr int kMaxPositions = 1 << 30;

// Each field against what the decoder can run; the tensors are checked against the shapes these
// imply when the weights load. Errors name the field, its value and what was expected.
void validate_model_config(const ModelConfig& c, const std::string& path) {
  auto need = [&](bool ok, const std::string& field, double value, const std::string& expected) {
    if (ok) return;
    std::ostringstream v;
    if (value == std::floor(value) && std::fabs(value) < 1e18) v << static_cast<long long>(value);  // ints exactly
    else v << value;
    throw Error(path + ": field '" + field + "' = " + v.str() + ": expected " + expected);
  };
  need(c.vocab_size > 0, "vocab_size", c.vocab_size, "> 0");
  need(c.hidden_size > 0, "hidden_size", c.hidden_size, "> 0");
  need(c.intermediate_size > 0, "intermediate_size", c.intermediate_size, "> 0");
  need(c.num_layers > 0, "num_hidden_layers", c.num_layers, "> 0");
  need(c.num_heads > 0, "num_attention_heads", c.num_heads, "> 0");
  need(c.num_kv_heads > 0 && c.num_heads % c.num_kv_heads == 0, "num_key_value_heads", c.num_kv_heads,
       "a divisor of num_attention_heads (" + std::to_string(c.num_heads) + ")");
  need(c.head_dim > 0 && c.head_dim % 2 == 0, "head_dim", c.head_dim, "positive and even");
  // q_dim, kv_dim and the merged gate|up rows are ints in the decoder.
  need(int64_t{c.num_heads} * c.head_dim <= INT_MAX, "num_attention_heads", c.num_heads,
       "num_attention_heads * head_dim to fit an int");
  need(int64_t{c.intermediate_size} * 2 <= INT_MAX, "intermediate_size", c.intermediate_size, "<= 2^30");
  need(c.max_position_embeddings > 0 && c.max_position_embeddings <= kMaxPositions, "max_position_embeddings",
       c.max_position_embeddings, "1 to 2^30");
  need(std::isfinite(c.rope_theta) && c.rope_theta > 0, "rope_theta", c.rope_theta, "> 0");
  need(std::isfinite(c.rms_norm_eps) && c.rms_norm_eps >= 0, "rms_norm_eps", c.rms_norm_eps, ">= 0");
  const RopeScaling& r = c.rope_scaling;
  if (!c.llama3_rope) return;
  need(std::isfinite(r.factor) && r.factor > 0, "rope_scaling.factor", r.factor, "> 0");
  need(std::isfinite(r.low_freq_factor) && r.low_freq_factor > 0, "rope_scaling.low_freq_factor", r.low_freq_factor, "> 0");
  need(std::isfinite(r.high_freq_factor) && r.high_freq_factor > r.low_freq_factor, "rope_scaling.high_freq_factor",
       r.high_freq_factor, "> low_freq_factor (" + std::to_string(r.low_freq_factor) + ")");
  need(r.original_max_position_embeddings > 0, "rope_scaling.original_max_position_embeddings",
       r.original_max_position_embeddings, "> 0");
}

namespace {

ModelConfig parse_model_config(const json& j, const std::string& path) {
  ModelConfig c;
  if (!j.contains("architectures") || !j["architectures"].is_array() || j["architectures"].empty() ||
      !j["architectures"][0].is_string())
    throw Error(path + ": missing field 'architectures'");
  c.architecture = j["architectures"][0].get<std::string>();
  set_architecture_options(j, path, &c);
  if (j.contains("hidden_act") && j["hidden_act"] != "silu")
    throw Error(path + ": unsupported hidden_act " + j["hidden_act"].dump());
  set_shape(j, path, &c);
  c.rms_norm_eps = get_num_or(j, path, "rms_norm_eps", 1e-6);
  c.tie_word_embeddings = get_bool_or(j, "tie_word_embeddings", false);
  if (j.contains("bos_token_id") && !j["bos_token_id"].is_null())
    c.bos_token_id = checked_int(j["bos_token_id"], path, "bos_token_id");
  add_eos_ids(j, path, &c.eos_token_ids);
  set_rope(j, path, &c);
  validate_model_config(c, path);
  return c;
}

}  // namespace

ModelConfig load_model_config(const std::string& model_dir) {
  return load_model_config_file(model_dir + "/config.json");
}

ModelConfig load_model_config_file(const std::string& path) {
  try {
    return parse_model_config(read_json_file(path), path);
  } catch (const json::exception& e) {  // a field of an unexpected type
    throw Error(path + ": " + e.what());
  }
}

GenerationDefaults load_generation_config(const std::string& model_dir, ModelConfig* cfg) {
  GenerationDefaults g;
  std::string path = model_dir + "/generation_config.json";
  if (!std::filesystem::exists(path)) return g;
  json j = read_json_file(path);
  auto num = [&](const char* key, std::optional<float>* out) {
    if (j.contains(key) && j[key].is_number()) *out = j[key].get<float>();
  };
  num("temperature", &g.temperature);
  num("top_p", &g.top_p);
  num("min_p", &g.min_p);
  num("repetition_penalty", &g.repetition_penalty);
  if (j.contains("top_k") && !j["top_k"].is_null()) g.top_k = checked_int(j["top_k"], path, "top_k");
  add_eos_ids(j, path, &cfg->eos_token_ids);
  if (!cfg->bos_token_id && j.contains("bos_token_id") && !j["bos_token_id"].is_null())
    cfg->bos_token_id = checked_int(j["bos_token_id"], path, "bos_token_id");
  return g;
}

std::vector<float> rope_inv_freq(const ModelConfig& cfg) {
  const int half = cfg.head_dim / 2;
  std::vector<float> inv(half);
  const float base = static_cast<float>(cfg.rope_theta);
  for (int i = 0; i < half; ++i)
    inv[i] = 1.0f / std::pow(base, static_cast<float>(2 * i) / static_cast<float>(cfg.head_dim));
  for (size_t i = 0; i < cfg.rope_freq_factors.size() && i < inv.size(); ++i) inv[i] /= cfg.rope_freq_factors[i];
  const RopeScaling& r = cfg.rope_scaling;
  if (r.factor <= 0) return inv;
  // Llama 3: keep high frequencies, divide low ones by factor, interpolate in between.
  const float factor = static_cast<float>(r.factor);
  const float old_len = static_cast<float>(r.original_max_position_embeddings);
  const float low_wavelen = old_len / static_cast<float>(r.low_freq_factor);
  const float high_wavelen = old_len / static_cast<float>(r.high_freq_factor);
  for (float& f : inv) {
    float wavelen = static_cast<float>(2 * M_PI) / f;
    if (wavelen > low_wavelen) {
      f = f / factor;
    } else if (wavelen >= high_wavelen) {
      float smooth = (old_len / wavelen - static_cast<float>(r.low_freq_factor)) /
                     static_cast<float>(r.high_freq_factor - r.low_freq_factor);
      f = (1 - smooth) * f / factor + smooth * f;
    }
  }
  return inv;
}

ModelInfo model_info(const std::string& model_dir, ModelConfig* cfg, int64_t weight_bytes) {
  ModelInfo info;
  info.generation = load_generation_config(model_dir, cfg);
  info.architecture = cfg->architecture;
  info.vocab_size = cfg->vocab_size;
  info.max_position_embeddings = cfg->max_position_embeddings;
  info.bos_token_id = cfg->bos_token_id;
  info.eos_token_ids = cfg->eos_token_ids;
  info.weight_bytes = weight_bytes;
  return info;
}

}  // namespace nanovllm
