/* clxp classify: classify images and video frames against a labels or categories file. */
#include <getopt.h>
#include <libavutil/parseutils.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/inputs.h"
#include "cli/report.h"
#include "media/video.h"
#include "io/prompts.h"
#include "output/writer.h"
#include "util/error.h"

#define MAX_TEMPLATES 256
#define MAX_OUTPUTS 16
#define FILE_BATCH 16

static const char *classify_help =
    "Usage: clxp classify -m MODEL_DIR -l LABELS [options] INPUT...\n"
    "       clxp classify --clip MODEL_DIR --labels-clip LABELS --clap MODEL_DIR --labels-clap LABELS [options] INPUT...\n"
    "\n"
    "Classifies still images and the frames of videos (CLIP models) or audio windows (CLAP models) of any file\n"
    "or URL FFmpeg opens against the prompts of LABELS (zero-shot): probabilities are a softmax over the labels\n"
    "of logit_scale * cosine / temperature. An INPUT that is a directory stands for the image, video and audio\n"
    "files below it (recursively, in name order; hidden files and other files are left out).\n"
    "\n"
    "LABELS is a labels file (one prompt per line, UTF-8, blank lines ignored) or a categories file ('[Unit]'\n"
    "lines open a classification unit, '(Category)' lines a category, other lines are the category's prompts):\n"
    "a softmax runs over each unit's prompts, a category scores the sum of its prompts' probabilities, and each\n"
    "unit reports its best category.\n"
    "\n"
    "Prompts and scores:\n"
    "  -m, --model DIR|FILE     Hugging Face CLIP or CLAP model directory (required), or a model file: .bin, .pt,\n"
    "                           .pth (PyTorch, open_clip, TorchScript, OpenAI; README \"Model files\")\n"
    "  -l, --labels FILE        labels or categories file (required)\n"
    "      --template TEXT      prompt template with '{}' for the label, e.g. 'a photo of {}.'; repeat it to\n"
    "                           average several templates (prompt ensembling). Labels files only.\n"
    "      --label-bank FILE    keep the encoded prompts in FILE: made from LABELS (and the templates) on the\n"
    "                           first run, reused by later runs with the same model and prompts (no text\n"
    "                           encoding); a bank of another model is refused; -y rebuilds a stale one\n"
    "  -k, --top K              report the K most probable labels (default 5; 0 = all)\n"
    "      --confidence P       only report labels with probability >= P (default 0)\n"
    "      --logit-scale S      multiply cosines by S instead of the model's learned exp(logit_scale)\n"
    "      --temperature T      divide logits by T (default 1)\n"
    "\n"
    "Video frames (combinable; TIME is seconds or [HH:]MM:SS[.m] as in FFmpeg):\n"
    "      --stream SPEC        video stream to use, FFmpeg stream specifier (default: the best one), e.g. v:1\n"
    "      --every N            keep every Nth frame\n"
    "      --interval TIME      keep one frame per TIME, by timestamp (e.g. 1 = one frame per second)\n"
    "      --scene X            keep frames at scene changes (libavfilter select='gt(scene,X)', e.g. 0.3)\n"
    "      --keyframes          decode key frames only (fast)\n"
    "      --skip-nonref        do not decode non-reference frames (faster; with --interval a sampled frame may\n"
    "                           be the next reference frame after the time asked for)\n"
    "      --start TIME         start at TIME (seeks), like ffmpeg -ss\n"
    "      --duration TIME      stop after TIME, like ffmpeg -t\n"
    "      --vf GRAPH           libavfilter graph applied to frames before classification (e.g. 'crop=iw/2:ih')\n"
    "      --batch N            frames (or audio windows) per inference batch (default 16)\n"
    "      --boxes FILE         classify the regions of a detections file instead of whole frames (JSON Lines,\n"
    "                           one line per frame: {\"frame\": N, \"boxes\": [{\"x\":..,\"y\":..,\"w\":..,\"h\":..}]})\n"
    "      --target LABEL       with --boxes: only the boxes whose detector label is LABEL (case-insensitive)\n"
    "\n"
    "Audio (with a CLAP model: windows of the model's length, e.g. 10 s; the last one repeat-padded):\n"
    "      --hop TIME           time between window starts (default: the window length)\n"
    "      --stream SPEC, --start, --duration as above (SPEC e.g. a:1)\n"
    "\n"
    "Video and audio together (one pass over each file: its pictures through a CLIP model, its sound through a\n"
    "CLAP model; each stream's results in time order, one csv summary with rows for both streams):\n"
    "      --clip DIR           CLIP model for the video stream (alone: the same as -m DIR)\n"
    "      --labels-clip FILE   labels or categories file of the CLIP model\n"
    "      --clap DIR           CLAP model for the audio stream (alone: the same as -m DIR)\n"
    "      --labels-clap FILE   labels or categories file of the CLAP model\n"
    "      --template-clap TEXT prompt template of the CLAP labels (repeatable; --template is then the CLIP one's)\n"
    "      --audio-stream SPEC  audio stream to use (default: the best one); --stream then selects the video stream\n"
    "                           A file without sound (or a still image) is classified with the CLIP model alone, a\n"
    "                           file without pictures with the CLAP model alone (with a warning).\n"
    "\n"
    "Output:\n"
    "  -o, --output FILE        write results to FILE (repeatable); format from --format or the extension:\n"
    "                           jsonl (a record per frame), csv (per-label summary: stream_id,label,\n"
    "                           avg_probability,count; with several inputs an input column first),\n"
    "                           srt / vtt (subtitles; one input only), html (report with a timeline)\n"
    "      --format FMT         format of the next -o: jsonl, csv, srt, vtt, html\n"
    "  -y, --overwrite          overwrite existing output files (otherwise they are an error)\n"
    "      --json               print JSON on stdout instead of the table\n"
    "      --keep-going         an input that cannot be read or classified is reported (one error line) and the\n"
    "                           run goes on; the outputs keep every other input's results (and those of a file\n"
    "                           that failed part-way, up to the failure); exit status 1 if any input failed\n"
    "  -t, --threads N          worker threads (default: all cores)\n"
    CLI_MODEL_OPTIONS_HELP
    "  -q, --quiet              no table and no progress; only errors\n"
    "  -v, --verbose            more messages on stderr (repeat for FFmpeg's own messages)\n"
    "  -h, --help               show this help\n"
    "\n"
    "Examples:\n"
    "  clxp classify -m clip-vit-base-patch32 -l labels.txt --template 'a photo of {}.' cat.jpg\n"
    "  clxp classify -m clip-vit-base-patch32 -l categories.txt --interval 1 -o movie.jsonl -o movie.csv movie.mkv\n"
    "  clxp classify --clip clip-vit-base-patch32 --labels-clip scenes.txt --clap clap-htsat-unfused \\\n"
    "      --labels-clap sounds.txt --interval 1 -o movie.csv movie.mkv\n";

