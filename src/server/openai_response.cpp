// OpenAI's response and chunk shapes: choices, logprobs (completions and chat styles), usage.
#include "server/openai_response.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <random>

namespace nanovllm::server {
namespace {

std::string random_id(const char* prefix) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s%016llx%08llx", prefix, static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng() & 0xffffffffu));
  return buf;
}

// JSON has no -inf; vLLM reports impossible tokens as -9999.0 the same way.
double finite_logprob(float lp) { return std::isfinite(lp) ? lp : -9999.0; }

json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(c);
  return b;
}

std::string sse(const json& j) {
  return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

json finish_json(FinishReason r) {
  return r == FinishReason::kNone ? json() : json(finish_reason_name(r));
}

// A reply that called tools ends with "tool_calls" (auto and required; a named call keeps
// "stop", as in vLLM and OpenAI).
json finish_with_tools(FinishReason r, bool called_tools, ToolMode mode) {
  if (r == FinishReason::kStop && called_tools && mode != ToolMode::kNamed) return "tool_calls";
  return finish_json(r);
}

json stop_reason_json(const std::string& s) { return s.empty() ? json() : json(s); }

}  // namespace

ResponseBuilder::ResponseBuilder(const GenerationRequest& req, const ServingContext& ctx)
    : req_(req),
      ctx_(ctx),
      id_(random_id(req.endpoint == Endpoint::kChat ? "chatcmpl-" : "cmpl-")),
      created_(static_cast<int64_t>(std::time(nullptr))),
      choices_(req.prompts.size() * static_cast<size_t>(req.n)) {
  if (req.endpoint == Endpoint::kChat && req.stream) {
    for (Choice& c : choices_) c.parser = std::make_shared<ReplyParser>(req.reply);
  }
}

json ResponseBuilder::finish_json(const Choice& c) const { return finish_with_tools(c.finish, c.called_tools, req_.reply.tool_mode); }

// The streamed delta of one event: reasoning_content / content / tool_calls, as vLLM sends them.
json ResponseBuilder::chat_delta(Choice& c, const ChoiceEvent& e) {
  ReplyDelta d = c.parser->push(e.out.new_text);
  if (e.out.finished) {
    ReplyDelta end = c.parser->finish();
    d.reasoning += end.reasoning;
    d.content += end.content;
    for (json& call : end.tool_calls) d.tool_calls.push_back(std::move(call));
  }
  c.called_tools = c.parser->called_tools();
  json delta = json::object();
  if (!d.reasoning.empty()) delta["reasoning_content"] = d.reasoning;
  if (!d.content.empty()) delta["content"] = d.content;
  if (!d.tool_calls.empty()) delta["tool_calls"] = d.tool_calls;
  return delta;
}

// The whole message: the same parser over the whole text, so it equals the streamed deltas.
json ResponseBuilder::chat_message(const Choice& c, bool* called_tools) const {
  ReplyParser parser(req_.reply);
  ReplyDelta d = parser.push(c.text);
  ReplyDelta end = parser.finish();
  d.reasoning += end.reasoning;
  d.content += end.content;
  for (json& call : end.tool_calls) {
    call.erase("index");
    d.tool_calls.push_back(std::move(call));
  }
  *called_tools = parser.called_tools();
  json m = {{"role", "assistant"}, {"content", d.content}};
  if (!d.tool_calls.empty()) {
    if (d.content.empty()) m["content"] = nullptr;  // OpenAI's shape for a reply that only calls tools
    m["tool_calls"] = d.tool_calls;
  }
  if (!req_.reply.reasoning_parser.empty()) m["reasoning_content"] = d.reasoning.empty() ? json() : json(d.reasoning);
  return m;
}

std::string ResponseBuilder::token_text(int id) const {
  if (!ctx_.tokenizer) return "";
  return ctx_.tokenizer->decode(std::span<const int>(&id, 1), false);
}

json ResponseBuilder::envelope(bool chunk) const {
  const bool chat = req_.endpoint == Endpoint::kChat;
  const char* object = chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
  return {{"id", id_}, {"object", object}, {"created", created_}, {"model", ctx_.model_name}};
}

json ResponseBuilder::logprobs_json(const std::vector<TokenLogprob>& lps, size_t* text_offset) const {
  if (req_.endpoint == Endpoint::kChat) {
    json content = json::array();
    for (const TokenLogprob& t : lps) {
      const std::string s = token_text(t.token_id);
      json top = json::array();
      for (const auto& [id, lp] : t.top) {
        const std::string ts = token_text(id);
        top.push_back({{"token", ts}, {"logprob", finite_logprob(lp)}, {"bytes", bytes_of(ts)}});
      }
      content.push_back({{"token", s}, {"logprob", finite_logprob(t.logprob)}, {"bytes", bytes_of(s)}, {"top_logprobs", top}});
    }
    return {{"content", content}};
  }
  json tokens = json::array(), token_logprobs = json::array(), top_logprobs = json::array(), offsets = json::array();
  for (const TokenLogprob& t : lps) {
    const std::string s = token_text(t.token_id);
    tokens.push_back(s);
    token_logprobs.push_back(finite_logprob(t.logprob));
    json top = json::object();
    top[s] = finite_logprob(t.logprob);  // vLLM lists the sampled token too
    for (const auto& [id, lp] : t.top) top[token_text(id)] = finite_logprob(lp);
    top_logprobs.push_back(std::move(top));
    offsets.push_back(*text_offset);
    *text_offset += s.size();
  }
  return {{"text_offset", offsets}, {"token_logprobs", token_logprobs}, {"tokens", tokens}, {"top_logprobs", top_logprobs}};
}

