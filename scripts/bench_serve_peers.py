#!/usr/bin/env python3
"""The same concurrent load on two OpenAI-compatible servers: `transformer-cli serve` (continuous batching) and
llama.cpp's server as the `llama-cpp-python[server]` package ships it (`python -m llama_cpp.server`).

For each concurrency N (default 1 and 8), N clients each send one `/v1/completions` request at the same moment
(greedy, a distinct prompt each, `max_tokens` tokens); the aggregate is the completion tokens the server reports in
`usage`, summed over the N requests, divided by the wall time from the first request sent to the last reply
received (prompt processing included, as a client sees it). Best of `--repeats` rounds. Standard library only on the
client side (urllib in threads).

    python3 scripts/bench_serve_peers.py --cli .build/release/transformer-cli --model models/X.gguf [--threads 2]
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

# Text-completion prompts that both engines continue greedily for at least 64 tokens on SmolLM2 (no early EOS), so
# every request of a round does the same work on both servers (checked: every reply must end by length).
PROMPTS = [
    "Describe the water cycle to a ten-year-old.",
    "Once upon a time, in a small village by the sea,",
    "The history of the Roman Empire began",
    "Here is a recipe for chocolate chip cookies:",
    "The most important thing about learning mathematics is",
    "In the year 2050, cities will",
    "Dear diary, today I",
    "The scientific method consists of",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, proc, timeout=180):
    start = time.time()
    while time.time() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            time.sleep(0.5)
    raise RuntimeError(f"server at {url} not ready after {timeout} s")


def complete(url, model, prompt, max_tokens, out, i):
    body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}).encode()
    req = urllib.request.Request(url + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        reply = json.load(r)
    if reply["choices"][0]["finish_reason"] != "length":
        out[i] = -1  # stopped early: not the same load
    else:
        out[i] = reply["usage"]["completion_tokens"]


def load(url, model, n, max_tokens):
    out = [0] * n
    threads = [threading.Thread(target=complete, args=(url, model, PROMPTS[i % len(PROMPTS)], max_tokens, out, i))
               for i in range(n)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    if any(t <= 0 for t in out):
        raise RuntimeError(f"a request stopped before max_tokens (tokens per request: {out}); pick other prompts")
    return sum(out), seconds


def measure(name, cmd, url, model, concurrencies, max_tokens, repeats, env):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_ready(url, proc)
        load(url, model, 1, 8)  # warm-up (8 tokens of the first prompt)
        rows = {}
        for n in concurrencies:
            best = None
            for _ in range(repeats):
                tokens, seconds = load(url, model, n, max_tokens)
                if best is None or tokens / seconds > best[0] / best[1]:
                    best = (tokens, seconds)
            rows[n] = best
            print(f"  {name:12s} {n} concurrent: {best[0]} tokens in {best[1]:.2f} s = {best[0] / best[1]:.1f} tok/s",
                  file=sys.stderr)
        return rows
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default="bench-results/peers-serve.json")
    args = ap.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    parallel = max(concurrencies)
    env = dict(os.environ)
    p1, p2 = free_port(), free_port()
    ours = measure("ours", [args.cli, "serve", "--model", args.model, "--port", str(p1), "--parallel", str(parallel),
                            "--context", "1024", "--threads", str(args.threads), "--quiet"],
                   f"http://127.0.0.1:{p1}", "model", concurrencies, args.max_tokens, args.repeats, env)
    llama = measure("llama.cpp", [sys.executable, "-m", "llama_cpp.server", "--model", args.model, "--port", str(p2),
                                  "--n_threads", str(args.threads), "--n_threads_batch", str(args.threads),
                                  "--n_ctx", "2048"],
                    f"http://127.0.0.1:{p2}", args.model, concurrencies, args.max_tokens, args.repeats, env)
    print(f"serve peers: {os.path.basename(args.model)}, {args.threads} threads, {args.max_tokens} tokens per request, "
          f"best of {args.repeats}")
    print(f"{'concurrent':<12}{'ours tok/s':>12}{'llama.cpp tok/s':>17}{'ratio':>8}{'ours ×1':>10}{'llama ×1':>10}")
    base_o, base_l = ours[concurrencies[0]], llama[concurrencies[0]]
    rows = []
    for n in concurrencies:
        o, l = ours[n][0] / ours[n][1], llama[n][0] / llama[n][1]
        so, sl = o / (base_o[0] / base_o[1]), l / (base_l[0] / base_l[1])
        print(f"{n:<12}{o:>12.1f}{l:>17.1f}{o / l:>8.2f}{so:>10.2f}{sl:>10.2f}")
        rows.append({"concurrent": n, "ours_tps": o, "llama_tps": l, "ratio": o / l,
                     "ours_vs_first": so, "llama_vs_first": sl})
    print("(aggregate completion tokens ÷ wall time of the round, prompt processing included; "
          "ours ×1 / llama ×1 = against the first concurrency of the same server)")
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"benchmark": "serve-peers", "model": args.model, "threads": args.threads,
                   "max_tokens": args.max_tokens, "rows": rows}, f, indent=1)
    print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