typedef struct output_spec {
    const char *path;
    const char *format; /* NULL: from the extension */
} output_spec;

typedef struct options {
    const char *model, *labels, *bank;
    const char *templates[MAX_TEMPLATES];
    int n_templates, top, json, verbosity, overwrite, keep_going;
    /* --clip/--clap: the CLIP model is `model`, the CLAP one `clap` when both are given (a combined run) */
    const char *clip, *clap, *labels_clip, *labels_clap;
    const char *templates_clap[MAX_TEMPLATES];
    int n_templates_clap, combined;
    float confidence, logit_scale, temperature;
    output_spec outputs[MAX_OUTPUTS];
    int n_outputs;
    clxp_load_options load;
    clxp_run_options run;
} options;

static int parse_time(const char *s, double *out) {
    int64_t us = 0;
    if (av_parse_time(&us, s, 1) < 0 || us < 0) return -1;
    *out = (double)us / 1e6;
    return 0;
}

/* --clip / --clap / --labels-clip / --labels-clap: one of the two models is `model` (-m), both are a combined run.
 * Returns 0 or a usage error's exit status. */
static int model_options(options *o) {
    if (!o->clip && !o->clap) {
        if (o->labels_clip || o->labels_clap || o->n_templates_clap || o->run.audio_stream)
            return cli_usage_error("classify", "--labels-clip, --labels-clap, --template-clap and --audio-stream go "
                                               "with --clip / --clap");
        return 0;
    }
    if (o->model) return cli_usage_error("classify", "-m is not used with --clip / --clap");
    if ((o->clip && o->labels_clap && !o->clap) || (o->clap && o->labels_clip && !o->clip))
        return cli_usage_error("classify", "--labels-%s without --%s", o->clip ? "clap" : "clip",
                               o->clip ? "clap" : "clip");
    if (o->clip && o->clap) {
        if (o->labels || !o->labels_clip || !o->labels_clap)
            return cli_usage_error("classify", "with --clip and --clap, give --labels-clip FILE and --labels-clap FILE "
                                               "(not -l)");
        if (o->bank) return cli_usage_error("classify", "--label-bank keeps one model's prompts: not with --clip and --clap");
        o->combined = 1;
        o->model = o->clip;
        o->labels = o->labels_clip;
        return 0;
    }
    if (o->n_templates_clap || o->run.audio_stream)
        return cli_usage_error("classify", "--template-clap and --audio-stream need both --clip and --clap");
    const char *own = o->clip ? o->labels_clip : o->labels_clap;
    if (own && o->labels) return cli_usage_error("classify", "both -l and --labels-%s", o->clip ? "clip" : "clap");
    o->model = o->clip ? o->clip : o->clap;
    if (own) o->labels = own;
    return 0;
}

