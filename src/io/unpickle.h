/* A restricted, bounded unpickler for the pickles inside PyTorch checkpoint archives (data.pkl, constants.pkl).
 *
 * It understands exactly what torch.save (Python's pickler, protocol 2) and the TorchScript C++ pickler write for
 * weights files, as inventoried in shared/golden/openclip-tiny-quickgelu/README.md, and nothing more. Nothing is
 * ever imported, looked up or called: a GLOBAL resolves to one of a fixed set of names, interpreted here.
 *
 * Opcodes (32): PROTO (protocol 2 only), STOP, MARK, NONE, NEWTRUE, NEWFALSE, BININT, BININT1, BININT2, LONG1
 * (up to 8 bytes), BINFLOAT, BINUNICODE, EMPTY_TUPLE, TUPLE, TUPLE1, TUPLE2, TUPLE3, EMPTY_LIST, APPEND, APPENDS,
 * EMPTY_DICT, SETITEM, SETITEMS, BINPUT, LONG_BINPUT, BINGET, LONG_BINGET, GLOBAL, REDUCE, NEWOBJ, BUILD, BINPERSID.
 * Any other opcode: CLXP_ERR_UNSUPPORTED "unsupported pickle opcode 0x8c (SHORT_BINUNICODE) at byte N".
 *
 * GLOBALs and what they mean here (any other: CLXP_ERR_UNSUPPORTED "forbidden GLOBAL os.system at byte N"):
 *   collections.OrderedDict           REDUCE with () -> an empty dict (BUILD on it keeps the state, e.g. _metadata)
 *   torch._utils._rebuild_tensor_v2   REDUCE with (storage, offset, size, stride, requires_grad, hooks[, metadata])
 *                                     -> a tensor (PK_TENSOR); checked against the storage's element count
 *   torch._utils._rebuild_parameter   REDUCE with (tensor, requires_grad, hooks) -> that tensor
 *   torch.{Float,Half,BFloat16,Double,Long,Int,Short,Char,Byte,Bool}Storage
 *                                     only as the dtype tag inside a persistent id
 *   and, only with pk_options.torchscript:
 *   __torch__.* classes               NEWOBJ with () -> an empty object (PK_OBJECT); BUILD gives it its state
 *   torch.jit._pickle.build_{int,double,bool,tensor}list   REDUCE with ([...],) -> that list
 *   torch.jit._pickle.restore_type_tag                      REDUCE with (value, type string) -> that value
 * A persistent id (BINPERSID) must be ('storage', <storage GLOBAL>, key: str, location: str, numel: int) and
 * becomes a PK_STORAGE (the same object for every reference to the same key; a key named twice with another dtype
 * or element count is an error). The caller resolves keys to records.
 *
 * Bounds (CLXP_ERR_LIMIT): PK_MAX_DEPTH nesting of containers/MARKs, PK_MAX_STACK stack entries, PK_MAX_MEMO memo
 * index (also never beyond the number of values made so far), PK_MAX_OBJECTS values allocated (about 120 bytes
 * each), PK_MAX_STRING bytes per string; integers must fit int64. Truncated or inconsistent pickles (stack
 * underflow, missing MARK, unset memo entry, wrong argument types, data after STOP): CLXP_ERR_FORMAT. Every message
 * starts with pk_options.name and gives the byte offset of the opcode.
 *
 * Values are owned by the pk_doc and freed with it (no recursion: cycles built through the memo are harmless).
 */
#ifndef CLXP_IO_UNPICKLE_H
#define CLXP_IO_UNPICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "clxp.h"
#include "io/safetensors.h"

#define PK_MAX_DEPTH 1000
#define PK_MAX_STACK ((size_t)1 << 20)
#define PK_MAX_MEMO ((size_t)1 << 22)
#define PK_MAX_OBJECTS ((size_t)1 << 20)
#define PK_MAX_STRING ((size_t)16 << 20)

typedef enum pk_kind {
    PK_NONE,
    PK_BOOL,
    PK_INT,
    PK_FLOAT,
    PK_STR,
    PK_TUPLE,
    PK_LIST,
    PK_DICT,
    PK_GLOBAL,  /* an allowed GLOBAL (see above) */
    PK_OBJECT,  /* an instance of a __torch__.* class */
    PK_STORAGE, /* a storage named by a persistent id */
    PK_TENSOR   /* a tensor view of a storage */
} pk_kind;

typedef enum pk_global {
    PKG_ORDERED_DICT,
    PKG_REBUILD_TENSOR_V2,
    PKG_REBUILD_PARAMETER,
    PKG_STORAGE_TYPE,
    PKG_BUILD_LIST,
    PKG_RESTORE_TYPE_TAG,
    PKG_TORCH_CLASS
} pk_global;

typedef struct pk_value pk_value;

typedef struct pk_tensor {
    const pk_value *storage; /* PK_STORAGE */
    int64_t offset;          /* in elements */
    int ndim;
    int64_t size[ST_MAX_DIMS];
    int64_t stride[ST_MAX_DIMS]; /* in elements, all >= 0 */
    int64_t numel;               /* product of size (1 for 0-d) */
    int requires_grad;
} pk_tensor;

struct pk_value {
    pk_kind kind;
    int depth;        /* containers/objects: 1 + the deepest value inside (as built); scalars 0 */
    int64_t i;        /* PK_INT; PK_BOOL 0/1 */
    double f;         /* PK_FLOAT */
    char *s;          /* PK_STR: the text (valid UTF-8, no NUL); PK_GLOBAL: "module.name"; PK_STORAGE: the key */
    size_t len;       /* strlen(s) */
    pk_value **items; /* PK_TUPLE/PK_LIST: n items; PK_DICT: n pairs, key items[2k], value items[2k+1] */
    size_t n, cap;
    pk_global global;  /* PK_GLOBAL */
    st_dtype dtype;    /* PK_GLOBAL of a storage type; PK_STORAGE */
    int64_t numel;     /* PK_STORAGE: element count declared by the persistent id */
    char *location;    /* PK_STORAGE: 'cpu', 'cuda:0', ... */
    pk_value *cls;     /* PK_OBJECT: its class (PK_GLOBAL, PKG_TORCH_CLASS) */
    pk_value *state;   /* PK_OBJECT: the BUILD state (NULL if none); PK_DICT: BUILD state (ignored by readers) */
    pk_tensor *tensor; /* PK_TENSOR */
};

typedef struct pk_options {
    const char *name; /* prefix of error messages, e.g. "model.pt: data.pkl" (NULL: "pickle") */
    int torchscript;  /* allow __torch__.* classes and the torch.jit._pickle helpers */
} pk_options;

typedef struct pk_doc pk_doc;

/* Unpickle buf[0..len) (the buffer is not kept). On success *out owns every value. */
clxp_status pk_parse(const void *buf, size_t len, const pk_options *opt, pk_doc **out, clxp_error *err);
const pk_value *pk_root(const pk_doc *d);
void pk_free(pk_doc *d);

/* Value of the string key `key` in a PK_DICT (NULL if absent or not a dict). */
const pk_value *pk_dict_get(const pk_value *dict, const char *key);

/* "dict", "tuple", "object", ... */
const char *pk_kind_name(pk_kind k);

/* A short description for messages: "dict with 3 entries ('epoch', 'optimizer', 'net')", "object
 * __torch__.foo.Bar", "tensor F32 [2, 3]", "list of 2 items", "int 7". Always NUL-terminates buf. */
void pk_describe(const pk_value *v, char *buf, size_t size);

#endif
