/* clxp: zero-shot classification of images, video and audio against text prompts (CLIP and CLAP models). */
#include <errno.h>
#include <libavutil/log.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static const char *usage_text =
    "clxp " CLXP_VERSION_STRING " - zero-shot classification of images, video and audio against text prompts\n"
    "(CLIP models for pictures, CLAP models for sound)\n"
    "\n"
    "Usage:\n"
    "  clxp classify -m MODEL -l LABELS [options] INPUT...\n"
    "  clxp classify --clip MODEL --labels-clip LABELS --clap MODEL --labels-clap LABELS [options] INPUT...\n"
    "  clxp info [--json] MODEL\n"
    "  clxp convert [-y] MODEL OUT_DIR\n"
    "  clxp --help | --version\n"
    "\n"
    "Commands:\n"
    "  classify   score each image, video frame or audio window against the prompts of a labels or categories file\n"
    "  info       load a model, print its configuration and run a self-test\n"
    "  convert    write a model file (PyTorch .bin/.pt, open_clip, TorchScript, OpenAI, MS-CLAP) as a directory\n"
    "\n"
    "Run 'clxp COMMAND --help' for the options of a command.\n"
    "MODEL is a Hugging Face CLIP or CLAP model directory (config.json, model.safetensors, tokenizer.json,\n"
    "preprocessor_config.json), e.g. a download of openai/clip-vit-base-patch32 or laion/clap-htsat-unfused,\n"
    "or another model file or directory: pytorch_model.bin, an open_clip checkpoint, a TorchScript or\n"
    "OpenAI .pt archive, an MS-CLAP 2023 checkpoint (see README \"Model files\").\n";

/* FFmpeg's last error message while an input is read (logging state, shared by the decoding threads): clxp's
 * one-line error for a file FFmpeg cannot read then says why in FFmpeg's words ("Picture size 100000x100000 is
 * invalid" behind "cannot open (Device or resource busy)"). */
static struct {
    pthread_mutex_t mu;
    int armed;
    char msg[256];
} g_av_last = {PTHREAD_MUTEX_INITIALIZER, 0, ""};

static void av_log_capture(void *avcl, int level, const char *fmt, va_list vl) {
    if (level <= AV_LOG_ERROR && g_av_last.armed) {
        char line[sizeof g_av_last.msg];
        int prefix = 0;
        va_list copy;
        va_copy(copy, vl);
        av_log_format_line2(avcl, level, fmt, copy, line, (int)sizeof line, &prefix);
        va_end(copy);
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ')) line[--n] = '\0';
        for (size_t i = 0; i < n; i++)
            if (line[i] == '\n' || line[i] == '\r' || line[i] == '\t') line[i] = ' ';
        if (n > 0) {
            pthread_mutex_lock(&g_av_last.mu);
            memcpy(g_av_last.msg, line, n + 1);
            pthread_mutex_unlock(&g_av_last.mu);
        }
    }
    av_log_default_callback(avcl, level, fmt, vl);
}

void cli_av_errors_watch(int on) {
    pthread_mutex_lock(&g_av_last.mu);
    g_av_last.armed = on;
    g_av_last.msg[0] = '\0';
    pthread_mutex_unlock(&g_av_last.mu);
}

int cli_fail(const clxp_error *err) {
    cli_print_error(err);
    return CLI_EXIT_ERROR;
}

void cli_print_error(const clxp_error *err) {
    const char *msg = err && err->msg[0] ? err->msg : "unknown error";
    char av[sizeof g_av_last.msg];
    pthread_mutex_lock(&g_av_last.mu);
    memcpy(av, g_av_last.msg, sizeof av);
    pthread_mutex_unlock(&g_av_last.mu);
    /* a media file's error (a format or decoding problem), with what FFmpeg said when it adds something */
    if (err && err->code == CLXP_ERR_FORMAT && av[0] && !strstr(msg, av))
        fprintf(stderr, "clxp: error: %s; FFmpeg: %s\n", msg, av);
    else fprintf(stderr, "clxp: error: %s\n", msg);
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "clxp %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'clxp %s --help')\n", cmd);
    return CLI_EXIT_USAGE;
}

static void log_to_stderr(void *user, clxp_log_level level, const char *msg) {
    (void)user;
    static const char *names[] = {"error", "warning", "info", "debug"};
    fprintf(stderr, "clxp: %s: %s\n", names[level], msg);
}

void cli_setup_logging(int verbosity) {
    clxp_log_level lv = verbosity <= 0 ? CLXP_LOG_ERROR : verbosity == 1 ? CLXP_LOG_WARN
                                                     : verbosity == 2   ? CLXP_LOG_INFO
                                                                        : CLXP_LOG_DEBUG;
    clxp_set_log_callback(log_to_stderr, NULL, lv);
    /* FFmpeg's decoders report problems on their own; clxp reports them as one-line errors instead,
     * so FFmpeg only speaks at -vv and above. */
    av_log_set_level(verbosity >= 3 ? AV_LOG_VERBOSE : verbosity >= 2 ? AV_LOG_WARNING : AV_LOG_QUIET);
    av_log_set_callback(av_log_capture);
}

int cli_parse_int(const char *s, int lo, int hi, int *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || end == s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

int cli_parse_float(const char *s, float *out) {
    char *end = NULL;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || !end || end == s || *end || v != v) return -1;
    *out = v;
    return 0;
}

/* libgomp's workers spin for ~300 000 iterations after each parallel region before sleeping. clxp decodes on its own
 * thread while the model runs, and on a small machine the spinning workers starve the decoder: a video run took
 * 3.5 s instead of 0.8 s on 2 cores. A short spin (GOMP_SPINCOUNT=10000) keeps the workers hot between the
 * back-to-back regions of one forward pass but yields the CPU between batches. libgomp reads its environment when
 * it is loaded, before main, so when the user has chosen nothing the CLI sets it and re-executes itself once. */
static void tune_openmp_wait(char **argv) {
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("GOMP_SPINCOUNT", "10000", 1) != 0) return;
    execv("/proc/self/exe", argv); /* returns only on failure: then run as we are */
}

int main(int argc, char **argv) {
    tune_openmp_wait(argv);
    if (argc < 2) {
        fputs(usage_text, stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
        printf("clxp %s\n", CLXP_VERSION_STRING);
        return 0;
    }
    cli_setup_logging(1);
    if (!strcmp(cmd, "classify")) return cmd_classify(argc - 1, argv + 1);
    if (!strcmp(cmd, "info")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "convert")) return cmd_convert(argc - 1, argv + 1);
    fprintf(stderr, "clxp: unknown command '%s' (see 'clxp --help')\n", cmd);
    return CLI_EXIT_USAGE;
}
