/* CLAP (Hugging Face ClapModel) against the transformers 4.40.2 goldens (tests/data/clap-tiny-{unfused,fused}):
 * WAV -> input_features (feature extractor, fusion crops replayed from the manifest) -> HTSAT audio tower, and
 * prompts -> tokens -> RoBERTa text tower, every intermediate the golden file holds, embeddings, both logits and
 * the zero-shot probabilities, with the thresholds of the issue: tokens identical, features 1e-4 dB max-abs,
 * model tensors 1e-4 relative (||diff|| / ||ref||; text hidden states at unmasked positions only), normalised
 * embeddings and probabilities 1e-5 max-abs, identical ranking.
 *
 * The model runs on the features computed here from the WAV files (the whole pipeline), not on the golden ones.
 * The golden files in tests/data are trimmed (tools/trim_golden.c): a tensor may hold only some batch items, listed
 * in the metadata entry "items:<name>" (e.g. "0,9,11,15"); those items are compared. With CLXP_TEST_DATA pointing
 * at the untrimmed reference data every item of every tensor is compared (and the mel filters and window too). */
#include <stdint.h>

#include <cjson/cJSON.h>

#include "io/clap_config.h"
#include "io/safetensors.h"
#include "media/audio_features.h"
#include "models/clap.h"
#include "nn/ops.h"
#include "golden.h"
#include "test.h"
#include "text/tokenizer.h"
#include "util/fileio.h"
#include "util/json.h"

#define FEATURE_ABS_TOL 1e-4 /* dB, input_features */
#define FILTER_ABS_TOL 1e-12 /* mel filters and window (float64) */
#define REL_TOL 1e-4         /* hidden states, pooled outputs, unnormalised embeddings, logits */
#define EMB_ABS_TOL 1e-5     /* normalised embeddings */
#define PROB_ABS_TOL 1e-5    /* probabilities */
#define MAX_ITEMS 64
#define CONTEXT 77

/* ---- small helpers ------------------------------------------------------------------------------------------------
 */

/* The batch items a golden tensor holds: its "items:<name>" metadata list, else 0 .. shape[0]-1. Returns the count
 * (0 on a malformed list). */
static int golden_items(const st_file *g, const st_tensor *t, int *items) {
    char key[200];
    snprintf(key, sizeof key, "items:%s", t->name);
    const char *s = st_metadata(g, key);
    if (!s) {
        int n = (int)(t->ndim > 0 ? t->shape[0] : 1);
        for (int i = 0; i < n && i < MAX_ITEMS; i++) items[i] = i;
        return n <= MAX_ITEMS ? n : 0;
    }
    int n = 0;
    while (*s && n < MAX_ITEMS) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s) return 0;
        items[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
    }
    return t->ndim > 0 && n == t->shape[0] ? n : 0;
}

/* ---- hook: compare every observed tensor that has a golden --------------------------------------------------------
 */

typedef struct {
    const st_file *gold;
    const int32_t *mask; /* [P, 77] for text tensors, NULL for audio */
    int mask_T;
    int seen, bad;
    double worst_rel;
    char names[64][80]; /* the tensors compared */
} hook_ctx;

static int was_seen(const hook_ctx *c, const char *name) {
    for (int i = 0; i < c->seen && i < 64; i++)
        if (strcmp(c->names[i], name) == 0) return 1;
    return 0;
}

/* Our tensor data[B, ...] against the golden [n_items, ...]: item k of the golden is our batch item items[k].
 * Text tensors [B, T, D] (T <= 77 computed positions) are compared at unmasked positions only. */
