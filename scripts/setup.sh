#!/usr/bin/env bash
# Installs the system packages the engine links against (OpenBLAS + LAPACKE), when missing.
# Sourced by scripts/test.sh and scripts/bench.sh; safe to run again. Needs root or sudo on a fresh Debian/Ubuntu.
set -euo pipefail

need=()
pkg-config --exists openblas 2>/dev/null || need+=(libopenblas-dev)
[ -f /usr/include/lapacke.h ] || [ -f /usr/include/x86_64-linux-gnu/lapacke.h ] || need+=(liblapacke-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)

if [ ${#need[@]} -gt 0 ]; then
  echo "[setup] installing ${need[*]}" >&2
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "[setup] need root or sudo to install: ${need[*]}" >&2; exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "[setup] swift is not on PATH (Swift 6.0 or later needed)" >&2; exit 1; }
