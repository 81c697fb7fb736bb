// Golden tests: our tokenizer.json tokenizer against Python `tokenizers` on the committed corpus
// (tests/data/tokenizer, made by scripts/gen_tokenizer_goldens.py), plus error cases.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "nanovllm/error.h"
#include "common/tokenizer_goldens.h"
#include "tokenizer/hf_tokenizer.h"

namespace nanovllm {
namespace {

using json = nlohmann::json;
const std::string& kData = test::kTokenizerData;
using test::read_jsonl;
const std::string kShared = NANOVLLM_SHARED_DIR;

// A golden's tokenizer: a real one from ../shared, or a variant of one (header "patch": top-level
// keys of tokenizer.json replaced, as scripts/gen_tokenizer_goldens.py does).
std::unique_ptr<HfTokenizer> golden_tokenizer(const json& header) {
  const std::string dir = kShared + "/" + header["path"].get<std::string>();
  if (!header.contains("patch")) return HfTokenizer::from_dir(dir);
  std::ifstream in(dir + "/tokenizer.json");
  json spec = json::parse(in);
  for (const auto& [key, value] : header["patch"].items()) spec[key] = value;
  const std::string file = std::string(NANOVLLM_BINARY_DIR) + "/tokenizer_variant_" + header["tokenizer"].get<std::string>() + ".json";
  std::ofstream(file) << spec.dump();
  return HfTokenizer::from_file(file);
}

std::string show_ids(const std::vector<int>& ids) { return json(ids).dump(); }

class Goldens : public ::testing::TestWithParam<std::string> {};

TEST_P(Goldens, MatchHuggingFaceExactly) {
  const std::vector<json> corpus = read_jsonl(kData + "corpus.jsonl");
  const std::vector<json> rows = read_jsonl(kData + GetParam() + ".jsonl");
  ASSERT_GE(corpus.size(), 1000u);
  ASSERT_EQ(rows.size(), corpus.size() + 1) << "goldens out of date: rerun scripts/gen_tokenizer_goldens.py";
  const json& header = rows[0];
  const std::string dir = kShared + "/" + header["path"].get<std::string>();
  if (!std::filesystem::exists(dir + "/tokenizer.json")) GTEST_SKIP() << "no " << dir;
  auto tok = golden_tokenizer(header);
  const auto prefix = header["prefix"].get<std::vector<int>>(), suffix = header["suffix"].get<std::vector<int>>();
  size_t ok_ids = 0, ok_nsp = 0, ok_dec = 0, ok_deck = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::string text = corpus[i]["text"];
    const json& g = rows[i + 1];
    const auto ids = g["ids"].get<std::vector<int>>();
    std::vector<int> nsp;
    if (g.contains("nsp")) nsp = g["nsp"].get<std::vector<int>>();
    else nsp.assign(ids.begin() + prefix.size(), ids.end() - suffix.size());
    const std::string dec = g.value("dec", text), deck = g.value("deck", text);
    const auto got = tok->encode(text, true), got_nsp = tok->encode(text, false);
    const std::string got_dec = tok->decode(ids, true), got_deck = tok->decode(ids, false);
    ok_ids += got == ids, ok_nsp += got_nsp == nsp, ok_dec += got_dec == dec, ok_deck += got_deck == deck;
    EXPECT_EQ(show_ids(got), show_ids(ids)) << "string #" << i << ": " << json(text).dump();
    EXPECT_EQ(show_ids(got_nsp), show_ids(nsp)) << "no special tokens, string #" << i << ": " << json(text).dump();
    EXPECT_EQ(got_dec, dec) << "decode, string #" << i;
    EXPECT_EQ(got_deck, deck) << "decode keeping special tokens, string #" << i;
  }
  std::printf("[ %s ] %zu strings: ids %zu, ids without special tokens %zu, decode %zu, decode keeping specials %zu match\n",
              GetParam().c_str(), corpus.size(), ok_ids, ok_nsp, ok_dec, ok_deck);
}

INSTANTIATE_TEST_SUITE_P(AllTokenizers, Goldens,
                         ::testing::Values("gpt2", "llama3", "qwen2.5", "qwen3", "mistral", "tinyllama", "tinystories-656k",
                                           "tinyllama-metaspace", "mistral-metaspace-split", "gpt2-digits-prefix"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return n;
                         });

TEST(HfTokenizer, SplitSpecialTokensEncodesTheirTextAsPlainText) {
  auto tok = HfTokenizer::from_dir(kShared + "/tokenizers/qwen3");
  const auto special = tok->encode("<|im_start|>user", false, false);
  const auto plain = tok->encode("<|im_start|>user", false, true);
  ASSERT_EQ(special.size(), 2u);
  EXPECT_EQ(special[0], *tok->token_to_id("<|im_start|>"));
  EXPECT_GT(plain.size(), 2u);
  EXPECT_EQ(tok->decode(plain, true), "<|im_start|>user");  // no special token survives to be skipped
}

TEST(HfTokenizer, BosEosFromConfig) {
  auto qwen = HfTokenizer::from_dir(kShared + "/tokenizers/qwen3");
  EXPECT_FALSE(qwen->bos_token_id().has_value());
  EXPECT_EQ(qwen->eos_token_id(), qwen->token_to_id("<|im_end|>"));
  EXPECT_EQ(qwen->vocab_size(), 151669);
  auto llama = HfTokenizer::from_dir(kShared + "/tokenizers/tinyllama");
  EXPECT_EQ(llama->bos_token_id(), 1);
  EXPECT_EQ(llama->eos_token_id(), 2);
}

TEST(HfTokenizer, MissingFileNamesThePath) {
  try {
    HfTokenizer::from_dir("/nonexistent/tok");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tok/tokenizer.json"), std::string::npos) << e.what();
  }
}

TEST(HfTokenizer, MalformedJsonNamesThePath) {
  const auto dir = std::filesystem::path(NANOVLLM_BINARY_DIR) / "tokenizer_test_malformed";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << "{\"model\": {\"vocab\": ";
  try {
    HfTokenizer::from_dir(dir.string());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find((dir / "tokenizer.json").string()), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("invalid JSON"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "Unigram", "vocab": []}})";
  EXPECT_THROW(HfTokenizer::from_dir(dir.string()), Error);
  std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}})";
  EXPECT_THROW(HfTokenizer::from_dir(dir.string()), Error);
}

