// Memory a CPU backend's KV cache may take: MemAvailable of /proc/meminfo.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

namespace nanovllm {

// MemAvailable in bytes (0 when unknown: the engine then needs --kv-cache-memory).
inline int64_t host_available_memory() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  int64_t kb = 0;
  while (in >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  return 0;
}

}  // namespace nanovllm
