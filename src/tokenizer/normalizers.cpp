// The normalizers of Hugging Face tokenizers that real checkpoints use.
#include "tokenizer/normalizers.h"

#include <unicode/normalizer2.h>
#include <unicode/bytestream.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "nanovllm/error.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace nanovllm {
namespace {

using json = nlohmann::json;

class NfcNormalizer : public Normalizer {
 public:
  void normalize(std::string& text) const override { unicode::nfc_in_place(text); }
};

// NFD / NFKC / NFKD through ICU (no fast path: rarely used by LLM tokenizers).
class IcuNormalizer : public Normalizer {
 public:
  explicit IcuNormalizer(const std::string& type) {
    UErrorCode err = U_ZERO_ERROR;
    norm_ = type == "NFD" ? icu::Normalizer2::getNFDInstance(err)
            : type == "NFKC" ? icu::Normalizer2::getNFKCInstance(err)
                             : icu::Normalizer2::getNFKDInstance(err);
    if (U_FAILURE(err)) throw Error("ICU has no data for normalizer " + type);
  }
  void normalize(std::string& text) const override {
    UErrorCode err = U_ZERO_ERROR;
    std::string out;
    icu::StringByteSink<std::string> sink(&out);
    norm_->normalizeUTF8(0, icu::StringPiece(text.data(), static_cast<int32_t>(text.size())), sink, nullptr, err);
    NV_CHECK(U_SUCCESS(err), "ICU normalization failed");
    text.swap(out);
  }

 private:
  const icu::Normalizer2* norm_ = nullptr;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

// Replace {pattern: {String|Regex}, content}: every occurrence, left to right.
class ReplaceNormalizer : public Normalizer {
 public:
  explicit ReplaceNormalizer(const json& spec) : content_(spec.at("content").get<std::string>()) {
    const json& p = spec.at("pattern");
    if (p.contains("String")) literal_ = p.at("String").get<std::string>();
    else regex_ = std::make_unique<Regex>(p.at("Regex").get<std::string>());
  }
  void normalize(std::string& text) const override {
    std::vector<std::pair<size_t, size_t>> hits;
    if (regex_) {
      regex_->find_all(text, hits);
    } else if (!literal_.empty()) {
      for (size_t at = text.find(literal_); at != std::string::npos; at = text.find(literal_, at + literal_.size()))
        hits.emplace_back(at, at + literal_.size());
    }
    if (hits.empty()) return;
    std::string out;
    out.reserve(text.size() + hits.size() * content_.size());
    size_t last = 0;
    for (auto [b, e] : hits) {
      out.append(text, last, b - last);
      out += content_;
      last = e;
    }
    out.append(text, last, std::string::npos);
    text.swap(out);
  }

 private:
  std::string literal_, content_;
  std::unique_ptr<Regex> regex_;
};

// Strip {left, right}: Unicode whitespace at either end.
class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    size_t b = 0, e = text.size();
    while (left_ && b < e) {
      size_t i = b;
      if (!unicode::is_whitespace(unicode::next_code_point(text, i))) break;
      b = i;
    }
    while (right_ && e > b) {
      size_t s = e - 1;
      while (s > b && (static_cast<unsigned char>(text[s]) & 0xC0) == 0x80) --s;
      size_t i = s;
      if (!unicode::is_whitespace(unicode::next_code_point(text, i))) break;
      e = s;
    }
    text = text.substr(b, e - b);
  }

 private:
  bool left_, right_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  void normalize(std::string& text) const override {
    for (const auto& s : steps_) s->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& spec) {
  if (spec.is_null()) return nullptr;
  const std::string type = spec.at("type").get<std::string>();
  if (type == "NFC") return std::make_unique<NfcNormalizer>();
  if (type == "NFD" || type == "NFKC" || type == "NFKD") return std::make_unique<IcuNormalizer>(type);
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(spec.at("prepend").get<std::string>());
  if (type == "Replace") return std::make_unique<ReplaceNormalizer>(spec);
  if (type == "Strip") return std::make_unique<StripNormalizer>(spec.value("left", true), spec.value("right", true));
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const json& s : spec.at("normalizers"))
      if (auto n = make_normalizer(s)) steps.push_back(std::move(n));
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  throw Error("unsupported normalizer type '" + type + "'");
}

}  // namespace nanovllm
