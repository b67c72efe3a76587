/* trim_golden: write a smaller copy of a golden.safetensors, keeping only the tensors (and batch items) a test
 * compares, so that tests/data stays small.
 *
 *   trim_golden IN OUT SPEC...
 *
 * SPEC is `name` (keep the whole tensor), `prefix*` (every tensor whose name starts with prefix) or either form
 * followed by `@i,j,...` (keep only those indices of the first dimension, in that order). Tensors matched by no
 * SPEC are dropped. For every tensor cut along its first dimension the output's metadata gets an entry
 * "items:<name>" = "i,j,..." naming the original batch items, which tests/test_clap_golden.c reads; the input's
 * "generator" metadata is kept and "trimmed_by" is added. Data is copied byte for byte.
 *
 * Not built by `make`; build it against the library when the golden data changes:
 *   make build/libclxp.a && cc -std=c11 -D_GNU_SOURCE -Iinclude -Isrc tools/trim_golden.c build/libclxp.a \
 *       $(pkg-config --libs libavformat libavcodec libavfilter libavutil libswscale libswresample libcjson \
 *       libpcre2-8 libutf8proc) -ldnnl -fopenmp -lm -o build/trim_golden
 * tests/data/README.md lists the exact commands used for the CLAP goldens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "io/safetensors_write.h"

#define MAX_ITEMS 256

typedef struct {
    char pattern[256];
    int prefix;  /* pattern ends with '*' */
    int n_items; /* 0: whole tensor */
    int64_t items[MAX_ITEMS];
} spec;

static int parse_spec(const char *arg, spec *s) {
    memset(s, 0, sizeof *s);
    const char *at = strchr(arg, '@');
    size_t len = at ? (size_t)(at - arg) : strlen(arg);
    if (len == 0 || len >= sizeof s->pattern) return 0;
    memcpy(s->pattern, arg, len);
    if (s->pattern[len - 1] == '*') {
        s->prefix = 1;
        s->pattern[len - 1] = '\0';
    }
    if (!at) return 1;
    const char *p = at + 1;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || s->n_items == MAX_ITEMS) return 0;
        s->items[s->n_items++] = v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return 0;
    }
    return s->n_items > 0;
}

static int matches(const spec *s, const char *name) {
    return s->prefix ? strncmp(name, s->pattern, strlen(s->pattern)) == 0 : strcmp(name, s->pattern) == 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s IN OUT SPEC...   (SPEC: name | prefix* , optionally @i,j,...)\n", argv[0]);
        return 2;
    }
    int n_specs = argc - 3, rc = 1;
    spec *specs = calloc((size_t)n_specs, sizeof *specs);
    for (int i = 0; i < n_specs; i++)
        if (!parse_spec(argv[3 + i], &specs[i])) {
            fprintf(stderr, "bad SPEC \"%s\"\n", argv[3 + i]);
            free(specs);
            return 2;
        }
    clxp_error err;
    st_file *in = NULL;
    if (st_open(argv[1], &in, &err) != CLXP_OK) {
        fprintf(stderr, "%s\n", err.msg);
        free(specs);
        return 1;
    }
    const int n = st_count(in);
    st_write_tensor *out = calloc((size_t)n, sizeof *out);
    int64_t(*shapes)[ST_MAX_DIMS] = calloc((size_t)n, sizeof *shapes);
    void **owned = calloc((size_t)n, sizeof *owned);
    st_write_meta *meta = calloc((size_t)n + 2, sizeof *meta);
    char **meta_keys = calloc((size_t)n, sizeof *meta_keys), **meta_vals = calloc((size_t)n, sizeof *meta_vals);
    int n_out = 0, n_meta = 0;
    if (!out || !shapes || !owned || !meta || !meta_keys || !meta_vals) goto done;
    const char *gen = st_metadata(in, "generator");
    if (gen) meta[n_meta++] = (st_write_meta){"generator", gen};
    meta[n_meta++] = (st_write_meta){"trimmed_by", "tools/trim_golden.c (items:<name> = batch items kept)"};
    for (int i = 0; i < n; i++) {
        const st_tensor *t = st_at(in, i);
        const spec *s = NULL;
        for (int k = 0; k < n_specs && !s; k++)
            if (matches(&specs[k], t->name)) s = &specs[k];
        if (!s) continue;
        st_write_tensor *o = &out[n_out];
        memcpy(shapes[n_out], t->shape, sizeof shapes[n_out]);
        *o = (st_write_tensor){t->name, t->dtype, t->ndim, shapes[n_out], t->data};
        if (s->n_items) {
            if (t->ndim < 1) {
                fprintf(stderr, "%s: a scalar has no items\n", t->name);
                goto done;
            }
            size_t per = t->shape[0] ? t->nbytes / (size_t)t->shape[0] : 0;
            char *buf = malloc(per * (size_t)s->n_items + 1), list[4 * MAX_ITEMS + 8] = "";
            if (!buf) goto done;
            owned[n_out] = buf;
            size_t len = 0;
            for (int k = 0; k < s->n_items; k++) {
                if (s->items[k] >= t->shape[0]) {
                    fprintf(stderr, "%s: item %lld out of range (%lld)\n", t->name, (long long)s->items[k],
                            (long long)t->shape[0]);
                    goto done;
                }
                memcpy(buf + per * (size_t)k, (const char *)t->data + per * (size_t)s->items[k], per);
                len += (size_t)snprintf(list + len, sizeof list - len, k ? ",%lld" : "%lld", (long long)s->items[k]);
            }
            shapes[n_out][0] = s->n_items;
            o->data = buf;
            size_t kl = strlen(t->name) + 7;
            meta_keys[n_out] = malloc(kl);
            meta_vals[n_out] = strdup(list);
            if (!meta_keys[n_out] || !meta_vals[n_out]) goto done;
            snprintf(meta_keys[n_out], kl, "items:%s", t->name);
            meta[n_meta++] = (st_write_meta){meta_keys[n_out], meta_vals[n_out]};
        }
        printf("keep %-48s %s\n", t->name, s->n_items ? meta_vals[n_out] : "(all)");
        n_out++;
    }
    if (st_write(argv[2], out, n_out, meta, n_meta, &err) != CLXP_OK) {
        fprintf(stderr, "%s\n", err.msg);
        goto done;
    }
    printf("%d of %d tensors written to %s\n", n_out, n, argv[2]);
    rc = 0;
done:
    for (int i = 0; i < n; i++) {
        if (owned) free(owned[i]);
        if (meta_keys) free(meta_keys[i]);
        if (meta_vals) free(meta_vals[i]);
    }
    free(owned);
    free(meta_keys);
    free(meta_vals);
    free(meta);
    free(shapes);
    free(out);
    free(specs);
    st_close(in);
    return rc;
}
