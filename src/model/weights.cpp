// Loading a checkpoint's tensors: shard index, tied-weight aliases, shape checks, q/k/v and gate/up merge.
#include "model/weights.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/json.h"
#include "nanovllm/error.h"

namespace nanovllm {

namespace fs = std::filesystem;
using json = nlohmann::json;
using kernels::DType;
using kernels::WeightView;

Checkpoint::Checkpoint(const std::string& model_dir) {
  std::string single = model_dir + "/model.safetensors";
  std::string index = model_dir + "/model.safetensors.index.json";
  if (fs::exists(single)) {
    source_ = single;
    files_.push_back(std::make_unique<SafetensorsFile>(single));
  } else if (fs::exists(index)) {
    source_ = index;
    open_index(index);
  } else {
    throw Error(model_dir + ": no model.safetensors or model.safetensors.index.json");
  }
  for (const auto& f : files_) {
    for (const auto& [name, t] : f->tensors()) {
      auto [it, fresh] = tensors_.emplace(name, &t);
      if (!fresh) throw Error(source_ + ": tensor '" + name + "' is in both " + it->second->file + " and " + t.file);
    }
    // Hugging Face writes a tied weight once and records {"alias": "stored name"} in the metadata.
    for (const auto& [k, v] : f->metadata())
      if (!f->find(k) && f->find(v)) aliases_[k] = v;
  }
}

Checkpoint::Checkpoint(std::string source, std::vector<TensorInfo> tensors, std::shared_ptr<const void> keep_alive)
    : source_(std::move(source)), given_(std::move(tensors)), keep_alive_(std::move(keep_alive)) {
  for (const TensorInfo& t : given_)
    if (!tensors_.emplace(t.name, &t).second) throw Error(source_ + ": tensor '" + t.name + "' given twice");
}

void Checkpoint::open_index(const std::string& index_path) {
  std::ifstream in(index_path, std::ios::binary);
  if (!in) throw Error(index_path + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  json j = parse_json(text.str(), index_path);
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    throw Error(index_path + ": not a safetensors index (no weight_map)");
  std::string dir = fs::path(index_path).parent_path().string();
  std::set<std::string> shards;
  for (const auto& [name, file] : j["weight_map"].items()) {
    // A shard is a file beside the index, never a path elsewhere.
    if (!file.is_string() || file.get<std::string>().empty() || file.get<std::string>().find('/') != std::string::npos ||
        file.get<std::string>() == "." || file.get<std::string>() == "..")
      throw Error(index_path + ": tensor '" + name + "': shard " + file.dump() + " is not a file name");
    shards.insert(file.get<std::string>());
  }
  for (const std::string& shard : shards)
    files_.push_back(std::make_unique<SafetensorsFile>(dir + "/" + shard));
  for (const auto& [name, file] : j["weight_map"].items()) {
    bool found = false;
    for (const auto& f : files_)
      if (fs::path(f->path()).filename() == file.get<std::string>() && f->find(name)) found = true;
    if (!found)
      throw Error(index_path + ": tensor '" + name + "' is not in its shard " + file.get<std::string>());
  }
}

const TensorInfo* Checkpoint::find(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it != tensors_.end()) return it->second;
  auto alias = aliases_.find(name);
  return alias == aliases_.end() ? nullptr : find(alias->second);
}

const TensorInfo& Checkpoint::get(const std::string& name, const std::vector<int64_t>& shape) const {
  const TensorInfo* t = find(name);
  if (!t) throw Error(source_ + ": missing tensor '" + name + "'");
  if (t->shape != shape) {
    TensorInfo want;
    want.shape = shape;
    throw Error(t->file + ": tensor '" + name + "' has shape " + t->shape_string() +
                ", expected " + want.shape_string());
  }
  return *t;
}

int64_t Checkpoint::total_bytes() const {
  int64_t n = 0;
  for (const auto& [name, t] : tensors_) n += static_cast<int64_t>(t->nbytes);
  return n;
}

namespace {

WeightView view_of(const TensorInfo& t) {
  return WeightView{t.data, t.dtype, static_cast<int>(t.shape[0]), static_cast<int>(t.shape[1])};
}

// Small vectors (norm weights, biases) are kept as f32; embed() converts one "row" for us.
std::vector<float> to_f32(const TensorInfo& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  int zero = 0;
  kernels::embed(WeightView{t.data, t.dtype, 1, static_cast<int>(t.numel())}, &zero, 1, out.data());
  return out;
}

// Drops the pages of a tensor that was copied into a merged matrix, so its bytes are not held
// twice in RSS; the mapping is private and read-only, so the file still backs them.
void release_pages(const TensorInfo& t) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uintptr_t begin = (reinterpret_cast<uintptr_t>(t.data) + page - 1) / page * page;
  uintptr_t end = (reinterpret_cast<uintptr_t>(t.data) + t.nbytes) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

// The matrix as the matmul will read it: rounded to int8 when asked, in the layout this CPU
// prefers for its dtype. A view of the mapping when neither changes it, else an owned copy
// (and the mapped pages are dropped).
WeightView prepare(const WeightView& v, const TensorInfo* source, const WeightOptions& opts,
                   std::vector<AlignedBuffer>* owned) {
  WeightView m = v;
  AlignedBuffer int8_rows;
  if (opts.int8 && kernels::block_elems(v.dtype) == 1) {  // a GGUF's quantized blocks stay as they are
    AlignedBuffer scales(static_cast<size_t>(v.rows) * sizeof(float));
    int8_rows = AlignedBuffer(static_cast<size_t>(v.rows) * static_cast<size_t>(v.cols));
    m = kernels::quantize_int8(v, static_cast<int8_t*>(int8_rows.data()), static_cast<float*>(scales.data()));
    owned->push_back(std::move(scales));
  }
  const kernels::Layout layout = kernels::preferred_layout(m.dtype);
  if (layout != m.layout) {
    AlignedBuffer buf(kernels::layout_bytes(m, layout));
    m = kernels::repack(m, layout, buf.data());
    owned->push_back(std::move(buf));
  } else if (int8_rows.size() > 0) {
    owned->push_back(std::move(int8_rows));
  }
  if (source && m.data != v.data) release_pages(*source);
  return m;
}

// Stacks matrices of equal cols and dtype row-wise into one matrix, then prepares it.
WeightView merge_rows(const std::vector<const TensorInfo*>& parts, const WeightOptions& opts,
                      std::vector<AlignedBuffer>* owned) {
  const TensorInfo& first = *parts[0];
  int64_t rows = 0;
  size_t bytes = 0;
  for (const TensorInfo* p : parts) {
    rows += p->shape[0];
    bytes += p->nbytes;
  }
  AlignedBuffer buf(bytes);
  uint8_t* dst = static_cast<uint8_t*>(buf.data());
  for (const TensorInfo* p : parts) {
    std::memcpy(dst, p->data, p->nbytes);
    dst += p->nbytes;
    release_pages(*p);
  }
  const WeightView v{buf.data(), first.dtype, static_cast<int>(rows), static_cast<int>(first.shape[1])};
  const WeightView m = prepare(v, nullptr, opts, owned);
  if (m.data == v.data) owned->push_back(std::move(buf));
  return m;
}

// Parts of one dtype become one merged matrix; parts of mixed dtypes stay apart (each prepared).
void merge_or_split(const std::vector<const TensorInfo*>& parts, const WeightOptions& opts,
                    std::vector<AlignedBuffer>* owned, WeightView* merged, std::vector<WeightView>* split) {
  bool same = true;
  for (const TensorInfo* p : parts) same = same && p->dtype == parts[0]->dtype;
  if (same) {
    *merged = merge_rows(parts, opts, owned);
    return;
  }
  for (const TensorInfo* p : parts) split->push_back(prepare(view_of(*p), p, opts, owned));
}

// A single checkpoint matrix, prepared.
WeightView matrix(const TensorInfo& t, const WeightOptions& opts, std::vector<AlignedBuffer>* owned) {
  return prepare(view_of(t), &t, opts, owned);
}

std::vector<float> concat_f32(const std::vector<const TensorInfo*>& parts) {
  std::vector<float> out;
  for (const TensorInfo* p : parts) {
    std::vector<float> v = to_f32(*p);
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

LayerWeights load_layer(const Checkpoint& ck, const ModelConfig& c, int i, const WeightOptions& opts,
                        std::vector<AlignedBuffer>* owned) {
  const std::string p = "model.layers." + std::to_string(i) + ".";
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), inter = c.intermediate_size;
  LayerWeights L;
  L.attn_norm = to_f32(ck.get(p + "input_layernorm.weight", {h}));
  L.mlp_norm = to_f32(ck.get(p + "post_attention_layernorm.weight", {h}));
  const std::string a = p + "self_attn.", m = p + "mlp.";
  merge_or_split({&ck.get(a + "q_proj.weight", {q, h}), &ck.get(a + "k_proj.weight", {kv, h}),
                  &ck.get(a + "v_proj.weight", {kv, h})}, opts, owned, &L.qkv, &L.qkv_parts);
  L.o = matrix(ck.get(a + "o_proj.weight", {h, q}), opts, owned);
  merge_or_split({&ck.get(m + "gate_proj.weight", {inter, h}), &ck.get(m + "up_proj.weight", {inter, h})}, opts,
                 owned, &L.gate_up, &L.gate_up_parts);
  L.down = matrix(ck.get(m + "down_proj.weight", {h, inter}), opts, owned);
  if (c.qkv_bias)
    L.qkv_bias = concat_f32({&ck.get(a + "q_proj.bias", {q}), &ck.get(a + "k_proj.bias", {kv}),
                             &ck.get(a + "v_proj.bias", {kv})});
  if (c.o_bias) L.o_bias = to_f32(ck.get(a + "o_proj.bias", {h}));
  if (c.mlp_bias) {
    L.gate_up_bias = concat_f32({&ck.get(m + "gate_proj.bias", {inter}), &ck.get(m + "up_proj.bias", {inter})});
    L.down_bias = to_f32(ck.get(m + "down_proj.bias", {h}));
  }
  if (c.qk_norm) {
    L.q_norm = to_f32(ck.get(a + "q_norm.weight", {c.head_dim}));
    L.k_norm = to_f32(ck.get(a + "k_norm.weight", {c.head_dim}));
  }
  return L;
}

// Tied checkpoints may store the matrix under either name (or both, aliased in the metadata).
// The lm_head is a matmul weight (prepared; a tied embedding reads the same int8 rows, as
// llama.cpp's Q8_0 files store token_embd); an untied embedding table stays mapped as stored,
// since a step reads only its rows of the step's tokens.
void load_embeddings(const Checkpoint& ck, const ModelConfig& c, const WeightOptions& opts, ModelWeights* w) {
  const std::vector<int64_t> shape{c.vocab_size, c.hidden_size};
  const char* embed = "model.embed_tokens.weight";
  const char* head = "lm_head.weight";
  if (c.tie_word_embeddings) {  // Hugging Face reads the embedding for both when tied
    w->lm_head = matrix(ck.get(!ck.find(embed) && ck.find(head) ? head : embed, shape), opts, &w->owned);
    w->embed = w->lm_head;
    return;
  }
  w->embed = view_of(ck.get(embed, shape));
  w->lm_head = matrix(ck.get(head, shape), opts, &w->owned);
}

// config.json's num_hidden_layers against the tensors: a missing layer fails when it is read,
// but tensors of layers past it would be silently ignored (a config truncated by mistake).
void check_layer_count(const Checkpoint& ckpt, const ModelConfig& cfg) {
  const std::string prefix = "model.layers.";
  for (const auto& [name, t] : ckpt.tensors()) {
    if (!name.starts_with(prefix)) continue;
    const size_t dot = name.find('.', prefix.size());
    const std::string index = name.substr(prefix.size(), dot == std::string::npos ? std::string::npos : dot - prefix.size());
    if (index.empty() || index.find_first_not_of("0123456789") != std::string::npos || index.size() > 9 ||
        std::stoi(index) >= cfg.num_layers)
      throw Error(ckpt.source() + ": tensor '" + name + "' is not in layers 0 to " + std::to_string(cfg.num_layers - 1) +
                  " of config.json's num_hidden_layers = " + std::to_string(cfg.num_layers));
  }
}

ModelWeights load_all(const Checkpoint& ckpt, const ModelConfig& cfg, const WeightOptions& opts) {
  ModelWeights w;
  load_embeddings(ckpt, cfg, opts, &w);
  w.final_norm = to_f32(ckpt.get("model.norm.weight", {cfg.hidden_size}));
  w.owned.reserve((opts.int8 ? 8 : 4) * static_cast<size_t>(cfg.num_layers) + 2);
  for (int i = 0; i < cfg.num_layers; ++i) w.layers.push_back(load_layer(ckpt, cfg, i, opts, &w.owned));
  return w;
}

}  // namespace

std::vector<TensorSpec> hf_tensor_specs(const ModelConfig& c, DType dtype) {
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), inter = c.intermediate_size;
  std::vector<TensorSpec> specs;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    specs.push_back(TensorSpec{name, dtype, std::move(shape)});
  };
  add("model.embed_tokens.weight", {c.vocab_size, h});
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    add(p + "input_layernorm.weight", {h});
    for (auto [name, rows] : {std::pair{"q_proj", q}, {"k_proj", kv}, {"v_proj", kv}}) {
      add(p + "self_attn." + name + ".weight", {rows, h});
      if (c.qkv_bias) add(p + "self_attn." + name + ".bias", {rows});
    }
    add(p + "self_attn.o_proj.weight", {h, q});
    if (c.o_bias) add(p + "self_attn.o_proj.bias", {h});
    if (c.qk_norm) {
      add(p + "self_attn.q_norm.weight", {c.head_dim});
      add(p + "self_attn.k_norm.weight", {c.head_dim});
    }
    add(p + "post_attention_layernorm.weight", {h});
    add(p + "mlp.gate_proj.weight", {inter, h});
    if (c.mlp_bias) add(p + "mlp.gate_proj.bias", {inter});
    add(p + "mlp.up_proj.weight", {inter, h});
    if (c.mlp_bias) add(p + "mlp.up_proj.bias", {inter});
    add(p + "mlp.down_proj.weight", {h, inter});
    if (c.mlp_bias) add(p + "mlp.down_proj.bias", {h});
  }
  add("model.norm.weight", {h});
  if (!c.tie_word_embeddings) add("lm_head.weight", {c.vocab_size, h});
  return specs;
}

WeightView prepare_matrix(const WeightView& v, const TensorInfo* source, const WeightOptions& opts,
                          std::vector<AlignedBuffer>* owned) {
  return prepare(v, source, opts, owned);
}

std::vector<float> tensor_to_f32(const TensorInfo& t) { return to_f32(t); }

void release_tensor_pages(const TensorInfo& t) { release_pages(t); }

ModelWeights load_weights(const Checkpoint& ckpt, const ModelConfig& cfg, const WeightOptions& opts) {
  check_layer_count(ckpt, cfg);
  try {
    return load_all(ckpt, cfg, opts);
  } catch (const std::bad_alloc&) {  // std::length_error is a size we failed to validate: a bug, left to surface
    throw Error(ckpt.source() + ": out of memory allocating the weights (" + std::to_string(ckpt.total_bytes()) +
                " bytes as stored)");
  }
}

}  // namespace nanovllm
