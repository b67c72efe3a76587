#include "models/clap.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/gemm.h"
#include "nn/interp.h"
#include "nn/ops.h"
#include "nn/swin.h"
#include "util/error.h"

/* nn.LayerNorm / nn.BatchNorm2d default eps, used where ClapAudioEncoder does not pass the config's. */
#define TORCH_NORM_EPS 1e-5f

/* ---- loading ------------------------------------------------------------------------------------------------------
 */

typedef struct {
    clap_model *m;
    clxp_error *err;
    clxp_status st;
} loader;

/* Look up name (printf-style) with the given shape; on failure remember the first error. */
static const float *get(loader *L, const int64_t *dims, int ndim, const char *fmt, ...) CLXP_PRINTF(4, 5);
static const float *get(loader *L, const int64_t *dims, int ndim, const char *fmt, ...) {
    if (L->st != CLXP_OK) return NULL;
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const float *p = NULL;
    L->st = weights_f32(L->m->w, name, ndim, dims, &p, L->err);
    return p;
}

#define D1(a) ((const int64_t[]){(a)}), 1
#define D2(a, b) ((const int64_t[]){(a), (b)}), 2
#define D4(a, b, c, d) ((const int64_t[]){(a), (b), (c), (d)}), 4

static float *alloc_floats(loader *L, size_t n) {
    if (L->st != CLXP_OK) return NULL;
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) L->st = clxp_err_set(L->err, CLXP_ERR_NOMEM, "out of memory");
    return p;
}

/* q, k, v of `prefix`.{query,key,value} packed into one [3D, D] weight and [3D] bias (owned). */
static void load_qkv(loader *L, const char *prefix, int64_t D, int bias, float **w_out, float **b_out) {
    const char *nm[3] = {"query", "key", "value"};
    const float *w[3], *b[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) {
        w[i] = get(L, D2(D, D), "%s.%s.weight", prefix, nm[i]);
        if (bias) b[i] = get(L, D1(D), "%s.%s.bias", prefix, nm[i]);
    }
    if (L->st != CLXP_OK) return;
    size_t dd = (size_t)D * (size_t)D;
    float *pw = alloc_floats(L, 3 * dd), *pb = bias ? alloc_floats(L, 3 * (size_t)D) : NULL;
    *w_out = pw;
    *b_out = pb;
    if (L->st != CLXP_OK) return;
    for (int i = 0; i < 3; i++) {
        memcpy(pw + i * dd, w[i], dd * sizeof(float));
        if (bias) memcpy(pb + i * (size_t)D, b[i], (size_t)D * sizeof(float));
    }
}

/* An eval-mode BatchNorm of n channels folded the way PyTorch's CPU kernel does
 * (batch_norm_cpu_collect_linear_and_constant_terms): invstd = 1 / sqrt(var + eps), alpha = invstd * weight,
 * beta = bias - mean * alpha, all in float; y = x * alpha + beta. */
static void load_bn(loader *L, const char *prefix, int64_t n, clap_bn *bn) {
    const float *w = get(L, D1(n), "%s.weight", prefix), *b = get(L, D1(n), "%s.bias", prefix);
    const float *mean = get(L, D1(n), "%s.running_mean", prefix), *var = get(L, D1(n), "%s.running_var", prefix);
    bn->scale = alloc_floats(L, (size_t)n);
    bn->shift = alloc_floats(L, (size_t)n);
    if (L->st != CLXP_OK) return;
    for (int64_t c = 0; c < n; c++) {
        if (!(var[c] >= 0)) {
            L->st = clxp_err_set(L->err, CLXP_ERR_FORMAT, "%s: %s.running_var[%lld] = %g is negative",
                                 weights_source(L->m->w), prefix, (long long)c, (double)var[c]);
            return;
        }
        float invstd = 1.0f / sqrtf(var[c] + TORCH_NORM_EPS);
        bn->scale[c] = invstd * w[c];
        bn->shift[c] = b[c] - mean[c] * bn->scale[c];
    }
}

static void free_bn(clap_bn *bn) {
    free(bn->scale);
    free(bn->shift);
}

/* The stored relative_position_index buffer (when present) must be the one swin_relative_index computes:
 * a checkpoint with another layout would silently get wrong biases. */
static void check_rel_index(loader *L, const char *prefix, int ws) {
    if (L->st != CLXP_OK) return;
    char name[256];
    snprintf(name, sizeof name, "%s.relative_position_index", prefix);
    const st_tensor *t = weights_find(L->m->w, name);
    if (!t) return;
    const int64_t N = (int64_t)ws * ws;
    int ok = t->ndim == 2 && t->shape[0] == N && t->shape[1] == N && (t->dtype == ST_I64 || t->dtype == ST_I32);
    for (int64_t i = 0; ok && i < N * N; i++) {
        int64_t v;
        if (t->dtype == ST_I64)
            memcpy(&v, (const char *)t->data + 8 * i, 8);
        else {
            int32_t v32;
            memcpy(&v32, (const char *)t->data + 4 * i, 4);
            v = v32;
        }
        ok = v == swin_relative_index(ws, (int)(i / N), (int)(i % N));
    }
    if (!ok)
        L->st = clxp_err_set(L->err, CLXP_ERR_UNSUPPORTED, "%s: \"%s\" is not the standard %dx%d window index",
                             weights_source(L->m->w), name, ws, ws);
}

