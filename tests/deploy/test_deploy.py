"""Replicas behind a real router: 2 `nanovllm serve` replicas behind HAProxy 2.6 and behind nginx
1.22, run with the very files deploy/haproxy.cfg and deploy/nginx.conf, on free loopback ports.

Shows: requests spread over both replicas; a conversation's turns stick to one replica and hit
its prefix cache (cached_tokens > 0 from turn 2); killing a replica mid-run loses no request
that had not started streaming; X-Request-Id passes through; /metrics of both replicas is
scraped. HAProxy and nginx are Debian 12 packages of scripts/install-deps.sh: without them this
fails.
"""
import concurrent.futures as cf
import importlib.util
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The replicas are the server suite's `Server` (a `nanovllm serve` on a free port).
_spec = importlib.util.spec_from_file_location("server_conftest", ROOT / "tests" / "server" / "conftest.py")
server_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(server_conftest)
Server, STORIES = server_conftest.Server, server_conftest.STORIES

KEY = "deploy-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
# TinyStories has no chat template; this one is enough for multi-turn chat.
TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}assistant:{% endif %}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_program(name):
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    assert path, f"{name} is not installed: run scripts/install-deps.sh (Debian 12: apt install {name})"
    return path


class Router:
    """A router process in the foreground on a free port, logging to a file."""

    def start(self, args, env, log_path):
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            assert self.proc.poll() is None, f"{args[0]} exited: {pathlib.Path(log_path).read_text()}"
            try:
                if requests.get(self.url + "/health", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.time() < deadline, f"{args[0]} never answered /health"
            time.sleep(0.05)

    def post(self, path, body, headers=None, **kw):
        return requests.post(self.url + path, json=body, headers={**AUTH, **(headers or {})}, timeout=300, **kw)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


class HAProxy(Router):
    """deploy/haproxy.cfg as it is; the addresses come from the environment."""

    def __init__(self, replicas, tmp_path):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "NV_LISTEN": f"127.0.0.1:{port}"}
        for i, r in enumerate(replicas, 1):
            env[f"NV_REPLICA{i}"] = r.url.removeprefix("http://")
        self.start([find_program("haproxy"), "-db", "-f", str(ROOT / "deploy" / "haproxy.cfg")], env,
                   tmp_path / "haproxy.log")


class Nginx(Router):
    """deploy/nginx.conf with its addresses replaced, included in a minimal main config."""

    def __init__(self, replicas, tmp_path):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        addresses = [f"127.0.0.1:{port}"] + [r.url.removeprefix("http://") for r in replicas]
        conf = re.sub(r"127\.0\.0\.1:800([0-2])\b", lambda m: addresses[int(m.group(1))],
                      (ROOT / "deploy" / "nginx.conf").read_text())
        (tmp_path / "nanovllm.conf").write_text(conf)
        temp = " ".join(f"{k}_temp_path {tmp_path}/{k};" for k in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"])
        main = tmp_path / "nginx-main.conf"
        main.write_text(f"events {{}}\nhttp {{ access_log {tmp_path}/access.log; {temp} include {tmp_path}/nanovllm.conf; }}\n")
        self.start([find_program("nginx"), "-p", str(tmp_path), "-c", str(main), "-g",
                    f"daemon off; pid {tmp_path}/nginx.pid; error_log stderr;"], os.environ, tmp_path / "nginx.log")


@pytest.fixture(params=[HAProxy, Nginx], ids=["haproxy", "nginx"])
def cluster(request, tmp_path):
    template = tmp_path / "chat.jinja"
    template.write_text(TEMPLATE)
    replicas = [Server(STORIES, "--api-key", KEY, "--chat-template", str(template), "--max-num-seqs", "32",
                       name="stories") for _ in range(2)]
    router = request.param(replicas, tmp_path)
    yield router, replicas
    router.stop()
    for r in replicas:
        if r.proc.poll() is None:
            assert r.stop() == 0


def served_by(response, replicas):
    """The replica (0 or 1) that answered, from the router's X-Served-By (the replica's address;
    nginx lists every one it tried, the one that answered last)."""
    address = response.headers["X-Served-By"].split(",")[-1].strip()
    return [r.url.removeprefix("http://") for r in replicas].index(address)


def completions_on(replica):
    m = replica.metrics()
    return sum(v for k, v in m.items() if k.startswith("nanovllm:request_success_total"))


def test_requests_spread_over_both_replicas(cluster):
    router, replicas = cluster
    body = {"model": "stories", "prompt": "Once upon a time", "max_tokens": 24, "ignore_eos": True}
    with cf.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: router.post("/v1/completions", body), range(16)))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
    by = [served_by(a, replicas) for a in answers]
    assert sorted(set(by)) == [0, 1], by
    # Each replica's own /metrics (what Prometheus scrapes) counts what the router sent it.
    assert [completions_on(r) for r in replicas] == [by.count(0), by.count(1)]
    # Without the key the router passes the replica's 401 through; /health needs none.
    assert requests.post(router.url + "/v1/completions", json=body, timeout=60).status_code == 401


