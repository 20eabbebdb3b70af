#!/usr/bin/env python3
"""Many sessions through a load balancer, checked against one process, with latency figures.

    cluster_load.py --api URL --reference URL [--sessions 64] [--requests 8] [--clients 1,16,64]
                    [--kill-pid PID]

For each client count: `--sessions` sessions are created through `--api` (HAProxy in front of
replicas that share sessions through Redis), and `--clients` threads feed them token chunks in a
random interleaving: any client may take any session's next chunk, so a session's requests land
on whichever replica the balancer picks. After the last chunk, each session's last-token logits
must equal those of the same ids fed to `--reference` (a single process without Redis) in one
request. Prints requests/s and p50/p99 latency per client count, and exits 1 on any mismatch.

With --kill-pid, that process (a replica) is killed with SIGKILL half way through the last run.
Every request names the position its ids follow ("position"), so a client whose request got no
answer sends it again: if the dead replica had already applied and saved it, the survivor answers
from the stored result instead of feeding the ids twice. Standard library only (it runs in CI).
"""
import argparse
import http.client
import json
import os
import random
import signal
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request


def request(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        text = r.read()
        return json.loads(text) if text else None


def post(url, body):
    return request("POST", url, body)


def request_with_retries(method, url, body=None, attempts=50):
    """request(), sent again while the balancer has no live replica for it, a replica's Redis
    round trip failed (503) or the connection broke. Returns (answer, attempts that failed)."""
    for attempt in range(attempts):
        try:
            return request(method, url, body), attempt
        except urllib.error.HTTPError as e:
            # A DELETE whose first answer was lost may find the session already gone.
            if method == "DELETE" and e.code == 404 and attempt > 0:
                return None, attempt
            if e.code not in (502, 503, 504) or attempt == attempts - 1:
                raise RuntimeError(f"{method} {url}: HTTP {e.code}: {e.read().decode(errors='replace')}") from e
        # The connection broke, before or in the middle of the answer (a replica killed while it
        # sent one gives IncompleteRead): the request carries its position, so sending it again is safe.
        except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException):
            if attempt == attempts - 1:
                raise
        time.sleep(0.1)
    raise AssertionError("unreachable")


def run(api, reference, sessions, requests, clients, vocab, seed, kill_pid=None):
    rng = random.Random(seed)
    # Each session's ids, in `requests` chunks of 1..6 tokens.
    chunks = [[[rng.randrange(vocab) for _ in range(rng.randint(1, 6))] for _ in range(requests)]
              for _ in range(sessions)]
    ids = [request_with_retries("POST", api + "/v1/sessions", {})[0]["id"] for _ in range(sessions)]
    next_chunk = [0] * sessions
    position = [0] * sessions  # ids fed so far
    retried = [0]
    idle = list(range(sessions))  # sessions with no request in flight and chunks left
    last = [None] * sessions
    latencies = []
    lock = threading.Condition()
    failures = []

    def client():
        local_rng = random.Random(rng.random())
        while True:
            with lock:
                while not idle and any(n < requests for n in next_chunk) and not failures:
                    lock.wait()
                if not idle or failures:
                    return
                s = idle.pop(local_rng.randrange(len(idle)))
                chunk = chunks[s][next_chunk[s]]
            start = time.perf_counter()
            try:
                out, retries = request_with_retries("POST", f"{api}/v1/sessions/{ids[s]}/tokens",
                                                    {"ids": chunk, "position": position[s], "logits": True})
            except Exception as e:  # noqa: BLE001 - any failure is reported
                with lock:
                    failures.append(f"session {s}: {e}")
                    lock.notify_all()
                return
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                retried[0] += retries
                last[s] = out
                position[s] += len(chunk)
                next_chunk[s] += 1
                if kill_pid and len(latencies) == sessions * requests // 2:
                    os.kill(kill_pid, signal.SIGKILL)
                if next_chunk[s] < requests:
                    idle.append(s)
                lock.notify_all()

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if failures:
        return None, failures

    mismatches = []
    for s in range(sessions):
        fed = [t for c in chunks[s] for t in c]
        ref_id = post(reference + "/v1/sessions", {})["id"]
        want = post(f"{reference}/v1/sessions/{ref_id}/tokens", {"ids": fed, "logits": True})
        got = last[s]
        worst = max(abs(a - b) / max(abs(b), 1e-3) for a, b in zip(got["logits"], want["logits"]))
        if got["position"] != len(fed) or worst > 1e-5:
            mismatches.append(f"session {s}: position {got['position']} of {len(fed)}, "
                              f"largest relative logit difference {worst:.3g}")
        request("DELETE", f"{reference}/v1/sessions/{ref_id}")
        request_with_retries("DELETE", f"{api}/v1/sessions/{ids[s]}")
    latencies.sort()
    figures = {
        "clients": clients,
        "requests": len(latencies),
        "requests_per_s": len(latencies) / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "retried": retried[0],
    }
    return figures, mismatches


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--api", required=True)
    p.add_argument("--reference", required=True)
    p.add_argument("--sessions", type=int, default=64)
    p.add_argument("--requests", type=int, default=8)
    p.add_argument("--clients", default="1,16,64")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kill-pid", type=int, help="a replica to kill with SIGKILL half way through the last run")
    a = p.parse_args()
    with urllib.request.urlopen(a.api + "/v1/models", timeout=10) as r:
        vocab = json.loads(r.read())["data"][0]["vocab_size"]
    ok = True
    counts = [int(c) for c in a.clients.split(",")]
    for i, clients in enumerate(counts):
        kill = a.kill_pid if i == len(counts) - 1 else None
        figures, problems = run(a.api, a.reference, a.sessions, a.requests, clients, vocab, a.seed + clients, kill)
        for problem in problems:
            print("cluster_load: FAILED:", problem)
        ok = ok and not problems
        if figures:
            print("cluster_load: {clients:3d} clients: {requests} requests, {requests_per_s:.1f} requests/s, "
                  "p50 {p50_ms:.1f} ms, p99 {p99_ms:.1f} ms".format(**figures) +
                  (f" (a replica killed half way; {figures['retried']} requests sent again)" if kill else ""))
    if ok:
        print(f"cluster_load: ok: every session's last logits equal one process's ({a.sessions} sessions a run)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
