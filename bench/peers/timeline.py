"""When each token of a workload arrived, and the numbers `nanovllm bench --json` reports from it.

The peers' offline drivers (vllm_worker.py, openvino_worker.py) step their engines themselves and
call `Timeline.tokens` after each step, exactly as tools/cmd_bench.cpp's run() does for ours, so
the prefill / decode split is the same definition for every engine:
  prefill tok/s: prompt tokens over the time until every request had its first token;
  decode tok/s:  tokens generated after that, over the time since then (llama-batched-bench's S_TG);
  output tok/s:  all generated tokens over the whole run.
Standard library only: each worker runs in its engine's own virtual environment.
"""
import json
import time


def percentile(values, q):
    """The same nearest-rank rule as cmd_bench.cpp's percentile()."""
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(q * (len(v) - 1) + 0.5))]


def read_workload(path):
    """[(prompt_token_ids, max_tokens)] from the file bench/peers/peers.py wrote."""
    with open(path) as f:
        return [(r["prompt_token_ids"], r["max_tokens"]) for r in json.load(f)["requests"]]


class Timeline:
    def __init__(self, requests):
        self.start = time.perf_counter()
        self.last = {i: self.start for i in range(len(requests))}
        self.generated = {i: 0 for i in range(len(requests))}
        self.prompt_tokens = sum(len(p) for p, _ in requests)
        self.started = 0
        self.prefill_done = None
        self.output_tokens = self.decode_phase_tokens = 0
        self.ttft_ms, self.itl_ms = [], []

    def tokens(self, rid, n, now):
        """Request `rid` got `n` new tokens at `now` (perf_counter)."""
        if n <= 0:
            return
        ms = (now - self.last[rid]) * 1e3
        first = self.generated[rid] == 0
        (self.ttft_ms if first else self.itl_ms).append(ms)
        if first:
            self.started += 1
            if self.started == len(self.last):
                self.prefill_done = now
        elif self.prefill_done is not None:
            self.decode_phase_tokens += n
        self.generated[rid] += n
        self.last[rid] = now
        self.output_tokens += n

    def report(self, **extra):
        end = time.perf_counter()
        total = end - self.start
        prefill = (self.prefill_done or end) - self.start
        decode = end - (self.prefill_done or end)
        out = {
            "num_seqs": len(self.last),
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "elapsed_s": total,
            "output_tok_s": self.output_tokens / total,
            "prefill_tok_s": self.prompt_tokens / prefill if prefill > 0 else 0.0,
            "decode_tok_s": self.decode_phase_tokens / decode if decode > 0 else 0.0,
            "ttft_ms_p50": percentile(self.ttft_ms, 0.5),
            "ttft_ms_p99": percentile(self.ttft_ms, 0.99),
            "itl_ms_p50": percentile(self.itl_ms, 0.5),
            "itl_ms_p99": percentile(self.itl_ms, 0.99),
        }
        out.update(extra)
        return out


def serve(run_workload):
    """The worker loop: one workload file path per stdin line, one 'RESULT {json}' line back.
    The engine stays loaded between workloads (vLLM's start-up takes a minute or more here)."""
    import sys
    import traceback

    print("READY", flush=True)
    for line in sys.stdin:
        path = line.strip()
        if not path:
            continue
        try:
            result = run_workload(read_workload(path))
        except Exception as e:  # the orchestrator records the failure and goes on
            traceback.print_exc()
            result = {"error": f"{type(e).__name__}: {e}"}
        print("RESULT " + json.dumps(result), flush=True)
