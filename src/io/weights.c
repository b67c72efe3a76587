#include "io/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fileio.h"
#include "util/json.h"

#define MAX_SHARDS 4096

typedef struct {
    const st_tensor *t;
    int used;
} entry;

struct weights {
    char *source;
    st_file **files;
    int n_files;
    entry *entries; /* all tensors of all files, sorted by name */
    int n;
    float **owned; /* float32 conversions, freed with the set */
    int n_owned, cap_owned;
    void (*release)(void *); /* weights_from_memory: frees the tensors' owner */
    void *owner;
};

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const entry *)a)->t->name, ((const entry *)b)->t->name);
}

/* Collect every tensor of every shard into one sorted table; duplicates across shards are an error. */
static clxp_status build_index(weights *w, clxp_error *err) {
    int total = 0;
    for (int i = 0; i < w->n_files; i++) total += st_count(w->files[i]);
    w->entries = calloc(total ? (size_t)total : 1, sizeof *w->entries);
    if (!w->entries) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", w->source);
    for (int i = 0; i < w->n_files; i++)
        for (int k = 0; k < st_count(w->files[i]); k++) w->entries[w->n++].t = st_at(w->files[i], k);
    qsort(w->entries, (size_t)w->n, sizeof *w->entries, cmp_entry);
    for (int k = 1; k < w->n; k++)
        if (strcmp(w->entries[k].t->name, w->entries[k - 1].t->name) == 0)
            return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: tensor \"%s\" appears in more than one shard", w->source,
                                w->entries[k].t->name);
    return CLXP_OK;
}

static clxp_status add_file(weights *w, const char *path, clxp_error *err) {
    st_file *f = NULL;
    clxp_status st = st_open(path, &f, err);
    if (st != CLXP_OK) return st;
    st_file **nf = realloc(w->files, (size_t)(w->n_files + 1) * sizeof *nf);
    if (!nf) {
        st_close(f);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", path);
    }
    w->files = nf;
    w->files[w->n_files++] = f;
    return CLXP_OK;
}

/* model.safetensors.index.json: {"weight_map": {"tensor name": "shard file", ...}}. Each distinct shard
 * is opened once; shard names must be plain file names inside the model directory. */
static clxp_status open_sharded(weights *w, const char *dir, const char *index_path, clxp_error *err) {
    cJSON *root = NULL;
    clxp_status st = clxp_json_load(index_path, &root, err);
    if (st != CLXP_OK) return st;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(root);
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: missing \"weight_map\" object", index_path);
    }
    const char **seen = NULL;
    int n_seen = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, map) {
        if (!cJSON_IsString(e)) {
            st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: weight_map[\"%s\"] is not a file name", index_path, e->string);
            break;
        }
        const char *fn = e->valuestring;
        if (!*fn || strchr(fn, '/') || strcmp(fn, "..") == 0 || strcmp(fn, ".") == 0) {
            st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: shard name \"%s\" must be a file in the model directory",
                              index_path, fn);
            break;
        }
        int dup = 0;
        for (int i = 0; i < n_seen && !dup; i++) dup = strcmp(seen[i], fn) == 0;
        if (dup) continue;
        if (n_seen >= MAX_SHARDS) {
            st = clxp_err_set(err, CLXP_ERR_LIMIT, "%s: more than %d shards", index_path, MAX_SHARDS);
            break;
        }
        const char **ns = realloc(seen, (size_t)(n_seen + 1) * sizeof *ns);
        if (!ns) {
            st = clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", index_path);
            break;
        }
        seen = ns;
        seen[n_seen++] = fn;
        char *p = clxp_path_join(dir, fn);
        if (!p) {
            st = clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", index_path);
            break;
        }
        st = add_file(w, p, err);
        free(p);
        if (st != CLXP_OK) break;
    }
    free(seen);
    cJSON_Delete(root);
    if (st == CLXP_OK && w->n_files == 0)
        st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: weight_map lists no shards", index_path);
    return st;
}

clxp_status weights_from_memory(const char *source, const st_tensor *tensors, int n, void (*release)(void *),
                                void *owner, weights **out, clxp_error *err) {
    *out = NULL;
    weights *w = calloc(1, sizeof *w);
    if (!w || !(w->source = strdup(source ? source : "(memory)"))) {
        free(w);
        if (release) release(owner);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    w->release = release;
    w->owner = owner;
    w->entries = calloc(n > 0 ? (size_t)n : 1, sizeof *w->entries);
    if (!w->entries) {
        weights_free(w);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", source);
    }
    for (int i = 0; i < n; i++) w->entries[w->n++].t = &tensors[i];
    qsort(w->entries, (size_t)w->n, sizeof *w->entries, cmp_entry);
    for (int k = 1; k < w->n; k++)
        if (strcmp(w->entries[k].t->name, w->entries[k - 1].t->name) == 0) {
            clxp_status st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: tensor \"%s\" appears twice", w->source,
                                          w->entries[k].t->name);
            weights_free(w);
            return st;
        }
    *out = w;
    return CLXP_OK;
}


