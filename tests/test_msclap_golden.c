/* MS-CLAP 2023 (models/msclap.h) against msclap's own outputs (shared/golden/msclap-tiny-2023, README there):
 *   - tokens: prompt + " <|endoftext|>", '!' registered as the pad special token (id 0), padded to 77, never truncated
 *     (the 103-token long prompt too): identical ids and masks;
 *   - features from the WAV files (repeat-to-7-s, the recorded random crop of the 9-s clip replayed): power spectrogram
 *     and log-mel within FEATURE_REL_TOL relative (||diff|| / ||ref||; the reference's float32 convolution STFT cannot
 *     be reproduced bit for bit) and FEATURE_ABS_TOL dB max-abs on bands within 60 dB of their frame's maximum;
 *   - the audio tower on the golden log-mel: every intermediate within REL_TOL relative;
 *   - the text tower: every intermediate within REL_TOL relative (unmasked positions), pooled at msclap's index;
 *   - the whole pipeline from the WAV files: embeddings EMB_ABS_TOL, similarity REL_TOL, probabilities PROB_ABS_TOL,
 *     identical ranking.
 * Runs on tests/data/msclap-tiny-2023 (a safetensors copy of the checkpoint without the STFT kernels, melW and the
 * shift masks, which are recomputed, and golden tensors trimmed with tools/trim_golden.c: see tests/data/README.md),
 * and, when the shared golden data is present ($CLXP_SHARED, else ../shared/golden), on the original .pth and
 * model.safetensors with the untrimmed goldens (skipped cleanly otherwise). */
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <math.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "clxp.h"
#include "io/safetensors.h"
#include "io/safetensors_write.h"
#include "media/msclap_features.h"
#include "models/msclap.h"
#include "nn/gemm.h"
#include "nn/ops.h"
#include "golden.h"
#include "test.h"
#include "text/tokenizer.h"
#include "util/fileio.h"
#include "util/json.h"

#define FEATURE_REL_TOL 1e-4 /* log-mel and power spectrogram, ||diff|| / ||ref|| */
#define FEATURE_ABS_TOL 1e-3 /* dB, bands within 60 dB of their frame's maximum */
#define REL_TOL 1e-4         /* hidden states, pooled outputs, unnormalised embeddings, similarity */
#define EMB_ABS_TOL 1e-5     /* normalised embeddings */
#define PROB_ABS_TOL 1e-5    /* probabilities */
#define MAX_ITEMS 64
#define CONTEXT 77

/* ---- helpers ------------------------------------------------------------------------------------------------------ */

/* The original batch items a golden tensor holds ("items:<name>" metadata of trim_golden, else all). */
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

/* ---- hook: compare every observed tensor that has a golden ---------------------------------------------------- */

typedef struct {
    const st_file *gold;
    const int *bmap;     /* our batch item k is the reference's item bmap[k] */
    int B;
    const int32_t *mask; /* text: [B, mask_T] (our batch order), NULL for audio */
    int mask_T;
    const char *only_prefix; /* compare only names starting with this (NULL: all) */
    int seen, bad;
    double worst_rel;
} hook_ctx;

static void compare_hook(void *vctx, const char *name, const float *data, int ndim, const int64_t *shape) {
    hook_ctx *c = vctx;
    if (c->only_prefix && strncmp(name, c->only_prefix, strlen(c->only_prefix)) != 0) return;
    const st_tensor *t = st_find(c->gold, name);
    if (!t) return;
    int items[MAX_ITEMS];
    int ni = golden_items(c->gold, t, items);
    float *ref = golden_f32(c->gold, name, NULL);
    size_t cap = (size_t)(t->numel ? t->numel : 1);
    float *a = malloc(cap * sizeof *a), *b = malloc(cap * sizeof *b);
    size_t n = 0;
    int ok = ref && a && b && ni > 0 && t->ndim == ndim, used = 0;
    int64_t per = 1;
    for (int d = 1; ok && d < ndim; d++) per *= t->shape[d];
    for (int j = 0; ok && j < ni; j++) {
        int k = -1;
        for (int q = 0; q < c->B; q++)
            if (c->bmap[q] == items[j]) k = q;
        if (k < 0) continue;
        used++;
        if (c->mask && ndim == 3) { /* [B, T, D] vs [n, Tg, D]: unmasked positions */
            const int64_t T = shape[1], D = shape[2], Tg = t->shape[1];
            if (t->shape[2] != D || T > Tg) {
                ok = 0;
                break;
            }
            for (int64_t ti = 0; ti < T; ti++) {
                if (!c->mask[(int64_t)k * c->mask_T + ti]) continue;
                memcpy(a + n, data + ((int64_t)k * T + ti) * D, (size_t)D * sizeof *a);
                memcpy(b + n, ref + ((int64_t)j * Tg + ti) * D, (size_t)D * sizeof *b);
                n += (size_t)D;
            }
        } else {
            for (int d = 1; d < ndim; d++) ok = ok && t->shape[d] == shape[d];
            if (!ok) break;
            memcpy(a + n, data + (int64_t)k * per, (size_t)per * sizeof *a);
            memcpy(b + n, ref + (int64_t)j * per, (size_t)per * sizeof *b);
            n += (size_t)per;
        }
    }
    if (!ok) {
        printf("  %s: shape mismatch or unreadable golden\n", name);
        c->bad++;
    } else if (used) {
        test_diff d = test_compare(a, b, n);
        printf("  %-44s max_abs %.3g  rel %.3g  (%d item%s)\n", name, d.max_abs, d.rel, used, used == 1 ? "" : "s");
        if (!(d.rel <= REL_TOL)) c->bad++;
        if (d.rel > c->worst_rel) c->worst_rel = d.rel;
        c->seen++;
    }
    free(a);
    free(b);
    free(ref);
}

/* ---- one checkpoint against one golden directory ------------------------------------------------------------------ */

/* Max |diff| over bands within 60 dB of their frame's maximum (reference), for one [frames, mels] log-mel. */
static double logmel_abs_60db(const float *ours, const float *ref, int frames, int mels) {
    double mx = 0;
    for (int f = 0; f < frames; f++) {
        float top = -1e30f;
        for (int m = 0; m < mels; m++) top = fmaxf(top, ref[(size_t)f * mels + m]);
        for (int m = 0; m < mels; m++) {
            size_t i = (size_t)f * mels + m;
            if (ref[i] >= top - 60.0f) mx = fmax(mx, fabs((double)ours[i] - ref[i]));
        }
    }
    return mx;
}

