// The GGUF reader: a bounds-checked cursor over the mapping, so a corrupt or truncated header
// is an Error naming the file and the field, never a read past the end.
#include "model/gguf.h"

#include <algorithm>
#include <cstring>

#include "nanovllm/error.h"

namespace nanovllm {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kDefaultAlignment = 32;

// Reads little-endian scalars and length-prefixed strings; every read checks the bytes exist.
class Cursor {
 public:
  Cursor(const std::string& file, const uint8_t* data, size_t size) : file_(file), data_(data), size_(size) {}

  template <typename T>
  T scalar(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string string(const std::string& what) {
    const uint64_t n = scalar<uint64_t>(what + " (length)");
    if (n > GgufLimits::kMaxStringBytes)
      throw fail(what + ": string of " + std::to_string(n) + " bytes exceeds the limit of " +
                 std::to_string(GgufLimits::kMaxStringBytes));
    need(n, what);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }

  // A count of items of at least min_bytes each: more than the rest of the file can hold is
  // corrupt, and refused before anything is allocated for it.
  uint64_t count(const std::string& what, uint64_t limit, uint64_t min_bytes) {
    const uint64_t n = scalar<uint64_t>(what);
    if (n > limit)
      throw fail(what + " " + std::to_string(n) + " exceeds the limit of " + std::to_string(limit));
    if (min_bytes > 0 && n > (size_ - pos_) / min_bytes)
      throw fail(what + " " + std::to_string(n) + " cannot fit in the " + std::to_string(size_ - pos_) +
                 " bytes left (truncated or corrupt)");
    return n;
  }

  Error fail(const std::string& why) const { return Error(file_ + ": " + why); }
  size_t pos() const { return pos_; }

 private:
  void need(uint64_t n, const std::string& what) const {
    if (n > size_ - pos_)
      throw fail(what + ": needs " + std::to_string(n) + " bytes at offset " + std::to_string(pos_) +
                 ", the file has " + std::to_string(size_ - pos_) + " left (truncated?)");
  }

  const std::string& file_;
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

bool valid_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::F64); }

// The fewest bytes one value of type t takes in the file (bounds array counts up front).
uint64_t min_value_bytes(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::STRING: case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    case GgufType::ARRAY: return 12;
  }
  return 1;
}

GgufValue read_value(Cursor& c, GgufType type, const std::string& what, int depth) {
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufType::U8: v.u = c.scalar<uint8_t>(what); break;
    case GgufType::I8: v.i = c.scalar<int8_t>(what); break;
    case GgufType::U16: v.u = c.scalar<uint16_t>(what); break;
    case GgufType::I16: v.i = c.scalar<int16_t>(what); break;
    case GgufType::U32: v.u = c.scalar<uint32_t>(what); break;
    case GgufType::I32: v.i = c.scalar<int32_t>(what); break;
    case GgufType::U64: v.u = c.scalar<uint64_t>(what); break;
    case GgufType::I64: v.i = c.scalar<int64_t>(what); break;
    case GgufType::F32: v.f = c.scalar<float>(what); break;
    case GgufType::F64: v.f = c.scalar<double>(what); break;
    case GgufType::BOOL: {
      const uint8_t b = c.scalar<uint8_t>(what);
      if (b > 1) throw c.fail(what + ": bool value " + std::to_string(b) + " is neither 0 nor 1");
      v.u = b;
      break;
    }
    case GgufType::STRING: v.s = c.string(what); break;
    case GgufType::ARRAY: {
      if (depth >= GgufLimits::kMaxArrayDepth)
        throw c.fail(what + ": arrays nested deeper than " + std::to_string(GgufLimits::kMaxArrayDepth));
      const uint32_t elem = c.scalar<uint32_t>(what + " (array type)");
      if (!valid_type(elem)) throw c.fail(what + ": unknown array item type " + std::to_string(elem));
      v.elem = static_cast<GgufType>(elem);
      const uint64_t n = c.count(what + ": array length", GgufLimits::kMaxArrayItems, min_value_bytes(v.elem));
      v.arr.reserve(n);
      for (uint64_t k = 0; k < n; ++k) v.arr.push_back(read_value(c, v.elem, what, depth + 1));
      break;
    }
  }
  return v;
}

}  // namespace

const char* gguf_type_name(GgufType t) {
  static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(t);
  return i < std::size(names) ? names[i] : "?";
}

