// Request parsing and response shapes of the OpenAI server, without HTTP: field checks, prompt
// forms, per-choice seeds, usage sums and the Prometheus exposition.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "server/api_error.h"
#include "server/metrics.h"
#include "server/openai_request.h"
#include "server/openai_response.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/hf_tokenizer.h"

namespace nanovllm::server {
namespace {

const std::string kStories = std::string(NANOVLLM_SHARED_DIR) + "/models/tinystories-656k";

class OpenAiRequestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tok_ = HfTokenizer::from_dir(kStories);
    ctx_.tokenizer = tok_.get();
    ctx_.defaults.temperature = 0.5f;
    ctx_.max_model_len = 512;
    ctx_.model_name = kStories;  // any name; check_model tests use their own
  }
  int status_of(const std::string& body) {
    try {
      parse_completion_request(parse_body(body), ctx_);
    } catch (const ApiError& e) {
      return e.status();
    }
    return 200;
  }
  // The param of the 400 that the body gets ("" when it is accepted); the message must name it.
  std::string refused_param(const json& body, Endpoint endpoint = Endpoint::kCompletions) {
    try {
      if (endpoint == Endpoint::kChat) parse_chat_request(body, ctx_);
      else parse_completion_request(body, ctx_);
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status(), 400) << body.dump();
      EXPECT_NE(std::string(e.what()).find(e.param().substr(0, e.param().find('.'))), std::string::npos) << e.what();
      return e.param();
    }
    return "";
  }
  std::unique_ptr<HfTokenizer> tok_;
  ServingContext ctx_;
};

TEST_F(OpenAiRequestTest, FieldsMapToSamplingParams) {
  const GenerationRequest r = parse_completion_request(
      parse_body(R"({"prompt": "Once", "max_tokens": 7, "top_k": 3, "stop": "x", "seed": 9, "n": 2,
                     "stream": true, "stream_options": {"include_usage": true}, "logprobs": 2})"),
      ctx_);
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(r.prompts[0], tok_->encode("Once", true));
  const SamplingParams& p = r.params[0];
  EXPECT_EQ(p.max_tokens, 7);
  EXPECT_EQ(p.top_k, 3);
  EXPECT_FLOAT_EQ(p.temperature, 0.5f);  // unset: the model's default
  EXPECT_EQ(p.stop, std::vector<std::string>{"x"});
  EXPECT_EQ(p.logprobs, 2);
  EXPECT_TRUE(r.stream && r.include_usage && r.logprobs);
  const std::vector<Submission> subs = expand(r);
  ASSERT_EQ(subs.size(), 2u);
  EXPECT_EQ(*subs[0].params.seed, 9u);
  EXPECT_EQ(*subs[1].params.seed, 10u);
}

TEST_F(OpenAiRequestTest, DefaultMaxTokensIsSixteen) {
  const GenerationRequest r = parse_completion_request(parse_body(R"({"prompt": [[1, 2], [3]]})"), ctx_);
  ASSERT_EQ(r.params.size(), 2u);
  EXPECT_EQ(r.params[0].max_tokens, 16);
  EXPECT_EQ(r.prompts[1], std::vector<int>{3});
}

TEST_F(OpenAiRequestTest, BadFieldsAre400) {
  for (const char* body : {"{", "[]", R"({"prompt": 3})", R"({"prompt": "a", "max_tokens": 0})",
                           R"({"prompt": "a", "max_tokens": 1e20})", R"({"prompt": "a", "top_p": 2})",
                           R"({"prompt": "a", "n": "2"})", R"({"prompt": "a", "max_tokens": 600})",
                           R"({"prompt": "a", "stop": [1]})", R"({"prompt": "a", "echo": true})"}) {
    EXPECT_EQ(status_of(body), 400) << body;
  }
  EXPECT_EQ(status_of(R"({"prompt": "a", "max_tokens": 5.0})"), 200);
}

