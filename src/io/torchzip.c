#include "io/torchzip.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zip.h>

#include "io/unpickle.h"
#include "util/error.h"

/* Longest attribute path (dotted name) built while walking a TorchScript module tree. */
#define TZ_MAX_PATH 4096
/* Most entries (modules + tensors + attributes) and name bytes recorded from one module tree (a tree of shared
 * subtrees can name exponentially many paths). */
#define TZ_MAX_WALK ((size_t)1 << 18)
#define TZ_MAX_NAME_BYTES ((size_t)64 << 20)
/* Gathered copies of non-contiguous tensors may take at most the archive's size plus this much: a few bytes of
 * storage expanded with zero strides must not turn into gigabytes. */
#define TZ_MAX_GATHER_EXTRA ((uint64_t)256 << 20)
/* Deflate cannot expand more than ~1032:1; a compressed entry declaring more is refused before inflating it. */
#define TZ_MAX_DEFLATE_RATIO 1100

typedef struct tz_entry {
    st_tensor t;
    char *name;
    void *copy; /* gathered data of a non-contiguous tensor (owned), else NULL */
} tz_entry;

typedef struct tz_table {
    tz_entry *e;
    int n, cap;
    const tz_entry **sorted; /* by name, for lookups */
} tz_table;

typedef struct tz_module {
    char *path;
    const char *cls; /* one of torch_file.classes */
} tz_module;

typedef struct tz_attr {
    char *path;
    pk_kind kind; /* PK_INT, PK_BOOL, PK_FLOAT or PK_STR */
    int64_t i;
    double f;
    char *s;
} tz_attr;

struct torch_file {
    char *path;
    char kind[64];
    int torchscript;
    tz_table tensors, consts;
    uint8_t **records; /* storage records read, by zip index (owned) */
    int64_t n_records;
    tz_module *modules;
    int n_modules, cap_modules;
    char **classes;
    int n_classes, cap_classes;
    int *class_slots; /* open-addressing hash of classes[] (index + 1, 0 = empty), at most half full */
    int n_class_slots;
    tz_attr *attrs;
    int n_attrs, cap_attrs;
};

/* State while opening. */
typedef struct opener {
    const char *name; /* path (or memory name) for messages */
    zip_t *za;
    uint64_t archive_size;
    char *prefix; /* top folder with its '/' */
    torch_file *f;
    clxp_error *err;
    size_t walked;     /* entries recorded from the module tree */
    size_t name_bytes; /* bytes of the names recorded from it */
    uint64_t gathered; /* bytes of gathered (non-contiguous) tensor copies */
} opener;

/* ---- small helpers ---------------------------------------------------------------------------------------------- */

static int grow(void **arr, int *cap, int n, size_t elem) {
    if (n < *cap) return 1;
    if (*cap > (1 << 28)) return 0;
    int c = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, (size_t)c * elem);
    if (!p) return 0;
    *arr = p;
    *cap = c;
    return 1;
}

static clxp_status nomem(opener *o) {
    return clxp_err_set(o->err, CLXP_ERR_NOMEM, "%s: out of memory", o->name);
}

static const char *zip_err_str(int code, char *buf, size_t size) {
    zip_error_t ze;
    zip_error_init_with_code(&ze, code);
    snprintf(buf, size, "%s", zip_error_strerror(&ze));
    zip_error_fini(&ze);
    return buf;
}

static clxp_status zip_open_error(opener *o, int code) {
    char msg[256];
    zip_err_str(code, msg, sizeof msg);
    switch (code) {
    case ZIP_ER_NOZIP:
        return clxp_err_set(o->err, CLXP_ERR_FORMAT,
                            "%s: not a readable zip archive (truncated, or its end record or central directory is "
                            "damaged)",
                            o->name);
    case ZIP_ER_OPEN:
    case ZIP_ER_READ:
    case ZIP_ER_SEEK:
    case ZIP_ER_NOENT: return clxp_err_set(o->err, CLXP_ERR_IO, "%s: cannot read the file (%s)", o->name, msg);
    case ZIP_ER_MEMORY: return nomem(o);
    case ZIP_ER_INCONS:
        return clxp_err_set(o->err, CLXP_ERR_FORMAT,
                            "%s: damaged zip archive: its central directory does not fit the file (libzip: %s)",
                            o->name, msg);
    default: return clxp_err_set(o->err, CLXP_ERR_FORMAT, "%s: damaged zip archive (libzip: %s)", o->name, msg);
    }
}

/* ---- records ---------------------------------------------------------------------------------------------------- */

/* Index of the record `rec` under the archive's top folder, or -1. */
static zip_int64_t locate(opener *o, const char *rec) {
    char full[1024];
    int w = snprintf(full, sizeof full, "%s%s", o->prefix, rec);
    if (w < 0 || (size_t)w >= sizeof full) return -1;
    return zip_name_locate(o->za, full, ZIP_FL_ENC_RAW);
}

