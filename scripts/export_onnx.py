#!/usr/bin/env python3
"""Exports a Hugging Face decoder checkpoint to the ONNX graph of nanovllm's onnx backend.

    export_onnx.py MODEL_DIR OUT_DIR [MODEL_DIR OUT_DIR ...] [--check] [--kv-cache-dtype f32|bf16]
                   [--external-data]

(several pairs share one start-up of torch and transformers, which takes longer than exporting
a small model).

transformers loads the weights (so the checkpoint's own loader decides tied embeddings, dtype
conversion and RoPE scaling); the graph is then written node by node with onnx.helper from the
state dict, which keeps every operation exactly what the decoder computes:

    input_ids -> Gather(embed) -> layers -> Gather(logits_indices) -> RMSNorm -> lm_head -> logits
    layer:  RMSNorm -> q|k|v MatMul (+bias) -> [q/k RMSNorm per head] -> RoPE
            -> nanovllm.PagedAttention (writes k/v into the cache blocks, attends)
            -> o_proj -> residual -> RMSNorm -> gate|up MatMul -> SiLU * up -> down -> residual

Attention is one custom node per layer (domain "nanovllm", op "PagedAttention"), whose CPU
kernel the runner registers; its inputs are the layer's K/V cache blocks and the engine's
paged-attention metadata, so the engine's scheduling and prefix cache work unchanged.
Everything is f32; the KV cache inputs are f32 or, with --kv-cache-dtype bf16, bfloat16 (the
runner allocates what the graph declares; half the cache memory and traffic). Weights over 2 GB (protobuf's limit) go to OUT_DIR/model.onnx.data.

--check runs the exported graph with onnx's reference evaluator (the custom op in numpy) on a
few tokens and compares its logits with transformers' forward of the same checkpoint.
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np

OPSET = 17
DOMAIN = "nanovllm"
ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")
# What a runner needs beside the graph: the tokenizer (any of its forms) and the configs.
COPIED_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                "tokenizer.model", "special_tokens_map.json", "chat_template.jinja", "chat_template.json",
                "vocab.json", "merges.txt", "added_tokens.json")
PROTOBUF_LIMIT = 2**31 - 2**20  # leave room for the graph itself
EXTERNAL_DATA = "model.onnx.data"


def fail(message):
    print(f"export-onnx: {message}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------------------------------------
# Loading through transformers


def read_config(model_dir):
    path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(path):
        fail(f"{path}: no such file (MODEL must be a Hugging Face checkpoint folder)")
    with open(path) as f:
        cfg = json.load(f)
    arch = (cfg.get("architectures") or [None])[0]
    if arch not in ARCHITECTURES:
        fail(f"{path}: unsupported architecture {arch!r} (supported: {', '.join(ARCHITECTURES)})")
    if cfg.get("hidden_act", "silu") != "silu":
        fail(f"{path}: unsupported hidden_act {cfg['hidden_act']!r} (supported: silu)")
    return cfg


def load_model(model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    return model


def state_dict_f32(model):
    """The weights as f32 numpy arrays, by Hugging Face name. transformers 4.x leaves a tied
    embedding that the file stores only as lm_head.weight (TinyStories) on the meta device;
    the tie says both are the same tensor, so the loaded one stands for both."""
    import torch

    sd = dict(model.state_dict())
    embed, head = "model.embed_tokens.weight", "lm_head.weight"
    if model.config.tie_word_embeddings:
        if sd[embed].is_meta and head in sd and not sd[head].is_meta:
            sd[embed] = sd[head]
        sd.pop(head, None)
    meta = [k for k, v in sd.items() if v.is_meta]
    if meta:
        fail(f"transformers left {', '.join(meta)} unloaded (on the meta device)")
    return {k: v.detach().to(torch.float32).numpy() for k, v in sd.items()}


def rope_tables(model):
    """inv_freq (head_dim / 2) and the cos/sin factor, from transformers' own rotary module, so
    every rope_type it computes statically (default, linear, llama3, yarn) is the checkpoint's."""
    rotary = model.model.rotary_emb
    rope_type = getattr(rotary, "rope_type", "default")
    if rope_type in ("dynamic", "longrope"):
        fail(f"rope_type {rope_type!r} changes its frequencies with the sequence length; not exportable")
    return rotary.inv_freq.detach().float().numpy(), float(getattr(rotary, "attention_scaling", 1.0))


# ---------------------------------------------------------------------------------------------
# The graph


