#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/json.h"

/* Largest header accepted (the reference implementation uses the same 100 MB bound). */
#define ST_MAX_HEADER ((uint64_t)100 << 20)

struct st_file {
    char *path;
    void *map;
    size_t map_len;
    int n;
    st_tensor *tensors; /* sorted by name for binary search */
    cJSON *meta;        /* "__metadata__" object (detached), may be NULL */
};

static const struct {
    const char *name;
    st_dtype type;
    size_t size;
} dtypes[] = {
    {"F64", ST_F64, 8}, {"F32", ST_F32, 4}, {"F16", ST_F16, 2}, {"BF16", ST_BF16, 2}, {"I64", ST_I64, 8},
    {"I32", ST_I32, 4}, {"I16", ST_I16, 2}, {"I8", ST_I8, 1},   {"U8", ST_U8, 1},     {"BOOL", ST_BOOL, 1},
};

const char *st_dtype_name(st_dtype t) {
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (dtypes[i].type == t) return dtypes[i].name;
    return "?";
}

size_t st_dtype_size(st_dtype t) {
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (dtypes[i].type == t) return dtypes[i].size;
    return 0;
}

static int parse_dtype(const char *s, st_dtype *t) {
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(s, dtypes[i].name) == 0) {
            *t = dtypes[i].type;
            return 1;
        }
    return 0;
}

/* A JSON number that is an exact non-negative integer no larger than 2^53. */
static int json_u53(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

typedef struct {
    uint64_t begin, end;
    const char *name;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end < y->end ? -1 : x->end > y->end);
}

/* Parse one header entry into t (name not yet set). */
static clxp_status parse_entry(const st_file *f, const cJSON *e, uint64_t data_len, st_tensor *t, uint64_t *begin,
                               uint64_t *end, clxp_error *err) {
    const char *nm = e->string;
    if (!cJSON_IsObject(e)) return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: tensor \"%s\": entry is not an object", f->path, nm);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off))
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: tensor \"%s\": needs string dtype, shape and data_offsets arrays",
                            f->path, nm);
    if (!parse_dtype(dt->valuestring, &t->dtype))
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: tensor \"%s\": unknown dtype \"%s\"", f->path, nm,
                            dt->valuestring);
    int nd = cJSON_GetArraySize(sh);
    if (nd > ST_MAX_DIMS)
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: tensor \"%s\": %d dimensions (at most %d supported)",
                            f->path, nm, nd, ST_MAX_DIMS);
    t->ndim = nd;
    uint64_t numel = 1;
    for (int d = 0; d < nd; d++) {
        uint64_t v;
        if (!json_u53(cJSON_GetArrayItem(sh, d), &v))
            return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: tensor \"%s\": shape[%d] is not a non-negative integer",
                                f->path, nm, d);
        if (v != 0 && numel > UINT64_MAX / v)
            return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: tensor \"%s\": shape product overflows", f->path, nm);
        numel *= v;
        t->shape[d] = (int64_t)v;
    }
    size_t es = st_dtype_size(t->dtype);
    if (numel > (UINT64_MAX / es) || numel * es > data_len)
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: tensor \"%s\": shape needs more bytes than the file holds",
                            f->path, nm);
    if (cJSON_GetArraySize(off) != 2 || !json_u53(cJSON_GetArrayItem(off, 0), begin) ||
        !json_u53(cJSON_GetArrayItem(off, 1), end) || *begin > *end)
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: tensor \"%s\": data_offsets must be [begin, end] with begin <= end",
                            f->path, nm);
    if (*end > data_len)
        return clxp_err_set(err, CLXP_ERR_FORMAT,
                            "%s: tensor \"%s\": data_offsets [%llu, %llu] lie outside the %llu-byte data section (file "
                            "truncated?)",
                            f->path, nm, (unsigned long long)*begin, (unsigned long long)*end,
                            (unsigned long long)data_len);
    if (*end - *begin != numel * es)
        return clxp_err_set(err, CLXP_ERR_FORMAT,
                            "%s: tensor \"%s\": %llu bytes of data but dtype %s x shape needs %llu", f->path, nm,
                            (unsigned long long)(*end - *begin), dt->valuestring, (unsigned long long)(numel * es));
    t->numel = (int64_t)numel;
    t->nbytes = (size_t)(numel * es);
    return CLXP_OK;
}