static int parse_args(int argc, char **argv, options *o) {
    enum {
        OPT_TEMPLATE = 1000, OPT_CONF, OPT_SCALE, OPT_TEMP, OPT_JSON, OPT_STREAM, OPT_EVERY, OPT_INTERVAL,
        OPT_SCENE, OPT_KEYFRAMES, OPT_SKIP_NONREF, OPT_START, OPT_DURATION, OPT_VF, OPT_BATCH, OPT_FORMAT, OPT_HOP, OPT_BANK,
        OPT_BOXES, OPT_TARGET, OPT_CLIP, OPT_CLAP, OPT_LABELS_CLIP, OPT_LABELS_CLAP, OPT_TEMPLATE_CLAP, OPT_AUDIO_STREAM,
        OPT_KEEP_GOING
    };
    static const struct option opts[] = {{"model", required_argument, NULL, 'm'},
                                         {"labels", required_argument, NULL, 'l'},
                                         {"template", required_argument, NULL, OPT_TEMPLATE},
                                         {"top", required_argument, NULL, 'k'},
                                         {"confidence", required_argument, NULL, OPT_CONF},
                                         {"logit-scale", required_argument, NULL, OPT_SCALE},
                                         {"temperature", required_argument, NULL, OPT_TEMP},
                                         {"stream", required_argument, NULL, OPT_STREAM},
                                         {"every", required_argument, NULL, OPT_EVERY},
                                         {"interval", required_argument, NULL, OPT_INTERVAL},
                                         {"scene", required_argument, NULL, OPT_SCENE},
                                         {"keyframes", no_argument, NULL, OPT_KEYFRAMES},
                                         {"skip-nonref", no_argument, NULL, OPT_SKIP_NONREF},
                                         {"start", required_argument, NULL, OPT_START},
                                         {"duration", required_argument, NULL, OPT_DURATION},
                                         {"vf", required_argument, NULL, OPT_VF},
                                         {"batch", required_argument, NULL, OPT_BATCH},
                                         {"hop", required_argument, NULL, OPT_HOP},
                                         {"label-bank", required_argument, NULL, OPT_BANK},
                                         {"boxes", required_argument, NULL, OPT_BOXES},
                                         {"clip", required_argument, NULL, OPT_CLIP},
                                         {"clap", required_argument, NULL, OPT_CLAP},
                                         {"labels-clip", required_argument, NULL, OPT_LABELS_CLIP},
                                         {"labels-clap", required_argument, NULL, OPT_LABELS_CLAP},
                                         {"template-clap", required_argument, NULL, OPT_TEMPLATE_CLAP},
                                         {"audio-stream", required_argument, NULL, OPT_AUDIO_STREAM},
                                         {"target", required_argument, NULL, OPT_TARGET},
                                         {"output", required_argument, NULL, 'o'},
                                         {"format", required_argument, NULL, OPT_FORMAT},
                                         {"overwrite", no_argument, NULL, 'y'},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         {"keep-going", no_argument, NULL, OPT_KEEP_GOING},
                                         {"threads", required_argument, NULL, 't'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         CLI_MODEL_LONG_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->top = 5;
    o->verbosity = 1;
    o->temperature = 1;
    const char *pending_format = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:l:k:o:t:yqvh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'l': o->labels = optarg; break;
        case OPT_TEMPLATE:
            if (o->n_templates == MAX_TEMPLATES)
                return cli_usage_error("classify", "more than %d templates", MAX_TEMPLATES);
            if (!strstr(optarg, "{}")) return cli_usage_error("classify", "template '%s' has no '{}'", optarg);
            o->templates[o->n_templates++] = optarg;
            break;
        case 'k':
            if (cli_parse_int(optarg, 0, 1 << 30, &o->top)) return cli_usage_error("classify", "bad --top '%s'", optarg);
            break;
        case OPT_CONF:
            if (cli_parse_float(optarg, &o->confidence) || o->confidence < 0 || o->confidence > 1)
                return cli_usage_error("classify", "--confidence must be in [0, 1], got '%s'", optarg);
            break;
        case OPT_SCALE:
            if (cli_parse_float(optarg, &o->logit_scale) || !(o->logit_scale > 0) || !isfinite(o->logit_scale))
                return cli_usage_error("classify", "--logit-scale must be a positive number, got '%s'", optarg);
            break;
        case OPT_TEMP:
            if (cli_parse_float(optarg, &o->temperature) || !(o->temperature > 0) || !isfinite(o->temperature))
                return cli_usage_error("classify", "--temperature must be a positive number, got '%s'", optarg);
            break;
        case OPT_STREAM: o->run.stream = optarg; break;
        case OPT_EVERY:
            if (cli_parse_int(optarg, 1, 1 << 30, &o->run.every_n))
                return cli_usage_error("classify", "--every must be a positive integer, got '%s'", optarg);
            break;
        case OPT_INTERVAL:
            if (parse_time(optarg, &o->run.every_t) || !(o->run.every_t > 0))
                return cli_usage_error("classify", "--interval must be a positive time, got '%s'", optarg);
            break;
        case OPT_SCENE: {
            float v;
            if (cli_parse_float(optarg, &v) || !(v > 0 && v < 1))
                return cli_usage_error("classify", "--scene must be in (0, 1), got '%s'", optarg);
            o->run.scene = v;
            break;
        }
        case OPT_KEYFRAMES: o->run.keyframes_only = 1; break;
        case OPT_SKIP_NONREF: o->run.skip_nonref = 1; break;
        case OPT_START:
            if (parse_time(optarg, &o->run.start)) return cli_usage_error("classify", "bad --start '%s'", optarg);
            break;
        case OPT_DURATION:
            if (parse_time(optarg, &o->run.duration) || !(o->run.duration > 0))
                return cli_usage_error("classify", "--duration must be a positive time, got '%s'", optarg);
            break;
        case OPT_VF: o->run.vf = optarg; break;
        case OPT_BATCH:
            if (cli_parse_int(optarg, 1, 1024, &o->run.batch))
                return cli_usage_error("classify", "--batch must be in [1, 1024], got '%s'", optarg);
            break;
        case OPT_HOP:
            if (parse_time(optarg, &o->run.hop) || !(o->run.hop > 0))
                return cli_usage_error("classify", "--hop must be a positive time, got '%s'", optarg);
            break;
        case OPT_BANK: o->bank = optarg; break;
        case OPT_BOXES: o->run.boxes = optarg; break;
        case OPT_CLIP: o->clip = optarg; break;
        case OPT_CLAP: o->clap = optarg; break;
        case OPT_LABELS_CLIP: o->labels_clip = optarg; break;
        case OPT_LABELS_CLAP: o->labels_clap = optarg; break;
        case OPT_TEMPLATE_CLAP:
            if (o->n_templates_clap == MAX_TEMPLATES)
                return cli_usage_error("classify", "more than %d templates", MAX_TEMPLATES);
            if (!strstr(optarg, "{}")) return cli_usage_error("classify", "template '%s' has no '{}'", optarg);
            o->templates_clap[o->n_templates_clap++] = optarg;
            break;
        case OPT_AUDIO_STREAM: o->run.audio_stream = optarg; break;
        case OPT_TARGET: o->run.target = optarg; break;
        case OPT_FORMAT: pending_format = optarg; break;
        case 'o':
            if (o->n_outputs == MAX_OUTPUTS) return cli_usage_error("classify", "more than %d outputs", MAX_OUTPUTS);
            o->outputs[o->n_outputs++] = (output_spec){optarg, pending_format};
            pending_format = NULL;
            break;
        case 'y': o->overwrite = 1; break;
        case OPT_KEEP_GOING: o->keep_going = 1; break;
        case OPT_JSON: o->json = 1; break;
        case 't':
            if (cli_parse_int(optarg, 1, 4096, &o->load.n_threads))
                return cli_usage_error("classify", "bad --threads '%s'", optarg);
            break;
        case 'q': o->verbosity = 0; break;
        case 'v': o->verbosity++; break;
        case 'h': fputs(classify_help, stdout); return -1;
        case CLI_OPT_TOKENIZER:
        case CLI_OPT_VISION_HEADS:
        case CLI_OPT_PRECISION:
        case CLI_OPT_TEXT_HEADS: {
            int r = cli_model_option("classify", c, optarg, &o->load);
            if (r) return r;
            break;
        }
        default: return cli_usage_error("classify", "invalid option");
        }
    }
    if (pending_format) return cli_usage_error("classify", "--format %s must come before an -o FILE", pending_format);
    int rc = model_options(o);
    if (rc != 0) return rc;
    if (!o->model) return cli_usage_error("classify", "missing -m MODEL_DIR");
    if (o->run.target && !o->run.boxes) return cli_usage_error("classify", "--target needs --boxes FILE");
    if (!o->labels && !(o->bank && access(o->bank, F_OK) == 0))
        return cli_usage_error("classify", "missing -l LABELS (or an existing --label-bank FILE)");
    if (optind >= argc) return cli_usage_error("classify", "no input images or videos");
    o->run.score = (clxp_score_options){o->logit_scale, o->temperature};
    return 0;
}

