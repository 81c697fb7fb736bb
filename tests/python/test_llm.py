"""nanovllm's Python API against the `nanovllm` command and against itself: same ids as the
CLI, outputs in vLLM's shapes, streaming, asyncio, chat, the tokenizer, and type hints."""
import asyncio
import json
import pathlib
import subprocess

import pytest

import nanovllm
from nanovllm import LLM, AsyncLLM, SamplingParams

from conftest import ENGINE, STORIES, nanovllm_bin

PROMPTS = ["Once upon a time", "The little dog", "Tom and Sue went to"]


def cli_generate(model, *args):
    """`nanovllm generate --json`: one dict per prompt, in order."""
    out = subprocess.run([nanovllm_bin(), "generate", "--model", str(model), "--json", "--quiet",
                          "--kv-cache-memory", "32MiB", "--threads", "2", *args],
                         check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_greedy_ids_and_text_match_the_cli(stories):
    args = ["--temperature", "0", "--max-tokens", "40"]
    for p in PROMPTS:
        args += ["--prompt", p]
    args += ["--prompt-ids", "1,80,147,201"]
    expected = cli_generate(STORIES, *args)
    got = stories.generate(PROMPTS + [[1, 80, 147, 201]], SamplingParams(temperature=0, max_tokens=40),
                           use_tqdm=False)
    assert [o["token_ids"] for o in got] == [e["token_ids"] for e in expected]
    assert [o["prompt_token_ids"] for o in got] == [e["prompt_token_ids"] for e in expected]
    assert [o["text"] for o in got] == [e["text"] for e in expected]
    assert [o["finish_reason"] for o in got] == [e["finish_reason"] for e in expected]


def test_seeded_sampling_matches_the_cli(stories):
    expected = cli_generate(STORIES, "--temperature", "0.9", "--top-p", "0.95", "--seed", "1234",
                            "--max-tokens", "32", "--prompt", PROMPTS[0])
    got = stories.generate(PROMPTS[0], SamplingParams(temperature=0.9, top_p=0.95, seed=1234, max_tokens=32),
                           use_tqdm=False)
    assert got[0]["token_ids"] == expected[0]["token_ids"]


def test_nano_vllm_script_runs_unchanged():
    # The script, word for word but for the model path (Qwen3-0.6B is not here).
    llm = LLM(str(STORIES), enforce_eager=True, tensor_parallel_size=1)
    outputs = llm.generate(["Hello, Nano-vLLM."], SamplingParams(temperature=0.6, max_tokens=256))
    assert isinstance(outputs[0]["text"], str) and outputs[0]["token_ids"]


def test_one_params_per_prompt_and_outputs_in_input_order(stories):
    params = [SamplingParams(temperature=0, max_tokens=n) for n in (3, 17, 8)]
    got = stories.generate(PROMPTS, params, use_tqdm=False)
    assert [len(o["token_ids"]) for o in got] == [3, 17, 8]
    alone = [stories.generate([p], sp, use_tqdm=False)[0] for p, sp in zip(PROMPTS, params)]
    assert [o["token_ids"] for o in got] == [o["token_ids"] for o in alone]


def test_prompt_forms_give_the_same_request(stories):
    sp = SamplingParams(temperature=0, max_tokens=8)
    ids = stories.tokenizer.encode(PROMPTS[0])
    forms = [PROMPTS[0], [PROMPTS[0]], ids, [ids], {"prompt": PROMPTS[0]}, [{"prompt_token_ids": ids}]]
    results = [stories.generate(f, sp, use_tqdm=False)[0]["token_ids"] for f in forms]
    assert all(r == results[0] for r in results)


def test_stop_strings_and_logprobs(stories):
    full = stories.generate(PROMPTS[0], SamplingParams(temperature=0, max_tokens=40), use_tqdm=False)[0]
    stop = full["text"][10:16]
    out = stories.generate(PROMPTS[0], SamplingParams(temperature=0, max_tokens=40, stop=stop, logprobs=3),
                           use_tqdm=False)[0]
    assert out["finish_reason"] == "stop" and out["stop_reason"] == stop
    assert out["text"] == full["text"][:full["text"].index(stop)]
    assert len(out["logprobs"]) == len(out["token_ids"])
    for chosen, lp in zip(out["token_ids"], out["logprobs"]):
        assert chosen in lp and len(lp) <= 4
        assert lp[chosen] == pytest.approx(max(lp.values()))  # greedy takes the most likely


def test_llm_seed_makes_runs_repeatable():
    sp = SamplingParams(temperature=1.0, max_tokens=24)
    a = LLM(str(STORIES), seed=7, **ENGINE).generate(PROMPTS, sp, use_tqdm=False)
    b = LLM(str(STORIES), seed=7, **ENGINE).generate(PROMPTS, sp, use_tqdm=False)
    c = LLM(str(STORIES), seed=8, **ENGINE).generate(PROMPTS, sp, use_tqdm=False)
    assert [o["token_ids"] for o in a] == [o["token_ids"] for o in b]
    assert [o["token_ids"] for o in a] != [o["token_ids"] for o in c]
    assert sp.seed is None  # the caller's params are not changed


def test_stream_deltas_add_up_to_generate(stories):
    sp = SamplingParams(temperature=0, max_tokens=30)
    full = stories.generate(PROMPTS[1], sp, use_tqdm=False)[0]
    deltas = list(stories.stream(PROMPTS[1], sp))
    assert "".join(d["text"] for d in deltas) == full["text"]
    assert sum((d["token_ids"] for d in deltas), []) == full["token_ids"]
    assert [d["finished"] for d in deltas] == [False] * (len(deltas) - 1) + [True]
    assert deltas[-1]["finish_reason"] == "length"


def test_closing_a_stream_aborts_its_request(stories):
    s = stories.stream(PROMPTS[0], SamplingParams(temperature=0, max_tokens=200, ignore_eos=True))
    next(s)
    s.close()
    assert list(s) == []
    assert stories._engine.num_open_requests() == 0 and not stories._engine.has_unfinished()


def test_async_llm_streams_concurrent_requests():
    engine = AsyncLLM(str(STORIES), **ENGINE)
    sp = SamplingParams(temperature=0, max_tokens=25)
    expected = engine.llm.generate(PROMPTS, sp, use_tqdm=False)

    async def one(prompt):
        return "".join([d["text"] async for d in engine.generate(prompt, sp)])

    async def cancelled():
        started = asyncio.Event()

        async def long():
            async for _ in engine.generate("A long story", SamplingParams(max_tokens=450, ignore_eos=True)):
                started.set()

        task = asyncio.ensure_future(long())
        await started.wait()
        task.cancel()  # its worker thread may be waiting for the next delta: it must end too
        with pytest.raises(asyncio.CancelledError):
            await task

    async def main():
        texts = await asyncio.gather(*(one(p) for p in PROMPTS))
        await cancelled()
        return texts

    assert asyncio.run(main()) == [o["text"] for o in expected]
    assert engine.llm._engine.num_open_requests() == 0


def test_chat_applies_the_models_template(chat_model):
    llm = LLM(str(chat_model), max_model_len=1024, **ENGINE)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]
    text = llm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                             enable_thinking=False)
    (pathlib.Path(chat_model) / "messages.json").write_text(json.dumps(messages))
    cli = subprocess.run([nanovllm_bin(), "chat-template", "--model", str(chat_model), "--messages",
                          str(pathlib.Path(chat_model) / "messages.json"), "--template-kwargs",
                          '{"enable_thinking": false}'], check=True, capture_output=True, text=True).stdout
    assert text == cli
    assert text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    sp = SamplingParams(temperature=0, max_tokens=6)
    got = llm.chat(messages, sp, use_tqdm=False, chat_template_kwargs={"enable_thinking": False})
    ids = llm.tokenizer.encode(text, add_special_tokens=False)
    assert got[0]["prompt_token_ids"] == ids
    assert got[0]["token_ids"] == llm.generate([ids], sp, use_tqdm=False)[0]["token_ids"]
    assert len(llm.chat([messages, messages[1:]], sp, use_tqdm=False)) == 2


def test_tokenizer_round_trip(stories):
    tok = stories.tokenizer
    ids = tok.encode("Once upon a time, there was a cat.")
    assert ids[0] == tok.bos_token_id
    assert tok.decode(ids) == "Once upon a time, there was a cat."
    assert tok.encode("Once upon a time, there was a cat.", add_special_tokens=False) == ids[1:]
    assert tok.decode(ids, skip_special_tokens=False).startswith("<|start_story|> Once")
    assert stories.get_tokenizer() is tok


def test_type_hints_are_installed():
    pkg = pathlib.Path(nanovllm.__file__).parent
    stub = (pkg / "_core.pyi").read_text()
    assert (pkg / "py.typed").exists()
    for name in ("class SamplingParams", "class StructuredOutputs", "class Config", "class Engine", "def temperature",
                 "def structured_outputs", "def generate"):
        assert name in stub, name
