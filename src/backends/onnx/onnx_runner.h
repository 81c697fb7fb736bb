// The ONNX Runtime backend: a decoder exported to ONNX runs in ONNX Runtime (ORT), with its
// attention as our custom op nanovllm.PagedAttention over the runner's own paged KV cache, so
// the engine's scheduling, chunked prefill and prefix caching work unchanged while ORT runs the
// matmuls and the rest of the graph. ORT headers stay out of this header: only onnx_runner.cpp
// includes them (tests/onnx uses the C++ API directly).
//
// The op contract (domain "nanovllm", op "PagedAttention", opset 1; one node per decoder layer):
//   inputs  0 q [T, Hq*D] f32, 1 k [T, Hkv*D] f32, 2 v [T, Hkv*D] f32 (RoPE and q/k norms applied),
//           3 k_cache, 4 v_cache [num_blocks, Hkv, block_size, D], f32 or bf16: the runner's own
//             buffers, bound in place. Each block holds one KV head's rows contiguously (the
//             native kernels' layout, kernels::KVLayer), so the op reads them with no copy. The op
//             WRITES the new k/v rows at slot_mapping, then reads,
//           5 slot_mapping int64 [T] (slot = block * block_size + offset; negative: not stored),
//           6 block_tables int32 [B, max_blocks], 7 context_lens int32 [B] (tokens in the cache
//             after this step), 8 query_start_loc int32 [B+1] (sequence s has query rows
//             [qsl[s], qsl[s+1]) of T; qsl[0] = 0, qsl[B] = T);
//   attributes num_heads, num_kv_heads, head_dim (int), scale (float), sliding_window (int, 0 = none);
//   output  0 out [T, Hq*D] f32; causal within each sequence: query row i of sequence s sits at
//           position context_len - q_len + i and sees positions [0, that].
// The graph's inputs: input_ids int64 [T], positions int64 [T], k_cache.L / v_cache.L per layer,
// the metadata above by name, and logits_indices int64 [R] (rows of T whose logits are wanted);
// its output logits [R, vocab] f32. A graph without logits_indices has logits [T, vocab].
#pragma once

#include <memory>
#include <string>

#include "engine/model_runner.h"

struct OrtSessionOptions;

namespace nanovllm {

struct OnnxRunnerOptions {
  int threads = 0;  // ORT's intra-op threads and our kernels' OpenMP team; 0 = all cores
};

// The loaded libonnxruntime's version; checks once that it serves the C API our headers were
// written for (it is loaded from a cache the setup step filled, so it can be anything) and sets
// up ORT's C++ API. Throws nanovllm::Error naming both versions when it is too old.
std::string onnx_runtime_version();

// Throws Error unless `version` ("1.32.0") is at least the release of our headers' C API.
void check_onnx_runtime_version(const std::string& version);

// Registers nanovllm.PagedAttention (CPU) in `options`: for the runner's session, and for any
// other ORT session that runs an exported graph (tests).
void add_paged_attention_op(OrtSessionOptions* options);

// Opens model_dir/model.onnx beside its config.json (and tokenizer files); throws Error when the
// graph's inputs or outputs are not the contract's.
std::unique_ptr<ModelRunner> make_onnx_runner(const std::string& model_dir, const OnnxRunnerOptions& opts = {});

}  // namespace nanovllm
