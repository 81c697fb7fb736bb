// The OpenAI-compatible HTTP server: routes, authentication, errors, and a clean drain on stop.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace nanovllm {
class LLM;
}

namespace nanovllm::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;                       // 0 = any free port (printed at start-up)
  std::string api_key;                   // when set, /v1/* needs "Authorization: Bearer KEY"
  std::string served_model_name;         // the "model" clients send; default: the --model path
  int max_waiting = 1024;                // 503 beyond this many waiting requests; 0 = no limit
  size_t max_body_bytes = 8u << 20;      // larger bodies (once decoded) get 413
  int max_connections = 1000;            // open at once; more get 503
  int max_connections_per_client = 256;  // from one IP address; more get 429
  double header_timeout = 10;            // seconds for a request's head to arrive
  double keep_alive_timeout = 5;         // an idle kept-alive connection closes after this
  double drain_seconds = 30;             // on stop, in-flight requests get this long to finish
  std::string chat_template_file;        // a Jinja file used instead of the tokenizer's chat template
  std::string tool_call_parser;          // "hermes", "llama3_json", "mistral"; "" = the template's format
  std::string reasoning_parser;          // "qwen3", "deepseek_r1"; "" = reasoning stays in content
  bool enable_auto_tool_choice = false;  // vLLM's flag, accepted: tool_choice auto is always on
};

// Serves llm until should_stop() returns true (polled ten times a second; e.g. set by a
// SIGINT handler), then stops accepting, lets in-flight requests finish for drain_seconds,
// aborts the rest and returns. Prints "listening on http://HOST:PORT" to stdout once bound.
// Throws nanovllm::Error when the address cannot be bound ("address already in use").
void serve(LLM& llm, const ServerOptions& opts, const std::function<bool()>& should_stop);

}  // namespace nanovllm::server