// Every field is honoured or refused with 400 naming it; none is silently dropped.
TEST_F(OpenAiRequestTest, UnsupportedFieldsAre400NamingTheField) {
  const json base = {{"prompt", "Once"}, {"max_tokens", 2}};
  struct Case {
    const char* field;
    json value;
  };
  const Case refused[] = {
      {"best_of", 3}, {"suffix", "end"}, {"prompt_logprobs", 1}, {"guided_json", 5},
      {"guided_regex", 1}, {"guided_choice", json::array()}, {"guided_decoding_backend", "xgrammar"},
      {"structured_outputs", {{"frobnicate", 1}}}, {"response_format", {{"type", "structural_tag"}}},
      {"response_format", {{"type", "json_schema"}, {"json_schema", json::object()}}},
      {"frobnicate", 1}, {"functions", json::array()}, {"echo", true}, {"tool_choice", "auto"},
      {"messages", json::array()}, {"store", false}, {"spaces_between_special_tokens", false}};
  for (const Case& c : refused) {
    json body = base;
    body[c.field] = c.value;
    EXPECT_EQ(refused_param(body), c.field) << body.dump();
  }
  json so = base;
  so["stream_options"] = {{"include_usage", true}, {"continuous_usage_stats", true}};
  EXPECT_EQ(refused_param(so), "stream_options");
  // Accepted: informational fields, the no-op forms, null for a known unsupported field.
  const Case accepted[] = {
      {"user", "u-1"}, {"safety_identifier", "s"}, {"prompt_cache_key", "k"}, {"metadata", {{"a", "b"}}},
      {"best_of", 1}, {"response_format", {{"type", "text"}}}, {"suffix", nullptr}, {"suffix", ""},
      {"guided_json", nullptr}, {"prompt_logprobs", nullptr}, {"echo", false}, {"logit_bias", json::object()},
      {"include_stop_str_in_output", true}, {"guided_json", json::object()}, {"guided_regex", "a+"},
      {"guided_choice", {"a", "b"}}, {"guided_grammar", "root ::= x"}, {"structured_outputs", {{"json", json::object()}}},
      {"response_format", {{"type", "json_object"}}}};
  for (const Case& c : accepted) {
    json body = base;
    body[c.field] = c.value;
    EXPECT_EQ(refused_param(body), "") << body.dump();
  }
  json n2 = base;
  n2["n"] = 2;
  n2["best_of"] = 2;
  EXPECT_EQ(refused_param(n2), "");
}

TEST_F(OpenAiRequestTest, WrongTypesAre400NamingTheField) {
  const json base = {{"prompt", "Once"}};
  const std::pair<const char*, json> wrong[] = {
      {"max_tokens", "10"}, {"temperature", "hot"}, {"top_p", true}, {"top_k", "5"}, {"min_p", json::array()},
      {"seed", 1.5}, {"n", "2"}, {"best_of", "1"}, {"stop", 5}, {"stop_token_ids", {"a"}}, {"ignore_eos", 1},
      {"min_tokens", "1"}, {"presence_penalty", "x"}, {"frequency_penalty", {1}}, {"repetition_penalty", false},
      {"logprobs", "1"}, {"skip_special_tokens", "no"}, {"include_stop_str_in_output", 1}, {"logit_bias", {1, 2}},
      {"logit_bias", {{"5", "x"}}}, {"response_format", "text"}, {"user", 5}, {"metadata", "x"},
      {"metadata", {{"a", 1}}}, {"stream", "true"}, {"stream_options", 1}, {"echo", "no"}, {"suffix", 1},
      {"max_completion_tokens", "3"}};
  for (const auto& [key, value] : wrong) {
    json body = base;
    body[key] = value;
    EXPECT_EQ(refused_param(body), key) << body.dump();
  }
}

