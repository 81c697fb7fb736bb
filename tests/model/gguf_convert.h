// A test checkpoint of tests/data/model written as GGUF, the way llama.cpp's convert_hf_to_gguf.py
// writes it: its tensor names, ggml's dims order, the llama q/k row permutation, rope_freqs;
// optionally with the matrices in Q8_0 (quantize_row_q8_0_ref's formulas). Used by the GGUF
// model tests and by the torch backend's (tests/torch).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "gguf_writer.h"
#include "kernels/kernels.h"
#include "model/model_config.h"
#include "model/safetensors.h"
#include "model_test_util.h"

namespace nanovllm::test {

// llama.cpp's tensor name for a Hugging Face one.
inline std::string gguf_name(const std::string& hf) {
  static const std::vector<std::pair<std::string, std::string>> parts = {
      {"input_layernorm", "attn_norm"}, {"post_attention_layernorm", "ffn_norm"}, {"self_attn.q_proj", "attn_q"},
      {"self_attn.k_proj", "attn_k"},   {"self_attn.v_proj", "attn_v"},           {"self_attn.o_proj", "attn_output"},
      {"self_attn.q_norm", "attn_q_norm"}, {"self_attn.k_norm", "attn_k_norm"},   {"mlp.gate_proj", "ffn_gate"},
      {"mlp.up_proj", "ffn_up"},         {"mlp.down_proj", "ffn_down"}};
  if (hf == "model.embed_tokens.weight") return "token_embd.weight";
  if (hf == "model.norm.weight") return "output_norm.weight";
  if (hf == "lm_head.weight") return "output.weight";
  std::string s = hf.substr(std::string("model.layers.").size());
  const size_t dot = s.find('.');
  std::string rest = s.substr(dot + 1);
  for (const auto& [from, to] : parts)
    if (rest.starts_with(from + ".")) return "blk." + s.substr(0, dot) + "." + to + rest.substr(from.size());
  ADD_FAILURE() << "no GGUF name for " << hf;
  return hf;
}

// convert_hf_to_gguf.py's LlamaModel.permute: each head's rows from rotate-half order to
// interleaved pairs.
inline std::string permute_rows(const std::string& bytes, int64_t rows, int heads) {
  const size_t row = bytes.size() / rows, hd = rows / heads, half = hd / 2;
  std::string out(bytes.size(), '\0');
  for (size_t h = 0; h < static_cast<size_t>(heads); ++h)
    for (size_t j = 0; j < 2; ++j)
      for (size_t i = 0; i < half; ++i)
        std::memcpy(out.data() + (h * hd + 2 * i + j) * row, bytes.data() + (h * hd + j * half + i) * row, row);
  return out;
}

inline uint32_t ggml_type_of(kernels::DType t) {
  return t == kernels::DType::F32 ? 0 : t == kernels::DType::F16 ? 1 : 30;
}

// A tensor as f32 values (exact from f16, bf16 or f32).
inline std::vector<float> f32_values(const TensorInfo& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  int zero = 0;
  kernels::embed(kernels::WeightView{t.data, t.dtype, 1, static_cast<int>(t.numel())}, &zero, 1, v.data());
  return v;
}

inline std::string as_f32(const TensorInfo& t) {
  const std::vector<float> v = f32_values(t);
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

// ggml's quantize_row_q8_0_ref: per 32 values d = amax / 127 (stored as f16), q = round(x / d).
inline std::string as_q8_0(const TensorInfo& t) {
  const std::vector<float> v = f32_values(t);
  std::string out;
  for (size_t b = 0; b < v.size(); b += 32) {
    float amax = 0;
    for (size_t i = b; i < b + 32; ++i) amax = std::max(amax, std::fabs(v[i]));
    const float d = amax / 127.f, id = d != 0.f ? 1.f / d : 0.f;
    const _Float16 h = static_cast<_Float16>(d);
    out.append(reinterpret_cast<const char*>(&h), 2);
    for (size_t i = b; i < b + 32; ++i) out.push_back(static_cast<char>(static_cast<int8_t>(std::round(v[i] * id))));
  }
  return out;
}

struct GgufConvertOptions {
  std::string f32_suffix;  // tensors whose GGUF name ends so are stored in F32 (mixed dtypes, as Q4_K_M)
  bool q8_0 = false;       // matrices (2-D tensors) in Q8_0, as `convert_hf_to_gguf.py --outtype q8_0`
};

// Writes tests/data/model/<name> to `out` as llama.cpp's converter would; returns out.
inline std::string convert_to_gguf(const std::string& name, const std::string& out, const GgufConvertOptions& o = {}) {
  const std::string dir = data_dir() + "/" + name;
  const ModelConfig cfg = load_model_config(dir);
  const std::string arch = cfg.architecture == "Qwen2ForCausalLM" ? "qwen2"
                           : cfg.architecture == "Qwen3ForCausalLM" ? "qwen3" : "llama";
  GgufWriter w;
  w.str("general.architecture", arch);
  w.u32(arch + ".block_count", cfg.num_layers);
  w.u32(arch + ".context_length", cfg.max_position_embeddings);
  w.u32(arch + ".embedding_length", cfg.hidden_size);
  w.u32(arch + ".feed_forward_length", cfg.intermediate_size);
  w.u32(arch + ".attention.head_count", cfg.num_heads);
  w.u32(arch + ".attention.head_count_kv", cfg.num_kv_heads);
  w.u32(arch + ".attention.key_length", cfg.head_dim);
  w.u32(arch + ".attention.value_length", cfg.head_dim);
  w.f32(arch + ".rope.freq_base", static_cast<float>(cfg.rope_theta));
  w.f32(arch + ".attention.layer_norm_rms_epsilon", static_cast<float>(cfg.rms_norm_eps));
  std::vector<std::string> tokens;
  for (int i = 0; i < cfg.vocab_size; ++i) tokens.push_back("t" + std::to_string(i));
  w.str("tokenizer.ggml.model", "gpt2");
  w.strings("tokenizer.ggml.tokens", tokens);
  w.u32("tokenizer.ggml.bos_token_id", 1);
  w.u32("tokenizer.ggml.eos_token_id", 2);
  if (cfg.llama3_rope) {  // generate_extra_tensors: the divisor of each frequency
    ModelConfig plain = cfg;
    plain.rope_scaling = {};
    const std::vector<float> base = rope_inv_freq(plain), scaled = rope_inv_freq(cfg);
    std::vector<float> factors;
    for (size_t i = 0; i < base.size(); ++i) factors.push_back(base[i] / scaled[i]);
    w.tensor_f32("rope_freqs.weight", {factors.size()}, factors);
  }
  SafetensorsFile st(dir + "/model.safetensors");
  for (const auto& [hf, t] : st.tensors()) {
    const std::string g = gguf_name(hf);
    std::string bytes(static_cast<const char*>(t.data), t.nbytes);
    uint32_t type = ggml_type_of(t.dtype);
    // llama.cpp keeps norms and biases in f32
    const bool f32 = t.shape.size() == 1 || (!o.f32_suffix.empty() && g.ends_with(o.f32_suffix));
    if (f32 || (type == 0 && !o.q8_0)) type = 0, bytes = as_f32(t);
    else if (o.q8_0) type = 8, bytes = as_q8_0(t);
    if (arch == "llama" && (hf.find("q_proj") != std::string::npos || hf.find("k_proj") != std::string::npos))
      bytes = permute_rows(bytes, t.shape[0], hf.find("q_proj") != std::string::npos ? cfg.num_heads : cfg.num_kv_heads);
    w.tensor(g, std::vector<uint64_t>(t.shape.rbegin(), t.shape.rend()), type, bytes);
  }
  w.write(out);
  return out;
}

}  // namespace nanovllm::test
