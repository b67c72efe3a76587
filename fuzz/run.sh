#!/bin/sh
# Runs the libFuzzer targets built in BUILD (see the fuzz section of the Makefile), one at a time.
#   sh fuzz/run.sh fuzz    BUILD SECONDS "EXTRA FLAGS" target...   fuzz each target for SECONDS on
#                          BUILD/corpus/<target> (seeded from fuzz/corpus/<target>, kept between runs)
#   sh fuzz/run.sh regress BUILD 0       "EXTRA FLAGS" target...   run each target once over
#                          tests/regress/<target>/* and fuzz/corpus/<target>/* (no fuzzing)
# Prints one line per target ("fuzz_x: N execs in T s (E exec/s), no crash") and exits non-zero if any crashed,
# leaked, timed out or ran out of memory; the input is then in BUILD/artifacts/<target>/ and the log in
# BUILD/logs/<target>.log. Run from the repository root.
mode=$1
build=$2
seconds=$3
extra=$4
shift 4
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$build/logs"
failed=0
for t in "$@"; do
    bin=$build/fuzz_$t
    log=$build/logs/$t.log
    if [ ! -x "$bin" ]; then
        echo "fuzz_$t: not built ($bin)"
        failed=1
        continue
    fi
    # per-target flags: room for bigger inputs where the format needs it, more memory for images
    flags="-timeout=20 -print_final_stats=1"
    case $t in
    tokenizer_load) flags="$flags -max_len=16384" ;;
    safetensors) flags="$flags -max_len=8192" ;;
    torch) flags="$flags -max_len=32768" ;;
    image) flags="$flags -max_len=65536 -rss_limit_mb=4096" ;;
    esac
    [ -f "fuzz/dict/$t.dict" ] && flags="$flags -dict=fuzz/dict/$t.dict"
    if [ "$mode" = regress ]; then
        set --
        for f in tests/regress/"$t"/* fuzz/corpus/"$t"/*; do
            [ -f "$f" ] && set -- "$@" "$f"
        done
        if [ $# -eq 0 ]; then
            echo "fuzz_$t: nothing to replay"
            continue
        fi
        # shellcheck disable=SC2086
        if "$bin" $flags $extra "$@" >"$log" 2>&1; then
            echo "fuzz_$t: $# inputs replayed, no crash"
        else
            echo "fuzz_$t: FAILED replaying (log: $log)"
            tail -n 40 "$log"
            failed=1
        fi
        continue
    fi
    corpus=$build/corpus/$t
    artifacts=$build/artifacts/$t
    mkdir -p "$corpus" "$artifacts"
    cp -n fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null
    start=$(date +%s)
    # shellcheck disable=SC2086
    "$bin" $flags -max_total_time="$seconds" -artifact_prefix="$artifacts/" $extra "$corpus" >"$log" 2>&1
    rc=$?
    secs=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(grep -aE '^#[0-9]+' "$log" | tail -n 1 | sed -n 's/.*\(cov: [0-9]*\).*\(corp: [0-9]*\).*/\1 \2/p')
    if [ "$rc" -eq 0 ]; then
        echo "fuzz_$t: ${execs:-?} execs in $secs s (${rate:-?} exec/s, $cov), no crash"
    else
        echo "fuzz_$t: FAILED (exit $rc) after ${execs:-?} execs in $secs s; artifacts in $artifacts, log $log"
        grep -E 'ERROR|SUMMARY|runtime error|invariant failed|Test unit written' "$log" | head -n 10
        failed=1
    fi
done
exit $failed
