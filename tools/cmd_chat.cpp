// `nanovllm chat`: an interactive terminal chat through the model's chat template, streamed.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <editline/readline.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "commands.h"
#include "engine_options.h"
#include "nanovllm/error.h"
#include "nanovllm/llm.h"
#include "tokenizer/chat_template.h"

namespace nanovllm::tools {
namespace {

using json = nlohmann::ordered_json;

struct ChatArgs {
  Config config;
  SamplingFlags sampling;
  std::string system;
  std::string chat_template_file;  // instead of the tokenizer's chat template
  std::vector<std::string> template_kwargs;  // key=value, value parsed as JSON when it parses
};

std::atomic<bool> g_interrupted{false};
extern "C" void on_interrupt(int) { g_interrupted = true; }

json fresh_conversation(const std::string& system) {
  json messages = json::array();
  if (!system.empty()) messages.push_back({{"role", "system"}, {"content", system}});
  return messages;
}

json parse_kwargs(const std::vector<std::string>& items) {
  json kwargs = json::object();
  for (const std::string& item : items) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos) throw std::invalid_argument("--template-kwarg wants key=value, got " + item);
    const std::string value = item.substr(eq + 1);
    json v = json::parse(value, nullptr, false);
    kwargs[item.substr(0, eq)] = v.is_discarded() ? json(value) : v;
  }
  return kwargs;
}

// The user's lines: libedit's line editing and history (arrow keys, Ctrl-R) on a terminal,
// plain getline otherwise, so piped input is read byte for byte.
class LineReader {
 public:
  LineReader() : terminal_(isatty(STDIN_FILENO)) {}

  bool read(const char* prompt, std::string& line) {
    if (!terminal_) {
      std::cout << prompt << std::flush;
      return static_cast<bool>(std::getline(std::cin, line));
    }
    char* text = readline(prompt);
    if (!text) return false;  // Ctrl-D
    line = text;
    std::free(text);
    if (!line.empty()) add_history(line.c_str());
    return true;
  }

 private:
  bool terminal_;
};

ChatTemplate load_template(const ChatArgs& a) {
  if (!a.chat_template_file.empty()) return ChatTemplate::from_file(a.chat_template_file, a.config.model);
  try {
    return ChatTemplate::from_tokenizer_config(a.config.model);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + "; pass a Jinja chat template with --chat-template FILE");
  }
}

// Runs one reply to completion, printing text as it comes; Ctrl-C cuts it short.
std::string stream_reply(LLM& llm, std::vector<int> ids, SamplingParams params) {
  const int64_t id = llm.add_request(std::move(ids), params);
  g_interrupted = false;
  std::signal(SIGINT, on_interrupt);
  std::string reply;
  bool done = false;
  while (!done && llm.has_unfinished()) {
    if (g_interrupted.exchange(false)) llm.abort(id);
    for (const StepOutput& o : llm.step()) {
      if (o.request_id != id) continue;
      reply += o.new_text;
      std::cout << o.new_text << std::flush;
      done = o.finished;
    }
  }
  std::signal(SIGINT, SIG_DFL);
  std::cout << "\n";
  return reply;
}

void run_chat(ChatArgs& a) {
  LLM llm(a.config.model, a.config);
  if (!llm.tokenizer()) throw Error("chat needs a tokenizer.json in " + a.config.model);
  const ChatTemplate tpl = load_template(a);
  const SamplingParams base = a.sampling.apply(llm.default_sampling_params());
  const json kwargs = parse_kwargs(a.template_kwargs);
  json messages = fresh_conversation(a.system);
  std::fprintf(stderr, "nanovllm chat: %s. /reset starts over, /exit (or Ctrl-D) quits, Ctrl-C stops a reply.\n",
               a.config.model.c_str());
  LineReader reader;
  std::string line;
  while (reader.read("> ", line)) {
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      messages = fresh_conversation(a.system);
      std::cout << "[conversation cleared]\n";
      continue;
    }
    if (line.empty()) continue;
    messages.push_back({{"role", "user"}, {"content", line}});
    try {
      std::vector<int> ids = llm.tokenizer()->encode(tpl.render(messages, true, kwargs, json()), false);
      SamplingParams p = base;
      if (!a.sampling.max_tokens) p.max_tokens = std::max(1, llm.max_model_len() - static_cast<int>(ids.size()));
      messages.push_back({{"role", "assistant"}, {"content", stream_reply(llm, std::move(ids), p)}});
    } catch (const std::exception& e) {  // e.g. the conversation outgrew the context
      messages.erase(messages.end() - 1);
      std::cout << "[error: " << e.what() << "; /reset to start over]\n";
    }
  }
  std::cout << "\n";
}

}  // namespace

void add_chat_command(CLI::App& app) {
  auto args = std::make_shared<ChatArgs>();
  CLI::App* cmd = app.add_subcommand("chat", "Interactive chat in the terminal (the model's chat template, streamed)");
  add_engine_options(cmd, args->config);
  add_sampling_options(cmd, args->sampling);
  cmd->add_option("--system,--system-prompt", args->system, "System prompt");
  cmd->add_option("--chat-template,--chat-template-file", args->chat_template_file,
                  "Jinja chat template file, for models whose tokenizer has none (or to replace it)");
  cmd->add_option("--template-kwarg", args->template_kwargs,
                  "Chat-template variable as key=value (repeatable), e.g. enable_thinking=false")
      ->allow_extra_args(false);
  cmd->callback([args] { run_chat(*args); });
}

}  // namespace nanovllm::tools
