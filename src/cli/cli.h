/* Shared pieces of the clxp command-line tool. */
#ifndef CLXP_CLI_H
#define CLXP_CLI_H

#include "clxp.h"

/* Exit statuses: 0 success, 1 a run-time error (bad file, bad model), 2 a usage error. */
#define CLI_EXIT_ERROR 1
#define CLI_EXIT_USAGE 2

int cmd_classify(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_convert(int argc, char **argv);

/* Model-file options shared by classify, info and convert (cmd_convert.c): long options only. */
#define CLI_OPT_TOKENIZER 0x2001
#define CLI_OPT_VISION_HEADS 0x2002
#define CLI_OPT_TEXT_HEADS 0x2003
#define CLI_OPT_PRECISION 0x2004
#define CLI_MODEL_LONG_OPTIONS                                                                                        \
    {"tokenizer", required_argument, NULL, CLI_OPT_TOKENIZER},                                                        \
        {"vision-heads", required_argument, NULL, CLI_OPT_VISION_HEADS},                                              \
        {"text-heads", required_argument, NULL, CLI_OPT_TEXT_HEADS},                                                  \
        {"precision", required_argument, NULL, CLI_OPT_PRECISION}
#define CLI_MODEL_OPTIONS_HELP                                                                                        \
    "      --precision P        fp32, bf16 or auto (default): the arithmetic of the matrix products; auto is bf16\n"  \
    "                           where the CPU has AVX512-BF16 or AMX, else fp32 (bf16 bounds: see the README)\n"     \
    "      --tokenizer FILE     tokenizer.json (or CLIP merges.txt) for model files without one (default: the\n"       \
    "                           built-in CLIP vocabulary)\n"                                                          \
    "      --vision-heads N     attention heads of the image tower, --text-heads N of the text tower: for OpenAI\n"   \
    "      --text-heads N       archives of non-standard models (their files do not store it; default width/64)\n"
/* Handle one of the options above (getopt code c, its argument); returns 0 or a usage error's exit status. */
int cli_model_option(const char *cmd, int c, const char *arg, clxp_load_options *lo);

/* Print "clxp: error: <msg>" on stderr (one line) and return CLI_EXIT_ERROR. A CLXP_ERR_FORMAT error after
 * cli_av_errors_watch(1) gets FFmpeg's last error message since then appended ("<msg>; FFmpeg: <its message>"). */
int cli_fail(const clxp_error *err);
/* The same line, without returning a status (an input skipped by --keep-going). */
void cli_print_error(const clxp_error *err);
/* 1: start remembering FFmpeg's error messages for cli_fail, forgetting earlier ones (before each media input);
 * 0: stop and forget (still images are decoded in parallel: a message could be another file's). */
void cli_av_errors_watch(int on);
/* Print "clxp <cmd>: <msg>" plus a hint to --help on stderr and return CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Route library logging (and FFmpeg's, at a matching level) to stderr; verbosity: 0 quiet .. 3 debug. */
void cli_setup_logging(int verbosity);
/* Parse a positive integer option value; returns 0 on success. */
int cli_parse_int(const char *s, int lo, int hi, int *out);
int cli_parse_float(const char *s, float *out);

#endif
