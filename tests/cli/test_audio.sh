#!/bin/sh
# Tests of `clxp classify` and `clxp info` with CLAP models (audio): the live table (one "start-end" row per
# window), --hop, --start/--duration, --json, every output format in one run (-o a.jsonl -o a.csv -o a.srt
# -o a.vtt -o a.html) on the sound track of a video (stream 1), a categories file, a prompt template, a file
# damaged in the middle (a warning, then the rest), the errors of the video-only options, of a video without sound
# and of a video stream given to --stream, and `clxp info` on both CLAP test models.
#
# The inputs are generated with the ffmpeg tool (scripts/install-deps.sh installs it) into a mktemp directory,
# removed at exit; the longest is 25 s of sound. -t 1: one inference thread, so the decoding thread has a core to
# itself on small machines. The model is a tiny random-weight CLAP model: its labels are meaningless but fixed.
#
# Run by tests/run.sh as `BUILD=<build dir> sh tests/cli/test_audio.sh`; prints "ok   name" / "FAIL name" per
# check and a final "RESULT <passed> <failed>". Plain POSIX sh: no python, no jq.

. "$(dirname "$0")/lib.sh"

MODEL=tests/data/clap-tiny-unfused
FUSED=tests/data/clap-tiny-fused
L=tests/data/seed/labels_clap_music.txt
CATEGORIES=tests/data/seed/categories_clap.txt

need_clxp
need_ffmpeg "the test inputs"
make_tmp audio-test

# the windows of the table of the last run, on one line: "HH:MM:SS.mmm-HH:MM:SS.mmm ..."
windows() {
    sed -n 's/^  \([0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9][0-9][0-9]-[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9][0-9][0-9]\)  .*/\1/p' \
        "$T/out" | tr '\n' ' ' | sed 's/ $//'
}
expect_windows() {
    got=$(windows)
    [ "$got" = "$1" ] || why "windows '$got', expected '$1'"
}
# the number of lines of a file
nlines() {
    wc -l <"$1" | tr -d ' '
}
# the values of a numeric JSON member in a JSON Lines file, on one line: jsonl_values FILE KEY
jsonl_values() {
    sed -n "s/.*\"$2\":\\([-0-9.e]*\\)[,}].*/\\1/p" "$1" | tr '\n' ' ' | sed 's/ $//'
}
# well-formed SRT (numbered cues, "HH:MM:SS,mmm --> HH:MM:SS,mmm", text, blank line) that covers FROM..TO without
# gaps: check_srt FILE FROM TO (times as in the file, e.g. 00:00:25,000)
check_srt() {
    awk -v from="$2" -v to="$3" '
        BEGIN { state = 0; cue = 0; bad = ""; prev = "" }
        state == 0 { if ($0 != ++cue) { bad = "cue number " cue; exit } state = 1; next }
        state == 1 {
            if ($0 !~ /^[0-9][0-9]:[0-9][0-9]:[0-9][0-9],[0-9][0-9][0-9] --> [0-9][0-9]:[0-9][0-9]:[0-9][0-9],[0-9][0-9][0-9]$/) { bad = "time line " $0; exit }
            if (cue == 1 && $1 != from) { bad = "the first cue starts at " $1; exit }
            if (cue > 1 && $1 != prev) { bad = "cue " cue " starts at " $1 ", the previous one ends at " prev; exit }
            prev = $3; state = 2; next
        }
        state == 2 { if ($0 == "") { bad = "empty cue text"; exit } state = 3; next }
        state == 3 { if ($0 == "") state = 0; next }
        END {
            if (bad == "" && (cue == 0 || state == 1 || state == 2)) bad = "truncated"
            if (bad == "" && prev != to) bad = "the last cue ends at " prev
            if (bad != "") { print bad; exit 1 }
        }' "$1"
}

# ---- inputs ----------------------------------------------------------------------------------------------

