#!/bin/sh
# Tests of the combined video + audio run, `clxp classify --clip DIR --labels-clip FILE --clap DIR --labels-clap FILE`
# (clxp_run_file_av): one pass over a file with a CLIP model on its pictures and a CLAP model on its sound.
#  - the results of each stream are exactly those of separate single-model runs (the jsonl lines byte for byte,
#    so the scores are equal after rounding to 6 decimals), each stream in time order;
#  - one csv summary with the rows of both streams (each with its own labels), equal to the two separate summaries
#    put together; srt, vtt and html outputs of the same run are well-formed; the live table shows both models'
#    labels;
#  - a file without sound (and a still image) runs with the CLIP model alone, a file without pictures with the CLAP
#    model alone, with a warning; --start/--duration apply to both streams;
#  - errors: --clip given a CLAP model, --clap given a CLIP model, -l or a missing --labels-clap with both models,
#    --label-bank with both.
#
# Inputs are generated with the ffmpeg tool into a mktemp directory removed at exit (12 s of 96x64 video at 10 fps
# with a 44.1 kHz stereo sound track). The models are the tiny random-weight test models (meaningless labels).
# Run by tests/run.sh as `BUILD=<build dir> sh tests/cli/test_av.sh`; prints "ok   name" / "FAIL name" per check
# and a final "RESULT <passed> <failed>". Plain POSIX sh.

. "$(dirname "$0")/lib.sh"

CLIP=tests/data/clip-tiny-quickgelu
CLAP=tests/data/clap-tiny-unfused
LV=tests/data/seed/labels_clip_person.txt
LA=tests/data/seed/labels_clap_music.txt
CA=tests/data/seed/categories_clap.txt

need_clxp
need_ffmpeg "the test inputs"
make_tmp av-test

# the "time" values of a jsonl file in order are non-decreasing
times_sorted() {
    sed -n 's/.*"time":\([-0-9.e]*\)[,}].*/\1/p' "$1" | awk 'NR > 1 && $1 + 0 < prev + 0 { bad = 1 } { prev = $1 } END { exit bad }'
}

FF="ffmpeg -nostdin -hide_banner -loglevel error -y"
$FF -f lavfi -i "testsrc=size=96x64:rate=10:duration=12" -f lavfi -i "sine=frequency=440:sample_rate=44100:duration=12" \
    -ac 2 -c:v mpeg4 -g 12 -c:a pcm_s16le "$T/av.mkv" &&
    $FF -f lavfi -i "testsrc=size=96x64:rate=10:duration=3" -c:v mpeg4 "$T/video_only.mkv" &&
    $FF -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=4" -c:a pcm_s16le "$T/audio_only.wav" &&
    $FF -f lavfi -i "testsrc=size=96x64" -frames:v 1 "$T/still.png" || {
    echo "FAIL make_inputs"
    echo "RESULT 0 1"
    exit 1
}

BOTH="--clip $CLIP --labels-clip $LV --clap $CLAP --labels-clap $LA"

# ---- the combined run equals two separate runs ----------------------------------------------------------------

begin
run "$CLXP" classify $BOTH --interval 0.5 --hop 4 -k 3 -t 1 -o "$T/c.jsonl" -o "$T/c.csv" -o "$T/c.srt" \
    -o "$T/c.vtt" -o "$T/c.html" "$T/av.mkv"
