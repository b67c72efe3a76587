/* PyTorch checkpoint reader (io/torchzip.h, io/unpickle.h).
 *
 * - The fixtures of tests/data/torch/ (tools/gen_torch_fixtures.py: torch.save state dicts, nested {'model': ...}
 *   and {'state_dict': ...} with 'module.' names, TorchScript scripted and traced archives with constants and
 *   float16 storages, a torch 2.x style archive with ZIP64 fields and a deflated storage) match
 *   tests/data/torch/expected.safetensors tensor for tensor: dtype, shape and every byte (views made contiguous).
 * - With the shared golden data ($CLXP_SHARED, else ../shared/golden): every tensor of the open_clip .bin, the
 *   scripted and both OpenAI-style archives matches the manifest's table (dtype, shape, sha256 of the values), and
 *   every tensor of the MS-CLAP .pth equals the one in msclap-tiny-2023/model.safetensors.
 * - Hostile archives, built here in a temporary directory: forbidden GLOBALs, unsupported opcodes, truncated zip,
 *   central directory past the end, a 2^40-byte declared entry, a missing storage key, tensors larger than their
 *   storage, 100 000-deep nesting, unknown TorchScript layouts, legacy and big-endian files, a CRC mismatch; plus
 *   every truncation and many random mutations of a pickle and of archives - each a clean error, never a crash. */
#include <inttypes.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "io/safetensors.h"
#include "io/torchzip.h"
#include "io/unpickle.h"
#include "test.h"

static char tmp_dir[4096];

static const char *tmp_path(const char *name) {
    static char buf[4200];
    snprintf(buf, sizeof buf, "%s/%s", tmp_dir, name);
    return buf;
}

/* ---- byte buffers ----------------------------------------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bbuf;

static void bb_put(bbuf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n) c *= 2;
        uint8_t *p = realloc(b->p, c);
        if (!p) abort();
        b->p = p;
        b->cap = c;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void bb_u8(bbuf *b, unsigned v) {
    uint8_t c = (uint8_t)v;
    bb_put(b, &c, 1);
}

static void bb_le(bbuf *b, uint64_t v, int n) {
    for (int i = 0; i < n; i++) bb_u8(b, (unsigned)(v >> (8 * i)) & 0xff);
}

/* Appends a string literal without its terminating NUL. */
#define BB_LIT(b, lit) bb_put((b), (lit), sizeof(lit) - 1)

static void bb_free(bbuf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static int read_file(const char *path, bbuf *out) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint8_t chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) bb_put(out, chunk, n);
    fclose(f);
    return 1;
}

/* ---- pickle builder --------------------------------------------------------------------------------------------- */

static void pb_str(bbuf *b, const char *s) {
    bb_u8(b, 'X');
    bb_le(b, strlen(s), 4);
    bb_put(b, s, strlen(s));
}

static void pb_int(bbuf *b, int64_t v) {
    if (v >= 0 && v < 256) {
        bb_u8(b, 'K');
        bb_le(b, (uint64_t)v, 1);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        bb_u8(b, 'J');
        bb_le(b, (uint64_t)v, 4);
    } else {
        bb_u8(b, 0x8a);
        bb_u8(b, 8);
        bb_le(b, (uint64_t)v, 8);
    }
}

static void pb_global(bbuf *b, const char *mod, const char *name) {
    bb_u8(b, 'c');
    bb_put(b, mod, strlen(mod));
    bb_u8(b, '\n');
    bb_put(b, name, strlen(name));
    bb_u8(b, '\n');
}

/* _rebuild_tensor_v2(storage(stype, key, numel), offset, size, stride, False, OrderedDict()) */
static void pb_tensor(bbuf *b, const char *stype, const char *key, int64_t numel, int ndim, const int64_t *size,
                      const int64_t *stride, int64_t offset) {
    pb_global(b, "torch._utils", "_rebuild_tensor_v2");
    bb_u8(b, '(');
    bb_u8(b, '(');
    pb_str(b, "storage");
    pb_global(b, "torch", stype);
    pb_str(b, key);
    pb_str(b, "cpu");
    pb_int(b, numel);
    bb_u8(b, 't');
    bb_u8(b, 'Q');
    pb_int(b, offset);
    bb_u8(b, '(');
    for (int k = 0; k < ndim; k++) pb_int(b, size[k]);
    bb_u8(b, 't');
    bb_u8(b, '(');
    for (int k = 0; k < ndim; k++) pb_int(b, stride[k]);
    bb_u8(b, 't');
    bb_u8(b, 0x89);
    pb_global(b, "collections", "OrderedDict");
    bb_u8(b, ')');
    bb_u8(b, 'R');
    bb_u8(b, 't');
    bb_u8(b, 'R');
}

static void pb_proto(bbuf *b) {
    bb_u8(b, 0x80);
    bb_u8(b, 2);
}

/* {name: float32 tensor of `numel` elements in storage `key`} as a complete pickle. */
static void pb_state_dict1(bbuf *b, const char *name, const char *key, int64_t storage_numel, int64_t numel) {
    pb_proto(b);
    bb_u8(b, '}');
    pb_str(b, name);
    int64_t size[1] = {numel}, stride[1] = {1};
    pb_tensor(b, "FloatStorage", key, storage_numel, 1, size, stride, 0);
    bb_u8(b, 's');
    bb_u8(b, '.');
}

/* ---- zip builder (the layout PyTorchStreamWriter writes) -------------------------------------------------------- */

static uint32_t crc32_of(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return ~c;
}

typedef struct {
    const char *name; /* record name under the top folder */
    const void *data;
    size_t len;
    uint64_t fake_size; /* nonzero: the uncompressed size declared in the central directory (ZIP64 extra field),
                           and the compressed one unless deflated */
    int deflated;       /* declared as deflated (method 8; the data is never inflated by the tests using it) */
} zent;

