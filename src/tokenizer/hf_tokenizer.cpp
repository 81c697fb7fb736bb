// Loads tokenizer.json and runs Hugging Face's pipeline: added tokens -> normalizer ->
// pre-tokenizer -> BPE -> post-processor; decode: ids -> tokens -> decoder chain.
#include "tokenizer/hf_tokenizer.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <deque>
#include <functional>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/json.h"
#include "nanovllm/error.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/decoders.h"
#include "tokenizer/gguf_tokenizer.h"
#include "model/gguf_model.h"
#include "tokenizer/normalizers.h"
#include "tokenizer/pre_tokenizers.h"
#include "tokenizer/unicode.h"

namespace nanovllm {

using json = nlohmann::json;

namespace {

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open " + path);
  std::stringstream buf;
  buf << in.rdbuf();
  return parse_json(buf.str(), path);
}

// A token string from tokenizer_config.json: "…", {"content": "…"} or null.
std::optional<std::string> config_token(const json& cfg, const char* key) {
  if (!cfg.contains(key)) return std::nullopt;
  const json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content")) return v["content"].get<std::string>();
  return std::nullopt;
}

AddedToken parse_added_token(const json& j) {
  AddedToken t;
  t.content = j.at("content").get<std::string>();
  t.id = parse_token_id(j.at("id"), "added token '" + t.content + "'");
  t.special = j.value("special", false);
  t.lstrip = j.value("lstrip", false);
  t.rstrip = j.value("rstrip", false);
  t.single_word = j.value("single_word", false);
  t.normalized = j.value("normalized", !t.special);
  return t;
}

}  // namespace

HfTokenizer::HfTokenizer() = default;
HfTokenizer::~HfTokenizer() = default;

std::unique_ptr<HfTokenizer> HfTokenizer::from_file(const std::string& path) {
  std::unique_ptr<HfTokenizer> tok(new HfTokenizer());
  tok->load(path);
  return tok;
}

std::unique_ptr<HfTokenizer> HfTokenizer::from_dir(const std::string& dir) {
  if (!std::filesystem::is_directory(dir) && is_gguf_file(dir)) return gguf_tokenizer(GgufFile(dir));
  const std::filesystem::path d(dir);
  auto tok = from_file((d / "tokenizer.json").string());
  const std::filesystem::path cfg = d / "tokenizer_config.json";
  if (std::filesystem::exists(cfg)) tok->load_config(cfg.string());
  return tok;
}

std::unique_ptr<HfTokenizer> HfTokenizer::from_spec(const nlohmann::json& spec, const std::string& source,
                                                    std::optional<int> bos, std::optional<int> eos) {
  std::unique_ptr<HfTokenizer> tok(new HfTokenizer());
  tok->load_spec(spec, source);
  if (bos) tok->bos_id_ = bos;
  tok->eos_id_ = eos;
  return tok;
}

void HfTokenizer::load(const std::string& path) { load_spec(read_json(path), path); }

