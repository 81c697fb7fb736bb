#!/usr/bin/env python3
"""Golden files for the chat template engine, rendered by the reference implementation.

Writes tests/data/chat_template/:
  <model>.json         apply_chat_template(messages, tokenize=False, ...) of transformers on the
                       real tokenizer_config.json of ../shared/tokenizers/<model> (or models/...)
  extra_templates.json well-known templates (Llama-2, Mistral) given inline, rendered the same way
  jinja_cases.json     small templates rendered by jinja2 in transformers' own environment
                       (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, tojson, ...)
  openai_messages.json conversations as OpenAI clients send them (tool-call history with
                       "content": null and JSON-string arguments, text parts), normalized as vLLM
                       does (vllm_messages) and then rendered by transformers; the server's
                       request parser must give the same prompt from the raw messages
A case whose reference raises records {"error": ...}: our engine must raise too.

Usage: .venv-ref/bin/python scripts/gen_chat_template_goldens.py [--shared ../shared]
"""
import argparse
import copy
import json
import os

from transformers import AutoTokenizer
from transformers.utils.chat_template_utils import (
    _compile_jinja_template,
    _normalize_chat_messages,
    render_jinja_template,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "chat_template")

MODELS = {
    "qwen3": "tokenizers/qwen3",
    "qwen2.5": "tokenizers/qwen2.5",
    "llama3": "tokenizers/llama3",
    "tinyllama": "tokenizers/tinyllama",
    "mistral": "tokenizers/mistral",
    "gpt2": "tokenizers/gpt2",
    "tinystories-656k": "models/tinystories-656k",
}

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}

CONVERSATIONS = {
    "single_user": [{"role": "user", "content": "Hello!"}],
    "system_user": [SYSTEM, {"role": "user", "content": "What is 2+2?"}],
    "multi_turn": [
        SYSTEM,
        {"role": "user", "content": "Tell me a joke."},
        {"role": "assistant", "content": "Why did the chicken cross the road? To get to the other side."},
        {"role": "user", "content": "Another one, please."},
    ],
    "ends_with_assistant": [
        {"role": "user", "content": "Say hi."},
        {"role": "assistant", "content": "Hi!"},
    ],
    "no_system_multi": [
        {"role": "user", "content": "One"},
        {"role": "assistant", "content": "Two"},
        {"role": "user", "content": "Three"},
        {"role": "assistant", "content": "Four"},
        {"role": "user", "content": "Five"},
    ],
    "unicode": [
        {"role": "system", "content": "Réponds en français, s'il te plaît. «naïve» café"},
        {"role": "user", "content": "你好，世界！🌍👋🏽 مرحبا بالعالم e\u0301 \u00a0tab\there"},
        {"role": "assistant", "content": "こんにちは 🎉 — “quotes” and 'single' \\ backslash"},
        {"role": "user", "content": "Ζεύς ₿ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢\u200b zero-width"},
    ],
    "empty_content": [
        {"role": "system", "content": ""},
        {"role": "user", "content": ""},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "x"},
    ],
    "whitespace": [
        {"role": "user", "content": "  leading and trailing spaces  \n\n"},
        {"role": "assistant", "content": "\n\nnewlines around\n"},
        {"role": "user", "content": "\ttabs\t"},
    ],
    "special_token_text": [
        {"role": "user", "content": "<|im_start|>system\nfake<|im_end|> <s> </s> <|eot_id|> [INST]"},
    ],
    "multiline_code": [
        {"role": "user", "content": "Fix this:\n```python\ndef f(x):\n    return x+1\n```\n"},
        {"role": "assistant", "content": "```python\ndef f(x: int) -> int:\n    return x + 1\n```"},
        {"role": "user", "content": "{{ not a template }} {% neither %}"},
    ],
    "extra_keys": [
        {"role": "user", "content": "Hi", "name": "alice", "tool_calls": None},
        {"role": "assistant", "content": "Hello", "reasoning_content": None},
        {"role": "user", "content": "Bye"},
    ],
}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city. Temperature in °C.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "description": "Current time", "parameters": {"type": "object", "properties": {}}},
}
TOOLS = [WEATHER_TOOL, TIME_TOOL]

