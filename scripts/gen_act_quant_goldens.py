#!/usr/bin/env python3
"""Writes tests/kernels/data/act_quant_goldens.txt: activations quantized by llama.cpp's own CPU
code (libggml-cpu's from_float of Q8_0, Q8_1 and Q8_K, the x86 AVX2 path that llama.cpp runs
here) and its dot products (vec_dot) of every weight type with them: the oracle for the
kernels' ggml-exact activation quantization (tests/kernels/quant_test.cpp).

Run: <venv with numpy>/bin/python scripts/gen_act_quant_goldens.py [LLAMA_BUILD_BIN]
LLAMA_BUILD_BIN holds libggml-cpu.so (scripts/setup-oracles.sh BUILD --llama-cpp builds it;
default build/oracles/llama-build/bin).

Format (hex is the raw little-endian bytes):
  X M K <M rows of K f32>
  ACT <Q8_0|Q8_1|Q8_K> <the M rows quantized, blocks back to back>
  DOT <weight type> N <N weight rows of K> <M x N f32 results, row m of x first>
"""
import ctypes as C
import sys
from pathlib import Path

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_quant_goldens import TYPES, sane_f16  # noqa: E402  (the same sane random weight blocks)

ROOT = Path(__file__).resolve().parent.parent
K = 512  # two super-blocks of 256, sixteen blocks of 32
ACT_TYPES = {"Q8_0": 8, "Q8_1": 9, "Q8_K": 15}  # ggml_type values
ACT_BYTES = {"Q8_0": 34, "Q8_1": 36, "Q8_K": 292}
N_WEIGHT_ROWS = 5


class TypeTraitsCpu(C.Structure):
    _fields_ = [("from_float", C.c_void_p), ("vec_dot", C.c_void_p), ("vec_dot_type", C.c_int),
                ("nrows", C.c_int64)]


FromFloat = C.CFUNCTYPE(None, C.c_void_p, C.c_void_p, C.c_int64)
VecDot = C.CFUNCTYPE(None, C.c_int, C.POINTER(C.c_float), C.c_size_t, C.c_void_p, C.c_size_t,
                     C.c_void_p, C.c_size_t, C.c_int)


def activation_rows(rng):
    """Rows that reach every branch of the quantizers."""
    rows = [rng.standard_normal(K)]
    # Exact ties: amax 127 makes the multiplier exactly 1 (Q8_0/Q8_1) or -1 (Q8_K), so every
    # x.5 is a tie (ggml rounds to even). A block of zeros (d = 0). In the second super-block
    # -5 comes before +5: Q8_K takes the sign of the first largest |x|.
    tie = np.round(rng.uniform(-120, 120, K)) + 0.5
    tie[::32] = 127.0
    tie[64:96] = 0.0
    tie[256:512] = rng.uniform(-4, 4, 256)
    tie[260], tie[300] = -5.0, 5.0
    rows.append(tie)
    # Small values: block scales that are f16 subnormals (1e-5) or round to 0 in f16 (1e-9).
    small = rng.standard_normal(K) * 1e-5
    small[128:192] *= 1e-4
    rows.append(small)
    # Heavy tails, as real activations have, and one block of large outliers.
    heavy = rng.standard_normal(K) * np.exp(rng.standard_normal(K) * 1.5)
    heavy[384:416] *= 1e3
    rows.append(heavy)
    return np.array(rows, dtype=np.float32)


def weight_rows(rng, name):
    n_blocks_per_row = K // GGML_QUANT_SIZES[T[name]][0]
    block_bytes = GGML_QUANT_SIZES[T[name]][1]
    n = N_WEIGHT_ROWS * n_blocks_per_row
    raw = rng.integers(0, 256, (n, block_bytes), dtype=np.uint8)
    for off in TYPES[name][1]:
        raw[:, off:off + 2] = sane_f16(rng, n, not name.endswith("_K")).view(np.uint8).reshape(n, 2)
    return raw.reshape(N_WEIGHT_ROWS, -1)


def main():
    bin_dir = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "build/oracles/llama-build/bin")
    ggml = C.CDLL(str(bin_dir / "libggml-cpu.so"))
    ggml.ggml_cpu_init()
    ggml.ggml_get_type_traits_cpu.restype = C.POINTER(TypeTraitsCpu)
    traits = lambda t: ggml.ggml_get_type_traits_cpu(t).contents

    rng = np.random.default_rng(1515)
    x = activation_rows(rng)
    M = x.shape[0]
    lines = [f"X {M} {K} {x.tobytes().hex()}"]
    quantized = {}
    for name, t in ACT_TYPES.items():
        out = np.zeros(M * K // (256 if name == "Q8_K" else 32) * ACT_BYTES[name], dtype=np.uint8)
        row_bytes = out.size // M
        from_float = FromFloat(traits(t).from_float)
        for m in range(M):
            from_float(x[m].ctypes.data, out[m * row_bytes:].ctypes.data, K)
        quantized[t] = (out, row_bytes)
        lines.append(f"ACT {name} {out.tobytes().hex()}")
    for name in TYPES:
        tr = traits(int(T[name]))
        xq, xq_row_bytes = quantized[tr.vec_dot_type]
        w = weight_rows(rng, name)
        vec_dot = VecDot(tr.vec_dot)
        y = np.zeros((M, N_WEIGHT_ROWS), dtype=np.float32)
        s = C.c_float()
        for m in range(M):
            for n in range(N_WEIGHT_ROWS):
                vec_dot(K, C.byref(s), 0, w[n].ctypes.data, 0, xq[m * xq_row_bytes:].ctypes.data, 0, 1)
                y[m, n] = s.value
        assert np.all(np.isfinite(y)), name
        lines.append(f"DOT {name} {N_WEIGHT_ROWS} {w.tobytes().hex()} {y.tobytes().hex()}")
    out = ROOT / "tests/kernels/data/act_quant_goldens.txt"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    sys.exit(main())
