/* LAION CLAP (Hugging Face ClapModel) configuration:
 *
 *   - config.json (ClapConfig with audio_config = ClapAudioConfig and text_config = ClapTextConfig). Every absent
 *     or null field takes the default of transformers 4.40.2 (configuration_clap.py); as ClapConfig.__init__ does,
 *     the top-level projection_dim and projection_hidden_act override the ones inside the two tower configs.
 *   - preprocessor_config.json (ClapFeatureExtractor): the keys its __init__ takes, with its defaults. As in
 *     transformers, nb_max_samples and nb_frequency_bins are derived (max_length_s * sampling_rate,
 *     fft_window_size / 2 + 1), whatever the file says; top_db is ignored by the extractor and so is it here.
 *
 * Only what the forward pass implements is accepted: anything else is refused with a one-line message naming the
 * file and the key (CLXP_ERR_UNSUPPORTED for a value transformers accepts but clxp does not implement, e.g.
 * overlapping patches or stage resolutions that are not multiples of the window; CLXP_ERR_INVALID for values
 * transformers itself cannot run; CLXP_ERR_FORMAT for wrong JSON types).
 */
#ifndef CLXP_IO_CLAP_CONFIG_H
#define CLXP_IO_CLAP_CONFIG_H

#include <stddef.h>

#include "clxp.h"

/* Most Swin stages accepted (HTSAT has 4). */
#define CLAP_MAX_STAGES 8

typedef enum clap_act { CLAP_ACT_GELU, CLAP_ACT_RELU, CLAP_ACT_QUICK_GELU } clap_act;

typedef struct clap_audio_config {
    int num_mel_bins;             /* 64: mel bins of the features = channels of the input BatchNorm */
    int spec_size;                /* 256: side of the square "image" the mel spectrogram is folded into */
    int patch_size;               /* 4: patch-embedding kernel (square) */
    int patch_stride[2];          /* [4, 4]: must equal patch_size (no overlap, no padding) */
    int patch_embeds_hidden_size; /* 96 (16 in the tiny models): width of stage 0 */
    int n_stages;                 /* len(depths) */
    int depths[CLAP_MAX_STAGES];
    int heads[CLAP_MAX_STAGES]; /* num_attention_heads per stage */
    int window_size;            /* 8 */
    double mlp_ratio;           /* 4.0: the MLP of a stage of width d has int(mlp_ratio * d) units */
    int qkv_bias;
    int hidden_size; /* 768: must equal patch_embeds_hidden_size * 2^(n_stages-1) */
    clap_act hidden_act;
    double layer_norm_eps; /* of the Swin blocks only; the other LayerNorms use PyTorch's 1e-5 */
    int enable_fusion;
    int enable_patch_layer_norm;
    int aff_block_r; /* channel reduction of the AFF block */
} clap_audio_config;

typedef struct clap_text_config {
    int vocab_size, hidden, layers, heads, intermediate;
    int max_position_embeddings, type_vocab_size;
    int pad_token_id, bos_token_id, eos_token_id;
    clap_act hidden_act;
    double layer_norm_eps;
} clap_text_config;

typedef struct clap_config {
    clap_audio_config audio;
    clap_text_config text;
    int projection_dim;
    clap_act projection_act;
} clap_config;

/* transformers 4.40.2 ClapConfig() defaults (HTSAT-base / RoBERTa-base sizes). */
void clap_config_defaults(clap_config *cfg);
/* Parse and validate config.json (model_type must be "clap" when present). */
clxp_status clap_config_load(const char *path, clap_config *cfg, clxp_error *err);
/* Same from a buffer; `what` names the source in messages. */
clxp_status clap_config_parse(const char *json, size_t len, const char *what, clap_config *cfg, clxp_error *err);
const char *clap_act_name(clap_act a);

/* Derived audio sizes. */
int clap_audio_freq_ratio(const clap_audio_config *a); /* spec_size / num_mel_bins */
int clap_audio_grid(const clap_audio_config *a);       /* spec_size / patch_stride: tokens per side at stage 0 */
int clap_audio_stage_dim(const clap_audio_config *a, int stage); /* patch_embeds_hidden_size * 2^stage */

/* ---- ClapFeatureExtractor (preprocessor_config.json) ------------------------------------------------------- */

typedef enum clap_truncation { CLAP_TRUNC_FUSION, CLAP_TRUNC_RAND_TRUNC } clap_truncation;
typedef enum clap_padding { CLAP_PAD_REPEATPAD, CLAP_PAD_REPEAT, CLAP_PAD_PAD } clap_padding;

/* Upper bounds keeping every derived size comfortably inside int arithmetic. */
#define CLAP_FE_MAX_RATE 768000
#define CLAP_FE_MAX_FFT 65536
#define CLAP_FE_MAX_MELS 1024
#define CLAP_FE_MAX_SAMPLES (1 << 26) /* nb_max_samples */

typedef struct clap_feature_config {
    int sampling_rate;          /* 48000 */
    int feature_size;           /* 64 mel bins */
    int fft_window_size;        /* 1024 (window length = frame length = FFT length) */
    int hop_length;             /* 480 */
    int nb_max_samples;         /* max_length_s * sampling_rate = 480000 */
    double frequency_min;       /* 0 (50 in the LAION checkpoints) */
    double frequency_max;       /* 14000 */
    clap_truncation truncation; /* "fusion" (default) or "rand_trunc" */
    clap_padding padding;       /* "repeatpad" (default), "repeat" or "pad"; the padding itself is always zeros
                                 * (np.pad with constant_values=0, padding_value is not used by transformers) */
} clap_feature_config;

void clap_feature_config_defaults(clap_feature_config *cfg);
/* Parse preprocessor_config.json. A missing file is CLXP_ERR_IO (the caller may fall back to the defaults). */
clxp_status clap_feature_config_load(const char *path, clap_feature_config *cfg, clxp_error *err);
clxp_status clap_feature_config_parse(const char *json, size_t len, const char *what, clap_feature_config *cfg,
                                      clxp_error *err);
const char *clap_truncation_name(clap_truncation t);

#endif