static void check_checkpoint(const char *wpath, const char *dir) {
    char path[4400];
    clxp_error err = {0};
    st_file *g = NULL;
    msclap_model *m = NULL;
    clxp_tokenizer *tok = NULL;
    cJSON *prompts = NULL, *manifest = NULL, *zs = NULL;
    printf("  checkpoint %s, goldens %s\n", wpath, dir);
    snprintf(path, sizeof path, "%s/golden/golden.safetensors", dir);
    REQUIRE(st_open(path, &g, &err) == CLXP_OK);
    if (msclap_model_load(wpath, dir, &m, &err) != CLXP_OK) printf("  load: %s\n", err.msg);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (tok_load(path, &tok, &err) != CLXP_OK) printf("  %s\n", err.msg);
    snprintf(path, sizeof path, "%s/golden/manifest.json", dir);
    CHECK(clxp_json_load(path, &manifest, &err) == CLXP_OK);
    snprintf(path, sizeof path, "%s/golden/zero_shot.json", dir);
    CHECK(clxp_json_load(path, &zs, &err) == CLXP_OK);
    snprintf(path, sizeof path, "%s/golden/inputs/prompts.json", dir);
    CHECK(clxp_json_load(path, &prompts, &err) == CLXP_OK);
    int pad = -1;
    CHECK(tok && tok_add_special_token(tok, "!", &pad, &err) == CLXP_OK);
    CHECK_EQ_INT(pad, 0);
    if (!m || !tok || !manifest || !zs || !prompts) goto out;
    const msclap_config *cfg = &m->cfg;
    const int Pj = cfg->d_proj;
    printf("  config: HTS-AT E %d depths %d,%d,%d,%d heads %d,%d,%d,%d window %d spec %d; GPT-2 %d x %d, %d heads%s; "
           "proj %d; %d Hz, %d samples\n",
           cfg->embed_dim, cfg->depths[0], cfg->depths[1], cfg->depths[2], cfg->depths[3], cfg->heads[0], cfg->heads[1],
           cfg->heads[2], cfg->heads[3], cfg->window, cfg->spec_size, cfg->n_layer, cfg->n_embd, cfg->n_head,
           cfg->n_head_from_yaml ? " (YAML)" : "", Pj, cfg->fe.sample_rate, cfg->fe.window_samples);
    CHECK_EQ_INT(cfg->n_head, 3);
    CHECK_EQ_INT(cfg->fe.window_samples, 308700);
    CHECK_EQ_INT(msclap_fe_frames(m->fe), 965);

    /* ---- tokens */
    const cJSON *plist = cJSON_GetObjectItem(prompts, "prompts");
    const int P = cJSON_GetArraySize(plist);
    const st_tensor *ids_t = st_find(g, "input_ids"), *mask_t = st_find(g, "attention_mask");
    REQUIRE(ids_t && mask_t && ids_t->shape[0] == P && ids_t->shape[1] == CONTEXT);
    int32_t *ids = calloc((size_t)P * CONTEXT, sizeof *ids), *mask = calloc((size_t)P * CONTEXT, sizeof *mask);
    int tok_bad = 0, bang = 0;
    const tok_encode_opts topt = {0, 0, CONTEXT, 0};
    for (int i = 0; i < P; i++) {
        const char *text = cJSON_GetArrayItem(plist, i)->valuestring;
        char *s = malloc(strlen(text) + 16);
        sprintf(s, "%s <|endoftext|>", text);
        int n = 0;
        CHECK(tok_encode(tok, s, strlen(s), &topt, ids + i * CONTEXT, mask + i * CONTEXT, CONTEXT, &n, &err) == CLXP_OK);
        CHECK_EQ_INT(n, CONTEXT);
        bang += strchr(text, '!') != NULL;
        free(s);
        for (int t = 0; t < CONTEXT; t++)
            if (ids[i * CONTEXT + t] != golden_i64(ids_t, i * CONTEXT + t) ||
                mask[i * CONTEXT + t] != golden_i64(mask_t, i * CONTEXT + t))
                tok_bad++;
    }
    printf("  tokens: %d prompts (%d with '!'), %d mismatching ids/mask entries\n", P, bang, tok_bad);
    CHECK_EQ_INT(tok_bad, 0);
    const st_tensor *pit = st_find(g, "text.pooled_index");
    if (pit)
        for (int i = 0; i < P; i++) CHECK_EQ_INT(msclap_pooled_index(ids + i * CONTEXT, CONTEXT), golden_i64(pit, i));
    /* the long prompt: no truncation */
    const st_tensor *lids = st_find(g, "extra.long_prompt.input_ids");
    float lemb[64];
    if (lids) {
        const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(prompts, "extra_long_prompt"));
        REQUIRE(text);
        char *s = malloc(strlen(text) + 16);
        sprintf(s, "%s <|endoftext|>", text);
        int32_t lid[1024], lm[1024];
        int n = 0;
        CHECK(tok_encode(tok, s, strlen(s), &topt, lid, lm, 1024, &n, &err) == CLXP_OK);
        free(s);
        CHECK_EQ_INT(n, lids->shape[1]);
        int bad = 0;
        for (int t = 0; t < n && t < lids->shape[1]; t++) bad += lid[t] != golden_i64(lids, t) || lm[t] != 1;
        CHECK_EQ_INT(bad, 0);
        float *ge = golden_f32(g, "extra.long_prompt.text_embeds_unnormalized", NULL);
        REQUIRE(ge && Pj <= 64);
        CHECK(msclap_encode_tokens(m, lid, lm, 1, n, lemb, NULL, NULL, &err) == CLXP_OK);
        test_diff d = test_compare(lemb, ge, (size_t)Pj);
        printf("  long prompt (%d tokens) text_embeds_unnormalized rel %.3g\n", n, d.rel);
        CHECK(d.rel <= REL_TOL);
        free(ge);
    }

    /* ---- features from the WAV files */
    const cJSON *inputs = cJSON_GetObjectItem(manifest, "inputs");
    const cJSON *crop = cJSON_GetObjectItem(manifest, "audio_crop");
    const char *crop_of = cJSON_GetStringValue(cJSON_GetObjectItem(crop, "crop_of"));
    const int crop_start =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(crop, "calls"), 0), "start_index")->valueint;
    const int B = cJSON_GetArraySize(inputs), Tf = msclap_fe_frames(m->fe), Fm = cfg->mels;
    REQUIRE(B > 0 && B <= MAX_ITEMS);
    const size_t per = (size_t)Tf * Fm;
    float *feats = malloc((size_t)B * per * sizeof *feats);
    const st_tensor *gl = st_find(g, "audio.logmel");
    float *glog = gl ? golden_f32(g, "audio.logmel", NULL) : NULL;
    int gl_items[MAX_ITEMS], gl_n = gl ? golden_items(g, gl, gl_items) : 0;
    int have[MAX_ITEMS], nh = 0; /* the clips whose WAV file is there (tests/data keeps one), in manifest order */
    for (int i = 0; i < B; i++) {
        const cJSON *in = cJSON_GetArrayItem(inputs, i);
        const char *file = cJSON_GetObjectItem(in, "file")->valuestring;
        snprintf(path, sizeof path, "%s/golden/inputs/%s", dir, file);
        if (!clxp_is_file(path)) continue;
        size_t n = 0;
        int rate = 0;
        float *wave = golden_read_wav(path, &n, &rate);
        REQUIRE(wave);
        CHECK_EQ_INT(n, cJSON_GetObjectItem(in, "num_samples")->valueint);
        const int slot = nh;
        have[nh++] = i;
        CHECK_EQ_INT(rate, cfg->fe.sample_rate);
        long want = crop_of && strcmp(crop_of, file) == 0 ? crop_start : -1, used = -2;
        CHECK(msclap_fe_extract(m->fe, wave, n, want, feats + (size_t)slot * per, &used, &err) == CLXP_OK);
        CHECK_EQ_INT(used, want);
        if (i == 1 && st_find(g, "audio.spectrogram.1")) {
            const int K = msclap_fe_bins(m->fe);
            float *win = malloc((size_t)cfg->fe.window_samples * sizeof *win), *pw = malloc((size_t)Tf * K * sizeof *pw);
            float *gp = golden_f32(g, "audio.spectrogram.1", NULL);
            CHECK(msclap_fe_prepare(m->fe, wave, n, -1, win, NULL, &err) == CLXP_OK);
            CHECK(msclap_fe_power(m->fe, win, pw, &err) == CLXP_OK);
            test_diff d = test_compare(pw, gp, (size_t)Tf * K);
            printf("  audio.spectrogram.1 %-26s max_abs %.3g  rel %.3g\n", file, d.max_abs, d.rel);
            CHECK(d.rel <= FEATURE_REL_TOL);
            free(win);
            free(pw);
            free(gp);
        }
        for (int k = 0; k < gl_n; k++) {
            if (gl_items[k] != i) continue;
            const float *ref = glog + (size_t)k * per;
            test_diff d = test_compare(feats + (size_t)slot * per, ref, per);
            double a60 = logmel_abs_60db(feats + (size_t)slot * per, ref, Tf, Fm);
            printf("  audio.logmel[%d] %-26s max_abs %.3g dB, %.3g dB within 60 dB of the frame max, rel %.3g\n", i,
                   file, d.max_abs, a60, d.rel);
            CHECK(d.rel <= FEATURE_REL_TOL);
            CHECK(a60 <= FEATURE_ABS_TOL);
        }
        free(wave);
    }

    /* ---- the audio tower on the golden log-mel (per-layer check independent of the STFT rounding) */
    float *aemb = malloc((size_t)B * Pj * sizeof *aemb);
    if (gl_n > 0) {
        hook_ctx ac = {.gold = g, .bmap = gl_items, .B = gl_n, .only_prefix = "audio"};
        CHECK(msclap_encode_features(m, glog, gl_n, Tf, aemb, compare_hook, &ac, &err) == CLXP_OK);
        printf("  audio tower on the golden log-mel: %d tensors compared, worst rel %.3g\n", ac.seen, ac.worst_rel);
        CHECK_EQ_INT(ac.bad, 0);
        CHECK(ac.seen >= 5);
    }
    free(glog);

    /* ---- the whole pipeline: WAV features -> audio tower */
    REQUIRE(nh > 0);
    hook_ctx wc = {.gold = g, .bmap = have, .B = nh, .only_prefix = "audio_embeds_unnormalized"};
    CHECK(msclap_encode_features(m, feats, nh, Tf, aemb, compare_hook, &wc, &err) == CLXP_OK);
    CHECK_EQ_INT(wc.bad, 0);
    CHECK_EQ_INT(wc.seen, 1);

    /* ---- text tower */
    float *temb = malloc((size_t)P * Pj * sizeof *temb);
    int pall[MAX_ITEMS];
    for (int i = 0; i < P; i++) pall[i] = i;
    hook_ctx tc = {.gold = g, .bmap = pall, .B = P, .mask = mask, .mask_T = CONTEXT};
    CHECK(msclap_encode_tokens(m, ids, mask, P, CONTEXT, temb, compare_hook, &tc, &err) == CLXP_OK);
    printf("  text tower: %d tensors compared, worst rel %.3g\n", tc.seen, tc.worst_rel);
    CHECK_EQ_INT(tc.bad, 0);
    CHECK(tc.seen >= 4);

    /* ---- scores */
    float *gs = golden_f32(g, "logit_scale_exp", NULL);
    REQUIRE(gs);
    CHECK_NEAR(msclap_logit_scale(m), gs[0], 1e-6 * gs[0]);
    nn_l2_normalize(aemb, nh, Pj);
    nn_l2_normalize(temb, P, Pj);
    float *ga0 = golden_f32(g, "audio_embeds", NULL), *gt = golden_f32(g, "text_embeds", NULL);
    float *gsim0 = golden_f32(g, "similarity", NULL), *gp0 = golden_f32(g, "probs_per_audio", NULL);
    REQUIRE(ga0 && gt && gsim0 && gp0);
    /* the reference rows of the clips run here */
    float *ga = malloc((size_t)nh * Pj * sizeof *ga), *gsim = malloc((size_t)nh * P * sizeof *gsim);
    float *gp = malloc((size_t)nh * P * sizeof *gp);
    for (int k = 0; k < nh; k++) {
        memcpy(ga + (size_t)k * Pj, ga0 + (size_t)have[k] * Pj, (size_t)Pj * sizeof *ga);
        memcpy(gsim + (size_t)k * P, gsim0 + (size_t)have[k] * P, (size_t)P * sizeof *gsim);
        memcpy(gp + (size_t)k * P, gp0 + (size_t)have[k] * P, (size_t)P * sizeof *gp);
    }
    test_diff da = test_compare(aemb, ga, (size_t)nh * Pj), dt = test_compare(temb, gt, (size_t)P * Pj);
    printf("  audio_embeds (from WAV) max_abs %.3g, text_embeds max_abs %.3g (tol %g)\n", da.max_abs, dt.max_abs,
           EMB_ABS_TOL);
    CHECK(da.max_abs <= EMB_ABS_TOL);
    CHECK(dt.max_abs <= EMB_ABS_TOL);
    float *sim = malloc((size_t)nh * P * sizeof *sim), *probs = malloc((size_t)nh * P * sizeof *probs);
    const float scale = msclap_logit_scale(m);
    for (int i = 0; i < nh; i++)
        for (int j = 0; j < P; j++) {
            float s = 0;
            for (int k = 0; k < Pj; k++) s += (scale * temb[j * Pj + k]) * aemb[i * Pj + k];
            sim[i * P + j] = s;
        }
    memcpy(probs, sim, (size_t)nh * P * sizeof *probs);
    for (int i = 0; i < nh; i++) nn_softmax(probs + (size_t)i * P, P);
    test_diff ds = test_compare(sim, gsim, (size_t)nh * P), dp = test_compare(probs, gp, (size_t)nh * P);
    double zmax = 0;
    int zn = 0;
    const cJSON *zr = cJSON_GetObjectItem(zs, "results");
    for (int i = 0; zr && i < nh && have[i] < cJSON_GetArraySize(zr); i++) {
        const cJSON *row = cJSON_GetObjectItem(cJSON_GetArrayItem(zr, have[i]), "probs");
        for (int j = 0; j < P && j < cJSON_GetArraySize(row); j++, zn++)
            zmax = fmax(zmax, fabs(probs[i * P + j] - cJSON_GetArrayItem(row, j)->valuedouble));
    }
    printf("  similarity max_abs %.3g rel %.3g (tol %g); probs max_abs %.3g, zero_shot.json max_abs %.3g over %d "
           "(tol %g)\n",
           ds.max_abs, ds.rel, REL_TOL, dp.max_abs, zmax, zn, PROB_ABS_TOL);
    CHECK(ds.rel <= REL_TOL);
    CHECK(dp.max_abs <= PROB_ABS_TOL);
    CHECK(zmax <= PROB_ABS_TOL);
    CHECK_EQ_INT(zn, nh * P);
    int rank_bad = 0;
    for (int i = 0; i < nh; i++)
        for (int x = 0; x < P; x++)
            for (int y = 0; y < P; y++)
                if (gsim[i * P + x] > gsim[i * P + y] + 1e-4f && !(sim[i * P + x] > sim[i * P + y])) rank_bad++;
    CHECK_EQ_INT(rank_bad, 0);
    free(sim);
    free(probs);
    free(ga);
    free(ga0);
    free(gt);
    free(gsim);
    free(gsim0);
    free(gp);
    free(gp0);
    free(gs);
    free(temb);
    free(aemb);
    free(feats);
    free(ids);
    free(mask);
