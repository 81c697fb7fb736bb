// Fuzz target: a chat template's source, lexed, parsed and rendered by the Jinja engine with a
// realistic chat (system prompt, tool call and result, list content, tools, a template kwarg), as
// the server renders a model's template. Expected outcome for bad input: nanovllm::Error.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz_input.h"
#include "nanovllm/error.h"
#include "tokenizer/chat_template.h"

namespace {

using ojson = nlohmann::ordered_json;

const ojson& messages() {
  static const ojson m = ojson::parse(R"([
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "What is the weather in Paris?"},
    {"role": "assistant", "content": "", "reasoning_content": "Call the tool.",
     "tool_calls": [{"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]},
    {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "{\"temp\": 21.5}"},
    {"role": "user", "content": [{"type": "text", "text": "Thanks!"}, {"type": "image"}]}
  ])");
  return m;
}

const ojson& tools() {
  static const ojson t = ojson::parse(R"([
    {"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                    "days": {"type": "integer", "minimum": 1}}, "required": ["city"]}}}
  ])");
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nanovllm;
  if (size > fuzz::kMaxInput) return -1;
  try {
    ChatTemplate tmpl(std::string(fuzz::as_text(data, size)),
                      {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"pad_token", "<pad>"}});
    const ojson kwargs = {{"enable_thinking", false}, {"date_string", "26 Jul 2024"}};
    volatile size_t sink = tmpl.render(messages(), true, kwargs, tools()).size() +
                           tmpl.render(messages(), false).size();
    (void)sink;
  } catch (const Error& e) {
    fuzz::rejected(e);
  }
  return 0;
}