// The error of loading `spec` as tokenizer.json ("" when it loads).
std::string load_error(const json& spec) {
  const auto file = std::filesystem::path(NANOVLLM_BINARY_DIR) / "tokenizer_test_bad.json";
  std::ofstream(file) << spec.dump();
  try {
    HfTokenizer::from_file(file.string());
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

json tiny_bpe() {
  return {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}}}};
}

TEST(HfTokenizer, BadVocabularyIdsAreErrors) {
  EXPECT_EQ(load_error(tiny_bpe()), "");
  auto with_id = [](const json& id) {
    json spec = tiny_bpe();
    spec["model"]["vocab"]["b"] = id;
    return load_error(spec);
  };
  // A negative id wrote before id_to_token's table (heap overflow under ASan); 2^31-1 overflowed
  // `max_id + 1`; 2^32 + 1 was silently truncated to 1.
  for (const json& id : {json(-1), json(2147483647), json(4294967297LL), json(1.5), json("1")})
    EXPECT_NE(with_id(id).find("model.vocab['b']: token id " + id.dump() + " is not an integer in [0, "),
              std::string::npos)
        << id.dump() << ": " << with_id(id);
  EXPECT_NE(with_id(0).find("model.vocab: id 0 is given to both"), std::string::npos) << with_id(0);
  EXPECT_NE(with_id(10000000).find("far beyond its 3 entries"), std::string::npos) << with_id(10000000);
}

TEST(HfTokenizer, BadAddedAndPostProcessorIdsAreErrors) {
  json spec = tiny_bpe();
  spec["added_tokens"] = {{{"id", -5}, {"content", "<s>"}, {"special", true}}};
  EXPECT_NE(load_error(spec).find("added token '<s>': token id -5"), std::string::npos) << load_error(spec);
  spec["added_tokens"] = {{{"id", 3}, {"content", "<s>"}}, {{"id", 3}, {"content", "</s>"}}};
  EXPECT_NE(load_error(spec).find("added tokens '<s>' and '</s>' share id 3"), std::string::npos) << load_error(spec);
  spec["added_tokens"] = {{{"id", 3}, {"content", "<s>"}}};
  spec["post_processor"] = {{"type", "BertProcessing"}, {"cls", {"<s>", 2147483647}}, {"sep", {"<s>", 3}}};
  EXPECT_NE(load_error(spec).find("post_processor cls: token id 2147483647"), std::string::npos) << load_error(spec);
}

TEST(HfTokenizer, DeepJsonIsAnError) {
  std::string text = tiny_bpe().dump();
  text.insert(1, "\"extra\": " + std::string(100000, '[') + std::string(100000, ']') + ", ");
  const auto file = std::filesystem::path(NANOVLLM_BINARY_DIR) / "tokenizer_test_deep.json";
  std::ofstream(file) << text;
  try {
    HfTokenizer::from_file(file.string());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nested deeper than"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace nanovllm
