// The safetensors reader: mmap, header parsing and validation of every tensor's byte range.
#include "model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "common/json.h"
#include "nanovllm/error.h"

namespace nanovllm {

using json = nlohmann::json;

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw Error(path + ": cannot stat: " + std::strerror(err));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      throw Error(path + ": cannot mmap: " + std::strerror(err));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file alive
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

bool parse_safetensors_dtype(const std::string& s, kernels::DType* out) {
  if (s == "F32") *out = kernels::DType::F32;
  else if (s == "BF16") *out = kernels::DType::BF16;
  else if (s == "F16") *out = kernels::DType::F16;
  else return false;
  return true;
}

const char* safetensors_dtype_name(kernels::DType t) {
  switch (t) {
    case kernels::DType::F32: return "F32";
    case kernels::DType::BF16: return "BF16";
    case kernels::DType::F16: return "F16";
    case kernels::DType::I8: return "I8";
    default: return kernels::dtype_name(t);  // quantized: never in a safetensors file
  }
}

// Shapes are validated when the header is parsed (each product fits, and the bytes exist).
int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorInfo::shape_string() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

SafetensorsFile::SafetensorsFile(const std::string& path) : map_(path) { parse_header(); }

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

namespace {

// Builds one TensorInfo from its header entry, checking dtype, shape and byte range.
TensorInfo parse_tensor(const std::string& file, const std::string& name, const json& e,
                        const uint8_t* data, size_t data_size) {
  auto fail = [&](const std::string& why) {
    return Error(file + ": tensor '" + name + "': " + why);
  };
  if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
    throw fail("header entry lacks dtype/shape/data_offsets");
  TensorInfo t;
  t.name = name;
  t.file = file;
  std::string dt = e["dtype"].get<std::string>();
  if (!parse_safetensors_dtype(dt, &t.dtype)) throw fail("unsupported dtype " + dt);
  if (!e["shape"].is_array()) throw fail("shape is not a list");
  // The byte size, computed without overflow: a shape whose product overflows must not wrap
  // around to a size that happens to match.
  uint64_t bytes = kernels::dtype_size(t.dtype);
  for (const json& d : e["shape"]) {
    if (!d.is_number_unsigned()) throw fail("shape " + e["shape"].dump() + " has a dimension that is not a non-negative integer");
    const uint64_t dim = d.get<uint64_t>();
    if (dim > INT64_MAX || __builtin_mul_overflow(bytes, dim, &bytes))
      throw fail("shape " + e["shape"].dump() + " is too large");
    t.shape.push_back(static_cast<int64_t>(dim));
  }
  const json& off = e["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
    throw fail("data_offsets " + off.dump() + " is not a pair of non-negative integers");
  uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
  if (begin > end || end > data_size)
    throw fail("data range [" + std::to_string(begin) + ", " + std::to_string(end) +
               ") exceeds the file's " + std::to_string(data_size) + " data bytes (truncated?)");
  t.nbytes = end - begin;
  if (t.nbytes != bytes)
    throw fail("byte size " + std::to_string(t.nbytes) + " does not match shape " +
               t.shape_string() + " of " + dt);
  t.data = data + begin;
  return t;
}

// A name given twice would silently keep only one entry: the other's bytes would still be in
// the file, unaccounted for. The parsed object cannot tell, so a SAX pass over the (already
// size-checked) header looks at the top-level keys; invalid JSON is left to parse_json to report.
class TopLevelKeys : public nlohmann::json_sax<json> {
 public:
  explicit TopLevelKeys(const std::string& file) : file_(file) {}
  bool key(string_t& k) override {
    if (depth_ == 1 && !seen_.insert(k).second) throw Error(file_ + ": tensor '" + k + "' appears twice in the header");
    return true;
  }
  bool start_object(std::size_t) override { return ++depth_ <= kMaxJsonDepth; }
  bool start_array(std::size_t) override { return ++depth_ <= kMaxJsonDepth; }
  bool end_object() override { return --depth_, true; }
  bool end_array() override { return --depth_, true; }
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

 private:
  const std::string& file_;
  std::set<std::string> seen_;
  int depth_ = 0;
};

void refuse_repeated_names(std::string_view header, const std::string& file) {
  TopLevelKeys keys(file);
  json::sax_parse(header.begin(), header.end(), &keys);
}

}  // namespace

void SafetensorsFile::parse_header() {
  const std::string& file = map_.path();
  if (map_.size() < 8) throw Error(file + ": not a safetensors file (shorter than 8 bytes)");
  uint64_t header_len = 0;
  std::memcpy(&header_len, map_.data(), 8);  // little-endian, as on every host we build for
  if (header_len > map_.size() - 8)
    throw Error(file + ": header length " + std::to_string(header_len) +
                " exceeds the file size (truncated or not safetensors)");
  const char* h = reinterpret_cast<const char*>(map_.data() + 8);
  refuse_repeated_names(std::string_view(h, header_len), file);
  json header = parse_json(std::string_view(h, header_len), file + ": header");
  if (!header.is_object()) throw Error(file + ": header is not a JSON object");
  const uint8_t* data = map_.data() + 8 + header_len;
  size_t data_size = map_.size() - 8 - header_len;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw Error(file + ": __metadata__ is not an object");
      for (const auto& [k, v] : entry.items())
        if (v.is_string()) metadata_[k] = v.get<std::string>();
      continue;
    }
    try {
      tensors_.emplace(name, parse_tensor(file, name, entry, data, data_size));
    } catch (const json::exception& e) {
      throw Error(file + ": tensor '" + name + "': malformed header entry: " + e.what());
    }
  }
  check_layout(data_size);
}

