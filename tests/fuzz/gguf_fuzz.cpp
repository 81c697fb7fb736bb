// Fuzz target: a whole GGUF file (header, metadata, tensor infos, tensor bytes), read as a model
// would be: the file, its config, its tokenizer and chat template, its tensors renamed.
// Expected outcome for bad input: nanovllm::Error. Anything else (a crash, a sanitizer report,
// another exception) is a finding.
#include <cstdint>
#include <memory>

#include "fuzz_input.h"
#include "model/gguf.h"
#include "model/gguf_model.h"
#include "nanovllm/error.h"
#include "tokenizer/gguf_tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nanovllm;
  if (size > fuzz::kMaxInput) return -1;
  const std::string path = fuzz::write_scratch("model.gguf", fuzz::as_text(data, size));
  try {
    auto file = std::make_shared<const GgufFile>(path);
    size_t sum = 0;
    for (const GgufTensor& t : file->tensors())  // every tensor byte is readable
      for (size_t i = 0; i < t.nbytes; ++i) sum += t.data[i];
    try {
      const ModelConfig cfg = gguf_model_config(*file);
      const Checkpoint ckpt = gguf_checkpoint(file, cfg);
      sum += static_cast<size_t>(ckpt.total_bytes());
    } catch (const Error& e) {
      fuzz::rejected(e);
    }
    try {
      auto tok = gguf_tokenizer(*file);
      sum += tok->encode("Hello world 123 <|im_start|>").size() + tok->decode(std::vector<int>{0, 1, 2}).size();
    } catch (const Error& e) {
      fuzz::rejected(e);
    }
    try {
      sum += gguf_chat_template(*file).names().size();
    } catch (const Error& e) {
      fuzz::rejected(e);
    }
    volatile size_t sink = sum;
    (void)sink;
  } catch (const Error& e) {
    fuzz::rejected(e);
  }
  return 0;
}