/* Every central-directory entry: sizes plausible for the archive, within the limit. */
static clxp_status check_entries(opener *o, zip_int64_t n) {
    for (zip_int64_t i = 0; i < n; i++) {
        zip_stat_t st;
        if (zip_stat_index(o->za, (zip_uint64_t)i, ZIP_FL_ENC_RAW, &st) != 0)
            return clxp_err_set(o->err, CLXP_ERR_FORMAT, "%s: zip entry %" PRId64 ": %s", o->name, (int64_t)i,
                                zip_strerror(o->za));
        const zip_uint64_t need = ZIP_STAT_NAME | ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD;
        if ((st.valid & need) != need)
            return clxp_err_set(o->err, CLXP_ERR_FORMAT, "%s: zip entry %" PRId64 " without sizes", o->name,
                                (int64_t)i);
        if (st.comp_size > o->archive_size)
            return clxp_err_set(o->err, CLXP_ERR_FORMAT,
                                "%s: zip entry '%.200s' declares %" PRIu64
                                " bytes of data, more than the whole archive "
                                "(%" PRIu64 " bytes)",
                                o->name, st.name, (uint64_t)st.comp_size, o->archive_size);
        if (st.size > TORCH_MAX_RECORD_BYTES)
            return clxp_err_set(o->err, CLXP_ERR_LIMIT,
                                "%s: zip entry '%.200s' declares %" PRIu64 " bytes (limit %" PRIu64 ")", o->name,
                                st.name, (uint64_t)st.size, TORCH_MAX_RECORD_BYTES);
        if (st.comp_method == ZIP_CM_STORE && st.size != st.comp_size)
            return clxp_err_set(o->err, CLXP_ERR_FORMAT,
                                "%s: stored zip entry '%.200s' with different sizes (%" PRIu64 " vs %" PRIu64 ")",
                                o->name, st.name, (uint64_t)st.size, (uint64_t)st.comp_size);
        if (st.comp_method != ZIP_CM_STORE && st.size / TZ_MAX_DEFLATE_RATIO > st.comp_size)
            return clxp_err_set(o->err, CLXP_ERR_FORMAT,
                                "%s: compressed zip entry '%.200s' declares %" PRIu64 " bytes from %" PRIu64
                                " (impossible ratio)",
                                o->name, st.name, (uint64_t)st.size, (uint64_t)st.comp_size);
    }
    return CLXP_OK;
}

/* Reads record index idx completely (CRC checked by libzip) into a new buffer (at least 1 byte allocated).
 * want: the exact size required (UINT64_MAX: any size up to max). */
static clxp_status read_record(opener *o, zip_int64_t idx, uint64_t want, uint64_t max, uint8_t **out, size_t *len) {
    *out = NULL;
    *len = 0;
    zip_stat_t st;
    if (zip_stat_index(o->za, (zip_uint64_t)idx, ZIP_FL_ENC_RAW, &st) != 0)
        return clxp_err_set(o->err, CLXP_ERR_FORMAT, "%s: %s", o->name, zip_strerror(o->za));
    const char *rec = st.name + strlen(o->prefix);
    if (want != UINT64_MAX && st.size != want)
        return clxp_err_set(o->err, CLXP_ERR_FORMAT, "%s: record '%s' holds %" PRIu64 " bytes, expected %" PRIu64,
                            o->name, rec, (uint64_t)st.size, want);
    if (st.size > max)
        return clxp_err_set(o->err, CLXP_ERR_LIMIT, "%s: record '%s' holds %" PRIu64 " bytes (limit %" PRIu64 ")",
                            o->name, rec, (uint64_t)st.size, max);
    if (st.size > SIZE_MAX - 1) return nomem(o);
    uint8_t *buf = malloc((size_t)st.size + 1);
    if (!buf) return nomem(o);
    zip_file_t *zf = zip_fopen_index(o->za, (zip_uint64_t)idx, 0);
    if (!zf) {
        clxp_status s =
            clxp_err_set(o->err, CLXP_ERR_FORMAT, "%s: cannot read record '%s': %s", o->name, rec, zip_strerror(o->za));
        free(buf);
        return s;
    }
    uint64_t got = 0;
    clxp_status s = CLXP_OK;
    while (got < st.size) {
        zip_int64_t r = zip_fread(zf, buf + got, st.size - got);
        if (r <= 0) {
            s = clxp_err_set(o->err, CLXP_ERR_FORMAT,
                             "%s: reading record '%s' failed after %" PRIu64 " of %" PRIu64 " bytes: %s", o->name, rec,
                             got, (uint64_t)st.size, r < 0 ? zip_file_strerror(zf) : "unexpected end of data");
            break;
        }
        got += (uint64_t)r;
    }
    if (s == CLXP_OK) { /* read to the end: libzip checks the CRC there */
        uint8_t extra;
        zip_int64_t r = zip_fread(zf, &extra, 1);
        if (r != 0)
            s = clxp_err_set(o->err, CLXP_ERR_FORMAT, "%s: record '%s': %s", o->name, rec,
                             r < 0 ? zip_file_strerror(zf) : "more data than the central directory declares");
    }
    if (zip_fclose(zf) != 0 && s == CLXP_OK)
        s = clxp_err_set(o->err, CLXP_ERR_FORMAT, "%s: record '%s': damaged data", o->name, rec);
    if (s != CLXP_OK) {
        free(buf);
        return s;
    }
    buf[st.size] = 0;
    *out = buf;
    *len = (size_t)st.size;
    return CLXP_OK;
}

