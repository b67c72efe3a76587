/* The public API end to end against the goldens: prompts (raw text, through the tokenizer and the batching by
 * length of clxp_encode_texts) give the reference's normalised text embeddings, for both CLIP models and both
 * CLAP models; the order of the prompts in a call does not change any embedding. */
#include <cjson/cJSON.h>

#include "clxp.h"
#include "io/safetensors.h"
#include "util/json.h"
#include "test.h"

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
    REQUIRE(clxp_model_load(test_data(dir), NULL, &m, &err) == CLXP_OK);
    const int dim = clxp_model_get_info(m)->embed_dim;
    float *emb = malloc((size_t)n * dim * sizeof *emb), *rev = malloc((size_t)n * dim * sizeof *rev);
    CHECK(clxp_encode_texts(m, (const char *const *)prompts, n, emb, &err) == CLXP_OK);
    char gpath[1024];
    snprintf(gpath, sizeof gpath, "%s/golden/golden.safetensors", test_data(dir));
    st_file *g = NULL;
    REQUIRE(st_open(gpath, &g, &err) == CLXP_OK);
    const st_tensor *t = st_find(g, "text_embeds");
    REQUIRE(t && t->numel == (int64_t)n * dim);
    test_diff d = test_compare(emb, t->data, (size_t)n * dim);
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
    REQUIRE(clxp_model_load(test_data("clap-tiny-unfused"), NULL, &clap, &err) == CLXP_OK);
    REQUIRE(clxp_model_load(test_data("clip-tiny-quickgelu"), NULL, &clip, &err) == CLXP_OK);
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

int main(void) {
    RUN(clip_quickgelu_texts);
    RUN(clip_gelu_texts);
    RUN(clap_unfused_texts);
    RUN(clap_fused_texts);
    RUN(wrong_media_for_model);
    return test_summary();
}
