/* Hugging Face preprocessor_config.json (CLIPImageProcessor / the older CLIPFeatureExtractor) → clip_preproc_cfg.
 *
 * Keys read: size ({"shortest_edge": N}, {"height": H, "width": W}, a plain int = shortest edge, or [H, W]),
 * crop_size ({"height": H, "width": W}, a plain int = square, or [H, W]), do_resize, do_center_crop, do_rescale,
 * rescale_factor, do_normalize, image_mean, image_std (3 numbers or one number for all channels), resample,
 * do_convert_rgb. Absent or null keys take CLIPImageProcessor.__init__'s defaults (224, 224x224, true, 1/255,
 * OpenAI mean/std, bicubic), as transformers does. "longest_edge" in size is ignored (CLIP's resize ignores it).
 * Other keys (image_processor_type, ...) are ignored.
 *
 * Errors name the file and the key: wrong JSON types → CLXP_ERR_FORMAT; out-of-range values (sizes outside
 * 1..CLIP_PREPROC_MAX_SIZE, std <= 0, rescale_factor <= 0) → CLXP_ERR_INVALID; resample other than 3 (PIL
 * BICUBIC: 0 nearest, 1 lanczos, 2 bilinear, 4 box, 5 hamming) → CLXP_ERR_UNSUPPORTED.
 * do_convert_rgb = false is accepted but has no effect: decoded images are always RGB.
 */
#ifndef CLXP_IO_PREPROCESSOR_CONFIG_H
#define CLXP_IO_PREPROCESSOR_CONFIG_H

#include <stddef.h>

#include "clxp.h"
#include "media/preprocess.h"

/* OpenAI CLIP normalisation constants (transformers OPENAI_CLIP_MEAN / OPENAI_CLIP_STD). */
#define CLIP_OPENAI_MEAN_R 0.48145466
#define CLIP_OPENAI_MEAN_G 0.4578275
#define CLIP_OPENAI_MEAN_B 0.40821073
#define CLIP_OPENAI_STD_R 0.26862954
#define CLIP_OPENAI_STD_G 0.26130258
#define CLIP_OPENAI_STD_B 0.27577711

/* CLIPImageProcessor defaults with size.shortest_edge = crop = image_size: what to use when a model directory
 * has no preprocessor_config.json (image_size from the vision config). */
void clip_preproc_cfg_defaults(clip_preproc_cfg *cfg, int image_size);

/* Parse the file at path. A missing file is CLXP_ERR_IO (the caller decides whether to fall back to defaults). */
clxp_status clip_preproc_cfg_load(const char *path, clip_preproc_cfg *cfg, clxp_error *err);

/* Parse a JSON document (len bytes); `what` names it in messages. */
clxp_status clip_preproc_cfg_parse(const char *json, size_t len, const char *what, clip_preproc_cfg *cfg,
                                   clxp_error *err);

#endif
