/* CLIP forward pass against the Hugging Face transformers goldens (tests/data/clip-tiny-{quickgelu,gelu}/golden):
 * every hidden state, pooled outputs, embeddings, logits and probabilities, with the thresholds of the
 * issue: 1e-4 relative (||diff|| / ||ref||) per tensor, normalised embeddings and probabilities 1e-5
 * max-abs, identical ranking. Inputs are the golden pixel_values / input_ids, so this test isolates the
 * model; preprocessing and tokenization have their own golden tests. */
#include <stdint.h>

#include "io/safetensors.h"
#include "models/clip.h"
#include "nn/ops.h"
#include "golden.h"
#include "test.h"

#define REL_TOL 1e-4    /* hidden states, pooled outputs, unnormalised embeddings, logits */
#define EMB_ABS_TOL 1e-5 /* normalised embeddings */
#define PROB_ABS_TOL 1e-5

typedef struct {
    const st_file *gold;
    const int32_t *mask; /* [P, 77] for text tensors, NULL for vision */
    int mask_T;
    int seen, bad;
    double worst_rel;
} hook_ctx;

/* Compares a [B, T, D] (or [B, D]) tensor against the golden one; text tensors only at unmasked positions
 * (the reference's hidden states at padded positions depend on its padding mask details). */
static void compare_hook(void *vctx, const char *name, const float *data, int ndim, const int64_t *shape) {
    hook_ctx *c = vctx;
    const st_tensor *t = st_find(c->gold, name);
    if (!t) return; /* not every observed tensor has a golden */
    float *ref = golden_f32(c->gold, name, NULL);
    if (!ref) {
        c->bad++;
        return;
    }
    size_t n = 0;
    float *a = malloc((size_t)t->numel * sizeof *a), *b = malloc((size_t)t->numel * sizeof *b);
    if (ndim == 3) {
        int64_t B = shape[0], T = shape[1], D = shape[2], Tg = t->shape[1];
        if (t->ndim != 3 || t->shape[0] != B || t->shape[2] != D || T > Tg) {
            printf("  %s: shape mismatch\n", name);
            c->bad++;
            goto out;
        }
        for (int64_t bi = 0; bi < B; bi++)
            for (int64_t ti = 0; ti < T; ti++) {
                if (c->mask && !c->mask[bi * c->mask_T + ti]) continue;
                memcpy(a + n, data + (bi * T + ti) * D, (size_t)D * sizeof *a);
                memcpy(b + n, ref + (bi * Tg + ti) * D, (size_t)D * sizeof *b);
                n += (size_t)D;
            }
    } else {
        int64_t numel = shape[0] * shape[1];
        if (numel != t->numel) {
            printf("  %s: shape mismatch\n", name);
            c->bad++;
            goto out;
        }
        memcpy(a, data, (size_t)numel * sizeof *a);
        memcpy(b, ref, (size_t)numel * sizeof *b);
        n = (size_t)numel;
    }
    test_diff d = test_compare(a, b, n);
    printf("  %-34s max_abs %.3g  rel %.3g\n", name, d.max_abs, d.rel);
    if (!(d.rel <= REL_TOL)) c->bad++;
    if (d.rel > c->worst_rel) c->worst_rel = d.rel;
    c->seen++;
out:
    free(a);
    free(b);
    free(ref);
}