static void zip_build(bbuf *out, const char *top, const zent *e, int n) {
    uint64_t offs[32];
    uint32_t crcs[32];
    char names[32][256];
    for (int i = 0; i < n && i < 32; i++) {
        snprintf(names[i], sizeof names[i], "%s/%s", top, e[i].name);
        size_t nl = strlen(names[i]);
        offs[i] = out->n;
        crcs[i] = crc32_of(e[i].data, e[i].len);
        size_t start = out->n + 30 + nl + 4, pad = (64 - start % 64) % 64;
        bb_le(out, 0x04034b50, 4);
        bb_le(out, e[i].deflated ? 20 : 0, 2); /* version needed */
        bb_le(out, 0x0808, 2);                 /* data descriptor + UTF-8 */
        bb_le(out, e[i].deflated ? 8 : 0, 2);
        bb_le(out, 0, 4); /* time, date */
        bb_le(out, 0, 4); /* crc */
        bb_le(out, 0, 4);
        bb_le(out, 0, 4);
        bb_le(out, nl, 2);
        bb_le(out, 4 + pad, 2);
        bb_put(out, names[i], nl);
        BB_LIT(out, "FB");
        bb_le(out, pad, 2);
        for (size_t k = 0; k < pad; k++) bb_u8(out, 'Z');
        bb_put(out, e[i].data, e[i].len);
        bb_le(out, 0x08074b50, 4);
        bb_le(out, crcs[i], 4);
        bb_le(out, e[i].len, 4);
        bb_le(out, e[i].len, 4);
    }
    uint64_t cd = out->n;
    for (int i = 0; i < n && i < 32; i++) {
        size_t nl = strlen(names[i]);
        uint64_t usize = e[i].fake_size ? e[i].fake_size : e[i].len;
        uint64_t csize = e[i].fake_size && !e[i].deflated ? e[i].fake_size : e[i].len;
        int z64u = usize >= 0xffffffffu, z64c = csize >= 0xffffffffu;
        bb_le(out, 0x02014b50, 4);
        bb_le(out, z64u || z64c ? 45 : 20, 2);
        bb_le(out, z64u || z64c ? 45 : 20, 2);
        bb_le(out, 0x0808, 2);
        bb_le(out, e[i].deflated ? 8 : 0, 2);
        bb_le(out, 0, 4);
        bb_le(out, crcs[i], 4);
        bb_le(out, z64c ? 0xffffffffu : csize, 4);
        bb_le(out, z64u ? 0xffffffffu : usize, 4);
        bb_le(out, nl, 2);
        bb_le(out, 8 * (z64u + z64c) + (z64u || z64c ? 4 : 0), 2);
        bb_le(out, 0, 2); /* comment */
        bb_le(out, 0, 2); /* disk */
        bb_le(out, 0, 2); /* internal attributes */
        bb_le(out, 0, 4); /* external attributes */
        bb_le(out, offs[i], 4);
        bb_put(out, names[i], nl);
        if (z64u || z64c) {
            bb_le(out, 1, 2);
            bb_le(out, 8 * (z64u + z64c), 2);
            if (z64u) bb_le(out, usize, 8);
            if (z64c) bb_le(out, csize, 8);
        }
    }
    uint64_t cd_size = out->n - cd;
    bb_le(out, 0x06054b50, 4);
    bb_le(out, 0, 4);
    bb_le(out, (uint64_t)n, 2);
    bb_le(out, (uint64_t)n, 2);
    bb_le(out, cd_size, 4);
    bb_le(out, cd, 4);
    bb_le(out, 0, 2);
}

static const char version3[] = "3\n";
static const float four_floats[4] = {1.0f, -2.0f, 0.5f, 4.0f};

/* A torch.save-like archive: data.pkl, version, data/0 = four floats (+ extra entries). */
static void make_archive(bbuf *out, const bbuf *pkl, const zent *extra, int n_extra) {
    zent e[16] = {
        {"data.pkl", pkl->p, pkl->n, 0, 0},
        {"data/0", four_floats, sizeof four_floats, 0, 0},
        {"version", version3, 2, 0, 0},
    };
    int n = 3;
    for (int i = 0; i < n_extra && n < 16; i++) e[n++] = extra[i];
    zip_build(out, "archive", e, n);
}

/* Opening the bytes (as a file in the temporary directory and from memory) must fail with code and a message
 * containing needle. */
static void expect_fail(const bbuf *z, clxp_status code, const char *needle) {
    const char *path = tmp_path("hostile.pt");
    REQUIRE(write_file(path, z->p, z->n));
    for (int mem = 0; mem < 2; mem++) {
        torch_file *f = (torch_file *)1;
        clxp_error err = {0};
        clxp_status s = mem ? torch_open_memory(z->p, z->n, "hostile.pt", &f, &err) : torch_open(path, &f, &err);
        CHECK_EQ_INT(s, code);
        CHECK(f == NULL);
        CHECK_CONTAINS(err.msg, needle);
        if (s == CLXP_OK) torch_close(f);
        if (s != code || !strstr(err.msg, needle)) printf("  (%s) message: %s\n", mem ? "memory" : "file", err.msg);
    }
    unlink(path);
}

static void expect_pickle_fail(const bbuf *pkl, clxp_status code, const char *needle) {
    bbuf z = {0};
    make_archive(&z, pkl, NULL, 0);
    expect_fail(&z, code, needle);
    bb_free(&z);
}

/* ---- fixtures --------------------------------------------------------------------------------------------------- */

/* tests/data/torch/<name> under the test data directory; when $CLXP_TEST_DATA points elsewhere (e.g. at the shared
 * golden data), the repository's copy. */
static const char *fixture(const char *name) {
    static char buf[4200];
    char rel[256];
    struct stat sb;
    snprintf(rel, sizeof rel, "torch/%s", name);
    snprintf(buf, sizeof buf, "%s", test_data(rel));
    if (stat(buf, &sb) != 0) snprintf(buf, sizeof buf, "tests/data/torch/%s", name);
    return buf;
}

static const char *const fixtures[] = {"state_dict.pt", "wrapped_model.pth", "wrapped_state_dict.pt",
                                       "scripted.pt",   "traced_fp16.pt",    "torch2x.pt"};

/* Every tensor (and constant) of the fixture equals expected.safetensors' "<file>:<name>"; the expected file has
 * no others with that prefix. */
static void check_fixture(const torch_file *f, const char *file, const st_file *exp) {
    char key[512];
    int n_exp = 0;
    size_t fl = strlen(file);
    for (int i = 0; i < st_count(exp); i++) {
        const char *nm = st_at(exp, i)->name;
        if (strncmp(nm, file, fl) == 0 && nm[fl] == ':') n_exp++;
    }
    CHECK_EQ_INT(torch_count(f) + torch_const_count(f), n_exp);
    for (int i = 0; i < torch_count(f) + torch_const_count(f); i++) {
        int is_const = i >= torch_count(f);
        const st_tensor *t = is_const ? torch_const_at(f, i - torch_count(f)) : torch_at(f, i);
        snprintf(key, sizeof key, "%s:%s%s", file, is_const ? "const:" : "", t->name);
        const st_tensor *e = st_find(exp, key);
        if (!e) {
            printf("  %s: no expected tensor\n", key);
            CHECK(e != NULL);
            continue;
        }
        int same = t->dtype == e->dtype && t->ndim == e->ndim && t->numel == e->numel && t->nbytes == e->nbytes;
        for (int k = 0; same && k < t->ndim; k++) same = t->shape[k] == e->shape[k];
        if (same && t->nbytes) same = memcmp(t->data, e->data, t->nbytes) == 0;
        if (!same) printf("  %s differs (%s vs %s)\n", key, st_dtype_name(t->dtype), st_dtype_name(e->dtype));
        CHECK(same);
        if (!is_const) CHECK(torch_find(f, t->name) == t);
    }
}

TEST(fixtures_match_expected) {
    st_file *exp = NULL;
    clxp_error err = {0};
    REQUIRE(st_open(fixture("expected.safetensors"), &exp, &err) == CLXP_OK);
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        torch_file *f = NULL;
        clxp_status s = torch_open(fixture(fixtures[i]), &f, &err);
        CHECK_EQ_INT(s, CLXP_OK);
        if (s != CLXP_OK) {
            printf("  %s: %s\n", fixtures[i], err.msg);
            continue;
        }
        check_fixture(f, fixtures[i], exp);
        torch_close(f);
        /* the same from memory */
        bbuf b = {0};
        CHECK(read_file(fixture(fixtures[i]), &b));
        s = torch_open_memory(b.p, b.n, fixtures[i], &f, &err);
        CHECK_EQ_INT(s, CLXP_OK);
        if (s == CLXP_OK) {
            check_fixture(f, fixtures[i], exp);
            CHECK_STR(torch_path(f), fixtures[i]);
            torch_close(f);
        }
        bb_free(&b);
    }
    st_close(exp);
}

static torch_file *open_fixture(const char *name) {
    torch_file *f = NULL;
    clxp_error err = {0};
    if (torch_open(fixture(name), &f, &err) != CLXP_OK) printf("  %s: %s\n", name, err.msg);
    return f;
}