/* ---- running ----------------------------------------------------------------------------------------------- */

/* SIGINT/SIGTERM: stop decoding, keep what was classified, close every output validly, exit 128 + signal.
 * The flag is the CLI's only global (a signal handler can do nothing else). */
static volatile sig_atomic_t g_signal;

static void on_signal(int sig) { g_signal = sig; }

static int interrupted(void *user) {
    (void)user;
    return g_signal != 0;
}

static void install_signal_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

typedef struct run_state {
    const options *o;
    report *rep;
    out_writer *writers[MAX_OUTPUTS];
    int n_writers;
    clxp_status st; /* first error of a writer, reported after the run */
    clxp_error err;
} run_state;

static int on_result(void *user, const clxp_result *r) {
    run_state *s = user;
    report_result(s->rep, r);
    for (int i = 0; i < s->n_writers && s->st == CLXP_OK; i++) s->st = out_write(s->writers[i], r, &s->err);
    return s->st != CLXP_OK; /* a failing output stops the run */
}

static void on_progress(void *user, double pos, double dur, int64_t frames) {
    report_progress(user, pos, dur, frames);
}

/* --keep-going: whether the run can go on after st, an error of the input itself (unreadable, undecodable,
 * unsupported, over a limit); not a failing output, memory or an internal error. */
