"""Structured outputs, tool calls and reasoning against `nanovllm serve`, with the official
openai client. The model is the random-weight Qwen3-shaped one (conftest.chat_model): with a
grammar even random weights must produce output that parses and validates (jsonschema). The
schemas, the enforced tool calls, streaming and batch mixing also run on the real SmolLM2
instruct model of `make demo` (GGUF, Q4_1; its vocabulary and template, not Qwen's)."""
import concurrent.futures
import json
import os
import pathlib
import subprocess
import sys

import jsonschema
import openai
import pytest

from conftest import Server

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = "qwen3-tiny"


@pytest.fixture(scope="module")
def smol_server():
    fetch = subprocess.run(["bash", str(ROOT / "scripts" / "fetch-demo-model.sh")], check=True,
                           capture_output=True, text=True)
    # Its template has no tool-call format of its own, so tool_choice "auto" needs a parser named.
    server = Server(fetch.stdout.strip(), "--max-model-len", "1024", "--tool-call-parser", "hermes", name=MODEL)
    yield server
    assert server.stop() == 0


# The random Qwen3-shaped model and the real SmolLM2 one, both served under the name MODEL.
@pytest.fixture(params=["qwen3-tiny", "smollm2"])
def any_server(request):
    return request.getfixturevalue("chat_server" if request.param == "qwen3-tiny" else "smol_server")


def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)


def obj(props, required=None):
    return {"type": "object", "properties": props, "required": required if required is not None else list(props),
            "additionalProperties": False}


STR = {"type": "string", "maxLength": 8}
# Bounded, so a sampled call cannot run to max_tokens on digits (seen: a 700-token integer).
INT = {"type": "integer", "minimum": -9999, "maximum": 9999}
SCHEMAS = [
    obj({"a": {"type": "integer"}}),
    obj({"ok": {"type": "boolean"}}),
    obj({"name": STR}),
    obj({"color": {"enum": ["red", "green", "blue"]}}),
    obj({"n": {"type": "integer", "minimum": 3, "maximum": 9}}),
    obj({"x": {"type": "number", "minimum": -5, "maximum": 5}}),
    obj({"tags": {"type": "array", "items": STR, "maxItems": 3}}),
    obj({"ids": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 99}, "minItems": 1, "maxItems": 4}}),
    obj({"point": obj({"x": {"type": "integer"}, "y": {"type": "integer"}})}),
    obj({"user": obj({"name": STR, "age": {"type": "integer", "minimum": 0, "maximum": 120}, "admin": {"type": "boolean"}})}),
    obj({"a": obj({"b": obj({"c": {"enum": [1, 2, 3]}})})}),
    obj({"items": {"type": "array", "maxItems": 2, "items": obj({"sku": STR, "qty": {"type": "integer", "minimum": 1, "maximum": 9}})}}),
    obj({"status": {"const": "done"}, "code": {"type": "integer", "minimum": 200, "maximum": 599}}),
    obj({"v": {"anyOf": [{"type": "integer"}, {"type": "boolean"}]}}),
    obj({"maybe": {"type": ["string", "null"], "maxLength": 5}}),
    obj({"opt": STR, "req": {"type": "boolean"}}, required=["req"]),
    {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9}, "minItems": 2, "maxItems": 5},
    {"enum": ["yes", "no", "maybe"]},
    obj({"date": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}}),
    obj({"matrix": {"type": "array", "maxItems": 2, "items": {"type": "array", "maxItems": 2, "items": {"type": "integer", "minimum": 0, "maximum": 9}}}}),
    obj({"weather": obj({"city": STR, "unit": {"enum": ["celsius", "fahrenheit"]}, "temp": {"type": "number", "minimum": -50, "maximum": 60}})}),
    obj({"email": {"type": "string", "format": "email", "maxLength": 20}}),
]

MESSAGES = [{"role": "user", "content": "Answer in JSON."}]


def chat(server, **kw):
    args = dict(model=MODEL, messages=MESSAGES, max_tokens=250, temperature=1.0, seed=1)
    args.update(kw)
    return client(server).chat.completions.create(**args)


@pytest.mark.parametrize("i", range(len(SCHEMAS)))
def test_json_schema_responses_validate(any_server, i):
    schema = SCHEMAS[i]
    for seed in (1, 2):
        out = chat(any_server, seed=seed, response_format={"type": "json_schema", "json_schema": {"name": f"s{i}", "schema": schema}})
        choice = out.choices[0]
        assert choice.finish_reason == "stop", choice
        jsonschema.validate(json.loads(choice.message.content), schema)