static void check_model(const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/golden.safetensors", test_data(dir));
    st_file *g = NULL;
    clip_model *m = NULL;
    clxp_error err = {0};
    REQUIRE(st_open(path, &g, &err) == CLXP_OK);
    if (clip_model_load(test_data(dir), &m, &err) != CLXP_OK) printf("  load: %s\n", err.msg);
    REQUIRE(m);
    const clip_config *cfg = &m->cfg;
    const int Pj = cfg->projection_dim;

    /* text */
    const st_tensor *ids_t = st_find(g, "input_ids"), *mask_t = st_find(g, "attention_mask");
    REQUIRE(ids_t && mask_t && ids_t->ndim == 2);
    const int P = (int)ids_t->shape[0], T = (int)ids_t->shape[1];
    int32_t *ids = malloc((size_t)P * T * sizeof *ids), *mask = malloc((size_t)P * T * sizeof *mask);
    for (int i = 0; i < P * T; i++) {
        int64_t v, mv;
        memcpy(&v, (const char *)ids_t->data + 8 * i, 8);
        memcpy(&mv, (const char *)mask_t->data + 8 * i, 8);
        ids[i] = (int32_t)v;
        mask[i] = (int32_t)mv;
    }
    float *temb = malloc((size_t)P * Pj * sizeof *temb), *temb2 = malloc((size_t)P * Pj * sizeof *temb2);
    hook_ctx tc = {g, mask, T, 0, 0, 0};
    CHECK(clip_encode_tokens(m, ids, mask, P, T, 1, temb, compare_hook, &tc, &err) == CLXP_OK);
    /* hidden_states.0..L, last_hidden_state, pooled_output, text_embeds_unnormalized */
    CHECK_EQ_INT(tc.seen, cfg->text.layers + 1 + 3);
    CHECK_EQ_INT(tc.bad, 0);
    /* pooled index agrees with the reference */
    const st_tensor *pidx = st_find(g, "text.pooled_index");
    REQUIRE(pidx);
    for (int i = 0; i < P; i++) {
        int64_t v;
        memcpy(&v, (const char *)pidx->data + 8 * i, 8);
        CHECK_EQ_INT(clip_pooled_index(cfg, ids + (size_t)i * T, T), v);
    }
    /* the production path (stops at the pooled position) gives the same embeddings */
    CHECK(clip_encode_tokens(m, ids, mask, P, T, 0, temb2, NULL, NULL, &err) == CLXP_OK);
    test_diff dt = test_compare(temb2, temb, (size_t)P * Pj);
    printf("  trimmed text path vs full: max_abs %.3g\n", dt.max_abs);
    CHECK(dt.max_abs <= 1e-6);

    /* vision */
    int64_t npix = 0;
    float *pix = golden_f32(g, "pixel_values", &npix);
    REQUIRE(pix);
    const int B = (int)(npix / (3LL * cfg->image_size * cfg->image_size));
    float *iemb = malloc((size_t)B * Pj * sizeof *iemb);
    hook_ctx vc = {g, NULL, 0, 0, 0, 0};
    CHECK(clip_encode_pixels(m, pix, B, iemb, compare_hook, &vc, &err) == CLXP_OK);
    /* embeddings, hidden_states.0..L, pooled_output, image_embeds_unnormalized */
    CHECK_EQ_INT(vc.seen, 1 + cfg->vision.layers + 1 + 2);
    CHECK_EQ_INT(vc.bad, 0);

    /* normalised embeddings, logits, probabilities */
    nn_l2_normalize(iemb, B, Pj);
    nn_l2_normalize(temb, P, Pj);
    float *gi = golden_f32(g, "image_embeds", NULL), *gt = golden_f32(g, "text_embeds", NULL);
    float *glog = golden_f32(g, "logits_per_image", NULL), *gprob = golden_f32(g, "probs_per_image", NULL);
    REQUIRE(gi && gt && glog && gprob);
    test_diff di = test_compare(iemb, gi, (size_t)B * Pj), dtt = test_compare(temb, gt, (size_t)P * Pj);
    printf("  image_embeds max_abs %.3g, text_embeds max_abs %.3g (tol %g)\n", di.max_abs, dtt.max_abs, EMB_ABS_TOL);
    CHECK(di.max_abs <= EMB_ABS_TOL);
    CHECK(dtt.max_abs <= EMB_ABS_TOL);
    float scale = expf(m->logit_scale);
    float *logits = malloc((size_t)B * P * sizeof *logits), *probs = malloc((size_t)B * P * sizeof *probs);
    for (int i = 0; i < B; i++)
        for (int j = 0; j < P; j++) {
            float s = 0;
            for (int k = 0; k < Pj; k++) s += iemb[i * Pj + k] * temb[j * Pj + k];
            logits[i * P + j] = probs[i * P + j] = scale * s;
        }
    for (int i = 0; i < B; i++) nn_softmax(probs + (size_t)i * P, P);
    test_diff dl = test_compare(logits, glog, (size_t)B * P), dp = test_compare(probs, gprob, (size_t)B * P);
    printf("  logits_per_image rel %.3g (tol %g), probs max_abs %.3g (tol %g)\n", dl.rel, REL_TOL, dp.max_abs,
           PROB_ABS_TOL);
    CHECK(dl.rel <= REL_TOL);
    CHECK(dp.max_abs <= PROB_ABS_TOL);
    /* identical ranking of the prompts for every image (ties in the reference excepted) */
    int rank_bad = 0;
    for (int i = 0; i < B; i++)
        for (int a = 0; a < P; a++)
            for (int b2 = 0; b2 < P; b2++) {
                float ra = glog[i * P + a], rb = glog[i * P + b2];
                if (ra > rb && !(logits[i * P + a] > logits[i * P + b2])) rank_bad++;
            }
    CHECK_EQ_INT(rank_bad, 0);

    free(logits);
    free(probs);
    free(gi);
    free(gt);
    free(glog);
    free(gprob);
    free(iemb);
    free(pix);
    free(temb);
    free(temb2);
    free(ids);
    free(mask);
    clip_model_free(m);
    st_close(g);
}

TEST(clip_tiny_quickgelu) { check_model("clip-tiny-quickgelu"); }
TEST(clip_tiny_gelu) { check_model("clip-tiny-gelu"); }

int main(void) {
    RUN(clip_tiny_quickgelu);
    RUN(clip_tiny_gelu);
    return test_summary();
}
