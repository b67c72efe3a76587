/* Shared pieces of the clxp command-line tool. */
#ifndef CLXP_CLI_H
#define CLXP_CLI_H

#include "clxp.h"

/* Exit statuses: 0 success, 1 a run-time error (bad file, bad model), 2 a usage error. */
#define CLI_EXIT_ERROR 1
#define CLI_EXIT_USAGE 2

int cmd_classify(int argc, char **argv);
int cmd_info(int argc, char **argv);

/* Print "clxp: error: <msg>" on stderr (one line) and return CLI_EXIT_ERROR. */
int cli_fail(const clxp_error *err);
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
