/* Bad inputs at the library level: every broken model file, image or path must give the documented status
 * code and a one-line message that names the offending file and the cause, and no model.
 *
 * Each model case builds a temporary directory (mkdtemp under $TMPDIR or /tmp) of symlinks to the good
 * files of tests/data/clip-tiny-quickgelu, with exactly one file replaced by a broken variant generated
 * here (safetensors headers are parsed and re-emitted with cJSON), then calls clxp_model_load.
 * Labels files are covered through the CLI in tests/cli/test_cli.sh.
 * CLXP_TEST_VERBOSE=1 prints every message checked. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavutil/log.h>

#include "clxp.h"
#include "test.h"

#define GOOD_MODEL "clip-tiny-quickgelu"

/* The files every temporary model directory links to. */
static const char *const model_files[] = {"config.json",         "model.safetensors",       "tokenizer.json",
                                          "preprocessor_config.json", "special_tokens_map.json",
                                          "tokenizer_config.json"};
#define N_MODEL_FILES ((int)(sizeof model_files / sizeof model_files[0]))

/* ---- small file helpers ------------------------------------------------------------------------------ */

/* Whole file into a malloc'd buffer (NUL-terminated); NULL on failure. */
static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t n = 0;
    if (fseek(f, 0, SEEK_END) == 0) {
        long sz = ftell(f);
        if (sz >= 0 && fseek(f, 0, SEEK_SET) == 0) {
            buf = malloc((size_t)sz + 1);
            if (buf && fread(buf, 1, (size_t)sz, f) == (size_t)sz) {
                n = (size_t)sz;
                buf[n] = '\0';
            } else {
                free(buf);
                buf = NULL;
            }
        }
    }
    fclose(f);
    if (buf && len) *len = n;
    return buf;
}

static int write_all(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t put = len ? fwrite(data, 1, len, f) : 0;
    int rc = fclose(f);
    return (put == len && rc == 0) ? 0 : -1;
}

static const char *tmp_root(void) {
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

/* ---- temporary model directories --------------------------------------------------------------------- */

typedef struct {
    char dir[1024];
    char path[PATH_MAX]; /* scratch: tm_path() result */
} tmpmodel;

static const char *tm_path(tmpmodel *t, const char *name) {
    snprintf(t->path, sizeof t->path, "%s/%s", t->dir, name);
    return t->path;
}

/* Removes every entry of the directory, then the directory (the directories hold no subdirectories). */
static void tm_destroy(tmpmodel *t) {
    if (!t->dir[0]) return;
    DIR *d = opendir(t->dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            unlink(tm_path(t, e->d_name));
        }
        closedir(d);
    }
    if (rmdir(t->dir) != 0) printf("  warning: cannot remove %s: %s\n", t->dir, strerror(errno));
    t->dir[0] = '\0';
}

