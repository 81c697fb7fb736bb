// `nanovllm bench`: nano-vllm's throughput benchmark (random prompts, ignore_eos) plus the
// llama-batched-bench shape, with prefill/decode rates, TTFT/ITL percentiles and peak RSS.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <random>
#include <unordered_map>

#include "commands.h"
#include "common/json.h"
#include "engine/progress.h"
#include "engine_options.h"
#include "model/model_config.h"
#include "nanovllm/error.h"
#include "nanovllm/llm.h"

namespace nanovllm::tools {
namespace {

using Clock = std::chrono::steady_clock;

struct BenchArgs {
  Config config;
  int num_seqs = 16;
  std::string input_len = "100:1024";
  std::string output_len = "100:1024";
  int batch = 0;  // > 0: llama-batched-bench shape, all sequences start together
  int late_prompt_len = 0;  // > 0: one more prompt of this length once every stream decodes
  uint64_t seed = 0;
  std::string workload;  // a file of requests instead of random ones
  bool json = false;
  bool kv_fraction_given = false;
  bool input_len_given = false, output_len_given = false;  // on the command line
};

using Range = std::pair<int, int>;  // MIN, MAX

Range parse_range(const std::string& s) {
  const size_t colon = s.find(':');
  const int lo = std::stoi(s.substr(0, colon));
  const int hi = colon == std::string::npos ? lo : std::stoi(s.substr(colon + 1));
  if (lo < 1 || hi < lo) throw std::invalid_argument("bad length range '" + s + "' (MIN:MAX, 1 <= MIN <= MAX)");
  return {lo, hi};
}

// The requests of a workload file: the same prompts and lengths for every engine
// (bench/peers/ writes one and hands it to each peer), so throughputs compare like for like.
// {"requests": [{"prompt_token_ids": [1, 2, ...], "max_tokens": 128}, ...]}
struct Workload {
  std::vector<std::vector<int>> prompts;
  std::vector<int> max_tokens;
  int longest = 0;  // the most positions one request needs
};

Workload read_workload(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("--workload " + path + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  const auto doc = parse_json<nlohmann::json>(text.str(), "--workload " + path);
  const auto bad = [&](const std::string& why) { throw Error("--workload " + path + ": " + why); };
  if (!doc.is_object() || !doc.contains("requests") || !doc["requests"].is_array() || doc["requests"].empty())
    bad("expected {\"requests\": [{\"prompt_token_ids\": [...], \"max_tokens\": N}, ...]}, non-empty");
  Workload w;
  for (const auto& r : doc["requests"]) {
    const std::string at = "request " + std::to_string(w.prompts.size());
    if (!r.is_object() || !r.contains("prompt_token_ids") || !r["prompt_token_ids"].is_array() ||
        r["prompt_token_ids"].empty())
      bad(at + ": 'prompt_token_ids' must be a non-empty list of token ids");
    if (!r.contains("max_tokens") || !r["max_tokens"].is_number_integer() || r["max_tokens"].get<int64_t>() < 1 ||
        r["max_tokens"].get<int64_t>() > (1 << 24))
      bad(at + ": 'max_tokens' must be an integer >= 1");
    std::vector<int> ids;
    for (const auto& t : r["prompt_token_ids"]) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > (1 << 30))
        bad(at + ": token ids must be non-negative integers");
      ids.push_back(t.get<int>());
    }
    w.max_tokens.push_back(r["max_tokens"].get<int>());
    w.longest = std::max(w.longest, static_cast<int>(ids.size()) + w.max_tokens.back());
    w.prompts.push_back(std::move(ids));
  }
  return w;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * (v.size() - 1) + 0.5))];
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;  // ru_maxrss is in KiB on Linux
}

struct Timeline {
  Clock::time_point start, prefill_done, end;
  std::vector<double> ttft_ms, itl_ms;
  int64_t prompt_tokens = 0, output_tokens = 0, decode_phase_tokens = 0;
  // The late prompt: its time to first token, and the gaps the running streams saw meanwhile.
  double late_ttft_ms = 0;
  std::vector<double> late_itl_ms;
};

