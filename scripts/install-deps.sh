#!/usr/bin/env bash
# Installs every Debian 12 package clxp needs to build, test and benchmark.
# Idempotent; run as root (or through sudo). Only Debian's own packages are used.
#   bash scripts/install-deps.sh            build + test dependencies
#   bash scripts/install-deps.sh --bench    also python3-torch for the PyTorch comparison row
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
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#pkgs[@]} packages already installed"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
