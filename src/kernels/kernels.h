// The CPU kernels the decoder is built from. Each entry point calls the implementation of the
// calling thread's Context (AVX-512 BF16, AVX2, scalar reference), or the process default; see
// dispatch.cpp.
// Activations are f32 between kernels; weights and the KV cache stay in their stored dtype. What
// a matmul's dot products see of the activations is a property of the table: matmul_precision().
#pragma once

#include <cstddef>
#include <cstdint>

namespace nanovllm::kernels {

// I8: symmetric int8 weights with one f32 scale per row (WeightView::scales), W[n][k] =
// scales[n] * q[n][k]; made from a checkpoint's weights by quantize_int8, never read from one.
// Q8_0 .. Q6_K: ggml's quantized blocks, byte for byte as a GGUF file stores them (f16 scales,
// little-endian): Q8_0 / Q4_0 / Q4_1 blocks of 32 (34 / 18 / 20 bytes), the K-quants super-blocks
// of 256 (Q4_K 144, Q5_K 176, Q6_K 210 bytes). dequantize_row gives their values. Append only:
// the values index the kernel tables.
enum class DType : uint8_t { F32, BF16, F16, I8, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K };

// Bytes of one element: for F32, BF16, F16 and I8 only (a quantized type has no per-element size;
// asking is a bug). Use row_bytes for any dtype.
size_t dtype_size(DType t);
const char* dtype_name(DType t);

// Elements per block: 1 for F32, BF16, F16, I8; 32 for Q8_0, Q4_0, Q4_1; 256 for the K-quants.
int block_elems(DType t);

// Bytes of a row of `cols` elements; throws nanovllm::Error if cols is not a multiple of the
// block (a quantized row holds whole blocks).
size_t row_bytes(DType t, int64_t cols);

// Decodes n elements (a multiple of the block) of a row stored in `t` to f32, by ggml's formulas.
// I8 gives the integers, before the row's scale.
void dequantize_row(DType t, const void* src, int64_t n, float* dst);

// How a weight matrix is laid out in memory.
//  kRows:   row-major [rows, cols], as checkpoints store it.
//  kPanels: rows in groups of kPanelRows, each group column-interleaved: [ceil(rows / 16)][cols][16],
//           rows past the end zero. One load then gives one column of 16 rows, so a register
//           tile of the matmul reads W exactly once for any number of x rows, with no per-call
//           repacking. For BF16 the 16 values of a column are stored as rows 0, 8, 1, 9, ..., 7,
//           15 (a 32-bit lane holds rows i and i + 8, widened to f32 by a shift and by a mask).
//  kPairPanels: what vdpbf16ps multiplies: rows in groups of kPanelRows, each group
//           [ceil(cols / 2)][16][2]: 32-bit lane r of the 64-byte line p holds W[n][2p] and
//           W[n][2p + 1] (n = 16 g + r), the pair one instruction multiplies by x's pair (2p, 2p + 1)
//           into output n. Rows past the end and the second half of an odd cols' last pair are 0.
enum class Layout : uint8_t { kRows, kPanels, kPairPanels };
constexpr int kPanelRows = 16;

// A weight matrix [rows, cols] in its stored dtype (mmapped, or repacked at load time).
// Quantized dtypes are always kRows: `rows` rows back to back, each row_bytes(dtype, cols) bytes.
struct WeightView {
  const void* data = nullptr;
  DType dtype = DType::F32;
  int rows = 0;  // output features (N)
  int cols = 0;  // input features (K)
  Layout layout = Layout::kRows;
  const float* scales = nullptr;  // I8 only: one per row
};

// The layout this CPU's matmul reads fastest for `dtype`; weights are repacked to it once, at
// load time.
Layout preferred_layout(DType dtype);

// What a matmul's dot products see of the activations x.
//  kF32:  x as is; products and sums in f32.
//  kBF16: x rounded to bf16 (8 significant bits, relative error up to 2^-9 per element) before
//         the products, sums in f32: what vdpbf16ps multiplies, and what llama.cpp does for
//         BF16 weights on such CPUs.
//  kQ8:   x rounded to int8 blocks exactly as llama.cpp rounds it for the weight dtype (ggml's
//         Q8_0 / Q8_1 blocks of 32 with an f16 scale, Q8_K blocks of 256 with an f32 one; error
//         about scale / 2 per element; see quant.h), then exact integer dot products with the
//         quantized weights (VNNI vpdpbusd, or vpmaddubsw on AVX2) scaled in f32: ggml's vec_dot
//         up to f32 summation order. The SIMD tables use it for every quantized weight dtype (an
//         f32 dot product cannot keep up with a 4-bit row). The scalar reference keeps x in f32.
enum class Precision : uint8_t { kF32, kBF16, kQ8 };

// What the rows of x of one matmul call are to the engine; for quantized weights it picks the
// path, and so the precision (matmul_precision):
//  kDecode: generated tokens (decode rows, memory-bound: a few rows stream all of W). Quantized
//           weights: x rounded to int8 blocks and integer dot products (kQ8), as llama.cpp.
//  kPrompt: prompt tokens (prefill rows, compute-bound). Quantized weights: decoded panel by
//           panel into the layout of the table's fast GEMM, the decoding amortized over the
//           rows (AVX-512: bf16, x rounded to bf16, kBF16; AVX2: f32, kF32).
// The role, never the number of rows, picks the path, and each path computes a row by the same
// operations whatever the other rows of the call (M, the row's place in a register tile): a
// token's result does not depend on what else shares its step. Other weight dtypes have one
// path for both roles.
enum class RowRole : uint8_t { kDecode, kPrompt };

// The activation precision of the active table's matmul for weights of `dtype` and rows of `role`.
Precision matmul_precision(DType dtype, RowRole role = RowRole::kDecode);
const char* precision_name(Precision p);

// Rounds a kRows matrix to int8 per row: scale = max |W[n][:]| / 127, q = round(W / scale).
// q holds rows * cols bytes and scales rows floats; returns the I8 view of them (kRows).
WeightView quantize_int8(const WeightView& src, int8_t* q, float* scales);

// Bytes that `w` takes in `layout` (panels pad rows to a multiple of 16; quantized weights
// have only kRows).
size_t layout_bytes(const WeightView& w, Layout layout);

// Copies a kRows matrix into dst (layout_bytes(src, layout) bytes) in `layout`; returns the
// view of dst (an I8 view keeps pointing at the source's scales).
WeightView repack(const WeightView& src, Layout layout, void* dst);

// y[M, N] = x[M, K] · W[N, K]^T (+ bias[N] when bias != nullptr), all M rows of `role`.
// One call streams W once for all M rows: this is where batching pays.
void matmul(const float* x, int M, const WeightView& w, const float* bias, float* y,
            RowRole role = RowRole::kDecode);

// out[i] = x[i] / rms(x) * weight[i], over rows of n; out may alias x.
void rmsnorm(const float* x, const float* weight, int rows, int n, float eps, float* out);

// Rotate-half RoPE (Hugging Face / GPT-NeoX layout) in place on x[n_tokens, n_heads, head_dim]:
// pairs (i, i + head_dim/2) rotated by positions[t] * inv_freq[i]; inv_freq has head_dim/2 entries.
void rope(float* x, int n_tokens, int n_heads, int head_dim, const int* positions,
          const float* inv_freq);

// out[i] = silu(gate[i]) * up[i] for rows of n, reading gate and up from one [rows, 2n] matrix
// (gate in the first n columns, up in the last n), as produced by a merged gate/up matmul.
void silu_mul(const float* gate_up, int rows, int n, float* out);

// One layer of the paged KV cache: blocks of [n_kv_heads, block_size, head_dim] for K and V.
struct KVLayer {
  void* k = nullptr;
  void* v = nullptr;
  DType dtype = DType::BF16;  // BF16 or F32
  int block_size = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
};

// Writes k/v [n, n_kv_heads, head_dim] of n tokens into cache slots (slot = block * block_size + offset).
// A negative slot (a padding token) is skipped.
void kv_store(const KVLayer& kv, const float* k, const float* v, int n, const int* slots);

// One sequence of a batched attention call: its queries are rows [q_offset, q_offset + n_new)
// of q/out and sit at positions [num_cached, num_cached + n_new); block_table maps positions
// to cache blocks.
struct AttnSeq {
  int q_offset = 0;
  int n_new = 0;
  int num_cached = 0;
  const int* block_table = nullptr;
};

// Causal attention of every sequence's new tokens over its whole cached context (the new
// tokens' K/V must already be stored). q, out: [T, n_heads, head_dim]; query t of a sequence
// sees positions [0, num_cached + t]. GQA: head h reads KV head h / (n_heads / n_kv_heads).
void paged_attention(const float* q, const AttnSeq* seqs, int n_seqs, int n_heads,
                     const KVLayer& kv, float scale, float* out);

// out[i, :] = table[ids[i], :] converted to f32 (from either layout; any dtype).
void embed(const WeightView& table, const int* ids, int n, float* out);

// Name of the implementation chosen for this CPU ("avx512bf16", "avx2", "scalar").
const char* isa_name();

// Every implementation this library has, from the reference to the fastest, whether or not this
// CPU runs it: tests run each one the CPU supports and name the others as skipped.
constexpr const char* kIsaNames[] = {"scalar", "avx2", "avx512bf16"};

// Whether this CPU can run the implementation called `name`.
bool isa_supported(const char* name);

// Forces the process default implementation (tests and benchmarks); returns false where the
// CPU lacks it. A Context made before keeps the table it was made with.
bool force_isa(const char* name);

struct KernelTable;

// A runner's own kernel implementation and OpenMP team size, so that two runners in one process
// (a scalar reference beside an AVX-512 one, or different thread counts) each compute as alone.
// Kernels called on a thread inside a Context::Scope use its table and team; elsewhere the
// process default (NANOVLLM_ISA, else the best this CPU has; force_isa). Scratch buffers need no
// context: they are per thread (scratch.inc) and hold nothing between two kernel calls.
class Context {
 public:
  // isa: a name of kIsaNames, or "" for the process default as it is now (kept: a later
  // force_isa does not change this context). threads <= 0: every core. Throws nanovllm::Error
  // naming an isa that is unknown or that this CPU lacks.
  explicit Context(const char* isa = "", int threads = 0);
  const char* isa_name() const;
  int threads() const { return threads_; }

  // While alive, kernels called on this thread use `c` (its table and team size); the thread's
  // previous context and OpenMP team size come back at its end.
  class Scope {
   public:
    explicit Scope(const Context& c);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    const KernelTable* prev_table_;
    int prev_threads_;
  };

 private:
  const KernelTable* table_;
  int threads_;
};

}  // namespace nanovllm::kernels