out:
    cJSON_Delete(prompts);
    cJSON_Delete(manifest);
    cJSON_Delete(zs);
    tok_free(tok);
    msclap_model_free(m);
    st_close(g);
}

static const char *shared_dir(void) {
    static char buf[4096];
    const char *env = getenv("CLXP_SHARED");
    snprintf(buf, sizeof buf, "%s/msclap-tiny-2023", env && *env ? env : "../shared/golden");
    struct stat sb;
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/golden/golden.safetensors", buf);
    return stat(probe, &sb) == 0 ? buf : NULL;
}

/* tests/data's checkpoint keeps only the wte rows of the golden prompts (tools/trim_msclap.c, metadata
 * "items:<wte>" = their ids, "vocab_size"): write a full-size copy, zeros in the other rows, to a temporary
 * directory. Returns 1 with the file path in out. */
static int expand_bundled(const char *in_path, char *tmpdir, char *out, size_t cap) {
    clxp_error err;
    st_file *f = NULL;
    if (st_open(in_path, &f, &err) != CLXP_OK) {
        printf("  %s\n", err.msg);
        return 0;
    }
    const char *wname = "caption_encoder.base.wte.weight";
    const st_tensor *wt = st_find(f, wname);
    char key[80];
    snprintf(key, sizeof key, "items:%s", wname);
    const char *list = st_metadata(f, key), *vs = st_metadata(f, "vocab_size");
    int ok = wt && wt->dtype == ST_F32 && wt->ndim == 2 && list && vs;
    const int64_t V = ok ? atoll(vs) : 0, D = ok ? wt->shape[1] : 0;
    float *full = ok ? calloc((size_t)(V * D), sizeof *full) : NULL;
    ok = ok && full && V > 0;
    int64_t k = 0;
    for (const char *s = list; ok && *s; k++) {
        char *end;
        long long id = strtoll(s, &end, 10);
        ok = end != s && id >= 0 && id < V && k < wt->shape[0];
        if (ok) memcpy(full + id * D, (const float *)wt->data + k * D, (size_t)D * sizeof *full);
        s = *end == ',' ? end + 1 : end;
    }
    ok = ok && k == wt->shape[0];
    const int n = st_count(f);
    st_write_tensor *ts = calloc((size_t)n, sizeof *ts);
    int64_t shape[2] = {V, D};
    for (int i = 0; ok && ts && i < n; i++) {
        const st_tensor *t = st_at(f, i);
        ts[i] = strcmp(t->name, wname) == 0 ? (st_write_tensor){t->name, t->dtype, 2, shape, full}
                                            : (st_write_tensor){t->name, t->dtype, t->ndim, t->shape, t->data};
    }
    strcpy(tmpdir, "/tmp/clxp_msclap_XXXXXX");
    ok = ok && ts && mkdtemp(tmpdir) != NULL;
    if (ok) snprintf(out, cap, "%s/model.safetensors", tmpdir);
    if (ok && st_write(out, ts, n, NULL, 0, &err) != CLXP_OK) {
        printf("  %s\n", err.msg);
        ok = 0;
    }
    free(ts);
    free(full);
    st_close(f);
    return ok;
}

