// The decoder's shape and options, read from a checkpoint's config.json and generation_config.json.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/model_runner.h"

namespace nanovllm {

// Llama 3's frequency-dependent RoPE scaling (rope_type "llama3"); factor 0 = none.
struct RopeScaling {
  double factor = 0;
  double low_freq_factor = 1;
  double high_freq_factor = 4;
  int original_max_position_embeddings = 8192;
};

// Everything the one decoder needs to run any of the supported architectures. The
// architecture differences are the three flags at the end, not separate code paths.
struct ModelConfig {
  std::string architecture;
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000;
  RopeScaling rope_scaling;
  bool llama3_rope = false;  // rope_scaling read from config.json (its values are then validated)
  std::vector<float> rope_freq_factors;  // GGUF's rope_freqs: each inv_freq divided by its factor
  bool tie_word_embeddings = false;
  std::optional<int> bos_token_id;
  std::vector<int> eos_token_ids;  // config.json's, then generation_config.json's

  bool qkv_bias = false;  // Qwen2; Llama's attention_bias
  bool o_bias = false;    // Llama's attention_bias
  bool mlp_bias = false;  // Llama's mlp_bias
  bool qk_norm = false;   // Qwen3: RMSNorm of each q/k head before RoPE

  int q_dim() const { return num_heads * head_dim; }
  int kv_dim() const { return num_kv_heads * head_dim; }
};

// Reads DIR/config.json; throws nanovllm::Error naming the file and field on anything unsupported.
ModelConfig load_model_config(const std::string& model_dir);
ModelConfig load_model_config_file(const std::string& config_path);

// Each field against what the decoder can run; throws Error naming source and field.
void validate_model_config(const ModelConfig& cfg, const std::string& source);

// Reads DIR/generation_config.json when present: sampling defaults, and adds its eos ids to cfg.
GenerationDefaults load_generation_config(const std::string& model_dir, ModelConfig* cfg);

// What the engine needs to know of the model in model_dir (cfg read from it): generation_config.json
// is read first, since it may add eos ids to cfg. weight_bytes: what this runner streams.
ModelInfo model_info(const std::string& model_dir, ModelConfig* cfg, int64_t weight_bytes);

// RoPE inverse frequencies (head_dim / 2 of them), with llama3 scaling applied when configured;
// computed in f32 as Hugging Face does, so positions rotate by the same angles.
std::vector<float> rope_inv_freq(const ModelConfig& cfg);

}  // namespace nanovllm
