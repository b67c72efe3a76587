/* LAION CLAP, Hugging Face ClapModel numerics (transformers 4.40.2 models/clap/modeling_clap.py), float32.
 *
 * Audio tower (HTSAT, ClapAudioEncoder.forward), on input_features [B, C, T, mels] (C = 4 with fusion, else 1):
 *   1. BatchNorm over the mel bins, eval mode (running statistics);
 *   2. reshape_mel2img: time T -> spec_size * freq_ratio (1001 -> 1024) with bicubic align_corners=True
 *      (PyTorch cubic A = -0.75, clamped border indices), then folded to a spec_size x spec_size image whose row
 *      chunk * mels + mel_bin, column t holds frame chunk * spec_size + t;
 *   3. patch embedding: Conv2d(1 -> D0, kernel = stride = patch) as a GEMM; fused models: for clips with
 *      is_longer, channels 1..3 through mel_conv2d (kernel (p, 3p)), side by side, zero-padded to the width, and
 *      the attentional feature fusion (ClapAudioAFFBlock, BatchNorms in eval mode) with channel 0; LayerNorm;
 *   4. Swin stages (ClapAudioStage): pre-LN blocks, (shifted) window attention with relative position bias and
 *      the -100 shift mask, MLP with the configured activation; patch merging (2x2 concat in the order
 *      (0,0), (1,0), (0,1), (1,1), LayerNorm, Linear without bias) after every stage but the last;
 *   5. final LayerNorm, mean over the tokens, projection Linear -> ReLU -> Linear (ClapProjectionLayer).
 * Text tower (RoBERTa, ClapTextModel): positions pad + cumsum(id != pad) for real tokens and pad for padding
 * (create_position_ids_from_input_ids), word + token type 0 + position embeddings, LayerNorm, post-LN encoder
 * layers with padding-masked attention (scores / sqrt(head_dim)), tanh pooler on the first token, projection.
 * Scores: embeddings L2-normalised; logits_per_audio = exp(logit_scale_a) audio . text,
 * logits_per_text = exp(logit_scale_t) text . audio (two different scales).
 *
 * LayerNorm eps: the Swin blocks use audio_config.layer_norm_eps, the text tower text_config.layer_norm_eps; the
 * patch-embedding, patch-merging and final audio LayerNorms are plain nn.LayerNorm (1e-5), BatchNorms 1e-5.
 *
 * A model is used by one thread at a time (it owns its activation memory); the kernels use OpenMP inside.
 */
#ifndef CLXP_MODELS_CLAP_H
#define CLXP_MODELS_CLAP_H

#include <stdint.h>

#include "clxp.h"
#include "io/clap_config.h"
#include "io/weights.h"
#include "nn/gemm.h"
#include "nn/swin.h"

/* Observes intermediate tensors, named and laid out as in the golden files (e.g. "audio.hidden_states.2"
 * [B, C, H, W], "text.hidden_states.1" [B, T, D]); for tests and debugging. data is only valid during the call. */
typedef void (*clap_hook)(void *ctx, const char *name, const float *data, int ndim, const int64_t *shape);


/* An eval-mode BatchNorm folded into y = x * scale + shift (owned arrays). */
typedef struct clap_bn {
    float *scale, *shift;
} clap_bn;

/* One 1x1-conv branch of the AFF block: conv (D -> D/r) + BN + ReLU + conv (D/r -> D) + BN. */
typedef struct clap_aff_branch {
    const float *w1, *b1, *w2, *b2;
    clap_bn bn1, bn2;
} clap_aff_branch;

typedef struct clap_text_layer {
    float *qkv_w, *qkv_b; /* packed, owned */
    const float *o_w, *o_b, *ln1_w, *ln1_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b, *ln2_w, *ln2_b;
    nn_matrix qkv, o, fc1, fc2;
} clap_text_layer;

