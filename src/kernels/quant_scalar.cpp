// The scalar references of ggml's quantized blocks, written from ggml's formulas: the decoders
// (dequantize_row_*, checked against gguf-py's in tests/kernels/quant_test.cpp), the activation
// quantizers and the dot products (checked against llama.cpp's own CPU code there). The scalar
// matmul and embed decode a row with these and multiply in f32; matmul_quant_ref is the twin of
// the SIMD tables' quantized matmul.
#include <cmath>
#include <vector>

#include "kernels/kernels_internal.h"
#include "kernels/quant.h"

namespace nanovllm::kernels {
namespace {

// f32 to IEEE half, rounded to nearest even as F16C's vcvtps2ph (ggml's FP32_TO_FP16 on x86)
// does; subnormal halves included, overflow to inf, NaN kept NaN.
uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const auto sign = uint16_t((u >> 16) & 0x8000);
  u &= 0x7fffffffu;
  if (u > 0x7f800000u) return sign | 0x7e00;
  if (u >= 0x47800000u) return sign | 0x7c00;  // >= 65536 (65520 and up round there below)
  if (u < 0x38800000u)                         // below 2^-14: a multiple of the half's 2^-24
    return sign | uint16_t(std::nearbyint(std::fabs(f) * 0x1p24f));
  u -= uint32_t(127 - 15) << 23;                // rebias, then round 23 mantissa bits to 10
  u += 0xfffu + ((u >> 13) & 1);
  return sign | uint16_t(u >> 13);
}

// One block of any of the types as integers: w[e] = d * sc[e / 16] * u[e] - dmin * mn[e / 16].
// Blocks of 32 have sc = 1 and mn = 0, except Q4_1 (w = d u + m: dmin = -m, mn = 1).
struct IntBlock {
  int n;  // 32 or 256
  int u[256], sc[16], mn[16];
  float d, dmin;
};

void decode_blocks32(DType t, const uint8_t* blk, IntBlock* b) {
  b->n = 32;
  b->sc[0] = b->sc[1] = 1;
  b->mn[0] = b->mn[1] = 0;
  b->dmin = 0.f;
  if (t == DType::Q8_0) {
    const auto* q = reinterpret_cast<const BlockQ8_0*>(blk);
    b->d = f16_to_f32(q->d);
    for (int j = 0; j < 32; ++j) b->u[j] = q->qs[j];
    return;
  }
  // Q4_0 / Q4_1: element j in the low nibble of qs[j], j + 16 in its high one.
  const bool has_min = t == DType::Q4_1;
  const uint8_t* qs = has_min ? reinterpret_cast<const BlockQ4_1*>(blk)->qs : reinterpret_cast<const BlockQ4_0*>(blk)->qs;
  const int offset = has_min ? 0 : 8;
  for (int j = 0; j < 16; ++j) {
    b->u[j] = (qs[j] & 0xF) - offset;
    b->u[j + 16] = (qs[j] >> 4) - offset;
  }
  if (has_min) {
    const auto* q = reinterpret_cast<const BlockQ4_1*>(blk);
    b->d = f16_to_f32(q->d);
    b->dmin = -f16_to_f32(q->m);
    b->mn[0] = b->mn[1] = 1;
  } else {
    b->d = f16_to_f32(reinterpret_cast<const BlockQ4_0*>(blk)->d);
  }
}

// Q4_K and Q5_K: 4 pairs of 32-element sub-blocks, the low nibbles of 32 bytes then their high
// nibbles, each sub-block with its own 6-bit scale and min. Q5_K adds a fifth bit per element,
// bit j of qh[l] for sub-block j.
template <class B>
void decode_k4_k5(const uint8_t* blk, IntBlock* b) {
  const auto* q = reinterpret_cast<const B*>(blk);
  b->n = 256;
  b->d = f16_to_f32(q->d);
  b->dmin = f16_to_f32(q->dmin);
  for (int j = 0; j < 8; ++j) {
    k_scale_min(q->scales, j, &b->sc[2 * j], &b->mn[2 * j]);
    b->sc[2 * j + 1] = b->sc[2 * j];
    b->mn[2 * j + 1] = b->mn[2 * j];
    for (int l = 0; l < 32; ++l) {
      int v = (j & 1) ? q->qs[32 * (j / 2) + l] >> 4 : q->qs[32 * (j / 2) + l] & 0xF;
      if constexpr (std::is_same_v<B, BlockQ5_K>) v += ((q->qh[l] >> j) & 1) * 16;
      b->u[32 * j + l] = v;
    }
  }
}

// Q6_K: two halves of 128; 4 bits from ql and 2 from qh make q in [0, 64), centred on 32, with
// one int8 scale per 16 elements.
void decode_q6_k(const uint8_t* blk, IntBlock* b) {
  const auto* q = reinterpret_cast<const BlockQ6_K*>(blk);
  b->n = 256;
  b->d = f16_to_f32(q->d);
  b->dmin = 0.f;
  for (int g = 0; g < 16; ++g) {
    b->sc[g] = q->scales[g];
    b->mn[g] = 0;
  }
  for (int h = 0; h < 2; ++h) {
    const uint8_t *ql = q->ql + 64 * h, *qh = q->qh + 32 * h;
    int* u = b->u + 128 * h;
    for (int l = 0; l < 32; ++l) {
      u[l] = int((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
      u[l + 32] = int((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
      u[l + 64] = int((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
      u[l + 96] = int((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
    }
  }
}

void decode(DType t, const uint8_t* blk, IntBlock* b) {
  switch (t) {
    case DType::Q4_K: return decode_k4_k5<BlockQ4_K>(blk, b);
    case DType::Q5_K: return decode_k4_k5<BlockQ5_K>(blk, b);
    case DType::Q6_K: return decode_q6_k(blk, b);
    default: return decode_blocks32(t, blk, b);
  }
}

// x rounded as ggml's x86 quantize_row_q8_0 / q8_1 (its AVX path, which llama.cpp runs on any
// x86 with AVX): d = amax / 127 stored as f16, q = round-half-even(x * (127 / amax)) with that f32
// multiplier; Q8_1 adds s = f16(d * sum q), with the f32 d. (ggml's portable reference instead
// multiplies by 1 / d and rounds halves away from zero: it can differ by one on a tie.)
template <class B>
void quantize_blocks32(const float* x, int64_t nb, B* y) {
  for (int64_t i = 0; i < nb; ++i, x += 32) {
    float amax = 0.f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.f, id = amax != 0.f ? 127.f / amax : 0.f;
    y[i].d = f32_to_f16(d);
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
      y[i].qs[j] = int8_t(std::nearbyint(x[j] * id));
      sum += y[i].qs[j];
    }
    if constexpr (std::is_same_v<B, BlockQ8_1>) y[i].s = f32_to_f16(d * float(sum));
  }
}

// x rounded as ggml's quantize_row_q8_K: per 256, the scale comes from the first x of largest
// |x|, sign included: iscale = -127 / that x, q = round-half-even(iscale x) (at most 127), the f32
// d = 1 / iscale, and the sums of q per 16. An all-zero block is all zero.
void quantize_q8_k(const float* x, int64_t nb, BlockQ8_K* y) {
  for (int64_t i = 0; i < nb; ++i, x += 256) {
    float amax = 0.f, max = 0.f;
    for (int j = 0; j < 256; ++j)
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    std::memset(&y[i], 0, sizeof(BlockQ8_K));
    if (amax == 0.f) continue;
    const float iscale = -127.f / max;
    for (int j = 0; j < 256; ++j) y[i].qs[j] = int8_t(std::min(127.f, std::nearbyint(iscale * x[j])));
    for (int j = 0; j < 256; ++j) y[i].bsums[j / 16] = int16_t(y[i].bsums[j / 16] + y[i].qs[j]);
    y[i].d = 1.f / iscale;
  }
}

int int_dot(const int* u, const int8_t* q, int n) {
  int s = 0;
  for (int i = 0; i < n; ++i) s += u[i] * q[i];
  return s;
}

}  // namespace

size_t block_bytes(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::BF16: case DType::F16: return 2;
    case DType::I8: return 1;
    case DType::Q8_0: return sizeof(BlockQ8_0);
    case DType::Q4_0: return sizeof(BlockQ4_0);
    case DType::Q4_1: return sizeof(BlockQ4_1);
    case DType::Q4_K: return sizeof(BlockQ4_K);
    case DType::Q5_K: return sizeof(BlockQ5_K);
    case DType::Q6_K: return sizeof(BlockQ6_K);
  }
  return 0;
}

// w = d sc u - dmin mn, in the order of ggml's dequantize_row_* (bit for bit the same floats).
void dequantize_row_ref(DType t, const void* src, int64_t n, float* dst) {
  if (!is_quantized(t)) {
    for (int64_t i = 0; i < n; ++i) dst[i] = load_as_f32(src, t, size_t(i));
    return;
  }
  const auto* w = static_cast<const uint8_t*>(src);
  IntBlock b;
  for (int64_t i = 0; i < n; i += block_elems(t), w += block_bytes(t)) {
    decode(t, w, &b);
    for (int e = 0; e < b.n; ++e) dst[i + e] = b.d * float(b.sc[e / 16]) * float(b.u[e]) - b.dmin * float(b.mn[e / 16]);
  }
}

ActQuant act_quant(DType weights) {
  if (weights == DType::Q4_1) return ActQuant::kQ8_1;
  return block_elems(weights) == 256 ? ActQuant::kQ8_K : ActQuant::kQ8_0;
}

size_t act_row_bytes(ActQuant a, int64_t n) {
  switch (a) {
    case ActQuant::kQ8_0: return size_t(n / 32) * sizeof(BlockQ8_0);
    case ActQuant::kQ8_1: return size_t(n / 32) * sizeof(BlockQ8_1);
    case ActQuant::kQ8_K: return size_t(n / 256) * sizeof(BlockQ8_K);
  }
  return 0;
}

void quantize_act_row_ref(ActQuant a, const float* x, int64_t n, void* dst) {
  switch (a) {
    case ActQuant::kQ8_0: return quantize_blocks32(x, n / 32, static_cast<BlockQ8_0*>(dst));
    case ActQuant::kQ8_1: return quantize_blocks32(x, n / 32, static_cast<BlockQ8_1*>(dst));
    case ActQuant::kQ8_K: return quantize_q8_k(x, n / 256, static_cast<BlockQ8_K*>(dst));
  }
}

// ggml's vec_dot_*_q8_* formulas: per block an exact integer sum, scaled in f32 by the product of
// the two scales; the mins through the activations' own sums (Q8_1's s, Q8_K's bsums).
float vec_dot_ref(DType t, int64_t n, const void* w, const void* xq) {
  const auto* wb = static_cast<const uint8_t*>(w);
  IntBlock b;
  float sum = 0.f;
  for (int64_t i = 0; i < n / block_elems(t); ++i, wb += block_bytes(t)) {
    decode(t, wb, &b);
    switch (act_quant(t)) {
      case ActQuant::kQ8_0: {
        const BlockQ8_0& y = static_cast<const BlockQ8_0*>(xq)[i];
        sum += float(int_dot(b.u, y.qs, 32)) * (b.d * f16_to_f32(y.d));
        break;
      }
      case ActQuant::kQ8_1: {  // Q4_1: d dx sum(u q) + m s
        const BlockQ8_1& y = static_cast<const BlockQ8_1*>(xq)[i];
        sum += b.d * f16_to_f32(y.d) * float(int_dot(b.u, y.qs, 32)) - b.dmin * f16_to_f32(y.s);
        break;
      }
      case ActQuant::kQ8_K: {  // d dx sum(sc sum(u q)) - dmin dx sum(mn bsums)
        const BlockQ8_K& y = static_cast<const BlockQ8_K*>(xq)[i];
        int sumi = 0, summ = 0;
        for (int g = 0; g < 16; ++g) {
          sumi += b.sc[g] * int_dot(b.u + 16 * g, y.qs + 16 * g, 16);
          summ += b.mn[g] * y.bsums[g];
        }
        sum += b.d * y.d * float(sumi) - b.dmin * y.d * float(summ);
        break;
      }
    }
  }
  return sum;
}

void matmul_quant_ref(const float* x, int M, const WeightView& w, const float* bias, float* y) {
  const ActQuant a = act_quant(w.dtype);
  const size_t K = size_t(w.cols), N = size_t(w.rows), rb = row_bytes(w.dtype, w.cols);
  std::vector<uint8_t> xq(act_row_bytes(a, w.cols));
  for (int m = 0; m < M; ++m) {
    quantize_act_row_ref(a, x + size_t(m) * K, w.cols, xq.data());
    for (size_t n = 0; n < N; ++n)
      y[size_t(m) * N + n] = vec_dot_ref(w.dtype, w.cols, static_cast<const uint8_t*>(w.data) + n * rb, xq.data()) +
                             (bias ? bias[n] : 0.f);
  }
}

}  // namespace nanovllm::kernels
