// The pre-tokenizers of Hugging Face tokenizers, over string_views into the normalized text.
#include "tokenizer/pre_tokenizers.h"

#include <nlohmann/json.hpp>

#include "nanovllm/error.h"
#include "tokenizer/regex.h"
#include "tokenizer/unicode.h"

namespace nanovllm {
namespace {

using json = nlohmann::json;
using Ranges = std::vector<std::pair<size_t, size_t>>;

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

Behavior parse_behavior(const std::string& s) {
  if (s == "Removed") return Behavior::kRemoved;
  if (s == "Isolated") return Behavior::kIsolated;
  if (s == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (s == "MergedWithNext") return Behavior::kMergedWithNext;
  if (s == "Contiguous") return Behavior::kContiguous;
  throw Error("unsupported split behavior '" + s + "'");
}

struct Span {
  size_t begin, end;
  bool is_match;
};

// Matches plus the gaps between them, covering the whole piece (as NormalizedString::split).
std::vector<Span> cover(const Ranges& matches, size_t size, bool invert) {
  std::vector<Span> spans;
  size_t last = 0;
  for (auto [b, e] : matches) {
    if (last < b) spans.push_back({last, b, invert});
    spans.push_back({b, e, !invert});
    last = e;
  }
  if (last < size) spans.push_back({last, size, invert});
  return spans;
}

// Applies a split behavior to the covering spans, as tokenizers' NormalizedString::split does.
void emit_split(std::string_view piece, const Ranges& matches, Behavior behavior, bool invert,
                std::vector<std::string_view>& out) {
  if (matches.empty() && !invert) {
    if (!piece.empty()) out.push_back(piece);
    return;
  }
  std::vector<Span> spans = cover(matches, piece.size(), invert);
  std::vector<std::pair<size_t, size_t>> parts;
  bool prev_match = false;
  if (behavior == Behavior::kMergedWithNext) {
    for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
      if (it->is_match && !prev_match && !parts.empty()) parts.back().first = it->begin;
      else parts.emplace_back(it->begin, it->end);
      prev_match = it->is_match;
    }
    std::reverse(parts.begin(), parts.end());
  } else {
    for (const Span& s : spans) {
      if (behavior == Behavior::kRemoved && s.is_match) continue;
      const bool merge = (behavior == Behavior::kContiguous && s.is_match == prev_match) ||
                         (behavior == Behavior::kMergedWithPrevious && s.is_match && !prev_match);
      if (merge && !parts.empty()) parts.back().second = s.end;
      else parts.emplace_back(s.begin, s.end);
      prev_match = s.is_match;
    }
  }
  for (auto [b, e] : parts)
    if (b < e) out.push_back(piece.substr(b, e - b));
}

class SplitPreTokenizer : public PreTokenizer {
 public:
  explicit SplitPreTokenizer(const json& spec)
      : behavior_(parse_behavior(spec.at("behavior").get<std::string>())), invert_(spec.value("invert", false)) {
    const json& p = spec.at("pattern");
    if (p.contains("Regex")) regex_ = std::make_unique<Regex>(p.at("Regex").get<std::string>());
    else literal_ = p.at("String").get<std::string>();
  }
  void split(std::string_view piece, bool, std::vector<std::string_view>& out, std::deque<std::string>&) const override {
    thread_local Ranges matches;
    matches.clear();
    if (regex_) {
      regex_->find_all(piece, matches);
    } else if (!literal_.empty()) {
      for (size_t at = piece.find(literal_); at != std::string_view::npos; at = piece.find(literal_, at + literal_.size()))
        matches.emplace_back(at, at + literal_.size());
    }
    emit_split(piece, matches, behavior_, invert_, out);
  }

 private:
  Behavior behavior_;
  bool invert_;
  std::unique_ptr<Regex> regex_;
  std::string literal_;
};

// Splits on single characters that satisfy a predicate (each is its own match, as for a
// char-predicate pattern in tokenizers).
template <typename Pred>
void split_on_chars(std::string_view piece, Pred pred, Behavior behavior, std::vector<std::string_view>& out) {
  thread_local Ranges matches;
  matches.clear();
  for (size_t i = 0; i < piece.size();) {
    const size_t start = i;
    if (pred(unicode::next_code_point(piece, i))) matches.emplace_back(start, i);
  }
  emit_split(piece, matches, behavior, false, out);
}

class DigitsPreTokenizer : public PreTokenizer {
 public:
  explicit DigitsPreTokenizer(bool individual) : individual_(individual) {}
  void split(std::string_view piece, bool, std::vector<std::string_view>& out, std::deque<std::string>&) const override {
    split_on_chars(piece, unicode::is_numeric, individual_ ? Behavior::kIsolated : Behavior::kContiguous, out);
  }

