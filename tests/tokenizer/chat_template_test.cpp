// Chat templates of real models against transformers' apply_chat_template (committed goldens).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "nanovllm/error.h"
#include "common/nested_json.h"
#include "jinja/jinja_value.h"
#include "tokenizer/chat_template.h"

namespace nanovllm {
namespace {

using ojson = nlohmann::ordered_json;
const std::string kData = std::string(NANOVLLM_SOURCE_DIR) + "/tests/data/chat_template/";

ojson load(const std::string& name) {
  std::ifstream in(kData + name);
  EXPECT_TRUE(in.good()) << name;
  return ojson::parse(in);
}

struct Tally {
  int identical = 0, raised = 0, total = 0, expected_errors = 0;
  jinja::RenderBudget::Usage peak;  // the most any one render spent
};

// Real templates must stay far from the render budget: under 1 % of each limit.
void check_usage(const std::string& label, Tally& t) {
  const auto u = jinja::RenderBudget::last_render();
  t.peak.steps = std::max(t.peak.steps, u.steps);
  t.peak.bytes = std::max(t.peak.bytes, u.bytes);
  EXPECT_LT(u.steps, jinja::RenderBudget::kMaxSteps / 100) << label;
  EXPECT_LT(u.bytes, jinja::RenderBudget::kMaxBytes / 100) << label;
}

// Renders one golden case; a case recorded with "error" must throw.
void check_case(const ChatTemplate& tpl, const ojson& c, const std::string& where, Tally& t) {
  ++t.total;
  const std::string label = where + " " + c["name"].get<std::string>();
  auto run = [&] { return tpl.render(c["messages"], c["add_generation_prompt"].get<bool>(), c["kwargs"], c["tools"]); };
  if (c.contains("error")) {
    ++t.expected_errors;
    try {
      run();
      ADD_FAILURE() << label << ": transformers raised (" << c["error"] << ") but we rendered";
    } catch (const Error& e) {
      ++t.raised;
      // Template-raised and undefined-variable errors carry the reference's own message.
      const std::string ref = c["error"];
      for (const char* kind : {"TemplateError: ", "UndefinedError: "}) {
        if (ref.starts_with(kind)) {
          EXPECT_NE(std::string(e.what()).find(ref.substr(std::strlen(kind))), std::string::npos)
              << label << ": " << e.what() << " vs " << ref;
        }
      }
    }
    return;
  }
  try {
    std::string got = run();
    check_usage(label, t);
    EXPECT_EQ(got, c["expected"].get<std::string>()) << label;
    t.identical += got == c["expected"].get<std::string>();
  } catch (const Error& e) {
    ADD_FAILURE() << label << " threw: " << e.what();
  }
}

class ModelTemplates : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelTemplates, MatchTransformers) {
  ojson data = load(GetParam() + ".json");
  const std::string dir = std::string(NANOVLLM_SHARED_DIR) + "/" + data["model_dir"].get<std::string>();
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << dir << " not found";
  Tally t;
  std::optional<ChatTemplate> tpl;
  try {
    tpl = ChatTemplate::from_tokenizer_config(dir);
  } catch (const Error& e) {
    // Only models whose every case is an expected error (no chat template) may fail to load.
    for (const auto& c : data["cases"]) {
      EXPECT_TRUE(c.contains("error")) << GetParam() << " failed to load: " << e.what();
      ++t.total;
      ++t.raised;
      ++t.expected_errors;
    }
  }
  if (tpl)
    for (const auto& c : data["cases"]) check_case(*tpl, c, GetParam(), t);
  std::printf("chat template %s: %d/%d prompts byte-identical to transformers, %d/%d expected errors raised; "
              "at most %lld steps and %zu bytes per render\n",
              GetParam().c_str(), t.identical, t.total - t.expected_errors, t.raised, t.expected_errors,
              static_cast<long long>(t.peak.steps), t.peak.bytes);
  EXPECT_EQ(t.identical + t.raised, t.total);
}

INSTANTIATE_TEST_SUITE_P(Goldens, ModelTemplates,
                         ::testing::Values("qwen3", "qwen2.5", "llama3", "tinyllama", "mistral", "gpt2",
                                           "tinystories-656k"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

TEST(ChatTemplate, InlineTemplatesMatchTransformers) {
  ojson data = load("extra_templates.json");
  for (const auto& e : data["templates"]) {
    std::vector<std::pair<std::string, std::string>> special;
    for (const auto& [k, v] : e["special_tokens"].items()) special.emplace_back(k, v.get<std::string>());
    ChatTemplate tpl(e["template"].get<std::string>(), special);
    Tally t;
    for (const auto& c : e["cases"]) check_case(tpl, c, e["name"].get<std::string>(), t);
    std::printf("chat template %s (inline): %d identical, %d expected errors raised, of %d; "
                "at most %lld steps and %zu bytes per render\n",
                e["name"].get<std::string>().c_str(), t.identical, t.raised, t.total,
                static_cast<long long>(t.peak.steps), t.peak.bytes);
    EXPECT_EQ(t.identical + t.raised, t.total);
  }
}

TEST(ChatTemplate, AddedTokenObjectsAndTemplateList) {
  auto dir = std::filesystem::temp_directory_path() / "nanovllm_chat_template_test";
  std::filesystem::create_directories(dir);
  ojson config = {{"bos_token", {{"content", "<B>"}, {"lstrip", false}}},
                  {"eos_token", "<E>"},
                  {"chat_template",
                   ojson::array({{{"name", "default"}, {"template", "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}"}},
                                 {{"name", "tool_use"}, {"template", "T{{ tools | length }}"}}})}};
  std::ofstream(dir / "tokenizer_config.json") << config.dump();
  ChatTemplate tpl = ChatTemplate::from_tokenizer_config(dir.string());
  ojson msgs = ojson::parse(R"([{"role": "user", "content": "hi"}])");
  EXPECT_EQ(tpl.render(msgs, true), "<B>hi<E>");
  EXPECT_EQ(tpl.render(msgs, true, ojson::object(), ojson::parse("[{}, {}]")), "T2");
  EXPECT_THROW(tpl.render(ojson::array(), true), Error);
  std::filesystem::remove_all(dir);
}

using test::nested_array;

ojson array_of(ojson item) {
  ojson a = ojson::array();
  a.push_back(std::move(item));
  return a;
}

TEST(ChatTemplate, DeepArgumentsAreErrors) {
  // 20k levels in a message field, tools or template kwargs crashed the server (stack overflow
  // converting them to template values).
  ChatTemplate tpl("{{ messages }}{{ tools }}{{ x }}", {});
  auto error_of = [&](const ojson& msgs, const ojson& kwargs, const ojson& tools) -> std::string {
    try {
      tpl.render(msgs, false, kwargs, tools);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  };
  ojson msg = {{"role", "user"}};
  msg["content"] = nested_array(20000);
  EXPECT_NE(error_of(array_of(std::move(msg)), ojson::object(), ojson()).find("chat messages: nested deeper than"),
            std::string::npos);
  EXPECT_NE(error_of(array_of(nested_array(20000)), ojson::object(), ojson()).find("nested deeper than"),
            std::string::npos);
  const ojson user = ojson::array({{{"role", "user"}, {"content", "hi"}}});
  ojson kwargs = ojson::object();
  kwargs["x"] = nested_array(20000);
  EXPECT_NE(error_of(user, kwargs, ojson()).find("template kwargs: nested deeper than"), std::string::npos);
  EXPECT_NE(error_of(user, ojson::object(), array_of(nested_array(20000))).find("tools: nested deeper than"),
            std::string::npos);
  kwargs["x"] = nested_array(50);
  EXPECT_EQ(tpl.render(user, false, kwargs, ojson()),
            "[{'role': 'user', 'content': 'hi'}]None" + std::string(51, '[') + std::string(51, ']'));
}

TEST(ChatTemplate, CommandPrintsPromptExactly) {
  const char* bin = std::getenv("NANOVLLM_BIN");
  const std::string qwen3 = std::string(NANOVLLM_SHARED_DIR) + "/tokenizers/qwen3";
  if (!bin || !std::filesystem::exists(bin) || !std::filesystem::exists(qwen3)) GTEST_SKIP() << "no nanovllm binary";
  auto dir = std::filesystem::temp_directory_path();
  const std::string msgs = (dir / "nanovllm_ct_messages.json").string();
  std::ofstream(msgs) << R"([{"role": "user", "content": "Hi"}])";
  const std::string cmd = std::string(bin) + " chat-template --model " + qwen3 + " --messages " + msgs +
                          " --template-kwargs '{\"enable_thinking\": false}'";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[256];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0);
  EXPECT_EQ(out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

}  // namespace
}  // namespace nanovllm
