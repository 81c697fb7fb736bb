"""End-to-end tests of `nanovllm serve` with the official openai client, requests and curl.

Oracles: TinyStories-656K's known greedy story, the server's own /tokenize for usage counts, each
request run alone as the reference for the same request run among 31 others (greedy), and the
OpenAI response shapes the openai client parses.
"""
import concurrent.futures as cf
import gzip
import json
import re
import signal
import socket
import subprocess
import threading
import time

import openai
import pytest
import requests

from conftest import ROOT, STORIES, Server

STORY = "Once upon a time, there was a little girl named Lily. She had a toy car that she loved very much."


def client(server, **kw):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=kw.pop("api_key", "unused"), max_retries=0, **kw)


def complete(server, prompt, **kw):
    body = {"model": server.name, "prompt": prompt, "temperature": 0, **kw}
    r = server.post("/v1/completions", body)
    assert r.status_code == 200, r.text
    return r.json()


def stream_sse(server, path, body, started=None):
    """Sends a streaming request; returns the parsed data chunks (ending at [DONE]). `started`, a
    threading.Event, is set once the first chunk has arrived."""
    chunks = []
    with requests.post(server.url + path, json={**body, "stream": True}, stream=True, timeout=60) as r:
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if not line:
                continue
            assert line.startswith(b"data: "), line
            if line == b"data: [DONE]":
                return chunks
            chunks.append(json.loads(line[6:]))
            if started is not None:
                started.set()
    raise AssertionError("stream ended without [DONE]")


def n_tokens(server, text):
    return server.post("/tokenize", {"prompt": text}).json()["count"]


# ---------------------------------------------------------------------------------------------
# Completions

def test_models_and_health(story_server):
    assert requests.get(story_server.url + "/health").status_code == 200
    models = client(story_server).models.list()
    assert [m.id for m in models.data] == ["test-model"]


def test_greedy_story_from_bos_with_openai_client(story_server):
    out = client(story_server).completions.create(model="test-model", prompt="", max_tokens=40, temperature=0)
    assert out.choices[0].text.startswith(STORY), out.choices[0].text
    assert out.usage.prompt_tokens == 1  # BOS alone
    assert out.usage.completion_tokens == 40
    assert out.usage.total_tokens == 41
    assert out.choices[0].finish_reason == "length"