TEST(state_dict_kinds_and_views) {
    torch_file *f = open_fixture("state_dict.pt");
    REQUIRE(f);
    CHECK_STR(torch_kind(f), "state_dict");
    CHECK(!torch_is_torchscript(f));
    CHECK_EQ_INT(torch_count(f), 20);
    CHECK_STR(torch_at(f, 0)->name, "lin.weight"); /* file order */
    const st_tensor *t = torch_find(f, "view.transposed");
    REQUIRE(t);
    CHECK_EQ_INT(t->ndim, 2);
    CHECK_EQ_INT(t->shape[0], 4);
    CHECK_EQ_INT(t->shape[1], 3);
    /* base = arange(12) * 0.25 - 1 as [3,4]; transposed[i][j] = base[j][i] */
    const float *v = t->data;
    CHECK_NEAR(v[1 * 3 + 2], (2 * 4 + 1) * 0.25 - 1, 0);
    t = torch_find(f, "view.expanded");
    REQUIRE(t);
    v = t->data;
    CHECK(t->numel == 6 && v[0] == 1.5f && v[1] == -2.0f && v[4] == 1.5f && v[5] == -2.0f);
    t = torch_find(f, "view.slice"); /* shared[1:3]: rows 1, 2 of arange(8) + 10 */
    REQUIRE(t);
    v = t->data;
    CHECK(t->numel == 4 && v[0] == 12.0f && v[3] == 15.0f);
    t = torch_find(f, "scalar");
    REQUIRE(t);
    CHECK(t->ndim == 0 && t->numel == 1 && *(const float *)t->data == 2.5f);
    t = torch_find(f, "empty");
    REQUIRE(t);
    CHECK(t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 3 && t->numel == 0 && t->nbytes == 0);
    t = torch_find(f, "dtype.i64");
    REQUIRE(t);
    CHECK(t->dtype == ST_I64 && ((const int64_t *)t->data)[2] == (int64_t)1 << 40);
    CHECK(torch_find(f, "nope") == NULL);
    CHECK(torch_module_count(f) == 0 && torch_class_count(f) == 0 && torch_const_count(f) == 0);
    torch_close(f);

    f = open_fixture("wrapped_model.pth");
    REQUIRE(f);
    CHECK_STR(torch_kind(f), "state_dict['model']");
    CHECK(torch_find(f, "lin.weight") != NULL);
    torch_close(f);
    f = open_fixture("wrapped_state_dict.pt");
    REQUIRE(f);
    CHECK_STR(torch_kind(f), "state_dict['state_dict'] (module. stripped)");
    CHECK(torch_find(f, "norm.bias") != NULL && torch_find(f, "module.norm.bias") == NULL);
    torch_close(f);
    f = open_fixture("torch2x.pt");
    REQUIRE(f);
    CHECK_STR(torch_kind(f), "state_dict");
    t = torch_find(f, "b");
    CHECK(t && t->dtype == ST_BF16 && t->numel == 3);
    torch_close(f);
}

TEST(torchscript_tree) {
    torch_file *f = open_fixture("scripted.pt");
    REQUIRE(f);
    CHECK_STR(torch_kind(f), "torchscript");
    CHECK(torch_is_torchscript(f));
    CHECK_STR(torch_module_class(f, ""), "__torch__.Scripted");
    CHECK_STR(torch_module_class(f, "resblocks.1.mlp.gelu"), "__torch__.QuickGELU");
    CHECK_STR(torch_module_class(f, "resblocks.0.mlp.c_proj"),
              "__torch__.torch.nn.modules.linear.___torch_mangle_0.Linear");
    CHECK(torch_module_class(f, "resblocks.0.mlp.nothing") == NULL);
    int found = 0;
    for (int i = 0; i < torch_class_count(f); i++) found += strcmp(torch_class_at(f, i), "__torch__.QuickGELU") == 0;
    CHECK_EQ_INT(found, 1);
    CHECK_EQ_INT(torch_module_count(f), 15);
    int64_t iv = 0;
    double dv = 0;
    CHECK(torch_attr_int(f, "width", &iv) && iv == 4);
    CHECK(torch_attr_int(f, "resblocks.0.training", &iv) && iv == 0);
    CHECK(torch_attr_float(f, "temperature", &dv));
    CHECK_NEAR(dv, 0.07, 0);
    CHECK_STR(torch_attr_str(f, "pool_type"), "tok");
    CHECK(!torch_attr_int(f, "pool_type", &iv) && torch_attr_str(f, "width") == NULL);
    const st_tensor *t = torch_find(f, "resblocks.1.mlp.c_fc.weight");
    CHECK(t && t->ndim == 2 && t->shape[0] == 6 && t->shape[1] == 4);
    CHECK(torch_find(f, "mask") != NULL && torch_find(f, "conv1.weight") != NULL);
    CHECK_EQ_INT(torch_const_count(f), 0);
    torch_close(f);

    f = open_fixture("traced_fp16.pt");
    REQUIRE(f);
    t = torch_find(f, "fc.weight");
    CHECK(t && t->dtype == ST_F16 && t->numel == 12);
    t = torch_find(f, "count");
    CHECK(t && t->dtype == ST_I64 && t->ndim == 0 && *(const int64_t *)t->data == 7);
    CHECK_EQ_INT(torch_const_count(f), 1);
    t = torch_const_find(f, "c0");
    CHECK(t && t->dtype == ST_F32 && t->numel == 6 && ((const float *)t->data)[5] == 1.5f);
    torch_close(f);
}

/* ---- shared golden files ---------------------------------------------------------------------------------------- */

typedef struct {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t n;
} sha256_ctx;

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror(uint32_t x, int n) {
    return (x >> n) | (x << (32 - n));
}

static void sha_block(sha256_ctx *c, const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4], f = c->h[5], g = c->h[6], h = c->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = cc;
        cc = b;
        b = a;
        a = t1 + t2;
    }
    c->h[0] += a;
    c->h[1] += b;
    c->h[2] += cc;
    c->h[3] += d;
    c->h[4] += e;
    c->h[5] += f;
    c->h[6] += g;
    c->h[7] += h;
}

static void sha256_hex(const void *data, size_t n, char out[65]) {
    sha256_ctx c = {
        {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}, 0, {0}, 0};
    const uint8_t *p = data;
    c.len = (uint64_t)n * 8;
    for (; n >= 64; n -= 64, p += 64) sha_block(&c, p);
    uint8_t tail[128] = {0};
    memcpy(tail, p, n);
    tail[n] = 0x80;
    size_t tl = n < 56 ? 64 : 128;
    for (int i = 0; i < 8; i++) tail[tl - 1 - (size_t)i] = (uint8_t)(c.len >> (8 * i));
    sha_block(&c, tail);
    if (tl == 128) sha_block(&c, tail + 64);
    for (int i = 0; i < 8; i++) snprintf(out + 8 * i, 9, "%08x", c.h[i]);
}

