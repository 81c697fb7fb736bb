// Kernel micro-benchmarks at Qwen3-0.6B shapes; each reports its rate and its fraction of the
// machine limits measured in the same run (machine_limits.h).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "model/aligned_buffer.h"
#include "machine_limits.h"

namespace nk = nanovllm::kernels;
using nanovllm::bench::machine_limits;

namespace {

std::vector<uint8_t> random_bytes_of(nk::DType dt, size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 0.05f);
  std::vector<uint8_t> out(n * nk::dtype_size(dt));
  for (size_t i = 0; i < n; ++i) {
    const float f = d(rng);
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if (dt == nk::DType::F32) {
      std::memcpy(&out[i * 4], &f, 4);
    } else {  // bf16 by truncation; as f16 the same bits are still a finite small number
      const uint16_t h = dt == nk::DType::BF16 ? uint16_t(u >> 16) : uint16_t(0x2000 | (u >> 19 & 0x1fff));
      std::memcpy(&out[i * 2], &h, 2);
    }
  }
  return out;
}

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(n);
  for (float& f : v) f = d(rng);
  return v;
}

// GFLOP/s, GB/s of weights, and both as fractions of the measured limits.
void set_rates(benchmark::State& state, double flops, double bytes, double peak) {
  const auto& lim = machine_limits();
  const double it = double(state.iterations());
  using C = benchmark::Counter;
  state.counters["GFLOP/s"] = C(flops * it / 1e9, C::kIsRate);
  state.counters["GB/s"] = C(bytes * it / 1e9, C::kIsRate);
  state.counters["of_peak"] = C(flops * it / peak, C::kIsRate);
  state.counters["of_bw"] = C(bytes * it / lim.read_bytes_per_s, C::kIsRate);
}

// Enough copies of a weight matrix that cycling through them defeats the 32 MiB L3, as the
// layers of a real model do.
constexpr size_t kWeightPoolBytes = size_t(256) << 20;

// Times y = x W^T for M rows, cycling through copies of W (in `layout`, on huge pages as the
// engine's weights) that fill kWeightPoolBytes.
void time_matmul(benchmark::State& state, const nk::WeightView& rows, nk::Layout layout, int M) {
  const size_t bytes = nk::layout_bytes(rows, layout);
  const size_t copies = std::max<size_t>(1, kWeightPoolBytes / bytes);
  nanovllm::AlignedBuffer pool(copies * bytes);
  std::vector<nk::WeightView> views;
  for (size_t c = 0; c < copies; ++c) views.push_back(nk::repack(rows, layout, static_cast<uint8_t*>(pool.data()) + c * bytes));
  const auto x = random_floats(size_t(M) * rows.cols, 2);
  std::vector<float> y(size_t(M) * rows.rows);
  size_t c = 0;
  for (auto _ : state) {
    nk::matmul(x.data(), M, views[c], nullptr, y.data());
    c = (c + 1) % copies;
    benchmark::DoNotOptimize(y.data());
  }
}

// Args: dtype (0 F32, 1 BF16, 2 F16, 3 I8), layout (0 rows as stored, 1 panels, 2 pair panels:
// nk::Layout), M, N, K.
void BM_Matmul(benchmark::State& state) {
  const auto dt = nk::DType(state.range(0));
  const auto layout = nk::Layout(state.range(1));
  const int M = int(state.range(2)), N = int(state.range(3)), K = int(state.range(4));
  const bool int8 = dt == nk::DType::I8;
  const auto stored = random_bytes_of(int8 ? nk::DType::BF16 : dt, size_t(N) * K, 1);
  std::vector<uint8_t> w = stored;
  std::vector<float> scales(static_cast<size_t>(N));
  nk::WeightView rows{stored.data(), int8 ? nk::DType::BF16 : dt, N, K};
  if (int8) rows = nk::quantize_int8(rows, reinterpret_cast<int8_t*>(w.data()), scales.data());
  time_matmul(state, rows, layout, M);
  const auto& lim = machine_limits();
  const double peak = dt == nk::DType::BF16 ? lim.bf16_matmul_peak() : lim.fma_flops_per_s;
  set_rates(state, 2.0 * M * N * K, double(size_t(N) * K * nk::dtype_size(rows.dtype)), peak);
  const char* names[] = {" rows ", " panels ", " pair panels "};
  state.SetLabel(std::string(nk::dtype_name(dt)) + names[state.range(1)] + nk::isa_name());
}

