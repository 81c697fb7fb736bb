// The ONNX Runtime backend: the custom op nanovllm.PagedAttention (our paged attention kernel
// over the cache in place) and the runner that feeds an exported decoder graph through an
// IoBinding holding the cache buffers. The only file of src/ that includes ORT headers.
#include "backends/onnx/onnx_runner.h"

// The C++ API's table pointer is set by onnx_runtime_version() after the version check, not by
// a static initializer that would call GetApi(21) before we can say why it returned null.
#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT

#include <omp.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <vector>

#include "backends/host_memory.h"
#include "backends/registry.h"
#include "kernels/kernels.h"
#include "model/aligned_buffer.h"
#include "model/gguf_model.h"
#include "model/model_config.h"
#include "nanovllm/error.h"

namespace nanovllm {

// ---- The runtime ----------------------------------------------------------------------------

void check_onnx_runtime_version(const std::string& version) {
  int major = 0, minor = 0;
  const bool parsed = std::sscanf(version.c_str(), "%d.%d", &major, &minor) == 2;
  // ORT's C API version is its minor release number (1.21 serves API 21 and every older one).
  if (!parsed || major < 1 || (major == 1 && minor < ORT_API_VERSION))
    throw Error("ONNX Runtime " + version + " is too old: the onnx backend needs 1." +
                std::to_string(ORT_API_VERSION) + " or newer (scripts/setup-onnx.sh installs 1.32)");
}

std::string onnx_runtime_version() {
  static const std::string version = [] {
    const OrtApiBase* base = OrtGetApiBase();
    std::string v = base->GetVersionString();
    check_onnx_runtime_version(v);
    const OrtApi* api = base->GetApi(ORT_API_VERSION);
    if (!api) throw Error("ONNX Runtime " + v + " serves no C API version " + std::to_string(ORT_API_VERSION));
    Ort::InitApi(api);
    return v;
  }();
  return version;
}

namespace {

// ---- The custom op --------------------------------------------------------------------------

enum OpInput { kQ, kK, kV, kKCache, kVCache, kSlotMapping, kBlockTables, kContextLens, kQueryStartLoc, kNumOpInputs };
const char* const kOpInputNames[] = {"q", "k", "v", "k_cache", "v_cache", "slot_mapping",
                                     "block_tables", "context_lens", "query_start_loc"};

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// One input of the op, its element type and shape checked against what the contract says.
struct OpTensor {
  Ort::ConstValue value;
  std::vector<int64_t> shape;

  OpTensor(const Ort::KernelContext& ctx, OpInput i, const std::vector<ONNXTensorElementDataType>& types, size_t rank)
      : value(ctx.GetInput(i)) {
    const auto info = value.GetTensorTypeAndShapeInfo();
    shape = info.GetShape();
    bool type_ok = false;
    for (auto t : types) type_ok = type_ok || info.GetElementType() == t;
    if (!type_ok) throw Error(std::string("PagedAttention: input ") + kOpInputNames[i] + " has the wrong element type");
    if (shape.size() != rank)
      throw Error(std::string("PagedAttention: input ") + kOpInputNames[i] + " has shape " + shape_str(shape) +
                  ", expected rank " + std::to_string(rank));
  }
  template <typename T>
  const T* data() const { return value.GetTensorData<T>(); }
  void expect(size_t dim, int64_t want, const char* what) const {
    if (shape[dim] != want)
      throw Error("PagedAttention: " + std::string(what) + " is " + std::to_string(shape[dim]) + " in shape " +
                  shape_str(shape) + ", expected " + std::to_string(want));
  }
};

int64_t int_attr(const Ort::ConstKernelInfo& info, const char* name) {
  return info.GetAttribute<int64_t>(name);
}

// Every index the op dereferences is checked first: the inputs come from whoever runs the graph.
class PagedAttentionKernel {
 public:
  explicit PagedAttentionKernel(const OrtKernelInfo* ort_info) {
    Ort::ConstKernelInfo info(ort_info);
    num_heads_ = int_attr(info, "num_heads");
    num_kv_heads_ = int_attr(info, "num_kv_heads");
    head_dim_ = int_attr(info, "head_dim");
    scale_ = info.GetAttribute<float>("scale");
    sliding_window_ = int_attr(info, "sliding_window");
    if (num_kv_heads_ <= 0 || num_heads_ <= 0 || num_heads_ % num_kv_heads_ != 0 || head_dim_ <= 0 ||
        head_dim_ % 2 != 0 || head_dim_ > 1024 || sliding_window_ < 0)
      throw Error("PagedAttention: attributes num_heads=" + std::to_string(num_heads_) + " num_kv_heads=" +
                  std::to_string(num_kv_heads_) + " head_dim=" + std::to_string(head_dim_) +
                  " sliding_window=" + std::to_string(sliding_window_) +
                  ": heads must be a multiple of KV heads, head_dim even and <= 1024, window >= 0");
  }

