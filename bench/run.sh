#!/bin/sh
# `make bench`: runs the benchmarks in order (never part of `make test`).
#   clip_bench   end-to-end images/s and prompts/s of ViT-B/32 with random weights, GEMM peak and ratio
#   encoder_ops  per-op profile of the encoders and experimental kernels (skip with BENCH_PROFILE=0)
# Environment: BUILD (build dir, default build), OMP_NUM_THREADS (default: all online CPUs),
# BENCH_CONFIG (CLIPConfig JSON), BENCH_ARGS (extra clip_bench arguments, e.g. --json), TMPDIR (model scratch).
BUILD=${BUILD:-build}
CONFIG=${BENCH_CONFIG:-bench/configs/clip-vit-base-patch32.json}
status=0
echo "== clip_bench"
# shellcheck disable=SC2086
"$BUILD/bench/clip_bench" --config "$CONFIG" $BENCH_ARGS || status=1
if [ "${BENCH_PROFILE:-1}" != 0 ]; then
    echo
    echo "== encoder_ops"
    "$BUILD/bench/encoder_ops" --config "$CONFIG" || status=1
fi
exit $status
