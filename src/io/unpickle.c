#include "io/unpickle.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/utf8.h"

/* Longest GLOBAL module or name line accepted (real ones are < 100 bytes). */
#define PK_MAX_GLOBAL_LINE 256
/* Longest storage key accepted (torch writes decimal numbers). */
#define PK_MAX_KEY 64

struct pk_doc {
    pk_value **all; /* every value allocated, freed by pk_free */
    size_t n_all, cap_all;
    pk_value *root;
};

typedef struct parser {
    const uint8_t *buf;
    size_t len, pos;
    size_t op_pos; /* byte offset of the opcode being executed (for messages) */
    const pk_options *opt;
    const char *name;
    clxp_error *err;
    clxp_status status;
    pk_doc *doc;
    pk_value **stack;
    size_t sp, stack_cap;
    size_t *marks; /* stack heights at each open MARK */
    size_t n_marks;
    pk_value **memo;
    size_t memo_cap;
    pk_value **storages; /* open-addressing hash table of PK_STORAGE values by key */
    size_t storages_cap, n_storages;
} parser;

/* ---- opcode names (every opcode of pickle protocols 0-5, for messages) --------------------------------------- */

static const struct {
    uint8_t code;
    const char *name;
} op_names[] = {
    {'(', "MARK"},          {'.', "STOP"},          {'0', "POP"},            {'1', "POP_MARK"},
    {'2', "DUP"},           {'F', "FLOAT"},         {'I', "INT"},            {'J', "BININT"},
    {'K', "BININT1"},       {'L', "LONG"},          {'M', "BININT2"},        {'N', "NONE"},
    {'P', "PERSID"},        {'Q', "BINPERSID"},     {'R', "REDUCE"},         {'S', "STRING"},
    {'T', "BINSTRING"},     {'U', "SHORT_BINSTRING"}, {'V', "UNICODE"},        {'X', "BINUNICODE"},
    {'a', "APPEND"},        {'b', "BUILD"},         {'c', "GLOBAL"},         {'d', "DICT"},
    {'}', "EMPTY_DICT"},    {'e', "APPENDS"},       {'g', "GET"},            {'h', "BINGET"},
    {'i', "INST"},          {'j', "LONG_BINGET"},   {'l', "LIST"},           {']', "EMPTY_LIST"},
    {'o', "OBJ"},           {'p', "PUT"},           {'q', "BINPUT"},         {'r', "LONG_BINPUT"},
    {'s', "SETITEM"},       {'t', "TUPLE"},         {')', "EMPTY_TUPLE"},    {'u', "SETITEMS"},
    {'G', "BINFLOAT"},      {0x80, "PROTO"},        {0x81, "NEWOBJ"},        {0x82, "EXT1"},
    {0x83, "EXT2"},         {0x84, "EXT4"},         {0x85, "TUPLE1"},        {0x86, "TUPLE2"},
    {0x87, "TUPLE3"},       {0x88, "NEWTRUE"},      {0x89, "NEWFALSE"},      {0x8a, "LONG1"},
    {0x8b, "LONG4"},        {'B', "BINBYTES"},      {'C', "SHORT_BINBYTES"}, {0x8c, "SHORT_BINUNICODE"},
    {0x8d, "BINUNICODE8"},  {0x8e, "BINBYTES8"},    {0x8f, "EMPTY_SET"},     {0x90, "ADDITEMS"},
    {0x91, "FROZENSET"},    {0x92, "NEWOBJ_EX"},    {0x93, "STACK_GLOBAL"},  {0x94, "MEMOIZE"},
    {0x95, "FRAME"},        {0x96, "BYTEARRAY8"},   {0x97, "NEXT_BUFFER"},   {0x98, "READONLY_BUFFER"},
};

static const char *op_name(uint8_t code) {
    for (size_t i = 0; i < sizeof op_names / sizeof op_names[0]; i++)
        if (op_names[i].code == code) return op_names[i].name;
    return "not a pickle opcode";
}

/* ---- errors ----------------------------------------------------------------------------------------------------- */

static clxp_status fail(parser *p, clxp_status code, const char *fmt, ...) CLXP_PRINTF(3, 4);

static clxp_status fail(parser *p, clxp_status code, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->status = code;
    return clxp_err_set(p->err, code, "%s: %s at byte %zu", p->name, msg, p->op_pos);
}

/* ---- values ----------------------------------------------------------------------------------------------------- */

const char *pk_kind_name(pk_kind k) {
    switch (k) {
    case PK_NONE: return "None";
    case PK_BOOL: return "bool";
    case PK_INT: return "int";
    case PK_FLOAT: return "float";
    case PK_STR: return "str";
    case PK_TUPLE: return "tuple";
    case PK_LIST: return "list";
    case PK_DICT: return "dict";
    case PK_GLOBAL: return "global";
    case PK_OBJECT: return "object";
    case PK_STORAGE: return "storage";
    case PK_TENSOR: return "tensor";
    }
    return "?";
}

