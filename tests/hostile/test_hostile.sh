#!/bin/sh
# The hostile-input catalogue (issue 6): files a stranger could hand to clxp — model directories, tokenizers,
# labels/categories files, box files, images, videos, audio, output paths — each with the exit status and the one
# line clxp must answer with. tests/hostile/README.md lists the cases.
#
# Every hostile file is generated here (printf, head, sed, and the ffmpeg tool for media), small and deterministic,
# in a mktemp directory removed at exit; nothing is committed but this script. Models: the tiny random-weight test
# models in tests/data (clip-tiny-quickgelu, clap-tiny-unfused), through directories of symbolic links with one file
# replaced.
#
# A failing case must: exit with the status given (1; 2 for usage errors), print nothing on stdout, print exactly
# one line on stderr starting with "clxp: error: " that matches both extended regular expressions given (grep -E):
# one for the file named, one for the cause, and leave no output or temporary (.part) file behind.
# A case that must work (100 000 labels, NaN audio, boxes outside the frame, boxes past the end) must exit 0 and,
# where given, print a warning line matching the patterns.
#
# EXTRA, when set, is one more check (shell code calling `why`) run before the case is reported; it is reset after.
# HOSTILE_VERBOSE=1 also prints the line clxp answered with under each case.
#
# Run by tests/run.sh as `BUILD=<build dir> sh tests/hostile/test_hostile.sh`; prints "ok   name" / "FAIL name" per
# case and a final "RESULT <passed> <failed>". Plain POSIX sh: no python, no jq.

H=res # where the harness keeps out/err/why: relative, inside $T
. "$(dirname "$0")/../cli/lib.sh"
export LC_ALL=C

CLIP=$ROOT/tests/data/clip-tiny-quickgelu
CLAP=$ROOT/tests/data/clap-tiny-unfused
IMG=$CLIP/golden/inputs/img1_checker_200x120.png
CLAP_LABELS=$ROOT/tests/data/seed/labels_clap_music.txt

need_clxp
need_ffmpeg "the hostile media"
make_tmp hostile
# Work inside $T with short relative names: the patterns below name the files as clxp prints them.
cd "$T" || exit 1
mkdir -p res

# ---- harness (tests/cli/lib.sh, and:) ----------------------------------------------------------------------------

# finish as lib.sh's, shorter, with HOSTILE_VERBOSE=1 showing each case's message, and EXTRA cleared
finish() {
    if [ -s res/why ]; then
        failed=$((failed + 1))
        echo "FAIL $1"
        sed 's/^/  /' res/why
        echo "  --- stdout:"
        head -n 10 res/out | sed 's/^/  | /'
        echo "  --- stderr:"
        head -n 10 res/err | sed 's/^/  | /'
    else
        passed=$((passed + 1))
        echo "ok   $1"
        [ "${HOSTILE_VERBOSE:-0}" = 1 ] && grep -E '^clxp(: error| classify|: warning)' res/err | head -n 2 | sed 's/^/       /'
    fi
    EXTRA=
}
EXTRA=

# fails NAME STATUS FILE_ERE CAUSE_ERE COMMAND...
fails() {
    name=$1 want=$2 file=$3 cause=$4
    shift 4
    : >res/why
    "$@" >res/out 2>res/err
    rc=$?
    [ "$rc" -eq "$want" ] || why "exit status $rc, expected $want"
    [ -s res/out ] && why "stdout is not empty (partial output)"
    lines=$(wc -l <res/err | tr -d ' ')
    [ "$lines" -eq 1 ] || why "stderr has $lines lines, expected exactly 1"
    line=$(head -n 1 res/err)
    if [ "$want" -eq 1 ]; then
        case $line in
        "clxp: error: "*) ;;
        *) why "stderr does not start with 'clxp: error: '" ;;
        esac
    fi
    printf '%s\n' "$line" | grep -E -q -e "$file" || why "the error does not name the file (/$file/)"
    printf '%s\n' "$line" | grep -E -q -e "$cause" || why "the error does not give the cause (/$cause/)"
    no_part_files
    [ -n "$EXTRA" ] && eval "$EXTRA"
    finish "$name"
}