class Graph:
    """Nodes and initializers of the graph being built; names are unique by construction."""

    def __init__(self, weights):
        from onnx import helper

        self.helper = helper
        self.weights = weights
        self.nodes, self.inits = [], []
        self.count = 0

    def name(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def op(self, op_type, inputs, hint=None, domain=None, outputs=1, **attrs):
        outs = [self.name(hint or op_type) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, inputs, outs, name=self.name(op_type), domain=domain, **attrs))
        return outs[0] if outputs == 1 else outs

    def const(self, name, array):
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def weight(self, name, array):
        self.inits.append((name, np.ascontiguousarray(array, dtype=np.float32)))
        return name


def rms_norm(g, x, weight, eps, axis=-1):
    """Hugging Face's RMSNorm: x / sqrt(mean(x^2) + eps) * w (the pattern ORT fuses)."""
    sq = g.op("Pow", [x, g.const(g.name("two"), np.array(2.0, np.float32))])
    mean = g.op("ReduceMean", [sq], axes=[axis], keepdims=1)
    std = g.op("Sqrt", [g.op("Add", [mean, g.const(g.name("eps"), np.array(eps, np.float32))])])
    return g.op("Mul", [g.op("Div", [x, std]), weight])


def linear(g, x, weight_t, bias=None):
    y = g.op("MatMul", [x, weight_t])
    return g.op("Add", [y, bias]) if bias is not None else y


def rotate(g, x, cos, sin):
    """Rotate-half RoPE of x [T, H, D] with cos/sin [T, 1, D/2]: halves (a, b) -> (a c - b s, b c + a s)."""
    a, b = g.op("Split", [x], outputs=2, axis=-1)
    ra = g.op("Sub", [g.op("Mul", [a, cos]), g.op("Mul", [b, sin])])
    rb = g.op("Add", [g.op("Mul", [b, cos]), g.op("Mul", [a, sin])])
    return g.op("Concat", [ra, rb], axis=-1)


def rope_cos_sin(g, inv_freq, scaling):
    """cos and sin of positions x inv_freq as Hugging Face computes them (f32 product, then
    times attention_scaling), shaped [T, 1, D/2] to broadcast over heads."""
    pos = g.op("Cast", ["positions"], to=1)  # FLOAT
    pos = g.op("Unsqueeze", [pos, g.const("axes_1", np.array([1], np.int64))])
    freqs = g.op("Mul", [pos, g.const("rope_inv_freq", inv_freq.astype(np.float32).reshape(1, -1))])
    freqs = g.op("Unsqueeze", [freqs, "axes_1"])
    cos, sin = g.op("Cos", [freqs]), g.op("Sin", [freqs])
    if scaling != 1.0:
        s = g.const("rope_attention_scaling", np.array(scaling, np.float32))
        cos, sin = g.op("Mul", [cos, s]), g.op("Mul", [sin, s])
    return cos, sin


def heads(g, x, n, d):
    return g.op("Reshape", [x, g.const(g.name("shape"), np.array([0, n, d], np.int64))])


def flat(g, x):
    return g.op("Reshape", [x, g.const(g.name("shape"), np.array([0, -1], np.int64))])


class Shape:
    def __init__(self, cfg):
        self.hidden = cfg["hidden_size"]
        self.layers = cfg["num_hidden_layers"]
        self.heads = cfg["num_attention_heads"]
        self.kv_heads = cfg.get("num_key_value_heads") or self.heads
        self.head_dim = cfg.get("head_dim") or self.hidden // self.heads
        self.vocab = cfg["vocab_size"]
        self.eps = float(cfg.get("rms_norm_eps", 1e-6))
        self.arch = cfg["architectures"][0]
        self.tied = bool(cfg.get("tie_word_embeddings", False))
        # Mistral (and Qwen2 with use_sliding_window) attend to the last `sliding_window` tokens.
        window = cfg.get("sliding_window") or 0
        uses_window = self.arch == "MistralForCausalLM" or cfg.get("use_sliding_window", False)
        self.window = int(window) if uses_window else 0


