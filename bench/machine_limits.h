// This machine's limits, measured at start-up by limits_bench.cpp, as denominators for the
// kernel benchmarks' "fraction of the limit" counters.
#pragma once

namespace nanovllm::bench {

struct MachineLimits {
  double read_bytes_per_s = 0;   // STREAM-style read bandwidth, all OpenMP threads
  double fma_flops_per_s = 0;    // f32 FMA peak (AVX2 ymm, or zmm where AVX-512 exists)
  double bf16_flops_per_s = 0;   // AVX-512 BF16 dot-product peak; 0 where the CPU lacks it
  // The compute peak of the ISA the kernels use for BF16 weights.
  double bf16_matmul_peak() const { return bf16_flops_per_s > 0 ? bf16_flops_per_s : fma_flops_per_s; }
};

// Measures once (about a second) and caches.
const MachineLimits& machine_limits();

}  // namespace nanovllm::bench
