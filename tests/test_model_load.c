/* Model directory loading beyond the single-file F32 case: sharded safetensors (index.json), F16/BF16
 * weights converted at load, config defaults, ignorable buffers and unexpected extra tensors. Each variant is
 * written from the golden tiny model and must give the same embeddings as the original (F16/BF16 within
 * the precision of those formats). */
#include <ftw.h>
#include <stdint.h>
#include <unistd.h>

#include "clxp.h"
#include "io/clip_config.h"
#include "io/safetensors.h"
#include "io/safetensors_write.h"
#include "test.h"

/* the golden comparisons are for the exact fp32 path (bf16: tests/test_precision.c) */
static const clxp_load_options g_fp32 = {.precision = CLXP_PRECISION_FP32};

#define SRC "clip-tiny-quickgelu"

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* A temp model dir with config/tokenizer/preprocessor files linked from the golden model. */
static char *make_dir(void) {
    static char tmpl[256];
    snprintf(tmpl, sizeof tmpl, "%s/clxp-load-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpl)) return NULL;
    const char *files[] = {"config.json", "tokenizer.json", "preprocessor_config.json", "tokenizer_config.json",
                           "special_tokens_map.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char src[1024], dst[1024], abs[1024];
        snprintf(src, sizeof src, "%s/%s", test_data(SRC), files[i]);
        if (!realpath(src, abs)) return NULL;
        snprintf(dst, sizeof dst, "%s/%s", tmpl, files[i]);
        if (symlink(abs, dst) != 0) return NULL;
    }
    return tmpl;
}

/* Image + text embeddings of a model dir on two golden images and three prompts. */
static int embed(const char *dir, float *out, clxp_error *err) {
    clxp_model *m = NULL;
    if (clxp_model_load(dir, &g_fp32, &m, err) != CLXP_OK) return -1;
    const int d = clxp_model_get_info(m)->embed_dim;
    char p0[1024], p1[1024];
    snprintf(p0, sizeof p0, "%s/golden/inputs/img0_gradient_64x48.png", test_data(SRC));
    snprintf(p1, sizeof p1, "%s/golden/inputs/img1_checker_200x120.png", test_data(SRC));
    const char *files[] = {p0, p1};
    const char *texts[] = {"a photo of a cat", "A PHOTO OF A DOG", ""};
    int rc = clxp_encode_image_files(m, files, 2, out, err) == CLXP_OK &&
                     clxp_encode_texts(m, texts, 3, out + 2 * d, err) == CLXP_OK
                 ? 5 * d
                 : -1;
    clxp_model_free(m);
    return rc;
}

/* float32 -> float16, round to nearest even; values below the normal range are flushed to zero (harmless
 * for these weights, and it only makes the F16 model a little further from the F32 one). */
static uint16_t f32_to_f16(float v) {
    uint32_t b;
    memcpy(&b, &v, 4);
    uint32_t sign = (b >> 16) & 0x8000, man = b & 0x7FFFFF;
    int32_t e = (int32_t)((b >> 23) & 0xFF) - 127 + 15;
    if (e <= 0) return (uint16_t)sign;
    if (e >= 31) return (uint16_t)(sign | 0x7C00);
    uint32_t h = sign | ((uint32_t)e << 10) | (man >> 13), rest = man & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return (uint16_t)h;
}

/* Rewrites the golden weights into dir: converting F32 tensors to dtype, split across n_shards files. */
static int write_variant(const char *dir, st_dtype dtype, int n_shards, const char *extra_name) {
    st_file *f = NULL;
    char src[1024];
    snprintf(src, sizeof src, "%s/model.safetensors", test_data(SRC));
    if (st_open(src, &f, NULL) != CLXP_OK) return -1;
    int n = st_count(f);
    st_write_tensor *ts = calloc((size_t)n + 1, sizeof *ts);
    void **bufs = calloc((size_t)n, sizeof *bufs);
    int ok = 1;
    for (int i = 0; i < n; i++) {
        const st_tensor *t = st_at(f, i);
        ts[i] = (st_write_tensor){t->name, t->dtype, t->ndim, t->shape, t->data};
        if (dtype != ST_F32 && t->dtype == ST_F32) {
            uint16_t *h = malloc((size_t)t->numel * 2 + 2);
            const float *src_f = t->data;
            for (int64_t k = 0; k < t->numel; k++) {
                uint32_t bits;
                memcpy(&bits, &src_f[k], 4);
                if (dtype == ST_BF16) {
                    h[k] = (uint16_t)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16); /* round to nearest even */
                } else {
                    h[k] = f32_to_f16(src_f[k]);
                }
            }
            bufs[i] = h;
            ts[i].dtype = dtype;
            ts[i].data = h;
        }
    }
    int64_t one = 3;
    float extra[3] = {1, 2, 3};
    int total = n;
    if (extra_name) ts[total++] = (st_write_tensor){extra_name, ST_F32, 1, &one, extra};
    /* shards: tensors i % n_shards go to shard k; the index maps every name to its shard */
    char idx[1 << 16];
    size_t len = (size_t)snprintf(idx, sizeof idx, "{\"metadata\": {}, \"weight_map\": {");
    for (int k = 0; k < n_shards && ok; k++) {
        st_write_tensor *sub = calloc((size_t)total, sizeof *sub);
        int m = 0;
        for (int i = 0; i < total; i++)
            if (i % n_shards == k) sub[m++] = ts[i];
        char name[64], path[1024];
        if (n_shards == 1) snprintf(name, sizeof name, "model.safetensors");
        else snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k + 1, n_shards);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        ok = st_write(path, sub, m, NULL, 0, NULL) == CLXP_OK;
        for (int i = 0; i < m; i++)
            len += (size_t)snprintf(idx + len, sizeof idx - len, "%s\"%s\": \"%s\"", len > 40 ? ", " : "", sub[i].name,
                                    name);
        free(sub);
    }
    snprintf(idx + len, sizeof idx - len, "}}");
    if (ok && n_shards > 1) {
        char path[1024];
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        FILE *fp = fopen(path, "w");
        ok = fp && fputs(idx, fp) >= 0;
        if (fp) fclose(fp);
    }
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(ts);
    st_close(f);
    return ok ? 0 : -1;
}