/* A small text record (byteorder, version) as a string without trailing whitespace; *found = 0 (not an error)
 * when absent. */
static clxp_status read_small(opener *o, const char *rec, char *out, size_t size, int *found) {
    *found = 0;
    out[0] = '\0';
    zip_int64_t idx = locate(o, rec);
    if (idx < 0) return CLXP_OK;
    uint8_t *buf;
    size_t len;
    clxp_status s = read_record(o, idx, UINT64_MAX, 64, &buf, &len);
    if (s != CLXP_OK) return s;
    if (memchr(buf, '\0', len)) {
        free(buf);
        return clxp_err_set(o->err, CLXP_ERR_FORMAT, "%s: record '%s' contains a NUL byte", o->name, rec);
    }
    if (len >= size) len = size - 1;
    memcpy(out, buf, len);
    while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r' || out[len - 1] == ' ')) len--;
    out[len] = '\0';
    free(buf);
    *found = 1;
    return CLXP_OK;
}

/* ---- tensors ---------------------------------------------------------------------------------------------------- */

static int is_contiguous(const pk_tensor *t) {
    int64_t expect = 1;
    for (int k = t->ndim - 1; k >= 0; k--) {
        if (t->size[k] != 1 && t->stride[k] != expect) return t->numel == 0;
        expect *= t->size[k];
    }
    return 1;
}

/* Copies the elements of t (row-major order) out of the storage bytes src. */
static void gather(uint8_t *dst, const uint8_t *src, const pk_tensor *t, size_t esize) {
    int64_t idx[ST_MAX_DIMS] = {0};
    for (int64_t n = 0; n < t->numel; n++) {
        int64_t off = t->offset;
        for (int k = 0; k < t->ndim; k++) off += idx[k] * t->stride[k];
        memcpy(dst + (size_t)n * esize, src + (size_t)off * esize, esize);
        for (int k = t->ndim - 1; k >= 0; k--) {
            if (++idx[k] < t->size[k]) break;
            idx[k] = 0;
        }
    }
}

/* The bytes of storage st (record dir + key), read once per record and kept. */
static clxp_status storage_bytes(opener *o, const char *tname, const pk_value *st, const char *dir,
                                 const uint8_t **out) {
    char rec[128]; /* dir + a key of at most 64 bytes */
    snprintf(rec, sizeof rec, "%s%s", dir, st->s);
    zip_int64_t idx = locate(o, rec);
    if (idx < 0 || idx >= o->f->n_records)
        return clxp_err_set(o->err, CLXP_ERR_FORMAT,
                            "%s: tensor '%.200s': storage key '%s' does not exist (no record '%s' in the archive)",
                            o->name, tname, st->s, rec);
    if (!o->f->records[idx]) {
        size_t esize = st_dtype_size(st->dtype);
        if ((uint64_t)st->numel > TORCH_MAX_RECORD_BYTES / esize)
            return clxp_err_set(o->err, CLXP_ERR_LIMIT,
                                "%s: storage '%s' declares %" PRId64 " elements of %s (limit %" PRIu64 " bytes)",
                                o->name, rec, st->numel, st_dtype_name(st->dtype), TORCH_MAX_RECORD_BYTES);
        uint64_t want = (uint64_t)st->numel * esize;
        zip_stat_t zs;
        if (zip_stat_index(o->za, (zip_uint64_t)idx, ZIP_FL_ENC_RAW, &zs) != 0)
            return clxp_err_set(o->err, CLXP_ERR_FORMAT, "%s: %s", o->name, zip_strerror(o->za));
        if (zs.size != want)
            return clxp_err_set(o->err, CLXP_ERR_FORMAT,
                                "%s: tensor '%.200s': record '%s' holds %" PRIu64
                                " bytes, but its storage declares %" PRId64 " elements of %s (%" PRIu64 " bytes)",
                                o->name, tname, rec, (uint64_t)zs.size, st->numel, st_dtype_name(st->dtype), want);
        size_t len;
        clxp_status s = read_record(o, idx, want, TORCH_MAX_RECORD_BYTES, &o->f->records[idx], &len);
        if (s != CLXP_OK) return s;
    }
    *out = o->f->records[idx];
    return CLXP_OK;
}