static void load_audio(loader *L) {
    clap_model *m = L->m;
    const clap_audio_config *a = &m->cfg.audio;
    const char *pre = "audio_model.audio_encoder";
    const int64_t D0 = a->patch_embeds_hidden_size, P = a->patch_size;
    load_bn(L, "audio_model.audio_encoder.batch_norm", a->num_mel_bins, &m->in_bn);
    m->patch_w = get(L, D4(D0, 1, P, P), "%s.patch_embed.proj.weight", pre);
    m->patch_b = get(L, D1(D0), "%s.patch_embed.proj.bias", pre);
    if (a->enable_patch_layer_norm) {
        m->patch_ln_w = get(L, D1(D0), "%s.patch_embed.norm.weight", pre);
        m->patch_ln_b = get(L, D1(D0), "%s.patch_embed.norm.bias", pre);
    }
    if (a->enable_fusion) {
        const int64_t Dr = D0 / a->aff_block_r;
        m->mel_conv_w = get(L, D4(D0, 1, P, 3 * P), "%s.patch_embed.mel_conv2d.weight", pre);
        m->mel_conv_b = get(L, D1(D0), "%s.patch_embed.mel_conv2d.bias", pre);
        /* nn.Sequential indices: local_att = conv(0) bn(1) relu conv(3) bn(4); global_att = pool conv(1) bn(2)
         * relu conv(4) bn(5) */
        const char *fm = "audio_model.audio_encoder.patch_embed.fusion_model";
        char p1[160], p2[160];
        for (int g = 0; g < 2; g++) {
            clap_aff_branch *br = g ? &m->aff_global : &m->aff_local;
            const char *nm = g ? "global_att" : "local_att";
            int o = g; /* the global branch is shifted by the pooling layer */
            br->w1 = get(L, D4(Dr, D0, 1, 1), "%s.%s.%d.weight", fm, nm, 0 + o);
            br->b1 = get(L, D1(Dr), "%s.%s.%d.bias", fm, nm, 0 + o);
            snprintf(p1, sizeof p1, "%s.%s.%d", fm, nm, 1 + o);
            load_bn(L, p1, Dr, &br->bn1);
            br->w2 = get(L, D4(D0, Dr, 1, 1), "%s.%s.%d.weight", fm, nm, 3 + o);
            br->b2 = get(L, D1(D0), "%s.%s.%d.bias", fm, nm, 3 + o);
            snprintf(p2, sizeof p2, "%s.%s.%d", fm, nm, 4 + o);
            load_bn(L, p2, D0, &br->bn2);
        }
    }
    int res = clap_audio_grid(a);
    for (int s = 0; s < a->n_stages && L->st == CLXP_OK; s++) {
        swin_stage *st = &m->stages[s];
        st->dim = clap_audio_stage_dim(a, s);
        st->res = res;
        st->heads = a->heads[s];
        st->depth = a->depths[s];
        st->mlp = (int)(a->mlp_ratio * st->dim); /* int(config.mlp_ratio * dim) */
        /* set_shift_and_window_size: a stage that is a single window is not shifted */
        const int single = res <= a->window_size;
        st->window = single ? res : a->window_size;
        const int64_t D = st->dim, F = st->mlp, ws = st->window, N = ws * ws, nW = (res / ws) * (res / ws);
        st->blocks = calloc((size_t)st->depth, sizeof *st->blocks);
        if (!st->blocks) {
            L->st = clxp_err_set(L->err, CLXP_ERR_NOMEM, "out of memory");
            break;
        }
        for (int i = 0; i < st->depth && L->st == CLXP_OK; i++) {
            swin_block *b = &st->blocks[i];
            char p[160], ps[200];
            snprintf(p, sizeof p, "%s.layers.%d.blocks.%d", pre, s, i);
            snprintf(ps, sizeof ps, "%s.attention.self", p);
            b->shift = (i % 2 == 1 && !single) ? a->window_size / 2 : 0;
            b->ln1_w = get(L, D1(D), "%s.layernorm_before.weight", p);
            b->ln1_b = get(L, D1(D), "%s.layernorm_before.bias", p);
            b->ln2_w = get(L, D1(D), "%s.layernorm_after.weight", p);
            b->ln2_b = get(L, D1(D), "%s.layernorm_after.bias", p);
            load_qkv(L, ps, D, a->qkv_bias, &b->owned_w, &b->owned_b); /* q | k | v concatenated */
            b->qkv_w = b->owned_w;
            b->qkv_b = b->owned_b;
            const float *table =
                get(L, D2((2 * ws - 1) * (2 * ws - 1), st->heads), "%s.relative_position_bias_table", ps);
            check_rel_index(L, ps, (int)ws);
            b->o_w = get(L, D2(D, D), "%s.attention.output.dense.weight", p);
            b->o_b = get(L, D1(D), "%s.attention.output.dense.bias", p);
            b->fc1_w = get(L, D2(F, D), "%s.intermediate.dense.weight", p);
            b->fc1_b = get(L, D1(F), "%s.intermediate.dense.bias", p);
            b->fc2_w = get(L, D2(D, F), "%s.output.dense.weight", p);
            b->fc2_b = get(L, D1(D), "%s.output.dense.bias", p);
            b->bias = alloc_floats(L, (size_t)st->heads * N * N);
            if (L->st == CLXP_OK) swin_expand_bias(table, (int)ws, st->heads, b->bias);
            if (b->shift && !st->mask) {
                st->mask = alloc_floats(L, (size_t)nW * N * N);
                if (L->st == CLXP_OK) swin_shift_mask(res, res, (int)ws, b->shift, st->mask);
            }
        }
        if (s < a->n_stages - 1) {
            st->merge_ln_w = get(L, D1(4 * D), "%s.layers.%d.downsample.norm.weight", pre, s);
            st->merge_ln_b = get(L, D1(4 * D), "%s.layers.%d.downsample.norm.bias", pre, s);
            st->merge_w = get(L, D2(2 * D, 4 * D), "%s.layers.%d.downsample.reduction.weight", pre, s);
            res /= 2;
        }
    }
    const int64_t Dl = a->hidden_size, Pj = m->cfg.projection_dim;
    m->norm_w = get(L, D1(Dl), "%s.norm.weight", pre);
    m->norm_b = get(L, D1(Dl), "%s.norm.bias", pre);
    m->aproj1_w = get(L, D2(Pj, Dl), "audio_projection.linear1.weight");
    m->aproj1_b = get(L, D1(Pj), "audio_projection.linear1.bias");
    m->aproj2_w = get(L, D2(Pj, Pj), "audio_projection.linear2.weight");
    m->aproj2_b = get(L, D1(Pj), "audio_projection.linear2.bias");
}