  // Errors go back to ORT as a status (Run then fails with this message): an exception must not
  // cross the C API.
  OrtStatusPtr ComputeV2(OrtKernelContext* context) {
    try {
      compute(Ort::KernelContext(context));
      return nullptr;
    } catch (const Error& e) {
      return Ort::GetApi().CreateStatus(ORT_INVALID_ARGUMENT, e.what());
    } catch (const Ort::Exception& e) {
      return Ort::GetApi().CreateStatus(e.GetOrtErrorCode(), e.what());
    } catch (const std::exception& e) {
      return Ort::GetApi().CreateStatus(ORT_FAIL, e.what());
    }
  }

 private:
  void compute(const Ort::KernelContext& ctx) {
    constexpr auto f32 = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT, bf16 = ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16,
                   i64 = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, i32 = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
    const OpTensor q(ctx, kQ, {f32}, 2), k(ctx, kK, {f32}, 2), v(ctx, kV, {f32}, 2);
    const OpTensor kc(ctx, kKCache, {f32, bf16}, 4), vc(ctx, kVCache, {f32, bf16}, 4);
    const OpTensor slots(ctx, kSlotMapping, {i64}, 1), tables(ctx, kBlockTables, {i32}, 2);
    const OpTensor ctx_lens(ctx, kContextLens, {i32}, 1), qsl(ctx, kQueryStartLoc, {i32}, 1);
    const int64_t T = q.shape[0], B = ctx_lens.shape[0];
    q.expect(1, num_heads_ * head_dim_, "q's width (num_heads * head_dim)");
    for (const OpTensor* t : {&k, &v}) {
      t->expect(0, T, "the token count of k / v (q's rows)");
      t->expect(1, num_kv_heads_ * head_dim_, "the width of k / v (num_kv_heads * head_dim)");
    }
    kc.expect(1, num_kv_heads_, "k_cache's dim 1 (num_kv_heads)");
    kc.expect(3, head_dim_, "k_cache's dim 3 (head_dim)");
    if (vc.shape != kc.shape || vc.value.GetTensorTypeAndShapeInfo().GetElementType() !=
                                    kc.value.GetTensorTypeAndShapeInfo().GetElementType())
      throw Error("PagedAttention: v_cache " + shape_str(vc.shape) + " differs from k_cache " + shape_str(kc.shape));
    slots.expect(0, T, "slot_mapping's length (q's rows)");
    tables.expect(0, B, "block_tables' rows (sequences)");
    qsl.expect(0, B + 1, "query_start_loc's length (sequences + 1)");
    const int64_t num_blocks = kc.shape[0], block_size = kc.shape[2], max_blocks = tables.shape[1];
    if (block_size <= 0 || num_blocks * block_size > INT32_MAX || T > INT32_MAX)
      throw Error("PagedAttention: cache shape " + shape_str(kc.shape) + " holds no slots or more than 2^31");

    const int32_t* lens = ctx_lens.data<int32_t>();
    const int32_t* starts = qsl.data<int32_t>();
    const int32_t* table = tables.data<int32_t>();
    if (starts[0] != 0 || starts[B] != T)
      throw Error("PagedAttention: query_start_loc must run from 0 to the token count " + std::to_string(T));
    seqs_.resize(B);
    for (int64_t s = 0; s < B; ++s) {
      const int64_t q_len = int64_t(starts[s + 1]) - starts[s], len = lens[s];
      const std::string which = "PagedAttention: sequence " + std::to_string(s);
      if (q_len < 0) throw Error(which + ": query_start_loc decreases");
      if (len < q_len || len > max_blocks * block_size)
        throw Error(which + ": context_len " + std::to_string(len) + " is below its " + std::to_string(q_len) +
                    " query rows or beyond its block table (" + std::to_string(max_blocks) + " blocks of " +
                    std::to_string(block_size) + ")");
      // Our kernel attends over the whole context; that is windowed attention only inside the window.
      if (sliding_window_ > 0 && len > sliding_window_)
        throw Error(which + ": context of " + std::to_string(len) + " tokens exceeds the sliding window " +
                    std::to_string(sliding_window_) + ", which this op does not implement");
      const int32_t* row = table + s * max_blocks;
      for (int64_t b = 0; b < (len + block_size - 1) / block_size; ++b)
        if (row[b] < 0 || row[b] >= num_blocks)
          throw Error(which + ": block id " + std::to_string(row[b]) + " outside the cache's " +
                      std::to_string(num_blocks) + " blocks");
      seqs_[s] = kernels::AttnSeq{starts[s], int(q_len), int(len - q_len), row};
    }
    slot_ids_.resize(T);
    const int64_t* slot = slots.data<int64_t>();
    for (int64_t t = 0; t < T; ++t) {
      if (slot[t] >= num_blocks * block_size)
        throw Error("PagedAttention: slot " + std::to_string(slot[t]) + " of token " + std::to_string(t) +
                    " is outside the cache's " + std::to_string(num_blocks * block_size) + " slots");
      slot_ids_[t] = slot[t] < 0 ? -1 : int(slot[t]);
    }

    float* out = ctx.GetOutput(0, {T, num_heads_ * head_dim_}).GetTensorMutableData<float>();
    if (T == 0) return;
    // The caches are inputs, so ORT hands them out const; they are the runner's own buffers,
    // bound in place (ORT copies no CPU input), and writing the new rows into them is this op's
    // contract: no other node reads a layer's cache.
    const auto cache_type = kc.value.GetTensorTypeAndShapeInfo().GetElementType();
    const kernels::KVLayer kv{const_cast<void*>(kc.value.GetTensorRawData()), const_cast<void*>(vc.value.GetTensorRawData()),
                              cache_type == bf16 ? kernels::DType::BF16 : kernels::DType::F32, int(block_size),
                              int(num_kv_heads_), int(head_dim_)};
    kernels::kv_store(kv, k.data<float>(), v.data<float>(), int(T), slot_ids_.data());
    kernels::paged_attention(q.data<float>(), seqs_.data(), int(B), int(num_heads_), kv, scale_, out);
  }

