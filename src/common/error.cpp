// Out-of-line failure path of NV_CHECK, kept cold so the checks cost a compare on the hot path.
#include "nanovllm/error.h"

namespace nanovllm {

void check_failed(const char* expr, const char* file, int line, const std::string& msg) {
  throw std::logic_error(std::string(file) + ":" + std::to_string(line) + ": check failed: " +
                         expr + (msg.empty() ? "" : " (" + msg + ")"));
}

}  // namespace nanovllm
