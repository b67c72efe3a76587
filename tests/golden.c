/* Golden reference data for the tests (see golden.h). */
#include "golden.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/fileio.h"

float *golden_read_wav(const char *path, size_t *n_out, int *rate_out) {
    char *buf = NULL;
    size_t len = 0;
    clxp_error err;
    if (clxp_read_file(path, (size_t)1 << 30, &buf, &len, &err) != CLXP_OK) {
        printf("  %s\n", err.msg);
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)buf;
    float *out = NULL;
    int fmt_ok = 0, rate = 0;
    if (len < 12 || memcmp(p, "RIFF", 4) != 0 || memcmp(p + 8, "WAVE", 4) != 0) goto done;
    for (size_t off = 12; off + 8 <= len;) {
        uint32_t sz =
            (uint32_t)p[off + 4] | (uint32_t)p[off + 5] << 8 | (uint32_t)p[off + 6] << 16 | (uint32_t)p[off + 7] << 24;
        const unsigned char *d = p + off + 8;
        if (sz > len - off - 8) break;
        if (memcmp(p + off, "fmt ", 4) == 0 && sz >= 16) {
            int format = d[0] | d[1] << 8, ch = d[2] | d[3] << 8, bits = d[14] | d[15] << 8;
            rate = (int)((uint32_t)d[4] | (uint32_t)d[5] << 8 | (uint32_t)d[6] << 16 | (uint32_t)d[7] << 24);
            fmt_ok = format == 1 && ch == 1 && bits == 16;
        } else if (memcmp(p + off, "data", 4) == 0 && fmt_ok) {
            size_t n = sz / 2;
            out = malloc((n ? n : 1) * sizeof *out);
            for (size_t i = 0; out && i < n; i++) out[i] = (float)(int16_t)(d[2 * i] | d[2 * i + 1] << 8) / 32768.0f;
            *n_out = n;
            *rate_out = rate;
            break;
        }
        off += 8 + sz + (sz & 1);
    }
done:
    free(buf);
    return out;
}

float *golden_f32(const st_file *g, const char *name, int64_t *numel) {
    const st_tensor *t = st_find(g, name);
    if (!t) return NULL;
    float *p = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *p);
    if (p && st_to_f32(t, p, NULL) != CLXP_OK) {
        free(p);
        return NULL;
    }
    if (numel) *numel = t->numel;
    return p;
}

int64_t golden_i64(const st_tensor *t, int64_t i) {
    int64_t v = 0;
    if (t->dtype == ST_I64)
        memcpy(&v, (const char *)t->data + 8 * i, 8);
    else if (t->dtype == ST_BOOL || t->dtype == ST_U8)
        v = ((const uint8_t *)t->data)[i];
    return v;
}

