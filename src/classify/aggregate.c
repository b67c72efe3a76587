#include "classify/aggregate.h"

#include <stdlib.h>
#include <string.h>

#include "util/error.h"

clxp_status agg_units_init(agg_units *u, const clxp_labelbank *bank) {
    memset(u, 0, sizeof *u);
    u->n_classes = clxp_labelbank_n_classes(bank);
    int nu = clxp_labelbank_n_units(bank);
    if (nu <= 0) return CLXP_OK;
    u->first = calloc((size_t)nu + 1, sizeof *u->first);
    u->cls = malloc((size_t)(u->n_classes > 0 ? u->n_classes : 1) * sizeof *u->cls);
    if (!u->first || !u->cls) {
        agg_units_free(u);
        return CLXP_ERR_NOMEM;
    }
    u->n_units = nu;
    /* counting sort of the classes by unit keeps ascending class order within a unit */
    for (int c = 0; c < u->n_classes; c++) {
        int k = clxp_labelbank_class_unit(bank, c);
        if (k >= 0 && k < nu) u->first[k + 1]++;
    }
    for (int k = 0; k < nu; k++) u->first[k + 1] += u->first[k];
    int *fill = calloc((size_t)nu, sizeof *fill);
    if (!fill) {
        agg_units_free(u);
        return CLXP_ERR_NOMEM;
    }
    for (int c = 0; c < u->n_classes; c++) {
        int k = clxp_labelbank_class_unit(bank, c);
        if (k >= 0 && k < nu) u->cls[u->first[k] + fill[k]++] = c;
    }
    free(fill);
    return CLXP_OK;
}

void agg_units_free(agg_units *u) {
    free(u->first);
    free(u->cls);
    memset(u, 0, sizeof *u);
}

int agg_units_n_winners(const agg_units *u) { return u->n_units > 0 ? u->n_units : u->n_classes > 0; }

int agg_units_winners(const agg_units *u, const float *scores, int *cls) {
    if (u->n_units == 0) {
        if (u->n_classes <= 0) return 0;
        int best = 0;
        for (int c = 1; c < u->n_classes; c++)
            if (scores[c] > scores[best]) best = c;
        cls[0] = best;
        return 1;
    }
    for (int k = 0; k < u->n_units; k++) {
        int best = -1;
        for (int j = u->first[k]; j < u->first[k + 1]; j++)
            if (best < 0 || scores[u->cls[j]] > scores[best]) best = u->cls[j];
        cls[k] = best; /* -1 only for a unit without categories, which the prompt parser does not produce */
    }
    return u->n_units;
}

/* A class reported in a stream. Streams keep only those (a run over 100 000 images with 1 000 labels holds one
 * entry per image, not 1 000). */
typedef struct agg_entry {
    int cls;
    int64_t count;
    double sum;
} agg_entry;

typedef struct agg_stream {
    int source, index;
    char media;
    int64_t results;
    agg_entry *e; /* [n], in the order the classes were first reported */
    int n, cap;
} agg_stream;

struct agg {
    const clxp_labelbank *bank;
    agg_units units;
    int *winners; /* scratch: agg_units_n_winners ints */
    int n_streams, cap_streams;
    agg_stream *streams;
};

agg *agg_create(const clxp_labelbank *bank) {
    agg *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->bank = bank;
    if (agg_units_init(&a->units, bank) != CLXP_OK) {
        free(a);
        return NULL;
    }
    int nw = agg_units_n_winners(&a->units);
    a->winners = malloc((size_t)(nw > 0 ? nw : 1) * sizeof *a->winners);
    if (!a->winners) {
        agg_free(a);
        return NULL;
    }
    return a;
}

void agg_free(agg *a) {
    if (!a) return;
    for (int s = 0; s < a->n_streams; s++) free(a->streams[s].e);
    free(a->streams);
    free(a->winners);
    agg_units_free(&a->units);
    free(a);
}

