// The reply parsers on texts in each model family's native format (as their chat templates
// render an assistant tool call and as the models write them), streamed in every split.
#include "server/chat_parsers.h"

#include <gtest/gtest.h>

#include "tokenizer/chat_template.h"

namespace nanovllm::server {
namespace {

ReplyDelta run(const ReplyFormat& f, const std::string& text, size_t piece) {
  ReplyParser p(f);
  ReplyDelta all;
  auto add = [&](ReplyDelta d) {
    all.reasoning += d.reasoning;
    all.content += d.content;
    for (json& c : d.tool_calls) all.tool_calls.push_back(std::move(c));
  };
  for (size_t i = 0; i < text.size(); i += piece) add(p.push(text.substr(i, piece)));
  add(p.finish());
  return all;
}

// The whole text at once, and streamed 1, 2, 3, 5 and 7 bytes at a time: the same result.
ReplyDelta parse(const ReplyFormat& f, const std::string& text) {
  const ReplyDelta whole = run(f, text, text.size() + 1);
  for (size_t piece : {1, 2, 3, 5, 7}) {
    const ReplyDelta s = run(f, text, piece);
    EXPECT_EQ(s.reasoning, whole.reasoning) << piece;
    EXPECT_EQ(s.content, whole.content) << piece;
    EXPECT_EQ(s.tool_calls.size(), whole.tool_calls.size()) << piece;
    for (size_t i = 0; i < s.tool_calls.size() && i < whole.tool_calls.size(); ++i) {
      EXPECT_EQ(s.tool_calls[i]["function"], whole.tool_calls[i]["function"]) << piece;
    }
  }
  return whole;
}

ReplyFormat autotools(const std::string& parser) {
  ReplyFormat f;
  f.tool_mode = ToolMode::kAuto;
  f.tool_parser = parser;
  return f;
}

void expect_call(const json& call, const std::string& name, const json& args) {
  EXPECT_EQ(call["type"], "function");
  EXPECT_TRUE(call["id"].get<std::string>().starts_with("chatcmpl-tool-"));
  EXPECT_EQ(call["function"]["name"], name);
  EXPECT_EQ(json::parse(call["function"]["arguments"].get<std::string>()), args);
}

// Qwen2.5 / Qwen3 (Hermes format), as Qwen2.5-7B-Instruct answers a weather question.
TEST(ChatParsers, HermesQwenToolCalls) {
  const std::string text =
      "Let me check both cities.\n<tool_call>\n{\"name\": \"get_current_temperature\", \"arguments\": "
      "{\"location\": \"San Francisco, CA, USA\", \"unit\": \"celsius\"}}\n</tool_call>\n<tool_call>\n"
      "{\"name\": \"get_current_temperature\", \"arguments\": {\"location\": \"Paris, France\"}}\n</tool_call>";
  const ReplyDelta d = parse(autotools("hermes"), text);
  EXPECT_EQ(d.content, "Let me check both cities.\n");
  ASSERT_EQ(d.tool_calls.size(), 2u);
  expect_call(d.tool_calls[0], "get_current_temperature", {{"location", "San Francisco, CA, USA"}, {"unit", "celsius"}});
  expect_call(d.tool_calls[1], "get_current_temperature", {{"location", "Paris, France"}});
  EXPECT_EQ(d.tool_calls[1]["index"], 1);
}

TEST(ChatParsers, HermesWithoutCallsOrBrokenJsonIsContent) {
  EXPECT_EQ(parse(autotools("hermes"), "The <tool> is < here").content, "The <tool> is < here");
  const std::string broken = "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": \n</tool_call>";
  const ReplyDelta d = parse(autotools("hermes"), broken);
  EXPECT_TRUE(d.tool_calls.empty());
  EXPECT_EQ(d.content, broken);
}

// Llama 3.1/3.2 JSON tool calling: the whole reply is {"name": ..., "parameters": ...}.
TEST(ChatParsers, Llama3JsonToolCalls) {
  ReplyDelta d = parse(autotools("llama3_json"),
                       "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Tokyo\", \"days\": 3}}");
  ASSERT_EQ(d.tool_calls.size(), 1u);
  expect_call(d.tool_calls[0], "get_weather", {{"city", "Tokyo"}, {"days", 3}});
  EXPECT_EQ(d.content, "");
  d = parse(autotools("llama3_json"),
            "<|python_tag|>{\"name\": \"a\", \"parameters\": {\"s\": \"x;y\"}}; {\"name\": \"b\", \"parameters\": {}}");
  ASSERT_EQ(d.tool_calls.size(), 2u);
  expect_call(d.tool_calls[0], "a", {{"s", "x;y"}});
  expect_call(d.tool_calls[1], "b", json::object());
  EXPECT_EQ(parse(autotools("llama3_json"), "It is sunny {mostly}.").content, "It is sunny {mostly}.");
}

// Mistral-7B-Instruct-v0.3: [TOOL_CALLS] then a JSON list (the special token kept in the text).
TEST(ChatParsers, MistralToolCalls) {
  const ReplyDelta d = parse(autotools("mistral"),
                             "[TOOL_CALLS] [{\"name\": \"get_current_weather\", \"arguments\": {\"location\": "
                             "\"Paris, France\", \"format\": \"celsius\"}}]");
  ASSERT_EQ(d.tool_calls.size(), 1u);
  expect_call(d.tool_calls[0], "get_current_weather", {{"location", "Paris, France"}, {"format", "celsius"}});
  EXPECT_EQ(parse(autotools("mistral"), "No tools [needed].").content, "No tools [needed].");
}

TEST(ChatParsers, ForcedToolChoiceReadsTheGrammarsJson) {
  ReplyFormat required;
  required.tool_mode = ToolMode::kRequired;
  ReplyDelta d = parse(required, R"([{"name":"add","parameters":{"a":1,"b":2}},{"name":"neg","parameters":{"x":3}}])");
  ASSERT_EQ(d.tool_calls.size(), 2u);
  expect_call(d.tool_calls[1], "neg", {{"x", 3}});
  required.max_calls = 1;
  EXPECT_EQ(parse(required, R"([{"name":"add","parameters":{}},{"name":"neg","parameters":{}}])").tool_calls.size(), 1u);
  ReplyFormat named;
  named.tool_mode = ToolMode::kNamed;
  named.named_function = "add";
  d = parse(named, R"({"a":1,"b":2})");
  ASSERT_EQ(d.tool_calls.size(), 1u);
  expect_call(d.tool_calls[0], "add", {{"a", 1}, {"b", 2}});
}

// Qwen3 thinking mode: <think>...</think> then the answer.
TEST(ChatParsers, Qwen3Reasoning) {
  ReplyFormat f;
  f.reasoning_parser = "qwen3";
  ReplyDelta d = parse(f, "<think>\nThe user greets me. I should greet back.\n</think>\n\nHello! How can I help?");
  EXPECT_EQ(d.reasoning, "\nThe user greets me. I should greet back.\n");
  EXPECT_EQ(d.content, "\n\nHello! How can I help?");
  d = parse(f, "Hello without thinking </think> stays.");  // enable_thinking=False: no <think>
  EXPECT_EQ(d.reasoning, "");
  EXPECT_EQ(d.content, "Hello without thinking </think> stays.");
  d = parse(f, "<think>cut off by max_tokens");
  EXPECT_EQ(d.reasoning, "cut off by max_tokens");
  EXPECT_EQ(d.content, "");
}

// DeepSeek-R1: the template opens <think> in the prompt, so the reply starts inside it.
TEST(ChatParsers, DeepSeekR1ReasoningThenToolCall) {
  ReplyFormat f = autotools("hermes");
  f.reasoning_parser = "deepseek_r1";
  const ReplyDelta d = parse(f, "I need the weather.\n</think>\n\n<tool_call>\n{\"name\": \"w\", \"arguments\": {}}\n</tool_call>");
  EXPECT_EQ(d.reasoning, "I need the weather.\n");
  EXPECT_EQ(d.content, "\n\n");
  ASSERT_EQ(d.tool_calls.size(), 1u);
  EXPECT_EQ(parse(f, "<think>still thinking").reasoning, "still thinking");
}

TEST(ChatParsers, ToolFormatIsDetectedFromTheRenderedTemplate) {
  EXPECT_EQ(detect_tool_parser("<|im_start|>assistant\n<tool_call>\n{\"name\": \"probe_fn\"}"), "hermes");
  EXPECT_EQ(detect_tool_parser("[TOOL_CALLS] [{\"name\": \"probe_fn\"}]"), "mistral");
  EXPECT_EQ(detect_tool_parser("{\"name\": \"probe_fn\", \"parameters\": {\"x\": 1}}<|eot_id|>"), "llama3_json");
  EXPECT_EQ(detect_tool_parser("assistant: hi"), "");
}

// The real templates from ../shared: Qwen3 and Qwen2.5 write Hermes calls; Llama 3's (3.0,
// before tool calling) writes none, so auto needs --tool-call-parser there.
TEST(ChatParsers, RealTemplatesAreRecognised) {
  auto format = [](const char* name) {
    const ChatTemplate t = ChatTemplate::from_tokenizer_config(std::string(NANOVLLM_SHARED_DIR) + "/tokenizers/" + name);
    return template_tool_parser(&t);
  };
  EXPECT_EQ(format("qwen3"), "hermes");
  EXPECT_EQ(format("qwen2.5"), "hermes");
  EXPECT_EQ(format("llama3"), "");
  EXPECT_EQ(template_tool_parser(nullptr), "");
}

}  // namespace
}  // namespace nanovllm::server
