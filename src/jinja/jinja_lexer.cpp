// Splits Jinja template source into text and tag tokens, applying whitespace control as Jinja does.
#include "jinja/jinja_lexer.h"

#include <cctype>
#include <cstring>

#include "nanovllm/error.h"
#include "jinja/jinja_text.h"

namespace nanovllm::jinja {

std::string location(int line, int col) {
  return "chat template line " + std::to_string(line) + " col " + std::to_string(col) + ": ";
}

namespace {

// Jinja 3 reads \r\n, \r and \n as line breaks and writes them all as \n; by default it also
// drops one trailing newline of the template.
std::string normalize_newlines(std::string_view src, bool keep_trailing_newline) {
  std::string out;
  out.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    if (src[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < src.size() && src[i + 1] == '\n') ++i;
    } else {
      out.push_back(src[i]);
    }
  }
  if (!keep_trailing_newline && !out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

// Python's str.rstrip() / the regex \s on the ASCII and Unicode spaces.
std::string rstrip_ws(std::string_view s) { return py_strip(s, nullptr, false, true); }

bool all_ws(std::string_view s) {
  for (char32_t c : utf8_decode(s))
    if (!py_isspace(c)) return false;
  return true;
}

// Length of the run of whitespace starting at pos (Python's \s*).
size_t ws_run(std::string_view s, size_t pos) {
  size_t i = pos;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (!py_isspace(c)) break;
      ++i;
      continue;
    }
    size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    std::u32string cp = utf8_decode(s.substr(i, n));
    if (cp.size() != 1 || !py_isspace(cp[0])) break;
    i += n;
  }
  return i - pos;
}

const char* const kOperators[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[",
                                  "]",  "(",  ")",  "{",  "}",  ">",  "<",  "=", ".", ":", "|", ",", ";"};

class Lexer {
 public:
  Lexer(std::string src, const LexOptions& o) : src_(std::move(src)), opt_(o) {}

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      size_t hit = next_tag(pos_);
      if (hit == std::string::npos) {
        emit_text(src_.substr(pos_), pos_);
        pos_ = src_.size();
        break;
      }
      lex_tag(hit);
    }
    out_.push_back(make(Token::Type::End, "", src_.size()));
    return std::move(out_);
  }

 private:
  std::string src_;
  LexOptions opt_;
  size_t pos_ = 0;
  bool line_starting_ = true;  // the last consumed character was a newline (or nothing was)
  std::vector<Token> out_;
  size_t counted_ = 0, line_start_ = 0;
  int line_ = 1;

  [[noreturn]] void fail(size_t at, const std::string& msg) {
    Token t = make(Token::Type::End, "", at);
    throw Error(location(t.line, t.col) + msg);
  }

  // Positions only move forward, so the line count is kept incrementally.
  Token make(Token::Type type, std::string text, size_t at) {
    if (at < counted_) counted_ = 0, line_ = 1, line_start_ = 0;
    for (; counted_ < at && counted_ < src_.size(); ++counted_) {
      if (src_[counted_] == '\n') {
        ++line_;
        line_start_ = counted_ + 1;
      }
    }
    return Token{type, std::move(text), line_, static_cast<int>(at - line_start_) + 1};
  }

