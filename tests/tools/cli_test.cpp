// The `nanovllm` command as a user meets it (found through $NANOVLLM_BIN, which ctest sets):
// progress on a terminal, context limits, messages for wrong model paths, vLLM / llama.cpp
// spellings, and chat's line editing and --chat-template. Terminal behaviour runs on a
// pseudo-terminal (forkpty), so it is the real thing, not a flag.
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model_test_util.h"

namespace nanovllm::test {
namespace {

namespace fs = std::filesystem;

std::string tool() {
  const char* bin = std::getenv("NANOVLLM_BIN");  // ctest sets it
  return bin ? bin : std::string(NANOVLLM_BINARY_DIR) + "/bin/nanovllm";
}

std::string tinystories() { return shared_dir() + "/models/tinystories-656k"; }

std::string temp_dir(const std::string& name) {
  const std::string d = std::string(NANOVLLM_BINARY_DIR) + "/test-tmp/cli-" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

struct Outcome {
  int status = -1;  // exit code
  std::string out, err;
};

// Runs `nanovllm ARGS` with stdout and stderr in files (not terminals) and stdin from `input`.
Outcome run_cli(const std::string& args, const std::string& input = "") {
  const std::string dir = std::string(NANOVLLM_BINARY_DIR) + "/test-tmp";
  fs::create_directories(dir);
  const std::string base = dir + "/cli-run-" + std::to_string(getpid());
  write_text(base + ".in", input);
  const int rc = std::system((tool() + " " + args + " < " + base + ".in > " + base + ".out 2> " + base + ".err").c_str());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, read_text(base + ".out"), read_text(base + ".err")};
}

// Runs a shell command with stdin, stdout and stderr on a new pseudo-terminal. Each of
// `inputs` is typed once the output shows one more `prompt` than inputs typed so far.
Outcome run_in_pty(const std::string& command, const std::vector<std::string>& inputs = {},
               const std::string& prompt = "> ") {
  int master = -1;
  winsize size{24, 160, 0, 0};
  const pid_t pid = forkpty(&master, nullptr, nullptr, &size);
  if (pid == 0) {
    setenv("TERM", "xterm", 1);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  Outcome r;
  if (pid < 0) return r;
  size_t typed = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{master, POLLIN, 0};
    if (poll(&p, 1, 100) > 0) {
      char buf[4096];
      const ssize_t n = read(master, buf, sizeof buf);
      if (n <= 0) break;  // EIO: the child closed the terminal
      r.out.append(buf, static_cast<size_t>(n));
    }
    if (typed < inputs.size() && count_of(r.out, prompt) > typed) {
      const std::string& line = inputs[typed++];
      ssize_t ignored = write(master, line.data(), line.size());
      (void)ignored;
    }
  }
  if (std::chrono::steady_clock::now() >= deadline) kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  close(master);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(tool())) << "no nanovllm binary at " << tool();
    ASSERT_TRUE(fs::exists(tinystories() + "/config.json")) << "no TinyStories-656K under " << shared_dir();
  }
};

const std::string kFourPrompts = " -p 'Once upon a time' -p 'The cat' -p 'Tom had a ball' -p 'One day' ";

// ---- progress ---------------------------------------------------------------------------

