/* The public API end to end against the goldens: prompts (raw text, through the tokenizer and the batching by
 * length of clxp_encode_texts) give the reference's normalised text embeddings, for both CLIP models and both
 * CLAP models; the order of the prompts in a call does not change any embedding. */
#include <cjson/cJSON.h>
#include <unistd.h>

#include "clxp.h"
#include "io/safetensors.h"
#include "util/json.h"
#include "test.h"

/* the golden comparisons are for the exact fp32 path (bf16: tests/test_precision.c) */
static const clxp_load_options g_fp32 = {.precision = CLXP_PRECISION_FP32};

#define EMB_ABS_TOL 1e-5

static int load_prompts(const char *dir, char ***out) {
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/inputs/prompts.json", test_data(dir));
    cJSON *root = NULL;
    if (clxp_json_load(path, &root, NULL) != CLXP_OK) return -1;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "prompts");
    int n = cJSON_GetArraySize(arr);
    char **p = calloc((size_t)n, sizeof *p);
    for (int i = 0; i < n; i++) p[i] = strdup(cJSON_GetArrayItem(arr, i)->valuestring);
    cJSON_Delete(root);
    *out = p;
    return n;
}

static void check_texts(const char *dir) {
    char **prompts = NULL;
    int n = load_prompts(dir, &prompts);
    REQUIRE(n == 16);
    clxp_error err = {0};
    clxp_model *m = NULL;
    REQUIRE(clxp_model_load(test_data(dir), &g_fp32, &m, &err) == CLXP_OK);
    const int dim = clxp_model_get_info(m)->embed_dim;
    float *emb = malloc((size_t)n * dim * sizeof *emb), *rev = malloc((size_t)n * dim * sizeof *rev);
    CHECK(clxp_encode_texts(m, (const char *const *)prompts, n, emb, &err) == CLXP_OK);
    char gpath[1024];
    snprintf(gpath, sizeof gpath, "%s/golden/golden.safetensors", test_data(dir));
    st_file *g = NULL;
    REQUIRE(st_open(gpath, &g, &err) == CLXP_OK);
    const st_tensor *t = st_find(g, "text_embeds");
    REQUIRE(t && t->numel == (int64_t)n * dim);
    float *ref = malloc((size_t)n * dim * sizeof *ref); /* tensors of the golden file are not all 4-byte aligned */
    REQUIRE(st_to_f32(t, ref, &err) == CLXP_OK);
    test_diff d = test_compare(emb, ref, (size_t)n * dim);
    free(ref);
    printf("  %s: text_embeds from raw prompts max_abs %.3g (tol %g)\n", dir, d.max_abs, EMB_ABS_TOL);
    CHECK(d.max_abs <= EMB_ABS_TOL);
    /* reversed order: every prompt's embedding is the same (batching by length is exact) */
    const char **r = malloc((size_t)n * sizeof *r);
    for (int i = 0; i < n; i++) r[i] = prompts[n - 1 - i];
    CHECK(clxp_encode_texts(m, r, n, rev, &err) == CLXP_OK);
    double worst = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < dim; k++) worst = fmax(worst, fabs(rev[(size_t)(n - 1 - i) * dim + k] - emb[(size_t)i * dim + k]));
    printf("  %s: reversed prompt order max_abs %.3g\n", dir, worst);
    CHECK(worst <= 1e-6);
    free(r);
    st_close(g);
    free(emb);
    free(rev);
    for (int i = 0; i < n; i++) free(prompts[i]);
    free(prompts);
    clxp_model_free(m);
}

TEST(clip_quickgelu_texts) { check_texts("clip-tiny-quickgelu"); }
TEST(clip_gelu_texts) { check_texts("clip-tiny-gelu"); }
TEST(clap_unfused_texts) { check_texts("clap-tiny-unfused"); }
TEST(clap_fused_texts) { check_texts("clap-tiny-fused"); }

TEST(wrong_media_for_model) {
    clxp_error err = {0};
    clxp_model *clap = NULL, *clip = NULL;
    REQUIRE(clxp_model_load(test_data("clap-tiny-unfused"), &g_fp32, &clap, &err) == CLXP_OK);
    REQUIRE(clxp_model_load(test_data("clip-tiny-quickgelu"), &g_fp32, &clip, &err) == CLXP_OK);
    uint8_t px[3] = {1, 2, 3};
    clxp_image im = {px, 1, 1, 3};
    float emb[64], wave[16] = {0};
    CHECK_EQ_INT(clxp_encode_images(clap, &im, 1, emb, &err), CLXP_ERR_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "cannot encode images");
    CHECK_EQ_INT(clxp_encode_audio(clip, wave, 16, 48000, emb, &err), CLXP_ERR_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "cannot encode audio");
    CHECK_EQ_INT(clxp_encode_audio(clap, wave, 16, 44100, emb, &err), CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "48000 Hz");
    clxp_model_free(clap);
    clxp_model_free(clip);
}

