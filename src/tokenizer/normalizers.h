// tokenizer.json "normalizer": text rewrites applied before pre-tokenization (NFC, Prepend, Replace, ...).
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace nanovllm {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

// Builds the normalizer a tokenizer.json object describes; nullptr for JSON null.
// Throws nanovllm::Error for an unsupported type.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& spec);

}  // namespace nanovllm
