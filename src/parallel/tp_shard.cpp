// Loading one rank's slices of a checkpoint for tensor parallelism.
#include "parallel/tp_shard.h"

#include <cstring>
#include <string>

#include "nanovllm/error.h"

namespace nanovllm {

using kernels::WeightView;

Range tp_range(int n, TpRank r) {
  const int base = n / r.size, extra = n % r.size;
  const int begin = r.rank * base + std::min(r.rank, extra);
  return {begin, begin + base + (r.rank < extra ? 1 : 0)};
}

namespace {

void check_split(const std::string& what, int n, int size) {
  if (n % size != 0)
    throw Error("tensor parallel size " + std::to_string(size) + " does not divide " + what + " (" +
                std::to_string(n) + ")");
}

// A block of a row-major matrix: rows [rows.begin, rows.end), columns [cols.begin, cols.end).
struct Block {
  const TensorInfo* t;
  Range rows, cols;
};

// Copies blocks of equal width one below the other into one matrix and prepares it.
WeightView gather_blocks(const std::vector<Block>& blocks, const WeightOptions& opts, std::vector<AlignedBuffer>* owned) {
  const TensorInfo& first = *blocks[0].t;
  const size_t es = kernels::dtype_size(first.dtype);
  int rows = 0;
  for (const Block& b : blocks) {
    if (b.t->dtype != first.dtype)
      throw Error(b.t->file + ": tensor '" + b.t->name + "' has dtype " + safetensors_dtype_name(b.t->dtype) +
                  " unlike '" + first.name + "'");
    rows += b.rows.size();
  }
  const int cols = blocks[0].cols.size();
  AlignedBuffer buf(static_cast<size_t>(rows) * cols * es);
  auto* dst = static_cast<uint8_t*>(buf.data());
  for (const Block& b : blocks) {
    const auto* src = static_cast<const uint8_t*>(b.t->data);
    const size_t stride = static_cast<size_t>(b.t->shape[1]) * es;
    for (int r = b.rows.begin; r < b.rows.end; ++r, dst += cols * es)
      std::memcpy(dst, src + r * stride + b.cols.begin * es, cols * es);
    // A column slice touches every page of the tensor: drop them, or each rank would hold
    // the whole matrix in RSS besides its copy.
    release_tensor_pages(*b.t);
  }
  const WeightView v{buf.data(), first.dtype, rows, cols};
  const WeightView m = prepare_matrix(v, nullptr, opts, owned);
  if (m.data == v.data) owned->push_back(std::move(buf));
  return m;
}

std::vector<float> slice(const std::vector<float>& v, Range r) {
  return {v.begin() + r.begin, v.begin() + r.end};
}

LayerWeights load_layer_shard(const Checkpoint& ck, const ModelConfig& c, int i, TpRank tp, const WeightOptions& opts,
                              std::vector<AlignedBuffer>* owned) {
  const std::string p = "model.layers." + std::to_string(i) + ".";
  const int h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), inter = c.intermediate_size;
  const Range all_h{0, h}, qr = tp_range(q, tp), kvr = tp_range(kv, tp), ir = tp_range(inter, tp);
  LayerWeights L;
  L.attn_norm = tensor_to_f32(ck.get(p + "input_layernorm.weight", {h}));
  L.mlp_norm = tensor_to_f32(ck.get(p + "post_attention_layernorm.weight", {h}));
  const std::string a = p + "self_attn.", m = p + "mlp.";
  L.qkv = gather_blocks({{&ck.get(a + "q_proj.weight", {q, h}), qr, all_h},
                         {&ck.get(a + "k_proj.weight", {kv, h}), kvr, all_h},
                         {&ck.get(a + "v_proj.weight", {kv, h}), kvr, all_h}}, opts, owned);
  L.o = gather_blocks({{&ck.get(a + "o_proj.weight", {h, q}), all_h, qr}}, opts, owned);
  L.gate_up = gather_blocks({{&ck.get(m + "gate_proj.weight", {inter, h}), ir, all_h},
                             {&ck.get(m + "up_proj.weight", {inter, h}), ir, all_h}}, opts, owned);
  L.down = gather_blocks({{&ck.get(m + "down_proj.weight", {h, inter}), all_h, ir}}, opts, owned);
  auto bias = [&](const std::string& name, int n) { return tensor_to_f32(ck.get(name, {n})); };
  if (c.qkv_bias) {
    L.qkv_bias = slice(bias(a + "q_proj.bias", q), qr);
    for (const char* kv_bias : {"k_proj.bias", "v_proj.bias"}) {
      const std::vector<float> part = slice(bias(a + kv_bias, kv), kvr);
      L.qkv_bias.insert(L.qkv_bias.end(), part.begin(), part.end());
    }
  }
  if (c.o_bias && tp.rank == 0) L.o_bias = bias(a + "o_proj.bias", h);
  if (c.mlp_bias) {
    L.gate_up_bias = slice(bias(m + "gate_proj.bias", inter), ir);
    const std::vector<float> up = slice(bias(m + "up_proj.bias", inter), ir);
    L.gate_up_bias.insert(L.gate_up_bias.end(), up.begin(), up.end());
    if (tp.rank == 0) L.down_bias = bias(m + "down_proj.bias", h);
  }
  if (c.qk_norm) {
    L.q_norm = tensor_to_f32(ck.get(a + "q_norm.weight", {c.head_dim}));
    L.k_norm = tensor_to_f32(ck.get(a + "k_norm.weight", {c.head_dim}));
  }
  return L;
}

}  // namespace

ModelConfig shard_config(const ModelConfig& full, TpRank r) {
  check_split("num_key_value_heads", full.num_kv_heads, r.size);
  check_split("intermediate_size", full.intermediate_size, r.size);
  ModelConfig c = full;
  c.num_heads /= r.size;  // a multiple of num_kv_heads, so it splits too
  c.num_kv_heads /= r.size;
  c.intermediate_size /= r.size;
  return c;
}

ModelWeights load_weight_shard(const Checkpoint& ck, const ModelConfig& c, TpRank r, const WeightOptions& opts) {
  NV_CHECK(!opts.int8, "tensor parallelism loads the weights as stored");
  shard_config(c, r);  // the same checks before any tensor is read
  const std::vector<int64_t> shape{c.vocab_size, c.hidden_size};
  const char* embed = "model.embed_tokens.weight";
  const char* head = c.tie_word_embeddings && !ck.find(embed) && ck.find("lm_head.weight") ? "lm_head.weight" : embed;
  const TensorInfo& table = ck.get(c.tie_word_embeddings ? head : embed, shape);
  ModelWeights w;
  w.embed = WeightView{table.data, table.dtype, c.vocab_size, c.hidden_size};
  const TensorInfo& lm = c.tie_word_embeddings ? table : ck.get("lm_head.weight", shape);
  w.lm_head = gather_blocks({{&lm, tp_range(c.vocab_size, r), {0, c.hidden_size}}}, opts, &w.owned);
  w.final_norm = tensor_to_f32(ck.get("model.norm.weight", {c.hidden_size}));
  w.owned.reserve(4 * static_cast<size_t>(c.num_layers) + 2);
  for (int i = 0; i < c.num_layers; ++i) w.layers.push_back(load_layer_shard(ck, c, i, r, opts, &w.owned));
  return w;
}

}  // namespace nanovllm
