// Grammar-constrained decoding as the engine sees it: a per-request Constraint says which
// tokens may come next and follows the tokens sampled; a ConstraintCompiler turns a request's
// StructuredOutputs into one. The engine knows no grammar library: src/constraint/ implements
// these with llguidance, and tests use fakes.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "nanovllm/sampling_params.h"

namespace nanovllm {

class Constraint {
 public:
  virtual ~Constraint() = default;
  // The tokens allowed next: bit t % 32 of word t / 32 (mask.size() words cover the logits
  // row). Called off the engine thread while the forward runs, never concurrently with accept.
  virtual void fill_mask(std::span<uint32_t> mask) = 0;
  // Advances past a sampled token; throws nanovllm::Error when the grammar refuses it.
  virtual void accept(int token) = 0;
  // The grammar is complete and allows nothing more: the request ends here.
  virtual bool is_stopped() const = 0;
};

class ConstraintCompiler {
 public:
  virtual ~ConstraintCompiler() = default;
  // Throws nanovllm::Error naming the problem (an invalid schema, regex or grammar).
  virtual std::unique_ptr<Constraint> compile(const StructuredOutputs& spec) const = 0;
};

inline bool mask_allows(std::span<const uint32_t> mask, int token) {
  const size_t word = static_cast<size_t>(token) / 32;
  return token >= 0 && word < mask.size() && (mask[word] >> (token % 32)) & 1u;
}

}  // namespace nanovllm