static int skippable(const run_state *s, clxp_status st) {
    return s->o->keep_going && s->st == CLXP_OK &&
           (st == CLXP_ERR_IO || st == CLXP_ERR_FORMAT || st == CLXP_ERR_UNSUPPORTED || st == CLXP_ERR_LIMIT ||
            st == CLXP_ERR_INVALID);
}

/* --keep-going: a skippable failure of one input is reported (one line) and counted, and the run goes on
 * (CLXP_OK); any other status is returned as it is. */
static clxp_status skip_failed_input(const run_state *s, clxp_status st, const clxp_error *err, int *n_failed) {
    if (st == CLXP_OK || !skippable(s, st)) return st;
    cli_print_error(err);
    (*n_failed)++;
    return CLXP_OK;
}

/* Classify B images and pass on their results. */
static clxp_status image_batch(clxp_model *m, const clxp_labelbank *b, const char *const *files, int B, float *emb,
                               float *scores, run_state *s, clxp_error *err) {
    const int C = clxp_labelbank_n_classes(b);
    clxp_status st = clxp_encode_image_files(m, files, B, emb, err);
    if (st == CLXP_OK) st = clxp_classify(b, emb, B, &s->o->run.score, scores, err);
    for (int i = 0; i < B && st == CLXP_OK; i++) {
        clxp_result r = {.input = files[i], .media_type = 'v', .box_index = -1, .box_score = NAN, .n_classes = C,
                         .scores = scores + (size_t)i * C};
        if (on_result(s, &r)) {
            st = s->st;
            if (err) *err = s->err;
        }
    }
    return st;
}

