// Subcommands of the `nanovllm` tool; each cmd_*.cpp adds one to the CLI11 app.
#pragma once

namespace CLI {
class App;
}

namespace nanovllm::tools {

void add_generate_command(CLI::App& app);
void add_tokenize_commands(CLI::App& app);      // tokenize, detokenize
void add_chat_template_command(CLI::App& app);
void add_make_model_command(CLI::App& app);
void add_convert_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_chat_command(CLI::App& app);

// Sets libgomp's spin-before-sleep for a shared machine (omp_wait_policy.cpp); may execute the
// program again with it, so call it first thing in main().
void choose_omp_wait_policy(char** argv);

}  // namespace nanovllm::tools
