/* safetensors writer round trip through the reader (st_open/st_find/st_metadata), the writer's own input
 * checks, and the reader's rejection of corrupt files (truncated, header length beyond the file, offsets out
 * of range, overlapping offsets, unknown dtype, duplicate names, size mismatch, bad JSON). */
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "io/safetensors_write.h"
#include "test.h"

static char tmp_dir[4096];

/* A path inside the test's temporary directory (static buffer: use before the next call). */
static const char *tmp_path(const char *name) {
    static char buf[4200];
    snprintf(buf, sizeof buf, "%s/%s", tmp_dir, name);
    return buf;
}

static long file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

/* Number of entries in the temporary directory (to catch leftover temp files). */
static int dir_entries(void) {
    DIR *d = opendir(tmp_dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

/* Writes a raw safetensors file: little-endian u64 length of hdr, hdr, then data_len bytes of data. */
static int write_raw(const char *path, uint64_t hlen, const char *hdr, size_t data_len) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hlen >> (8 * i));
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(hdr, 1, strlen(hdr), f) == strlen(hdr);
    for (size_t i = 0; i < data_len && ok; i++) ok = fputc((int)(i & 0xff), f) != EOF;
    return fclose(f) == 0 && ok;
}

/* st_open must fail on path with code, leave *out NULL, and mention needle in its message. */
static void expect_reject(const char *path, clxp_status code, const char *needle) {
    st_file *f = (st_file *)1;
    clxp_error err = {0};
    clxp_status st = st_open(path, &f, &err);
    CHECK_EQ_INT(st, code);
    CHECK(f == NULL);
    CHECK_CONTAINS(err.msg, needle);
    if (st == CLXP_OK) st_close(f);
}

TEST(round_trip) {
    const float a[6] = {1, -2, 3.5f, 0, 1e-30f, -7};
    const uint16_t h[4] = {0x3c00, 0xc000, 0x0001, 0x7bff}; /* 1, -2, smallest subnormal, 65504 */
    const int64_t s64 = -1234567890123LL;
    const uint8_t bytes[3] = {1, 2, 255};
    const int64_t sa[2] = {2, 3}, sh[1] = {4}, sb[3] = {1, 3, 1}, sz[2] = {5, 0};
    /* given out of order: the file must hold them sorted */
    st_write_tensor ts[] = {
        {"z.weight", ST_F32, 2, sa, a},
        {"a.half", ST_F16, 1, sh, h},
        {"m.scalar", ST_I64, 0, NULL, &s64},
        {"b \"quoted\"\n\\name", ST_U8, 3, sb, bytes},
        {"empty", ST_F32, 2, sz, NULL},
        {"\xc3\xa9t\xc3\xa9", ST_BF16, 1, sh, h},
    };
    const int n = (int)(sizeof ts / sizeof ts[0]);
    st_write_meta meta[] = {{"format", "pt"}, {"note", "tab\there \"q\" \xe2\x82\xac"}};
    const char *path = tmp_path("rt.safetensors");
    clxp_error err = {0};
    REQUIRE(st_write(path, ts, n, meta, 2, &err) == CLXP_OK);

    st_file *f = NULL;
    clxp_status st = st_open(path, &f, &err);
    if (st != CLXP_OK) printf("  %s\n", err.msg);
    REQUIRE(st == CLXP_OK);
    CHECK_EQ_INT(st_count(f), n);
    for (int i = 0; i < n; i++) {
        const st_tensor *t = st_find(f, ts[i].name);
        CHECK(t != NULL);
        if (!t) continue;
        CHECK_EQ_INT(t->dtype, ts[i].dtype);
        CHECK_EQ_INT(t->ndim, ts[i].ndim);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim && d < ts[i].ndim; d++) {
            CHECK_EQ_INT(t->shape[d], ts[i].shape[d]);
            numel *= ts[i].shape[d];
        }
        CHECK_EQ_INT(t->numel, numel);
        CHECK_EQ_INT(t->nbytes, (size_t)numel * st_dtype_size(ts[i].dtype));
        if (t->nbytes) CHECK(memcmp(t->data, ts[i].data, t->nbytes) == 0);
    }
    CHECK_STR(st_metadata(f, "format"), "pt");
    CHECK_STR(st_metadata(f, "note"), "tab\there \"q\" \xe2\x82\xac");
    CHECK(st_metadata(f, "absent") == NULL);
    CHECK(st_find(f, "__metadata__") == NULL);

    /* data section: contiguous, in sorted-name order (st_at iterates sorted by name), starting 8-aligned */
    const st_tensor *z = st_find(f, "z.weight");
    float back[6];
    REQUIRE(z && st_to_f32(z, back, &err) == CLXP_OK);
    CHECK(memcmp(back, a, sizeof a) == 0);
    const uint8_t *prev_end = NULL;
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        if (i > 0) CHECK(strcmp(st_at(f, i - 1)->name, t->name) < 0);
        if (prev_end) CHECK((const uint8_t *)t->data == prev_end);
        prev_end = (const uint8_t *)t->data + t->nbytes;
    }
    const st_tensor *first = st_at(f, 0);
    CHECK(((uintptr_t)first->data % 8) == 0); /* mapping is page aligned; 8 + header length is a multiple of 8 */
    st_close(f);

    /* header: length multiple of 8, JSON padded with spaces, metadata first, no leftover temp file */
    FILE *fp = fopen(path, "rb");
    REQUIRE(fp);
    unsigned char len8[8];
    REQUIRE(fread(len8, 1, 8, fp) == 8);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | len8[i];
    CHECK_EQ_INT(hlen % 8, 0);
    char *hdr = calloc(1, (size_t)hlen + 1);
    REQUIRE(hdr);
    CHECK(fread(hdr, 1, (size_t)hlen, fp) == hlen);
    fclose(fp);
    CHECK(strncmp(hdr, "{\"__metadata__\":{\"format\":\"pt\",", 31) == 0);
    size_t end = strlen(hdr);
    while (end > 0 && hdr[end - 1] == ' ') end--;
    CHECK(end > 0 && hdr[end - 1] == '}');
    CHECK(strstr(hdr, "\"a.half\"") < strstr(hdr, "\"z.weight\""));
    free(hdr);
    CHECK_EQ_INT(dir_entries(), 1);
    unlink(path);
}

