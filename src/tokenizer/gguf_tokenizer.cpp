// tokenizer.ggml.* -> the tokenizer.json of the model family it came from, so that the one
// tokenizer implementation (checked id for id against Hugging Face's) runs GGUF vocabularies.
#include "tokenizer/gguf_tokenizer.h"

#include <map>
#include <nlohmann/json.hpp>

#include "nanovllm/error.h"
#include "tokenizer/bpe_model.h"

namespace nanovllm {

using json = nlohmann::json;

namespace {

// llama.cpp's token types (llama_token_type).
enum TokenType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

struct Vocab {
  std::vector<std::string> tokens;
  std::vector<int> types;
};

Vocab read_vocab(const GgufFile& f) {
  const std::vector<GgufValue>* tokens = f.get_array("tokenizer.ggml.tokens", GgufType::STRING);
  if (!tokens || tokens->empty()) throw Error(f.path() + ": missing metadata 'tokenizer.ggml.tokens'");
  if (tokens->size() > static_cast<size_t>(kMaxTokenId))
    throw Error(f.path() + ": tokenizer.ggml.tokens has " + std::to_string(tokens->size()) + " tokens, above the limit " +
                std::to_string(kMaxTokenId));
  Vocab v;
  for (const GgufValue& t : *tokens) v.tokens.push_back(t.s);
  v.types.assign(v.tokens.size(), kNormal);
  if (const std::vector<GgufValue>* types = f.get_array("tokenizer.ggml.token_type", GgufType::I32)) {
    if (types->size() != v.tokens.size())
      throw Error(f.path() + ": tokenizer.ggml.token_type has " + std::to_string(types->size()) + " entries for " +
                  std::to_string(v.tokens.size()) + " tokens");
    for (size_t i = 0; i < types->size(); ++i) v.types[i] = static_cast<int>((*types)[i].i + static_cast<int64_t>((*types)[i].u));
  }
  return v;
}

std::optional<int> token_id(const GgufFile& f, const char* key, size_t n_tokens) {
  std::optional<uint64_t> id = f.get_uint(key);
  if (id && *id >= n_tokens)
    throw Error(f.path() + ": metadata '" + std::string(key) + "' = " + std::to_string(*id) + " is not a token id (" +
                std::to_string(n_tokens) + " tokens)");
  return id ? std::optional<int>(static_cast<int>(*id)) : std::nullopt;
}

json added_token(int id, const std::string& content, bool special) {
  return {{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", special}};
}

// Control (and, for SentencePiece, unknown) tokens are the special ones; user-defined tokens
// are matched before the model too, but count as text.
json added_tokens(const Vocab& v, bool unknown_is_special) {
  json out = json::array();
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    const int t = v.types[i];
    if (t == kControl || (unknown_is_special && t == kUnknown)) out.push_back(added_token(static_cast<int>(i), v.tokens[i], true));
    else if (t == kUserDefined) out.push_back(added_token(static_cast<int>(i), v.tokens[i], false));
  }
  return out;
}

// TemplateProcessing that puts bos (and eos) around a sequence, as add_bos_token/add_eos_token ask.
json post_processor(const GgufFile& f, const Vocab& v) {
  std::vector<int> pre, post;
  if (f.get_bool("tokenizer.ggml.add_bos_token").value_or(false)) {
    auto bos = token_id(f, "tokenizer.ggml.bos_token_id", v.tokens.size());
    if (!bos) throw Error(f.path() + ": tokenizer.ggml.add_bos_token is set but there is no bos_token_id");
    pre.push_back(*bos);
  }
  if (f.get_bool("tokenizer.ggml.add_eos_token").value_or(false)) {
    auto eos = token_id(f, "tokenizer.ggml.eos_token_id", v.tokens.size());
    if (!eos) throw Error(f.path() + ": tokenizer.ggml.add_eos_token is set but there is no eos_token_id");
    post.push_back(*eos);
  }
  if (pre.empty() && post.empty()) return nullptr;
  json single = json::array(), special = json::object();
  auto add = [&](int id) {
    single.push_back({{"SpecialToken", {{"id", v.tokens[id]}, {"type_id", 0}}}});
    special[v.tokens[id]] = {{"id", v.tokens[id]}, {"ids", {id}}, {"tokens", {v.tokens[id]}}};
  };
  for (int id : pre) add(id);
  single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
  for (int id : post) add(id);
  return {{"type", "TemplateProcessing"}, {"single", single}, {"pair", single}, {"special_tokens", special}};
}

json split_regex(const std::string& regex) {
  return {{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}};
}

json byte_level(bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", use_regex}};
}

// The pre-tokenizer each family's tokenizer.json has, by llama.cpp's name for it
// (tokenizer.ggml.pre; the names of llama-vocab.cpp). ignore_merges: Llama 3's BPE looks a
// whole word up in the vocabulary before merging.
struct PreTokenizerSpec {
  json normalizer, pre_tokenizer;
  bool ignore_merges = false;
};

PreTokenizerSpec byte_level_pre_tokenizer(const GgufFile& f, const std::string& pre) {
  static const std::string llama3 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static const std::string qwen2 =
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3")
    return {nullptr, {{"type", "Sequence"}, {"pretokenizers", {split_regex(llama3), byte_level(false)}}}, true};
  if (pre == "qwen2" || pre == "deepseek-r1-qwen")
    return {{{"type", "NFC"}}, {{"type", "Sequence"}, {"pretokenizers", {split_regex(qwen2), byte_level(false)}}}, false};
  if (pre == "smollm" || pre == "starcoder" || pre == "refact")  // digits one by one, then GPT-2's regex
    return {nullptr,
            {{"type", "Sequence"}, {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level(true)}}},
            false};
  if (pre == "gpt-2" || pre == "gpt2") return {nullptr, byte_level(true), false};
  throw Error(f.path() + ": unsupported pre-tokenizer '" + pre +
              "' (tokenizer.ggml.pre; supported: smollm, starcoder, refact, llama-bpe, llama3, qwen2, gpt-2)");
}

json gpt2_tokenizer(const GgufFile& f, const Vocab& v) {
  const PreTokenizerSpec pre = byte_level_pre_tokenizer(f, f.get_string("tokenizer.ggml.pre").value_or("gpt-2"));
  const std::vector<GgufValue>* merges = f.get_array("tokenizer.ggml.merges", GgufType::STRING);
  if (!merges) throw Error(f.path() + ": missing metadata 'tokenizer.ggml.merges' (a gpt2 tokenizer needs them)");
  json vocab = json::object(), merge_list = json::array();
  for (size_t i = 0; i < v.tokens.size(); ++i) vocab.emplace(v.tokens[i], static_cast<int>(i));  // first id wins
  for (const GgufValue& m : *merges) merge_list.push_back(m.s);
  json model = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
                {"ignore_merges", pre.ignore_merges}, {"vocab", vocab}, {"merges", merge_list}};
  return {{"added_tokens", added_tokens(v, false)}, {"normalizer", pre.normalizer}, {"pre_tokenizer", pre.pre_tokenizer},
          {"post_processor", post_processor(f, v)}, {"decoder", byte_level(true)}, {"model", model}};
}

// Llama 2 style (transformers' LlamaConverter, legacy): "▁" for spaces and before the text,
// no pre-tokenizer, BPE over the pieces with byte fallback, merges ranked by the pieces' scores
// (SentencePiece merges the best-scored pair first; Llama's whitespace runs score -1e9).
json llama_tokenizer(const GgufFile& f, const Vocab& v) {
  std::map<std::string, int> ids;
  json vocab = json::object();
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    ids.emplace(v.tokens[i], static_cast<int>(i));
    vocab.emplace(v.tokens[i], static_cast<int>(i));
  }
  std::vector<float> scores;
  if (const std::vector<GgufValue>* s = f.get_array("tokenizer.ggml.scores", GgufType::F32)) {
    if (s->size() != v.tokens.size())
      throw Error(f.path() + ": tokenizer.ggml.scores has " + std::to_string(s->size()) + " entries for " +
                  std::to_string(v.tokens.size()) + " tokens");
    for (const GgufValue& x : *s) scores.push_back(static_cast<float>(x.f));
  }
  auto unk = token_id(f, "tokenizer.ggml.unknown_token_id", v.tokens.size());
  json model = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", unk ? json(v.tokens[*unk]) : json(nullptr)},
                {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", true},
                {"byte_fallback", true}, {"ignore_merges", false}, {"vocab", vocab},
                {"merges", merges_from_vocab(v.tokens, ids, scores.empty() ? nullptr : &scores)}};
  const bool prefix = f.get_bool("tokenizer.ggml.add_space_prefix").value_or(true);
  json replace_space = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}};
  json normalizer = prefix ? json{{"type", "Sequence"}, {"normalizers", {{{"type", "Prepend"}, {"prepend", "\u2581"}}, replace_space}}}
                           : replace_space;
  json decoders = {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                   {{"type", "ByteFallback"}}, {{"type", "Fuse"}}};
  if (prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
  return {{"added_tokens", added_tokens(v, true)}, {"normalizer", normalizer}, {"pre_tokenizer", nullptr},
          {"post_processor", post_processor(f, v)}, {"decoder", {{"type", "Sequence"}, {"decoders", decoders}}},
          {"model", model}};
}

}  // namespace

