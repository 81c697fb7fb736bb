// Fuzz target: config.json text, read as a checkpoint's config.json and generation_config.json,
// then the RoPE frequencies it implies. Expected outcome for bad input: nanovllm::Error.
#include <cstdint>

#include "fuzz_input.h"
#include "model/model_config.h"
#include "nanovllm/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nanovllm;
  if (size > fuzz::kMaxInput) return -1;
  fuzz::write_scratch("config.json", fuzz::as_text(data, size));
  fuzz::write_scratch("generation_config.json", fuzz::as_text(data, size));
  try {
    ModelConfig cfg = load_model_config(fuzz::scratch_dir().string());
    load_generation_config(fuzz::scratch_dir().string(), &cfg);
    const std::vector<float> inv_freq = rope_inv_freq(cfg);
    volatile size_t sink = inv_freq.size() + static_cast<size_t>(cfg.q_dim()) + static_cast<size_t>(cfg.kv_dim());
    (void)sink;
  } catch (const Error& e) {
    fuzz::rejected(e);
  }
  return 0;
}
