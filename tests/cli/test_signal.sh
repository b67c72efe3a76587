#!/bin/sh
# SIGINT / SIGTERM during a long run: the run stops, every output is closed validly with the results so far
# (complete JSONL lines, a CSV summary), no temporary file is left, and the exit status is 128 + signal.
BUILD=${BUILD:-build}
CLXP="$BUILD/clxp"
MODEL=tests/data/clip-tiny-quickgelu
LABELS=tests/data/seed/labels_clip_person.txt
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

ok() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

if ! command -v ffmpeg >/dev/null 2>&1; then
    fail setup "ffmpeg CLI not found (scripts/install-deps.sh installs it)"
    echo "RESULT $passed $failed"
    exit 1
fi
ffmpeg -v error -y -f lavfi -i "testsrc2=size=320x240:rate=25:duration=300" -c:v mpeg4 -q:v 10 "$tmp/long.mkv" ||
    fail setup "cannot generate the test video"

# The run is interrupted once it has written some results (polls the JSONL's temporary file).
interrupt_run() { # $1 = signal name, $2 = expected status
    sig=$1
    want=$2
    out="$tmp/$sig"
    "$CLXP" classify -q -m "$MODEL" -l "$LABELS" -o "$out.jsonl" -o "$out.csv" "$tmp/long.mkv" 2>"$out.err" &
    pid=$!
    i=0
    while [ $i -lt 600 ]; do
        part=$(ls "$out".jsonl.*.part 2>/dev/null | head -n 1)
        [ -n "$part" ] && [ "$(wc -l <"$part")" -ge 20 ] && break
        sleep 0.1
        i=$((i + 1))
    done
    kill -"$sig" $pid
    wait $pid
    rc=$?
    name="interrupt_$sig"
    if [ "$rc" -ne "$want" ]; then
        fail "$name" "exit status $rc, expected $want ($(cat "$out.err"))"
        return
    fi
    if [ ! -f "$out.jsonl" ] || [ ! -f "$out.csv" ]; then
        fail "$name" "outputs missing after the interruption"
        return
    fi
    if ls "$tmp"/*.part >/dev/null 2>&1; then
        fail "$name" "temporary files left behind"
        return
    fi
    lines=$(wc -l <"$out.jsonl")
    # every line is a complete record, and the run did not go to the end (7500 frames)
    complete=$(grep -c '^{"input":.*"labels":\[.*\]}$' "$out.jsonl")
    if [ "$lines" -lt 20 ] || [ "$lines" -ge 7500 ] || [ "$complete" -ne "$lines" ]; then
        fail "$name" "$lines lines, $complete complete"
        return
    fi
    # the CSV summary counts exactly the frames written to the JSONL
    total=$(tail -n +2 "$out.csv" | awk -F, '{s += $NF} END {print s}')
    if [ "$total" != "$lines" ]; then
        fail "$name" "csv counts $total frames, jsonl has $lines"
        return
    fi
    grep -q "interrupted by signal" "$out.err" || {
        fail "$name" "no interruption message: $(cat "$out.err")"
        return
    }
    ok "$name"
}

interrupt_run INT 130
interrupt_run TERM 143
echo "RESULT $passed $failed"
[ "$failed" -eq 0 ]
