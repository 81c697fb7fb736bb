// Tokenizer encode throughput (MB/s, one thread) on the golden corpus, for comparison with
// scripts/bench_tokenizer_py.py (Python `tokenizers` on the same strings).
// Two loops: each corpus string encoded alone, and all of them joined into one document.
// Usage: tokenizer_throughput [REPEATS] [NAME...]   (default 10 repeats, all tokenizers)
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/hf_tokenizer.h"

namespace {

std::vector<std::string> load_corpus() {
  std::ifstream in(std::string(NANOVLLM_SOURCE_DIR) + "/tests/data/tokenizer/corpus.jsonl");
  std::vector<std::string> texts;
  for (std::string line; std::getline(in, line);) texts.push_back(nlohmann::json::parse(line)["text"].get<std::string>());
  return texts;
}

std::string dir_of(const std::string& name) {
  const std::string shared = NANOVLLM_SHARED_DIR;
  return name == "tinystories-656k" ? shared + "/models/" + name : shared + "/tokenizers/" + name;
}

}  // namespace

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 10;
  std::vector<std::string> names;
  for (int i = 2; i < argc; ++i) names.push_back(argv[i]);
  if (names.empty()) names = {"gpt2", "llama3", "qwen2.5", "qwen3", "mistral", "tinyllama", "tinystories-656k"};
  const std::vector<std::string> corpus = load_corpus();
  size_t bytes = 0;
  for (const auto& t : corpus) bytes += t.size();
  std::printf("corpus: %zu strings, %.2f MB per pass, %d passes\n", corpus.size(), bytes / 1e6, repeats);
  for (const std::string& name : names) {
    auto tok = nanovllm::HfTokenizer::from_dir(dir_of(name));
    size_t tokens = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < repeats; ++r)
      for (const auto& t : corpus) tokens += tok->encode(t, true).size();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // The same text as one long document: throughput without per-call overhead.
    std::string joined;
    for (const auto& t : corpus) joined += t + "\n";
    size_t long_tokens = 0;
    const auto t1 = std::chrono::steady_clock::now();
    for (int r = 0; r < repeats; ++r) long_tokens += tok->encode(joined, true).size();
    const double s2 = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    std::printf("%-18s strings %8.2f MB/s %10.0f tok/s | one document %8.2f MB/s %10.0f tok/s\n", name.c_str(),
                bytes * repeats / 1e6 / s, tokens / s, joined.size() * repeats / 1e6 / s2, long_tokens / s2);
  }
  return 0;
}
