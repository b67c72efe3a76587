/* CLIP image preprocessing, bit-exact with transformers 4.40.2 CLIPImageProcessor on Pillow 9.4:
 *
 *   RGB uint8 --resize (Pillow BICUBIC, shortest edge or fixed size)--> uint8
 *             --centre crop (zero padding when the image is smaller)--> uint8
 *             --rescale (uint8 * factor in double, cast to float)--> --normalise ((x - mean) / std in float)-->
 *   float32 channels-first [3, H, W].
 *
 * The resize is Pillow's ImagingResample for 8-bit images: separable, horizontal pass first (only when the width
 * changes) into a uint8 intermediate, then the vertical pass (only when the height changes); Keys cubic a = -0.5,
 * support scaled by the downscale factor (antialiasing), weights normalised and rounded to 22-bit fixed point.
 * Only the pixels inside the crop window are computed unless the full resized image is asked for (debug).
 */
#ifndef CLXP_MEDIA_PREPROCESS_H
#define CLXP_MEDIA_PREPROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "clxp.h"

/* Largest size / crop side accepted in a configuration. */
#define CLIP_PREPROC_MAX_SIZE 8192
/* Largest image (in pixels) that is stored: the output without a centre crop, the debug resized image. With a
 * crop only the crop window of the resized image is computed, whatever the resized size. */
#define CLIP_PREPROC_MAX_PIXELS ((int64_t)1 << 28)

/* PIL resampling codes as stored in preprocessor_config.json ("resample"). */
#define CLIP_RESAMPLE_BICUBIC 3

typedef struct clip_preproc_cfg {
    int do_resize;
    int shortest_edge;        /* > 0: scale so the shorter side becomes this, int() truncation on the longer */
    int size_height;          /* used when shortest_edge == 0: resize to exactly size_height x size_width */
    int size_width;
    int resample;             /* only CLIP_RESAMPLE_BICUBIC is implemented */
    int do_center_crop;
    int crop_height, crop_width;
    int do_rescale;
    double rescale_factor;    /* usually 1/255 */
    int do_normalize;
    float image_mean[3];      /* float32, as numpy casts them against the float32 image */
    float image_std[3];
    int do_convert_rgb;       /* informative: decoded images are always RGB */
} clip_preproc_cfg;

/* Intermediate images, filled when a clip_preproc_debug is passed to clip_preprocess. Buffers are packed RGB24
 * (stride 3 * width), malloc'd, owned by the struct: release with clip_preproc_debug_free. `resized` is NULL
 * when do_resize is off; `cropped` is NULL when do_center_crop is off. */
typedef struct clip_preproc_debug {
    uint8_t *resized;
    int resized_width, resized_height;
    uint8_t *cropped;
    int cropped_width, cropped_height;
} clip_preproc_debug;

void clip_preproc_debug_free(clip_preproc_debug *dbg);

/* Check a configuration; messages start with `what` (e.g. the config file path). */
clxp_status clip_preproc_cfg_check(const clip_preproc_cfg *cfg, const char *what, clxp_error *err);

/* Size after the resize step (the input size when do_resize is off). CLXP_ERR_LIMIT when a side exceeds the int
 * range (only reachable with extreme aspect ratios). */
clxp_status clip_resize_output_size(const clip_preproc_cfg *cfg, int width, int height, int *out_width,
                                    int *out_height, clxp_error *err);

/* Size of clip_preprocess's output planes: the crop size, or the resized size without centre crop (then
 * CLXP_ERR_LIMIT over CLIP_PREPROC_MAX_PIXELS). */
clxp_status clip_preproc_output_size(const clip_preproc_cfg *cfg, int width, int height, int *out_width,
                                     int *out_height, clxp_error *err);

/* Run the whole pipeline on an RGB24 image (rows `stride` bytes apart). out_chw receives
 * 3 * out_height * out_width floats (see clip_preproc_output_size), channel planes R, G, B.
 * dbg may be NULL; when given it is reset and receives the intermediate images (the full resized image is then
 * computed, so it is limited to CLIP_PREPROC_MAX_PIXELS). Coefficients are computed per call; nothing is cached,
 * no global state: calls may run concurrently. */
clxp_status clip_preprocess(const clip_preproc_cfg *cfg, const uint8_t *rgb, int width, int height, int stride,
                            float *out_chw, clip_preproc_debug *dbg, clxp_error *err);

/* Pillow 9.4 BICUBIC resize of a whole RGB24 image to out_width x out_height (dst rows dst_stride apart). */
clxp_status clip_resize_bicubic(const uint8_t *src, int width, int height, int stride, uint8_t *dst, int out_width,
                                int out_height, int dst_stride, clxp_error *err);

#endif