TOOL_CONVERSATIONS = {
    "tool_calls": [
        SYSTEM,
        {"role": "user", "content": "Weather in Paris and Tokyo?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}},
                {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Tokyo\"}"}},
            ],
        },
        {"role": "tool", "content": "{\"temp\": 21}"},
        {"role": "tool", "content": "{\"temp\": 18, \"note\": \"东京\"}"},
        {"role": "assistant", "content": "Paris: 21°C, Tokyo: 18°C."},
        {"role": "user", "content": "Thanks"},
    ],
    "tool_call_with_text": [
        {"role": "user", "content": "What time is it?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [{"type": "function", "function": {"name": "get_time", "arguments": {}}}],
        },
        {"role": "tool", "content": "12:00"},
    ],
    "tool_call_flat": [  # tool calls without the "function" wrapper
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]},
        {"role": "tool", "content": "cold"},
        {"role": "user", "content": "ok"},
    ],
}

QWEN3_CONVERSATIONS = {
    "think_in_content_past": [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>\nsimple arithmetic\n</think>\n\n4"},
        {"role": "user", "content": "3+3?"},
    ],
    "think_in_content_last": [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>\nadd them\n</think>\n\nIt is 4."},
    ],
    "reasoning_content_field": [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris.", "reasoning_content": "The user asks about geography."},
    ],
    "reasoning_alias_thinking": [
        {"role": "user", "content": "Why?"},
        {"role": "assistant", "content": "Because.", "thinking": "\nshort reason\n"},
    ],
    "multi_step_tool_think": [
        {"role": "user", "content": "Weather in Rome?"},
        {
            "role": "assistant",
            "content": "<think>\nI should call the tool.\n</think>\n\n",
            "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}],
        },
        {"role": "tool", "content": "sunny"},
        {"role": "assistant", "content": "<think>\nIt is sunny.\n</think>\n\nSunny in Rome."},
    ],
    "user_tool_response_text": [
        {"role": "user", "content": "Start"},
        {"role": "assistant", "content": "<think>\nx\n</think>\n\nok"},
        {"role": "user", "content": "<tool_response>\nresult\n</tool_response>"},
        {"role": "assistant", "content": "<think>\ny\n</think>\n\ndone"},
    ],
    "system_not_first": [
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "late system"},
        {"role": "user", "content": "again"},
    ],
}

# Inputs the templates reject (transformers raises): we must raise too.
ERROR_CONVERSATIONS = {
    "user_without_content": [{"role": "user"}],
    "assistant_null_content_tool_call": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": {"name": "get_time", "arguments": {}}}]},
    ],
}

LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)

MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)

# A tool-calling template in the style of Llama 3.1: macros, tojson(indent=4), namespace,
# selectattr, loop controls, string methods.
TOOL_TEMPLATE = """{%- macro header(role) -%}
<|start_header_id|>{{ role }}<|end_header_id|>{{ '\\n\\n' }}
{%- endmacro -%}
{{- bos_token }}
{%- set ns = namespace(system='', count=0) %}
{%- for m in messages if m.role == 'system' %}{% set ns.system = ns.system ~ m.content %}{% endfor %}
{{- header('system') }}
{%- if tools is not none %}
    {{- "Environment: ipython\\nToday Date: " + (date_string | default("26 Jul 2024")) + "\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
{%- endif %}
{{- ns.system | trim }}<|eot_id|>
{%- for m in messages | rejectattr('role', 'equalto', 'system') %}
    {%- set ns.count = ns.count + 1 %}
    {%- if m.role == 'assistant' and m.tool_calls is defined %}
        {{- header('assistant') }}
        {%- for call in m.tool_calls %}
            {%- set f = call.function if call.function is defined else call %}
            {{- '{"name": "' + f.name + '", "parameters": ' + f.arguments | tojson + '}' }}
            {%- if not loop.last %}{{ '; ' }}{% endif %}
        {%- endfor %}
        {{- '<|eom_id|>' }}
    {%- elif m.role in ['tool', 'ipython'] %}
        {{- header('ipython') + (m.content if m.content is string else m.content | tojson) + '<|eot_id|>' }}
    {%- else %}
        {{- header(m.role) + m.content | trim + '<|eot_id|>' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{ header('assistant') }}{% endif %}
{#- turns: {{ ns.count }} #}"""

EXTRA_TEMPLATES = {
    "llama2": (LLAMA2_TEMPLATE, "tokenizers/tinyllama"),
    "mistral_v1": (MISTRAL_TEMPLATE, "tokenizers/mistral"),
    "llama31_style_tools": (TOOL_TEMPLATE, "tokenizers/llama3"),
}


SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


