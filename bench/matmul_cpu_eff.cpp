// BF16 matmul efficiency in CPU time, for a host too loaded for wall-clock rates: a 12-chain
// vdpbf16ps loop (the peak) and the matmul on row-major and on repacked weights, interleaved in
// one process, one thread, each timed by CLOCK_THREAD_CPUTIME_ID. Usage: matmul_cpu_eff [N K].
// Needs AVX-512 BF16 (bench/NOTES.md step 19).
#include <immintrin.h>
#include <omp.h>
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "kernels/kernels.h"

// GCC 12's AVX-512 headers (reduce) trip this warning on their placeholder operands.
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace nk = nanovllm::kernels;

static double cpu_now() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + double(t.tv_nsec) * 1e-9;
}

// Flops per CPU second of 12 independent vdpbf16ps chains (64 flops each): this thread's peak now.
__attribute__((target("avx512f,avx512bf16"))) static double peak_flops() {
  __m512 a[12];
  for (auto& v : a) v = _mm512_setzero_ps();
  const __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80), y = (__m512bh)_mm512_set1_epi32(0x3c003c00);
  const long n = 20000000;
  const double t0 = cpu_now();
  for (long i = 0; i < n; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < 12; ++j) a[j] = _mm512_dpbf16_ps(a[j], x, y);
  }
  const double t = cpu_now() - t0;
  float s = 0;
  for (auto& v : a) s += _mm512_reduce_add_ps(v);
  if (s == 1234.5f) std::puts("");  // keeps the chains alive
  return n * 12.0 * 64 / t;
}

int main(int argc, char** argv) {
  if (!nk::isa_supported("avx512bf16")) {
    std::puts("this CPU lacks avx512bf16");
    return 0;
  }
  omp_set_num_threads(1);
  const int N = argc > 2 ? std::atoi(argv[1]) : 6144, K = argc > 2 ? std::atoi(argv[2]) : 1024;
  std::mt19937 rng(1);
  std::vector<uint16_t> w(size_t(N) * K);
  for (auto& v : w) v = uint16_t(0x3c00 | (rng() & 0x7f));  // small bf16 values
  const nk::WeightView rows{w.data(), nk::DType::BF16, N, K};
  const nk::Layout layout = nk::preferred_layout(nk::DType::BF16);
  std::vector<uint8_t> buf(nk::layout_bytes(rows, layout));
  const nk::WeightView packed = nk::repack(rows, layout, buf.data());
  std::vector<float> x(512 * size_t(K), 0.5f), y(512 * size_t(N));
  for (int round = 0; round < 3; ++round) {
    const double peak = peak_flops();
    std::printf("peak %.1f GFLOP/s per CPU second\n", peak / 1e9);
    for (int M : {1, 16, 64, 512})
      for (const nk::WeightView* v : {&rows, &packed}) {
        const double flops = 2.0 * M * N * K;
        const int reps = std::max(2, int(2e9 / flops));
        const double t0 = cpu_now();
        for (int r = 0; r < reps; ++r) nk::matmul(x.data(), M, *v, nullptr, y.data());
        const double t = (cpu_now() - t0) / reps;
        std::printf("  M=%3d %-7s %7.1f GFLOP/s  %5.1f%% of peak  %.3f ms\n", M, v == &rows ? "rows" : "packed",
                    flops / t / 1e9, 100 * flops / t / peak, t * 1e3);
      }
  }
}