static clxp_status add_tensor(opener *o, tz_table *tab, const char *name, const pk_tensor *t, const char *dir) {
    if (!grow((void **)&tab->e, &tab->cap, tab->n, sizeof *tab->e)) return nomem(o);
    tz_entry *e = &tab->e[tab->n];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    if (!e->name) return nomem(o);
    tab->n++; /* owned from here on */
    const uint8_t *base;
    clxp_status s = storage_bytes(o, name, t->storage, dir, &base);
    if (s != CLXP_OK) return s;
    size_t esize = st_dtype_size(t->storage->dtype);
    if ((uint64_t)t->numel > TORCH_MAX_RECORD_BYTES / esize)
        return clxp_err_set(o->err, CLXP_ERR_LIMIT,
                            "%s: tensor '%.200s' has %" PRId64 " elements (limit %" PRIu64 " bytes)", o->name, name,
                            t->numel, TORCH_MAX_RECORD_BYTES);
    e->t.name = e->name;
    e->t.dtype = t->storage->dtype;
    e->t.ndim = t->ndim;
    for (int k = 0; k < t->ndim; k++) e->t.shape[k] = t->size[k];
    e->t.numel = t->numel;
    e->t.nbytes = (size_t)t->numel * esize;
    if (is_contiguous(t)) { /* inside the storage: checked by the unpickler */
        e->t.data = base + (size_t)t->offset * esize;
    } else {
        o->gathered += e->t.nbytes;
        if (o->gathered > o->archive_size + TZ_MAX_GATHER_EXTRA)
            return clxp_err_set(o->err, CLXP_ERR_LIMIT,
                                "%s: tensor '%.200s': copying strided views would take %" PRIu64 " bytes (limit: the "
                                "archive size + %" PRIu64 ")",
                                o->name, name, o->gathered, TZ_MAX_GATHER_EXTRA);
        e->copy = malloc(e->t.nbytes ? e->t.nbytes : 1);
        if (!e->copy) return nomem(o);
        gather(e->copy, base, t, esize);
        e->t.data = e->copy;
    }
    return CLXP_OK;
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp((*(const tz_entry *const *)a)->name, (*(const tz_entry *const *)b)->name);
}

static clxp_status index_table(opener *o, tz_table *tab, const char *what) {
    if (tab->n == 0) return CLXP_OK;
    tab->sorted = malloc((size_t)tab->n * sizeof *tab->sorted);
    if (!tab->sorted) return nomem(o);
    for (int i = 0; i < tab->n; i++) tab->sorted[i] = &tab->e[i];
    qsort(tab->sorted, (size_t)tab->n, sizeof *tab->sorted, cmp_entry);
    for (int i = 1; i < tab->n; i++)
        if (strcmp(tab->sorted[i - 1]->name, tab->sorted[i]->name) == 0)
            return clxp_err_set(o->err, CLXP_ERR_FORMAT, "%s: duplicate %s name '%.200s'", o->name, what,
                                tab->sorted[i]->name);
    return CLXP_OK;
}

static const st_tensor *table_find(const tz_table *tab, const char *name) {
    int lo = 0, hi = tab->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, tab->sorted[mid]->name);
        if (c == 0) return &tab->sorted[mid]->t;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* ---- state dicts ------------------------------------------------------------------------------------------------ */

static int count_tensors(const pk_value *dict) {
    int n = 0;
    for (size_t k = 0; k < dict->n; k++) n += dict->items[2 * k + 1]->kind == PK_TENSOR;
    return n;
}

static clxp_status collect_state_dict(opener *o, const pk_value *root) {
    char d[300];
    if (root->kind != PK_DICT) {
        pk_describe(root, d, sizeof d);
        return clxp_err_set(o->err, CLXP_ERR_UNSUPPORTED, "%s: data.pkl holds a %s, not a state dict", o->name, d);
    }
    const pk_value *sd = root;
    const char *kind = "state_dict";
    if (count_tensors(root) == 0) {
        const pk_value *v;
        if ((v = pk_dict_get(root, "state_dict")) != NULL && v->kind == PK_DICT) {
            sd = v;
            kind = "state_dict['state_dict']";
        } else if ((v = pk_dict_get(root, "model")) != NULL && v->kind == PK_DICT) {
            sd = v;
            kind = "state_dict['model']";
        }
    }
    if (count_tensors(sd) == 0) {
        pk_describe(root, d, sizeof d);
        return clxp_err_set(o->err, CLXP_ERR_UNSUPPORTED,
                            "%s: no tensors found: data.pkl holds a %s (expected a state dict, {'state_dict': ...} or "
                            "{'model': ...})",
                            o->name, d);
    }
    int strip = 1;
    for (size_t k = 0; k < sd->n; k++) {
        const pk_value *key = sd->items[2 * k], *val = sd->items[2 * k + 1];
        if (val->kind != PK_TENSOR) continue;
        if (key->kind != PK_STR) {
            pk_describe(key, d, sizeof d);
            return clxp_err_set(o->err, CLXP_ERR_FORMAT, "%s: state dict key is a %s, not a str", o->name, d);
        }
        if (strncmp(key->s, "module.", 7) != 0 || key->len == 7) strip = 0;
    }
    snprintf(o->f->kind, sizeof o->f->kind, "%s%s", kind, strip ? " (module. stripped)" : "");
    for (size_t k = 0; k < sd->n; k++) {
        const pk_value *key = sd->items[2 * k], *val = sd->items[2 * k + 1];
        if (val->kind != PK_TENSOR) continue;
        clxp_status s = add_tensor(o, &o->f->tensors, key->s + (strip ? 7 : 0), val->tensor, "data/");
        if (s != CLXP_OK) return s;
    }
    return CLXP_OK;
}

