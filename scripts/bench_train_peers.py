#!/usr/bin/env python3
"""Training speed peer: `transformer-cli bench train` against PyTorch CPU on the same model and batch.

Same protocol on both sides: HF-shaped encoder classifier (RoFormerForSequenceClassification for rope,
BertForSequenceClassification otherwise), hidden dropout 0.1, attention dropout 0, a batch of `batch` random
sequences of `seq-len` tokens (no padding), 2 warm-up steps then `steps` timed steps of

    opt.zero_grad(); model(**batch).loss.backward(); clip_grad_norm_(params, 1.0); opt.step()

(AdamW, weight decay 0.01 on matrices/embeddings), `torch.set_num_threads(threads)`. Reports median and best step
time as examples/s and the ratio ours / PyTorch; writes bench-results/train.json.

    python scripts/bench_train_peers.py --cli .build/release/transformer-cli [--threads 2] [--position rope|absolute]
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import time

import torch


def torch_bench(a):
    from transformers import BertConfig, BertForSequenceClassification, RoFormerConfig, RoFormerForSequenceClassification
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    common = dict(vocab_size=a.vocab, hidden_size=a.hidden, num_hidden_layers=a.layers, num_attention_heads=a.heads,
                  intermediate_size=a.intermediate, max_position_embeddings=a.seq_len, hidden_act="gelu",
                  hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.0, num_labels=2)
    if a.position == "rope":
        model = RoFormerForSequenceClassification(RoFormerConfig(embedding_size=a.hidden, **common))
    else:
        model = BertForSequenceClassification(BertConfig(**common))
    model.train()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW([
        {"params": [p for n, p in params if not (n.endswith("bias") or "LayerNorm" in n)], "weight_decay": 0.01},
        {"params": [p for n, p in params if n.endswith("bias") or "LayerNorm" in n], "weight_decay": 0.0}], lr=1e-4)
    g = torch.Generator().manual_seed(7)
    batches = []
    for _ in range(4):
        ids = torch.randint(5, a.vocab, (a.batch_size, a.seq_len), generator=g)
        ids[:, 0], ids[:, -1] = 2, 3
        batches.append(dict(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=torch.zeros_like(ids),
                            labels=torch.randint(0, 2, (a.batch_size,), generator=g)))
    times, cpu = [], []
    for s in range(a.steps + 2):
        b = batches[s % len(batches)]
        c0 = time.process_time()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        model(**b).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if s >= 2:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return (statistics.median(times), min(times), type(model).__name__,
            getattr(model.config, "_attn_implementation", "?"), statistics.median(cpu))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", default=".build/release/transformer-cli")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--position", default="rope")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--intermediate", type=int, default=512)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2, help="alternate ours / PyTorch this many times, keep the best")
    ap.add_argument("--out", default="bench-results/train.json")
    a = ap.parse_args()
    shape = ["--position", a.position, "--layers", str(a.layers), "--hidden", str(a.hidden), "--heads", str(a.heads),
             "--intermediate", str(a.intermediate), "--seq-len", str(a.seq_len), "--batch-size", str(a.batch_size),
             "--vocab", str(a.vocab), "--steps", str(a.steps), "--threads", str(a.threads)]
    pathlib.Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    ours, theirs, ours_cpu, theirs_cpu = [], [], [], []
    ours_doc = None
    for r in range(a.rounds):
        tmp = pathlib.Path(a.out).with_suffix(".ours.json")
        subprocess.run([a.cli, "bench", "train", *shape, "--attention-n", "4096" if r == 0 else "0", "--json", str(tmp)],
                       check=True)
        doc = json.loads(tmp.read_text())
        tmp.unlink()
        if ours_doc is None:
            ours_doc = doc
        ours.append(doc["examples_per_s_median"])
        ours_cpu.append(doc["examples_per_cpu_s"])
        med, best, cls, attn, cpu = torch_bench(a)
        theirs.append(a.batch_size / med)
        theirs_cpu.append(a.batch_size / cpu)
        print(f"PyTorch {torch.__version__} {cls} ({attn} attention), {a.threads} threads: step median {med*1e3:.2f} ms, "
              f"best {best*1e3:.2f} ms -> {a.batch_size/med:.1f} examples/s (median); CPU {cpu*1e3:.2f} ms/step -> "
              f"{a.batch_size/cpu:.1f} examples per CPU-second", flush=True)
    o, t = max(ours), max(theirs)
    oc, tc = max(ours_cpu), max(theirs_cpu)
    print(f"training examples/s (best of {a.rounds} rounds of median steps): ours {o:.1f}, PyTorch {t:.1f}, ratio {o/t:.2f}x")
    print(f"examples per CPU-second (all threads): ours {oc:.1f}, PyTorch {tc:.1f}, ratio {oc/tc:.2f}x")
    result = {"ours_examples_per_s": o, "pytorch_examples_per_s": t, "ratio": o / t, "threads": a.threads,
              "position": a.position, "shape": vars(a), "torch": torch.__version__,
              "attention_memory": ours_doc.get("attention_memory") if ours_doc else None,
              "rounds_ours": ours, "rounds_pytorch": theirs,
              "ours_examples_per_cpu_s": oc, "pytorch_examples_per_cpu_s": tc, "cpu_ratio": oc / tc}
    pathlib.Path(a.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