static void compare_hook(void *vctx, const char *name, const float *data, int ndim, const int64_t *shape) {
    hook_ctx *c = vctx;
    const st_tensor *t = st_find(c->gold, name);
    if (!t) return;
    int items[MAX_ITEMS];
    int ni = golden_items(c->gold, t, items);
    float *ref = golden_f32(c->gold, name, NULL);
    size_t cap = (size_t)(t->numel ? t->numel : 1);
    float *a = malloc(cap * sizeof *a), *b = malloc(cap * sizeof *b);
    size_t n = 0;
    int ok = ref && a && b && ni > 0 && t->ndim == ndim;
    for (int k = 0; ok && k < ni; k++) ok = items[k] >= 0 && items[k] < shape[0];
    if (ok && c->mask) { /* [B, T, D] vs [n, 77, D] */
        const int64_t T = shape[1], D = shape[2], Tg = t->shape[1];
        ok = t->shape[2] == D && T <= Tg;
        for (int k = 0; ok && k < ni; k++)
            for (int64_t ti = 0; ti < T; ti++) {
                if (!c->mask[(int64_t)items[k] * c->mask_T + ti]) continue;
                memcpy(a + n, data + ((int64_t)items[k] * T + ti) * D, (size_t)D * sizeof *a);
                memcpy(b + n, ref + ((int64_t)k * Tg + ti) * D, (size_t)D * sizeof *b);
                n += (size_t)D;
            }
    } else if (ok) {
        int64_t per = 1;
        for (int d = 1; d < ndim; d++) {
            ok = ok && t->shape[d] == shape[d];
            per *= shape[d];
        }
        for (int k = 0; ok && k < ni; k++) {
            memcpy(a + n, data + (int64_t)items[k] * per, (size_t)per * sizeof *a);
            memcpy(b + n, ref + (int64_t)k * per, (size_t)per * sizeof *b);
            n += (size_t)per;
        }
    }
    if (!ok) {
        printf("  %s: shape mismatch or unreadable golden\n", name);
        c->bad++;
    } else {
        test_diff d = test_compare(a, b, n);
        printf("  %-44s max_abs %.3g  rel %.3g  (%d item%s)\n", name, d.max_abs, d.rel, ni, ni == 1 ? "" : "s");
        if (!(d.rel <= REL_TOL)) c->bad++;
        if (d.rel > c->worst_rel) c->worst_rel = d.rel;
        if (c->seen < 64) snprintf(c->names[c->seen], sizeof c->names[0], "%s", name);
        c->seen++;
    }
    free(a);
    free(b);
    free(ref);
}

/* ---- the golden comparison of one model directory -----------------------------------------------------------------
 */

/* Prompts from golden/inputs/prompts.json ({"prompts": [...]}); returns the cJSON tree (caller deletes). */
static cJSON *load_prompts(const char *dir, int *n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/inputs/prompts.json", test_data(dir));
    cJSON *j = NULL;
    clxp_error err;
    if (clxp_json_load(path, &j, &err) != CLXP_OK) {
        printf("  %s\n", err.msg);
        return NULL;
    }
    *n = cJSON_GetArraySize(cJSON_GetObjectItem(j, "prompts"));
    return j;
}