void matmul_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"dtype", "layout", "M", "N", "K"});
  // Qwen3-0.6B: qkv 4096x1024, o 1024x2048, gate_up 6144x1024, down 1024x3072. Each dtype in
  // the layout the engine loads it in on this CPU, BF16 also as stored.
  auto engine = [](nk::DType dt) { return int(nk::preferred_layout(dt)); };
  const int shapes[][2] = {{4096, 1024}, {1024, 2048}, {6144, 1024}, {1024, 3072}};
  for (int layout : {engine(nk::DType::BF16), 0})
    for (int M : {1, 4, 16, 64, 512})
      for (auto& s : shapes) b->Args({1, layout, M, s[0], s[1]});
  for (int dt : {0, 2})
    for (int M : {1, 64}) b->Args({dt, engine(nk::DType(dt)), M, 6144, 1024});
  for (int M : {1, 4, 16, 64}) b->Args({3, engine(nk::DType::I8), M, 6144, 1024});
}
BENCHMARK(BM_Matmul)->Apply(matmul_args)->UseRealTime()->MinTime(0.3);

// Random ggml blocks: random bytes with each block's f16 scales set to 2^-8 (values do not change
// the speed; finite ones keep the results sane).
std::vector<uint8_t> random_quant_rows(nk::DType dt, int rows, int cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(size_t(rows) * nk::row_bytes(dt, cols));
  for (uint8_t& b : out) b = uint8_t(rng());
  const size_t bb = nk::row_bytes(dt, nk::block_elems(dt));
  const size_t scale_at = dt == nk::DType::Q6_K ? 208 : 0;
  const bool two = dt == nk::DType::Q4_1 || dt == nk::DType::Q4_K || dt == nk::DType::Q5_K;
  const uint16_t h = 0x1c00;  // 2^-8 in f16
  for (size_t o = 0; o < out.size(); o += bb) {
    std::memcpy(&out[o + scale_at], &h, 2);
    if (two) std::memcpy(&out[o + 2], &h, 2);
  }
  return out;
}

// ggml's quantized dtypes as a GGUF file stores them. Args: dtype (4 Q8_0, 5 Q4_0, 6 Q4_1,
// 7 Q4_K, 8 Q5_K, 9 Q6_K), M, N, K. GB/s counts the quantized bytes of W streamed.
void BM_MatmulQuant(benchmark::State& state) {
  const auto dt = nk::DType(state.range(0));
  const int M = int(state.range(1)), N = int(state.range(2)), K = int(state.range(3));
  const auto stored = random_quant_rows(dt, N, K, 1);
  time_matmul(state, nk::WeightView{stored.data(), dt, N, K}, nk::Layout::kRows, M);
  set_rates(state, 2.0 * M * N * K, double(stored.size()), machine_limits().fma_flops_per_s);
  state.SetLabel(std::string(nk::dtype_name(dt)) + " x " + nk::precision_name(nk::matmul_precision(dt)) + " " +
                 nk::isa_name());
}

void matmul_quant_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"dtype", "M", "N", "K"});
  for (int dt = int(nk::DType::Q8_0); dt <= int(nk::DType::Q6_K); ++dt)
    for (int M : {1, 16})
      for (int N : {1024, 3072}) b->Args({dt, M, N, 1024});
}
BENCHMARK(BM_MatmulQuant)->Apply(matmul_quant_args)->UseRealTime()->MinTime(0.3);