/* An empty temporary directory; returns 0 on success. */
static int tm_create_empty(tmpmodel *t) {
    snprintf(t->dir, sizeof t->dir, "%s/clxp-badinput-XXXXXX", tmp_root());
    if (!mkdtemp(t->dir)) {
        printf("  mkdtemp(%s): %s\n", t->dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* A temporary model directory holding symlinks to the good model's files; returns 0 on success. */
static int tm_create(tmpmodel *t) {
    if (tm_create_empty(t) != 0) return -1;
    for (int i = 0; i < N_MODEL_FILES; i++) {
        char rel[256], target[PATH_MAX];
        snprintf(rel, sizeof rel, GOOD_MODEL "/%s", model_files[i]);
        if (!realpath(test_data(rel), target) || symlink(target, tm_path(t, model_files[i])) != 0) {
            printf("  cannot link %s into %s: %s\n", test_data(rel), t->dir, strerror(errno));
            tm_destroy(t);
            return -1;
        }
    }
    return 0;
}

/* Replace (or create) one file of the directory with the given bytes. */
static int tm_write(tmpmodel *t, const char *name, const void *data, size_t len) {
    const char *p = tm_path(t, name);
    if (unlink(p) != 0 && errno != ENOENT) return -1;
    return write_all(p, data, len);
}

static int tm_write_str(tmpmodel *t, const char *name, const char *text) {
    return tm_write(t, name, text, strlen(text));
}

static int tm_remove(tmpmodel *t, const char *name) { return unlink(tm_path(t, name)); }

/* ---- checks -------------------------------------------------------------------------------------------- */

/* The status, the error's own code, a one-line message naming `file` and containing `cause`. */
static void check_error(const char *what, clxp_status got, const clxp_error *err, clxp_status want, const char *file,
                        const char *cause) {
    int before = test_failed_checks;
    CHECK_EQ_INT(got, want);
    CHECK_EQ_INT(err->code, want);
    CHECK(err->msg[0] != '\0');
    CHECK(strchr(err->msg, '\n') == NULL);
    CHECK(strchr(err->msg, '\r') == NULL);
    CHECK_CONTAINS(err->msg, file);
    CHECK_CONTAINS(err->msg, cause);
    if (test_failed_checks != before || getenv("CLXP_TEST_VERBOSE"))
        printf("  (case: %s; message: \"%s\")\n", what, err->msg);
}

/* clxp_model_load(dir) must fail with `want`, leave no model, and name `file` and `cause`. */
static void expect_load_error(const char *what, const char *dir, clxp_status want, const char *file,
                              const char *cause) {
    clxp_error err;
    memset(&err, 0, sizeof err);
    clxp_model *m = NULL;
    clxp_load_options opt = {.n_threads = 1};
    clxp_status st = clxp_model_load(dir, &opt, &m, &err);
    CHECK(m == NULL);
    clxp_model_free(m);
    check_error(what, st, &err, want, file, cause);
}

/* Same for a temporary model directory whose file `name` is the broken one. */
static void expect_tm_error(const char *what, tmpmodel *t, const char *name, clxp_status want, const char *cause) {
    char file[sizeof t->path];
    snprintf(file, sizeof file, "%s", tm_path(t, name));
    expect_load_error(what, t->dir, want, file, cause);
}

/* ---- config.json variants ---------------------------------------------------------------------------- */

static cJSON *good_config(void) {
    char *text = read_all(test_data(GOOD_MODEL "/config.json"), NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    return j;
}

/* Writes config.json with section.key (section NULL: top level) set to the JSON value `value_json`. */
static int write_config_with(tmpmodel *t, const char *section, const char *key, const char *value_json) {
    cJSON *root = good_config(), *val = cJSON_Parse(value_json);
    cJSON *obj = root && section ? cJSON_GetObjectItemCaseSensitive(root, section) : root;
    int rc = -1;
    if (obj && val && cJSON_ReplaceItemInObjectCaseSensitive(obj, key, val)) {
        val = NULL;
        char *s = cJSON_Print(root);
        if (s) rc = tm_write_str(t, "config.json", s);
        free(s);
    }
    cJSON_Delete(val);
    cJSON_Delete(root);
    return rc;
}

/* ---- model.safetensors variants ---------------------------------------------------------------------- */

static char *g_st;      /* the good model.safetensors */
static size_t g_st_len;
static size_t g_st_hlen; /* its header length */

static int load_good_safetensors(void) {
    if (g_st) return 0;
    g_st = read_all(test_data(GOOD_MODEL "/model.safetensors"), &g_st_len);
    if (!g_st || g_st_len < 8) return -1;
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = (h << 8) | (unsigned char)g_st[i];
    if (h > g_st_len - 8) return -1;
    g_st_hlen = (size_t)h;
    return 0;
}

static cJSON *good_header(void) {
    if (load_good_safetensors() != 0) return NULL;
    return cJSON_ParseWithLength(g_st + 8, g_st_hlen);
}

static void put_le64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Writes model.safetensors with the header `hdr` followed by the good file's data section. */
static int write_safetensors(tmpmodel *t, const cJSON *hdr) {
    char *h = cJSON_PrintUnformatted(hdr);
    if (!h) return -1;
    size_t hl = strlen(h), data_len = g_st_len - 8 - g_st_hlen;
    unsigned char *buf = malloc(8 + hl + data_len);
    int rc = -1;
    if (buf) {
        put_le64(buf, hl);
        memcpy(buf + 8, h, hl);
        memcpy(buf + 8 + hl, g_st + 8 + g_st_hlen, data_len);
        rc = tm_write(t, "model.safetensors", buf, 8 + hl + data_len);
    }
    free(buf);
    free(h);
    return rc;
}

static cJSON *tensor_entry(cJSON *hdr, const char *name) {
    cJSON *e = cJSON_GetObjectItemCaseSensitive(hdr, name);
    return cJSON_IsObject(e) ? e : NULL;
}

/* Replace field `field` of tensor `name` with the JSON value `value_json`. */
static int set_tensor_field(cJSON *hdr, const char *name, const char *field, const char *value_json) {
    cJSON *e = tensor_entry(hdr, name), *val = cJSON_Parse(value_json);
    if (e && val && cJSON_ReplaceItemInObjectCaseSensitive(e, field, val)) return 0;
    cJSON_Delete(val);
    return -1;
}

static uint64_t tensor_offset(cJSON *hdr, const char *name, int which) {
    cJSON *e = tensor_entry(hdr, name);
    cJSON *off = e ? cJSON_GetObjectItemCaseSensitive(e, "data_offsets") : NULL;
    cJSON *v = cJSON_GetArrayItem(off, which);
    return cJSON_IsNumber(v) ? (uint64_t)v->valuedouble : 0;
}

/* Writes a copy of the good model.safetensors with one header field changed; returns 0 on success. */
static int write_safetensors_with(tmpmodel *t, const char *tensor, const char *field, const char *value_json) {
    cJSON *hdr = good_header();
    int rc = hdr && set_tensor_field(hdr, tensor, field, value_json) == 0 ? write_safetensors(t, hdr) : -1;
    cJSON_Delete(hdr);
    return rc;
}

/* The first `len` bytes of the good model.safetensors. */
static int write_safetensors_prefix(tmpmodel *t, size_t len) {
    if (load_good_safetensors() != 0 || len > g_st_len) return -1;
    return tm_write(t, "model.safetensors", g_st, len);
}

/* The good model.safetensors with its 8-byte header length replaced. */
static int write_safetensors_hlen(tmpmodel *t, uint64_t hlen) {
    if (load_good_safetensors() != 0) return -1;
    unsigned char *buf = malloc(g_st_len);
    if (!buf) return -1;
    memcpy(buf, g_st, g_st_len);
    put_le64(buf, hlen);
    int rc = tm_write(t, "model.safetensors", buf, g_st_len);
    free(buf);
    return rc;
}

/* ---- tokenizer.json variants ------------------------------------------------------------------------- */

/* Writes tokenizer.json with top-level `key` replaced by `value_json`. */
static int write_tokenizer_with(tmpmodel *t, const char *key, const char *value_json) {
    char *text = read_all(test_data(GOOD_MODEL "/tokenizer.json"), NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL, *val = cJSON_Parse(value_json);
    free(text);
    int rc = -1;
    if (root && val && cJSON_ReplaceItemInObjectCaseSensitive(root, key, val)) {
        val = NULL;
        char *s = cJSON_PrintUnformatted(root);
        if (s) rc = tm_write_str(t, "tokenizer.json", s);
        free(s);
    }
    cJSON_Delete(val);
    cJSON_Delete(root);
    return rc;
}

/* ---- tests: the harness itself ----------------------------------------------------------------------- */

/* An untouched temporary directory loads: every failure below is caused by its one broken file. */
TEST(temp_model_dir_loads) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    clxp_error err;
    memset(&err, 0, sizeof err);
    clxp_model *m = NULL;
    clxp_load_options opt = {.n_threads = 1};
    clxp_status st = clxp_model_load(t.dir, &opt, &m, &err);
    if (st != CLXP_OK) printf("  %s\n", err.msg);
    CHECK_EQ_INT(st, CLXP_OK);
    CHECK(m != NULL);
    clxp_model_free(m);
    /* a re-emitted, unchanged header loads too (the writer is faithful) */
    cJSON *hdr = good_header();
    REQUIRE(hdr != NULL);
    CHECK(write_safetensors(&t, hdr) == 0);
    cJSON_Delete(hdr);
    m = NULL;
    st = clxp_model_load(t.dir, &opt, &m, &err);
    if (st != CLXP_OK) printf("  %s\n", err.msg);
    CHECK_EQ_INT(st, CLXP_OK);
    clxp_model_free(m);
    tm_destroy(&t);
}

/* ---- tests: the model directory ---------------------------------------------------------------------- */

TEST(model_dir_missing) {
    tmpmodel t;
    REQUIRE(tm_create_empty(&t) == 0);
    char gone[sizeof t.path];
    snprintf(gone, sizeof gone, "%s", tm_path(&t, "no-such-model"));
    expect_load_error("non-existent model dir", gone, CLXP_ERR_IO, gone, "does not exist");
    tm_destroy(&t);
}

TEST(model_dir_is_a_file) {
    const char *file = test_data(GOOD_MODEL "/config.json");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", file);
    expect_load_error("model path is a file", path, CLXP_ERR_IO, path, "is a file");
}

TEST(model_dir_empty_name) {
    clxp_error err;
    memset(&err, 0, sizeof err);
    clxp_model *m = NULL;
    clxp_status st = clxp_model_load("", NULL, &m, &err);
    CHECK_EQ_INT(st, CLXP_ERR_INVALID);
    CHECK(m == NULL);
    CHECK(strchr(err.msg, '\n') == NULL);
    CHECK_CONTAINS(err.msg, "model directory");
}

TEST(model_dir_empty) {
    tmpmodel t;
    REQUIRE(tm_create_empty(&t) == 0);
    char file[sizeof t.path];
    snprintf(file, sizeof file, "%s", tm_path(&t, "config.json"));
    expect_load_error("empty model dir", t.dir, CLXP_ERR_IO, file, "cannot open");
    tm_destroy(&t);
}

/* ---- tests: config.json ------------------------------------------------------------------------------ */

TEST(config_missing) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    REQUIRE(tm_remove(&t, "config.json") == 0);
    expect_tm_error("missing config.json", &t, "config.json", CLXP_ERR_IO, "cannot open");
    tm_destroy(&t);
}

TEST(config_malformed_json) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    REQUIRE(tm_write_str(&t, "config.json", "{\n  \"model_type\": \"clip\",\n  \"projection_dim\": 32,\n") == 0);
    expect_tm_error("truncated config.json", &t, "config.json", CLXP_ERR_FORMAT, "malformed JSON");
    REQUIRE(tm_write_str(&t, "config.json", "{\"model_type\": \"clip\" \"projection_dim\": 32}") == 0);
    expect_tm_error("config.json missing a comma", &t, "config.json", CLXP_ERR_FORMAT, "malformed JSON");
    REQUIRE(tm_write_str(&t, "config.json", "") == 0);
    expect_tm_error("zero-byte config.json", &t, "config.json", CLXP_ERR_FORMAT, "malformed JSON");
    REQUIRE(tm_write_str(&t, "config.json", "{\"model_type\": \"clip\xff\"}") == 0);
    expect_tm_error("config.json with invalid UTF-8", &t, "config.json", CLXP_ERR_FORMAT, "UTF-8");
    tm_destroy(&t);
}

TEST(config_not_an_object) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    REQUIRE(tm_write_str(&t, "config.json", "[1, 2, 3]") == 0);
    expect_tm_error("config.json is an array", &t, "config.json", CLXP_ERR_FORMAT, "not a JSON object");
    tm_destroy(&t);
}

TEST(config_negative_sizes) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    REQUIRE(write_config_with(&t, "vision_config", "hidden_size", "-4") == 0);
    expect_tm_error("vision hidden_size -4", &t, "config.json", CLXP_ERR_INVALID, "vision_config.hidden_size");
    expect_tm_error("vision hidden_size -4", &t, "config.json", CLXP_ERR_INVALID, "out of range");
    REQUIRE(write_config_with(&t, "text_config", "num_hidden_layers", "-1") == 0);
    expect_tm_error("text num_hidden_layers -1", &t, "config.json", CLXP_ERR_INVALID, "text_config.num_hidden_layers");
    REQUIRE(write_config_with(&t, NULL, "projection_dim", "0") == 0);
    expect_tm_error("projection_dim 0", &t, "config.json", CLXP_ERR_INVALID, "projection_dim");
    REQUIRE(write_config_with(&t, "vision_config", "patch_size", "-8") == 0);
    expect_tm_error("vision patch_size -8", &t, "config.json", CLXP_ERR_INVALID, "patch_size");
    REQUIRE(write_config_with(&t, "vision_config", "intermediate_size", "1e12") == 0);
    expect_tm_error("huge intermediate_size", &t, "config.json", CLXP_ERR_FORMAT, "intermediate_size");
    tm_destroy(&t);
}

