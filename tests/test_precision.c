/* Precision modes (nn/gemm.h, clxp_load_options.precision).
 *
 * 1. The GEMM layer: packed fp32 and packed bf16 linear layers against a float64 reference at several batch sizes
 *    (one packed layout serves every M), with bias and the accumulating (residual) form. bf16's reference rounds
 *    x and W to bfloat16 first: what remains is fp32 accumulation error.
 * 2. Whole models in bf16 against the reference (zero_shot.json, Hugging Face in fp32) and against clxp's own fp32
 *    path, with the bounds the README states: identical top-1 on every golden input, probabilities within 1e-2,
 *    normalised embeddings (texts, images, audio) cosine >= 0.999 to fp32. CLIP and CLAP.
 * The bf16 checks are skipped, saying so, on a CPU without AVX512-BF16/AMX (clxp refuses bf16 there). */
#include <cjson/cJSON.h>
#include <math.h>

#include "clxp.h"
#include "nn/gemm.h"
#include "nn/ops.h"
#include "util/json.h"
#include "test.h"

#define GEMM_REL_TOL 1e-5     /* |y - ref| / sum_k |x_k w_k| (fp32 accumulation) */
#define BF16_PROB_TOL 1e-2    /* max |p_bf16 - p_reference| */
#define BF16_MIN_COSINE 0.999 /* normalised embedding, bf16 vs fp32 */

static uint32_t g_rng = 12345;
static float frand(void) {
    g_rng = g_rng * 1664525u + 1013904223u;
    return (float)((int32_t)g_rng >> 8) / 8388608.0f; /* [-1, 1) */
}

/* One linear layer in the given precision vs float64 on the (rounded) operands. */
static void check_linear(nn_precision prec, int M, int N, int K, int with_bias, int accumulate) {
    float *x = malloc((size_t)M * K * sizeof *x), *w = malloc((size_t)N * K * sizeof *w);
    float *b = malloc((size_t)N * sizeof *b), *y = malloc((size_t)M * N * sizeof *y);
    float *y0 = malloc((size_t)M * N * sizeof *y0);
    REQUIRE(x && w && b && y && y0);
    for (size_t i = 0; i < (size_t)M * K; i++) x[i] = frand();
    for (size_t i = 0; i < (size_t)N * K; i++) w[i] = frand() * 0.1f;
    for (int i = 0; i < N; i++) b[i] = frand();
    for (size_t i = 0; i < (size_t)M * N; i++) y[i] = y0[i] = frand();
    clxp_error err = {0};
    nn_engine *e = NULL;
    REQUIRE(nn_engine_create(&e, &err) == CLXP_OK);
    nn_matrix W = nn_matrix_plain(w, N, K);
    CHECK(nn_matrix_pack(&W, e, prec, &err) == CLXP_OK);
    CHECK(W.packed != NULL && W.f32 == NULL && nn_matrix_packed_bytes(&W) >= (size_t)N * K * (prec == NN_BF16 ? 2 : 4));
    CHECK(nn_linear_m(&W, x, M, with_bias ? b : NULL, y, accumulate, &err) == CLXP_OK);
    double worst = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                double xv = x[(size_t)i * K + k], wv = w[(size_t)j * K + k];
                if (prec == NN_BF16) xv = nn_round_bf16((float)xv), wv = nn_round_bf16((float)wv);
                s += xv * wv;
                mag += fabs(xv * wv);
            }
            if (with_bias) s += b[j], mag += fabs(b[j]);
            if (accumulate) s += y0[(size_t)i * N + j], mag += fabs(y0[(size_t)i * N + j]);
            worst = fmax(worst, fabs(y[(size_t)i * N + j] - s) / (mag > 0 ? mag : 1));
        }
    printf("  %s M=%d N=%d K=%d%s%s: max relative error %.3g (tol %g)\n", prec == NN_BF16 ? "bf16" : "fp32", M, N, K,
           with_bias ? " +bias" : "", accumulate ? " +=" : "", worst, GEMM_REL_TOL);
    CHECK(worst <= GEMM_REL_TOL);
    nn_matrix_release(&W);
    nn_engine_free(e);
    free(x), free(w), free(b), free(y), free(y0);
}

