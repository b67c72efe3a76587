#!/bin/sh
# clxp convert and -m with model files, from the command line: OUT_DIR refusal without -y, a converted directory
# classifies exactly like its source, usage errors; with the shared golden data ($CLXP_SHARED, else
# ../shared/golden) every openclip-tiny-quickgelu file classifies like the HF directory (identical JSON output), and
# the MS-CLAP .pth converts to a directory that classifies identically and that info reports as msclap (the bundled
# MS-CLAP model, whose trimmed vocabulary C code expands, is converted in tests/test_msclap_golden.c).
BUILD=${BUILD:-build}
CLXP="$BUILD/clxp"
MODEL=tests/data/clip-tiny-quickgelu
LABELS=tests/data/seed/labels_clip_person.txt
IMG=tests/data/clip-tiny-quickgelu/golden/inputs/img1_checker_200x120.png
passed=0
failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

ok() { echo "ok   $1"; passed=$((passed + 1)); }
# JSON outputs equal except for the model path
same() { grep -v '"model":' "$1" >"$1.cmp"; grep -v '"model":' "$2" >"$2.cmp"; cmp -s "$1.cmp" "$2.cmp"; }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

"$CLXP" classify -q --json -m "$MODEL" -l "$LABELS" "$IMG" >"$tmp/ref.json" 2>"$tmp/err" || fail reference "$(cat "$tmp/err")"

# convert an HF directory (a copy) and classify with it
if "$CLXP" convert -q "$MODEL" "$tmp/conv" 2>"$tmp/err" && [ -f "$tmp/conv/model.safetensors" ] &&
    [ -f "$tmp/conv/tokenizer.json" ] && [ -f "$tmp/conv/config.json" ]; then
    "$CLXP" classify -q --json -m "$tmp/conv" -l "$LABELS" "$IMG" >"$tmp/conv.json" 2>"$tmp/err"
    if same "$tmp/ref.json" "$tmp/conv.json"; then ok convert_hf_dir; else fail convert_hf_dir "outputs differ"; fi
else
    fail convert_hf_dir "$(cat "$tmp/err")"
fi

# a non-empty OUT_DIR is refused without -y, accepted with it
if "$CLXP" convert -q "$MODEL" "$tmp/conv" 2>"$tmp/err"; then
    fail refuse_nonempty_outdir "succeeded"
elif grep -q "not empty (use -y" "$tmp/err"; then
    ok refuse_nonempty_outdir
else
    fail refuse_nonempty_outdir "$(cat "$tmp/err")"
fi
if "$CLXP" convert -q -y "$MODEL" "$tmp/conv" 2>"$tmp/err"; then ok overwrite_with_y; else
    fail overwrite_with_y "$(cat "$tmp/err")"
fi

# usage errors
"$CLXP" convert "$MODEL" >/dev/null 2>&1
[ $? -eq 2 ] && ok convert_usage || fail convert_usage "expected exit status 2"
"$CLXP" info --vision-heads x "$MODEL" >/dev/null 2>&1
[ $? -eq 2 ] && ok bad_heads_option || fail bad_heads_option "expected exit status 2"
"$CLXP" info "$MODEL/config.json" >/dev/null 2>"$tmp/err"
if [ $? -eq 1 ] && grep -q "is a file but not a model file" "$tmp/err"; then ok not_a_model_file; else
    fail not_a_model_file "$(cat "$tmp/err")"
fi

# the shared golden files
SHARED=${CLXP_SHARED:-../shared/golden}
OC="$SHARED/openclip-tiny-quickgelu"
if [ -f "$OC/open_clip_pytorch_model.bin" ]; then
    for f in "$OC" "$OC/open_clip_pytorch_model.bin" "$OC/clip_model_scripted.pt" "$OC/openai_style.pt"; do
        name=$(basename "$f")
        "$CLXP" classify -q --json --vision-heads 4 --text-heads 4 -m "$f" -l "$LABELS" "$IMG" >"$tmp/$name.json" \
            2>"$tmp/err" || { fail "shared_$name" "$(cat "$tmp/err")"; continue; }
        # the scores agree with the HF directory's to the printed precision
        if same "$tmp/ref.json" "$tmp/$name.json"; then ok "shared_$name"; else
            fail "shared_$name" "output differs from the HF directory's"
        fi
    done
    "$CLXP" info "$OC/openai_style.pt" >/dev/null 2>"$tmp/err"
    if grep -q "not divisible into 0 attention heads" "$tmp/err" && grep -q -- "--text-heads" "$tmp/err"; then
        ok openai_needs_heads
    else
        fail openai_needs_heads "$(cat "$tmp/err")"
    fi
    if "$CLXP" convert -q --vision-heads 4 --text-heads 4 "$OC/openai_style_fp16.pt" "$tmp/fp16" 2>"$tmp/err" &&
        "$CLXP" info --json "$tmp/fp16" >"$tmp/fp16.json" 2>"$tmp/err" && grep -q '"format":.*"hf-safetensors"' "$tmp/fp16.json"; then
        ok convert_openai_fp16
    else
        fail convert_openai_fp16 "$(cat "$tmp/err")"
    fi