TEST(config_wrong_types) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    REQUIRE(write_config_with(&t, "vision_config", "hidden_size", "\"64\"") == 0);
    expect_tm_error("hidden_size as a string", &t, "config.json", CLXP_ERR_FORMAT, "must be an integer");
    REQUIRE(write_config_with(&t, "text_config", "hidden_size", "47.5") == 0);
    expect_tm_error("hidden_size 47.5", &t, "config.json", CLXP_ERR_FORMAT, "must be an integer");
    REQUIRE(write_config_with(&t, NULL, "vision_config", "[64]") == 0);
    expect_tm_error("vision_config as an array", &t, "config.json", CLXP_ERR_FORMAT, "must be objects");
    REQUIRE(write_config_with(&t, NULL, "model_type", "\"bert\"") == 0);
    expect_tm_error("model_type bert", &t, "config.json", CLXP_ERR_UNSUPPORTED, "model_type \"bert\" is not supported");
    REQUIRE(write_config_with(&t, "vision_config", "hidden_act", "\"swish\"") == 0);
    expect_tm_error("hidden_act swish", &t, "config.json", CLXP_ERR_UNSUPPORTED, "swish");
    tm_destroy(&t);
}

TEST(config_hidden_not_divisible_by_heads) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    REQUIRE(write_config_with(&t, "text_config", "num_attention_heads", "5") == 0);
    expect_tm_error("text 48 / 5 heads", &t, "config.json", CLXP_ERR_INVALID, "not divisible");
    expect_tm_error("text 48 / 5 heads", &t, "config.json", CLXP_ERR_INVALID, "text_config.hidden_size");
    REQUIRE(write_config_with(&t, "vision_config", "hidden_size", "66") == 0);
    expect_tm_error("vision 66 / 4 heads", &t, "config.json", CLXP_ERR_INVALID, "not divisible");
    REQUIRE(write_config_with(&t, "vision_config", "image_size", "33") == 0);
    expect_tm_error("image 33 / patch 8", &t, "config.json", CLXP_ERR_INVALID, "not a multiple of patch_size");
    tm_destroy(&t);
}