static pk_value *new_value(parser *p, pk_kind kind) {
    pk_doc *d = p->doc;
    if (d->n_all >= PK_MAX_OBJECTS) {
        fail(p, CLXP_ERR_LIMIT, "more than %zu pickle values", PK_MAX_OBJECTS);
        return NULL;
    }
    if (d->n_all == d->cap_all) {
        size_t cap = d->cap_all ? d->cap_all * 2 : 256;
        pk_value **all = realloc(d->all, cap * sizeof *all);
        if (!all) {
            fail(p, CLXP_ERR_NOMEM, "out of memory");
            return NULL;
        }
        d->all = all;
        d->cap_all = cap;
    }
    pk_value *v = calloc(1, sizeof *v);
    if (!v) {
        fail(p, CLXP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    v->kind = kind;
    d->all[d->n_all++] = v;
    return v;
}

/* Records that container now holds child (depth bookkeeping); fails past PK_MAX_DEPTH. */
static int note_child(parser *p, pk_value *container, const pk_value *child) {
    if (child->depth + 1 > container->depth) {
        container->depth = child->depth + 1;
        if (container->depth > PK_MAX_DEPTH) {
            fail(p, CLXP_ERR_LIMIT, "values nested deeper than %d levels", PK_MAX_DEPTH);
            return 0;
        }
    }
    return 1;
}

/* Makes room for `more` further slots in container->items (cap counts slots). */
static int reserve(parser *p, pk_value *container, size_t used, size_t more) {
    if (used + more <= container->cap) return 1;
    size_t cap = container->cap ? container->cap : 4;
    while (cap < used + more) cap *= 2;
    pk_value **items = realloc(container->items, cap * sizeof *items);
    if (!items) {
        fail(p, CLXP_ERR_NOMEM, "out of memory");
        return 0;
    }
    container->items = items;
    container->cap = cap;
    return 1;
}

/* Appends v to a tuple or list. */
static int add_item(parser *p, pk_value *container, pk_value *v) {
    if (!reserve(p, container, container->n, 1)) return 0;
    container->items[container->n++] = v;
    return note_child(p, container, v);
}

/* Adds the pair key: v to a dict (n counts pairs). */
static int add_pair(parser *p, pk_value *dict, pk_value *key, pk_value *v) {
    if (!reserve(p, dict, 2 * dict->n, 2)) return 0;
    dict->items[2 * dict->n] = key;
    dict->items[2 * dict->n + 1] = v;
    dict->n++;
    return note_child(p, dict, key) && note_child(p, dict, v);
}

static void free_value(pk_value *v) {
    free(v->s);
    free(v->items);
    free(v->location);
    free(v->tensor);
    free(v);
}

void pk_free(pk_doc *d) {
    if (!d) return;
    for (size_t i = 0; i < d->n_all; i++) free_value(d->all[i]);
    free(d->all);
    free(d);
}

const pk_value *pk_root(const pk_doc *d) {
    return d ? d->root : NULL;
}

const pk_value *pk_dict_get(const pk_value *dict, const char *key) {
    if (!dict || dict->kind != PK_DICT) return NULL;
    for (size_t k = dict->n; k-- > 0;) { /* the last assignment wins, as in Python */
        const pk_value *kv = dict->items[2 * k];
        if (kv->kind == PK_STR && strcmp(kv->s, key) == 0) return dict->items[2 * k + 1];
    }
    return NULL;
}

void pk_describe(const pk_value *v, char *buf, size_t size) {
    if (!size) return;
    buf[0] = '\0';
    if (!v) {
        snprintf(buf, size, "nothing");
        return;
    }
    switch (v->kind) {
    case PK_NONE: snprintf(buf, size, "None"); break;
    case PK_BOOL: snprintf(buf, size, "bool %s", v->i ? "True" : "False"); break;
    case PK_INT: snprintf(buf, size, "int %" PRId64, v->i); break;
    case PK_FLOAT: snprintf(buf, size, "float %g", v->f); break;
    case PK_STR: snprintf(buf, size, "str '%.60s%s'", v->s, v->len > 60 ? "..." : ""); break;
    case PK_TUPLE:
    case PK_LIST: snprintf(buf, size, "%s of %zu items", pk_kind_name(v->kind), v->n); break;
    case PK_DICT: {
        int w = snprintf(buf, size, "dict with %zu entries", v->n);
        for (size_t k = 0; k < v->n && k < 6 && w > 0 && (size_t)w < size; k++) {
            const pk_value *key = v->items[2 * k];
            const char *sep = k == 0 ? " (" : ", ";
            if (key->kind == PK_STR)
                w += snprintf(buf + w, size - (size_t)w, "%s'%.40s'", sep, key->s);
            else
                w += snprintf(buf + w, size - (size_t)w, "%s<%s>", sep, pk_kind_name(key->kind));
        }
        if (v->n > 0 && w > 0 && (size_t)w < size) snprintf(buf + w, size - (size_t)w, "%s)", v->n > 6 ? ", ..." : "");
        break;
    }
    case PK_GLOBAL: snprintf(buf, size, "global %s", v->s); break;
    case PK_OBJECT: snprintf(buf, size, "object %s", v->cls ? v->cls->s : "?"); break;
    case PK_STORAGE: snprintf(buf, size, "storage '%s'", v->s); break;
    case PK_TENSOR: {
        const pk_tensor *t = v->tensor;
        int w = snprintf(buf, size, "tensor %s [", st_dtype_name(t->storage->dtype));
        for (int k = 0; k < t->ndim && w > 0 && (size_t)w < size; k++)
            w += snprintf(buf + w, size - (size_t)w, "%s%" PRId64, k ? ", " : "", t->size[k]);
        if (w > 0 && (size_t)w < size) snprintf(buf + w, size - (size_t)w, "]");
        break;
    }
    }
}

/* ---- stack, marks, memo ----------------------------------------------------------------------------------------- */

static size_t floor_sp(const parser *p) {
    return p->n_marks ? p->marks[p->n_marks - 1] : 0;
}

static int push(parser *p, pk_value *v) {
    if (p->sp == p->stack_cap) {
        if (p->stack_cap >= PK_MAX_STACK) {
            fail(p, CLXP_ERR_LIMIT, "pickle stack deeper than %zu entries", PK_MAX_STACK);
            return 0;
        }
        size_t cap = p->stack_cap ? p->stack_cap * 2 : 64;
        pk_value **s = realloc(p->stack, cap * sizeof *s);
        if (!s) {
            fail(p, CLXP_ERR_NOMEM, "out of memory");
            return 0;
        }
        p->stack = s;
        p->stack_cap = cap;
    }
    p->stack[p->sp++] = v;
    return 1;
}

/* Pops the top value; never below the innermost MARK. */
static pk_value *pop(parser *p) {
    if (p->sp <= floor_sp(p)) {
        fail(p, CLXP_ERR_FORMAT, "pickle stack underflow (%s)", op_name(p->buf[p->op_pos]));
        return NULL;
    }
    return p->stack[--p->sp];
}

static pk_value *top(parser *p) {
    if (p->sp <= floor_sp(p)) {
        fail(p, CLXP_ERR_FORMAT, "pickle stack underflow (%s)", op_name(p->buf[p->op_pos]));
        return NULL;
    }
    return p->stack[p->sp - 1];
}

static int push_mark(parser *p) {
    if (p->n_marks >= PK_MAX_DEPTH) {
        fail(p, CLXP_ERR_LIMIT, "values nested deeper than %d levels (MARK)", PK_MAX_DEPTH);
        return 0;
    }
    p->marks[p->n_marks++] = p->sp;
    return 1;
}

/* Closes the innermost MARK; returns the stack height it recorded, or (size_t)-1 on error. */
static size_t pop_mark(parser *p) {
    if (p->n_marks == 0) {
        fail(p, CLXP_ERR_FORMAT, "%s without MARK", op_name(p->buf[p->op_pos]));
        return (size_t)-1;
    }
    return p->marks[--p->n_marks];
}

static int memo_put(parser *p, uint64_t idx) {
    pk_value *v = top(p);
    if (!v) return 0;
    if (idx >= PK_MAX_MEMO) {
        fail(p, CLXP_ERR_LIMIT, "memo index %" PRIu64 " beyond the limit of %zu", idx, PK_MAX_MEMO);
        return 0;
    }
    if (idx > p->doc->n_all) { /* picklers number memo entries 0, 1, 2, ...: never more than the values made */
        fail(p, CLXP_ERR_FORMAT, "memo index %" PRIu64 " out of sequence (%zu values so far)", idx, p->doc->n_all);
        return 0;
    }
    if (idx >= p->memo_cap) {
        size_t cap = p->memo_cap ? p->memo_cap : 256;
        while (cap <= idx) cap *= 2;
        pk_value **m = realloc(p->memo, cap * sizeof *m);
        if (!m) {
            fail(p, CLXP_ERR_NOMEM, "out of memory");
            return 0;
        }
        memset(m + p->memo_cap, 0, (cap - p->memo_cap) * sizeof *m);
        p->memo = m;
        p->memo_cap = cap;
    }
    p->memo[idx] = v;
    return 1;
}

static int memo_get(parser *p, uint64_t idx) {
    if (idx >= p->memo_cap || !p->memo[idx]) {
        fail(p, CLXP_ERR_FORMAT, "memo entry %" PRIu64 " is not set", idx);
        return 0;
    }
    return push(p, p->memo[idx]);
}

/* ---- reading ---------------------------------------------------------------------------------------------------- */

static int need(parser *p, size_t n) {
    if (p->len - p->pos < n) {
        fail(p, CLXP_ERR_FORMAT, "truncated pickle (%s needs %zu bytes, %zu left)", op_name(p->buf[p->op_pos]), n,
             p->len - p->pos);
        return 0;
    }
    return 1;
}

static uint64_t read_le(parser *p, int n) {
    uint64_t v = 0;
    for (int k = 0; k < n; k++) v |= (uint64_t)p->buf[p->pos + (size_t)k] << (8 * k);
    p->pos += (size_t)n;
    return v;
}

static int push_new(parser *p, pk_kind kind) {
    pk_value *v = new_value(p, kind);
    return v && push(p, v);
}

static int push_int(parser *p, int64_t i) {
    pk_value *v = new_value(p, PK_INT);
    if (!v) return 0;
    v->i = i;
    return push(p, v);
}

/* A GLOBAL line: [A-Za-z0-9_.]+ terminated by '\n'; copied into out (PK_MAX_GLOBAL_LINE + 1 bytes). */
static int read_line(parser *p, char *out) {
    size_t k = 0;
    for (;;) {
        if (p->pos >= p->len) {
            fail(p, CLXP_ERR_FORMAT, "truncated GLOBAL");
            return 0;
        }
        uint8_t c = p->buf[p->pos++];
        if (c == '\n') break;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
        if (!ok) {
            fail(p, CLXP_ERR_FORMAT, "malformed GLOBAL (byte 0x%02x in a name)", c);
            return 0;
        }
        if (k >= PK_MAX_GLOBAL_LINE) {
            fail(p, CLXP_ERR_LIMIT, "GLOBAL name longer than %d bytes", PK_MAX_GLOBAL_LINE);
            return 0;
        }
        out[k++] = (char)c;
    }
    if (k == 0) {
        fail(p, CLXP_ERR_FORMAT, "malformed GLOBAL (empty name)");
        return 0;
    }
    out[k] = '\0';
    return 1;
}

static const struct {
    const char *name;
    st_dtype dtype;
} storage_types[] = {
    {"FloatStorage", ST_F32}, {"HalfStorage", ST_F16},  {"BFloat16Storage", ST_BF16}, {"DoubleStorage", ST_F64},
    {"LongStorage", ST_I64},  {"IntStorage", ST_I32},   {"ShortStorage", ST_I16},     {"CharStorage", ST_I8},
    {"ByteStorage", ST_U8},   {"BoolStorage", ST_BOOL},
};

static int op_global(parser *p) {
    char mod[PK_MAX_GLOBAL_LINE + 1], name[PK_MAX_GLOBAL_LINE + 1];
    if (!read_line(p, mod) || !read_line(p, name)) return 0;
    pk_global g;
    st_dtype dtype = ST_F32;
    int found = 1;
    int ts = p->opt && p->opt->torchscript;
    if (strcmp(mod, "collections") == 0 && strcmp(name, "OrderedDict") == 0) {
        g = PKG_ORDERED_DICT;
    } else if (strcmp(mod, "torch._utils") == 0 && strcmp(name, "_rebuild_tensor_v2") == 0) {
        g = PKG_REBUILD_TENSOR_V2;
    } else if (strcmp(mod, "torch._utils") == 0 && strcmp(name, "_rebuild_parameter") == 0) {
        g = PKG_REBUILD_PARAMETER;
    } else if (strcmp(mod, "torch") == 0 && strstr(name, "Storage")) {
        found = 0;
        for (size_t k = 0; k < sizeof storage_types / sizeof storage_types[0]; k++)
            if (strcmp(name, storage_types[k].name) == 0) {
                dtype = storage_types[k].dtype;
                found = 1;
            }
        if (!found) {
            fail(p, CLXP_ERR_UNSUPPORTED, "unsupported storage type GLOBAL torch.%s", name);
            return 0;
        }
        g = PKG_STORAGE_TYPE;
    } else if (ts && strcmp(mod, "torch.jit._pickle") == 0 &&
               (strcmp(name, "build_intlist") == 0 || strcmp(name, "build_doublelist") == 0 ||
                strcmp(name, "build_boollist") == 0 || strcmp(name, "build_tensorlist") == 0)) {
        g = PKG_BUILD_LIST;
    } else if (ts && strcmp(mod, "torch.jit._pickle") == 0 && strcmp(name, "restore_type_tag") == 0) {
        g = PKG_RESTORE_TYPE_TAG;
    } else if (ts && (strcmp(mod, "__torch__") == 0 || strncmp(mod, "__torch__.", 10) == 0)) {
        g = PKG_TORCH_CLASS;
    } else {
        int torch_class = strcmp(mod, "__torch__") == 0 || strncmp(mod, "__torch__.", 10) == 0;
        fail(p, CLXP_ERR_UNSUPPORTED, "forbidden GLOBAL %s.%s%s", mod, name,
             torch_class ? " (TorchScript classes occur only in TorchScript archives)" : "");
        return 0;
    }
    pk_value *v = new_value(p, PK_GLOBAL);
    if (!v) return 0;
    size_t n = strlen(mod) + 1 + strlen(name);
    v->s = malloc(n + 1);
    if (!v->s) {
        fail(p, CLXP_ERR_NOMEM, "out of memory");
        return 0;
    }
    snprintf(v->s, n + 1, "%s.%s", mod, name);
    v->len = n;
    v->global = g;
    v->dtype = dtype;
    return push(p, v);
}

static int op_binunicode(parser *p) {
    if (!need(p, 4)) return 0;
    uint64_t n = read_le(p, 4);
    if (n > PK_MAX_STRING) {
        fail(p, CLXP_ERR_LIMIT, "string of %" PRIu64 " bytes (limit %zu)", n, PK_MAX_STRING);
        return 0;
    }
    if (!need(p, (size_t)n)) return 0;
    const char *s = (const char *)p->buf + p->pos;
    size_t bad = 0;
    if (memchr(s, '\0', (size_t)n)) {
        fail(p, CLXP_ERR_FORMAT, "string containing a NUL byte");
        return 0;
    }
    if (!clxp_utf8_valid(s, (size_t)n, &bad)) {
        fail(p, CLXP_ERR_FORMAT, "string with invalid UTF-8 at its byte %zu", bad);
        return 0;
    }
    pk_value *v = new_value(p, PK_STR);
    if (!v) return 0;
    v->s = malloc((size_t)n + 1);
    if (!v->s) {
        fail(p, CLXP_ERR_NOMEM, "out of memory");
        return 0;
    }
    memcpy(v->s, s, (size_t)n);
    v->s[n] = '\0';
    v->len = (size_t)n;
    p->pos += (size_t)n;
    return push(p, v);
}

/* Pops the top n values into a new tuple. */
static int make_tuple(parser *p, size_t n) {
    if (p->sp - floor_sp(p) < n) {
        fail(p, CLXP_ERR_FORMAT, "pickle stack underflow (%s)", op_name(p->buf[p->op_pos]));
        return 0;
    }
    pk_value *t = new_value(p, PK_TUPLE);
    if (!t) return 0;
    for (size_t k = p->sp - n; k < p->sp; k++)
        if (!add_item(p, t, p->stack[k])) return 0;
    p->sp -= n;
    return push(p, t);
}

static int op_tuple_mark(parser *p) {
    size_t k = pop_mark(p);
    if (k == (size_t)-1) return 0;
    pk_value *t = new_value(p, PK_TUPLE);
    if (!t) return 0;
    for (size_t i = k; i < p->sp; i++)
        if (!add_item(p, t, p->stack[i])) return 0;
    p->sp = k;
    return push(p, t);
}

/* APPENDS / SETITEMS: the items above the innermost MARK go into the container just below it. */
static int op_fill_mark(parser *p, pk_kind want) {
    size_t k = pop_mark(p);
    if (k == (size_t)-1) return 0;
    if (k == 0 || k - 1 < floor_sp(p) || p->stack[k - 1]->kind != want) {
        fail(p, CLXP_ERR_FORMAT, "%s without a %s below its MARK", op_name(p->buf[p->op_pos]), pk_kind_name(want));
        return 0;
    }
    pk_value *c = p->stack[k - 1];
    if (want == PK_DICT && (p->sp - k) % 2 != 0) {
        fail(p, CLXP_ERR_FORMAT, "SETITEMS with an odd number of values");
        return 0;
    }
    if (want == PK_DICT) {
        for (size_t i = k; i < p->sp; i += 2)
            if (!add_pair(p, c, p->stack[i], p->stack[i + 1])) return 0;
    } else {
        for (size_t i = k; i < p->sp; i++)
            if (!add_item(p, c, p->stack[i])) return 0;
    }
    p->sp = k;
    return 1;
}

static int op_append(parser *p) {
    pk_value *v = pop(p);
    pk_value *list = v ? top(p) : NULL;
    if (!list) return 0;
    if (list->kind != PK_LIST) {
        fail(p, CLXP_ERR_FORMAT, "APPEND to a %s", pk_kind_name(list->kind));
        return 0;
    }
    return add_item(p, list, v);
}

static int op_setitem(parser *p) {
    pk_value *v = pop(p);
    pk_value *key = v ? pop(p) : NULL;
    pk_value *dict = key ? top(p) : NULL;
    if (!dict) return 0;
    if (dict->kind != PK_DICT) {
        fail(p, CLXP_ERR_FORMAT, "SETITEM on a %s", pk_kind_name(dict->kind));
        return 0;
    }
    return add_pair(p, dict, key, v);
}

/* ---- storages (persistent ids) ---------------------------------------------------------------------------------- */

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* Slot of key in the storage table (empty slot if absent). The table is kept at most half full. */
static size_t storage_slot(const parser *p, const char *key) {
    size_t mask = p->storages_cap - 1;
    size_t i = (size_t)hash_str(key) & mask;
    while (p->storages[i] && strcmp(p->storages[i]->s, key) != 0) i = (i + 1) & mask;
    return i;
}

static int storage_insert(parser *p, pk_value *st) {
    if (2 * (p->n_storages + 1) > p->storages_cap) {
        size_t cap = p->storages_cap ? p->storages_cap * 2 : 64;
        pk_value **old = p->storages;
        size_t old_cap = p->storages_cap;
        p->storages = calloc(cap, sizeof *p->storages);
        if (!p->storages) {
            p->storages = old;
            fail(p, CLXP_ERR_NOMEM, "out of memory");
            return 0;
        }
        p->storages_cap = cap;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i]) p->storages[storage_slot(p, old[i]->s)] = old[i];
        free(old);
    }
    p->storages[storage_slot(p, st->s)] = st;
    p->n_storages++;
    return 1;
}

