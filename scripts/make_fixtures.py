#!/usr/bin/env python3
"""Writes the reference fixtures the Swift tests compare against.

PyTorch (and later HF transformers) compute every expected output here; the Swift side only reads the
.safetensors files, so the tests and CI need no Python. Run with `scripts/make_fixtures.sh` (makes a venv with
torch), or directly with a Python that has torch + safetensors:

    python3 scripts/make_fixtures.py [group ...]      # groups: tensor, attention, rope (default: all)

Each group lives in scripts/fixtures/<group>.py and exposes `generate(root: pathlib.Path)`.
"""
import importlib
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

GROUPS = ["tensor", "attention", "rope", "gguf", "models", "tokenizer", "smollm", "families", "minilm", "templates", "spm",
          "training", "serve"]


def main(argv):
    groups = argv or GROUPS
    for g in groups:
        if g not in GROUPS:
            sys.exit(f"unknown fixture group {g!r}; known: {', '.join(GROUPS)}")
        mod = importlib.import_module(f"fixtures.{g}")
        print(f"[fixtures] {g} ...", flush=True)
        mod.generate(ROOT)


if __name__ == "__main__":
    main(sys.argv[1:])