/* A config that is valid on its own but does not match the weights: the first tensor checked has the
 * wrong shape. */
TEST(config_mismatches_weights) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    REQUIRE(write_config_with(&t, "vision_config", "hidden_size", "128") == 0);
    expect_tm_error("vision hidden 128 vs 64 in the weights", &t, "model.safetensors", CLXP_ERR_FORMAT, "has shape");
    tm_destroy(&t);
}

/* ---- tests: model.safetensors ------------------------------------------------------------------------- */

TEST(weights_missing) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    REQUIRE(tm_remove(&t, "model.safetensors") == 0);
    /* names the directory that lacks it, and the file it looked for */
    expect_load_error("missing model.safetensors", t.dir, CLXP_ERR_IO, t.dir, "no model.safetensors");
    tm_destroy(&t);
}

TEST(weights_truncated) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    REQUIRE(load_good_safetensors() == 0);
    /* the last tensor loses its final bytes */
    REQUIRE(write_safetensors_prefix(&t, g_st_len - 100) == 0);
    expect_tm_error("last 100 bytes cut", &t, "model.safetensors", CLXP_ERR_FORMAT, "truncated");
    /* half the data section is gone: whichever tensor is checked first no longer fits */
    REQUIRE(write_safetensors_prefix(&t, g_st_len / 2) == 0);
    {
        clxp_error err;
        memset(&err, 0, sizeof err);
        clxp_model *m = NULL;
        clxp_status st = clxp_model_load(t.dir, NULL, &m, &err);
        check_error("cut in half", st, &err, CLXP_ERR_FORMAT, tm_path(&t, "model.safetensors"), "tensor");
        CHECK(strstr(err.msg, "truncated") || strstr(err.msg, "more bytes than the file holds"));
        CHECK(m == NULL);
        clxp_model_free(m);
    }
    /* only part of the header is left */
    REQUIRE(write_safetensors_prefix(&t, 8 + g_st_hlen / 2) == 0);
    expect_tm_error("header cut", &t, "model.safetensors", CLXP_ERR_FORMAT, "header length");
    /* not even the 8-byte length */
    REQUIRE(write_safetensors_prefix(&t, 5) == 0);
    expect_tm_error("5 bytes", &t, "model.safetensors", CLXP_ERR_FORMAT, "too short");
    REQUIRE(write_safetensors_prefix(&t, 0) == 0);
    expect_tm_error("zero bytes", &t, "model.safetensors", CLXP_ERR_FORMAT, "too short");
    /* the header alone, no data at all */
    REQUIRE(write_safetensors_prefix(&t, 8 + g_st_hlen) == 0);
    {
        clxp_error err;
        memset(&err, 0, sizeof err);
        clxp_model *m = NULL;
        clxp_status st = clxp_model_load(t.dir, NULL, &m, &err);
        check_error("header only", st, &err, CLXP_ERR_FORMAT, tm_path(&t, "model.safetensors"), "tensor");
        CHECK(strstr(err.msg, "truncated") || strstr(err.msg, "more bytes than the file holds"));
        clxp_model_free(m);
    }
    tm_destroy(&t);
}

