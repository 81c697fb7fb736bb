// Shared by the fuzz targets: the input size cap and a scratch file for loaders that read paths.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace nanovllm::fuzz {

// Real configs, templates and requests are a few KB; bigger inputs only slow each run down
// without reaching new code. Tokenizer seeds are trimmed real files, so that target allows more.
constexpr size_t kMaxInput = 64 * 1024;

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A folder of this process's own (pid-named, so parallel fuzz jobs never share files), made once
// and removed at exit; loaders that take a path read the input from a file in it.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("nanovllm-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    static const std::filesystem::path cleanup = d;
    std::atexit([] { std::error_code ec; std::filesystem::remove_all(cleanup, ec); });
    return d;
  }();
  return dir;
}

// Writes the bytes to scratch_dir()/name and returns the path.
inline std::string write_scratch(const std::string& name, std::string_view bytes) {
  const std::string path = (scratch_dir() / name).string();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path;
}

// Fixed files the targets need (a tokenizer, a chat template) live in ../shared; a missing one
// stops the run loudly instead of fuzzing less than it claims.
inline std::string shared_path(const std::string& rel) {
  const char* env = std::getenv("NANOVLLM_SHARED_DIR");
  const std::string path = std::string(env && *env ? env : NANOVLLM_SHARED_DIR) + "/" + rel;
  if (!std::filesystem::exists(path)) {
    std::fprintf(stderr, "fuzz: %s not found (set NANOVLLM_SHARED_DIR)\n", path.c_str());
    std::abort();
  }
  return path;
}

// An input the code rejected as it should; FUZZ_VERBOSE=1 prints why (to check that seeds get
// past validation and reach the code behind it).
inline void rejected(const std::exception& e) {
  static const bool verbose = std::getenv("FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "  rejected: %s\n", e.what());
}

}  // namespace nanovllm::fuzz