TEST_F(OpenAiRequestTest, ChatFieldsAreHonouredOrRefused) {
  const ChatTemplate tpl = ChatTemplate::from_tokenizer_config(std::string(NANOVLLM_SHARED_DIR) + "/tokenizers/qwen3");
  ctx_.chat_template = &tpl;
  const json base = {{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"max_tokens", 2}};
  const std::pair<const char*, json> refused[] = {
      {"tool_choice", "required"}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "f"}}}}},
      {"tool_choice", 1}, {"suffix", "x"}, {"prompt", "x"}, {"echo", false}, {"guided_json", "{not json"},
      {"response_format", {{"type", "json_schema"}}}, {"parallel_tool_calls", 1}, {"best_of", 2},
      {"top_logprobs", "2"}, {"tools", "x"}, {"add_generation_prompt", "yes"}, {"chat_template_kwargs", 1},
      {"logprobs", 1}, {"continue_final_message", true}};
  for (const auto& [key, value] : refused) {
    json body = base;
    body[key] = value;
    EXPECT_EQ(refused_param(body, Endpoint::kChat), key) << body.dump();
  }
  const std::pair<const char*, json> accepted[] = {
      {"tool_choice", "auto"}, {"tool_choice", "none"}, {"tool_choice", nullptr}, {"user", "me"},
      {"response_format", {{"type", "text"}}}, {"logit_bias", {{"5", 1}}}, {"max_completion_tokens", 2},
      {"guided_json", {{"type", "object"}}}};
  for (const auto& [key, value] : accepted) {
    json body = base;
    body[key] = value;
    EXPECT_EQ(refused_param(body, Endpoint::kChat), "") << body.dump();
  }
}

TEST_F(OpenAiRequestTest, LogitBiasAndIncludeStopStrMapToSamplingParams) {
  const GenerationRequest r = parse_completion_request(
      parse_body(R"({"prompt": "Once", "logit_bias": {"50": 100, "7": -100, "9": 0.5},
                     "include_stop_str_in_output": true})"),
      ctx_);
  const SamplingParams& p = r.params[0];
  EXPECT_EQ(p.logit_bias, (std::map<int, float>{{7, -100.0f}, {9, 0.5f}, {50, 100.0f}}));
  EXPECT_TRUE(p.include_stop_str_in_output);
  EXPECT_FALSE(parse_completion_request(parse_body(R"({"prompt": "a"})"), ctx_).params[0].include_stop_str_in_output);
  for (const char* bias : {R"({"x": 1})", R"({"-1": 1})", R"({"1.5": 1})", R"({"": 1})", R"({"99999999999": 1})",
                           R"({"5": 100.5})", R"({"5": -101})", R"({" 5": 1})"}) {
    EXPECT_EQ(refused_param(json::parse(std::string(R"({"prompt": "a", "logit_bias": )") + bias + "}")), "logit_bias")
        << bias;
  }
}

// Conversations as OpenAI clients send them (a tool-call turn with "content": null and
// JSON-string arguments, text parts) give the prompt that transformers renders from the
// messages as vLLM normalizes them (tests/data/chat_template/openai_messages.json, made by
// scripts/gen_chat_template_goldens.py).
TEST_F(OpenAiRequestTest, OpenAiMessagesRenderAsVllmGivesThemToTheTemplate) {
  std::ifstream in(std::string(NANOVLLM_SOURCE_DIR) + "/tests/data/chat_template/openai_messages.json");
  ASSERT_TRUE(in.good());
  const json data = json::parse(in);
  ASSERT_GE(data["cases"].size(), 24u);
  int checked = 0;
  for (const json& c : data["cases"]) {
    const std::string where = c["model"].get<std::string>() + " " + c["name"].get<std::string>();
    const std::string dir = std::string(NANOVLLM_SHARED_DIR) + "/" + c["model_dir"].get<std::string>();
    ASSERT_TRUE(std::filesystem::exists(dir)) << dir;
    std::vector<std::pair<std::string, std::string>> specials;
    if (c.contains("template")) {
      for (const auto& [k, v] : c["special_tokens"].items()) specials.emplace_back(k, v.get<std::string>());
    }
    const ChatTemplate tpl = c.contains("template") ? ChatTemplate(c["template"].get<std::string>(), specials)
                                                    : ChatTemplate::from_tokenizer_config(dir);
    ServingContext ctx = ctx_;
    ctx.chat_template = &tpl;
    json body = {{"messages", c["messages"]}};
    if (!c["tools"].is_null()) body["tools"] = c["tools"];
    ASSERT_TRUE(c.contains("expected")) << where;
    try {
      EXPECT_EQ(render_chat(body, ctx), c["expected"].get<std::string>()) << where;
      ++checked;
    } catch (const ApiError& e) {
      ADD_FAILURE() << where << ": " << e.status() << " " << e.what();
    }
  }
  EXPECT_EQ(checked, static_cast<int>(data["cases"].size()));
}

