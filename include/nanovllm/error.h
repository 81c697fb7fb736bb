// Errors of the whole library: Error for bad input, NV_CHECK for broken invariants. Kept apart
// from the engine so that the tokenizer, the model loaders and embedders need only this header.
#pragma once

#include <stdexcept>
#include <string>

namespace nanovllm {

// A recoverable failure (bad input, missing file, unsupported model): caught at module
// boundaries and shown to the user (CLI message, OpenAI error JSON). Never exit() in the library.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void check_failed(const char* expr, const char* file, int line, const std::string& msg);

}  // namespace nanovllm

// A broken invariant is a bug in this program, not in the input: report where and stop the
// operation with std::logic_error.
#define NV_CHECK(cond, msg)                                                   \
  do {                                                                        \
    if (!(cond)) ::nanovllm::check_failed(#cond, __FILE__, __LINE__, (msg)); \
  } while (0)