void HfTokenizer::load_spec(const json& spec, const std::string& path) {
  try {
    normalizer_ = make_normalizer(spec.value("normalizer", json()));
    pre_tokenizer_ = make_pre_tokenizer(spec.value("pre_tokenizer", json()));
    model_ = std::make_unique<BpeModel>(spec.at("model"), pre_tokenizer_ && pre_tokenizer_->byte_level());
    decoder_ = make_decoder(spec.value("decoder", json()));
    for (const json& a : spec.value("added_tokens", json::array())) added_.push_back(parse_added_token(a));
    load_post_processor(&spec);
  } catch (const json::exception& e) {
    throw Error(path + ": unexpected tokenizer.json structure: " + e.what());
  } catch (const Error& e) {
    throw Error(path + ": " + e.what());
  }
  // Normalized tokens are found in normalized text, so their pattern is normalized too.
  std::vector<AddedToken> raw, norm;
  std::vector<std::string> raw_pat, norm_pat;
  for (AddedToken& t : added_) {
    std::string p = t.content;
    if (t.normalized && normalizer_) normalizer_->normalize(p);
    t.surface = p;
    (t.normalized ? norm : raw).push_back(t);
    (t.normalized ? norm_pat : raw_pat).push_back(std::move(p));
  }
  raw_matcher_ = std::make_unique<AddedTokenMatcher>(std::move(raw), std::move(raw_pat));
  normalized_matcher_ = std::make_unique<AddedTokenMatcher>(std::move(norm), std::move(norm_pat));
  for (size_t i = 0; i < added_.size(); ++i) {
    auto it = added_by_id_.find(added_[i].id);
    if (it != added_by_id_.end() && added_[it->second].content != added_[i].content)
      throw Error(path + ": added tokens '" + added_[it->second].content + "' and '" + added_[i].content +
                  "' share id " + std::to_string(added_[i].id));
    added_by_id_[added_[i].id] = i;
  }
  vocab_size_ = model_->size();
  for (const AddedToken& t : added_) vocab_size_ = std::max(vocab_size_, t.id + 1);
}

// TemplateProcessing / Bert / Roberta / ByteLevel / Sequence, reduced to the ids placed before
// and after a single sequence when add_special_tokens is on.
void HfTokenizer::load_post_processor(const void* spec_ptr) {
  const json& spec = *static_cast<const json*>(spec_ptr);
  std::function<void(const json&)> add = [&](const json& p) {
    if (p.is_null()) return;
    const std::string type = p.at("type").get<std::string>();
    if (type == "ByteLevel") return;  // offsets only
    if (type == "Sequence") {
      for (const json& q : p.at("processors")) add(q);
      return;
    }
    std::vector<int> pre, post;
    if (type == "TemplateProcessing") {
      bool seen_a = false;
      for (const json& item : p.at("single")) {
        if (item.contains("Sequence")) {
          seen_a = true;
          continue;
        }
        const std::string name = item.at("SpecialToken").at("id").get<std::string>();
        for (const json& id : p.at("special_tokens").at(name).at("ids")) (seen_a ? post : pre).push_back(parse_token_id(id, "post_processor"));
      }
    } else if (type == "BertProcessing" || type == "RobertaProcessing") {
      pre.push_back(parse_token_id(p.at("cls").at(1), "post_processor cls"));
      post.push_back(parse_token_id(p.at("sep").at(1), "post_processor sep"));
    } else {
      throw Error("unsupported post_processor type '" + type + "'");
    }
    prefix_ids_.insert(prefix_ids_.begin(), pre.begin(), pre.end());
    suffix_ids_.insert(suffix_ids_.end(), post.begin(), post.end());
  };
  add(spec.value("post_processor", json()));
  if (!prefix_ids_.empty()) bos_id_ = prefix_ids_.front();
}

void HfTokenizer::load_config(const std::string& path) {
  const json cfg = read_json(path);
  auto resolve = [&](const char* key, std::optional<int>& out) {
    if (auto s = config_token(cfg, key)) {
      if (auto id = token_to_id(*s)) out = id;
      else throw Error(path + ": " + key + " '" + *s + "' is not in the vocabulary");
    }
  };
  resolve("bos_token", bos_id_);
  resolve("eos_token", eos_id_);
}

std::optional<int> HfTokenizer::token_to_id(std::string_view token) const {
  for (const AddedToken& t : added_)
    if (t.content == token) return t.id;
  return model_->token_to_id(token);
}

const AddedToken* HfTokenizer::added_token(int id) const {
  auto it = added_by_id_.find(id);
  return it == added_by_id_.end() ? nullptr : &added_[it->second];
}

std::string HfTokenizer::id_to_token(int id) const {
  if (const AddedToken* t = added_token(id)) return t->surface;
  return model_->id_to_token(id);
}

