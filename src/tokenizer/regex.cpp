// PCRE2 wrapper: compile once with UTF|UCP (so \s, \p{L} and (?i) are Unicode-aware), match
// with JIT, one reusable match block per thread.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include "nanovllm/error.h"
#include "tokenizer/unicode.h"

namespace nanovllm {

// Hugging Face runs these patterns with Oniguruma, whose Unicode \s is exactly the White_Space
// property. PCRE2's \s (with UCP) differs (it has U+180E, lacks U+0085), so spell it out.
static constexpr const char* kWhiteSpace =
    "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

static std::string with_onig_whitespace(const std::string& p) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\' && i + 1 < p.size()) {
      const char c = p[++i];
      if (c == 's') out += in_class ? std::string(kWhiteSpace) : "[" + std::string(kWhiteSpace) + "]";
      else if (c == 'S' && !in_class) out += "[^" + std::string(kWhiteSpace) + "]";
      else out += '\\', out += c;
      continue;
    }
    if (p[i] == '[' && !in_class) in_class = true;
    else if (p[i] == ']' && in_class) in_class = false;
    out += p[i];
  }
  return out;
}

Regex::Regex(const std::string& source) : pattern_(source) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  const std::string pattern = with_onig_whitespace(source);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    throw Error("tokenizer regex '" + source + "' at offset " + std::to_string(offset) + ": " +
                reinterpret_cast<const char*>(msg));
  }
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  code_ = code;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

// One match block per thread, big enough for any of our patterns' capture groups.
static pcre2_match_data* thread_match_data() {
  struct Holder {
    pcre2_match_data* md = pcre2_match_data_create(32, nullptr);
    ~Holder() { pcre2_match_data_free(md); }
  };
  thread_local Holder holder;
  return holder.md;
}

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = thread_match_data();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos <= text.size()) {
    // The text was validated as UTF-8 on entry to encode(), so PCRE2 need not check it again.
    const int rc = jit_ ? pcre2_jit_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr)
                        : pcre2_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) return;
    if (rc < 0) throw Error("tokenizer regex '" + pattern_ + "' failed with PCRE2 code " + std::to_string(rc));
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    if (ov[1] == ov[0]) {  // an empty match: skip one character so the scan moves on
      if (ov[0] >= text.size()) return;
      pos = ov[0] + unicode::utf8_len(static_cast<unsigned char>(text[ov[0]]));
      continue;
    }
    out.emplace_back(ov[0], ov[1]);
    pos = ov[1];
  }
}

}  // namespace nanovllm
