// `nanovllm serve`: the OpenAI-compatible HTTP server over one checkpoint.
#include <CLI/CLI.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <memory>
#include <stdexcept>

#include <unistd.h>

#include "commands.h"
#include "engine_options.h"
#include "nanovllm/llm.h"

#ifdef NANOVLLM_HAVE_SERVER
#include "server/server.h"
#endif

namespace nanovllm::tools {
namespace {

#ifdef NANOVLLM_HAVE_SERVER
std::atomic<bool> g_stop{false};

// The first SIGINT/SIGTERM asks the server to drain; a second one means "now".
extern "C" void on_stop_signal(int sig) {
  if (g_stop.exchange(true)) {
    static const char msg[] = "nanovllm serve: second signal, exiting without draining\n";
    (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
    _exit(128 + sig);
  }
}

// SIGINT/SIGTERM ask the server to drain and stop; SIGPIPE (a client gone) must not kill us.
void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

struct ServeArgs {
  Config config;
  server::ServerOptions server;
};

void run_serve(ServeArgs& a) {
  if (a.server.served_model_name.empty()) a.server.served_model_name = a.config.model;
  install_signal_handlers();
  LLM llm(a.config.model, a.config);
  server::serve(llm, a.server, [] { return g_stop.load(); });
}
#endif

}  // namespace

void add_serve_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (completions, chat, SSE streaming)");
#ifdef NANOVLLM_HAVE_SERVER
  auto args = std::make_shared<ServeArgs>();
  add_engine_options(cmd, args->config);
  server::ServerOptions& s = args->server;
  cmd->add_option("--host", s.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--port", s.port, "Port to listen on (0 = any free port, printed at start-up)")->capture_default_str();
  cmd->add_option("--api-key", s.api_key, "Require 'Authorization: Bearer KEY' on /v1/*");
  cmd->add_option("--served-model-name,--alias,-a", s.served_model_name,
                  "Model name clients send (default: the --model path)");
  cmd->add_option("--chat-template,--chat-template-file", s.chat_template_file,
                  "Jinja chat template file, for models whose tokenizer has none (or to replace it)");
  cmd->add_option("--tool-call-parser", s.tool_call_parser,
                  "How tool calls are read from replies (tool_choice auto): hermes, llama3_json or mistral "
                  "(default: the chat template's format)")
      ->check(CLI::IsMember({"hermes", "llama3_json", "mistral"}));
  cmd->add_option("--reasoning-parser", s.reasoning_parser,
                  "Put <think>...</think> in message.reasoning_content: qwen3 or deepseek_r1")
      ->check(CLI::IsMember({"qwen3", "deepseek_r1"}));
  // vLLM's switch; tool_choice auto is always on here, so it is accepted and changes nothing.
  cmd->add_flag("--enable-auto-tool-choice", s.enable_auto_tool_choice, "Accepted for vLLM compatibility");
  cmd->add_option("--max-waiting", s.max_waiting, "Answer 503 when more requests than this wait (0 = no limit)")
      ->capture_default_str();
  cmd->add_option("--max-body-bytes", s.max_body_bytes, "Larger request bodies get 413")->capture_default_str();
  cmd->add_option("--max-connections", s.max_connections, "Open connections at most (more get 503)")->capture_default_str();
  cmd->add_option("--max-connections-per-client", s.max_connections_per_client,
                  "Open connections from one IP address at most (more get 429)")->capture_default_str();
  cmd->add_option("--header-timeout", s.header_timeout, "Seconds a request's head may take to arrive")->capture_default_str();
  cmd->add_option("--keep-alive-timeout", s.keep_alive_timeout, "Seconds an idle kept-alive connection stays open")
      ->capture_default_str();
  cmd->add_option("--drain-seconds", s.drain_seconds, "On SIGINT/SIGTERM, time in-flight requests get to finish")
      ->capture_default_str();
  cmd->callback([args] { run_serve(*args); });
#else
  cmd->callback([] { throw std::runtime_error("this build has no server (configure with -DNANOVLLM_WITH_SERVER=ON)"); });
#endif
}

}  // namespace nanovllm::tools
