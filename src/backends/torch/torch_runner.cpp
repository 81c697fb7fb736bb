// The LibTorch backend: the same checkpoints (through our loaders) and the same decoder as the
// native runner, with every tensor op on a torch device (CPU, or CUDA for NVIDIA GPUs).
// The only file that includes torch headers: one translation unit, about a minute to compile.
#include "backends/torch/torch_runner.h"

#include <dlfcn.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <string>
#include <vector>

#include "backends/host_memory.h"
#include "backends/registry.h"
#include "model/gguf_model.h"
#include "model/model_config.h"
#include "model/weights.h"
#include "nanovllm/error.h"

namespace nanovllm {
namespace {

using at::Tensor;

// libtorch_cpu.so has no CUDA kernels: they register themselves when libtorch_cuda.so is
// loaded. It is loaded only when a CUDA device is asked for, so a CPU-only machine needs none of
// the CUDA libraries it links (cuBLAS, cuDNN, ...), and the CPU build links nothing of CUDA.
void load_cuda_kernels() {
  // By its path in the wheel, so that its own run path ($ORIGIN/../../nvidia/...) finds the
  // CUDA libraries of the wheels beside it.
  static const bool loaded = dlopen(NANOVLLM_TORCH_LIB_DIR "/libtorch_cuda.so", RTLD_NOW | RTLD_GLOBAL) != nullptr;
  if (!loaded) {
    const char* why = dlerror();
    throw Error(std::string("--device cuda: cannot load libtorch_cuda.so (") + (why ? why : "?") +
                "); it needs an NVIDIA driver and the CUDA wheels torch depends on (pip install torch)");
  }
  if (!at::hasCUDA()) throw Error("--device cuda: libtorch_cuda.so is loaded but torch sees no CUDA device");
}

at::Device parse_device(const std::string& s) {
  if (s == "cpu") return at::Device(at::kCPU);
  if (s == "cuda" || s.rfind("cuda:", 0) == 0) {
    at::Device d(at::kCUDA);
    try {
      d = at::Device(s);
    } catch (const std::exception&) {
      throw Error("device '" + s + "' is not cpu, cuda or cuda:N");
    }
    load_cuda_kernels();
    if (d.has_index() && d.index() >= static_cast<int>(at::detail::getCUDAHooks().deviceCount()))
      throw Error("device '" + s + "': this machine has " +
                  std::to_string(at::detail::getCUDAHooks().deviceCount()) + " CUDA devices");
    return d;
  }
  throw Error("device '" + s + "' is not cpu, cuda or cuda:N");
}

// Compute dtype: "auto" is f32 on the CPU (as the native runner computes) and the checkpoint's
// own 16-bit type on a GPU, where tensor cores want it.
at::ScalarType parse_dtype(const std::string& s, at::Device device, kernels::DType stored) {
  if (s == "f32" || s == "float32") return at::kFloat;
  if (s == "bf16" || s == "bfloat16") return at::kBFloat16;
  if (s == "f16" || s == "float16") return at::kHalf;
  if (s != "auto") throw Error("dtype '" + s + "' is not supported (auto, f32, bf16 or f16)");
  if (device.is_cpu()) return at::kFloat;
  return stored == kernels::DType::F16 ? at::kHalf : at::kBFloat16;
}

at::ScalarType parse_kv_dtype(const std::string& s) {
  if (s == "bf16") return at::kBFloat16;
  if (s == "f32") return at::kFloat;
  throw Error("kv cache dtype '" + s + "' is not supported (bf16 or f32)");
}

at::ScalarType torch_dtype(const TensorInfo& t) {
  switch (t.dtype) {
    case kernels::DType::F32: return at::kFloat;
    case kernels::DType::BF16: return at::kBFloat16;
    case kernels::DType::F16: return at::kHalf;
    default: break;
  }
  throw Error(t.file + ": tensor '" + t.name + "' has dtype " + kernels::dtype_name(t.dtype) +
              ", which the torch backend cannot load");
}

struct Layer {
  Tensor attn_norm, mlp_norm, q_norm, k_norm;  // q/k norms: Qwen3 only
  Tensor qkv, o, gate_up, down;                // [out, in], q|k|v and gate|up merged
  Tensor qkv_bias, o_bias, gate_up_bias, down_bias;  // undefined when absent
};

// One sequence's attention inputs: its rows of the batch and the cache slots of its context.
struct SliceRows {
  int first = 0, num_new = 0, num_cached = 0;
};

class TorchRunner final : public ModelRunner {
 public:
  // dir: a Hugging Face folder, or a GGUF file (read by our GGUF reader, q/k rows unpermuted
  // as for the native runner, quantized tensors dequantized at load).
  TorchRunner(const std::string& dir, const TorchRunnerOptions& opts)
      : gguf_(is_gguf_file(dir) ? std::make_shared<const GgufFile>(dir) : nullptr),
        cfg_(gguf_ ? gguf_model_config(*gguf_) : load_model_config(dir)),
        ckpt_(gguf_ ? gguf_checkpoint(gguf_, cfg_) : Checkpoint(dir)),
        device_(parse_device(opts.device)) {
    c10::InferenceMode no_autograd;
    if (opts.threads > 0) at::set_num_threads(opts.threads);
    const TensorInfo& embed = ckpt_.get("model.embed_tokens.weight", {cfg_.vocab_size, cfg_.hidden_size});
    dtype_ = parse_dtype(opts.dtype, device_, embed.dtype);
    kv_dtype_ = parse_kv_dtype(opts.kv_cache_dtype);
    load_all_weights();
    info_ = model_info(dir, &cfg_, ckpt_.total_bytes());
    const std::vector<float> inv = rope_inv_freq(cfg_);
    inv_freq_ = at::tensor(at::ArrayRef<float>(inv), at::kFloat).to(device_);
  }

