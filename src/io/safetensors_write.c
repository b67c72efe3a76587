#include "io/safetensors_write.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/utf8.h"

/* The reader refuses headers above 100 MB; never write a file it cannot open. */
#define ST_WRITE_MAX_HEADER ((size_t)100 << 20)

/* A growable string; after an allocation failure every append is a no-op and oom stays set. */
typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} strbuf;

static void sb_append(strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(strbuf *b, const char *s) { sb_append(b, s, strlen(s)); }

static void sb_u64(strbuf *b, uint64_t v) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    sb_append(b, tmp, (size_t)n);
}

/* A JSON string literal: quotes, backslashes and control characters escaped, other bytes as they are. */
static void sb_json_string(strbuf *b, const char *s) {
    sb_append(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            char esc[2] = {'\\', (char)*c};
            sb_append(b, esc, 2);
        } else if (*c < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", (unsigned)*c);
            sb_append(b, esc, 6);
        } else {
            sb_append(b, (const char *)c, 1);
        }
    }
    sb_append(b, "\"", 1);
}

/* A tensor with its byte size, sorted by name. */
typedef struct {
    const st_write_tensor *t;
    uint64_t bytes;
} entry;

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const entry *)a)->t->name, ((const entry *)b)->t->name);
}

static int cmp_meta_ptr(const void *a, const void *b) {
    return strcmp((*(const st_write_meta *const *)a)->key, (*(const st_write_meta *const *)b)->key);
}

static int valid_utf8(const char *s) {
    size_t bad;
    return clxp_utf8_valid(s, strlen(s), &bad);
}

/* Byte size of one tensor, or an error for an invalid description. */
static clxp_status tensor_bytes(const char *path, const st_write_tensor *t, uint64_t *out, clxp_error *err) {
    if (!t->name || !t->name[0] || !valid_utf8(t->name) || strcmp(t->name, "__metadata__") == 0)
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: tensor name \"%s\" is empty, not UTF-8 or reserved", path,
                            t->name ? t->name : "(null)");
    size_t es = st_dtype_size(t->dtype);
    if (es == 0)
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: tensor \"%s\": unknown dtype %d", path, t->name,
                            (int)t->dtype);
    if (t->ndim < 0 || t->ndim > ST_MAX_DIMS || (t->ndim > 0 && !t->shape))
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: tensor \"%s\": %d dimensions (0 to %d supported)", path,
                            t->name, t->ndim, ST_MAX_DIMS);
    uint64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0)
            return clxp_err_set(err, CLXP_ERR_INVALID, "%s: tensor \"%s\": negative shape[%d]", path, t->name, d);
        uint64_t v = (uint64_t)t->shape[d];
        if (v != 0 && numel > (UINT64_MAX / es) / v)
            return clxp_err_set(err, CLXP_ERR_INVALID, "%s: tensor \"%s\": size overflows", path, t->name);
        numel *= v;
    }
    *out = numel * es;
    if (*out > 0 && !t->data)
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: tensor \"%s\": no data", path, t->name);
    return CLXP_OK;
}

/* The padded header for tensors in sorted order (offsets assigned contiguously) and sorted metadata. */
static clxp_status build_header(const char *path, const entry *ts, int n, const st_write_meta *const *ms, int n_meta,
                                strbuf *b, clxp_error *err) {
    sb_append(b, "{", 1);
    int first = 1;
    if (n_meta > 0) {
        sb_puts(b, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_append(b, ",", 1);
            sb_json_string(b, ms[i]->key);
            sb_append(b, ":", 1);
            sb_json_string(b, ms[i]->value);
        }
        sb_append(b, "}", 1);
        first = 0;
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const st_write_tensor *t = ts[i].t;
        if (!first) sb_append(b, ",", 1);
        first = 0;
        sb_json_string(b, t->name);
        sb_puts(b, ":{\"dtype\":");
        sb_json_string(b, st_dtype_name(t->dtype));
        sb_puts(b, ",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) sb_append(b, ",", 1);
            sb_u64(b, (uint64_t)t->shape[d]);
        }
        sb_puts(b, "],\"data_offsets\":[");
        sb_u64(b, off);
        sb_append(b, ",", 1);
        sb_u64(b, off + ts[i].bytes);
        sb_puts(b, "]}");
        off += ts[i].bytes;
    }
    sb_append(b, "}", 1);
    while (!b->oom && (8 + b->len) % 8 != 0) sb_append(b, " ", 1);
    if (b->oom) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory building the header", path);
    if (b->len > ST_WRITE_MAX_HEADER)
        return clxp_err_set(err, CLXP_ERR_LIMIT, "%s: header of %zu bytes exceeds the %zu-byte limit", path, b->len,
                            ST_WRITE_MAX_HEADER);
    return CLXP_OK;
}