class ConfigOnlyTokenizer:
    """apply_chat_template's rendering path for a tokenizer whose vocabulary this transformers
    version cannot load (TinyLlama's tokenizer.json): the same transformers functions, fed with
    the template and special tokens read from the config files."""

    def __init__(self, folder):
        with open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8") as f:
            config = json.load(f)
        extra = {}
        if os.path.exists(os.path.join(folder, "special_tokens_map.json")):
            with open(os.path.join(folder, "special_tokens_map.json"), encoding="utf-8") as f:
                extra = json.load(f)
        self.chat_template = config.get("chat_template")
        self.special_tokens_map = {}
        for name in SPECIAL_TOKENS:
            value = config.get(name) or extra.get(name)
            if isinstance(value, dict):
                value = value.get("content")
            if value is not None:
                self.special_tokens_map[name] = value

    def apply_chat_template(self, conversation, tools=None, chat_template=None, tokenize=False,
                            add_generation_prompt=False, **kwargs):
        assert not tokenize
        template = chat_template or self.chat_template
        if template is None:
            raise ValueError("Cannot use chat template functions because tokenizer.chat_template is not set")
        if len(conversation) == 0:
            raise ValueError("Cannot apply chat template to an empty conversation. Provide at least one message.")
        conversations = [_normalize_chat_messages(conversation)]
        rendered, _ = render_jinja_template(conversations=conversations, tools=tools, chat_template=template,
                                            add_generation_prompt=add_generation_prompt,
                                            **{**self.special_tokens_map, **kwargs})
        return rendered[0]


def load_tokenizer(folder):
    try:
        tok = AutoTokenizer.from_pretrained(folder)
    except Exception as e:
        print(f"note: transformers cannot load {folder} ({type(e).__name__}); rendering from its config files")
        return ConfigOnlyTokenizer(folder)
    # The fallback must agree with the real path wherever both work.
    mirror = ConfigOnlyTokenizer(folder)
    assert mirror.special_tokens_map == tok.special_tokens_map, (folder, mirror.special_tokens_map, tok.special_tokens_map)
    return tok


def render(tok, messages, add_generation_prompt, kwargs, tools, chat_template=None):
    try:
        out = tok.apply_chat_template(
            copy.deepcopy(messages),
            tools=copy.deepcopy(tools),
            chat_template=chat_template,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            **kwargs,
        )
        return {"expected": out}
    except Exception as e:  # the reference rejects the input: record that we must too
        return {"error": f"{type(e).__name__}: {e}"}


def case(name, messages, agp, kwargs=None, tools=None, **extra):
    return {"name": name, "messages": messages, "add_generation_prompt": agp, "kwargs": kwargs or {}, "tools": tools, **extra}


def model_cases(model):
    cases = []
    convs = dict(CONVERSATIONS)
    if model in ("qwen3", "qwen2.5", "llama3"):
        convs.update(TOOL_CONVERSATIONS)
    if model == "qwen3":
        convs.update(QWEN3_CONVERSATIONS)
    for name, messages in convs.items():
        for agp in (True, False):
            cases.append(case(f"{name}/agp={agp}", messages, agp))
        if model == "qwen3":
            cases.append(case(f"{name}/no_thinking", messages, True, {"enable_thinking": False}))
            cases.append(case(f"{name}/thinking", messages, True, {"enable_thinking": True}))
    if model in ("qwen3", "qwen2.5", "llama3"):
        for name in ("system_user", "single_user", "tool_calls"):
            convs_all = {**CONVERSATIONS, **TOOL_CONVERSATIONS}
            cases.append(case(f"{name}/tools", convs_all[name], True, tools=TOOLS))
        cases.append(case("single_user/tools_no_thinking", CONVERSATIONS["single_user"], True,
                          {"enable_thinking": False}, tools=[WEATHER_TOOL]))
    for name, messages in ERROR_CONVERSATIONS.items():
        cases.append(case(f"{name}/agp=True", messages, True))
    return cases


def gen_models(shared):
    summary = {}
    for model, rel in MODELS.items():
        tok = load_tokenizer(os.path.join(shared, rel))
        cases = model_cases(model) if tok.chat_template else [case("no_template", CONVERSATIONS["single_user"], True)]
        for c in cases:
            c.update(render(tok, c["messages"], c["add_generation_prompt"], c["kwargs"], c["tools"]))
        write(f"{model}.json", {"model_dir": rel, "cases": cases})
        summary[model] = (len(cases), sum("error" in c for c in cases))
    return summary


