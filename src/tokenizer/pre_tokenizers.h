// tokenizer.json "pre_tokenizer": splits normalized text into words that the BPE model encodes
// one by one (Split regex, ByteLevel, Metaspace, Digits, Sequence, ...).
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace nanovllm {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Appends the words of piece to out. A pre-tokenizer that rewrites text (Metaspace, a prefix
  // space) keeps the new text in arena, which outlives the words. at_origin: the piece starts
  // the whole input (Metaspace's prepend_scheme "first" prepends only there).
  virtual void split(std::string_view piece, bool at_origin, std::vector<std::string_view>& out,
                     std::deque<std::string>& arena) const = 0;
  // True when this (or its last stage) is ByteLevel: words are raw bytes that the BPE model maps
  // through the GPT-2 byte-to-character table itself.
  virtual bool byte_level() const { return false; }
};

// nullptr for JSON null. Throws nanovllm::Error for an unsupported type or a ByteLevel stage
// that is not last (the model does the byte mapping, so nothing may split after it).
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& spec);

}  // namespace nanovllm