static void check_model(const char *dir) {
    char path[1024];
    clxp_error err = {0};
    st_file *g = NULL;
    clap_model *m = NULL;
    clap_fe *fe = NULL;
    clxp_tokenizer *tok = NULL;
    cJSON *prompts = NULL, *manifest = NULL, *zs = NULL;
    snprintf(path, sizeof path, "%s/golden/golden.safetensors", test_data(dir));
    REQUIRE(st_open(path, &g, &err) == CLXP_OK);
    if (clap_model_load(test_data(dir), &m, &err) != CLXP_OK) printf("  load: %s\n", err.msg);
    clap_feature_config fcfg;
    snprintf(path, sizeof path, "%s/preprocessor_config.json", test_data(dir));
    CHECK(clap_feature_config_load(path, &fcfg, &err) == CLXP_OK);
    CHECK(clap_fe_create(&fcfg, &fe, &err) == CLXP_OK);
    snprintf(path, sizeof path, "%s/tokenizer.json", test_data(dir));
    CHECK(tok_load(path, &tok, &err) == CLXP_OK);
    snprintf(path, sizeof path, "%s/golden/manifest.json", test_data(dir));
    CHECK(clxp_json_load(path, &manifest, &err) == CLXP_OK);
    snprintf(path, sizeof path, "%s/golden/zero_shot.json", test_data(dir));
    CHECK(clxp_json_load(path, &zs, &err) == CLXP_OK);
    int P = 0;
    prompts = load_prompts(dir, &P);
    if (!m || !fe || !tok || !manifest || !zs || !prompts) goto out;
    const int Pj = m->cfg.projection_dim;

    /* ---- tokens: tokenizer.json, truncation and padding to 77 with the config's pad id (LAION convention) */
    const st_tensor *ids_t = st_find(g, "input_ids"), *mask_t = st_find(g, "attention_mask");
    REQUIRE(ids_t && mask_t && ids_t->shape[0] == P && ids_t->shape[1] == CONTEXT);
    int32_t *ids = calloc((size_t)P * CONTEXT, sizeof *ids), *mask = calloc((size_t)P * CONTEXT, sizeof *mask);
    int tok_bad = 0;
    tok_encode_opts topt = {1, CONTEXT, CONTEXT, m->cfg.text.pad_token_id};
    for (int i = 0; i < P; i++) {
        const char *text = cJSON_GetArrayItem(cJSON_GetObjectItem(prompts, "prompts"), i)->valuestring;
        int n = 0;
        CHECK(tok_encode(tok, text, strlen(text), &topt, ids + i * CONTEXT, mask + i * CONTEXT, CONTEXT, &n, &err) ==
              CLXP_OK);
        CHECK_EQ_INT(n, CONTEXT);
        for (int t = 0; t < CONTEXT; t++)
            if (ids[i * CONTEXT + t] != golden_i64(ids_t, i * CONTEXT + t) ||
                mask[i * CONTEXT + t] != golden_i64(mask_t, i * CONTEXT + t))
                tok_bad++;
    }
    printf("  tokens: %d prompts, %d mismatching ids/mask entries\n", P, tok_bad);
    CHECK_EQ_INT(tok_bad, 0);

    /* ---- mel filters and window (only in the untrimmed reference data) */
    const char *fname =
        fcfg.truncation == CLAP_TRUNC_FUSION ? "preprocess.mel_filters_htk" : "preprocess.mel_filters_slaney";
    const st_tensor *ft = st_find(g, fname), *wt = st_find(g, "preprocess.window_hann_periodic_1024");
    if (ft && ft->dtype == ST_F64 && ft->numel == (int64_t)clap_fe_bins(fe) * clap_fe_mels(fe)) {
        double mx = 0;
        for (int64_t i = 0; i < ft->numel; i++) {
            double v;
            memcpy(&v, (const char *)ft->data + 8 * i, 8);
            mx = fmax(mx, fabs(v - clap_fe_mel_filters(fe)[i]));
        }
        printf("  %-44s max_abs %.3g\n", fname, mx);
        CHECK(mx <= FILTER_ABS_TOL);
    }
    if (wt && wt->dtype == ST_F64 && wt->numel == fcfg.fft_window_size) {
        double mx = 0;
        for (int64_t i = 0; i < wt->numel; i++) {
            double v;
            memcpy(&v, (const char *)wt->data + 8 * i, 8);
            mx = fmax(mx, fabs(v - clap_fe_window(fe)[i]));
        }
        printf("  %-44s max_abs %.3g\n", "preprocess.window_hann_periodic_1024", mx);
        CHECK(mx <= FILTER_ABS_TOL);
    }

    /* ---- features from the WAV files, in the manifest's input order */
    const cJSON *inputs = cJSON_GetObjectItem(manifest, "inputs"),
                *crops_j = cJSON_GetObjectItem(manifest, "fusion_crops");
    const int B = cJSON_GetArraySize(inputs), C = clap_fe_channels(fe), Tf = clap_fe_frames(fe), Fm = clap_fe_mels(fe);
    REQUIRE(B > 0 && B <= MAX_ITEMS);
    const size_t per = (size_t)C * Tf * Fm;
    float *feats = malloc((size_t)B * per * sizeof *feats);
    int longer[MAX_ITEMS];
    const st_tensor *gf = st_find(g, "input_features"), *gl = st_find(g, "is_longer");
    REQUIRE(feats && gf && gl && gl->numel == B);
    int gf_items[MAX_ITEMS], gf_n = golden_items(g, gf, gf_items);
    REQUIRE(gf_n > 0 && gf->numel == (int64_t)gf_n * (int64_t)per);
    float *gfeat = golden_f32(g, "input_features", NULL);
    REQUIRE(gfeat);
    for (int i = 0; i < B; i++) {
        const cJSON *in = cJSON_GetArrayItem(inputs, i);
        const char *file = cJSON_GetObjectItem(in, "file")->valuestring;
        char rel[512];
        snprintf(rel, sizeof rel, "%s/golden/inputs/%s", dir, file);
        size_t n = 0;
        int rate = 0;
        float *wave = golden_read_wav(test_data(rel), &n, &rate);
        REQUIRE(wave);
        CHECK_EQ_INT(rate, fcfg.sampling_rate);
        CHECK_EQ_INT(n, cJSON_GetObjectItem(in, "num_samples")->valueint);
        /* replay the reference's random fusion crops */
        clap_fe_crops crops = {{-1, -1, -1}, -1}, used;
        const cJSON *cj = crops_j ? cJSON_GetObjectItem(crops_j, file) : NULL;
        if (cj) {
            crops.fusion[0] = cJSON_GetObjectItem(cj, "idx_front")->valueint;
            crops.fusion[1] = cJSON_GetObjectItem(cj, "idx_middle")->valueint;
            crops.fusion[2] = cJSON_GetObjectItem(cj, "idx_back")->valueint;
        }
        CHECK(clap_fe_extract(fe, wave, n, &crops, feats + (size_t)i * per, &longer[i], &used, &err) == CLXP_OK);
        if (cj) CHECK(used.fusion[0] == crops.fusion[0] && used.fusion[2] == crops.fusion[2]);
        CHECK_EQ_INT(longer[i], golden_i64(gl, i));
        for (int k = 0; k < gf_n; k++) {
            if (gf_items[k] != i) continue;
            test_diff d = test_compare(feats + (size_t)i * per, gfeat + (size_t)k * per, per);
            printf("  input_features[%d] %-26s max_abs %.3g dB (tol %g)\n", i, file, d.max_abs, FEATURE_ABS_TOL);
            CHECK(d.max_abs <= FEATURE_ABS_TOL);
        }
        free(wave);
    }
    free(gfeat);

    /* ---- audio tower on those features */
    float *aemb = malloc((size_t)B * Pj * sizeof *aemb);
    hook_ctx ac = {.gold = g};
    CHECK(clap_encode_features(m, feats, longer, B, C, Tf, aemb, compare_hook, &ac, &err) == CLXP_OK);
    CHECK_EQ_INT(ac.bad, 0);
    char req[80];
    for (int k = 0; k <= m->cfg.audio.n_stages; k++) {
        snprintf(req, sizeof req, "audio.hidden_states.%d", k);
        CHECK(was_seen(&ac, req));
    }
    CHECK(was_seen(&ac, "audio.last_hidden_state"));
    CHECK(was_seen(&ac, "audio.pooled_output"));
    CHECK(was_seen(&ac, "audio_embeds_unnormalized"));

    /* ---- text tower on the tokens */
    float *temb = malloc((size_t)P * Pj * sizeof *temb);
    hook_ctx tc = {.gold = g, .mask = mask, .mask_T = CONTEXT};
    CHECK(clap_encode_tokens(m, ids, mask, P, CONTEXT, temb, compare_hook, &tc, &err) == CLXP_OK);
    CHECK_EQ_INT(tc.bad, 0);
    for (int k = 0; k <= m->cfg.text.layers; k++) {
        snprintf(req, sizeof req, "text.hidden_states.%d", k);
        CHECK(was_seen(&tc, req));
    }
    CHECK(was_seen(&tc, "text.pooled_output"));
    CHECK(was_seen(&tc, "text_embeds_unnormalized"));

    /* ---- logit scales, normalised embeddings, logits, probabilities */
    float *gsa = golden_f32(g, "logit_scale_a_exp", NULL), *gst = golden_f32(g, "logit_scale_t_exp", NULL);
    REQUIRE(gsa && gst);
    printf("  logit scales exp: audio %.7g (golden %.7g), text %.7g (golden %.7g)\n", clap_logit_scale_audio(m), gsa[0],
           clap_logit_scale_text(m), gst[0]);
    CHECK_NEAR(clap_logit_scale_audio(m), gsa[0], 1e-6 * gsa[0]);
    CHECK_NEAR(clap_logit_scale_text(m), gst[0], 1e-6 * gst[0]);
    nn_l2_normalize(aemb, B, Pj);
    nn_l2_normalize(temb, P, Pj);
    float *ga = golden_f32(g, "audio_embeds", NULL), *gt = golden_f32(g, "text_embeds", NULL);
    float *gla = golden_f32(g, "logits_per_audio", NULL), *glt = golden_f32(g, "logits_per_text", NULL);
    float *gp = golden_f32(g, "probs_per_audio", NULL);
    REQUIRE(ga && gt && gla && glt && gp);
    test_diff da = test_compare(aemb, ga, (size_t)B * Pj), dt = test_compare(temb, gt, (size_t)P * Pj);
    printf("  audio_embeds max_abs %.3g, text_embeds max_abs %.3g (tol %g)\n", da.max_abs, dt.max_abs, EMB_ABS_TOL);
    CHECK(da.max_abs <= EMB_ABS_TOL);
    CHECK(dt.max_abs <= EMB_ABS_TOL);
    float *la = malloc((size_t)B * P * sizeof *la), *lt = malloc((size_t)B * P * sizeof *lt);
    float *probs = malloc((size_t)B * P * sizeof *probs);
    clap_logits_per_audio(m, aemb, B, temb, P, la);
    for (int j = 0; j < P; j++) /* logits_per_text = exp(logit_scale_t) text . audio */
        for (int i = 0; i < B; i++) {
            float s = 0;
            for (int k = 0; k < Pj; k++) s += temb[j * Pj + k] * aemb[i * Pj + k];
            lt[j * B + i] = s * clap_logit_scale_text(m);
        }
    memcpy(probs, la, (size_t)B * P * sizeof *probs);
    for (int i = 0; i < B; i++) nn_softmax(probs + (size_t)i * P, P);
    test_diff dla = test_compare(la, gla, (size_t)B * P), dlt = test_compare(lt, glt, (size_t)B * P);
    test_diff dp = test_compare(probs, gp, (size_t)B * P);
    /* zero_shot.json: the same softmax in float64 */
    double zmax = 0;
    const cJSON *zr = cJSON_GetObjectItem(zs, "results");
    int zn = 0;
    for (int i = 0; zr && i < B && i < cJSON_GetArraySize(zr); i++) {
        const cJSON *row = cJSON_GetObjectItem(cJSON_GetArrayItem(zr, i), "probs");
        for (int j = 0; j < P && j < cJSON_GetArraySize(row); j++, zn++)
            zmax = fmax(zmax, fabs(probs[i * P + j] - cJSON_GetArrayItem(row, j)->valuedouble));
    }
    printf("  logits_per_audio rel %.3g, logits_per_text rel %.3g (tol %g); probs max_abs %.3g, zero_shot.json "
           "max_abs %.3g over %d (tol %g)\n",
           dla.rel, dlt.rel, REL_TOL, dp.max_abs, zmax, zn, PROB_ABS_TOL);
    CHECK(dla.rel <= REL_TOL);
    CHECK(dlt.rel <= REL_TOL);
    CHECK(dp.max_abs <= PROB_ABS_TOL);
    CHECK_EQ_INT(zn, B * P);
    CHECK(zmax <= PROB_ABS_TOL);
    int rank_bad = 0; /* identical ranking of the prompts for every clip (ties in the reference excepted) */
    for (int i = 0; i < B; i++)
        for (int x = 0; x < P; x++)
            for (int y = 0; y < P; y++)
                if (gla[i * P + x] > gla[i * P + y] && !(la[i * P + x] > la[i * P + y])) rank_bad++;
    CHECK_EQ_INT(rank_bad, 0);

    free(la);
    free(lt);
    free(probs);
    free(ga);
    free(gt);
    free(gla);
    free(glt);
    free(gp);
    free(gsa);
    free(gst);
    free(aemb);
    free(temb);
    free(feats);
    free(ids);
    free(mask);
out:
    cJSON_Delete(prompts);
    cJSON_Delete(manifest);
    cJSON_Delete(zs);
    tok_free(tok);
    clap_fe_free(fe);
    clap_model_free(m);
    st_close(g);
}