typedef struct clap_model {
    clap_config cfg;
    weights *w;
    /* audio */
    clap_bn in_bn; /* over the mel bins */
    const float *patch_w, *patch_b, *patch_ln_w, *patch_ln_b;
    nn_matrix patch;
    const float *mel_conv_w, *mel_conv_b; /* fusion only */
    clap_aff_branch aff_local, aff_global;
    swin_stage stages[CLAP_MAX_STAGES];
    const float *norm_w, *norm_b;
    const float *aproj1_w, *aproj1_b, *aproj2_w, *aproj2_b;
    /* text */
    const float *word_emb, *pos_emb, *type_emb, *emb_ln_w, *emb_ln_b;
    clap_text_layer *tlayers;
    const float *pool_w, *pool_b;
    const float *tproj1_w, *tproj1_b, *tproj2_w, *tproj2_b;
    float logit_scale_a, logit_scale_t; /* raw (log space) */
    nn_engine *eng; /* set by clap_model_pack */
    int packed;     /* 0: plain fp32 weights (dnnl_sgemm); 1: the matrices above packed in `prec` */
    nn_precision prec;
    /* activation arena, grown to the largest call seen */
    float *arena;
    size_t arena_cap;
} clap_model;

/* Load config.json and the weights of a ClapModel directory; every tensor is shape-checked, unknown tensors are
 * an error (the buffers position_ids, token_type_ids, num_batches_tracked and relative_position_index excepted;
 * a stored relative_position_index must match the one computed here). */
clxp_status clap_model_load(const char *dir, clap_model **out, clxp_error *err);
/* The same with the weights already in hand (w != NULL: taken over, freed on failure too; NULL: opened from dir). */
clxp_status clap_model_load_weights(const char *dir, weights *w, clap_model **out, clxp_error *err);
void clap_model_free(clap_model *m);

/* Pack the large linear weights of both towers (Swin blocks, patch merging and embedding, RoBERTa layers) once in
 * fp32 or bf16 (nn/gemm.h); the small ones (projections, pooler, fusion convolutions) stay plain fp32. */
clxp_status clap_model_pack(clap_model *m, nn_precision prec, clxp_error *err);

/* Frames the audio tower accepts at most (spec_size * freq_ratio = 1024); the feature extractor gives 1001. */
int clap_max_frames(const clap_model *m);

/* features: [B, C, T, mels] log-mel (C = 4 for a fused model, 1 otherwise; T <= clap_max_frames; mels =
 * num_mel_bins). is_longer: [B] flags (fused models: the clips that go through the fusion branch; may be NULL,
 * meaning none; ignored by unfused models). embeds: [B, projection_dim] unnormalised projections. */
clxp_status clap_encode_features(clap_model *m, const float *features, const int *is_longer, int B, int C, int T,
                                 float *embeds, clap_hook hook, void *ctx, clxp_error *err);

/* ids, mask: [B, T] (T <= max_position_embeddings - pad_token_id - 1), mask 1 on real tokens; every sequence needs
 * at least one. Only positions up to the last real token of the batch are computed: with the padding mask,
 * later positions cannot change the earlier ones, so the result is exact. embeds: [B, projection_dim]
 * unnormalised. Hidden states are observed as [B, T', D] with T' that computed length. */
clxp_status clap_encode_tokens(clap_model *m, const int32_t *ids, const int32_t *mask, int B, int T, float *embeds,
                               clap_hook hook, void *ctx, clxp_error *err);

/* exp of the learned logit scales (ClapModel.forward). */
float clap_logit_scale_audio(const clap_model *m);
float clap_logit_scale_text(const clap_model *m);

/* logits[i * P + j] = exp(logit_scale_a) * audio_i . text_j for L2-normalised rows of projection_dim floats
 * (logits_per_audio; zero-shot audio classification is its softmax over j). */
void clap_logits_per_audio(const clap_model *m, const float *audio, int B, const float *text, int P, float *logits);

#endif
