// Finds added/special tokens in text before the model runs (leftmost-longest, like the
// Aho-Corasick matcher of tokenizers), honouring lstrip, rstrip and single_word.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/hf_tokenizer.h"

namespace nanovllm {

struct TextSegment {
  size_t begin, end;
  int id;  // the added token's id, or -1 for plain text
};

class AddedTokenMatcher {
 public:
  // patterns[i] is the text to find for tokens[i] (its content, normalized for normalized tokens).
  AddedTokenMatcher(std::vector<AddedToken> tokens, std::vector<std::string> patterns);
  bool empty() const { return tokens_.empty(); }
  // Splits text into plain and token segments covering all of it. skip_special: special tokens
  // are not extracted (their text stays plain).
  void split(std::string_view text, bool skip_special, std::vector<TextSegment>& out) const;

 private:
  int longest_at(std::string_view text, size_t pos) const;  // index into tokens_, or -1

  std::vector<AddedToken> tokens_;
  std::vector<std::string> patterns_;
  std::array<std::vector<int>, 256> by_first_byte_;  // candidates, longest pattern first
};

}  // namespace nanovllm
