#!/usr/bin/env python3
"""Throughput with and without a noisy neighbour: a busy process holding one core.

Runs each workload (llama-batched-bench's shape: B sequences, PP prompt tokens, TG generated)
on nano-vllm and on llama.cpp, each quiet and beside a busy loop pinned to one core, and
reports every engine's slowdown (quiet rate / noisy rate). Engines and conditions alternate
within a round, and the order flips every round, so that a change of the host's load hits
both engines alike. The load average is printed beside each round: on a shared host "quiet"
only means "without our neighbour".

Usage:
  bench/noisy_neighbour.py --model MODEL [--gguf FILE.gguf] [--llama-bin DIR]
MODEL is what `nanovllm bench --model` takes (a checkpoint folder or a GGUF file); llama.cpp
runs FILE.gguf (default: MODEL when it is a GGUF file), from DIR/llama-batched-bench. Without
a llama.cpp build only nano-vllm's columns are filled.
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path


def busy_neighbour(cpu):
    """A process that spins on one core until killed (what a competing job does to us)."""
    return subprocess.Popen(["taskset", "-c", str(cpu), sys.executable, "-c", "while True: pass"])


def run_ours(args, batch, env):
    cmd = [args.nanovllm, "bench", "--model", args.model, "--threads", str(args.threads), "--json",
           "--batch", str(batch), "--input-len", str(args.pp), "--output-len", str(args.tg)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, timeout=args.timeout).stdout
    j = json.loads(out.strip().splitlines()[-1])
    return {"pp": j["prefill_tok_s"], "tg": j["decode_tok_s"]}


# | PP | TG | B | N_KV | T_PP s | S_PP t/s | T_TG s | S_TG t/s | T s | S t/s |
ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*\d+\s*\|\s*[\d.]+\s*\|\s*([\d.]+)\s*\|"
                 r"\s*[\d.]+\s*\|\s*([\d.]+)\s*\|")


def run_llama(args, batch, env):
    exe = Path(args.llama_bin) / "llama-batched-bench"
    ctx = batch * (args.pp + args.tg) + 16
    cmd = [str(exe), "-m", args.gguf, "-t", str(args.threads), "-c", str(ctx), "-b", "2048", "-ub", "512",
           "-npp", str(args.pp), "-ntg", str(args.tg), "-npl", str(batch)]
    env = dict(env)
    libdir = str(exe.parent)
    env["LD_LIBRARY_PATH"] = libdir + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, timeout=args.timeout).stdout
    for line in out.splitlines():
        m = ROW.match(line)
        if m and int(m.group(3)) == batch:
            return {"pp": float(m.group(4)), "tg": float(m.group(5))}
    raise RuntimeError("no result row for B=%d in llama-batched-bench output:\n%s" % (batch, out))


def engine_env(settings):
    """The environment plus KEY=VALUE pairs, comma-separated."""
    env = dict(os.environ)
    for kv in filter(None, settings.split(",")):
        k, _, v = kv.partition("=")
        env[k] = v
    return env


def load():
    return os.getloadavg()[0]


def measure(args, engines):
    """rates[engine][batch][condition] -> list of {"pp", "tg"} over rounds."""
    rates = {e: {b: {"quiet": [], "noisy": []} for b in args.batches} for e in engines}
    loads = []
    for r in range(args.rounds):
        order = ["quiet", "noisy"] if r % 2 == 0 else ["noisy", "quiet"]
        for b in args.batches:
            for cond in order:
                for e in (engines if r % 2 == 0 else engines[::-1]):
                    neighbour = busy_neighbour(args.cpu) if cond == "noisy" else None
                    try:
                        time.sleep(0.2)  # let the neighbour take its core
                        loads.append(load())
                        run = run_llama if e == "llama.cpp" else run_ours
                        res = run(args, b, engine_env(args.variants.get(e, "")))
                    except subprocess.TimeoutExpired:  # a collapse: counted as a rate of 0
                        res = {"pp": 0.0, "tg": 0.0}
                    finally:
                        if neighbour:
                            neighbour.kill()
                            neighbour.wait()
                    rates[e][b][cond].append(res)
                    print("round %d  B=%-3d %-9s %-5s  prefill %7.1f  decode %7.1f tok/s  (load %.1f)"
                          % (r + 1, b, e, cond, res["pp"], res["tg"], loads[-1]), file=sys.stderr, flush=True)
    return rates, loads


def table(args, engines, rates, loads):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    lines = ["Noisy neighbour: `%s`, %d threads, %d cores, PP %d / TG %d, %d rounds (median), "
             "neighbour = busy loop pinned to CPU %d; load average during the runs %.1f-%.1f"
             % (cpu, args.threads, os.cpu_count(), args.pp, args.tg, args.rounds, args.cpu, min(loads), max(loads)),
             "",
             "| workload | " + " | ".join("%s quiet | %s noisy | %s slowdown" % (e, e, e) for e in engines) + " |",
             "|---|" + "---:|---:|---:|" * len(engines)]
    for b in args.batches:
        for what, key in (("decode", "tg"), ("prefill", "pp")):
            cells = []
            for e in engines:
                q = statistics.median(x[key] for x in rates[e][b]["quiet"])
                n = statistics.median(x[key] for x in rates[e][b]["noisy"])
                rate = lambda r: "%.1f" % r if r > 0 else "timeout"
                cells.append("%s | %s | **%s**" % (rate(q), rate(n), "%.2fx" % (q / n) if q > 0 and n > 0 else "-"))
            lines.append("| %s tok/s, B=%d | %s |" % (what, b, " | ".join(cells)))
    return "\n".join(lines)


def main():
    root = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--gguf", help="the GGUF llama.cpp runs (default: --model when it is one)")
    p.add_argument("--llama-bin", default=os.environ.get("LLAMA_BIN", ""),
                   help="folder with llama-batched-bench (and its libraries)")
    p.add_argument("--nanovllm", default=str(root / "build" / "bin" / "nanovllm"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64])
    p.add_argument("--pp", type=int, default=128)
    p.add_argument("--tg", type=int, default=128)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--timeout", type=float, default=600,
                   help="seconds a run may take; a slower one is reported as 'timeout' (a collapse)")
    p.add_argument("--cpu", type=int, default=1, help="the core the neighbour holds")
    p.add_argument("--variant", action="append", default=[],
                   help="NAME=KEY=VALUE[,KEY=VALUE]: nano-vllm once more under NAME with that environment "
                        "(repeatable), e.g. spin300k=GOMP_SPINCOUNT=300000")
    p.add_argument("--out", default=str(root / "bench" / "out" / "noisy_neighbour.md"))
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so that the neighbour is killed too
    if not args.gguf and args.model.endswith(".gguf"):
        args.gguf = args.model
    engines = ["nano-vllm"]
    args.variants = {}
    for v in args.variant:
        name, _, settings = v.partition("=")
        args.variants[name] = settings
        engines.append(name)
    if args.llama_bin and args.gguf:
        engines.append("llama.cpp")
    else:
        print("no --llama-bin/--gguf: no llama.cpp column", file=sys.stderr)
    rates, loads = measure(args, engines)
    text = table(args, engines, rates, loads)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