TEST(clap_tiny_unfused) { check_model("clap-tiny-unfused"); }
TEST(clap_tiny_fused) { check_model("clap-tiny-fused"); }

/* ---- feature extractor modes that the goldens do not cover ----------------------------------------------------------
 */

static clap_fe *make_fe(const char *json) {
    clap_feature_config c;
    clxp_error err;
    clap_fe *fe = NULL;
    if (clap_feature_config_parse(json, strlen(json), "test", &c, &err) != CLXP_OK ||
        clap_fe_create(&c, &fe, &err) != CLXP_OK)
        printf("  %s\n", err.msg);
    return fe;
}

static float *wav_of(const char *dir, const char *file, size_t *n) {
    char rel[512];
    int rate = 0;
    snprintf(rel, sizeof rel, "%s/golden/inputs/%s", dir, file);
    return golden_read_wav(test_data(rel), n, &rate);
}

/* Features of w[0..n) equal, bit for bit, the features of the prepared 480000-sample waveform ref. */
static int same_features(const clap_fe *fe, const float *w, size_t n, const float *ref, const clap_fe_crops *crops) {
    size_t per = (size_t)clap_fe_channels(fe) * clap_fe_frames(fe) * clap_fe_mels(fe);
    float *a = malloc(per * sizeof *a), *b = malloc(per * sizeof *b);
    clxp_error err;
    int ok =
        a && b && clap_fe_extract(fe, w, n, crops, a, NULL, NULL, &err) == CLXP_OK &&
        clap_fe_extract(fe, ref, (size_t)clap_fe_config(fe)->nb_max_samples, NULL, b, NULL, NULL, &err) == CLXP_OK &&
        memcmp(a, b, per * sizeof *a) == 0;
    free(a);
    free(b);
    return ok;
}

