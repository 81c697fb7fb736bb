// Scalar reference kernels: the oracle for the SIMD ones and the fallback for any x86-64.
#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/kernels_internal.h"

namespace nanovllm::kernels {
namespace {

// One W row converted to f32 per (thread, n) and reused for every row of x (quantized rows
// through the reference decoder: x stays f32).
void matmul_scalar(const float* x, int M, const WeightView& w, const float* bias, float* y) {
  const int N = w.rows, K = w.cols;
  const double flops = 2.0 * M * N * K;
  RegionErrors errors;
#pragma omp parallel if (flops > kMinParallelFlops)
  {
    std::vector<float> wrow;
    errors.run([&] { wrow.resize(static_cast<size_t>(K)); });
#pragma omp for schedule(static)
    for (int n = 0; n < N; ++n) {
      if (wrow.size() != size_t(K)) continue;  // no row buffer: the error is rethrown below
      if (w.layout == Layout::kRows) row_as_f32(w, size_t(n), wrow.data());  // any dtype
      else for (int k = 0; k < K; ++k) wrow[k] = load_as_f32(w.data, w.dtype, weight_index(w, n, k));
      for (int m = 0; m < M; ++m) {
        const float* xr = x + size_t(m) * K;
        float acc = 0.f;
        for (int k = 0; k < K; ++k) acc += xr[k] * wrow[k];
        y[size_t(m) * N + n] = acc * row_scale(w, n) + (bias ? bias[n] : 0.f);
      }
    }
  }
  errors.rethrow();
}

void rmsnorm_scalar(const float* x, const float* weight, int rows, int n, float eps, float* out) {
  for (int r = 0; r < rows; ++r) {
    const float* xr = x + size_t(r) * n;
    float* o = out + size_t(r) * n;
    double ss = 0;
    for (int i = 0; i < n; ++i) ss += double(xr[i]) * xr[i];
    const float inv = float(1.0 / std::sqrt(ss / n + eps));
    for (int i = 0; i < n; ++i) o[i] = xr[i] * inv * weight[i];
  }
}

void rope_scalar(float* x, int n_tokens, int n_heads, int head_dim, const int* positions,
                 const float* inv_freq) {
  const int half = head_dim / 2;
  for (int t = 0; t < n_tokens; ++t) {
    for (int i = 0; i < half; ++i) {
      // The angle is an f32 product, as in transformers; cos/sin of it are then exact-ish.
      const float angle = float(positions[t]) * inv_freq[i];
      const float c = float(std::cos(double(angle))), s = float(std::sin(double(angle)));
      for (int h = 0; h < n_heads; ++h) {
        float* xh = x + (size_t(t) * n_heads + h) * head_dim;
        const float a = xh[i], b = xh[i + half];
        xh[i] = a * c - b * s;
        xh[i + half] = b * c + a * s;
      }
    }
  }
}

void silu_mul_scalar(const float* gate_up, int rows, int n, float* out) {
  for (int r = 0; r < rows; ++r) {
    const float* g = gate_up + size_t(r) * 2 * n;
    const float* u = g + n;
    for (int i = 0; i < n; ++i) out[size_t(r) * n + i] = g[i] / (1.f + std::exp(-g[i])) * u[i];
  }
}

void kv_store_scalar(const KVLayer& kv, const float* k, const float* v, int n, const int* slots) {
  const size_t row = size_t(kv.n_kv_heads) * kv.head_dim;
  for (int i = 0; i < n; ++i) {
    if (slots[i] < 0) continue;  // padding token: nothing to cache
    for (size_t j = 0; j < row; ++j) {
      const size_t dst = kv_offset(kv, size_t(slots[i]), int(j / kv.head_dim)) + j % kv.head_dim;
      const float kj = k[size_t(i) * row + j], vj = v[size_t(i) * row + j];
      if (kv.dtype == DType::F32) {
        static_cast<float*>(kv.k)[dst] = kj;
        static_cast<float*>(kv.v)[dst] = vj;
      } else {
        static_cast<uint16_t*>(kv.k)[dst] = f32_to_bf16(kj);
        static_cast<uint16_t*>(kv.v)[dst] = f32_to_bf16(vj);
      }
    }
  }
}

// Online softmax over positions [0, ctx) for one query head.
void attend_one(const float* q, const KVLayer& kv, const int* block_table, int ctx, int kv_head,
                float scale, float* out) {
  const int hd = kv.head_dim;
  std::vector<float> acc(size_t(hd), 0.f);
  float m = -INFINITY, l = 0.f;
  for (int p = 0; p < ctx; ++p) {
    const size_t off = kv_offset(kv, seq_slot(kv, block_table, p), kv_head);
    float s = 0.f;
    for (int d = 0; d < hd; ++d) s += q[d] * load_as_f32(kv.k, kv.dtype, off + d);
    s *= scale;
    if (s > m) {
      const float r = std::exp(m - s);
      for (float& a : acc) a *= r;
      l *= r;
      m = s;
    }
    const float wgt = std::exp(s - m);
    l += wgt;
    for (int d = 0; d < hd; ++d) acc[d] += wgt * load_as_f32(kv.v, kv.dtype, off + d);
  }
  for (int d = 0; d < hd; ++d) out[d] = acc[d] / l;
}

void paged_attention_scalar(const float* q, const AttnSeq* seqs, int n_seqs, int n_heads,
                            const KVLayer& kv, float scale, float* out) {
  const int hd = kv.head_dim, group = n_heads / kv.n_kv_heads;
  RegionErrors errors;
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int s = 0; s < n_seqs; ++s) {
    for (int h = 0; h < n_heads; ++h) {
      errors.run([&] {
        const AttnSeq& sq = seqs[s];
        for (int t = 0; t < sq.n_new; ++t) {
          const size_t row = (size_t(sq.q_offset + t) * n_heads + h) * hd;
          attend_one(q + row, kv, sq.block_table, sq.num_cached + t + 1, h / group, scale,
                     out + row);
        }
      });
    }
  }
  errors.rethrow();
}

void embed_scalar(const WeightView& table, const int* ids, int n, float* out) {
  const size_t K = size_t(table.cols);
  for (int i = 0; i < n; ++i) {
    float* o = out + size_t(i) * K;
    if (table.layout == Layout::kRows) {
      row_as_f32(table, size_t(ids[i]), o);
    } else {
      for (size_t k = 0; k < K; ++k) o[k] = load_as_f32(table.data, table.dtype, weight_index(table, ids[i], k));
    }
    if (table.dtype == DType::I8)
      for (size_t k = 0; k < K; ++k) o[k] *= row_scale(table, size_t(ids[i]));
  }
}

}  // namespace

const KernelTable& scalar_table() {
  // The reference: row-major weights of every dtype, decoded to f32 and multiplied in f32.
  static const KernelTable t{"scalar",
                             {Layout::kRows, Layout::kRows, Layout::kRows, Layout::kRows, Layout::kRows,
                              Layout::kRows, Layout::kRows, Layout::kRows, Layout::kRows, Layout::kRows},
                             {Precision::kF32, Precision::kF32, Precision::kF32, Precision::kF32,
                              Precision::kF32, Precision::kF32, Precision::kF32, Precision::kF32,
                              Precision::kF32, Precision::kF32},
                             // Prompt rows: the same (x stays f32 for every dtype).
                             {Precision::kF32, Precision::kF32, Precision::kF32, Precision::kF32,
                              Precision::kF32, Precision::kF32, Precision::kF32, Precision::kF32,
                              Precision::kF32, Precision::kF32},
                             matmul_scalar,
                             matmul_scalar,
                             rmsnorm_scalar,
                             rope_scalar,
                             silu_mul_scalar,
                             kv_store_scalar,
                             paged_attention_scalar,
                             embed_scalar};
  return t;
}

}  // namespace nanovllm::kernels
