// Structured outputs with llguidance: a ConstraintCompiler for one tokenizer and one logits
// width. llguidance sees every token's bytes and calls back into our tokenizer, so its
// grammars match this model's tokens exactly (see llguidance.h, "LlgTokenizerInit").
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/constraint.h"

namespace nanovllm {

class HfTokenizer;

// vocab_size: the logits width (may exceed the tokenizer's: those ids are never allowed).
// eos_ids: what ends a request; the grammar allows them once it is complete.
// The llguidance tokenizer is set up on a helper thread from here on; a failure there (or
// no eos id) is a nanovllm::Error from compile().
std::shared_ptr<const ConstraintCompiler> make_llguidance_compiler(std::shared_ptr<const HfTokenizer> tokenizer,
                                                                   int vocab_size, std::vector<int> eos_ids);

// The llguidance grammar (constraint type, text) of a request's StructuredOutputs; exposed for tests.
struct GrammarText {
  std::string type;  // "json", "json_object", "regex" or "lark"
  std::string text;
};
GrammarText grammar_text(const StructuredOutputs& spec);

// GBNF (llama.cpp's grammar format) as Lark: "::=" rules become ":" rules, dashes in rule
// names become underscores, and "root" is the start rule. Lark text is returned as given.
std::string gbnf_to_lark(const std::string& grammar);

}  // namespace nanovllm