static void load_text(loader *L) {
    clap_model *m = L->m;
    const clap_text_config *t = &m->cfg.text;
    const int64_t D = t->hidden, I = t->intermediate, Pj = m->cfg.projection_dim;
    m->word_emb = get(L, D2(t->vocab_size, D), "text_model.embeddings.word_embeddings.weight");
    m->pos_emb = get(L, D2(t->max_position_embeddings, D), "text_model.embeddings.position_embeddings.weight");
    m->type_emb = get(L, D2(t->type_vocab_size, D), "text_model.embeddings.token_type_embeddings.weight");
    m->emb_ln_w = get(L, D1(D), "text_model.embeddings.LayerNorm.weight");
    m->emb_ln_b = get(L, D1(D), "text_model.embeddings.LayerNorm.bias");
    if (L->st != CLXP_OK) return;
    m->tlayers = calloc((size_t)t->layers, sizeof *m->tlayers);
    if (!m->tlayers) {
        L->st = clxp_err_set(L->err, CLXP_ERR_NOMEM, "out of memory");
        return;
    }
    for (int i = 0; i < t->layers && L->st == CLXP_OK; i++) {
        clap_text_layer *l = &m->tlayers[i];
        char p[128], ps[160];
        snprintf(p, sizeof p, "text_model.encoder.layer.%d", i);
        snprintf(ps, sizeof ps, "%s.attention.self", p);
        load_qkv(L, ps, D, 1, &l->qkv_w, &l->qkv_b);
        l->o_w = get(L, D2(D, D), "%s.attention.output.dense.weight", p);
        l->o_b = get(L, D1(D), "%s.attention.output.dense.bias", p);
        l->ln1_w = get(L, D1(D), "%s.attention.output.LayerNorm.weight", p);
        l->ln1_b = get(L, D1(D), "%s.attention.output.LayerNorm.bias", p);
        l->fc1_w = get(L, D2(I, D), "%s.intermediate.dense.weight", p);
        l->fc1_b = get(L, D1(I), "%s.intermediate.dense.bias", p);
        l->fc2_w = get(L, D2(D, I), "%s.output.dense.weight", p);
        l->fc2_b = get(L, D1(D), "%s.output.dense.bias", p);
        l->ln2_w = get(L, D1(D), "%s.output.LayerNorm.weight", p);
        l->ln2_b = get(L, D1(D), "%s.output.LayerNorm.bias", p);
    }
    m->pool_w = get(L, D2(D, D), "text_model.pooler.dense.weight");
    m->pool_b = get(L, D1(D), "text_model.pooler.dense.bias");
    m->tproj1_w = get(L, D2(Pj, D), "text_projection.linear1.weight");
    m->tproj1_b = get(L, D1(Pj), "text_projection.linear1.bias");
    m->tproj2_w = get(L, D2(Pj, Pj), "text_projection.linear2.weight");
    m->tproj2_b = get(L, D1(Pj), "text_projection.linear2.bias");
}

/* A scalar stored as shape [] or [1] depending on the exporter. */
static float load_scalar(loader *L, const char *name) {
    if (L->st != CLXP_OK) return 0;
    const st_tensor *t = weights_find(L->m->w, name);
    const float *p = t && t->ndim == 1 ? get(L, D1(1), "%s", name) : get(L, NULL, 0, "%s", name);
    if (L->st != CLXP_OK) return 0;
    if (!isfinite(p[0]) || p[0] > 100.0f) {
        L->st = clxp_err_set(L->err, CLXP_ERR_FORMAT, "%s: %s %g is not a usable value", weights_source(L->m->w), name,
                             (double)p[0]);
        return 0;
    }
    return p[0];
}

/* Buffers that HF checkpoints carry but the forward pass does not need (or recomputes). */
static int ignorable(const char *name) {
    static const char *const suffixes[] = {".position_ids", ".token_type_ids", ".num_batches_tracked",
                                           ".relative_position_index"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        size_t s = strlen(suffixes[i]);
        if (n >= s && strcmp(name + n - s, suffixes[i]) == 0) return 1;
    }
    return 0;
}

/* The matrices of every layer, in a fixed order (for plain initialisation, packing and release). */
static int model_matrices(void *model, nn_matrix **out, int cap) {
    clap_model *m = model;
    int n = 0;
#define ADD(mat) \
    do { \
        if (n < cap) out[n] = (mat); \
        n++; \
    } while (0)
    ADD(&m->patch);
    for (int s = 0; s < m->cfg.audio.n_stages && s < CLAP_MAX_STAGES; s++)
        n = swin_stage_matrices(&m->stages[s], out, n, cap);
    for (int i = 0; m->tlayers && i < m->cfg.text.layers; i++) {
        ADD(&m->tlayers[i].qkv);
        ADD(&m->tlayers[i].o);
        ADD(&m->tlayers[i].fc1);
        ADD(&m->tlayers[i].fc2);
    }
#undef ADD
    return n;
}

