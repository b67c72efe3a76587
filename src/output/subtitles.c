/* SRT and WebVTT: one cue per run of results with the same top label / best categories (rules in writer.h). */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "output/writer_impl.h"
#include "util/error.h"

#define SPACING_RING 255 /* spacings kept for the median that ends the last cue when durations are unknown */

typedef struct sub_state {
    int vtt;
    int locked, source, stream; /* the input and stream the cues follow, once a result was seen */
    const out_bank *bk;      /* and its bank */
    int n_key;               /* winners per result: 1 (labels) or n_units */
    int *key, *cur;          /* the run's winners, the current result's */
    double *sum;             /* per winner: sum of its score over the run */
    int64_t n;               /* results in the run; 0: no run */
    double start, last_time, last_duration;
    int64_t cues;            /* cues written */
    double spacing[SPACING_RING];
    int n_spacing, spacing_pos;
    int have_prev;
    double prev_time;
    char *text;              /* scratch for a cue's text */
    size_t text_cap;
} sub_state;

static void sub_free(void *state) {
    sub_state *s = state;
    if (!s) return;
    free(s->key);
    free(s->cur);
    free(s->sum);
    free(s->text);
    free(s);
}

static clxp_status sub_begin(out_writer *w, clxp_error *err) {
    sub_state *s = calloc(1, sizeof *s);
    w->state = s;
    if (!s) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", w->path);
    s->vtt = w->fmt == OUT_VTT;
    size_t n = (size_t)w->max_classes + 1; /* room for the winners of any bank */
    s->key = malloc(n * sizeof *s->key);
    s->cur = malloc(n * sizeof *s->cur);
    s->sum = malloc(n * sizeof *s->sum);
    if (!s->key || !s->cur || !s->sum) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", w->path);
    if (s->vtt) fputs("WEBVTT\n\n", w->f);
    return CLXP_OK;
}

/* Append to the cue text; VTT escapes the characters its cue text syntax gives a meaning to. */
static int text_append(sub_state *s, size_t *len, const char *str) {
    size_t need = *len + 5 * strlen(str) + 1;
    if (need > s->text_cap) {
        size_t cap = need > 2 * s->text_cap ? need : 2 * s->text_cap;
        char *p = realloc(s->text, cap);
        if (!p) return 0;
        s->text = p;
        s->text_cap = cap;
    }
    for (; *str; str++) {
        const char *rep = NULL;
        if (s->vtt && *str == '&') rep = "&amp;";
        else if (s->vtt && *str == '<') rep = "&lt;";
        else if (s->vtt && *str == '>') rep = "&gt;";
        if (rep) {
            memcpy(s->text + *len, rep, strlen(rep));
            *len += strlen(rep);
        } else {
            s->text[(*len)++] = *str;
        }
    }
    s->text[*len] = '\0';
    return 1;
}

/* Write the current run as a cue ending at `end` (if any of its lines reaches the confidence). */
static clxp_status emit_run(out_writer *w, double end, clxp_error *err) {
    sub_state *s = w->state;
    size_t len = 0;
    int lines = 0;
    for (int i = 0; i < s->n_key; i++) {
        int c = s->key[i];
        double mean = s->sum[i] / (double)s->n;
        if (c < 0 || !(mean >= w->confidence)) continue;
        char pct[32];
        snprintf(pct, sizeof pct, " (%d%%)", (int)lround(100.0 * mean));
        int ok = (!lines || text_append(s, &len, "\n")) &&
                 (!s->bk->n_units || (text_append(s, &len, clxp_labelbank_unit_name(s->bk->bank, i)) &&
                                      text_append(s, &len, ": "))) &&
                 text_append(s, &len, clxp_labelbank_class_name(s->bk->bank, c)) && text_append(s, &len, pct);
        if (!ok) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", w->path);
        lines++;
    }
    int64_t a = out_ms(s->start), b = out_ms(end);
    if (!lines || b <= a) return CLXP_OK;
    char sep = s->vtt ? '.' : ',';
    s->cues++;
    if (!s->vtt) fprintf(w->f, "%" PRId64 "\n", s->cues);
    char ta[32], tb[32];
    out_format_ms(ta, sizeof ta, a, sep);
    out_format_ms(tb, sizeof tb, b, sep);
    fprintf(w->f, "%s --> %s\n%s\n\n", ta, tb, s->text);
    return out_check_stream(w, err);
}

static clxp_status sub_write(out_writer *w, const out_bank *b, const clxp_result *r, clxp_error *err) {
    sub_state *s = w->state;
    if (r->box_index != -1) return CLXP_OK;
    if (!s->locked) {
        s->locked = 1;
        s->source = w->source;
        s->stream = r->stream_index;
        s->bk = b;
        s->n_key = agg_units_n_winners(&b->units);
    }
    if (w->source != s->source || r->stream_index != s->stream || b != s->bk || s->n_key <= 0) return CLXP_OK;
    if (s->have_prev && r->time > s->prev_time) {
        s->spacing[s->spacing_pos] = r->time - s->prev_time;
        s->spacing_pos = (s->spacing_pos + 1) % SPACING_RING;
        if (s->n_spacing < SPACING_RING) s->n_spacing++;
    }
    s->have_prev = 1;
    s->prev_time = r->time;

    agg_units_winners(&b->units, r->scores, s->cur);
    clxp_status st = CLXP_OK;
    if (s->n > 0 && memcmp(s->cur, s->key, (size_t)s->n_key * sizeof *s->key) != 0) {
        st = emit_run(w, r->time, err);
        s->n = 0;
    }
    if (s->n == 0) {
        memcpy(s->key, s->cur, (size_t)s->n_key * sizeof *s->key);
        for (int i = 0; i < s->n_key; i++) s->sum[i] = 0;
        s->start = r->time;
    }
    for (int i = 0; i < s->n_key; i++) s->sum[i] += s->key[i] >= 0 ? r->scores[s->key[i]] : 0;
    s->n++;
    s->last_time = r->time;
    s->last_duration = r->duration;
    return st;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static clxp_status sub_finish(out_writer *w, clxp_error *err) {
    sub_state *s = w->state;
    if (s->n == 0) return CLXP_OK;
    double len = 1.0;
    if (isfinite(s->last_duration) && s->last_duration > 0) {
        len = s->last_duration;
    } else if (s->n_spacing > 0) {
        double tmp[SPACING_RING];
        memcpy(tmp, s->spacing, (size_t)s->n_spacing * sizeof *tmp);
        qsort(tmp, (size_t)s->n_spacing, sizeof *tmp, cmp_double);
        len = tmp[s->n_spacing / 2];
    }
    return emit_run(w, s->last_time + len, err);
}

const out_format_ops out_srt_ops = {sub_begin, sub_write, sub_finish, sub_free};
const out_format_ops out_vtt_ops = {sub_begin, sub_write, sub_finish, sub_free};