static clxp_status parse_header(st_file *f, const char *hdr, size_t hlen, const uint8_t *data, uint64_t data_len,
                                clxp_error *err) {
    cJSON *root = NULL;
    /* "<path>: safetensors header: malformed JSON near byte N": the file name first, as everywhere else */
    char what[PATH_MAX + 32];
    snprintf(what, sizeof what, "%s: safetensors header", f->path);
    clxp_status st = clxp_json_parse(hdr, hlen, what, &root, err);
    if (st != CLXP_OK) return st;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: safetensors header is not a JSON object", f->path);
    }
    f->meta = cJSON_DetachItemFromObjectCaseSensitive(root, "__metadata__");
    int n = cJSON_GetArraySize(root);
    f->tensors = calloc(n ? (size_t)n : 1, sizeof *f->tensors);
    span *spans = calloc(n ? (size_t)n : 1, sizeof *spans);
    if (!f->tensors || !spans) {
        free(spans);
        cJSON_Delete(root);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory reading header", f->path);
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        st_tensor *t = &f->tensors[i];
        uint64_t b = 0, en = 0;
        st = parse_entry(f, e, data_len, t, &b, &en, err);
        if (st != CLXP_OK) break;
        t->name = strdup(e->string);
        if (!t->name) {
            st = clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", f->path);
            break;
        }
        t->data = data + b;
        spans[i] = (span){b, en, t->name};
        f->n = ++i;
    }
    cJSON_Delete(root);
    if (st == CLXP_OK) {
        /* Sorted by begin: a non-empty span overlaps an earlier one iff it starts before the furthest end so far. */
        qsort(spans, (size_t)f->n, sizeof *spans, cmp_span);
        int last = -1;
        for (int k = 0; k < f->n; k++) {
            if (spans[k].end == spans[k].begin) continue;
            if (last >= 0 && spans[k].begin < spans[last].end) {
                st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: tensors \"%s\" and \"%s\" overlap in the data section",
                                  f->path, spans[last].name, spans[k].name);
                break;
            }
            if (last < 0 || spans[k].end > spans[last].end) last = k;
        }
    }
    if (st == CLXP_OK) {
        qsort(f->tensors, (size_t)f->n, sizeof *f->tensors, cmp_name);
        for (int k = 1; k < f->n; k++)
            if (strcmp(f->tensors[k].name, f->tensors[k - 1].name) == 0) {
                st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: duplicate tensor name \"%s\"", f->path,
                                  f->tensors[k].name);
                break;
            }
    }
    free(spans);
    return st;
}

/* Shared by st_open and st_open_memory: f->path is set; validate the length prefix and parse the header of
 * the len bytes at base (tensor data pointers point into them). */
static clxp_status parse_buffer(st_file *f, const uint8_t *base, size_t len, clxp_error *err) {
    if (len < 8)
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: file too short for a safetensors header (%zu bytes)", f->path,
                            len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | base[i];
    if (hlen > ST_MAX_HEADER || hlen > len - 8)
        return clxp_err_set(err, CLXP_ERR_FORMAT,
                            "%s: header length %llu exceeds the file size (%zu bytes) or the %llu-byte limit", f->path,
                            (unsigned long long)hlen, len, (unsigned long long)ST_MAX_HEADER);
    return parse_header(f, (const char *)base + 8, (size_t)hlen, base + 8 + hlen, len - 8 - hlen, err);
}

static st_file *new_file(const char *path, clxp_error *err) {
    st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", path);
        return NULL;
    }
    return f;
}

clxp_status st_open(const char *path, st_file **out, clxp_error *err) {
    *out = NULL;
    st_file *f = new_file(path, err);
    if (!f) return CLXP_ERR_NOMEM;
    clxp_status st = CLXP_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0) {
        st = clxp_err_set(err, CLXP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        st = clxp_err_set(err, CLXP_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    if (sb.st_size < 8) {
        close(fd);
        st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: file too short for a safetensors header (%lld bytes)", path,
                          (long long)sb.st_size);
        goto fail;
    }
    f->map_len = (size_t)sb.st_size;
    f->map = mmap(NULL, f->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        st = clxp_err_set(err, CLXP_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
        goto fail;
    }
    st = parse_buffer(f, f->map, f->map_len, err);
    if (st != CLXP_OK) goto fail;
    *out = f;
    return CLXP_OK;
fail:
    st_close(f);
    return st;
}

clxp_status st_open_memory(const void *buf, size_t len, const char *name, st_file **out, clxp_error *err) {
    *out = NULL;
    st_file *f = new_file(name ? name : "(memory)", err);
    if (!f) return CLXP_ERR_NOMEM;
    clxp_status st = parse_buffer(f, buf, len, err);
    if (st != CLXP_OK) {
        st_close(f);
        return st;
    }
    *out = f;
    return CLXP_OK;
}

void st_close(st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) free((void *)f->tensors[i].name);
    free(f->tensors);
    cJSON_Delete(f->meta);
    if (f->map) munmap(f->map, f->map_len);
    free(f->path);
    free(f);
}

void st_release_pages(st_file *f) {
    if (f && f->map) (void)madvise(f->map, f->map_len, MADV_DONTNEED);
}

const char *st_path(const st_file *f) { return f->path; }
int st_count(const st_file *f) { return f->n; }
const st_tensor *st_at(const st_file *f, int i) { return (i >= 0 && i < f->n) ? &f->tensors[i] : NULL; }

const st_tensor *st_find(const st_file *f, const char *name) {
    st_tensor key = {.name = name};
    return bsearch(&key, f->tensors, (size_t)f->n, sizeof key, cmp_name);
}

const char *st_metadata(const st_file *f, const char *key) {
    const cJSON *v = f->meta ? cJSON_GetObjectItemCaseSensitive(f->meta, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3FF) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float st_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

clxp_status st_to_f32(const st_tensor *t, float *dst, clxp_error *err) {
    const uint8_t *p = t->data;
    int64_t n = t->numel;
    switch (t->dtype) {
    case ST_F32: memcpy(dst, p, (size_t)n * 4); break;
    case ST_F64:
        for (int64_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            dst[i] = (float)d;
        }
        break;
    case ST_F16:
    case ST_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = t->dtype == ST_F16 ? st_f16_to_f32(h) : st_bf16_to_f32(h);
        }
        break;
    default:
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "tensor \"%s\": dtype %s is not a floating type", t->name,
                            st_dtype_name(t->dtype));
    }
    return CLXP_OK;
}