  int64_t num_heads_ = 0, num_kv_heads_ = 0, head_dim_ = 0, sliding_window_ = 0;
  float scale_ = 1;
  std::vector<kernels::AttnSeq> seqs_;  // per call; a kernel object runs one node
  std::vector<int> slot_ids_;
};

struct PagedAttentionOp : Ort::CustomOpBase<PagedAttentionOp, PagedAttentionKernel, /*WithStatus=*/true> {
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const {
    try {
      *kernel = new PagedAttentionKernel(info);
      return nullptr;
    } catch (const std::exception& e) {
      return api.CreateStatus(ORT_INVALID_ARGUMENT, e.what());
    }
  }
  const char* GetName() const { return "PagedAttention"; }
  const char* GetExecutionProviderType() const { return "CPUExecutionProvider"; }
  size_t GetInputTypeCount() const { return kNumOpInputs; }
  ONNXTensorElementDataType GetInputType(size_t i) const {
    switch (i) {
      case kKCache:
      case kVCache: return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;  // f32 or bf16, checked per call
      case kSlotMapping: return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
      case kBlockTables:
      case kContextLens:
      case kQueryStartLoc: return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
      default: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    }
  }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT; }
};

}  // namespace

void add_paged_attention_op(OrtSessionOptions* options) {
  onnx_runtime_version();
  // ORT keeps pointers to the domain and the op for as long as any session uses them.
  static PagedAttentionOp op;
  static Ort::CustomOpDomain domain = [] {
    Ort::CustomOpDomain d("nanovllm");
    d.Add(&op);
    return d;
  }();
  Ort::UnownedSessionOptions(options).Add(domain);
}

namespace {

// ---- The runner -----------------------------------------------------------------------------

// One per process, as ORT wants (its logging and default thread pools live there).
Ort::Env& ort_env() {
  static Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "nanovllm");
  return env;
}

// Bytes of the graph and its external weights (model.onnx, model.onnx.data, ...).
int64_t graph_bytes(const std::filesystem::path& dir) {
  int64_t bytes = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename().string().rfind("model.onnx", 0) == 0) bytes += e.file_size();
  return bytes;
}

