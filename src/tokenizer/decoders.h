// tokenizer.json "decoder": token strings -> text (ByteLevel, Metaspace, ByteFallback, Fuse,
// Strip, Replace, Sequence), as a chain over the list of tokens like Hugging Face's decode_chain.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace nanovllm {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rewrites the list of token strings; the decoded text is their concatenation.
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// nullptr for JSON null. Throws nanovllm::Error for an unsupported type.
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& spec);

}  // namespace nanovllm
