// Tokenizers read from GGUF metadata (tokenizer.ggml.*) against Hugging Face's ids on the
// shared corpus: each real tokenizer.json of ../shared written into a GGUF file as llama.cpp's
// converter writes it (tokens by id, token types, merges, the pre-tokenizer's name, bos).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/gguf.h"
#include "model/gguf_writer.h"
#include "common/tokenizer_goldens.h"
#include "tokenizer/gguf_tokenizer.h"

namespace nanovllm {
namespace {

using json = nlohmann::json;
const std::string& kData = test::kTokenizerData;
using test::read_jsonl;
const std::string kShared = NANOVLLM_SHARED_DIR;

// llama.cpp's token types (convert_hf_to_gguf.py): added special tokens are CONTROL (3), other
// added tokens USER_DEFINED (4), SentencePiece's <unk> UNKNOWN (2) and <0xXX> BYTE (6).
void write_tokenizer_gguf(const std::string& tokenizer_dir, const std::string& pre, const std::vector<int>& prefix,
                          const std::string& out) {
  std::ifstream in(tokenizer_dir + "/tokenizer.json");
  const json spec = json::parse(in);
  const json& model = spec["model"];
  const bool spm = model.value("byte_fallback", false);
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  auto put = [&](int id, const std::string& text, int type) {
    if (static_cast<int>(tokens.size()) <= id) tokens.resize(id + 1), types.resize(id + 1, 5);
    tokens[id] = text;
    types[id] = type;
  };
  for (const auto& [text, id] : model["vocab"].items())
    put(id.get<int>(), text, spm && text.starts_with("<0x") && text.size() == 6 ? 6 : 1);
  for (const json& a : spec["added_tokens"]) {
    const bool unk = spm && a["content"] == model["unk_token"];
    put(a["id"].get<int>(), a["content"].get<std::string>(), unk ? 2 : a["special"].get<bool>() ? 3 : 4);
  }
  for (size_t i = 0; i < tokens.size(); ++i)  // ids no token has (none in these vocabularies) as llama.cpp pads
    if (tokens[i].empty()) tokens[i] = "[PAD" + std::to_string(i) + "]";
  test::GgufWriter w;
  w.str("general.architecture", "llama");
  w.str("tokenizer.ggml.model", spm ? "llama" : "gpt2");
  if (!spm) w.str("tokenizer.ggml.pre", pre);
  w.strings("tokenizer.ggml.tokens", tokens);
  w.array<int32_t>("tokenizer.ggml.token_type", 5, types);
  if (spm) {
    // SentencePiece's scores, as its merge order in tokenizer.json implies them: a piece made by
    // the merge of rank r scores -r; pieces no merge makes (characters, bytes) score -1e9.
    std::vector<float> scores(tokens.size(), -1e9f);
    int rank = 0;
    for (const json& m : model["merges"]) {
      const std::string merged = m.is_string() ? std::string(m.get<std::string>()).erase(m.get<std::string>().find(' '), 1)
                                               : m[0].get<std::string>() + m[1].get<std::string>();
      const int id = model["vocab"][merged].get<int>();
      scores[id] = std::max(scores[id], -static_cast<float>(rank++));
    }
    w.array<float>("tokenizer.ggml.scores", 6, scores);
    for (const json& a : spec["added_tokens"])
      if (a["content"] == model["unk_token"]) w.u32("tokenizer.ggml.unknown_token_id", a["id"].get<uint32_t>());
  } else {
    std::vector<std::string> merges;
    for (const json& m : model["merges"])
      merges.push_back(m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>());
    w.strings("tokenizer.ggml.merges", merges);
  }
  if (!prefix.empty()) w.u32("tokenizer.ggml.bos_token_id", prefix[0]);
  w.boolean("tokenizer.ggml.add_bos_token", !prefix.empty());
  w.write(out);
}

struct Case {
  const char* golden;  // tests/data/tokenizer/<golden>.jsonl
  const char* pre;     // tokenizer.ggml.pre, as llama.cpp names that family's pre-tokenizer
};

class GgufTokenizerGoldens : public ::testing::TestWithParam<Case> {};

TEST_P(GgufTokenizerGoldens, MatchHuggingFaceExactly) {
  const Case c = GetParam();
  const std::vector<json> corpus = read_jsonl(kData + "corpus.jsonl");
  const std::vector<json> rows = read_jsonl(kData + c.golden + ".jsonl");
  ASSERT_GE(corpus.size(), 1000u);
  ASSERT_EQ(rows.size(), corpus.size() + 1);
  const json& header = rows[0];
  const std::string dir = kShared + "/" + header["path"].get<std::string>();
  if (!std::filesystem::exists(dir + "/tokenizer.json")) GTEST_SKIP() << "no " << dir;
  const std::string path = std::string(NANOVLLM_BINARY_DIR) + "/gguf_tokenizer_" + c.golden + ".gguf";
  const auto prefix = header["prefix"].get<std::vector<int>>();
  write_tokenizer_gguf(dir, c.pre, prefix, path);
  auto tok = gguf_tokenizer(GgufFile(path));
  size_t ok = 0, ok_dec = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::string text = corpus[i]["text"];
    const json& g = rows[i + 1];
    const auto ids = g["ids"].get<std::vector<int>>();
    const auto got = tok->encode(text, true);
    const std::string dec = tok->decode(ids, true);
    ok += got == ids, ok_dec += dec == g.value("dec", text);
    EXPECT_EQ(json(got).dump(), json(ids).dump()) << "string #" << i << ": " << json(text).dump();
    EXPECT_EQ(dec, g.value("dec", text)) << "decode, string #" << i;
  }
  std::printf("[ %s from GGUF ] %zu strings: ids %zu, decode %zu match\n", c.golden, corpus.size(), ok, ok_dec);
}

INSTANTIATE_TEST_SUITE_P(AllFamilies, GgufTokenizerGoldens,
                         ::testing::Values(Case{"gpt2", "gpt-2"}, Case{"llama3", "llama-bpe"}, Case{"qwen2.5", "qwen2"},
                                           Case{"qwen3", "qwen2"}, Case{"tinyllama", ""}, Case{"mistral", ""}),
                         [](const auto& info) {
                           std::string n = info.param.golden;
                           for (char& ch : n)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace nanovllm