/* After loading: every matrix refers to its plain fp32 weight. */
static void init_matrices(clap_model *m) {
    const clap_audio_config *a = &m->cfg.audio;
    m->patch = nn_matrix_plain(m->patch_w, a->patch_embeds_hidden_size, a->patch_size * a->patch_size);
    for (int s = 0; s < a->n_stages; s++) swin_stage_init_matrices(&m->stages[s]);
    const int D = m->cfg.text.hidden, I = m->cfg.text.intermediate;
    for (int i = 0; i < m->cfg.text.layers; i++) {
        clap_text_layer *l = &m->tlayers[i];
        l->qkv = nn_matrix_plain(l->qkv_w, 3 * D, D);
        l->o = nn_matrix_plain(l->o_w, D, D);
        l->fc1 = nn_matrix_plain(l->fc1_w, I, D);
        l->fc2 = nn_matrix_plain(l->fc2_w, D, I);
    }
}

clxp_status clap_model_pack(clap_model *m, nn_precision prec, clxp_error *err) {
    if (m->packed) return clxp_err_set(err, CLXP_ERR_INTERNAL, "clap_model_pack: already packed");
    clxp_status st = nn_matrices_pack(model_matrices, m, &m->eng, prec, err);
    if (st != CLXP_OK) return st;
    /* the concatenated q|k|v copies are no longer needed */
    for (int s = 0; s < m->cfg.audio.n_stages; s++) swin_stage_drop_fp32(&m->stages[s]);
    for (int i = 0; i < m->cfg.text.layers; i++) {
        free(m->tlayers[i].qkv_w);
        m->tlayers[i].qkv_w = NULL;
    }
    m->packed = 1;
    m->prec = prec;
    weights_release_pages(m->w);
    return CLXP_OK;
}

clxp_status clap_model_load(const char *dir, clap_model **out, clxp_error *err) {
    return clap_model_load_weights(dir, NULL, out, err);
}

clxp_status clap_model_load_weights(const char *dir, weights *w, clap_model **out, clxp_error *err) {
    *out = NULL;
    clap_model *m = calloc(1, sizeof *m);
    if (!m) {
        weights_free(w);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    m->w = w;
    char cfg_path[4096];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    clxp_status st = clap_config_load(cfg_path, &m->cfg, err);
    if (st == CLXP_OK && !m->w) st = weights_open_dir(dir, &m->w, err);
    if (st != CLXP_OK) {
        clap_model_free(m);
        return st;
    }
    loader L = {m, err, CLXP_OK};
    load_audio(&L);
    load_text(&L);
    m->logit_scale_a = load_scalar(&L, "logit_scale_a");
    m->logit_scale_t = load_scalar(&L, "logit_scale_t");
    if (L.st == CLXP_OK) L.st = weights_check_unused(m->w, ignorable, err);
    if (L.st != CLXP_OK) {
        clap_model_free(m);
        return L.st;
    }
    init_matrices(m);
    *out = m;
    return CLXP_OK;
}

void clap_model_free(clap_model *m) {
    if (!m) return;
    nn_matrices_release(model_matrices, m);
    nn_engine_free(m->eng);
    free_bn(&m->in_bn);
    free_bn(&m->aff_local.bn1);
    free_bn(&m->aff_local.bn2);
    free_bn(&m->aff_global.bn1);
    free_bn(&m->aff_global.bn2);
    for (int s = 0; s < CLAP_MAX_STAGES; s++) swin_stage_free(&m->stages[s]);
    for (int i = 0; m->tlayers && i < m->cfg.text.layers; i++) {
        free(m->tlayers[i].qkv_w);
        free(m->tlayers[i].qkv_b);
    }
    free(m->tlayers);
    weights_free(m->w);
    free(m->arena);
    free(m);
}

int clap_max_frames(const clap_model *m) { return m->cfg.audio.spec_size * clap_audio_freq_ratio(&m->cfg.audio); }

float clap_logit_scale_audio(const clap_model *m) { return expf(m->logit_scale_a); }
float clap_logit_scale_text(const clap_model *m) { return expf(m->logit_scale_t); }

void clap_logits_per_audio(const clap_model *m, const float *audio, int B, const float *text, int P, float *logits) {
    const int D = m->cfg.projection_dim;
    const float scale = clap_logit_scale_audio(m);
    for (int i = 0; i < B; i++)
        for (int j = 0; j < P; j++) {
            float s = 0;
            for (int k = 0; k < D; k++) s += audio[(size_t)i * D + k] * text[(size_t)j * D + k];
            logits[(size_t)i * P + j] = s * scale;
        }
}

/* ---- shared forward helpers ------------------------------------------------------------------------------------- */

/* Carve n buffers of sizes[i] floats out of the model's arena (grown when needed), each 64-byte aligned. */
static clxp_status carve(clap_model *m, int n, const size_t *sizes, float **const *dst, clxp_error *err) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += (sizes[i] + 15) & ~(size_t)15;
    if (total > m->arena_cap) {
        free(m->arena);
        m->arena = NULL;
        m->arena_cap = 0;
        if (posix_memalign((void **)&m->arena, 64, total * sizeof(float)) != 0) {
            m->arena = NULL;
            return clxp_err_set(err, CLXP_ERR_NOMEM, "cannot allocate %zu MB of activations", total * 4 >> 20);
        }
        m->arena_cap = total;
    }
    float *p = m->arena;
    for (int i = 0; i < n; i++) {
        *dst[i] = p;
        p += (sizes[i] + 15) & ~(size_t)15;
    }
    return CLXP_OK;
}