def test_json_object_and_guided_fields_on_both_endpoints(chat_server):
    # Any object: random weights write free keys (strings without end), so the object may be
    # cut by max_tokens; whatever stopped on its own parses, and all of it starts an object.
    for seed in range(3):
        out = chat(chat_server, response_format={"type": "json_object"}, max_tokens=60, seed=seed).choices[0]
        assert out.message.content.startswith("{")
        if out.finish_reason == "stop":
            assert isinstance(json.loads(out.message.content), dict)
    c = client(chat_server)
    regex = c.completions.create(model=MODEL, prompt="Date:", max_tokens=30, seed=3, extra_body={"guided_regex": "[0-9]{4}-[0-9]{2}"})
    assert __import__("re").fullmatch("[0-9]{4}-[0-9]{2}", regex.choices[0].text), regex.choices[0].text
    choice = c.completions.create(model=MODEL, prompt="Pick:", max_tokens=30, seed=3, extra_body={"guided_choice": ["alpha", "beta gamma"]})
    assert choice.choices[0].text in ("alpha", "beta gamma")
    schema = SCHEMAS[9]
    comp = c.completions.create(model=MODEL, prompt="JSON:", max_tokens=250, seed=4, extra_body={"guided_json": schema})
    jsonschema.validate(json.loads(comp.choices[0].text), schema)
    so = chat(chat_server, extra_body={"structured_outputs": {"choice": ["left", "right"]}})
    assert so.choices[0].message.content in ("left", "right")
    lark = chat(chat_server, extra_body={"guided_grammar": 'start: "ab" NUM\nNUM: /[0-9]{2}/'})
    assert __import__("re").fullmatch("ab[0-9]{2}", lark.choices[0].message.content)
    gbnf = chat(chat_server, extra_body={"guided_grammar": 'root ::= "x" digit-pair\ndigit-pair ::= [0-9] [0-9]'})
    assert __import__("re").fullmatch("x[0-9]{2}", gbnf.choices[0].message.content), gbnf.choices[0].message.content


def test_invalid_schema_is_400_naming_the_problem(chat_server):
    for extra, word in [({"guided_json": {"type": "frobnicate"}}, "schema"),
                        ({"guided_regex": "(unclosed"}, "regular expression"),
                        ({"guided_grammar": "start: undefined_rule"}, "grammar"),
                        ({"guided_json": {"type": "object"}, "guided_regex": "a"}, "one structured output")]:
        with pytest.raises(openai.BadRequestError) as e:
            chat(chat_server, extra_body=extra)
        assert word in str(e.value), e.value
    assert chat(chat_server, max_tokens=2).choices[0].finish_reason == "length"  # still serving


TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                      "parameters": obj({"city": STR, "unit": {"enum": ["c", "f"]}})}},
    {"type": "function", "function": {"name": "add", "parameters": obj({"a": INT, "b": INT})}},
]
PARAMS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


def check_calls(calls):
    assert calls
    for call in calls:
        assert call.type == "function" and call.id
        jsonschema.validate(json.loads(call.function.arguments), PARAMS[call.function.name])


def test_tool_choice_required_and_named_give_valid_calls(any_server):
    finished = 0
    for seed in (1, 2, 3):
        out = chat(any_server, seed=seed, tools=TOOLS, tool_choice="required", max_tokens=700)
        # "required" allows a list of calls of any length, and a sampled 135M model may keep adding
        # calls (seed 2 listed "add" calls with growing numbers until max_tokens once prompt rows of
        # quantized weights moved to the bf16 GEMM). Such a cut list has nothing to check; every
        # list that ends must be valid calls, and at least one seed must end one.
        if out.choices[0].finish_reason == "length":
            continue
        assert out.choices[0].finish_reason == "tool_calls", (seed, str(out.choices[0].message)[:1500])
        check_calls(out.choices[0].message.tool_calls)
        finished += 1
        one = chat(any_server, seed=seed, tools=TOOLS, tool_choice="required", parallel_tool_calls=False)
        assert len(one.choices[0].message.tool_calls) == 1
        check_calls(one.choices[0].message.tool_calls)
        named = chat(any_server, seed=seed, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "add"}})
        calls = named.choices[0].message.tool_calls
        check_calls(calls)
        assert [c.function.name for c in calls] == ["add"] and named.choices[0].message.content is None
    assert finished >= 1, "no seed ended its list of required calls within 700 tokens"
    with pytest.raises(openai.BadRequestError):
        chat(any_server, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}})