static const int g_shapes[][3] = {{1, 32, 48}, {50, 96, 64}, {257, 64, 300}, {16, 144, 48}, {7, 768, 3072}};

TEST(linear_fp32_packed) {
    for (size_t s = 0; s < sizeof g_shapes / sizeof g_shapes[0]; s++)
        check_linear(NN_FP32, g_shapes[s][0], g_shapes[s][1], g_shapes[s][2], (int)(s % 2), (int)(s / 2 % 2));
    check_linear(NN_FP32, 33, 40, 24, 1, 1);
}

TEST(linear_bf16_packed) {
    if (!nn_cpu_has_bf16()) {
        printf("  skipped: this CPU (%s) has no native bf16\n", nn_cpu_isa());
        return;
    }
    for (size_t s = 0; s < sizeof g_shapes / sizeof g_shapes[0]; s++)
        check_linear(NN_BF16, g_shapes[s][0], g_shapes[s][1], g_shapes[s][2], (int)(s % 2), (int)(s / 2 % 2));
    check_linear(NN_BF16, 33, 40, 24, 1, 1);
}

TEST(round_bf16) {
    CHECK(nn_round_bf16(1.0f) == 1.0f);
    CHECK(nn_round_bf16(1.0f + 1.0f / 256) == 1.0f);                 /* tie: to even */
    CHECK(nn_round_bf16(1.0f + 3.0f / 256) == 1.0f + 4.0f / 256);    /* tie: to even (up) */
    CHECK(nn_round_bf16(1.0f + 1.5f / 256) == 1.0f + 2.0f / 256);    /* above half: up */
    CHECK(isnan(nn_round_bf16(NAN)) && isinf(nn_round_bf16(INFINITY)));
}

/* The vectorised GELU (nn/ops.c) against the erf(c) form in double precision, over the range activations take, and
 * nn_activation on an array agrees with it element for element. */
TEST(gelu) {
    double worst = 0, worst_tail = 0; /* x >= -5, and the far negative tail (|y| < 1e-5: exp of -x^2/2 in float) */
    float xs[4001];
    for (int i = 0; i <= 4000; i++) {
        const float x = -12.0f + 24.0f * (float)i / 4000.0f;
        xs[i] = x;
        const double ref = 0.5 * x * erfc(-x / sqrt(2.0)); /* = 1 + erf, without cancellation */
        const double err = fabs(nn_gelu(x) - ref) / fmax(fabs(ref), 1e-30);
        if (x >= -5.0f) worst = fmax(worst, err);
        else worst_tail = fmax(worst_tail, err);
    }
    nn_activation(xs, 4001, NN_ACT_GELU);
    int same = 1;
    for (int i = 0; i <= 4000; i++) same &= xs[i] == nn_gelu(-12.0f + 24.0f * (float)i / 4000.0f);
    printf("  gelu: max relative error %.3g on [-5, 12] (tol 3e-6), %.3g on [-12, -5) (tol 1e-4) vs erfc in double\n",
           worst, worst_tail);
    CHECK(worst <= 3e-6);
    CHECK(worst_tail <= 1e-4);
    CHECK(same);
    CHECK(nn_gelu(0.0f) == 0.0f && isnan(nn_gelu(NAN)) && nn_gelu(INFINITY) == INFINITY && fabsf(nn_gelu(-100.0f)) < 1e-37f);
}

/* ---- whole models ------------------------------------------------------------------------------------------ */

static double cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return ab / sqrt(aa * bb);
}

static double min_cosine(const float *a, const float *b, int rows, int dim) {
    double worst = 1;
    for (int i = 0; i < rows; i++) worst = fmin(worst, cosine(a + (size_t)i * dim, b + (size_t)i * dim, dim));
    return worst;
}