TEST(sha256_known_answer) {
    char hex[65];
    sha256_hex("abc", 3, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha256_hex("", 0, hex);
    CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static const char *shared_root(void) {
    static char buf[4096];
    const char *env = getenv("CLXP_SHARED");
    snprintf(buf, sizeof buf, "%s", env && *env ? env : "../shared/golden");
    struct stat sb;
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/openclip-tiny-quickgelu/manifest.json", buf);
    return stat(probe, &sb) == 0 ? buf : NULL;
}

static st_dtype dtype_of(const char *torch_name) {
    if (strcmp(torch_name, "float16") == 0) return ST_F16;
    if (strcmp(torch_name, "int64") == 0) return ST_I64;
    if (strcmp(torch_name, "float64") == 0) return ST_F64;
    return ST_F32;
}

/* Every tensor of the archive matches manifest.tensors[file]: dtype, shape and sha256 of the values. */
static void check_against_manifest(const char *root, const cJSON *manifest, const char *file) {
    char path[4400];
    snprintf(path, sizeof path, "%s/openclip-tiny-quickgelu/%s", root, file);
    const cJSON *table = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(manifest, "tensors"), file);
    REQUIRE(cJSON_IsObject(table));
    torch_file *f = NULL;
    clxp_error err = {0};
    clxp_status s = torch_open(path, &f, &err);
    if (s != CLXP_OK) printf("  %s: %s\n", file, err.msg);
    REQUIRE(s == CLXP_OK);
    CHECK_EQ_INT(torch_count(f), cJSON_GetArraySize(table));
    int matched = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, table) {
        const st_tensor *t = torch_find(f, e->string);
        if (!t) {
            printf("  %s: missing %s\n", file, e->string);
            CHECK(t != NULL);
            continue;
        }
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const char *dt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "dtype"));
        const char *sha = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "sha256_of_values"));
        int ok = dt && sha && t->dtype == dtype_of(dt) && t->ndim == cJSON_GetArraySize(shape);
        for (int k = 0; ok && k < t->ndim; k++) ok = t->shape[k] == (int64_t)cJSON_GetArrayItem(shape, k)->valuedouble;
        char hex[65];
        sha256_hex(t->data, t->nbytes, hex);
        ok = ok && strcmp(hex, sha) == 0;
        if (!ok) printf("  %s: %s differs\n", file, e->string);
        CHECK(ok);
        matched += ok;
    }
    printf("  %s: %d of %d tensors match the manifest (%s)\n", file, matched, cJSON_GetArraySize(table), torch_kind(f));
    torch_close(f);
}

TEST(shared_openclip_files) {
    const char *root = shared_root();
    if (!root) {
        printf("  skipped (no shared golden)\n");
        return;
    }
    char path[4400];
    snprintf(path, sizeof path, "%s/openclip-tiny-quickgelu/manifest.json", root);
    bbuf b = {0};
    REQUIRE(read_file(path, &b));
    bb_u8(&b, 0);
    cJSON *manifest = cJSON_Parse((const char *)b.p);
    bb_free(&b);
    REQUIRE(manifest);
    const char *files[] = {"open_clip_pytorch_model.bin", "clip_model_scripted.pt", "openai_style.pt",
                           "openai_style_fp16.pt"};
    for (int i = 0; i < 4; i++) check_against_manifest(root, manifest, files[i]);

    /* the half-precision set of the fp16 archive */
    snprintf(path, sizeof path, "%s/openclip-tiny-quickgelu/openai_style_fp16.pt", root);
    torch_file *f = NULL;
    clxp_error err = {0};
    REQUIRE(torch_open(path, &f, &err) == CLXP_OK);
    const cJSON *half = cJSON_GetObjectItemCaseSensitive(manifest, "openai_style_fp16_half_tensors"), *h;
    int n_half = 0;
    cJSON_ArrayForEach(h, half) {
        const st_tensor *t = torch_find(f, cJSON_GetStringValue(h));
        CHECK(t && t->dtype == ST_F16);
        n_half++;
    }
    CHECK_EQ_INT(n_half, 35);
    torch_close(f);
    cJSON_Delete(manifest);

    /* scripted: activation class and head counts from the module tree */
    snprintf(path, sizeof path, "%s/openclip-tiny-quickgelu/clip_model_scripted.pt", root);
    torch_file *sc = NULL;
    REQUIRE(torch_open(path, &sc, &err) == CLXP_OK);
    CHECK_STR(torch_module_class(sc, "visual.transformer.resblocks.0.mlp.gelu"),
              "__torch__.open_clip.transformer.QuickGELU");
    CHECK_STR(torch_module_class(sc, ""), "__torch__.open_clip.model.CLIP");
    int64_t heads = 0;
    CHECK(torch_attr_int(sc, "visual.transformer.resblocks.1.attn.num_heads", &heads) && heads == 4);
    CHECK(torch_attr_int(sc, "transformer.resblocks.0.attn.num_heads", &heads) && heads == 4);
    CHECK_STR(torch_attr_str(sc, "text_pool_type"), "argmax");
    CHECK_EQ_INT(torch_class_count(sc), 24);

    /* OpenAI style: constants (head count, QuickGELU factor, the causal mask = the scripted attn_mask buffer) */
    snprintf(path, sizeof path, "%s/openclip-tiny-quickgelu/openai_style.pt", root);
    torch_file *oa = NULL;
    REQUIRE(torch_open(path, &oa, &err) == CLXP_OK);
    CHECK_EQ_INT(torch_const_count(oa), 5);
    const st_tensor *c0 = torch_const_find(oa, "c0"), *c2 = torch_const_find(oa, "c2");
    const st_tensor *c3 = torch_const_find(oa, "c3"), *mask = torch_find(sc, "attn_mask");
    CHECK(c0 && c0->dtype == ST_I64 && *(const int64_t *)c0->data == 4);
    CHECK(c2 && c2->dtype == ST_F64 && *(const double *)c2->data == 1.702);
    CHECK(c3 && mask && c3->nbytes == mask->nbytes && memcmp(c3->data, mask->data, c3->nbytes) == 0);
    const char *gelu = torch_module_class(oa, "visual.transformer.resblocks.0.mlp.gelu");
    CHECK(gelu && strlen(gelu) > 10 && strcmp(gelu + strlen(gelu) - 10, ".QuickGELU") == 0);
    int64_t ctx = 0;
    CHECK(!torch_attr_int(oa, "visual.transformer.resblocks.0.attn.num_heads", &ctx)); /* not stored when traced */
    const st_tensor *cl = torch_find(oa, "context_length");
    CHECK(cl && cl->dtype == ST_I64 && *(const int64_t *)cl->data == 77);
    torch_close(oa);
    torch_close(sc);
}

TEST(shared_msclap_pth) {
    const char *root = shared_root();
    if (!root) {
        printf("  skipped (no shared golden)\n");
        return;
    }
    char path[4400], st_path[4400];
    snprintf(path, sizeof path, "%s/msclap-tiny-2023/CLAP_weights_2023_tiny.pth", root);
    snprintf(st_path, sizeof st_path, "%s/msclap-tiny-2023/model.safetensors", root);
    torch_file *f = NULL;
    st_file *sf = NULL;
    clxp_error err = {0};
    REQUIRE(torch_open(path, &f, &err) == CLXP_OK);
    if (st_open(st_path, &sf, &err) != CLXP_OK) {
        torch_close(f);
        REQUIRE(0);
    }
    CHECK_STR(torch_kind(f), "state_dict['model']");
    CHECK_EQ_INT(torch_count(f), st_count(sf));
    int matched = 0;
    for (int i = 0; i < torch_count(f); i++) {
        const st_tensor *t = torch_at(f, i), *e = st_find(sf, t->name);
        int ok = e && t->dtype == e->dtype && t->ndim == e->ndim && t->nbytes == e->nbytes;
        for (int k = 0; ok && k < t->ndim; k++) ok = t->shape[k] == e->shape[k];
        ok = ok && memcmp(t->data, e->data, t->nbytes) == 0;
        if (!ok) printf("  %s differs\n", t->name);
        matched += ok;
    }
    CHECK_EQ_INT(matched, st_count(sf));
    printf("  CLAP_weights_2023_tiny.pth: %d of %d tensors equal model.safetensors\n", matched, st_count(sf));
    st_close(sf);
    torch_close(f);
}

