// Fuzz target: a whole safetensors file (8-byte header length, JSON header, tensor bytes).
// Expected outcome for bad input: nanovllm::Error. Anything else (a crash, a sanitizer report,
// another exception) is a finding.
#include <cstdint>

#include "fuzz_input.h"
#include "model/safetensors.h"
#include "nanovllm/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nanovllm;
  if (size > fuzz::kMaxInput) return -1;
  const std::string path = fuzz::write_scratch("model.safetensors", fuzz::as_text(data, size));
  try {
    SafetensorsFile file(path);
    // What the weight loader does next with each tensor: size it and read all of its bytes.
    size_t sum = 0;
    for (const auto& [name, t] : file.tensors()) {
      sum += static_cast<size_t>(t.numel()) + t.shape_string().size();
      const auto* bytes = static_cast<const uint8_t*>(t.data);
      for (size_t i = 0; i < t.nbytes; ++i) sum += bytes[i];
    }
    for (const auto& [k, v] : file.metadata()) sum += file.find(v) ? 1 : 0;
    volatile size_t sink = sum;
    (void)sink;
  } catch (const Error& e) {
    fuzz::rejected(e);
  }
  return 0;
}