/* dir: a golden model in tests/data; media: its golden inputs to check (subset of zero_shot.json's results). */
static void check_model_bf16(const char *dir, const char *const *media, int n_media) {
    if (!nn_cpu_has_bf16()) {
        printf("  skipped: this CPU (%s) has no native bf16\n", nn_cpu_isa());
        return;
    }
    clxp_error err = {0};
    clxp_model *m32 = NULL, *m16 = NULL;
    const clxp_load_options o32 = {.precision = CLXP_PRECISION_FP32}, o16 = {.precision = CLXP_PRECISION_BF16};
    REQUIRE(clxp_model_load(test_data(dir), &o32, &m32, &err) == CLXP_OK);
    REQUIRE(clxp_model_load(test_data(dir), &o16, &m16, &err) == CLXP_OK);
    const clxp_model_info *info = clxp_model_get_info(m16);
    CHECK_STR(info->precision, "bf16");
    CHECK_STR(clxp_model_get_info(m32)->precision, "fp32");
    const int dim = info->embed_dim, is_clip = strcmp(info->kind, "clip") == 0;

    char path[1024];
    snprintf(path, sizeof path, "%s/golden/zero_shot.json", test_data(dir));
    cJSON *zs = NULL;
    REQUIRE(clxp_json_load(path, &zs, &err) == CLXP_OK);
    const cJSON *prompts = cJSON_GetObjectItem(zs, "prompts"), *results = cJSON_GetObjectItem(zs, "results");
    const int P = cJSON_GetArraySize(prompts);
    REQUIRE(P > 1 && P <= 64);
    const char *texts[64];
    for (int j = 0; j < P; j++) texts[j] = cJSON_GetStringValue(cJSON_GetArrayItem(prompts, j));

    float *t32 = malloc((size_t)P * dim * sizeof *t32), *t16 = malloc((size_t)P * dim * sizeof *t16);
    float *e32 = malloc((size_t)n_media * dim * sizeof *e32), *e16 = malloc((size_t)n_media * dim * sizeof *e16);
    REQUIRE(t32 && t16 && e32 && e16);
    CHECK(clxp_encode_texts(m32, texts, P, t32, &err) == CLXP_OK);
    CHECK(clxp_encode_texts(m16, texts, P, t16, &err) == CLXP_OK);
    const char *files[8];
    char names[8][1024];
    REQUIRE(n_media <= 8);
    for (int i = 0; i < n_media; i++) {
        snprintf(names[i], sizeof names[i], "%s/golden/inputs/%s", test_data(dir), media[i]);
        files[i] = names[i];
    }
    if (is_clip) {
        CHECK(clxp_encode_image_files(m32, files, n_media, e32, &err) == CLXP_OK);
        CHECK(clxp_encode_image_files(m16, files, n_media, e16, &err) == CLXP_OK);
    } else {
        CHECK(clxp_encode_audio_files(m32, files, n_media, e32, &err) == CLXP_OK);
        CHECK(clxp_encode_audio_files(m16, files, n_media, e16, &err) == CLXP_OK);
    }
    const double cos_t = min_cosine(t16, t32, P, dim), cos_e = min_cosine(e16, e32, n_media, dim);

    /* probabilities from the bf16 embeddings vs the reference's */
    double worst_p = 0;
    int top1_same = 0;
    for (int i = 0; i < n_media; i++) {
        const cJSON *gp = NULL, *garg = NULL;
        for (int k = 0; k < cJSON_GetArraySize(results); k++) {
            const cJSON *r = cJSON_GetArrayItem(results, k);
            if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "input")), media[i]) == 0) {
                gp = cJSON_GetObjectItem(r, "probs");
                garg = cJSON_GetObjectItem(r, "argmax");
            }
        }
        REQUIRE(gp && garg && cJSON_GetArraySize(gp) == P);
        double logit[64], mx = -INFINITY, sum = 0;
        for (int j = 0; j < P; j++) {
            double d = 0;
            for (int k = 0; k < dim; k++) d += (double)e16[(size_t)i * dim + k] * t16[(size_t)j * dim + k];
            logit[j] = info->logit_scale * d;
            mx = fmax(mx, logit[j]);
        }
        for (int j = 0; j < P; j++) sum += (logit[j] = exp(logit[j] - mx));
        int top = 0;
        for (int j = 0; j < P; j++) {
            worst_p = fmax(worst_p, fabs(logit[j] / sum - cJSON_GetArrayItem(gp, j)->valuedouble));
            if (logit[j] > logit[top]) top = j;
        }
        if (top == garg->valueint)
            top1_same++;
        else
            printf("  %s: bf16 top-1 is prompt %d, the reference's %d\n", media[i], top, garg->valueint);
    }
    printf("  %s bf16: text cosine to fp32 >= %.6f, %s cosine >= %.6f (min %g); probabilities max_abs %.3g vs the "
           "reference (tol %g); top-1 identical %d/%d\n",
           dir, cos_t, is_clip ? "image" : "audio", cos_e, BF16_MIN_COSINE, worst_p, BF16_PROB_TOL, top1_same,
           n_media);
    CHECK(cos_t >= BF16_MIN_COSINE);
    CHECK(cos_e >= BF16_MIN_COSINE);
    CHECK(worst_p <= BF16_PROB_TOL);
    CHECK_EQ_INT(top1_same, n_media);
    free(t32), free(t16), free(e32), free(e16);
    cJSON_Delete(zs);
    clxp_model_free(m32);
    clxp_model_free(m16);
}