def conversation(router, replicas, turns, key_header=None, key_field=None):
    """A multi-turn chat; returns per turn (replica, cached prompt tokens)."""
    messages = [{"role": "system", "content": "You tell short stories about animals in the forest. " * 3}]
    seen = []
    for turn in range(turns):
        messages.append({"role": "user", "content": f"Tell me story number {turn} about a fox and a bird."})
        body = {"model": "stories", "messages": messages, "max_tokens": 12, "temperature": 0}
        if key_field:
            body["prompt_cache_key"] = key_field
        r = router.post("/v1/chat/completions", body, headers={"X-Session-Id": key_header} if key_header else None)
        assert r.status_code == 200, r.text
        out = r.json()
        seen.append((served_by(r, replicas), out["usage"]["prompt_tokens_details"]["cached_tokens"]))
        messages.append(out["choices"][0]["message"])
    return seen


def test_conversation_sticks_to_its_replica_and_hits_the_cache(cluster):
    router, replicas = cluster
    # Keys from the header (and, behind HAProxy, from the body's prompt_cache_key); without
    # affinity, least connections on idle replicas alternates, so turns would miss their cache.
    runs = [conversation(router, replicas, 3, key_header=f"session-{i}") for i in range(10)]
    if isinstance(router, HAProxy):  # nginx reads no JSON body
        runs += [conversation(router, replicas, 3, key_field=f"cache-key-{i}") for i in range(3)]
    for run in runs:
        assert len({replica for replica, _ in run}) == 1, run
        assert all(cached > 0 for _, cached in run[1:]), run
    assert {run[0][0] for run in runs} == {0, 1}, runs  # the first turns were spread


def test_request_id_passes_through_the_router(cluster):
    router, replicas = cluster
    body = {"model": "stories", "prompt": "Once", "max_tokens": 2}
    assert router.post("/v1/completions", body, headers={"X-Request-Id": "client-1"}).headers["X-Request-Id"] == "client-1"
    made = {router.post("/v1/completions", body).headers["X-Request-Id"] for _ in range(3)}
    assert len(made) == 3, made  # HAProxy's unique-id, echoed by the replica


def test_killing_a_replica_loses_no_request_that_had_not_started_streaming(cluster):
    router, replicas = cluster
    # Long enough (~0.2 s even on an idle machine) for the poll below to see them running.
    body = {"model": "stories", "prompt": "Once upon a time", "max_tokens": 400, "ignore_eos": True}
    with cf.ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(router.post, "/v1/completions", body) for _ in range(12)]
        deadline = time.time() + 60
        while replicas[0].metrics()["nanovllm:num_requests_running"] == 0:
            assert time.time() < deadline, "replica 1 never got a request"
            time.sleep(0.02)
        replicas[0].proc.send_signal(signal.SIGKILL)
        replicas[0].proc.wait(timeout=10)
        answers = [f.result() for f in futures]
    assert all(a.status_code == 200 for a in answers), [(a.status_code, a.text) for a in answers]
    assert all(a.json()["usage"]["completion_tokens"] == 400 for a in answers)
    assert {served_by(a, replicas) for a in answers} == {1}  # replica 1's requests were redone on 2
    # New requests keep being served by the survivor.
    assert router.post("/v1/completions", {**body, "max_tokens": 4}).status_code == 200
