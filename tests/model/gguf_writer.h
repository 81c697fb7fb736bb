// A minimal GGUF writer for tests: metadata of every type and tensors, laid out as llama.cpp's
// gguf library writes them (header, key/values, tensor infos, padding, aligned data).
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace nanovllm::test {

class GgufWriter {
 public:
  // The raw encoders, public so that tests can build corrupt headers by hand.
  template <typename T>
  static void put(std::string& out, T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  static void put_str(std::string& out, const std::string& s) {
    put<uint64_t>(out, s.size());
    out += s;
  }

  void u32(const std::string& key, uint32_t v) { scalar(key, 4, v); }
  void i32(const std::string& key, int32_t v) { scalar(key, 5, v); }
  void f32(const std::string& key, float v) { scalar(key, 6, v); }
  void boolean(const std::string& key, bool v) { scalar(key, 7, static_cast<uint8_t>(v)); }
  void u64(const std::string& key, uint64_t v) { scalar(key, 10, v); }
  void str(const std::string& key, const std::string& v) {
    head(key, 8);
    put_str(kv_, v);
  }
  void strings(const std::string& key, const std::vector<std::string>& v) {
    head(key, 9);
    put<uint32_t>(kv_, 8);
    put<uint64_t>(kv_, v.size());
    for (const std::string& s : v) put_str(kv_, s);
  }
  template <typename T>
  void array(const std::string& key, uint32_t elem_type, const std::vector<T>& v) {
    head(key, 9);
    put<uint32_t>(kv_, elem_type);
    put<uint64_t>(kv_, v.size());
    for (T x : v) put<T>(kv_, x);
  }
  // Any key/value already encoded (type + value), e.g. nested arrays.
  void raw(const std::string& key, const std::string& type_and_value) {
    put_str(kv_, key);
    kv_ += type_and_value;
    ++n_kv_;
  }

  // ne in ggml order (columns first); bytes as the type stores them.
  void tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, std::string bytes) {
    tensors_.push_back({name, std::move(ne), type, std::move(bytes)});
  }
  void tensor_f32(const std::string& name, std::vector<uint64_t> ne, const std::vector<float>& v) {
    tensor(name, std::move(ne), 0, std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4));
  }

  std::string bytes(uint32_t version = 3, uint64_t alignment = 32) const {
    std::string out;
    put<uint32_t>(out, 0x46554747);
    put<uint32_t>(out, version);
    put<uint64_t>(out, tensors_.size());
    put<uint64_t>(out, n_kv_);
    out += kv_;
    uint64_t offset = 0;
    std::vector<uint64_t> offsets;
    for (const Tensor& t : tensors_) {
      put_str(out, t.name);
      put<uint32_t>(out, static_cast<uint32_t>(t.ne.size()));
      for (uint64_t d : t.ne) put<uint64_t>(out, d);
      put<uint32_t>(out, t.type);
      put<uint64_t>(out, offset);
      offsets.push_back(offset);
      offset += (t.data.size() + alignment - 1) / alignment * alignment;
    }
    out.append((alignment - out.size() % alignment) % alignment, '\0');
    for (size_t i = 0; i < tensors_.size(); ++i) {
      out += tensors_[i].data;
      out.append((alignment - tensors_[i].data.size() % alignment) % alignment, '\0');
    }
    return out;
  }

  void write(const std::string& path, uint32_t version = 3) const {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes(version);
  }

 private:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    std::string data;
  };
  void head(const std::string& key, uint32_t type) {
    put_str(kv_, key);
    put<uint32_t>(kv_, type);
    ++n_kv_;
  }
  template <typename T>
  void scalar(const std::string& key, uint32_t type, T v) {
    head(key, type);
    put<T>(kv_, v);
  }

  std::string kv_;
  uint64_t n_kv_ = 0;
  std::vector<Tensor> tensors_;
};

}  // namespace nanovllm::test
