// `nanovllm convert llama2c`: a llama2.c checkpoint + SentencePiece model → Hugging Face layout.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <tuple>

#include "commands.h"
#include "nanovllm/error.h"
#include "model/llama2c.h"
#include "tokenizer/bpe_model.h"

namespace nanovllm::tools {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct ConvertArgs {
  std::string checkpoint, tokenizer, out;
};

json added_token(int id, const std::string& content) {
  return {{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", true}};
}

// The Llama 2 style tokenizer.json that transformers' LlamaConverter produces (legacy mode).
json llama_tokenizer_json(const sentencepiece::SentencePieceProcessor& sp) {
  std::vector<std::string> pieces;
  std::map<std::string, int> vocab;
  json vocab_json = json::object(), added = json::array();
  for (int id = 0; id < sp.GetPieceSize(); ++id) {
    pieces.push_back(sp.IdToPiece(id));
    vocab[pieces.back()] = id;
    vocab_json[pieces.back()] = id;
    if (sp.IsControl(id) || sp.IsUnknown(id)) added.push_back(added_token(id, pieces.back()));
  }
  const std::string bos = sp.IdToPiece(sp.bos_id());
  json model = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", sp.IdToPiece(sp.unk_id())},
                {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                {"fuse_unk", true}, {"byte_fallback", true}, {"ignore_merges", false},
                {"vocab", vocab_json}, {"merges", merges_from_vocab(pieces, vocab)}};
  json seq_a = {{"Sequence", {{"id", "A"}, {"type_id", 0}}}};
  json seq_b = {{"Sequence", {{"id", "B"}, {"type_id", 1}}}};
  json bos0 = {{"SpecialToken", {{"id", bos}, {"type_id", 0}}}};
  json bos1 = {{"SpecialToken", {{"id", bos}, {"type_id", 1}}}};
  return {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added},
          {"normalizer", {{"type", "Sequence"}, {"normalizers", {
              {{"type", "Prepend"}, {"prepend", "\u2581"}},
              {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}}}}}},
          {"pre_tokenizer", nullptr},
          {"post_processor", {{"type", "TemplateProcessing"}, {"single", {bos0, seq_a}},
                              {"pair", {bos0, seq_a, bos1, seq_b}},
                              {"special_tokens", {{bos, {{"id", bos}, {"ids", {sp.bos_id()}}, {"tokens", {bos}}}}}}}},
          {"decoder", {{"type", "Sequence"}, {"decoders", {
              {{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
              {{"type", "ByteFallback"}}, {{"type", "Fuse"}},
              {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
          {"model", model}};
}

json llama_tokenizer_config(const sentencepiece::SentencePieceProcessor& sp, int max_len) {
  json decoder = json::object();
  for (int id : {sp.unk_id(), sp.bos_id(), sp.eos_id()}) {
    json t = added_token(id, sp.IdToPiece(id));
    t.erase("id");
    decoder[std::to_string(id)] = t;
  }
  return {{"tokenizer_class", "LlamaTokenizer"}, {"add_bos_token", true}, {"add_eos_token", false},
          {"bos_token", sp.IdToPiece(sp.bos_id())}, {"eos_token", sp.IdToPiece(sp.eos_id())},
          {"unk_token", sp.IdToPiece(sp.unk_id())}, {"pad_token", nullptr}, {"legacy", true},
          {"clean_up_tokenization_spaces", false}, {"model_max_length", max_len},
          {"added_tokens_decoder", decoder}};
}

void write_json_file(const std::string& path, const json& j) {
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  if (!out) throw Error(path + ": write failed");
}

void run_convert_llama2c(const ConvertArgs& a) {
  sentencepiece::SentencePieceProcessor sp;
  if (auto status = sp.Load(a.tokenizer); !status.ok())
    throw Error(a.tokenizer + ": cannot load SentencePiece model: " + status.ToString());
  const ModelConfig cfg = convert_llama2c_checkpoint(a.checkpoint, a.out);
  if (sp.GetPieceSize() != cfg.vocab_size)
    throw Error(a.tokenizer + ": " + std::to_string(sp.GetPieceSize()) + " pieces, but " +
                a.checkpoint + " has vocab_size " + std::to_string(cfg.vocab_size));
  write_json_file(a.out + "/tokenizer.json", llama_tokenizer_json(sp));
  write_json_file(a.out + "/tokenizer_config.json", llama_tokenizer_config(sp, cfg.max_position_embeddings));
  fs::copy_file(a.tokenizer, a.out + "/tokenizer.model", fs::copy_options::overwrite_existing);
  std::printf("wrote %s: LlamaForCausalLM, dim %d, %d layers, vocab %d\n", a.out.c_str(),
              cfg.hidden_size, cfg.num_layers, cfg.vocab_size);
}

}  // namespace

void add_convert_command(CLI::App& app) {
  CLI::App* convert = app.add_subcommand("convert", "Convert a checkpoint from another format to Hugging Face layout");
  convert->require_subcommand(1);
  auto args = std::make_shared<ConvertArgs>();
  CLI::App* l2c = convert->add_subcommand(
      "llama2c",
      "llama2.c legacy checkpoint (e.g. stories260K.bin) + its SentencePiece tokenizer → config.json, "
      "generation_config.json, model.safetensors (f32, wq/wk rows permuted to rotate-half RoPE), "
      "tokenizer.json (Llama 2 style BPE with byte fallback), tokenizer_config.json");
  l2c->add_option("--checkpoint", args->checkpoint, "llama2.c .bin checkpoint")->required()->check(CLI::ExistingFile);
  l2c->add_option("--tokenizer", args->tokenizer, "SentencePiece tokenizer.model (e.g. tok512.model)")
      ->required()
      ->check(CLI::ExistingFile);
  l2c->add_option("--out", args->out, "output directory (created)")->required();
  l2c->callback([args] { run_convert_llama2c(*args); });
}

}  // namespace nanovllm::tools