TEST(feature_padding_and_truncation) {
    const size_t max = 480000;
    size_t na = 0, nb = 0;
    float *a = wav_of("clap-tiny-unfused", "a_chirp_noise_3s.wav", &na),
          *b = wav_of("clap-tiny-unfused", "b_tones_10s.wav", &nb);
    float *ref = calloc(max, sizeof *ref), *lng = malloc((max + 12345) * sizeof *lng);
    REQUIRE(a && b && ref && lng && na == 144000 && nb == max);
    const char *modes[3] = {"repeatpad", "repeat", "pad"};
    for (int mode = 0; mode < 3; mode++) {
        char json[200];
        snprintf(json, sizeof json, "{\"truncation\": \"rand_trunc\", \"padding\": \"%s\", \"frequency_min\": 50}",
                 modes[mode]);
        clap_fe *fe = make_fe(json);
        REQUIRE(fe);
        /* repeatpad: int(max / n) = 3 copies then zeros; repeat: 4 copies cut to max; pad: zeros only */
        size_t filled = mode == 0 ? 3 * na : mode == 1 ? max : na;
        memset(ref, 0, max * sizeof *ref);
        for (size_t i = 0; i < filled; i++) ref[i] = a[i % na];
        CHECK(same_features(fe, a, na, ref, NULL));
        clap_fe_free(fe);
    }
    /* rand_trunc on a longer clip: deterministic centre window, or the start given by the test hook */
    clap_fe *fe = make_fe("{\"truncation\": \"rand_trunc\"}");
    REQUIRE(fe);
    memcpy(lng, b, max * sizeof *lng);
    memcpy(lng + max, a, 12345 * sizeof *lng);
    float *feat = malloc((size_t)clap_fe_frames(fe) * clap_fe_mels(fe) * sizeof *feat);
    int longer = 0;
    clap_fe_crops used;
    clxp_error err;
    CHECK(clap_fe_extract(fe, lng, max + 12345, NULL, feat, &longer, &used, &err) == CLXP_OK);
    CHECK_EQ_INT(longer, 1);
    CHECK_EQ_INT(used.trunc, 12345 / 2);
    CHECK(same_features(fe, lng, max + 12345, lng + 12345 / 2, NULL));
    clap_fe_crops start0 = {{-1, -1, -1}, 0}, bad = {{-1, -1, -1}, 12346};
    CHECK(same_features(fe, lng, max + 12345, lng, &start0));
    CHECK(clap_fe_extract(fe, lng, max + 12345, &bad, feat, NULL, NULL, &err) == CLXP_ERR_INVALID);
    /* exactly max samples: no crop, not longer */
    CHECK(clap_fe_extract(fe, b, max, NULL, feat, &longer, &used, &err) == CLXP_OK);
    CHECK_EQ_INT(longer, 0);
    CHECK_EQ_INT(used.trunc, -1);
    /* invalid waveforms */
    CHECK(clap_fe_extract(fe, b, 0, NULL, feat, NULL, NULL, &err) == CLXP_ERR_INVALID);
    lng[7] = NAN;
    CHECK(clap_fe_extract(fe, lng, max, NULL, feat, NULL, NULL, &err) == CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "sample 7");
    free(feat);
    clap_fe_free(fe);
    free(a);
    free(b);
    free(ref);
    free(lng);
}

