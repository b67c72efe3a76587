#include "cli/report.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "classify/scoring.h"
#include "util/error.h"

struct report {
    const clxp_labelbank *b;
    report_options o;
    int n_classes, k;
    int *idx;
    char *buf; /* buffered table text (still images) */
    size_t buf_len;
    FILE *mem;
    cJSON *root, *results;
    int in_video, progress_shown;
    const char *pending; /* a video's name, printed with its first row (a run that fails prints nothing) */
    double t0;
    int64_t frames_at_start;
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

clxp_status report_create(const clxp_labelbank *b, const report_options *o, report **out, clxp_error *err) {
    *out = NULL;
    report *r = calloc(1, sizeof *r);
    if (!r) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    r->b = b;
    r->o = *o;
    r->n_classes = clxp_labelbank_n_classes(b);
    r->k = o->top <= 0 || o->top > r->n_classes ? r->n_classes : o->top;
    r->idx = malloc((size_t)r->k * sizeof *r->idx);
    r->mem = open_memstream(&r->buf, &r->buf_len);
    if (o->json) {
        r->root = cJSON_CreateObject();
        cJSON_AddStringToObject(r->root, "model", o->model);
        cJSON_AddStringToObject(r->root, "labels_file", o->labels);
        cJSON_AddNumberToObject(r->root, "logit_scale",
                                o->logit_scale > 0 ? o->logit_scale : clxp_labelbank_logit_scale(b));
        if (o->audio_bank) {
            cJSON_AddStringToObject(r->root, "audio_model", o->audio_model);
            cJSON_AddStringToObject(r->root, "audio_labels_file", o->audio_labels);
            cJSON_AddNumberToObject(r->root, "audio_logit_scale",
                                    o->logit_scale > 0 ? o->logit_scale : clxp_labelbank_logit_scale(o->audio_bank));
        }
        cJSON_AddNumberToObject(r->root, "temperature", o->temperature);
        r->results = cJSON_AddArrayToObject(r->root, "results");
    }
    if (!r->idx || !r->mem || (o->json && !r->results)) {
        report_free(r);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    *out = r;
    return CLXP_OK;
}

void report_free(report *r) {
    if (!r) return;
    if (r->mem) fclose(r->mem);
    free(r->buf);
    free(r->idx);
    cJSON_Delete(r->root);
    free(r);
}

static int best_of_unit(const clxp_labelbank *b, const float *cs, int u) {
    int best = -1;
    for (int c = 0; c < clxp_labelbank_n_classes(b); c++)
        if (clxp_labelbank_class_unit(b, c) == u && (best < 0 || cs[c] > cs[best])) best = c;
    return best;
}

static void clear_progress(report *r) {
    if (r->progress_shown) {
        fprintf(stderr, "\r\033[K");
        r->progress_shown = 0;
    }
}

static void fmt_time(char *buf, size_t cap, double t) {
    if (isnan(t)) t = 0;
    int h = (int)(t / 3600), m = (int)(fmod(t, 3600) / 60);
    snprintf(buf, cap, "%02d:%02d:%06.3f", h, m, fmod(t, 60));
}

static cJSON *result_json(const report *r, const clxp_result *res) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", res->input);
    if (r->in_video) {
        cJSON_AddNumberToObject(o, "stream", res->stream_index);
        cJSON_AddNumberToObject(o, "frame", (double)res->frame_index);
        cJSON_AddNumberToObject(o, "time", round(res->time * 1e6) / 1e6);
        if (res->media_type == 'a') { /* an audio window: where it ends, as in the table and the jsonl output */
            cJSON_AddStringToObject(o, "media", "audio");
            cJSON_AddNumberToObject(o, "end", round((res->time + res->duration) * 1e6) / 1e6);
        }
    }
    const int nu = clxp_labelbank_n_units(r->b);
    if (nu) {
        cJSON *units = cJSON_AddArrayToObject(o, "units");
        for (int u = 0; u < nu; u++) {
            int best = best_of_unit(r->b, res->scores, u);
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "unit", clxp_labelbank_unit_name(r->b, u));
            cJSON_AddStringToObject(e, "category", clxp_labelbank_class_name(r->b, best));
            cJSON_AddNumberToObject(e, "score", res->scores[best]);
            cJSON *all = cJSON_AddArrayToObject(e, "categories");
            for (int c = 0; c < r->n_classes; c++) {
                if (clxp_labelbank_class_unit(r->b, c) != u) continue;
                cJSON *ce = cJSON_CreateObject();
                cJSON_AddStringToObject(ce, "category", clxp_labelbank_class_name(r->b, c));
                cJSON_AddNumberToObject(ce, "score", res->scores[c]);
                cJSON_AddItemToArray(all, ce);
            }
            cJSON_AddItemToArray(units, e);
        }
    } else {
        cJSON *arr = cJSON_AddArrayToObject(o, "labels");
        for (int i = 0; i < r->k; i++) {
            if (res->scores[r->idx[i]] < r->o.confidence) continue;
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "label", clxp_labelbank_class_name(r->b, r->idx[i]));
            cJSON_AddNumberToObject(e, "probability", res->scores[r->idx[i]]);
            cJSON_AddItemToArray(arr, e);
        }
    }
    return o;
}