TEST_F(Cli, GenerateDrawsAProgressBarOnATerminal) {
  const Outcome r = run_in_pty(tool() + " generate " + tinystories() + kFourPrompts + "-n 16 --temp 0");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("Generating ["), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("4/4"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tok/s"), std::string::npos) << r.out;
}

TEST_F(Cli, GenerateIsQuietWhenNotATerminal) {
  const Outcome r = run_cli("generate " + tinystories() + kFourPrompts + "-n 16 --temp 0");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err.find("Generating"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\r'), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("Generating"), std::string::npos);
}

// One prompt streams its text to the terminal; a bar there would cut through it.
TEST_F(Cli, StreamedTextGetsNoBar) {
  const Outcome r = run_in_pty(tool() + " generate " + tinystories() + " -p 'Once upon a time' -n 16 --temp 0");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out.find("Generating ["), std::string::npos) << r.out;
}

TEST_F(Cli, BenchDrawsAProgressBarOnATerminalOnly) {
  const std::string args = " bench " + tinystories() + " --num-seqs 4 --input-len 8 --output-len 8";
  const Outcome tty = run_in_pty(tool() + args);
  EXPECT_EQ(tty.status, 0) << tty.out;
  EXPECT_NE(tty.out.find("4/4"), std::string::npos) << tty.out;
  const Outcome file = run_cli(args);
  EXPECT_EQ(file.status, 0) << file.err;
  EXPECT_EQ(file.err.find("Generating"), std::string::npos) << file.err;
}

// ---- context length ---------------------------------------------------------------------

// TinyStories was trained on 512 positions; bench's defaults (100:1024 in and out) used to
// raise the context to 2048 without a word.
TEST_F(Cli, BenchDefaultsStayWithinTheModel) {
  const Outcome r = run_cli("bench " + tinystories() + " --num-seqs 2 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.contains("max_model_len")) << r.out;
  EXPECT_LE(j["max_model_len"].get<int>(), 512) << r.out;
  EXPECT_GT(j["output_tokens"].get<int>(), 0);
  // Lengths asked for that cannot fit are refused with the numbers.
  const Outcome over = run_cli("bench " + tinystories() + " --num-seqs 2 --input-len 400 --output-len 200");
  EXPECT_NE(over.status, 0);
  EXPECT_NE(over.err.find("600"), std::string::npos) << over.err;
  EXPECT_NE(over.err.find("512"), std::string::npos) << over.err;
}

// bench/peers/ hands every engine the same requests in a file: they run exactly as written.
TEST_F(Cli, BenchRunsTheRequestsOfAWorkloadFile) {
  const std::string dir = temp_dir("workload");
  write_text(dir + "/w.json", R"({"requests": [{"prompt_token_ids": [1, 5, 9], "max_tokens": 4},
    {"prompt_token_ids": [1, 2, 3, 4, 5, 6, 7], "max_tokens": 9}, {"prompt_token_ids": [7], "max_tokens": 1}]})");
  const Outcome r = run_cli("bench " + tinystories() + " --workload " + dir + "/w.json --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["num_seqs"], 3) << r.out;
  EXPECT_EQ(j["prompt_tokens"], 11) << r.out;
  EXPECT_EQ(j["output_tokens"], 14) << r.out;
  // TinyStories has 2048 ids; a file written for another vocabulary is refused by name.
  write_text(dir + "/big.json", R"({"requests": [{"prompt_token_ids": [1, 4096], "max_tokens": 2}]})");
  const Outcome big = run_cli("bench " + tinystories() + " --workload " + dir + "/big.json");
  EXPECT_NE(big.status, 0);
  EXPECT_NE(big.err.find("4096"), std::string::npos) << big.err;
  EXPECT_NE(big.err.find("2048"), std::string::npos) << big.err;
  write_text(dir + "/bad.json", R"({"requests": [{"prompt_token_ids": [1], "max_tokens": 0}]})");
  const Outcome bad = run_cli("bench " + tinystories() + " --workload " + dir + "/bad.json");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("max_tokens"), std::string::npos) << bad.err;
}