/* Consecutive still images are classified in batches, like any list of image files. With --keep-going, a batch
 * that fails is done again one image at a time: each bad image is reported and counted in *n_failed. */
static clxp_status run_images(clxp_model *m, const clxp_labelbank *b, const char *const *files, int n, run_state *s,
                              int *n_failed, clxp_error *err) {
    const int dim = clxp_model_get_info(m)->embed_dim, C = clxp_labelbank_n_classes(b);
    float *emb = malloc((size_t)FILE_BATCH * dim * sizeof *emb), *scores = malloc((size_t)FILE_BATCH * C * sizeof *scores);
    clxp_status st = (emb && scores) ? CLXP_OK : clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    for (int b0 = 0; b0 < n && st == CLXP_OK && !g_signal; b0 += FILE_BATCH) {
        int B = n - b0 < FILE_BATCH ? n - b0 : FILE_BATCH;
        st = image_batch(m, b, files + b0, B, emb, scores, s, err);
        if (st == CLXP_OK || !skippable(s, st)) continue;
        /* nothing of the batch was passed on (encoding comes first): one image at a time */
        st = CLXP_OK;
        for (int i = 0; i < B && st == CLXP_OK && !g_signal; i++)
            st = skip_failed_input(s, image_batch(m, b, files + b0 + i, 1, emb, scores, s, err), err, n_failed);
    }
    free(emb);
    free(scores);
    return st;
}

/* 1 if a saved bank holds exactly the prompts, units/categories and templates of this run. */
static int bank_matches(const clxp_labelbank *b, const prompt_set *ps, const options *o) {
    const int nt = ps->is_categories ? 0 : o->n_templates;
    if (clxp_labelbank_size(b) != ps->n || clxp_labelbank_n_templates(b) != nt ||
        clxp_labelbank_n_units(b) != ps->n_units)
        return 0;
    for (int i = 0; i < ps->n; i++)
        if (strcmp(clxp_labelbank_label(b, i), ps->text[i]) != 0) return 0;
    for (int t = 0; t < nt; t++)
        if (strcmp(clxp_labelbank_template(b, t), o->templates[t]) != 0) return 0;
    if (ps->is_categories) {
        if (clxp_labelbank_n_classes(b) != ps->n_cats) return 0;
        for (int c = 0; c < ps->n_cats; c++)
            if (strcmp(clxp_labelbank_class_name(b, c), ps->cats[c].name) != 0 ||
                clxp_labelbank_class_unit(b, c) != ps->cats[c].unit)
                return 0;
    }
    return 1;
}

/* The label bank: the --label-bank file when it exists and was made from the same prompts (or when no -l is
 * given); otherwise encoded from -l, and saved to --label-bank if given. A stale bank is rebuilt only with -y. */