bool is_integer_type(GgufType t) {
  return t != GgufType::F32 && t != GgufType::F64 && t != GgufType::BOOL && t != GgufType::STRING &&
         t != GgufType::ARRAY;
}

bool GgufValue::is_integer() const { return is_integer_type(type); }

const GgmlTypeInfo* ggml_type_info(uint32_t type) {
  // Block sizes as ggml defines them (ggml-common.h): K-quants use super-blocks of 256.
  static const std::map<uint32_t, GgmlTypeInfo> table = {
      {0, {"F32", 1, 4}},       {1, {"F16", 1, 2}},       {2, {"Q4_0", 32, 18}},   {3, {"Q4_1", 32, 20}},
      {6, {"Q5_0", 32, 22}},    {7, {"Q5_1", 32, 24}},    {8, {"Q8_0", 32, 34}},   {9, {"Q8_1", 32, 36}},
      {10, {"Q2_K", 256, 84}},  {11, {"Q3_K", 256, 110}}, {12, {"Q4_K", 256, 144}}, {13, {"Q5_K", 256, 176}},
      {14, {"Q6_K", 256, 210}}, {15, {"Q8_K", 256, 292}}, {30, {"BF16", 1, 2}},
  };
  auto it = table.find(type);
  return it == table.end() ? nullptr : &it->second;
}

int64_t GgufTensor::rows() const {
  int64_t r = 1;
  for (size_t d = 1; d < ne.size(); ++d) r *= ne[d];
  return r;
}

std::string GgufTensor::dims_string() const {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

GgufFile::GgufFile(const std::string& path) : map_(path) { parse(); }

void GgufFile::parse() {
  Cursor c(path(), map_.data(), map_.size());
  if (map_.size() < 4 || c.scalar<uint32_t>("magic") != kMagic)
    throw Error(path() + ": not a GGUF file (no GGUF magic)");
  version_ = c.scalar<uint32_t>("version");
  if (version_ != 2 && version_ != 3)
    throw Error(path() + ": GGUF version " + std::to_string(version_) + " is not supported (2 or 3)");
  // Each tensor info takes at least 8 (name) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset).
  const uint64_t n_tensors = c.count("tensor count", GgufLimits::kMaxTensors, 32);
  const uint64_t n_kv = c.count("metadata count", GgufLimits::kMaxKeyValues, 13);
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.string("metadata key " + std::to_string(k));
    const uint32_t type = c.scalar<uint32_t>("metadata '" + key + "' type");
    if (!valid_type(type)) throw c.fail("metadata '" + key + "': unknown value type " + std::to_string(type));
    GgufValue v = read_value(c, static_cast<GgufType>(type), "metadata '" + key + "'", 0);
    if (!kv_.emplace(key, std::move(v)).second) throw c.fail("metadata key '" + key + "' appears twice");
  }
  if (const GgufValue* a = find("general.alignment")) {
    if (!a->is_integer() || a->u == 0 || a->u > (1u << 20) || (a->u & (a->u - 1)) != 0)
      throw Error(path() + ": general.alignment must be a power of two up to 2^20");
    alignment_ = a->u;
  } else {
    alignment_ = kDefaultAlignment;
  }
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensor t;
    t.name = c.string("tensor " + std::to_string(k) + " name");
    const std::string what = "tensor '" + t.name + "'";
    if (tensor_index_.count(t.name)) throw c.fail(what + " appears twice");
    const uint32_t n_dims = c.scalar<uint32_t>(what + " n_dims");
    if (n_dims == 0 || n_dims > GgufLimits::kMaxDims)
      throw c.fail(what + ": n_dims " + std::to_string(n_dims) + " is not in 1.." + std::to_string(GgufLimits::kMaxDims));
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne = c.scalar<uint64_t>(what + " dim " + std::to_string(d));
      if (ne == 0 || ne > (1ull << 40))
        throw c.fail(what + ": dim " + std::to_string(d) + " = " + std::to_string(ne) + " is out of range");
      t.ne.push_back(static_cast<int64_t>(ne));
    }
    const uint32_t type = c.scalar<uint32_t>(what + " type");
    const GgmlTypeInfo* info = ggml_type_info(type);
    if (!info) throw c.fail(what + ": unknown or unsupported ggml type " + std::to_string(type));
    t.type = static_cast<GgmlType>(type);
    t.offset = c.scalar<uint64_t>(what + " offset");
    if (t.ne[0] % info->block_elems != 0)
      throw c.fail(what + ": " + std::to_string(t.ne[0]) + " columns are not a whole number of " + info->name +
                   " blocks of " + std::to_string(info->block_elems));
    // Bytes = blocks per row * block bytes * rows, with every product checked.
    uint64_t bytes = static_cast<uint64_t>(t.ne[0] / info->block_elems) * info->block_bytes;
    for (size_t d = 1; d < t.ne.size(); ++d)
      if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(t.ne[d]), &bytes))
        throw c.fail(what + ": dims " + t.dims_string() + " are too large");
    t.nbytes = bytes;
    tensor_index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }
  const size_t data_start = (c.pos() + alignment_ - 1) / alignment_ * alignment_;
  check_layout(data_start);
}