def test_streamed_completion_equals_plain(story_server):
    plain = complete(story_server, "Once upon a time", max_tokens=30)
    stream = client(story_server).completions.create(model="test-model", prompt="Once upon a time", max_tokens=30,
                                                     temperature=0, stream=True,
                                                     stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == plain["choices"][0]["text"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 30
    assert chunks[-1].usage.prompt_tokens == plain["usage"]["prompt_tokens"] == n_tokens(story_server, "Once upon a time")


def test_curl_plain_and_stream(story_server):
    body = json.dumps({"model": "test-model", "prompt": "The cat", "max_tokens": 12, "temperature": 0})
    out = subprocess.run(["curl", "-sS", "--fail-with-body", story_server.url + "/v1/completions",
                          "-H", "Content-Type: application/json", "-d", body], capture_output=True, text=True, check=True)
    plain = json.loads(out.stdout)
    assert plain["object"] == "text_completion" and plain["usage"]["completion_tokens"] <= 12
    streamed = json.dumps({**json.loads(body), "stream": True})
    out = subprocess.run(["curl", "-sS", "-N", story_server.url + "/v1/completions",
                          "-H", "Content-Type: application/json", "-d", streamed], capture_output=True, text=True, check=True)
    events = [e for e in out.stdout.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    text = "".join(json.loads(e[6:])["choices"][0]["text"] for e in events[:-1])
    assert text == plain["choices"][0]["text"]


def test_prompt_forms_and_n(story_server):
    ids = story_server.post("/tokenize", {"prompt": "Tom had a dog"}).json()["tokens"]
    by_text = complete(story_server, "Tom had a dog", max_tokens=10)["choices"][0]["text"]
    assert complete(story_server, ids, max_tokens=10)["choices"][0]["text"] == by_text
    both = complete(story_server, ["Tom had a dog", "Sue liked"], max_tokens=10, n=2)
    assert [c["index"] for c in both["choices"]] == [0, 1, 2, 3]
    assert both["choices"][0]["text"] == both["choices"][1]["text"] == by_text  # greedy: n copies
    assert complete(story_server, [ids, ids], max_tokens=10)["choices"][1]["text"] == by_text
    assert both["usage"]["prompt_tokens"] == len(ids) + n_tokens(story_server, "Sue liked")


def test_stop_strings_never_in_output(story_server):
    full = complete(story_server, "", max_tokens=40, logprobs=0)["choices"][0]
    tokens = full["logprobs"]["tokens"]
    # A stop string that spans a token boundary: end of token 3 + start of token 4.
    across = tokens[3][-2:] + tokens[4][:2]
    for stop in ["Lily", across, ["zzz", "toy car"]]:
        first = stop if isinstance(stop, str) else "toy car"
        expected = full["text"][: full["text"].index(first)]
        out = complete(story_server, "", max_tokens=40, stop=stop)["choices"][0]
        assert out["text"] == expected and out["finish_reason"] == "stop", (stop, out)
        chunks = stream_sse(story_server, "/v1/completions", {"prompt": "", "max_tokens": 40, "temperature": 0, "stop": stop})
        streamed = "".join(c["choices"][0]["text"] for c in chunks)
        assert streamed == expected and first not in streamed


def test_seed_reproducible(story_server):
    def sample(seed):
        return complete(story_server, "One day", max_tokens=24, temperature=1.0, seed=seed, ignore_eos=True)["choices"][0]["text"]
    a, b = sample(1234), sample(1234)
    assert a == b
    assert any(sample(s) != a for s in (1, 2, 3))
    two = complete(story_server, "One day", max_tokens=24, temperature=1.0, seed=1234, n=2, ignore_eos=True)
    assert two["choices"][0]["text"] == a  # sample 0 keeps the seed


def test_usage_cached_tokens(story_server):
    prompt = " ".join(["The little bird sang a song in the tall green tree."] * 6)
    n = n_tokens(story_server, prompt)
    assert n > 32
    complete(story_server, prompt, max_tokens=2)
    again = complete(story_server, prompt, max_tokens=2)["usage"]
    assert again["prompt_tokens"] == n
    assert 16 <= again["prompt_tokens_details"]["cached_tokens"] < n
    assert again["total_tokens"] == n + again["completion_tokens"]


def test_logprobs_completion(story_server):
    out = complete(story_server, "Once", max_tokens=6, logprobs=3, ignore_eos=True)["choices"][0]
    lp = out["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == 6
    assert "".join(lp["tokens"]) == out["text"]
    assert lp["text_offset"][0] == 0 and lp["text_offset"][1] == len(lp["tokens"][0])
    for chosen, top in zip(lp["token_logprobs"], lp["top_logprobs"]):
        assert chosen <= 0 and 1 <= len(top) <= 4
        assert abs(max(top.values()) - chosen) < 1e-5  # greedy picks the most likely


def test_sampling_fields_accepted(story_server):
    out = complete(story_server, "A big", max_tokens=8, temperature=0.7, top_p=0.9, top_k=20, min_p=0.05, seed=3,
                   presence_penalty=0.5, frequency_penalty=0.5, repetition_penalty=1.2, stop_token_ids=[2],
                   ignore_eos=False, max_completion_tokens=8)
    assert out["usage"]["completion_tokens"] <= 8


def test_end_of_story_token_text_is_not_in_the_output(story_server):
    # TinyStories ends a story by writing "<|end_story|>" as plain text (four ordinary tokens),
    # then its EOS token, also named <|end_story|>, a special token stored with "normalized": true.
    # The EOS token adds no text (vLLM's rule for the token that ends a request), with or without
    # skip_special_tokens; include_stop_str_in_output keeps it.
    for skip in (True, False):
        out = complete(story_server, "", max_tokens=400, logprobs=0, skip_special_tokens=skip)["choices"][0]
        tokens = out["logprobs"]["tokens"]
        assert out["finish_reason"] == "stop" and tokens[-1] == "<|end_story|>", tokens[-6:]
        assert tokens[-5:-1] == ["<|", "end", "_story", "|>"]
        before_eos = complete(story_server, "", max_tokens=len(tokens) - 1, skip_special_tokens=skip)["choices"][0]
        assert before_eos["finish_reason"] == "length" and before_eos["text"].endswith("it.<|end_story|>")
        assert out["text"].startswith(STORY) and out["text"] == before_eos["text"], out["text"][-80:]
        chunks = stream_sse(story_server, "/v1/completions", {"prompt": "", "max_tokens": 400, "temperature": 0,
                                                              "skip_special_tokens": skip})
        assert "".join(c["choices"][0]["text"] for c in chunks) == out["text"]
    kept = complete(story_server, "", max_tokens=400, skip_special_tokens=False,
                    include_stop_str_in_output=True)["choices"][0]["text"]
    assert kept.startswith(out["text"]) and kept[len(out["text"]):].strip() == "<|end_story|>", kept[-80:]


def test_stop_token_ids_text_left_out_unless_included(story_server):
    piece = "little girl named "  # one token of the greedy story
    token = story_server.post("/tokenize", {"prompt": piece, "add_special_tokens": False}).json()["tokens"][-1]
    assert story_server.post("/detokenize", {"tokens": [token]}).json()["prompt"] == piece
    full = complete(story_server, "", max_tokens=40)["choices"][0]["text"]
    cut = full.index(piece)
    out = complete(story_server, "", max_tokens=40, stop_token_ids=[token])["choices"][0]
    assert out["text"] == full[:cut] and out["finish_reason"] == "stop" and str(out["stop_reason"]) == str(token), out
    kept = client(story_server).completions.create(model="test-model", prompt="", max_tokens=40, temperature=0,
                                                   extra_body={"stop_token_ids": [token], "include_stop_str_in_output": True})
    assert kept.choices[0].text == full[:cut + len(piece)]
    # The same for a stop string.
    kept = complete(story_server, "", max_tokens=40, stop="Lily", include_stop_str_in_output=True)["choices"][0]
    assert kept["text"] == full[:full.index("Lily") + len("Lily")] and kept["finish_reason"] == "stop"


def test_logit_bias_forces_and_bans_tokens(story_server):
    cat = story_server.post("/tokenize", {"prompt": "cat", "add_special_tokens": False}).json()["tokens"][-1]
    c = client(story_server)
    forced = c.completions.create(model="test-model", prompt="Once upon a time", max_tokens=6, temperature=0,
                                  logit_bias={str(cat): 100}, logprobs=0)
    assert forced.choices[0].logprobs.tokens == ["cat"] * 6 and forced.choices[0].text == "cat" * 6
    # Sampled at temperature 1 too: +100 leaves the others no mass.
    hot = c.completions.create(model="test-model", prompt="Once upon a time", max_tokens=6, temperature=1, seed=5,
                               logit_bias={str(cat): 100})
    assert hot.choices[0].text == forced.choices[0].text
    piece = "little girl named "
    token = story_server.post("/tokenize", {"prompt": piece, "add_special_tokens": False}).json()["tokens"][-1]
    plain = complete(story_server, "", max_tokens=12, logprobs=0)["choices"][0]
    assert piece in plain["logprobs"]["tokens"]
    banned = complete(story_server, "", max_tokens=12, logprobs=0, logit_bias={str(token): -100})["choices"][0]
    assert piece not in banned["logprobs"]["tokens"] and banned["text"] != plain["text"]
    r = story_server.post("/v1/completions", {"prompt": "a", "logit_bias": {"999999": 5}})
    assert r.status_code == 400 and "logit_bias" in r.json()["error"]["message"]


@pytest.mark.parametrize("path,field,value", [
    ("/v1/completions", "best_of", 2),
    ("/v1/completions", "suffix", " The end."),
    ("/v1/completions", "prompt_logprobs", 1),
    ("/v1/completions", "response_format", {"type": "json_schema", "json_schema": {"name": "x"}}),
    ("/v1/completions", "guided_choice", []),
    ("/v1/completions", "logit_bias", {"x": 1}),
    ("/v1/completions", "logit_bias", {"5": 1000}),
    ("/v1/completions", "user", 5),
    ("/v1/completions", "no_such_field", True),
    ("/v1/completions", "max_tokens", "10"),
    ("/v1/chat/completions", "tool_choice", "required"),
    ("/v1/chat/completions", "tool_choice", {"type": "function", "function": {"name": "get_weather"}}),
    ("/v1/chat/completions", "parallel_tool_calls", "no"),
    ("/v1/chat/completions", "temperature", "hot"),
])
def test_unsupported_fields_are_400_naming_them(story_server, chat_server, path, field, value):
    server = chat_server if "chat" in path else story_server
    body = {"messages": [{"role": "user", "content": "hi"}]} if "chat" in path else {"prompt": "Once"}
    r = server.post(path, {**body, "max_tokens": 2, field: value})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == field and f"'{field}'" in err["message"], err


def test_informational_and_no_op_fields_are_accepted(story_server, chat_server):
    out = client(story_server).completions.create(model="test-model", prompt="Once", max_tokens=3, temperature=0,
                                                  user="someone", n=2, best_of=2, extra_body={"suffix": None})
    assert len(out.choices) == 2
    messages = [{"role": "user", "content": "hi"}]
    chat = client(chat_server).chat.completions.create(model="qwen3-tiny", messages=messages, max_tokens=3,
                                                       response_format={"type": "text"}, tool_choice="none", user="u")
    assert chat.choices[0].finish_reason in ("stop", "length")
    with pytest.raises(openai.BadRequestError) as e:
        client(story_server).completions.create(model="test-model", prompt="Once", max_tokens=3, best_of=3)
    assert e.value.body["param"] == "best_of" and "'best_of' is not supported" in e.value.body["message"]


def test_tool_call_history_with_the_openai_client(chat_server):
    # The turn the openai client sends back after a tool call: "content": None next to tool_calls
    # whose arguments are a JSON string, then the tool's answer. The prompt must be the one
    # transformers renders from the messages as vLLM normalizes them (the committed golden).
    golden = json.loads((ROOT / "tests" / "data" / "chat_template" / "openai_messages.json").read_text())
    case = next(c for c in golden["cases"] if c["model"] == "qwen3" and c["name"] == "tool_call_history/tools")
    c = client(chat_server)
    out = c.chat.completions.create(model="qwen3-tiny", messages=case["messages"], tools=case["tools"],
                                    max_tokens=4, temperature=0, extra_body={"ignore_eos": True})
    assert out.choices[0].finish_reason == "length"
    expected = chat_server.post("/tokenize", {"prompt": case["expected"], "add_special_tokens": False}).json()
    assert out.usage.prompt_tokens == expected["count"]
    # The same history built from the client's own types, streamed.
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": json.dumps({"city": "Oslo"})}}
    history = [{"role": "user", "content": "Weather in Oslo?"}, {"role": "assistant", "content": None, "tool_calls": [call]},
               {"role": "tool", "tool_call_id": "call_1", "content": "cold"}]
    chunks = list(c.chat.completions.create(model="qwen3-tiny", messages=history, tools=case["tools"], max_tokens=4,
                                            temperature=0, stream=True, extra_body={"ignore_eos": True}))
    assert chunks[-1].choices[0].finish_reason == "length"


def test_tokenize_detokenize(story_server):
    t = story_server.post("/tokenize", {"prompt": "Hello there", "return_token_strs": True}).json()
    assert t["count"] == len(t["tokens"]) and t["max_model_len"] == 512
    back = story_server.post("/detokenize", {"tokens": t["tokens"]}).json()["prompt"]
    assert back.endswith("Hello there")


# ---------------------------------------------------------------------------------------------
# Chat

def test_chat_plain_stream_and_usage(chat_server):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]
    c = client(chat_server)
    out = c.chat.completions.create(model="qwen3-tiny", messages=messages, max_tokens=8, temperature=0,
                                    extra_body={"ignore_eos": True})
    assert out.object == "chat.completion" and out.choices[0].message.role == "assistant"
    assert out.usage.completion_tokens == 8 and out.choices[0].finish_reason == "length"
    tok = chat_server.post("/tokenize", {"messages": messages}).json()
    assert out.usage.prompt_tokens == tok["count"]
    stream = c.chat.completions.create(model="qwen3-tiny", messages=messages, max_tokens=8, temperature=0,
                                       stream=True, stream_options={"include_usage": True},
                                       extra_body={"ignore_eos": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == out.choices[0].message.content
    assert chunks[-1].usage.total_tokens == out.usage.total_tokens


def test_chat_template_kwargs_and_logprobs(chat_server):
    messages = [{"role": "user", "content": [{"type": "text", "text": "Tell me a story."}]}]
    on = chat_server.post("/tokenize", {"messages": messages}).json()["count"]
    off = chat_server.post("/tokenize", {"messages": messages, "chat_template_kwargs": {"enable_thinking": False}}).json()["count"]
    assert off > on  # Qwen3 writes an empty <think></think> block when thinking is off
    r = chat_server.post("/v1/chat/completions", {"messages": messages, "max_tokens": 3, "temperature": 0, "ignore_eos": True,
                                                  "logprobs": True, "top_logprobs": 2,
                                                  "chat_template_kwargs": {"enable_thinking": False}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["usage"]["prompt_tokens"] == off
    content = body["choices"][0]["logprobs"]["content"]
    assert len(content) == 3 and all(len(t["top_logprobs"]) == 2 and "bytes" in t for t in content)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}]
    with_tools = chat_server.post("/tokenize", {"messages": messages, "tools": tools}).json()["count"]
    assert with_tools > on


def test_chat_without_template_is_400(story_server):
    r = story_server.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and "chat template" in r.json()["error"]["message"]


# ---------------------------------------------------------------------------------------------
# Concurrency, disconnects, overload, auth, shutdown

STARTS = ["Once upon a time", "Tom", "The sun", "A little dog", "Sara and Ben", "One day", "The cat", "Mom said",
          "There was a big", "Lily wanted", "The bird", "In the park", "Max had", "The boy", "Anna liked", "It was"]


def test_32_concurrent_streams_match_solo_runs(story_server):
    prompts = [f"{s}{' ' * (i // 16)}" for i in range(32) for s in [STARTS[i % 16]]]
    solo = [complete(story_server, p, max_tokens=24, ignore_eos=True)["choices"][0]["text"] for p in prompts]

    def streamed(p):
        chunks = stream_sse(story_server, "/v1/completions", {"prompt": p, "max_tokens": 24, "temperature": 0, "ignore_eos": True})
        return "".join(c["choices"][0]["text"] for c in chunks)

    with cf.ThreadPoolExecutor(32) as pool:
        together = list(pool.map(streamed, prompts))
    assert together == solo


def test_disconnected_streams_free_their_blocks(story_server):
    before = story_server.metrics()

    def start_and_drop():
        body = {"prompt": "Once upon a time", "max_tokens": 400, "ignore_eos": True, "stream": True, "temperature": 0}
        r = requests.post(story_server.url + "/v1/completions", json=body, stream=True, timeout=30)
        lines = r.iter_lines()
        for _ in range(3):
            next(lines)
        r.close()

    with cf.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: start_and_drop(), range(4)))
    deadline = time.time() + 20
    while True:
        m = story_server.metrics()
        if m["nanovllm:kv_blocks_used"] == 0 and m["nanovllm:num_requests_running"] == 0:
            break
        assert time.time() < deadline, m
        time.sleep(0.1)
    assert m["nanovllm:request_success_total.abort"] >= before["nanovllm:request_success_total.abort"] + 4
    assert m["nanovllm:kv_blocks_free"] == m["nanovllm:kv_blocks_total"]
    assert m["nanovllm:generation_tokens_total"] < before["nanovllm:generation_tokens_total"] + 4 * 400
    assert requests.get(story_server.url + "/health").status_code == 200


def test_metrics_histograms(story_server):
    complete(story_server, "Hi", max_tokens=4)
    text = requests.get(story_server.url + "/metrics").text
    for name in ["time_to_first_token_seconds_bucket", "inter_token_latency_seconds_count", "num_requests_waiting",
                 "prefix_cache_hit_rate", "generation_tokens_per_second"]:
        assert "nanovllm:" + name in text


def test_overload_answers_503():
    server = Server(STORIES, "--max-num-seqs", "1", "--max-waiting", "1")
    try:
        # Long enough (the model's context is 512) that the six requests overlap on a slow host.
        body = {"model": server.name, "prompt": "Once", "max_tokens": 480, "ignore_eos": True}
        with cf.ThreadPoolExecutor(6) as pool:
            codes = list(pool.map(lambda _: server.post("/v1/completions", body).status_code, range(6)))
        assert 503 in codes and 200 in codes, codes
        r = server.post("/v1/completions", {**body, "max_tokens": 2})
        assert r.status_code == 200
    finally:
        assert server.stop() == 0


def test_api_key():
    server = Server(STORIES, "--api-key", "sekret")
    try:
        body = {"prompt": "Hi", "max_tokens": 2}
        assert server.post("/v1/completions", body).status_code == 401
        assert server.post("/v1/completions", body, headers={"Authorization": "Bearer wrong"}).status_code == 401
        with pytest.raises(openai.AuthenticationError):
            client(server, api_key="wrong").completions.create(model=server.name, prompt="Hi", max_tokens=2)
        out = client(server, api_key="sekret").completions.create(model=server.name, prompt="Hi", max_tokens=2)
        assert out.usage.completion_tokens <= 2
        assert requests.get(server.url + "/health").status_code == 200  # health needs no key
        # A refused request's body is never read, so its connection must close: kept alive, the
        # body was parsed as the next request and a thread (and the shutdown) waited 30 s.
        wrong = client(server, api_key="wrong")
        with pytest.raises(openai.AuthenticationError):
            wrong.completions.create(model=server.name, prompt="Hi", max_tokens=2)
        assert server.post("/v1/completions", body).headers.get("Connection") == "close"
    finally:
        assert server.stop(timeout=10) == 0


def test_request_id_passes_through(story_server):
    """A router's X-Request-Id comes back on every answer (plain, streamed, refused), so its log
    lines match the replica's; without one the server makes a fresh id per request."""
    body = {"model": story_server.name, "prompt": "Once", "max_tokens": 2}
    assert story_server.post("/v1/completions", body, headers={"X-Request-Id": "req-42"}).headers["X-Request-Id"] == "req-42"
    with requests.post(story_server.url + "/v1/completions", json={**body, "stream": True},
                       headers={"X-Request-Id": "stream-7"}, stream=True, timeout=60) as r:
        assert r.headers["X-Request-Id"] == "stream-7"
    r = story_server.post("/v1/completions", {**body, "model": "other"}, headers={"X-Request-Id": "bad-model"})
    assert r.status_code == 404 and r.headers["X-Request-Id"] == "bad-model"
    fresh = {story_server.post("/v1/completions", body).headers["X-Request-Id"] for _ in range(3)}
    assert len(fresh) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in fresh), fresh
    for bad in ["x" * 129, "has space"]:
        r = story_server.post("/v1/completions", body, headers={"X-Request-Id": bad})
        assert r.status_code == 400 and "X-Request-Id" in r.json()["error"]["message"], r.text


def test_sigterm_drains_in_flight_stream():
    server = Server(STORIES, "--drain-seconds", "2")
    body = {"prompt": "Once", "max_tokens": 300, "ignore_eos": True, "stream": True}
    result = {}
    started = threading.Event()

    def run():
        chunks = stream_sse(server, "/v1/completions", body, started)
        result["finish"] = chunks[-1]["choices"][0]["finish_reason"]

    t = threading.Thread(target=run)
    t.start()
    # SIGTERM once the stream is under way (a fixed sleep raced the request on a loaded host).
    assert started.wait(timeout=20)
    assert server.stop(timeout=20) == 0
    t.join(timeout=20)
    assert result.get("finish") in ("length", "abort"), result
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/health", timeout=2)


# ---------------------------------------------------------------------------------------------
# Malformed and hostile requests: each gets its status and an OpenAI error body, and the
# server keeps serving.

J = "application/json"
HOSTILE = [
    # (name, path, body (bytes or json-able), content type, expected status)
    ("bad json", "/v1/completions", b"{", J, 400),
    ("empty body", "/v1/completions", b"", J, 400),
    ("not an object", "/v1/completions", b"[1, 2]", J, 400),
    ("NaN literal", "/v1/completions", b'{"prompt": "a", "temperature": NaN}', J, 400),
    ("trailing garbage", "/v1/completions", b'{"prompt": "a"} x', J, 400),
    ("invalid utf-8", "/v1/completions", b'{"prompt": "\xff\xfe"}', J, 400),
    ("lone surrogate", "/v1/completions", b'{"prompt": "\\ud800"}', J, 400),
    ("deep nesting", "/v1/completions", b"[" * 100000 + b"]" * 100000, J, 400),
    ("10 MB body", "/v1/completions", b'{"prompt": "' + b"a" * (10 << 20) + b'"}', J, 413),
    ("wrong content type", "/v1/completions", b'{"prompt": "a"}', "text/plain", 415),
    ("missing prompt", "/v1/completions", {"max_tokens": 2}, J, 400),
    ("empty prompt list", "/v1/completions", {"prompt": []}, J, 400),
    ("prompt object", "/v1/completions", {"prompt": {"a": 1}}, J, 400),
    ("token id outside vocab", "/v1/completions", {"prompt": [999999]}, J, 400),
    ("negative token id", "/v1/completions", {"prompt": [1, -5]}, J, 400),
    ("prompt longer than context", "/v1/completions", {"prompt": [5] * 600}, J, 400),
    ("negative max_tokens", "/v1/completions", {"prompt": "a", "max_tokens": -1}, J, 400),
    ("zero max_tokens", "/v1/completions", {"prompt": "a", "max_tokens": 0}, J, 400),
    ("string max_tokens", "/v1/completions", {"prompt": "a", "max_tokens": "10"}, J, 400),
    ("huge max_tokens", "/v1/completions", b'{"prompt": "a", "max_tokens": 99999999999999999999999}', J, 400),
    ("float overflow", "/v1/completions", b'{"prompt": "a", "max_tokens": 1e999}', J, 400),
    ("max_tokens past context", "/v1/completions", {"prompt": "a", "max_tokens": 100000}, J, 400),
    ("fractional max_tokens", "/v1/completions", {"prompt": "a", "max_tokens": 2.5}, J, 400),
    ("negative temperature", "/v1/completions", {"prompt": "a", "temperature": -1}, J, 400),
    ("string temperature", "/v1/completions", {"prompt": "a", "temperature": "hot"}, J, 400),
    ("top_p zero", "/v1/completions", {"prompt": "a", "top_p": 0}, J, 400),
    ("top_p above one", "/v1/completions", {"prompt": "a", "top_p": 1.5}, J, 400),
    ("fractional top_k", "/v1/completions", {"prompt": "a", "top_k": 1.5}, J, 400),
    ("min_p above one", "/v1/completions", {"prompt": "a", "min_p": 2}, J, 400),
    ("presence_penalty out of range", "/v1/completions", {"prompt": "a", "presence_penalty": 5}, J, 400),
    ("repetition_penalty zero", "/v1/completions", {"prompt": "a", "repetition_penalty": 0}, J, 400),
    ("n zero", "/v1/completions", {"prompt": "a", "n": 0}, J, 400),
    ("n huge", "/v1/completions", {"prompt": "a", "n": 100000}, J, 400),
    ("stop not a string", "/v1/completions", {"prompt": "a", "stop": 5}, J, 400),
    ("empty stop string", "/v1/completions", {"prompt": "a", "stop": [""]}, J, 400),
    ("negative stop token", "/v1/completions", {"prompt": "a", "stop_token_ids": [-1]}, J, 400),
    ("logprobs too many", "/v1/completions", {"prompt": "a", "logprobs": 100}, J, 400),
    ("string stream", "/v1/completions", {"prompt": "a", "stream": "yes"}, J, 400),
    ("string seed", "/v1/completions", {"prompt": "a", "seed": "abc"}, J, 400),
    ("string ignore_eos", "/v1/completions", {"prompt": "a", "ignore_eos": "true"}, J, 400),
    ("bad stream_options", "/v1/completions", {"prompt": "a", "stream_options": 3}, J, 400),
    ("unknown model", "/v1/completions", {"prompt": "a", "model": "gpt-4"}, J, 404),
    ("model not a string", "/v1/completions", {"prompt": "a", "model": 123}, J, 400),
    ("unknown path", "/v1/nothing", {"prompt": "a"}, J, 404),
    ("chat without template", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, J, 400),
    ("chat missing messages", "/v1/chat/completions", {"max_tokens": 2}, J, 400),
    ("detokenize bad ids", "/detokenize", {"tokens": [1, "x"]}, J, 400),
    ("detokenize outside vocab", "/detokenize", {"tokens": [123456789]}, J, 400),
    ("tokenize nothing", "/tokenize", {}, J, 400),
]

CHAT_HOSTILE = [
    ("messages not a list", {"messages": "hi"}, 400),
    ("empty messages", {"messages": []}, 400),
    ("message without role", {"messages": [{"content": "hi"}]}, 400),
    ("image content part", {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, 400),
    ("top_logprobs without logprobs", {"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 2}, 400),
    ("logprobs not a bool", {"messages": [{"role": "user", "content": "hi"}], "logprobs": 3}, 400),
    ("kwargs not an object", {"messages": [{"role": "user", "content": "hi"}], "chat_template_kwargs": [1]}, 400),
    ("tools not a list", {"messages": [{"role": "user", "content": "hi"}], "tools": "x"}, 400),
    ("max_completion_tokens negative", {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": -3}, 400),
]


def send(server, path, body, ctype):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(server.url + path, data=data, headers={"Content-Type": ctype}, timeout=60)


@pytest.mark.parametrize("name,path,body,ctype,status", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_request(story_server, name, path, body, ctype, status):
    r = send(story_server, path, body, ctype)
    assert r.status_code == status, (name, r.status_code, r.text[:300])
    err = r.json()["error"]
    assert err["code"] == status and err["message"] and "type" in err and "param" in err
    assert requests.get(story_server.url + "/health", timeout=5).status_code == 200


@pytest.mark.parametrize("name,body,status", CHAT_HOSTILE, ids=[h[0] for h in CHAT_HOSTILE])
def test_hostile_chat_request(chat_server, name, body, status):
    r = send(chat_server, "/v1/chat/completions", body, J)
    assert r.status_code == status, (name, r.status_code, r.text[:300])
    assert r.json()["error"]["code"] == status
    assert requests.get(chat_server.url + "/health", timeout=5).status_code == 200


def test_errors_name_the_field_and_length(story_server):
    r = send(story_server, "/v1/completions", {"prompt": "a", "temperature": -1}, J).json()["error"]
    assert r["param"] == "temperature"
    r = send(story_server, "/v1/completions", {"prompt": [5] * 600}, J).json()["error"]
    assert "600" in r["message"] and "512" in r["message"]


def test_wrong_method_is_rejected(story_server):
    r = requests.get(story_server.url + "/v1/completions")
    assert r.status_code in (404, 405)
    assert requests.get(story_server.url + "/health").status_code == 200


# ---------------------------------------------------------------------------------------------
# `nanovllm chat`: the conversation is kept between turns, /reset forgets it, /exit and EOF quit.

def chat_transcript(model, lines):
    """stdout of `nanovllm chat` fed these lines: "> " before each turn, then the streamed reply."""
    from conftest import nanovllm_bin
    # Sampled with a fixed seed: a random-weight model's greedy reply can be blank whatever the
    # context, while a seeded sample differs whenever the prompt (the conversation) differs.
    out = subprocess.run([nanovllm_bin(), "chat", "--model", str(model), "--temperature", "1", "--seed", "11",
                          "--max-tokens", "6", "--ignore-eos", "--kv-cache-memory", "32MiB", "--threads", "2"],
                         input="".join(l + "\n" for l in lines), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_chat_cli_keeps_the_conversation(chat_model):
    question = chat_transcript(chat_model, ["Tell me about cats.", "/exit"])  # "> R\n> \n"
    assert question.startswith("> ") and question.endswith("\n> \n") and len(question) > 6
    reset = chat_transcript(chat_model, ["Hello there!", "/reset", "Tell me about cats.", "/exit"])
    assert reset.endswith("> [conversation cleared]\n" + question)  # /reset forgets the first turn
    first_turn = reset[: reset.index("> [conversation cleared]")]
    kept = chat_transcript(chat_model, ["Hello there!", "Tell me about cats."])  # EOF ends it
    assert kept.startswith(first_turn)
    assert kept[len(first_turn):] != question  # the second answer saw the first turn


# ---------------------------------------------------------------------------------------------
# The HTTP layer against hostile connections and protocol edge cases (raw sockets: the clients
# above would not send these). Slow and idle clients come from other loopback addresses
# (127.0.0.2, ...), so the caps per client address do not refuse the real client.

def host_port(server):
    host, port = server.url.rsplit("//", 1)[1].split(":")
    return host, int(port)


def connect(server, source="127.0.0.1", timeout=10):
    s = socket.create_connection(host_port(server), timeout=timeout, source_address=(source, 0))
    return s


def read_until_closed(s, limit=10.0):
    """Everything the server sends until it closes the connection (or `limit` seconds pass)."""
    data, deadline = b"", time.time() + limit
    s.settimeout(0.2)
    while time.time() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def closed_by_server(s, limit=5.0):
    """True once the server has closed the connection (EOF or reset) within `limit` seconds."""
    deadline = time.time() + limit
    s.settimeout(0.2)
    while time.time() < deadline:
        try:
            if not s.recv(65536):
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def first_response_complete(data):
    """Whether data holds a whole final response (1xx heads skipped; Content-Length bodies)."""
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            return False
        if not head.startswith(b"HTTP/1.1 1"):
            length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
            return len(rest) >= (length[0] if length else 0)
        data = rest


def read_response(s, limit=5.0):
    """Bytes up to the end of the first final response (the connection may stay open)."""
    data, deadline = b"", time.time() + limit
    s.settimeout(0.2)
    while time.time() < deadline and not first_response_complete(data):
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


def statuses(data):
    """The final status codes in a byte stream of responses (interim 1xx skipped)."""
    return [int(code) for code in re.findall(rb"HTTP/1\.1 ([2-5]\d\d) ", data)]


def raw_post(path, body, extra=b"", close=True):
    return (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
            b"Content-Length: " + str(len(body)).encode() + b"\r\n" + (b"Connection: close\r\n" if close else b"") +
            b"\r\n" + body)


def wait_idle_engine(server, timeout=30):
    deadline = time.time() + timeout
    while True:
        m = server.metrics()
        if m["nanovllm:kv_blocks_used"] == 0 and m["nanovllm:num_requests_running"] == 0:
            return m
        assert time.time() < deadline, m
        time.sleep(0.05)


def test_busy_port_is_an_error(story_server):
    from conftest import nanovllm_bin
    _, port = host_port(story_server)
    out = subprocess.run([nanovllm_bin(), "serve", "--model", str(STORIES), "--port", str(port), "--threads", "1",
                          "--kv-cache-memory", "32MiB"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "listening" not in out.stdout, out.stdout
    assert "address already in use" in out.stderr, out.stderr


def test_disconnected_plain_request_is_aborted(story_server):
    """A non-streaming request whose client leaves stops generating (its blocks come back)."""
    wait_idle_engine(story_server)
    before = story_server.metrics()
    body = json.dumps({"prompt": "Once upon a time", "max_tokens": 480, "ignore_eos": True, "n": 2}).encode()
    s = connect(story_server)
    s.sendall(raw_post("/v1/completions", body, close=False))
    deadline = time.time() + 20
    while story_server.metrics()["nanovllm:generation_tokens_total"] == before["nanovllm:generation_tokens_total"]:
        assert time.time() < deadline
        time.sleep(0.02)
    s.close()  # as the openai client does on its timeout
    m = wait_idle_engine(story_server, timeout=10)
    assert m["nanovllm:request_success_total.abort"] == before["nanovllm:request_success_total.abort"] + 2
    assert m["nanovllm:generation_tokens_total"] < before["nanovllm:generation_tokens_total"] + 2 * 480
    assert m["nanovllm:kv_blocks_free"] == m["nanovllm:kv_blocks_total"]


def test_half_closed_client_gets_its_answer(story_server):
    """shutdown(SHUT_WR) after the request means "done sending", not "gone": answer it."""
    for path, body in [("/tokenize", {"prompt": "Hello"}), ("/v1/completions", {"prompt": "Once", "max_tokens": 20})]:
        for _ in range(5):
            s = connect(story_server)
            s.sendall(raw_post(path, json.dumps(body).encode(), close=False))
            s.shutdown(socket.SHUT_WR)
            data = read_until_closed(s)
            s.close()
            assert statuses(data) == [200], data[:300]
            assert json.loads(data.split(b"\r\n\r\n")[-1])


def test_pipelined_requests_are_all_answered(story_server):
    s = connect(story_server)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" +
              raw_post("/tokenize", b'{"prompt": "Hi"}', close=False) +
              b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n" +
              raw_post("/detokenize", b'{"tokens": [1]}', close=True))
    data = read_until_closed(s)
    s.close()
    assert statuses(data) == [200, 200, 200, 200], data[:500]
    assert b'"count"' in data and b'"object":"list"' in data and b'"prompt"' in data


@pytest.mark.parametrize("name,request_bytes,status", [
    ("conflicting Content-Length", b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}", 400),
    ("negative Content-Length", b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}", 400),
    ("Content-Length 2^64", b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551616\r\n\r\n{}", 400),
    ("Content-Length 2^64-1", b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551615\r\n\r\n{}", 413),
    ("chunked and Content-Length", b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 400),
    ("unknown Transfer-Encoding", b"POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n{}", 501),
    ("PUT without body", b"PUT /v1/completions HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    ("PATCH without body", b"PATCH /tokenize HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    ("POST without length", b"POST /tokenize HTTP/1.1\r\nHost: x\r\n\r\n", 411),
    ("garbage request line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    ("huge header", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * (100 << 10) + b"\r\n\r\n", 431),
    ("unknown Content-Encoding", b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\n{}", 415),
])
def test_protocol_errors_are_answered_at_once(story_server, name, request_bytes, status):
    s = connect(story_server)
    t = time.time()
    s.sendall(request_bytes)
    data = read_response(s)
    s.close()
    assert time.time() - t < 3, name
    assert statuses(data)[:1] == [status], (name, data[:300])
    assert requests.get(story_server.url + "/health", timeout=5).status_code == 200


def test_body_limits_apply_after_decoding(story_server):
    # Chunked: 20 MB in 1 MB chunks gets 413 as a plain 20 MB body does.
    s = connect(story_server)
    s.sendall(b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n" % (1 << 20) + b" " * (1 << 20) + b"\r\n"
    try:
        for _ in range(20):
            s.sendall(chunk)
        s.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused before the end: fine, the answer is read below
    assert statuses(read_until_closed(s)) == [413]
    s.close()
    # gzip: 200 MB of spaces compress to ~200 KB; the decoded size is what counts.
    bomb = gzip.compress(b'{"prompt": "' + b" " * (200 << 20) + b'"}', compresslevel=9)
    assert len(bomb) < 300_000
    r = requests.post(story_server.url + "/tokenize", data=bomb, timeout=60,
                      headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 413 and "decoded" in r.json()["error"]["message"]
    # A small gzip (and chunked) body is decoded and served.
    small = requests.post(story_server.url + "/tokenize", data=gzip.compress(b'{"prompt": "Hello"}'), timeout=60,
                          headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert small.status_code == 200 and small.json()["count"] > 0
    chunked = requests.post(story_server.url + "/tokenize", data=iter([b'{"prompt": ', b'"Hello"}']), timeout=60,
                            headers={"Content-Type": "application/json"})
    assert chunked.status_code == 200 and chunked.json()["count"] == small.json()["count"]


def test_deep_and_wide_json_bodies(story_server):
    deep = b"[" * 200000 + b"]" * 200000  # 400 KB; crashed the server (SIGSEGV)
    for path in ["/tokenize", "/detokenize", "/v1/completions"]:
        r = send(story_server, path, b'{"prompt": ' + deep + b"}", J)
        assert r.status_code == 400 and "nested deeper" in r.json()["error"]["message"], r.text[:300]
    wide = b"{" + b",".join(b'"k%d": 0' % i for i in range(160000)) + b', "prompt": "Hello"}'  # 1.8 MB
    t = time.time()
    r = send(story_server, "/tokenize", wide, J)
    assert r.status_code == 200 and time.time() - t < 10, (r.status_code, time.time() - t)
    assert requests.get(story_server.url + "/health", timeout=5).status_code == 200


@pytest.fixture(scope="module")
def guarded_server():
    """Short deadlines and small caps, so that the tests below see them act."""
    server = Server(STORIES, "--header-timeout", "2", "--keep-alive-timeout", "1",
                    "--max-connections-per-client", "64", "--max-connections", "400")
    yield server
    assert server.stop() == 0


def health_latency(server):
    t = time.time()
    r = requests.get(server.url + "/health", timeout=10, headers={"Connection": "close"})
    assert r.status_code == 200
    return time.time() - t


def test_slowloris_connections_do_not_block_service(guarded_server):
    slow = [connect(guarded_server, source="127.0.0.2") for _ in range(128)]
    stop = threading.Event()

    def drip():  # one header byte every 2 s per connection
        while not stop.wait(2):
            for s in slow:
                try:
                    s.send(b"X")
                except OSError:
                    pass

    t = threading.Thread(target=drip)
    t.start()
    try:
        time.sleep(0.5)
        assert max(health_latency(guarded_server) for _ in range(5)) < 1.0
        assert complete(guarded_server, "Once", max_tokens=4)["usage"]["completion_tokens"] == 4
        # 64 of them were refused (429, per-address cap); the rest close at the 2 s head deadline.
        assert all(closed_by_server(s, limit=4) for s in slow)
    finally:
        stop.set()
        t.join()
        for s in slow:
            s.close()


def test_idle_keep_alive_connections_are_reaped(guarded_server):
    idle = []
    for i in range(200):
        s = connect(guarded_server, source=f"127.0.1.{i % 200 + 1}")
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        idle.append(s)
    assert max(health_latency(guarded_server) for _ in range(5)) < 1.0
    time.sleep(2)  # the keep-alive timeout is 1 s
    for s in idle:
        assert closed_by_server(s, limit=2)
        s.close()


def test_connection_caps(guarded_server):
    mine = [connect(guarded_server, source="127.0.0.3") for _ in range(64)]
    try:
        extra = connect(guarded_server, source="127.0.0.3")
        assert statuses(read_response(extra)) == [429]
        extra.close()
        assert health_latency(guarded_server) < 1.0  # other addresses are still served
    finally:
        for s in mine:
            s.close()


def test_sigterm_drain_is_bounded_and_health_says_503():
    server = Server(STORIES, "--drain-seconds", "3", "--header-timeout", "30", "--keep-alive-timeout", "30")
    slow = [connect(server, source="127.0.0.2") for _ in range(32)]
    for s in slow:
        s.send(b"GET /hea")
    idle = []
    for _ in range(32):
        s = connect(server, source="127.0.0.4")
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(4096)
        idle.append(s)
    started = threading.Event()
    result = {}

    def run():
        chunks = stream_sse(server, "/v1/completions", {"prompt": "Once", "max_tokens": 480, "ignore_eos": True, "n": 16},
                            started)
        result["finish"] = chunks[-1]["choices"][0]["finish_reason"]

    t = threading.Thread(target=run)
    t.start()
    assert started.wait(timeout=20)
    t0 = time.time()
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    r = requests.get(server.url + "/health", timeout=5)
    assert r.status_code == 503
    assert requests.post(server.url + "/tokenize", json={"prompt": "a"}, timeout=5).status_code == 503
    assert server.proc.wait(timeout=15) == 0
    assert time.time() - t0 < 10
    t.join(timeout=10)
    assert result.get("finish") in ("length", "abort"), result
    for s in slow + idle:
        s.close()


def test_second_sigterm_exits_at_once():
    server = Server(STORIES, "--drain-seconds", "60")
    s = connect(server)
    s.sendall(raw_post("/v1/completions", json.dumps({"prompt": "Once", "max_tokens": 480, "ignore_eos": True,
                                                       "n": 32}).encode()))
    time.sleep(0.5)
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert server.proc.poll() is None  # draining: the request may take its 60 s
    t = time.time()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=5) != 0
    assert time.time() - t < 2
    s.close()
