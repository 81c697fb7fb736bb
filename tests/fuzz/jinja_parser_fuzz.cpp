// Fuzz target: the Jinja lexer and parser, without rendering, on chat template sources: the
// parser's nesting limits and error paths, reached without the render budget in the way.
// Expected outcome for bad input: nanovllm::Error.
#include <cstdint>
#include <string>

#include "fuzz_input.h"
#include "jinja/jinja_lexer.h"
#include "jinja/jinja_parser.h"
#include "nanovllm/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nanovllm;
  if (size > fuzz::kMaxInput) return -1;
  try {
    const jinja::Body body = jinja::parse(jinja::lex(fuzz::as_text(data, size), jinja::LexOptions{}));
    (void)body;
  } catch (const Error& e) {
    fuzz::rejected(e);
  }
  return 0;
}
