// Tells TinyStories' story through the public API only: consumer MODEL_DIR.
#include <nanovllm/error.h>
#include <nanovllm/llm.h>

#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: consumer MODEL_DIR\n");
    return 2;
  }
  try {
    nanovllm::Config config;
    config.kv_cache_bytes = 16 << 20;
    nanovllm::LLM llm(argv[1], config);
    nanovllm::SamplingParams params;
    params.temperature = 0;
    params.max_tokens = 16;
    const std::vector<nanovllm::RequestOutput> out = llm.generate(std::vector<std::string>{""}, params, false);
    std::printf("%s|%zu tokens|%d\n", out[0].text.c_str(), out[0].token_ids.size(),
                static_cast<int>(llm.tokenizer()->encode("Once upon a time").size()));
  } catch (const nanovllm::Error& e) {
    std::fprintf(stderr, "consumer: %s\n", e.what());
    return 1;
  }
  return 0;
}