  const ModelInfo& info() const override { return info_; }

  int64_t kv_block_bytes(int block_size) const override {
    return 2LL * cfg_.num_layers * block_size * cfg_.kv_dim() * static_cast<int64_t>(c10::elementSize(kv_dtype_));
  }

  // Free memory of the device the cache lives on: host RAM for the CPU, the GPU's own memory.
  int64_t kv_capacity_bytes() const override {
    if (device_.is_cpu()) return host_available_memory();
    return cuda_free_memory();
  }

  void allocate_kv_cache(int num_blocks, int block_size) override {
    NV_CHECK(num_blocks > 0 && block_size > 0, "KV cache needs blocks");
    c10::InferenceMode no_autograd;
    // [layers, 2 (K, V), slots, kv heads, head_dim]: a slot is block * block_size + offset.
    kv_ = at::zeros({cfg_.num_layers, 2, static_cast<int64_t>(num_blocks) * block_size, cfg_.num_kv_heads,
                     cfg_.head_dim},
                    at::TensorOptions().dtype(kv_dtype_).device(device_));
    num_blocks_ = num_blocks;
    block_size_ = block_size;
  }

  void forward(const Batch& batch, Logits* out) override {
    c10::InferenceMode no_autograd;
    prepare_step(batch);
    Tensor x = embed_.index_select(0, ids_);
    for (int l = 0; l < cfg_.num_layers; ++l) {
      x = x + attention(layers_[l], l, x);
      x = x + mlp(layers_[l], x);
    }
    compute_logits(x, out);
  }

