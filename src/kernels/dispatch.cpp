// Public kernel entry points: argument checks, then one call through the table of the calling
// thread's Context, or the process default.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <omp.h>

#include "kernels/kernels_internal.h"
#include "nanovllm/error.h"

namespace nanovllm::kernels {

void kernel_check_failed(const char* expr, const char* file, int line, const char* msg) {
  throw std::logic_error(std::string(file) + ":" + std::to_string(line) + ": check failed: " +
                         expr + " (" + msg + ")");
}
namespace {

bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
}

bool cpu_has_avx512bf16() {
  __builtin_cpu_init();
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bf16") &&
         __builtin_cpu_supports("avx512vnni");
}

// The table for an ISA name, or nullptr where the name is unknown or the CPU lacks it.
const KernelTable* table_for(const char* name) {
  if (std::strcmp(name, "scalar") == 0) return &scalar_table();
  if (std::strcmp(name, "avx2") == 0) return cpu_has_avx2() ? &avx2_table() : nullptr;
  if (std::strcmp(name, "avx512bf16") == 0)
    return cpu_has_avx512bf16() ? &avx512_table() : nullptr;
  return nullptr;
}

}  // namespace

bool quant_prompt_gemm() {
  const char* env = std::getenv("NANOVLLM_QUANT_PROMPT_GEMM");
  if (!env || !*env || std::strcmp(env, "1") == 0) return true;
  if (std::strcmp(env, "0") == 0) return false;
  std::fprintf(stderr, "nanovllm: NANOVLLM_QUANT_PROMPT_GEMM=%s is neither 0 nor 1; using 1\n", env);
  return true;
}

namespace {

const KernelTable* best_table() {
  if (cpu_has_avx512bf16()) return &avx512_table();
  if (cpu_has_avx2()) return &avx2_table();
  return &scalar_table();
}

// NANOVLLM_ISA=scalar|avx2|avx512bf16 forces an implementation; a wrong value is reported and
// ignored rather than fatal, so a stale environment never stops the engine.
const KernelTable* initial_table() {
  const char* env = std::getenv("NANOVLLM_ISA");
  if (env && *env) {
    if (const KernelTable* t = table_for(env)) return t;
    std::fprintf(stderr, "nanovllm: NANOVLLM_ISA=%s is unknown or unsupported by this CPU; using %s\n",
                 env, best_table()->name);
  }
  return best_table();
}

std::atomic<const KernelTable*>& active() {
  static std::atomic<const KernelTable*> t{initial_table()};
  return t;
}

// The table of the Context::Scope open on this thread; null outside one. Read on the thread that
// calls the entry point, before any thread team starts.
thread_local const KernelTable* scoped_table = nullptr;

const KernelTable& ops() {
  const KernelTable* t = scoped_table;
  return t ? *t : *active().load(std::memory_order_acquire);
}

void check_weight(const WeightView& w) {
  NV_KCHECK(w.rows >= 0 && w.cols >= 0, "weight shape must be non-negative");
  NV_KCHECK(w.cols % block_elems(w.dtype) == 0, "a quantized row must hold whole blocks");
  NV_KCHECK(!is_quantized(w.dtype) || w.layout == Layout::kRows, "quantized weights are row-major");
  NV_KCHECK(w.data != nullptr || size_t(w.rows) * size_t(w.cols) == 0, "weight data is null");
  NV_KCHECK(w.dtype != DType::I8 || w.scales != nullptr || w.rows == 0, "int8 weights need their scales");
}

void check_kv(const KVLayer& kv) {
  NV_KCHECK(kv.dtype == DType::F32 || kv.dtype == DType::BF16, "KV cache must be F32 or BF16");
  NV_KCHECK(kv.block_size > 0 && kv.n_kv_heads > 0 && kv.head_dim > 0, "KV layer shape");
  NV_KCHECK(kv.head_dim <= 1024 && kv.head_dim % 2 == 0, "head_dim must be even and <= 1024");
}

}  // namespace

