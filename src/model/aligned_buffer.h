// An owned, aligned byte buffer (repacked weights, KV cache) freed exactly once.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <new>

namespace nanovllm {

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes) {
    // Large buffers (weights, KV cache) are streamed or read in 4 KiB runs scattered over
    // gigabytes: on 2 MiB transparent huge pages a TLB miss (a two-level walk under a
    // hypervisor) and a first-touch fault come 512x less often. Small ones stay 64-byte aligned.
    const size_t align = bytes >= kHugePage ? kHugePage : 64;
    const size_t rounded = (bytes + align - 1) / align * align;
    void* p = rounded ? std::aligned_alloc(align, rounded) : nullptr;
    if (rounded && !p) throw std::bad_alloc();
    if (align == kHugePage) madvise(p, rounded, MADV_HUGEPAGE);  // advice only: may be refused
    ptr_.reset(p);
    size_ = bytes;
  }
  void* data() { return ptr_.get(); }
  const void* data() const { return ptr_.get(); }
  size_t size() const { return size_; }

 private:
  static constexpr size_t kHugePage = size_t(2) << 20;
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<void, Free> ptr_;
  size_t size_ = 0;
};

}  // namespace nanovllm