/* ---- hostile files ---------------------------------------------------------------------------------------------- */

TEST(forbidden_globals) {
    bbuf p = {0};
    pb_proto(&p); /* os.system('ls') */
    pb_global(&p, "os", "system");
    pb_str(&p, "ls");
    bb_u8(&p, 0x85);
    bb_u8(&p, 'R');
    bb_u8(&p, '.');
    expect_pickle_fail(&p, CLXP_ERR_UNSUPPORTED, "data.pkl: forbidden GLOBAL os.system at byte 2");
    bb_free(&p);

    pb_proto(&p);
    pb_global(&p, "builtins", "eval");
    bb_u8(&p, '.');
    expect_pickle_fail(&p, CLXP_ERR_UNSUPPORTED, "forbidden GLOBAL builtins.eval");
    bb_free(&p);

    /* a TorchScript class in a torch.save archive (no constants.pkl) */
    pb_proto(&p);
    pb_global(&p, "__torch__.foo", "Bar");
    bb_u8(&p, ')');
    bb_u8(&p, 0x81);
    bb_u8(&p, '.');
    expect_pickle_fail(&p, CLXP_ERR_UNSUPPORTED, "forbidden GLOBAL __torch__.foo.Bar (TorchScript classes");
    bb_free(&p);

    /* an unknown storage type */
    pb_proto(&p);
    pb_global(&p, "torch", "ComplexFloatStorage");
    bb_u8(&p, '.');
    expect_pickle_fail(&p, CLXP_ERR_UNSUPPORTED, "storage type GLOBAL torch.ComplexFloatStorage");
    bb_free(&p);

    /* newline smuggling / odd bytes in a GLOBAL */
    pb_proto(&p);
    BB_LIT(&p, "cos system\nx\n");
    bb_u8(&p, '.');
    expect_pickle_fail(&p, CLXP_ERR_FORMAT, "malformed GLOBAL");
    bb_free(&p);
}

TEST(unsupported_opcodes) {
    bbuf p = {0};
    pb_proto(&p);
    BB_LIT(&p, "\x8c\x02os\x8c\x06system\x93"); /* SHORT_BINUNICODE x2 + STACK_GLOBAL */
    bb_u8(&p, '.');
    expect_pickle_fail(&p, CLXP_ERR_UNSUPPORTED, "unsupported pickle opcode 0x8c (SHORT_BINUNICODE) at byte 2");
    bb_free(&p);

    pb_proto(&p);
    BB_LIT(&p, "(S'x'\ni"); /* STRING */
    expect_pickle_fail(&p, CLXP_ERR_UNSUPPORTED, "unsupported pickle opcode 0x53 'S' (STRING) at byte 3");
    bb_free(&p);

    BB_LIT(&p, "\x80\x04\x95"); /* protocol 4 */
    expect_pickle_fail(&p, CLXP_ERR_UNSUPPORTED, "pickle protocol 4");
    bb_free(&p);

    BB_LIT(&p, "]q\x00."); /* no PROTO */
    expect_pickle_fail(&p, CLXP_ERR_FORMAT, "not a protocol-2 pickle");
    bb_free(&p);

    pb_proto(&p); /* huge memo index */
    BB_LIT(&p, "]r\xff\xff\xff\xff.");
    expect_pickle_fail(&p, CLXP_ERR_LIMIT, "memo index 4294967295");
    bb_free(&p);

    pb_proto(&p); /* unset memo entry */
    BB_LIT(&p, "h\x05.");
    expect_pickle_fail(&p, CLXP_ERR_FORMAT, "memo entry 5 is not set");
    bb_free(&p);

    pb_proto(&p); /* APPENDS with nothing below its MARK */
    BB_LIT(&p, "(e.");
    bb_u8(&p, 0x85);
    expect_pickle_fail(&p, CLXP_ERR_FORMAT, "APPENDS without a list");
    bb_free(&p);

    pb_proto(&p);
    BB_LIT(&p, "K\x01K\x02.");
    expect_pickle_fail(&p, CLXP_ERR_FORMAT, "STOP with 2 values");
    bb_free(&p);

    pb_proto(&p);
    BB_LIT(&p, "X\x10\0\0\0ab");
    expect_pickle_fail(&p, CLXP_ERR_FORMAT, "truncated pickle");
    bb_free(&p);
}

TEST(zip_damage) {
    bbuf p = {0}, z = {0};
    pb_state_dict1(&p, "w", "0", 4, 4);
    make_archive(&z, &p, NULL, 0);
    {
        torch_file *f = NULL;
        clxp_error err = {0};
        REQUIRE(torch_open_memory(z.p, z.n, "ok.pt", &f, &err) == CLXP_OK); /* the untouched archive is fine */
        const st_tensor *t = torch_find(f, "w");
        CHECK(t && t->numel == 4 && ((const float *)t->data)[3] == 4.0f);
        torch_close(f);
    }
    /* truncated: every cut of the end record and of the central directory */
    bbuf cut = {0};
    for (size_t keep = z.n - 1; keep > z.n - 200 && keep > 0; keep -= 7) {
        cut.n = 0;
        bb_put(&cut, z.p, keep);
        torch_file *f = NULL;
        clxp_error err = {0};
        CHECK(torch_open_memory(cut.p, cut.n, "cut.pt", &f, &err) != CLXP_OK && f == NULL && err.msg[0]);
    }
    cut.n = 0;
    bb_put(&cut, z.p, z.n / 2);
    expect_fail(&cut, CLXP_ERR_FORMAT, "not a readable zip archive (truncated");
    bb_free(&cut);

    /* central directory offset past the end of the file */
    bbuf bad = {0};
    bb_put(&bad, z.p, z.n);
    size_t eocd = bad.n - 22;
    uint64_t past = bad.n + 1000;
    for (int i = 0; i < 4; i++) bad.p[eocd + 16 + (size_t)i] = (uint8_t)(past >> (8 * i));
    expect_fail(&bad, CLXP_ERR_FORMAT, "damaged zip archive: its central directory does not fit the file");
    /* central directory size larger than the file */
    memcpy(bad.p, z.p, z.n);
    for (int i = 0; i < 4; i++) bad.p[eocd + 12 + (size_t)i] = 0xff;
    expect_fail(&bad, CLXP_ERR_FORMAT, "zip");
    /* a data byte flipped: CRC mismatch */
    memcpy(bad.p, z.p, z.n);
    bad.p[64 * 1 + 0] ^= 0xff; /* first byte of data.pkl's data ('\x80' -> '\x7f') */
    expect_fail(&bad, CLXP_ERR_FORMAT, "data.pkl");
    bb_free(&bad);
    bb_free(&z);

    /* a declared size of 2^40 bytes (ZIP64 extra field in the central directory): stored, libzip refuses it */
    zent big = {"data/1", four_floats, sizeof four_floats, (uint64_t)1 << 40, 0};
    make_archive(&z, &p, &big, 1);
    expect_fail(&z, CLXP_ERR_FORMAT, "not a readable zip archive");
    bb_free(&z);
    /* deflated, 16 compressed bytes: refused before inflating */
    big.deflated = 1;
    make_archive(&z, &p, &big, 1);
    expect_fail(&z, CLXP_ERR_LIMIT, "zip entry 'archive/data/1' declares 1099511627776 bytes (limit 8589934592)");
    bb_free(&z);
    big.fake_size = (uint64_t)1 << 30;
    make_archive(&z, &p, &big, 1);
    expect_fail(&z, CLXP_ERR_FORMAT, "declares 1073741824 bytes from 16 (impossible ratio)");
    bb_free(&z);
    /* a storage declaring 2^38 floats = 2^40 bytes */
    bb_free(&p);
    pb_state_dict1(&p, "w", "0", (int64_t)1 << 38, 4);
    make_archive(&z, &p, NULL, 0);
    expect_fail(&z, CLXP_ERR_LIMIT, "storage 'data/0' declares 274877906944 elements of F32 (limit 8589934592 bytes)");
    bb_free(&z);
    bb_free(&p);

    /* not zip files */
    BB_LIT(&p, "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19."); /* legacy torch.save magic */
    expect_fail(&p, CLXP_ERR_UNSUPPORTED, "legacy (pre-1.6) torch.save format not supported");
    bb_free(&p);
    BB_LIT(&p, "hello world, not a model");
    expect_fail(&p, CLXP_ERR_FORMAT, "not a PyTorch file");
    bb_free(&p);
    torch_file *f = (torch_file *)1;
    clxp_error err = {0};
    CHECK_EQ_INT(torch_open(tmp_path("does-not-exist.pt"), &f, &err), CLXP_ERR_IO);
    CHECK(f == NULL);
    CHECK_CONTAINS(err.msg, "does-not-exist.pt");
    CHECK_EQ_INT(torch_open(tmp_dir, &f, &err), CLXP_ERR_IO); /* a directory */
    CHECK(f == NULL);
}

