// Hostile templates and arguments: nesting, endless loops and runaway sizes end in an Error
// naming the limit, never in a crash, a hang or gigabytes of memory.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "jinja/jinja.h"
#include "jinja/jinja_parser.h"
#include "jinja/jinja_value.h"
#include "nanovllm/error.h"
#include "common/nested_json.h"

namespace nanovllm::jinja {
namespace {

using ojson = nlohmann::ordered_json;

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

std::string render(const std::string& tpl, const ojson& ctx = ojson::object()) {
  return Template(tpl).render(Value::from_json(ctx));
}

// The error of parsing (or rendering) tpl; fails the test when there is none.
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an Error";
  return "";
}

std::string load_error(const std::string& tpl) {
  return error_of([&] { Template t(tpl); });
}

std::string render_error(const std::string& tpl, const ojson& ctx = ojson::object()) {
  return error_of([&] { render(tpl, ctx); });
}

const std::string kTooDeep = "template nested deeper than " + std::to_string(kMaxTemplateNesting);

TEST(JinjaLimits, DeeplyNestedTemplatesAreLoadErrors) {
  // Each crashed the server on its first chat request (stack overflow in the parser).
  EXPECT_NE(load_error(repeat("{% if x %}", 3000) + repeat("{% endif %}", 3000)).find(kTooDeep), std::string::npos);
  EXPECT_NE(load_error("{{ " + repeat("(", 10000) + "1" + repeat(")", 10000) + " }}").find(kTooDeep), std::string::npos);
  EXPECT_NE(load_error("{{ " + repeat("[", 10000) + repeat("]", 10000) + " }}").find(kTooDeep), std::string::npos);
  EXPECT_NE(load_error("{{ " + repeat("not ", 10000) + "x }}").find(kTooDeep), std::string::npos);
  EXPECT_NE(load_error("{{ " + repeat("- ", 10000) + "1 }}").find(kTooDeep), std::string::npos);
  EXPECT_NE(load_error("{{ 1" + repeat(" if x else 1", 10000) + " }}").find(kTooDeep), std::string::npos);
  // Chains without recursion in the parser still make a tree as deep as they are long.
  EXPECT_NE(load_error("{{ 1" + repeat(" + 1", 100000) + " }}").find(kTooDeep), std::string::npos);
  EXPECT_NE(load_error("{{ x" + repeat("|trim", 100000) + " }}").find(kTooDeep), std::string::npos);
  EXPECT_NE(load_error("{{ x" + repeat("[0]", 100000) + " }}").find(kTooDeep), std::string::npos);
  EXPECT_NE(load_error("{{ x" + repeat(".a", 100000) + " }}").find(kTooDeep), std::string::npos);
  // The error names the line of the construct.
  EXPECT_NE(load_error("\n\n" + repeat("{% for x in y %}", 3000)).find("line 3"), std::string::npos);
}

TEST(JinjaLimits, NestingWithinTheLimitRenders) {
  const int n = kMaxTemplateNesting / 2;
  EXPECT_EQ(render(repeat("{% if true %}", n) + "deep" + repeat("{% endif %}", n)), "deep");
  EXPECT_EQ(render("{{ " + repeat("(", n) + "1" + repeat(")", n) + " }}"), "1");
  EXPECT_EQ(render("{{ 0" + repeat(" + 1", n) + " }}"), std::to_string(n));
}

using test::nested_array;

TEST(JinjaLimits, DeepJsonArgumentIsAnError) {
  // 20k levels in a chat message field crashed in from_json.
  EXPECT_NE(error_of([] { Value::from_json(nested_array(20000)); }).find("nested deeper than"), std::string::npos);
  EXPECT_NO_THROW(Value::from_json(nested_array(kMaxValueDepth - 1)));
}

TEST(JinjaLimits, DeepValuesBuiltByTheTemplateAreErrors) {
  // A template can nest a list 100k deep in a loop; printing, serialising or comparing it
  // recursed once per level.
  const std::string build =
      "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}";
  for (const char* use : {"{{ ns.x }}", "{{ ns.x|tojson }}", "{{ ns.x == ns.x }}", "{{ ns.x|string }}"})
    EXPECT_NE(render_error(build + use).find("nested deeper than"), std::string::npos) << use;
}

TEST(JinjaLimits, NamespaceCannotContainItself) {
  EXPECT_NE(render_error("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}").find("inside itself"),
            std::string::npos);
  EXPECT_NE(render_error("{% set a = namespace() %}{% set b = namespace(x=[a]) %}{% set a.y = {'b': b} %}")
                .find("inside itself"),
            std::string::npos);
  EXPECT_EQ(render("{% set a = namespace(v=1) %}{% set b = namespace(a=a) %}{% set a.v = 2 %}{{ b.a.v }}"), "2");
}

TEST(JinjaLimits, EndlessRecursionIsAnError) {
  EXPECT_NE(render_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").find("recursion"), std::string::npos);
  // Recursion through a caller block, and a macro whose body nests deeply.
  EXPECT_NE(render_error("{% macro f() %}{% call f() %}x{% endcall %}{% endmacro %}{{ f() }}").find("recursion"),
            std::string::npos);
  const std::string deep_body = repeat("{% if true %}", 100) + "{{ g() }}" + repeat("{% endif %}", 100);
  EXPECT_NE(render_error("{% macro g() %}" + deep_body + "{% endmacro %}{{ g() }}").find("recursion"), std::string::npos);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TEST(JinjaLimits, EndlessLoopsRunOutOfSteps) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string budget = "budget of " + std::to_string(RenderBudget::kMaxSteps) + " steps";
  // Nested range(100000) loops hung the server (10^15 iterations; empty bodies count too). Each
  // inner range() is a fresh list, whose elements count as steps as well as bytes.
  EXPECT_NE(render_error("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
                .find("template rendering exceeded its"),
            std::string::npos);
  EXPECT_NE(render_error("{% set r = range(100000) %}{% for i in r %}{% for j in r %}{% endfor %}{% endfor %}").find(budget),
            std::string::npos);
  EXPECT_NE(render_error("{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}")
                .find(budget),
            std::string::npos);
  // Work hidden inside one builtin call: quadratic unique, membership in a long list.
  EXPECT_NE(render_error("{{ range(100000)|unique|list|length }}").find(budget), std::string::npos);
  EXPECT_NE(render_error("{% set l = range(100000)|list %}{% for i in range(100000) %}{% if -1 in l %}{% endif %}{% endfor %}")
                .find(budget),
            std::string::npos);
  // Integer arithmetic that Python does with big ints: an error, not a hang or a wrapped value.
  EXPECT_NE(render_error("{{ 2 ** 1000000000000000 }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(render_error("{{ 9223372036854775807 + 1 }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(render_error("{{ -9223372036854775807 - 2 }}").find("integer overflow"), std::string::npos);
  EXPECT_NE(render_error("{{ [9223372036854775807, 1]|sum }}").find("integer overflow"), std::string::npos);
  EXPECT_EQ(render("{{ 3 ** 39 }} {{ '' * 1000000000000000000 }}|{{ (-9223372036854775807 - 1) // -2 }}"),
            "4052555153018976267 |4611686018427387904");
  // No bound on the time asserted here (it depends on the machine's load); a hang is caught by
  // ctest's timeout. Each case takes about a second on an idle core.
  std::printf("endless loops ended by the budget in %.1f s\n", seconds_since(t0));
}

TEST(JinjaLimits, RunawaySizesRunOutOfMemoryBudget) {
  const std::string budget = "memory budget of " + std::to_string(RenderBudget::kMaxBytes >> 20) + " MiB";
  // A string doubled 40 times reached 10 GB.
  for (const char* op : {"ns.s ~ ns.s", "ns.s + ns.s", "ns.s * 2", "[ns.s, ns.s]|join"})
    EXPECT_NE(render_error(std::string("{% set ns = namespace(s='0123456789') %}{% for i in range(40) %}{% set ns.s = ") +
                           op + " %}{% endfor %}{{ ns.s|length }}")
                  .find(budget),
              std::string::npos)
        << op;
  EXPECT_NE(render_error("{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}")
                .find(budget),
            std::string::npos);
  // Output written many times, and builtins whose result is far larger than their input.
  const std::string mb = "{% set s = 'x' * 1000000 %}";
  EXPECT_NE(render_error(mb + "{% for i in range(100000) %}{{ s }}{% endfor %}").find(budget), std::string::npos);
  EXPECT_NE(render_error(mb + "{{ range(100000)|join(s) }}").find(budget), std::string::npos);
  EXPECT_NE(render_error(mb + "{{ s|replace('x', s) }}").find(budget), std::string::npos);
  EXPECT_NE(render_error(mb + "{{ ([s] * 100000)|string }}").find(budget), std::string::npos);
  EXPECT_NE(render_error(mb + "{{ ([s] * 100000)|tojson }}").find(budget), std::string::npos);
  EXPECT_NE(render_error(mb + "{{ ('%s' * 1000) % ((s,) * 1000) }}").find(budget), std::string::npos);
  EXPECT_NE(render_error(mb + "{{ ('{0}' * 1000).format(s) }}").find(budget), std::string::npos);
  EXPECT_NE(render_error("{{ 'a\nb'|indent(1000000000000) }}").find(budget), std::string::npos);
  EXPECT_NE(render_error("{{ 'x' * 1000000000000 }}").find("too large"), std::string::npos);
}

TEST(JinjaLimits, EachRenderHasItsOwnBudget) {
  // 60 MB of output per render: fine once, and fine again (the budget is not cumulative).
  Template t("{% set s = 'x' * 1000000 %}{% for i in range(60) %}{{ s }}{% endfor %}");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(t.render(Value::dict()).size(), 60000000u);
  EXPECT_GT(RenderBudget::last_render().bytes, 60000000u);
  EXPECT_LT(RenderBudget::last_render().bytes, RenderBudget::kMaxBytes);
}

}  // namespace
}  // namespace nanovllm::jinja
