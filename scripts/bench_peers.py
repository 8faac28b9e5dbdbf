#!/usr/bin/env python3
"""Times PyTorch on the same attention shapes as `transformer-cli bench attention` and compares.

Reads our rows from a JSON file written by the CLI (`--json`), times `F.scaled_dot_product_attention` (PyTorch's
own fused CPU kernel) and the materialised `softmax(QKᵀ)V` with the same thread count, prints ours ÷ torch per row,
writes the rows to JSON and a PNG plot of GFLOP/s against N. Run it through scripts/bench_peers.sh.
"""
import argparse
import json
import math
import pathlib
import time

import torch
import torch.nn.functional as F


def best_time(fn, repeats):
    fn()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def flops(n, h, d, causal):
    f = 4.0 * n * n * d * h
    return f / 2 if causal else f


def time_torch(row, repeats):
    n, h, g, d, causal = row["N"], row["heads"], row["kv_heads"], row["head_dim"], row["causal"]
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, h, n, d, generator=gen)
    k = torch.randn(1, g, n, d, generator=gen)
    v = torch.randn(1, g, n, d, generator=gen)
    reps = max(2, repeats - 1) if n >= 4096 else repeats
    with torch.inference_mode():
        sdpa = best_time(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=g != h), reps)
        math_t = None
        if n <= 4096 and g == h:
            def materialised():
                s = (q @ k.transpose(-1, -2)) * (d ** -0.5)
                if causal:
                    s = s.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
                return torch.softmax(s, dim=-1) @ v
            math_t = best_time(materialised, reps)
    return sdpa, math_t


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ours", default="bench-results/attention.json", help="JSON from `transformer-cli bench attention --json`")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="bench-results/peers-attention.json")
    ap.add_argument("--plot", default="bench-results/attention-gflops.png")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ours = json.loads(pathlib.Path(args.ours).read_text())
    rows = [r for r in ours["rows"] if r.get("heads") and r["case"].startswith("H") and "sigmoid" not in r["case"]
            and " w" not in r["case"]]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; GFLOP/s counts 4·N²·D per head (halved causal)")
    print(f"{'case':<18}{'N':>6}{'flash':>9}{'ref':>9}{'torch':>9}{'t.math':>9}{'flash/torch':>13}")
    out = []
    for r in rows:
        sdpa, math_t = time_torch(r, args.repeats)
        f = flops(r["N"], r["heads"], r["head_dim"], r["causal"])
        rec = dict(r)
        rec["torch_sdpa_ms"] = sdpa * 1e3
        rec["torch_sdpa_gflops"] = f / sdpa / 1e9
        rec["torch_math_gflops"] = f / math_t / 1e9 if math_t else None
        rec["flash_over_torch"] = r["flash_gflops"] / rec["torch_sdpa_gflops"]
        out.append(rec)
        tm = f"{rec['torch_math_gflops']:9.1f}" if math_t else f"{'-':>9}"
        ref = f"{r['ref_gflops']:9.1f}" if r.get("ref_gflops") else f"{'-':>9}"
        print(f"{r['case']:<18}{r['N']:>6}{r['flash_gflops']:9.1f}{ref}{rec['torch_sdpa_gflops']:9.1f}{tm}"
              f"{rec['flash_over_torch']:13.2f}", flush=True)
    pathlib.Path(args.out).write_text(json.dumps({"torch": torch.__version__, "threads": args.threads, "rows": out}, indent=2))
    print(f"wrote {args.out}")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plot")
        return
    groups = sorted({(r["head_dim"], r["causal"]) for r in out})
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 4), squeeze=False)
    for ax, (d, c) in zip(axes[0], groups):
        rs = sorted((r for r in out if r["head_dim"] == d and r["causal"] == c), key=lambda r: r["N"])
        ns = [r["N"] for r in rs]
        ax.plot(ns, [r["flash_gflops"] for r in rs], "o-", label="ours: flash")
        ax.plot([r["N"] for r in rs if r.get("ref_gflops")], [r["ref_gflops"] for r in rs if r.get("ref_gflops")],
                "s--", label="ours: materialised")
        ax.plot(ns, [r["torch_sdpa_gflops"] for r in rs], "^-", label="torch SDPA")
        ax.set_xscale("log", base=2)
        ax.set_title(f"D={d}{' causal' if c else ''}, H=8, {args.threads} threads")
        ax.set_xlabel("N")
        ax.set_ylabel("GFLOP/s")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
