"""Ctrl-C during generate aborts that call's requests and leaves the engine usable; threads
calling generate on one LLM at once all get their own, correct results; the examples run."""
import itertools
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from nanovllm import LLM, SamplingParams

from conftest import ENGINE, ROOT, STORIES

LONG = SamplingParams(temperature=0, max_tokens=400, ignore_eos=True)
PROMPTS = [f"Story number {i}:" for i in range(16)]


def interrupter(llm):
    """A thread that sends SIGINT to this process as soon as the engine holds requests (the
    main thread is then stepping the engine without the GIL). Start it inside pytest.raises:
    the signal may land anywhere after that."""
    def fire():
        deadline = time.time() + 60
        while not llm._engine.has_unfinished():
            assert time.time() < deadline
            time.sleep(0.001)
        os.kill(os.getpid(), signal.SIGINT)
    return threading.Thread(target=fire, daemon=True)


def test_keyboard_interrupt_aborts_and_the_engine_stays_usable():
    llm = LLM(str(STORIES), **ENGINE)
    expected = llm.generate(PROMPTS[:2], SamplingParams(temperature=0, max_tokens=20), use_tqdm=False)
    t = interrupter(llm)
    start = time.time()
    with pytest.raises(KeyboardInterrupt):
        t.start()
        llm.generate(PROMPTS, LONG, use_tqdm=False)
    t.join()
    print(f"interrupted after {time.time() - start:.2f} s")
    assert llm._engine.num_open_requests() == 0
    assert not llm._engine.has_unfinished()  # every request of the call was aborted
    again = llm.generate(PROMPTS[:2], SamplingParams(temperature=0, max_tokens=20), use_tqdm=False)
    assert [o["token_ids"] for o in again] == [o["token_ids"] for o in expected]


def test_keyboard_interrupt_in_a_stream():
    llm = LLM(str(STORIES), **ENGINE)
    t = interrupter(llm)
    with pytest.raises(KeyboardInterrupt):
        # The with block aborts the request wherever the signal lands (in the engine's step, or
        # in Python code between two deltas).
        with llm.stream(PROMPTS[0], SamplingParams(temperature=0, max_tokens=400, ignore_eos=True)) as stream:
            t.start()
            for _ in stream:
                pass
    t.join()
    assert llm._engine.num_open_requests() == 0 and not llm._engine.has_unfinished()
    assert llm.generate(PROMPTS[0], SamplingParams(max_tokens=3), use_tqdm=False)[0]["token_ids"]


def test_threads_share_one_llm():
    llm = LLM(str(STORIES), **ENGINE)
    sp = SamplingParams(temperature=0, max_tokens=48)
    groups = [PROMPTS[i::4] for i in range(4)]
    expected = [llm.generate(g, sp, use_tqdm=False) for g in groups]
    results, errors = [None] * 4, []

    def work(i):
        try:
            for _ in range(3):
                results[i] = llm.generate(groups[i], sp, use_tqdm=False)
                streamed = "".join(d["text"] for d in llm.stream(groups[i][0], sp))
                assert streamed == results[i][0]["text"]
        except BaseException as e:  # noqa: B902 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    for got, want in zip(results, expected):
        assert [o["token_ids"] for o in got] == [o["token_ids"] for o in want]
    assert llm._engine.num_open_requests() == 0


def run_example(name, *args):
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_example_py_runs(chat_model):
    out = run_example("example.py", "--model", str(chat_model), "--max-tokens", "16")
    assert out.count("Completion: ") == 2
    assert "Prompt: '<|im_start|>user\\nintroduce yourself<|im_end|>\\n<|im_start|>assistant\\n'" in out


def test_bench_py_runs():
    out = run_example("bench.py", "--model", str(STORIES), "--num-seqs", "8", "--max-input-len", "64",
                      "--max-output-len", "32", "--threads", "2")
    assert out.startswith("Total: ") and "Throughput: " in out


def test_example_without_a_model_says_what_to_do(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "example.py")], capture_output=True,
                          text=True, env={**os.environ, "NANOVLLM_CACHE": str(tmp_path)})
    assert proc.returncode != 0 and "fetch-demo-model.sh" in proc.stderr and "--model" in proc.stderr


def test_a_stream_closed_by_another_thread_ends_its_waiting_reader():
    # One token per step: the 500-token prompt takes 500 steps of prefill with no delta, so a
    # reader that entered next() waits there when the stream is closed (asyncio's cancel does
    # this). How long 500 steps take depends on the machine (tens of ms on a quiet fast one,
    # seconds on a loaded one), so the close comes after growing delays until one lands while
    # the reader waits; every attempt must end its reader and leave no request open.
    llm = LLM(str(STORIES), max_num_batched_tokens=1, **ENGINE)
    for delay in (0.002, 0.01, 0.05, 0.2):
        stream = llm.stream([1] + [80] * 499, SamplingParams(max_tokens=4))
        got, entered = [], threading.Event()

        def read():
            entered.set()
            got.extend(itertools.islice(stream, 1))  # empty if closed before next() began

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        entered.wait()
        time.sleep(delay)
        stream.close()
        reader.join(timeout=60)
        assert not reader.is_alive(), "the reader still waits for a request that was aborted"
        assert llm._engine.num_open_requests() == 0 and not llm._engine.has_unfinished()
        # An abort delta comes only from inside next(): close() before it makes next() stop.
        if got and got[0]["finish_reason"] == "abort":
            assert got[0]["finished"] and got[0]["token_ids"] == []
            return
    pytest.fail("no close landed while the reader waited inside next()")


def _spin_after_import(env):
    """GOMP_SPINCOUNT as a fresh interpreter has it after `import nanovllm`."""
    code = "import os, nanovllm; print(os.environ.get('GOMP_SPINCOUNT'))"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_openmp_spins_briefly_unless_the_user_chose_a_policy():
    # libgomp's default spin (~8 ms a wait) collapsed throughput beside a busy process; the
    # package sets a short one before its extension loads libgomp (tools/omp_wait_policy.cpp).
    base = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    assert _spin_after_import(base) == "1000"
    assert _spin_after_import({**base, "GOMP_SPINCOUNT": "77"}) == "77"
    assert _spin_after_import({**base, "OMP_WAIT_POLICY": "active"}) == "None"