FF="ffmpeg -nostdin -hide_banner -loglevel error -y"
WAV=$T/tone25.wav    # 25 s, 48 kHz mono
AV=$T/av25.mkv       # stream 0: video (2 fps), stream 1: the same 25 s of sound (PCM)
SILENT=$T/silent.mp4 # video only
MP3=$T/tone25.mp3    # 25 s MP3, damaged below
SOUND="aevalsrc=0.4*sin(2*PI*(300+40*t)*t):s=48000:d=25"

begin
$FF -f lavfi -i "$SOUND" -c:a pcm_s16le "$WAV" 2>"$T/err" || why "cannot make $WAV"
$FF -f lavfi -i testsrc=size=64x48:rate=2:duration=25 -f lavfi -i "$SOUND" -map 0:v -map 1:a \
    -c:v mpeg4 -q:v 5 -c:a pcm_s16le "$AV" 2>>"$T/err" || why "cannot make $AV"
$FF -f lavfi -i testsrc=size=64x48:rate=10:duration=0.5 -c:v mpeg4 "$SILENT" 2>>"$T/err" || why "cannot make $SILENT"
$FF -f lavfi -i "$SOUND" -c:a libmp3lame "$MP3" 2>>"$T/err" || why "cannot make $MP3"
# 2 KB of garbage in the middle of the MP3 (about 12.5 s)
if [ -s "$MP3" ]; then
    size=$(wc -c <"$MP3" | tr -d ' ')
    awk 'BEGIN { s = 12345; for (i = 0; i < 2048; i++) { s = (s * 1103 + 12345) % 65536; printf "%c", 65 + s % 50 } }' \
        >"$T/garbage"
    dd if="$T/garbage" of="$MP3" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null || why "cannot damage $MP3"
fi
: >"$T/out"
finish make_inputs

# clxp classify with the CLAP test model and the music labels
classify() {
    "$CLXP" classify -t 1 -m "$MODEL" -l "$L" "$@"
}

# ---- the live table: one "start-end" row per window -------------------------------------------------------

begin
run classify "$WAV"
expect_rc 0
[ "$(head -n 1 "$T/out")" = "$WAV" ] || why "the first line is not the input's name"
expect_windows "00:00:00.000-00:00:10.000 00:00:10.000-00:00:20.000 00:00:20.000-00:00:25.000"
[ "$(nlines "$T/out")" -eq 4 ] || why "expected the name and 3 rows"
grep -q '^  00:00:00\.000-00:00:10\.000  [a-z][a-z ]* [0-9.]*%' "$T/out" || why "row 1 has no label and percentage"
[ -s "$T/err" ] && why "stderr is not empty"
finish table_windows

begin
run classify -k 1 --hop 7 "$WAV"
expect_rc 0
expect_windows "00:00:00.000-00:00:10.000 00:00:07.000-00:00:17.000 00:00:14.000-00:00:24.000 00:00:21.000-00:00:25.000"
[ "$(grep -c '%' "$T/out")" -eq 4 ] || why "expected 4 rows with one label each"
finish table_hop

begin
run classify --start 00:00:05 --duration 12 "$WAV"
expect_rc 0
expect_windows "00:00:05.000-00:00:15.000 00:00:15.000-00:00:17.000"
finish table_start_duration

begin
run classify --hop 12 "$WAV"
expect_rc 0
expect_windows "00:00:00.000-00:00:10.000 00:00:12.000-00:00:22.000 00:00:24.000-00:00:25.000"
finish table_hop_longer_than_window

begin
run classify --json "$WAV"
expect_rc 0
[ "$(head -c 1 "$T/out")" = "{" ] || why "output does not start with '{'"
[ "$(tail -n 1 "$T/out")" = "}" ] || why "output does not end with '}'"
grep -q '"results":' "$T/out" || why "no \"results\""
[ "$(grep -c '"time":' "$T/out")" -eq 3 ] || why "expected 3 \"time\" members"
grep -q '"time":[[:space:]]*20,' "$T/out" || why "no \"time\": 20"
grep -q '00:00:' "$T/out" && why "table rows mixed into the JSON"
finish json_document