static const char *const g_images[] = {"img0_gradient_64x48.png", "img1_checker_200x120.png",
                                       "img2_noise_gray_31x77.png", "img3_strip_rgba_500x3.png", "img4_pixel_1x1.png"};

TEST(clip_quickgelu_bf16) { check_model_bf16("clip-tiny-quickgelu", g_images, 5); }
TEST(clip_gelu_bf16) { check_model_bf16("clip-tiny-gelu", g_images, 5); }
TEST(clap_unfused_bf16) {
    static const char *const in[] = {"a_chirp_noise_3s.wav", "b_tones_10s.wav", "c_clicks_0p5s.wav"};
    check_model_bf16("clap-tiny-unfused", in, 3);
}
/* the 14-s golden input of the fused model was cropped at random by the reference: only the 3-s one */
TEST(clap_fused_bf16) {
    static const char *const in[] = {"a_chirp_noise_3s.wav"};
    check_model_bf16("clap-tiny-fused", in, 1);
}

/* auto picks bf16 exactly where the CPU has it; an explicit bf16 on a CPU without it is refused clearly. */
TEST(auto_choice) {
    clxp_error err = {0};
    clxp_model *m = NULL;
    REQUIRE(clxp_model_load(test_data("clip-tiny-quickgelu"), NULL, &m, &err) == CLXP_OK);
    CHECK_STR(clxp_model_get_info(m)->precision, nn_cpu_has_bf16() ? "bf16" : "fp32");
    clxp_model_free(m);
    if (!nn_cpu_has_bf16()) {
        const clxp_load_options o16 = {.precision = CLXP_PRECISION_BF16};
        CHECK(clxp_model_load(test_data("clip-tiny-quickgelu"), &o16, &m, &err) == CLXP_ERR_UNSUPPORTED);
        CHECK(m == NULL);
        CHECK_CONTAINS(err.msg, "bf16");
    }
    const clxp_load_options bad = {.precision = (clxp_precision)7};
    CHECK(clxp_model_load(test_data("clip-tiny-quickgelu"), &bad, &m, &err) == CLXP_ERR_INVALID);
    CHECK(m == NULL);
}

int main(void) {
    RUN(round_bf16);
    RUN(gelu);
    RUN(linear_fp32_packed);
    RUN(linear_bf16_packed);
    RUN(clip_quickgelu_bf16);
    RUN(clip_gelu_bf16);
    RUN(clap_unfused_bf16);
    RUN(clap_fused_bf16);
    RUN(auto_choice);
    return test_summary();
}