TEST(empty_and_overwrite) {
    const char *path = tmp_path("empty.safetensors");
    clxp_error err = {0};
    REQUIRE(st_write(path, NULL, 0, NULL, 0, &err) == CLXP_OK);
    CHECK_EQ_INT(file_size(path), 16); /* "{}" padded to 8 bytes */
    st_file *f = NULL;
    REQUIRE(st_open(path, &f, &err) == CLXP_OK);
    CHECK_EQ_INT(st_count(f), 0);
    st_close(f);

    /* rewriting replaces the file */
    const float v = 42.0f;
    st_write_tensor t = {"x", ST_F32, 0, NULL, &v};
    REQUIRE(st_write(path, &t, 1, NULL, 0, &err) == CLXP_OK);
    REQUIRE(st_open(path, &f, &err) == CLXP_OK);
    const st_tensor *x = st_find(f, "x");
    CHECK(x && x->ndim == 0 && x->numel == 1 && *(const float *)x->data == 42.0f);
    st_close(f);
    CHECK_EQ_INT(dir_entries(), 1);
    unlink(path);
}

TEST(writer_rejects_bad_input) {
    const float v[2] = {1, 2};
    const int64_t s2[1] = {2}, neg[1] = {-1};
    const char *path = tmp_path("bad.safetensors");
    clxp_error err = {0};
    st_write_tensor dup[] = {{"w", ST_F32, 1, s2, v}, {"w", ST_F32, 1, s2, v}};
    CHECK_EQ_INT(st_write(path, dup, 2, NULL, 0, &err), CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "duplicate tensor name");
    st_write_tensor empty_name = {"", ST_F32, 1, s2, v};
    CHECK_EQ_INT(st_write(path, &empty_name, 1, NULL, 0, &err), CLXP_ERR_INVALID);
    st_write_tensor reserved = {"__metadata__", ST_F32, 1, s2, v};
    CHECK_EQ_INT(st_write(path, &reserved, 1, NULL, 0, &err), CLXP_ERR_INVALID);
    st_write_tensor bad_utf8 = {"\xff", ST_F32, 1, s2, v};
    CHECK_EQ_INT(st_write(path, &bad_utf8, 1, NULL, 0, &err), CLXP_ERR_INVALID);
    st_write_tensor bad_dtype = {"w", (st_dtype)99, 1, s2, v};
    CHECK_EQ_INT(st_write(path, &bad_dtype, 1, NULL, 0, &err), CLXP_ERR_INVALID);
    st_write_tensor bad_shape = {"w", ST_F32, 1, neg, v};
    CHECK_EQ_INT(st_write(path, &bad_shape, 1, NULL, 0, &err), CLXP_ERR_INVALID);
    st_write_tensor too_many_dims = {"w", ST_F32, ST_MAX_DIMS + 1, s2, v};
    CHECK_EQ_INT(st_write(path, &too_many_dims, 1, NULL, 0, &err), CLXP_ERR_INVALID);
    st_write_tensor no_data = {"w", ST_F32, 1, s2, NULL};
    CHECK_EQ_INT(st_write(path, &no_data, 1, NULL, 0, &err), CLXP_ERR_INVALID);
    st_write_meta dup_meta[] = {{"k", "1"}, {"k", "2"}};
    CHECK_EQ_INT(st_write(path, NULL, 0, dup_meta, 2, &err), CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "duplicate metadata key");
    CHECK_EQ_INT(st_write(tmp_path("no/such/dir/x.safetensors"), NULL, 0, NULL, 0, &err), CLXP_ERR_IO);
    CHECK_CONTAINS(err.msg, "no/such/dir/x.safetensors");
    CHECK_EQ_INT(dir_entries(), 0); /* nothing created, no temp file left behind */
}