static void emit(clap_hook hook, void *ctx, const char *name, const float *data, int ndim, int64_t d0, int64_t d1,
                 int64_t d2, int64_t d3) {
    if (!hook) return;
    int64_t shape[4] = {d0, d1, d2, d3};
    hook(ctx, name, data, ndim, shape);
}

static nn_act act_of(clap_act a) {
    switch (a) {
    case CLAP_ACT_RELU: return NN_ACT_RELU;
    case CLAP_ACT_QUICK_GELU: return NN_ACT_QUICK_GELU;
    case CLAP_ACT_GELU: break;
    }
    return NN_ACT_GELU;
}

/* y[r, c] = x[r, c] * scale[c] + shift[c] */
static void bn_apply(const clap_bn *bn, float *x, size_t rows, int C) {
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < rows; r++) {
        float *v = x + r * C;
        for (int c = 0; c < C; c++) v[c] = v[c] * bn->scale[c] + bn->shift[c];
    }
}

/* ClapProjectionLayer: linear1 -> activation -> linear2. hid: [B, Pj] scratch. */
static clxp_status projection(const clap_model *m, const float *in, int B, int K, const float *w1, const float *b1,
                              const float *w2, const float *b2, float *hid, float *out, clxp_error *err) {
    const int Pj = m->cfg.projection_dim;
    clxp_status st = nn_linear(in, B, K, w1, b1, Pj, hid, 0, err);
    if (st != CLXP_OK) return st;
    nn_activation(hid, (size_t)B * Pj, act_of(m->cfg.projection_act));
    return nn_linear(hid, B, Pj, w2, b2, Pj, out, 0, err);
}

/* ---- audio tower --------------------------------------------------------------------------------------------------
 */

/* Observe a token-major map x[B, H*W, C] in the reference's [B, C, H, W] layout (tmp: B*H*W*C floats). */
static void emit_map(clap_hook hook, void *ctx, const char *name, const float *x, int B, int H, int W, int C,
                     float *tmp) {
    if (!hook) return;
    const size_t HW = (size_t)H * W;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (size_t p = 0; p < HW; p++) tmp[((size_t)b * C + c) * HW + p] = x[((size_t)b * HW + p) * C + c];
    emit(hook, ctx, name, tmp, 4, B, C, H, W);
}

/* ClapAudioAFFBlock on the items `idx[0..nl)` of the global map g[B, N, D] (in place) with the local map
 * l[nl, N, D]: w = sigmoid(local_att(g + l) + global_att(g + l)), g = 2 g w + 2 l (1 - w).
 * a: [nl, N, D], hid: [nl, N, D/r], loc: [nl, N, D], gv: [nl, D], gh: [nl, D/r], go: [nl, D] scratch. */
static clxp_status aff_fuse(const clap_model *m, float *g, const float *l, const int *idx, int nl, int N, int D,
                            float *a, float *hid, float *loc, float *gv, float *gh, float *go, clxp_error *err) {
    const int Dr = D / m->cfg.audio.aff_block_r;
    const clap_aff_branch *lb = &m->aff_local, *gb = &m->aff_global;
    for (int k = 0; k < nl; k++) {
        const float *gk = g + (size_t)idx[k] * N * D, *lk = l + (size_t)k * N * D;
        float *ak = a + (size_t)k * N * D;
        for (size_t i = 0; i < (size_t)N * D; i++) ak[i] = gk[i] + lk[i];
        /* AdaptiveAvgPool2d(1): the mean over the map, per channel */
        for (int c = 0; c < D; c++) {
            double s = 0;
            for (int p = 0; p < N; p++) s += ak[(size_t)p * D + c];
            gv[(size_t)k * D + c] = (float)(s / N);
        }
    }
    const size_t rows = (size_t)nl * N;
    clxp_status st = nn_linear(a, (int)rows, D, lb->w1, lb->b1, Dr, hid, 0, err);
    if (st != CLXP_OK) return st;
    bn_apply(&lb->bn1, hid, rows, Dr);
    nn_activation(hid, rows * Dr, NN_ACT_RELU);
    if ((st = nn_linear(hid, (int)rows, Dr, lb->w2, lb->b2, D, loc, 0, err)) != CLXP_OK) return st;
    bn_apply(&lb->bn2, loc, rows, D);
    if ((st = nn_linear(gv, nl, D, gb->w1, gb->b1, Dr, gh, 0, err)) != CLXP_OK) return st;
    bn_apply(&gb->bn1, gh, (size_t)nl, Dr);
    nn_activation(gh, (size_t)nl * Dr, NN_ACT_RELU);
    if ((st = nn_linear(gh, nl, Dr, gb->w2, gb->b2, D, go, 0, err)) != CLXP_OK) return st;
    bn_apply(&gb->bn2, go, (size_t)nl, D);
    for (int k = 0; k < nl; k++) {
        float *gk = g + (size_t)idx[k] * N * D;
        const float *lk = l + (size_t)k * N * D, *lo = loc + (size_t)k * N * D, *gl = go + (size_t)k * D;
#pragma omp parallel for schedule(static)
        for (int p = 0; p < N; p++)
            for (int c = 0; c < D; c++) {
                size_t i = (size_t)p * D + c;
                float w = 1.0f / (1.0f + expf(-(lo[i] + gl[c])));
                gk[i] = 2.0f * gk[i] * w + 2.0f * lk[i] * (1.0f - w);
            }
    }
    return CLXP_OK;
}