# works NAME WARN_FILE_ERE WARN_CAUSE_ERE COMMAND...: exit status 0, output on stdout, and (patterns not empty) a
# "clxp: warning: " line matching both patterns.
works() {
    name=$1 file=$2 cause=$3
    shift 3
    : >res/why
    "$@" >res/out 2>res/err
    rc=$?
    [ "$rc" -eq 0 ] || why "exit status $rc, expected 0"
    [ -s res/out ] || why "stdout is empty"
    grep -q '^clxp: error: ' res/err && why "an error was printed"
    if [ -n "$cause" ]; then
        grep '^clxp: warning: ' res/err | grep -E -e "$file" | grep -E -q -e "$cause" ||
            why "no warning naming the file (/$file/) and the cause (/$cause/)"
    fi
    no_part_files
    [ -n "$EXTRA" ] && eval "$EXTRA"
    finish "$name"
}

# The tiny CLIP (or CLAP: model_dir NAME clap) model as a directory of symbolic links, in $T/NAME.
model_dir() {
    src=$CLIP
    [ "${2:-}" = clap ] && src=$CLAP
    mkdir -p "$1"
    for f in "$src"/*.json "$src"/model.safetensors; do
        ln -sf "$f" "$1/$(basename "$f")"
    done
}
# replace NAME FILE: the model directory NAME with FILE replaced by stdin
replace() {
    rm -f "$1/$2"
    cat >"$1/$2"
}

# le64 N: N (< 2^53) as 8 little-endian bytes
le64() {
    n=$1
    i=0
    while [ $i -lt 8 ]; do
        # shellcheck disable=SC2059 # the format is the octal escape of one byte
        printf "\\$(printf '%03o' $((n % 256)))"
        n=$((n / 256))
        i=$((i + 1))
    done
}
# safetensors HEADER [DATA_BYTES]: a safetensors file with that header and DATA_BYTES zero bytes of data
safetensors() {
    le64 "$(printf '%s' "$1" | wc -c | tr -d ' ')"
    printf '%s' "$1"
    [ "${2:-0}" -gt 0 ] && head -c "$2" /dev/zero
    return 0
}
# repeat N TEXT: TEXT N times
repeat() {
    awk -v n="$1" -v s="$2" 'BEGIN { for (i = 0; i < n; i++) printf "%s", s }'
}

printf 'a photo of a cat\na photo of a dog\n' >labels.txt
CL="$CLXP classify -q -t 1 -l labels.txt" # classify with the labels; add -m and the inputs
FF="ffmpeg -nostdin -hide_banner -loglevel error -y"

# ---- safetensors -------------------------------------------------------------------------------------------------

model_dir st_len63
{ printf '\000\000\000\000\000\000\000\200'; printf '{}'; } | replace st_len63 model.safetensors
fails safetensors_header_length_2e63 1 'st_len63/model\.safetensors' 'header length 9223372036854775808 exceeds' \
    "$CLXP" info st_len63

model_dir st_len_beyond
{ le64 1000; printf '{"a":1}'; } | replace st_len_beyond model.safetensors
fails safetensors_header_length_beyond_file 1 'st_len_beyond/model\.safetensors' 'header length 1000 exceeds the file size' \
    "$CLXP" info st_len_beyond

model_dir st_short
printf '\010\000\000' | replace st_short model.safetensors
fails safetensors_shorter_than_length_prefix 1 'st_short/model\.safetensors' 'too short' "$CLXP" info st_short

model_dir st_overflow
safetensors '{"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}' 4 |
    replace st_overflow model.safetensors
fails safetensors_shape_product_overflows 1 'st_overflow/model\.safetensors' 'tensor "w": shape product overflows' \
    "$CLXP" info st_overflow

model_dir st_bigshape
safetensors '{"w":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,4]}}' 4 | replace st_bigshape model.safetensors
fails safetensors_shape_bigger_than_file 1 'st_bigshape/model\.safetensors' 'tensor "w": shape needs more bytes' \
    "$CLXP" info st_bigshape

model_dir st_negshape
safetensors '{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}' 4 | replace st_negshape model.safetensors
fails safetensors_negative_dimension 1 'st_negshape/model\.safetensors' 'shape\[0\] is not a non-negative integer' \
    "$CLXP" info st_negshape

model_dir st_dup
safetensors '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}' 8 |
    replace st_dup model.safetensors
fails safetensors_duplicate_tensor_name 1 'st_dup/model\.safetensors' 'duplicate tensor name "w"' "$CLXP" info st_dup

model_dir st_range
safetensors '{"w":{"dtype":"F32","shape":[1],"data_offsets":[4294967296,4294967300]}}' 8 | replace st_range model.safetensors
fails safetensors_offsets_out_of_range 1 'st_range/model\.safetensors' 'data_offsets \[4294967296, 4294967300\] lie outside' \
    "$CLXP" info st_range

model_dir st_size
safetensors '{"w":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}}' 8 | replace st_size model.safetensors
fails safetensors_size_not_dtype_times_shape 1 'st_size/model\.safetensors' '8 bytes of data but dtype BF16 x shape needs 6' \
    "$CLXP" info st_size

model_dir st_overlap
safetensors '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}' 12 |
    replace st_overlap model.safetensors
fails safetensors_offsets_overlap 1 'st_overlap/model\.safetensors' 'tensors "a" and "b" overlap' "$CLXP" info st_overlap

model_dir st_dtype
safetensors '{"w":{"dtype":"F7","shape":[1],"data_offsets":[0,4]}}' 4 | replace st_dtype model.safetensors
fails safetensors_unknown_dtype 1 'st_dtype/model\.safetensors' 'unknown dtype "F7"' "$CLXP" info st_dtype

model_dir st_utf8
safetensors "$(printf '{"w\377":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}')" 4 | replace st_utf8 model.safetensors
fails safetensors_header_not_utf8 1 'st_utf8/model\.safetensors' 'not valid UTF-8' "$CLXP" info st_utf8

model_dir st_deep
safetensors "{\"__metadata__\":$(repeat 100000 '[')$(repeat 100000 ']')}" | replace st_deep model.safetensors
fails safetensors_header_deeply_nested 1 'st_deep/model\.safetensors' 'nested deeper than 128' "$CLXP" info st_deep

model_dir st_array
safetensors '[1,2,3]' | replace st_array model.safetensors
fails safetensors_header_not_an_object 1 'st_array/model\.safetensors' 'not a JSON object' "$CLXP" info st_array

model_dir st_missing
safetensors '{"logit_scale":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}' 4 | replace st_missing model.safetensors
fails safetensors_missing_tensor 1 'st_missing/model\.safetensors' 'missing tensor "[a-z_.0-9]+"' "$CLXP" info st_missing

# The real model's header with one tensor's shape changed to another of the same length and element count.
hlen=$(od -An -tu8 -N8 "$CLIP/model.safetensors" | tr -d ' ')
model_dir st_shape
{
    head -c 8 "$CLIP/model.safetensors"
    head -c $((8 + hlen)) "$CLIP/model.safetensors" | tail -c "$hlen" |
        sed 's/\("text_model.embeddings.position_embedding.weight":{"dtype":"F32","shape":\)\[77,48\]/\1[48,77]/'
    tail -c +$((9 + hlen)) "$CLIP/model.safetensors"
} | replace st_shape model.safetensors
fails safetensors_wrong_shape 1 'st_shape/model\.safetensors' 'position_embedding.weight" has shape \[48, ?77\], expected \[77, ?48\]' \
    "$CLXP" info st_shape

model_dir st_int
{
    head -c 8 "$CLIP/model.safetensors"
    head -c $((8 + hlen)) "$CLIP/model.safetensors" | tail -c "$hlen" |
        sed 's/\("logit_scale":{"dtype":"\)F32/\1I32/'
    tail -c +$((9 + hlen)) "$CLIP/model.safetensors"
} | replace st_int model.safetensors
fails safetensors_integer_weights 1 'st_int/model\.safetensors' 'logit_scale.*(I32|float)' "$CLXP" info st_int

model_dir st_dev
rm -f st_dev/model.safetensors
ln -s /dev/zero st_dev/model.safetensors
fails safetensors_is_a_device 1 'st_dev' 'not a regular file|no model files' "$CLXP" info st_dev

model_dir st_shards
rm -f st_shards/model.safetensors
printf '{"weight_map": {"logit_scale": "../../../../etc/passwd"}}' >st_shards/model.safetensors.index.json
fails safetensors_index_shard_outside_dir 1 'st_shards/model\.safetensors\.index\.json' 'must be a file in the model directory' \
    "$CLXP" info st_shards

# ---- config.json -------------------------------------------------------------------------------------------------

model_dir cfg_utf8
sed 's/"_name_or_path": ""/"_name_or_path": "\xff\xfe"/' "$CLIP/config.json" | replace cfg_utf8 config.json
fails config_not_utf8 1 'cfg_utf8/config\.json' 'not valid UTF-8' "$CLXP" info cfg_utf8

model_dir cfg_deep
{ printf '{"x": '; repeat 100000 '{"a":'; printf '1'; repeat 100000 '}'; printf '}'; } | replace cfg_deep config.json
fails config_deeply_nested 1 'cfg_deep/config\.json' 'nested deeper than 128' "$CLXP" info cfg_deep

model_dir cfg_neg
sed 's/"hidden_size": 64/"hidden_size": -64/' "$CLIP/config.json" | replace cfg_neg config.json
fails config_negative_size 1 'cfg_neg/config\.json' 'hidden_size' "$CLXP" info cfg_neg

model_dir cfg_huge
sed 's/"hidden_size": 64/"hidden_size": 1e300/' "$CLIP/config.json" | replace cfg_huge config.json
fails config_huge_number 1 'cfg_huge/config\.json' 'hidden_size' "$CLXP" info cfg_huge

model_dir cfg_bigimg
sed 's/"image_size": 32/"image_size": 2000000000/' "$CLIP/config.json" | replace cfg_bigimg config.json
fails config_huge_image_size 1 'cfg_bigimg/(config\.json|model\.safetensors)' 'image_size|position_embedding|limit' \
    "$CLXP" info cfg_bigimg

model_dir cfg_empty
: | replace cfg_empty config.json
fails config_empty_file 1 'cfg_empty/config\.json' 'malformed JSON|empty' "$CLXP" info cfg_empty

model_dir cfg_type
sed 's/"model_type": "clip",/"model_type": "llama",/' "$CLIP/config.json" | replace cfg_type config.json
fails config_unknown_model_type 1 'cfg_type/config\.json' 'llama' "$CLXP" info cfg_type

# ---- tokenizer.json ----------------------------------------------------------------------------------------------

model_dir tok_merge
sed '49499s/"i n",/"zq\\u00e9xx qqqzzz",/' "$CLIP/tokenizer.json" | replace tok_merge tokenizer.json
fails tokenizer_merge_of_unknown_tokens 1 'tok_merge/tokenizer\.json' 'merges\[0\] uses token "zq.*not in the vocabulary' \
    "$CLXP" info tok_merge

model_dir tok_utf8
sed '49499s/"i n",/"i\xc3 n",/' "$CLIP/tokenizer.json" | replace tok_utf8 tokenizer.json
fails tokenizer_not_utf8 1 'tok_utf8/tokenizer\.json' 'not valid UTF-8' "$CLXP" info tok_utf8

model_dir tok_deep
{ printf '{"added_tokens": '; repeat 50000 '['; repeat 50000 ']'; printf '}'; } | replace tok_deep tokenizer.json
fails tokenizer_deeply_nested 1 'tok_deep/tokenizer\.json' 'nested deeper than 128' "$CLXP" info tok_deep

model_dir tok_pre
sed '44s/"type": "Sequence"/"type": "Frobnicate"/' "$CLIP/tokenizer.json" | replace tok_pre tokenizer.json
fails tokenizer_unknown_pre_tokenizer 1 'tok_pre/tokenizer\.json' 'Frobnicate' "$CLXP" info tok_pre

model_dir tok_regex
sed '49s/"Regex": ".*"$/"Regex": "([a-z"/' "$CLIP/tokenizer.json" | replace tok_regex tokenizer.json
fails tokenizer_bad_regex 1 'tok_regex/tokenizer\.json' '([Rr]egex|pattern)' "$CLXP" info tok_regex

# 30 ByteLevel pre-tokenizers in a row: each doubles the non-ASCII bytes of a prompt, so "crème" would need 2^31
# bytes before the first token (found by the fuzzer: over 20 s; before the fix: out of memory)
model_dir tok_grow
{ head -n 53 "$CLIP/tokenizer.json"; repeat 30 '{"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}, '
    tail -n +54 "$CLIP/tokenizer.json"; } | replace tok_grow tokenizer.json
printf 'a photo of a cat\ncr\303\250me br\303\273l\303\251e\n' >labels_accents.txt
fails tokenizer_exponential_pipeline 1 'tok_grow/tokenizer\.json' 'expand the text more than 64x' \
    "$CLXP" classify -q -t 1 -l labels_accents.txt -m tok_grow "$IMG"

# ---- preprocessor_config.json ------------------------------------------------------------------------------------

model_dir pre_neg
sed 's/"shortest_edge": 32/"shortest_edge": -32/' "$CLIP/preprocessor_config.json" | replace pre_neg preprocessor_config.json
fails preprocessor_negative_size 1 'pre_neg/preprocessor_config\.json' 'shortest_edge|size' \
    $CL -m pre_neg "$IMG"

# ---- labels and categories files ---------------------------------------------------------------------------------

# 100 000 labels must work: the peak memory (maximum resident set size) is reported.
awk 'BEGIN { for (i = 0; i < 100000; i++) printf "label number %d\n", i }' >labels100k.txt
if [ -x /usr/bin/time ]; then
    works labels_100000 '' '' /usr/bin/time -f 'clxp: peak RSS %M KiB, %e s' -o res/rss \
        "$CLXP" classify -t 1 -k 3 -m "$CLIP" -l labels100k.txt "$IMG"
    echo "  100 000 labels: $(cat res/rss)"
else
    works labels_100000 '' '' "$CLXP" classify -t 1 -k 3 -m "$CLIP" -l labels100k.txt "$IMG"
    echo "  100 000 labels: peak memory not measured (/usr/bin/time is missing: apt-get install time)"
fi

awk 'BEGIN { for (i = 0; i <= 1000000; i++) print "x" }' >labels_too_many.txt
fails labels_more_than_1000000 1 'labels_too_many\.txt' 'more than 1000000 prompts' $CL -m "$CLIP" -l labels_too_many.txt "$IMG"

printf 'a cat\na d\000g\n' >labels_nul.txt
fails labels_nul_byte 1 'labels_nul\.txt:2' 'NUL byte' $CL -m "$CLIP" -l labels_nul.txt "$IMG"

head -c 4097 /dev/zero | tr '\0' x >labels_4097.txt
fails labels_prompt_over_4096_bytes 1 'labels_4097\.txt:1' '4097 bytes long, more than the limit of 4096' \
    $CL -m "$CLIP" -l labels_4097.txt "$IMG"

# a sparse file: 65 MiB of nothing on disk
dd if=/dev/zero of=labels_huge.txt bs=1 count=1 seek=$((65 << 20)) 2>/dev/null
fails labels_file_over_64_mib 1 'labels_huge\.txt' 'more than the limit' $CL -m "$CLIP" -l labels_huge.txt "$IMG"

printf '[Unit]\n' >cat_unit_only.txt
fails categories_unit_without_categories 1 'cat_unit_only\.txt' 'unit "Unit" has no categories' \
    $CL -m "$CLIP" -l cat_unit_only.txt "$IMG"

printf '[Unit]\n()\na cat\n' >cat_empty_name.txt
fails categories_empty_category_name 1 'cat_empty_name\.txt:2' 'empty category name' $CL -m "$CLIP" -l cat_empty_name.txt "$IMG"

printf 'not a label bank' >bank.st
fails label_bank_garbage 1 'bank\.st' 'header|too short' $CL -m "$CLIP" --label-bank bank.st "$IMG"

# ---- images ------------------------------------------------------------------------------------------------------

head -c 65535 /dev/zero | $FF -f rawvideo -pix_fmt gray -s 1x65535 -i - -frames:v 1 tall.png 2>res/err
fails image_1x65535 1 'tall\.png' 'image is 1x65535 pixels, over the limit' $CL -m "$CLIP" tall.png

# A PNG header claiming 100000 x 100000 (the CRC is not checked before the size is)
{
    printf '\211PNG\r\n\032\n\000\000\000\015IHDR\000\001\206\240\000\001\206\240\010\002\000\000\000'
    printf '\000\000\000\000\000\000\000\000IEND\256\102\140\202'
} >claims_huge.png
fails image_claims_100000x100000 1 'claims_huge\.png' 'image is 100000x100000 pixels, over the limit' \
    $CL -m "$CLIP" claims_huge.png

# A BMP header claiming 40000 x -40000 (top-down)
{
    printf 'BM\066\000\000\000\000\000\000\000\066\000\000\000\050\000\000\000'
    printf '\100\234\000\000\300\143\377\377\001\000\030\000\000\000\000\000\000\000\000\000'
    printf '\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000'
} >claims_huge.bmp
fails image_bmp_claims_40000x40000 1 'claims_huge\.bmp' 'image is 40000x40000 pixels, over the limit' \
    $CL -m "$CLIP" claims_huge.bmp

$FF -f lavfi -i testsrc=size=64x48 -frames:v 1 -q:v 3 whole.jpg 2>res/err
head -c 400 whole.jpg >cut.jpg
fails image_truncated_jpeg 1 'cut\.jpg' 'not a decodable image' $CL -m "$CLIP" cut.jpg

mkdir -p dir.png
fails input_directory_without_media 1 'dir\.png' 'a directory without any image, video or audio file' $CL -m "$CLIP" dir.png

# ---- video -------------------------------------------------------------------------------------------------------

printf 'YUV4MPEG2 W64 H48 F25:1 Ip A1:1 C420jpeg\n' >zero_frames.y4m
fails video_zero_frames 1 'zero_frames\.y4m' 'has no frames' $CL -m "$CLIP" zero_frames.y4m

$FF -f lavfi -i testsrc=size=64x48:rate=10:duration=1 -c:v mpeg4 -bsf:v noise=amount=1 all_corrupt.mkv 2>res/err
fails video_every_packet_corrupt 1 'all_corrupt\.mkv' 'no frame could be decoded' $CL -m "$CLIP" all_corrupt.mkv

{ printf 'YUV4MPEG2 W1 H65535 F25:1 Ip A1:1 C444\nFRAME\n'; head -c 196605 /dev/zero; } >tall.y4m
fails video_frame_1x65535 1 'tall\.y4m' 'frame of 1x65535 pixels is over the limit' $CL -m "$CLIP" tall.y4m

printf 'YUV4MPEG2 W100000 H100000 F25:1 Ip A1:1 C420jpeg\nFRAME\n' >huge.y4m
# FFmpeg's y4m reader refuses it with EBUSY; the error adds FFmpeg's own message, which says why
fails video_claims_100000x100000 1 'huge\.y4m' 'cannot open .*; FFmpeg: Picture size 100000x100000 is invalid' \
    $CL -m "$CLIP" huge.y4m

$FF -f lavfi -i testsrc=size=64x48:rate=10:duration=1 -c:v mpeg4 good.mkv 2>res/err
$FF -f lavfi -i testsrc=size=64x48:rate=10:duration=1 -c:v mpeg4 good.mp4 2>res/err
head -c 300 good.mkv >cut.mkv
fails video_cut_in_header 1 'cut\.mkv' 'cannot (open|read)' $CL -m "$CLIP" cut.mkv

head -c 2000 good.mp4 >cut.mp4
fails video_mp4_without_index 1 'cut\.mp4' 'cannot open .*; FFmpeg: moov atom not found' $CL -m "$CLIP" cut.mp4

# ---- audio (CLAP) ------------------------------------------------------------------------------------------------

# 0.68 s of NaN, +Inf, -Inf and 0.5 (32-bit float WAV): must work, with a warning
printf '\000\000\300\177\000\000\200\177\000\000\200\377\000\000\000\077' >nan.raw
i=0
while [ $i -lt 13 ]; do
    cat nan.raw nan.raw >nan2.raw && mv nan2.raw nan.raw
    i=$((i + 1))
done
$FF -f f32le -ar 48000 -ac 1 -i nan.raw -c:a copy nan.wav 2>res/err
works audio_nan_inf_samples 'nan\.wav' '24576 NaN/Inf audio samples were replaced by silence' \
    "$CLXP" classify -t 1 -k 1 -m "$CLAP" -l "$CLAP_LABELS" nan.wav

$FF -f lavfi -i sine=duration=1 -t 0 -c:a pcm_s16le no_samples.wav 2>res/err
fails audio_no_samples 1 'no_samples\.wav' 'has no samples' "$CLXP" classify -q -m "$CLAP" -l "$CLAP_LABELS" no_samples.wav

$FF -f lavfi -i sine=duration=1 -c:a mp2 -bsf:a noise=amount=1 audio_corrupt.mkv 2>res/err
fails audio_every_packet_corrupt 1 'audio_corrupt\.mkv' 'no audio could be decoded' \
    "$CLXP" classify -q -m "$CLAP" -l "$CLAP_LABELS" audio_corrupt.mkv

# ---- boxes -------------------------------------------------------------------------------------------------------

# Negative coordinates and a box past the right edge are clipped; an empty box is skipped with a warning
printf '{"frame": 0, "boxes": [{"x": -50, "y": -20, "w": 100, "h": 60}, {"x1": 150, "y1": 10, "x2": 900, "y2": 100}, {"x": -10, "y": 5, "w": -5, "h": 5}]}\n' >boxes_neg.jsonl
EXTRA='grep -q "box 0 \[0,0 50x40\]" res/out || why "box 0 was not clipped to [0,0 50x40]"'
works boxes_negative_coordinates 'boxes_neg\.jsonl' 'box 2 is empty' \
    "$CLXP" classify -t 1 -m "$CLIP" -l labels.txt --boxes boxes_neg.jsonl "$IMG"

printf '{"frame": 0, "boxes": [{"x": NaN, "y": 0, "w": 5, "h": 5}]}\n' >boxes_nan.jsonl
fails boxes_nan_coordinate 1 'boxes_nan\.jsonl:1' 'malformed JSON' $CL -m "$CLIP" --boxes boxes_nan.jsonl "$IMG"

printf '{"frame": 0, "boxes": []}\n{"frame": 0, "boxes": [{"x": 1e999, "y": 0, "w": 5, "h": 5}]}\n' >boxes_inf.jsonl
fails boxes_infinite_coordinate 1 'boxes_inf\.jsonl:2' '"x" must be a finite number' $CL -m "$CLIP" --boxes boxes_inf.jsonl "$IMG"

printf '{"frame": -3, "boxes": []}\n' >boxes_negframe.jsonl
fails boxes_negative_frame 1 'boxes_negframe\.jsonl:1' 'frame' $CL -m "$CLIP" --boxes boxes_negframe.jsonl "$IMG"

{ printf '{"frame": 0, "boxes": '; repeat 50000 '['; repeat 50000 ']'; printf '}\n'; } >boxes_deep.jsonl
fails boxes_deeply_nested 1 'boxes_deep\.jsonl:1' 'nested deeper than 128' $CL -m "$CLIP" --boxes boxes_deep.jsonl "$IMG"

printf '{"frame": 0, "boxes": [{"x": 1, "y": 1, "w": 5, "h": 5, "label": "\377"}]}\n' >boxes_utf8.jsonl
fails boxes_not_utf8 1 'boxes_utf8\.jsonl:1' 'UTF-8' $CL -m "$CLIP" --boxes boxes_utf8.jsonl "$IMG"

printf '{"frame": 3, "boxes": [{"x": 1, "y": 1, "w": 8, "h": 8}]}\n{"frame": 1000000, "boxes": [{"x": 1, "y": 1, "w": 8, "h": 8}]}\n' \
    >boxes_past_end.jsonl
works boxes_frames_past_the_end 'boxes_past_end\.jsonl' 'matched no processed frame.*line 2 \(frame 1000000\)' \
    "$CLXP" classify -t 1 -m "$CLIP" -l labels.txt --boxes boxes_past_end.jsonl good.mkv

fails boxes_target_without_boxes 2 'classify' '--target needs --boxes' $CL -m "$CLIP" --target person "$IMG"

# ---- outputs -----------------------------------------------------------------------------------------------------

EXTRA='[ -e no-such-dir ] && why "no-such-dir was created"'
fails output_in_missing_directory 1 'no-such-dir' 'does not exist' $CL -m "$CLIP" -o no-such-dir/x.jsonl "$IMG"

cp "$IMG" input.png
cksum <input.png >res/sum
EXTRA='cksum <input.png | cmp -s - res/sum || why "input.png was changed"'
fails output_is_the_input 1 'input\.png' 'also an input' $CL -m "$CLIP" -y --format jsonl -o input.png input.png

mkdir -p outdir.jsonl
fails output_is_a_directory 1 'outdir\.jsonl' 'directory|exists' $CL -m "$CLIP" -o outdir.jsonl "$IMG"

fails output_unknown_format 1 'out\.xyz' 'format|extension' $CL -m "$CLIP" -o out.xyz "$IMG"

report
