// The machine's limits: STREAM-style read bandwidth and tight FMA / BF16 dot-product peaks.
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "machine_limits.h"

namespace nanovllm::bench {
namespace {

constexpr size_t kReadBytes = size_t(1) << 30;  // far beyond any cache
volatile float g_sink;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

float* read_buffer() {
  static float* buf = [] {
    auto* p = static_cast<float*>(std::aligned_alloc(64, kReadBytes));
    const long n = long(kReadBytes / sizeof(float));
#pragma omp parallel for schedule(static)  // first touch by the threads that will read
    for (long i = 0; i < n; ++i) p[i] = float(i & 1023);
    return p;
  }();
  return buf;
}

// Sums [p, p + n) with eight independent accumulators so only memory limits the loop.
__attribute__((target("avx2,fma"))) float sum_avx2(const float* p, size_t n) {
  __m256 a[8];
  for (auto& v : a) v = _mm256_setzero_ps();
  for (size_t i = 0; i < n; i += 64)
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) a[j] = _mm256_add_ps(a[j], _mm256_load_ps(p + i + 8 * j));
  for (int j = 1; j < 8; ++j) a[0] = _mm256_add_ps(a[0], a[j]);
  float out[8];
  _mm256_storeu_ps(out, a[0]);
  return out[0] + out[7];
}

// Seconds to read the whole buffer once with all threads (static split, as the kernels do).
double time_read_once() {
  const float* p = read_buffer();
  const size_t n = kReadBytes / sizeof(float);
  const double t0 = now_s();
#pragma omp parallel
  {
    const size_t nt = size_t(omp_get_num_threads()), t = size_t(omp_get_thread_num());
    const size_t chunk = n / nt / 64 * 64;
    g_sink = sum_avx2(p + t * chunk, chunk);
  }
  return now_s() - t0;
}

constexpr long kPeakIters = 20'000'000;

// Ten independent FMA chains hide the 4-5 cycle latency on two FMA pipes.
__attribute__((target("avx2,fma"))) void fma_loop_avx2(long iters) {
  __m256 a[10];
  for (int j = 0; j < 10; ++j) a[j] = _mm256_set1_ps(float(j));
  const __m256 b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-3f);
  for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 10
    for (int j = 0; j < 10; ++j) a[j] = _mm256_fmadd_ps(a[j], b, c);
  }
  for (int j = 1; j < 10; ++j) a[0] = _mm256_add_ps(a[0], a[j]);
  g_sink = _mm256_cvtss_f32(a[0]);
}

__attribute__((target("avx512f"))) void fma_loop_avx512(long iters) {
  __m512 a[10];
  for (int j = 0; j < 10; ++j) a[j] = _mm512_set1_ps(float(j));
  const __m512 b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-3f);
  for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 10
    for (int j = 0; j < 10; ++j) a[j] = _mm512_fmadd_ps(a[j], b, c);
  }
  for (int j = 1; j < 10; ++j) a[0] = _mm512_add_ps(a[0], a[j]);
  g_sink = _mm512_cvtss_f32(a[0]);
}

__attribute__((target("avx512f,avx512bf16,avx512vl"))) void dpbf16_loop(long iters) {
  __m512 a[10];
  for (int j = 0; j < 10; ++j) a[j] = _mm512_set1_ps(float(j));
  const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3f80), c = (__m512bh)_mm512_set1_epi16(0x3a83);
  for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 10
    for (int j = 0; j < 10; ++j) a[j] = _mm512_dpbf16_ps(a[j], b, c);
  }
  for (int j = 1; j < 10; ++j) a[0] = _mm512_add_ps(a[0], a[j]);
  g_sink = _mm512_cvtss_f32(a[0]);
}

bool has_bf16() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
}

// Flops per second of `loop` run on every thread at once.
template <class F>
double time_peak(F loop, double flops_per_iter) {
  const long iters = kPeakIters / 10;
  double t = 0;
  int threads = 1;
#pragma omp parallel
  {
#pragma omp single
    threads = omp_get_num_threads();
    loop(iters);  // warm-up: clocks up
#pragma omp barrier
#pragma omp single
    t = now_s();
    loop(iters);
#pragma omp barrier
#pragma omp single
    t = now_s() - t;
  }
  return flops_per_iter * double(iters) * threads / t;
}

// The f32 FMA peak at the widest vector this CPU has (zmm only pays on two-FMA-unit AVX-512 cores).
double measure_fma() {
  __builtin_cpu_init();
  const double ymm = time_peak(fma_loop_avx2, 10 * 16.0);
  return __builtin_cpu_supports("avx512f") ? std::max(ymm, time_peak(fma_loop_avx512, 10 * 32.0)) : ymm;
}
double measure_bf16() { return has_bf16() ? time_peak(dpbf16_loop, 10 * 64.0) : 0.0; }

void BM_StreamRead(benchmark::State& state) {
  read_buffer();
  for (auto _ : state) {
    const double t = time_read_once();
    state.SetIterationTime(t);
  }
  state.counters["GB/s"] = benchmark::Counter(double(kReadBytes) * double(state.iterations()) / 1e9,
                                              benchmark::Counter::kIsRate);
}
BENCHMARK(BM_StreamRead)->UseManualTime()->Iterations(5);

void BM_FmaPeak(benchmark::State& state) {
  for (auto _ : state) state.counters["GFLOP/s"] = measure_fma() / 1e9;
}
BENCHMARK(BM_FmaPeak)->Iterations(1);

void BM_Bf16DotPeak(benchmark::State& state) {
  if (!has_bf16()) {
    state.SkipWithError("this CPU has no AVX-512 BF16");
    return;
  }
  for (auto _ : state) state.counters["GFLOP/s"] = measure_bf16() / 1e9;
}
BENCHMARK(BM_Bf16DotPeak)->Iterations(1);

}  // namespace

const MachineLimits& machine_limits() {
  static const MachineLimits lim = [] {
    MachineLimits l;
    read_buffer();
    double best = 1e30;
    for (int i = 0; i < 5; ++i) best = std::min(best, time_read_once());
    l.read_bytes_per_s = double(kReadBytes) / best;
    l.fma_flops_per_s = std::max(measure_fma(), measure_fma());
    l.bf16_flops_per_s = measure_bf16();
    return l;
  }();
  return lim;
}

}  // namespace nanovllm::bench