static int write_all(int fd, const void *buf, uint64_t n) {
    const char *p = buf;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : (size_t)n;
        ssize_t w = write(fd, p, chunk);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (w == 0) errno = EIO;
            return -1;
        }
        p += w;
        n -= (uint64_t)w;
    }
    return 0;
}

/* Write header and data to a temporary file next to path, then rename it over path. */
static clxp_status write_file(const char *path, const strbuf *hdr, const entry *ts, int n, clxp_error *err) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        clxp_status st = clxp_err_set(err, CLXP_ERR_IO, "%s: cannot create a temporary file: %s", path,
                                      strerror(errno));
        free(tmp);
        return st;
    }
    unsigned char len8[8];
    uint64_t hlen = hdr->len;
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hlen >> (8 * i));
    int bad = fchmod(fd, 0644) != 0 || write_all(fd, len8, 8) != 0 || write_all(fd, hdr->p, hdr->len) != 0;
    for (int i = 0; i < n && !bad; i++)
        if (ts[i].bytes > 0) bad = write_all(fd, ts[i].t->data, ts[i].bytes) != 0;
    if (!bad) bad = fsync(fd) != 0;
    int saved = errno;
    if (close(fd) != 0 && !bad) {
        bad = 1;
        saved = errno;
    }
    if (!bad && rename(tmp, path) != 0) {
        bad = 1;
        saved = errno;
    }
    clxp_status st = CLXP_OK;
    if (bad) {
        unlink(tmp);
        st = clxp_err_set(err, CLXP_ERR_IO, "%s: write failed: %s", path, strerror(saved));
    }
    free(tmp);
    return st;
}

clxp_status st_write(const char *path, const st_write_tensor *tensors, int n, const st_write_meta *meta, int n_meta,
                     clxp_error *err) {
    if (n < 0 || n_meta < 0 || (n > 0 && !tensors) || (n_meta > 0 && !meta))
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: invalid tensor or metadata list", path);
    entry *ts = malloc((n ? (size_t)n : 1) * sizeof *ts);
    const st_write_meta **ms = malloc((n_meta ? (size_t)n_meta : 1) * sizeof *ms);
    strbuf hdr = {0};
    clxp_status st = CLXP_OK;
    if (!ts || !ms) {
        st = clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < n_meta && st == CLXP_OK; i++) {
        ms[i] = &meta[i];
        if (!meta[i].key || !meta[i].value || !valid_utf8(meta[i].key) || !valid_utf8(meta[i].value))
            st = clxp_err_set(err, CLXP_ERR_INVALID, "%s: metadata entry %d is missing or not UTF-8", path, i);
    }
    if (st != CLXP_OK) goto done;
    qsort(ms, (size_t)n_meta, sizeof *ms, cmp_meta_ptr);
    for (int i = 1; i < n_meta && st == CLXP_OK; i++)
        if (strcmp(ms[i]->key, ms[i - 1]->key) == 0)
            st = clxp_err_set(err, CLXP_ERR_INVALID, "%s: duplicate metadata key \"%s\"", path, ms[i]->key);
    uint64_t total = 0;
    for (int i = 0; i < n && st == CLXP_OK; i++) {
        ts[i].t = &tensors[i];
        st = tensor_bytes(path, &tensors[i], &ts[i].bytes, err);
        if (st == CLXP_OK && ts[i].bytes > UINT64_MAX - total)
            st = clxp_err_set(err, CLXP_ERR_INVALID, "%s: total data size overflows", path);
        if (st == CLXP_OK) total += ts[i].bytes;
    }
    if (st == CLXP_OK && total > ((uint64_t)1 << 53)) /* the reader's offsets are exact doubles */
        st = clxp_err_set(err, CLXP_ERR_LIMIT, "%s: %" PRIu64 " bytes of data exceed 2^53", path, total);
    if (st != CLXP_OK) goto done;
    qsort(ts, (size_t)n, sizeof *ts, cmp_entry);
    for (int i = 1; i < n && st == CLXP_OK; i++)
        if (strcmp(ts[i].t->name, ts[i - 1].t->name) == 0)
            st = clxp_err_set(err, CLXP_ERR_INVALID, "%s: duplicate tensor name \"%s\"", path, ts[i].t->name);
    if (st == CLXP_OK) st = build_header(path, ts, n, ms, n_meta, &hdr, err);
    if (st == CLXP_OK) st = write_file(path, &hdr, ts, n, err);
done:
    free(hdr.p);
    free(ms);
    free(ts);
    return st;
}
