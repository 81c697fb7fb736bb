// Wall time of each decoder operation, summed over steps. On when the environment variable
// NANOVLLM_PROFILE is set; the table goes to stderr when the decoder is destroyed. It is how
// bench/NOTES.md attributes a step's time (this VM exposes no PMU to perf).
#pragma once

#include <chrono>
#include <cstdint>

namespace nanovllm {

enum class Op : int {
  kEmbed,
  kNorm,
  kQkvMatmul,
  kSplitQkv,
  kQkNorm,
  kRope,
  kKvStore,
  kAttention,
  kOMatmul,
  kResidual,
  kGateUpMatmul,
  kSiluMul,
  kDownMatmul,
  kLogits,
  kCount
};

class OpProfile {
 public:
  OpProfile();
  ~OpProfile();
  OpProfile(const OpProfile&) = delete;
  OpProfile& operator=(const OpProfile&) = delete;

  // Times one operation from construction to destruction (nothing when profiling is off).
  class Scope {
   public:
    Scope(OpProfile& p, Op op) : p_(p.enabled_ ? &p : nullptr), op_(op) {
      if (p_) t0_ = std::chrono::steady_clock::now();
    }
    ~Scope() {
      if (p_) p_->add(op_, std::chrono::steady_clock::now() - t0_);
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    OpProfile* p_;
    Op op_;
    std::chrono::steady_clock::time_point t0_;
  };

  // Starts a step; decode-only steps (one new token per sequence) are tallied apart from steps
  // that prefill, whose large matmuls would otherwise hide the decode costs.
  void begin_step(int tokens, bool decode_only);

 private:
  void add(Op op, std::chrono::steady_clock::duration d);
  void print(int kind) const;

  bool enabled_ = false;
  int kind_ = 0;  // 0: steps with prefill tokens, 1: decode-only steps
  int64_t steps_[2] = {}, tokens_[2] = {};
  int64_t ns_[2][static_cast<int>(Op::kCount)] = {};
};

}  // namespace nanovllm