def gen_extra(shared):
    entries = []
    convs = {
        "system_user": CONVERSATIONS["system_user"],
        "multi_turn": CONVERSATIONS["multi_turn"],
        "no_system_multi": CONVERSATIONS["no_system_multi"],
        "unicode_no_system": CONVERSATIONS["unicode"][1:],
        "bad_order": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        "assistant_first": [{"role": "assistant", "content": "a"}],
        "tool_calls": TOOL_CONVERSATIONS["tool_calls"],
    }
    for name, (template, rel) in EXTRA_TEMPLATES.items():
        tok = load_tokenizer(os.path.join(shared, rel))
        cases = []
        for cname, messages in convs.items():
            for agp in (True, False):
                c = case(f"{cname}/agp={agp}", messages, agp)
                c.update(render(tok, messages, agp, {}, None, template))
                cases.append(c)
        c = case("tool_calls/tools", convs["tool_calls"], True, {"date_string": "01 Jan 2025"}, tools=TOOLS)
        c.update(render(tok, c["messages"], True, c["kwargs"], TOOLS, template))
        cases.append(c)
        entries.append({"name": name, "template": template, "special_tokens": tok.special_tokens_map, "cases": cases})
    write("extra_templates.json", {"templates": entries})
    return sum(len(e["cases"]) for e in entries)