/* The stream (source, index), inserted in sorted position when new; NULL if out of memory. */
static agg_stream *find_stream(agg *a, int source, int index, char media) {
    int lo = 0, hi = a->n_streams;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        const agg_stream *m = &a->streams[mid];
        if (m->source < source || (m->source == source && m->index < index)) lo = mid + 1;
        else hi = mid;
    }
    if (lo < a->n_streams && a->streams[lo].source == source && a->streams[lo].index == index)
        return &a->streams[lo];
    if (a->n_streams == a->cap_streams) {
        int cap = a->cap_streams ? 2 * a->cap_streams : 4;
        agg_stream *p = realloc(a->streams, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        a->streams = p;
        a->cap_streams = cap;
    }
    agg_stream st = {source, index, media, 0, NULL, 0, 0};
    memmove(&a->streams[lo + 1], &a->streams[lo], (size_t)(a->n_streams - lo) * sizeof *a->streams);
    a->streams[lo] = st;
    a->n_streams++;
    return &a->streams[lo];
}

/* The entry of class c in st (the last one used first: a class tends to win many results in a row); create: add
 * it when missing. NULL when missing (or out of memory). */
static agg_entry *entry_of(agg_stream *st, int c, int create) {
    for (int i = st->n - 1; i >= 0; i--)
        if (st->e[i].cls == c) return &st->e[i];
    if (!create) return NULL;
    if (st->n == st->cap) {
        int cap = st->cap ? 2 * st->cap : 4;
        agg_entry *p = realloc(st->e, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        st->e = p;
        st->cap = cap;
    }
    st->e[st->n] = (agg_entry){c, 0, 0.0};
    return &st->e[st->n++];
}

clxp_status agg_add(agg *a, const clxp_result *r, int source, float confidence, clxp_error *err) {
    if (r->n_classes != a->units.n_classes || (r->n_classes > 0 && !r->scores))
        return clxp_err_set(err, CLXP_ERR_INVALID, "result of %s has %d scores, the label bank has %d classes",
                            r->input ? r->input : "(input)", r->n_classes, a->units.n_classes);
    agg_stream *st = find_stream(a, source, r->stream_index, r->media_type);
    if (!st) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory aggregating results");
    st->results++;
    int nw = agg_units_winners(&a->units, r->scores, a->winners);
    for (int i = 0; i < nw; i++) {
        int c = a->winners[i];
        if (c < 0 || !(r->scores[c] >= confidence)) continue;
        agg_entry *e = entry_of(st, c, 1);
        if (!e) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory aggregating results");
        e->count++;
        e->sum += r->scores[c];
    }
    return CLXP_OK;
}

int agg_n_streams(const agg *a) { return a->n_streams; }
int agg_stream_source(const agg *a, int s) { return a->streams[s].source; }
int agg_stream_index(const agg *a, int s) { return a->streams[s].index; }
char agg_stream_media(const agg *a, int s) { return a->streams[s].media; }
int64_t agg_stream_results(const agg *a, int s) { return a->streams[s].results; }
int agg_n_classes(const agg *a) { return a->units.n_classes; }
int64_t agg_count(const agg *a, int s, int c) {
    const agg_entry *e = entry_of(&a->streams[s], c, 0);
    return e ? e->count : 0;
}

double agg_sum(const agg *a, int s, int c) {
    const agg_entry *e = entry_of(&a->streams[s], c, 0);
    return e ? e->sum : 0.0;
}

double agg_mean(const agg *a, int s, int c) {
    const agg_entry *e = entry_of(&a->streams[s], c, 0);
    return e && e->count > 0 ? e->sum / (double)e->count : 0.0;
}

static int rank_cmp(const void *pa, const void *pb, void *user) {
    const agg *a = user;
    const agg_entry *x = pa, *y = pb;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    int d = strcmp(clxp_labelbank_class_name(a->bank, x->cls), clxp_labelbank_class_name(a->bank, y->cls));
    if (d != 0) return d;
    return (x->cls > y->cls) - (x->cls < y->cls);
}

int agg_ranked(const agg *a, int s, int *cls) {
    agg_stream *st = &a->streams[s];
    /* entry order is not part of the API; no qsort of a NULL array (n 0) */
    if (st->n > 1) qsort_r(st->e, (size_t)st->n, sizeof *st->e, rank_cmp, (void *)a);
    for (int i = 0; i < st->n; i++) cls[i] = st->e[i].cls;
    return st->n;
}
