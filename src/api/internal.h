/* What the API's own files share: the model handle's layout and internal entry points. Not public. */
#ifndef CLXP_API_INTERNAL_H
#define CLXP_API_INTERNAL_H

#include "clxp.h"
#include "media/audio_features.h"
#include "media/preprocess.h"
#include "models/clap.h"
#include "models/clip.h"
#include "text/tokenizer.h"

typedef enum model_kind { MODEL_CLIP, MODEL_CLAP } model_kind;

struct clxp_model {
    model_kind kind;
    clip_model *clip;    /* MODEL_CLIP */
    clip_preproc_cfg pp; /* CLIP: produces image_size x image_size inputs (checked at load) */
    clap_model *clap;    /* MODEL_CLAP */
    clap_fe *fe;         /* CLAP feature extractor */
    struct msclap_model *msclap; /* MODEL_CLAP from an MS-CLAP 2023 checkpoint (clap and fe are NULL then) */
    clxp_tokenizer *tok;
    int context, pad_id; /* text: tokens per prompt (CLIP: the context length; CLAP: 77, LAION's call) and pad */
    clxp_model_info info;
    char *path;
    char *format, *format_detail, *weights_file; /* where the model came from (io/checkpoint.h) */
    int n_threads;
    const char *user_tokenizer; /* during loading only: --tokenizer for a HF directory (not owned) */
    char id[17]; /* identity for saved label banks: FNV-1a 64 of config.json, text projection, logit scale (hex) */
};

/* CLAP: features [B, C, frames, mels] -> L2-normalised audio embeddings [B, embed_dim]. */
clxp_status model_encode_features(clxp_model *m, const float *features, const int *is_longer, int B, float *out,
                                  clxp_error *err);

/* Audio models (LAION CLAP or MS-CLAP): floats of one window's features, samples per window, and the features of
 * one window of samples (n <= the window; is_longer may be NULL). */
size_t model_audio_input_size(const clxp_model *m);
size_t model_audio_window(const clxp_model *m);
clxp_status model_audio_features(const clxp_model *m, const float *samples, size_t n, float *features, int *is_longer,
                                  clxp_error *err);

/* Preprocessed pixels [B, 3, S, S] -> L2-normalised image embeddings [B, embed_dim]. */
clxp_status model_encode_pixels(clxp_model *m, const float *pixels, int B, float *out, clxp_error *err);

/* 1 if the bank was made by model m (its identity and embedding size), else 0. */
int labelbank_fits(const clxp_labelbank *b, const clxp_model *m);

#endif