expect_rc 0
c_rc=$rc
run "$CLXP" classify -m $CLIP -l $LV --interval 0.5 -k 3 -t 1 -o "$T/v.jsonl" -o "$T/v.csv" "$T/av.mkv"
expect_rc 0
run "$CLXP" classify -m $CLAP -l $LA --hop 4 -k 3 -t 1 -o "$T/a.jsonl" -o "$T/a.csv" "$T/av.mkv"
expect_rc 0
grep '"media":"video"' "$T/c.jsonl" >"$T/cv.jsonl"
grep '"media":"audio"' "$T/c.jsonl" >"$T/ca.jsonl"
same_lines "$T/cv.jsonl" "$T/v.jsonl" "video results"
same_lines "$T/ca.jsonl" "$T/a.jsonl" "audio results"
[ "$(wc -l <"$T/v.jsonl")" -eq 24 ] || why "video: $(wc -l <"$T/v.jsonl") frames, expected 24 (12 s, one per 0.5 s)"
[ "$(wc -l <"$T/a.jsonl")" -eq 2 ] || why "audio: $(wc -l <"$T/a.jsonl") windows, expected 2 (0-10 s, 4-12 s)"
[ "$(wc -l <"$T/c.jsonl")" -eq 26 ] || why "combined: $(wc -l <"$T/c.jsonl") records, expected 26"
times_sorted "$T/cv.jsonl" || why "combined video records are not in time order"
times_sorted "$T/ca.jsonl" || why "combined audio records are not in time order"
finish combined_equals_separate_runs

# --json names both models and both labels files
begin
run "$CLXP" classify $BOTH --interval 2 --hop 4 -t 1 --json "$T/av.mkv"
expect_rc 0
out_has "\"model\":	\"$CLIP\""
out_has "\"labels_file\":	\"$LV\""
out_has "\"audio_model\":	\"$CLAP\""
out_has "\"audio_labels_file\":	\"$LA\""
out_has "\"audio_logit_scale\":"
finish json_names_both_models

begin
[ "$c_rc" -eq 0 ] || why "the combined run failed"
{ cat "$T/v.csv"; tail -n +2 "$T/a.csv"; } >"$T/va.csv"
same_lines "$T/c.csv" "$T/va.csv" "csv summary"
head -n 1 "$T/c.csv" | grep -q '^stream_id,label,avg_probability,count$' || why "csv header"
grep -q '^0,a person' "$T/c.csv" || why "csv has no row of video stream 0 with a CLIP label"
grep -q '^1,' "$T/c.csv" || why "csv has no row of audio stream 1"
grep '^1,' "$T/c.csv" | cut -d, -f2 | while read -r l; do grep -qxF "$l" $LA || echo "$l"; done >"$T/bad"
[ -s "$T/bad" ] && why "audio rows with labels not in $LA: $(cat "$T/bad")"
finish combined_csv_summary

begin
[ "$c_rc" -eq 0 ] || why "the combined run failed"
head -n 1 "$T/c.srt" | grep -qx 1 || why "srt does not start with cue 1"
grep -q -- '-->' "$T/c.srt" || why "srt has no cue"
head -n 1 "$T/c.vtt" | grep -qx WEBVTT || why "vtt header"
tail -n 1 "$T/c.html" | grep -q '</html>' || why "html is not complete"
[ "$(grep -c '<h2>Stream' "$T/c.html")" -eq 2 ] || why "html: expected a chart for each of the 2 streams"
grep -q 'Stream 1 (audio): 2 windows' "$T/c.html" || why "html: no chart of the 2 audio windows"
grep -q 'Stream 0 (video): 24 frames' "$T/c.html" || why "html: no chart of the 24 video frames"
finish combined_other_outputs

# the live table: both models' labels, audio windows as start-end rows
begin
run "$CLXP" classify $BOTH --interval 2 -k 1 -t 1 "$T/av.mkv"
expect_rc 0
out_has "00:00:00.000-00:00:10.000"
out_has "a person"
grep -q -f $LA "$T/out" || why "the table shows no CLAP label"
finish combined_table

# categories file for the audio, --start/--duration for both
begin
run "$CLXP" classify --clip $CLIP --labels-clip $LV --clap $CLAP --labels-clap $CA --start 2 --duration 6 -k 1 -t 1 \
    -o "$T/s.jsonl" "$T/av.mkv"
