#!/usr/bin/env bash
# Installs every Debian 12 package clxp needs to build, test and benchmark.
# Idempotent; run as root (or through sudo). Only Debian's own packages are used, except for the benchmark's
# ONNX Runtime row (onnxruntime-node from the npm registry, pinned in bench/ort/package-lock.json).
#   bash scripts/install-deps.sh            build + test dependencies
#   bash scripts/install-deps.sh --bench    also python3-torch for the PyTorch comparison row, Node.js and
#                                           bench/ort/node_modules (onnxruntime-node) for the ONNX Runtime row
set -euo pipefail

pkgs=(
  build-essential pkg-config clang llvm libclang-rt-14-dev libomp-14-dev
  libavformat-dev libavcodec-dev libavfilter-dev libavutil-dev libswscale-dev libswresample-dev
  libdnnl-dev libopenblas-dev
  libcjson-dev libpcre2-dev libutf8proc-dev libzip-dev
  ffmpeg valgrind time
)
if [[ "${1:-}" == "--bench" ]]; then
  pkgs+=(python3-torch python3-numpy libopenblas0-openmp)
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then pkgs+=(nodejs npm); fi
fi

# bench/ort/node_modules for clip_bench's ONNX Runtime row, unless the pinned version is already there.
# --ignore-scripts: the CPU binaries are in the npm package; its install script only downloads CUDA ones.
ort_install() {
  [[ "${1:-}" == "--bench" ]] || return 0
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/bench/ort"
  if (cd "$dir" && node -e "const w = require('./package.json').dependencies['onnxruntime-node'];
      if (require('onnxruntime-node/package.json').version !== w) process.exit(1); require('onnxruntime-node')") \
      >/dev/null 2>&1; then
    echo "install-deps: onnxruntime-node already installed in bench/ort"
    return 0
  fi
  echo "install-deps: npm ci in bench/ort (onnxruntime-node)"
  npm ci --prefix "$dir" --ignore-scripts --no-audit --no-fund --loglevel=error
}

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#pkgs[@]} packages already installed"
  ort_install "${1:-}"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
ort_install "${1:-}"
echo "install-deps: done"
