/* Fuzz target: the restricted unpickler (src/io/unpickle.c) on raw pickle bytes, as data.pkl / constants.pkl of a
 * PyTorch archive would hold them; byte 0 bit 0 selects pk_options.torchscript. On success the whole value tree is
 * walked (depth bounded, kinds consistent, tensors within their storages) and described. */
#include <string.h>

#include "fuzz.h"
#include "io/unpickle.h"

/* Walk the value graph. Values may be shared and even cyclic (a container put inside itself through the memo):
 * the walk stops at the parser's nesting bound and after a visit budget. The depth the parser records for each
 * value (as built) must respect its bound. */
static void walk(const pk_value *v, int depth, size_t *budget) {
    if (!v || *budget == 0 || depth > PK_MAX_DEPTH + 2) return;
    (*budget)--;
    FUZZ_ASSERT(v->depth >= 0 && v->depth <= PK_MAX_DEPTH + 1);
    char buf[160];
    pk_describe(v, buf, sizeof buf);
    FUZZ_ASSERT(memchr(buf, '\0', sizeof buf) != NULL);
    FUZZ_ASSERT(pk_kind_name(v->kind) != NULL);
    switch (v->kind) {
    case PK_STR:
        FUZZ_ASSERT(v->s && strlen(v->s) == v->len);
        break;
    case PK_TUPLE:
    case PK_LIST:
        for (size_t i = 0; i < v->n; i++) walk(v->items[i], depth + 1, budget);
        break;
    case PK_DICT:
        for (size_t i = 0; i < 2 * v->n; i++) walk(v->items[i], depth + 1, budget);
        break;
    case PK_OBJECT:
        FUZZ_ASSERT(v->cls && v->cls->kind == PK_GLOBAL);
        walk(v->state, depth + 1, budget);
        break;
    case PK_TENSOR: {
        const pk_tensor *t = v->tensor;
        FUZZ_ASSERT(t && t->ndim >= 0 && t->ndim <= ST_MAX_DIMS && t->numel >= 0);
        break;
    }
    default: break;
    }
}

int fuzz_pickle(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const pk_options opt = {"fuzz.pkl", data[0] & 1};
    pk_doc *d = NULL;
    clxp_error err;
    clxp_status st = pk_parse(data + 1, size - 1, &opt, &d, &err);
    if (st != CLXP_OK) {
        FUZZ_ASSERT(d == NULL && err.code == st && !strchr(err.msg, '\n') && strncmp(err.msg, "fuzz.pkl", 8) == 0);
        return 0;
    }
    FUZZ_ASSERT(d != NULL);
    size_t budget = 100000;
    walk(pk_root(d), 0, &budget);
    (void)pk_dict_get(pk_root(d), "state_dict");
    pk_free(d);
    return 0;
}

FUZZ_ENTRY(fuzz_pickle)
