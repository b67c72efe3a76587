/* Scoring: categories (unit softmax, category = sum of its prompts' probabilities) against a hand-computed
 * example and against the golden logits_per_image; labels scoring against the golden probabilities. */
#include <unistd.h>

#include "classify/scoring.h"
#include "clxp.h"
#include "io/safetensors.h"
#include "test.h"

/* the golden comparisons are for the exact fp32 path (bf16: tests/test_precision.c) */
static const clxp_load_options g_fp32 = {.precision = CLXP_PRECISION_FP32};

TEST(categories_hand_computed) {
    /* [U1] (A) p0 p1 (B) p2   [U2] (C) p3 (D) p4 */
    const char *txt = "[U1]\n(A)\np0\np1\n(B)\np2\n[U2]\n(C)\np3\n(D)\np4\n";
    prompt_set ps;
    clxp_error err = {0};
    REQUIRE(prompts_parse(txt, strlen(txt), "mem", 1, &ps, &err) == CLXP_OK);
    const float sims[5] = {0.1f, 0.2f, 0.3f, 0.5f, 0.25f};
    float cs[4];
    int best[2];
    REQUIRE(score_categories(&ps, sims, 10.0f, 2.0f, cs, best) == CLXP_OK);
    /* U1 logits = 10*sims/2 = 0.5, 1.0, 1.5: softmax = e^.5, e^1, e^1.5 / sum */
    double e0 = exp(0.5), e1 = exp(1.0), e2 = exp(1.5), s = e0 + e1 + e2;
    CHECK_NEAR(cs[0], (e0 + e1) / s, 1e-6); /* A = 0.4935 */
    CHECK_NEAR(cs[1], e2 / s, 1e-6);        /* B = 0.5065: one strong prompt beats two weak ones */
    CHECK_EQ_INT(best[0], 1);
    /* U2 logits = 2.5, 1.25 */
    double f0 = exp(2.5), f1 = exp(1.25);
    CHECK_NEAR(cs[2], f0 / (f0 + f1), 1e-6);
    CHECK_NEAR(cs[3], f1 / (f0 + f1), 1e-6);
    CHECK_EQ_INT(best[1], 2);
    prompts_free(&ps);
}

TEST(top_k) {
    const float p[6] = {0.1f, 0.4f, 0.05f, 0.4f, 0.3f, 0.0f};
    int idx[3];
    score_top_k(p, 6, 3, idx);
    CHECK_EQ_INT(idx[0], 1); /* tie with 3: lower index first */
    CHECK_EQ_INT(idx[1], 3);
    CHECK_EQ_INT(idx[2], 4);
}

/* Categories bank over the golden prompts vs softmax of the reference logits_per_image per unit. */
TEST(categories_against_golden_logits) {
    const char *dir = "clip-tiny-quickgelu";
    /* prompts 0,1,2 (unit U1: A = {0,1}, B = {2}) and 4,5 (unit U2: C = {4}, D = {5}) of the golden set */
    const char *file_txt = "[U1]\n(A)\na photo of a cat\nA PHOTO OF A DOG\n(B)\nit's a dog's life!\n"
                           "[U2]\n(C)\nCrème brûlée\n(D)\nÜnïcödé naïve café\n";
    const int pidx[5] = {0, 1, 2, 4, 5};
    char path[512];
    snprintf(path, sizeof path, "%s/clxp-cats-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, file_txt, strlen(file_txt)) == (ssize_t)strlen(file_txt));
    close(fd);

    clxp_error err = {0};
    clxp_model *m = NULL;
    clxp_labelbank *bank = NULL;
    REQUIRE(clxp_model_load(test_data(dir), &g_fp32, &m, &err) == CLXP_OK);
    CHECK(clxp_labelbank_load_file(m, path, NULL, 0, &bank, &err) == CLXP_OK);
    unlink(path);
    REQUIRE(bank);
    CHECK_EQ_INT(clxp_labelbank_n_units(bank), 2);
    CHECK_EQ_INT(clxp_labelbank_n_classes(bank), 4);
    CHECK_STR(clxp_labelbank_class_name(bank, 1), "B");
    CHECK_EQ_INT(clxp_labelbank_class_unit(bank, 3), 1);

    char gpath[512], img[512];
    snprintf(gpath, sizeof gpath, "%s/golden/golden.safetensors", test_data(dir));
    st_file *g = NULL;
    REQUIRE(st_open(gpath, &g, &err) == CLXP_OK);
    const st_tensor *lt = st_find(g, "logits_per_image");
    REQUIRE(lt && lt->ndim == 2);
    const int P = (int)lt->shape[1];
    float *logits = malloc((size_t)lt->numel * sizeof *logits); /* golden tensors are not all 4-byte aligned */
    REQUIRE(st_to_f32(lt, logits, &err) == CLXP_OK);
    const char *names[5] = {"img0_gradient_64x48.png", "img1_checker_200x120.png", "img2_noise_gray_31x77.png",
                            "img3_strip_rgba_500x3.png", "img4_pixel_1x1.png"};
    double worst = 0;
    for (int i = 0; i < 5; i++) {
        snprintf(img, sizeof img, "%s/golden/inputs/%s", test_data(dir), names[i]);
        const char *files[1] = {img};
        float emb[64], cs[4];
        REQUIRE(clxp_encode_image_files(m, files, 1, emb, &err) == CLXP_OK);
        REQUIRE(clxp_classify(bank, emb, 1, NULL, cs, &err) == CLXP_OK);
        /* reference: per-unit softmax of the golden logits, summed per category */
        const float *row = logits + (size_t)i * P;
        double a[3] = {row[pidx[0]], row[pidx[1]], row[pidx[2]]}, b[2] = {row[pidx[3]], row[pidx[4]]};
        double mx = fmax(a[0], fmax(a[1], a[2])), sa = 0, sb = 0;
        for (int j = 0; j < 3; j++) sa += exp(a[j] - mx);
        double mb = fmax(b[0], b[1]);
        for (int j = 0; j < 2; j++) sb += exp(b[j] - mb);
        double ref[4] = {(exp(a[0] - mx) + exp(a[1] - mx)) / sa, exp(a[2] - mx) / sa, exp(b[0] - mb) / sb,
                         exp(b[1] - mb) / sb};
        for (int c = 0; c < 4; c++) {
            CHECK_NEAR(cs[c], ref[c], 1e-5);
            worst = fmax(worst, fabs(cs[c] - ref[c]));
        }
    }
    printf("  category scores vs golden logits: max_abs %.3g (tol 1e-5)\n", worst);
    free(logits);
    st_close(g);
    clxp_labelbank_free(bank);
    clxp_model_free(m);
}

int main(void) {
    RUN(categories_hand_computed);
    RUN(top_k);
    RUN(categories_against_golden_logits);
    return test_summary();
}
