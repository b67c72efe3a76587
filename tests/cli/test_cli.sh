#!/bin/sh
# Tests of the clxp command-line tool: usage, `info`, `classify` (table, --json, -k, categories files), the
# golden top-1 labels, and the CLI end of every bad input (exit status 1, exactly one "clxp: error: " line on
# stderr naming the file, nothing at all on stdout).
#
# Run by tests/run.sh as `BUILD=<build dir> sh tests/cli/test_cli.sh`; prints "ok   name" / "FAIL name" per
# check and a final "RESULT <passed> <failed>". Plain POSIX sh: no python, no jq.

. "$(dirname "$0")/lib.sh"

MODEL=tests/data/clip-tiny-quickgelu
INPUTS=$MODEL/golden/inputs
IMG0=$INPUTS/img0_gradient_64x48.png
IMG1=$INPUTS/img1_checker_200x120.png
IMG2=$INPUTS/img2_noise_gray_31x77.png
CATEGORIES=tests/data/seed/categories_clip.txt

need_clxp
make_tmp cli-test

# stdout has the JSON member "KEY": "VALUE" (any spacing)
out_json_str() {
    grep -q "\"$1\":[[:space:]]*\"$2\"" "$T/out" || why "stdout lacks \"$1\": \"$2\""
}

# expect_error NAME FILE CAUSE COMMAND...: exit status 1, nothing on stdout, exactly one line on stderr that
# starts with "clxp: error: " and contains FILE and CAUSE.
expect_error() {
    name=$1
    file=$2
    cause=$3
    shift 3
    begin
    run "$@"
    expect_rc 1
    [ -s "$T/out" ] && why "stdout is not empty (partial output)"
    lines=$(wc -l <"$T/err" | tr -d ' ')
    [ "$lines" -eq 1 ] || why "stderr has $lines lines, expected exactly 1"
    first=$(head -n 1 "$T/err")
    case $first in
    "clxp: error: "*) ;;
    *) why "stderr does not start with 'clxp: error: '" ;;
    esac
    err_has "$file"
    err_has "$cause"
    finish "$name"
}

# A model directory of symlinks to the good tiny model's files, in $T/$1.
make_model_dir() {
    mkdir -p "$T/$1"
    for f in config.json model.safetensors tokenizer.json preprocessor_config.json special_tokens_map.json \
        tokenizer_config.json; do
        ln -sf "$ROOT/$MODEL/$f" "$T/$1/$f"
    done
}

printf 'a photo of a cat\na photo of a dog\na red square\n' >"$T/labels.txt"

# ---- usage ---------------------------------------------------------------------------------------------

begin
run "$CLXP" --help
expect_rc 0
out_has "Usage:"
out_has "clxp classify"
out_has "clxp info"
finish help

begin
run "$CLXP" classify --help
expect_rc 0
out_has "Usage: clxp classify"
out_has "--labels"
finish classify_help

begin
run "$CLXP" info --help
expect_rc 0
out_has "Usage: clxp info"
finish info_help

begin
run "$CLXP"
expect_rc 2
err_has "Usage:"
[ -s "$T/out" ] && why "stdout is not empty"
finish no_arguments_is_usage_error

begin
run "$CLXP" frobnicate
expect_rc 2
err_has "frobnicate"
[ -s "$T/out" ] && why "stdout is not empty"
finish unknown_command_is_usage_error

begin
run "$CLXP" classify -l "$T/labels.txt" "$IMG0"
expect_rc 2
err_has "-m"
[ -s "$T/out" ] && why "stdout is not empty"
finish classify_without_model_is_usage_error

begin
run "$CLXP" classify -m "$MODEL" "$IMG0"
expect_rc 2
err_has "-l"
finish classify_without_labels_is_usage_error

begin
run "$CLXP" classify -m "$MODEL" -l "$T/labels.txt"
expect_rc 2
err_has "image"
finish classify_without_images_is_usage_error

begin
run "$CLXP" info
expect_rc 2
err_has "MODEL_DIR"
finish info_without_model_is_usage_error

# ---- info ----------------------------------------------------------------------------------------------

begin
run "$CLXP" info "$MODEL"
expect_rc 0
out_has "patch 8"
out_has "quick_gelu"
out_has "self-test"
out_has "passed"
out_has "embedding dim 32"
finish info

begin
run "$CLXP" info --json "$MODEL"
expect_rc 0
for key in '"kind":' '"embed_dim":' '"vision":' '"text":' '"preprocess":' '"patch_size":' '"activation":'; do
    out_has "$key"
