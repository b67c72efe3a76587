/* What the API's own files share: the model handle's layout and internal entry points. Not public. */
#ifndef CLXP_API_INTERNAL_H
#define CLXP_API_INTERNAL_H

#include "clxp.h"
#include "media/preprocess.h"
#include "models/clip.h"
#include "text/tokenizer.h"

struct clxp_model {
    clip_model *clip;
    clxp_tokenizer *tok;
    clip_preproc_cfg pp; /* produces image_size x image_size inputs (checked at load) */
    clxp_model_info info;
    char *path;
    int n_threads;
};

/* Preprocessed pixels [B, 3, S, S] -> L2-normalised image embeddings [B, embed_dim]. */
clxp_status model_encode_pixels(clxp_model *m, const float *pixels, int B, float *out, clxp_error *err);

#endif