// As the safetensors library requires: tensors lie back to back from the start of the data
// to its end, so no two share bytes (one tensor's write would change another) and no byte is
// unaccounted for.
void SafetensorsFile::check_layout(size_t data_size) const {
  const uint8_t* start = map_.data() + (map_.size() - data_size);
  std::vector<const TensorInfo*> by_offset;
  for (const auto& [name, t] : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->data != b->data ? a->data < b->data : a->nbytes < b->nbytes;
  });
  size_t expected = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo* t : by_offset) {
    const size_t begin = static_cast<const uint8_t*>(t->data) - start;
    if (begin < expected)
      throw Error(map_.path() + ": tensors '" + prev->name + "' and '" + t->name + "' overlap (bytes " +
                  std::to_string(begin) + " to " + std::to_string(expected) + ")");
    if (begin > expected)
      throw Error(map_.path() + ": " + std::to_string(begin - expected) + " bytes before tensor '" + t->name +
                  "' belong to no tensor (offset " + std::to_string(expected) + ")");
    expected = begin + t->nbytes;
    prev = t;
  }
  if (expected != data_size)
    throw Error(map_.path() + ": the last " + std::to_string(data_size - expected) +
                " data bytes belong to no tensor (truncated header?)");
}

size_t TensorSpec::nbytes() const {
  size_t n = kernels::dtype_size(dtype);
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

namespace {

std::string safetensors_header(const std::vector<TensorSpec>& tensors,
                               const std::map<std::string, std::string>& metadata) {
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  size_t offset = 0;
  for (const TensorSpec& t : tensors) {
    h[t.name] = {{"dtype", safetensors_dtype_name(t.dtype)},
                 {"shape", t.shape},
                 {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string s = h.dump();
  s.append((8 - s.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned, as the format suggests
  return s;
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorSpec>& tensors,
                       const std::function<void(size_t, std::span<uint8_t>)>& fill,
                       const std::map<std::string, std::string>& metadata) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(path + ": cannot create");
  const std::string header = safetensors_header(tensors, metadata);
  const uint64_t len = header.size();
  out.write(reinterpret_cast<const char*>(&len), 8);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < tensors.size(); ++i) {
    buf.resize(tensors[i].nbytes());
    fill(i, std::span<uint8_t>(buf));
    out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
  }
  out.close();
  if (!out) throw Error(path + ": write failed");
}

}  // namespace nanovllm
