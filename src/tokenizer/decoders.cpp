// The decoders of Hugging Face tokenizers, reproducing their exact treatment of spaces and
// invalid bytes (ByteLevel: one lossy UTF-8 pass over all bytes; ByteFallback: one U+FFFD per
// byte of an invalid run).
#include "tokenizer/decoders.h"

#include <nlohmann/json.hpp>

#include "nanovllm/error.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/unicode.h"

namespace nanovllm {
namespace {

using json = nlohmann::json;

// Characters -> bytes through GPT-2's table; a token with any other character is kept as its
// own UTF-8 bytes (an added token such as "<|im_start|>" maps to itself either way).
class ByteLevelDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes, tok_bytes;
    for (const std::string& t : tokens) {
      tok_bytes.clear();
      bool all_mapped = true;
      for (size_t i = 0; i < t.size() && all_mapped;) {
        const int b = char_to_byte(unicode::next_code_point(t, i));
        if (b < 0) all_mapped = false;
        else tok_bytes += static_cast<char>(b);
      }
      bytes += all_mapped ? tok_bytes : t;
    }
    std::string text;
    unicode::append_lossy(text, bytes);
    tokens.assign(1, std::move(text));
  }
};

class MetaspaceDecoder : public Decoder {
 public:
  explicit MetaspaceDecoder(const json& spec) {
    std::string rep = spec.value("replacement", std::string("\u2581"));
    size_t i = 0;
    replacement_ = rep.empty() ? U'\u2581' : unicode::next_code_point(rep, i);
    const std::string scheme = spec.value("prepend_scheme", spec.value("add_prefix_space", true) ? "always" : "never");
    strip_first_ = scheme != "never";
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t t = 0; t < tokens.size(); ++t) {
      std::string out;
      for (size_t i = 0; i < tokens[t].size();) {
        const char32_t c = unicode::next_code_point(tokens[t], i);
        if (c != replacement_) unicode::append_utf8(out, c);
        else if (!(t == 0 && strip_first_)) out += ' ';
      }
      tokens[t].swap(out);
    }
  }

 private:
  char32_t replacement_;
  bool strip_first_;
};

class ByteFallbackDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (unicode::is_valid_utf8(pending)) out.push_back(pending);
      else out.insert(out.end(), pending.size(), "\xEF\xBF\xBD");
      pending.clear();
    };
    for (std::string& t : tokens) {
      int byte = -1;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') byte = parse_hex(t[3], t[4]);
      if (byte >= 0) {
        pending += static_cast<char>(byte);
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    tokens.swap(out);
  }

 private:
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  static int parse_hex(char a, char b) { return hex(a) < 0 || hex(b) < 0 ? -1 : hex(a) * 16 + hex(b); }
};

class FuseDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

// Strip {content, start, stop}: up to start leading / stop trailing copies of one character, per token.
class StripDecoder : public Decoder {
 public:
  explicit StripDecoder(const json& spec) : start_(spec.value("start", 0)), stop_(spec.value("stop", 0)) {
    std::string c = spec.at("content").get<std::string>();
    size_t i = 0;
    content_ = c.empty() ? U' ' : unicode::next_code_point(c, i);
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      std::u32string chars;
      for (size_t i = 0; i < t.size();) chars += unicode::next_code_point(t, i);
      size_t b = 0, e = chars.size();
      while (b < static_cast<size_t>(start_) && b < e && chars[b] == content_) ++b;
      for (int k = 0; k < stop_ && e > b && chars[e - 1] == content_; ++k) --e;
      std::string out;
      for (size_t i = b; i < e; ++i) unicode::append_utf8(out, chars[i]);
      t.swap(out);
    }
  }

 private:
  char32_t content_;
  int start_, stop_;
};

class ReplaceDecoder : public Decoder {
 public:
  explicit ReplaceDecoder(const json& spec) : content_(spec.at("content").get<std::string>()) {
    const json& p = spec.at("pattern");
    if (!p.contains("String")) throw Error("Replace decoder: only String patterns are supported");
    pattern_ = p.at("String").get<std::string>();
  }
  void decode_chain(std::vector<std::string>& tokens) const override {
    if (pattern_.empty()) return;
    for (std::string& t : tokens) {
      if (t.find(pattern_) == std::string::npos) continue;
      std::string out;
      size_t last = 0;
      for (size_t at = t.find(pattern_); at != std::string::npos; at = t.find(pattern_, last)) {
        out.append(t, last, at - last);
        out += content_;
        last = at + pattern_.size();
      }
      out.append(t, last, std::string::npos);
      t.swap(out);
    }
  }

 private:
  std::string pattern_, content_;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& s : steps_) s->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json& spec) {
  if (spec.is_null()) return nullptr;
  const std::string type = spec.at("type").get<std::string>();
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") return std::make_unique<MetaspaceDecoder>(spec);
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") return std::make_unique<StripDecoder>(spec);
  if (type == "Replace") return std::make_unique<ReplaceDecoder>(spec);
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> steps;
    for (const json& s : spec.at("decoders"))
      if (auto d = make_decoder(s)) steps.push_back(std::move(d));
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  throw Error("unsupported decoder type '" + type + "'");
}

}  // namespace nanovllm
