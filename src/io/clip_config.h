/* CLIP model configuration from a Hugging Face config.json (CLIPConfig). Every absent field takes the
 * default transformers' CLIPConfig / CLIPTextConfig / CLIPVisionConfig give it. */
#ifndef CLXP_IO_CLIP_CONFIG_H
#define CLXP_IO_CLIP_CONFIG_H

#include <stddef.h>

#include "clxp.h"

typedef enum clip_act { CLIP_ACT_QUICK_GELU, CLIP_ACT_GELU } clip_act;

typedef struct clip_tower_config {
    int hidden, layers, heads, mlp;
    clip_act act;
    double ln_eps;
} clip_tower_config;

typedef struct clip_config {
    clip_tower_config vision, text;
    int image_size, patch_size, num_channels;
    int vocab_size, context_length; /* max_position_embeddings */
    int eos_token_id, bos_token_id, pad_token_id;
    int projection_dim;
} clip_config;

/* Fill cfg with transformers' defaults (ViT-B/32). */
void clip_config_defaults(clip_config *cfg);
/* Parse and validate config.json at path. Messages name the file and the offending key. */
clxp_status clip_config_load(const char *path, clip_config *cfg, clxp_error *err);
/* Same from a buffer of len bytes (need not be NUL-terminated); `what` names the source in messages. */
clxp_status clip_config_parse(const char *json, size_t len, const char *what, clip_config *cfg, clxp_error *err);
const char *clip_act_name(clip_act a);

#endif
