// Reasoning and tool-call parsers of chat replies (see chat_parsers.h).
#include "server/chat_parsers.h"

#include <cstdio>
#include <optional>
#include <random>

#include "tokenizer/chat_template.h"

namespace nanovllm::server {
namespace {

constexpr std::string_view kThinkStart = "<think>", kThinkEnd = "</think>";
constexpr std::string_view kHermesStart = "<tool_call>", kHermesEnd = "</tool_call>";
constexpr std::string_view kMistralStart = "[TOOL_CALLS]";
constexpr std::string_view kPythonTag = "<|python_tag|>";

// How many bytes at the end of text (after `from`) could be the start of tag: they are held
// back, so that a tag split over two deltas is still recognised and never streamed as text.
size_t partial_tag(const std::string& text, size_t from, std::string_view tag) {
  const size_t avail = text.size() - from;
  for (size_t k = std::min(avail, tag.size() - 1); k > 0; --k) {
    if (std::string_view(text).substr(text.size() - k) == tag.substr(0, k)) return k;
  }
  return 0;
}

std::string trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

std::string call_id() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[40];
  std::snprintf(buf, sizeof buf, "chatcmpl-tool-%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

// OpenAI's shape; arguments is a JSON string, as the model's JSON object dumped (vLLM's way).
json make_call(const std::string& name, const std::string& arguments) {
  return {{"id", call_id()}, {"type", "function"}, {"function", {{"name", name}, {"arguments", arguments}}}};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::optional<json> try_parse(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

// {"name": ..., "arguments" | "parameters": {...}} -> a call; false when it is not one.
bool add_call(const json& obj, json& calls) {
  if (!obj.is_object()) return false;
  auto name = obj.find("name");
  if (name == obj.end() || !name->is_string()) return false;
  auto args = obj.find("arguments");
  if (args == obj.end()) args = obj.find("parameters");
  const json arguments = args == obj.end() ? json::object() : *args;
  calls.push_back(make_call(name->get<std::string>(), arguments.is_string() ? arguments.get<std::string>() : dump(arguments)));
  return true;
}

json parse_hermes(const std::string& text) {
  json calls = json::array();
  for (size_t pos = text.find(kHermesStart); pos != std::string::npos; pos = text.find(kHermesStart, pos)) {
    pos += kHermesStart.size();
    const size_t end = text.find(kHermesEnd, pos);
    const std::optional<json> obj = try_parse(trim(std::string_view(text).substr(pos, end - pos)));
    if (!obj || !add_call(*obj, calls)) return json::array();
    if (end == std::string::npos) break;
    pos = end + kHermesEnd.size();
  }
  return calls;
}

json parse_mistral(const std::string& text) {
  const size_t pos = text.find(kMistralStart);
  if (pos == std::string::npos) return json::array();
  const std::optional<json> v = try_parse(trim(std::string_view(text).substr(pos + kMistralStart.size())));
  json calls = json::array();
  if (!v) return calls;
  const json list = v->is_array() ? *v : json::array({*v});
  for (const json& obj : list) {
    if (!add_call(obj, calls)) return json::array();
  }
  return calls;
}

// Llama 3.x: one JSON object, or several separated by ';', after an optional <|python_tag|>.
json parse_llama3(const std::string& text) {
  std::string body = trim(text);
  if (body.starts_with(kPythonTag)) body = trim(body.substr(kPythonTag.size()));
  json calls = json::array();
  if (std::optional<json> whole = try_parse(body)) {
    return add_call(*whole, calls) ? calls : json::array();
  }
  size_t start = 0;
  while (start < body.size()) {
    size_t end = body.find(';', start);
    std::optional<json> obj;
    // a ';' inside a string argument: extend until the piece parses
    while (!(obj = try_parse(trim(std::string_view(body).substr(start, end - start)))) && end != std::string::npos) {
      end = body.find(';', end + 1);
    }
    if (!obj || !add_call(*obj, calls)) return json::array();
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return calls;
}

}  // namespace

const std::vector<std::string>& tool_parser_names() {
  static const std::vector<std::string> names = {"hermes", "llama3_json", "mistral"};
  return names;
}

const std::vector<std::string>& reasoning_parser_names() {
  static const std::vector<std::string> names = {"qwen3", "deepseek_r1"};
  return names;
}

json parse_tool_calls(const std::string& text, const ReplyFormat& f) {
  switch (f.tool_mode) {
    case ToolMode::kNone: return json::array();
    case ToolMode::kNamed: return json::array({make_call(f.named_function, trim(text))});
    case ToolMode::kRequired: {  // the grammar's [{"name": ..., "parameters": {...}}, ...]
      const std::optional<json> v = try_parse(trim(text));
      json calls = json::array();
      if (!v || !v->is_array()) return calls;
      for (const json& obj : *v) {
        if (!add_call(obj, calls)) return json::array();
      }
      return calls;
    }
    case ToolMode::kAuto:
      if (f.tool_parser == "mistral") return parse_mistral(text);
      if (f.tool_parser == "llama3_json") return parse_llama3(text);
      return parse_hermes(text);
  }
  return json::array();
}

std::string detect_tool_parser(const std::string& rendered) {
  if (rendered.find(kHermesStart) != std::string::npos) return "hermes";
  if (rendered.find(kMistralStart) != std::string::npos) return "mistral";
  if (rendered.find("\"parameters\"") != std::string::npos || rendered.find(kPythonTag) != std::string::npos) {
    return "llama3_json";
  }
  return "";
}

std::string template_tool_parser(const ChatTemplate* tmpl) {
  if (!tmpl) return "";
  const json call = {{"type", "function"}, {"id", "call_0"}, {"function", {{"name", "probe_fn"}, {"arguments", {{"x", 1}}}}}};
  const json messages = json::array({{{"role", "user"}, {"content", "hi"}},
                                     {{"role", "assistant"}, {"content", ""}, {"tool_calls", json::array({call})}}});
  const json tools = json::array({{{"type", "function"}, {"function", {{"name", "probe_fn"}, {"parameters", {{"type", "object"}}}}}}});
  try {
    return detect_tool_parser(tmpl->render(messages, false, json::object(), tools));
  } catch (const std::exception&) {
    return "";  // a template that refuses tool calls: tool_choice auto is answered 400
  }
}

ReplyDelta ReplyParser::push(const std::string& text) {
  text_ += text;
  return advance(false);
}

ReplyDelta ReplyParser::finish() { return advance(true); }

ReplyDelta ReplyParser::advance(bool final) {
  ReplyDelta d;
  const bool forced = f_.tool_mode == ToolMode::kRequired || f_.tool_mode == ToolMode::kNamed;
  if (phase_ == Phase::kStart) {
    if (forced) {
      phase_ = Phase::kTools;  // the grammar made the whole reply the calls' JSON
    } else if (f_.reasoning_parser == "deepseek_r1") {
      phase_ = Phase::kReasoning;  // its template opens <think> in the prompt; one here is skipped
    } else if (f_.reasoning_parser == "qwen3") {
      if (!final && text_.size() < kThinkStart.size() && kThinkStart.starts_with(text_)) return d;  // undecided
      phase_ = text_.starts_with(kThinkStart) ? Phase::kReasoning : Phase::kContent;
    } else {
      phase_ = Phase::kContent;
    }
    if (phase_ == Phase::kReasoning) {
      if (!final && text_.size() < kThinkStart.size() && kThinkStart.starts_with(text_)) {
        phase_ = Phase::kStart;
        return d;
      }
      if (text_.starts_with(kThinkStart)) pos_ = kThinkStart.size();
    }
  }
  if (phase_ == Phase::kReasoning) emit_reasoning(d, final);
  if (phase_ == Phase::kContent) emit_content(d, final);
  if (phase_ == Phase::kTools && final) emit_tools(d);
  return d;
}

void ReplyParser::emit_reasoning(ReplyDelta& d, bool final) {
  const size_t end = text_.find(kThinkEnd, pos_);
  if (end != std::string::npos) {
    d.reasoning += text_.substr(pos_, end - pos_);
    pos_ = end + kThinkEnd.size();
    phase_ = Phase::kContent;
    return;
  }
  const size_t keep = final ? 0 : partial_tag(text_, pos_, kThinkEnd);
  d.reasoning += text_.substr(pos_, text_.size() - keep - pos_);
  pos_ = text_.size() - keep;
}

// Content streams until a tool call starts (auto mode); from there the rest is buffered and
// parsed at the end, so that a call is handed out whole, with its arguments complete.
void ReplyParser::emit_content(ReplyDelta& d, bool final) {
  size_t end = text_.size(), keep = 0;
  if (f_.tool_mode == ToolMode::kAuto) {
    if (f_.tool_parser == "llama3_json") {
      // A Llama 3 call is the whole reply: decided once, by its first non-blank characters.
      if (!llama_decided_) {
        const size_t first = text_.find_first_not_of(" \t\r\n", pos_);
        const bool undecided = first == std::string::npos ||
                               std::string_view(kPythonTag).starts_with(std::string_view(text_).substr(first));
        if (undecided && !final) return;
        llama_decided_ = true;
        if (first != std::string::npos && (text_[first] == '{' || text_.compare(first, kPythonTag.size(), kPythonTag) == 0)) {
          pos_ = first;
          phase_ = Phase::kTools;
          if (final) emit_tools(d);
          return;
        }
      }
    } else {
      const std::string_view marker = f_.tool_parser == "mistral" ? kMistralStart : kHermesStart;
      const size_t at = text_.find(marker, pos_);
      if (at != std::string::npos) {
        d.content += text_.substr(pos_, at - pos_);
        pos_ = at;
        phase_ = Phase::kTools;
        if (final) emit_tools(d);
        return;
      }
      if (!final) keep = partial_tag(text_, pos_, marker);
    }
  }
  end = text_.size() - keep;
  d.content += text_.substr(pos_, end - pos_);
  pos_ = end;
}

void ReplyParser::emit_tools(ReplyDelta& d) {
  const std::string rest = text_.substr(pos_);
  pos_ = text_.size();
  json calls = parse_tool_calls(rest, f_);
  if (f_.max_calls > 0 && calls.size() > static_cast<size_t>(f_.max_calls)) calls.erase(calls.begin() + f_.max_calls, calls.end());
  if (calls.empty()) {  // not a call after all (or malformed): it is text, as vLLM returns it
    d.content += rest;
    return;
  }
  for (json& c : calls) {
    d.tool_calls.push_back({{"index", next_call_++}, {"id", c["id"]}, {"type", "function"}, {"function", c["function"]}});
  }
  called_tools_ = true;
}

}  // namespace nanovllm::server
