// The Jinja engine against jinja2 (transformers' environment) on small templates, plus error reporting.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "nanovllm/error.h"
#include "jinja/jinja.h"
#include "jinja/jinja_value.h"

namespace nanovllm::jinja {
namespace {

using ojson = nlohmann::ordered_json;

ojson load(const std::string& name) {
  std::ifstream in(std::string(NANOVLLM_SOURCE_DIR) + "/tests/data/chat_template/" + name);
  EXPECT_TRUE(in.good()) << name;
  return ojson::parse(in);
}

std::string render(const std::string& tpl, const ojson& ctx = ojson::object()) {
  return Template(tpl).render(Value::from_json(ctx));
}

TEST(Jinja, MatchesJinja2Goldens) {
  ojson data = load("jinja_cases.json");
  int matched = 0, raised = 0, total = 0;
  for (const auto& c : data["cases"]) {
    ++total;
    const std::string tpl = c["template"];
    if (c.contains("error")) {
      EXPECT_THROW(render(tpl, c["context"]), Error) << tpl << " should fail like jinja2: " << c["error"];
      try {
        render(tpl, c["context"]);
      } catch (const Error& e) {
        ++raised;
        const std::string ref = c["error"];
        for (const char* kind : {"TemplateError: ", "UndefinedError: "}) {
          if (ref.starts_with(kind)) {
            EXPECT_NE(std::string(e.what()).find(ref.substr(std::strlen(kind))), std::string::npos)
                << tpl << ": " << e.what() << " vs " << ref;
          }
        }
      }
      continue;
    }
    std::string got;
    try {
      got = render(tpl, c["context"]);
    } catch (const Error& e) {
      ADD_FAILURE() << tpl << " threw: " << e.what();
      continue;
    }
    EXPECT_EQ(got, c["expected"].get<std::string>()) << "template: " << tpl;
    matched += got == c["expected"].get<std::string>();
  }
  std::printf("jinja: %d/%d outputs identical to jinja2, %d expected errors raised\n", matched + raised, total, raised);
  EXPECT_EQ(matched + raised, total);
  EXPECT_GT(total, 50);
}

TEST(Jinja, UnsupportedConstructNamesLine) {
  try {
    render("line one\n{{ x | no_such_filter }}");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no_such_filter"), std::string::npos) << e.what();
  }
  EXPECT_THROW(render("{% include 'x' %}"), Error);
  EXPECT_THROW(render("{% for x in y recursive %}{% endfor %}"), Error);
  EXPECT_THROW(render("{% if x %}"), Error);
  EXPECT_THROW(render("{{ x is no_such_test }}"), Error);
  EXPECT_THROW(render("{{ 'abc'.zfill(5) }}"), Error);  // a real str method we do not implement
}

TEST(Jinja, RuntimeErrorNamesLine) {
  try {
    render("a\nb\n{{ raise_exception('bad roles') }}");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad roles"), std::string::npos) << e.what();
  }
}

TEST(Jinja, PythonFloatRepr) {
  EXPECT_EQ(py_float_repr(1.0), "1.0");
  EXPECT_EQ(py_float_repr(0.1), "0.1");
  EXPECT_EQ(py_float_repr(1e16), "1e+16");
  EXPECT_EQ(py_float_repr(1.5e-5), "1.5e-05");
  EXPECT_EQ(py_float_repr(123456789.125), "123456789.125");
  EXPECT_EQ(py_float_repr(-0.0), "-0.0");
  EXPECT_EQ(py_float_repr(0.0001), "0.0001");
  EXPECT_EQ(py_float_repr(1e22), "1e+22");
}

TEST(Jinja, JsonRoundTripKeepsKeyOrder) {
  ojson j = ojson::parse(R"({"z": 1, "a": [true, null, 2.5, "x"]})");
  Value v = Value::from_json(j);
  EXPECT_EQ(v.to_json().dump(), j.dump());
  EXPECT_EQ(py_json_dumps(v, {}), R"({"z": 1, "a": [true, null, 2.5, "x"]})");
}

}  // namespace
}  // namespace nanovllm::jinja
