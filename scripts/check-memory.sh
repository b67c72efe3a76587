#!/bin/sh
# `make check-memory`: the clxp command under valgrind memcheck over a representative set of runs — still images,
# a video with a categories file and every output format, audio with a CLAP model (and MS-CLAP 2023 when the shared
# golden checkpoint is there), regions (--boxes), a label bank
# saved then loaded, `info`, and failing inputs (a corrupt image among good ones, a video whose every packet is
# corrupt, a broken model) — with the tiny test models and media of a second or two made by the ffmpeg tool.
#
# A run passes when it exits as expected (0, or 1 for the failing inputs) and valgrind reports no invalid access, no
# use of uninitialised values and no definitely or indirectly lost block (--leak-check=full
# --errors-for-leak-kinds=definite,indirect --error-exitcode=99). "Possibly lost" and "still reachable" blocks are
# not errors: libgomp's thread pool and oneDNN's kernel caches live until exit by design.
# tests/valgrind.supp holds suppressions for third-party libraries only (see the comments there).
#
# OMP_NUM_THREADS=1 and GOMP_SPINCOUNT set: one OpenMP thread (valgrind serialises threads anyway) and no re-exec of
# the CLI (src/cli/main.c re-executes itself once when neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set).
# Under valgrind oneDNN sees the CPU valgrind emulates (AVX2 at most) and uses its AVX2 kernels.
#
# Usage: BUILD=build sh scripts/check-memory.sh   (make check-memory builds $(BUILD)/clxp first)
# Prints "ok   NAME (N s)" / "FAIL NAME" per run, valgrind's report for failures, and "N passed, N failed".