static float ref[5 * 64];
static int ref_n;

TEST(reference_embeddings) {
    clxp_error err = {0};
    ref_n = embed(test_data(SRC), ref, &err);
    if (ref_n < 0) printf("  %s\n", err.msg);
    REQUIRE(ref_n > 0);
}

static void check_variant(st_dtype dtype, int shards, const char *extra, double tol, clxp_status expect,
                          const char *msg_part) {
    char *dir = make_dir();
    REQUIRE(dir);
    REQUIRE(write_variant(dir, dtype, shards, extra) == 0);
    float out[5 * 64];
    clxp_error err = {0};
    int n = embed(dir, out, &err);
    if (expect == CLXP_OK) {
        if (n < 0) printf("  %s\n", err.msg);
        REQUIRE(n == ref_n);
        test_diff d = test_compare(out, ref, (size_t)n);
        printf("  %s x%d shards: max_abs %.3g vs F32 single file (tol %g)\n", st_dtype_name(dtype), shards,
               d.max_abs, tol);
        CHECK(d.max_abs <= tol);
    } else {
        CHECK_EQ_INT(n, -1);
        CHECK_EQ_INT(err.code, expect);
        CHECK_CONTAINS(err.msg, msg_part);
    }
    rm_rf(dir);
}

TEST(sharded_f32_identical) { check_variant(ST_F32, 3, NULL, 0.0, CLXP_OK, NULL); }
TEST(f16_weights) { check_variant(ST_F16, 1, NULL, 5e-3, CLXP_OK, NULL); }
TEST(bf16_weights_sharded) { check_variant(ST_BF16, 2, NULL, 3e-2, CLXP_OK, NULL); }
TEST(position_ids_buffer_ignored) {
    check_variant(ST_F32, 1, "text_model.embeddings.position_ids", 0.0, CLXP_OK, NULL);
}
TEST(unexpected_tensor_reported) {
    check_variant(ST_F32, 1, "text_model.some_new_layer.weight", 0.0, CLXP_ERR_FORMAT,
                  "unexpected tensor: \"text_model.some_new_layer.weight\"");
}

TEST(config_defaults) {
    /* An empty config is ViT-B/32 with transformers' defaults. */
    char path[512];
    snprintf(path, sizeof path, "%s/clxp-cfg-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, "{\"text_config\": {\"hidden_act\": \"gelu\"}}", 39) == 39);
    close(fd);
    clip_config c;
    clxp_error err = {0};
    CHECK(clip_config_load(path, &c, &err) == CLXP_OK);
    CHECK_EQ_INT(c.vision.hidden, 768);
    CHECK_EQ_INT(c.vision.layers, 12);
    CHECK_EQ_INT(c.vision.heads, 12);
    CHECK_EQ_INT(c.vision.mlp, 3072);
    CHECK_EQ_INT(c.image_size, 224);
    CHECK_EQ_INT(c.patch_size, 32);
    CHECK_EQ_INT(c.text.hidden, 512);
    CHECK_EQ_INT(c.text.heads, 8);
    CHECK_EQ_INT(c.text.mlp, 2048);
    CHECK_EQ_INT(c.context_length, 77);
    CHECK_EQ_INT(c.vocab_size, 49408);
    CHECK_EQ_INT(c.eos_token_id, 49407);
    CHECK_EQ_INT(c.projection_dim, 512);
    CHECK_EQ_INT(c.text.act, CLIP_ACT_GELU);
    CHECK_EQ_INT(c.vision.act, CLIP_ACT_QUICK_GELU);
    CHECK_NEAR(c.text.ln_eps, 1e-5, 1e-12);
    unlink(path);
}

int main(void) {
    RUN(reference_embeddings);
    RUN(sharded_f32_identical);
    RUN(f16_weights);
    RUN(bf16_weights_sharded);
    RUN(position_ids_buffer_ignored);
    RUN(unexpected_tensor_reported);
    RUN(config_defaults);
    return test_summary();
}
