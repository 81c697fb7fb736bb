// Entry point of the `nanovllm` command: parses the subcommand and maps errors to exit codes.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"nano-vllm-cpp: a compact LLM inference engine (continuous batching, paged KV cache)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "nanovllm 0.1.0");
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
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nanovllm: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