TEST_F(Cli, LongerContextThanTrainedNeedsTheOverride) {
  const std::string gen = "generate " + tinystories() + " -p 'Once upon a time' -n 4 --temp 0 -q";
  const Outcome refused = run_cli(gen + " --max-model-len 1024");
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.err.find("1024"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("512"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("--allow-long-max-model-len"), std::string::npos) << refused.err;
  const Outcome allowed = run_cli(gen + " --max-model-len 1024 --allow-long-max-model-len");
  EXPECT_EQ(allowed.status, 0) << allowed.err;
  EXPECT_NE(allowed.err.find("warning"), std::string::npos) << allowed.err;
  const Outcome ctx_size = run_cli(gen + " -c 1024");  // -c: llama.cpp's --ctx-size
  EXPECT_NE(ctx_size.status, 0) << ctx_size.err;
  const Outcome env = [&] {
    setenv("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "1", 1);
    Outcome x = run_cli(gen + " --ctx-size 1024");
    unsetenv("VLLM_ALLOW_LONG_MAX_MODEL_LEN");
    return x;
  }();
  EXPECT_EQ(env.status, 0) << env.err;
  EXPECT_NE(env.err.find("warning"), std::string::npos) << env.err;
}

// ---- model paths ------------------------------------------------------------------------

TEST_F(Cli, WrongModelPathsSayWhatTheyAre) {
  const std::string d = temp_dir("paths");
  write_text(d + "/model.gguf", std::string("GGUF\x03\0\0\0", 8));
  fs::create_directories(d + "/llamacpp");
  write_text(d + "/llamacpp/tiny-q4.gguf", std::string("GGUF\x03\0\0\0", 8));
  const Outcome gguf = run_cli("generate " + d + "/model.gguf -p hi");
  EXPECT_NE(gguf.status, 0);
  EXPECT_NE(gguf.err.find("model.gguf: tensor count: needs 8 bytes"), std::string::npos) << gguf.err;  // cut short
  const Outcome folder = run_cli("generate " + d + "/llamacpp -p hi");
  EXPECT_NE(folder.err.find("llama.cpp model folder"), std::string::npos) << folder.err;
  EXPECT_NE(folder.err.find("tiny-q4.gguf"), std::string::npos) << folder.err;
  const Outcome missing = run_cli("generate " + d + "/nothing-here -p hi");
  EXPECT_NE(missing.err.find("does not exist"), std::string::npos) << missing.err;
}

// ---- vLLM / llama.cpp spellings ---------------------------------------------------------

TEST_F(Cli, PositionalModelAndLlamaCppSpellings) {
  // Greedy from BOS alone, TinyStories tells the story ../shared/README.md quotes.
  const Outcome r = run_cli("generate " + tinystories() + " -p '' -n 16 --temp 0 -c 256 -t 1 -q");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out.rfind("Once upon a time, there was a little girl named Lily", 0), 0u) << r.out;
  const Outcome m = run_cli("generate -m " + tinystories() + " --prompt '' --n-predict 16 --temperature 0 -q");
  EXPECT_EQ(m.out, r.out);
  // `nanovllm serve MODEL`, as `vllm serve MODEL`: the positional reaches the model loader.
  const Outcome serve = run_cli("serve /nonexistent/model --port 0");
  EXPECT_NE(serve.status, 0);
  EXPECT_NE(serve.err.find("model path does not exist: /nonexistent/model"), std::string::npos) << serve.err;
}

TEST_F(Cli, UnknownOptionSuggestsTheNearestOne) {
  const Outcome r = run_cli("generate " + tinystories() + " --temprature 0 -p hi");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("unknown option --temprature; did you mean --temperature?"), std::string::npos) << r.err;
  const Outcome far = run_cli("bench " + tinystories() + " --zzzzzz 3");
  EXPECT_NE(far.status, 0);
  EXPECT_NE(far.err.find("unknown option --zzzzzz"), std::string::npos) << far.err;
  EXPECT_EQ(far.err.find("did you mean"), std::string::npos) << far.err;
  const Outcome command = run_cli("generat " + tinystories());
  EXPECT_NE(command.status, 0);
  EXPECT_NE(command.err.find("unknown command generat; did you mean generate?"), std::string::npos) << command.err;
}

// ---- chat -------------------------------------------------------------------------------

// TinyStories' tokenizer has no chat template: --chat-template gives it one. This one starts
// each reply as a new story from BOS (bos_token comes from tokenizer_config.json), so greedy
// gives the story ../shared/README.md quotes.
TEST_F(Cli, ChatTemplateFileForAModelWithoutOne) {
  const std::string d = temp_dir("chat-template");
  write_text(d + "/story.jinja", "{% if messages[-1]['role'] == 'user' %}{{ bos_token }}{% endif %}");
  const Outcome none = run_cli("chat " + tinystories() + " --temp 0 -n 8", "Once upon a time\n/exit\n");
  EXPECT_NE(none.status, 0);
  EXPECT_NE(none.err.find("--chat-template FILE"), std::string::npos) << none.err;
  const Outcome r = run_cli("chat " + tinystories() + " --chat-template " + d + "/story.jinja --temp 0 -n 16",
                        "Tell me a story\n/exit\n");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("> Once upon a time, there was a little girl named Lily"), std::string::npos) << r.out;
}