clxp_status clap_encode_features(clap_model *m, const float *features, const int *is_longer, int B, int C, int T,
                                 float *embeds, clap_hook hook, void *ctx, clxp_error *err) {
    const clap_audio_config *a = &m->cfg.audio;
    const int Fm = a->num_mel_bins, S = a->spec_size, ratio = clap_audio_freq_ratio(a), Tw = S * ratio;
    const int P = a->patch_size, G = clap_audio_grid(a), N0 = G * G, D0 = a->patch_embeds_hidden_size;
    const int want_c = a->enable_fusion ? 4 : 1;
    if (B <= 0) return CLXP_OK;
    if (C != want_c)
        return clxp_err_set(err, CLXP_ERR_INVALID,
                            "%s CLAP model needs %d feature channel%s, got %d (the extractor's "
                            "truncation mode does not match the model)",
                            a->enable_fusion ? "a fused" : "an unfused", want_c, want_c == 1 ? "" : "s", C);
    if (T < 1 || T > Tw) return clxp_err_set(err, CLXP_ERR_INVALID, "%d feature frames outside [1, %d]", T, Tw);

    /* clips of the batch that take the fusion branch (ClapAudioPatchEmbed: is_longer_idx) */
    int *longer = malloc((size_t)B * sizeof *longer);
    if (!longer) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    int nl = 0;
    for (int b = 0; a->enable_fusion && is_longer && b < B; b++)
        if (is_longer[b]) longer[nl++] = b;
    const int lw1 = (S - 3 * P) / (3 * P) + 1; /* mel_conv2d output width per crop */
    const int Dr = D0 / a->aff_block_r;

    /* buffers (the first stage is the largest: every later one has half the floats) */
    const size_t BC = (size_t)B * C, map0 = (size_t)B * N0 * D0;
    size_t cols = (size_t)B * N0 * P * P, fcols = (size_t)nl * 3 * G * lw1 * 3 * P * P;
    size_t mlp = (size_t)B * N0 * (size_t)m->stages[0].mlp, hidn = (size_t)nl * N0 * (Dr > 0 ? Dr : 1);
    size_t work_n = 0;
    for (int s = 0; s < a->n_stages; s++) {
        const swin_stage *sg = &m->stages[s];
        size_t w = swin_attention_work_size(sg->window * sg->window, sg->dim / sg->heads);
        if (w > work_n) work_n = w;
    }
    float *bufa, *bufb, *colb, *x, *h, *qkv, *att, *mlpb, *work, *small, *hookb;
    const size_t small_n = (size_t)B * (a->hidden_size + 2 * m->cfg.projection_dim) + (size_t)nl * (2 * D0 + Dr);
    size_t sizes[11] = {BC * (size_t)((size_t)T * Fm > (size_t)S * S ? (size_t)T * Fm : (size_t)S * S),
                        BC * S * S,
                        cols > fcols ? cols : fcols,
                        map0,
                        map0,
                        3 * map0,
                        map0,
                        mlp > hidn ? mlp : hidn,
                        work_n,
                        small_n,
                        hook ? map0 : 0}; /* every later map, and the regrouped last one, is smaller */
    float **dst[11] = {&bufa, &bufb, &colb, &x, &h, &qkv, &att, &mlpb, &work, &small, &hookb};
    clxp_status st = carve(m, 11, sizes, dst, err);
    if (st != CLXP_OK) {
        free(longer);
        return st;
    }

    /* 1. BatchNorm over the mel bins (the last axis of [B, C, T, mels]) */
    memcpy(bufa, features, BC * T * Fm * sizeof *bufa);
    bn_apply(&m->in_bn, bufa, BC * T, Fm);
    emit(hook, ctx, "audio.batch_norm_output", bufa, 4, B, C, T, Fm);

    /* 2. reshape_mel2img: time T -> Tw (bicubic, align_corners=True; skipped when T == Tw), then fold */
    for (size_t i = 0; i < BC; i++) {
        if (T == Tw)
            memcpy(bufb + i * Tw * Fm, bufa + i * T * Fm, (size_t)Tw * Fm * sizeof *bufb);
        else
            nn_interp_rows_bicubic_ac(bufa + i * T * Fm, T, Fm, bufb + i * Tw * Fm, Tw);
    }
    /* image row = chunk * mels + mel, column = frame - chunk * S (the reshape/permute/reshape of the reference) */
#pragma omp parallel for collapse(2) schedule(static)
    for (size_t i = 0; i < BC; i++)
        for (int row = 0; row < S; row++) {
            const int chunk = row / Fm, f = row % Fm;
            const float *src = bufb + i * Tw * Fm + (size_t)chunk * S * Fm + f;
            float *o = bufa + i * S * S + (size_t)row * S;
            for (int t = 0; t < S; t++) o[t] = src[(size_t)t * Fm];
        }
    float *img = bufa;
    emit(hook, ctx, "audio.mel2img", img, 4, B, C, S, S);

    /* 3. patch embedding of channel 0: im2col (kernel order ky, kx) + GEMM */
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < G; gy++)
            for (int gx = 0; gx < G; gx++) {
                float *d = colb + (((size_t)b * G + gy) * G + gx) * P * P;
                const float *s0 = img + (size_t)b * C * S * S + (size_t)gy * P * S + (size_t)gx * P;
                for (int ky = 0; ky < P; ky++) memcpy(d + (size_t)ky * P, s0 + (size_t)ky * S, (size_t)P * sizeof *d);
            }
    st = nn_linear_m(&m->patch, colb, B * N0, m->patch_b, x, 0, err);
    if (st == CLXP_OK && nl > 0) {
        /* fusion: channels 1..3 of the longer clips through mel_conv2d (kernel P x 3P) */
        const int K = 3 * P * P;
#pragma omp parallel for collapse(3) schedule(static)
        for (int k = 0; k < nl; k++)
            for (int ch = 0; ch < 3; ch++)
                for (int gy = 0; gy < G; gy++)
                    for (int w = 0; w < lw1; w++) {
                        float *d = colb + ((((size_t)k * 3 + ch) * G + gy) * lw1 + w) * K;
                        const float *s0 =
                            img + ((size_t)longer[k] * C + 1 + ch) * S * S + (size_t)gy * P * S + (size_t)w * 3 * P;
                        for (int ky = 0; ky < P; ky++)
                            memcpy(d + (size_t)ky * 3 * P, s0 + (size_t)ky * S, (size_t)3 * P * sizeof *d);
                    }
        const int lrows = nl * 3 * G * lw1;
        st = nn_linear(colb, lrows, K, m->mel_conv_w, m->mel_conv_b, D0, qkv, 0, err);
        if (st == CLXP_OK) {
            /* local map [nl, G, G, D0]: the three crops side by side along the width (permute(0, 2, 3, 1, 4) +
             * flatten), zero-padded to G columns */
            float *l = att;
            memset(l, 0, (size_t)nl * N0 * D0 * sizeof *l);
            for (int k = 0; k < nl; k++)
                for (int ch = 0; ch < 3; ch++)
                    for (int gy = 0; gy < G; gy++)
                        for (int w = 0; w < lw1; w++)
                            memcpy(l + (((size_t)k * G + gy) * G + (size_t)ch * lw1 + w) * D0,
                                   qkv + ((((size_t)k * 3 + ch) * G + gy) * lw1 + w) * D0, (size_t)D0 * sizeof *l);
            float *gv = small + (size_t)B * (a->hidden_size + 2 * m->cfg.projection_dim);
            st = aff_fuse(m, x, l, longer, nl, N0, D0, h, mlpb, qkv, gv, gv + (size_t)nl * D0,
                          gv + (size_t)nl * (D0 + Dr), err);
        }
    }
    free(longer);
    if (st != CLXP_OK) return st;
    if (a->enable_patch_layer_norm) nn_layernorm(x, B * N0, D0, m->patch_ln_w, m->patch_ln_b, TORCH_NORM_EPS, x);
    emit_map(hook, ctx, "audio.hidden_states.0", x, B, G, G, D0, hookb);

    /* 4. Swin stages */
    char name[80];
    for (int s = 0; s < a->n_stages && st == CLXP_OK; s++) {
        const swin_stage *sg = &m->stages[s];
        const int R = sg->res, D = sg->dim;
        st = swin_stage_blocks(sg, B, (float)a->layer_norm_eps, act_of(a->hidden_act), x, h, att, qkv, mlpb, work, err);
        if (st != CLXP_OK) break;
        if (sg->merge_w) {
            snprintf(name, sizeof name, "audio.hidden_states_before_downsampling.%d", s + 1);
            emit_map(hook, ctx, name, x, B, R, R, D, hookb);
            if ((st = swin_stage_merge(sg, B, TORCH_NORM_EPS, x, h, err)) != CLXP_OK) break;
            snprintf(name, sizeof name, "audio.hidden_states.%d", s + 1);
            emit_map(hook, ctx, name, x, B, R / 2, R / 2, 2 * D, hookb);
        } else {
            snprintf(name, sizeof name, "audio.hidden_states.%d", s + 1);
            emit_map(hook, ctx, name, x, B, R, R, D, hookb);
        }
    }
    if (st != CLXP_OK) return st;

    /* 5. final LayerNorm, mean over the tokens, projection */
    const swin_stage *last = &m->stages[a->n_stages - 1];
    const int R = last->res, Dl = a->hidden_size, NL = R * R;
    nn_layernorm(x, B * NL, Dl, m->norm_w, m->norm_b, TORCH_NORM_EPS, h);
    if (hook) {
        /* the reference's regrouped [B, D, cfb, ratio * R] layout: element (c, fb, g * R + t) is the map's row
         * g * cfb + fb, column t (cfb = R / freq_ratio) */
        const int cfb = R / ratio;
        for (int b = 0; b < B; b++)
            for (int c = 0; c < Dl; c++)
                for (int fb = 0; fb < cfb; fb++)
                    for (int g = 0; g < ratio; g++)
                        for (int t = 0; t < R; t++)
                            hookb[(((size_t)b * Dl + c) * cfb + fb) * ratio * R + (size_t)g * R + t] =
                                h[((size_t)b * NL + (size_t)(g * cfb + fb) * R + t) * Dl + c];
        emit(hook, ctx, "audio.last_hidden_state", hookb, 4, B, Dl, cfb, (int64_t)ratio * R);
    }
    float *pooled = small, *hid = small + (size_t)B * Dl;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < Dl; c++) {
            double s = 0;
            for (int p = 0; p < NL; p++) s += h[((size_t)b * NL + p) * Dl + c];
            pooled[(size_t)b * Dl + c] = (float)(s / NL);
        }
    emit(hook, ctx, "audio.pooled_output", pooled, 2, B, Dl, 0, 0);
    st = projection(m, pooled, B, Dl, m->aproj1_w, m->aproj1_b, m->aproj2_w, m->aproj2_b, hid, embeds, err);
    if (st == CLXP_OK) emit(hook, ctx, "audio_embeds_unnormalized", embeds, 2, B, m->cfg.projection_dim, 0, 0);
    return st;
}

