// Parses Jinja tokens into a statement tree, with Jinja's operator precedence.
#pragma once

#include <vector>

#include "jinja/jinja_ast.h"
#include "jinja/jinja_lexer.h"

namespace nanovllm::jinja {

// How deeply a template may nest: statements inside statements plus parenthesised
// subexpressions while parsing, and the depth of each expression tree. jinja2 itself stops near
// 75 nested parentheses (Python's recursion limit); the templates of tests/data/chat_template and
// ../shared/tokenizers nest statements at most 6 deep and expressions 12 (Qwen3's). Parsing and rendering recurse once per level,
// so this bounds their stack: 3,000 nested ifs are a load-time error, not a crash.
constexpr int kMaxTemplateNesting = 128;

// Throws nanovllm::Error naming the template line for syntax errors, for constructs this engine
// does not support (unknown tags, filters, tests) and for nesting beyond kMaxTemplateNesting.
Body parse(const std::vector<Token>& tokens);

}  // namespace nanovllm::jinja
