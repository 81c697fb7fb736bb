// IncrementalDetokenizer: vLLM's windowed decode, using only the abstract Tokenizer.
#include "engine/detokenizer.h"

#include <algorithm>

namespace nanovllm {
namespace {

constexpr size_t kPromptContext = 5;   // prompt ids kept as left context (vLLM's value)
constexpr size_t kExtraContext = 32;   // more, when those 5 start inside a character
constexpr size_t kCompactAfter = 256;  // drop ids before the window once this many pile up

bool starts_with_replacement(const std::string& s) { return s.compare(0, 3, "\xEF\xBF\xBD") == 0; }

bool ends_with_replacement(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}

}  // namespace

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer, std::span<const int> prompt_ids,
                                               bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {
  const size_t keep = std::min(prompt_ids.size(), kPromptContext + kExtraContext);
  ids_.assign(prompt_ids.end() - keep, prompt_ids.end());
  read_offset_ = ids_.size();
  prefix_offset_ = read_offset_ - std::min(read_offset_, kPromptContext);
  // A window that starts inside a multi-byte character (byte-level or <0xXX> tokens) decodes
  // its first bytes as U+FFFD, and with ByteFallback a cut byte run can spoil the whole run:
  // widen the context until it starts on a character boundary.
  const std::span<const int> all(ids_);
  while (prefix_offset_ > 0 &&
         starts_with_replacement(tokenizer_.decode(all.subspan(prefix_offset_, read_offset_ - prefix_offset_), skip_special_)))
    --prefix_offset_;
}

std::string IncrementalDetokenizer::push(int id) {
  ids_.push_back(id);
  return emit_if_complete(false);
}

std::string IncrementalDetokenizer::flush() { return emit_if_complete(true); }

// Decodes [prefix, read) and [prefix, end): the difference is the new text. It is held back
// while it ends in U+FFFD, which is what an incomplete multi-byte character decodes to.
std::string IncrementalDetokenizer::emit_if_complete(bool final) {
  if (read_offset_ >= ids_.size()) return "";
  const std::span<const int> all(ids_);
  const std::string prefix_text = tokenizer_.decode(all.subspan(prefix_offset_, read_offset_ - prefix_offset_), skip_special_);
  const std::string new_text = tokenizer_.decode(all.subspan(prefix_offset_), skip_special_);
  if (new_text.size() <= prefix_text.size() || (!final && ends_with_replacement(new_text))) return "";
  // The window's first ids may decode differently alone (a character cut in half) but do so
  // identically in both decodes, so prefix_text is what was already emitted.
  std::string out = new_text.substr(prefix_text.size());
  prefix_offset_ = read_offset_;
  read_offset_ = ids_.size();
  if (prefix_offset_ >= kCompactAfter) {
    ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(prefix_offset_));
    read_offset_ -= prefix_offset_;
    prefix_offset_ = 0;
  }
  return out;
}

}  // namespace nanovllm
