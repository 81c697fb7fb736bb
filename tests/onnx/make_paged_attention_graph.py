#!/usr/bin/env python3
"""Writes a one-node ONNX graph: nanovllm.PagedAttention with every input a graph input (the
contract of src/backends/onnx/onnx_runner.h), for tests/onnx/paged_attention_op_test.cpp.

    make_paged_attention_graph.py OUT.onnx --num-heads 8 --num-kv-heads 2 --head-dim 64 \
        [--scale 0.125] [--sliding-window 0] [--cache-type float|bfloat16]

Needs only the onnx package (Debian's python3-onnx)."""
import argparse

import onnx
from onnx import TensorProto, helper


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--num-heads", type=int, required=True)
    ap.add_argument("--num-kv-heads", type=int, required=True)
    ap.add_argument("--head-dim", type=int, required=True)
    ap.add_argument("--scale", type=float, default=None)
    ap.add_argument("--sliding-window", type=int, default=0)
    ap.add_argument("--cache-type", choices=["float", "bfloat16"], default="float")
    a = ap.parse_args()
    hq, hkv, d = a.num_heads, a.num_kv_heads, a.head_dim
    scale = a.scale if a.scale is not None else d ** -0.5
    cache = TensorProto.FLOAT if a.cache_type == "float" else TensorProto.BFLOAT16

    def tensor(name, elem, dims):
        return helper.make_tensor_value_info(name, elem, dims)

    inputs = [
        tensor("q", TensorProto.FLOAT, ["T", hq * d]),
        tensor("k", TensorProto.FLOAT, ["T", hkv * d]),
        tensor("v", TensorProto.FLOAT, ["T", hkv * d]),
        tensor("k_cache", cache, ["num_blocks", hkv, "block_size", d]),
        tensor("v_cache", cache, ["num_blocks", hkv, "block_size", d]),
        tensor("slot_mapping", TensorProto.INT64, ["T"]),
        tensor("block_tables", TensorProto.INT32, ["B", "max_blocks"]),
        tensor("context_lens", TensorProto.INT32, ["B"]),
        tensor("query_start_loc", TensorProto.INT32, ["B_plus_1"]),
    ]
    node = helper.make_node(
        "PagedAttention", [t.name for t in inputs], ["out"], domain="nanovllm",
        num_heads=hq, num_kv_heads=hkv, head_dim=d, scale=scale, sliding_window=a.sliding_window)
    graph = helper.make_graph([node], "paged_attention", inputs, [tensor("out", TensorProto.FLOAT, ["T", hq * d])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("nanovllm", 1)])
    onnx.save(model, a.out)


if __name__ == "__main__":
    main()
