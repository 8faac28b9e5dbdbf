#!/usr/bin/env python3
"""llama.cpp peer for `transformer-cli bench model`: prefill and decode tokens/s on the same GGUF files.

Files: the Q4_1 model from scripts/get-model.sh, an F32 copy of it, written here from the dequantised weights
(`--f32`, idempotent; same metadata except general.file_type = ALL_F32, same tensor names and shapes), and — when
scripts/requant-smollm.sh has made them — llama.cpp's re-quantisations of the F32 copy: Q4_K_M, Q5_K_M, Q6_K, Q8_0
(`--files` picks a subset). Both engines multiply the file's tensors as stored (ours: mapped in place, GEMV from the
blocks for decode, panel-dequantised GEMM for prefill); llama.cpp also quantises the activations to 8 bits.
Our resident memory (VmRSS after load, peak VmHWM) is reported beside the file size.

Protocol, the same for both engines (see Sources/transformer-cli/ModelBench.swift):
  prefill = one evaluation of 512 prompt tokens (ids 100 + 7919·i mod (vocab − 100)) in one batch
            (llama.cpp: n_batch = n_ubatch = 512), on an empty KV cache;
  decode  = 128 greedy one-token steps after an 8-token start (the start is not timed);
  each one warm-up run, then the best of --repeats; the same thread count (--threads, default 2).
Also records llama.cpp's own counters (llama_perf_context) for the best runs as a cross-check, and checks that
both engines pick the same greedy tokens for a short prompt on each file.

Run it through scripts/bench_peers.sh (`scripts/bench_peers.sh model`).
"""
import argparse
import json
import math
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Files made by scripts/requant-smollm.sh next to the Q4_1 one (llama.cpp's quantizer on the F32 copy).
REQUANT = ["Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0"]


# --------------------------------------------------------------------------------------------------- F32 GGUF

def write_f32_gguf(src: pathlib.Path, dst: pathlib.Path) -> None:
    """Copies every metadata key (same value types) and every tensor (dequantised to F32) from src into dst."""
    import gguf
    from gguf import GGUFValueType as VT

    if dst.exists() and dst.stat().st_size > 0 and dst.stat().st_mtime >= src.stat().st_mtime:
        print(f"[f32] present: {dst}", file=sys.stderr)
        return
    t0 = time.perf_counter()
    reader = gguf.GGUFReader(str(src))
    arch = reader.fields["general.architecture"].contents()
    part = dst.with_name(dst.name + ".part")
    writer = gguf.GGUFWriter(str(part), arch)          # writes general.architecture itself
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        vtype = field.types[0]
        if key == "general.file_type":
            writer.add_key_value(key, int(gguf.LlamaFileType.ALL_F32), vtype)
        elif vtype == VT.ARRAY:
            sub = field.types[-1]
            if sub == VT.STRING:                        # raw bytes: no decode/encode round trip
                val = [bytes(field.parts[i]) for i in field.data]
            else:
                val = [field.parts[i].tolist()[0] for i in field.data]
            writer.add_key_value(key, val, vtype, sub_type=sub)
        elif vtype == VT.STRING:
            writer.add_key_value(key, bytes(field.parts[field.data[0]]), vtype)
        else:
            writer.add_key_value(key, field.parts[field.data[0]].tolist()[0], vtype)
    for t in reader.tensors:
        if t.tensor_type == gguf.GGMLQuantizationType.F32:
            data = np.array(t.data, dtype=np.float32)
        else:
            data = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        want = tuple(int(x) for x in reversed(t.shape))    # GGUF lists ne0 first; numpy is row-major
        data = data.reshape(want)
        writer.add_tensor(t.name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(part, dst)
    print(f"[f32] wrote {dst} ({dst.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


def gguf_weight_bytes(path: pathlib.Path):
    """(sum of tensor data bytes, parameter count, {type: bytes}) of a GGUF file."""
    import gguf
    r = gguf.GGUFReader(str(path))
    by_type = {}
    for t in r.tensors:
        by_type[t.tensor_type.name] = by_type.get(t.tensor_type.name, 0) + int(t.n_bytes)
    return sum(int(t.n_bytes) for t in r.tensors), sum(int(t.n_elements) for t in r.tensors), by_type


# --------------------------------------------------------------------------------------------------- ours

def run_ours(cli, model, prefill, decode, repeats, threads):
    env = dict(os.environ, TRANSFORMER_THREADS=str(threads))
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    try:
        p = subprocess.run([cli, "bench", "model", "--model", str(model), "--prefill", str(prefill), "--decode",
                            str(decode), "--repeats", str(repeats), "--json", out], env=env, capture_output=True, text=True)
        if p.returncode != 0:
            return None, (p.stderr.strip() or p.stdout.strip() or f"exit code {p.returncode}")
        return json.loads(pathlib.Path(out).read_text())["rows"][0], None
    finally:
        pathlib.Path(out).unlink(missing_ok=True)


def ours_greedy(cli, model, ids, n, threads):
    env = dict(os.environ, TRANSFORMER_THREADS=str(threads))
    p = subprocess.run([cli, "generate", "--model", str(model), "--tokens", ",".join(map(str, ids)), "-n", str(n)],
                       env=env, capture_output=True, text=True)
    if p.returncode != 0:
        return None, p.stderr.strip()
    line = [l for l in p.stdout.splitlines() if l.strip()][-1]
    return [int(x) for x in line.replace(" ", "").split(",") if x], None


# --------------------------------------------------------------------------------------------------- llama.cpp

def open_llama(model, threads, n_ctx=1024, n_batch=512):
    from llama_cpp import Llama
    return Llama(model_path=str(model), n_threads=threads, n_threads_batch=threads, n_ctx=n_ctx, n_batch=n_batch,
                 n_ubatch=n_batch, verbose=False, logits_all=False)


def perf(llm):
    import llama_cpp
    d = llama_cpp.llama_perf_context(llm.ctx)
    return {"t_p_eval_ms": d.t_p_eval_ms, "n_p_eval": d.n_p_eval, "t_eval_ms": d.t_eval_ms, "n_eval": d.n_eval}


def perf_reset(llm):
    import llama_cpp
    llama_cpp.llama_perf_context_reset(llm.ctx)


def reset(llm):
    """Empty KV cache: Llama.reset() (n_past = 0) plus llama_memory_clear (the old llama_kv_self_clear)."""
    import llama_cpp
    llm.reset()
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm.ctx), True)


def last_logits(llm):
    """Logits of the last evaluated token (llama_get_logits_ith(-1) also waits for the computation to finish).
    Llama.eval() no longer copies logits into llm.scores when logits_all=False, so read them from the context."""
    import llama_cpp
    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),))