// A tensor over memory we own (ORT neither copies nor frees it).
template <typename T>
Ort::Value wrap(T* data, std::vector<int64_t> shape) {
  static const Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtDeviceAllocator, OrtMemTypeDefault);
  size_t n = 1;
  for (int64_t d : shape) n *= size_t(d);
  return Ort::Value::CreateTensor<T>(cpu, data, n, shape.data(), shape.size());
}

class OnnxRunner final : public ModelRunner {
 public:
  OnnxRunner(const std::string& dir, const OnnxRunnerOptions& opts)
      : cfg_(load_model_config(dir)), threads_(opts.threads > 0 ? opts.threads : omp_get_num_procs()) {
    const std::filesystem::path graph = std::filesystem::path(dir) / "model.onnx";
    if (!std::filesystem::is_regular_file(graph))
      throw Error(graph.string() + ": not found; the onnx backend runs a decoder exported with "
                  "`make export-onnx MODEL=CHECKPOINT OUT=" + dir + "`");
    onnx_runtime_version();
    Ort::SessionOptions so;
    so.SetIntraOpNumThreads(threads_);
    so.SetInterOpNumThreads(1);
    // ORT's pool and our kernels' OpenMP team take turns on the same cores within a step: a pool
    // spinning after its matmul takes a core from the attention's team (and the team's spin from
    // the next matmul). Without ORT's spin, decode ran 1.4x (batch 1) and 1.4-1.7x (batch 16) faster.
    so.AddConfigEntry("session.intra_op.allow_spinning", "0");
    so.SetExecutionMode(ORT_SEQUENTIAL);  // nodes run on the caller's thread: our OpenMP team's ICV
    so.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
    // Every step has new shapes (tokens, sequences): memory patterns planned per shape would
    // not be reused.
    so.DisableMemPattern();
    add_paged_attention_op(so);
    try {
      session_ = Ort::Session(ort_env(), graph.c_str(), so);
    } catch (const Ort::Exception& e) {
      throw Error(graph.string() + ": ONNX Runtime cannot load it: " + e.what());
    }
    check_graph(graph.string());
    binding_ = Ort::IoBinding(session_);
    info_ = model_info(dir, &cfg_, graph_bytes(dir));
  }

  const ModelInfo& info() const override { return info_; }

  int64_t kv_block_bytes(int block_size) const override {
    return 2LL * cfg_.num_layers * block_size * cfg_.kv_dim() * int64_t(kv_bf16_ ? 2 : 4);
  }
  int64_t kv_capacity_bytes() const override { return host_available_memory(); }

  // Each layer's K and V as one buffer [blocks, kv heads, block_size, head_dim], bound once.
  void allocate_kv_cache(int num_blocks, int block_size) override {
    NV_CHECK(num_blocks > 0 && block_size > 0, "KV cache needs blocks");
    const std::vector<int64_t> shape{num_blocks, cfg_.num_kv_heads, block_size, cfg_.head_dim};
    const size_t bytes = size_t(num_blocks) * block_size * cfg_.kv_dim() * (kv_bf16_ ? 2 : 4);
    cache_.clear();
    for (int l = 0; l < cfg_.num_layers; ++l)
      for (const char* kind : {"k_cache.", "v_cache."}) {
        cache_.emplace_back(bytes);
        Ort::Value t = kv_bf16_ ? wrap(static_cast<Ort::BFloat16_t*>(cache_.back().data()), shape)
                                : wrap(static_cast<float*>(cache_.back().data()), shape);
        binding_.BindInput((kind + std::to_string(l)).c_str(), t);
      }
    num_blocks_ = num_blocks;
    block_size_ = block_size;
  }

  void forward(const Batch& batch, Logits* out) override {
    NV_CHECK(!cache_.empty(), "allocate_kv_cache before forward");
    NV_CHECK(batch.block_size == block_size_, "batch block_size differs from the cache's");
    batch.check();
    prepare_step(batch);
    bind_step(out);
    omp_set_num_threads(threads_);  // the team of our kernels inside the op (an ICV of this thread)
    try {
      session_.Run(Ort::RunOptions{nullptr}, binding_);
    } catch (const Ort::Exception& e) {
      throw Error(std::string("onnx backend: ") + e.what());
    }
    if (!has_logits_indices_) copy_sampled_rows(out);
  }