def attention(g, s, w, i, x, cos, sin):
    p = f"model.layers.{i}.self_attn."
    q_dim, kv_dim = s.heads * s.head_dim, s.kv_heads * s.head_dim
    # q, k and v as one matmul: the same dot products, one pass over x.
    wqkv = np.concatenate([w[p + "q_proj.weight"], w[p + "k_proj.weight"], w[p + "v_proj.weight"]]).T
    bias = None
    if p + "q_proj.bias" in w:
        bias = g.weight(p + "qkv_proj.bias", np.concatenate([w[p + "q_proj.bias"], w[p + "k_proj.bias"], w[p + "v_proj.bias"]]))
    qkv = linear(g, x, g.weight(p + "qkv_proj.weight_t", wqkv), bias)
    q, k, v = g.op("Split", [qkv, g.const(g.name("split"), np.array([q_dim, kv_dim, kv_dim], np.int64))], outputs=3, axis=-1)
    q, k = heads(g, q, s.heads, s.head_dim), heads(g, k, s.kv_heads, s.head_dim)
    if p + "q_norm.weight" in w:  # Qwen3: RMSNorm of each head before RoPE
        q = rms_norm(g, q, g.weight(p + "q_norm.weight", w[p + "q_norm.weight"]), s.eps)
        k = rms_norm(g, k, g.weight(p + "k_norm.weight", w[p + "k_norm.weight"]), s.eps)
    q, k = flat(g, rotate(g, q, cos, sin)), flat(g, rotate(g, k, cos, sin))
    out = g.op("PagedAttention", [q, k, v, f"k_cache.{i}", f"v_cache.{i}", "slot_mapping", "block_tables",
                                  "context_lens", "query_start_loc"], domain=DOMAIN,
               num_heads=s.heads, num_kv_heads=s.kv_heads, head_dim=s.head_dim,
               scale=float(s.head_dim ** -0.5), sliding_window=s.window)
    o_bias = g.weight(p + "o_proj.bias", w[p + "o_proj.bias"]) if p + "o_proj.bias" in w else None
    return linear(g, out, g.weight(p + "o_proj.weight_t", w[p + "o_proj.weight"].T), o_bias)


def mlp(g, w, i, x):
    p = f"model.layers.{i}.mlp."
    if p + "gate_proj.bias" in w:
        fail("mlp_bias is not supported")
    inter = w[p + "gate_proj.weight"].shape[0]
    gate_up = linear(g, x, g.weight(p + "gate_up_proj.weight_t",
                                    np.concatenate([w[p + "gate_proj.weight"], w[p + "up_proj.weight"]]).T))
    gate, up = g.op("Split", [gate_up, g.const(g.name("split"), np.array([inter, inter], np.int64))], outputs=2, axis=-1)
    act = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate])]), up])
    return linear(g, act, g.weight(p + "down_proj.weight_t", w[p + "down_proj.weight"].T))


def build_graph(cfg, w, inv_freq, scaling, kv_dtype="f32"):
    from onnx import TensorProto, helper

    s = Shape(cfg)
    g = Graph(w)
    embed = g.weight("model.embed_tokens.weight", w["model.embed_tokens.weight"])
    x = g.op("Gather", [embed, "input_ids"], axis=0)
    cos, sin = rope_cos_sin(g, inv_freq, scaling)
    for i in range(s.layers):
        p = f"model.layers.{i}."
        h = rms_norm(g, x, g.weight(p + "input_layernorm.weight", w[p + "input_layernorm.weight"]), s.eps)
        x = g.op("Add", [x, attention(g, s, w, i, h, cos, sin)])
        h = rms_norm(g, x, g.weight(p + "post_attention_layernorm.weight", w[p + "post_attention_layernorm.weight"]), s.eps)
        x = g.op("Add", [x, mlp(g, w, i, h)])
    # Only the rows the engine samples go through the final norm and lm_head.
    x = g.op("Gather", [x, "logits_indices"], axis=0)
    x = rms_norm(g, x, g.weight("model.norm.weight", w["model.norm.weight"]), s.eps)
    if s.tied:  # the embedding itself, read transposed: no second copy of vocab x hidden
        g.nodes.append(helper.make_node("Gemm", [x, embed], ["logits"], name="lm_head", transB=1))
    else:
        g.nodes.append(helper.make_node("MatMul", [x, g.weight("lm_head.weight_t", w["lm_head.weight"].T)],
                                        ["logits"], name="lm_head"))

    f32, i64, i32 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32
    # [num_blocks, Hkv, block_size, D]: a block holds each KV head's rows contiguously, the
    # native kernels' layout, so the op reads the runner's buffers as they are.
    cache_shape = ["num_blocks", s.kv_heads, "block_size", s.head_dim]
    inputs = [helper.make_tensor_value_info("input_ids", i64, ["T"]),
              helper.make_tensor_value_info("positions", i64, ["T"])]
    for i in range(s.layers):
        cache = TensorProto.BFLOAT16 if kv_dtype == "bf16" else f32
        inputs += [helper.make_tensor_value_info(f"k_cache.{i}", cache, cache_shape),
                   helper.make_tensor_value_info(f"v_cache.{i}", cache, cache_shape)]
    inputs += [helper.make_tensor_value_info("slot_mapping", i64, ["T"]),
               helper.make_tensor_value_info("block_tables", i32, ["B", "max_blocks"]),
               helper.make_tensor_value_info("context_lens", i32, ["B"]),
               helper.make_tensor_value_info("query_start_loc", i32, ["B_plus_1"]),
               helper.make_tensor_value_info("logits_indices", i64, ["R"])]
    outputs = [helper.make_tensor_value_info("logits", f32, ["R", s.vocab])]
    return g, inputs, outputs


