// Test helpers: weight matrices stored in each dtype with independently decoded values.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/kernels.h"

namespace nanovllm::kernels::test {

// The ISA the process started with (restored after tests that force another).
inline const char* best_isa() {
  static const char* const name = isa_name();
  return name;
}
[[maybe_unused]] static const char* const kInitialIsa = best_isa();

inline std::vector<float> random_floats(size_t n, std::mt19937& rng, float scale = 1.f) {
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> v(n);
  for (float& f : v) f = d(rng);
  return v;
}

// A weight matrix in its stored dtype plus the exact value of every element as a double,
// decoded here from the bit patterns rather than by the code under test.
struct Matrix {
  DType dtype = DType::F32;
  int rows = 0, cols = 0;
  std::vector<uint8_t> bytes;
  std::vector<double> values;
  std::vector<float> scales;  // I8: one per row
  double value(int r, int c) const { return values[size_t(r) * cols + c]; }
  WeightView view() const {
    return WeightView{bytes.data(), dtype, rows, cols, Layout::kRows, dtype == DType::I8 ? scales.data() : nullptr};
  }
};

inline Matrix random_matrix(DType dt, int rows, int cols, std::mt19937& rng) {
  Matrix m{dt, rows, cols, {}, {}, {}};
  const size_t n = size_t(rows) * cols;
  std::uniform_int_distribution<uint32_t> bits;
  if (dt == DType::I8) {  // scales of 11 significant bits: q * scale is exact in f32
    for (int r = 0; r < rows; ++r)
      m.scales.push_back(float(std::ldexp(1.0 + bits(rng) % 1024 / 1024.0, -int(bits(rng) % 8) - 6)));
  }
  m.bytes.resize(n * dtype_size(dt) + 1);
  m.values.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t r = bits(rng);
    if (dt == DType::I8) {
      const int8_t q = int8_t(int(r % 255) - 127);
      std::memcpy(&m.bytes[i], &q, 1);
      m.values[i] = double(q) * m.scales[i / size_t(cols)];
      continue;
    }
    const int sign = (r & 1) ? -1 : 1;
    const int exp = -int((r >> 1) % 8);   // magnitudes in [2^-8, 2)
    const uint32_t man = (r >> 8) & 0x3ff;  // 10 mantissa bits: exact in f16, f32; 7 kept for bf16
    if (dt == DType::F16) {
      const uint16_t h = uint16_t((sign < 0 ? 0x8000 : 0) | uint32_t(exp + 15) << 10 | man);
      std::memcpy(&m.bytes[i * 2], &h, 2);
      m.values[i] = sign * std::ldexp(1.0 + man / 1024.0, exp);
    } else if (dt == DType::BF16) {
      const uint32_t man7 = man >> 3;
      const uint16_t h = uint16_t((sign < 0 ? 0x8000 : 0) | uint32_t(exp + 127) << 7 | man7);
      std::memcpy(&m.bytes[i * 2], &h, 2);
      m.values[i] = sign * std::ldexp(1.0 + man7 / 128.0, exp);
    } else {
      const float f = float(sign * std::ldexp(1.0 + (r >> 8) / 16777216.0, exp));
      std::memcpy(&m.bytes[i * 4], &f, 4);
      m.values[i] = f;
    }
  }
  return m;
}

}  // namespace nanovllm::kernels::test
