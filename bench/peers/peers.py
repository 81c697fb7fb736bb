#!/usr/bin/env python3
"""The peer benchmark: the same workloads, on the same checkpoint, for nano-vllm-cpp, vLLM's CPU
backend, OpenVINO GenAI and llama.cpp, the engines alternating, written as one table.

  peers.py run --out DIR [--engines ...] [--rounds N] [--smoke] ...   (bench/peers/run.sh calls it)
  peers.py table DIR                                                  (re-renders DIR/table.md, .csv)

Every workload is a file of requests (token ids + max_tokens) written once per round and handed
to each engine: ours through `nanovllm bench --workload`, vLLM and OpenVINO through a worker that
steps the engine (vllm_worker.py, openvino_worker.py; loaded once, kept between workloads), and
llama.cpp through llama-batched-bench / llama-bench, which take only shapes (random prompts of
the same lengths). The serving run starts each OpenAI-compatible server in turn and drives it with
N concurrent streaming clients (standard library only, see `serving_client`).
Standard library only: this script runs under the system python3.
"""
import argparse
import csv
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import http.client

from timeline import percentile

HERE = os.path.dirname(os.path.abspath(__file__))
ENGINES = ["ours", "vllm", "openvino", "llama.cpp"]
PEERS = ENGINES[1:]
SERVERS = ["ours", "vllm", "llama.cpp"]  # OpenVINO GenAI ships no OpenAI server


# ---- workloads -------------------------------------------------------------------------------

def workloads(a):
    """(name, kind, shape) in run order; shape says what llama.cpp's tools need."""
    s = a.smoke
    out = []
    if "batched" in a.workloads:
        n_in, n_out = (16, 8) if s else (128, 128)
        for b in a.batches:
            out.append((f"batch_{b}", "offline", {"batch": b, "input": n_in, "output": n_out}))
    if "prefill" in a.workloads:
        out.append(("prefill_512" if not s else "prefill_64", "offline",
                    {"batch": 1, "input": 64 if s else 512, "output": 1}))
    if "random" in a.workloads:
        lo, hi = (16, 64) if s else (100, 1024)
        out.append(("random", "offline", {"num": 2 if s else a.random_requests, "lo": lo, "hi": hi}))
    if "serving" in a.workloads:
        out.append(("serving", "serving", {"clients": 2 if s else a.clients, "num": 4 if s else a.requests,
                                           "input": 32 if s else 256, "output": 8 if s else 64}))
    return out


def make_requests(shape, seed):
    """Random prompt ids below 10000 (as `nanovllm bench`), from `seed`: the same for every engine."""
    rng = random.Random(seed)
    if "lo" in shape:  # nano-vllm's random workload: input and output lengths uniform in [lo, hi]
        lens = [(rng.randint(shape["lo"], shape["hi"]), rng.randint(shape["lo"], shape["hi"]))
                for _ in range(shape["num"])]
    else:
        lens = [(shape["input"], shape["output"])] * shape.get("num", shape.get("batch", 1))
    return [{"prompt_token_ids": [rng.randrange(10000) for _ in range(n_in)], "max_tokens": n_out}
            for n_in, n_out in lens]


def write_workload(path, requests):
    with open(path, "w") as f:
        json.dump({"requests": requests}, f)


# ---- engines, offline ------------------------------------------------------------------------

def run_json(cmd, log, env=None, timeout=None):
    """Runs cmd, stderr to log; returns the last JSON line of its stdout, or {"error": ...}, with
    the process's peak resident memory (`peak_rss_mb`, from wait4) added."""
    with open(log, "a") as err:
        err.write(f"\n$ {' '.join(cmd)}\n")
        err.flush()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        timer = threading.Timer(timeout, p.kill) if timeout else None
        if timer:
            timer.start()
        out = p.stdout.read()
        _, status, usage = os.wait4(p.pid, 0)
        if timer:
            timer.cancel()
        code = os.waitstatus_to_exitcode(status)
        p.returncode = code  # reaped by wait4: keep Popen from waiting again
    if timer and code == -signal.SIGKILL:
        return {"error": f"timed out after {timeout} s"}
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    if code != 0 or not lines:
        return {"error": f"exit {code}, see {log}"}
    r = json.loads(lines[-1])
    r["peak_rss_mb"] = usage.ru_maxrss / 1024  # KiB on Linux; MiB like `nanovllm bench`'s field
    return r