clxp_status weights_open_dir(const char *dir, weights **out, clxp_error *err) {
    *out = NULL;
    weights *w = calloc(1, sizeof *w);
    char *single = clxp_path_join(dir, "model.safetensors");
    char *index = clxp_path_join(dir, "model.safetensors.index.json");
    clxp_status st = CLXP_OK;
    if (!w || !single || !index) {
        st = clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", dir);
    } else if (clxp_is_file(single)) {
        w->source = single;
        single = NULL;
        st = add_file(w, w->source, err);
    } else if (clxp_is_file(index)) {
        w->source = index;
        index = NULL;
        st = open_sharded(w, dir, w->source, err);
    } else if (access(single, F_OK) == 0) {
        st = clxp_err_set(err, CLXP_ERR_IO, "%s: not a regular file", single);
    } else {
        st = clxp_err_set(err, CLXP_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json in the directory",
                          dir);
    }
    if (st == CLXP_OK) st = build_index(w, err);
    free(single);
    free(index);
    if (st != CLXP_OK) {
        weights_free(w);
        return st;
    }
    *out = w;
    return CLXP_OK;
}

void weights_release_pages(weights *w) {
    for (int i = 0; w && i < w->n_files; i++) st_release_pages(w->files[i]);
}

void weights_free(weights *w) {
    if (!w) return;
    for (int i = 0; i < w->n_owned; i++) free(w->owned[i]);
    free(w->owned);
    for (int i = 0; i < w->n_files; i++) st_close(w->files[i]);
    free(w->files);
    free(w->entries);
    free(w->source);
    if (w->release) w->release(w->owner);
    free(w);
}

static entry *lookup(const weights *w, const char *name) {
    st_tensor key = {.name = name};
    entry k = {.t = &key};
    return bsearch(&k, w->entries, (size_t)w->n, sizeof k, cmp_entry);
}

const st_tensor *weights_find(weights *w, const char *name) {
    entry *e = lookup(w, name);
    if (!e) return NULL;
    e->used = 1;
    return e->t;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *dims) {
    size_t n = 0;
    buf[0] = '\0';
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)dims[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

clxp_status weights_f32(weights *w, const char *name, int ndim, const int64_t *dims, const float **out,
                        clxp_error *err) {
    *out = NULL;
    const st_tensor *t = weights_find(w, name);
    if (!t) return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: missing tensor \"%s\"", w->source, name);
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == dims[i];
    if (!ok) {
        char want[160], got[160];
        shape_str(want, sizeof want, ndim, dims);
        shape_str(got, sizeof got, t->ndim, t->shape);
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: tensor \"%s\" has shape %s, expected %s", w->source, name, got,
                            want);
    }
    if (t->dtype == ST_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *out = t->data;
        return CLXP_OK;
    }
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 && t->dtype != ST_F64)
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: tensor \"%s\" has dtype %s, expected a float type",
                            w->source, name, st_dtype_name(t->dtype));
    if (w->n_owned == w->cap_owned) {
        int cap = w->cap_owned ? 2 * w->cap_owned : 64;
        float **no = realloc(w->owned, (size_t)cap * sizeof *no);
        if (!no) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory converting \"%s\"", name);
        w->owned = no;
        w->cap_owned = cap;
    }
    float *buf = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float));
    if (!buf) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory converting \"%s\"", name);
    clxp_status st = st_to_f32(t, buf, err);
    if (st != CLXP_OK) {
        free(buf);
        return st;
    }
    w->owned[w->n_owned++] = buf;
    *out = buf;
    return CLXP_OK;
}

clxp_status weights_check_unused(const weights *w, int (*ignore)(const char *name), clxp_error *err) {
    char list[600];
    size_t len = 0;
    int count = 0;
    list[0] = '\0';
    for (int i = 0; i < w->n; i++) {
        const char *nm = w->entries[i].t->name;
        if (w->entries[i].used || (ignore && ignore(nm))) continue;
        if (count < 4 && len < sizeof list)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s\"%s\"", count ? ", " : "", nm);
        count++;
    }
    if (!count) return CLXP_OK;
    return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: %d unexpected tensor%s: %s%s", w->source, count,
                        count == 1 ? "" : "s", list, count > 4 ? ", ..." : "");
}

int weights_count(const weights *w) { return w->n; }

int64_t weights_numel(const weights *w) {
    int64_t n = 0;
    for (int i = 0; i < w->n; i++) n += w->entries[i].t->numel;
    return n;
}

const char *weights_dtype(const weights *w) {
    const char *d = NULL;
    for (int i = 0; i < w->n; i++) { /* integer buffers (position ids, counters) are not weights */
        st_dtype t = w->entries[i].t->dtype;
        if (t != ST_F32 && t != ST_F16 && t != ST_BF16 && t != ST_F64) continue;
        const char *x = st_dtype_name(t);
        if (!d) d = x;
        else if (strcmp(d, x) != 0) return "mixed";
    }
    return d ? d : "none";
}

const char *weights_source(const weights *w) { return w->source; }