expect_rc 0
grep -q '"media":"audio".*"units"' "$T/s.jsonl" || why "audio records have no units (categories file)"
grep -q '"media":"video".*"labels"' "$T/s.jsonl" || why "video records have no labels"
sed -n 's/.*"media":"video","frame":\([0-9]*\),.*/\1/p' "$T/s.jsonl" | head -n 1 | grep -qx 20 ||
    why "the first video frame is not frame 20 (2 s)"
[ "$(grep -c '"media":"video"' "$T/s.jsonl")" -eq 60 ] || why "expected 60 frames in 2..8 s"
grep -q '"media":"audio","frame":0,"pts":null,"time":2,"duration":6' "$T/s.jsonl" || why "audio window 2..8 s"
finish combined_start_duration

# ---- a missing stream: the other model alone, with a warning --------------------------------------------------------

begin
run "$CLXP" classify $BOTH -k 3 -t 1 -o "$T/vo.jsonl" "$T/video_only.mkv"
expect_rc 0
err_has "no audio stream"
err_has "classifying the pictures only"
run "$CLXP" classify -m $CLIP -l $LV -k 3 -t 1 -o "$T/vo1.jsonl" "$T/video_only.mkv"
same_lines "$T/vo.jsonl" "$T/vo1.jsonl" "video-only file"
finish no_audio_stream_warns

begin
run "$CLXP" classify $BOTH -k 3 -t 1 -o "$T/ao.jsonl" "$T/audio_only.wav"
expect_rc 0
err_has "no video stream"
err_has "classifying the audio only"
run "$CLXP" classify -m $CLAP -l $LA -k 3 -t 1 -o "$T/ao1.jsonl" "$T/audio_only.wav"
same_lines "$T/ao.jsonl" "$T/ao1.jsonl" "audio-only file"
finish no_video_stream_warns

begin
run "$CLXP" classify $BOTH -k 1 -t 1 -o "$T/still.jsonl" "$T/still.png"
expect_rc 0
grep -q '"media":"video"' "$T/still.jsonl" || why "no result for the still image"
finish still_image_with_both_models

# ---- errors -------------------------------------------------------------------------------------------------------

begin
run "$CLXP" classify --clip $CLAP --labels-clip $LA --clap $CLAP --labels-clap $LA "$T/av.mkv"
expect_rc 1
err_has "--clip $CLAP: this is a CLAP model"
[ -s "$T/out" ] && why "stdout is not empty"
finish clip_given_a_clap_model

begin
run "$CLXP" classify --clip $CLIP --labels-clip $LV --clap $CLIP --labels-clap $LV "$T/av.mkv"
expect_rc 1
err_has "--clap $CLIP: this is a CLIP model"
finish clap_given_a_clip_model

begin
run "$CLXP" classify --clap $CLIP -l $LV "$T/av.mkv"
expect_rc 1
err_has "this is a CLIP model"
finish clap_alone_checks_the_kind

begin
run "$CLXP" classify --clip $CLIP --labels-clip $LV --clap $CLAP -l $LA "$T/av.mkv"
expect_rc 2
err_has "--labels-clap"
run "$CLXP" classify --clip $CLIP --labels-clip $LV --clap $CLAP "$T/av.mkv"
expect_rc 2
run "$CLXP" classify $BOTH --label-bank "$T/bank.safetensors" "$T/av.mkv"
expect_rc 2
run "$CLXP" classify -m $CLIP $BOTH "$T/av.mkv"
expect_rc 2
run "$CLXP" classify -m $CLIP -l $LV --audio-stream a:0 "$T/av.mkv"
expect_rc 2
finish usage_errors

begin
run "$CLXP" classify --clip $CLIP --labels-clip $LV -k 3 -t 1 -o "$T/clip_alone.jsonl" "$T/video_only.mkv"
expect_rc 0
same_lines "$T/clip_alone.jsonl" "$T/vo1.jsonl" "--clip alone is -m"
finish clip_alone_is_model

report