/* ---- TorchScript module trees ----------------------------------------------------------------------------------- */

static size_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return (size_t)h;
}

/* Slot of cls in the class hash (an empty slot if absent). */
static int class_slot(const torch_file *f, const char *cls) {
    size_t mask = (size_t)f->n_class_slots - 1, i = hash_str(cls) & mask;
    while (f->class_slots[i] && strcmp(f->classes[f->class_slots[i] - 1], cls) != 0) i = (i + 1) & mask;
    return (int)i;
}

/* The distinct class name equal to cls (added on first sight), or NULL when out of memory. */
static const char *intern_class(opener *o, const char *cls) {
    torch_file *f = o->f;
    if (f->n_class_slots) {
        int slot = f->class_slots[class_slot(f, cls)];
        if (slot) return f->classes[slot - 1];
    }
    if (2 * (f->n_classes + 1) > f->n_class_slots) { /* rehash into a table twice as large */
        int n = f->n_class_slots ? 2 * f->n_class_slots : 64;
        int *slots = calloc((size_t)n, sizeof *slots);
        if (!slots) return NULL;
        free(f->class_slots);
        f->class_slots = slots;
        f->n_class_slots = n;
        for (int i = 0; i < f->n_classes; i++) f->class_slots[class_slot(f, f->classes[i])] = i + 1;
    }
    if (!grow((void **)&f->classes, &f->cap_classes, f->n_classes, sizeof *f->classes)) return NULL;
    char *c = strdup(cls);
    if (!c) return NULL;
    f->class_slots[class_slot(f, c)] = f->n_classes + 1;
    f->classes[f->n_classes++] = c;
    return c;
}

/* Counts one more entry of the module tree named `path`; fails past TZ_MAX_WALK / TZ_MAX_NAME_BYTES. */
static clxp_status count_walk(opener *o, const char *path) {
    o->name_bytes += strlen(path) + 1;
    if (++o->walked > TZ_MAX_WALK || o->name_bytes > TZ_MAX_NAME_BYTES)
        return clxp_err_set(o->err, CLXP_ERR_LIMIT,
                            "%s: module tree with more than %zu entries or %zu bytes of names (shared submodules?)",
                            o->name, TZ_MAX_WALK, TZ_MAX_NAME_BYTES);
    return CLXP_OK;
}

static clxp_status add_module(opener *o, const char *path, const char *cls) {
    torch_file *f = o->f;
    const char *c = intern_class(o, cls);
    if (!c || !grow((void **)&f->modules, &f->cap_modules, f->n_modules, sizeof *f->modules)) return nomem(o);
    char *p = strdup(path);
    if (!p) return nomem(o);
    f->modules[f->n_modules].path = p;
    f->modules[f->n_modules].cls = c;
    f->n_modules++;
    return CLXP_OK;
}

static clxp_status add_attr(opener *o, const char *path, const pk_value *v) {
    torch_file *f = o->f;
    if (!grow((void **)&f->attrs, &f->cap_attrs, f->n_attrs, sizeof *f->attrs)) return nomem(o);
    tz_attr *a = &f->attrs[f->n_attrs];
    memset(a, 0, sizeof *a);
    a->path = strdup(path);
    if (!a->path) return nomem(o);
    f->n_attrs++;
    a->kind = v->kind;
    a->i = v->i;
    a->f = v->f;
    if (v->kind == PK_STR && !(a->s = strdup(v->s))) return nomem(o);
    return CLXP_OK;
}

static clxp_status walk_module(opener *o, const pk_value *obj, char *path, size_t plen, int depth) {
    char d[300];
    const char *shown = plen ? path : "<root>";
    if (depth > PK_MAX_DEPTH)
        return clxp_err_set(o->err, CLXP_ERR_LIMIT, "%s: module tree deeper than %d levels (at '%.200s')", o->name,
                            PK_MAX_DEPTH, shown);
    clxp_status s = count_walk(o, path);
    if (s != CLXP_OK) return s;
    s = add_module(o, path, obj->cls->s);
    if (s != CLXP_OK) return s;
    const pk_value *state = obj->state;
    if (!state || state->kind != PK_DICT) {
        pk_describe(state, d, sizeof d);
        return clxp_err_set(o->err, CLXP_ERR_UNSUPPORTED,
                            "%s: unknown TorchScript module layout: module '%.200s' (%s) has %s as its state, expected "
                            "an attribute dict",
                            o->name, shown, obj->cls->s, d);
    }
    for (size_t k = 0; k < state->n; k++) {
        const pk_value *key = state->items[2 * k], *val = state->items[2 * k + 1];
        if (key->kind != PK_STR) {
            pk_describe(key, d, sizeof d);
            return clxp_err_set(o->err, CLXP_ERR_UNSUPPORTED,
                                "%s: unknown TorchScript module layout: module '%.200s' (%s) has an attribute named by "
                                "a %s",
                                o->name, shown, obj->cls->s, d);
        }
        if (val->kind != PK_TENSOR && val->kind != PK_OBJECT && val->kind != PK_INT && val->kind != PK_BOOL &&
            val->kind != PK_FLOAT && val->kind != PK_STR)
            continue; /* None, tuples, lists (e.g. build_intlist), dicts: not needed */
        size_t need = plen + (plen ? 1 : 0) + key->len;
        if (need >= TZ_MAX_PATH)
            return clxp_err_set(o->err, CLXP_ERR_LIMIT, "%s: attribute path longer than %d bytes under '%.200s'",
                                o->name, TZ_MAX_PATH, shown);
        if (plen) path[plen] = '.';
        memcpy(path + plen + (plen ? 1 : 0), key->s, key->len + 1);
        if (val->kind == PK_OBJECT) {
            s = walk_module(o, val, path, need, depth + 1);
        } else {
            s = count_walk(o, path);
            if (s == CLXP_OK)
                s = val->kind == PK_TENSOR ? add_tensor(o, &o->f->tensors, path, val->tensor, "data/")
                                           : add_attr(o, path, val);
        }
        path[plen] = '\0';
        if (s != CLXP_OK) return s;
    }
    return CLXP_OK;
}

