// The decoder forward: embed → layers (attention over the paged cache, gated MLP) → logits.
#include "model/transformer.h"

#include <cmath>
#include <cstring>
#include <string>

#include "nanovllm/error.h"

namespace nanovllm {

using kernels::DType;

namespace {

// Grows a scratch vector without shrinking it, so steady-state steps allocate nothing.
template <typename T>
T* sized(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

void add_into(float* x, const float* h, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] += h[i];
}

const float* bias_or_null(const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); }

// Appends one row of `role` to runs (row after row).
void push_role(std::vector<RoleRun>& runs, kernels::RowRole role) {
  if (!runs.empty() && runs.back().role == role) {
    ++runs.back().end;
  } else {
    const int begin = runs.empty() ? 0 : runs.back().end;
    runs.push_back({begin, begin + 1, role});
  }
}

}  // namespace

Transformer::Transformer(const ModelConfig& cfg, const ModelWeights& weights, Allreduce allreduce)
    : cfg_(cfg), w_(weights), allreduce_(std::move(allreduce)), inv_freq_(rope_inv_freq(cfg)) {}

int64_t Transformer::kv_block_bytes(int block_size, DType kv_dtype) const {
  return 2LL * cfg_.num_layers * block_size * cfg_.kv_dim() *
         static_cast<int64_t>(kernels::dtype_size(kv_dtype));
}

void Transformer::allocate_kv_cache(int num_blocks, int block_size, DType kv_dtype, bool prefault) {
  NV_CHECK(num_blocks > 0 && block_size > 0, "KV cache needs blocks");
  NV_CHECK(kv_dtype == DType::BF16 || kv_dtype == DType::F32, "KV cache dtype is bf16 or f32");
  const size_t layer_bytes = static_cast<size_t>(num_blocks) * block_size * cfg_.kv_dim() *
                             kernels::dtype_size(kv_dtype);
  kv_storage_.clear();
  kv_.clear();
  for (int l = 0; l < cfg_.num_layers; ++l) {
    kv_storage_.emplace_back(layer_bytes);
    kv_storage_.emplace_back(layer_bytes);
    kv_.push_back(kernels::KVLayer{kv_storage_[2 * l].data(), kv_storage_[2 * l + 1].data(),
                                   kv_dtype, block_size, cfg_.num_kv_heads, cfg_.head_dim});
  }
  num_blocks_ = num_blocks;
  if (prefault) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < kv_storage_.size(); ++i)
      std::memset(kv_storage_[i].data(), 0, kv_storage_[i].size());
  }
}

// Cache slots of the new tokens, attention descriptors and sampling rows; checks the batch.
void Transformer::prepare_step(const Batch& batch) {
  const int T = batch.num_tokens();
  NV_CHECK(!kv_.empty(), "allocate_kv_cache before forward");
  NV_CHECK(batch.block_size == kv_[0].block_size, "batch block_size differs from the cache's");
  batch.check();
  const int bs = batch.block_size;
  int* slots = sized(s_.slots, T);
  s_.attn_seqs.clear();
  s_.sample_rows.clear();
  s_.token_runs.clear();
  s_.sample_runs.clear();
  int t = 0;
  for (const SeqSlice& seq : batch.seqs) {
    const auto role = [&](int pos) { return pos < seq.num_prompt ? kernels::RowRole::kPrompt : kernels::RowRole::kDecode; };
    for (int i = 0; i < seq.num_new; ++i, ++t) {
      const int pos = seq.num_cached + i;
      push_role(s_.token_runs, role(pos));
      const int block = seq.block_table[pos / bs];
      NV_CHECK(block >= 0 && block < num_blocks_, "block id outside the cache");
      slots[t] = block * bs + pos % bs;
      const int id = batch.token_ids[t];
      if (id < 0 || id >= cfg_.vocab_size)
        throw Error("token id " + std::to_string(id) + " outside the vocabulary [0, " +
                    std::to_string(cfg_.vocab_size) + ")");
    }
    s_.attn_seqs.push_back({t - seq.num_new, seq.num_new, seq.num_cached, seq.block_table.data()});
    if (seq.sample) {
      s_.sample_rows.push_back(t - 1);
      push_role(s_.sample_runs, role(seq.num_cached + seq.num_new - 1));
    }
  }
}

