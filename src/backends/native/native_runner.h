// The native CPU backend: a ModelRunner over a Hugging Face checkpoint directory or a GGUF file.
#pragma once

#include <memory>
#include <string>

#include "engine/model_runner.h"
#include "nanovllm/config.h"

namespace nanovllm {

struct NativeRunnerOptions {
  std::string kv_cache_dtype = "bf16";  // "bf16" or "f32"
  int threads = 0;                      // OpenMP threads; 0 = all cores
  bool prefault_kv_cache = false;       // Config::kv_cache_prefault
  std::string quantization = "";        // Config::quantization: "" or "int8"
  std::string isa = "";                 // kernel table (kernels::kIsaNames); "" = the process default
};

// The native runner's typed options from the engine Config (refuses a device other than cpu).
NativeRunnerOptions native_options(const Config& config);

// Loads config, generation config and weights (mmapped) from model_dir; throws nanovllm::Error
// naming the file and tensor when the checkpoint is unsupported or damaged.
std::unique_ptr<ModelRunner> make_native_runner(const std::string& model_dir,
                                                const NativeRunnerOptions& opts = {});

}  // namespace nanovllm