TEST(bundled_safetensors) {
    char w[4300], d[4200], tmpdir[64] = "", full[256];
    snprintf(d, sizeof d, "%s", test_data("msclap-tiny-2023"));
    snprintf(w, sizeof w, "%s/model.safetensors", d);
    REQUIRE(expand_bundled(w, tmpdir, full, sizeof full));
    check_checkpoint(full, d);
    remove(full);
    rmdir(tmpdir);
}

TEST(shared_pth) {
    const char *d = shared_dir();
    if (!d) {
        printf("  skipped (no shared golden)\n");
        return;
    }
    char w[4300];
    snprintf(w, sizeof w, "%s/CLAP_weights_2023_tiny.pth", d);
    check_checkpoint(w, d);
}

TEST(shared_safetensors) {
    const char *d = shared_dir();
    if (!d) {
        printf("  skipped (no shared golden)\n");
        return;
    }
    char w[4300];
    snprintf(w, sizeof w, "%s/model.safetensors", d);
    check_checkpoint(w, d);
}

/* A temporary directory holding the expanded bundled checkpoint (full: its model.safetensors) with links to the
 * bundled msclap YAML and GPT-2's tokenizer.json (link1, link2). Returns 1 when all three are there. */
static int bundled_dir(const char *d, char *tmpdir, char *full, size_t cap, char *link1, char *link2, size_t lcap) {
    char w[4300], target[4400];
    snprintf(w, sizeof w, "%s/model.safetensors", d);
    if (!expand_bundled(w, tmpdir, full, cap)) return 0;
    char *cwd = getcwd(NULL, 0);
    snprintf(link1, lcap, "%s/config_2023_tiny.yml", tmpdir);
    snprintf(target, sizeof target, "%s%s%s/config_2023_tiny.yml", d[0] == '/' ? "" : cwd, d[0] == '/' ? "" : "/", d);
    int ok = symlink(target, link1) == 0;
    snprintf(link2, lcap, "%s/tokenizer.json", tmpdir);
    snprintf(target, sizeof target, "%s%s%s/tokenizer.json", d[0] == '/' ? "" : cwd, d[0] == '/' ? "" : "/", d);
    ok = symlink(target, link2) == 0 && ok;
    free(cwd);
    return ok;
}

