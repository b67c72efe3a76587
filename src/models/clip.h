/* CLIP image and text towers (Hugging Face CLIPModel numerics, transformers 4.40):
 * vision: patch conv as a GEMM, CLS + positions, pre-LN, pre-LN encoder layers, post-LN on CLS, projection;
 * text: token + position embeddings, causal (+ padding) masked encoder, final LN, pooling at the first EOS
 * (or argmax of the ids for legacy configs with eos_token_id == 2), projection. */
#ifndef CLXP_MODELS_CLIP_H
#define CLXP_MODELS_CLIP_H

#include <stdint.h>

#include "clxp.h"
#include "io/clip_config.h"
#include "io/weights.h"
#include "nn/gemm.h"

/* Observes intermediate tensors (named as in the golden files, e.g. "vision.hidden_states.3"); for tests
 * and debugging. data is only valid during the call. */
typedef void (*clip_hook)(void *ctx, const char *name, const float *data, int ndim, const int64_t *shape);

typedef struct clip_layer {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    const float *q_w, *k_w, *v_w; /* the three [D, D] projections as loaded */
    float *qkv_b;                 /* their biases concatenated [3D] (owned) */
    nn_matrix qkv;                /* packed: q | k | v as one [3D, D] matrix (unpacked: unused, three GEMMs) */
    nn_matrix o, fc1, fc2;
    const float *o_b, *fc1_b, *fc2_b;
} clip_layer;

typedef struct clip_model {
    clip_config cfg;
    weights *w;
    /* vision */
    nn_matrix patch, vproj; /* patch conv as a [D, C*P*P] matrix; visual projection */
    const float *class_emb, *vpos, *pre_ln_w, *pre_ln_b, *post_ln_w, *post_ln_b;
    clip_layer *vlayers;
    /* text */
    const float *tok_emb, *tpos, *final_ln_w, *final_ln_b;
    nn_matrix tproj;
    clip_layer *tlayers;
    float logit_scale; /* raw (log space) */
    nn_engine *eng;    /* set by clip_model_pack */
    int packed;        /* 0: plain fp32 weights (dnnl_sgemm); 1: packed in `prec` */
    nn_precision prec;
    /* activation arena, grown to the largest batch shape seen */
    float *arena;
    size_t arena_cap;
} clip_model;

/* Load config.json and the weights of a CLIP directory; every tensor is shape-checked. */
clxp_status clip_model_load(const char *dir, clip_model **out, clxp_error *err);
/* The same with the weights already in hand (w != NULL: taken over, freed on failure too; NULL: opened from dir),
 * e.g. a checkpoint mapped to Hugging Face names by io/checkpoint.h. */
clxp_status clip_model_load_weights(const char *dir, weights *w, clip_model **out, clxp_error *err);
void clip_model_free(clip_model *m);

/* Pack every linear weight of both towers once, in fp32 or bf16 (see nn/gemm.h); the fp32 copies the model made
 * are freed and the file's pages released. Called once after loading (the golden tests also run unpacked). */
clxp_status clip_model_pack(clip_model *m, nn_precision prec, clxp_error *err);

/* pixels: [B, 3, S, S] preprocessed; embeds: [B, projection_dim] unnormalised projections. */
clxp_status clip_encode_pixels(clip_model *m, const float *pixels, int B, float *embeds, clip_hook hook, void *ctx,
                               clxp_error *err);

/* ids, mask: [B, T] (T <= context length). embeds: [B, projection_dim] unnormalised.
 * full = 0 computes positions up to the last pooled one only (later positions cannot change the result,
 * the tower is causal); full = 1 computes all T positions (to observe every hidden state). */
clxp_status clip_encode_tokens(clip_model *m, const int32_t *ids, const int32_t *mask, int B, int T, int full,
                               float *embeds, clip_hook hook, void *ctx, clxp_error *err);

/* Position whose hidden state is pooled for one sequence of length T. */
int clip_pooled_index(const clip_config *c, const int32_t *ids, int T);

#endif
