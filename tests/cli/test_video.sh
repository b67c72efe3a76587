#!/bin/sh
# Tests of `clxp classify` on videos: the live table (one row per sampled frame), --json, the frame selection
# options end to end (--every, --interval, --keyframes, --start/--duration, --scene), every output format in one
# run (-o a.jsonl -o b.csv -o c.srt -o d.vtt -o e.html), no overwrite without -y, bad output paths (missing
# directory, the input itself), and bad inputs (audio only, bad --vf, bad --stream): exit status 1 and one
# "clxp: error: " line.
#
# The videos are generated with the ffmpeg tool (scripts/install-deps.sh installs it) into a mktemp directory,
# removed at exit; they are tiny (64x48, a few seconds). -t 1: one inference thread, so the decoding thread has a
# core to itself on small machines.
#
# Run by tests/run.sh as `BUILD=<build dir> sh tests/cli/test_video.sh`; prints "ok   name" / "FAIL name" per
# check and a final "RESULT <passed> <failed>". Plain POSIX sh: no python, no jq.

. "$(dirname "$0")/lib.sh"

MODEL=tests/data/clip-tiny-quickgelu

need_clxp
need_ffmpeg "the test videos"
make_tmp video-test

# the table rows of the last run: "  HH:MM:SS.mmm  #FRAME ..." -> "HH:MM:SS.mmm FRAME"
rows() {
    sed -n 's/^  \([0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9][0-9][0-9]\)  #\([0-9][0-9]*\) .*/\1 \2/p' "$T/out"
}
# expect_frames "0 5 10": the frame numbers of the table rows, in order
expect_frames() {
    got=$(rows | cut -d' ' -f2 | tr '\n' ' ' | sed 's/ $//')
    [ "$got" = "$1" ] || why "frames '$got', expected '$1'"
}
seq_frames() { # seq_frames FIRST STEP LAST
    awk -v a="$1" -v s="$2" -v b="$3" 'BEGIN { for (i = a; i <= b; i += s) printf "%s%d", (i > a ? " " : ""), i }'
}
# the files of a directory, with their checksums
sums() {
    (cd "$1" && cksum ./* 2>/dev/null)
}

# ---- inputs ----------------------------------------------------------------------------------------------

FF="ffmpeg -nostdin -hide_banner -loglevel error -y"
CLIP=$T/clip.mp4
SCENE=$T/scene.mp4
WAV=$T/sine.wav
L=$T/labels.txt
printf 'a photo of a cat\na photo of a dog\na red square\n' >"$L"

begin
# 2 s at 25 fps, key frames at 0 and 1 s
$FF -f lavfi -i testsrc=size=64x48:rate=25:duration=2 -c:v mpeg4 -q:v 5 -g 25 "$CLIP" 2>"$T/err" ||
    why "cannot make $CLIP"
# red 2 s, blue 2 s, test pattern 2 s at 10 fps: cuts at 2 and 4 s
$FF -f lavfi -i color=red:size=64x48:rate=10:duration=2 -f lavfi -i color=blue:size=64x48:rate=10:duration=2 \
    -f lavfi -i testsrc=size=64x48:rate=10:duration=2 -filter_complex '[0:v][1:v][2:v]concat=n=3:v=1:a=0[v]' \
    -map '[v]' -c:v mpeg4 -q:v 2 -g 100 "$SCENE" 2>>"$T/err" || why "cannot make $SCENE"
$FF -f lavfi -i sine=frequency=440:duration=0.5 "$WAV" 2>>"$T/err" || why "cannot make $WAV"
: >"$T/out"
finish make_inputs

# clxp classify with the test model and labels
classify() {
    "$CLXP" classify -t 1 -m "$MODEL" -l "$L" "$@"
}

# ---- the live table and --json -----------------------------------------------------------------------------

begin
run classify "$CLIP"
expect_rc 0
[ "$(head -n 1 "$T/out")" = "$CLIP" ] || why "the first line is not the input's name"
expect_frames "$(seq_frames 0 1 49)"
[ "$(wc -l <"$T/out" | tr -d ' ')" -eq 51 ] || why "expected the name and 50 rows"
[ "$(rows | sed -n '2p')" = "00:00:00.040 1" ] || why "row 2 is not 00:00:00.040 #1"
[ "$(rows | tail -n 1)" = "00:00:01.960 49" ] || why "the last row is not 00:00:01.960 #49"
grep -q '^  00:00:00.000  #0  *a [a-z ]* [0-9.]*%' "$T/out" || why "row 1 has no label and percentage"
[ -s "$T/err" ] && why "stderr is not empty"
finish table_one_row_per_frame

begin
run classify -k 1 --every 5 "$CLIP"
expect_rc 0
expect_frames "$(seq_frames 0 5 45)"
[ "$(grep -c '%' "$T/out")" -eq 10 ] || why "expected 10 rows with one label each"
finish table_every

begin
run classify --json --every 5 "$CLIP"
expect_rc 0
[ "$(head -c 1 "$T/out")" = "{" ] || why "output does not start with '{'"
[ "$(tail -n 1 "$T/out")" = "}" ] || why "output does not end with '}'"
[ "$(tr -cd '{' <"$T/out" | wc -c)" -eq "$(tr -cd '}' <"$T/out" | wc -c)" ] || why "unbalanced braces"
[ "$(tr -cd '[' <"$T/out" | wc -c)" -eq "$(tr -cd ']' <"$T/out" | wc -c)" ] || why "unbalanced brackets"
grep -q '"results":' "$T/out" || why "no \"results\""
[ "$(grep -c '"time":' "$T/out")" -eq 10 ] || why "expected 10 \"time\" members"
[ "$(grep -c '"frame":' "$T/out")" -eq 10 ] || why "expected 10 \"frame\" members"
grep -q '"frame":[[:space:]]*45,' "$T/out" || why "no \"frame\": 45"
grep -q '"time":[[:space:]]*1.8,' "$T/out" || why "no \"time\": 1.8"
grep -q "\"file\":[[:space:]]*\"$CLIP\"" "$T/out" || why "no \"file\": \"$CLIP\""
grep -q '00:00:' "$T/out" && why "table rows mixed into the JSON"
finish json_document

# ---- frame selection options -------------------------------------------------------------------------------

# TIME arguments in FFmpeg's syntax; the selections combine (the library tests cover each one in detail)
begin
run classify --start 00:00:01 --duration 0:0.5 --interval 0.2 "$CLIP"
expect_rc 0
expect_frames "25 30 35"
[ "$(rows | head -n 1 | cut -d' ' -f1)" = "00:00:01.000" ] || why "the first row is not at 1 s"
finish start_duration_interval

begin
run classify --keyframes "$CLIP"
expect_rc 0
expect_frames "0 25"
finish keyframes

begin
run classify --scene 0.3 "$SCENE"
expect_rc 0
[ "$(rows | tr '\n' ' ')" = "00:00:02.000 20 00:00:04.000 40 " ] || why "expected the cuts at 2 s (#20) and 4 s (#40)"
finish scene

begin
run classify --vf 'scale=32:24' --every 25 --json "$CLIP"
expect_rc 0
[ "$(grep -c '"frame":' "$T/out")" -eq 2 ] || why "expected 2 results"
finish vf

# ---- outputs -------------------------------------------------------------------------------------------

O=$T/out1
mkdir -p "$O"
begin
run classify --every 5 -o "$O/a.jsonl" -o "$O/b.csv" -o "$O/c.srt" -o "$O/d.vtt" -o "$O/e.html" "$CLIP"
expect_rc 0
for f in a.jsonl b.csv c.srt d.vtt e.html; do
    [ -s "$O/$f" ] || why "$f is missing or empty"
done
[ "$(count_files "$O")" -eq 5 ] || why "other files than the 5 outputs in $O: $(files_in "$O")"
# jsonl: one object per sampled frame, in order
[ "$(wc -l <"$O/a.jsonl" | tr -d ' ')" -eq 10 ] || why "a.jsonl has $(wc -l <"$O/a.jsonl") lines, expected 10"
[ "$(grep -c '^{.*}$' "$O/a.jsonl")" -eq 10 ] || why "a.jsonl: not one JSON object per line"
[ "$(grep -c '"time":' "$O/a.jsonl")" -eq 10 ] || why "a.jsonl: a line without \"time\""
got=$(sed -n 's/.*"frame":\([0-9]*\),.*/\1/p' "$O/a.jsonl" | tr '\n' ' ' | sed 's/ $//')
[ "$got" = "$(seq_frames 0 5 45)" ] || why "a.jsonl frames '$got'"
grep -q '"frame":45,"pts":[0-9]*,"time":1.8,"duration":0.04,' "$O/a.jsonl" || why "a.jsonl: no frame 45 at 1.8 s"
# csv: the summary header, counts summing to the number of frames
[ "$(head -n 1 "$O/b.csv")" = "stream_id,label,avg_probability,count" ] || why "b.csv header: $(head -n 1 "$O/b.csv")"
total=$(awk -F, 'NR > 1 { n += $NF } END { print n + 0 }' "$O/b.csv")
[ "$total" -eq 10 ] || why "b.csv counts sum to $total, expected 10"
awk -F, 'NR > 1 && ($1 != "0" || $3 !~ /^[01]\.[0-9][0-9][0-9][0-9]$/ || $4 !~ /^[0-9]+$/) { bad = 1 } END { exit bad }' \
    "$O/b.csv" || why "b.csv: a malformed row"
# srt: numbered cues "HH:MM:SS,mmm --> HH:MM:SS,mmm", then text, then a blank line
awk '
    BEGIN { state = 0; cue = 0; bad = 0 }
    state == 0 { if ($0 != ++cue) { bad = 1; exit } state = 1; next }
    state == 1 { if ($0 !~ /^[0-9][0-9]:[0-9][0-9]:[0-9][0-9],[0-9][0-9][0-9] --> [0-9][0-9]:[0-9][0-9]:[0-9][0-9],[0-9][0-9][0-9]$/) { bad = 1; exit } state = 2; next }
    state == 2 { if ($0 == "") { bad = 1; exit } state = 3; next }
    state == 3 { if ($0 == "") state = 0; next }
    END { exit bad || cue == 0 || state == 1 || state == 2 }' "$O/c.srt" || why "c.srt is not well-formed"
head -n 2 "$O/c.srt" | tail -n 1 | grep -q '^00:00:00,000 --> ' || why "c.srt: the first cue does not start at 0"
# vtt: WEBVTT header, cues "HH:MM:SS.mmm --> HH:MM:SS.mmm"
[ "$(head -n 1 "$O/d.vtt")" = "WEBVTT" ] || why "d.vtt: no WEBVTT header"
grep -q '^00:00:00\.000 --> [0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9][0-9][0-9]$' "$O/d.vtt" || why "d.vtt: no cue at 0"
grep -q ' --> ' "$O/d.vtt" || why "d.vtt: no cue"
grep ' --> ' "$O/d.vtt" | grep -v -q '^[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9][0-9][0-9] --> [0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9][0-9][0-9]$' &&
    why "d.vtt: a malformed cue time line"
[ "$(grep -c ' --> ' "$O/c.srt")" -eq "$(grep -c ' --> ' "$O/d.vtt")" ] || why "c.srt and d.vtt have different cues"
# html: one page, a thumbnail per frame
[ "$(head -n 1 "$O/e.html")" = "<!DOCTYPE html>" ] || why "e.html does not start with <!DOCTYPE html>"
[ "$(tail -n 1 "$O/e.html")" = "</html>" ] || why "e.html does not end with </html>"
[ "$(grep -o 'data:image/png;base64' "$O/e.html" | wc -l | tr -d ' ')" -eq 10 ] || why "e.html: expected 10 thumbnails"
finish outputs_all_formats

sums "$O" >"$T/sums_before"
begin
run classify --every 10 -o "$O/a.jsonl" -o "$O/b.csv" -o "$O/c.srt" -o "$O/d.vtt" -o "$O/e.html" "$CLIP"
expect_rc 1
one_error_line
err_has "$O/a.jsonl"
err_has "exists"
err_has "-y"
sums "$O" >"$T/sums_after"
cmp -s "$T/sums_before" "$T/sums_after" || why "the existing outputs changed (or files were added)"
finish no_overwrite_without_y

# only the last output exists: the ones before it must not be left behind either
begin
rm -f "$O/a.jsonl" "$O/b.csv" "$O/c.srt" "$O/d.vtt"
run classify --every 10 -o "$O/a.jsonl" -o "$O/b.csv" -o "$O/c.srt" -o "$O/d.vtt" -o "$O/e.html" "$CLIP"
expect_rc 1
one_error_line
err_has "$O/e.html"
[ "$(files_in "$O")" = "e.html" ] || why "files left in $O: $(files_in "$O")"
finish no_overwrite_leaves_nothing

begin
run classify -y --every 10 -o "$O/a.jsonl" -o "$O/b.csv" -o "$O/c.srt" -o "$O/d.vtt" -o "$O/e.html" "$CLIP"
expect_rc 0
[ "$(wc -l <"$O/a.jsonl" | tr -d ' ')" -eq 5 ] || why "a.jsonl was not rewritten with 5 frames"
total=$(awk -F, 'NR > 1 { n += $NF } END { print n + 0 }' "$O/b.csv")
[ "$total" -eq 5 ] || why "b.csv counts sum to $total, expected 5"
[ "$(grep -o 'data:image/png;base64' "$O/e.html" | wc -l | tr -d ' ')" -eq 5 ] || why "e.html was not rewritten"
[ "$(count_files "$O")" -eq 5 ] || why "files left in $O: $(files_in "$O")"
finish overwrite_with_y

begin
run classify -o "$T/no-such-dir/x.jsonl" "$CLIP"
expect_rc 1
one_error_line
err_has "$T/no-such-dir"
err_has "does not exist"
[ -e "$T/no-such-dir" ] && why "$T/no-such-dir was created"
finish output_in_missing_directory

cksum <"$CLIP" >"$T/clip_sum"
begin
run classify --format jsonl -o "$CLIP" "$CLIP"
expect_rc 1
one_error_line
err_has "$CLIP"
cksum <"$CLIP" | cmp -s - "$T/clip_sum" || why "the input was changed"
finish output_is_the_input

begin
run classify -y --format jsonl -o "$T/./clip.mp4" "$CLIP"
expect_rc 1
one_error_line
cksum <"$CLIP" | cmp -s - "$T/clip_sum" || why "the input was changed"
ln -s "$CLIP" "$T/link.jsonl"
run classify -y -o "$T/link.jsonl" "$CLIP"
expect_rc 1
one_error_line
cksum <"$CLIP" | cmp -s - "$T/clip_sum" || why "the input was changed through a symbolic link"
no_part_files "$T"
finish output_is_the_input_other_name

# ---- several inputs in one run ------------------------------------------------------------------------------

# the csv summary keeps each input's streams apart: its rows are those of the separate runs, prefixed by the input
begin
M=$T/multi
mkdir -p "$M"
run classify --every 5 -o "$M/clip.csv" "$CLIP"
expect_rc 0
run classify --every 5 -o "$M/scene.csv" "$SCENE"
expect_rc 0
run classify --every 5 -o "$M/both.csv" -o "$M/both.html" "$CLIP" "$SCENE"
expect_rc 0
[ "$(head -n 1 "$M/both.csv")" = "input,stream_id,label,avg_probability,count" ] ||
    why "both.csv header: $(head -n 1 "$M/both.csv")"
{
    echo "input,stream_id,label,avg_probability,count"
    sed 1d "$M/clip.csv" | sed "s|^|$CLIP,|"
    sed 1d "$M/scene.csv" | sed "s|^|$SCENE,|"
} >"$M/expected.csv"
cmp -s "$M/expected.csv" "$M/both.csv" || why "both.csv is not the two separate summaries: $(diff "$M/expected.csv" "$M/both.csv" | head -n 6)"
[ "$(grep -c '<h2>.*: stream 0 (video)' "$M/both.html")" -eq 2 ] || why "both.html has not one chart per input"
# subtitles follow one timeline: two inputs are refused before anything is written
run classify --every 5 -o "$M/both.srt" -o "$M/x.jsonl" "$CLIP" "$SCENE"
expect_rc 1
one_error_line
err_has "$M/both.srt: subtitles follow one input and 2 were given"
[ -e "$M/both.srt" ] || [ -e "$M/x.jsonl" ] && why "an output was written"
no_part_files "$M"
finish several_inputs

# --keep-going: bad inputs are reported one line each and skipped; the outputs hold exactly the good inputs'
# results (the same as a run over the good inputs alone); exit status 1. Without it the first bad input stops the
# run and nothing is written.
begin
K=$T/keep
mkdir -p "$K"
IMG=tests/data/clip-tiny-quickgelu/golden/inputs/img0_gradient_64x48.png
head -c 600 tests/data/clip-tiny-quickgelu/golden/inputs/img1_checker_200x120.png >"$K/bad.png"
echo 'not a video' >"$K/notes.mp4"
run classify --every 5 -o "$K/good.jsonl" -o "$K/good.csv" "$IMG" "$CLIP" "$SCENE"
expect_rc 0
run classify --every 5 --keep-going -o "$K/all.jsonl" -o "$K/all.csv" "$IMG" "$K/bad.png" "$CLIP" "$K/notes.mp4" \
    "$SCENE"
expect_rc 1
[ "$(grep -c '^clxp: error: ' "$T/err")" -eq 2 ] || why "expected 2 error lines"
err_has "clxp: error: $K/bad.png: not a decodable image"
err_has "clxp: error: $K/notes.mp4: cannot open"
err_has "clxp: 2 of 5 inputs failed (--keep-going); the outputs hold the results of the others"
cmp -s "$K/good.jsonl" "$K/all.jsonl" || why "all.jsonl differs from the good inputs' results"
[ "$(sed 1d "$K/good.csv" | wc -l)" -gt 0 ] || why "good.csv has no rows"
sed 1d "$K/good.csv" >"$K/g.rows"
sed 1d "$K/all.csv" >"$K/a.rows"
cmp -s "$K/g.rows" "$K/a.rows" || why "all.csv differs from the good inputs' summary"
run classify --every 5 -o "$K/stop.jsonl" "$IMG" "$K/bad.png" "$CLIP"
expect_rc 1
one_error_line
[ -e "$K/stop.jsonl" ] && why "stop.jsonl was written without --keep-going"
no_part_files "$K"
finish keep_going

# A directory input: the media files below it, recursively and in name order; text files, hidden entries and
# links to directories are left out; the results equal those of the same files named one by one.
begin
D=$T/library
mkdir -p "$D/b/c" "$D/.hidden" "$D/a"
cp "$CLIP" "$D/b/c/clip.mp4"
cp "$SCENE" "$D/a/scene.mp4"
cp tests/data/clip-tiny-quickgelu/golden/inputs/img0_gradient_64x48.png "$D/z.png"
cp "$CLIP" "$D/.hidden/clip.mp4"
printf 'notes\n' >"$D/README.txt"
printf 'notes\n' >"$D/info.nfo"
ln -s "$D" "$D/b/loop"
run classify --every 5 -o "$T/dir.jsonl" "$D"
expect_rc 0
run classify --every 5 -o "$T/files.jsonl" "$D/a/scene.mp4" "$D/b/c/clip.mp4" "$D/z.png"
expect_rc 0
cmp -s "$T/dir.jsonl" "$T/files.jsonl" || why "the directory's results differ from the files': $(diff "$T/dir.jsonl" "$T/files.jsonl" | head -n 4)"
mkdir -p "$T/nothing"
printf 'x\n' >"$T/nothing/a.txt"
run classify "$T/nothing"
expect_rc 1
one_error_line
err_has "$T/nothing: a directory without any image, video or audio file"
finish directory_input

begin
run classify -q --every 10 -o "$T/q.jsonl" "$CLIP"
expect_rc 0
[ -s "$T/out" ] && why "stdout is not empty with -q"
[ -s "$T/err" ] && why "stderr is not empty with -q"
[ "$(wc -l <"$T/q.jsonl" | tr -d ' ')" -eq 5 ] || why "q.jsonl does not have 5 lines"
finish quiet_with_output

# ---- bad inputs ------------------------------------------------------------------------------------------

begin
run classify "$WAV"
expect_rc 1
one_error_line
err_has "$WAV"
err_has "no video stream"
err_has "CLAP"
finish audio_only_input

begin
run classify -o "$T/audio.jsonl" "$WAV"
expect_rc 1
one_error_line
[ -e "$T/audio.jsonl" ] && why "an output was left for a failed run"
no_part_files "$T"
finish audio_only_input_no_output_left

begin
run classify --vf 'nosuchfilter=1' "$CLIP"
expect_rc 1
one_error_line
err_has "nosuchfilter"
err_has "filter graph"
finish bad_vf

begin
run classify --stream v:9 "$CLIP"
expect_rc 1
one_error_line
err_has "$CLIP"
err_has "v:9"
finish bad_stream

report
