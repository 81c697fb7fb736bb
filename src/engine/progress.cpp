// Progress bar drawing, throttled to a few redraws a second.
#include "engine/progress.h"

#include <unistd.h>

#include <cstdio>

namespace nanovllm {

ProgressBar::ProgressBar(int total, bool enabled)
    : total_(total), enabled_(enabled && isatty(STDERR_FILENO)), start_(Clock::now()) {}

ProgressBar::~ProgressBar() {
  if (enabled_) std::fputc('\n', stderr);
}

void ProgressBar::update(int done, int64_t prefill_tokens, int64_t decode_tokens) {
  if (!enabled_) return;
  const Clock::time_point now = Clock::now();
  if (done < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double secs = std::chrono::duration<double>(now - start_).count();
  const double scale = secs > 0 ? 1.0 / secs : 0.0;
  constexpr int kWidth = 30;
  const int filled = total_ > 0 ? done * kWidth / total_ : kWidth;
  char bar[kWidth + 1];
  for (int i = 0; i < kWidth; ++i) bar[i] = i < filled ? '#' : '.';
  bar[kWidth] = '\0';
  std::fprintf(stderr, "\rGenerating [%s] %d/%d  prefill %.0f tok/s  decode %.0f tok/s ", bar, done,
               total_, prefill_tokens * scale, decode_tokens * scale);
  std::fflush(stderr);
}

void StepProgress::add(const StepOutput& d) {
  const int n = static_cast<int>(d.new_token_ids.size());
  if (n > 0 && d.num_output_tokens == n) {  // the request's first tokens: its prompt is in
    prefill_tokens_ += d.num_prompt_tokens - d.num_cached_tokens;
    decode_tokens_ += n - 1;
  } else {
    decode_tokens_ += n;
  }
  done_ += d.finished ? 1 : 0;
  if (bar_) bar_->update(done_, prefill_tokens_, decode_tokens_);
}

}  // namespace nanovllm
