// UTF-8 helpers and the few Unicode properties the tokenizer needs (via ICU), shared by its stages.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace nanovllm::unicode {

// Length of the UTF-8 sequence a lead byte announces (1 for an invalid lead byte).
inline int utf8_len(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xF0) return 4;
  if (lead >= 0xE0) return 3;
  if (lead >= 0xC0) return 2;
  return 1;
}

// Decodes the code point at s[i] (s must be valid UTF-8) and advances i past it.
char32_t next_code_point(std::string_view s, size_t& i);
void append_utf8(std::string& out, char32_t cp);

// Bytes -> valid UTF-8 where each maximal ill-formed subsequence becomes one U+FFFD: the rule of
// Rust's String::from_utf8_lossy and Python's errors="replace", which Hugging Face decodes with.
void append_lossy(std::string& out, std::string_view bytes);
bool is_valid_utf8(std::string_view bytes);

// NFC (ICU). Text below U+0300 is always NFC, so the common case costs one scan.
void nfc_in_place(std::string& s);

// Rust's char::is_whitespace / is_alphanumeric / is_numeric, which Hugging Face uses.
bool is_whitespace(char32_t cp);
bool is_alphanumeric(char32_t cp);
bool is_numeric(char32_t cp);

}  // namespace nanovllm::unicode