TEST_F(OpenAiRequestTest, MalformedToolCallsAre400) {
  const ChatTemplate tpl = ChatTemplate::from_tokenizer_config(std::string(NANOVLLM_SHARED_DIR) + "/tokenizers/qwen3");
  ServingContext ctx = ctx_;
  ctx.chat_template = &tpl;
  for (const char* calls : {R"("x")", R"({"a": 1})", R"([1])", R"([{"function": "f"}])"}) {
    const json body = json::parse(std::string(R"({"messages": [{"role": "user", "content": "hi"},
        {"role": "assistant", "content": null, "tool_calls": )") + calls + "}]}");
    try {
      render_chat(body, ctx);
      ADD_FAILURE() << calls;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status(), 400);
      EXPECT_EQ(e.param(), "messages");
    }
  }
}

TEST_F(OpenAiRequestTest, UnknownModelIs404) {
  try {
    check_model(parse_body(R"({"model": "other"})"), "m");
    FAIL();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status(), 404);
    EXPECT_EQ(e.param(), "model");
  }
  EXPECT_NO_THROW(check_model(parse_body(R"({"model": "m"})"), "m"));
}

TEST_F(OpenAiRequestTest, ResponseSumsUsageOncePerPrompt) {
  const GenerationRequest r = parse_completion_request(parse_body(R"({"prompt": "a", "n": 2})"), ctx_);
  ResponseBuilder b(r, ctx_);
  for (int choice = 0; choice < 2; ++choice) {
    ChoiceEvent e;
    e.choice = choice;
    e.out.new_token_ids = {5, 6, 7};
    e.out.new_text = "abc";
    e.out.finished = true;
    e.out.finish_reason = FinishReason::kLength;
    e.out.num_prompt_tokens = 4;
    e.out.num_cached_tokens = 2;
    b.add(e, nullptr);
  }
  ASSERT_TRUE(b.all_finished());
  const json j = b.response();
  EXPECT_EQ(j["usage"]["prompt_tokens"], 4);
  EXPECT_EQ(j["usage"]["completion_tokens"], 6);
  EXPECT_EQ(j["usage"]["total_tokens"], 10);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
  EXPECT_EQ(j["choices"][1]["finish_reason"], "length");
  EXPECT_EQ(j["object"], "text_completion");
}

TEST(MetricsTest, HistogramIsCumulative) {
  Metrics m("x");
  m.observe_ttft(0.003);
  m.observe_ttft(100);
  const std::string text = m.render(now_seconds());
  EXPECT_NE(text.find("nanovllm:time_to_first_token_seconds_bucket{model_name=\"x\",le=\"0.005\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("nanovllm:time_to_first_token_seconds_bucket{model_name=\"x\",le=\"+Inf\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("nanovllm:time_to_first_token_seconds_count{model_name=\"x\"} 2\n"), std::string::npos);
}

}  // namespace
}  // namespace nanovllm::server
