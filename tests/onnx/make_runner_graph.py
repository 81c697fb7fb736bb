#!/usr/bin/env python3
"""Writes OUT_DIR/model.onnx + config.json: the smallest graph with a decoder's inputs and output
as the onnx runner feeds them (src/backends/onnx/onnx_runner.h), for tests/onnx/onnx_runner_test.cpp.
q, k, v are embeddings of the ids, each layer one PagedAttention, logits a projection of their sum
at logits_indices. --break damages one thing the runner must refuse by name:
  old-cache-layout  caches declared [num_blocks, block_size, Hkv, D]
  extra-input       an input the runner does not feed
  no-positions      the positions input missing
  two-outputs       a second graph output
Needs only onnx and numpy (Debian's python3-onnx)."""
import argparse
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LAYERS, HEADS, KV_HEADS, HEAD_DIM, VOCAB = 2, 4, 2, 8, 32


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out_dir")
    ap.add_argument("--break", dest="damage", default="",
                    choices=["", "old-cache-layout", "extra-input", "no-positions", "two-outputs"])
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    q_dim, kv_dim = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    weights = {name: rng.standard_normal(shape).astype(np.float32)
               for name, shape in [("Eq", (VOCAB, q_dim)), ("Ek", (VOCAB, kv_dim)), ("Ev", (VOCAB, kv_dim)),
                                   ("W", (q_dim, VOCAB))]}
    weights["zero"] = np.zeros((1, 1), np.float32)
    f32, i64, i32 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32
    cache_shape = (["num_blocks", "block_size", KV_HEADS, HEAD_DIM] if a.damage == "old-cache-layout"
                   else ["num_blocks", KV_HEADS, "block_size", HEAD_DIM])
    inputs = [helper.make_tensor_value_info("input_ids", i64, ["T"])]
    if a.damage != "no-positions":
        inputs.append(helper.make_tensor_value_info("positions", i64, ["T"]))
    for layer in range(LAYERS):
        inputs += [helper.make_tensor_value_info(f"{kv}_cache.{layer}", f32, cache_shape) for kv in ("k", "v")]
    inputs += [helper.make_tensor_value_info("slot_mapping", i64, ["T"]),
               helper.make_tensor_value_info("block_tables", i32, ["B", "max_blocks"]),
               helper.make_tensor_value_info("context_lens", i32, ["B"]),
               helper.make_tensor_value_info("query_start_loc", i32, ["B1"]),
               helper.make_tensor_value_info("logits_indices", i64, ["R"])]
    if a.damage == "extra-input":
        inputs.append(helper.make_tensor_value_info("attention_mask", i64, ["T"]))

    nodes = [helper.make_node("Gather", ["Eq", "input_ids"], ["q0"]),
             helper.make_node("Gather", ["Ek", "input_ids"], ["k"]),
             helper.make_node("Gather", ["Ev", "input_ids"], ["v"])]
    if a.damage != "no-positions":  # positions feed q (times zero), so the input stays in the graph
        nodes += [helper.make_node("Cast", ["positions"], ["pos_f"], to=f32),
                  helper.make_node("Unsqueeze", ["pos_f", "axis1"], ["pos_col"]),
                  helper.make_node("Mul", ["pos_col", "zero"], ["pos_zero"]),
                  helper.make_node("Add", ["q0", "pos_zero"], ["q"])]
    else:
        nodes.append(helper.make_node("Identity", ["q0"], ["q"]))
    outs = []
    for layer in range(LAYERS):
        outs.append(f"attn{layer}")
        nodes.append(helper.make_node(
            "PagedAttention", ["q", "k", "v", f"k_cache.{layer}", f"v_cache.{layer}", "slot_mapping", "block_tables",
                               "context_lens", "query_start_loc"], [outs[-1]], domain="nanovllm",
            num_heads=HEADS, num_kv_heads=KV_HEADS, head_dim=HEAD_DIM, scale=HEAD_DIM ** -0.5, sliding_window=0))
    nodes += [helper.make_node("Sum", outs, ["attn"]),
              helper.make_node("Gather", ["attn", "logits_indices"], ["rows"], axis=0),
              helper.make_node("MatMul", ["rows", "W"], ["logits"])]
    outputs = [helper.make_tensor_value_info("logits", f32, ["R", VOCAB])]
    if a.damage == "two-outputs":
        outputs.append(helper.make_tensor_value_info("attn", f32, ["T", q_dim]))
    init = [numpy_helper.from_array(v, k) for k, v in weights.items()]
    init.append(numpy_helper.from_array(np.array([1], np.int64), "axis1"))
    graph = helper.make_graph(nodes, "runner_io", inputs, outputs, init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("nanovllm", 1)])
    os.makedirs(a.out_dir, exist_ok=True)
    onnx.save(model, os.path.join(a.out_dir, "model.onnx"))
    config = {"architectures": ["LlamaForCausalLM"], "vocab_size": VOCAB, "hidden_size": q_dim,
              "intermediate_size": 2 * q_dim, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
              "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM, "max_position_embeddings": 256,
              "rms_norm_eps": 1e-6, "bos_token_id": 1, "eos_token_id": 2}
    with open(os.path.join(a.out_dir, "config.json"), "w") as f:
        json.dump(config, f)


if __name__ == "__main__":
    main()
