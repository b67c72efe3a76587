#!/bin/sh
# Runs every test binary in $BUILD/tests and the shell tests in tests/cli/*.sh and tests/hostile/*.sh; prints "N passed, N failed".
BUILD=${BUILD:-build}
passed=0
failed=0
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    echo "== $(basename "$t")"
    out=$("$t" 2>&1)
    rc=$?
    printf '%s\n' "$out" | grep -v '^RESULT '
    line=$(printf '%s\n' "$out" | grep '^RESULT ' | tail -n 1)
    if [ -n "$line" ]; then
        p=$(echo "$line" | cut -d' ' -f2)
        f=$(echo "$line" | cut -d' ' -f3)
    else
        p=0
        f=1
        echo "FAIL $(basename "$t") exited with status $rc before printing its summary"
    fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1
        echo "FAIL $(basename "$t") exited with status $rc"
    fi
    passed=$((passed + p))
    failed=$((failed + f))
done
for s in tests/cli/test_*.sh tests/hostile/test_*.sh; do
    [ -f "$s" ] || continue
    echo "== $(basename "$s")"
    out=$(BUILD="$BUILD" sh "$s" 2>&1)
    rc=$?
    printf '%s\n' "$out" | grep -v '^RESULT '
    line=$(printf '%s\n' "$out" | grep '^RESULT ' | tail -n 1)
    if [ -n "$line" ]; then
        p=$(echo "$line" | cut -d' ' -f2)
        f=$(echo "$line" | cut -d' ' -f3)
    else
        p=0
        f=1
    fi
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
    passed=$((passed + p))
    failed=$((failed + f))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
