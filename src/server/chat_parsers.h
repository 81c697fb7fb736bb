// Reading a chat reply back as vLLM does: the reasoning (Qwen3 / DeepSeek-R1 <think>...</think>)
// apart from the content, and tool calls in the model's native format (Hermes/Qwen
// <tool_call>, Llama 3 JSON, Mistral [TOOL_CALLS]) or in the JSON that a forced tool_choice
// constrains the output to. One streaming parser serves both paths: the non-streamed reply is
// the same parser fed the whole text at once, so streaming gives the same result.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace nanovllm {
class ChatTemplate;
}

namespace nanovllm::server {

using json = nlohmann::ordered_json;

enum class ToolMode { kNone, kAuto, kRequired, kNamed };

struct ReplyFormat {
  std::string reasoning_parser;  // "", "qwen3" or "deepseek_r1"
  ToolMode tool_mode = ToolMode::kNone;
  std::string tool_parser;       // kAuto: "hermes", "llama3_json" or "mistral"
  std::string named_function;    // kNamed: the function the output calls
  int max_calls = 0;             // parallel_tool_calls false: 1 (later calls are dropped); 0 = any
};

// The tool-call parsers this server knows, and reasoning parsers (for --help and checks).
const std::vector<std::string>& tool_parser_names();
const std::vector<std::string>& reasoning_parser_names();

// What a chunk of the reply adds: text for delta.reasoning_content and delta.content, and
// complete tool calls (OpenAI's {"id", "type", "function": {"name", "arguments"}}).
struct ReplyDelta {
  std::string reasoning;
  std::string content;
  json tool_calls = json::array();
  bool empty() const { return reasoning.empty() && content.empty() && tool_calls.empty(); }
};

class ReplyParser {
 public:
  explicit ReplyParser(ReplyFormat format) : f_(std::move(format)) {}
  // Text as it arrives; returns what can be handed out now (a possible tag start is held).
  ReplyDelta push(const std::string& text);
  // The end of the reply: everything still held, and the tool calls of the buffered part.
  ReplyDelta finish();
  bool called_tools() const { return called_tools_; }

 private:
  enum class Phase { kStart, kReasoning, kContent, kTools };
  ReplyDelta advance(bool final);
  void emit_reasoning(ReplyDelta& d, bool final);
  void emit_content(ReplyDelta& d, bool final);
  void emit_tools(ReplyDelta& d);

  ReplyFormat f_;
  std::string text_;
  size_t pos_ = 0;  // text_ before this was handed out (or skipped, as tags are)
  Phase phase_ = Phase::kStart;
  bool called_tools_ = false;
  bool llama_decided_ = false;  // llama3_json: whether the reply is a call is known
  int next_call_ = 0;
};

// The tool calls in `text` in the given format, or an empty array when it holds none that
// parse (the caller then treats the text as content). Exposed for the parser tests.
json parse_tool_calls(const std::string& text, const ReplyFormat& format);

// The tool-call format in a chat template's rendering of an assistant tool call: "hermes",
// "mistral", "llama3_json", or "" when none is recognised.
std::string detect_tool_parser(const std::string& rendered_tool_call);

// The tool-call format a chat template writes (vLLM makes the user name it; the template
// already knows): an assistant tool call rendered through it. "" for none or a null template.
std::string template_tool_parser(const ChatTemplate* tmpl);

}  // namespace nanovllm::server
