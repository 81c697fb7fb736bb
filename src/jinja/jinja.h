// A small Jinja2 template engine covering what Hugging Face chat templates use.
//
// Semantics follow jinja2's ImmutableSandboxedEnvironment as transformers configures it
// (trim_blocks, lstrip_blocks, loop controls, transformers' tojson / raise_exception /
// strftime_now). Constructs outside that subset are errors naming the template line, never
// silently different output.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "jinja/jinja_lexer.h"
#include "jinja/jinja_value.h"

namespace nanovllm::jinja {

struct Stmt;

class Template {
 public:
  // Parses the source; throws nanovllm::Error naming the line on syntax errors and unsupported
  // constructs.
  explicit Template(std::string_view source, const LexOptions& options = {});

  // Renders with `context` (a dict value) as the template's variables. Throws nanovllm::Error
  // naming the line on runtime errors, including the template's own raise_exception().
  std::string render(const Value& context) const;

 private:
  std::shared_ptr<const std::vector<std::unique_ptr<Stmt>>> body_;
};

}  // namespace nanovllm::jinja
