#!/usr/bin/env python3
"""SmolLM2-135M-Instruct re-quantised by llama.cpp, and HF transformers' greedy tokens on each file.

Run through scripts/requant-smollm.sh. Steps (each idempotent: existing outputs are kept):

  1. models/SmolLM2-135M-Instruct.F32.gguf: the Q4_1 file from scripts/get-model.sh dequantised to F32 (gguf-py;
     the same writer as scripts/bench_peers_llamacpp.py uses).
  2. models/SmolLM2-135M-Instruct.{Q4_K_M,Q5_K_M,Q6_K,Q8_0}.gguf: llama.cpp's quantizer on the F32 file
     (`llama_model_quantize` through llama-cpp-python; ftypes 15, 17, 18, 7). Q4_K_M and Q5_K_M mix formats as
     llama.cpp chooses (Q4_K / Q5_K with Q6_K for attn_v / ffn_down in some layers, the embedding in Q6_K / Q8_0).
  3. Tests/TransformerTests/Fixtures/smollm/requant_greedy.json: for every file, HF transformers'
     (`from_pretrained(dir, gguf_file=…)`, which dequantises to f32 with gguf-py) greedy continuation of each prompt
     below, and the tensor types of the file. The Swift test RequantizedModelTests compares against it (and skips
     when the model files are absent).
"""
import argparse
import collections
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

BASE = "SmolLM2-135M-Instruct"
FTYPES = {"Q4_K_M": 15, "Q5_K_M": 17, "Q6_K": 18, "Q8_0": 7}
NEW_TOKENS = 32
PROMPTS = [
    {"name": "plain_capital", "kind": "plain", "text": "The capital of France is"},
    {"name": "plain_story", "kind": "plain", "text": "Once upon a time, in a small village by the sea,"},
    {"name": "plain_code", "kind": "plain", "text": "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"},
    {"name": "chat_capital", "kind": "chat", "messages": [{"role": "user", "content": "What is the capital of France?"}]},
    {"name": "chat_colors", "kind": "chat", "messages": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Name three primary colors."}]},
]


def quantize(src: pathlib.Path, dst: pathlib.Path, ftype: int) -> None:
    import llama_cpp

    if dst.exists() and dst.stat().st_size > 0 and dst.stat().st_mtime >= src.stat().st_mtime:
        print(f"[requant] present: {dst}", file=sys.stderr)
        return
    t0 = time.perf_counter()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = 2
    part = dst.with_name(dst.name + ".part")
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(part).encode(), params)
    if rc != 0:
        sys.exit(f"[requant] llama_model_quantize({src.name} -> {dst.name}, ftype {ftype}) failed: {rc}")
    part.replace(dst)
    print(f"[requant] wrote {dst} ({dst.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


def tensor_types(path: pathlib.Path) -> dict:
    import gguf

    counts = collections.Counter(t.tensor_type.name for t in gguf.GGUFReader(str(path)).tensors)
    return dict(sorted(counts.items()))


def hf_greedy(path: pathlib.Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    out = {}
    for p in PROMPTS:
        if p["kind"] == "plain":
            ids = tok.encode(p["text"], add_special_tokens=False)
        else:
            ids = tok.apply_chat_template(p["messages"], add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "input_ids"):
                ids = ids["input_ids"]
        x = torch.tensor([ids])
        with torch.no_grad():
            gen = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=NEW_TOKENS,
                                 min_new_tokens=NEW_TOKENS, eos_token_id=None, pad_token_id=tok.eos_token_id)[0, len(ids):]
        out[p["name"]] = {"ids": list(map(int, ids)), "greedy": list(map(int, gen))}
        print(f"  {path.name} {p['name']}: {tok.decode(gen[:20])!r}", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="the Q4_1 GGUF (scripts/get-model.sh)")
    ap.add_argument("--no-fixture", action="store_true", help="only write the model files")
    args = ap.parse_args()
    from bench_peers_llamacpp import write_f32_gguf

    src = pathlib.Path(args.model)
    models = ROOT / "models"
    f32 = models / f"{BASE}.F32.gguf"
    write_f32_gguf(src, f32)
    files = {}
    for name, ftype in FTYPES.items():
        dst = models / f"{BASE}.{name}.gguf"
        quantize(f32, dst, ftype)
        files[name] = dst
    if args.no_fixture:
        return
    fixture = {"generator": "scripts/requant_smollm.py", "new_tokens": NEW_TOKENS, "prompts": PROMPTS, "files": {}}
    for name, path in files.items():
        fixture["files"][name] = {"file": path.name, "bytes": path.stat().st_size, "tensor_types": tensor_types(path),
                                  "hf": hf_greedy(path)}
    dest = ROOT / "Tests/TransformerTests/Fixtures/smollm/requant_greedy.json"
    dest.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"[requant] wrote {dest}", file=sys.stderr)


if __name__ == "__main__":
    main()