TEST(weights_header_length_beyond_file) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    REQUIRE(load_good_safetensors() == 0);
    REQUIRE(write_safetensors_hlen(&t, (uint64_t)g_st_len - 8 + 1) == 0);
    expect_tm_error("header length one past the end", &t, "model.safetensors", CLXP_ERR_FORMAT, "header length");
    REQUIRE(write_safetensors_hlen(&t, UINT64_MAX) == 0);
    expect_tm_error("header length 2^64-1", &t, "model.safetensors", CLXP_ERR_FORMAT, "header length");
    REQUIRE(write_safetensors_hlen(&t, (uint64_t)1 << 40) == 0);
    expect_tm_error("header length 1 TiB", &t, "model.safetensors", CLXP_ERR_FORMAT, "header length");
    /* a header length inside the file that cuts the JSON short */
    REQUIRE(write_safetensors_hlen(&t, (uint64_t)g_st_hlen / 2) == 0);
    expect_tm_error("header length too small", &t, "model.safetensors", CLXP_ERR_FORMAT, "malformed JSON");
    tm_destroy(&t);
}

TEST(weights_header_not_json_object) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    REQUIRE(load_good_safetensors() == 0);
    cJSON *arr = cJSON_CreateArray();
    REQUIRE(arr != NULL);
    CHECK(write_safetensors(&t, arr) == 0);
    cJSON_Delete(arr);
    expect_tm_error("header is []", &t, "model.safetensors", CLXP_ERR_FORMAT, "not a JSON object");
    tm_destroy(&t);
}

TEST(weights_offsets_out_of_range) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    REQUIRE(load_good_safetensors() == 0);
    const unsigned long long data_len = g_st_len - 8 - g_st_hlen;
    char v[128];
    /* entirely past the end */
    snprintf(v, sizeof v, "[%llu, %llu]", data_len + 1000, data_len + 1004);
    REQUIRE(write_safetensors_with(&t, "logit_scale", "data_offsets", v) == 0);
    expect_tm_error("offsets past the end", &t, "model.safetensors", CLXP_ERR_FORMAT, "outside");
    expect_tm_error("offsets past the end", &t, "model.safetensors", CLXP_ERR_FORMAT, "logit_scale");
    /* straddling the end */
    snprintf(v, sizeof v, "[%llu, %llu]", data_len - 2, data_len + 2);
    REQUIRE(write_safetensors_with(&t, "logit_scale", "data_offsets", v) == 0);
    expect_tm_error("offsets straddling the end", &t, "model.safetensors", CLXP_ERR_FORMAT, "outside");
    /* beyond 2^53: not representable exactly, refused as a malformed offset */
    REQUIRE(write_safetensors_with(&t, "logit_scale", "data_offsets", "[1e300, 1e300]") == 0);
    expect_tm_error("offsets 1e300", &t, "model.safetensors", CLXP_ERR_FORMAT, "data_offsets");
    /* negative, reversed, wrong arity */
    REQUIRE(write_safetensors_with(&t, "logit_scale", "data_offsets", "[-4, 0]") == 0);
    expect_tm_error("negative offset", &t, "model.safetensors", CLXP_ERR_FORMAT, "data_offsets");
    REQUIRE(write_safetensors_with(&t, "logit_scale", "data_offsets", "[4, 0]") == 0);
    expect_tm_error("end before begin", &t, "model.safetensors", CLXP_ERR_FORMAT, "begin <= end");
    REQUIRE(write_safetensors_with(&t, "logit_scale", "data_offsets", "[0]") == 0);
    expect_tm_error("one offset", &t, "model.safetensors", CLXP_ERR_FORMAT, "data_offsets");
    /* in range, but not the size dtype x shape needs */
    REQUIRE(write_safetensors_with(&t, "logit_scale", "data_offsets", "[0, 8]") == 0);
    expect_tm_error("8 bytes for one F32", &t, "model.safetensors", CLXP_ERR_FORMAT, "bytes of data");
    tm_destroy(&t);
}

