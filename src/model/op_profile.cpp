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

void OpProfile::begin_step(int tokens, bool decode_only) {
  if (!enabled_) return;
  kind_ = decode_only ? 1 : 0;
  ++steps_[kind_];
  tokens_[kind_] += tokens;
}

void OpProfile::add(Op op, std::chrono::steady_clock::duration d) {
  ns_[kind_][static_cast<int>(op)] +=
      std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

void OpProfile::print(int kind) const {
  if (steps_[kind] == 0) return;
  int64_t total = 0;
  for (int64_t ns : ns_[kind]) total += ns;
  std::fprintf(stderr, "\nnanovllm profile, %s: %lld steps, %lld tokens, %.1f ms in ops\n",
               kind ? "decode-only steps" : "steps with prefill",
               static_cast<long long>(steps_[kind]), static_cast<long long>(tokens_[kind]),
               total / 1e6);
  std::fprintf(stderr, "%-22s %10s %10s %7s\n", "op", "total ms", "ms/step", "share");
  for (int i = 0; i < static_cast<int>(Op::kCount); ++i)
    std::fprintf(stderr, "%-22s %10.1f %10.3f %6.1f%%\n", kOpNames[i], ns_[kind][i] / 1e6,
                 ns_[kind][i] / 1e6 / static_cast<double>(steps_[kind]),
                 total ? 100.0 * ns_[kind][i] / total : 0.0);
}

OpProfile::~OpProfile() {
  if (!enabled_) return;
  print(0);
  print(1);
}

}  // namespace nanovllm