// Args: kv dtype (0 F32, 1 BF16), sequences, context length, new tokens per sequence, layers.
// Calls cycle through the layers' caches, so that several layers of a small batch leave L3 as
// the engine's 28 layers do.
void BM_PagedAttention(benchmark::State& state) {
  const auto dt = nk::DType(state.range(0));
  const int S = int(state.range(1)), L = int(state.range(2)), n_new = int(state.range(3));
  const int layers = int(state.range(4));
  const int H = 16, KVH = 8, hd = 128, bs = 16, blocks_per = (L + bs - 1) / bs;
  const size_t cache = size_t(layers) * S * blocks_per * bs * KVH * hd;
  // The engine's KV cache lives on huge pages (AlignedBuffer); so does this one.
  const std::vector<uint8_t> k0 = random_bytes_of(dt, cache, 3), v0 = random_bytes_of(dt, cache, 4);
  nanovllm::AlignedBuffer kc(k0.size()), vc(v0.size());
  std::memcpy(kc.data(), k0.data(), k0.size());
  std::memcpy(vc.data(), v0.data(), v0.size());
  nk::KVLayer kv{kc.data(), vc.data(), dt, bs, KVH, hd};
  std::vector<int> tables(size_t(layers) * S * blocks_per);
  for (size_t i = 0; i < tables.size(); ++i) tables[i] = int((i * 7919) % tables.size());  // scattered
  std::vector<nk::AttnSeq> seqs(S);
  for (int s = 0; s < S; ++s) seqs[s] = {s * n_new, n_new, L - n_new, tables.data() + size_t(s) * blocks_per};
  const auto q = random_floats(size_t(S) * n_new * H * hd, 5);
  std::vector<float> out(q.size());
  int layer = 0;
  for (auto _ : state) {
    for (int s = 0; s < S; ++s) seqs[s].block_table = tables.data() + (size_t(layer) * S + s) * blocks_per;
    nk::paged_attention(q.data(), seqs.data(), S, H, kv, 0.088f, out.data());
    benchmark::DoNotOptimize(out.data());
    layer = (layer + 1) % layers;
  }
  // Per query: QK and PV over its visible positions, 2 flops per multiply-add.
  double visible = 0;
  for (int t = 0; t < n_new; ++t) visible += L - n_new + t + 1;
  const double flops = 4.0 * S * H * hd * visible;
  const double bytes = double(S) * L * KVH * hd * 2 * nk::dtype_size(dt);
  set_rates(state, flops, bytes, machine_limits().fma_flops_per_s);
  state.SetLabel(std::string(nk::dtype_name(dt)) + " KV " + nk::isa_name());
}
BENCHMARK(BM_PagedAttention)
    ->ArgNames({"kv", "seqs", "ctx", "new", "layers"})
    ->Args({1, 1, 512, 1, 1})->Args({1, 16, 256, 1, 1})->Args({1, 16, 256, 1, 8})->Args({1, 4, 256, 1, 28})
    ->Args({1, 64, 256, 1, 1})->Args({0, 64, 256, 1, 1})->Args({1, 1, 512, 512, 1})->Args({0, 1, 512, 512, 1})
    ->UseRealTime()->MinTime(0.3);

// One decode step's K/V rows of S sequences into a bf16 cache of 28 layers (each call the next
// layer, as the engine's steps go), one new position per sequence: the rows land in blocks
// that are not in cache. Rate: bytes written to the cache.
void BM_KvStore(benchmark::State& state) {
  const int S = int(state.range(0)), layers = 28, KVH = 8, hd = 128, bs = 16, blocks_per = 16;
  const size_t layer_elems = size_t(S) * blocks_per * bs * KVH * hd;
  nanovllm::AlignedBuffer kc(layers * layer_elems * 2), vc(layers * layer_elems * 2);
  std::memset(kc.data(), 0, kc.size());
  std::memset(vc.data(), 0, vc.size());
  const auto k = random_floats(size_t(S) * KVH * hd, 11), v = random_floats(k.size(), 12);
  std::vector<int> slots(S);
  int layer = 0, pos = 0;
  for (auto _ : state) {
    auto* kb = static_cast<uint16_t*>(kc.data()) + size_t(layer) * layer_elems;
    auto* vb = static_cast<uint16_t*>(vc.data()) + size_t(layer) * layer_elems;
    for (int s = 0; s < S; ++s) slots[s] = (s * blocks_per + pos / bs) * bs + pos % bs;
    nk::kv_store({kb, vb, nk::DType::BF16, bs, KVH, hd}, k.data(), v.data(), S, slots.data());
    if (++layer == layers) layer = 0, pos = (pos + 1) % (blocks_per * bs);
  }
  set_rates(state, 0, 4.0 * S * KVH * hd, machine_limits().fma_flops_per_s);
}
BENCHMARK(BM_KvStore)->Arg(16)->Arg(64)->UseRealTime();

