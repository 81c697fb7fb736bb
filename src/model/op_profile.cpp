#include "model/op_profile.h"

#include <cstdio>
#include <cstdlib>

namespace nanovllm {

namespace {
const char* const kOpNames[] = {"embed",          "rmsnorm",
                                "qkv matmul",     "split qkv",
                                "q/k norm",       "rope",
                                "kv store",       "attention",
                                "o matmul",       "residual",
                                "gate_up matmul", "silu_mul",
                                "down matmul",    "final norm + lm_head"};
static_assert(sizeof(kOpNames) / sizeof(kOpNames[0]) == static_cast<size_t>(Op::kCount));
}  // namespace

OpProfile::OpProfile() : enabled_(std::getenv("NANOVLLM_PROFILE") != nullptr) {}

void OpProfile::count_step(int tokens) {
  if (!enabled_) return;
  ++steps_;
  tokens_ += tokens;
}

void OpProfile::add(Op op, std::chrono::steady_clock::duration d) {
  ns_[static_cast<int>(op)] += std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

OpProfile::~OpProfile() {
  if (!enabled_ || steps_ == 0) return;
  int64_t total = 0;
  for (int64_t ns : ns_) total += ns;
  std::fprintf(stderr, "\nnanovllm profile: %lld forward steps, %lld tokens, %.1f ms in ops\n",
               static_cast<long long>(steps_), static_cast<long long>(tokens_), total / 1e6);
  std::fprintf(stderr, "%-22s %10s %10s %7s\n", "op", "total ms", "ms/step", "share");
  for (int i = 0; i < static_cast<int>(Op::kCount); ++i)
    std::fprintf(stderr, "%-22s %10.1f %10.3f %6.1f%%\n", kOpNames[i], ns_[i] / 1e6,
                 ns_[i] / 1e6 / static_cast<double>(steps_), total ? 100.0 * ns_[i] / total : 0.0);
}

}  // namespace nanovllm