static clxp_status collect_module_tree(opener *o, const pk_value *root) {
    char d[300];
    snprintf(o->f->kind, sizeof o->f->kind, "torchscript");
    if (root->kind != PK_OBJECT) {
        pk_describe(root, d, sizeof d);
        return clxp_err_set(o->err, CLXP_ERR_UNSUPPORTED,
                            "%s: unknown TorchScript module layout: data.pkl holds a %s, expected a __torch__.* module "
                            "object",
                            o->name, d);
    }
    char *path = calloc(1, TZ_MAX_PATH);
    if (!path) return nomem(o);
    clxp_status s = walk_module(o, root, path, 0, 0);
    free(path);
    if (s != CLXP_OK) return s;
    if (o->f->tensors.n == 0)
        return clxp_err_set(
            o->err, CLXP_ERR_UNSUPPORTED,
            "%s: unknown TorchScript module layout: %d module objects (root %s) but no tensor attributes", o->name,
            o->f->n_modules, root->cls->s);
    return CLXP_OK;
}

static clxp_status collect_constants(opener *o, const pk_value *root) {
    if (root->kind != PK_TUPLE) {
        char d[300];
        pk_describe(root, d, sizeof d);
        return clxp_err_set(o->err, CLXP_ERR_FORMAT, "%s: constants.pkl holds a %s, expected a tuple", o->name, d);
    }
    for (size_t k = 0; k < root->n; k++) {
        if (root->items[k]->kind != PK_TENSOR) continue;
        char name[32];
        snprintf(name, sizeof name, "c%zu", k);
        clxp_status s = add_tensor(o, &o->f->consts, name, root->items[k]->tensor, "constants/");
        if (s != CLXP_OK) return s;
    }
    return CLXP_OK;
}

/* ---- opening ---------------------------------------------------------------------------------------------------- */

static clxp_status parse_pickle(opener *o, const char *rec, int torchscript, pk_doc **doc) {
    *doc = NULL;
    zip_int64_t idx = locate(o, rec);
    if (idx < 0) return clxp_err_set(o->err, CLXP_ERR_FORMAT, "%s: no '%s' record", o->name, rec);
    uint8_t *buf;
    size_t len;
    clxp_status s = read_record(o, idx, UINT64_MAX, TORCH_MAX_PICKLE_BYTES, &buf, &len);
    if (s != CLXP_OK) return s;
    char pname[1200];
    snprintf(pname, sizeof pname, "%s: %s", o->name, rec);
    pk_options opt = {pname, torchscript};
    s = pk_parse(buf, len, &opt, doc, o->err);
    free(buf);
    return s;
}

