/* What `clxp classify` shows: the table on stdout (still images buffered until the run succeeds, video rows
 * live), or one JSON document (--json), and a progress line on stderr when it is a terminal. */
#ifndef CLXP_CLI_REPORT_H
#define CLXP_CLI_REPORT_H

#include <stdint.h>

#include "clxp.h"

typedef struct report_options {
    int top;          /* labels per row (0 = all) */
    float confidence; /* hide labels below this */
    int json;         /* one JSON document instead of the table */
    int table;        /* print the table at all */
    int progress;     /* progress line on stderr */
    const char *model, *labels;
    float logit_scale, temperature; /* as given (0 = model default) */
    /* a combined video + audio run: the CLAP model, its labels file and bank (NULL otherwise) */
    const char *audio_model, *audio_labels;
    const clxp_labelbank *audio_bank;
} report_options;

typedef struct report report;

clxp_status report_create(const clxp_labelbank *b, const report_options *o, report **out, clxp_error *err);
void report_begin_input(report *r, const char *input); /* a video (rows printed live) */
void report_result(report *r, const clxp_result *res);
void report_progress(report *r, double pos, double dur, int64_t frames);
void report_end_input(report *r, int ok); /* ok: the input succeeded (print its name even without rows) */
/* Print what was buffered (image tables, the JSON document). */
clxp_status report_finish(report *r, clxp_error *err);
void report_free(report *r);

#endif