def tensor_protos(g, out_dir, external):
    """The initializers as TensorProtos; when they exceed protobuf's 2 GB (or `external`), the
    large ones are written to model.onnx.data as they are made (64 KiB aligned, so ORT can map
    them) instead of being held in memory twice."""
    from onnx import TensorProto, numpy_helper

    weights = [(n, a) for n, a in (x for x in g.inits if isinstance(x, tuple))]
    protos = [x for x in g.inits if not isinstance(x, tuple)]
    total = sum(a.nbytes for _, a in weights)
    if total <= PROTOBUF_LIMIT and not external:
        return protos + [numpy_helper.from_array(a, n) for n, a in weights]
    path = os.path.join(out_dir, EXTERNAL_DATA)
    with open(path, "wb") as f:
        for name, a in weights:
            if a.nbytes < 4096:
                protos.append(numpy_helper.from_array(a, name))
                continue
            f.seek((f.tell() + 65535) // 65536 * 65536)
            offset = f.tell()
            f.write(a.tobytes())
            t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=a.shape,
                            data_location=TensorProto.EXTERNAL)
            for key, value in (("location", EXTERNAL_DATA), ("offset", str(offset)), ("length", str(a.nbytes))):
                entry = t.external_data.add()
                entry.key, entry.value = key, value
            protos.append(t)
    return protos


def export(model_dir, out_dir, kv_dtype="f32", external=False):
    import onnx
    from onnx import helper

    cfg = read_config(model_dir)
    model = load_model(model_dir)
    weights = state_dict_f32(model)
    inv_freq, scaling = rope_tables(model)
    del model
    os.makedirs(out_dir, exist_ok=True)
    for stale in ("model.onnx", EXTERNAL_DATA):
        if os.path.exists(os.path.join(out_dir, stale)):
            os.remove(os.path.join(out_dir, stale))
    g, inputs, outputs = build_graph(cfg, weights, inv_freq, scaling, kv_dtype)
    graph = helper.make_graph(g.nodes, "nanovllm_decoder", inputs, outputs, tensor_protos(g, out_dir, external))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, 1)],
                          producer_name="nanovllm export_onnx.py")
    m.ir_version = 8  # opset 17; what every onnxruntime since 1.14 reads
    helper.set_model_props(m, {"nanovllm.source": os.path.abspath(model_dir),
                               "nanovllm.architecture": cfg["architectures"][0]})
    onnx.save_model(m, os.path.join(out_dir, "model.onnx"))
    onnx.checker.check_model(os.path.join(out_dir, "model.onnx"))  # by path: external data is found beside it
    for f in COPIED_FILES:
        src = os.path.join(model_dir, f)
        if os.path.isfile(src):
            shutil.copyfile(src, os.path.join(out_dir, f))
    return cfg


# ---------------------------------------------------------------------------------------------
# --check: the graph under onnx's reference evaluator against transformers