 private:
  Tensor load(const std::string& name, const std::vector<int64_t>& shape) {
    const TensorInfo& t = ckpt_.get(name, shape);
    if (kernels::block_elems(t.dtype) > 1) return dequantize(t).to(device_, dtype_);
    // The mapping outlives this view (ckpt_ is a member); .to() copies unless dtype and device
    // already match, and the weights are never written, so the read-only mapping is safe.
    Tensor view = at::from_blob(const_cast<void*>(t.data), t.shape, at::TensorOptions().dtype(torch_dtype(t)));
    return view.to(device_, dtype_);
  }
  // A GGUF tensor in ggml's quantized blocks as f32 on the host, row by row, by the reference
  // decoder the native kernels are tested against (ggml's formulas): torch has no such dtypes.
  static Tensor dequantize(const TensorInfo& t) {
    const int64_t cols = t.shape.back(), rows = t.numel() / cols;
    const size_t row_bytes = kernels::row_bytes(t.dtype, cols);  // throws unless whole blocks
    Tensor out = at::empty(t.shape, at::kFloat);
    const auto* src = static_cast<const uint8_t*>(t.data);
    float* dst = out.data_ptr<float>();
    at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r)
        kernels::dequantize_row(t.dtype, src + r * row_bytes, cols, dst + r * cols);
    });
    return out;
  }
  Tensor load_opt(const std::string& name, const std::vector<int64_t>& shape, bool present) {
    return present ? load(name, shape) : Tensor();
  }

  void load_all_weights() {
    const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size, Q = cfg_.q_dim(), KV = cfg_.kv_dim(),
                  hd = cfg_.head_dim;
    embed_ = load("model.embed_tokens.weight", {cfg_.vocab_size, H});
    lm_head_ = cfg_.tie_word_embeddings ? embed_ : load("lm_head.weight", {cfg_.vocab_size, H});
    final_norm_ = load("model.norm.weight", {H});
    for (int l = 0; l < cfg_.num_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      const std::string a = p + "self_attn.", m = p + "mlp.";
      Layer L;
      L.attn_norm = load(p + "input_layernorm.weight", {H});
      L.mlp_norm = load(p + "post_attention_layernorm.weight", {H});
      if (cfg_.qk_norm) {
        L.q_norm = load(a + "q_norm.weight", {hd});
        L.k_norm = load(a + "k_norm.weight", {hd});
      }
      L.qkv = at::cat({load(a + "q_proj.weight", {Q, H}), load(a + "k_proj.weight", {KV, H}),
                       load(a + "v_proj.weight", {KV, H})});
      if (cfg_.qkv_bias)
        L.qkv_bias = at::cat({load(a + "q_proj.bias", {Q}), load(a + "k_proj.bias", {KV}), load(a + "v_proj.bias", {KV})});
      L.o = load(a + "o_proj.weight", {H, Q});
      L.o_bias = load_opt(a + "o_proj.bias", {H}, cfg_.o_bias);
      L.gate_up = at::cat({load(m + "gate_proj.weight", {I, H}), load(m + "up_proj.weight", {I, H})});
      if (cfg_.mlp_bias) L.gate_up_bias = at::cat({load(m + "gate_proj.bias", {I}), load(m + "up_proj.bias", {I})});
      L.down = load(m + "down_proj.weight", {H, I});
      L.down_bias = load_opt(m + "down_proj.bias", {H}, cfg_.mlp_bias);
      layers_.push_back(std::move(L));
    }
  }

  // cudaMemGetInfo through the CUDA runtime torch already loaded (no CUDA headers needed).
  int64_t cuda_free_memory() const {
    using MemGetInfo = int (*)(size_t*, size_t*);
    using SetDevice = int (*)(int);
    void* rt = dlopen("libcudart.so.13", RTLD_NOW | RTLD_NOLOAD);
    if (!rt) rt = dlopen("libcudart.so.13", RTLD_NOW);
    auto get = rt ? reinterpret_cast<MemGetInfo>(dlsym(rt, "cudaMemGetInfo")) : nullptr;
    auto set = rt ? reinterpret_cast<SetDevice>(dlsym(rt, "cudaSetDevice")) : nullptr;
    size_t free_b = 0, total_b = 0;
    if (!get || !set || set(device_.has_index() ? device_.index() : 0) != 0 || get(&free_b, &total_b) != 0)
      throw Error("cannot read the free memory of " + device_.str() + " (cudaMemGetInfo); pass --kv-cache-memory");
    return static_cast<int64_t>(free_b);
  }

  // Checks the batch as the native runner does, and moves its indices to the device in one copy
  // (Staging): on a GPU each copy from pageable host memory waits for the device, so one per
  // step, and none inside the layers.
  void prepare_step(const Batch& batch) {
    NV_CHECK(kv_.defined(), "allocate_kv_cache before forward");
    NV_CHECK(batch.block_size == block_size_, "batch block_size differs from the cache's");
    batch.check();
    const int T = batch.num_tokens(), bs = block_size_;
    std::vector<int64_t> ids(T), pos(T), slots(T), sample_rows;
    std::vector<std::vector<int64_t>> context(batch.seqs.size());
    slices_.clear();
    int t = 0;
    for (size_t i = 0; i < batch.seqs.size(); ++i) {
      const SeqSlice& seq = batch.seqs[i];
      std::vector<int64_t>& ctx = context[i];
      ctx.resize(seq.num_cached + seq.num_new);
      for (size_t p = 0; p < ctx.size(); ++p) {
        const int block = seq.block_table[p / bs];
        NV_CHECK(block >= 0 && block < num_blocks_, "block id outside the cache");
        ctx[p] = static_cast<int64_t>(block) * bs + p % bs;
      }
      slices_.push_back({t, seq.num_new, seq.num_cached});
      for (int j = 0; j < seq.num_new; ++j, ++t) {
        const int id = batch.token_ids[t];
        if (id < 0 || id >= cfg_.vocab_size)
          throw Error("token id " + std::to_string(id) + " outside the vocabulary [0, " +
                      std::to_string(cfg_.vocab_size) + ")");
        ids[t] = id;
        pos[t] = batch.positions[t];
        slots[t] = ctx[seq.num_cached + j];
      }
      if (seq.sample) sample_rows.push_back(t - 1);
    }
    Staging up;
    const int ids_at = up.add(ids), pos_at = up.add(pos), slots_at = up.add(slots), rows_at = up.add(sample_rows);
    std::vector<int> prefill_at(slices_.size(), -1);
    for (size_t i = 0; i < slices_.size(); ++i)
      if (slices_[i].num_new != 1) prefill_at[i] = up.add(context[i]);
    const DecodeGroup group = decode_group(context);
    const int gather_at = up.add(group.gather), decode_rows_at = up.add(group.rows), valid_at = up.add(group.valid);
    up.send(device_);
    ids_ = up.part(ids_at);
    slots_ = up.part(slots_at);
    sample_rows_ = up.part(rows_at);
    // RoPE angles as f32 products (as transformers and the native kernels compute them), cos and
    // sin of them in f64: the rotation then matches the native runner's to the last bits.
    const Tensor angle = up.part(pos_at).to(at::kFloat).unsqueeze(1) * inv_freq_.unsqueeze(0);  // [T, hd/2]
    const Tensor a64 = angle.to(at::kDouble);
    cos_ = at::cat({a64.cos(), a64.cos()}, 1).to(at::kFloat).unsqueeze(1);  // [T, 1, hd]
    sin_ = at::cat({a64.sin(), a64.sin()}, 1).to(at::kFloat).unsqueeze(1);
    // A prefill chunk's context slots, and its causal mask: the query at position num_cached + r
    // sees keys [0, num_cached + r].
    prefill_slots_.assign(slices_.size(), Tensor());
    prefill_mask_.assign(slices_.size(), Tensor());
    for (size_t i = 0; i < slices_.size(); ++i) {
      if (prefill_at[i] < 0) continue;
      const SliceRows& s = slices_[i];
      prefill_slots_[i] = up.part(prefill_at[i]);
      const Tensor qpos = at::arange(s.num_cached, s.num_cached + s.num_new, ids_.options()).unsqueeze(1);
      prefill_mask_[i] = at::arange(prefill_slots_[i].size(0), ids_.options()).unsqueeze(0) <= qpos;
    }
    decode_rows_ = up.part(decode_rows_at);
    decode_slots_ = up.part(gather_at);
    decode_mask_ = up.part(valid_at).view({static_cast<int64_t>(group.rows.size()), 1, 1, group.longest}).ne(0);
  }

  // Host vectors gathered into one buffer and sent to the device in one copy; part(i) is a view
  // of the i-th vector added.
  class Staging {
   public:
    int add(const std::vector<int64_t>& v) {
      parts_.push_back({static_cast<int64_t>(data_.size()), static_cast<int64_t>(v.size())});
      data_.insert(data_.end(), v.begin(), v.end());
      return static_cast<int>(parts_.size()) - 1;
    }
    void send(at::Device device) { all_ = at::tensor(at::ArrayRef<int64_t>(data_), at::kLong).to(device); }
    Tensor part(int i) const { return all_.narrow(0, parts_[i].first, parts_[i].second); }

   private:
    std::vector<int64_t> data_;
    std::vector<std::pair<int64_t, int64_t>> parts_;  // offset, length
    Tensor all_;
  };

  // Slices of one new token (decodes) attend together: their contexts padded to the longest,
  // the padding masked out (valid = 0). Longer slices (prefill chunks) attend one by one.
  struct DecodeGroup {
    std::vector<int64_t> gather, rows, valid;  // [S * longest], [S], [S * longest]
    int64_t longest = 0;
  };
  DecodeGroup decode_group(const std::vector<std::vector<int64_t>>& context) const {
    DecodeGroup g;
    std::vector<size_t> members;
    for (size_t i = 0; i < slices_.size(); ++i) {
      if (slices_[i].num_new != 1) continue;
      members.push_back(i);
      g.longest = std::max(g.longest, static_cast<int64_t>(context[i].size()));
    }
    const int64_t L = g.longest;
    g.gather.assign(members.size() * L, 0);
    g.valid.assign(members.size() * L, 0);
    for (size_t s = 0; s < members.size(); ++s) {
      const std::vector<int64_t>& ctx = context[members[s]];
      std::copy(ctx.begin(), ctx.end(), g.gather.begin() + s * L);
      std::fill_n(g.valid.begin() + s * L, ctx.size(), 1);
      g.rows.push_back(slices_[members[s]].first);
    }
    return g;
  }

  // transformers' LlamaRMSNorm: the mean square in f32, the weight applied in the compute dtype.
  Tensor rmsnorm(const Tensor& x, const Tensor& w) const {
    const Tensor xf = x.to(at::kFloat);
    const Tensor inv = at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + cfg_.rms_norm_eps);
    return w * (xf * inv).to(x.scalar_type());
  }

  // Rotate-half RoPE (the Hugging Face layout) of [T, heads, head_dim].
  Tensor rope(const Tensor& x) const {
    const int64_t half = cfg_.head_dim / 2;
    const Tensor xf = x.to(at::kFloat);
    const Tensor rotated = at::cat({-xf.narrow(-1, half, half), xf.narrow(-1, 0, half)}, -1);
    return (xf * cos_ + rotated * sin_).to(x.scalar_type());
  }

  Tensor attention(const Layer& w, int layer, const Tensor& x) {
    const int64_t T = x.size(0), nh = cfg_.num_heads, nkv = cfg_.num_kv_heads, hd = cfg_.head_dim;
    const Tensor qkv = at::linear(rmsnorm(x, w.attn_norm), w.qkv, w.qkv_bias);
    Tensor q = qkv.narrow(1, 0, nh * hd).view({T, nh, hd});
    Tensor k = qkv.narrow(1, nh * hd, nkv * hd).view({T, nkv, hd});
    const Tensor v = qkv.narrow(1, (nh + nkv) * hd, nkv * hd).view({T, nkv, hd});
    if (cfg_.qk_norm) {  // Qwen3: each head normalised on its own, before RoPE
      q = rmsnorm(q, w.q_norm);
      k = rmsnorm(k, w.k_norm);
    }
    q = rope(q);
    k = rope(k);
    // K/V of the new tokens into their slots first: a slice's new tokens attend to each other.
    Tensor kc = kv_[layer][0], vc = kv_[layer][1];
    kc.index_copy_(0, slots_, k.to(kv_dtype_));
    vc.index_copy_(0, slots_, v.to(kv_dtype_));
    Tensor out = at::empty({T, nh, hd}, q.options());
    const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
    for (size_t i = 0; i < slices_.size(); ++i) {
      const SliceRows& s = slices_[i];
      if (!prefill_slots_[i].defined()) continue;
      // [1, heads, len, hd]
      const Tensor qs = q.narrow(0, s.first, s.num_new).transpose(0, 1).unsqueeze(0);
      const Tensor ks = kc.index_select(0, prefill_slots_[i]).to(q.scalar_type()).transpose(0, 1).unsqueeze(0);
      const Tensor vs = vc.index_select(0, prefill_slots_[i]).to(q.scalar_type()).transpose(0, 1).unsqueeze(0);
      const Tensor o = at::scaled_dot_product_attention(qs, ks, vs, prefill_mask_[i], 0.0, false, scale, nkv != nh);
      out.narrow(0, s.first, s.num_new).copy_(o.squeeze(0).transpose(0, 1));
    }
    if (decode_rows_.size(0) > 0) {
      const int64_t S = decode_rows_.size(0), L = decode_mask_.size(3);
      const Tensor qs = q.index_select(0, decode_rows_).unsqueeze(2);  // [S, heads, 1, hd]
      const Tensor ks = kc.index_select(0, decode_slots_).to(q.scalar_type()).view({S, L, nkv, hd}).transpose(1, 2);
      const Tensor vs = vc.index_select(0, decode_slots_).to(q.scalar_type()).view({S, L, nkv, hd}).transpose(1, 2);
      const Tensor o = at::scaled_dot_product_attention(qs, ks, vs, decode_mask_, 0.0, false, scale, nkv != nh);
      out.index_copy_(0, decode_rows_, o.squeeze(2));
    }
    return at::linear(out.view({T, nh * hd}), w.o, w.o_bias);
  }

  Tensor mlp(const Layer& w, const Tensor& x) const {
    const Tensor gu = at::linear(rmsnorm(x, w.mlp_norm), w.gate_up, w.gate_up_bias);
    const int64_t I = cfg_.intermediate_size;
    return at::linear(at::silu(gu.narrow(1, 0, I)) * gu.narrow(1, I, I), w.down, w.down_bias);
  }

  // Only the sampling rows go through the final norm and the vocabulary projection; the logits
  // come to the host in one copy, straight into the engine's buffer.
  void compute_logits(const Tensor& x, Logits* out) const {
    const int64_t R = sample_rows_.size(0);
    out->rows = static_cast<int>(R);
    out->vocab = cfg_.vocab_size;
    out->data.resize(static_cast<size_t>(R) * cfg_.vocab_size);
    if (R == 0) return;
    const Tensor last = rmsnorm(x.index_select(0, sample_rows_), final_norm_);
    const Tensor logits = at::linear(last, lm_head_).to(at::kFloat);
    at::from_blob(out->data.data(), {R, cfg_.vocab_size}, at::kFloat).copy_(logits);
  }

  std::shared_ptr<const GgufFile> gguf_;  // a GGUF file's metadata and mapping; null for a folder
  ModelConfig cfg_;
  Checkpoint ckpt_;
  at::Device device_;
  at::ScalarType dtype_ = at::kFloat, kv_dtype_ = at::kBFloat16;
  ModelInfo info_;
  Tensor embed_, lm_head_, final_norm_, inv_freq_;
  std::vector<Layer> layers_;
  Tensor kv_;
  int num_blocks_ = 0, block_size_ = 0;
  // Per step (prepare_step):
  std::vector<SliceRows> slices_;
  std::vector<Tensor> prefill_slots_, prefill_mask_;  // per slice; undefined for a decode
  Tensor ids_, slots_, sample_rows_, cos_, sin_, decode_slots_, decode_rows_, decode_mask_;
};

}  // namespace

std::unique_ptr<ModelRunner> make_torch_runner(const std::string& model_dir, const TorchRunnerOptions& opts) {
  return std::make_unique<TorchRunner>(model_dir, opts);
}

namespace {

// Config::backend_options keys: device, dtype; the KV dtype and threads as the engine gives them.
TorchRunnerOptions torch_options(const Config& config) {
  TorchRunnerOptions o;
  o.kv_cache_dtype = config.kv_cache_dtype;
  o.threads = config.threads;
  read_backend_options(config, "torch", {{"device", &o.device}, {"dtype", &o.dtype}});
  if (!config.quantization.empty())
    throw Error("backend torch has no --quantization " + config.quantization + " (use --dtype bf16 or f16, or the native backend)");
  return o;
}

}  // namespace

BackendEntry torch_backend() {
  return {"torch", "LibTorch " NANOVLLM_TORCH_VERSION " (--device cpu|cuda[:N], --dtype auto|f32|bf16|f16)",
          [](const std::string& dir, const Config& c) { return make_torch_runner(dir, torch_options(c)); }};
}

}  // namespace nanovllm
