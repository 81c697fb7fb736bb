// A read-only GGUF file (llama.cpp's format, versions 2 and 3): header, metadata key/values,
// tensor infos; the tensor data stays mmapped in place.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/safetensors.h"  // MappedFile

namespace nanovllm {

// The metadata value types of the format (gguf_type), with their numbers in the file.
enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_type_name(GgufType t);
bool is_integer_type(GgufType t);

// One metadata value. Integers of every width are kept in i (signed) or u (unsigned), floats
// in f; an array holds its items of one elem type.
struct GgufValue {
  GgufType type = GgufType::U8;
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  std::string s;
  GgufType elem = GgufType::U8;  // ARRAY only
  std::vector<GgufValue> arr;    // ARRAY only

  bool is_integer() const;
  bool is_float() const { return type == GgufType::F32 || type == GgufType::F64; }
};

// The tensor data types of ggml (ggml_type) that a GGUF file may name, with their numbers.
// Only these are accepted; each is a run of blocks of block_elems values in block_bytes bytes.
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, BF16 = 30,
};
struct GgmlTypeInfo {
  const char* name;
  int block_elems;
  int block_bytes;
};
// nullptr for a number that is not one of the types above.
const GgmlTypeInfo* ggml_type_info(uint32_t type);

struct GgufTensor {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> ne;  // ggml order: ne[0] is the number of columns (contiguous)
  uint64_t offset = 0;      // from the start of the data section
  const uint8_t* data = nullptr;
  size_t nbytes = 0;

  int64_t rows() const;  // product of ne[1..]
  std::string dims_string() const;  // "[576, 49152]" in ggml order
};

// Limits on what a header may declare, far above any real model and far below what would
// exhaust memory; each overrun is an Error naming the file and field.
struct GgufLimits {
  static constexpr uint64_t kMaxStringBytes = 64ull << 20;  // chat templates reach ~100 KB
  static constexpr uint64_t kMaxArrayItems = 1ull << 24;    // token lists: ~256k at most today
  static constexpr uint64_t kMaxKeyValues = 1ull << 16;
  static constexpr uint64_t kMaxTensors = 1ull << 20;
  static constexpr int kMaxArrayDepth = 4;
  static constexpr uint32_t kMaxDims = 4;
};

class GgufFile {
 public:
  // Parses and validates everything: the magic, version 2 or 3, every key and value, every
  // tensor's dims, type and byte range (inside the file, aligned, not overlapping).
  explicit GgufFile(const std::string& path);

  const std::string& path() const { return map_.path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufValue* find(const std::string& key) const;
  const GgufTensor* find_tensor(const std::string& name) const;

  // Typed reads of metadata; each throws an Error naming the file and key when the key is
  // missing (get_*) or of the wrong type.
  std::optional<uint64_t> get_uint(const std::string& key) const;  // any non-negative integer
  std::optional<double> get_float(const std::string& key) const;   // a float or an integer
  std::optional<std::string> get_string(const std::string& key) const;
  std::optional<bool> get_bool(const std::string& key) const;
  // An array of `elem` items (STRING, or any integer/float type as asked).
  const std::vector<GgufValue>* get_array(const std::string& key, GgufType elem) const;
  uint64_t require_uint(const std::string& key) const;

 private:
  void parse();
  void check_layout(size_t data_start);

  MappedFile map_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace nanovllm
