/* CSV: the avgclass-compatible per-stream summary (semantics in writer.h and classify/aggregate.h). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "output/writer_impl.h"
#include "util/error.h"

typedef struct csv_state {
    agg *agg;
    int *cls; /* [n_classes] */
} csv_state;

static void csv_free(void *state) {
    csv_state *s = state;
    if (!s) return;
    agg_free(s->agg);
    free(s->cls);
    free(s);
}

static clxp_status csv_begin(out_writer *w, clxp_error *err) {
    csv_state *s = calloc(1, sizeof *s);
    if (s) {
        s->agg = agg_create(w->bank);
        s->cls = malloc((size_t)(w->n_classes > 0 ? w->n_classes : 1) * sizeof *s->cls);
    }
    w->state = s;
    if (!s || !s->agg || !s->cls) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", w->path);
    return CLXP_OK;
}

static clxp_status csv_write(out_writer *w, const clxp_result *r, clxp_error *err) {
    csv_state *s = w->state;
    clxp_status st = agg_add(s->agg, r, w->confidence, err);
    return st == CLXP_OK ? CLXP_OK : clxp_err_prefix(err, st, "%s", w->path);
}

/* A field, quoted per RFC 4180 when it holds a comma, a double quote, CR or LF. */
static void put_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    putc('"', f);
    for (; *s; s++) {
        if (*s == '"') putc('"', f);
        putc(*s, f);
    }
    putc('"', f);
}

static clxp_status csv_finish(out_writer *w, clxp_error *err) {
    csv_state *s = w->state;
    fputs("stream_id,label,avg_probability,count\n", w->f);
    for (int i = 0; i < agg_n_streams(s->agg); i++) {
        int n = agg_ranked(s->agg, i, s->cls);
        for (int j = 0; j < n; j++) {
            int c = s->cls[j];
            fprintf(w->f, "%d,", agg_stream_index(s->agg, i));
            put_field(w->f, clxp_labelbank_class_name(w->bank, c));
            fprintf(w->f, ",%.4f,%" PRId64 "\n", agg_mean(s->agg, i, c), agg_count(s->agg, i, c));
        }
    }
    return out_check_stream(w, err);
}

const out_format_ops out_csv_ops = {csv_begin, csv_write, csv_finish, csv_free};