def llama_greedy(llm, ids, n):
    reset(llm)
    llm.eval(ids)
    out = []
    for _ in range(n):
        tok = int(np.argmax(last_logits(llm)))
        out.append(tok)
        llm.eval([tok])
    return out


def eval_all_logits(llm, tokens):
    """One llama_decode of `tokens` from position 0 with logits requested for every token (as our forward does)."""
    import llama_cpp
    reset(llm)
    llm._batch.set_batch(batch=tokens, n_past=0, logits_all=True)
    llm._ctx.decode(llm._batch)
    llama_cpp.llama_synchronize(llm.ctx)
    llm.reset()


def best(fn, repeats):
    fn()
    return min((fn() for _ in range(repeats)), key=lambda r: r[0])


def time_llama(llm, prompt, start, decode, repeats):
    """Best prefill and decode seconds (one warm-up each) plus llama.cpp's own counters for the best runs."""
    def prefill_once():
        reset(llm)
        perf_reset(llm)
        t0 = time.perf_counter()
        llm.eval(prompt)                  # n_batch = n_ubatch = len(prompt): one llama_decode, last-token logits
        last_logits(llm)
        return time.perf_counter() - t0, perf(llm)

    def prefill_all_logits_once():
        t0 = time.perf_counter()
        eval_all_logits(llm, prompt)
        return time.perf_counter() - t0, None

    def decode_once(prefix):
        reset(llm)
        llm.eval(prefix)
        tok = int(np.argmax(last_logits(llm)))
        perf_reset(llm)
        t0 = time.perf_counter()
        for _ in range(decode):
            llm.eval([tok])
            tok = int(np.argmax(last_logits(llm)))
        return time.perf_counter() - t0, perf(llm)

    pre = best(prefill_once, repeats)
    pre_all = best(prefill_all_logits_once, repeats)
    dec = best(lambda: decode_once(start), repeats)
    # Extra, not compared: decode with the 512-token prompt already in the cache.
    dec_long = best(lambda: decode_once(prompt), repeats)
    return pre, pre_all, dec, dec_long


# --------------------------------------------------------------------------------------------------- main

