// Streaming detokenization: text for each new token id, emitted only once it is complete UTF-8
// (vLLM's prefix_offset/read_offset method: decode a small window, O(1) per token).
#pragma once

#include <span>
#include <string>
#include <vector>

#include "engine/tokenizer.h"

namespace nanovllm {

// The concatenation of every push() and the final flush() is the text the output ids add to
// the prompt: decode(prompt + output) without decode(prompt), which is decode(output) when the
// prompt is empty. The prompt's last ids give the first output tokens their left context, so
// leading-space rules (Strip, Metaspace) come out as in a full decode.
class IncrementalDetokenizer {
 public:
  IncrementalDetokenizer(const Tokenizer& tokenizer, std::span<const int> prompt_ids, bool skip_special_tokens);

  // The newly completed text (possibly empty while a UTF-8 character is still incomplete).
  std::string push(int id);
  // Whatever is still held back (e.g. a trailing incomplete character, as U+FFFD).
  std::string flush();

 private:
  std::string emit_if_complete(bool final);

  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::vector<int> ids_;        // a few prompt ids for context, then the output ids
  size_t prefix_offset_ = 0;    // start of the decode window
  size_t read_offset_ = 0;      // ids before this have been emitted
};

}  // namespace nanovllm
