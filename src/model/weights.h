// The weights of a checkpoint directory in their stored dtype: mmapped views where the matmul
// reads the checkpoint's row-major layout, else copies repacked at load time (kernels::Layout).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "model/aligned_buffer.h"
#include "model/model_config.h"
#include "model/safetensors.h"

namespace nanovllm {

// Every tensor of model.safetensors or of the shards listed in model.safetensors.index.json,
// with the aliases of the safetensors __metadata__ (tied weights stored once) resolved.
class Checkpoint {
 public:
  explicit Checkpoint(const std::string& model_dir);
  // Tensors another reader (GGUF) has already named and shaped as Hugging Face does;
  // keep_alive owns the memory they point into.
  Checkpoint(std::string source, std::vector<TensorInfo> tensors, std::shared_ptr<const void> keep_alive);

  const TensorInfo* find(const std::string& name) const;
  // The tensor `name` with exactly `shape`; throws Error naming file and tensor otherwise.
  const TensorInfo& get(const std::string& name, const std::vector<int64_t>& shape) const;
  int64_t total_bytes() const;  // all tensor data as stored
  const std::map<std::string, const TensorInfo*>& tensors() const { return tensors_; }  // stored names
  const std::string& source() const { return source_; }  // file or index, for error messages

 private:
  void open_index(const std::string& index_path);

  std::string source_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorInfo*> tensors_;
  std::map<std::string, std::string> aliases_;  // name -> name it is stored under
  std::vector<TensorInfo> given_;              // the tensors of the second constructor
  std::shared_ptr<const void> keep_alive_;
};

// One decoder layer. q/k/v and gate/up are merged into one matrix each (one matmul streams
// them together, and silu_mul reads gate|up side by side), unless their dtypes differ (a GGUF
// Q4_K_M file keeps some attn_v in Q6_K): then qkv_parts / gate_up_parts hold them apart.
struct LayerWeights {
  std::vector<float> attn_norm, mlp_norm;
  std::vector<float> q_norm, k_norm;  // Qwen3 only: [head_dim]
  kernels::WeightView qkv, o, gate_up, down;
  std::vector<kernels::WeightView> qkv_parts, gate_up_parts;  // empty when merged
  std::vector<float> qkv_bias, o_bias, gate_up_bias, down_bias;  // empty when absent
};

struct ModelWeights {
  kernels::WeightView embed, lm_head;
  std::vector<float> final_norm;
  std::vector<LayerWeights> layers;
  std::vector<AlignedBuffer> owned;  // storage of the merged, quantized and repacked matrices
};

struct WeightOptions {
  // Round every matmul weight (and a tied embedding) to int8 with a scale per output row at
  // load time: half the bytes of bf16 to stream per token. Norms and biases stay f32.
  bool int8 = false;
};

// The matrix as the matmul reads it (int8 when asked, in this CPU's preferred layout): a view
// of v when neither changes it, else a copy kept in *owned (then `source`'s pages are dropped).
kernels::WeightView prepare_matrix(const kernels::WeightView& v, const TensorInfo* source, const WeightOptions& opts,
                                   std::vector<AlignedBuffer>* owned);
// Drops a tensor's mapped pages once it has been copied (the file still backs them).
void release_tensor_pages(const TensorInfo& t);
// A small tensor (norm weight, bias) as f32.
std::vector<float> tensor_to_f32(const TensorInfo& t);

// The tensors (Hugging Face names and shapes) a checkpoint of this config holds, in the order
// transformers writes them; lm_head.weight only when the embeddings are not tied.
std::vector<TensorSpec> hf_tensor_specs(const ModelConfig& cfg, kernels::DType dtype);

// Checks every tensor's presence and shape against cfg (and that no tensor belongs to a layer
// past cfg.num_layers) and builds the views. Running out of memory is an Error naming the size.
ModelWeights load_weights(const Checkpoint& ckpt, const ModelConfig& cfg, const WeightOptions& opts = {});

}  // namespace nanovllm
