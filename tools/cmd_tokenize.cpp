// `nanovllm tokenize` / `nanovllm detokenize`: text <-> token ids with a model's tokenizer.json.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <iostream>
#include <iterator>
#include <sstream>

#include "commands.h"
#include "nanovllm/error.h"
#include "tokenizer/hf_tokenizer.h"

namespace nanovllm::tools {
namespace {

using json = nlohmann::json;

struct TokenizeArgs {
  std::string model, tokenizer, text, ids;
  bool has_text = false, no_special = false, keep_special = false, split_special = false;
};

std::string tokenizer_dir(const TokenizeArgs& a) {
  if (a.model.empty() == a.tokenizer.empty()) throw Error("give exactly one of --model DIR or --tokenizer DIR");
  return a.model.empty() ? a.tokenizer : a.model;
}

std::string read_stdin() {
  std::ostringstream ss;
  ss << std::cin.rdbuf();
  return ss.str();
}

void run_tokenize(const TokenizeArgs& a) {
  auto tok = HfTokenizer::from_dir(tokenizer_dir(a));
  const std::string text = a.has_text ? a.text : read_stdin();
  const std::vector<int> ids = tok->encode(text, !a.no_special, a.split_special);
  std::cout << json{{"ids", ids}}.dump() << "\n";
}

// "1,2,3", "[1,2,3]" or {"ids": [1,2,3]}.
std::vector<int> parse_ids(const std::string& s) {
  const size_t first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return {};
  try {
    if (s[first] == '[' || s[first] == '{') {
      json j = json::parse(s);
      if (j.is_object()) j = j.at("ids");
      return j.get<std::vector<int>>();
    }
    std::vector<int> ids;
    std::stringstream ss(s);
    for (std::string item; std::getline(ss, item, ',');)
      if (item.find_first_not_of(" \t\r\n") != std::string::npos) ids.push_back(std::stoi(item));
    return ids;
  } catch (const std::exception& e) {
    throw Error("cannot read token ids from '" + s.substr(0, 80) + "': " + e.what());
  }
}

void run_detokenize(const TokenizeArgs& a) {
  auto tok = HfTokenizer::from_dir(tokenizer_dir(a));
  const std::vector<int> ids = parse_ids(a.ids.empty() ? read_stdin() : a.ids);
  std::cout << json{{"text", tok->decode(ids, !a.keep_special)}}.dump() << "\n";
}

void add_source_options(CLI::App* cmd, TokenizeArgs& a) {
  cmd->add_option("--model", a.model, "Model folder holding tokenizer.json (and tokenizer_config.json)");
  cmd->add_option("--tokenizer", a.tokenizer, "Tokenizer folder (same files; use instead of --model)");
}

}  // namespace

void add_tokenize_commands(CLI::App& app) {
  auto args = std::make_shared<TokenizeArgs>();
  CLI::App* tok = app.add_subcommand("tokenize",
      "Encode text with a Hugging Face tokenizer.json, exactly as `tokenizers` does; prints {\"ids\":[...]}.\n"
      "The text is --text, or all of standard input (newlines included) when --text is absent.");
  add_source_options(tok, *args);
  tok->add_option("--text", args->text, "Text to encode (default: read all of stdin)")
      ->each([args](const std::string&) { args->has_text = true; });
  tok->add_flag("--no-special-tokens", args->no_special, "Do not add the post-processor's BOS/EOS tokens");
  tok->add_flag("--split-special-tokens", args->split_special,
                "Encode special-token text such as <|im_start|> as plain text instead of one special token");
  tok->callback([args] { run_tokenize(*args); });

  CLI::App* detok = app.add_subcommand("detokenize",
      "Decode token ids to text; prints {\"text\":\"...\"}. Ids come from --ids 1,2,3 or standard input\n"
      "(1,2,3, a JSON list, or {\"ids\":[...]} as printed by `nanovllm tokenize`).");
  add_source_options(detok, *args);
  detok->add_option("--ids", args->ids, "Comma-separated token ids (default: read stdin)");
  detok->add_flag("--keep-special-tokens", args->keep_special, "Keep special tokens (default: skip them)");
  detok->callback([args] { run_detokenize(*args); });
}

}  // namespace nanovllm::tools