static clxp_status get_bank(const options *o, clxp_model *m, clxp_labelbank **out, clxp_error *err) {
    *out = NULL;
    clxp_status st;
    if (o->bank && access(o->bank, F_OK) == 0) {
        clxp_labelbank *saved = NULL;
        if ((st = clxp_labelbank_load(m, o->bank, &saved, err)) != CLXP_OK) return st;
        if (!o->labels) {
            *out = saved;
            return CLXP_OK;
        }
        prompt_set ps;
        if ((st = prompts_load(o->labels, &ps, err)) != CLXP_OK) {
            clxp_labelbank_free(saved);
            return st;
        }
        int same = bank_matches(saved, &ps, o);
        prompts_free(&ps);
        if (same) {
            *out = saved;
            return CLXP_OK;
        }
        clxp_labelbank_free(saved);
        if (!o->overwrite)
            return clxp_err_set(err, CLXP_ERR_INVALID,
                                "%s: label bank was made from other prompts or templates than %s (use -y to rebuild it)",
                                o->bank, o->labels);
    }
    st = clxp_labelbank_load_file(m, o->labels, o->templates, o->n_templates, out, err);
    if (st == CLXP_OK && o->bank) st = clxp_labelbank_save(*out, o->bank, 1, err); /* absent, or stale with -y */
    if (st != CLXP_OK) {
        clxp_labelbank_free(*out);
        *out = NULL;
    }
    return st;
}

/* --clip DIR must be a CLIP model and --clap DIR a CLAP model (flag NULL: nothing to check). */
static clxp_status check_kind(clxp_model *m, const char *flag, const char *kind, clxp_error *err) {
    const char *have = clxp_model_get_info(m)->kind;
    if (!flag || strcmp(have, kind) == 0) return CLXP_OK;
    return clxp_err_set(err, CLXP_ERR_INVALID, "--%s %s: this is a %s model (%s); use --%s for it", kind, flag,
                        strcmp(have, "clap") == 0 ? "CLAP" : "CLIP",
                        strcmp(have, "clap") == 0 ? "audio" : "images and video", have);
}