// Every tensor's bytes lie inside the file's data section, at an aligned offset, and no two
// overlap (a shared byte would make one tensor's content depend on another's).
void GgufFile::check_layout(size_t data_start) {
  if (tensors_.empty()) return;
  if (data_start > map_.size())
    throw Error(path() + ": the data section starts at " + std::to_string(data_start) + ", past the end of the " +
                std::to_string(map_.size()) + "-byte file (truncated?)");
  const size_t data_size = map_.size() - data_start;
  std::vector<GgufTensor*> by_offset;
  for (GgufTensor& t : tensors_) {
    if (t.offset % alignment_ != 0)
      throw Error(path() + ": tensor '" + t.name + "': offset " + std::to_string(t.offset) +
                  " is not a multiple of the alignment " + std::to_string(alignment_));
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      throw Error(path() + ": tensor '" + t.name + "': bytes [" + std::to_string(t.offset) + ", +" +
                  std::to_string(t.nbytes) + ") exceed the file's " + std::to_string(data_size) +
                  " data bytes (truncated?)");
    t.data = map_.data() + data_start + t.offset;
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](const GgufTensor* a, const GgufTensor* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < by_offset.size(); ++k) {
    const GgufTensor& a = *by_offset[k - 1];
    if (a.offset + a.nbytes > by_offset[k]->offset)
      throw Error(path() + ": tensors '" + a.name + "' and '" + by_offset[k]->name + "' overlap");
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::optional<uint64_t> GgufFile::get_uint(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_integer() || v->i < 0)
    throw Error(path() + ": metadata '" + key + "' is " + gguf_type_name(v->type) +
                (v->is_integer() ? " " + std::to_string(v->i) : std::string()) + ", expected a non-negative integer");
  return v->u + static_cast<uint64_t>(v->i);  // one of the two is 0
}

uint64_t GgufFile::require_uint(const std::string& key) const {
  auto v = get_uint(key);
  if (!v) throw Error(path() + ": missing metadata '" + key + "'");
  return *v;
}

std::optional<double> GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->is_float()) return v->f;
  if (v->is_integer()) return v->u ? static_cast<double>(v->u) : static_cast<double>(v->i);
  throw Error(path() + ": metadata '" + key + "' is " + gguf_type_name(v->type) + ", expected a number");
}

std::optional<std::string> GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::STRING)
    throw Error(path() + ": metadata '" + key + "' is " + gguf_type_name(v->type) + ", expected a string");
  return v->s;
}

std::optional<bool> GgufFile::get_bool(const std::string& key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufType::BOOL)
    throw Error(path() + ": metadata '" + key + "' is " + gguf_type_name(v->type) + ", expected a bool");
  return v->u != 0;
}

const std::vector<GgufValue>* GgufFile::get_array(const std::string& key, GgufType elem) const {
  const GgufValue* v = find(key);
  if (!v) return nullptr;
  const bool numeric_ok = elem != GgufType::STRING && v->type == GgufType::ARRAY &&
                          (v->elem == elem || (is_integer_type(v->elem) && is_integer_type(elem)));
  if (v->type != GgufType::ARRAY || (v->elem != elem && !numeric_ok))
    throw Error(path() + ": metadata '" + key + "' is " + gguf_type_name(v->type) +
                (v->type == GgufType::ARRAY ? std::string(" of ") + gguf_type_name(v->elem) : std::string()) +
                ", expected an array of " + gguf_type_name(elem));
  return &v->arr;
}

}  // namespace nanovllm