 private:
  bool individual_;
};

class WhitespaceSplitPreTokenizer : public PreTokenizer {
 public:
  void split(std::string_view piece, bool, std::vector<std::string_view>& out, std::deque<std::string>&) const override {
    split_on_chars(piece, unicode::is_whitespace, Behavior::kRemoved, out);
  }
};

// GPT-2's split (when use_regex) and an optional leading space; the byte-to-character mapping
// itself happens in the BPE model, on raw bytes.
class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  explicit ByteLevelPreTokenizer(const json& spec)
      : add_prefix_space_(spec.value("add_prefix_space", false)), use_regex_(spec.value("use_regex", true)) {
    if (use_regex_)
      regex_ = std::make_unique<Regex>(
          R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)");
  }
  void split(std::string_view piece, bool, std::vector<std::string_view>& out,
             std::deque<std::string>& arena) const override {
    if (add_prefix_space_ && (piece.empty() || piece[0] != ' ')) {
      std::string& spaced = arena.emplace_back(1, ' ');
      spaced.append(piece);
      piece = spaced;
    }
    if (!use_regex_) {
      if (!piece.empty()) out.push_back(piece);
      return;
    }
    thread_local Ranges matches;
    matches.clear();
    regex_->find_all(piece, matches);
    emit_split(piece, matches, Behavior::kIsolated, false, out);
  }
  bool byte_level() const override { return true; }

 private:
  bool add_prefix_space_, use_regex_;
  std::unique_ptr<Regex> regex_;
};

// Spaces become the replacement character ("▁"), which is prepended per prepend_scheme; then
// each "▁" starts a new word.
class MetaspacePreTokenizer : public PreTokenizer {
 public:
  explicit MetaspacePreTokenizer(const json& spec) : split_(spec.value("split", true)) {
    unicode::append_utf8(replacement_, spec.contains("replacement")
                                           ? first_char(spec.at("replacement").get<std::string>())
                                           : U'\u2581');
    scheme_ = spec.value("prepend_scheme", spec.value("add_prefix_space", true) ? "always" : "never");
  }
  void split(std::string_view piece, bool at_origin, std::vector<std::string_view>& out,
             std::deque<std::string>& arena) const override {
    std::string& s = arena.emplace_back();
    const bool starts = piece.substr(0, replacement_.size()) == replacement_ || (!piece.empty() && piece[0] == ' ');
    if (!starts && (scheme_ == "always" || (scheme_ == "first" && at_origin))) s += replacement_;
    for (char c : piece) {
      if (c == ' ') s += replacement_;
      else s += c;
    }
    if (!split_) {
      if (!s.empty()) out.push_back(s);
      return;
    }
    thread_local Ranges matches;
    matches.clear();
    for (size_t at = s.find(replacement_); at != std::string::npos; at = s.find(replacement_, at + replacement_.size()))
      matches.emplace_back(at, at + replacement_.size());
    emit_split(s, matches, Behavior::kMergedWithNext, false, out);
  }

 private:
  static char32_t first_char(const std::string& s) {
    size_t i = 0;
    return s.empty() ? U'\u2581' : unicode::next_code_point(s, i);
  }
  std::string replacement_, scheme_;
  bool split_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void split(std::string_view piece, bool at_origin, std::vector<std::string_view>& out,
             std::deque<std::string>& arena) const override {
    std::vector<std::string_view> cur{piece}, next;
    for (const auto& step : steps_) {
      next.clear();
      for (size_t i = 0; i < cur.size(); ++i) step->split(cur[i], at_origin && i == 0, next, arena);
      cur.swap(next);
    }
    out.insert(out.end(), cur.begin(), cur.end());
  }
  bool byte_level() const override { return !steps_.empty() && steps_.back()->byte_level(); }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& spec) {
  if (spec.is_null()) return nullptr;
  const std::string type = spec.at("type").get<std::string>();
  if (type == "Split") return std::make_unique<SplitPreTokenizer>(spec);
  if (type == "ByteLevel") return std::make_unique<ByteLevelPreTokenizer>(spec);
  if (type == "Metaspace") return std::make_unique<MetaspacePreTokenizer>(spec);
  if (type == "Digits") return std::make_unique<DigitsPreTokenizer>(spec.value("individual_digits", false));
  if (type == "WhitespaceSplit") return std::make_unique<WhitespaceSplitPreTokenizer>();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const json& s : spec.at("pretokenizers")) {
      if (!steps.empty() && steps.back()->byte_level())
        throw Error("pre-tokenizer Sequence: ByteLevel must be the last stage");
      if (auto p = make_pre_tokenizer(s)) steps.push_back(std::move(p));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(steps));
  }
  throw Error("unsupported pre_tokenizer type '" + type + "'");
}

}  // namespace nanovllm