json gguf_tokenizer_json(const GgufFile& f) {
  const std::string model = f.get_string("tokenizer.ggml.model").value_or("");
  if (model.empty()) throw Error(f.path() + ": missing metadata 'tokenizer.ggml.model'");
  const Vocab v = read_vocab(f);
  if (model == "gpt2") return gpt2_tokenizer(f, v);
  if (model == "llama") return llama_tokenizer(f, v);
  throw Error(f.path() + ": unsupported tokenizer model '" + model + "' (tokenizer.ggml.model; supported: gpt2, llama)");
}

std::unique_ptr<HfTokenizer> gguf_tokenizer(const GgufFile& f) {
  const json spec = gguf_tokenizer_json(f);
  const size_t n = f.get_array("tokenizer.ggml.tokens", GgufType::STRING)->size();
  return HfTokenizer::from_spec(spec, f.path(), token_id(f, "tokenizer.ggml.bos_token_id", n),
                                token_id(f, "tokenizer.ggml.eos_token_id", n));
}

ChatTemplate gguf_chat_template(const GgufFile& f) {
  const std::optional<std::string> source = f.get_string("tokenizer.chat_template");
  if (!source) throw Error(f.path() + ": no chat template (tokenizer.chat_template)");
  std::vector<std::pair<std::string, std::string>> special;
  if (const std::vector<GgufValue>* tokens = f.get_array("tokenizer.ggml.tokens", GgufType::STRING)) {
    for (auto [name, key] : {std::pair{"bos_token", "tokenizer.ggml.bos_token_id"}, {"eos_token", "tokenizer.ggml.eos_token_id"},
                             {"unk_token", "tokenizer.ggml.unknown_token_id"}, {"pad_token", "tokenizer.ggml.padding_token_id"}})
      if (auto id = token_id(f, key, tokens->size())) special.emplace_back(name, (*tokens)[*id].s);
  }
  try {
    return ChatTemplate(*source, std::move(special));
  } catch (const Error& e) {
    throw Error(f.path() + ": tokenizer.chat_template: " + e.what());
  }
}

}  // namespace nanovllm