done
grep -q '"selftest_passed":[[:space:]]*true' "$T/out" || why "no \"selftest_passed\": true"
grep -q '"patch_size":[[:space:]]*8' "$T/out" || why "no \"patch_size\": 8"
grep -q '"activation":[[:space:]]*"quick_gelu"' "$T/out" || why "no \"activation\": \"quick_gelu\""
# JSON shape: an object, balanced braces and brackets
[ "$(head -c 1 "$T/out")" = "{" ] || why "output does not start with '{'"
[ "$(tail -n 1 "$T/out")" = "}" ] || why "output does not end with '}'"
[ "$(tr -cd '{' <"$T/out" | wc -c)" -eq "$(tr -cd '}' <"$T/out" | wc -c)" ] || why "unbalanced braces"
[ "$(tr -cd '[' <"$T/out" | wc -c)" -eq "$(tr -cd ']' <"$T/out" | wc -c)" ] || why "unbalanced brackets"
[ -s "$T/err" ] && why "stderr is not empty"
finish info_json

# ---- classify ------------------------------------------------------------------------------------------

begin
run "$CLXP" classify -m "$MODEL" -l "$T/labels.txt" "$INPUTS"/*.png
expect_rc 0
n_img=0
for img in "$INPUTS"/*.png; do
    n_img=$((n_img + 1))
    grep -F -x -q -e "$img" "$T/out" || why "no line for $img"
done
# 3 labels, default top 5: every image gets its 3 labels ranked
[ "$(grep -c '^ *1\. ' "$T/out")" -eq "$n_img" ] || why "expected $n_img rank-1 lines"
[ "$(grep -c '^ *3\. ' "$T/out")" -eq "$n_img" ] || why "expected $n_img rank-3 lines"
[ "$(wc -l <"$T/out")" -eq $((n_img * 4)) ] || why "expected $((n_img * 4)) lines"
for l in "a photo of a cat" "a photo of a dog" "a red square"; do
    [ "$(grep -c -F -e "%  $l" "$T/out")" -eq "$n_img" ] || why "label '$l' not listed for every image"
done
grep -q '^ *1\. *[0-9.]*%  ' "$T/out" || why "no percentage column"
[ -s "$T/err" ] && why "stderr is not empty"
finish classify_table

begin
run "$CLXP" classify -m "$MODEL" -l "$T/labels.txt" -k 2 "$IMG0" "$IMG1" "$IMG2"
expect_rc 0
[ "$(wc -l <"$T/out")" -eq 9 ] || why "expected 3 x (1 + 2) lines with -k 2"
[ "$(grep -c '^ *3\. ' "$T/out")" -eq 0 ] || why "rank 3 printed despite -k 2"
[ "$(grep -c '^ *2\. ' "$T/out")" -eq 3 ] || why "expected 3 rank-2 lines"
finish classify_top_k

begin
run "$CLXP" classify -m "$MODEL" -l "$T/labels.txt" --json -k 2 "$IMG0" "$IMG1"
expect_rc 0
out_has '"results":'
out_json_str file "$IMG0"
out_json_str file "$IMG1"
[ "$(grep -c '"probability":' "$T/out")" -eq 4 ] || why "expected 2 x 2 probabilities with -k 2"
[ "$(grep -c '"label":' "$T/out")" -eq 4 ] || why "expected 2 x 2 labels with -k 2"
[ "$(head -c 1 "$T/out")" = "{" ] || why "output does not start with '{'"
[ "$(tail -n 1 "$T/out")" = "}" ] || why "output does not end with '}'"
[ "$(tr -cd '{' <"$T/out" | wc -c)" -eq "$(tr -cd '}' <"$T/out" | wc -c)" ] || why "unbalanced braces"
[ "$(tr -cd '[' <"$T/out" | wc -c)" -eq "$(tr -cd ']' <"$T/out" | wc -c)" ] || why "unbalanced brackets"
finish classify_json

# A labels file with templates (prompt ensembling) runs too.
begin
run "$CLXP" classify -m "$MODEL" -l "$T/labels.txt" --template 'a photo of {}.' --template 'a drawing of {}.' "$IMG0"
expect_rc 0
out_has "$IMG0"
out_has "a red square"
finish classify_templates

# The seed's categories file: one line per unit for every image.
begin
run "$CLXP" classify -m "$MODEL" -l "$CATEGORIES" "$IMG0" "$IMG1"
expect_rc 0
units=$(sed -n 's/^[[:space:]]*\[\(.*\)\][[:space:]]*$/\1/p' "$CATEGORIES")
n_units=$(printf '%s\n' "$units" | grep -c .)
[ "$n_units" -eq 3 ] || why "expected 3 units in $CATEGORIES, found $n_units"
for u in $units; do
    [ "$(grep -c "^  $u " "$T/out")" -eq 2 ] || why "unit $u not reported for both images"
done
out_has "$IMG0"
out_has "$IMG1"
[ "$(wc -l <"$T/out")" -eq $((2 * (1 + n_units))) ] || why "expected $((2 * (1 + n_units))) lines"
finish classify_categories

begin
run "$CLXP" classify -m "$MODEL" -l "$CATEGORIES" --json "$IMG0"
expect_rc 0
for u in $units; do
    out_json_str unit "$u"
done
out_has '"categories":'
finish classify_categories_json

# ---- golden top-1 --------------------------------------------------------------------------------------
# The golden prompts (inputs/prompts.json) that survive unchanged as a line of a labels file, one per line,
# in order: not empty, no JSON escape (\t, \n, ...), no leading/trailing space, not starting with '[' (which
# would make the file a categories file). The expected top-1 of each image is the argmax of the reference
# probabilities in zero_shot.json over those prompts only: a softmax over a subset keeps the order of the
# logits, so the argmax over the kept entries of the full softmax is the top-1 of the CLI's softmax.
GOLD=$MODEL/golden/zero_shot.json
PROMPTS=$INPUTS/prompts.json

# Prints the strings of the "prompts" array of a pretty-printed JSON file (one per line, as written).
prompt_strings() {
    awk '
    /"prompts": *\[/ { inp = 1; next }
    inp && /^ *\]/ { inp = 0 }
    inp { s = $0; sub(/^ *"/, "", s); sub(/",? *$/, "", s); print s }' "$1"
}
# awk: can the JSON string s be a line of a labels file, unchanged?
AWK_USABLE='function usable(s) {
    return s != "" && index(s, "\\") == 0 && s !~ /^[ \t]/ && s !~ /[ \t]$/ && substr(s, 1, 1) != "["
}'
prompt_strings "$PROMPTS" | awk "$AWK_USABLE"' usable($0) { print }' >"$T/golden_labels.txt"
prompt_strings "$PROMPTS" >"$T/prompts_a.txt"
prompt_strings "$GOLD" >"$T/prompts_b.txt"

# One "IMAGE<tab>PROMPT" line per result of zero_shot.json: the most probable usable prompt.
awk "$AWK_USABLE"'
/"prompts": *\[/ { inp = 1; n = 0; next }
inp && /^ *\]/ { inp = 0; next }
inp {
    s = $0
    sub(/^ *"/, "", s)
    sub(/",? *$/, "", s)
    keep[n] = usable(s)
    prompt[n++] = s
    next
}
/"input": *"/ {
    img = $0
    sub(/^ *"input": *"/, "", img)
    sub(/",? *$/, "", img)
}
/"probs": *\[/ { inprobs = 1; k = 0; best = -1; next }
inprobs && /^ *\]/ { inprobs = 0; print img "\t" prompt[best]; next }
inprobs {
    v = $0
    gsub(/[ ,]/, "", v)
    v = v + 0
    if (keep[k] && (best < 0 || v > bestv)) { best = k; bestv = v }
    k++
}' "$GOLD" >"$T/golden_top1.tsv"

begin
n_lab=$(wc -l <"$T/golden_labels.txt" | tr -d ' ')
n_exp=$(wc -l <"$T/golden_top1.tsv" | tr -d ' ')
[ "$n_lab" -ge 10 ] || why "only $n_lab golden prompts usable as labels"
[ "$n_exp" -eq 5 ] || why "expected 5 golden images in $GOLD, found $n_exp"
cmp -s "$T/prompts_a.txt" "$T/prompts_b.txt" || why "the prompts of $PROMPTS and $GOLD differ"
imgs=""
while IFS='	' read -r img label; do
    imgs="$imgs $INPUTS/$img"
done <"$T/golden_top1.tsv"
# shellcheck disable=SC2086 # the golden file names contain no spaces
run "$CLXP" classify -m "$MODEL" -l "$T/golden_labels.txt" -k 1 $imgs
expect_rc 0
# "FILE" then "   1.  xx.xx%  LABEL": one "FILE<tab>LABEL" line per image
awk '/^[^ ]/ { f = $0; next } /^ *1\. / { l = $0; sub(/^ *1\. *[0-9.]*%  /, "", l); print f "\t" l }' \
    "$T/out" >"$T/cli_top1.tsv"
while IFS='	' read -r img label; do
    got=$(grep -F -e "$INPUTS/$img	" "$T/cli_top1.tsv" | cut -f 2-)
    [ "$got" = "$label" ] || why "$img: top-1 '$got', golden '$label'"
done <"$T/golden_top1.tsv"
finish golden_top1

# ---- bad inputs: the CLI end ---------------------------------------------------------------------------

expect_error model_dir_missing "$T/no-such-model" "does not exist" \
    "$CLXP" classify -m "$T/no-such-model" -l "$T/labels.txt" "$IMG0"

expect_error info_model_dir_missing "$T/no-such-model" "does not exist" "$CLXP" info "$T/no-such-model"

expect_error model_path_is_a_file "$MODEL/config.json" "is a file" \
    "$CLXP" classify -m "$MODEL/config.json" -l "$T/labels.txt" "$IMG0"

make_model_dir badconfig
rm -f "$T/badconfig/config.json"
printf '{\n  "model_type": "clip",\n  "projection_dim": 32,\n' >"$T/badconfig/config.json"
expect_error config_malformed "$T/badconfig/config.json" "malformed JSON" \
    "$CLXP" classify -m "$T/badconfig" -l "$T/labels.txt" "$IMG0"
expect_error info_config_malformed "$T/badconfig/config.json" "malformed JSON" "$CLXP" info "$T/badconfig"

make_model_dir divconfig
rm -f "$T/divconfig/config.json"
sed 's/"num_attention_heads": 4/"num_attention_heads": 5/' "$MODEL/config.json" >"$T/divconfig/config.json"
expect_error config_hidden_not_divisible "$T/divconfig/config.json" "not divisible" \
    "$CLXP" classify -m "$T/divconfig" -l "$T/labels.txt" "$IMG0"

make_model_dir noconfig
rm -f "$T/noconfig/config.json"
expect_error config_missing "$T/noconfig/config.json" "cannot open" \
    "$CLXP" classify -m "$T/noconfig" -l "$T/labels.txt" "$IMG0"

make_model_dir truncated
rm -f "$T/truncated/model.safetensors"
head -c 5000000 "$MODEL/model.safetensors" >"$T/truncated/model.safetensors"
expect_error safetensors_truncated "$T/truncated/model.safetensors" "tensor" \
    "$CLXP" classify -m "$T/truncated" -l "$T/labels.txt" "$IMG0"
make_model_dir truncated_tail
rm -f "$T/truncated_tail/model.safetensors"
size=$(wc -c <"$MODEL/model.safetensors")
head -c $((size - 100)) "$MODEL/model.safetensors" >"$T/truncated_tail/model.safetensors"
expect_error safetensors_tail_cut "$T/truncated_tail/model.safetensors" "truncated" \
    "$CLXP" info "$T/truncated_tail"

make_model_dir notok
rm -f "$T/notok/tokenizer.json"
printf '{"version": "1.0", "model": {' >"$T/notok/tokenizer.json"
expect_error tokenizer_malformed "$T/notok/tokenizer.json" "JSON" \
    "$CLXP" classify -m "$T/notok" -l "$T/labels.txt" "$IMG0"

# Images: nothing is printed for the good images either when one input is bad.
head -c 600 "$IMG1" >"$T/corrupt.png"
expect_error corrupt_image_among_good "$T/corrupt.png" "not a decodable image" \
    "$CLXP" classify -m "$MODEL" -l "$T/labels.txt" "$IMG0" "$IMG1" "$T/corrupt.png" "$IMG2"
expect_error corrupt_image_among_good_json "$T/corrupt.png" "not a decodable image" \
    "$CLXP" classify -m "$MODEL" -l "$T/labels.txt" --json "$IMG0" "$T/corrupt.png" "$IMG1"

: >"$T/empty.png"
expect_error zero_byte_image "$T/empty.png" "empty file" \
    "$CLXP" classify -m "$MODEL" -l "$T/labels.txt" "$T/empty.png"

printf 'This is a plain text file, not an image.\n' >"$T/notes.jpg"
expect_error non_image_input "$T/notes.jpg" "not a decodable image" \
    "$CLXP" classify -m "$MODEL" -l "$T/labels.txt" "$IMG0" "$T/notes.jpg"

expect_error missing_image "$T/missing.png" "cannot open" \
    "$CLXP" classify -m "$MODEL" -l "$T/labels.txt" "$IMG0" "$T/missing.png"

# Labels files.
: >"$T/empty_labels.txt"
expect_error labels_empty "$T/empty_labels.txt" "no prompts" \
    "$CLXP" classify -m "$MODEL" -l "$T/empty_labels.txt" "$IMG0"

printf '\n   \n\t\n' >"$T/blank_labels.txt"
expect_error labels_only_blank_lines "$T/blank_labels.txt" "no prompts" \
    "$CLXP" classify -m "$MODEL" -l "$T/blank_labels.txt" "$IMG0"

printf 'a photo of a cat\na \377\376 dog\n' >"$T/bad_utf8.txt"
expect_error labels_invalid_utf8 "$T/bad_utf8.txt" "UTF-8" \
    "$CLXP" classify -m "$MODEL" -l "$T/bad_utf8.txt" "$IMG0"

head -c 1048576 /dev/zero | tr '\0' a >"$T/long_label.txt"
expect_error labels_1mb_single_line "$T/long_label.txt" "bytes" \
    "$CLXP" classify -m "$MODEL" -l "$T/long_label.txt" "$IMG0"

expect_error labels_missing "$T/no-labels.txt" "cannot open" \
    "$CLXP" classify -m "$MODEL" -l "$T/no-labels.txt" "$IMG0"

# Categories files: a prompt before any unit (the file is still recognisably a categories file), and a
# prompt between a unit and its first category.
printf 'a stray prompt before any unit\n[RecordingSystem]\n(Home Recording)\nLow-res image with noise.\n' \
    >"$T/cat_prompt_first.txt"
expect_error categories_prompt_before_unit "$T/cat_prompt_first.txt" "before any" \
    "$CLXP" classify -m "$MODEL" -l "$T/cat_prompt_first.txt" "$IMG0"

printf '[RecordingSystem]\na prompt before any category\n(Home Recording)\nLow-res image with noise.\n' \
    >"$T/cat_prompt_no_cat.txt"
expect_error categories_prompt_before_category "$T/cat_prompt_no_cat.txt" "before any" \
    "$CLXP" classify -m "$MODEL" -l "$T/cat_prompt_no_cat.txt" "$IMG0"

printf '[RecordingSystem]\n(Home Recording)\n' >"$T/cat_empty_category.txt"
expect_error categories_empty_category "$T/cat_empty_category.txt" "no prompts" \
    "$CLXP" classify -m "$MODEL" -l "$T/cat_empty_category.txt" "$IMG0"

# ---- --tokenizer and --precision -----------------------------------------------------------------------

# A directory without tokenizer.json: a clear error, and --tokenizer FILE supplies one (same answer as the
# complete directory); a directory with its own keeps it and warns that --tokenizer is ignored.
make_model_dir no_tok
rm -f "$T/no_tok/tokenizer.json"
expect_error tokenizer_missing "no_tok/tokenizer.json" "--tokenizer" \
    "$CLXP" classify -m "$T/no_tok" -l "$T/labels.txt" "$IMG0"
begin
run "$CLXP" classify --precision fp32 -m "$MODEL" -l "$T/labels.txt" --json "$IMG0"
cp "$T/out" "$T/with_own.json"
run "$CLXP" classify --precision fp32 -m "$T/no_tok" --tokenizer "$MODEL/tokenizer.json" -l "$T/labels.txt" --json "$IMG0"
expect_rc 0
sed 's|"model":[[:space:]]*"[^"]*"||' "$T/out" >"$T/a.json"
sed 's|"model":[[:space:]]*"[^"]*"||' "$T/with_own.json" >"$T/b.json"
cmp -s "$T/a.json" "$T/b.json" || why "--tokenizer gives other results than the directory's own tokenizer"
finish tokenizer_option_supplies_missing
begin
run "$CLXP" info --tokenizer "$T/labels.txt" "$MODEL"
expect_rc 0
err_has "--tokenizer $T/labels.txt is ignored"
finish tokenizer_option_ignored_with_own

begin
run "$CLXP" classify --precision half -m "$MODEL" -l "$T/labels.txt" "$IMG0"
expect_rc 2
err_has "bad --precision 'half'"
finish precision_bad_value
begin
run "$CLXP" info --json --precision fp32 "$MODEL"
expect_rc 0
out_json_str precision fp32
finish precision_in_info

report
