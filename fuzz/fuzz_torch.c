/* Fuzz target: PyTorch/TorchScript archives (src/io/torchzip.c: libzip from memory, record lookup, the restricted
 * unpickler, storages, strides, dtypes, TorchScript module trees). On success every tensor is checked to lie in
 * its storage and converted to float as the weights loader does, and the module/attribute accessors are walked. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "io/torchzip.h"

static void check_tensor(const st_tensor *t) {
    FUZZ_ASSERT(t && t->name && t->ndim >= 0 && t->ndim <= ST_MAX_DIMS && t->numel >= 0);
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    FUZZ_ASSERT(n == t->numel);
    FUZZ_ASSERT(t->nbytes == (size_t)t->numel * st_dtype_size(t->dtype));
    if (t->numel > 0 && t->numel <= (1 << 20)) { /* floating dtypes convert; others are refused cleanly */
        float *f = malloc((size_t)t->numel * sizeof *f);
        clxp_error err;
        if (f) (void)st_to_f32(t, f, &err);
        free(f);
    }
}

int fuzz_torch(const uint8_t *data, size_t size) {
    torch_file *f = NULL;
    clxp_error err;
    clxp_status st = torch_open_memory(data, size, "fuzz.pt", &f, &err);
    if (st != CLXP_OK) {
        FUZZ_ASSERT(f == NULL && err.code == st && !strchr(err.msg, '\n'));
        return 0;
    }
    FUZZ_ASSERT(f != NULL && torch_kind(f) != NULL);
    for (int i = 0; i < torch_count(f); i++) {
        const st_tensor *t = torch_at(f, i);
        check_tensor(t);
        FUZZ_ASSERT(torch_find(f, t->name) != NULL);
    }
    for (int i = 0; i < torch_const_count(f); i++) check_tensor(torch_const_at(f, i));
    for (int i = 0; i < torch_module_count(f); i++) {
        const char *p = torch_module_path(f, i);
        FUZZ_ASSERT(p && torch_module_class_at(f, i));
        int64_t v;
        double d;
        (void)torch_module_class(f, p);
        (void)torch_attr_int(f, p, &v);
        (void)torch_attr_float(f, p, &d);
        (void)torch_attr_str(f, p);
    }
    for (int i = 0; i < torch_class_count(f); i++) FUZZ_ASSERT(torch_class_at(f, i) != NULL);
    torch_close(f);
    return 0;
}

FUZZ_ENTRY(fuzz_torch)