// Quantized weights take another path (and precision) for prompt rows than for generated ones:
// one call per run. Where both roles have the same precision they share one path: one call.
void Transformer::matmul(const float* x, const std::vector<RoleRun>& runs, const kernels::WeightView& w,
                         const float* bias, float* y) {
  if (runs.empty()) return;
  const int M = runs.back().end;
  using kernels::RowRole;
  if (kernels::matmul_precision(w.dtype, RowRole::kPrompt) == kernels::matmul_precision(w.dtype, RowRole::kDecode))
    return kernels::matmul(x, M, w, bias, y, RowRole::kDecode);
  for (const RoleRun& r : runs)
    kernels::matmul(x + static_cast<size_t>(r.begin) * w.cols, r.end - r.begin, w, bias,
                    y + static_cast<size_t>(r.begin) * w.rows, r.role);
}

void Transformer::forward(const Batch& batch, Logits* out) {
  prepare_step(batch);
  const int T = batch.num_tokens();
  const size_t H = cfg_.hidden_size;
  prof_.begin_step(T, T == static_cast<int>(batch.seqs.size()));
  {
    OpProfile::Scope _(prof_, Op::kEmbed);
    kernels::embed(w_.embed, batch.token_ids.data(), T, sized(s_.x, T * H));
  }
  sized(s_.h, T * H);
  for (int l = 0; l < cfg_.num_layers; ++l) {
    attention_block(w_.layers[l], kv_[l], batch);
    mlp_block(w_.layers[l], T);
  }
  compute_logits(out);
}

// y = x · [parts]^T, the parts stacked as one matrix: one matmul when they were merged, else
// one per part, each written into its columns of y.
void Transformer::project(const float* x, int T, const kernels::WeightView& merged,
                          const std::vector<kernels::WeightView>& parts, const std::vector<float>& bias, float* y) {
  if (parts.empty()) return matmul(x, s_.token_runs, merged, bias_or_null(bias), y);
  int n = 0;
  for (const kernels::WeightView& p : parts) n += p.rows;
  int col = 0;
  for (const kernels::WeightView& p : parts) {
    float* part = sized(s_.part, static_cast<size_t>(T) * p.rows);
    matmul(x, s_.token_runs, p, bias.empty() ? nullptr : bias.data() + col, part);
    for (int t = 0; t < T; ++t)
      std::copy(part + static_cast<size_t>(t) * p.rows, part + static_cast<size_t>(t + 1) * p.rows,
                y + static_cast<size_t>(t) * n + col);
    col += p.rows;
  }
}

// The merged projection gives rows of [q | k | v]; rope, the norms and the cache want each
// contiguous as [T, heads, head_dim].
void Transformer::split_qkv(int T) {
  const int qd = cfg_.q_dim(), kvd = cfg_.kv_dim(), row = qd + 2 * kvd;
  float* q = sized(s_.q, static_cast<size_t>(T) * qd);
  float* k = sized(s_.k, static_cast<size_t>(T) * kvd);
  float* v = sized(s_.v, static_cast<size_t>(T) * kvd);
  for (int t = 0; t < T; ++t) {
    const float* src = s_.qkv.data() + static_cast<size_t>(t) * row;
    std::copy(src, src + qd, q + static_cast<size_t>(t) * qd);
    std::copy(src + qd, src + qd + kvd, k + static_cast<size_t>(t) * kvd);
    std::copy(src + qd + kvd, src + row, v + static_cast<size_t>(t) * kvd);
  }
}