TEST(feature_fusion_crops) {
    size_t nd = 0, nb = 0;
    float *d = wav_of("clap-tiny-fused", "d_sweep_14s.wav", &nd),
          *b = wav_of("clap-tiny-unfused", "b_tones_10s.wav", &nb);
    clap_fe *fe = make_fe("{\"truncation\": \"fusion\", \"frequency_min\": 50}");
    REQUIRE(d && b && fe && nd == 672000);
    const size_t per = (size_t)4 * clap_fe_frames(fe) * clap_fe_mels(fe), ch = per / 4;
    float *f1 = malloc(per * sizeof *f1), *f2 = malloc(per * sizeof *f2);
    int longer = 0;
    clap_fe_crops used, golden = {{47, 172, 321}, -1};
    clxp_error err;
    /* the deterministic crops: the middle element of each np.array_split range of 0..400 */
    CHECK(clap_fe_extract(fe, d, nd, NULL, f1, &longer, &used, &err) == CLXP_OK);
    CHECK_EQ_INT(longer, 1);
    CHECK(used.fusion[0] == 67 && used.fusion[1] == 201 && used.fusion[2] == 334);
    /* channel 0 (the whole clip, shrunk) does not depend on the crops; the crops are slices of one spectrogram:
     * overlapping chunks agree on their common frames */
    CHECK(clap_fe_extract(fe, d, nd, &golden, f2, NULL, NULL, &err) == CLXP_OK);
    CHECK(memcmp(f1, f2, ch * sizeof *f1) == 0);
    const int M = clap_fe_mels(fe);
    CHECK(memcmp(f1 + ch + (size_t)(201 - 67) * M, f1 + 2 * ch, (size_t)(1001 - (201 - 67)) * M * sizeof *f1) == 0);
    CHECK(memcmp(f2 + ch + (size_t)(67 - 47) * M, f1 + ch, (size_t)(1001 - 20) * M * sizeof *f1) == 0);
    clap_fe_crops out_of_range = {{401, -1, -1}, -1};
    CHECK(clap_fe_extract(fe, d, nd, &out_of_range, f2, NULL, NULL, &err) == CLXP_ERR_INVALID);
    /* small overhangs: 3 extra hops -> 4 candidate starts split 2/1/1 -> starts 1, 2, 3; 1 extra hop -> 2
     * candidates split 1/1/0, the empty third range becomes [0]; less than a hop -> 4 copies of the whole mel */
    float *w = malloc((nd) * sizeof *w);
    memcpy(w, d, nd * sizeof *w);
    CHECK(clap_fe_extract(fe, w, 480000 + 3 * 480, NULL, f1, &longer, &used, &err) == CLXP_OK);
    CHECK(used.fusion[0] == 1 && used.fusion[1] == 2 && used.fusion[2] == 3);
    CHECK(clap_fe_extract(fe, w, 480000 + 480, NULL, f1, &longer, &used, &err) == CLXP_OK);
    CHECK(used.fusion[0] == 0 && used.fusion[1] == 1 && used.fusion[2] == 0);
    CHECK(clap_fe_extract(fe, w, 480000 + 100, NULL, f1, &longer, &used, &err) == CLXP_OK);
    CHECK(used.fusion[0] == -1 && longer == 1);
    CHECK(memcmp(f1, f1 + ch, ch * sizeof *f1) == 0 && memcmp(f1, f1 + 3 * ch, ch * sizeof *f1) == 0);
    /* a clip of exactly 10 s in fusion mode: 4 copies, flagged as longer (one-clip call) */
    CHECK(clap_fe_extract(fe, b, nb, NULL, f1, &longer, &used, &err) == CLXP_OK);
    CHECK_EQ_INT(longer, 1);
    CHECK(memcmp(f1, f1 + 2 * ch, ch * sizeof *f1) == 0);
    free(w);
    free(f1);
    free(f2);
    free(d);
    free(b);
    clap_fe_free(fe);
}

