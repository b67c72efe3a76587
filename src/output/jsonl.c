/* JSON Lines: one object per result (fields in writer.h), flushed per record. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "output/writer_impl.h"
#include "util/error.h"

typedef struct jsonl_state {
    out_rank_pair *pairs; /* [n_classes] */
    int *idx;             /* [max(n_classes, n_units)] */
} jsonl_state;

static void jsonl_free(void *state) {
    jsonl_state *s = state;
    if (!s) return;
    free(s->pairs);
    free(s->idx);
    free(s);
}

static clxp_status jsonl_begin(out_writer *w, clxp_error *err) {
    jsonl_state *s = calloc(1, sizeof *s);
    size_t n = (size_t)w->max_classes + 1;
    if (s) {
        s->pairs = malloc(n * sizeof *s->pairs);
        s->idx = malloc(n * sizeof *s->idx);
    }
    w->state = s;
    if (!s || !s->pairs || !s->idx) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", w->path);
    return CLXP_OK;
}

/* 64-bit integers exactly (cJSON numbers are doubles). */
static cJSON *int64_item(int64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return cJSON_CreateRaw(buf);
}

/* Add item under key, or clear *ok when an allocation failed (the item is then freed). */
static void put(int *ok, cJSON *o, const char *key, cJSON *item) {
    if (!item || !o || !cJSON_AddItemToObject(o, key, item)) {
        cJSON_Delete(item);
        *ok = 0;
    }
}

static void put_number(int *ok, cJSON *o, const char *key, double v, int decimals) {
    put(ok, o, key, isfinite(v) ? cJSON_CreateNumber(out_round(v, decimals)) : cJSON_CreateNull());
}

/* A new object appended to arr, or NULL (and *ok cleared). */
static cJSON *append_object(int *ok, cJSON *arr) {
    cJSON *e = cJSON_CreateObject();
    if (!e || !cJSON_AddItemToArray(arr, e)) {
        cJSON_Delete(e);
        *ok = 0;
        return NULL;
    }
    return e;
}

/* The record of one result; returns 0 when out of memory. */
static int build_record(out_writer *w, const out_bank *bk, const clxp_result *r, cJSON *o) {
    jsonl_state *s = w->state;
    int ok = 1;
    const char *input = r->input ? r->input : w->input;
    if (input) put(&ok, o, "input", cJSON_CreateString(input));
    put(&ok, o, "stream", cJSON_CreateNumber(r->stream_index));
    put(&ok, o, "media", cJSON_CreateString(r->media_type == 'a' ? "audio" : "video"));
    put(&ok, o, "frame", int64_item(r->frame_index));
    put(&ok, o, "pts", r->pts == INT64_MIN ? cJSON_CreateNull() : int64_item(r->pts));
    put_number(&ok, o, "time", r->time, 6);
    put_number(&ok, o, "duration", r->duration, 6);
    if (r->media_type == 'a') put_number(&ok, o, "end", r->time + r->duration, 6);
    if (r->box_index >= 0) {
        cJSON *b = cJSON_CreateObject();
        put(&ok, o, "box", b);
        if (!ok) return 0;
        put(&ok, b, "index", cJSON_CreateNumber(r->box_index));
        put_number(&ok, b, "x", r->box_x, 3);
        put_number(&ok, b, "y", r->box_y, 3);
        put_number(&ok, b, "w", r->box_w, 3);
        put_number(&ok, b, "h", r->box_h, 3);
        put(&ok, b, "label", r->box_label ? cJSON_CreateString(r->box_label) : cJSON_CreateNull());
        put_number(&ok, b, "score", r->box_score, 6);
    }
    cJSON *arr = cJSON_CreateArray();
    put(&ok, o, bk->n_units ? "units" : "labels", arr);
    if (!ok) return 0;
    if (bk->n_units == 0) {
        int n = out_rank(r->scores, bk->n_classes, bk->top_k, w->confidence, s->pairs, s->idx);
        for (int i = 0; i < n && ok; i++) {
            cJSON *e = append_object(&ok, arr);
            put(&ok, e, "label", cJSON_CreateString(clxp_labelbank_class_name(bk->bank, s->idx[i])));
            put_number(&ok, e, "p", r->scores[s->idx[i]], 6);
        }
    } else {
        int n = agg_units_winners(&bk->units, r->scores, s->idx);
        for (int u = 0; u < n && ok; u++) {
            int c = s->idx[u];
            if (c < 0) continue;
            cJSON *e = append_object(&ok, arr);
            put(&ok, e, "unit", cJSON_CreateString(clxp_labelbank_unit_name(bk->bank, u)));
            put(&ok, e, "category", cJSON_CreateString(clxp_labelbank_class_name(bk->bank, c)));
            put_number(&ok, e, "score", r->scores[c], 6);
        }
    }
    return ok;
}

static clxp_status jsonl_write(out_writer *w, const out_bank *b, const clxp_result *r, clxp_error *err) {
    cJSON *o = cJSON_CreateObject();
    char *line = NULL;
    if (o && build_record(w, b, r, o)) line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!line) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", w->path);
    fputs(line, w->f);
    putc('\n', w->f);
    free(line);
    /* one flush per record: the temporary file of a killed run holds whole lines */
    if (fflush(w->f) != 0) return out_check_stream(w, err);
    return CLXP_OK;
}

static clxp_status jsonl_finish(out_writer *w, clxp_error *err) { return CLXP_OK; }

const out_format_ops out_jsonl_ops = {jsonl_begin, jsonl_write, jsonl_finish, jsonl_free};