// A request that arrives while the others decode, as a long prompt reaches a busy server.
struct LatePrompt {
  std::vector<int> ids;
  SamplingParams params;
};

// Runs every request to completion, recording when each token arrived.
Timeline run(LLM& llm, const std::vector<std::vector<int>>& prompts, const std::vector<SamplingParams>& params,
             const LatePrompt& late) {
  Timeline t;
  int64_t late_id = -1;
  Clock::time_point late_start;
  std::unordered_map<int64_t, Clock::time_point> last;
  StepProgress progress(static_cast<int>(prompts.size()) + !late.ids.empty(), true);
  t.start = Clock::now();
  for (size_t i = 0; i < prompts.size(); ++i) {
    last[llm.add_request(prompts[i], params[i])] = t.start;
    t.prompt_tokens += static_cast<int64_t>(prompts[i].size());
  }
  size_t started = 0;
  while (llm.has_unfinished()) {
    if (late_id < 0 && !late.ids.empty() && started == prompts.size()) {
      late_start = Clock::now();
      late_id = llm.add_request(late.ids, late.params);
    }
    const bool late_prefilling = late_id >= 0 && t.late_ttft_ms == 0;
    const std::vector<StepOutput> outs = llm.step();
    const Clock::time_point now = Clock::now();
    for (const StepOutput& o : outs) {
      progress.add(o);
      const int n = static_cast<int>(o.new_token_ids.size());
      if (n == 0) continue;
      if (o.request_id == late_id) {  // kept out of the others' statistics
        if (o.num_output_tokens == n) t.late_ttft_ms = std::chrono::duration<double, std::milli>(now - late_start).count();
        continue;
      }
      const double ms = std::chrono::duration<double, std::milli>(now - last[o.request_id]).count();
      (o.num_output_tokens == n ? t.ttft_ms : t.itl_ms).push_back(ms);
      if (late_prefilling && o.num_output_tokens > n) t.late_itl_ms.push_back(ms);  // overlaps its prefill
      if (o.num_output_tokens == n && ++started == prompts.size()) t.prefill_done = now;
      else if (started == prompts.size() && o.num_output_tokens > n) t.decode_phase_tokens += n;
      last[o.request_id] = now;
      t.output_tokens += n;
    }
  }
  t.end = Clock::now();
  progress.finish();
  return t;
}

void report(const BenchArgs& a, int num_seqs, const LLM& llm, const Timeline& t) {
  auto secs = [](Clock::time_point x, Clock::time_point y) { return std::chrono::duration<double>(y - x).count(); };
  const double total = secs(t.start, t.end);
  const double prefill = secs(t.start, t.prefill_done);
  const double decode = secs(t.prefill_done, t.end);
  nlohmann::json j = {
      {"num_seqs", num_seqs},
      {"prompt_tokens", t.prompt_tokens},
      {"output_tokens", t.output_tokens},
      {"elapsed_s", total},
      {"output_tok_s", t.output_tokens / total},
      {"prefill_tok_s", prefill > 0 ? t.prompt_tokens / prefill : 0.0},
      {"decode_tok_s", decode > 0 ? t.decode_phase_tokens / decode : 0.0},
      {"ttft_ms_p50", percentile(t.ttft_ms, 0.5)},
      {"ttft_ms_p99", percentile(t.ttft_ms, 0.99)},
      {"itl_ms_p50", percentile(t.itl_ms, 0.5)},
      {"itl_ms_p99", percentile(t.itl_ms, 0.99)},
      {"itl_ms_max", percentile(t.itl_ms, 1.0)},
      {"peak_rss_mb", peak_rss_mb()},
      {"max_model_len", llm.max_model_len()},
      {"threads", a.config.threads},
      {"quantization", a.config.quantization.empty() ? "none" : a.config.quantization}};
  if (a.late_prompt_len > 0) {
    j["late_prompt_len"] = a.late_prompt_len;
    j["late_prompt_ttft_ms"] = t.late_ttft_ms;
    j["late_prefill_itl_ms_p50"] = percentile(t.late_itl_ms, 0.5);
    j["late_prefill_itl_ms_p99"] = percentile(t.late_itl_ms, 0.99);
    j["late_prefill_itl_ms_max"] = percentile(t.late_itl_ms, 1.0);
  }
  if (a.json) {
    std::cout << j.dump() << "\n";
    return;
  }
  std::printf("requests %d  prompt tokens %lld  output tokens %lld  in %.2f s\n", j["num_seqs"].get<int>(),
              static_cast<long long>(t.prompt_tokens), static_cast<long long>(t.output_tokens), total);
  std::printf("throughput  %.1f output tok/s\n", j["output_tok_s"].get<double>());
  std::printf("prefill     %.1f tok/s  (until every request had its first token)\n", j["prefill_tok_s"].get<double>());
  std::printf("decode      %.1f tok/s  (after that)\n", j["decode_tok_s"].get<double>());
  std::printf("TTFT        p50 %.1f ms  p99 %.1f ms\n", j["ttft_ms_p50"].get<double>(), j["ttft_ms_p99"].get<double>());
  std::printf("ITL         p50 %.1f ms  p99 %.1f ms  max %.1f ms\n", j["itl_ms_p50"].get<double>(),
              j["itl_ms_p99"].get<double>(), j["itl_ms_max"].get<double>());
  if (a.late_prompt_len > 0) {
    std::printf("late prompt %d tokens: TTFT %.1f ms; the streams' ITL meanwhile p50 %.1f ms  p99 %.1f ms  max %.1f ms\n",
                a.late_prompt_len, t.late_ttft_ms, j["late_prefill_itl_ms_p50"].get<double>(),
                j["late_prefill_itl_ms_p99"].get<double>(), j["late_prefill_itl_ms_max"].get<double>());
  }
  std::printf("peak RSS    %.0f MB\n", j["peak_rss_mb"].get<double>());
}

