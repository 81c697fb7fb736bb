// The tokenizer interface the engine and embedders use: ids in, text out. Implemented in src/tokenizer/.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nanovllm {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // add_special_tokens: apply the post-processor (BOS/EOS) as Hugging Face does.
  virtual std::vector<int> encode(std::string_view text, bool add_special_tokens = true) const = 0;

  // Invalid or incomplete UTF-8 comes out as U+FFFD, exactly as Hugging Face decodes it.
  virtual std::string decode(std::span<const int> ids, bool skip_special_tokens = true) const = 0;

  virtual int vocab_size() const = 0;  // including added tokens
  virtual std::optional<int> bos_token_id() const = 0;
  virtual std::optional<int> eos_token_id() const = 0;
};

}  // namespace nanovllm