// Small kernels at a 64-token step of Qwen3-0.6B; rates are bytes in + out.
void BM_Rmsnorm(benchmark::State& state) {
  const int rows = int(state.range(0)), n = 1024;
  auto x = random_floats(size_t(rows) * n, 6), w = random_floats(n, 7);
  std::vector<float> out(x.size());
  for (auto _ : state) {
    nk::rmsnorm(x.data(), w.data(), rows, n, 1e-6f, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  set_rates(state, 3.0 * rows * n, 8.0 * rows * n, machine_limits().fma_flops_per_s);
}
BENCHMARK(BM_Rmsnorm)->Arg(1)->Arg(64)->UseRealTime();

void BM_SiluMul(benchmark::State& state) {
  const int rows = int(state.range(0)), n = 3072;
  auto gu = random_floats(size_t(rows) * 2 * n, 8);
  std::vector<float> out(size_t(rows) * n);
  for (auto _ : state) {
    nk::silu_mul(gu.data(), rows, n, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  set_rates(state, 0, 12.0 * rows * n, machine_limits().fma_flops_per_s);
}
BENCHMARK(BM_SiluMul)->Arg(1)->Arg(64)->UseRealTime();

void BM_Rope(benchmark::State& state) {
  const int T = int(state.range(0)), H = 24, hd = 128;  // q and k heads of Qwen3-0.6B together
  auto x = random_floats(size_t(T) * H * hd, 9);
  std::vector<float> inv(hd / 2);
  for (int i = 0; i < hd / 2; ++i) inv[i] = float(std::pow(1e6, -2.0 * i / hd));
  std::vector<int> pos(T);
  for (int t = 0; t < T; ++t) pos[t] = 100 + t;
  for (auto _ : state) {
    nk::rope(x.data(), T, H, hd, pos.data(), inv.data());
    benchmark::DoNotOptimize(x.data());
  }
  set_rates(state, 0, 8.0 * T * H * hd, machine_limits().fma_flops_per_s);
}
BENCHMARK(BM_Rope)->Arg(1)->Arg(64)->UseRealTime();

void BM_Embed(benchmark::State& state) {
  const int n = int(state.range(0)), V = 151936, D = 1024;
  const auto table = random_bytes_of(nk::DType::BF16, size_t(V) * D, 10);
  std::vector<int> ids(n);
  for (int i = 0; i < n; ++i) ids[i] = (i * 104729) % V;
  std::vector<float> out(size_t(n) * D);
  for (auto _ : state) {
    nk::embed({table.data(), nk::DType::BF16, V, D}, ids.data(), n, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  set_rates(state, 0, 6.0 * n * D, machine_limits().fma_flops_per_s);
}
BENCHMARK(BM_Embed)->Arg(64)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const auto& lim = machine_limits();
  benchmark::AddCustomContext("isa", nk::isa_name());
  benchmark::AddCustomContext("read_GB/s", std::to_string(lim.read_bytes_per_s / 1e9));
  benchmark::AddCustomContext("fma_peak_GFLOP/s", std::to_string(lim.fma_flops_per_s / 1e9));
  benchmark::AddCustomContext("bf16_peak_GFLOP/s", std::to_string(lim.bf16_flops_per_s / 1e9));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