/* A saved bank gives the same scores as the bank it was saved from, keeps labels/templates/categories, and is
 * refused by another model; saving over an existing file needs overwrite. */
TEST(label_bank_save_load) {
    clxp_error err = {0};
    clxp_model *m = NULL, *other = NULL;
    REQUIRE(clxp_model_load(test_data("clip-tiny-quickgelu"), &g_fp32, &m, &err) == CLXP_OK);
    REQUIRE(clxp_model_load(test_data("clip-tiny-gelu"), &g_fp32, &other, &err) == CLXP_OK);
    char dir[256];
    snprintf(dir, sizeof dir, "%s/clxp-bank-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    REQUIRE(mkdtemp(dir));
    char path[512], cpath[512];
    snprintf(path, sizeof path, "%s/labels.bank", dir);
    snprintf(cpath, sizeof cpath, "%s/cats.bank", dir);
    const char *labels[] = {"a cat", "a dog, \"big\"", "Crème brûlée"};
    const char *templates[] = {"a photo of {}.", "a drawing of {}"};
    clxp_labelbank *b = NULL, *l = NULL, *cb = NULL, *cl = NULL;
    REQUIRE(clxp_labelbank_create(m, labels, 3, templates, 2, &b, &err) == CLXP_OK);
    CHECK(clxp_labelbank_save(b, path, 0, &err) == CLXP_OK);
    CHECK_EQ_INT(clxp_labelbank_save(b, path, 0, &err), CLXP_ERR_IO);
    CHECK_CONTAINS(err.msg, "already exists");
    CHECK(clxp_labelbank_save(b, path, 1, &err) == CLXP_OK);
    REQUIRE(clxp_labelbank_load(m, path, &l, &err) == CLXP_OK);
    CHECK_EQ_INT(clxp_labelbank_size(l), 3);
    CHECK_STR(clxp_labelbank_label(l, 1), labels[1]);
    CHECK_EQ_INT(clxp_labelbank_n_templates(l), 2);
    CHECK_STR(clxp_labelbank_template(l, 1), templates[1]);
    CHECK_NEAR(clxp_labelbank_logit_scale(l), clxp_labelbank_logit_scale(b), 1e-6);
    test_diff d = test_compare(clxp_labelbank_embeddings(l), clxp_labelbank_embeddings(b), 3 * 32);
    CHECK(d.max_abs == 0);
    CHECK_EQ_INT(clxp_labelbank_load(other, path, &cl, &err), CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "made by another model");
    /* categories */
    char catfile[512];
    snprintf(catfile, sizeof catfile, "%s/cats.txt", dir);
    FILE *f = fopen(catfile, "w");
    REQUIRE(f);
    fputs("[Scene]\n(Day)\nsun\nsky\n(Night)\nmoon\n[Crowd]\n(Empty)\nnobody\n(Busy)\npeople\n", f);
    fclose(f);
    REQUIRE(clxp_labelbank_load_file(m, catfile, NULL, 0, &cb, &err) == CLXP_OK);
    CHECK(clxp_labelbank_save(cb, cpath, 0, &err) == CLXP_OK);
    REQUIRE(clxp_labelbank_load(m, cpath, &cl, &err) == CLXP_OK);
    CHECK_EQ_INT(clxp_labelbank_n_units(cl), 2);
    CHECK_EQ_INT(clxp_labelbank_n_classes(cl), 4);
    CHECK_STR(clxp_labelbank_unit_name(cl, 1), "Crowd");
    CHECK_STR(clxp_labelbank_class_name(cl, 1), "Night");
    CHECK_EQ_INT(clxp_labelbank_class_unit(cl, 2), 1);
    float emb[32], s1[4], s2[4];
    const char *img[1] = {test_data2("clip-tiny-quickgelu/golden/inputs/img1_checker_200x120.png")};
    REQUIRE(clxp_encode_image_files(m, img, 1, emb, &err) == CLXP_OK);
    CHECK(clxp_classify(cb, emb, 1, NULL, s1, &err) == CLXP_OK);
    CHECK(clxp_classify(cl, emb, 1, NULL, s2, &err) == CLXP_OK);
    CHECK(test_compare(s1, s2, 4).max_abs == 0);
    /* a file that is not a bank */
    clxp_labelbank *bad = NULL;
    CHECK_EQ_INT(clxp_labelbank_load(m, test_data("clip-tiny-quickgelu/model.safetensors"), &bad, &err),
                 CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "not a clxp label bank");
    clxp_labelbank_free(b);
    clxp_labelbank_free(l);
    clxp_labelbank_free(cb);
    clxp_labelbank_free(cl);
    unlink(path);
    unlink(cpath);
    unlink(catfile);
    rmdir(dir);
    clxp_model_free(m);
    clxp_model_free(other);
}

int main(void) {
    RUN(label_bank_save_load);
    RUN(clip_quickgelu_texts);
    RUN(clip_gelu_texts);
    RUN(clap_unfused_texts);
    RUN(clap_fused_texts);
    RUN(wrong_media_for_model);
    return test_summary();
}