int cmd_classify(int argc, char **argv) {
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    cli_setup_logging(o.verbosity);

    clxp_error err = {0};
    /* directories become the media files below them (before loading anything: a bad directory fails fast) */
    cli_inputs in;
    if (cli_inputs_expand(argv + optind, argc - optind, &in, &err) != CLXP_OK) return cli_fail(&err);
    if (in.skipped > 0 && o.verbosity > 1)
        fprintf(stderr, "clxp: %lld file%s below the input directories left out (not media, or hidden)\n",
                in.skipped, in.skipped == 1 ? "" : "s");
    clxp_model *m = NULL, *am = NULL; /* am: the CLAP model of a combined run */
    clxp_labelbank *bank = NULL, *abank = NULL;
    if (clxp_model_load(o.model, &o.load, &m, &err) != CLXP_OK || check_kind(m, o.clip, "clip", &err) != CLXP_OK ||
        check_kind(m, o.combined ? NULL : o.clap, "clap", &err) != CLXP_OK || get_bank(&o, m, &bank, &err) != CLXP_OK ||
        (o.combined && (clxp_model_load(o.clap, &o.load, &am, &err) != CLXP_OK ||
                        check_kind(am, o.clap, "clap", &err) != CLXP_OK ||
                        clxp_labelbank_load_file(am, o.labels_clap, o.templates_clap, o.n_templates_clap, &abank,
                                                 &err) != CLXP_OK))) {
        clxp_labelbank_free(bank);
        clxp_model_free(am);
        clxp_model_free(m);
        cli_inputs_free(&in);
        return cli_fail(&err);
    }
    if ((o.verbosity > 1 || (o.verbosity > 0 && isatty(2))) && o.load.precision == CLXP_PRECISION_AUTO)
        fprintf(stderr, "clxp: %s arithmetic (--precision auto%s)\n", clxp_model_get_info(m)->precision,
                strcmp(clxp_model_get_info(m)->precision, "bf16") == 0 ? ": this CPU has bf16; fp32 is exact" : "");
    const int n_in = in.n;
    const char *const *inputs = (const char *const *)in.path;
    run_state s = {.o = &o};
    clxp_status st = CLXP_OK;
    report_options ro = {o.top, o.confidence, o.json, o.verbosity > 0 && !o.json && o.n_outputs == 0,
                         o.verbosity > 0 && isatty(2), o.model, o.labels, o.logit_scale, o.temperature,
                         abank ? o.clap : NULL, abank ? o.labels_clap : NULL, abank};
    st = report_create(bank, &ro, &s.rep, &err);
    /* Open every output before any work: a bad path fails fast, and nothing is written on failure. */
    for (int i = 0; i < o.n_outputs && st == CLXP_OK; i++) {
        out_format f;
        st = o.outputs[i].format ? out_format_parse(o.outputs[i].format, &f, &err)
                                 : out_format_from_path(o.outputs[i].path, &f, &err);
        out_options oo = {o.top, o.confidence, o.overwrite, n_in == 1 ? inputs[0] : NULL, o.model, n_in > 1};
        if (st == CLXP_OK && (f == OUT_SRT || f == OUT_VTT) && n_in > 1)
            st = clxp_err_set(&err, CLXP_ERR_INVALID,
                              "%s: subtitles follow one input and %d were given (run once per input, or write "
                              ".jsonl, .csv or .html)",
                              o.outputs[i].path, n_in);
        for (int k = 0; k < n_in && st == CLXP_OK; k++) /* never write over an input */
            if (strcmp(inputs[k], o.outputs[i].path) == 0 || out_same_file(inputs[k], o.outputs[i].path))
                st = clxp_err_set(&err, CLXP_ERR_INVALID, "%s: output file is also an input", o.outputs[i].path);
        const clxp_labelbank *banks[2] = {bank, abank};
        if (st == CLXP_OK)
            st = out_open_banks(o.outputs[i].path, f, banks, abank ? 2 : 1, &oo, &s.writers[s.n_writers], &err);
        if (st == CLXP_OK) s.n_writers++;
    }
    o.run.progress = on_progress;
    o.run.progress_user = s.rep;
    o.run.interrupt = interrupted;
    install_signal_handlers();
    const int clip = strcmp(clxp_model_get_info(m)->kind, "clip") == 0;
    int n_failed = 0; /* --keep-going: inputs reported and skipped */
    for (int i = 0; i < n_in && st == CLXP_OK && !g_signal;) {
        int j = i;
        while (clip && !o.run.boxes && j < n_in && media_is_still_image(inputs[j])) j++; /* boxes: clxp_run_file */
        if (j > i) {
            cli_av_errors_watch(0);
            st = run_images(m, bank, inputs + i, j - i, &s, &n_failed, &err);
            i = j;
            continue;
        }
        report_begin_input(s.rep, inputs[i]);
        cli_av_errors_watch(1);
        st = am ? clxp_run_file_av(m, bank, am, abank, inputs[i], &o.run, on_result, &s, &err)
                : clxp_run_file(m, bank, inputs[i], &o.run, on_result, &s, &err);
        report_end_input(s.rep, st == CLXP_OK && s.st == CLXP_OK);
        if (st == CLXP_OK && s.st != CLXP_OK) {
            st = s.st;
            err = s.err;
        }
        if (!g_signal) st = skip_failed_input(&s, st, &err, &n_failed);
        i++;
    }
    if (st == CLXP_OK) st = report_finish(s.rep, &err);
    for (int i = 0; i < s.n_writers; i++) {
        if (st == CLXP_OK) st = out_close(s.writers[i], &err);
        else out_abort(s.writers[i]);
    }
    report_free(s.rep);
    clxp_labelbank_free(bank);
    clxp_labelbank_free(abank);
    clxp_model_free(m);
    clxp_model_free(am);
    cli_inputs_free(&in);
    if (fflush(stdout) != 0 && st == CLXP_OK) st = clxp_err_set(&err, CLXP_ERR_IO, "cannot write to standard output");
    if (st != CLXP_OK) return cli_fail(&err);
    if (n_failed > 0)
        fprintf(stderr, "clxp: %d of %d input%s failed (--keep-going); the outputs hold the results of the others\n",
                n_failed, n_in, n_in == 1 ? "" : "s");
    if (g_signal) {
        fprintf(stderr, "clxp: interrupted by signal %d: results of the frames processed so far were written\n",
                (int)g_signal);
        return 128 + (int)g_signal;
    }
    return n_failed > 0 ? CLI_EXIT_ERROR : 0;
}