TEST(records) {
    bbuf p = {0}, z = {0};
    pb_state_dict1(&p, "w", "0", 4, 4);
    /* big-endian storages */
    zent be = {"byteorder", "big", 3, 0, 0};
    make_archive(&z, &p, &be, 1);
    expect_fail(&z, CLXP_ERR_UNSUPPORTED, "big-endian");
    bb_free(&z);
    zent odd = {"byteorder", "middle", 6, 0, 0};
    make_archive(&z, &p, &odd, 1);
    expect_fail(&z, CLXP_ERR_FORMAT, "unknown byte order 'middle'");
    bb_free(&z);
    /* torch 2.x records are accepted */
    zent t2[2] = {{"byteorder", "little", 6, 0, 0}, {".data/serialization_id", "0123456789", 10, 0, 0}};
    make_archive(&z, &p, t2, 2);
    torch_file *f = NULL;
    clxp_error err = {0};
    CHECK_EQ_INT(torch_open_memory(z.p, z.n, "t2.pt", &f, &err), CLXP_OK);
    torch_close(f);
    bb_free(&z);
    /* no version, bad version */
    zent e[3] = {
        {"data.pkl", p.p, p.n, 0, 0}, {"data/0", four_floats, sizeof four_floats, 0, 0}, {"version", "x\n", 2, 0, 0}};
    zip_build(&z, "archive", e, 2);
    expect_fail(&z, CLXP_ERR_FORMAT, "no 'version' record");
    bb_free(&z);
    zip_build(&z, "archive", e, 3);
    expect_fail(&z, CLXP_ERR_UNSUPPORTED, "unsupported archive version 'x'");
    bb_free(&z);
    /* no data.pkl */
    zip_build(&z, "archive", e + 1, 1);
    expect_fail(&z, CLXP_ERR_FORMAT, "no record 'archive/data.pkl'");
    bb_free(&z);
    /* entries not in a folder */
    zip_build(&z, "", e, 1); /* names "/data.pkl" */
    expect_fail(&z, CLXP_ERR_FORMAT, "not inside a folder");
    bb_free(&z);
    bb_free(&p);
}

TEST(storage_checks) {
    bbuf p = {0};
    /* a storage key that does not exist */
    pb_state_dict1(&p, "w", "7", 4, 4);
    expect_pickle_fail(&p, CLXP_ERR_FORMAT, "tensor 'w': storage key '7' does not exist (no record 'data/7'");
    bb_free(&p);
    /* numel of the tensor larger than its storage */
    pb_state_dict1(&p, "w", "0", 4, 10);
    expect_pickle_fail(&p, CLXP_ERR_FORMAT,
                       "tensor F32 [10] (offset 0) needs 10 elements of storage '0', which holds 4");
    bb_free(&p);
    /* storage numel larger than the record */
    pb_state_dict1(&p, "w", "0", 100, 10);
    expect_pickle_fail(&p, CLXP_ERR_FORMAT,
                       "tensor 'w': record 'data/0' holds 16 bytes, but its storage declares 100 elements of F32 (400 "
                       "bytes)");
    bb_free(&p);
    /* offset + strides reaching past the end */
    pb_proto(&p);
    bb_u8(&p, '}');
    pb_str(&p, "w");
    int64_t size[2] = {2, 2}, stride[2] = {1, 2};
    pb_tensor(&p, "FloatStorage", "0", 4, 2, size, stride, 1);
    BB_LIT(&p, "s.");
    expect_pickle_fail(&p, CLXP_ERR_FORMAT, "needs 5 elements of storage '0', which holds 4");
    bb_free(&p);
    /* a huge element count (overflow) */
    pb_proto(&p);
    bb_u8(&p, '}');
    pb_str(&p, "w");
    int64_t huge[3] = {(int64_t)1 << 40, (int64_t)1 << 40, 2}, st3[3] = {0, 0, 0};
    pb_tensor(&p, "FloatStorage", "0", 4, 3, huge, st3, 0);
    BB_LIT(&p, "s.");
    expect_pickle_fail(&p, CLXP_ERR_LIMIT, "element count overflows");
    bb_free(&p);
    /* one key, two dtypes */
    pb_proto(&p);
    bb_u8(&p, '}');
    bb_u8(&p, '(');
    pb_str(&p, "a");
    int64_t s1[1] = {4}, d1[1] = {1};
    pb_tensor(&p, "FloatStorage", "0", 4, 1, s1, d1, 0);
    pb_str(&p, "b");
    pb_tensor(&p, "IntStorage", "0", 4, 1, s1, d1, 0);
    BB_LIT(&p, "u.");
    expect_pickle_fail(&p, CLXP_ERR_UNSUPPORTED, "storage '0' referenced as F32 x 4 and as I32 x 4");
    bb_free(&p);
    /* duplicate names */
    pb_proto(&p);
    bb_u8(&p, '}');
    bb_u8(&p, '(');
    pb_str(&p, "a");
    pb_tensor(&p, "FloatStorage", "0", 4, 1, s1, d1, 0);
    pb_str(&p, "a");
    pb_tensor(&p, "FloatStorage", "0", 4, 1, s1, d1, 0);
    BB_LIT(&p, "u.");
    expect_pickle_fail(&p, CLXP_ERR_FORMAT, "duplicate tensor name 'a'");
    bb_free(&p);
    /* a few floats expanded (stride 0) to 2^30 and to 2^40 elements */
    pb_proto(&p);
    bb_u8(&p, '}');
    pb_str(&p, "w");
    int64_t wide[2] = {(int64_t)1 << 20, (int64_t)1 << 10}, zero[2] = {0, 0};
    pb_tensor(&p, "FloatStorage", "0", 4, 2, wide, zero, 0);
    BB_LIT(&p, "s.");
    expect_pickle_fail(&p, CLXP_ERR_LIMIT, "tensor 'w': copying strided views would take 4294967296 bytes");
    bb_free(&p);
    pb_proto(&p);
    bb_u8(&p, '}');
    pb_str(&p, "w");
    int64_t wider[1] = {(int64_t)1 << 40};
    pb_tensor(&p, "FloatStorage", "0", 4, 1, wider, zero, 0);
    BB_LIT(&p, "s.");
    expect_pickle_fail(&p, CLXP_ERR_LIMIT, "tensor 'w' has 1099511627776 elements (limit 8589934592 bytes)");
    bb_free(&p);
    /* a path-like storage key */
    pb_state_dict1(&p, "w", "../0", 4, 4);
    expect_pickle_fail(&p, CLXP_ERR_FORMAT, "invalid storage key");
    bb_free(&p);
    /* not a state dict */
    pb_proto(&p);
    BB_LIT(&p, "}X\x05\0\0\0epochK\x03s.");
    expect_pickle_fail(&p, CLXP_ERR_UNSUPPORTED, "no tensors found: data.pkl holds a dict with 1 entries ('epoch')");
    bb_free(&p);
    pb_proto(&p);
    BB_LIT(&p, "]K\1a.");
    expect_pickle_fail(&p, CLXP_ERR_UNSUPPORTED, "data.pkl holds a list of 1 items, not a state dict");
    bb_free(&p);
}