size_t dtype_size(DType t) {
  NV_KCHECK(!is_quantized(t), "dtype_size of a quantized dtype (use row_bytes)");
  return block_bytes(t);
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    case DType::I8: return "I8";
    case DType::Q8_0: return "Q8_0";
    case DType::Q4_0: return "Q4_0";
    case DType::Q4_1: return "Q4_1";
    case DType::Q4_K: return "Q4_K";
    case DType::Q5_K: return "Q5_K";
    case DType::Q6_K: return "Q6_K";
  }
  return "?";
}

int block_elems(DType t) {
  if (!is_quantized(t)) return 1;
  return t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K ? 256 : 32;
}

size_t row_bytes(DType t, int64_t cols) {
  const int be = block_elems(t);
  if (cols < 0 || cols % be != 0)
    throw Error(std::string("a row of ") + dtype_name(t) + " must hold whole blocks of " + std::to_string(be) +
                " elements; it has " + std::to_string(cols));
  return size_t(cols / be) * block_bytes(t);
}

void dequantize_row(DType t, const void* src, int64_t n, float* dst) {
  row_bytes(t, n);  // whole blocks only
  dequantize_row_ref(t, src, n, dst);
}

Layout preferred_layout(DType dtype) { return ops().layout[int(dtype)]; }

Precision matmul_precision(DType dtype, RowRole role) {
  const KernelTable& t = ops();
  return role == RowRole::kPrompt ? t.prompt_precision[int(dtype)] : t.precision[int(dtype)];
}

const char* precision_name(Precision p) {
  return p == Precision::kBF16 ? "bf16" : p == Precision::kQ8 ? "q8" : "f32";
}

WeightView quantize_int8(const WeightView& src, int8_t* q, float* scales) {
  check_weight(src);
  NV_KCHECK(src.layout == Layout::kRows && src.dtype != DType::I8,
            "quantize_int8: the source must be row-major f32, bf16 or f16");
  const size_t K = size_t(src.cols);
  // A non-finite weight has no int8 value: refused after the loop (see RegionErrors). A zero
  // row gets scale 0 and q 0.
  int non_finite = 0;
  RegionErrors errors;
#pragma omp parallel reduction(| : non_finite)
  {
    std::vector<float> row;
    errors.run([&] { row.resize(K); });
#pragma omp for schedule(static)
    for (int n = 0; n < src.rows; ++n) {
      if (row.size() != K) continue;  // no row buffer: the error is rethrown below
      row_as_f32(src, size_t(n), row.data());
      float amax = 0.f;
      bool finite = true;
      for (size_t k = 0; k < K; ++k) {
        finite &= std::isfinite(row[k]);
        amax = std::max(amax, std::fabs(row[k]));
      }
      non_finite |= !finite;
      // In double: 127 / amax overflows f32 for amax below ~3.7e-37 (possible in bf16).
      const double inv = finite && amax > 0.f ? 127.0 / amax : 0.0;
      scales[n] = amax / 127.f;
      for (size_t k = 0; k < K; ++k) {
        // Half away from zero (roundf's rule) with a cast, not a libm call per weight: cheap at
        // load time, and |v| <= 127 keeps the cast defined.
        const double v = row[k] * inv;
        q[size_t(n) * K + k] = int8_t(std::clamp(int(v + (v < 0 ? -0.5 : 0.5)), -127, 127));
      }
    }
  }
  errors.rethrow();
  NV_KCHECK(!non_finite, "quantize_int8: the weights hold an inf or NaN");
  WeightView out = src;
  out.data = q;
  out.dtype = DType::I8;
  out.scales = scales;
  return out;
}

