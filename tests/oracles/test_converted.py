"""Our random test checkpoints converted by llama.cpp's convert_hf_to_gguf.py (f32, f16, q8_0):
greedy ids and log-probabilities from the GGUF file against our own safetensors run and
against llama.cpp on the same file (goldens)."""
import json

import numpy as np
import pytest

import oracles

CASES = [(name, t) for name in oracles.CONVERTED for t in oracles.OUTTYPES]
TOP_K = 8
# Allowed |our logprob - theirs| per token, as a fraction of the row's logit range. llama.cpp
# rounds the activations to the weights' type for its dot products (f16, or q8_0 blocks), we
# keep f32 or bf16 activations, so the budget grows with the weights' rounding; a real bug
# (a wrong row permutation, norm or rope) moves logits by tens of percent of the range.
TOLERANCE = {"f32": 2e-3, "f16": 1e-2, "q8_0": 4e-2}


def golden(name, outtype):
    return json.loads((oracles.DATA / f"{name}-{outtype}.llama-cpp.json").read_text())


@pytest.fixture(scope="module")
def runs(build_dir):
    """Our greedy runs (ids and top-K logprobs) on every GGUF and on the safetensors source."""
    out = {}
    for name in oracles.CONVERTED:
        models = {t: oracles.converted_gguf(build_dir, name, t) for t in oracles.OUTTYPES}
        models["safetensors"] = oracles.converted_checkpoint(build_dir, name)
        for kind, model in models.items():
            out[(name, kind)] = oracles.ours_generate(
                model, prompt_ids=oracles.CONVERTED_PROMPTS, n=16,
                extra=["--ignore-eos", "--logprobs", TOP_K])
        # The quantized file's greedy ids also with f32 activations (see oracles.F32_ACTIVATIONS).
        out[(name, "q8_0", "f32")] = oracles.ours_generate(
            models["q8_0"], prompt_ids=oracles.CONVERTED_PROMPTS, n=16, extra=["--ignore-eos"],
            env=oracles.F32_ACTIVATIONS)
    return out


def logprob_error(ours_top, theirs_top, logit_range):
    """Largest |difference| over the ids both lists hold, relative to the logit range."""
    theirs = dict((int(i), lp) for i, lp in theirs_top)
    shared = [(lp, theirs[int(i)]) for i, lp in ours_top if int(i) in theirs]
    assert len(shared) >= TOP_K // 2, f"top tokens hardly overlap: {ours_top} vs {theirs_top[:TOP_K]}"
    return max(abs(a - b) for a, b in shared) / logit_range


@pytest.mark.parametrize("name,outtype", CASES)
def test_conversion_is_the_one_llama_cpp_answered_for(build_dir, name, outtype):
    path = oracles.converted_gguf(build_dir, name, outtype)
    assert oracles.sha256(path) == golden(name, outtype)["sha256"], \
        f"{path} differs from the file of the goldens: rerun scripts/gen_oracle_goldens.py"


@pytest.mark.parametrize("name,outtype", CASES)
def test_greedy_ids_against_llama_cpp_and_our_safetensors_run(runs, name, outtype):
    """The rule of the oracles, with our safetensors run of the unrounded weights as the second
    one (transformers' GGUF loader reads these files, but on the llama shape's q8_0 file its ids
    part at the third token from llama.cpp's and the safetensors run's, which agree there: it is
    no oracle for them). The quantized file runs
    with f32 activations, the same on every CPU; the SIMD tables are held to the logprobs below."""
    ours_runs = runs[(name, outtype, "f32") if outtype == "q8_0" else (name, outtype)]
    for ours, st, theirs in zip(ours_runs, runs[(name, "safetensors")],
                                golden(name, outtype)["prompts"]):
        why = oracles.oracle_rule_violation(ours["token_ids"], theirs["greedy_ids"], st["token_ids"],
                                            names=("llama.cpp", "safetensors"))
        assert why is None, f"{name}-{outtype} prompt {theirs['prompt_ids']}:\n{why}"


@pytest.mark.parametrize("name,outtype", CASES)
def test_logprobs_against_llama_cpp(runs, name, outtype):
    """At every position up to where the greedy paths part (after it the inputs differ)."""
    worst = 0.0
    for ours, theirs in zip(runs[(name, outtype)], golden(name, outtype)["prompts"]):
        same = oracles.common_prefix(ours["token_ids"], theirs["greedy_ids"])
        for pos in range(min(same + 1, len(ours["top_logprobs"]))):
            at = theirs["positions"][pos]
            worst = max(worst, logprob_error(ours["top_logprobs"][pos], at["top"], at["range"]))
    assert worst <= TOLERANCE[outtype], f"{name}-{outtype}: {worst:.2e} of the logit range"


@pytest.mark.parametrize("name,outtype", CASES)
def test_gguf_runs_as_our_safetensors_run(runs, name, outtype):
    """f32: the same weights, so the same ids; every type: logprobs within its budget at each
    position before the paths part (the logit range is llama.cpp's, on the same inputs)."""
    for gguf, st, theirs in zip(runs[(name, outtype)], runs[(name, "safetensors")],
                                golden(name, outtype)["prompts"]):
        if outtype == "f32":
            assert gguf["token_ids"] == st["token_ids"]
        same = min(oracles.common_prefix(gguf["token_ids"], st["token_ids"]),
                   oracles.common_prefix(gguf["token_ids"], theirs["greedy_ids"]))
        for pos in range(min(same + 1, len(st["top_logprobs"]))):
            err = logprob_error(gguf["top_logprobs"][pos], st["top_logprobs"][pos],
                                theirs["positions"][pos]["range"])
            assert err <= TOLERANCE[outtype], f"position {pos}: {err:.2e} of the logit range"