TEST(deep_nesting) {
    bbuf p = {0};
    /* 100 000 x (MARK EMPTY_LIST) ... APPENDS */
    pb_proto(&p);
    for (int i = 0; i < 100000; i++) BB_LIT(&p, "(]");
    for (int i = 0; i < 100000; i++) bb_u8(&p, 'e');
    bb_u8(&p, '.');
    expect_pickle_fail(&p, CLXP_ERR_LIMIT, "nested deeper than 1000 levels (MARK)");
    bb_free(&p);
    /* 100 000 x TUPLE1 around an empty tuple (no MARKs) */
    pb_proto(&p);
    bb_u8(&p, ')');
    for (int i = 0; i < 100000; i++) bb_u8(&p, 0x85);
    bb_u8(&p, '.');
    expect_pickle_fail(&p, CLXP_ERR_LIMIT, "nested deeper than 1000 levels");
    bb_free(&p);
    /* 100 000 x EMPTY_LIST, then APPEND each into the one below */
    pb_proto(&p);
    for (int i = 0; i < 100000; i++) bb_u8(&p, ']');
    for (int i = 0; i < 99999; i++) bb_u8(&p, 'a');
    bb_u8(&p, '.');
    expect_pickle_fail(&p, CLXP_ERR_LIMIT, "nested deeper than 1000 levels");
    bb_free(&p);
    /* a list that contains itself (memo), then used as a state dict: no endless walk */
    pb_proto(&p);
    BB_LIT(&p, "]q\0h\0a.");
    expect_pickle_fail(&p, CLXP_ERR_UNSUPPORTED, "not a state dict");
    bb_free(&p);
}

/* A TorchScript-looking archive (constants.pkl present) with the given data.pkl. */
static void expect_ts_fail(const bbuf *pkl, clxp_status code, const char *needle) {
    static const uint8_t empty_tuple[4] = {0x80, 0x02, ')', '.'};
    zent c = {"constants.pkl", empty_tuple, 4, 0, 0};
    bbuf z = {0};
    make_archive(&z, pkl, &c, 1);
    expect_fail(&z, code, needle);
    bb_free(&z);
}

/* Node(a=Node(level - 1), b=<the same object>), Node(w=tensor) at level 0. */
static void emit_shared_node(bbuf *p, int level) {
    pb_global(p, "__torch__.m", "Node");
    BB_LIT(p, ")\x81}(");
    if (level == 0) {
        pb_str(p, "w");
        int64_t size[1] = {4}, stride[1] = {1};
        pb_tensor(p, "FloatStorage", "0", 4, 1, size, stride, 0);
    } else {
        pb_str(p, "a");
        emit_shared_node(p, level - 1);
        bb_u8(p, 'r'); /* LONG_BINPUT */
        bb_le(p, (uint64_t)level - 1, 4);
        pb_str(p, "b");
        bb_u8(p, 'j'); /* LONG_BINGET */
        bb_le(p, (uint64_t)level - 1, 4);
    }
    BB_LIT(p, "ub"); /* SETITEMS, BUILD: the node stays on the stack */
}

TEST(unknown_torchscript_layouts) {
    bbuf p = {0};
    pb_state_dict1(&p, "w", "0", 4, 4); /* a state dict where the module tree should be */
    expect_ts_fail(&p, CLXP_ERR_UNSUPPORTED,
                   "unknown TorchScript module layout: data.pkl holds a dict with 1 entries ('w'), expected a "
                   "__torch__.* module object");
    bb_free(&p);
    /* a module whose state is a tuple (custom __getstate__): Root(state={'child': Child(state=(1, 2))}) */
    pb_proto(&p);
    pb_global(&p, "__torch__.m", "Root");
    BB_LIT(&p, ")\x81");
    bb_u8(&p, '}');
    pb_str(&p, "child");
    pb_global(&p, "__torch__.m", "Child");
    BB_LIT(&p, ")\x81");
    BB_LIT(&p, "K\x01K\x02\x86");
    bb_u8(&p, 'b'); /* Child's state = (1, 2) */
    bb_u8(&p, 's');
    bb_u8(&p, 'b'); /* Root's state = {'child': Child} */
    bb_u8(&p, '.');
    expect_ts_fail(&p, CLXP_ERR_UNSUPPORTED,
                   "unknown TorchScript module layout: module 'child' (__torch__.m.Child) has tuple of 2 items as its "
                   "state, expected an attribute dict");
    bb_free(&p);
    /* modules but no tensors */
    pb_proto(&p);
    pb_global(&p, "__torch__.m", "Root");
    BB_LIT(&p, ")\x81");
    bb_u8(&p, '}');
    pb_str(&p, "training");
    bb_u8(&p, 0x89);
    BB_LIT(&p, "sb.");
    expect_ts_fail(&p, CLXP_ERR_UNSUPPORTED,
                   "unknown TorchScript module layout: 1 module objects (root __torch__.m.Root) but no tensor");
    bb_free(&p);
    /* a module that contains itself */
    pb_proto(&p);
    pb_global(&p, "__torch__.m", "Root");
    BB_LIT(&p, ")\x81q\x00}");
    pb_str(&p, "s");
    BB_LIT(&p, "h\x00sb.");
    expect_ts_fail(&p, CLXP_ERR_LIMIT, "module tree deeper than 1000 levels");
    bb_free(&p);
    /* 40 levels of a module shared twice per level: 2^40 attribute paths */
    pb_proto(&p);
    emit_shared_node(&p, 40);
    bb_u8(&p, '.');
    expect_ts_fail(&p, CLXP_ERR_LIMIT, "module tree with more than 262144 entries");
    bb_free(&p);
    /* NEWOBJ of a non-class, REDUCE of a class */
    pb_proto(&p);
    pb_global(&p, "collections", "OrderedDict");
    BB_LIT(&p, ")\x81.");
    expect_ts_fail(&p, CLXP_ERR_UNSUPPORTED, "NEWOBJ of collections.OrderedDict");
    bb_free(&p);
    pb_proto(&p);
    pb_global(&p, "__torch__.m", "Root");
    BB_LIT(&p, ")R.");
    expect_ts_fail(&p, CLXP_ERR_UNSUPPORTED, "REDUCE calling __torch__.m.Root is not supported");
    bb_free(&p);
}

