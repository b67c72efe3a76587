#!/bin/sh
# `make bench`: runs the benchmarks in order (never part of `make test`).
#   clip_bench   images/s and prompts/s of ViT-B/32, ViT-B/16, ViT-L/14 and the CLIP-B/L text towers (random weights),
#                fp32 and bf16, against the same-run GEMM peak of each precision; peak RSS; label-bank build time;
#                the PyTorch row (bench/torch_clip.py, Debian's python3-torch: scripts/install-deps.sh --bench)
#   encoder_ops  per-op profile of the encoders and experimental kernels (skip with BENCH_PROFILE=0)
#   pipeline_bench  a 720p H.264 clip through the ViT-B/32 pipeline (decode-only, inference-only, clxp_run_file) and
#                the clap-htsat-unfused audio tower (skip with BENCH_PIPELINE=0; needs the ffmpeg CLI with libx264)
# Environment: BUILD (build dir, default build), OMP_NUM_THREADS (default: all online CPUs),
# BENCH_CONFIG (CLIPConfig JSON of encoder_ops and pipeline_bench), BENCH_ARGS (extra clip_bench arguments, e.g.
# --configs b32 --no-torch),
# BENCH_PIPELINE_ARGS (extra pipeline_bench arguments), TMPDIR (model and clip scratch).
BUILD=${BUILD:-build}
CONFIG=${BENCH_CONFIG:-bench/configs/clip-vit-base-patch32.json}
status=0
echo "== clip_bench"
# shellcheck disable=SC2086
"$BUILD/bench/clip_bench" $BENCH_ARGS || status=1
if [ "${BENCH_PROFILE:-1}" != 0 ]; then
    echo
    echo "== encoder_ops"
    "$BUILD/bench/encoder_ops" --config "$CONFIG" || status=1
fi
if [ "${BENCH_PIPELINE:-1}" != 0 ]; then
    echo
    echo "== pipeline_bench"
    # The CLI's short libgomp spin (src/cli/main.c) unless the user chose a wait policy; --compare-spin reruns the
    # 1 frame/s row with the other setting.
    if [ -z "${OMP_WAIT_POLICY+x}${GOMP_SPINCOUNT+x}" ]; then
        # shellcheck disable=SC2086
        GOMP_SPINCOUNT=10000 "$BUILD/bench/pipeline_bench" --config "$CONFIG" --compare-spin $BENCH_PIPELINE_ARGS ||
            status=1
    else
        # shellcheck disable=SC2086
        "$BUILD/bench/pipeline_bench" --config "$CONFIG" --compare-spin $BENCH_PIPELINE_ARGS || status=1
    fi
fi
exit $status
