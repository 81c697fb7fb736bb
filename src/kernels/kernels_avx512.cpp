// The AVX-512 BF16 kernel table (Cooper Lake, Sapphire Rapids, Zen 4 / 5): the matmul of
// gemm_avx512.cpp and quant_avx512.cpp, the prefill attention of attention_avx512.cpp, the
// element-wise kernels of elementwise_avx512.cpp; the rest (decode attention, embed) from AVX2.
#include "kernels/kernels_internal.h"

namespace nanovllm::kernels {

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
    // Quantized weights, prompt rows: decoded to bf16 pair panels and multiplied by the BF16
    // GEMM (gemm_avx512.cpp), x rounded to bf16. 1.2x less CPU than the integer dot products at
    // 16 rows, 2-2.6x at 64, 3.3-3.8x at 512 (bench/matmul_cpu_eff --quant, bench/NOTES.md);
    // slower below ~16 rows, which a prompt rarely is (a short prompt or last chunk).
    const bool prompt_gemm = quant_prompt_gemm();  // the environment read once, warned once
    for (int t = 0; t < kNumDTypes; ++t)
      k.prompt_precision[t] = is_quantized(DType(t)) && prompt_gemm ? Precision::kBF16 : k.precision[t];
    k.matmul = matmul_avx512;
    k.matmul_prompt = prompt_gemm ? matmul_prompt_avx512 : matmul_avx512;
    k.paged_attention = paged_attention_avx512;
    k.rmsnorm = rmsnorm_avx512;
    k.rope = rope_avx512;
    k.silu_mul = silu_mul_avx512;
    k.kv_store = kv_store_avx512;
    return k;
  }();
  return t;
}

}  // namespace nanovllm::kernels