/* The library API on the bundled checkpoint: a directory with the (expanded) safetensors file, the msclap YAML and
 * GPT-2's tokenizer.json is found as MS-CLAP; prompts and a WAV file give the golden normalised embeddings. */
TEST(api_bundled) {
    char d[4200], tmpdir[64] = "", full[256], link1[300] = "", link2[300] = "";
    snprintf(d, sizeof d, "%s", test_data("msclap-tiny-2023"));
    CHECK(bundled_dir(d, tmpdir, full, sizeof full, link1, link2, sizeof link1));
    clxp_model *m = NULL;
    clxp_error err = {0};
    const clxp_load_options o32 = {.precision = CLXP_PRECISION_FP32};
    if (clxp_model_load(tmpdir, &o32, &m, &err) != CLXP_OK) printf("  %s\n", err.msg);
    CHECK(m != NULL);
    st_file *g = NULL;
    cJSON *prompts = NULL;
    char path[4400];
    snprintf(path, sizeof path, "%s/golden/golden.safetensors", d);
    CHECK(st_open(path, &g, &err) == CLXP_OK);
    snprintf(path, sizeof path, "%s/golden/inputs/prompts.json", d);
    CHECK(clxp_json_load(path, &prompts, &err) == CLXP_OK);
    if (m && g && prompts) {
        const clxp_model_info *i = clxp_model_get_info(m);
        CHECK_STR(i->kind, "clap");
        CHECK_STR(i->format, "msclap");
        CHECK_STR(i->precision, "fp32");
        CHECK_EQ_INT(i->sample_rate, 44100);
        CHECK_EQ_INT(i->embed_dim, 20);
        const cJSON *pl = cJSON_GetObjectItem(prompts, "prompts");
        const int P = cJSON_GetArraySize(pl);
        const char *texts[MAX_ITEMS];
        for (int k = 0; k < P; k++) texts[k] = cJSON_GetArrayItem(pl, k)->valuestring;
        float *te = malloc((size_t)P * 20 * sizeof *te), ae[20];
        float *gt = golden_f32(g, "text_embeds", NULL), *ga = golden_f32(g, "audio_embeds", NULL);
        CHECK(clxp_encode_texts(m, texts, P, te, &err) == CLXP_OK);
        test_diff dt = test_compare(te, gt, (size_t)P * 20);
        snprintf(path, sizeof path, "%s/golden/inputs/c_clicks_0p37s.wav", d);
        const char *files[1] = {path};
        CHECK(clxp_encode_audio_files(m, files, 1, ae, &err) == CLXP_OK);
        test_diff da = test_compare(ae, ga + 2 * 20, 20);
        printf("  API: text_embeds max_abs %.3g, audio_embeds (c_clicks, FFmpeg decode) max_abs %.3g (tol %g)\n",
               dt.max_abs, da.max_abs, EMB_ABS_TOL);
        CHECK(dt.max_abs <= EMB_ABS_TOL);
        CHECK(da.max_abs <= EMB_ABS_TOL);
        free(te);
        free(gt);
        free(ga);
    }
    cJSON_Delete(prompts);
    st_close(g);
    clxp_model_free(m);
    remove(link1);
    remove(link2);
    remove(full);
    rmdir(tmpdir);
}

static double cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return ab / sqrt(aa * bb);
}

/* bf16 (--precision bf16) within the README's bounds, as tests/test_precision.c checks CLIP and LAION CLAP:
 * normalised embeddings cosine >= 0.999 to fp32, probabilities within 1e-2 of the reference's (zero_shot.json),
 * the same top-1. Skipped on a CPU without native bf16. */