json ResponseBuilder::usage() const {
  int64_t prompt = 0, completion = 0, cached = 0;
  for (size_t i = 0; i < choices_.size(); ++i) {
    completion += choices_[i].num_tokens;
    if (i % static_cast<size_t>(req_.n) == 0) {  // each prompt once, whatever n
      prompt += choices_[i].prompt_tokens;
      cached += choices_[i].cached_tokens;
    }
  }
  return {{"prompt_tokens", prompt},
          {"total_tokens", prompt + completion},
          {"completion_tokens", completion},
          {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

std::string ResponseBuilder::stream_start() const {
  if (req_.endpoint != Endpoint::kChat) return "";
  std::string out;
  for (size_t i = 0; i < choices_.size(); ++i) {
    json j = envelope(true);
    j["choices"] = json::array({{{"index", i}, {"delta", {{"role", "assistant"}, {"content", ""}}},
                                 {"logprobs", nullptr}, {"finish_reason", nullptr}}});
    out += sse(j);
  }
  return out;
}

json ResponseBuilder::chunk_choice(int index, const ChoiceEvent& e, json logprobs) const {
  const StepOutput& o = e.out;
  return {{"index", index}, {"text", o.new_text}, {"logprobs", logprobs},
          {"finish_reason", server::finish_json(o.finish_reason)}, {"stop_reason", stop_reason_json(o.stop_reason)}};
}

void ResponseBuilder::add(const ChoiceEvent& e, std::string* out) {
  Choice& c = choices_.at(static_cast<size_t>(e.choice));
  const StepOutput& o = e.out;
  c.text += o.new_text;
  c.logprobs.insert(c.logprobs.end(), o.new_logprobs.begin(), o.new_logprobs.end());
  c.num_tokens += static_cast<int>(o.new_token_ids.size());
  if (o.num_prompt_tokens > 0) c.prompt_tokens = o.num_prompt_tokens;
  if (o.num_cached_tokens > 0) c.cached_tokens = o.num_cached_tokens;
  if (o.finished) {
    c.finish = o.finish_reason;
    c.stop_reason = o.stop_reason;
    ++num_finished_;
  }
  if (!out || (o.new_text.empty() && o.new_logprobs.empty() && !o.finished)) return;
  json logprobs = req_.logprobs ? logprobs_json(o.new_logprobs, &c.text_offset) : json();
  json j = envelope(true);
  if (req_.endpoint == Endpoint::kChat) {
    json delta = chat_delta(c, e);
    if (delta.empty() && o.new_logprobs.empty() && !o.finished) return;  // held back (a tag may be starting)
    j["choices"] = json::array({{{"index", e.choice}, {"delta", delta}, {"logprobs", logprobs},
                                 {"finish_reason", finish_json(c)}, {"stop_reason", stop_reason_json(o.stop_reason)}}});
  } else {
    j["choices"] = json::array({chunk_choice(e.choice, e, std::move(logprobs))});
  }
  *out += sse(j);
}

std::string ResponseBuilder::stream_end() const {
  std::string out;
  if (req_.include_usage) {
    json j = envelope(true);
    j["choices"] = json::array();
    j["usage"] = usage();
    out += sse(j);
  }
  return out + "data: [DONE]\n\n";
}

json ResponseBuilder::response() const {
  json j = envelope(false);
  json choices = json::array();
  for (size_t i = 0; i < choices_.size(); ++i) {
    const Choice& c = choices_[i];
    size_t offset = 0;
    json logprobs = req_.logprobs ? logprobs_json(c.logprobs, &offset) : json();
    json choice = {{"index", i}};
    bool called_tools = false;
    if (req_.endpoint == Endpoint::kChat) {
      choice["message"] = chat_message(c, &called_tools);
    } else {
      choice["text"] = c.text;
    }
    choice["logprobs"] = std::move(logprobs);
    choice["finish_reason"] = finish_with_tools(c.finish, called_tools, req_.reply.tool_mode);
    choice["stop_reason"] = stop_reason_json(c.stop_reason);
    choices.push_back(std::move(choice));
  }
  j["choices"] = std::move(choices);
  j["usage"] = usage();
  return j;
}

}  // namespace nanovllm::server