else
    echo "  skipped the shared golden files (no $OC)"
fi
MS="$SHARED/msclap-tiny-2023"
if [ -f "$MS/CLAP_weights_2023_tiny.pth" ]; then
    printf 'this is the sound of a dog barking\nthis is the sound of rain\nclicks\na photo of a cat\n' >"$tmp/ms_labels.txt"
    WAVS="$MS/golden/inputs/a_chirp_noise_3s.wav $MS/golden/inputs/d_sweep_9s.wav"
    "$CLXP" classify -q --json -m "$MS/CLAP_weights_2023_tiny.pth" -l "$tmp/ms_labels.txt" $WAVS >"$tmp/ms_ref.json" \
        2>"$tmp/err" || fail msclap_reference "$(cat "$tmp/err")"
    if "$CLXP" convert "$MS/CLAP_weights_2023_tiny.pth" "$tmp/ms" 2>"$tmp/err" && grep -q "msclap pth, GPT-2 heads 3" "$tmp/err" &&
        [ -f "$tmp/ms/model.safetensors" ] && [ -f "$tmp/ms/tokenizer.json" ] && grep -q '^  n_head: 3$' "$tmp/ms/msclap_config.yml"; then
        "$CLXP" classify -q --json -m "$tmp/ms" -l "$tmp/ms_labels.txt" $WAVS >"$tmp/ms_conv.json" 2>"$tmp/err"
        if [ -s "$tmp/ms_conv.json" ] && same "$tmp/ms_ref.json" "$tmp/ms_conv.json"; then ok convert_msclap_pth; else
            fail convert_msclap_pth "outputs differ $(cat "$tmp/err")"
        fi
    else
        fail convert_msclap_pth "$(cat "$tmp/err")"
    fi
    if "$CLXP" info --json "$tmp/ms" >"$tmp/ms_info.json" 2>"$tmp/err" && grep -q '"format":.*"msclap"' "$tmp/ms_info.json" &&
        grep -q '"format_detail":.*safetensors.*converted by clxp from .*CLAP_weights_2023_tiny.pth' "$tmp/ms_info.json"; then
        ok info_converted_msclap
    else
        fail info_converted_msclap "$(cat "$tmp/err" "$tmp/ms_info.json")"
    fi
    if "$CLXP" convert -q "$MS/CLAP_weights_2023_tiny.pth" "$tmp/ms" 2>"$tmp/err"; then
        fail msclap_refuse_nonempty "succeeded"
    elif grep -q "not empty (use -y" "$tmp/err" && "$CLXP" convert -q -y "$MS/CLAP_weights_2023_tiny.pth" "$tmp/ms" 2>"$tmp/err"; then
        ok msclap_refuse_nonempty
    else
        fail msclap_refuse_nonempty "$(cat "$tmp/err")"
    fi
    "$CLXP" convert -q --text-heads 4 "$MS/CLAP_weights_2023_tiny.pth" "$tmp/ms_heads" >/dev/null 2>"$tmp/err"
    if [ $? -eq 1 ] && grep -q "do not apply to MS-CLAP" "$tmp/err" && [ ! -e "$tmp/ms_heads" ]; then ok msclap_heads_option; else
        fail msclap_heads_option "$(cat "$tmp/err")"
    fi
else
    echo "  skipped the shared MS-CLAP checkpoint (no $MS)"
fi
echo "RESULT $passed $failed"
[ "$failed" -eq 0 ]
