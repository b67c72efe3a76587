#include "models/clip.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/gemm.h"
#include "nn/ops.h"
#include "util/error.h"

/* ---- loading ---------------------------------------------------------------------------------------- */

typedef struct {
    clip_model *m;
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

static clxp_status load_layers(loader *L, const char *prefix, const clip_tower_config *c, clip_layer **out) {
    const int64_t D = c->hidden, F = c->mlp;
    clip_layer *ls = calloc((size_t)c->layers, sizeof *ls);
    if (!ls) return clxp_err_set(L->err, CLXP_ERR_NOMEM, "out of memory");
    *out = ls;
    for (int i = 0; i < c->layers && L->st == CLXP_OK; i++) {
        clip_layer *l = &ls[i];
        const char *p = prefix;
        l->ln1_w = get(L, D1(D), "%s.encoder.layers.%d.layer_norm1.weight", p, i);
        l->ln1_b = get(L, D1(D), "%s.encoder.layers.%d.layer_norm1.bias", p, i);
        l->ln2_w = get(L, D1(D), "%s.encoder.layers.%d.layer_norm2.weight", p, i);
        l->ln2_b = get(L, D1(D), "%s.encoder.layers.%d.layer_norm2.bias", p, i);
        l->q_w = get(L, D2(D, D), "%s.encoder.layers.%d.self_attn.q_proj.weight", p, i);
        const float *qb = get(L, D1(D), "%s.encoder.layers.%d.self_attn.q_proj.bias", p, i);
        l->k_w = get(L, D2(D, D), "%s.encoder.layers.%d.self_attn.k_proj.weight", p, i);
        const float *kb = get(L, D1(D), "%s.encoder.layers.%d.self_attn.k_proj.bias", p, i);
        l->v_w = get(L, D2(D, D), "%s.encoder.layers.%d.self_attn.v_proj.weight", p, i);
        const float *vb = get(L, D1(D), "%s.encoder.layers.%d.self_attn.v_proj.bias", p, i);
        l->o = nn_matrix_plain(get(L, D2(D, D), "%s.encoder.layers.%d.self_attn.out_proj.weight", p, i), D, D);
        l->o_b = get(L, D1(D), "%s.encoder.layers.%d.self_attn.out_proj.bias", p, i);
        l->fc1 = nn_matrix_plain(get(L, D2(F, D), "%s.encoder.layers.%d.mlp.fc1.weight", p, i), F, D);
        l->fc1_b = get(L, D1(F), "%s.encoder.layers.%d.mlp.fc1.bias", p, i);
        l->fc2 = nn_matrix_plain(get(L, D2(D, F), "%s.encoder.layers.%d.mlp.fc2.weight", p, i), D, F);
        l->fc2_b = get(L, D1(D), "%s.encoder.layers.%d.mlp.fc2.bias", p, i);
        if (L->st != CLXP_OK) break;
        /* q|k|v biases side by side: one [3D] row added to the [rows, 3D] product */
        l->qkv_b = malloc(3 * (size_t)D * sizeof(float));
        if (!l->qkv_b) return L->st = clxp_err_set(L->err, CLXP_ERR_NOMEM, "out of memory");
        memcpy(l->qkv_b, qb, (size_t)D * sizeof(float));
        memcpy(l->qkv_b + D, kb, (size_t)D * sizeof(float));
        memcpy(l->qkv_b + 2 * D, vb, (size_t)D * sizeof(float));
        l->qkv = nn_matrix_plain(NULL, 3 * (int)D, (int)D);
    }
    return L->st;
}

static void free_layers(clip_layer *ls, int n) {
    if (!ls) return;
    for (int i = 0; i < n; i++) {
        free(ls[i].qkv_b);
        nn_matrix_release(&ls[i].qkv);
        nn_matrix_release(&ls[i].o);
        nn_matrix_release(&ls[i].fc1);
        nn_matrix_release(&ls[i].fc2);
    }
    free(ls);
}

/* Buffers that HF checkpoints carry but the forward pass does not need. */
static int ignorable(const char *name) {
    size_t n = strlen(name);
    const char *suffix = ".position_ids";
    size_t s = strlen(suffix);
    return n >= s && strcmp(name + n - s, suffix) == 0;
}

clxp_status clip_model_load(const char *dir, clip_model **out, clxp_error *err) {
    return clip_model_load_weights(dir, NULL, out, err);
}

clxp_status clip_model_load_weights(const char *dir, weights *w, clip_model **out, clxp_error *err) {
    *out = NULL;
    clip_model *m = calloc(1, sizeof *m);
    if (!m) {
        weights_free(w);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    m->w = w;
    char cfg_path[4096];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    clxp_status st = clip_config_load(cfg_path, &m->cfg, err);
    if (st == CLXP_OK && !m->w) st = weights_open_dir(dir, &m->w, err);
    if (st != CLXP_OK) {
        clip_model_free(m);
        return st;
    }
    const clip_config *c = &m->cfg;
    loader L = {m, err, CLXP_OK};
    const int64_t Dv = c->vision.hidden, Dt = c->text.hidden, P = c->patch_size, Pj = c->projection_dim;
    const int64_t grid = c->image_size / c->patch_size, npos = grid * grid + 1;

    m->patch = nn_matrix_plain(get(&L, D4(Dv, c->num_channels, P, P), "vision_model.embeddings.patch_embedding.weight"),
                               (int)Dv, (int)(c->num_channels * P * P));
    m->class_emb = get(&L, D1(Dv), "vision_model.embeddings.class_embedding");
    m->vpos = get(&L, D2(npos, Dv), "vision_model.embeddings.position_embedding.weight");
    m->pre_ln_w = get(&L, D1(Dv), "vision_model.pre_layrnorm.weight");
    m->pre_ln_b = get(&L, D1(Dv), "vision_model.pre_layrnorm.bias");
    m->post_ln_w = get(&L, D1(Dv), "vision_model.post_layernorm.weight");
    m->post_ln_b = get(&L, D1(Dv), "vision_model.post_layernorm.bias");
    m->vproj = nn_matrix_plain(get(&L, D2(Pj, Dv), "visual_projection.weight"), (int)Pj, (int)Dv);
    if (L.st == CLXP_OK) load_layers(&L, "vision_model", &c->vision, &m->vlayers);

    m->tok_emb = get(&L, D2(c->vocab_size, Dt), "text_model.embeddings.token_embedding.weight");
    m->tpos = get(&L, D2(c->context_length, Dt), "text_model.embeddings.position_embedding.weight");
    m->final_ln_w = get(&L, D1(Dt), "text_model.final_layer_norm.weight");
    m->final_ln_b = get(&L, D1(Dt), "text_model.final_layer_norm.bias");
    m->tproj = nn_matrix_plain(get(&L, D2(Pj, Dt), "text_projection.weight"), (int)Pj, (int)Dt);
    if (L.st == CLXP_OK) load_layers(&L, "text_model", &c->text, &m->tlayers);

    /* a scalar, stored as shape [] or [1] depending on the exporter */
    const st_tensor *lt = L.st == CLXP_OK ? weights_find(m->w, "logit_scale") : NULL;
    const float *ls = lt && lt->ndim == 1 ? get(&L, D1(1), "logit_scale") : get(&L, NULL, 0, "logit_scale");
    if (L.st == CLXP_OK) {
        m->logit_scale = ls[0];
        if (!isfinite(m->logit_scale) || m->logit_scale > 100.0f)
            L.st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: logit_scale %g is not a usable value",
                                weights_source(m->w), (double)m->logit_scale);
    }
    if (L.st == CLXP_OK) L.st = weights_check_unused(m->w, ignorable, err);
    if (L.st != CLXP_OK) {
        clip_model_free(m);
        return L.st;
    }
    *out = m;
    return CLXP_OK;
}

void clip_model_free(clip_model *m) {
    if (!m) return;
    free_layers(m->vlayers, m->cfg.vision.layers);
    free_layers(m->tlayers, m->cfg.text.layers);
    nn_matrix_release(&m->patch);
    nn_matrix_release(&m->vproj);
    nn_matrix_release(&m->tproj);
    nn_engine_free(m->eng);
    weights_free(m->w);
    free(m->arena);
    free(m);
}

/* Packs layer by layer, releasing the file's pages after each (the fp32 weights never all stay resident beside the
 * packed ones). */
static clxp_status pack_layers(clip_layer *ls, int n, weights *w, const nn_engine *e, nn_precision prec,
                               clxp_error *err) {
    clxp_status st = CLXP_OK;
    for (int i = 0; i < n && st == CLXP_OK; i++) {
        clip_layer *l = &ls[i];
        /* q | k | v concatenated for one layer at a time, packed as one matrix */
        const size_t dd = (size_t)l->o.N * (size_t)l->o.K;
        float *qkv = malloc(3 * dd * sizeof *qkv);
        if (!qkv) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
        memcpy(qkv, l->q_w, dd * sizeof *qkv);
        memcpy(qkv + dd, l->k_w, dd * sizeof *qkv);
        memcpy(qkv + 2 * dd, l->v_w, dd * sizeof *qkv);
        l->qkv.f32 = qkv;
        st = nn_matrix_pack(&l->qkv, e, prec, err);
        l->qkv.f32 = NULL;
        free(qkv);
        nn_matrix *mats[3] = {&l->o, &l->fc1, &l->fc2};
        for (int j = 0; j < 3 && st == CLXP_OK; j++) st = nn_matrix_pack(mats[j], e, prec, err);
        if (st == CLXP_OK) weights_release_pages(w);
    }
    return st;
}

clxp_status clip_model_pack(clip_model *m, nn_precision prec, clxp_error *err) {
    if (m->packed) return clxp_err_set(err, CLXP_ERR_INTERNAL, "clip_model_pack: already packed");
    clxp_status st = nn_engine_create(&m->eng, err);
    if (st == CLXP_OK) st = pack_layers(m->vlayers, m->cfg.vision.layers, m->w, m->eng, prec, err);
    if (st == CLXP_OK) st = pack_layers(m->tlayers, m->cfg.text.layers, m->w, m->eng, prec, err);
    if (st == CLXP_OK) st = nn_matrix_pack(&m->patch, m->eng, prec, err);
    if (st == CLXP_OK) st = nn_matrix_pack(&m->vproj, m->eng, prec, err);
    if (st == CLXP_OK) st = nn_matrix_pack(&m->tproj, m->eng, prec, err);
    if (st != CLXP_OK) return st;
    m->packed = 1;
    m->prec = prec;
    weights_release_pages(m->w);
    return CLXP_OK;
}

/* ---- forward ---------------------------------------------------------------------------------------- */

typedef struct {
    float *x, *h, *qkv, *att, *mlp, *work, *extra;
} buffers;

/* Carve the activation buffers for rows x width out of the model's arena (grown if needed). */
static clxp_status get_buffers(clip_model *m, int rows, int D, int F, int T, size_t extra, buffers *b,
                               clxp_error *err) {
    size_t r = (size_t)rows;
    size_t sizes[7] = {r * D, r * D, r * 3 * D, r * D, r * F, nn_attention_work_size(rows / T, T, 1), extra};
    size_t total = 0;
    for (int i = 0; i < 7; i++) total += (sizes[i] + 15) & ~(size_t)15; /* keep each buffer 64-byte aligned */
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
    float **dst[7] = {&b->x, &b->h, &b->qkv, &b->att, &b->mlp, &b->work, &b->extra};
    for (int i = 0; i < 7; i++) {
        *dst[i] = p;
        p += (sizes[i] + 15) & ~(size_t)15;
    }
    return CLXP_OK;
}

static void emit(clip_hook hook, void *ctx, const char *name, const float *data, int ndim, int64_t d0, int64_t d1,
                 int64_t d2) {
    if (!hook) return;
    int64_t shape[3] = {d0, d1, d2};
    hook(ctx, name, data, ndim, shape);
}

static nn_act act_of(clip_act a) { return a == CLIP_ACT_GELU ? NN_ACT_GELU : NN_ACT_QUICK_GELU; }

/* qkv[rows, 3D] = h q|k|v^T + biases: one packed GEMM, or (unpacked) three sgemm into the strided columns. */
static clxp_status qkv_projection(const clip_layer *l, const float *h, int rows, int D, float *qkv, clxp_error *err) {
    if (l->qkv.packed) return nn_linear_m(&l->qkv, h, rows, l->qkv_b, qkv, 0, err);
    const float *w[3] = {l->q_w, l->k_w, l->v_w};
    for (int j = 0; j < 3; j++) {
        clxp_status st = nn_gemm('N', 'T', rows, D, D, 1.0f, h, D, w[j], D, 0.0f, qkv + (size_t)j * D, 3 * D, err);
        if (st != CLXP_OK) return st;
    }
    nn_add_bias(qkv, rows, 3 * D, l->qkv_b);
    return CLXP_OK;
}

/* The pre-LN transformer encoder shared by both towers: x [B*T, D] is updated in place. */
static clxp_status encoder(const clip_layer *layers, const clip_tower_config *c, const buffers *b, int B, int T,
                           int causal, const int *key_mask, const char *tower, clip_hook hook, void *ctx,
                           clxp_error *err) {
    const int D = c->hidden, F = c->mlp, rows = B * T;
    clxp_status st = CLXP_OK;
    for (int i = 0; i < c->layers && st == CLXP_OK; i++) {
        const clip_layer *l = &layers[i];
        nn_layernorm(b->x, rows, D, l->ln1_w, l->ln1_b, (float)c->ln_eps, b->h);
        st = qkv_projection(l, b->h, rows, D, b->qkv, err);
        if (st != CLXP_OK) break;
        nn_attention(b->qkv, B, T, D, c->heads, causal, key_mask, b->att, b->work);
        st = nn_linear_m(&l->o, b->att, rows, l->o_b, b->x, 1, err); /* x += attn */
        if (st != CLXP_OK) break;
        nn_layernorm(b->x, rows, D, l->ln2_w, l->ln2_b, (float)c->ln_eps, b->h);
        st = nn_linear_m(&l->fc1, b->h, rows, l->fc1_b, b->mlp, 0, err);
        if (st != CLXP_OK) break;
        nn_activation(b->mlp, (size_t)rows * F, act_of(c->act));
        st = nn_linear_m(&l->fc2, b->mlp, rows, l->fc2_b, b->x, 1, err); /* x += mlp */
        if (hook && st == CLXP_OK) {
            char name[64];
            snprintf(name, sizeof name, "%s.hidden_states.%d", tower, i + 1);
            emit(hook, ctx, name, b->x, 3, B, T, D);
        }
    }
    return st;
}

clxp_status clip_encode_pixels(clip_model *m, const float *pixels, int B, float *embeds, clip_hook hook, void *ctx,
                               clxp_error *err) {
    const clip_config *c = &m->cfg;
    const int D = c->vision.hidden, P = c->patch_size, S = c->image_size, C = c->num_channels;
    const int g = S / P, N = g * g, T = N + 1, K = C * P * P;
    if (B <= 0) return CLXP_OK;
    buffers b;
    /* extra: im2col patches [B*N, K] and patch embeddings [B*N, D] */
    size_t extra = (size_t)B * N * K + (size_t)B * N * D;
    clxp_status st = get_buffers(m, B * T, D, c->vision.mlp, T, extra, &b, err);
    if (st != CLXP_OK) return st;
    float *cols = b.extra, *pe = b.extra + (size_t)B * N * K;

    /* im2col: patch (py, px) row-major; inside a patch the (channel, ky, kx) order of the conv weight. */
#pragma omp parallel for collapse(2) schedule(static)
    for (int bi = 0; bi < B; bi++)
        for (int p = 0; p < N; p++) {
            int py = p / g, px = p % g;
            float *dst = cols + ((size_t)bi * N + p) * K;
            for (int ch = 0; ch < C; ch++)
                for (int ky = 0; ky < P; ky++) {
                    const float *src = pixels + (((size_t)bi * C + ch) * S + (size_t)py * P + ky) * S + (size_t)px * P;
                    memcpy(dst + ((size_t)ch * P + ky) * P, src, (size_t)P * sizeof(float));
                }
        }
    st = nn_linear_m(&m->patch, cols, B * N, NULL, pe, 0, err);
    if (st != CLXP_OK) return st;
    /* [CLS, patches] + positions */
    for (int bi = 0; bi < B; bi++) {
        float *x0 = b.x + (size_t)bi * T * D;
        for (int j = 0; j < D; j++) x0[j] = m->class_emb[j] + m->vpos[j];
        for (int p = 0; p < N; p++) {
            float *xr = x0 + (size_t)(p + 1) * D;
            const float *src = pe + ((size_t)bi * N + p) * D, *pos = m->vpos + (size_t)(p + 1) * D;
            for (int j = 0; j < D; j++) xr[j] = src[j] + pos[j];
        }
    }
    emit(hook, ctx, "vision.embeddings", b.x, 3, B, T, D);
    nn_layernorm(b.x, B * T, D, m->pre_ln_w, m->pre_ln_b, (float)c->vision.ln_eps, b.x);
    emit(hook, ctx, "vision.hidden_states.0", b.x, 3, B, T, D);
    st = encoder(m->vlayers, &c->vision, &b, B, T, 0, NULL, "vision", hook, ctx, err);
    if (st != CLXP_OK) return st;
    /* pooled = post_layernorm(CLS) */
    float *pooled = b.h;
    for (int bi = 0; bi < B; bi++)
        memcpy(pooled + (size_t)bi * D, b.x + (size_t)bi * T * D, (size_t)D * sizeof(float));
    nn_layernorm(pooled, B, D, m->post_ln_w, m->post_ln_b, (float)c->vision.ln_eps, pooled);
    emit(hook, ctx, "vision.pooled_output", pooled, 2, B, D, 0);
    st = nn_linear_m(&m->vproj, pooled, B, NULL, embeds, 0, err);
    if (st == CLXP_OK) emit(hook, ctx, "image_embeds_unnormalized", embeds, 2, B, c->projection_dim, 0);
    return st;
}

int clip_pooled_index(const clip_config *c, const int32_t *ids, int T) {
    int best = 0;
    if (c->eos_token_id == 2) { /* legacy configs: argmax of the ids (first maximum) */
        for (int t = 1; t < T; t++)
            if (ids[t] > ids[best]) best = t;
        return best;
    }
    for (int t = 0; t < T; t++)
        if (ids[t] == c->eos_token_id) return t;
    return 0; /* no EOS: (ids == eos).argmax() is 0 in the reference */
}

clxp_status clip_encode_tokens(clip_model *m, const int32_t *ids, const int32_t *mask, int B, int T, int full,
                               float *embeds, clip_hook hook, void *ctx, clxp_error *err) {
    const clip_config *c = &m->cfg;
    const int D = c->text.hidden;
    if (B <= 0) return CLXP_OK;
    if (T <= 0 || T > c->context_length)
        return clxp_err_set(err, CLXP_ERR_INVALID, "token sequence length %d outside [1, %d]", T, c->context_length);
    for (size_t i = 0; i < (size_t)B * T; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return clxp_err_set(err, CLXP_ERR_INVALID, "token id %d outside the vocabulary (%d)", ids[i],
                                c->vocab_size);
    int *pool = malloc((size_t)B * sizeof *pool);
    int *km = malloc((size_t)B * T * sizeof *km);
    if (!pool || !km) {
        free(pool);
        free(km);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    /* Positions after the pooled one cannot influence it (causal attention): compute up to Tc only. */
    int Tc = 1;
    for (int bi = 0; bi < B; bi++) {
        pool[bi] = clip_pooled_index(c, ids + (size_t)bi * T, T);
        if (pool[bi] + 1 > Tc) Tc = pool[bi] + 1;
    }
    if (full) Tc = T;
    buffers b;
    clxp_status st = get_buffers(m, B * Tc, D, c->text.mlp, Tc, (size_t)B * D, &b, err);
    if (st == CLXP_OK) {
        for (int bi = 0; bi < B; bi++)
            for (int t = 0; t < Tc; t++) {
                const int32_t id = ids[(size_t)bi * T + t];
                const float *te = m->tok_emb + (size_t)id * D, *pe = m->tpos + (size_t)t * D;
                float *xr = b.x + ((size_t)bi * Tc + t) * D;
                for (int j = 0; j < D; j++) xr[j] = te[j] + pe[j];
                km[(size_t)bi * Tc + t] = mask ? mask[(size_t)bi * T + t] != 0 : 1;
            }
        emit(hook, ctx, "text.hidden_states.0", b.x, 3, B, Tc, D);
        st = encoder(m->tlayers, &c->text, &b, B, Tc, 1, km, "text", hook, ctx, err);
    }
    if (st == CLXP_OK) {
        if (hook) { /* final LN at every position, only to observe it */
            nn_layernorm(b.x, B * Tc, D, m->final_ln_w, m->final_ln_b, (float)c->text.ln_eps, b.h);
            emit(hook, ctx, "text.last_hidden_state", b.h, 3, B, Tc, D);
        }
        float *pooled = b.extra;
        for (int bi = 0; bi < B; bi++)
            memcpy(pooled + (size_t)bi * D, b.x + ((size_t)bi * Tc + pool[bi]) * D, (size_t)D * sizeof(float));
        nn_layernorm(pooled, B, D, m->final_ln_w, m->final_ln_b, (float)c->text.ln_eps, pooled);
        emit(hook, ctx, "text.pooled_output", pooled, 2, B, D, 0);
        st = nn_linear_m(&m->tproj, pooled, B, NULL, embeds, 0, err);
        if (st == CLXP_OK) emit(hook, ctx, "text_embeds_unnormalized", embeds, 2, B, c->projection_dim, 0);
    }
    free(pool);
    free(km);
    return st;
}
