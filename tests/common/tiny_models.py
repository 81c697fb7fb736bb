"""Small checkpoints the Python test suites make with `nanovllm make-model` (random weights, real
tokenizers), shared by tests/server and tests/python."""
import json
import pathlib
import subprocess


def make_qwen3_tiny(nanovllm_bin, shared, out_dir):
    """A random-weight Qwen3-shaped checkpoint with the real Qwen3 tokenizer and chat template."""
    d = pathlib.Path(out_dir)
    config = json.loads((pathlib.Path(shared) / "configs" / "qwen3-0.6b.json").read_text())
    config.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, max_position_embeddings=1024)
    (d / "config.json").write_text(json.dumps(config))
    out = d / "model"
    subprocess.run([nanovllm_bin, "make-model", "--config", str(d / "config.json"), "--out", str(out),
                    "--tokenizer", str(pathlib.Path(shared) / "tokenizers" / "qwen3"), "--seed", "7"],
                   check=True, capture_output=True)
    return out