static int valid_key(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > PK_MAX_KEY) return 0;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return 0;
    }
    return 1;
}

static int op_binpersid(parser *p) {
    pk_value *pid = pop(p);
    if (!pid) return 0;
    if (pid->kind != PK_TUPLE || pid->n < 1 || pid->items[0]->kind != PK_STR) {
        char d[200];
        pk_describe(pid, d, sizeof d);
        fail(p, CLXP_ERR_FORMAT, "persistent id is a %s, expected ('storage', type, key, location, numel)", d);
        return 0;
    }
    if (strcmp(pid->items[0]->s, "storage") != 0) {
        fail(p, CLXP_ERR_UNSUPPORTED, "persistent id of kind '%.60s' (only 'storage' is supported)", pid->items[0]->s);
        return 0;
    }
    if (pid->n != 5) {
        fail(p, CLXP_ERR_FORMAT, "storage persistent id with %zu elements (expected 5)", pid->n);
        return 0;
    }
    const pk_value *type = pid->items[1], *key = pid->items[2], *loc = pid->items[3], *numel = pid->items[4];
    if (type->kind != PK_GLOBAL || type->global != PKG_STORAGE_TYPE) {
        fail(p, CLXP_ERR_FORMAT, "persistent id: element 1 is a %s, expected a storage type", pk_kind_name(type->kind));
        return 0;
    }
    if (key->kind != PK_STR || !valid_key(key->s)) {
        fail(p, CLXP_ERR_FORMAT, "persistent id: invalid storage key (expected a short string of [A-Za-z0-9_])");
        return 0;
    }
    if (loc->kind != PK_STR) {
        fail(p, CLXP_ERR_FORMAT, "persistent id: location is a %s, expected a str", pk_kind_name(loc->kind));
        return 0;
    }
    if (numel->kind != PK_INT || numel->i < 0) {
        fail(p, CLXP_ERR_FORMAT, "persistent id: storage '%s' has an invalid element count", key->s);
        return 0;
    }
    if (p->storages_cap) {
        pk_value *old = p->storages[storage_slot(p, key->s)];
        if (old) {
            if (old->dtype != type->dtype || old->numel != numel->i) {
                fail(p, CLXP_ERR_UNSUPPORTED,
                     "storage '%s' referenced as %s x %" PRId64 " and as %s x %" PRId64 " (views of one storage with "
                     "different types are not supported)",
                     key->s, st_dtype_name(old->dtype), old->numel, st_dtype_name(type->dtype), numel->i);
                return 0;
            }
            return push(p, old);
        }
    }
    pk_value *st = new_value(p, PK_STORAGE);
    if (!st) return 0;
    st->s = strdup(key->s);
    st->location = strdup(loc->s);
    if (!st->s || !st->location) {
        fail(p, CLXP_ERR_NOMEM, "out of memory");
        return 0;
    }
    st->len = key->len;
    st->dtype = type->dtype;
    st->numel = numel->i;
    return storage_insert(p, st) && push(p, st);
}

