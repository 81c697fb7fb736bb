// Command-line flags shared by the subcommands that run the engine (generate, chat, serve, bench).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "nanovllm/config.h"
#include "nanovllm/sampling_params.h"

namespace CLI {
class App;
}

namespace nanovllm::tools {

// "native, torch": the backends this build has, for --help and --version.
std::string backend_list();

// --model plus every Config field.
void add_engine_options(CLI::App* cmd, Config& config);

// Sampling flags; only the ones given override the model's generation_config defaults.
struct SamplingFlags {
  std::optional<float> temperature, top_p, min_p, repetition_penalty, presence_penalty,
      frequency_penalty;
  std::optional<int> top_k, max_tokens, min_tokens, logprobs;
  std::optional<uint64_t> seed;
  bool ignore_eos = false, include_stop_str_in_output = false;
  std::vector<std::string> stop;
  std::vector<int> stop_token_ids;

  SamplingParams apply(SamplingParams defaults) const;
};
void add_sampling_options(CLI::App* cmd, SamplingFlags& flags);

// "512", "4GiB", "300MB" -> bytes; throws std::invalid_argument on anything else.
int64_t parse_bytes(const std::string& text);

// "1,2,3" -> {1, 2, 3}; throws std::invalid_argument naming the bad item.
std::vector<int> parse_ids(const std::string& text);

}  // namespace nanovllm::tools
