// OpenAI response bodies and Server-Sent-Event chunks, built from the engine's step outputs.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "server/engine_worker.h"
#include "server/openai_request.h"

namespace nanovllm::server {

// Collects the outputs of one HTTP request's choices and renders them in OpenAI's shapes
// (text_completion / chat.completion, and their .chunk forms when streaming).
class ResponseBuilder {
 public:
  ResponseBuilder(const GenerationRequest& req, const ServingContext& ctx);

  // SSE data the stream opens with (chat: each choice's assistant role); may be empty.
  std::string stream_start() const;
  // Records an event; when streaming, appends its chunk (if it carries anything) to sse.
  void add(const ChoiceEvent& e, std::string* sse);
  bool all_finished() const { return num_finished_ == choices_.size(); }
  // SSE data that closes the stream: the usage chunk when asked for, then [DONE].
  std::string stream_end() const;
  // The whole non-streamed response.
  json response() const;

 private:
  struct Choice {
    std::string text;
    std::vector<TokenLogprob> logprobs;
    int num_tokens = 0, prompt_tokens = 0, cached_tokens = 0;
    FinishReason finish = FinishReason::kNone;
    std::string stop_reason;
    size_t text_offset = 0;  // completions logprobs: where the next token's text starts
    std::shared_ptr<ReplyParser> parser;  // chat streaming: reasoning and tool calls as they come
    bool called_tools = false;
  };

  json chunk_choice(int index, const ChoiceEvent& e, json logprobs) const;
  json chat_delta(Choice& c, const ChoiceEvent& e);
  json chat_message(const Choice& c, bool* called_tools) const;
  json finish_json(const Choice& c) const;
  json logprobs_json(const std::vector<TokenLogprob>& lps, size_t* text_offset) const;
  json usage() const;
  json envelope(bool chunk) const;
  std::string token_text(int id) const;

  const GenerationRequest& req_;
  const ServingContext& ctx_;
  std::string id_;
  int64_t created_;
  std::vector<Choice> choices_;
  size_t num_finished_ = 0;
};

}  // namespace nanovllm::server