/* ---- REDUCE, NEWOBJ, BUILD -------------------------------------------------------------------------------------- */

/* Reads a tuple of non-negative ints (sizes or strides) into out[]; returns the count or -1. */
static int int_tuple(parser *p, const pk_value *t, const char *what, int64_t *out) {
    if (t->kind != PK_TUPLE) {
        fail(p, CLXP_ERR_FORMAT, "_rebuild_tensor_v2: %s is a %s, expected a tuple", what, pk_kind_name(t->kind));
        return -1;
    }
    if (t->n > ST_MAX_DIMS) {
        fail(p, CLXP_ERR_UNSUPPORTED, "tensor with %zu dimensions (at most %d are supported)", t->n, ST_MAX_DIMS);
        return -1;
    }
    for (size_t k = 0; k < t->n; k++) {
        if (t->items[k]->kind != PK_INT || t->items[k]->i < 0) {
            fail(p, CLXP_ERR_FORMAT, "_rebuild_tensor_v2: %s element %zu is not a non-negative int", what, k);
            return -1;
        }
        out[k] = t->items[k]->i;
    }
    return (int)t->n;
}

static int rebuild_tensor(parser *p, const pk_value *args) {
    if (args->n != 6 && args->n != 7) {
        fail(p, CLXP_ERR_FORMAT, "_rebuild_tensor_v2 with %zu arguments (expected 6 or 7)", args->n);
        return 0;
    }
    const pk_value *st = args->items[0], *off = args->items[1];
    if (st->kind != PK_STORAGE) {
        fail(p, CLXP_ERR_FORMAT, "_rebuild_tensor_v2: argument 0 is a %s, expected a storage", pk_kind_name(st->kind));
        return 0;
    }
    if (off->kind != PK_INT || off->i < 0) {
        fail(p, CLXP_ERR_FORMAT, "_rebuild_tensor_v2: invalid storage offset");
        return 0;
    }
    if (args->items[4]->kind != PK_BOOL) {
        fail(p, CLXP_ERR_FORMAT, "_rebuild_tensor_v2: requires_grad is a %s", pk_kind_name(args->items[4]->kind));
        return 0;
    }
    if (args->items[5]->kind != PK_DICT) {
        fail(p, CLXP_ERR_FORMAT, "_rebuild_tensor_v2: backward_hooks is a %s", pk_kind_name(args->items[5]->kind));
        return 0;
    }
    pk_tensor t = {0};
    t.storage = st;
    t.offset = off->i;
    t.requires_grad = (int)args->items[4]->i;
    int64_t stride[ST_MAX_DIMS];
    int nd = int_tuple(p, args->items[2], "size", t.size);
    if (nd < 0) return 0;
    int ns = int_tuple(p, args->items[3], "stride", stride);
    if (ns < 0) return 0;
    if (ns != nd) {
        fail(p, CLXP_ERR_FORMAT, "_rebuild_tensor_v2: %d sizes but %d strides", nd, ns);
        return 0;
    }
    t.ndim = nd;
    memcpy(t.stride, stride, sizeof stride);
    /* element count and the last storage element touched, without overflow */
    int64_t numel = 1, last = t.offset;
    for (int k = 0; k < nd; k++) {
        if (t.size[k] != 0 && numel > INT64_MAX / t.size[k]) {
            fail(p, CLXP_ERR_LIMIT, "tensor element count overflows");
            return 0;
        }
        numel *= t.size[k];
    }
    for (int k = 0; k < nd && numel > 0; k++) {
        int64_t span = t.size[k] - 1;
        if (t.stride[k] != 0 && span > (INT64_MAX - last) / t.stride[k]) {
            fail(p, CLXP_ERR_LIMIT, "tensor extent overflows");
            return 0;
        }
        last += span * t.stride[k];
    }
    t.numel = numel;
    if (numel > 0 ? last >= st->numel : t.offset > st->numel) {
        char d[200];
        pk_value tmp = {.kind = PK_TENSOR, .tensor = &t};
        pk_describe(&tmp, d, sizeof d);
        fail(p, CLXP_ERR_FORMAT,
             "%s (offset %" PRId64 ") needs %" PRId64 " elements of storage '%s', which holds %" PRId64, d, t.offset,
             numel > 0 ? last + 1 : t.offset, st->s, st->numel);
        return 0;
    }
    pk_value *v = new_value(p, PK_TENSOR);
    if (!v) return 0;
    v->tensor = malloc(sizeof *v->tensor);
    if (!v->tensor) {
        fail(p, CLXP_ERR_NOMEM, "out of memory");
        return 0;
    }
    *v->tensor = t;
    return push(p, v);
}