# ---- outputs: the sound track of a video (stream 1) -------------------------------------------------------

O=$T/out1
mkdir -p "$O"
begin
run classify -o "$O/a.jsonl" -o "$O/a.csv" -o "$O/a.srt" -o "$O/a.vtt" -o "$O/a.html" "$AV"
expect_rc 0
for f in a.jsonl a.csv a.srt a.vtt a.html; do
    [ -s "$O/$f" ] || why "$f is missing or empty"
done
# jsonl: one object per window, "media":"audio", the audio stream, start and end times
[ "$(nlines "$O/a.jsonl")" -eq 3 ] || why "a.jsonl has $(nlines "$O/a.jsonl") lines, expected 3"
[ "$(grep -c '^{.*}$' "$O/a.jsonl")" -eq 3 ] || why "a.jsonl: not one JSON object per line"
[ "$(grep -c '"media":"audio"' "$O/a.jsonl")" -eq 3 ] || why "a.jsonl: a line without \"media\":\"audio\""
[ "$(grep -c '"stream":1,' "$O/a.jsonl")" -eq 3 ] || why "a.jsonl: a line without \"stream\":1"
[ "$(jsonl_values "$O/a.jsonl" frame)" = "0 1 2" ] || why "a.jsonl frames '$(jsonl_values "$O/a.jsonl" frame)'"
[ "$(jsonl_values "$O/a.jsonl" time)" = "0 10 20" ] || why "a.jsonl times '$(jsonl_values "$O/a.jsonl" time)'"
[ "$(jsonl_values "$O/a.jsonl" end)" = "10 20 25" ] || why "a.jsonl ends '$(jsonl_values "$O/a.jsonl" end)'"
[ "$(jsonl_values "$O/a.jsonl" duration)" = "10 10 5" ] || why "a.jsonl durations '$(jsonl_values "$O/a.jsonl" duration)'"
[ "$(grep -c '"labels":\[{"label":"[^"]*","p":[0-9.e-]*}' "$O/a.jsonl")" -eq 3 ] || why "a.jsonl: a line without labels"
# csv: the summary of stream 1, counts summing to the number of windows
[ "$(head -n 1 "$O/a.csv")" = "stream_id,label,avg_probability,count" ] || why "a.csv header: $(head -n 1 "$O/a.csv")"
total=$(awk -F, 'NR > 1 { n += $NF } END { print n + 0 }' "$O/a.csv")
[ "$total" -eq 3 ] || why "a.csv counts sum to $total, expected 3"
[ "$(awk 'END { print NR }' "$O/a.csv")" -ge 2 ] || why "a.csv has no rows"
awk -F, 'NR > 1 && ($1 != "1" || $3 !~ /^[01]\.[0-9][0-9][0-9][0-9]$/ || $4 !~ /^[0-9]+$/) { bad = 1 } END { exit bad }' \
    "$O/a.csv" || why "a.csv: a row that is not stream 1 or is malformed"
# srt / vtt: cues from 0 to the end of the sound, without gaps
why_srt=$(check_srt "$O/a.srt" 00:00:00,000 00:00:25,000) || why "a.srt: $why_srt"
[ "$(head -n 1 "$O/a.vtt")" = "WEBVTT" ] || why "a.vtt: no WEBVTT header"
grep -q '^00:00:00\.000 --> ' "$O/a.vtt" || why "a.vtt: no cue at 0"
grep ' --> ' "$O/a.vtt" | tail -n 1 | grep -q ' --> 00:00:25\.000$' || why "a.vtt: the last cue does not end at 25 s"
[ "$(grep -c ' --> ' "$O/a.srt")" -eq "$(grep -c ' --> ' "$O/a.vtt")" ] || why "a.srt and a.vtt have different cues"
# html: one page, the audio stream's timeline, a row per window, no thumbnails
[ "$(head -n 1 "$O/a.html")" = "<!DOCTYPE html>" ] || why "a.html does not start with <!DOCTYPE html>"
[ "$(tail -n 1 "$O/a.html")" = "</html>" ] || why "a.html does not end with </html>"
grep -q 'Stream 1 (audio): 3 windows' "$O/a.html" || why "a.html: no 'Stream 1 (audio): 3 windows'"
grep -q '<svg' "$O/a.html" || why "a.html: no timeline chart"
for k in 0 1 2; do
    grep -q "stream 1, window $k<" "$O/a.html" || why "a.html: no row for window $k"
done
grep -q 'data:image/png' "$O/a.html" && why "a.html: a thumbnail for audio"
[ -s "$T/out" ] && why "stdout is not empty with outputs"
finish outputs_all_formats

begin
run classify -q -o "$T/wav.csv" -o "$T/wav.jsonl" "$WAV"
expect_rc 0
[ -s "$T/out" ] && why "stdout is not empty with -q"
[ -s "$T/err" ] && why "stderr is not empty with -q"
awk -F, 'NR > 1 && $1 != "0" { bad = 1 } END { exit bad || NR < 2 }' "$T/wav.csv" || why "wav.csv: stream_id is not 0"
[ "$(grep -c '"stream":0,' "$T/wav.jsonl")" -eq 3 ] || why "wav.jsonl: expected 3 windows of stream 0"
finish outputs_audio_file_stream_0

begin
run classify --stream a:0 -o "$T/a0.jsonl" "$AV"
expect_rc 0
[ "$(grep -c '"stream":1,' "$T/a0.jsonl")" -eq 3 ] || why "--stream a:0 is not stream 1"
finish stream_a0

# ---- prompts: categories file, template ---------------------------------------------------------------------

begin
run "$CLXP" classify -t 1 -m "$MODEL" -l "$CATEGORIES" -o "$T/cat.jsonl" -o "$T/cat.srt" "$WAV"
expect_rc 0
run "$CLXP" classify -t 1 -m "$MODEL" -l "$CATEGORIES" "$WAV"
expect_rc 0
expect_windows "00:00:00.000-00:00:10.000 00:00:10.000-00:00:20.000 00:00:20.000-00:00:25.000"
[ "$(grep -c '  RecordingSystem: ' "$T/out")" -eq 3 ] || why "not 3 rows with 'RecordingSystem: '"
[ "$(grep -c '  ContentType: ' "$T/out")" -eq 3 ] || why "not 3 rows with 'ContentType: '"
[ "$(grep -c '"unit":"RecordingSystem","category":' "$T/cat.jsonl")" -eq 3 ] || why "cat.jsonl: no RecordingSystem unit"
grep -q '"media":"audio"' "$T/cat.jsonl" || why "cat.jsonl: not audio"
why_srt=$(check_srt "$T/cat.srt" 00:00:00,000 00:00:25,000) || why "cat.srt: $why_srt"
grep -q 'RecordingSystem: ' "$T/cat.srt" || why "cat.srt: no unit in the cue text"
finish categories_file

begin
run classify -k 0 --json "$WAV"
expect_rc 0
cp "$T/out" "$T/plain.json"
run classify -k 0 --json --template 'This is a sound of {}.' "$WAV"
expect_rc 0
grep -q '"label":[[:space:]]*"rock music"' "$T/out" || why "the labels are not the plain labels"
grep -q 'This is a sound of' "$T/out" && why "the template text shows in the labels"
[ "$(grep -c '"probability":' "$T/out")" -eq "$(($(grep -c . "$L") * 3))" ] || why "not every label of every window"
cmp -s "$T/out" "$T/plain.json" && why "the template changed nothing"
finish template

begin
run "$CLXP" classify -t 1 -m "$MODEL" -l "$CATEGORIES" --template 'This is a sound of {}.' "$WAV"
expect_rc 1
one_error_line
finish template_with_categories_refused

# ---- damaged input: a warning with the time, then the rest ---------------------------------------------------

begin
run classify -k 1 "$MP3"
expect_rc 0
[ "$(windows | cut -d' ' -f1-2)" = "00:00:00.000-00:00:10.000 00:00:10.000-00:00:20.000" ] ||
    why "the first two windows are not 0-10 and 10-20"
windows | grep -q ' 00:00:20\.000-00:00:2[45]\.[0-9]*$' || why "the last window is not 20 s to the end"
grep -q 'corrupt audio packet at 1[1-4]\.[0-9]* s' "$T/err" || why "no warning with the time of the damage"
grep -q "$MP3" "$T/err" || why "the warning does not name the file"
finish damaged_mp3

# ---- errors -----------------------------------------------------------------------------------------------

# (the library tests cover each of them; two here for the CLI end)
for opt in "--scene 0.3" "--interval 1"; do
    name=$(echo "$opt" | sed 's/^--//; s/ .*//')
    begin
    # shellcheck disable=SC2086 # the option and its argument are two words
    run classify $opt -o "$T/never.jsonl" "$WAV"
    expect_rc 1
    one_error_line
    err_has "$WAV"
    err_has "CLAP"
    err_has "--hop"
    [ -e "$T/never.jsonl" ] && why "an output was left for a failed run"
    finish "video_option_refused_$name"
done

begin
run classify "$SILENT"
expect_rc 1
one_error_line
err_has "$SILENT"
err_has "no audio stream"
finish no_audio_stream

begin
run classify --stream v:0 "$AV"
expect_rc 1
one_error_line
err_has "not an audio stream"
run classify --stream a:1 "$AV"
expect_rc 1
one_error_line
err_has "a:1"
finish bad_audio_stream

begin
run classify --hop 0 "$WAV"
expect_rc 2 # a usage error
err_has "--hop"
finish bad_hop

# ---- clxp info -------------------------------------------------------------------------------------------

for m in "$FUSED fusion" "$MODEL rand_trunc"; do
    dir=${m% *}
    trunc=${m#* }
    begin
    run "$CLXP" info -t 1 "$dir"
    expect_rc 0
    grep -q '^kind  *clap,' "$T/out" || why "no 'kind clap' line"
    grep -q '^audio  *HTSAT, 48000 Hz, 10\.00 s windows, 64 mel bins, .*truncation '"$trunc"'$' "$T/out" ||
        why "no audio line with 48000 Hz, 10 s windows, truncation $trunc"
    grep -q '^text  *RoBERTa' "$T/out" || why "no RoBERTa text line"
    grep -q '^self-test  *passed' "$T/out" || why "the self-test did not pass"
    grep -q -i '^vision' "$T/out" && why "a vision line for a CLAP model"
    grep -q -i '^preprocess' "$T/out" && why "an image preprocessing line for a CLAP model"
    [ -s "$T/err" ] && why "stderr is not empty"
    run "$CLXP" info -t 1 --json "$dir"
    expect_rc 0
    grep -q '"kind":[[:space:]]*"clap"' "$T/out" || why "--json: no \"kind\": \"clap\""
    grep -q '"audio":[[:space:]]*{' "$T/out" || why "--json: no \"audio\" object"
    grep -q '"sample_rate":[[:space:]]*48000' "$T/out" || why "--json: no sample_rate 48000"
    grep -q '"truncation":[[:space:]]*"'"$trunc"'"' "$T/out" || why "--json: no truncation $trunc"
    grep -q '"selftest_passed":[[:space:]]*true' "$T/out" || why "--json: the self-test did not pass"
    grep -q '"vision"' "$T/out" && why "--json: a vision object for a CLAP model"
    grep -q '"preprocess"' "$T/out" && why "--json: an image preprocess object for a CLAP model"
    finish "info_$(basename "$dir")"
done

report
