// Fuzz target: the Jinja lexer alone, under each whitespace-control setting (chosen by the first
// byte), on chat template sources. Expected outcome for bad input: nanovllm::Error. The jinja
// target runs the whole pipeline; this one reaches lexer corners faster because nothing after it
// rejects the input first.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz_input.h"
#include "jinja/jinja_lexer.h"
#include "nanovllm/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nanovllm;
  if (size < 1 || size > fuzz::kMaxInput) return -1;
  const jinja::LexOptions options{(data[0] & 1) != 0, (data[0] & 2) != 0, (data[0] & 4) != 0};
  try {
    const auto tokens = jinja::lex(fuzz::as_text(data + 1, size - 1), options);
    // Positions the errors quote must be real ones.
    for (const jinja::Token& t : tokens)
      if (t.line < 1 || t.col < 1) std::abort();
  } catch (const Error& e) {
    fuzz::rejected(e);
  }
  return 0;
}
