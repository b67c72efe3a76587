/* CSV: the avgclass-compatible per-stream summary (semantics in writer.h and classify/aggregate.h). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "output/writer_impl.h"
#include "util/error.h"

typedef struct csv_state {
    agg *agg[OUT_MAX_BANKS]; /* per bank of the writer */
    int *cls;                /* [max_classes] */
} csv_state;

static void csv_free(void *state) {
    csv_state *s = state;
    if (!s) return;
    for (int i = 0; i < OUT_MAX_BANKS; i++) agg_free(s->agg[i]);
    free(s->cls);
    free(s);
}

static clxp_status csv_begin(out_writer *w, clxp_error *err) {
    csv_state *s = calloc(1, sizeof *s);
    int ok = s != NULL;
    if (s) {
        for (int i = 0; i < w->n_banks; i++) ok = ok && (s->agg[i] = agg_create(w->banks[i].bank)) != NULL;
        s->cls = malloc((size_t)(w->max_classes > 0 ? w->max_classes : 1) * sizeof *s->cls);
    }
    w->state = s;
    if (!ok || !s->cls) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", w->path);
    return CLXP_OK;
}

static clxp_status csv_write(out_writer *w, const out_bank *b, const clxp_result *r, clxp_error *err) {
    csv_state *s = w->state;
    clxp_status st = agg_add(s->agg[b - w->banks], r, w->source, w->confidence, err);
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

/* The order of a stream in the summary: by input, then stream index. */
static int64_t stream_key(const agg *a, int s) {
    return (int64_t)agg_stream_source(a, s) << 32 | (uint32_t)agg_stream_index(a, s);
}

static clxp_status csv_finish(out_writer *w, clxp_error *err) {
    csv_state *s = w->state;
    fputs(w->per_input ? "input,stream_id,label,avg_probability,count\n" : "stream_id,label,avg_probability,count\n",
          w->f);
    /* every stream of every bank, by ascending (input, stream index), then bank order: a merge of the banks'
     * lists */
    int next[OUT_MAX_BANKS] = {0};
    for (;;) {
        int bi = -1;
        for (int k = 0; k < w->n_banks; k++)
            if (next[k] < agg_n_streams(s->agg[k]) &&
                (bi < 0 || stream_key(s->agg[k], next[k]) < stream_key(s->agg[bi], next[bi])))
                bi = k;
        if (bi < 0) break;
        const agg *a = s->agg[bi];
        int i = next[bi]++;
        int n = agg_ranked(a, i, s->cls);
        for (int j = 0; j < n; j++) {
            int c = s->cls[j];
            if (w->per_input) {
                put_field(w->f, out_source_name(w, agg_stream_source(a, i)));
                putc(',', w->f);
            }
            fprintf(w->f, "%d,", agg_stream_index(a, i));
            put_field(w->f, clxp_labelbank_class_name(w->banks[bi].bank, c));
            fprintf(w->f, ",%.4f,%" PRId64 "\n", agg_mean(a, i, c), agg_count(a, i, c));
        }
    }
    return out_check_stream(w, err);
}

const out_format_ops out_csv_ops = {csv_begin, csv_write, csv_finish, csv_free};
