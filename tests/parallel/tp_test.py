#!/usr/bin/env python3
"""Tensor parallelism over MPI: `mpirun -np 2 nanovllm generate --tensor-parallel-size 2` gives the
same greedy token ids as the model on one rank, on every test checkpoint (tests/data/model, the
real TinyStories-656K and stories260K from ../shared), with all of each checkpoint's golden
prompts in one batch and a small step budget, so prefill chunks and decodes mix in one step.
Also: `serve` under mpirun answers as generate does; wrong rank counts and shapes that do not
split are refused with the numbers named. Usage: tp_test.py NANOVLLM_BIN (stdlib only).
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "model"
SHARED = pathlib.Path(os.environ.get("NANOVLLM_SHARED_DIR", ROOT.parent / "shared"))
BIN = sys.argv[1]
MPIRUN = shutil.which("mpirun")
# CI runs as root; 2 ranks on a 2-core machine (or fewer) need --oversubscribe.
ENV = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMP_NUM_THREADS": "1"}
FLAGS = ["--temperature", "0", "--ignore-eos", "--max-tokens", "24", "--max-num-batched-tokens", "24",
         "--threads", "1", "--json", "--kv-cache-memory", "16MiB"]


def mpirun(n, *args):
    assert MPIRUN, "mpirun not found: run scripts/install-deps.sh (openmpi-bin)"
    return [MPIRUN, "--oversubscribe", "-np", str(n), BIN, *args]


def run(cmd):
    p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def ids(model, prompts, tp):
    args = ["generate", "--model", str(model), *FLAGS]
    for p in prompts:
        args += ["--prompt-ids", ",".join(map(str, p))]
    cmd = [BIN, *args] if tp == 1 else mpirun(tp, *args, "--tensor-parallel-size", str(tp))
    rc, out, err = run(cmd)
    assert rc == 0, f"{' '.join(cmd)}\n{err}"
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(rows) == len(prompts), out
    return [r["token_ids"] for r in sorted(rows, key=lambda r: r["index"])]


def golden_prompts(name):
    g = json.loads((DATA / f"{name}.golden.json").read_text())
    runs = g.get("prompts") or g.get("runs") or [g]
    return [r["prompt_ids"] for r in runs]


def checkpoints(tmp):
    out = [(DATA / d.name, golden_prompts(d.name)) for d in sorted(DATA.iterdir()) if d.is_dir()]
    out.append((SHARED / "models" / "tinystories-656k", golden_prompts("tinystories-656k")))
    stories = tmp / "stories260k"
    rc, _, err = run([BIN, "convert", "llama2c", "--checkpoint", str(SHARED / "models/stories260k/stories260K.bin"),
                      "--tokenizer", str(SHARED / "models/stories260k/tok512.model"), "--out", str(stories)])
    assert rc == 0, err
    out.append((stories, golden_prompts("stories260k")))
    return out


def check_equal_ids(tmp):
    for model, prompts in checkpoints(tmp):
        prompts = prompts + [list(range(3, 43))]  # one prompt longer than the step budget
        one, two = ids(model, prompts, 1), ids(model, prompts, 2)
        assert one == two, f"{model.name}: TP=2 differs from TP=1\n{one}\n{two}"
        print(f"ok {model.name}: {len(prompts)} prompts, {sum(map(len, one))} ids equal")


def rank_zero_of(mpirun_pid):
    for d in pathlib.Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == mpirun_pid and \
                    b"OMPI_COMM_WORLD_RANK=0\0" in (d / "environ").read_bytes():
                return int(d.name)
        except OSError:
            pass
    raise AssertionError("rank 0 of mpirun not found")


def check_serve():
    model = SHARED / "models" / "tinystories-656k"
    body = {"model": "m", "prompt": [1], "max_tokens": 24, "temperature": 0, "ignore_eos": True}
    want = ids(model, [[1]], 1)[0]
    proc = subprocess.Popen(mpirun(2, "serve", "--model", str(model), "--served-model-name", "m", "--port", "0",
                                   "--threads", "1", "--kv-cache-memory", "16MiB", "--tensor-parallel-size", "2"),
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "listening on" in line, line + proc.stderr.read()
        url = line.strip().rsplit(" ", 1)[-1]
        req = urllib.request.Request(url + "/v1/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        got = json.loads(urllib.request.urlopen(req, timeout=120).read())
        assert got["usage"]["completion_tokens"] == len(want), got
        text_one = json.loads(run([BIN, "generate", "--model", str(model), *FLAGS, "--prompt-ids", "1"])[1].splitlines()[-1])["text"]
        assert got["choices"][0]["text"] == text_one, (got, text_one)
        print("ok serve under mpirun -np 2 answers as generate on one rank")
        # SIGTERM to rank 0, as a supervisor stops a server (mpirun itself exits 1 on a signal):
        # rank 0 drains and stops, and its stop ends the other rank.
        os.kill(rank_zero_of(proc.pid), signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    print("ok serve stops cleanly on SIGTERM")


def check_refusals():
    model = DATA / "qwen2-f32"  # 4 heads, 2 KV heads
    rc, _, err = run(mpirun(2, "generate", "--model", str(model), *FLAGS, "--prompt-ids", "1", "--tensor-parallel-size", "3"))
    assert rc != 0 and "--tensor-parallel-size 3 needs exactly that many MPI ranks" in err and "has 2" in err, err
    rc, _, err = run(mpirun(3, "generate", "--model", str(model), *FLAGS, "--prompt-ids", "1", "--tensor-parallel-size", "3"))
    assert rc != 0 and "tensor parallel size 3 does not divide num_key_value_heads (2)" in err, err
    rc, _, err = run(mpirun(2, "generate", "--model", str(model), *FLAGS, "--prompt-ids", "1", "--tensor-parallel-size", "2",
                            "--quantization", "int8"))
    assert rc != 0 and "tensor parallelism with quantization 'int8' is not supported" in err, err
    print("ok refusals name the numbers")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        check_equal_ids(pathlib.Path(tmp))
    check_serve()
    check_refusals()


if __name__ == "__main__":
    main()
