// A compiled PCRE2 pattern (UTF + Unicode properties, JIT when available) used by the
// pre-tokenizers and normalizers of tokenizer.json.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nanovllm {

class Regex {
 public:
  // Throws nanovllm::Error naming the pattern when PCRE2 rejects it.
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Appends the [begin, end) byte ranges of all non-overlapping matches in text, left to right.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8
  bool jit_ = false;
  std::string pattern_;
};

}  // namespace nanovllm