// The context the model was trained for; 0 when config.json is missing (LLM's constructor then
// says what the path is instead).
int trained_len(const std::string& model) {
  if (!std::filesystem::is_regular_file(std::filesystem::path(model) / "config.json")) return 0;
  return load_model_config(model).max_position_embeddings;
}

// Lengths left at their defaults (100:1024 each) shrink to fit the context; lengths the user
// asked for that do not fit are an error, never a silently longer context than the model knows.
void fit_lengths(const BenchArgs& a, int context, Range& in, Range& out) {
  if (context <= 0) return;
  auto shrink = [](Range& r, int hi) {
    r.second = std::max(1, std::min(r.second, hi));
    r.first = std::min(r.first, r.second);
  };
  if (!a.input_len_given && in.second + out.second > context) {
    shrink(in, a.output_len_given ? context - out.second : context / 2);
  }
  if (!a.output_len_given && in.second + out.second > context) shrink(out, context - in.second);
  if (in.second + out.second <= context) return;
  throw Error("--input-len up to " + std::to_string(in.second) + " plus --output-len up to " +
              std::to_string(out.second) + " need " + std::to_string(in.second + out.second) +
              " positions, more than the context of " + std::to_string(context) +
              (a.config.max_model_len > 0 ? " (--max-model-len)" : " (the model's max_position_embeddings)") +
              "; shorten them, or raise --max-model-len");
}

// Random prompts of ids below min(vocab, 10000) and random lengths, from --seed.
Workload random_workload(const BenchArgs& a, int n, Range in, Range out, int vocab) {
  std::mt19937_64 rng(a.seed);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Workload w;
  for (int i = 0; i < n; ++i) {
    w.prompts.emplace_back(uniform(in.first, in.second));
    for (int& t : w.prompts.back()) t = uniform(0, std::min(vocab, 10000) - 1);
    w.max_tokens.push_back(uniform(out.first, out.second));
  }
  return w;
}

