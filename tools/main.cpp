// Entry point of the `nanovllm` command: parses the subcommand and maps errors to exit codes.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "commands.h"
#include "engine_options.h"
#ifdef NANOVLLM_HAVE_MPI
#include "llm_internal.h"
#include "parallel/tp_runner.h"
#endif

namespace {

// Edits (insertions, deletions, substitutions) between two option spellings.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      diagonal = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitute});
    }
  }
  return row[b.size()];
}

// The known spelling closest to a mistyped one, or "" when none is close (a third of the
// spelling or less), so "--temprature" gets "--temperature" and "--foo" gets nothing.
std::string nearest(const std::string& typed, const std::vector<std::string>& known) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, typed.size() / 3) + 1;
  for (const std::string& k : known) {
    const size_t d = edit_distance(typed, k);
    if (d < best_distance) best_distance = d, best = k;
  }
  return best;
}

std::string nearest_option(const CLI::App& cmd, const std::string& typed) {
  std::vector<std::string> known;
  for (const CLI::Option* opt : cmd.get_options()) {
    for (const std::string& long_name : opt->get_lnames()) known.push_back("--" + long_name);
  }
  return nearest(typed.substr(0, typed.find('=')), known);
}

std::string hint(const std::string& suggestion) {
  return suggestion.empty() ? "" : "; did you mean " + suggestion + "?";
}

// CLI11 says only "A subcommand is required" when the first word is not a subcommand (or is
// an unknown option).
int report_unknown_command(CLI::App& app, const CLI::RequiredError& e) {
  const std::vector<std::string> left = app.remaining();
  if (!app.get_subcommands().empty() || left.empty()) return app.exit(e);
  if (left.front().rfind("-", 0) == 0) {
    std::fprintf(stderr, "nanovllm: unknown option %s%s\nRun nanovllm --help for the commands.\n",
                 left.front().c_str(), hint(nearest_option(app, left.front())).c_str());
    return e.get_exit_code();
  }
  std::vector<std::string> known;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    known.push_back(sub->get_name());
  }
  std::fprintf(stderr, "nanovllm: unknown command %s%s\nRun nanovllm --help for the commands.\n",
               left.front().c_str(), hint(nearest(left.front(), known)).c_str());
  return e.get_exit_code();
}

// CLI11 says "The following arguments were not expected"; name the first unknown option of
// the subcommand and the option it probably meant instead.
int report_unknown(const CLI::App& app, const CLI::ExtrasError& e) {
  const std::vector<CLI::App*> used = app.get_subcommands();
  const CLI::App& cmd = used.empty() ? app : *used.front();
  std::vector<std::string> extras = app.remaining();
  for (const std::string& s : cmd.remaining()) extras.push_back(s);
  for (const std::string& arg : extras) {
    if (arg.size() < 2 || arg[0] != '-') continue;
    std::fprintf(stderr, "nanovllm %s: unknown option %s%s\nRun with --help for the options.\n",
                 cmd.get_name().c_str(), arg.c_str(), hint(nearest_option(cmd, arg)).c_str());
    return e.get_exit_code();
  }
  std::fprintf(stderr, "nanovllm %s: %s\n", cmd.get_name().c_str(), e.what());
  return e.get_exit_code();
}

}  // namespace

int main(int argc, char** argv) {
  nanovllm::tools::choose_omp_wait_policy(argv);
#ifdef NANOVLLM_HAVE_MPI
  nanovllm::internal::set_tp_runner_factory(&nanovllm::make_tp_runner);
#endif
  CLI::App app{"nano-vllm-cpp: a compact LLM inference engine (continuous batching, paged KV cache)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "nanovllm 0.1.0 (backends: " + nanovllm::tools::backend_list() + ")");
  nanovllm::tools::add_generate_command(app);
  nanovllm::tools::add_chat_template_command(app);
  nanovllm::tools::add_tokenize_commands(app);
  nanovllm::tools::add_bench_command(app);
  nanovllm::tools::add_make_model_command(app);
  nanovllm::tools::add_convert_command(app);
  nanovllm::tools::add_serve_command(app);
  nanovllm::tools::add_chat_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ExtrasError& e) {
    return report_unknown(app, e);
  } catch (const CLI::RequiredError& e) {
    return report_unknown_command(app, e);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nanovllm: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