size_t layout_bytes(const WeightView& w, Layout layout) {
  NV_KCHECK(layout == Layout::kRows || !is_quantized(w.dtype), "quantized weights have no panel layout");
  if (layout == Layout::kRows) return size_t(w.rows) * row_bytes(w.dtype, w.cols);
  const size_t rows = (size_t(w.rows) + kPanelRows - 1) / kPanelRows * kPanelRows;
  return rows * row_bytes(w.dtype, layout == Layout::kPairPanels ? (w.cols + 1) / 2 * 2 : w.cols);
}

// Pair panels of a 16-bit dtype, a 32-bit pair at a time (the whole BF16 checkpoint goes
// through here at load time on AVX-512: per element, repack's general loop took seconds).
static void repack_pairs16(const WeightView& src, uint32_t* dst) {
  const size_t K = size_t(src.cols), Kp = (K + 1) / 2, rows = size_t(src.rows);
  const size_t panels = (rows + kPanelRows - 1) / kPanelRows;
  const auto* in = static_cast<const uint16_t*>(src.data);
#pragma omp parallel for schedule(static)
  for (size_t p = 0; p < panels; ++p) {
    const size_t n0 = p * kPanelRows, nr = std::min(size_t(kPanelRows), rows - n0);
    const uint16_t* panel = in + n0 * K;
    // In write order: each 64-byte line of the output is written whole, from 16 row streams.
    for (size_t kp = 0; kp < Kp; ++kp) {
      uint32_t* o = dst + (p * Kp + kp) * kPanelRows;
      const bool whole = 2 * kp + 1 < K;  // else an odd K's last column, paired with a zero
      for (size_t r = 0; r < nr; ++r) {
        uint32_t pair = panel[r * K + 2 * kp];
        if (whole) std::memcpy(&pair, panel + r * K + 2 * kp, 4);
        o[r] = pair;
      }
      for (size_t r = nr; r < size_t(kPanelRows); ++r) o[r] = 0;
    }
  }
}

WeightView repack(const WeightView& src, Layout layout, void* dst) {
  check_weight(src);
  NV_KCHECK(src.layout == Layout::kRows, "repack: the source must be row-major");
  WeightView out = src;
  out.data = dst;
  out.layout = layout;
  if (layout == Layout::kRows) {
    std::memcpy(dst, src.data, layout_bytes(src, layout));
    return out;
  }
  NV_KCHECK(!is_quantized(src.dtype), "quantized weights have no panel layout");
  if (layout == Layout::kPairPanels && dtype_size(src.dtype) == 2) {
    repack_pairs16(src, static_cast<uint32_t*>(dst));
    return out;
  }
  const size_t K = size_t(src.cols), esz = dtype_size(src.dtype);
  const size_t panels = (size_t(src.rows) + kPanelRows - 1) / kPanelRows;
  // Pair panels hold whole pairs: an odd K gets a zero column.
  const size_t Kpad = layout == Layout::kPairPanels ? (K + 1) / 2 * 2 : K;
  const auto* in = static_cast<const uint8_t*>(src.data);
  auto* o = static_cast<uint8_t*>(dst);
#pragma omp parallel for schedule(static)
  for (size_t p = 0; p < panels; ++p) {
    for (size_t k = 0; k < Kpad; ++k)  // 16 row streams in, one stream out
      for (int r = 0; r < kPanelRows; ++r) {
        const size_t n = p * kPanelRows + size_t(r);
        uint8_t* d = o + weight_index(out, n, k) * esz;
        if (n < size_t(src.rows) && k < K) std::memcpy(d, in + (n * K + k) * esz, esz);
        else std::memset(d, 0, esz);
      }
  }
  return out;
}

void matmul(const float* x, int M, const WeightView& w, const float* bias, float* y, RowRole role) {
  check_weight(w);
  NV_KCHECK(M >= 0, "matmul: M must be non-negative");
  if (M == 0 || w.rows == 0) return;
  const KernelTable& t = ops();
  (role == RowRole::kPrompt ? t.matmul_prompt : t.matmul)(x, M, w, bias, y);
}