void run_bench(BenchArgs& a) {
  const bool from_file = !a.workload.empty();
  const Workload file = from_file ? read_workload(a.workload) : Workload{};
  const int n = from_file ? static_cast<int>(file.prompts.size()) : a.batch > 0 ? a.batch : a.num_seqs;
  Range in = parse_range(a.input_len), out = parse_range(a.output_len);
  const int trained = trained_len(a.config.model);
  if (!from_file) fit_lengths(a, a.config.max_model_len > 0 ? a.config.max_model_len : trained, in, out);
  if (a.late_prompt_len < 0) throw Error("--late-prompt-len must be >= 0");
  if (a.config.kv_cache_bytes == 0 && a.config.num_kv_blocks == 0 && !a.kv_fraction_given) {
    // Like llama-bench / llama-batched-bench: a KV cache sized to the workload (the engine caps
    // it at max_num_seqs sequences of max_model_len, and at the memory fraction), allocated and
    // cleared before the clock starts, so no timed step pays first-touch page faults.
    if (a.config.max_model_len == 0)
      a.config.max_model_len = std::max(from_file ? file.longest : in.second + out.second, a.late_prompt_len + 1);
    a.config.max_num_seqs = std::min(a.config.max_num_seqs, n + (a.late_prompt_len > 0));
    a.config.kv_cache_prefault = true;
  }
  LLM llm(a.config.model, a.config);
  const int vocab = llm.vocab_size();
  const Workload w = from_file ? file : random_workload(a, n, in, out, vocab);
  std::vector<SamplingParams> params(n);
  for (int i = 0; i < n; ++i) {
    for (int t : w.prompts[i])
      if (t >= vocab)
        throw Error("--workload " + a.workload + ": request " + std::to_string(i) + " has token id " +
                    std::to_string(t) + ", outside the model's vocabulary of " + std::to_string(vocab));
    params[i].temperature = 0.0f;
    params[i].ignore_eos = true;
    params[i].max_tokens = w.max_tokens[i];
  }
  const std::vector<std::vector<int>>& prompts = w.prompts;
  LatePrompt late;
  std::mt19937_64 late_rng(a.seed + 1);  // its own stream: the workload stays what --seed made
  late.ids.resize(a.late_prompt_len);
  for (int& t : late.ids) t = std::uniform_int_distribution<int>(0, std::min(vocab, 10000) - 1)(late_rng);
  late.params = params[0];
  late.params.max_tokens = 1;  // only its prefill matters here
  SamplingParams warm_up = params[0];
  warm_up.max_tokens = 1;  // one forward pages the weights in; more would only cost time
  llm.generate(std::vector<std::vector<int>>{std::vector<int>{1}}, warm_up, false);
  const Timeline t = run(llm, prompts, params, late);
  report(a, n, llm, t);
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Throughput benchmark with random token-id prompts (ignore_eos, greedy)");
  add_engine_options(cmd, args->config);
  cmd->add_option("--num-seqs,--num-prompts", args->num_seqs, "Requests, all queued at once")->capture_default_str();
  cmd->add_option("--input-len", args->input_len, "Prompt length range MIN:MAX (or N)")->capture_default_str();
  cmd->add_option("--output-len", args->output_len, "Output length range MIN:MAX (or N)")->capture_default_str();
  cmd->add_option("--batch", args->batch,
                  "llama-batched-bench shape: B sequences of exactly --input-len/--output-len");
  cmd->add_option("--late-prompt-len", args->late_prompt_len,
                  "Once every request decodes, one more prompt of N tokens arrives; reports its TTFT "
                  "and the inter-token latency the running streams saw during its prefill");
  cmd->add_option("--seed", args->seed, "Seed of the random prompts and lengths")->capture_default_str();
  cmd->add_option("--workload", args->workload,
                  "JSON file of the requests to run instead of random ones: "
                  "{\"requests\": [{\"prompt_token_ids\": [...], \"max_tokens\": N}, ...]} (bench/peers/)");
  cmd->footer(
      "Without --kv-cache-memory(-fraction) the KV cache is sized to the workload and prefaulted "
      "before timing, as llama.cpp's benchmarks allocate and clear theirs.");
  cmd->add_flag("--json", args->json,
                "One JSON object: prefill_tok_s, decode_tok_s, output_tok_s, ttft_ms_p50, itl_ms_p50, peak_rss_mb, ...");
  cmd->callback([args, cmd] {
    args->kv_fraction_given = cmd->count("--kv-cache-memory-fraction") > 0;
    args->input_len_given = cmd->count("--input-len") > 0;
    args->output_len_given = cmd->count("--output-len") > 0;
    run_bench(*args);
  });
}

}  // namespace nanovllm::tools
