// Fuzz target: a tokenizer.json, loaded and then used the way the engine uses it: encode a few
// texts (plain, special tokens, bytes outside the vocabulary), decode the ids back, and decode
// ids at the edges of the vocabulary. Expected outcome for bad input: nanovllm::Error.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_input.h"
#include "nanovllm/error.h"
#include "tokenizer/hf_tokenizer.h"

namespace {

// Texts that reach the normalizer, pre-tokenizer, BPE merges, byte fallback and added tokens.
const char* const kTexts[] = {
    "Hello world! It's 2024, isn't it?  Tabs\tand\nnewlines\n\n",
    "<|im_start|>user\nHi<|im_end|><s></s><|endoftext|><|begin_of_text|>",
    "caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80 \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7",
    "\xff\xfe invalid \xc3 utf8 \xed\xa0\x80",
    "    leading spaces and 12345678901234567890 digits",
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nanovllm;
  if (size > 2 * fuzz::kMaxInput) return -1;  // trimmed real tokenizers are up to ~100 KB
  const std::string path = fuzz::write_scratch("tokenizer.json", fuzz::as_text(data, size));
  try {
    auto tok = HfTokenizer::from_file(path);
    size_t sum = 0;
    for (const char* text : kTexts) {
      for (bool special : {true, false}) {
        const std::vector<int> ids = tok->encode(text, special, !special);
        sum += tok->decode(ids, special).size() + tok->decode(ids, !special).size();
      }
    }
    const int n = tok->vocab_size();
    const std::vector<int> edges = {0, 1, n / 2, n - 1};
    for (int id : edges) {
      if (id < 0 || id >= n) continue;
      sum += tok->id_to_token(id).size() + tok->is_special(id);
    }
    std::vector<int> valid;
    for (int id : edges)
      if (id >= 0 && id < n) valid.push_back(id);
    sum += tok->decode(valid, false).size();
    volatile size_t sink = sum;
    (void)sink;
  } catch (const Error& e) {
    fuzz::rejected(e);
  }
  return 0;
}