std::string HfTokenizer::token_bytes(int id) const {
  if (const AddedToken* t = added_token(id)) return t->content;
  const std::string& tok = model_->id_to_token(id);
  std::string out;
  if (model_->byte_level()) {
    for (size_t i = 0; i < tok.size();) {
      const int b = char_to_byte(unicode::next_code_point(tok, i));
      if (b < 0) return tok;  // not a byte-level string after all: its text is the best guess
      out += static_cast<char>(b);
    }
    return out;
  }
  unsigned byte = 0;
  if (tok.size() == 6 && tok.starts_with("<0x") && tok.back() == '>' && std::sscanf(tok.c_str(), "<0x%2X>", &byte) == 1) {
    return std::string(1, static_cast<char>(byte));
  }
  for (size_t i = 0; i < tok.size();) {
    const size_t start = i;
    const char32_t cp = unicode::next_code_point(tok, i);
    if (cp == U'\u2581') out += ' ';
    else out.append(tok, start, i - start);
  }
  return out;
}

bool HfTokenizer::is_special(int id) const {
  const AddedToken* t = added_token(id);
  return t != nullptr && t->special;
}

std::vector<int> HfTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  return encode(text, add_special_tokens, false);
}

std::vector<int> HfTokenizer::encode(std::string_view text, bool add_special_tokens, bool split_special) const {
  std::string repaired;  // encode() takes bytes; Hugging Face takes str, so repair first
  if (!unicode::is_valid_utf8(text)) {
    unicode::append_lossy(repaired, text);
    text = repaired;
  }
  std::vector<int> ids;
  ids.reserve(text.size() / 3 + 8);
  if (add_special_tokens) ids = prefix_ids_;
  std::vector<TextSegment> segs;
  raw_matcher_->split(text, split_special, segs);
  for (const TextSegment& s : segs) {
    if (s.id >= 0) ids.push_back(s.id);
    else encode_segment(text.substr(s.begin, s.end - s.begin), s.begin == 0, split_special, ids);
  }
  if (add_special_tokens) ids.insert(ids.end(), suffix_ids_.begin(), suffix_ids_.end());
  return ids;
}

// One stretch of text between non-normalized added tokens: normalize, then extract the
// normalized added tokens, then pre-tokenize and encode the rest.
void HfTokenizer::encode_segment(std::string_view text, bool at_origin, bool split_special, std::vector<int>& ids) const {
  std::string norm(text);
  if (normalizer_) normalizer_->normalize(norm);
  if (normalized_matcher_->empty()) return encode_words(norm, at_origin, ids);
  std::vector<TextSegment> segs;
  normalized_matcher_->split(norm, split_special, segs);
  for (const TextSegment& s : segs) {
    if (s.id >= 0) ids.push_back(s.id);
    else encode_words(std::string_view(norm).substr(s.begin, s.end - s.begin), at_origin && s.begin == 0, ids);
  }
}

void HfTokenizer::encode_words(std::string_view text, bool at_origin, std::vector<int>& ids) const {
  if (text.empty()) return;
  if (!pre_tokenizer_) return model_->encode_word(text, ids);
  thread_local std::vector<std::string_view> words;
  std::deque<std::string> arena;
  words.clear();
  pre_tokenizer_->split(text, at_origin, words, arena);
  for (std::string_view w : words) model_->encode_word(w, ids);
}

std::string HfTokenizer::decode(std::span<const int> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int id : ids) {
    if (const AddedToken* added = added_token(id)) {
      // Every special token is skipped, normalized or not: bare `tokenizers` keeps a normalized
      // one (it looks tokens up by their normalized text), but transformers registers them
      // again as special, so AutoTokenizer, and vLLM with it, skips them all.
      if (!(skip_special_tokens && added->special)) tokens.push_back(added->surface);
      continue;
    }
    const std::string& tok = model_->id_to_token(id);
    if (!tok.empty()) tokens.push_back(tok);
  }
  if (!decoder_) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) out += ' ';
      out += tokens[i];
    }
    return out;
  }
  decoder_->decode_chain(tokens);
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

}  // namespace nanovllm