/* ---- configuration errors -------------------------------------------------------------------------------------------
 */

static void expect_config_error(const char *json, clxp_status code, const char *needle) {
    clap_config c;
    clxp_error err = {0};
    clxp_status st = clap_config_parse(json, strlen(json), "cfg.json", &c, &err);
    if (st != code || !strstr(err.msg, needle) || strncmp(err.msg, "cfg.json: ", 10) != 0)
        printf("  %s -> %d \"%s\"\n", json, (int)st, err.msg);
    CHECK_EQ_INT(st, code);
    CHECK_CONTAINS(err.msg, needle);
}

static void expect_fe_error(const char *json, clxp_status code, const char *needle) {
    clap_feature_config c;
    clxp_error err = {0};
    clxp_status st = clap_feature_config_parse(json, strlen(json), "pp.json", &c, &err);
    if (st != code || !strstr(err.msg, needle)) printf("  %s -> %d \"%s\"\n", json, (int)st, err.msg);
    CHECK_EQ_INT(st, code);
    CHECK_CONTAINS(err.msg, needle);
}

TEST(config_parsing) {
    clap_config c;
    clxp_error err;
    /* absent sections take ClapConfig() defaults (HTSAT-base, RoBERTa-base) */
    REQUIRE(clap_config_parse("{}", 2, "cfg.json", &c, &err) == CLXP_OK);
    CHECK_EQ_INT(c.audio.n_stages, 4);
    CHECK_EQ_INT(c.audio.depths[2], 6);
    CHECK_EQ_INT(c.audio.hidden_size, 768);
    CHECK_EQ_INT(c.text.hidden, 768);
    CHECK_EQ_INT(c.text.pad_token_id, 1);
    CHECK_NEAR(c.text.layer_norm_eps, 1e-12, 1e-20);
    CHECK_EQ_INT(c.projection_dim, 512);
    REQUIRE(clap_config_load(test_data("clap-tiny-fused/config.json"), &c, &err) == CLXP_OK);
    CHECK(c.audio.enable_fusion && c.audio.patch_embeds_hidden_size == 16 && c.text.hidden == 16);
    CHECK(c.projection_dim == 32 && c.audio.patch_stride[1] == 4 && c.audio.heads[3] == 8);

    expect_config_error("{\"model_type\": \"clip\"}", CLXP_ERR_UNSUPPORTED, "model_type");
    expect_config_error("{\"audio_config\": {\"depths\": [2, 2]}}", CLXP_ERR_INVALID, "num_attention_heads");
    expect_config_error("{\"audio_config\": {\"window_size\": 7}}", CLXP_ERR_UNSUPPORTED, "window_size");
    expect_config_error("{\"audio_config\": {\"hidden_size\": 512}}", CLXP_ERR_INVALID, "audio_config.hidden_size");
    expect_config_error("{\"audio_config\": {\"patch_stride\": [4, 2]}}", CLXP_ERR_UNSUPPORTED, "patch_stride");
    expect_config_error("{\"audio_config\": {\"depths\": \"2\"}}", CLXP_ERR_FORMAT, "audio_config.depths");
    expect_config_error("{\"audio_config\": {\"enable_fusion\": true, \"fusion_type\": \"channel_map\"}}",
                        CLXP_ERR_UNSUPPORTED, "fusion_type");
    expect_config_error("{\"text_config\": {\"hidden_size\": 30, \"num_attention_heads\": 4}}", CLXP_ERR_INVALID,
                        "text_config.hidden_size 30");
    expect_config_error("{\"text_config\": {\"position_embedding_type\": \"relative_key\"}}", CLXP_ERR_UNSUPPORTED,
                        "position_embedding_type");
    expect_config_error("{\"text_config\": {\"layer_norm_eps\": 0}}", CLXP_ERR_INVALID, "text_config.layer_norm_eps");
    expect_config_error("{\"projection_hidden_act\": \"tanh\"}", CLXP_ERR_UNSUPPORTED, "projection_hidden_act");
    expect_config_error("{\"projection_dim\": 0}", CLXP_ERR_INVALID, "projection_dim");
    expect_config_error("[1]", CLXP_ERR_FORMAT, "not a JSON object");

    clap_feature_config f;
    REQUIRE(clap_feature_config_load(test_data("clap-tiny-unfused/preprocessor_config.json"), &f, &err) == CLXP_OK);
    CHECK(f.truncation == CLAP_TRUNC_RAND_TRUNC && f.padding == CLAP_PAD_REPEATPAD && f.nb_max_samples == 480000);
    CHECK(f.frequency_min == 50 && f.frequency_max == 14000 && f.fft_window_size == 1024 && f.hop_length == 480);
    REQUIRE(clap_feature_config_parse("{}", 2, "pp.json", &f, &err) == CLXP_OK);
    CHECK(f.truncation == CLAP_TRUNC_FUSION && f.frequency_min == 0 && f.sampling_rate == 48000);
    expect_fe_error("{\"truncation\": \"head\"}", CLXP_ERR_UNSUPPORTED, "truncation \"head\"");
    expect_fe_error("{\"padding\": \"mirror\"}", CLXP_ERR_UNSUPPORTED, "padding");
    expect_fe_error("{\"max_length_s\": 0.00001}", CLXP_ERR_INVALID, "max_length_s");
    expect_fe_error("{\"frequency_max\": 30000}", CLXP_ERR_INVALID, "frequency_max");
    expect_fe_error("{\"sampling_rate\": \"48k\"}", CLXP_ERR_FORMAT, "sampling_rate");
    expect_fe_error("{\"fft_window_size\": 1023}", CLXP_ERR_UNSUPPORTED, "fft_window_size");
    expect_fe_error("{\"feature_extractor_type\": \"WhisperFeatureExtractor\"}", CLXP_ERR_UNSUPPORTED,
                    "feature_extractor_type");
}