// `serve --chat-template FILE`: the server renders chat requests with it (TinyStories again).
TEST_F(Cli, ServeTakesAChatTemplateFile) {
  const std::string d = temp_dir("serve-template");
  write_text(d + "/story.jinja", "{% if messages[-1]['role'] == 'user' %}{{ bos_token }}{% endif %}");
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    execl(tool().c_str(), "nanovllm", "serve", tinystories().c_str(), "--port", "0", "--chat-template",
          (d + "/story.jinja").c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  std::string banner;  // "... listening on http://127.0.0.1:PORT"
  char ch = 0;
  while (banner.find("listening on http://") == std::string::npos || banner.back() != '\n') {
    if (read(out[0], &ch, 1) != 1) break;
    banner += ch;
  }
  const size_t at = banner.find("http://");
  ASSERT_NE(at, std::string::npos) << banner;
  const std::string url = banner.substr(at, banner.find_first_of(" \n", at) - at);
  const std::string reply = d + "/reply.json";
  const std::string curl = "curl -s " + url + "/v1/chat/completions -H 'Content-Type: application/json' -d "
                           "'{\"messages\": [{\"role\": \"user\", \"content\": \"A story, please\"}], "
                           "\"max_tokens\": 16, \"temperature\": 0}' > " + reply;
  const int rc = std::system(curl.c_str());
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  close(out[0]);
  ASSERT_EQ(rc, 0);
  const nlohmann::json j = nlohmann::json::parse(read_text(reply), nullptr, false);
  ASSERT_TRUE(j.contains("choices")) << read_text(reply);
  EXPECT_EQ(j["choices"][0]["message"]["content"].get<std::string>().rfind(
                "Once upon a time, there was a little girl named Lily", 0), 0u) << j.dump();
}

// On a terminal the up arrow brings back the previous line (libedit history); the template
// raises with the last user message, so the chat's error line shows what was read.
TEST_F(Cli, ChatEditsLinesOnATerminal) {
  const std::string d = temp_dir("chat-history");
  write_text(d + "/echo.jinja", "{{ raise_exception('said: ' + messages[-1]['content'] + '.') }}");
  const Outcome r = run_in_pty(tool() + " chat " + tinystories() + " --chat-template " + d + "/echo.jinja",
                           {"hello\r", "\x1b[A\r", "/exit\r"});
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(count_of(r.out, "said: hello."), 2u) << r.out;
}

// ---- OpenMP wait policy -----------------------------------------------------------------

// The environment libgomp runs with, as its OMP_DISPLAY_ENV report says (the last report:
// the command may execute itself again to set it).
std::string reported(const std::string& err, const std::string& var) {
  const size_t at = err.rfind("  " + var + " = '");
  if (at == std::string::npos) return "(not reported)";
  const size_t start = err.find('\'', at) + 1;
  return err.substr(start, err.find('\'', start) - start);
}

// Sets or unsets environment variables for one test and restores them after it.
class ScopedEnv {
 public:
  void set(const char* name, const char* value) {
    const char* old = std::getenv(name);
    saved_.push_back({name, old ? std::optional<std::string>(old) : std::nullopt});
    value ? setenv(name, value, 1) : unsetenv(name);
  }
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it)
      it->second ? setenv(it->first.c_str(), it->second->c_str(), 1) : unsetenv(it->first.c_str());
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// libgomp's default spin before an idle thread sleeps (300,000 pauses, ~8 ms here) made every
// kernel wait a time slice for a descheduled thread beside a busy process; the command runs
// with a short spin unless the user chose a wait policy.
TEST_F(Cli, RunsOpenMPWithAShortSpinUnlessTheUserChoseAPolicy) {
  ScopedEnv env;
  env.set("OMP_DISPLAY_ENV", "verbose");
  env.set("GOMP_SPINCOUNT", nullptr);
  env.set("OMP_WAIT_POLICY", nullptr);
  const Outcome chosen = run_cli("--version");
  EXPECT_EQ(chosen.status, 0) << chosen.err;
  EXPECT_NE(chosen.out.find("nanovllm"), std::string::npos) << chosen.out;
  EXPECT_EQ(reported(chosen.err, "GOMP_SPINCOUNT"), "1000") << chosen.err;

  env.set("GOMP_SPINCOUNT", "77");
  EXPECT_EQ(reported(run_cli("--version").err, "GOMP_SPINCOUNT"), "77");
  env.set("GOMP_SPINCOUNT", nullptr);
  env.set("OMP_WAIT_POLICY", "active");
  const Outcome active = run_cli("--version");
  EXPECT_EQ(reported(active.err, "OMP_WAIT_POLICY"), "ACTIVE") << active.err;
  EXPECT_NE(reported(active.err, "GOMP_SPINCOUNT"), "1000") << active.err;
}

}  // namespace
}  // namespace nanovllm::test