static clxp_status read_archive(opener *o) {
    torch_file *f = o->f;
    zip_int64_t n = zip_get_num_entries(o->za, 0);
    if (n <= 0) return clxp_err_set(o->err, CLXP_ERR_FORMAT, "%s: empty zip archive", o->name);
    if (n > (1 << 24)) return clxp_err_set(o->err, CLXP_ERR_LIMIT, "%s: %" PRId64 " zip entries", o->name, (int64_t)n);
    clxp_status s = check_entries(o, n);
    if (s != CLXP_OK) return s;
    f->records = calloc((size_t)n, sizeof *f->records);
    if (!f->records) return nomem(o);
    f->n_records = n;

    /* top folder: from the first entry, as torch does */
    const char *first = zip_get_name(o->za, 0, ZIP_FL_ENC_RAW);
    const char *slash = first ? strchr(first, '/') : NULL;
    if (!slash || slash == first || slash - first > 512)
        return clxp_err_set(o->err, CLXP_ERR_FORMAT,
                            "%s: not a PyTorch archive (its first entry '%.200s' is not inside a folder)", o->name,
                            first ? first : "?");
    o->prefix = strndup(first, (size_t)(slash - first) + 1);
    if (!o->prefix) return nomem(o);

    if (locate(o, "data.pkl") < 0) {
        if (locate(o, "model.json") >= 0)
            return clxp_err_set(o->err, CLXP_ERR_UNSUPPORTED,
                                "%s: TorchScript archive in the pre-1.4 format (model.json) is not supported; re-save "
                                "it with a newer torch",
                                o->name);
        return clxp_err_set(o->err, CLXP_ERR_FORMAT, "%s: not a PyTorch archive (no record '%sdata.pkl')", o->name,
                            o->prefix);
    }

    char text[64];
    int found;
    if ((s = read_small(o, "byteorder", text, sizeof text, &found)) != CLXP_OK) return s;
    if (found && strcmp(text, "big") == 0)
        return clxp_err_set(o->err, CLXP_ERR_UNSUPPORTED,
                            "%s: the storages are big-endian (record 'byteorder' says 'big'); this reader supports "
                            "little-endian files only",
                            o->name);
    if (found && strcmp(text, "little") != 0)
        return clxp_err_set(o->err, CLXP_ERR_FORMAT, "%s: unknown byte order '%.20s' in record 'byteorder'", o->name,
                            text);
    if ((s = read_small(o, ".data/version", text, sizeof text, &found)) != CLXP_OK) return s;
    if (!found && (s = read_small(o, "version", text, sizeof text, &found)) != CLXP_OK) return s;
    if (!found) return clxp_err_set(o->err, CLXP_ERR_FORMAT, "%s: no 'version' record", o->name);
    char *end;
    long version = strtol(text, &end, 10);
    if (end == text || *end || text[0] == '-' || text[0] == '+' || version < 1 || version > TORCH_MAX_VERSION)
        return clxp_err_set(o->err, CLXP_ERR_UNSUPPORTED, "%s: unsupported archive version '%.20s'", o->name, text);

    f->torchscript = locate(o, "constants.pkl") >= 0; /* torch's own test (_is_torchscript_zip) */
    pk_doc *doc;
    if ((s = parse_pickle(o, "data.pkl", f->torchscript, &doc)) != CLXP_OK) return s;
    s = f->torchscript ? collect_module_tree(o, pk_root(doc)) : collect_state_dict(o, pk_root(doc));
    pk_free(doc);
    if (s != CLXP_OK) return s;
    if (f->torchscript) {
        if ((s = parse_pickle(o, "constants.pkl", 1, &doc)) != CLXP_OK) return s;
        s = collect_constants(o, pk_root(doc));
        pk_free(doc);
        if (s != CLXP_OK) return s;
    }
    if ((s = index_table(o, &f->tensors, "tensor")) != CLXP_OK) return s;
    return index_table(o, &f->consts, "constant");
}

/* Refuses what is not a ZIP, naming the legacy formats. */
static clxp_status check_magic(opener *o, const uint8_t *head, size_t n) {
    if (n >= 4 && memcmp(head, "PK\x03\x04", 4) == 0) return CLXP_OK;
    if (n >= 8 && memcmp(head, "PYTORCH1", 8) == 0)
        return clxp_err_set(o->err, CLXP_ERR_UNSUPPORTED, "%s: PyTorch preview-release archive format not supported",
                            o->name);
    if ((n >= 2 && head[0] == 0x80 && head[1] <= 5) || (n >= 262 && memcmp(head + 257, "ustar", 5) == 0))
        return clxp_err_set(o->err, CLXP_ERR_UNSUPPORTED,
                            "%s: legacy (pre-1.6) torch.save format not supported; re-save it with torch >= 1.6 "
                            "(torch.save(torch.load(path), path)) or convert it to safetensors",
                            o->name);
    return clxp_err_set(o->err, CLXP_ERR_FORMAT, "%s: not a PyTorch file (no zip signature)", o->name);
}

static clxp_status finish_open(opener *o, torch_file **out) {
    clxp_status s = read_archive(o);
    zip_discard(o->za);
    o->za = NULL;
    free(o->prefix);
    o->prefix = NULL;
    if (s != CLXP_OK) {
        torch_close(o->f);
        return s;
    }
    *out = o->f;
    return CLXP_OK;
}

static torch_file *new_file(const char *name) {
    torch_file *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->path = strdup(name);
    if (!f->path) {
        free(f);
        return NULL;
    }
    return f;
}

clxp_status torch_open(const char *path, torch_file **out, clxp_error *err) {
    *out = NULL;
    opener o = {0};
    o.name = path;
    o.err = err;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: PyTorch files are read on little-endian hosts only", path);
#endif
    FILE *fp = fopen(path, "rb");
    if (!fp) return clxp_err_set(err, CLXP_ERR_IO, "%s: cannot open", path);
    uint8_t head[512];
    size_t n = fread(head, 1, sizeof head, fp);
    struct stat sb;
    int ok = fstat(fileno(fp), &sb) == 0;
    fclose(fp);
    if (!ok || !S_ISREG(sb.st_mode)) return clxp_err_set(err, CLXP_ERR_IO, "%s: not a readable regular file", path);
    clxp_status s = check_magic(&o, head, n);
    if (s != CLXP_OK) return s;
    o.archive_size = (uint64_t)sb.st_size;
    int code = 0;
    o.za = zip_open(path, ZIP_RDONLY | ZIP_CHECKCONS, &code);
    if (!o.za) return zip_open_error(&o, code);
    o.f = new_file(path);
    if (!o.f) {
        zip_discard(o.za);
        return nomem(&o);
    }
    return finish_open(&o, out);
}

