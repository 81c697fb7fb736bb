// The LibTorch backend: a ModelRunner whose tensors live on a torch device (CPU or CUDA GPU).
// Torch headers stay out of this header: only torch_runner.cpp includes them.
#pragma once

#include <memory>
#include <string>

#include "engine/model_runner.h"

namespace nanovllm {

struct TorchRunnerOptions {
  std::string device = "cpu";           // "cpu", "cuda" or "cuda:N"
  std::string dtype = "auto";           // compute dtype: auto (f32 on cpu, checkpoint's on cuda), f32, bf16, f16
  std::string kv_cache_dtype = "bf16";  // "bf16" or "f32"
  int threads = 0;                      // torch's intra-op threads; 0 = torch's default
};

// Loads config, generation config and weights (through the same loaders as the native runner)
// onto the device; throws nanovllm::Error on a bad device, dtype or checkpoint.
std::unique_ptr<ModelRunner> make_torch_runner(const std::string& model_dir, const TorchRunnerOptions& opts = {});

}  // namespace nanovllm