TEST(weights_offsets_overlap) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    cJSON *hdr = good_header();
    REQUIRE(hdr != NULL);
    /* two tensors of the same size on the same bytes */
    const char *a = "text_model.encoder.layers.0.layer_norm1.bias";
    const char *b = "text_model.encoder.layers.0.layer_norm1.weight";
    uint64_t b0 = tensor_offset(hdr, b, 0), b1 = tensor_offset(hdr, b, 1);
    REQUIRE(b1 > b0);
    char v[128];
    snprintf(v, sizeof v, "[%llu, %llu]", (unsigned long long)b0, (unsigned long long)b1);
    REQUIRE(set_tensor_field(hdr, a, "data_offsets", v) == 0);
    CHECK(write_safetensors(&t, hdr) == 0);
    cJSON_Delete(hdr);
    expect_tm_error("identical spans", &t, "model.safetensors", CLXP_ERR_FORMAT, "overlap");
    expect_tm_error("identical spans", &t, "model.safetensors", CLXP_ERR_FORMAT, "layer_norm1");

    /* a partial overlap: shifted by 4 bytes into the next tensor */
    hdr = good_header();
    REQUIRE(hdr != NULL);
    uint64_t a0 = tensor_offset(hdr, a, 0), a1 = tensor_offset(hdr, a, 1);
    snprintf(v, sizeof v, "[%llu, %llu]", (unsigned long long)a0 + 4, (unsigned long long)a1 + 4);
    REQUIRE(set_tensor_field(hdr, a, "data_offsets", v) == 0);
    CHECK(write_safetensors(&t, hdr) == 0);
    cJSON_Delete(hdr);
    expect_tm_error("shifted span", &t, "model.safetensors", CLXP_ERR_FORMAT, "overlap");

    /* a small tensor inside a large one */
    hdr = good_header();
    REQUIRE(hdr != NULL);
    uint64_t e0 = tensor_offset(hdr, "text_model.embeddings.token_embedding.weight", 0);
    snprintf(v, sizeof v, "[%llu, %llu]", (unsigned long long)e0 + 4096, (unsigned long long)e0 + 4096 + 4);
    REQUIRE(set_tensor_field(hdr, "logit_scale", "data_offsets", v) == 0);
    CHECK(write_safetensors(&t, hdr) == 0);
    cJSON_Delete(hdr);
    expect_tm_error("nested span", &t, "model.safetensors", CLXP_ERR_FORMAT, "overlap");
    tm_destroy(&t);
}

TEST(weights_unknown_dtype) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    REQUIRE(write_safetensors_with(&t, "visual_projection.weight", "dtype", "\"Q4_K\"") == 0);
    expect_tm_error("dtype Q4_K", &t, "model.safetensors", CLXP_ERR_UNSUPPORTED, "unknown dtype");
    expect_tm_error("dtype Q4_K", &t, "model.safetensors", CLXP_ERR_UNSUPPORTED, "Q4_K");
    REQUIRE(write_safetensors_with(&t, "visual_projection.weight", "dtype", "42") == 0);
    expect_tm_error("dtype 42", &t, "model.safetensors", CLXP_ERR_FORMAT, "dtype");
    /* a known dtype that is not a float type: I32 has the same size as F32 */
    REQUIRE(write_safetensors_with(&t, "visual_projection.weight", "dtype", "\"I32\"") == 0);
    expect_tm_error("dtype I32", &t, "model.safetensors", CLXP_ERR_UNSUPPORTED, "expected a float type");
    tm_destroy(&t);
}

TEST(weights_missing_tensor) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    cJSON *hdr = good_header();
    REQUIRE(hdr != NULL);
    cJSON_DeleteItemFromObjectCaseSensitive(hdr, "vision_model.post_layernorm.bias");
    CHECK(write_safetensors(&t, hdr) == 0);
    cJSON_Delete(hdr);
    expect_tm_error("no post_layernorm.bias", &t, "model.safetensors", CLXP_ERR_FORMAT, "missing tensor");
    expect_tm_error("no post_layernorm.bias", &t, "model.safetensors", CLXP_ERR_FORMAT,
                    "vision_model.post_layernorm.bias");
    /* a tensor renamed: it is missing under its right name */
    hdr = good_header();
    REQUIRE(hdr != NULL);
    cJSON *e = cJSON_DetachItemFromObjectCaseSensitive(hdr, "text_projection.weight");
    REQUIRE(e != NULL);
    cJSON_AddItemToObject(hdr, "text_projection.weights", e);
    CHECK(write_safetensors(&t, hdr) == 0);
    cJSON_Delete(hdr);
    expect_tm_error("text_projection renamed", &t, "model.safetensors", CLXP_ERR_FORMAT, "missing tensor");
    expect_tm_error("text_projection renamed", &t, "model.safetensors", CLXP_ERR_FORMAT, "\"text_projection.weight\"");
    tm_destroy(&t);
}

TEST(weights_unexpected_tensor) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    cJSON *hdr = good_header();
    REQUIRE(hdr != NULL);
    cJSON *extra = cJSON_Parse("{\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [0, 0]}");
    REQUIRE(extra != NULL);
    cJSON_AddItemToObject(hdr, "vision_model.extra_head.weight", extra);
    CHECK(write_safetensors(&t, hdr) == 0);
    cJSON_Delete(hdr);
    expect_tm_error("extra tensor", &t, "model.safetensors", CLXP_ERR_FORMAT, "unexpected tensor");
    expect_tm_error("extra tensor", &t, "model.safetensors", CLXP_ERR_FORMAT, "vision_model.extra_head.weight");
    tm_destroy(&t);
}