clxp_status torch_open_memory(const void *buf, size_t len, const char *name, torch_file **out, clxp_error *err) {
    *out = NULL;
    opener o = {0};
    o.name = name ? name : "(memory)";
    o.err = err;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: PyTorch files are read on little-endian hosts only", o.name);
#endif
    clxp_status s = check_magic(&o, buf, len);
    if (s != CLXP_OK) return s;
    o.archive_size = len;
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(buf, len, 0, &ze);
    if (!src) {
        zip_error_fini(&ze);
        return nomem(&o);
    }
    o.za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (!o.za) {
        int code = zip_error_code_zip(&ze);
        zip_source_free(src);
        zip_error_fini(&ze);
        return zip_open_error(&o, code);
    }
    zip_error_fini(&ze);
    o.f = new_file(o.name);
    if (!o.f) {
        zip_discard(o.za);
        return nomem(&o);
    }
    return finish_open(&o, out);
}

static void free_table(tz_table *tab) {
    for (int i = 0; i < tab->n; i++) {
        free(tab->e[i].name);
        free(tab->e[i].copy);
    }
    free(tab->e);
    free(tab->sorted);
}

void torch_close(torch_file *f) {
    if (!f) return;
    free_table(&f->tensors);
    free_table(&f->consts);
    for (int64_t i = 0; i < f->n_records; i++) free(f->records[i]);
    free(f->records);
    for (int i = 0; i < f->n_modules; i++) free(f->modules[i].path);
    free(f->modules);
    for (int i = 0; i < f->n_classes; i++) free(f->classes[i]);
    free(f->classes);
    free(f->class_slots);
    for (int i = 0; i < f->n_attrs; i++) {
        free(f->attrs[i].path);
        free(f->attrs[i].s);
    }
    free(f->attrs);
    free(f->path);
    free(f);
}

/* ---- accessors -------------------------------------------------------------------------------------------------- */

const char *torch_path(const torch_file *f) {
    return f->path;
}

const char *torch_kind(const torch_file *f) {
    return f->kind;
}

int torch_is_torchscript(const torch_file *f) {
    return f->torchscript;
}

int torch_count(const torch_file *f) {
    return f->tensors.n;
}

const st_tensor *torch_at(const torch_file *f, int i) {
    return i >= 0 && i < f->tensors.n ? &f->tensors.e[i].t : NULL;
}

const st_tensor *torch_find(const torch_file *f, const char *name) {
    return table_find(&f->tensors, name);
}

int torch_module_count(const torch_file *f) {
    return f->n_modules;
}

const char *torch_module_path(const torch_file *f, int i) {
    return i >= 0 && i < f->n_modules ? f->modules[i].path : NULL;
}

const char *torch_module_class_at(const torch_file *f, int i) {
    return i >= 0 && i < f->n_modules ? f->modules[i].cls : NULL;
}

const char *torch_module_class(const torch_file *f, const char *path) {
    for (int i = 0; i < f->n_modules; i++)
        if (strcmp(f->modules[i].path, path) == 0) return f->modules[i].cls;
    return NULL;
}

int torch_class_count(const torch_file *f) {
    return f->n_classes;
}

const char *torch_class_at(const torch_file *f, int i) {
    return i >= 0 && i < f->n_classes ? f->classes[i] : NULL;
}

static const tz_attr *find_attr(const torch_file *f, const char *path) {
    for (int i = 0; i < f->n_attrs; i++)
        if (strcmp(f->attrs[i].path, path) == 0) return &f->attrs[i];
    return NULL;
}

int torch_attr_int(const torch_file *f, const char *path, int64_t *out) {
    const tz_attr *a = find_attr(f, path);
    if (!a || (a->kind != PK_INT && a->kind != PK_BOOL)) return 0;
    *out = a->i;
    return 1;
}

int torch_attr_float(const torch_file *f, const char *path, double *out) {
    const tz_attr *a = find_attr(f, path);
    if (!a || (a->kind != PK_FLOAT && a->kind != PK_INT)) return 0;
    *out = a->kind == PK_FLOAT ? a->f : (double)a->i;
    return 1;
}

const char *torch_attr_str(const torch_file *f, const char *path) {
    const tz_attr *a = find_attr(f, path);
    return a && a->kind == PK_STR ? a->s : NULL;
}

int torch_const_count(const torch_file *f) {
    return f->consts.n;
}

const st_tensor *torch_const_at(const torch_file *f, int i) {
    return i >= 0 && i < f->consts.n ? &f->consts.e[i].t : NULL;
}

const st_tensor *torch_const_find(const torch_file *f, const char *name) {
    return table_find(&f->consts, name);
}
