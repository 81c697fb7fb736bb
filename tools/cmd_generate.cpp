// `nanovllm generate`: run prompts through the engine and print the continuations.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>

#include <unistd.h>

#include "commands.h"
#include "engine/progress.h"
#include "engine_options.h"
#include "nanovllm/llm.h"

namespace nanovllm::tools {
namespace {

struct GenerateArgs {
  Config config;
  SamplingFlags sampling;
  std::vector<std::string> prompts;
  std::vector<std::string> prompt_ids;
  bool json = false;
  bool quiet = false;
};

struct Prompt {
  std::vector<int> ids;
  std::string text;  // echoed before the continuation in plain output
};

std::vector<Prompt> collect_prompts(const GenerateArgs& a, const Tokenizer* tok, std::optional<int> bos) {
  std::vector<Prompt> out;
  for (const std::string& text : a.prompts) {
    if (!tok) throw std::runtime_error("this checkpoint has no tokenizer.json: use --prompt-ids");
    out.push_back({tok->encode(text, true), text});
  }
  for (const std::string& ids : a.prompt_ids) out.push_back({parse_ids(ids), ""});
  if (out.empty()) out.push_back({{}, ""});  // no prompt: start from BOS
  for (Prompt& p : out) {  // the engine starts an empty prompt from BOS: report what it ran
    if (p.ids.empty() && bos) p.ids.push_back(*bos);
  }
  return out;
}

void print_json(size_t index, const std::vector<int>& prompt, const RequestOutput& r) {
  nlohmann::json j = {{"index", index},
                      {"prompt_token_ids", prompt},
                      {"token_ids", r.token_ids},
                      {"text", r.text},
                      {"finish_reason", finish_reason_name(r.finish_reason)}};
  if (!r.logprobs.empty()) {  // --logprobs: per new token [[id, logprob], ...], most likely first
    nlohmann::json& rows = j["top_logprobs"] = nlohmann::json::array();
    for (const TokenLogprob& t : r.logprobs) rows.push_back(t.top);
  }
  std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
}

void run_generate(GenerateArgs& a) {
  LLM llm(a.config.model, a.config);
  const SamplingParams params = a.sampling.apply(llm.default_sampling_params());
  const std::vector<Prompt> prompts = collect_prompts(a, llm.tokenizer(), llm.bos_token_id());
  // One prompt in plain mode streams its text as it comes; otherwise print when done.
  const bool stream = !a.json && prompts.size() == 1;
  std::map<int64_t, size_t> index;
  std::vector<RequestOutput> results(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) index[llm.add_request(prompts[i].ids, params)] = i;
  if (stream) std::cout << prompts[0].text << std::flush;
  // Text streamed to the terminal is its own progress; a bar there would cut through it.
  StepProgress progress(static_cast<int>(prompts.size()), !a.quiet && !(stream && isatty(STDOUT_FILENO)));
  const auto start = std::chrono::steady_clock::now();
  while (llm.has_unfinished()) {
    for (const StepOutput& o : llm.step()) {
      results[index.at(o.request_id)].append(o);
      progress.add(o);
      if (stream) std::cout << o.new_text << std::flush;
    }
  }
  progress.finish();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  size_t generated = 0;
  for (size_t i = 0; i < results.size(); ++i) {
    generated += results[i].token_ids.size();
    if (a.json) print_json(i, prompts[i].ids, results[i]);
    else if (!stream) std::cout << (i ? "\n\n" : "") << prompts[i].text << results[i].text;
  }
  if (!a.json) std::cout << "\n";
  if (!a.quiet) {
    std::fprintf(stderr, "[%zu prompts, %zu tokens generated in %.2f s: %.1f tok/s]\n", prompts.size(),
                 generated, secs, secs > 0 ? generated / secs : 0.0);
  }
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from prompts with a checkpoint");
  add_engine_options(cmd, args->config);
  cmd->add_option("--prompt,-p", args->prompts, "Text prompt (repeatable; batched together)")
      ->allow_extra_args(false);
  cmd->add_option("--prompt-ids", args->prompt_ids,
                  "Prompt as comma-separated token ids (repeatable; \"\" = BOS alone)")
      ->allow_extra_args(false);
  add_sampling_options(cmd, args->sampling);
  cmd->add_option("--logprobs", args->sampling.logprobs,
                  "With --json: the N most likely tokens' log-probabilities at each new token (top_logprobs)")
      ->check(CLI::Range(1, 20));
  cmd->add_flag("--json", args->json,
                "One JSON object per prompt per line: index, prompt_token_ids, token_ids, text, finish_reason");
  cmd->add_flag("--quiet,-q", args->quiet, "No progress bar and no timing line on stderr");
  cmd->callback([args] { run_generate(*args); });
}

}  // namespace nanovllm::tools
