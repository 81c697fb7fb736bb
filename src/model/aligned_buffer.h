// An owned, 64-byte aligned byte buffer (merged weights, KV cache) freed exactly once.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

namespace nanovllm {

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    void* p = rounded ? std::aligned_alloc(64, rounded) : nullptr;
    if (rounded && !p) throw std::bad_alloc();
    ptr_.reset(p);
    size_ = bytes;
  }
  void* data() { return ptr_.get(); }
  const void* data() const { return ptr_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> ptr_;
  size_t size_ = 0;
};

}  // namespace nanovllm
