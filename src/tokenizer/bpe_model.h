// The BPE model of tokenizer.json: a word -> token ids by merge rank, for byte-level (GPT-2
// style) and SentencePiece-style (byte_fallback, unk) vocabularies, with a per-word cache.
#pragma once

#include <array>
#include <map>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace nanovllm {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int, StringHash, std::equal_to<>>;

// Token ids of tokenizer.json (vocabulary, added tokens, post-processor) must be below this:
// far above any real vocabulary (Gemma's 262k is the largest we know), far below where
// `id + 1` or a table of `id + 1` entries would overflow an int or exhaust memory.
constexpr int kMaxTokenId = 1 << 24;

// A token id field: an integer in [0, kMaxTokenId); `what` names it in the Error otherwise.
int parse_token_id(const nlohmann::json& v, const std::string& what);

class BpeModel {
 public:
  // spec: the "model" object. byte_level: words arrive as raw bytes and are mapped through
  // GPT-2's byte-to-character table. Throws nanovllm::Error for a malformed or unsupported model.
  BpeModel(const nlohmann::json& spec, bool byte_level);

  // Appends the ids of one pre-tokenized word. Thread-safe.
  void encode_word(std::string_view word, std::vector<int>& out) const;

  std::optional<int> token_to_id(std::string_view token) const;
  // The vocabulary string of id ("" when the model has no such id).
  const std::string& id_to_token(int id) const;
  int size() const { return static_cast<int>(id_to_token_.size()); }
  bool byte_level() const { return byte_level_; }

 private:
  struct Merge {
    int rank, new_id;
  };
  void load_vocab(const nlohmann::json& vocab);
  void load_merges(const nlohmann::json& merges);
  void initial_symbols(std::string_view word, std::vector<int>& ids, std::vector<int>& lens) const;
  void initial_chars(std::string_view word, std::vector<int>& ids, std::vector<int>& lens) const;
  void merge_word(std::string_view word, std::vector<int>& out) const;
  const Merge* find_merge(int a, int b) const;

  TokenMap vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<uint64_t, Merge> merges_;
  bool byte_level_;
  bool ignore_merges_ = false, byte_fallback_ = false, fuse_unk_ = false;
  std::optional<int> unk_id_;
  std::string subword_prefix_, word_suffix_;
  std::array<int, 256> byte_ids_{};           // byte-level: id of each byte's character
  std::array<int, 256> fallback_ids_{};       // byte_fallback: id of "<0xXX>", -1 if absent

  static constexpr size_t kCacheCapacity = 20000;
  static constexpr size_t kMaxCachedWord = 256;
  mutable std::mutex cache_mu_;
  mutable std::unordered_map<std::string, std::vector<int>, StringHash, std::equal_to<>> cache_;
};

// GPT-2's reversible byte <-> printable character table (bytes_to_unicode).
char32_t byte_to_char(uint8_t b);
// -1 when cp is not one of the 256 characters.
int char_to_byte(char32_t cp);

// The merges of a SentencePiece vocabulary (pieces by id), as transformers' LlamaConverter
// derives them: every split of a piece into two vocabulary pieces, ranked by the piece's id, or,
// given the pieces' scores (a GGUF's tokenizer.ggml.scores), by score, highest first.
std::vector<std::string> merges_from_vocab(const std::vector<std::string>& pieces,
                                           const std::map<std::string, int>& vocab,
                                           const std::vector<float>* scores = nullptr);

}  // namespace nanovllm