/* Deterministic pseudo-random numbers for the mutation tests. */
static uint32_t rng_next(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* A state-dict pickle with memo use, nested dicts, lists and every supported scalar. */
static void rich_pickle(bbuf *p) {
    pb_proto(p);
    pb_global(p, "collections", "OrderedDict");
    BB_LIT(p, ")Rq\x00(");
    int64_t size[2] = {2, 2}, stride[2] = {2, 1}, st1[2] = {1, 2};
    pb_str(p, "a");
    pb_tensor(p, "FloatStorage", "0", 4, 2, size, stride, 0);
    pb_str(p, "b");
    pb_tensor(p, "FloatStorage", "0", 4, 2, size, st1, 0);
    pb_str(p, "c");
    BB_LIT(p, "](K\x01M\x02\x01J\xff\xff\xff\xff\x8a\x02\x00\x80G\x3f\xf0\x00\x00\x00\x00\x00\x00N\210\211e");
    BB_LIT(p, "uq\x01}X\x09\x00\x00\x00_metadata}sb.");
}

TEST(rich_pickle_parses) {
    bbuf p = {0};
    rich_pickle(&p);
    pk_doc *d = NULL;
    clxp_error err = {0};
    pk_options opt = {"rich", 0};
    clxp_status s = pk_parse(p.p, p.n, &opt, &d, &err);
    if (s != CLXP_OK) printf("  %s\n", err.msg);
    REQUIRE(s == CLXP_OK);
    const pk_value *root = pk_root(d);
    CHECK(root->kind == PK_DICT && root->n == 3 && root->state != NULL);
    const pk_value *c = pk_dict_get(root, "c");
    REQUIRE(c && c->kind == PK_LIST && c->n == 8);
    CHECK(c->items[0]->i == 1 && c->items[1]->i == 258 && c->items[2]->i == -1 && c->items[3]->i == -32768);
    CHECK(c->items[4]->kind == PK_FLOAT && c->items[4]->f == 1.0);
    CHECK(c->items[5]->kind == PK_NONE && c->items[6]->kind == PK_BOOL && c->items[6]->i == 1 && c->items[7]->i == 0);
    const pk_value *a = pk_dict_get(root, "a"), *b = pk_dict_get(root, "b");
    REQUIRE(a && b && a->kind == PK_TENSOR && b->kind == PK_TENSOR);
    CHECK(a->tensor->storage == b->tensor->storage); /* one storage object per key */
    char desc[200];
    pk_describe(root, desc, sizeof desc);
    CHECK_STR(desc, "dict with 3 entries ('a', 'b', 'c')");
    pk_describe(a, desc, sizeof desc);
    CHECK_STR(desc, "tensor F32 [2, 2]");
    pk_free(d);
    /* through an archive: b is the transposed view of a */
    bbuf z = {0};
    make_archive(&z, &p, NULL, 0);
    torch_file *f = NULL;
    REQUIRE(torch_open_memory(z.p, z.n, "rich.pt", &f, &err) == CLXP_OK);
    const float *fa = torch_find(f, "a")->data, *fb = torch_find(f, "b")->data;
    CHECK(fa[1] == fb[2] && fa[2] == fb[1] && fb[1] == 0.5f);
    torch_close(f);
    bb_free(&z);
    bb_free(&p);
}

TEST(truncations_and_mutations) {
    bbuf p = {0};
    rich_pickle(&p);
    pk_options opt = {"m", 1};
    int ok = 0, failed = 0;
    /* every truncation */
    for (size_t n = 0; n < p.n; n++) {
        pk_doc *d = NULL;
        clxp_error err = {0};
        if (pk_parse(p.p, n, &opt, &d, &err) == CLXP_OK) {
            ok++;
            pk_free(d);
        } else {
            failed += err.msg[0] != 0;
        }
    }
    CHECK_EQ_INT(ok, 0);
    CHECK_EQ_INT(failed, (int)p.n);
    /* random byte mutations of the pickle */
    uint32_t seed = 12345;
    bbuf m = {0};
    for (int iter = 0; iter < 10000; iter++) {
        m.n = 0;
        bb_put(&m, p.p, p.n);
        int k = 1 + (int)(rng_next(&seed) % 4);
        for (int j = 0; j < k; j++) m.p[rng_next(&seed) % m.n] = (uint8_t)rng_next(&seed);
        pk_doc *d = NULL;
        clxp_error err = {0};
        clxp_status s = pk_parse(m.p, m.n, &opt, &d, &err);
        if (s == CLXP_OK) {
            char desc[256];
            pk_describe(pk_root(d), desc, sizeof desc);
            pk_free(d);
        } else {
            CHECK(err.msg[0] != 0);
        }
        /* through the archive reader too (CRC recomputed by the builder), every 10th */
        if (iter % 10 == 0) {
            bbuf z = {0};
            make_archive(&z, &m, NULL, 0);
            torch_file *f = NULL;
            if (torch_open_memory(z.p, z.n, "mut.pt", &f, &err) == CLXP_OK) {
                unsigned sum = 0;
                for (int i = 0; i < torch_count(f); i++) {
                    const st_tensor *t = torch_at(f, i);
                    for (size_t b = 0; b < t->nbytes; b++) sum += ((const uint8_t *)t->data)[b];
                }
                (void)sum;
                torch_close(f);
            }
            bb_free(&z);
        }
    }
    bb_free(&m);
    bb_free(&p);
    /* random mutations of whole fixture archives (zip structures included) */
    for (int fi = 0; fi < 2; fi++) {
        bbuf z = {0};
        REQUIRE(read_file(fixture(fi ? "scripted.pt" : "torch2x.pt"), &z));
        for (int iter = 0; iter < 1500; iter++) {
            m.n = 0;
            bb_put(&m, z.p, z.n);
            int k = 1 + (int)(rng_next(&seed) % 3);
            for (int j = 0; j < k; j++) {
                /* mostly the central directory and end records (the data is CRC-protected) */
                size_t at =
                    rng_next(&seed) % 2 ? m.n - 1 - rng_next(&seed) % (m.n < 2000 ? m.n : 2000) : rng_next(&seed) % m.n;
                m.p[at] = (uint8_t)rng_next(&seed);
            }
            torch_file *f = NULL;
            clxp_error err = {0};
            if (torch_open_memory(m.p, m.n, "mut.pt", &f, &err) == CLXP_OK) {
                unsigned sum = 0;
                for (int i = 0; i < torch_count(f); i++) {
                    const st_tensor *t = torch_at(f, i);
                    for (size_t b = 0; b < t->nbytes; b++) sum += ((const uint8_t *)t->data)[b];
                }
                (void)sum;
                torch_close(f);
            } else {
                CHECK(err.msg[0] != 0);
            }
        }
        bb_free(&m);
        bb_free(&z);
    }
}

int main(void) {
    const char *base = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/clxp-torch-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        printf("cannot create a temporary directory\n");
        return 1;
    }
    RUN(sha256_known_answer);
    RUN(fixtures_match_expected);
    RUN(state_dict_kinds_and_views);
    RUN(torchscript_tree);
    RUN(shared_openclip_files);
    RUN(shared_msclap_pth);
    RUN(forbidden_globals);
    RUN(unsupported_opcodes);
    RUN(zip_damage);
    RUN(records);
    RUN(storage_checks);
    RUN(deep_nesting);
    RUN(unknown_torchscript_layouts);
    RUN(rich_pickle_parses);
    RUN(truncations_and_mutations);
    rmdir(tmp_dir);
    return test_summary();
}