def collect_stream(server, **kw):
    content, reasoning, calls, finish = "", "", {}, None
    for chunk in chat(server, stream=True, **kw):
        for ch in chunk.choices:
            d = ch.delta
            content += d.content or ""
            reasoning += getattr(d, "reasoning_content", None) or ""
            for tc in d.tool_calls or []:
                entry = calls.setdefault(tc.index, {"name": "", "arguments": ""})
                entry["name"] += (tc.function.name or "") if tc.function else ""
                entry["arguments"] += (tc.function.arguments or "") if tc.function else ""
            finish = ch.finish_reason or finish
    return content, reasoning, [calls[i] for i in sorted(calls)], finish


@pytest.mark.parametrize("kw", [
    {"response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": SCHEMAS[20]}}},
    {"tools": TOOLS, "tool_choice": "required"},
    {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
    {"tools": TOOLS, "tool_choice": "auto", "max_tokens": 40},
])
def test_streaming_equals_non_streaming(any_server, kw):
    whole = chat(any_server, seed=5, **kw).choices[0]
    content, _, calls, finish = collect_stream(any_server, seed=5, **kw)
    assert finish == whole.finish_reason
    assert content == (whole.message.content or "")
    assert calls == [{"name": c.function.name, "arguments": c.function.arguments} for c in whole.message.tool_calls or []]


def test_batch_mixing_constrained_and_free_requests_keeps_the_free_ones(any_server):
    c = client(any_server)
    free = dict(model=MODEL, prompt="Once upon a time", max_tokens=24, seed=11, logprobs=0)
    alone = [c.completions.create(**{**free, "seed": s}).choices[0] for s in (11, 12)]
    jobs = []
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for s in (11, 12):
            jobs.append(pool.submit(c.completions.create, **{**free, "seed": s}))
        constrained = [pool.submit(c.completions.create, model=MODEL, prompt="JSON:", max_tokens=200, seed=s,
                                   extra_body={"guided_json": SCHEMAS[11]}) for s in range(6)]
        mixed = [j.result().choices[0] for j in jobs]
        for f in constrained:
            jsonschema.validate(json.loads(f.result().choices[0].text), SCHEMAS[11])
    for a, b in zip(alone, mixed):
        assert a.text == b.text and a.logprobs.tokens == b.logprobs.tokens


def test_n_greater_than_one_each_sample_is_constrained(chat_server):
    out = chat(chat_server, n=3, response_format={"type": "json_schema", "json_schema": {"name": "u", "schema": SCHEMAS[9]}})
    assert len(out.choices) == 3
    for ch in out.choices:
        jsonschema.validate(json.loads(ch.message.content), SCHEMAS[9])


def test_tool_round_trip_renders_through_the_template(chat_server):
    messages = MESSAGES + [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
                                                             "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "3"}]
    r = chat_server.post("/tokenize", {"model": MODEL, "messages": messages, "tools": TOOLS})
    ids = r.json()["tokens"]
    text = chat_server.post("/detokenize", {"model": MODEL, "tokens": ids}).json()["prompt"]
    assert '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>' in text
    assert "<tool_response>\n3\n</tool_response>" in text
    out = chat(chat_server, messages=messages, tools=TOOLS, max_tokens=5)
    assert out.choices[0].finish_reason in ("stop", "length", "tool_calls")


@pytest.fixture(scope="module")
def reasoning_server(chat_model):
    server = Server(chat_model, "--max-model-len", "1024", "--reasoning-parser", "qwen3", name=MODEL)
    yield server
    assert server.stop() == 0


def test_reasoning_content_is_split_from_content(reasoning_server):
    # The grammar makes the random model "think": <think> ... </think> then an answer.
    grammar = 'start: "<think>" /[a-z ]{3,12}/ "</think>" /[A-Z]{2,5}/'
    kw = dict(extra_body={"guided_grammar": grammar}, max_tokens=60, seed=2)
    out = chat(reasoning_server, **kw).choices[0]
    assert __import__("re").fullmatch("[a-z ]{3,12}", out.message.reasoning_content), out.message
    assert __import__("re").fullmatch("[A-Z]{2,5}", out.message.content), out.message
    content, reasoning, _, _ = collect_stream(reasoning_server, **kw)
    assert (reasoning, content) == (out.message.reasoning_content, out.message.content)


def test_agent_loop_example_runs(chat_server):
    env = dict(os.environ, NANOVLLM_URL=chat_server.url + "/v1", NANOVLLM_MODEL=MODEL)
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "agent_loop.py")], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "tool call: get_weather(" in r.stdout and "final answer:" in r.stdout, r.stdout