TEST(reader_rejects_corrupt_files) {
    const char *path = tmp_path("corrupt.safetensors");
    const float v[4] = {1, 2, 3, 4};
    const int64_t s4[1] = {4};
    st_write_tensor t[2] = {{"w1", ST_F32, 1, s4, v}, {"w2", ST_F32, 1, s4, v}};
    clxp_error err = {0};

    /* truncated: a valid file missing its last bytes (the last tensor, then every tensor, no longer fits) */
    REQUIRE(st_write(path, t, 2, NULL, 0, &err) == CLXP_OK);
    long size = file_size(path);
    REQUIRE(size > 32 && truncate(path, size - 4) == 0);
    expect_reject(path, CLXP_ERR_FORMAT, "outside");
    REQUIRE(truncate(path, size - 20) == 0);
    expect_reject(path, CLXP_ERR_FORMAT, "more bytes than the file holds");
    REQUIRE(truncate(path, 5) == 0);
    expect_reject(path, CLXP_ERR_FORMAT, "too short");

    /* header length beyond the file */
    const char *ok_hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    REQUIRE(write_raw(path, strlen(ok_hdr) + 100, ok_hdr, 8));
    expect_reject(path, CLXP_ERR_FORMAT, "header length");
    REQUIRE(write_raw(path, UINT64_MAX, ok_hdr, 8));
    expect_reject(path, CLXP_ERR_FORMAT, "header length");
    /* the same header with the right length is fine (checks write_raw itself) */
    REQUIRE(write_raw(path, strlen(ok_hdr), ok_hdr, 8));
    st_file *f = NULL;
    CHECK_EQ_INT(st_open(path, &f, &err), CLXP_OK);
    st_close(f);

    /* offsets out of range */
    const char *oob = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}";
    REQUIRE(write_raw(path, strlen(oob), oob, 8));
    expect_reject(path, CLXP_ERR_FORMAT, "outside");
    const char *reversed = "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}";
    REQUIRE(write_raw(path, strlen(reversed), reversed, 8));
    expect_reject(path, CLXP_ERR_FORMAT, "begin <= end");
    const char *negative = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}";
    REQUIRE(write_raw(path, strlen(negative), negative, 8));
    expect_reject(path, CLXP_ERR_FORMAT, "data_offsets");

    /* overlapping offsets */
    const char *overlap = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
    REQUIRE(write_raw(path, strlen(overlap), overlap, 12));
    expect_reject(path, CLXP_ERR_FORMAT, "overlap");
    const char *inside = "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                         "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]}}";
    REQUIRE(write_raw(path, strlen(inside), inside, 16));
    expect_reject(path, CLXP_ERR_FORMAT, "overlap");

    /* unknown dtype */
    const char *f8 = "{\"w\":{\"dtype\":\"F8\",\"shape\":[2],\"data_offsets\":[0,2]}}";
    REQUIRE(write_raw(path, strlen(f8), f8, 2));
    expect_reject(path, CLXP_ERR_UNSUPPORTED, "unknown dtype");

    /* duplicate names (disjoint data) */
    const char *dup = "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                      "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
    REQUIRE(write_raw(path, strlen(dup), dup, 8));
    expect_reject(path, CLXP_ERR_FORMAT, "duplicate");

    /* shape x dtype disagreeing with the offsets; malformed JSON; header not an object */
    const char *mismatch = "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}";
    REQUIRE(write_raw(path, strlen(mismatch), mismatch, 12));
    expect_reject(path, CLXP_ERR_FORMAT, "needs");
    const char *bad_json = "{\"w\":{\"dtype\":\"F32\",";
    REQUIRE(write_raw(path, strlen(bad_json), bad_json, 0));
    expect_reject(path, CLXP_ERR_FORMAT, "");
    REQUIRE(write_raw(path, 2, "[]", 0));
    expect_reject(path, CLXP_ERR_FORMAT, "not a JSON object");
    unlink(path);
}

int main(void) {
    const char *base = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/clxp-st-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        printf("cannot create a temporary directory\n");
        return 1;
    }
    RUN(round_trip);
    RUN(empty_and_overwrite);
    RUN(writer_rejects_bad_input);
    RUN(reader_rejects_corrupt_files);
    rmdir(tmp_dir);
    return test_summary();
}