# (template, context) pairs exercising one feature each, rendered in transformers' environment.
JINJA_CASES = [
    ("plain text", {}),
    ("{{ 'a' }}{{ \"b\" }}{{ 'c' 'd' }}", {}),
    ("{{ x }}|{{ y }}|{{ z }}|{{ n }}|{{ f }}|{{ t }}", {"x": 1, "y": "s", "z": None, "n": -3, "f": 2.5, "t": True}),
    ("{{ [1, 'a', none, true, 1.5, {'k': 'v'}] }}", {}),
    ("{{ (1, 2) }}{{ (1,) }}{{ () }}", {}),
    ("{{ 1.0 }} {{ 1e16 }} {{ 1.5e-5 }} {{ 0.1 + 0.2 }} {{ 100.0 }} {{ 1/3 }} {{ -0.0 }} {{ 123456789.123 }}", {}),
    ("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 2 * 3 + 1 }} {{ 1 - 2 - 3 }}", {}),
    ("{{ 'ab' * 3 }}{{ [1] * 2 }}{{ 'a' ~ 1 ~ none }}{{ [1] + [2] }}", {}),
    ("{{ 1 == 1.0 }} {{ 1 != 2 }} {{ 'a' < 'b' }} {{ 2 >= 2 }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }}", {}),
    ("{{ 'a' in 'cat' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'x' not in 'abc' }} {{ 3 not in [3] }}", {}),
    ("{{ true and 'yes' }} {{ false or 'fallback' }} {{ not 0 }} {{ 0 or '' or none }} {{ 1 and 0 }}", {}),
    ("{{ 'yes' if c else 'no' }} {{ 'y' if not c }}|", {"c": False}),
    ("{{ u }}|{{ u is defined }}|{{ u is undefined }}|{{ u | length }}|{{ not u }}|{{ u == none }}", {}),
    ("{% for x in u %}a{% else %}empty{% endfor %}", {}),
    ("{{ d.a }} {{ d['b'] }} {{ d.missing }}|{{ d.get('a') }} {{ d.get('zz', 'dflt') }} {{ d.get('zz') }}", {"d": {"a": 1, "b": 2}}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{{ d.keys() | list }}{{ d.values() | list }}", {"d": {"z": 1, "a": [2]}}),
    ("{% for k in d %}{{ k }}{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("{{ l[0] }} {{ l[-1] }} {{ l[1:] }} {{ l[:-1] }} {{ l[::-1] }} {{ l[::2] }} {{ l[5] }}|{{ l[-2:] }}", {"l": [1, 2, 3, 4]}),
    ("{{ s[0] }} {{ s[-1] }} {{ s[1:3] }} {{ s[::-1] }} {{ s | length }}", {"s": "héllo😀"}),
    ("{% for m in l[::-1] %}{{ loop.index0 }}:{{ m }} {% endfor %}", {"l": ["a", "b", "c"]}),
    ("{% for x in l %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }} {% endfor %}", {"l": "xyz"}),
    ("{% for x in l %}[{{ loop.previtem }}|{{ loop.nextitem }}]{% endfor %}", {"l": [1, 2, 3]}),
    ("{% for x in l if x % 2 %}{{ x }}:{{ loop.index }}/{{ loop.length }} {% endfor %}", {"l": [1, 2, 3, 4, 5]}),
    ("{% for x in l %}{% if x == 3 %}{% break %}{% endif %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %}", {"l": [0, 1, 2, 3, 4]}),
    ("{% for x in l %}{{ loop.cycle('odd', 'even') }} {% endfor %}", {"l": [1, 2, 3]}),
    ("{% for a in [1, 2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }} {% endfor %}{% endfor %}", {}),
    ("{% set x = 0 %}{% for i in [1, 2] %}{{ x }}{% set x = i %}{{ x }}{% endfor %}{{ x }}", {}),
    ("{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}", {}),
    ("{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = (3, 4) %}{% set c, d = t %}{{ c + d }}", {}),
    ("{% set x %}block {{ 1 + 1 }}{% endset %}[{{ x }}]{% set y | upper %}shout{% endset %}{{ y }}", {}),
    ("{% if a %}A{% elif b %}B{% else %}C{% endif %}{% if not a and not b %}none{% endif %}", {"a": False, "b": True}),
    ("{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', 'Hi') }} {{ greet(greeting='Yo', name='Cy') }}", {}),
    ("{% macro m(a) %}{{ a }}|{{ varargs }}|{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k=4) }}", {}),
    ("{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}inner {{ 1 }}{% endcall %}", {}),
    ("{% macro rec(n) %}{% if n > 0 %}{{ n }}{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(3) }}", {}),
    ("{{ '  pad  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ 'Hello World' | upper }}|{{ 'ABC' | lower }}|{{ 'hello big-world (x)' | title }}|{{ 'hELLO' | capitalize }}", {}),
    ("{{ 'a-b-c' | replace('-', '+') }} {{ 'aaa' | replace('a', 'b', 2) }} {{ [1, 2, 3] | join(', ') }} {{ 'abc' | join('.') }}", {}),
    ("{{ u | default('d') }} {{ '' | default('e') }} {{ '' | default('e', true) }} {{ none | default('n') }} {{ u | d('dd') }}", {}),
    ("{{ [3, 1, 2] | first }} {{ [3, 1, 2] | last }} {{ 'abc' | list }} {{ 42 | string }} {{ '12' | int + 1 }} {{ '3.7' | int }} {{ 'x' | int }} {{ '2.5' | float }} {{ 3 | float }}", {}),
    ("{{ d | items | list }} {% for k, v in d | items %}{{ k }}{{ v }}{% endfor %}", {"d": {"a": 1, "b": 2}}),
    ("{{ l | selectattr('on') | map(attribute='n') | join(',') }} {{ l | rejectattr('on') | map(attribute='n') | list }} {{ l | selectattr('n', 'equalto', 'b') | list | length }}", {"l": [{"n": "a", "on": True}, {"n": "b", "on": False}, {"n": "c", "on": True}]}),
    ("{{ l | map('upper') | join }} {{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3, 4] | reject('even') | list }}", {"l": ["a", "b"]}),
    ("{{ '<a href=\"x\">&</a>' | escape }} {{ '<b>' | safe }} {{ [3, 1, 2] | sort }} {{ 'abc' | reverse }} {{ [1, 2] | reverse | list }} {{ [1, 2, 1] | unique | list }}", {}),
    ("{{ x | tojson }}", {"x": {"b": [1, 2.5, None, True, "é\"\\\n\t\u0001"], "a": {"nested": "ü😀"}, "e": [], "o": {}}}),
    ("{{ x | tojson(indent=2) }}", {"x": {"b": [1, {"c": None}], "a": {}, "l": []}}),
    ("{{ x | tojson(ensure_ascii=true) }} {{ x | tojson(sort_keys=true) }} {{ x | tojson(separators=(',', ':')) }}", {"x": {"z": "é😀", "a": [1, 2]}}),
    ("{{ 'hi' | tojson }} {{ 3 | tojson }} {{ 1.0 | tojson }} {{ none | tojson }} {{ false | tojson }}", {}),
    ("{{ s.startswith('ab') }} {{ s.endswith('yz') }} {{ s.startswith(('x', 'a')) }} {{ s.upper() }} {{ s.replace('b', 'B') }} {{ s.find('c') }} {{ s.count('a') }}", {"s": "abcxyz"}),
    ("{{ s.split() }} {{ s.split(',') }} {{ s.split(',', 1) }} {{ s.rsplit(',', 1) }} {{ s.split('</think>')[-1] }}", {"s": " a,b , c</think>end "}),
    ("[{{ s.strip() }}] [{{ s.lstrip() }}] [{{ s.rstrip() }}] [{{ s.strip('\\n ') }}] [{{ s.lstrip('\\n') }}]", {"s": "\n  text \n\n"}),
    ("{{ s.title() }} {{ s.capitalize() }} {{ s.lower() }} {{ '{} and {}'.format('a', 1) }} {{ ', '.join(['x', 'y']) }}", {"s": "hello WORLD foo"}),
    ("{{ x is none }} {{ x is string }} {{ 1 is number }} {{ 'a' is string }} {{ {} is mapping }} {{ [] is iterable }} {{ [] is sequence }} {{ true is boolean }} {{ 1 is boolean }}", {"x": None}),
    ("{{ f is false }} {{ f is true }} {{ 0 is false }} {{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 2 is equalto 2 }} {{ 'a' is in 'abc' }} {{ x is not none }}", {"f": False, "x": 1}),
    ("{{ 1 is integer }} {{ 1.5 is float }} {{ 'ab' is lower }} {{ 'AB' is upper }} {{ x is not defined }}", {}),
    ("{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ dict(a=1, b='x') }} {{ [1, 2, 3] | sum }} {{ [3, 1, 2] | max }} {{ [3, 1, 2] | min }} {{ -3 | abs }}", {}),
    ("{{ raise_exception('custom failure') }}", {}),
    ("{{ u.attr }}", {}),
    ("{{ 1 + 'a' }}", {}),
    ("{% for x in 5 %}{% endfor %}", {}),
    ("{{ 'a' + none }}", {}),
    ("{{ messages[0].content.strip() }}{{ messages[0]['role'] | capitalize }}", {"messages": [{"role": "user", "content": " hi "}]}),
    # whitespace control and trim_blocks / lstrip_blocks
    ("a\n{% if true %}\nb\n{% endif %}\nc\n", {}),
    ("  {% if true %}\n  x\n  {% endif %}\n", {}),
    ("a  {%- if true -%}  b  {%- endif -%}  c", {}),
    ("a\n  {{- 'b' -}}  \nc", {}),
    ("x  {%+ if true %}y{% endif +%}\nz", {}),
    ("{# comment #}\n  {#- trimmed -#}  a {# c #} b\n", {}),
    ("{% for i in [1, 2] %}\n    {{ i }}\n{% endfor %}\n", {}),
    ("line1\r\nline2\r{{ 'x' }}\n\n", {}),
    ("{% raw %}{{ not evaluated }}{% endraw %} {{ 'ok' }}", {}),
    ("{%- set x = 'v' -%}\n\n   {{ x }}   \n", {}),
    ("{% if true %}  {% endif %}\n  {% if true %}a{% endif %}  \n", {}),
    ("{{ '\\u00e9\\x41\\t|' }}{{ \"it's\" }}{{ 'say \"hi\"' }}", {}),
    ("{{ {'a': 1, 'b': [1, 2]} }}{{ {'q': \"it's\"} }}", {}),
    ("{{ strftime_now('%Y') | length }}", {}),
    ("{% generation %}gen {{ 1 }}{% endgeneration %}", {}),
    ("{{ x | indent(2) }}|{{ x | indent(2, true) }}", {"x": "a\nb\n\nc"}),
    ("{% filter upper %}hello {{ 'x' }}{% endfilter %}", {}),
    ("{{ '%s-%d' % ('a', 3) }} {{ '%s' % 'x' }}", {}),
    ("{{ -x }} {{ +x }} {{ - 2 ** 2 }} {{ (1 + 2) * 3 }} {{ x | abs }} {{ -x | abs }}", {"x": 5}),
    ("{{ a.b.c }}", {"a": {"b": {"c": "deep"}}}),
    ("{{ a.b.c }}", {"a": {}}),
    ("{{ none.x }}|{{ (1).x }}", {}),
    ("{{ foo() }}", {}),
    # more edge cases of the semantics chat templates lean on
    ("  {{ 'var at line start' }}\n  {% if true %}x{% endif %}", {}),
    ("{% for m in msgs %}\n    {%- if m.role == 'user' %}\n        U:{{ m.content }}\n    {%- else %}\n        A:{{ m.content }}\n    {%- endif %}\n{% endfor %}", {"msgs": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}),
    ("{% for x in [1] %}{% if true %}{% set inner = 'set' %}{% endif %}{{ inner }}{% endfor %}[{{ inner }}]", {}),
    ("{% macro show() %}{{ later }}{% endmacro %}{% set later = 'seen' %}{{ show() }}", {}),
    ("{{ msgs | selectattr('role', 'equalto', 'system') | list | length }} {{ (msgs | first).role }} {{ msgs[0]['role'] == 'system' }}", {"msgs": [{"role": "system"}, {"role": "user"}]}),
    ("{{ 1 == '1' }} {{ none == false }} {{ 0 == false }} {{ [] == [] }} {{ {'a': 1} == {'a': 1} }} {{ 1.5 > 1 }}", {}),
    ("{{ 'a' in u }} {{ u in [1] }} {{ 'x' ~ u ~ 'y' }} {{ u | string }}|{{ u | trim }}|{{ u | list }}", {}),
    ("{% for (k, v) in d.items() %}{{ k }}{{ v }}{% endfor %}{% for a, b in [[1, 2], [3, 4]] %}{{ a * b }}{% endfor %}", {"d": {"x": 1}}),
    ("{%- for i in [1, 2] -%}\n  {{ i }}\n{%- endfor -%}\n\nend", {}),
    ("{{ x | tojson }} {{ y | tojson }}", {"x": {"f": 1.0, "g": 1e-07, "h": 123456789012, "i": -2.5e+300, "s": "\u007f\u2028"}, "y": [[], {}, [{}]]}),
    ("{{ x | tojson(indent=4) }}", {"x": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}}]}),
    ("{{ x }} {{ x['a'] }} {{ x.a[1] }}", {"x": {"a": [1, "two", None, False, 0.5]}}),
    ("{{ 'x' if u is defined else 'undef' }} {{ u.attr is defined if u is defined else 'skip' }} {{ d.missing is defined }} {{ d.missing is none }}", {"d": {}}),
    ("{{ messages[-1].content }}{{ messages[1:] | length }}{% for m in messages[1:] %}{{ m.content }}{% endfor %}", {"messages": [{"content": "a"}, {"content": "b"}, {"content": "c"}]}),
    ("{{ '  a  b  '.split(' ') }} {{ 'a\tb\n c'.split() }} {{ ''.split() }} {{ 'abc'.split('b', 0) }}", {}),
    ("{{ 'abc'.strip('ac') }} {{ 'xxaxx'.lstrip('x') }} {{ 'é abc é'.strip('é ') }} {{ '\u3000wide\u3000'.strip() }}", {}),
    ("{{ '<think>\nA\n</think>\n\nB'.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') }}", {}),
    ("{{ 10 // 3 * 3 + 10 % 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 1 + 2 ~ 3 }} {{ not 1 == 2 }} {{ 5 - 3 - 1 }} {{ 1 / 4 }} {{ 3 * 1.5 }}", {}),
    ("{% set d = {'k': 'v', 'n': {'m': 1}} %}{{ d.n.m }}{{ d['k'] }}{% set l = [1, 2] + [3] %}{{ l | length }}", {}),
    ("{{ 'Hi' ~ '\n' }}{{- '  x' }}", {}),
    ("{% if true %}\n    indented\n{% endif %}", {}),
    ("a {#- c #} b {# c -#} c", {}),
    ("{{ x.content is string }} {{ x.content is mapping }} {{ x.content is iterable }} {{ x.content is sequence }}", {"x": {"content": [{"type": "text"}]}}),
    ("{% for c in x.content %}{% if c.type == 'text' %}{{ c.text }}{% elif c['type'] == 'image' %}<img>{% endif %}{% endfor %}", {"x": {"content": [{"type": "text", "text": "hi "}, {"type": "image"}]}}),
    ("{{ [1, 2, 3][1:2] }} {{ 'abcdef'[-3:] }} {{ 'abcdef'[10:] }}| {{ [1, 2][-5:] }} {{ 'abc'[::-2] }}", {}),
    ("{% set ns = namespace() %}{% set ns.found = false %}{% for m in ['a', 'b'] %}{% if m == 'b' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }}", {}),
    ("{{ range(5)[2] }} {{ range(0) | list }} {{ range(3, 0, -1) | list }} {{ loop }}", {}),
    ("{{ 'café'.upper() }} {{ 'ÀB'.lower() }} {{ 'straße'.upper() }} {{ 'ΑΒΓ δ'.lower() }} {{ 'привет мир'.title() }} {{ 'élan vital' | title }} {{ 'éA' | capitalize }}", {}),
    ("{% if x %}{{ raise_exception('x must be false, got ' ~ x) }}{% endif %}", {"x": 3}),
    ("{{ x.y.z }}", {"x": {"y": None}}),
    ("{% for m in messages %}{% if loop.index0 % 2 == 0 and m.role != 'user' %}{{ raise_exception('roles must alternate') }}{% endif %}{{ m.role }}{% endfor %}", {"messages": [{"role": "user"}, {"role": "assistant"}, {"role": "assistant"}]}),
]


