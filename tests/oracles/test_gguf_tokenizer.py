"""The tokenizer our reader builds from a GGUF that llama.cpp's converter wrote (the Qwen3
random checkpoint with the real Qwen3 tokenizer) encodes the 1,100-string corpus exactly as
that tokenizer.json does (the goldens of scripts/gen_tokenizer_goldens.py, from `tokenizers`)."""
import json

import oracles

TOKENIZER_DATA = oracles.ROOT / "tests" / "data" / "tokenizer"


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().split("\n") if line.strip()]  # not splitlines(): U+2028


def test_qwen3_gguf_tokenizer_matches_tokenizer_json(build_dir):
    path = oracles.converted_gguf(build_dir, "qwen3", "f32")
    corpus = [row["text"] for row in read_jsonl(TOKENIZER_DATA / "corpus.jsonl")]
    header, *expected = read_jsonl(TOKENIZER_DATA / "qwen3.jsonl")
    assert header["path"] == "tokenizers/qwen3" and len(expected) == len(corpus) >= 1000
    # `generate` runs an empty prompt from BOS, so the one empty string is not asked (its
    # encoding, [], is the tokenizer suite's business); every other string is, in one process.
    asked = [i for i, text in enumerate(corpus) if text]
    assert len(asked) == len(corpus) - 1
    # The longest strings run past the random model's 256 positions: only the ids matter here.
    ours = oracles.ours_generate(path, prompts=[corpus[i] for i in asked], n=1,
                                 extra=["--max-model-len", 4096, "--allow-long-max-model-len"])
    wrong = [(corpus[i], row["prompt_token_ids"], expected[i]["ids"])
             for i, row in zip(asked, ours) if row["prompt_token_ids"] != expected[i]["ids"]]
    assert not wrong, f"{len(wrong)} of {len(asked)} differ, e.g. {wrong[:3]}"
