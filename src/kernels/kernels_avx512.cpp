// The AVX-512 BF16 kernel table (Cooper Lake, Sapphire Rapids, Zen 4 / 5): the matmul of
// gemm_avx512.cpp and quant_avx512.cpp, the prefill attention of attention_avx512.cpp; the
// kernels without an AVX-512 version come from AVX2.
#include "kernels/kernels_internal.h"

namespace nanovllm::kernels {

// From how many rows of x quantized weights are decoded into bf16 panels for the BF16 GEMM.
// It beats the integer dot products from 16 rows on (bench/matmul_cpu_eff --quant: 1.2x at 16,
// 2-2.6x at 64, 3.3-3.8x at 512; bench/NOTES.md), but it is off by default (0): with it a row's
// result depends on how many rows share its matmul (x rounded to int8 blocks below the switch,
// to bf16 from it on), so a request's seeded samples would change with the server's batch mix
// (tests/server test_batch_mixing_constrained_and_free_requests_keeps_the_free_ones fails at 16).
// NANOVLLM_QUANT_GEMM_MIN_ROWS=16 turns it on.
constexpr int kQuantGemmMinRows = 0;

const KernelTable& avx512_table() {
  static const KernelTable t = [] {
    KernelTable k = avx2_table();
    k.name = "avx512bf16";
    // BF16 weights in pair panels, multiplied by activations rounded to bf16 (vdpbf16ps);
    // f32 and f16 weights row by row in f32; int8 through the AVX2 panels; quantized ones (rows,
    // as stored) with activations rounded to int8 (kQ8, from the AVX2 table).
    k.layout[int(DType::F32)] = k.layout[int(DType::F16)] = Layout::kRows;
    k.layout[int(DType::BF16)] = Layout::kPairPanels;
    k.layout[int(DType::I8)] = Layout::kPanels;
    k.precision[int(DType::BF16)] = Precision::kBF16;
    // Quantized weights from gemm_min_rows rows of x on (where enabled): decoded to bf16 pair
    // panels and multiplied by the BF16 GEMM (gemm_avx512.cpp), x rounded to bf16.
    const int min_rows = quant_gemm_min_rows(kQuantGemmMinRows);
    for (int t = 0; t < kNumDTypes; ++t)
      if (is_quantized(DType(t))) {
        k.gemm_min_rows[t] = min_rows;
        k.gemm_precision[t] = Precision::kBF16;
      }
    k.matmul = matmul_avx512;
    k.paged_attention = paged_attention_avx512;
    return k;
  }();
  return t;
}

}  // namespace nanovllm::kernels
