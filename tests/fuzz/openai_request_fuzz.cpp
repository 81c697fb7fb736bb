// Fuzz target: an HTTP request body, taken through every parser the server's JSON routes use
// (/v1/completions, /v1/chat/completions with a real chat template, /tokenize, /detokenize) with
// a real tokenizer. Expected outcomes for bad input are what the server answers 4xx to:
// ApiError, std::invalid_argument (SamplingParams::validate) and nanovllm::Error. Any other
// exception would be a 500 "internal error" for a client's mistake, so it counts as a finding.
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "fuzz_input.h"
#include "nanovllm/error.h"
#include "server/api_error.h"
#include "server/openai_request.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/hf_tokenizer.h"

namespace {

using namespace nanovllm;
using namespace nanovllm::server;

// The TinyStories tokenizer (small, byte fallback) and Qwen3's chat template (tools, thinking).
const ServingContext& context() {
  static const auto tokenizer = HfTokenizer::from_dir(fuzz::shared_path("models/tinystories-656k"));
  static const auto chat = std::make_unique<ChatTemplate>(
      ChatTemplate::from_tokenizer_config(fuzz::shared_path("tokenizers/qwen3")));
  static const ServingContext ctx = [] {
    ServingContext c;
    c.tokenizer = tokenizer.get();
    c.chat_template = chat.get();
    c.max_model_len = 512;
    c.model_name = "tinystories";
    return c;
  }();
  return ctx;
}

// One route's parser; the errors the server turns into 4xx answers end it normally.
template <class Fn>
void route(Fn&& fn) {
  try {
    fn();
  } catch (const ApiError& e) {
    fuzz::rejected(e);
  } catch (const std::invalid_argument& e) {
    fuzz::rejected(e);
  } catch (const Error& e) {
    fuzz::rejected(e);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > fuzz::kMaxInput) return -1;
  const ServingContext& ctx = context();
  json body;
  try {
    body = parse_body(std::string(fuzz::as_text(data, size)));
    check_model(body, ctx.model_name);
  } catch (const ApiError& e) {
    fuzz::rejected(e);
    return 0;
  }
  route([&] { (void)expand(parse_completion_request(body, ctx)); });
  route([&] { (void)expand(parse_chat_request(body, ctx)); });
  route([&] { (void)tokenize(body, ctx); });
  route([&] { (void)detokenize(body, ctx); });
  return 0;
}