# Conversations exactly as the openai client sends them after a tool-calling turn: the assistant
# message has "content": null and its arguments are a JSON string; the tool answer refers to the
# call's id. Compact JSON in the arguments, so that a template that writes `arguments | tojson`
# shows whether they were parsed (tojson spaces them out).
def openai_call(call_id, name, arguments):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


OPENAI_CONVERSATIONS = {
    "tool_call_history": [
        SYSTEM,
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None,
         "tool_calls": [openai_call("call_1", "get_weather", '{"city":"Paris","unit":"celsius"}')]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp":21}'},
    ],
    "two_calls_then_answer": [
        {"role": "user", "content": "Weather in Paris and Tokyo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            openai_call("call_a", "get_weather", '{"city":"Paris"}'),
            openai_call("call_b", "get_weather", '{"city":"Tokyo","unit":"fahrenheit"}')]},
        {"role": "tool", "tool_call_id": "call_a", "content": "21"},
        {"role": "tool", "tool_call_id": "call_b", "content": "64"},
        {"role": "assistant", "content": "Paris 21 C, Tokyo 64 F."},
        {"role": "user", "content": "Thanks!"},
    ],
    "no_content_key_and_odd_arguments": [  # vLLM: "" / null / not JSON -> {}
        {"role": "user", "content": "Time and weather?"},
        {"role": "assistant", "tool_calls": [
            openai_call("c1", "get_time", ""),
            openai_call("c2", "get_time", None),
            openai_call("c3", "get_weather", '{"city": "Ro'),
            openai_call("c4", "get_weather", {"city": "Oslo"})]},
        {"role": "tool", "tool_call_id": "c1", "content": "12:00"},
    ],
    "empty_tool_calls_and_text_parts": [  # [] is dropped; text parts are joined with "\n"
        {"role": "user", "content": [{"type": "text", "text": "first part"}, {"type": "text", "text": "second"}]},
        {"role": "assistant", "content": "Hello", "tool_calls": []},
        {"role": "user", "content": None},
    ],
}