void rmsnorm(const float* x, const float* weight, int rows, int n, float eps, float* out) {
  NV_KCHECK(rows >= 0 && n >= 0, "rmsnorm: negative shape");
  if (rows == 0 || n == 0) return;
  ops().rmsnorm(x, weight, rows, n, eps, out);
}

void rope(float* x, int n_tokens, int n_heads, int head_dim, const int* positions,
          const float* inv_freq) {
  NV_KCHECK(n_tokens >= 0 && n_heads >= 0 && head_dim >= 0 && head_dim % 2 == 0,
            "rope: head_dim must be even and shapes non-negative");
  if (n_tokens == 0 || n_heads == 0 || head_dim == 0) return;
  ops().rope(x, n_tokens, n_heads, head_dim, positions, inv_freq);
}

void silu_mul(const float* gate_up, int rows, int n, float* out) {
  NV_KCHECK(rows >= 0 && n >= 0, "silu_mul: negative shape");
  if (rows == 0 || n == 0) return;
  ops().silu_mul(gate_up, rows, n, out);
}

void kv_store(const KVLayer& kv, const float* k, const float* v, int n, const int* slots) {
  check_kv(kv);
  NV_KCHECK(n >= 0, "kv_store: negative token count");
  if (n == 0) return;
  ops().kv_store(kv, k, v, n, slots);
}

void paged_attention(const float* q, const AttnSeq* seqs, int n_seqs, int n_heads,
                     const KVLayer& kv, float scale, float* out) {
  check_kv(kv);
  NV_KCHECK(n_heads > 0 && n_heads % kv.n_kv_heads == 0, "n_heads must be a multiple of n_kv_heads");
  for (int s = 0; s < n_seqs; ++s)
    NV_KCHECK(seqs[s].n_new >= 0 && seqs[s].num_cached >= 0 && seqs[s].q_offset >= 0 &&
                  (seqs[s].n_new == 0 || seqs[s].block_table != nullptr),
              ("paged_attention: bad sequence " + std::to_string(s)).c_str());
  if (n_seqs <= 0) return;
  ops().paged_attention(q, seqs, n_seqs, n_heads, kv, scale, out);
}

void embed(const WeightView& table, const int* ids, int n, float* out) {
  check_weight(table);
  for (int i = 0; i < n; ++i)
    NV_KCHECK(ids[i] >= 0 && ids[i] < table.rows,
              ("embed: token id " + std::to_string(ids[i]) + " outside the vocabulary").c_str());
  if (n <= 0) return;
  ops().embed(table, ids, n, out);
}

const char* isa_name() { return ops().name; }

bool isa_supported(const char* name) { return name && table_for(name) != nullptr; }

bool force_isa(const char* name) {
  const KernelTable* t = name ? table_for(name) : nullptr;
  if (!t) return false;
  active().store(t, std::memory_order_release);
  return true;
}

Context::Context(const char* isa, int threads)
    : table_(isa && *isa ? table_for(isa) : active().load(std::memory_order_acquire)),
      threads_(threads > 0 ? threads : omp_get_num_procs()) {
  if (table_) return;
  std::string have;
  for (const char* n : kIsaNames)
    if (isa_supported(n)) have += (have.empty() ? "" : ", ") + std::string(n);
  throw Error(std::string("kernel isa '") + isa + "' is unknown or this CPU lacks it (it has: " + have + ")");
}

const char* Context::isa_name() const { return table_->name; }

// The team size is an ICV of the calling thread: set for the scope, and put back after it, so
// that a runner leaves its caller (and the next runner) as it found them.
Context::Scope::Scope(const Context& c) : prev_table_(scoped_table), prev_threads_(omp_get_max_threads()) {
  scoped_table = c.table_;
  omp_set_num_threads(c.threads_);
}

Context::Scope::~Scope() {
  scoped_table = prev_table_;
  omp_set_num_threads(prev_threads_);
}

}  // namespace nanovllm::kernels
