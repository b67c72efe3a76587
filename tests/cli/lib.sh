# Shared harness of the shell tests (tests/cli/test_*.sh, tests/hostile/test_hostile.sh), sourced by each:
#     . "$(dirname "$0")/lib.sh"        (from tests/hostile: "$(dirname "$0")/../cli/lib.sh")
# It sets BUILD (absolute), CLXP (the binary), ROOT (the repository) and cds there, exports GOMP_SPINCOUNT (what the
# CLI would re-execute itself with, src/cli/main.c: saves a process start per run), zeroes passed/failed, and
# defines the functions below. A script checks its tools (need_clxp, need_ffmpeg), makes its directory
# (make_tmp), then runs checks:
#     begin; run "$CLXP" ...; expect_rc 1; err_has '...'; finish NAME
# and ends with `report`, which prints "RESULT <passed> <failed>" and returns non-zero if a check failed.
# Plain POSIX sh: no python, no jq.

BUILD=${BUILD:-build}
case $BUILD in
/*) ;;
*) BUILD=$PWD/$BUILD ;;
esac
CLXP=$BUILD/clxp
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-10000}
export GOMP_SPINCOUNT
passed=0
failed=0

# The script cannot run at all: one failed check and the RESULT line.
give_up() {
    echo "FAIL $1"
    [ -n "$2" ] && echo "  $2"
    echo "RESULT 0 1"
    exit 1
}
need_clxp() {
    [ -x "$CLXP" ] || give_up cli_binary_exists "$CLXP is missing (build it with make)"
}
need_ffmpeg() { # need_ffmpeg WHAT: the test inputs the ffmpeg tool makes
    command -v ffmpeg >/dev/null 2>&1 ||
        give_up ffmpeg_tool_exists "the ffmpeg tool is needed to make $1 (scripts/install-deps.sh installs it)"
}
# make_tmp NAME: T = a new directory (removed at exit); H (where run/why keep their files) = T unless set
make_tmp() {
    T=$(mktemp -d "${TMPDIR:-/tmp}/clxp-$1.XXXXXX") || exit 1
    trap 'rm -rf "$T"' EXIT
    trap 'exit 1' HUP INT TERM
    H=${H:-$T}
}

# The result of the last `run`: exit status in $rc, output in $H/out and $H/err.
run() {
    "$@" >"$H/out" 2>"$H/err"
    rc=$?
}
# Problems of the current check are collected in $H/why, one per line.
begin() {
    : >"$H/why"
}
why() {
    printf '%s\n' "$*" >>"$H/why"
}
show_output() {
    echo "  --- stdout:"
    head -n 20 "$H/out" 2>/dev/null | sed 's/^/  | /'
    echo "  --- stderr:"
    head -n 20 "$H/err" 2>/dev/null | sed 's/^/  | /'
}
# Report the check named $1: ok if no problem was recorded since `begin`.
finish() {
    if [ -s "$H/why" ]; then
        failed=$((failed + 1))
        echo "FAIL $1"
        sed 's/^/  /' "$H/why"
        show_output
    else
        passed=$((passed + 1))
        echo "ok   $1"
    fi
}
report() {
    echo "RESULT $passed $failed"
    [ "$failed" -eq 0 ]
}

expect_rc() {
    [ "$rc" -eq "$1" ] || why "exit status $rc, expected $1"
}
# stdout / stderr contain a fixed string
out_has() {
    grep -F -q -e "$1" "$H/out" || why "stdout lacks '$1'"
}
err_has() {
    grep -F -q -e "$1" "$H/err" || why "stderr lacks '$1'"
}
# exactly one line on stderr, starting with "clxp: error: "
one_error_line() {
    lines=$(wc -l <"$H/err" | tr -d ' ')
    [ "$lines" -eq 1 ] || why "stderr has $lines lines, expected exactly 1"
    case $(head -n 1 "$H/err") in
    "clxp: error: "*) ;;
    *) why "stderr does not start with 'clxp: error: '" ;;
    esac
}
# same_lines A B WHAT: files A and B are identical (and not empty)
same_lines() {
    [ -s "$1" ] || why "$3: $1 is empty"
    cmp -s "$1" "$2" || why "$3: $1 and $2 differ ($(diff "$1" "$2" | head -n 4 | tr '\n' '|'))"
}
# the names in a directory, on one line / their number
files_in() {
    find "$1" -mindepth 1 -maxdepth 1 -exec basename {} \; | sort | tr '\n' ' ' | sed 's/ $//'
}
count_files() {
    find "$1" -mindepth 1 -maxdepth 1 | wc -l | tr -d ' '
}
# no temporary output (<path>.XXXXXX.part) left anywhere below a directory (default: the current one)
no_part_files() {
    left=$(find "${1:-.}" -name '*.part' | head -n 3 | tr '\n' ' ')
    [ -z "$left" ] || why "temporary files left: $left"
}
