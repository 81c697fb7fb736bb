// NativeRunner: ties the checkpoint, its weights and the decoder to the engine's interface.
#include "backends/native/native_runner.h"

#include "backends/host_memory.h"
#include "backends/registry.h"

#include "nanovllm/error.h"
#include "model/gguf_model.h"
#include "model/transformer.h"
#include "model/model_config.h"
#include "model/weights.h"

namespace nanovllm {

namespace {

kernels::DType parse_kv_dtype(const std::string& s) {
  if (s == "bf16") return kernels::DType::BF16;
  if (s == "f32") return kernels::DType::F32;
  throw Error("kv cache dtype '" + s + "' is not supported (bf16 or f32)");
}

WeightOptions weight_options(const NativeRunnerOptions& o) {
  if (!o.quantization.empty() && o.quantization != "int8")
    throw Error("quantization '" + o.quantization + "' is not supported (int8, or none)");
  return WeightOptions{.int8 = o.quantization == "int8"};
}

// The weights in the layout the context's table reads (kernels::preferred_layout), repacked by its team.
ModelWeights load_weights_in(const kernels::Context& ctx, const Checkpoint& ckpt, const ModelConfig& cfg,
                             const WeightOptions& opts) {
  kernels::Context::Scope scope(ctx);
  return load_weights(ckpt, cfg, opts);
}

class NativeRunner final : public ModelRunner {
 public:
  NativeRunner(const std::string& dir, const NativeRunnerOptions& opts)
      : kv_dtype_(parse_kv_dtype(opts.kv_cache_dtype)),
        prefault_kv_(opts.prefault_kv_cache),
        ctx_(opts.isa.c_str(), opts.threads),
        gguf_(is_gguf_file(dir) ? std::make_shared<const GgufFile>(dir) : nullptr),
        cfg_(gguf_ ? gguf_model_config(*gguf_) : load_model_config(dir)),
        ckpt_(gguf_ ? gguf_checkpoint(gguf_, cfg_) : Checkpoint(dir)),
        weights_(load_weights_in(ctx_, ckpt_, cfg_, weight_options(opts))),
        transformer_(cfg_, weights_) {
    info_ = model_info(dir, &cfg_, ckpt_.total_bytes());
  }

  const ModelInfo& info() const override { return info_; }
  int64_t kv_block_bytes(int block_size) const override {
    return transformer_.kv_block_bytes(block_size, kv_dtype_);
  }
  int64_t kv_capacity_bytes() const override { return host_available_memory(); }
  void allocate_kv_cache(int num_blocks, int block_size) override {
    kernels::Context::Scope scope(ctx_);
    transformer_.allocate_kv_cache(num_blocks, block_size, kv_dtype_, prefault_kv_);
  }
  // The runner's kernel table and team size for this step only (kernels::Context).
  void forward(const Batch& batch, Logits* out) override {
    kernels::Context::Scope scope(ctx_);
    transformer_.forward(batch, out);
  }

 private:
  kernels::DType kv_dtype_;
  bool prefault_kv_;
  kernels::Context ctx_;  // before the weights: they are laid out for its table
  std::shared_ptr<const GgufFile> gguf_;  // a GGUF file's metadata and mapping; null for a folder
  ModelConfig cfg_;
  Checkpoint ckpt_;
  ModelWeights weights_;
  Transformer transformer_;
  ModelInfo info_;
};

}  // namespace

std::unique_ptr<ModelRunner> make_native_runner(const std::string& model_dir,
                                                const NativeRunnerOptions& opts) {
  return std::make_unique<NativeRunner>(model_dir, opts);
}


// The native runner's typed options from the engine Config; it runs on the host CPU only.
NativeRunnerOptions native_options(const Config& config) {
  NativeRunnerOptions o;
  o.kv_cache_dtype = config.kv_cache_dtype;
  o.threads = config.threads;
  o.prefault_kv_cache = config.kv_cache_prefault;
  o.quantization = config.quantization;
  std::string device = "cpu";
  read_backend_options(config, "native", {{"device", &device}, {"isa", &o.isa}});
  if (device != "cpu") throw Error("backend native runs on the CPU only (device '" + device + "'); use --backend torch");
  return o;
}

BackendEntry native_backend() {
  return {"native", "this project's CPU kernels (AVX-512 / AVX2 / scalar, bf16/int8 weights)",
          [](const std::string& dir, const Config& c) { return make_native_runner(dir, native_options(c)); }};
}

}  // namespace nanovllm