static int op_reduce(parser *p) {
    pk_value *args = pop(p);
    pk_value *fn = args ? pop(p) : NULL;
    if (!fn) return 0;
    if (fn->kind != PK_GLOBAL) {
        fail(p, CLXP_ERR_FORMAT, "REDUCE on a %s", pk_kind_name(fn->kind));
        return 0;
    }
    if (args->kind != PK_TUPLE) {
        fail(p, CLXP_ERR_FORMAT, "REDUCE of %s with a %s of arguments", fn->s, pk_kind_name(args->kind));
        return 0;
    }
    switch (fn->global) {
    case PKG_ORDERED_DICT:
        if (args->n != 0) break;
        return push_new(p, PK_DICT);
    case PKG_REBUILD_TENSOR_V2: return rebuild_tensor(p, args);
    case PKG_REBUILD_PARAMETER:
        if (args->n != 3 || args->items[0]->kind != PK_TENSOR || args->items[1]->kind != PK_BOOL) break;
        return push(p, args->items[0]);
    case PKG_BUILD_LIST:
        if (args->n != 1 || args->items[0]->kind != PK_LIST) break;
        return push(p, args->items[0]);
    case PKG_RESTORE_TYPE_TAG:
        if (args->n != 2 || args->items[1]->kind != PK_STR) break;
        return push(p, args->items[0]);
    case PKG_STORAGE_TYPE:
    case PKG_TORCH_CLASS:
        fail(p, CLXP_ERR_UNSUPPORTED, "REDUCE calling %s is not supported", fn->s);
        return 0;
    }
    fail(p, CLXP_ERR_FORMAT, "REDUCE of %s with unexpected arguments (%zu)", fn->s, args->n);
    return 0;
}

