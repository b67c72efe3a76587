/* Internal interface between writer.c (files, atomicity, dispatch) and the formats (jsonl.c, csv.c, subtitles.c,
 * html.c). Not for use outside src/output. */
#ifndef CLXP_OUTPUT_WRITER_IMPL_H
#define CLXP_OUTPUT_WRITER_IMPL_H

#include <stdint.h>
#include <stdio.h>

#include "classify/aggregate.h"
#include "output/writer.h"

/* One label bank of the writer and what the formats need of it. */
typedef struct out_bank {
    const clxp_labelbank *bank;
    agg_units units;            /* the bank's units (categories) */
    int n_classes, n_units;
    int top_k;                  /* 0 = all, clamped to n_classes */
} out_bank;

typedef struct out_format_ops {
    clxp_status (*begin)(out_writer *w, clxp_error *err);  /* allocate w->state, write the header */
    /* b: the bank of r (r->n_classes == b->n_classes, checked) */
    clxp_status (*write)(out_writer *w, const out_bank *b, const clxp_result *r, clxp_error *err);
    clxp_status (*finish)(out_writer *w, clxp_error *err); /* write what is left (summary, trailer) */
    void (*free_state)(void *state);                        /* NULL ok */
} out_format_ops;

struct out_writer {
    out_format fmt;
    const out_format_ops *ops;
    void *state;                /* the format's */
    FILE *f;
    char *path;                 /* as given (messages) */
    char *target;               /* what the temporary file is renamed to (a followed symlink's target) */
    char *tmp;                  /* the temporary file; NULL when writing directly */
    int is_stdout;
    int overwrite;
    out_bank banks[OUT_MAX_BANKS]; /* results name theirs in clxp_result.bank (NULL: banks[0]) */
    int n_banks;
    int max_classes;            /* the largest n_classes or n_units of the banks (scratch sizes) */
    float confidence;
    char *input, *model;        /* copies of the options' strings, may be NULL */
    int per_input;              /* out_options.per_input */
    char **sources;             /* per_input: the inputs seen, in order (copies; "" for a result without one) */
    int n_sources, cap_sources;
    int source;                 /* the current result's input: an index into sources (0 when !per_input); set
                                   by out_write before the format's write */
    clxp_error failed;          /* sticky: code CLXP_OK until a call fails, then that call's error */
};

/* The name of input `source` (per_input), or NULL. */
const char *out_source_name(const out_writer *w, int source);
/* The writer's entry for r's bank, or NULL when it has none. */
const out_bank *out_bank_of(const out_writer *w, const clxp_result *r);

extern const out_format_ops out_jsonl_ops, out_csv_ops, out_srt_ops, out_vtt_ops, out_html_ops;

/* CLXP_ERR_IO "<path>: write error: <errno text>" if the stream has an error, else CLXP_OK. */
clxp_status out_check_stream(out_writer *w, clxp_error *err);
/* Labels bank: indices of the (up to) k most probable classes with score >= confidence, descending, ties in bank
 * order, into idx (room for n_classes); k <= 0 means all. Returns how many. pairs: scratch of n_classes. */
typedef struct out_rank_pair {
    float p;
    int c;
} out_rank_pair;
int out_rank(const float *scores, int n, int k, float confidence, out_rank_pair *pairs, int *idx);
/* Seconds to milliseconds, rounded; negative or non-finite: 0. */
int64_t out_ms(double t);
/* "HH:MM:SS<sep>mmm" of a time in milliseconds (negative: 0) into buf (>= 32 bytes). */
void out_format_ms(char *buf, size_t size, int64_t ms, char sep);
/* Round to `decimals` decimals (for printing through cJSON); non-finite values are returned unchanged. */
double out_round(double x, int decimals);

#endif
