// Parsing of OpenAI-style request bodies into engine submissions, with strict type and range
// checks that name the offending field (ApiError 400).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/tokenizer.h"
#include "server/chat_parsers.h"
#include "nanovllm/sampling_params.h"
#include "server/engine_worker.h"

namespace nanovllm {
class ChatTemplate;
}

namespace nanovllm::server {

using json = nlohmann::ordered_json;

// What the parsers need to know about the model being served.
struct ServingContext {
  const Tokenizer* tokenizer = nullptr;          // null: token-id prompts only
  const ChatTemplate* chat_template = nullptr;   // null: no chat endpoint
  SamplingParams defaults;                       // generation_config.json over SamplingParams{}
  int max_model_len = 0;                         // prompt + new tokens at most
  std::string model_name;                        // the served name
  std::string tool_parser;       // how tool calls are read ("hermes", ...); "" = tool_choice auto refused
  std::string reasoning_parser;  // "qwen3", "deepseek_r1" or "" (reasoning stays in content)
};

enum class Endpoint { kCompletions, kChat };

struct GenerationRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::vector<std::vector<int>> prompts;  // token ids, one entry per prompt
  std::vector<SamplingParams> params;     // per prompt (max_tokens may depend on its length)
  int n = 1;                              // samples per prompt; choice = prompt * n + sample
  bool stream = false;
  bool include_usage = false;             // stream_options.include_usage
  bool logprobs = false;                  // answer with logprobs
  ReplyFormat reply;                      // chat: how the reply is read back (reasoning, tool calls)
};

// The body as JSON; ApiError 400 for malformed JSON or invalid UTF-8, and when it is not an object.
json parse_body(const std::string& body);

// ApiError 404 when "model" names another model than the one served.
void check_model(const json& body, const std::string& served_name);

GenerationRequest parse_completion_request(const json& body, const ServingContext& ctx);
GenerationRequest parse_chat_request(const json& body, const ServingContext& ctx);

// One engine submission per choice; sample i > 0 of a seeded request uses seed + i, so the
// samples differ and the same request still gives the same answer.
std::vector<Submission> expand(const GenerationRequest& req);

// /tokenize and /detokenize bodies in vLLM's shapes.
json tokenize(const json& body, const ServingContext& ctx);
json detokenize(const json& body, const ServingContext& ctx);

// The chat prompt (template applied) for a messages array, as /v1/chat/completions renders it.
std::string render_chat(const json& body, const ServingContext& ctx);

}  // namespace nanovllm::server
