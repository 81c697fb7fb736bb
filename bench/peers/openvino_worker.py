"""OpenVINO GenAI (PyPI openvino-genai) as a bench/peers worker: its ContinuousBatchingPipeline
(paged attention, continuous batching, configured by SchedulerConfig) on the model that
optimum-intel exported, stepped by hand so token arrival times are recorded as `nanovllm bench`
records them.

Usage: openvino_worker.py OV_MODEL_DIR THREADS KV_CACHE_GB MAX_NUM_BATCHED_TOKENS
The export is fp16; the CPU plugin runs it in bf16 (INFERENCE_PRECISION_HINT) with a bf16 KV
cache (its default is u8), as the performance issue measured it.
"""
import sys
import time

import numpy as np
import openvino as ov
import openvino_genai as ov_genai
from timeline import Timeline, serve


def main(model, threads, kv_gb, max_batched):
    sc = ov_genai.SchedulerConfig()
    sc.cache_size = int(kv_gb)  # GB
    sc.max_num_batched_tokens = int(max_batched)
    sc.max_num_seqs = 256
    sc.dynamic_split_fuse = True  # chunked prefill mixed with decodes, as vLLM and ours
    sc.enable_prefix_caching = False
    props = {"INFERENCE_NUM_THREADS": int(threads), "INFERENCE_PRECISION_HINT": "bf16",
             "KV_CACHE_PRECISION": "bf16"}
    pipe = ov_genai.ContinuousBatchingPipeline(model, sc, "CPU", props)

    def config(n):
        gc = ov_genai.GenerationConfig()
        gc.max_new_tokens = n
        gc.ignore_eos = True
        gc.do_sample = False
        return gc

    def add(i, ids, n):
        return pipe.add_request(i, ov.Tensor(np.array([ids], dtype=np.int64)), config(n))

    def run(requests):
        warm = add(1 << 30, [1], 1)  # pages the weights in before the clock starts
        while pipe.has_non_finished_requests():
            pipe.step()
        while warm.can_read():
            warm.read()
        t = Timeline(requests)
        handles = [add(i, ids, n) for i, (ids, n) in enumerate(requests)]
        while pipe.has_non_finished_requests():
            pipe.step()
            now = time.perf_counter()
            for i, h in enumerate(handles):
                if h.can_read():
                    # read() hands out the tokens generated since the last read
                    for out in h.read().values():
                        t.tokens(i, len(out.generated_ids), now)
        for i, h in enumerate(handles):  # whatever the last step finished
            while h.can_read():
                for out in h.read().values():
                    t.tokens(i, len(out.generated_ids), time.perf_counter())
        return t.report(engine="openvino")

    serve(run)


if __name__ == "__main__":
    main(*sys.argv[1:5])