def group_peak_rss_mb(pgid):
    """Sum of the peak resident memory (VmHWM) of every live process in a process group: the
    servers and workers we start in their own session (vLLM's engine core is a child process).
    An upper bound of the group's peak, since the processes need not peak at once."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getpgid(int(pid)) != pgid:
                continue
            with open(f"/proc/{pid}/status") as f:
                total += next((int(ln.split()[1]) for ln in f if ln.startswith("VmHWM:")), 0)
        except (OSError, ProcessLookupError):
            continue
    return total / 1024


def ours_offline(a, path, shape, log):
    return run_json([a.nanovllm, "bench", "--model", a.model, "--threads", str(a.threads), "--json",
                     "--workload", path], log)


def llama_offline(a, path, shape, log):
    """llama.cpp's own benchmarks for the two fixed shapes; it has no random-length workload."""
    bin_dir = os.path.join(a.llama_cpp, "bin")
    if "lo" in shape:
        return None
    b, n_in, n_out = shape["batch"], shape["input"], shape["output"]
    if n_out == 1:  # prefill: llama-bench pp (it warms up itself), two repetitions
        r = run_json([f"{bin_dir}/llama-bench", "-m", a.gguf, "-t", str(a.threads), "-p", str(n_in), "-n", "0",
                      "-r", "2", "-o", "jsonl"], log)
        return r if "error" in r else {"prefill_tok_s": float(r["avg_ts"]), "num_seqs": 1, "prompt_tokens": n_in,
                                       "peak_rss_mb": r["peak_rss_mb"]}
    ctx = max(2048, b * (n_in + n_out + 16))
    r = run_json([f"{bin_dir}/llama-batched-bench", "-m", a.gguf, "-t", str(a.threads), "-c", str(ctx),
                  "-npp", str(n_in), "-ntg", str(n_out), "-npl", str(b), "--output-format", "jsonl"], log)
    if "error" in r:
        return r
    return {"prefill_tok_s": r["speed_pp"], "decode_tok_s": r["speed_tg"], "output_tok_s": b * n_out / r["t"],
            "elapsed_s": r["t"], "num_seqs": b, "prompt_tokens": b * n_in, "output_tokens": b * n_out,
            "peak_rss_mb": r["peak_rss_mb"]}


def vllm_env(a):
    venv = os.path.join(a.peers_cache, "vllm")
    env = dict(os.environ)
    env.update({
        "VLLM_CPU_KVCACHE_SPACE": str(a.kv_gb),  # GiB
        "VLLM_CPU_OMP_THREADS_BIND": f"0-{a.threads - 1}",
        # What vLLM's CPU docs ask for: tcmalloc and Intel's OpenMP preloaded.
        "LD_PRELOAD": ":".join(p for p in ["/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
                                           os.path.join(venv, "lib", "libiomp5.so")] if os.path.exists(p)),
        "PATH": os.path.join(venv, "bin") + ":" + env.get("PATH", ""),
    })
    return env


class Worker:
    """A peer's engine loaded once in its own process; workloads go in as file paths on stdin."""

    def __init__(self, name, cmd, env, log, startup_timeout):
        self.name, self.log = name, log
        self.err = open(log, "a")
        self.err.write(f"\n$ {' '.join(cmd)}\n")
        self.err.flush()
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                  text=True, env=env, cwd=HERE, start_new_session=True)
        self.dead = None
        if self._line("READY", startup_timeout) is None:
            self.dead = f"did not start, see {log}"
            self.close()

    def _line(self, prefix, timeout):
        """The next stdout line starting with prefix (engines print their own logs there too)."""
        box = []

        def read():
            for ln in self.p.stdout:
                if ln.startswith(prefix):
                    box.append(ln[len(prefix):].strip())
                    return
                self.err.write(ln)
        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout)
        return box[0] if box else None

    def run(self, path, timeout):
        if self.dead:
            return {"error": self.dead}
        self.p.stdin.write(path + "\n")
        self.p.stdin.flush()
        line = self._line("RESULT ", timeout)
        if line is None:
            self.dead = f"no answer in {timeout} s, see {self.log}"
            self.close()
            return {"error": self.dead}
        r = json.loads(line)
        # Since the worker started: the model stays loaded between workloads.
        r["peak_rss_mb"] = group_peak_rss_mb(self.p.pid)
        return r

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.close()
                self.p.wait(30)
            except (subprocess.TimeoutExpired, BrokenPipeError, OSError):
                stop_group(self.p)


