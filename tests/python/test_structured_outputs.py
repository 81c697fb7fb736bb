"""Structured outputs from Python as vLLM spells them: SamplingParams(structured_outputs=
StructuredOutputsParams(json=schema)) (and the older guided_decoding=GuidedDecodingParams).
The model has random weights, so only the grammar can make its output parse: what comes back
is checked with jsonschema, re and the choice list, not with our own decoder."""
import json
import re

import jsonschema
import pytest

from nanovllm import LLM, GuidedDecodingParams, SamplingParams, StructuredOutputsParams

from conftest import ENGINE

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 8},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "color": {"enum": ["red", "green", "blue"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 2},
        "point": {"type": "object", "properties": {"x": {"type": "number", "minimum": -5, "maximum": 5}},
                  "required": ["x"], "additionalProperties": False},
    },
    "required": ["name", "age", "color", "tags", "point"],
    "additionalProperties": False,
}


class Person:
    """Stands for a pydantic model: vLLM's users pass MyModel.model_json_schema() or the class."""

    @staticmethod
    def model_json_schema():
        return SCHEMA


@pytest.fixture(scope="module")
def qwen3(chat_model):
    return LLM(str(chat_model), **ENGINE)


def sample(**kw):
    return SamplingParams(**{"temperature": 1.0, "max_tokens": 200, **kw})


@pytest.mark.parametrize("schema", [SCHEMA, json.dumps(SCHEMA), Person], ids=["dict", "text", "model_json_schema"])
def test_json_schema_output_validates(qwen3, schema):
    params = [sample(seed=seed, structured_outputs=StructuredOutputsParams(json=schema)) for seed in (1, 2, 3)]
    for out in qwen3.generate(["Describe a person as JSON:"] * 3, params, use_tqdm=False):
        assert out["finish_reason"] == "stop", out
        jsonschema.validate(json.loads(out["text"]), SCHEMA)


def test_unconstrained_output_does_not_parse(qwen3):
    # The oracle for the test above: without the grammar, random weights write no such JSON.
    out = qwen3.generate("Describe a person as JSON:", sample(seed=1), use_tqdm=False)[0]
    with pytest.raises((ValueError, jsonschema.ValidationError)):
        jsonschema.validate(json.loads(out["text"]), SCHEMA)


def test_choice_regex_grammar_and_json_object(qwen3):
    prompts = ["Pick one:", "A date:", "Grammar:", "Any JSON:"]
    params = [sample(seed=4, structured_outputs=StructuredOutputsParams(choice=["alpha", "beta gamma"])),
              sample(seed=5, structured_outputs=StructuredOutputsParams(regex=r"[0-9]{4}-[0-9]{2}-[0-9]{2}")),
              sample(seed=6, structured_outputs=StructuredOutputsParams(grammar='start: "ab" NUM\nNUM: /[0-9]{2}/')),
              sample(seed=7, max_tokens=60, structured_outputs=StructuredOutputsParams(json_object=True))]
    choice, regex, grammar, obj = qwen3.generate(prompts, params, use_tqdm=False)
    assert choice["text"] in ("alpha", "beta gamma")
    assert re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", regex["text"]), regex["text"]
    assert re.fullmatch(r"ab[0-9]{2}", grammar["text"]), grammar["text"]
    assert obj["text"].startswith("{")  # free keys may be cut by max_tokens; it starts an object


def test_guided_decoding_spelling_and_dict_and_attribute_access(qwen3):
    old = sample(seed=8, guided_decoding=GuidedDecodingParams(choice=["left", "right"]))
    as_dict = sample(seed=8, structured_outputs={"choice": ["left", "right"]})
    by_attribute = sample(seed=8)
    by_attribute.structured_outputs = StructuredOutputsParams(choice=["left", "right"])
    outs = qwen3.generate(["Go:"] * 3, [old, as_dict, by_attribute], use_tqdm=False)
    assert outs[0]["text"] in ("left", "right")
    assert outs[0]["token_ids"] == outs[1]["token_ids"] == outs[2]["token_ids"]
    assert old.structured_outputs.choice == ["left", "right"]
    assert "StructuredOutputsParams(choice=['left', 'right'])" in repr(old)


def test_constrained_and_free_requests_in_one_batch(qwen3):
    free = sample(seed=9, max_tokens=16)
    alone = qwen3.generate("Once upon a time", free, use_tqdm=False)[0]
    batch = qwen3.generate(["Once upon a time", "JSON:"],
                           [free, sample(seed=10, structured_outputs=StructuredOutputsParams(json=SCHEMA))],
                           use_tqdm=False)
    assert batch[0]["token_ids"] == alone["token_ids"]
    jsonschema.validate(json.loads(batch[1]["text"]), SCHEMA)


@pytest.mark.parametrize("so, word", [
    (dict(json={"type": "frobnicate"}), "schema"),
    (dict(json="{not json"), "JSON"),
    (dict(regex="(unclosed"), "regular expression"),
    (dict(grammar="start: undefined_rule"), "grammar"),
])
def test_invalid_constraint_raises_value_error_and_the_engine_goes_on(qwen3, so, word):
    params = sample(structured_outputs=StructuredOutputsParams(**so))
    with pytest.raises(ValueError) as e:
        qwen3.generate("x", params, use_tqdm=False)
    assert word in str(e.value), e.value
    assert qwen3.generate("x", SamplingParams(max_tokens=2), use_tqdm=False)[0]["finish_reason"] == "length"


def test_two_constraints_at_once_raise_value_error():
    with pytest.raises(ValueError, match="structured_outputs must be one of json, json_object, regex, choice or gr"):
        StructuredOutputsParams(json={"type": "object"}, regex="a")
    with pytest.raises(ValueError, match="structured_outputs must be one of"):
        SamplingParams(structured_outputs={"choice": ["a"], "json_object": True})
    with pytest.raises(TypeError, match="unexpected keyword argument 'whitespace_pattern'"):
        StructuredOutputsParams(whitespace_pattern=" ")