#define BF16_MIN_COSINE 0.999
#define BF16_PROB_TOL 1e-2
TEST(api_bundled_bf16) {
    if (!nn_cpu_has_bf16()) {
        printf("  skipped: this CPU (%s) has no native bf16\n", nn_cpu_isa());
        return;
    }
    char d[4200], tmpdir[64] = "", full[256], link1[300] = "", link2[300] = "";
    snprintf(d, sizeof d, "%s", test_data("msclap-tiny-2023"));
    CHECK(bundled_dir(d, tmpdir, full, sizeof full, link1, link2, sizeof link1));
    clxp_model *m32 = NULL, *m16 = NULL;
    clxp_error err = {0};
    const clxp_load_options o32 = {.precision = CLXP_PRECISION_FP32}, o16 = {.precision = CLXP_PRECISION_BF16};
    CHECK(clxp_model_load(tmpdir, &o32, &m32, &err) == CLXP_OK);
    CHECK(clxp_model_load(tmpdir, &o16, &m16, &err) == CLXP_OK);
    char path[4400];
    cJSON *zs = NULL;
    snprintf(path, sizeof path, "%s/golden/zero_shot.json", d);
    CHECK(clxp_json_load(path, &zs, &err) == CLXP_OK);
    if (m32 && m16 && zs) {
        CHECK_STR(clxp_model_get_info(m16)->precision, "bf16");
        const cJSON *pl = cJSON_GetObjectItem(zs, "prompts"), *res = cJSON_GetObjectItem(zs, "results");
        const int P = cJSON_GetArraySize(pl), D = clxp_model_get_info(m16)->embed_dim;
        REQUIRE(P > 1 && P <= MAX_ITEMS && D <= 64);
        const char *texts[MAX_ITEMS];
        for (int k = 0; k < P; k++) texts[k] = cJSON_GetArrayItem(pl, k)->valuestring;
        float *t32 = malloc((size_t)P * D * sizeof *t32), *t16 = malloc((size_t)P * D * sizeof *t16);
        float a32[64], a16[64];
        REQUIRE(t32 && t16);
        snprintf(path, sizeof path, "%s/golden/inputs/c_clicks_0p37s.wav", d);
        const char *files[1] = {path};
        CHECK(clxp_encode_texts(m32, texts, P, t32, &err) == CLXP_OK);
        CHECK(clxp_encode_texts(m16, texts, P, t16, &err) == CLXP_OK);
        CHECK(clxp_encode_audio_files(m32, files, 1, a32, &err) == CLXP_OK);
        CHECK(clxp_encode_audio_files(m16, files, 1, a16, &err) == CLXP_OK);
        double cos_t = 1;
        for (int k = 0; k < P; k++) cos_t = fmin(cos_t, cosine(t16 + (size_t)k * D, t32 + (size_t)k * D, D));
        const double cos_a = cosine(a16, a32, D);
        /* the reference's probabilities of c_clicks: softmax(exp(logit_scale) * cosine) over the prompts */
        const cJSON *gp = NULL, *garg = NULL;
        for (int k = 0; k < cJSON_GetArraySize(res); k++) {
            const cJSON *r = cJSON_GetArrayItem(res, k);
            if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "input")), "c_clicks_0p37s.wav") == 0) {
                gp = cJSON_GetObjectItem(r, "probs");
                garg = cJSON_GetObjectItem(r, "argmax");
            }
        }
        REQUIRE(gp && garg && cJSON_GetArraySize(gp) == P);
        double logit[MAX_ITEMS], mx = -INFINITY, sum = 0, worst = 0;
        int top = 0;
        for (int j = 0; j < P; j++) {
            double dot = 0;
            for (int k = 0; k < D; k++) dot += (double)a16[k] * t16[(size_t)j * D + k];
            logit[j] = clxp_model_get_info(m16)->logit_scale * dot;
            mx = fmax(mx, logit[j]);
        }
        for (int j = 0; j < P; j++) sum += (logit[j] = exp(logit[j] - mx));
        for (int j = 0; j < P; j++) {
            worst = fmax(worst, fabs(logit[j] / sum - cJSON_GetArrayItem(gp, j)->valuedouble));
            if (logit[j] > logit[top]) top = j;
        }
        printf("  MS-CLAP bf16: text cosine to fp32 >= %.6f, audio %.6f (min %g); probabilities max_abs %.3g vs the "
               "reference (tol %g); top-1 %d (reference %d)\n",
               cos_t, cos_a, BF16_MIN_COSINE, worst, BF16_PROB_TOL, top, garg->valueint);
        CHECK(cos_t >= BF16_MIN_COSINE);
        CHECK(cos_a >= BF16_MIN_COSINE);
        CHECK(worst <= BF16_PROB_TOL);
        CHECK_EQ_INT(top, garg->valueint);
        free(t32);
        free(t16);
    }
    cJSON_Delete(zs);
    clxp_model_free(m32);
    clxp_model_free(m16);
    remove(link1);
    remove(link2);
    remove(full);
    rmdir(tmpdir);
}

/* ---- clxp convert (msclap_write_dir) --------------------------------------------------------------------------- */

static char g_clxp[4096]; /* the clxp binary next to this test's directory ("" when absent: CLI checks skipped) */

/* Run a shell command; its stdout and stderr go to out (NUL-terminated). Returns the exit status (-1: not run). */
static int run_cmd(const char *cmd, char *out, size_t cap) {
    char full[8400];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    char sink[4096];
    while (fread(sink, 1, sizeof sink, p) > 0) {
    }
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int same_bytes(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    clxp_error err;
    int ok = clxp_read_file(a, (size_t)1 << 30, &x, &nx, &err) == CLXP_OK &&
             clxp_read_file(b, (size_t)1 << 30, &y, &ny, &err) == CLXP_OK && nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return ok;
}

static void remove_converted(const char *dir) {
    static const char *const names[] = {"model.safetensors", "msclap_config.yml", "tokenizer.json"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        remove(p);
    }
    rmdir(dir);
}

/* Every tensor of the checkpoint m was loaded from in the converted file: same name, dtype, shape and bytes. */
static int same_tensors(const msclap_model *m, const char *conv) {
    st_file *f = NULL;
    clxp_error err;
    if (st_open(conv, &f, &err) != CLXP_OK) {
        printf("  %s\n", err.msg);
        return 0;
    }
    const int n = m->tf ? torch_count(m->tf) : st_count(m->sf);
    int ok = st_count(f) == n, bad = 0;
    for (int i = 0; ok && i < n; i++) {
        const st_tensor *a = m->tf ? torch_at(m->tf, i) : st_at(m->sf, i), *b = st_find(f, a->name);
        int same = b && b->dtype == a->dtype && b->ndim == a->ndim && b->numel == a->numel &&
                   memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof *a->shape) == 0 &&
                   memcmp(a->data, b->data, (size_t)a->numel * st_dtype_size(a->dtype)) == 0;
        if (!same && bad++ < 3) printf("  converted tensor \"%s\" differs\n", a->name);
        ok = same;
    }
    printf("  converted model.safetensors: %d tensors (source %d), %s\n", st_count(f), n,
           ok ? "every one identical" : "DIFFERENT");
    st_close(f);
    return ok;
}