def stop_group(p):
    """Ends a process we started in its own session, and its children (vLLM's engine core)."""
    for sig, wait in ((signal.SIGINT, 30), (signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        if p.poll() is not None:
            return
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(wait)
        except subprocess.TimeoutExpired:
            pass


def start_workers(a, logs):
    workers = {}
    if "vllm" in a.engines:
        py = os.path.join(a.peers_cache, "vllm", "bin", "python")
        workers["vllm"] = Worker("vllm", [py, "vllm_worker.py", a.model, str(a.max_model_len),
                                          str(a.max_num_batched_tokens)] + (["eager"] if a.vllm_eager else []),
                                 vllm_env(a),
                                 os.path.join(logs, "vllm.log"), a.startup_timeout)
    if "openvino" in a.engines:
        py = os.path.join(a.peers_cache, "openvino", "bin", "python")
        workers["openvino"] = Worker("openvino", [py, "openvino_worker.py", a.ov_model, str(a.threads),
                                                  str(a.kv_gb), str(a.max_num_batched_tokens)], dict(os.environ),
                                     os.path.join(logs, "openvino.log"), a.startup_timeout)
    for name, w in workers.items():
        print(f"  {name}: {'ready' if not w.dead else w.dead}", flush=True)
    return workers


# ---- engines, serving ------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_cmd(a, engine, port, shape):
    ctx_one = shape["input"] + shape["output"] + 16
    if engine == "ours":
        return [a.nanovllm, "serve", "--model", a.model, "--port", str(port), "--threads", str(a.threads),
                "--served-model-name", "m", "--max-model-len", str(a.max_model_len),
                "--kv-cache-memory", f"{a.kv_gb}GiB"], dict(os.environ)
    if engine == "vllm":
        # `vllm serve` asks importlib.metadata for a distribution named "vllm" (this one is
        # "vllm-cpu") and exits; the module it would start runs as well.
        return [os.path.join(a.peers_cache, "vllm", "bin", "python"), "-m", "vllm.entrypoints.openai.api_server",
                "--model", a.model, "--port", str(port),
                "--host", "127.0.0.1", "--served-model-name", "m", "--dtype", "bfloat16",
                "--max-model-len", str(a.max_model_len), "--max-num-batched-tokens",
                str(a.max_num_batched_tokens), "--no-enable-prefix-caching", "--seed", "0"] + \
            (["--enforce-eager"] if a.vllm_eager else []), vllm_env(a)
    # llama-server: one slot per client, each with room for its request (-c is shared by slots).
    return [os.path.join(a.llama_cpp, "bin", "llama-server"), "-m", a.gguf, "-t", str(a.threads),
            "-c", str(shape["clients"] * ctx_one), "-np", str(shape["clients"]), "--host", "127.0.0.1",
            "--port", str(port), "-a", "m"], dict(os.environ)


def completion(port, req, timeout=900):
    """One streamed /v1/completions request: (first-chunk time, later chunk times, tokens, error)."""
    body = json.dumps({"model": "m", "prompt": req["prompt_token_ids"], "max_tokens": req["max_tokens"],
                       "temperature": 0, "ignore_eos": True, "stream": True,
                       "stream_options": {"include_usage": True}})
    t0 = time.perf_counter()
    times, tokens = [], None
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            return t0, [], 0, f"HTTP {r.status}: {r.read()[:300]!r}"
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            d = json.loads(line[5:])
            if d.get("choices"):
                times.append(time.perf_counter())  # a chunk per step and request: a token's arrival
            if d.get("usage"):
                tokens = d["usage"].get("completion_tokens", tokens)
        c.close()
    except (OSError, http.client.HTTPException, ValueError) as e:
        return t0, times, 0, f"{type(e).__name__}: {e}"
    return t0, times, tokens if tokens is not None else req["max_tokens"], None


def serving_client(port, requests, clients):
    """`clients` threads, each sending the next waiting request as soon as its last one finished."""
    queue, lock, done = list(requests), threading.Lock(), []

    def client():
        while True:
            with lock:
                if not queue:
                    return
                req = queue.pop(0)
            done.append(completion(port, req))
    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    errors = [e for *_, e in done if e]
    if errors:
        return {"error": f"{len(errors)} of {len(done)} requests failed: {errors[0]}"}
    ttft = [(ts[0] - t0) * 1e3 for t0, ts, _, _ in done if ts]
    itl = [(b - x) * 1e3 for _, ts, _, _ in done for x, b in zip(ts, ts[1:])]
    tokens = sum(n for _, _, n, _ in done)
    q = percentile
    return {"num_seqs": len(done), "clients": clients, "output_tokens": tokens, "elapsed_s": wall,
            "output_tok_s": tokens / wall, "ttft_ms_p50": q(ttft, 0.5), "ttft_ms_p99": q(ttft, 0.99),
            "itl_ms_p50": q(itl, 0.5), "itl_ms_p99": q(itl, 0.99)}


def serve_run(a, engine, requests, shape, log):
    port = free_port()
    cmd, env = server_cmd(a, engine, port, shape)
    with open(log, "a") as err:
        err.write(f"\n$ {' '.join(cmd)}\n")
        err.flush()
        p = subprocess.Popen(cmd, stdout=err, stderr=err, env=env, start_new_session=True)
        try:
            deadline = time.time() + a.startup_timeout
            while True:  # ready when a one-token request is answered (weights loaded, warm)
                if p.poll() is not None:
                    return {"error": f"server exited {p.returncode}, see {log}"}
                if time.time() > deadline:
                    return {"error": f"server not ready in {a.startup_timeout} s, see {log}"}
                _, ts, _, e = completion(port, {"prompt_token_ids": [1, 2, 3], "max_tokens": 2}, timeout=60)
                if not e and ts:
                    break
                time.sleep(2)
            r = serving_client(port, requests, shape["clients"])
            r["peak_rss_mb"] = group_peak_rss_mb(p.pid)
            return r
        finally:
            stop_group(p)


# ---- the machine's limits and what a token costs ---------------------------------------------

def machine_limits(a, log):
    """Read bandwidth and the f32 FMA / BF16 dot-product peaks, by our kernels_bench (all threads,
    bench/limits_bench.cpp), or None without --kernels-bench."""
    if not a.kernels_bench:
        return None
    r = subprocess.run([a.kernels_bench, "--benchmark_filter=StreamRead|FmaPeak|Bf16DotPeak",
                        "--benchmark_format=json"], capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS=str(a.threads)))
    with open(log, "a") as f:
        f.write(r.stderr)
    if r.returncode != 0:
        return {"error": f"kernels_bench exit {r.returncode}, see {log}"}
    out = {}
    for b in json.loads(r.stdout)["benchmarks"]:
        if b["name"].startswith("BM_StreamRead"):
            out["read_gb_s"] = b["GB/s"]
        elif b["name"].startswith("BM_FmaPeak"):
            out["fma_gflop_s"] = b["GFLOP/s"]
        elif b["name"].startswith("BM_Bf16DotPeak") and not b.get("error_occurred"):
            out["bf16_gflop_s"] = b["GFLOP/s"]
    return out


def model_cost(model_dir):
    """What the checkpoint's decoder does per token, from its config.json: matmul weights
    (bf16, 2 bytes each, as every engine here runs them) and KV bytes per token."""
    c = json.load(open(os.path.join(model_dir, "config.json")))
    h, layers = c["hidden_size"], c["num_hidden_layers"]
    heads, kv = c["num_attention_heads"], c.get("num_key_value_heads", c["num_attention_heads"])
    d = c.get("head_dim") or h // heads
    per_layer = h * heads * d + 2 * h * kv * d + heads * d * h + 3 * h * c["intermediate_size"]
    return {"body_params": layers * per_layer, "head_params": c["vocab_size"] * h, "layers": layers,
            "heads": heads, "head_dim": d, "kv_bytes_per_token": 2 * layers * kv * d * 2}


def prefill_flops(cost, n_in):
    """FLOPs of prefilling one n_in-token prompt: the body's matmuls for every token, causal
    attention (QK^T and PV over n_in^2 / 2 pairs), and the logits of its last token only."""
    attn = 4 * cost["layers"] * cost["heads"] * cost["head_dim"] * n_in * n_in / 2
    return 2 * cost["body_params"] * n_in + attn + 2 * cost["head_params"]


def decode_bytes(cost, batch, ctx):
    """Bytes one decode step reads: every weight once (bf16), and each sequence's KV cache."""
    return 2 * (cost["body_params"] + cost["head_params"]) + batch * ctx * cost["kv_bytes_per_token"]


# ---- the run ---------------------------------------------------------------------------------

def machine():
    cpu = subprocess.run("lscpu | sed -n 's/^Model name: *//p'", shell=True, capture_output=True,
                         text=True).stdout.strip()
    flags = open("/proc/cpuinfo").read()
    isa = "AVX-512 BF16" if "avx512_bf16" in flags else "AVX-512" if "avx512f" in flags else \
        "AVX2" if "avx2" in flags else "no AVX2"
    return f"{cpu}, {os.cpu_count()} CPUs, {isa}"


def load():
    return open("/proc/loadavg").read().split()[:3]


def run(a):
    a.out = os.path.abspath(a.out)  # the workers run in this script's folder
    os.makedirs(a.out, exist_ok=True)
    logs = os.path.join(a.out, "logs")
    wdir = os.path.join(a.out, "workloads")
    os.makedirs(logs, exist_ok=True)
    os.makedirs(wdir, exist_ok=True)
    results_path = os.path.join(a.out, "results.jsonl")
    meta = {"cpu": machine(), "threads": a.threads, "rounds": a.rounds, "engines": a.engines,
            "load_before": load(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "kv_gb": a.kv_gb, "max_num_batched_tokens": a.max_num_batched_tokens, "smoke": a.smoke,
            "vllm_eager": a.vllm_eager,
            "commit": subprocess.run(["git", "-C", HERE, "describe", "--always", "--dirty"],
                                     capture_output=True, text=True).stdout.strip()}
    meta["model_cost"] = model_cost(a.model)
    meta["weight_mb"] = sum(os.path.getsize(os.path.join(a.model, f)) for f in os.listdir(a.model)
                            if f.endswith(".safetensors")) / 2**20
    meta["limits_before"] = machine_limits(a, os.path.join(logs, "limits.log"))
    plan = workloads(a)
    meta["shapes"] = {name: shape for name, _, shape in plan}
    # Written now and again at the end: a run cut short still renders (`peers.py table`) with the
    # limits measured before it.
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    offline = [w for w in plan if w[1] == "offline"]
    serving = [w for w in plan if w[1] == "serving"]
    results = open(results_path, "a")

    def record(rnd, work, engine, r):
        if r is None:
            return
        row = {"round": rnd, "work": work, "engine": engine, **r}
        results.write(json.dumps(row) + "\n")
        results.flush()
        shown = {k: round(v, 1) for k, v in r.items() if isinstance(v, float)}
        print(f"  {work:12s} {engine:9s} {r.get('error') or shown}", flush=True)

    def order(rnd, names):
        # Engines alternate: each round starts one engine further, so none is always first.
        names = [e for e in ENGINES if e in names]
        k = rnd % len(names) if names else 0
        return names[k:] + names[:k]

    if offline:
        print("starting the peers' offline engines", flush=True)
        workers = start_workers(a, logs)
        try:
            for rnd in range(a.rounds):
                for i, (name, _, shape) in enumerate(offline):
                    path = os.path.join(wdir, f"{name}-round{rnd}.json")
                    write_workload(path, make_requests(shape, seed=1000 * rnd + i))
                    for engine in order(rnd + i, a.engines):
                        log = os.path.join(logs, f"{engine}.log")
                        if engine == "ours":
                            r = ours_offline(a, path, shape, log)
                        elif engine == "llama.cpp":
                            r = llama_offline(a, path, shape, log)
                        else:
                            r = workers[engine].run(path, a.workload_timeout)
                        record(rnd, name, engine, r)
        finally:
            for w in workers.values():
                w.close()
    for rnd in range(a.rounds):
        for name, _, shape in serving:
            reqs = make_requests(shape, seed=1000 * rnd + 999)
            for engine in order(rnd, [e for e in a.engines if e in SERVERS]):
                record(rnd, name, engine, serve_run(a, engine, reqs, shape, os.path.join(logs, f"{engine}-serve.log")))
    results.close()
    meta["load_after"] = load()
    meta["limits_after"] = machine_limits(a, os.path.join(logs, "limits.log"))
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    table(a.out)


# ---- the table -------------------------------------------------------------------------------

# (label, workload, field, higher is better)
def table_rows(works, with_limits=False):
    rows = []
    batches = sorted(int(w[6:]) for w in works if w.startswith("batch_"))
    for b in batches:
        rows.append((f"decode tok/s, batch {b}", f"batch_{b}", "decode_tok_s", True))
    for b in batches:
        rows.append((f"prefill tok/s, batch {b}", f"batch_{b}", "prefill_tok_s", True))
    for b in batches:
        rows.append((f"end to end output tok/s, batch {b}", f"batch_{b}", "output_tok_s", True))
    for w in sorted(w for w in works if w.startswith("prefill_")):
        rows.append((f"prefill tok/s, one {w[8:]}-token prompt", w, "prefill_tok_s", True))
    if "random" in works:
        rows += [("random workload: output tok/s", "random", "output_tok_s", True),
                 ("random workload: TTFT p99 ms", "random", "ttft_ms_p99", False)]
    if "serving" in works:
        rows += [("serving: output tok/s", "serving", "output_tok_s", True),
                 ("serving: TTFT p50 ms", "serving", "ttft_ms_p50", False),
                 ("serving: TTFT p99 ms", "serving", "ttft_ms_p99", False),
                 ("serving: inter-token p50 ms", "serving", "itl_ms_p50", False),
                 ("serving: inter-token p99 ms", "serving", "itl_ms_p99", False)]
    if with_limits:
        prefills = sorted(w for w in works if w.startswith("prefill_"))
        big = [f"batch_{b}" for b in batches if b >= 16][:1]
        for w in prefills + big:
            what = f"one {w[8:]}-token prompt" if w in prefills else f"batch {w[6:]}"
            rows.append((f"prefill, {what}: % of the BF16 peak", w, "prefill_peak_pct", True))
        if "batch_1" in works:
            rows.append(("decode, batch 1: % of the read bandwidth", "batch_1", "decode_bw_pct", True))
    for w in ["serving"] + [f"batch_{b}" for b in batches[-1:]] + sorted(w for w in works if w.startswith("prefill_")):
        if w in works:
            rows.append((f"peak RSS MiB, {w}", w, "peak_rss_mb", False))
    return rows


def peak_of(meta, key):
    got = [m[key] for m in (meta.get("limits_before"), meta.get("limits_after")) if m and key in m]
    return max(got) if got else None


def add_fractions(r, meta):
    """Percent of the machine's limits (the best of the two measurements around the run) that
    a result reached: prefill FLOPs against the BF16 dot-product peak (the f32 FMA peak where the
    CPU has no BF16), decode bytes against the read bandwidth. The same cost model for every
    engine: bf16 weights, the model's matmuls and attention (model_cost)."""
    cost, shape = meta.get("model_cost"), meta.get("shapes", {}).get(r["work"], {})
    peak = peak_of(meta, "bf16_gflop_s") or peak_of(meta, "fma_gflop_s")
    bw = peak_of(meta, "read_gb_s")
    if not cost or "batch" not in shape:  # the random and serving workloads have no one shape
        return
    n_in, n_out, batch = shape["input"], shape["output"], shape["batch"]
    if peak and r.get("prefill_tok_s"):
        r["prefill_peak_pct"] = 100 * r["prefill_tok_s"] * prefill_flops(cost, n_in) / n_in / (peak * 1e9)
    if bw and r.get("decode_tok_s"):
        steps = r["decode_tok_s"] / batch
        r["decode_bw_pct"] = 100 * steps * decode_bytes(cost, batch, n_in + n_out // 2) / (bw * 1e9)


def rss_budget_lines(meta, vals):
    """Our peak RSS against the issue's bound: weights + KV budget + 15 %."""
    cost, shapes, out = meta.get("model_cost"), meta.get("shapes", {}), []
    if not cost or "weight_mb" not in meta:
        return out
    for (work, engine), rs in sorted(vals.items()):
        rss = [r["peak_rss_mb"] for r in rs if r.get("peak_rss_mb")]
        if engine != "ours" or not rss or work not in shapes:
            continue
        shape = shapes[work]
        if work == "serving":
            kv = meta["kv_gb"] * 1024
        elif "batch" in shape:  # `nanovllm bench` sizes its cache to the workload
            kv = shape["batch"] * (shape["input"] + shape["output"]) * cost["kv_bytes_per_token"] / 2**20
        else:
            continue
        bound = 1.15 * (meta["weight_mb"] + kv)
        out.append(f"- ours, {work}: peak RSS {max(rss):.0f} MiB; weights {meta['weight_mb']:.0f} + KV "
                   f"{kv:.0f} MiB + 15 % = {bound:.0f} MiB: {'within' if max(rss) <= bound else 'OVER'}")
    return out


def table(out):
    rows_in = [json.loads(ln) for ln in open(os.path.join(out, "results.jsonl"))]
    meta = json.load(open(os.path.join(out, "meta.json"))) if os.path.exists(os.path.join(out, "meta.json")) else {}
    engines = [e for e in ENGINES if any(r["engine"] == e for r in rows_in)]
    vals = {}  # (work, engine) -> [results of each round]
    errors = {}
    for r in rows_in:
        if "error" in r:
            errors.setdefault((r["work"], r["engine"]), r["error"])
        else:
            add_fractions(r, meta)
            vals.setdefault((r["work"], r["engine"]), []).append(r)
    works = {r["work"] for r in rows_in}
    md = [f"CPU: {meta.get('cpu', '?')}; {meta.get('threads', '?')} threads; {meta.get('date', '')}; "
          f"load average (1/5/15 min) {' '.join(meta.get('load_before', []))} before, "
          f"{' '.join(meta.get('load_after', []))} after; {meta.get('rounds', '?')} round(s), engines alternating; "
          f"KV budget {meta.get('kv_gb', '?')} GiB, token budget {meta.get('max_num_batched_tokens', '?')} "
          f"per step; commit {meta.get('commit', '?')}{' (SMOKE: tiny shapes)' if meta.get('smoke') else ''}"
          f"{'; vLLM in eager mode (no torch.compile)' if meta.get('vllm_eager') else ''}",
          "",
          "| workload | " + " | ".join(engines) + " | ours vs best peer |",
          "|---|" + "---|" * (len(engines) + 1)]
    csv_rows = [["workload", *engines, "best_peer", "ours_vs_best_peer"]]
    limits = {k: peak_of(meta, k) for k in ("read_gb_s", "fma_gflop_s", "bf16_gflop_s")}
    if any(limits.values()):
        md.insert(1, "Machine limits (kernels_bench, best of before and after the run): read "
                  f"{limits['read_gb_s'] or 0:.1f} GB/s, f32 FMA {limits['fma_gflop_s'] or 0:.0f} GFLOP/s, BF16 dot "
                  f"{limits['bf16_gflop_s'] or 0:.0f} GFLOP/s.")
    for label, work, field, higher in table_rows(works, any(limits.values())):
        means, cells = {}, []
        for e in engines:
            got = [r[field] for r in vals.get((work, e), []) if r.get(field) is not None]
            if got:
                means[e] = statistics.mean(got)
                each = " / ".join(f"{v:.1f}" for v in got)
                cells.append(f"{means[e]:.1f}" + (f" ({each})" if len(got) > 1 else ""))
            else:
                cells.append("error" if (work, e) in errors else "—")
        peers = {e: v for e, v in means.items() if e != "ours" and v > 0}
        best = (max if higher else min)(peers, key=peers.get) if peers else None
        ratio = None
        if best and means.get("ours"):
            ratio = means["ours"] / peers[best] if higher else peers[best] / means["ours"]
        md.append(f"| {label} | " + " | ".join(cells) + " | " +
                  (f"**{ratio:.2f}x** ({best})" if ratio else "—") + " |")
        csv_rows.append([label, *[f"{means[e]:.2f}" if e in means else "" for e in engines], best or "",
                         f"{ratio:.3f}" if ratio else ""])
    md.append("")
    md.append("Ratios: ours over the best peer for throughputs, the best peer over ours for times and "
              "memory; > 1 is ours ahead. Cells: mean (each round). Peak RSS: the process's (llama.cpp's "
              "tools, ours), else the sum over the engine's processes (an upper bound).")
    md += rss_budget_lines(meta, vals)
    for (work, e), err in sorted(errors.items()):
        md.append(f"- {work}, {e}: {err}")
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(out, "table.csv"), "w", newline="") as f:
        csv.writer(f).writerows(csv_rows)
    print("\n".join(md))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", required=True)
    r.add_argument("--model", required=True, help="checkpoint folder (ours, vLLM)")
    r.add_argument("--gguf", help="the same checkpoint as llama.cpp's BF16 GGUF")
    r.add_argument("--ov-model", help="the same checkpoint exported by optimum-intel")
    r.add_argument("--nanovllm", required=True)
    r.add_argument("--peers-cache", required=True)
    r.add_argument("--llama-cpp", help="llama.cpp build folder (bin/ inside)")
    r.add_argument("--kernels-bench", help="our kernels_bench: the machine's limits before and after the run")
    r.add_argument("--engines", default=",".join(ENGINES))
    r.add_argument("--workloads", default="batched,prefill,random,serving")
    r.add_argument("--batches", default="1,4,16,64")
    r.add_argument("--rounds", type=int, default=1)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--kv-gb", type=int, default=2, help="KV-cache budget of vLLM, OpenVINO and our server")
    r.add_argument("--max-num-batched-tokens", type=int, default=2048, help="tokens per step (ours' default)")
    r.add_argument("--max-model-len", type=int, default=2304)
    r.add_argument("--random-requests", type=int, default=8,
                   help="nano-vllm's random workload, scaled to a small machine (its own bench.py: 256)")
    r.add_argument("--clients", type=int, default=16)
    r.add_argument("--requests", type=int, default=32)
    r.add_argument("--startup-timeout", type=int, default=900)
    r.add_argument("--workload-timeout", type=int, default=1800)
    r.add_argument("--smoke", action="store_true", help="tiny shapes: checks that every peer runs")
    r.add_argument("--vllm-eager", action="store_true",
                   help="vLLM without torch.compile (its warm-up is long on a busy host; slower: smoke runs only)")
    t = sub.add_parser("table")
    t.add_argument("out")
    a = p.parse_args()
    if a.cmd == "table":
        return table(a.out)
    a.engines = [e for e in a.engines.split(",") if e]
    unknown = set(a.engines) - set(ENGINES)
    if unknown:
        p.error(f"unknown engines {sorted(unknown)}; known: {ENGINES}")
    a.workloads = a.workloads.split(",")
    a.batches = [int(b) for b in a.batches.split(",")] if not a.smoke else [1, 2]
    run(a)


if __name__ == "__main__":
    main()
