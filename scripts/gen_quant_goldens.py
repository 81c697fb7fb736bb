#!/usr/bin/env python3
"""Writes tests/kernels/data/quant_goldens.txt: random ggml blocks of every quantized type and
their values as decoded by gguf-py (PyPI `gguf`, by llama.cpp's authors), the independent oracle
for the kernels' dequantize_row.  Run: python3 scripts/gen_quant_goldens.py (needs gguf, numpy).

Format, one line per type: NAME N_BLOCKS <block bytes in hex> <f32 values as 8-hex-digit bits>.
The quantized bytes are random except the f16 scales, which are set to sane values (normal,
|d| in [2^-12, 2^-2]) so that the values are finite and the f32 results exact to compare.
"""
import sys
from pathlib import Path

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf.quants import dequantize

# type -> (blocks, byte offsets of the f16 scales inside a block)
TYPES = {
    "Q8_0": (8, [0]),
    "Q4_0": (8, [0]),
    "Q4_1": (8, [0, 2]),
    "Q4_K": (3, [0, 2]),
    "Q5_K": (3, [0, 2]),
    "Q6_K": (3, [208]),
}


def sane_f16(rng, n, signed):
    mag = np.ldexp(rng.uniform(1.0, 2.0, n), rng.integers(-12, -2, n))
    sign = np.where(rng.integers(0, 2, n) == 1, -1.0, 1.0) if signed else 1.0
    return (mag * sign).astype(np.float16)


def main():
    rng = np.random.default_rng(15)
    out = Path(__file__).resolve().parent.parent / "tests/kernels/data/quant_goldens.txt"
    lines = []
    for name, (n_blocks, scale_offsets) in TYPES.items():
        qtype = T[name]
        block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
        raw = rng.integers(0, 256, (n_blocks, block_bytes), dtype=np.uint8)
        # K-quant mins are subtracted (d * sc * q - dmin * m), so they are positive like d; the
        # older types' d (and Q4_1's m) take either sign.
        signed = not name.endswith("_K")
        for off in scale_offsets:
            raw[:, off:off + 2] = sane_f16(rng, n_blocks, signed).view(np.uint8).reshape(n_blocks, 2)
        values = dequantize(raw.reshape(-1), qtype).astype(np.float32).reshape(-1)
        assert values.size == n_blocks * block_elems and np.all(np.isfinite(values))
        lines.append(" ".join([name, str(n_blocks), raw.tobytes().hex(),
                               "".join(f"{v:08x}" for v in values.view(np.uint32))]))
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    sys.exit(main())
