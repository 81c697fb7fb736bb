// The reference decoders of ggml's quantized blocks, written from ggml's dequantize_row_* formulas
// (checked against gguf-py's in tests/kernels/quant_test.cpp). The scalar matmul and embed
// decode a row with these and multiply in f32.
#include <type_traits>

#include "kernels/kernels_internal.h"
#include "kernels/quant.h"

namespace nanovllm::kernels {
namespace {

void dequant_q8_0(const BlockQ8_0* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = f16_to_f32(b[i].d);
    for (int j = 0; j < 32; ++j) y[j] = float(b[i].qs[j]) * d;
  }
}

void dequant_q4_0(const BlockQ4_0* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = f16_to_f32(b[i].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = float((b[i].qs[j] & 0xF) - 8) * d;
      y[j + 16] = float((b[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequant_q4_1(const BlockQ4_1* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i, y += 32) {
    const float d = f16_to_f32(b[i].d), m = f16_to_f32(b[i].m);
    for (int j = 0; j < 16; ++j) {
      y[j] = float(b[i].qs[j] & 0xF) * d + m;
      y[j + 16] = float(b[i].qs[j] >> 4) * d + m;
    }
  }
}

// Q4_K and Q5_K: 4 pairs of 32-element sub-blocks, the low nibbles of 32 bytes then their high
// nibbles, each sub-block with its own 6-bit scale and min: w = d * sc * q - dmin * m. Q5_K adds a
// fifth bit per element, bit j of qh[l] for sub-block j.
template <class B>
void dequant_k4_k5(const B* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    for (int j = 0; j < 8; ++j, y += 32) {
      int sc, m;
      k_scale_min(b[i].scales, j, &sc, &m);
      const float dj = d * float(sc), mj = dmin * float(m);
      for (int l = 0; l < 32; ++l) {
        int v = (j & 1) ? q[32 * (j / 2) + l] >> 4 : q[32 * (j / 2) + l] & 0xF;
        if constexpr (std::is_same_v<B, BlockQ5_K>) v += ((b[i].qh[l] >> j) & 1) * 16;
        y[l] = dj * float(v) - mj;
      }
    }
  }
}

// Q6_K: two halves of 128; 4 bits from ql and 2 from qh make q in [0, 64), centred on 32, with
// one int8 scale per 16 elements: w = d * sc * (q - 32).
void dequant_q6_k(const BlockQ6_K* b, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = f16_to_f32(b[i].d);
    const uint8_t *ql = b[i].ql, *qh = b[i].qh;
    const int8_t* sc = b[i].scales;
    for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = int((ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4) - 32;
        const int q2 = int((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4) - 32;
        const int q3 = int((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4) - 32;
        const int q4 = int((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4) - 32;
        y[l] = d * float(sc[is + 0]) * float(q1);
        y[l + 32] = d * float(sc[is + 2]) * float(q2);
        y[l + 64] = d * float(sc[is + 4]) * float(q3);
        y[l + 96] = d * float(sc[is + 6]) * float(q4);
      }
    }
  }
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

void dequantize_row_ref(DType t, const void* src, int64_t n, float* dst) {
  const int64_t nb = n / block_elems(t);
  switch (t) {
    case DType::Q8_0: return dequant_q8_0(static_cast<const BlockQ8_0*>(src), nb, dst);
    case DType::Q4_0: return dequant_q4_0(static_cast<const BlockQ4_0*>(src), nb, dst);
    case DType::Q4_1: return dequant_q4_1(static_cast<const BlockQ4_1*>(src), nb, dst);
    case DType::Q4_K: return dequant_k4_k5(static_cast<const BlockQ4_K*>(src), nb, dst);
    case DType::Q5_K: return dequant_k4_k5(static_cast<const BlockQ5_K*>(src), nb, dst);
    case DType::Q6_K: return dequant_q6_k(static_cast<const BlockQ6_K*>(src), nb, dst);
    default:
      for (int64_t i = 0; i < n; ++i) dst[i] = load_as_f32(src, t, size_t(i));
  }
}

}  // namespace nanovllm::kernels