def paged_attention_numpy(q, k, v, k_cache, v_cache, slot_mapping, block_tables, context_lens, query_start_loc,
                          num_heads, num_kv_heads, head_dim, scale, sliding_window):
    """The op's contract in numpy: write k/v rows at their slots (cache [blocks, Hkv, block_size,
    D]), then causal attention of each sequence's query rows over its context (block_tables)."""
    block_size = k_cache.shape[2]
    kc = k_cache.transpose(0, 2, 1, 3).reshape(-1, num_kv_heads, head_dim)  # by slot: a copy
    vc = v_cache.transpose(0, 2, 1, 3).reshape(-1, num_kv_heads, head_dim)
    stored = slot_mapping >= 0
    kc[slot_mapping[stored]] = k.reshape(-1, num_kv_heads, head_dim)[stored]
    vc[slot_mapping[stored]] = v.reshape(-1, num_kv_heads, head_dim)[stored]
    k_cache[...] = kc.reshape(-1, block_size, num_kv_heads, head_dim).transpose(0, 2, 1, 3)  # in place
    v_cache[...] = vc.reshape(-1, block_size, num_kv_heads, head_dim).transpose(0, 2, 1, 3)
    out = np.zeros_like(q).reshape(-1, num_heads, head_dim)
    qh = q.reshape(-1, num_heads, head_dim)
    group = num_heads // num_kv_heads
    for b in range(len(context_lens)):
        start, end, ctx = query_start_loc[b], query_start_loc[b + 1], context_lens[b]
        slots = np.array([block_tables[b][p // block_size] * block_size + p % block_size for p in range(ctx)])
        for r in range(start, end):
            pos = ctx - (end - start) + (r - start)
            lo = max(0, pos - sliding_window + 1) if sliding_window > 0 else 0
            keys, vals = kc[slots[lo:pos + 1]], vc[slots[lo:pos + 1]]
            for h in range(num_heads):
                scores = keys[:, h // group] @ qh[r, h] * scale
                p = np.exp(scores - scores.max())
                out[r, h] = (p / p.sum()) @ vals[:, h // group]
    return (out.reshape(q.shape).astype(np.float32),)


def check(model_dir, out_dir, cfg):
    import onnx
    import torch
    from onnx.reference import ReferenceEvaluator
    from onnx.reference.op_run import OpRun

    class PagedAttention(OpRun):
        op_domain = DOMAIN

        def _run(self, *args, num_heads=None, num_kv_heads=None, head_dim=None, scale=None, sliding_window=None):
            return paged_attention_numpy(*args, num_heads, num_kv_heads, head_dim, scale, sliding_window)

    s = Shape(cfg)
    ids = [1] + [int(t) for t in np.random.default_rng(0).integers(3, s.vocab, 10)]
    with torch.no_grad():
        want = load_model(model_dir)(torch.tensor([ids])).logits[0].float().numpy()
    sess = ReferenceEvaluator(onnx.load(os.path.join(out_dir, "model.onnx")), new_ops=[PagedAttention])
    block_size, blocks = 4, [2, 0, 3, 1]  # scattered blocks
    caches = {f"{kv}_cache.{i}": np.zeros((4, s.kv_heads, block_size, s.head_dim), np.float32)
              for i in range(s.layers) for kv in "kv"}
    got = []
    for start, end in ((0, 7), (7, 8), (8, 11)):  # a prefill chunk, a decode, a second chunk
        feeds = dict(caches, input_ids=np.array(ids[start:end], np.int64), positions=np.arange(start, end, dtype=np.int64),
                     slot_mapping=np.array([blocks[p // block_size] * block_size + p % block_size for p in range(start, end)], np.int64),
                     block_tables=np.array([blocks], np.int32), context_lens=np.array([end], np.int32),
                     query_start_loc=np.array([0, end - start], np.int32),
                     logits_indices=np.arange(end - start, dtype=np.int64))
        got.append(sess.run(["logits"], feeds)[0])
    got = np.concatenate(got)
    err = np.abs(got - want).max() / (want.max(axis=-1) - want.min(axis=-1)).min()
    print(f"export-onnx: --check: onnx reference vs transformers on {len(ids)} tokens: max |diff| / range = {err:.2e}")
    if err > 1e-4 or (got.argmax(-1) != want.argmax(-1)).any():
        fail("--check failed: the exported graph's logits differ from transformers'")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dirs", nargs="+", metavar="MODEL_DIR OUT_DIR",
                    help="a Hugging Face checkpoint folder and the output folder (model.onnx, model.onnx.data "
                         "when over 2 GB, the tokenizer/config files); repeatable")
    ap.add_argument("--check", action="store_true", help="compare each graph with transformers on a few tokens")
    ap.add_argument("--external-data", action="store_true", help="weights in model.onnx.data even under 2 GB")
    ap.add_argument("--kv-cache-dtype", choices=("f32", "bf16"), default="f32", help="dtype of the KV cache inputs")
    a = ap.parse_args()
    if len(a.dirs) % 2:
        ap.error("MODEL_DIR and OUT_DIR come in pairs")
    if a.check and a.kv_cache_dtype != "f32":
        ap.error("--check runs the graph with f32 caches (numpy has no bfloat16)")
    for model_dir, out_dir in zip(a.dirs[::2], a.dirs[1::2]):
        cfg = export(model_dir, out_dir, a.kv_cache_dtype, a.external_data)
        if a.check:
            check(model_dir, out_dir, cfg)
        print(f"export-onnx: wrote {os.path.join(out_dir, 'model.onnx')}")


if __name__ == "__main__":
    main()