 private:
  // The graph's inputs and outputs against the contract (onnx_runner.h) and config.json.
  void check_graph(const std::string& path) {
    Ort::AllocatorWithDefaultOptions alloc;
    std::map<std::string, ONNXTensorElementDataType> want = {
        {"input_ids", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64},     {"positions", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64},
        {"slot_mapping", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64},  {"block_tables", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32},
        {"context_lens", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32},  {"query_start_loc", ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32}};
    std::map<std::string, bool> seen;
    for (size_t i = 0; i < session_.GetInputCount(); ++i) {
      const std::string name = session_.GetInputNameAllocated(i, alloc).get();
      const Ort::TypeInfo type_info = session_.GetInputTypeInfo(i);  // owns what `info` views
      const auto info = type_info.GetTensorTypeAndShapeInfo();
      const auto type = info.GetElementType();
      seen[name] = true;
      if (name == "logits_indices") {
        has_logits_indices_ = true;
        want[name] = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
      } else if (name.rfind("k_cache.", 0) == 0 || name.rfind("v_cache.", 0) == 0) {
        check_cache_input(path, name, info);
        kv_bf16_ = type == ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16;
        continue;
      } else if (!want.count(name)) {
        throw Error(path + ": graph input '" + name + "' is not one the onnx runner feeds");
      }
      if (type != want[name]) throw Error(path + ": graph input '" + name + "' has an unexpected element type");
    }
    for (int l = 0; l < cfg_.num_layers; ++l)
      for (const char* kind : {"k_cache.", "v_cache."}) want[kind + std::to_string(l)] = {};
    for (const auto& [name, type] : want)
      if (!seen.count(name)) throw Error(path + ": graph has no input '" + name + "'");
    if (seen.size() != want.size())
      throw Error(path + ": graph has caches for more layers than config.json's " + std::to_string(cfg_.num_layers));
    if (session_.GetOutputCount() != 1 || std::string(session_.GetOutputNameAllocated(0, alloc).get()) != "logits")
      throw Error(path + ": graph must have the one output 'logits'");
  }

  void check_cache_input(const std::string& path, const std::string& name, const Ort::ConstTensorTypeAndShapeInfo& info) {
    const auto type = info.GetElementType();
    if (type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT && type != ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16)
      throw Error(path + ": cache input '" + name + "' must be float or bfloat16");
    if (cache_type_seen_ && (type == ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16) != kv_bf16_)
      throw Error(path + ": cache inputs mix float and bfloat16");
    cache_type_seen_ = true;
    const std::vector<int64_t> s = info.GetShape();  // -1: a symbolic dim
    // block_size is the engine's choice (--block-size), so that dim is symbolic in the graph.
    const bool ok = s.size() == 4 && (s[1] < 0 || s[1] == cfg_.num_kv_heads) && s[2] < 0 &&
                    (s[3] < 0 || s[3] == cfg_.head_dim);
    if (!ok)
      throw Error(path + ": cache input '" + name + "' has shape " + shape_str(s) + "; the op reads [num_blocks, " +
                  std::to_string(cfg_.num_kv_heads) + " (kv heads), block_size (symbolic), " +
                  std::to_string(cfg_.head_dim) + " (head_dim)]: each block holds one KV head's rows after another");
  }

  // The batch as the graph's metadata inputs (onnx_runner.h); the padding of block_tables is
  // never read (the op reads the blocks below each context_len only).
  void prepare_step(const Batch& batch) {
    const int T = batch.num_tokens(), B = int(batch.seqs.size()), bs = block_size_;
    ids_.resize(T);
    pos_.resize(T);
    slots_.resize(T);
    ctx_lens_.resize(B);
    qsl_.assign(1, 0);
    sample_rows_.clear();
    sample_rows_.reserve(1);  // an empty logits_indices still needs a non-null buffer
    max_blocks_ = 1;
    for (const SeqSlice& s : batch.seqs) max_blocks_ = std::max<int>(max_blocks_, int(s.block_table.size()));
    tables_.assign(size_t(B) * max_blocks_, 0);
    int t = 0;
    for (int i = 0; i < B; ++i) {
      const SeqSlice& s = batch.seqs[i];
      for (int b : s.block_table) NV_CHECK(b >= 0 && b < num_blocks_, "block id outside the cache");
      std::copy(s.block_table.begin(), s.block_table.end(), tables_.begin() + size_t(i) * max_blocks_);
      for (int j = 0; j < s.num_new; ++j, ++t) {
        const int id = batch.token_ids[t], p = batch.positions[t];
        if (id < 0 || id >= cfg_.vocab_size)
          throw Error("token id " + std::to_string(id) + " outside the vocabulary [0, " +
                      std::to_string(cfg_.vocab_size) + ")");
        ids_[t] = id;
        pos_[t] = p;
        slots_[t] = int64_t(s.block_table[p / bs]) * bs + p % bs;
      }
      ctx_lens_[i] = s.num_cached + s.num_new;
      qsl_.push_back(t);
      if (s.sample) sample_rows_.push_back(t - 1);
    }
  }

