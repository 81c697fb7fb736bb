"""An agent loop with the official openai client against `nanovllm serve`: the model calls a
tool, the tool's result goes back as a "tool" message, and the model answers.

    nanovllm serve MODEL_DIR --served-model-name local &
    NANOVLLM_URL=http://127.0.0.1:8000/v1 NANOVLLM_MODEL=local python examples/agent_loop.py

A trained instruct model picks the tool itself (tool_choice "auto"); set NANOVLLM_TOOL_CHOICE=
required to force a call (the tests do, since their model has random weights)."""
import json
import os

import openai

client = openai.OpenAI(base_url=os.environ.get("NANOVLLM_URL", "http://127.0.0.1:8000/v1"), api_key="none")
MODEL = os.environ.get("NANOVLLM_MODEL", "local")
TOOL_CHOICE = os.environ.get("NANOVLLM_TOOL_CHOICE", "required")

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
                   "required": ["city"], "additionalProperties": False}}}]


def get_weather(city):
    return json.dumps({"city": city, "temperature_c": 21, "sky": "clear"})


messages = [{"role": "user", "content": "What is the weather in Paris?"}]
for turn in range(4):
    reply = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, max_tokens=100, seed=turn, parallel_tool_calls=False,
                                           tool_choice=TOOL_CHOICE if turn == 0 else "auto")
    message = reply.choices[0].message
    messages.append(message.model_dump(exclude_none=True))
    if not message.tool_calls:
        print("final answer:", message.content)
        break
    for call in message.tool_calls:
        args = json.loads(call.function.arguments)
        print(f"tool call: {call.function.name}({args})")
        messages.append({"role": "tool", "tool_call_id": call.id, "content": get_weather(**args)})
