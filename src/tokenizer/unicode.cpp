// UTF-8 decoding/encoding, lossy repair, NFC and character classes for the tokenizer.
#include "tokenizer/unicode.h"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/bytestream.h>

#include "nanovllm/error.h"

namespace nanovllm::unicode {

char32_t next_code_point(std::string_view s, size_t& i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  const int n = utf8_len(c);
  if (n == 1 || i + n > s.size()) {
    ++i;
    return c;
  }
  char32_t cp = n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < n; ++k) cp = (cp << 6) | (b(i + k) & 0x3F);
  i += n;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// How many bytes of a well-formed sequence start at s[i]; 0 if none. *prefix gets the length
// of the longest valid prefix (the "maximal subpart" that one U+FFFD replaces).
static int well_formed_len(std::string_view s, size_t i, int* prefix) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  *prefix = 1;
  if (c < 0x80) return 1;
  int n;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c == 0xE0) n = 3, lo = 0xA0;
  else if (c == 0xED) n = 3, hi = 0x9F;
  else if (c >= 0xE1 && c <= 0xEF) n = 3;
  else if (c == 0xF0) n = 4, lo = 0x90;
  else if (c == 0xF4) n = 4, hi = 0x8F;
  else if (c >= 0xF1 && c <= 0xF3) n = 4;
  else return 0;
  for (int k = 1; k < n; ++k) {
    if (i + k >= s.size()) return 0;
    const unsigned char d = static_cast<unsigned char>(s[i + k]);
    if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xBF)) return 0;
    *prefix = k + 1;
  }
  return n;
}

void append_lossy(std::string& out, std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t run = i;  // copy runs of ASCII / valid sequences in one go
    int prefix = 0, n = 0;
    while (run < s.size() && (n = well_formed_len(s, run, &prefix)) > 0) run += n;
    out.append(s.data() + i, run - i);
    if (run >= s.size()) break;
    out += "\xEF\xBF\xBD";
    i = run + prefix;
  }
}

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  int prefix = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const int n = well_formed_len(s, i, &prefix);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

void nfc_in_place(std::string& s) {
  bool may_change = false;
  for (char ch : s) may_change |= static_cast<unsigned char>(ch) >= 0xCC;  // lead byte of >= U+0300
  if (!may_change) return;
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(err);
  NV_CHECK(U_SUCCESS(err), "ICU NFC data is not available");
  std::string out;
  out.reserve(s.size());
  icu::StringByteSink<std::string> sink(&out);
  nfc->normalizeUTF8(0, icu::StringPiece(s.data(), static_cast<int32_t>(s.size())), sink, nullptr, err);
  NV_CHECK(U_SUCCESS(err), "ICU NFC normalization failed");
  s.swap(out);
}

bool is_whitespace(char32_t cp) { return u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_WHITE_SPACE); }

bool is_numeric(char32_t cp) {
  const int8_t t = u_charType(static_cast<UChar32>(cp));
  return t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
}

bool is_alphanumeric(char32_t cp) {
  return u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_ALPHABETIC) || is_numeric(cp);
}

}  // namespace nanovllm::unicode
