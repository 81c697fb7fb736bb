// Request bodies are parsed by parse_json (src/common/json.h): nesting limited, time linear in
// the body, the order of keys kept and nlohmann's duplicate-key rule (the last value wins).
#include <gtest/gtest.h>

#include <chrono>
#include <iterator>
#include <string>

#include "common/json.h"
#include "server/api_error.h"
#include "server/openai_request.h"

namespace nanovllm::server {
namespace {

int status_of(const std::string& body) {
  try {
    parse_body(body);
  } catch (const ApiError& e) {
    return e.status();
  }
  return 200;
}

TEST(RequestJson, DeepNestingIs400NotACrash) {
  const int depth = 200000;  // the 400 KB body that overflowed the stack
  EXPECT_EQ(status_of("{\"a\":" + std::string(depth, '[') + std::string(depth, ']') + "}"), 400);
  EXPECT_EQ(status_of(std::string(depth, '{') ), 400);
  std::string ok = "{\"a\":" + std::string(100, '[') + std::string(100, ']') + "}";
  EXPECT_EQ(status_of(ok), 200);
}

TEST(RequestJson, ManyKeysParseInLinearTime) {
  // 160k keys (1.8 MB): ordered_json's own builder scanned the object for every new key
  // (40-65 s of CPU); linear is well under a second.
  std::string body = "{";
  for (int i = 0; i < 160000; ++i) body += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  body += "\"k5\":\"again\",\"prompt\":\"a\"}";
  const auto t0 = std::chrono::steady_clock::now();
  const json j = parse_body(body);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 5.0);
  ASSERT_EQ(j.size(), 160001u);
  EXPECT_EQ(j.begin().key(), "k0");
  EXPECT_EQ(std::next(j.begin(), 5).key(), "k5");  // a repeated key keeps its first place ...
  EXPECT_EQ(j["k5"], "again");             // ... and takes its last value, as nlohmann does
  EXPECT_EQ(std::prev(j.end()).key(), "prompt");
  EXPECT_EQ(j["k159999"], 159999);
}

TEST(RequestJson, ValuesAndErrorsAsBefore) {
  const json j = parse_body(R"({"b": [1, -2, 3.5, true, null, "x\u00e9", {"z": {}, "a": []}], "a": 18446744073709551615})");
  EXPECT_EQ(j.dump(), R"({"b":[1,-2,3.5,true,null,"xé",{"z":{},"a":[]}],"a":18446744073709551615})");
  for (const char* bad : {"", "{", "[1]", "{\"a\": 1} x", "{\"a\": NaN}", "{\"a\": 1e999}", "{\"a\": \"\\ud800\"}"}) {
    EXPECT_EQ(status_of(bad), 400) << bad;
  }
  EXPECT_EQ(parse_json<nlohmann::json>(R"({"b": 1, "a": 2, "b": 3})", "x").dump(), R"({"a":2,"b":3})");
}

}  // namespace
}  // namespace nanovllm::server