def fmt(v, w=9, d=1):
    return f"{v:{w}.{d}f}" if isinstance(v, (int, float)) and v is not None and math.isfinite(v) else f"{'-':>{w}}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", default=str(ROOT / ".build/release/transformer-cli"))
    ap.add_argument("--model", default=str(ROOT / "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--f32", default=str(ROOT / "models/SmolLM2-135M-Instruct.F32.gguf"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prefill", type=int, default=512)
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--check-prompt", default="The capital of France is")
    ap.add_argument("--check-tokens", type=int, default=16)
    ap.add_argument("--out", default=str(ROOT / "bench-results/peers-model.json"))
    ap.add_argument("--files", default=",".join(["Q4_1", "F32"] + REQUANT),
                    help="which files to compare (comma-separated labels; re-quantised ones are skipped when absent: "
                         "scripts/requant-smollm.sh makes them)")
    args = ap.parse_args()

    import llama_cpp
    q4 = pathlib.Path(args.model)
    f32 = pathlib.Path(args.f32)
    write_f32_gguf(q4, f32)
    wanted = args.files.split(",")
    files = [(label, path) for label, path in [("Q4_1", q4), ("F32", f32)] if label in wanted]
    for label in REQUANT:
        path = q4.with_name(q4.name.replace(".Q4_1.", f".{label}."))
        if label in wanted:
            if path.exists():
                files.append((label, path))
            else:
                print(f"[{label}] {path} absent: run scripts/requant-smollm.sh", flush=True)
    start_len = 8

    print(f"llama-cpp-python {llama_cpp.__version__}; {args.threads} threads; prefill {args.prefill} tokens in one "
          f"batch, decode {args.decode} one-token steps after an {start_len}-token start; best of {args.repeats}")
    print(f"llama.cpp system info: {llama_cpp.llama_print_system_info().decode().strip()}")
    rows = []
    greedy = {}
    for label, path in files:
        wbytes, nparams, by_type = gguf_weight_bytes(path)
        llm = open_llama(path, args.threads, n_ctx=max(1024, args.prefill + args.decode + 16), n_batch=args.prefill)
        vocab = llm.n_vocab()
        prompt = [100 + (i * 7919) % (vocab - 100) for i in range(args.prefill)]
        start = prompt[:start_len]

        # Same greedy tokens? Prompt tokenised by llama.cpp, ids fed to both engines.
        check_ids = llm.tokenize(args.check_prompt.encode(), add_bos=False, special=False)
        ll_ids = llama_greedy(llm, check_ids, args.check_tokens)
        our_ids, our_err = ours_greedy(args.cli, path, check_ids, args.check_tokens, args.threads)
        agree = None
        if our_ids is not None:
            agree = next((i for i, (a, b) in enumerate(zip(ll_ids, our_ids)) if a != b), min(len(ll_ids), len(our_ids)))
        greedy[label] = {"llama": ll_ids, "ours": our_ids}
        text = llm.detokenize(ll_ids).decode(errors="replace")
        print(f"[{label}] greedy check {args.check_prompt!r} → llama.cpp {text!r}; ours "
              + (f"agrees on the first {agree}/{args.check_tokens} tokens" if our_ids is not None else f"FAILED: {our_err}"),
              flush=True)

        (pre_s, pre_perf), (pre_all_s, _), (dec_s, dec_perf), (decl_s, _) = time_llama(llm, prompt, start, args.decode, args.repeats)
        del llm
        ours, err = run_ours(args.cli, path, args.prefill, args.decode, args.repeats, args.threads)
        if err:
            print(f"[{label}] ours failed: {err}", flush=True)
        our_params = ours["parameters"] if ours else nparams
        row = {
            "file": label, "path": str(path), "threads": args.threads,
            "prefill_tokens": args.prefill, "decode_tokens": args.decode,
            "ours_prefill_tps": ours["prefill_tps"] if ours else None,
            "ours_decode_tps": ours["decode_tps"] if ours else None,
            "ours_error": err,
            "llama_prefill_tps": args.prefill / pre_s,
            "llama_prefill_all_logits_tps": args.prefill / pre_all_s,
            "llama_decode_tps": args.decode / dec_s,
            "llama_decode_after_prefill_tps": args.decode / decl_s,
            "llama_perf_prefill_tps": 1e3 * pre_perf["n_p_eval"] / pre_perf["t_p_eval_ms"] if pre_perf["t_p_eval_ms"] else None,
            "llama_perf_decode_tps": 1e3 * dec_perf["n_eval"] / dec_perf["t_eval_ms"] if dec_perf["t_eval_ms"] else None,
            "llama_perf_prefill": pre_perf, "llama_perf_decode": dec_perf,
            "file_weight_bytes": wbytes, "file_weight_bytes_by_type": by_type, "file_parameters": nparams,
            "llama_weight_bytes_per_token": wbytes,
            # Decode multiplies every matrix straight from the file's bytes (QuantizedMatrix, mapped in place); prefill
            # dequantises panels of rows into per-worker buffers.
            "ours_weight_bytes_per_token": wbytes, "ours_parameters": our_params,
            "greedy_check_prompt_ids": check_ids, "greedy_llama": ll_ids, "greedy_ours": our_ids,
            "greedy_agree_tokens": agree,
            "file_bytes": path.stat().st_size,
            "ours_load_seconds": ours.get("load_seconds") if ours else None,
            "ours_rss_after_load_bytes": ours.get("rss_after_load_bytes") if ours else None,
            "ours_peak_rss_bytes": ours.get("peak_rss_bytes") if ours else None,
        }
        for k in ("prefill", "decode"):
            o, l = row[f"ours_{k}_tps"], row[f"llama_{k}_tps"]
            row[f"{k}_ours_over_llama"] = o / l if o else None
        row["ours_decode_weight_gbps"] = row["ours_weight_bytes_per_token"] * row["ours_decode_tps"] / 1e9 if ours else None
        row["llama_decode_weight_gbps"] = wbytes * row["llama_decode_tps"] / 1e9
        rows.append(row)

    def same(a, b):
        return None if a is None or b is None else a == b
    def g(label, engine):
        return greedy.get(label, {}).get(engine)
    cross = {"ours_Q4_1_equals_ours_F32": same(g("Q4_1", "ours"), g("F32", "ours")),
             "llama_F32_equals_ours_Q4_1": same(g("F32", "llama"), g("Q4_1", "ours")),
             "llama_Q4_1_equals_llama_F32": same(g("Q4_1", "llama"), g("F32", "llama"))}
    print("greedy cross-check (the F32 file is the Q4_1 file dequantised; llama.cpp on Q4_1 quantises activations "
          "to 8 bits, so it may drift): " + ", ".join(f"{k} = {v}" for k, v in cross.items()))
    print()
    print(f"{'file':<8}{'ours pre':>10}{'llama pre':>11}{'ratio':>7}{'ours dec':>10}{'llama dec':>11}{'ratio':>7}"
          f"{'l.perf pre':>12}{'l.perf dec':>12}{'l.pre+logits':>14}{'l.dec@512':>11}")
    for r in rows:
        print(f"{r['file']:<8}{fmt(r['ours_prefill_tps'], 10)}{fmt(r['llama_prefill_tps'], 11)}"
              f"{fmt(r['prefill_ours_over_llama'], 7, 2)}{fmt(r['ours_decode_tps'], 10)}{fmt(r['llama_decode_tps'], 11)}"
              f"{fmt(r['decode_ours_over_llama'], 7, 2)}{fmt(r['llama_perf_prefill_tps'], 12)}"
              f"{fmt(r['llama_perf_decode_tps'], 12)}{fmt(r['llama_prefill_all_logits_tps'], 14)}"
              f"{fmt(r['llama_decode_after_prefill_tps'], 11)}")
    print("(tok/s; ratio = ours ÷ llama.cpp; l.perf = llama.cpp's own counters (llama_perf_context) for the best runs; "
          "l.pre+logits = llama.cpp prefill with logits for all 512 tokens, as our forward computes them; "
          "l.dec@512 = llama.cpp decode after the 512-token prompt; both for reference only)")
    print()
    print(f"{'file':<8}{'llama MB/token':>16}{'ours MB/token':>15}{'llama GB/s':>12}{'ours GB/s':>11}   weight bytes read per decoded token")
    for r in rows:
        print(f"{r['file']:<8}{r['llama_weight_bytes_per_token'] / 1e6:16.1f}{r['ours_weight_bytes_per_token'] / 1e6:15.1f}"
              f"{fmt(r['llama_decode_weight_gbps'], 12, 2)}{fmt(r['ours_decode_weight_gbps'], 11, 2)}   "
              + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sorted(r['file_weight_bytes_by_type'].items())))
    print("(both engines' decode reads the file's tensors as stored — ours multiplies quantised blocks directly; "
          "the tied embedding counts once, as the output head)")
    print()
    print(f"{'file':<8}{'file MB':>9}{'ours load s':>13}{'RSS load MB':>13}{'peak RSS MB':>13}{'peak/file':>11}"
          "   ours, from /proc/self/status (VmRSS after load, VmHWM at the end of bench model)")
    for r in rows:
        fb, pk, ld = r["file_bytes"], r["ours_peak_rss_bytes"], r["ours_rss_after_load_bytes"]
        print(f"{r['file']:<8}{fb / 1e6:9.1f}{fmt(r['ours_load_seconds'], 13, 3)}{fmt(ld / 1e6 if ld else None, 13)}"
              f"{fmt(pk / 1e6 if pk else None, 13)}{fmt(pk / fb if pk else None, 11, 2)}")
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(
        {"benchmark": "peers-model", "llama_cpp_python": llama_cpp.__version__, "threads": args.threads,
         "repeats": args.repeats, "greedy_cross_check": cross, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