/* ---- invalid model inputs -------------------------------------------------------------------------------------------
 */

TEST(model_input_errors) {
    clap_model *m = NULL;
    clxp_error err;
    REQUIRE(clap_model_load(test_data("clap-tiny-unfused"), &m, &err) == CLXP_OK);
    CHECK_EQ_INT(clap_max_frames(m), 1024);
    float emb[32], *feat = calloc((size_t)4 * 1025 * 64, sizeof *feat);
    REQUIRE(feat);
    CHECK(clap_encode_features(m, feat, NULL, 1, 4, 1001, emb, NULL, NULL, &err) == CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "feature channel");
    CHECK(clap_encode_features(m, feat, NULL, 1, 1, 1025, emb, NULL, NULL, &err) == CLXP_ERR_INVALID);
    /* 1024 frames: no time interpolation at all; a silent clip still gives finite embeddings */
    CHECK(clap_encode_features(m, feat, NULL, 1, 1, 1024, emb, NULL, NULL, &err) == CLXP_OK);
    int finite = 1;
    for (int i = 0; i < 32; i++) finite &= isfinite(emb[i]) != 0;
    CHECK(finite);
    int32_t ids[4] = {0, 50265, 2, 1}, mask[4] = {1, 1, 1, 0}, none[4] = {0, 0, 0, 0};
    CHECK(clap_encode_tokens(m, ids, mask, 1, 4, emb, NULL, NULL, &err) == CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "50265");
    ids[1] = 10;
    CHECK(clap_encode_tokens(m, ids, none, 1, 4, emb, NULL, NULL, &err) == CLXP_ERR_INVALID);
    CHECK(clap_encode_tokens(m, ids, mask, 1, 600, emb, NULL, NULL, &err) == CLXP_ERR_INVALID);
    CHECK(clap_encode_tokens(m, ids, mask, 1, 4, emb, NULL, NULL, &err) == CLXP_OK);
    free(feat);
    clap_model_free(m);
    /* a CLIP directory is refused by its config.json */
    CHECK(clap_model_load(test_data("clip-tiny-gelu"), &m, &err) == CLXP_ERR_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "model_type \"clip\"");
    CHECK(m == NULL);
}

int main(void) {
    RUN(clap_tiny_unfused);
    RUN(clap_tiny_fused);
    RUN(feature_padding_and_truncation);
    RUN(feature_fusion_crops);
    RUN(config_parsing);
    RUN(model_input_errors);
    return test_summary();
}