static int op_newobj(parser *p) {
    pk_value *args = pop(p);
    pk_value *cls = args ? pop(p) : NULL;
    if (!cls) return 0;
    if (cls->kind != PK_GLOBAL || cls->global != PKG_TORCH_CLASS) {
        fail(p, CLXP_ERR_UNSUPPORTED, "NEWOBJ of %s (only __torch__.* classes)",
             cls->kind == PK_GLOBAL ? cls->s : pk_kind_name(cls->kind));
        return 0;
    }
    if (args->kind != PK_TUPLE || args->n != 0) {
        fail(p, CLXP_ERR_UNSUPPORTED, "NEWOBJ of %s with arguments", cls->s);
        return 0;
    }
    pk_value *o = new_value(p, PK_OBJECT);
    if (!o) return 0;
    o->cls = cls;
    return push(p, o);
}

static int op_build(parser *p) {
    pk_value *state = pop(p);
    pk_value *target = state ? top(p) : NULL;
    if (!target) return 0;
    if (target->kind == PK_OBJECT) {
        if (target->state) {
            fail(p, CLXP_ERR_FORMAT, "second BUILD on an object of %s", target->cls->s);
            return 0;
        }
        target->state = state;
        return note_child(p, target, state);
    }
    if (target->kind == PK_DICT) { /* OrderedDict attributes (state_dict()._metadata): kept, not interpreted */
        target->state = state;
        return 1;
    }
    fail(p, CLXP_ERR_UNSUPPORTED, "BUILD on a %s", pk_kind_name(target->kind));
    return 0;
}