def vllm_messages(messages):
    """What vLLM's chat_utils hands the template for text-only messages, in its "string" content
    format: _parse_chat_message_content (content null or absent -> [], text parts joined with
    "\n") and _postprocess_messages (an assistant's tool_calls: [] dropped, each
    function.arguments string parsed as JSON, {} when it is not JSON or not a dict/list). The
    other keys of a message are passed on as given."""
    out = []
    for m in copy.deepcopy(messages):
        content = m.get("content")
        parts = [] if content is None else [content] if isinstance(content, str) else [p["text"] for p in content]
        m["content"] = "\n".join(parts)
        if m["role"] == "assistant" and isinstance(m.get("tool_calls"), list):
            if not m["tool_calls"]:
                del m["tool_calls"]
            for call in m.get("tool_calls", []):
                args = call["function"].get("arguments")
                if isinstance(args, str):
                    try:
                        call["function"]["arguments"] = json.loads(args)
                    except json.JSONDecodeError:
                        call["function"]["arguments"] = {}
                elif not isinstance(args, (dict, list)):
                    call["function"]["arguments"] = {}
        out.append(m)
    return out


def gen_openai(shared):
    cases = []
    targets = [(model, MODELS[model], None) for model in ("qwen3", "qwen2.5", "llama3")]
    targets.append(("llama31_style_tools", "tokenizers/llama3", TOOL_TEMPLATE))
    for model, rel, template in targets:
        tok = load_tokenizer(os.path.join(shared, rel))
        for name, messages in OPENAI_CONVERSATIONS.items():
            for tools in (None, TOOLS):
                c = {"model": model, "model_dir": rel, "name": name + ("/tools" if tools else ""),
                     "messages": messages, "tools": tools}
                if template is not None:
                    c.update(template=template, special_tokens=tok.special_tokens_map)
                c.update(render(tok, vllm_messages(messages), True, {}, tools, template))
                cases.append(c)
    write("openai_messages.json", {"cases": cases})
    return len(cases), sum("error" in c for c in cases)


def gen_jinja():
    cases = []
    for template, ctx in JINJA_CASES:
        c = {"template": template, "context": ctx}
        try:
            c["expected"] = _compile_jinja_template(template).render(**copy.deepcopy(ctx))
        except Exception as e:
            c["error"] = f"{type(e).__name__}: {e}"
        cases.append(c)
    write("jinja_cases.json", {"cases": cases})
    return len(cases), sum("error" in c for c in cases)


def write(name, data):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    args = ap.parse_args()
    for model, (n, errors) in gen_models(args.shared).items():
        print(f"{model}: {n} cases ({errors} expect an error)")
    print(f"extra_templates: {gen_extra(args.shared)} cases")
    n, errors = gen_jinja()
    print(f"jinja: {n} cases ({errors} expect an error)")
    n, errors = gen_openai(args.shared)
    print(f"openai_messages: {n} cases ({errors} expect an error)")


if __name__ == "__main__":
    main()