BUILD=${BUILD:-build}
case $BUILD in
/*) ;;
*) BUILD=$PWD/$BUILD ;;
esac
CLXP=$BUILD/clxp
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

OMP_NUM_THREADS=1
GOMP_SPINCOUNT=10000
export OMP_NUM_THREADS GOMP_SPINCOUNT

for tool in valgrind ffmpeg; do
    if ! command -v $tool >/dev/null 2>&1; then
        echo "check-memory: $tool is missing (scripts/install-deps.sh installs it)"
        exit 1
    fi
done
[ -x "$CLXP" ] || {
    echo "check-memory: $CLXP is missing (make BUILD=... first)"
    exit 1
}

CLIP=tests/data/clip-tiny-quickgelu
CLAP=tests/data/clap-tiny-unfused
IMG0=$CLIP/golden/inputs/img0_gradient_64x48.png
IMG1=$CLIP/golden/inputs/img1_checker_200x120.png
T=$(mktemp -d "${TMPDIR:-/tmp}/clxp-memcheck.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
trap 'exit 1' HUP INT TERM

VG="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect
    --show-leak-kinds=definite,indirect --num-callers=30 --suppressions=$ROOT/tests/valgrind.supp"

FF="ffmpeg -nostdin -hide_banner -loglevel error -y"
$FF -f lavfi -i testsrc=size=64x48:rate=10:duration=1 -c:v mpeg4 -g 5 "$T/clip.mkv" &&
    $FF -f lavfi -i sine=frequency=440:duration=1.5 -ar 48000 "$T/tone.wav" &&
    $FF -i "$T/clip.mkv" -c:v copy -bsf:v noise=amount=1 "$T/corrupt.mkv" || {
    echo "check-memory: cannot make the test media"
    exit 1
}
printf 'a photo of a cat\na photo of a dog\na red square\n' >"$T/labels.txt"
printf '{"frame": 0, "boxes": [{"x": 4, "y": 4, "w": 30, "h": 20, "label": "person", "score": 0.9}, {"x": -5, "y": 0, "w": 3, "h": 3}]}\n{"frame": 5, "normalized": true, "boxes": [{"x1": 0.1, "y1": 0.1, "x2": 0.9, "y2": 0.9, "label": "car"}]}\n{"frame": 900, "boxes": [{"x": 0, "y": 0, "w": 8, "h": 8}]}\n' >"$T/boxes.jsonl"
head -c 600 "$IMG1" >"$T/corrupt.png"
mkdir -p "$T/badmodel"
for f in "$CLIP"/*.json "$CLIP"/model.safetensors; do ln -s "$ROOT/$f" "$T/badmodel/"; done
rm "$T/badmodel/tokenizer.json"
printf '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}' >"$T/badmodel/tokenizer.json"

passed=0
failed=0
# check NAME EXPECTED_STATUS COMMAND...: run the command under valgrind
check() {
    name=$1 want=$2
    shift 2
    t0=$(date +%s)
    # shellcheck disable=SC2086 # $VG is a list of words
    $VG "$@" >"$T/out" 2>"$T/err"
    rc=$?
    t1=$(date +%s)
    if [ "$rc" -eq "$want" ]; then
        passed=$((passed + 1))
        echo "ok   $name ($((t1 - t0)) s)"
    else
        failed=$((failed + 1))
        if [ "$rc" -eq 99 ]; then echo "FAIL $name: valgrind reported errors"; else echo "FAIL $name: exit status $rc, expected $want"; fi
        sed 's/^/  | /' "$T/err" | head -n 80
    fi
}

check images_table_and_json 0 "$CLXP" classify -t 1 -m "$CLIP" -l "$T/labels.txt" --template 'a photo of {}.' \
    --template 'a drawing of {}.' --json "$IMG0" "$IMG1"
check video_categories_all_outputs 0 "$CLXP" classify -t 1 -m "$CLIP" -l tests/data/seed/categories_clip.txt --every 2 \
    --batch 4 -o "$T/v.jsonl" -o "$T/v.csv" -o "$T/v.srt" -o "$T/v.vtt" -o "$T/v.html" "$T/clip.mkv"
check video_scene_vf_table 0 "$CLXP" classify -t 1 -m "$CLIP" -l "$T/labels.txt" --scene 0.2 --vf 'scale=32:24' \
    --keyframes "$T/clip.mkv"
check audio_clap 0 "$CLXP" classify -t 1 -m "$CLAP" -l tests/data/seed/labels_clap_music.txt --hop 1 \
    -o "$T/a.jsonl" "$T/tone.wav"
check boxes_video_and_image 0 "$CLXP" classify -t 1 -m "$CLIP" -l "$T/labels.txt" --boxes "$T/boxes.jsonl" \
    --target person -o "$T/b.jsonl" "$T/clip.mkv" "$IMG1"
check label_bank_save 0 "$CLXP" classify -t 1 -m "$CLIP" -l "$T/labels.txt" --label-bank "$T/bank.safetensors" "$IMG0"
check label_bank_load 0 "$CLXP" classify -t 1 -m "$CLIP" --label-bank "$T/bank.safetensors" "$IMG1"
check info_clip 0 "$CLXP" info --json "$CLIP"
check fail_corrupt_image_among_good 1 "$CLXP" classify -t 1 -m "$CLIP" -l "$T/labels.txt" -o "$T/f.jsonl" "$IMG0" \
    "$T/corrupt.png" "$IMG1"
check fail_video_every_packet_corrupt 1 "$CLXP" classify -t 1 -m "$CLIP" -l "$T/labels.txt" "$T/corrupt.mkv"
# MS-CLAP 2023 (its own loader, torch zip reader, GPT-2 tower): the shared golden checkpoint when it is there
MSCLAP=${CLXP_SHARED:-../shared/golden}/msclap-tiny-2023
if [ -f "$MSCLAP/CLAP_weights_2023_tiny.pth" ]; then
    check msclap_pth_audio 0 "$CLXP" classify -t 1 -m "$MSCLAP" -l tests/data/seed/labels_clap_music.txt \
        -o "$T/ms.jsonl" "$T/tone.wav"
else
    echo "skip msclap_pth_audio: $MSCLAP/CLAP_weights_2023_tiny.pth is not there"
fi
check fail_broken_tokenizer 1 "$CLXP" classify -t 1 -m "$T/badmodel" -l "$T/labels.txt" "$IMG0"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