/* ---- text tower ----------------------------------------------------------------------------------------------------
 */

clxp_status clap_encode_tokens(clap_model *m, const int32_t *ids, const int32_t *mask, int B, int T, float *embeds,
                               clap_hook hook, void *ctx, clxp_error *err) {
    const clap_text_config *c = &m->cfg.text;
    const int D = c->hidden, I = c->intermediate, pad = c->pad_token_id;
    if (B <= 0) return CLXP_OK;
    const int maxT = c->max_position_embeddings - pad - 1;
    if (T <= 0 || T > maxT)
        return clxp_err_set(err, CLXP_ERR_INVALID, "token sequence length %d outside [1, %d]", T, maxT);
    /* compute up to the last real token of the batch */
    int Tc = 0;
    for (int b = 0; b < B; b++) {
        int last = -1;
        for (int t = 0; t < T; t++) {
            int32_t id = ids[(size_t)b * T + t];
            if (id < 0 || id >= c->vocab_size)
                return clxp_err_set(err, CLXP_ERR_INVALID, "token id %d outside the vocabulary (%d)", id,
                                    c->vocab_size);
            if (!mask || mask[(size_t)b * T + t]) last = t;
        }
        if (last < 0) return clxp_err_set(err, CLXP_ERR_INVALID, "sequence %d has no unmasked token", b);
        if (last + 1 > Tc) Tc = last + 1;
    }
    const int rows = B * Tc;
    float *x, *h, *qkv, *att, *mlp, *work, *small;
    size_t sizes[7] = {(size_t)rows * D,
                       (size_t)rows * D,
                       (size_t)rows * 3 * D,
                       (size_t)rows * D,
                       (size_t)rows * I,
                       nn_attention_work_size(B, Tc, c->heads),
                       (size_t)B * (2 * D + m->cfg.projection_dim)};
    float **dst[7] = {&x, &h, &qkv, &att, &mlp, &work, &small};
    clxp_status st = carve(m, 7, sizes, dst, err);
    if (st != CLXP_OK) return st;
    int *km = malloc((size_t)rows * sizeof *km);
    if (!km) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");

    /* embeddings: (word + token type 0) + position, positions pad + cumsum(id != pad) on real tokens, pad on padding
     * (create_position_ids_from_input_ids) */
    for (int b = 0; b < B; b++) {
        int count = 0;
        for (int t = 0; t < Tc; t++) {
            const int32_t id = ids[(size_t)b * T + t];
            int pos = pad;
            if (id != pad) pos = ++count + pad;
            const float *we = m->word_emb + (size_t)id * D, *te = m->type_emb, *pe = m->pos_emb + (size_t)pos * D;
            float *xr = x + ((size_t)b * Tc + t) * D;
            for (int j = 0; j < D; j++) {
                float e = we[j] + te[j];
                xr[j] = e + pe[j];
            }
            km[(size_t)b * Tc + t] = mask ? mask[(size_t)b * T + t] != 0 : 1;
        }
    }
    nn_layernorm(x, rows, D, m->emb_ln_w, m->emb_ln_b, (float)c->layer_norm_eps, x);
    emit(hook, ctx, "text.hidden_states.0", x, 3, B, Tc, D, 0);

    /* post-LN layers: x = LN(x + attn(x)); x = LN(x + MLP(x)) */
    char name[64];
    for (int i = 0; i < c->layers && st == CLXP_OK; i++) {
        const clap_text_layer *l = &m->tlayers[i];
        if ((st = nn_linear_m(&l->qkv, x, rows, l->qkv_b, qkv, 0, err)) != CLXP_OK) break;
        nn_attention(qkv, B, Tc, D, c->heads, 0, km, att, work);
        if ((st = nn_linear_m(&l->o, att, rows, l->o_b, h, 0, err)) != CLXP_OK) break;
        for (size_t k = 0; k < (size_t)rows * D; k++) h[k] += x[k];
        nn_layernorm(h, rows, D, l->ln1_w, l->ln1_b, (float)c->layer_norm_eps, x);
        if ((st = nn_linear_m(&l->fc1, x, rows, l->fc1_b, mlp, 0, err)) != CLXP_OK) break;
        nn_activation(mlp, (size_t)rows * I, act_of(c->hidden_act));
        if ((st = nn_linear_m(&l->fc2, mlp, rows, l->fc2_b, h, 0, err)) != CLXP_OK) break;
        for (size_t k = 0; k < (size_t)rows * D; k++) h[k] += x[k];
        nn_layernorm(h, rows, D, l->ln2_w, l->ln2_b, (float)c->layer_norm_eps, x);
        snprintf(name, sizeof name, "text.hidden_states.%d", i + 1);
        emit(hook, ctx, name, x, 3, B, Tc, D, 0);
    }
    free(km);
    if (st != CLXP_OK) return st;
    emit(hook, ctx, "text.last_hidden_state", x, 3, B, Tc, D, 0);

    /* pooler: tanh(dense(h[:, 0])) */
    float *first = small, *pooled = small + (size_t)B * D, *hid = small + (size_t)2 * B * D;
    for (int b = 0; b < B; b++) memcpy(first + (size_t)b * D, x + (size_t)b * Tc * D, (size_t)D * sizeof *first);
    if ((st = nn_linear(first, B, D, m->pool_w, m->pool_b, D, pooled, 0, err)) != CLXP_OK) return st;
    for (size_t k = 0; k < (size_t)B * D; k++) pooled[k] = tanhf(pooled[k]);
    emit(hook, ctx, "text.pooled_output", pooled, 2, B, D, 0, 0);
    st = projection(m, pooled, B, D, m->tproj1_w, m->tproj1_b, m->tproj2_w, m->tproj2_b, hid, embeds, err);
    if (st == CLXP_OK) emit(hook, ctx, "text_embeds_unnormalized", embeds, 2, B, m->cfg.projection_dim, 0, 0);
    return st;
}