void Transformer::attention_block(const LayerWeights& w, const kernels::KVLayer& kv, const Batch& batch) {
  const int T = batch.num_tokens(), H = cfg_.hidden_size, hd = cfg_.head_dim;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  {
    OpProfile::Scope _(prof_, Op::kNorm);
    kernels::rmsnorm(s_.x.data(), w.attn_norm.data(), T, H, eps, s_.h.data());
  }
  {
    OpProfile::Scope _(prof_, Op::kQkvMatmul);
    project(s_.h.data(), T, w.qkv, w.qkv_parts, w.qkv_bias,
            sized(s_.qkv, static_cast<size_t>(T) * (cfg_.q_dim() + 2 * cfg_.kv_dim())));
  }
  {
    OpProfile::Scope _(prof_, Op::kSplitQkv);
    split_qkv(T);
  }
  if (cfg_.qk_norm) {  // Qwen3: each head normalised on its own, before RoPE
    OpProfile::Scope _(prof_, Op::kQkNorm);
    kernels::rmsnorm(s_.q.data(), w.q_norm.data(), T * cfg_.num_heads, hd, eps, s_.q.data());
    kernels::rmsnorm(s_.k.data(), w.k_norm.data(), T * cfg_.num_kv_heads, hd, eps, s_.k.data());
  }
  {
    OpProfile::Scope _(prof_, Op::kRope);
    kernels::rope(s_.q.data(), T, cfg_.num_heads, hd, batch.positions.data(), inv_freq_.data());
    kernels::rope(s_.k.data(), T, cfg_.num_kv_heads, hd, batch.positions.data(), inv_freq_.data());
  }
  {
    OpProfile::Scope _(prof_, Op::kKvStore);
    kernels::kv_store(kv, s_.k.data(), s_.v.data(), T, s_.slots.data());
  }
  float* attn = sized(s_.attn, static_cast<size_t>(T) * cfg_.q_dim());
  {
    OpProfile::Scope _(prof_, Op::kAttention);
    kernels::paged_attention(s_.q.data(), s_.attn_seqs.data(), static_cast<int>(s_.attn_seqs.size()),
                             cfg_.num_heads, kv, 1.0f / std::sqrt(static_cast<float>(hd)), attn);
  }
  {
    OpProfile::Scope _(prof_, Op::kOMatmul);
    matmul(attn, s_.token_runs, w.o, bias_or_null(w.o_bias), s_.h.data());
    if (allreduce_) allreduce_(s_.h.data(), static_cast<size_t>(T) * H);
  }
  OpProfile::Scope _(prof_, Op::kResidual);
  add_into(s_.x.data(), s_.h.data(), static_cast<size_t>(T) * H);
}

void Transformer::mlp_block(const LayerWeights& w, int T) {
  const int H = cfg_.hidden_size, I = cfg_.intermediate_size;
  {
    OpProfile::Scope _(prof_, Op::kNorm);
    kernels::rmsnorm(s_.x.data(), w.mlp_norm.data(), T, H, static_cast<float>(cfg_.rms_norm_eps),
                     s_.h.data());
  }
  float* gate_up = sized(s_.gate_up, static_cast<size_t>(T) * 2 * I);
  {
    OpProfile::Scope _(prof_, Op::kGateUpMatmul);
    project(s_.h.data(), T, w.gate_up, w.gate_up_parts, w.gate_up_bias, gate_up);
  }
  float* act = sized(s_.act, static_cast<size_t>(T) * I);
  {
    OpProfile::Scope _(prof_, Op::kSiluMul);
    kernels::silu_mul(gate_up, T, I, act);
  }
  {
    OpProfile::Scope _(prof_, Op::kDownMatmul);
    matmul(act, s_.token_runs, w.down, bias_or_null(w.down_bias), s_.h.data());
    if (allreduce_) allreduce_(s_.h.data(), static_cast<size_t>(T) * H);
  }
  OpProfile::Scope _(prof_, Op::kResidual);
  add_into(s_.x.data(), s_.h.data(), static_cast<size_t>(T) * H);
}

// Only the sampling rows go through the final norm and the (large) vocabulary projection.
void Transformer::compute_logits(Logits* out) {
  const int R = static_cast<int>(s_.sample_rows.size()), H = cfg_.hidden_size;
  float* last = sized(s_.last, static_cast<size_t>(R) * H);
  for (int r = 0; r < R; ++r) {
    const float* src = s_.x.data() + static_cast<size_t>(s_.sample_rows[r]) * H;
    std::copy(src, src + H, last + static_cast<size_t>(r) * H);
  }
  out->rows = R;
  out->vocab = w_.lm_head.rows;  // the rank's part of the vocabulary under tensor parallelism
  out->data.resize(static_cast<size_t>(R) * out->vocab);
  if (R == 0) return;
  OpProfile::Scope _(prof_, Op::kLogits);
  kernels::rmsnorm(last, w_.final_norm.data(), R, H, static_cast<float>(cfg_.rms_norm_eps), last);
  matmul(last, s_.sample_runs, w_.lm_head, nullptr, out->data.data());
}

}  // namespace nanovllm
