/* Fuzz target: the safetensors reader (length prefix, JSON header, tensor table validation) on a buffer, then
 * what loading the weights of a model does with it: walk every tensor and convert the floating ones to float32. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "io/safetensors.h"

typedef struct {
    size_t begin, end;
} range;

static int cmp_range(const void *a, const void *b) {
    const range *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

int fuzz_safetensors(const uint8_t *data, size_t size) {
    st_file *f = NULL;
    clxp_error err;
    if (st_open_memory(data, size, "fuzz.safetensors", &f, &err) != CLXP_OK) {
        FUZZ_ASSERT(f == NULL && memchr(err.msg, '\0', sizeof err.msg) && !strchr(err.msg, '\n'));
        return 0;
    }
    int n = st_count(f);
    FUZZ_ASSERT(n >= 0 && st_at(f, -1) == NULL && st_at(f, n) == NULL);
    range *r = calloc(n ? (size_t)n : 1, sizeof *r);
    FUZZ_ASSERT(r != NULL);
    int nr = 0;
    volatile uint8_t sink = 0;
    for (int i = 0; i < n; i++) {
        const st_tensor *t = st_at(f, i);
        FUZZ_ASSERT(t && t->name && st_find(f, t->name) == t);
        FUZZ_ASSERT(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS);
        uint64_t numel = 1; /* a product before a zero dimension may exceed INT64_MAX, never UINT64_MAX */
        for (int d = 0; d < t->ndim; d++) {
            FUZZ_ASSERT(t->shape[d] >= 0);
            numel *= (uint64_t)t->shape[d];
        }
        FUZZ_ASSERT(numel == (uint64_t)t->numel && t->nbytes == (size_t)numel * st_dtype_size(t->dtype));
        const uint8_t *p = t->data;
        FUZZ_ASSERT(p >= data + 8 && t->nbytes <= size && p <= data + size - t->nbytes);
        if (t->nbytes) r[nr++] = (range){(size_t)(p - data), (size_t)(p - data) + t->nbytes};
        /* the weights loader converts floating tensors (st_to_f32 reads every byte) */
        float *dst = malloc(numel ? (size_t)numel * sizeof *dst : 1);
        FUZZ_ASSERT(dst != NULL);
        clxp_status st = st_to_f32(t, dst, &err);
        int is_float = t->dtype == ST_F32 || t->dtype == ST_F64 || t->dtype == ST_F16 || t->dtype == ST_BF16;
        FUZZ_ASSERT(is_float ? st == CLXP_OK : st == CLXP_ERR_UNSUPPORTED);
        if (!is_float)
            for (size_t k = 0; k < t->nbytes; k++) sink ^= p[k];
        free(dst);
    }
    /* non-empty tensors never share a byte */
    qsort(r, (size_t)nr, sizeof *r, cmp_range);
    for (int i = 1; i < nr; i++) FUZZ_ASSERT(r[i].begin >= r[i - 1].end);
    free(r);
    const char *fmt = st_metadata(f, "format");
    if (fmt) sink ^= (uint8_t)strlen(fmt);
    (void)st_find(f, "");
    (void)sink;
    st_close(f);
    return 0;
}

FUZZ_ENTRY(fuzz_safetensors)