TEST(weights_wrong_shape) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    /* same number of bytes, transposed: [32, 64] stored as [64, 32] */
    REQUIRE(write_safetensors_with(&t, "visual_projection.weight", "shape", "[64, 32]") == 0);
    expect_tm_error("transposed projection", &t, "model.safetensors", CLXP_ERR_FORMAT, "has shape [64, 32]");
    expect_tm_error("transposed projection", &t, "model.safetensors", CLXP_ERR_FORMAT, "expected [32, 64]");
    /* same bytes, one more dimension */
    REQUIRE(write_safetensors_with(&t, "visual_projection.weight", "shape", "[1, 32, 64]") == 0);
    expect_tm_error("3-d projection", &t, "model.safetensors", CLXP_ERR_FORMAT, "has shape");
    /* a shape that does not match the byte count */
    REQUIRE(write_safetensors_with(&t, "visual_projection.weight", "shape", "[32, 65]") == 0);
    expect_tm_error("shape [32, 65] for 32x64 floats", &t, "model.safetensors", CLXP_ERR_FORMAT, "bytes of data");
    /* hostile shapes */
    REQUIRE(write_safetensors_with(&t, "visual_projection.weight", "shape", "[-32, 64]") == 0);
    expect_tm_error("negative dimension", &t, "model.safetensors", CLXP_ERR_FORMAT, "shape[0]");
    REQUIRE(write_safetensors_with(&t, "visual_projection.weight", "shape", "[4294967296, 4294967296, 4294967296]") ==
            0);
    expect_tm_error("overflowing shape", &t, "model.safetensors", CLXP_ERR_FORMAT, "shape");
    REQUIRE(write_safetensors_with(&t, "visual_projection.weight", "shape", "[1, 1, 1, 1, 1, 1, 1, 1, 2, 1024]") == 0);
    expect_tm_error("10 dimensions", &t, "model.safetensors", CLXP_ERR_UNSUPPORTED, "dimensions");
    tm_destroy(&t);
}

/* ---- tests: tokenizer.json ---------------------------------------------------------------------------- */

TEST(tokenizer_missing) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    REQUIRE(tm_remove(&t, "tokenizer.json") == 0);
    expect_tm_error("missing tokenizer.json", &t, "tokenizer.json", CLXP_ERR_IO, "missing");
    tm_destroy(&t);
}

TEST(tokenizer_malformed_json) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    /* the good file cut in the middle */
    size_t len = 0;
    char *text = read_all(test_data(GOOD_MODEL "/tokenizer.json"), &len);
    REQUIRE(text != NULL);
    CHECK(tm_write(&t, "tokenizer.json", text, len / 2) == 0);
    free(text);
    expect_tm_error("tokenizer.json cut in half", &t, "tokenizer.json", CLXP_ERR_FORMAT, "JSON");
    REQUIRE(tm_write_str(&t, "tokenizer.json", "") == 0);
    expect_tm_error("zero-byte tokenizer.json", &t, "tokenizer.json", CLXP_ERR_FORMAT, "JSON");
    REQUIRE(tm_write_str(&t, "tokenizer.json", "not json at all") == 0);
    expect_tm_error("tokenizer.json is text", &t, "tokenizer.json", CLXP_ERR_FORMAT, "JSON");
    tm_destroy(&t);
}

/* Valid JSON, but not a tokenizer clxp can build: missing or mistyped model. */
TEST(tokenizer_wrong_structure) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    REQUIRE(tm_write_str(&t, "tokenizer.json", "[]") == 0);
    expect_tm_error("tokenizer.json is []", &t, "tokenizer.json", CLXP_ERR_FORMAT, "JSON object");
    REQUIRE(write_tokenizer_with(&t, "model", "{\"type\": \"WordPiece\", \"vocab\": {}}") == 0);
    expect_tm_error("WordPiece model", &t, "tokenizer.json", CLXP_ERR_UNSUPPORTED, "WordPiece");
    tm_destroy(&t);
}

TEST(tokenizer_unknown_pre_tokenizer) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    REQUIRE(write_tokenizer_with(&t, "pre_tokenizer",
                                 "{\"type\": \"Metaspace\", \"replacement\": \"\\u2581\", \"prepend_scheme\": "
                                 "\"always\", \"split\": true}") == 0);
    expect_tm_error("Metaspace pre-tokenizer", &t, "tokenizer.json", CLXP_ERR_UNSUPPORTED, "pre_tokenizer");
    expect_tm_error("Metaspace pre-tokenizer", &t, "tokenizer.json", CLXP_ERR_UNSUPPORTED, "\"Metaspace\"");
    /* an unknown type nested in a Sequence */
    REQUIRE(write_tokenizer_with(&t, "pre_tokenizer",
                                 "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"ByteLevel\", "
                                 "\"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": true}, "
                                 "{\"type\": \"NoSuchPreTokenizer\"}]}") == 0);
    expect_tm_error("unknown type in a Sequence", &t, "tokenizer.json", CLXP_ERR_UNSUPPORTED, "NoSuchPreTokenizer");
    tm_destroy(&t);
}

/* ---- tests: preprocessor_config.json ------------------------------------------------------------------ */

TEST(preprocessor_config_malformed) {
    tmpmodel t;
    REQUIRE(tm_create(&t) == 0);
    REQUIRE(tm_write_str(&t, "preprocessor_config.json", "{\"crop_size\": {\"height\": 32,") == 0);
    expect_tm_error("truncated preprocessor_config.json", &t, "preprocessor_config.json", CLXP_ERR_FORMAT,
                    "malformed JSON");
    REQUIRE(tm_write_str(&t, "preprocessor_config.json", "{\"image_mean\": [0.5, 0.5]}") == 0);
    expect_tm_error("two-channel mean", &t, "preprocessor_config.json", CLXP_ERR_FORMAT, "image_mean");
    tm_destroy(&t);
}

/* ---- tests: image files ------------------------------------------------------------------------------- */

static clxp_model *g_model; /* the good tiny model, loaded once for the image tests */

