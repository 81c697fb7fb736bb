// A Hugging Face tokenizer.json tokenizer (BPE: byte-level and SentencePiece-style) that
// matches the `tokenizers` library id for id; implements the engine's Tokenizer interface.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "engine/tokenizer.h"

namespace nanovllm {

class BpeModel;
class Normalizer;
class PreTokenizer;
class Decoder;
class AddedTokenMatcher;

struct AddedToken {
  std::string content;
  int id = -1;
  bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = false;
  // What decode() sees for this id: a normalized token is stored as its normalized text
  // ("▁<unk>" under a Prepend normalizer), as Hugging Face does.
  std::string surface;
};

class HfTokenizer : public Tokenizer {
 public:
  // dir/tokenizer.json plus dir/tokenizer_config.json (optional: bos/eos token strings); or,
  // when dir is a GGUF file, the tokenizer its tokenizer.ggml.* metadata describes.
  // Throws nanovllm::Error naming the file when one is missing, malformed or unsupported.
  static std::unique_ptr<HfTokenizer> from_dir(const std::string& dir);
  // A tokenizer.json alone; bos/eos then come from its post-processor, if it adds any.
  static std::unique_ptr<HfTokenizer> from_file(const std::string& tokenizer_json_path);
  // A tokenizer.json built in memory (from a GGUF file's vocabulary); source names it in
  // errors; bos/eos as its metadata gives them (bos also from the post-processor).
  static std::unique_ptr<HfTokenizer> from_spec(const nlohmann::json& spec, const std::string& source,
                                                std::optional<int> bos, std::optional<int> eos);
  ~HfTokenizer() override;

  std::vector<int> encode(std::string_view text, bool add_special_tokens = true) const override;
  // split_special_tokens: special-token text such as "<|im_start|>" is encoded as plain text
  // (Hugging Face's split_special_tokens / encode_special_tokens).
  std::vector<int> encode(std::string_view text, bool add_special_tokens, bool split_special_tokens) const;
  std::string decode(std::span<const int> ids, bool skip_special_tokens = true) const override;

  int vocab_size() const override { return vocab_size_; }
  std::optional<int> bos_token_id() const override { return bos_id_; }
  std::optional<int> eos_token_id() const override { return eos_id_; }

  std::optional<int> token_to_id(std::string_view token) const;
  std::string id_to_token(int id) const;  // "" for an unknown id
  // The bytes a token stands for in the output, as a grammar engine must see them (a partial
  // UTF-8 character stays partial): byte-level characters mapped back to bytes, or "▁" as a
  // space and "<0xNN>" as its byte; an added token is its content. "" for an unknown id.
  std::string token_bytes(int id) const;
  bool is_special(int id) const;
  const std::vector<AddedToken>& added_tokens() const { return added_; }

 private:
  HfTokenizer();
  void load(const std::string& tokenizer_json_path);
  void load_spec(const nlohmann::json& spec, const std::string& source);
  void load_config(const std::string& config_path);
  void load_post_processor(const void* spec);
  void encode_segment(std::string_view text, bool at_origin, bool split_special, std::vector<int>& ids) const;
  const AddedToken* added_token(int id) const;
  void encode_words(std::string_view text, bool at_origin, std::vector<int>& ids) const;

  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<Decoder> decoder_;
  std::vector<AddedToken> added_;
  std::unordered_map<int, size_t> added_by_id_;  // id -> index in added_
  std::unique_ptr<AddedTokenMatcher> raw_matcher_, normalized_matcher_;
  std::vector<int> prefix_ids_, suffix_ids_;  // what the post-processor wraps around one sequence
  std::optional<int> bos_id_, eos_id_;
  int vocab_size_ = 0;
};

}  // namespace nanovllm