/* ---- the machine ------------------------------------------------------------------------------------------------ */

/* Executes one opcode; returns 1 to continue, 0 on error, 2 at STOP. */
static int step(parser *p) {
    p->op_pos = p->pos;
    uint8_t op = p->buf[p->pos++];
    if (p->op_pos == 0 && op != 0x80) {
        fail(p, CLXP_ERR_FORMAT, "not a protocol-2 pickle (first byte 0x%02x, expected PROTO 0x80)", op);
        return 0;
    }
    switch (op) {
    case 0x80: /* PROTO */
        if (p->op_pos != 0) {
            fail(p, CLXP_ERR_FORMAT, "PROTO after the start");
            return 0;
        }
        if (!need(p, 1)) return 0;
        if (p->buf[p->pos] != 2) {
            fail(p, CLXP_ERR_UNSUPPORTED, "pickle protocol %u (torch.save and TorchScript write protocol 2)",
                 p->buf[p->pos]);
            return 0;
        }
        p->pos++;
        return 1;
    case '.': /* STOP */
        if (p->n_marks) {
            fail(p, CLXP_ERR_FORMAT, "STOP with an open MARK");
            return 0;
        }
        if (p->sp != 1) {
            fail(p, CLXP_ERR_FORMAT, "STOP with %zu values on the stack (expected 1)", p->sp);
            return 0;
        }
        if (p->pos != p->len) {
            fail(p, CLXP_ERR_FORMAT, "%zu bytes after STOP", p->len - p->pos);
            return 0;
        }
        p->doc->root = p->stack[0];
        return 2;
    case '(': return push_mark(p);
    case 'N': return push_new(p, PK_NONE);
    case 0x88: /* NEWTRUE */
    case 0x89: /* NEWFALSE */ {
        pk_value *v = new_value(p, PK_BOOL);
        if (!v) return 0;
        v->i = op == 0x88;
        return push(p, v);
    }
    case 'K': return need(p, 1) && push_int(p, (int64_t)read_le(p, 1));
    case 'M': return need(p, 2) && push_int(p, (int64_t)read_le(p, 2));
    case 'J': return need(p, 4) && push_int(p, (int64_t)(int32_t)(uint32_t)read_le(p, 4));
    case 0x8a: { /* LONG1 */
        if (!need(p, 1)) return 0;
        int n = p->buf[p->pos++];
        if (n > 8) {
            fail(p, CLXP_ERR_LIMIT, "integer of %d bytes (at most 8)", n);
            return 0;
        }
        if (!need(p, (size_t)n)) return 0;
        uint64_t u = read_le(p, n);
        if (n > 0 && n < 8 && (u >> (8 * n - 1)) & 1) u |= ~(uint64_t)0 << (8 * n); /* sign-extend */
        int64_t i;
        memcpy(&i, &u, sizeof i);
        return push_int(p, i);
    }
    case 'G': { /* BINFLOAT: big-endian IEEE double */
        if (!need(p, 8)) return 0;
        uint64_t u = 0;
        for (int k = 0; k < 8; k++) u = (u << 8) | p->buf[p->pos + (size_t)k];
        p->pos += 8;
        pk_value *v = new_value(p, PK_FLOAT);
        if (!v) return 0;
        memcpy(&v->f, &u, sizeof v->f);
        return push(p, v);
    }
    case 'X': return op_binunicode(p);
    case ')': return push_new(p, PK_TUPLE);
    case 't': return op_tuple_mark(p);
    case 0x85: return make_tuple(p, 1);
    case 0x86: return make_tuple(p, 2);
    case 0x87: return make_tuple(p, 3);
    case ']': return push_new(p, PK_LIST);
    case 'a': return op_append(p);
    case 'e': return op_fill_mark(p, PK_LIST);
    case '}': return push_new(p, PK_DICT);
    case 's': return op_setitem(p);
    case 'u': return op_fill_mark(p, PK_DICT);
    case 'q': return need(p, 1) && memo_put(p, read_le(p, 1));
    case 'r': return need(p, 4) && memo_put(p, read_le(p, 4));
    case 'h': return need(p, 1) && memo_get(p, read_le(p, 1));
    case 'j': return need(p, 4) && memo_get(p, read_le(p, 4));
    case 'c': return op_global(p);
    case 'R': return op_reduce(p);
    case 0x81: return op_newobj(p);
    case 'b': return op_build(p);
    case 'Q': return op_binpersid(p);
    default: break;
    }
    if (op >= 0x20 && op < 0x7f)
        fail(p, CLXP_ERR_UNSUPPORTED, "unsupported pickle opcode 0x%02x '%c' (%s)", op, op, op_name(op));
    else
        fail(p, CLXP_ERR_UNSUPPORTED, "unsupported pickle opcode 0x%02x (%s)", op, op_name(op));
    return 0;
}

clxp_status pk_parse(const void *buf, size_t len, const pk_options *opt, pk_doc **out, clxp_error *err) {
    *out = NULL;
    parser p = {0};
    p.buf = buf;
    p.len = len;
    p.opt = opt;
    p.name = opt && opt->name ? opt->name : "pickle";
    p.err = err;
    p.status = CLXP_OK;
    p.doc = calloc(1, sizeof *p.doc);
    p.marks = malloc(PK_MAX_DEPTH * sizeof *p.marks);
    if (!p.doc || !p.marks) {
        free(p.doc);
        free(p.marks);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", p.name);
    }
    int r = 1;
    while (r == 1) {
        if (p.pos >= p.len) {
            p.op_pos = p.pos;
            fail(&p, CLXP_ERR_FORMAT, "truncated pickle (no STOP)");
            r = 0;
            break;
        }
        r = step(&p);
    }
    free(p.stack);
    free(p.marks);
    free(p.memo);
    free(p.storages);
    if (r != 2) {
        pk_free(p.doc);
        return p.status != CLXP_OK ? p.status : clxp_err_set(err, CLXP_ERR_INTERNAL, "%s: unpickling failed", p.name);
    }
    *out = p.doc;
    return CLXP_OK;
}