/* Still image: the file name, then one ranked line per label (or per unit). */
static void image_rows(report *r, FILE *f, const clxp_result *res) {
    fprintf(f, "%s\n", res->input);
    const int nu = clxp_labelbank_n_units(r->b);
    for (int u = 0; u < nu; u++) {
        int c = best_of_unit(r->b, res->scores, u);
        fprintf(f, "  %-24s %-28s %6.2f%%\n", clxp_labelbank_unit_name(r->b, u), clxp_labelbank_class_name(r->b, c),
                100.0 * res->scores[c]);
    }
    for (int i = 0; !nu && i < r->k; i++)
        if (res->scores[r->idx[i]] >= r->o.confidence)
            fprintf(f, "  %2d. %6.2f%%  %s\n", i + 1, 100.0 * res->scores[r->idx[i]],
                    clxp_labelbank_class_name(r->b, r->idx[i]));
}

/* Video frame: one line, time, frame number, then the top labels (or each unit's category). */
static void video_row(report *r, FILE *f, const clxp_result *res) {
    char t[32], e[32];
    fmt_time(t, sizeof t, res->time);
    if (res->media_type == 'a') { /* audio window: start - end */
        fmt_time(e, sizeof e, res->time + res->duration);
        fprintf(f, "  %s-%s", t, e);
    } else {
        fprintf(f, "  %s  #%-7lld", t, (long long)res->frame_index);
    }
    if (res->box_index >= 0)
        fprintf(f, "  box %d [%g,%g %gx%g]%s%s", res->box_index, res->box_x, res->box_y, res->box_w, res->box_h,
                res->box_label ? " " : "", res->box_label ? res->box_label : "");
    const int nu = clxp_labelbank_n_units(r->b);
    for (int u = 0; u < nu; u++) {
        int c = best_of_unit(r->b, res->scores, u);
        fprintf(f, "  %s: %s %.0f%%", clxp_labelbank_unit_name(r->b, u), clxp_labelbank_class_name(r->b, c),
                100.0 * res->scores[c]);
    }
    for (int i = 0; !nu && i < r->k; i++)
        if (res->scores[r->idx[i]] >= r->o.confidence)
            fprintf(f, "  %s %.1f%%", clxp_labelbank_class_name(r->b, r->idx[i]), 100.0 * res->scores[r->idx[i]]);
    fputc('\n', f);
}

/* The table so far: earlier (buffered) image tables, then the pending video's name. */
static void flush_pending(report *r) {
    if (!r->pending) return;
    fflush(r->mem); /* keep the order of earlier (buffered) image tables */
    fwrite(r->buf, 1, r->buf_len, stdout);
    rewind(r->mem);
    r->buf_len = 0;
    printf("%s\n", r->pending);
    fflush(stdout);
    r->pending = NULL;
}

void report_begin_input(report *r, const char *input) {
    r->in_video = 1;
    r->t0 = now();
    if (r->o.table) r->pending = input;
}

static void report_result_of_bank(report *r, const clxp_result *res);

/* A result of another bank than the first (a combined video + audio run): shown with that bank's labels. */
void report_result(report *r, const clxp_result *res) {
    if (!res->bank || res->bank == r->b) {
        report_result_of_bank(r, res);
        return;
    }
    const clxp_labelbank *b0 = r->b;
    const int n0 = r->n_classes, k0 = r->k;
    int *idx0 = r->idx;
    r->b = res->bank;
    r->n_classes = clxp_labelbank_n_classes(r->b);
    r->k = r->o.top <= 0 || r->o.top > r->n_classes ? r->n_classes : r->o.top;
    r->idx = r->k > k0 ? malloc((size_t)r->k * sizeof *r->idx) : idx0;
    if (r->idx) report_result_of_bank(r, res);
    if (r->idx != idx0) free(r->idx);
    r->b = b0;
    r->n_classes = n0;
    r->k = k0;
    r->idx = idx0;
}

static void report_result_of_bank(report *r, const clxp_result *res) {
    if (!clxp_labelbank_n_units(r->b)) score_top_k(res->scores, r->n_classes, r->k, r->idx);
    if (r->o.json) {
        cJSON_AddItemToArray(r->results, result_json(r, res));
        return;
    }
    if (!r->o.table) return;
    if (r->in_video) {
        clear_progress(r);
        flush_pending(r);
        video_row(r, stdout, res);
    } else {
        image_rows(r, r->mem, res);
    }
}

void report_progress(report *r, double pos, double dur, int64_t frames) {
    if (!r->o.progress || !r->in_video) return;
    double el = now() - r->t0;
    char p[32], d[32];
    fmt_time(p, sizeof p, pos);
    fprintf(stderr, "\r\033[K%s", p);
    if (dur > 0) {
        fmt_time(d, sizeof d, dur);
        double frac = pos / dur;
        fprintf(stderr, " / %s (%3.0f%%)", d, 100 * (frac < 1 ? frac : 1));
        if (frac > 0.01 && frac < 1) fprintf(stderr, "  ETA %.0f s", el * (1 - frac) / frac);
    }
    fprintf(stderr, "  %lld frames decoded, %.1f frames/s", (long long)frames, el > 0 ? frames / el : 0.0);
    r->progress_shown = 1;
}

void report_end_input(report *r, int ok) {
    clear_progress(r);
    if (ok) flush_pending(r);
    r->pending = NULL;
    r->in_video = 0;
    fflush(stdout);
}

clxp_status report_finish(report *r, clxp_error *err) {
    if (r->o.json) {
        char *s = cJSON_Print(r->root);
        if (!s) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
        puts(s);
        free(s);
        return CLXP_OK;
    }
    fflush(r->mem);
    if (r->o.table) fwrite(r->buf, 1, r->buf_len, stdout);
    return CLXP_OK;
}
