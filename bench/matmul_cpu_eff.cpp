// BF16 matmul efficiency in CPU time, for a host too loaded for wall-clock rates: a 12-chain
// vdpbf16ps loop (the peak) and the matmul on row-major and on repacked weights, interleaved in
// one process, one thread, each timed by CLOCK_THREAD_CPUTIME_ID. Usage: matmul_cpu_eff [N K].
// Needs AVX-512 BF16 (bench/NOTES.md step 19).
// matmul_cpu_eff --quant DTYPE [N K] [THREADS]: a quantized W (random blocks) at M = 1 .. 512 through
// the integer dot products (kQ8) and through the decoded bf16 GEMM (prompt rows: KernelTable::matmul_prompt), CPU time of
// the whole process (all threads) per matmul.
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
#include "kernels/quant.h"

#include <cstring>
#include <sys/resource.h>

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

// User + system CPU seconds of the process: every thread of the team.
static double process_cpu() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// Random blocks with sane f16 scales (0x2000 + a little: ~0.008), so no inf / NaN / subnormal.
static std::vector<uint8_t> random_quant(nk::DType t, int N, int K, std::mt19937& rng) {
  std::vector<uint8_t> b(N * nk::row_bytes(t, K));
  for (auto& v : b) v = uint8_t(rng());
  const size_t bb = nk::row_bytes(t, nk::block_elems(t));
  const size_t d_at = t == nk::DType::Q6_K ? 208 : 0;
  const int n_f16 = t == nk::DType::Q4_1 || t == nk::DType::Q4_K || t == nk::DType::Q5_K ? 2 : 1;
  for (size_t o = 0; o < b.size(); o += bb)
    for (int i = 0; i < n_f16; ++i) {
      const uint16_t h = uint16_t(0x2000 | (rng() & 0x3ff));
      std::memcpy(&b[o + d_at + 2 * i], &h, 2);
    }
  return b;
}

static int quant_main(const char* name, int N, int K, int threads) {
  nk::DType t = nk::DType::F32;
  for (int i = 0; i < 10; ++i)
    if (std::strcmp(nk::dtype_name(nk::DType(i)), name) == 0) t = nk::DType(i);
  if (t == nk::DType::F32) {
    std::fprintf(stderr, "unknown quantized dtype %s\n", name);
    return 1;
  }
  omp_set_num_threads(threads);
  std::mt19937 rng(1);
  const std::vector<uint8_t> bytes = random_quant(t, N, K, rng);
  const nk::WeightView w{bytes.data(), t, N, K};
  std::vector<float> x(512 * size_t(K)), y(512 * size_t(N));
  std::normal_distribution<float> normal;
  for (float& v : x) v = normal(rng);
  using Fn = void (*)(const float*, int, const nk::WeightView&, const float*, float*);
  const Fn paths[4] = {nk::matmul_quant_avx512, nk::matmul_quant_gemm_avx512, nk::matmul_quant_avx2,
                       nk::matmul_quant_gemm_avx2};
  const char* names[4] = {"512 int8", "512 bf16 gemm", "avx2 int8", "avx2 f32 gemm"};
  std::printf("%s N=%d K=%d, %d threads: process CPU ms per matmul (GFLOP per CPU second)\n", name, N, K, threads);
  for (int round = 0; round < 2; ++round)
    for (int M : {1, 4, 8, 16, 32, 64, 512}) {
      std::printf("  M=%3d", M);
      for (int p = 0; p < 4; ++p) {
        const double flops = 2.0 * M * N * K;
        const int reps = std::max(3, int(1e9 / flops));
        paths[p](x.data(), M, w, nullptr, y.data());  // warm
        const double t0 = process_cpu();
        for (int r = 0; r < reps; ++r) paths[p](x.data(), M, w, nullptr, y.data());
        const double s = (process_cpu() - t0) / reps;
        std::printf("  %s %7.3f ms (%5.1f)", names[p], s * 1e3, flops / s / 1e9);
      }
      std::printf("\n");
    }
  return 0;
}

int main(int argc, char** argv) {
  if (!nk::isa_supported("avx512bf16")) {
    std::puts("this CPU lacks avx512bf16");
    return 0;
  }
  if (argc > 2 && std::strcmp(argv[1], "--quant") == 0)
    return quant_main(argv[2], argc > 4 ? std::atoi(argv[3]) : 3072, argc > 4 ? std::atoi(argv[4]) : 1024,
                      argc > 5 ? std::atoi(argv[5]) : 1);
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