  void bind_step(Logits* out) {
    const int64_t T = int64_t(ids_.size()), B = int64_t(ctx_lens_.size()), R = int64_t(sample_rows_.size());
    binding_.BindInput("input_ids", wrap(ids_.data(), {T}));
    binding_.BindInput("positions", wrap(pos_.data(), {T}));
    binding_.BindInput("slot_mapping", wrap(slots_.data(), {T}));
    binding_.BindInput("block_tables", wrap(tables_.data(), {B, max_blocks_}));
    binding_.BindInput("context_lens", wrap(ctx_lens_.data(), {B}));
    binding_.BindInput("query_start_loc", wrap(qsl_.data(), {B + 1}));
    out->rows = int(R);
    out->vocab = cfg_.vocab_size;
    out->data.resize(size_t(R) * cfg_.vocab_size);
    if (has_logits_indices_) {
      binding_.BindInput("logits_indices", wrap(sample_rows_.data(), {R}));
      // The graph writes the sampled rows straight into the engine's buffer.
      if (R > 0) binding_.BindOutput("logits", wrap(out->data.data(), {R, cfg_.vocab_size}));
      else binding_.BindOutput("logits", Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault));
    } else {
      all_logits_.resize(size_t(std::max<int64_t>(T, 1)) * cfg_.vocab_size);
      binding_.BindOutput("logits", wrap(all_logits_.data(), {T, cfg_.vocab_size}));
    }
  }

  void copy_sampled_rows(Logits* out) const {
    for (size_t r = 0; r < sample_rows_.size(); ++r)
      std::copy_n(all_logits_.begin() + sample_rows_[r] * cfg_.vocab_size, cfg_.vocab_size, out->row(int(r)));
  }

  ModelConfig cfg_;
  int threads_;
  Ort::Session session_{nullptr};
  Ort::IoBinding binding_{nullptr};
  ModelInfo info_;
  bool has_logits_indices_ = false, kv_bf16_ = false, cache_type_seen_ = false;
  std::vector<AlignedBuffer> cache_;  // k_cache.0, v_cache.0, k_cache.1, ...
  int num_blocks_ = 0, block_size_ = 0;
  // Per step (prepare_step), bound as the graph's inputs:
  std::vector<int64_t> ids_, pos_, slots_, sample_rows_;
  std::vector<int32_t> tables_, ctx_lens_, qsl_;
  int64_t max_blocks_ = 1;
  std::vector<float> all_logits_;  // a graph without logits_indices: every row
};

}  // namespace

std::unique_ptr<ModelRunner> make_onnx_runner(const std::string& model_dir, const OnnxRunnerOptions& opts) {
  return std::make_unique<OnnxRunner>(model_dir, opts);
}

namespace {

// The engine's threads; the KV dtype is the exported graph's; no weight rounding (the graph's
// weights are what the export wrote).
OnnxRunnerOptions onnx_options(const Config& config) {
  OnnxRunnerOptions o;
  o.threads = config.threads;
  std::string device = "cpu";
  read_backend_options(config, "onnx", {{"device", &device}});
  if (device != "cpu") throw Error("backend onnx runs on the CPU only (device '" + device + "')");
  if (!config.quantization.empty())
    throw Error("backend onnx has no --quantization " + config.quantization + " (use the native backend)");
  return o;
}

}  // namespace

BackendEntry onnx_backend() {
  return {"onnx", "ONNX Runtime " NANOVLLM_ONNXRUNTIME_VERSION " with our paged attention op (--model DIR with model.onnx)",
          [](const std::string& dir, const Config& c) {
            if (is_gguf_file(dir))
              throw Error("backend onnx runs an exported model.onnx, not a GGUF file: " + dir +
                          " (make export-onnx turns a Hugging Face checkpoint into one)");
            return make_onnx_runner(dir, onnx_options(c));
          }};
}

}  // namespace nanovllm
