// `nanovllm chat-template`: render a model's chat template on messages and print the prompt.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "nanovllm/error.h"
#include "tokenizer/chat_template.h"

namespace nanovllm::tools {
namespace {

using ojson = nlohmann::ordered_json;

struct ChatTemplateArgs {
  std::string model;
  std::string messages_file;
  bool no_generation_prompt = false;
  std::string template_kwargs = "{}";
  std::string tools_file;
};

// Key order matters (tojson prints keys as given), hence ordered_json throughout.
ojson read_json_file(const std::string& path) {
  std::ostringstream ss;
  if (path == "-") {
    ss << std::cin.rdbuf();
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error("cannot read " + path);
    ss << in.rdbuf();
  }
  try {
    return ojson::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": invalid JSON: " + e.what());
  }
}

void run_chat_template(const ChatTemplateArgs& a) {
  ChatTemplate tpl = ChatTemplate::from_tokenizer_config(a.model);
  ojson messages = read_json_file(a.messages_file);
  if (messages.is_object() && messages.contains("messages")) messages = messages["messages"];
  ojson kwargs;
  try {
    kwargs = ojson::parse(a.template_kwargs);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("--template-kwargs: invalid JSON: ") + e.what());
  }
  ojson tools = a.tools_file.empty() ? ojson() : read_json_file(a.tools_file);
  std::string prompt = tpl.render(messages, !a.no_generation_prompt, kwargs, tools);
  std::cout.write(prompt.data(), static_cast<std::streamsize>(prompt.size()));
  std::cout.flush();
}

}  // namespace

void add_chat_template_command(CLI::App& app) {
  auto args = std::make_shared<ChatTemplateArgs>();
  CLI::App* cmd = app.add_subcommand(
      "chat-template",
      "Render a model's chat template (tokenizer_config.json) on a conversation and print the prompt "
      "exactly, with no trailing newline added; the same text transformers' "
      "apply_chat_template(..., tokenize=False) returns");
  cmd->add_option("--model,-m", args->model,
                  "Model or tokenizer folder holding tokenizer_config.json (or the path of that file)")
      ->required();
  cmd->add_option("--messages", args->messages_file,
                  "JSON file with the messages: an array of {\"role\", \"content\", ...} objects, or an object "
                  "with a \"messages\" array; \"-\" reads standard input")
      ->required();
  cmd->add_flag("--no-generation-prompt", args->no_generation_prompt,
                "Do not append the assistant header that prompts a reply (add_generation_prompt=False)");
  cmd->add_option("--template-kwargs", args->template_kwargs,
                  "JSON object of extra template variables, e.g. '{\"enable_thinking\":false}'")
      ->capture_default_str();
  cmd->add_option("--tools", args->tools_file,
                  "JSON file with a list of tool (function) schemas, passed to the template as `tools`");
  cmd->callback([args] { run_chat_template(*args); });
}

}  // namespace nanovllm::tools
