// Added-token extraction with the exact whitespace rules of tokenizers' AddedVocabulary.
#include "tokenizer/added_tokens.h"

#include <unicode/uchar.h>

#include <algorithm>

#include "tokenizer/unicode.h"

namespace nanovllm {
namespace {

// Rust regex's \w (Unicode): alphabetic, marks, decimal digits, connector punctuation, joiners.
bool is_word_char(char32_t cp) {
  if (unicode::is_alphanumeric(cp) && u_charType(static_cast<UChar32>(cp)) != U_LETTER_NUMBER &&
      u_charType(static_cast<UChar32>(cp)) != U_OTHER_NUMBER)
    return true;
  const int8_t t = u_charType(static_cast<UChar32>(cp));
  return t == U_NON_SPACING_MARK || t == U_ENCLOSING_MARK || t == U_COMBINING_SPACING_MARK ||
         t == U_CONNECTOR_PUNCTUATION || cp == 0x200C || cp == 0x200D;
}

char32_t last_char(std::string_view s, size_t* start) {
  size_t b = s.size() - 1;
  while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
  *start = b;
  size_t i = b;
  return unicode::next_code_point(s, i);
}

// Start of the whitespace run that ends s (s.size() if none).
size_t trailing_space_start(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t b;
    if (!unicode::is_whitespace(last_char(s.substr(0, end), &b))) break;
    end = b;
  }
  return end;
}

size_t leading_space_len(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    if (!unicode::is_whitespace(unicode::next_code_point(s, j))) break;
    i = j;
  }
  return i;
}

bool ends_with_word(std::string_view s) {
  size_t b;
  return !s.empty() && is_word_char(last_char(s, &b));
}

bool starts_with_word(std::string_view s) {
  size_t i = 0;
  return !s.empty() && is_word_char(unicode::next_code_point(s, i));
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens, std::vector<std::string> patterns)
    : tokens_(std::move(tokens)), patterns_(std::move(patterns)) {
  for (size_t i = 0; i < tokens_.size(); ++i)
    if (!patterns_[i].empty()) by_first_byte_[static_cast<unsigned char>(patterns_[i][0])].push_back(static_cast<int>(i));
  for (auto& bucket : by_first_byte_)
    std::stable_sort(bucket.begin(), bucket.end(), [&](int a, int b) { return patterns_[a].size() > patterns_[b].size(); });
}

int AddedTokenMatcher::longest_at(std::string_view text, size_t pos) const {
  for (int i : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
    const std::string& p = patterns_[i];
    if (text.size() - pos >= p.size() && text.compare(pos, p.size(), p) == 0) return i;
  }
  return -1;
}

void AddedTokenMatcher::split(std::string_view text, bool skip_special, std::vector<TextSegment>& out) const {
  size_t start_offset = 0;  // end of the last extracted token
  for (size_t pos = 0; pos < text.size();) {
    const int k = longest_at(text, pos);
    if (k < 0) {
      ++pos;
      continue;
    }
    const AddedToken& tok = tokens_[k];
    size_t start = pos, stop = pos + patterns_[k].size();
    pos = stop;  // matches never overlap, even when this one is then ignored
    if (skip_special && tok.special) continue;
    if (tok.single_word && ((start > 0 && ends_with_word(text.substr(0, start))) ||
                            (stop < text.size() && starts_with_word(text.substr(stop)))))
      continue;
    if (tok.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), start_offset);
    if (tok.rstrip) stop += leading_space_len(text.substr(stop));
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, tok.id});
    start_offset = stop;
    pos = stop;
  }
  if (start_offset < text.size()) out.push_back({start_offset, text.size(), -1});
}

}  // namespace nanovllm
