// A read-only safetensors file: the JSON header parsed, the tensor data mmapped in place.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "kernels/kernels.h"

namespace nanovllm {

// A file mapped read-only into memory; unmapped when destroyed.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// One tensor of a safetensors file: points into the mapping, never owns the bytes.
struct TensorInfo {
  std::string name;
  std::string file;  // the path it came from, for error messages
  kernels::DType dtype = kernels::DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const;
  std::string shape_string() const;  // "[2048, 128]"
};

// Parses the header (8-byte little-endian length, JSON) and validates every tensor's byte range
// against the file, so a truncated or malformed file fails here with the file and tensor named:
// names given once, shapes whose size fits, tensors back to back without overlap or gaps.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return map_.path(); }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorInfo* find(const std::string& name) const;

 private:
  void parse_header();
  void check_layout(size_t data_size) const;

  MappedFile map_;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Maps a safetensors dtype string ("F32", "BF16", "F16") to ours; false when unsupported.
bool parse_safetensors_dtype(const std::string& s, kernels::DType* out);
const char* safetensors_dtype_name(kernels::DType t);

// What write_safetensors puts in the header for one tensor.
struct TensorSpec {
  std::string name;
  kernels::DType dtype = kernels::DType::F32;
  std::vector<int64_t> shape;

  size_t nbytes() const;
};

// Streams a safetensors file: the header (padded to 8 bytes), then each tensor's bytes, which
// fill(index, out) writes into a buffer reused between tensors, so a checkpoint bigger than
// memory can be written one tensor at a time. Throws Error naming the path on I/O failure.
void write_safetensors(const std::string& path, const std::vector<TensorSpec>& tensors,
                       const std::function<void(size_t index, std::span<uint8_t> out)>& fill,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace nanovllm
