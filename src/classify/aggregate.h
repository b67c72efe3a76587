/* Aggregation of classified results over a whole run: per stream and per class, how often the class was
 * "reported" and its mean score when it was. Used by the csv writer (avgclass-compatible summary) and by the
 * terminal summary.
 *
 * Winners of a result: for a labels bank its top class; for a categories bank the best category of every
 * unit (one per unit, in unit order). Ties go to the lower class index.
 *
 * A class is reported in a result when it is one of the result's winners and its score >= confidence.
 * Every result counts: whole frames, boxes and audio windows alike (as FFmpeg's avgclass filter counts
 * every bounding box). A stream is identified by a source number (e.g. which input of a run; 0 when there is
 * only one) and its stream index. For each (stream, class):
 *     count = number of the stream's results in which the class was reported
 *     sum   = sum of the class's score over those results
 *     mean  = sum / count (0 when count is 0)
 * and per stream the total number of results added (reported or not). */
#ifndef CLXP_CLASSIFY_AGGREGATE_H
#define CLXP_CLASSIFY_AGGREGATE_H

#include <stdint.h>

#include "clxp.h"

/* The classes of each unit of a bank, for a fast best-category lookup. */
typedef struct agg_units {
    int n_classes;
    int n_units; /* 0: a labels bank */
    int *first;  /* n_units + 1 offsets into cls */
    int *cls;    /* class indices grouped by unit, ascending within a unit */
} agg_units;

/* CLXP_ERR_NOMEM on allocation failure (u is then empty; agg_units_free is still fine). */
clxp_status agg_units_init(agg_units *u, const clxp_labelbank *bank);
void agg_units_free(agg_units *u);
/* Number of winners a result has: 1 for a labels bank (0 if it has no classes), n_units for a categories bank. */
int agg_units_n_winners(const agg_units *u);
/* Fill cls[0..n_winners) with the winners of one result's scores (see above); returns n_winners. */
int agg_units_winners(const agg_units *u, const float *scores, int *cls);

typedef struct agg agg;

/* A new, empty aggregation for results scored against bank (which must outlive it). NULL if out of memory. */
agg *agg_create(const clxp_labelbank *bank);
/* Add one result of stream (source, r->stream_index) (r->n_classes must equal the bank's class count:
 * CLXP_ERR_INVALID otherwise). err may be NULL. */
clxp_status agg_add(agg *a, const clxp_result *r, int source, float confidence, clxp_error *err);
void agg_free(agg *a);

/* Streams seen so far, in ascending (source, stream index) order: s in [0, agg_n_streams). */
int agg_n_streams(const agg *a);
int agg_stream_source(const agg *a, int s);
int agg_stream_index(const agg *a, int s);
char agg_stream_media(const agg *a, int s); /* media type of the stream's first result, 'v' or 'a' */
int64_t agg_stream_results(const agg *a, int s);
int agg_n_classes(const agg *a);
int64_t agg_count(const agg *a, int s, int c);
double agg_sum(const agg *a, int s, int c);
double agg_mean(const agg *a, int s, int c);
/* The classes reported at least once in stream s, sorted by descending count, then class name (bytewise), then
 * class index, into cls (room for agg_n_classes ints). Returns how many. */
int agg_ranked(const agg *a, int s, int *cls);

#endif