/* Load model_a and model_b (paths as -m takes them) and compare text embeddings of the golden prompts, audio
 * embeddings of every WAV file in inputs and their probabilities over the prompts: identical bytes. */
static void check_same_outputs(const char *model_a, const char *model_b, const char *inputs) {
    clxp_model *a = NULL, *b = NULL;
    clxp_error err = {0};
    if (clxp_model_load(model_a, NULL, &a, &err) != CLXP_OK) printf("  %s\n", err.msg);
    if (clxp_model_load(model_b, NULL, &b, &err) != CLXP_OK) printf("  %s\n", err.msg);
    cJSON *prompts = NULL;
    char path[4400];
    snprintf(path, sizeof path, "%s/prompts.json", inputs);
    CHECK(clxp_json_load(path, &prompts, &err) == CLXP_OK);
    char *wavs[MAX_ITEMS];
    int W = 0;
    DIR *dd = opendir(inputs);
    struct dirent *e;
    while (dd && (e = readdir(dd)) != NULL && W < MAX_ITEMS) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".wav") == 0) {
            snprintf(path, sizeof path, "%s/%s", inputs, e->d_name);
            wavs[W++] = strdup(path);
        }
    }
    if (dd) closedir(dd);
    CHECK(W > 0);
    if (a && b && prompts && W > 0) {
        const clxp_model_info *ia = clxp_model_get_info(a), *ib = clxp_model_get_info(b);
        CHECK_STR(ib->format, "msclap");
        CHECK_STR(ia->format, ib->format);
        CHECK_CONTAINS(ib->format_detail, "converted by clxp from");
        CHECK_EQ_INT(ia->text_heads, ib->text_heads);
        CHECK_EQ_INT(ia->n_params, ib->n_params);
        CHECK_EQ_INT(ia->sample_rate, ib->sample_rate);
        CHECK(ia->logit_scale == ib->logit_scale);
        const int D = ia->embed_dim;
        const cJSON *pl = cJSON_GetObjectItem(prompts, "prompts");
        const int P = cJSON_GetArraySize(pl) < MAX_ITEMS ? cJSON_GetArraySize(pl) : MAX_ITEMS;
        const char *texts[MAX_ITEMS];
        for (int k = 0; k < P; k++) texts[k] = cJSON_GetArrayItem(pl, k)->valuestring;
        float *ta = malloc((size_t)P * D * sizeof *ta), *tb = malloc((size_t)P * D * sizeof *tb);
        float *aa = malloc((size_t)W * D * sizeof *aa), *ab = malloc((size_t)W * D * sizeof *ab);
        float *pa = malloc((size_t)W * P * sizeof *pa), *pb = malloc((size_t)W * P * sizeof *pb);
        clxp_labelbank *ba = NULL, *bb = NULL;
        REQUIRE(ta && tb && aa && ab && pa && pb);
        CHECK(clxp_encode_texts(a, texts, P, ta, &err) == CLXP_OK);
        CHECK(clxp_encode_texts(b, texts, P, tb, &err) == CLXP_OK);
        CHECK(clxp_encode_audio_files(a, (const char *const *)wavs, W, aa, &err) == CLXP_OK);
        CHECK(clxp_encode_audio_files(b, (const char *const *)wavs, W, ab, &err) == CLXP_OK);
        CHECK(clxp_labelbank_create(a, texts, P, NULL, 0, &ba, &err) == CLXP_OK);
        CHECK(clxp_labelbank_create(b, texts, P, NULL, 0, &bb, &err) == CLXP_OK);
        int same_t = memcmp(ta, tb, (size_t)P * D * sizeof *ta) == 0, same_a = memcmp(aa, ab, (size_t)W * D * sizeof *aa) == 0;
        int same_p = 0;
        if (ba && bb && clxp_classify(ba, aa, W, NULL, pa, &err) == CLXP_OK &&
            clxp_classify(bb, ab, W, NULL, pb, &err) == CLXP_OK)
            same_p = memcmp(pa, pb, (size_t)W * P * sizeof *pa) == 0;
        printf("  %d prompts, %d WAV files: text embeddings %s, audio embeddings %s, probabilities %s\n", P, W,
               same_t ? "identical" : "DIFFER", same_a ? "identical" : "DIFFER", same_p ? "identical" : "DIFFER");
        CHECK(same_t);
        CHECK(same_a);
        CHECK(same_p);
        clxp_labelbank_free(ba);
        clxp_labelbank_free(bb);
        free(ta);
        free(tb);
        free(aa);
        free(ab);
        free(pa);
        free(pb);
    }
    for (int i = 0; i < W; i++) free(wavs[i]);
    cJSON_Delete(prompts);
    clxp_model_free(a);
    clxp_model_free(b);
}

/* Convert the checkpoint file ckpt (in the -m path src) with the library (msclap_write_dir after msclap_model_load
 * and msclap_tokenizer_load, as clxp convert does) and, when the binary is there, with `clxp convert` itself; both
 * directories must be byte-identical, hold every tensor unchanged, record the head count in msclap_config.yml and
 * load as the same model (check_same_outputs); the command refuses a non-empty OUT_DIR without -y, writes into it
 * with -y, and `clxp info` reports the format. */