  size_t next_tag(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && std::strchr("{%#", src_[i + 1])) return i;
    }
    return std::string::npos;
  }

  void emit_text(std::string text, size_t at) {
    if (!text.empty()) out_.push_back(make(Token::Type::Text, std::move(text), at));
  }

  // Whitespace control before a tag: "-" strips all whitespace, lstrip_blocks strips the
  // indentation of a block or comment tag that is alone at the start of its line.
  std::string strip_before(std::string text, char sign, bool is_variable) const {
    if (sign == '-') return rstrip_ws(text);
    if (sign == '+' || !opt_.lstrip_blocks || is_variable) return text;
    size_t l_pos = text.rfind('\n');
    l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
    if ((l_pos > 0 || line_starting_) && l_pos < text.size() && all_ws(std::string_view(text).substr(l_pos)))
      text.resize(l_pos);
    return text;
  }

  // Consumes a tag end at pos_ ("-%}" + whitespace, "+%}", or "%}" + one newline with
  // trim_blocks); returns false if there is none there.
  bool take_end(const char* end, bool allow_plus, bool trim) {
    size_t n = std::strlen(end);
    size_t p = pos_;
    char sign = 0;
    if (p < src_.size() && (src_[p] == '-' || (allow_plus && src_[p] == '+'))) sign = src_[p++];
    if (src_.compare(p, n, end) != 0) return false;
    p += n;
    if (sign == '-') {
      p += ws_run(src_, p);
    } else if (sign == 0 && trim && opt_.trim_blocks && p < src_.size() && src_[p] == '\n') {
      ++p;
    }
    line_starting_ = p > 0 && src_[p - 1] == '\n';
    pos_ = p;
    return true;
  }

  void lex_tag(size_t hit) {
    char kind = src_[hit + 1];
    size_t after = hit + 2;
    char sign = (after < src_.size() && (src_[after] == '-' || src_[after] == '+')) ? src_[after] : 0;
    if (kind == '%' && try_raw(hit, sign)) return;
    emit_text(strip_before(src_.substr(pos_, hit - pos_), sign, kind == '{'), pos_);
    pos_ = after + (sign ? 1 : 0);
    if (kind == '#') return lex_comment(hit);
    bool block = kind == '%';
    out_.push_back(make(block ? Token::Type::BlockBegin : Token::Type::VarBegin, "", hit));
    lex_expression_tokens(block, hit);
  }

  void lex_comment(size_t begin) {
    size_t start = pos_;
    size_t close = src_.find("#}", pos_);
    if (close == std::string::npos) fail(begin, "missing end of comment tag");
    pos_ = close;
    if (close > start && (src_[close - 1] == '-' || src_[close - 1] == '+')) pos_ = close - 1;
    if (!take_end("#}", true, true)) fail(begin, "missing end of comment tag");
  }

  // {% raw %}...{% endraw %}: the body is text, tags in it are not interpreted.
  bool try_raw(size_t hit, char sign) {
    size_t p = hit + 2 + (sign ? 1 : 0);
    p += ws_run(src_, p);
    if (src_.compare(p, 3, "raw") != 0) return false;
    p += 3;
    size_t q = p + ws_run(src_, p);
    bool minus = src_.compare(q, 3, "-%}") == 0;
    if (!minus && src_.compare(q, 2, "%}") != 0) return false;
    emit_text(strip_before(src_.substr(pos_, hit - pos_), sign, false), pos_);
    pos_ = q + (minus ? 3 : 2);
    if (minus) pos_ += ws_run(src_, pos_);
    for (size_t t = next_tag(pos_); t != std::string::npos; t = next_tag(t + 1)) {
      if (src_[t + 1] != '%' || t + 2 >= src_.size()) continue;
      char s2 = (src_[t + 2] == '-' || src_[t + 2] == '+') ? src_[t + 2] : 0;
      size_t r = t + 2 + (s2 ? 1 : 0);
      r += ws_run(src_, r);
      if (src_.compare(r, 6, "endraw") != 0) continue;
      std::string body = src_.substr(pos_, t - pos_);
      line_starting_ = false;
      emit_text(strip_before(body, s2, false), pos_);
      pos_ = r + 6 + ws_run(src_, r + 6);
      if (!take_end("%}", true, true)) fail(t, "malformed endraw tag");
      return true;
    }
    fail(hit, "missing end of raw directive");
  }

  void lex_expression_tokens(bool block, size_t begin) {
    std::vector<char> balance;
    while (true) {
      pos_ += ws_run(src_, pos_);
      if (pos_ >= src_.size()) fail(begin, block ? "unexpected end of template, missing '%}'" : "missing '}}'");
      if (balance.empty()) {
        size_t at = pos_;
        if (block ? take_end("%}", true, true) : take_end("}}", false, false)) {
          out_.push_back(make(block ? Token::Type::BlockEnd : Token::Type::VarEnd, "", at));
          return;
        }
      }
      lex_one(balance);
    }
  }

  void lex_one(std::vector<char>& balance) {
    char c = src_[pos_];
    if (std::isdigit(static_cast<unsigned char>(c))) return lex_number();
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t b = pos_;
      while (pos_ < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_')) ++pos_;
      out_.push_back(make(Token::Type::Name, src_.substr(b, pos_ - b), b));
      return;
    }
    if (c == '\'' || c == '"') return lex_string();
    for (const char* op : kOperators) {
      size_t n = std::strlen(op);
      if (src_.compare(pos_, n, op) != 0) continue;
      track_balance(balance, op[0], n);
      out_.push_back(make(Token::Type::Op, op, pos_));
      pos_ += n;
      return;
    }
    fail(pos_, std::string("unexpected char '") + c + "'");
  }

  void track_balance(std::vector<char>& balance, char c, size_t n) {
    if (n != 1) return;
    if (c == '(') balance.push_back(')');
    if (c == '[') balance.push_back(']');
    if (c == '{') balance.push_back('}');
    if (c == ')' || c == ']' || c == '}') {
      if (balance.empty() || balance.back() != c) fail(pos_, std::string("unexpected '") + c + "'");
      balance.pop_back();
    }
  }

  void lex_number() {
    size_t b = pos_;
    auto digits = [&] {
      while (pos_ < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_')) ++pos_;
    };
    digits();
    bool is_float = false;
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' && std::isdigit(static_cast<unsigned char>(src_[pos_ + 1]))) {
      ++pos_;
      digits();
      is_float = true;
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t p = pos_ + 1;
      if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) ++p;
      if (p < src_.size() && std::isdigit(static_cast<unsigned char>(src_[p]))) {
        pos_ = p;
        digits();
        is_float = true;
      }
    }
    std::string text = src_.substr(b, pos_ - b);
    std::erase(text, '_');
    out_.push_back(make(is_float ? Token::Type::Float : Token::Type::Int, text, b));
  }

  void lex_string() {
    size_t b = pos_;
    char quote = src_[pos_++];
    std::string value;
    while (true) {
      if (pos_ >= src_.size()) fail(b, "unterminated string literal");
      char c = src_[pos_++];
      if (c == quote) break;
      if (c != '\\') {
        value.push_back(c);
        continue;
      }
      if (pos_ >= src_.size()) fail(b, "unterminated string literal");
      decode_escape(value);
    }
    out_.push_back(make(Token::Type::String, std::move(value), b));
  }

  // Python's unicode-escape codec, as Jinja decodes string literals; unknown escapes stay as written.
  void decode_escape(std::string& value) {
    char e = src_[pos_++];
    switch (e) {
      case 'n': value.push_back('\n'); return;
      case 't': value.push_back('\t'); return;
      case 'r': value.push_back('\r'); return;
      case '\\': value.push_back('\\'); return;
      case '\'': value.push_back('\''); return;
      case '"': value.push_back('"'); return;
      case 'a': value.push_back('\a'); return;
      case 'b': value.push_back('\b'); return;
      case 'f': value.push_back('\f'); return;
      case 'v': value.push_back('\v'); return;
      case '\n': return;
      case 'x': return decode_hex(value, 2, e);
      case 'u': return decode_hex(value, 4, e);
      case 'U': return decode_hex(value, 8, e);
      default: break;
    }
    if (e >= '0' && e <= '7') {
      unsigned v = e - '0';
      for (int k = 0; k < 2 && pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '7'; ++k)
        v = v * 8 + (src_[pos_++] - '0');
      utf8_append(value, v);
      return;
    }
    value.push_back('\\');
    value.push_back(e);
  }

  void decode_hex(std::string& value, int n, char e) {
    if (pos_ + n > src_.size()) fail(pos_, std::string("truncated \\") + e + " escape");
    unsigned v = 0;
    for (int k = 0; k < n; ++k) {
      char h = src_[pos_ + k];
      if (!std::isxdigit(static_cast<unsigned char>(h))) fail(pos_, std::string("truncated \\") + e + " escape");
      v = v * 16 + (std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
    }
    pos_ += n;
    utf8_append(value, v);
  }
};

}  // namespace

std::vector<Token> lex(std::string_view source, const LexOptions& options) {
  return Lexer(normalize_newlines(source, options.keep_trailing_newline), options).run();
}

}  // namespace nanovllm::jinja