/* clxp_encode_image_files on `paths` must fail with `want`, naming `bad` and `cause`. */
static void expect_image_error(const char *what, const char *const *paths, int n, clxp_status want, const char *bad,
                               const char *cause) {
    const clxp_model_info *info = clxp_model_get_info(g_model);
    float *emb = calloc((size_t)n * info->embed_dim, sizeof *emb);
    clxp_error err;
    memset(&err, 0, sizeof err);
    clxp_status st = clxp_encode_image_files(g_model, paths, n, emb, &err);
    check_error(what, st, &err, want, bad, cause);
    free(emb);
}

TEST(images) {
    REQUIRE(g_model != NULL);
    tmpmodel t;
    REQUIRE(tm_create_empty(&t) == 0);
    char good[PATH_MAX], good2[PATH_MAX], empty[PATH_MAX], text[PATH_MAX], cut[PATH_MAX], gone[PATH_MAX],
        dir[PATH_MAX];
    snprintf(good, sizeof good, "%s", test_data(GOOD_MODEL "/golden/inputs/img1_checker_200x120.png"));
    snprintf(good2, sizeof good2, "%s", test_data(GOOD_MODEL "/golden/inputs/img0_gradient_64x48.png"));
    snprintf(empty, sizeof empty, "%s", tm_path(&t, "empty.png"));
    snprintf(text, sizeof text, "%s", tm_path(&t, "notes.png"));
    snprintf(cut, sizeof cut, "%s", tm_path(&t, "truncated.png"));
    snprintf(gone, sizeof gone, "%s", tm_path(&t, "missing.png"));
    snprintf(dir, sizeof dir, "%s", t.dir);

    size_t len = 0;
    char *png = read_all(good, &len);
    REQUIRE(png != NULL);
    CHECK(write_all(empty, "", 0) == 0);
    CHECK(write_all(text, "This is a text file, not a PNG image.\n", 38) == 0);
    CHECK(write_all(cut, png, len / 2) == 0);
    free(png);

    /* the good images encode: the failures below come from the bad file alone */
    const char *ok[2] = {good, good2};
    const clxp_model_info *info = clxp_model_get_info(g_model);
    float *emb = calloc((size_t)2 * info->embed_dim, sizeof *emb);
    clxp_error err;
    memset(&err, 0, sizeof err);
    CHECK_EQ_INT(clxp_encode_image_files(g_model, ok, 2, emb, &err), CLXP_OK);
    free(emb);

    const char *p1[1];
    p1[0] = empty;
    expect_image_error("zero-byte image", p1, 1, CLXP_ERR_FORMAT, empty, "empty file");
    p1[0] = text;
    expect_image_error("text file named .png", p1, 1, CLXP_ERR_FORMAT, text, "not a decodable image");
    p1[0] = cut;
    expect_image_error("truncated PNG", p1, 1, CLXP_ERR_FORMAT, cut, "not a decodable image");
    p1[0] = gone;
    expect_image_error("missing image", p1, 1, CLXP_ERR_IO, gone, "cannot open");
    p1[0] = dir;
    expect_image_error("directory as image", p1, 1, CLXP_ERR_IO, dir, "is a directory");

    /* a bad file among good ones: the error names the bad one */
    const char *mixed[4] = {good, good2, cut, good};
    expect_image_error("truncated PNG among good ones", mixed, 4, CLXP_ERR_FORMAT, cut, "not a decodable image");
    mixed[2] = text;
    expect_image_error("text file among good ones", mixed, 4, CLXP_ERR_FORMAT, text, "not a decodable image");
    mixed[0] = empty;
    mixed[2] = good2;
    expect_image_error("zero-byte file first", mixed, 4, CLXP_ERR_FORMAT, empty, "empty file");

    tm_destroy(&t);
}

int main(void) {
    /* FFmpeg's own decoder chatter (e.g. "Invalid PNG signature") would only clutter the test log; the
     * library reports every failure in clxp_error, which is what is checked here. */
    av_log_set_level(AV_LOG_QUIET);
    RUN(temp_model_dir_loads);
    RUN(model_dir_missing);
    RUN(model_dir_is_a_file);
    RUN(model_dir_empty_name);
    RUN(model_dir_empty);
    RUN(config_missing);
    RUN(config_malformed_json);
    RUN(config_not_an_object);
    RUN(config_negative_sizes);
    RUN(config_wrong_types);
    RUN(config_hidden_not_divisible_by_heads);
    RUN(config_mismatches_weights);
    RUN(weights_missing);
    RUN(weights_truncated);
    RUN(weights_header_length_beyond_file);
    RUN(weights_header_not_json_object);
    RUN(weights_offsets_out_of_range);
    RUN(weights_offsets_overlap);
    RUN(weights_unknown_dtype);
    RUN(weights_missing_tensor);
    RUN(weights_unexpected_tensor);
    RUN(weights_wrong_shape);
    RUN(tokenizer_missing);
    RUN(tokenizer_malformed_json);
    RUN(tokenizer_wrong_structure);
    RUN(tokenizer_unknown_pre_tokenizer);
    RUN(preprocessor_config_malformed);

    clxp_error err;
    memset(&err, 0, sizeof err);
    clxp_load_options opt = {.n_threads = 1};
    if (clxp_model_load(test_data(GOOD_MODEL), &opt, &g_model, &err) != CLXP_OK)
        printf("  cannot load %s: %s\n", test_data(GOOD_MODEL), err.msg);
    RUN(images);
    clxp_model_free(g_model);
    free(g_st);
    return test_summary();
}
