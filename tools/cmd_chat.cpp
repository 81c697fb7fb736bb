// `nanovllm chat`: an interactive terminal chat through the model's chat template, streamed.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>

#include "commands.h"
#include "nanovllm/error.h"
#include "engine/llm_engine.h"
#include "engine_options.h"
#include "nanovllm/llm.h"
#include "tokenizer/chat_template.h"

namespace nanovllm::tools {
namespace {

using json = nlohmann::ordered_json;

struct ChatArgs {
  Config config;
  SamplingFlags sampling;
  std::string system;
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

// Runs one reply to completion, printing text as it comes; Ctrl-C cuts it short.
std::string stream_reply(LLMEngine& engine, std::vector<int> ids, SamplingParams params) {
  const int64_t id = engine.add_request(std::move(ids), params);
  g_interrupted = false;
  std::signal(SIGINT, on_interrupt);
  std::string reply;
  bool done = false;
  while (!done && engine.has_unfinished()) {
    if (g_interrupted.exchange(false)) engine.abort(id);
    for (const StepOutput& o : engine.step()) {
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
  const ChatTemplate tpl = ChatTemplate::from_tokenizer_config(a.config.model);
  LLMEngine& engine = llm.engine();
  const SamplingParams base = a.sampling.apply(engine.default_sampling_params());
  const json kwargs = parse_kwargs(a.template_kwargs);
  json messages = fresh_conversation(a.system);
  std::fprintf(stderr, "nanovllm chat: %s. /reset starts over, /exit (or Ctrl-D) quits, Ctrl-C stops a reply.\n",
               a.config.model.c_str());
  std::string line;
  while (std::cout << "> " << std::flush, std::getline(std::cin, line)) {
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
      if (!a.sampling.max_tokens) p.max_tokens = std::max(1, engine.max_model_len() - static_cast<int>(ids.size()));
      messages.push_back({{"role", "assistant"}, {"content", stream_reply(engine, std::move(ids), p)}});
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
  cmd->add_option("--system", args->system, "System prompt");
  cmd->add_option("--template-kwarg", args->template_kwargs,
                  "Chat-template variable as key=value (repeatable), e.g. enable_thinking=false");
  cmd->callback([args] { run_chat(*args); });
}

}  // namespace nanovllm::tools
