// Parses Jinja tokens into a statement tree, with Jinja's operator precedence.
#pragma once

#include <vector>

#include "jinja/jinja_ast.h"
#include "jinja/jinja_lexer.h"

namespace nanovllm::jinja {

// Throws nanovllm::Error naming the template line for syntax errors and for constructs
// this engine does not support (unknown tags, filters, tests).
Body parse(const std::vector<Token>& tokens);

}  // namespace nanovllm::jinja