static void check_convert(const char *src, const char *ckpt, const char *inputs) {
    char tmp[256], lib[300], cli[300], path[4400], yml[300], out[8192], cmd[8400];
    const char *td = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/clxp-msclap-convert-XXXXXX", td && *td ? td : "/tmp");
    REQUIRE(mkdtemp(tmp) != NULL);
    snprintf(lib, sizeof lib, "%s/lib", tmp);
    snprintf(cli, sizeof cli, "%s/cli", tmp);
    clxp_error err = {0};
    msclap_model *m = NULL;
    clxp_tokenizer *tok = NULL;
    char *tok_path = NULL;
    CHECK(mkdir(lib, 0777) == 0);
    clxp_status st = msclap_model_load(ckpt, NULL, &m, &err);
    if (st == CLXP_OK) st = msclap_tokenizer_load(m, NULL, &tok, &tok_path, &err);
    if (st == CLXP_OK) st = msclap_write_dir(m, tok_path, lib, &err);
    if (st != CLXP_OK) printf("  %s\n", err.msg);
    CHECK(st == CLXP_OK);
    if (st == CLXP_OK) {
        snprintf(path, sizeof path, "%s/model.safetensors", lib);
        CHECK(same_tensors(m, path));
        snprintf(path, sizeof path, "%s/tokenizer.json", lib);
        CHECK(same_bytes(tok_path, path));
        char *y = NULL;
        size_t yl = 0;
        snprintf(path, sizeof path, "%s/msclap_config.yml", lib);
        snprintf(yml, sizeof yml, "\n  n_head: %d\n", m->cfg.n_head);
        CHECK(clxp_read_file(path, 1 << 20, &y, &yl, &err) == CLXP_OK);
        CHECK_CONTAINS(y, yml);
        CHECK_CONTAINS(y, "\naudioenc_name: 'HTSAT'\n");
        free(y);
        check_same_outputs(src, lib, inputs);
    }
    tok_free(tok);
    free(tok_path);
    msclap_model_free(m);
    if (!g_clxp[0]) {
        printf("  skipped the clxp convert command (no clxp binary next to the tests directory)\n");
    } else {
        snprintf(cmd, sizeof cmd, "'%s' convert -q '%s' '%s'", g_clxp, src, cli);
        int rc = run_cmd(cmd, out, sizeof out);
        if (rc != 0) printf("  %s: %s\n", cmd, out);
        CHECK_EQ_INT(rc, 0);
        static const char *const names[] = {"model.safetensors", "msclap_config.yml", "tokenizer.json"};
        for (size_t i = 0; i < 3; i++) {
            char a[4400], b[4400];
            snprintf(a, sizeof a, "%s/%s", lib, names[i]);
            snprintf(b, sizeof b, "%s/%s", cli, names[i]);
            if (!same_bytes(a, b)) printf("  %s differs from %s\n", b, a);
            CHECK(same_bytes(a, b));
        }
        rc = run_cmd(cmd, out, sizeof out); /* OUT_DIR is not empty now */
        CHECK_EQ_INT(rc, 1);
        CHECK_CONTAINS(out, "not empty (use -y");
        snprintf(cmd, sizeof cmd, "'%s' convert -y '%s' '%s'", g_clxp, src, cli);
        rc = run_cmd(cmd, out, sizeof out);
        CHECK_EQ_INT(rc, 0);
        CHECK_CONTAINS(out, "clxp: converted ");
        snprintf(cmd, sizeof cmd, "'%s' info '%s'", g_clxp, cli);
        rc = run_cmd(cmd, out, sizeof out);
        CHECK_EQ_INT(rc, 0);
        snprintf(path, sizeof path, "format         msclap: MS-CLAP 2023 (HTS-AT + GPT-2) safetensors %s/model.safetensors "
                                    "converted by clxp from ", cli);
        CHECK_CONTAINS(out, path);
        CHECK_CONTAINS(out, "self-test      passed");
        printf("  clxp convert: same files as the library's, -y refusal and overwrite, info: %s\n",
               strstr(out, "format ") ? "format msclap (converted)" : "?");
    }
    remove_converted(lib);
    remove_converted(cli);
    rmdir(tmp);
}

TEST(convert_bundled) {
    char d[4200], tmpdir[64] = "", full[256], link1[300] = "", link2[300] = "", inputs[4400];
    snprintf(d, sizeof d, "%s", test_data("msclap-tiny-2023"));
    snprintf(inputs, sizeof inputs, "%s/golden/inputs", d);
    CHECK(bundled_dir(d, tmpdir, full, sizeof full, link1, link2, sizeof link1));
    if (!test_failed_checks) check_convert(tmpdir, full, inputs);
    remove(link1);
    remove(link2);
    remove(full);
    if (tmpdir[0]) rmdir(tmpdir);
}

TEST(convert_shared_pth) {
    const char *d = shared_dir();
    if (!d) {
        printf("  skipped (no shared golden)\n");
        return;
    }
    char w[4300], inputs[4300];
    snprintf(w, sizeof w, "%s/CLAP_weights_2023_tiny.pth", d);
    snprintf(inputs, sizeof inputs, "%s/golden/inputs", d);
    check_convert(w, w, inputs);
}

/* The librosa formula against the checkpoint's melW (which msclap computed with librosa 0.10.2). */
TEST(mel_filters_formula) {
    const char *d = shared_dir();
    if (!d) {
        printf("  skipped (no shared golden)\n");
        return;
    }
    char w[4300];
    snprintf(w, sizeof w, "%s/model.safetensors", d);
    st_file *f = NULL;
    clxp_error err;
    REQUIRE(st_open(w, &f, &err) == CLXP_OK);
    const st_tensor *t = st_find(f, "audio_encoder.base.htsat.logmel_extractor.melW");
    REQUIRE(t && t->dtype == ST_F32 && t->numel == 513 * 64);
    float *mine = malloc(513 * 64 * sizeof *mine);
    msclap_mel_filters(32000, 1024, 64, 50, 14000, mine);
    int differ = 0;
    double mx = 0;
    for (int i = 0; i < 513 * 64; i++) {
        float v;
        memcpy(&v, (const char *)t->data + 4 * i, 4);
        differ += v != mine[i];
        mx = fmax(mx, fabs((double)v - mine[i]));
    }
    printf("  melW formula vs checkpoint: %d of %d entries differ, max_abs %.3g\n", differ, 513 * 64, mx);
    CHECK(mx <= 1e-7);
    free(mine);
    st_close(f);
}

int main(int argc, char **argv) {
    /* build/tests/test_msclap_golden -> build/clxp */
    const char *slash = argc > 0 ? strrchr(argv[0], '/') : NULL;
    int len = slash ? (int)(slash - argv[0]) : 0;
    snprintf(g_clxp, sizeof g_clxp, "%.*s/../clxp", len, slash ? argv[0] : ".");
    if (access(g_clxp, X_OK) != 0) g_clxp[0] = '\0';
    RUN(mel_filters_formula);
    RUN(bundled_safetensors);
    RUN(api_bundled);
    RUN(api_bundled_bf16);
    RUN(shared_pth);
    RUN(shared_safetensors);
    RUN(convert_bundled);
    RUN(convert_shared_pth);
    return test_summary();
}
