/* CLIP image preprocessing, bit-exact with transformers 4.40.2 + Pillow 9.4 (see preprocess.h). */
#include "media/preprocess.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

/* Bit-exactness needs every floating-point operation rounded as written (Pillow and numpy were built without
 * FMA). GCC does not contract in ISO C mode (-std=c11); clang contracts within expressions by default. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* Pillow: PRECISION_BITS = 32 - 8 - 2 for 8-bit images. */
#define PRECISION_BITS 22

void clip_preproc_debug_free(clip_preproc_debug *dbg) {
    if (!dbg) return;
    free(dbg->resized);
    free(dbg->cropped);
    memset(dbg, 0, sizeof *dbg);
}

/* ---- Pillow 9.4 resampling (libImaging/Resample.c) ------------------------------------------------------------ */

/* Keys cubic convolution with a = -0.5, written exactly as Pillow's bicubic_filter. */
static double bicubic_filter(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}
#define BICUBIC_SUPPORT 2.0

/* Fixed-point coefficients of one axis for the outputs first .. first+count-1 (Pillow's precompute_coeffs +
 * normalize_coeffs_8bpc restricted to a window: each output sample only depends on its own coefficients). */
typedef struct resample_axis {
    int ksize;       /* coefficient slots per output sample */
    int count;
    int *bounds;     /* [2 * count]: first input index, number of inputs */
    int32_t *coeffs; /* [count * ksize] */
} resample_axis;

static void axis_free(resample_axis *ax) {
    free(ax->bounds);
    free(ax->coeffs);
    memset(ax, 0, sizeof *ax);
}

static clxp_status axis_init(resample_axis *ax, int in_size, int out_size, int first, int count, clxp_error *err) {
    memset(ax, 0, sizeof *ax);
    /* Pillow passes the source box as floats (0, in_size) and divides in double. */
    float in0 = 0.0f, in1 = (float)in_size;
    double scale = (double)(in1 - in0) / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = BICUBIC_SUPPORT * filterscale;
    /* Pillow's row stride for the coefficients is ceil(support) * 2 + 1; no row uses more than in_size taps, so
     * a smaller stride changes nothing and bounds the memory for extreme downscales. */
    double ks = ceil(support) * 2 + 1;
    int ksize = ks > (double)in_size ? in_size : (int)ks;
    ax->ksize = ksize;
    ax->count = count;
    ax->bounds = malloc(sizeof(int) * 2 * (size_t)(count > 0 ? count : 1));
    ax->coeffs = malloc(sizeof(int32_t) * (size_t)ksize * (size_t)(count > 0 ? count : 1));
    double *k = malloc(sizeof(double) * (size_t)ksize);
    if (!ax->bounds || !ax->coeffs || !k) {
        free(k);
        axis_free(ax);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "resize: out of memory for coefficients");
    }
    for (int i = 0; i < count; i++) {
        int xx = first + i;
        double center = in0 + (xx + 0.5) * scale;
        double ww = 0.0;
        double ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5); /* truncation, as Pillow's (int) cast */
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            double w = bicubic_filter((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        int32_t *kf = ax->coeffs + (size_t)i * ksize;
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? k[x] / ww : k[x];
            /* round half away from zero into 22-bit fixed point */
            kf[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS)) : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        for (int x = xmax; x < ksize; x++) kf[x] = 0;
        ax->bounds[2 * i] = xmin;
        ax->bounds[2 * i + 1] = xmax;
    }
    free(k);
    return CLXP_OK;
}

static inline uint8_t clip8(int32_t v) {
    if (v >= (1 << PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

/* Speed: both passes are written as sums of fixed-length contiguous vectors (restrict, constant trip counts), the
 * shape compilers vectorise even at -O2. The integer sums are the same as Pillow's, only computed in another order.
 *
 * The horizontal pass works on blocks of HBLOCK rows transposed so that the HBLOCK rows x 3 channels of one source
 * column are contiguous (as int32, so no widening is needed in the inner loop): each output column is then a sum
 * of 3 * HBLOCK-lane vectors, instead of a 3-channel dot product with stride-3 loads (~5x slower). */
#define HBLOCK 8
#define HLANES (3 * HBLOCK)
/* The vertical pass accumulates VCHUNK bytes of a row at a time. */
#define VCHUNK 32

static void lanes_fill(int32_t *restrict acc, int32_t v) {
    for (int q = 0; q < HLANES; q++) acc[q] = v;
}
static void lanes_mac(int32_t *restrict acc, const int32_t *restrict col, int32_t k) {
    for (int q = 0; q < HLANES; q++) acc[q] += col[q] * k;
}

/* Horizontal pass over `rows` rows of src: dst column i = Σ_j src column (bounds[2i] + j) * coeffs[i][j].
 * `block` is scratch of HLANES * (columns spanned by the taps) bytes. */
static void pass_horizontal(const uint8_t *src, int src_stride, int rows, const resample_axis *ax, int32_t *block,
                            uint8_t *dst, int dst_stride) {
    if (ax->count <= 0) return;
    int xlo = ax->bounds[0];
    int xhi = ax->bounds[2 * (ax->count - 1)] + ax->bounds[2 * (ax->count - 1) + 1];
    int span = xhi - xlo;
    int32_t acc[HLANES];
    for (int y = 0; y < rows; y += HBLOCK) {
        int nr = rows - y < HBLOCK ? rows - y : HBLOCK;
        if (nr < HBLOCK) /* unused lanes: computed, then discarded */
            memset(block, 0, sizeof(int32_t) * HLANES * (size_t)span);
        for (int r = 0; r < nr; r++) {
            const uint8_t *s = src + (ptrdiff_t)(y + r) * src_stride + 3 * (ptrdiff_t)xlo;
            int32_t *b = block + 3 * r;
            for (int x = 0; x < span; x++, s += 3, b += HLANES) {
                b[0] = s[0];
                b[1] = s[1];
                b[2] = s[2];
            }
        }
        for (int i = 0; i < ax->count; i++) {
            const int32_t *k = ax->coeffs + (size_t)i * ax->ksize;
            const int32_t *col = block + (size_t)HLANES * (ax->bounds[2 * i] - xlo);
            int n = ax->bounds[2 * i + 1];
            lanes_fill(acc, 1 << (PRECISION_BITS - 1));
            for (int j = 0; j < n; j++, col += HLANES) lanes_mac(acc, col, k[j]);
            for (int r = 0; r < nr; r++) {
                uint8_t *d = dst + (ptrdiff_t)(y + r) * dst_stride + 3 * (ptrdiff_t)i;
                d[0] = clip8(acc[3 * r]);
                d[1] = clip8(acc[3 * r + 1]);
                d[2] = clip8(acc[3 * r + 2]);
            }
        }
    }
}

static void chunk_fill(int32_t *restrict acc, int32_t v) {
    for (int q = 0; q < VCHUNK; q++) acc[q] = v;
}
static void chunk_mac(int32_t *restrict acc, const uint8_t *restrict s, int32_t k) {
    for (int q = 0; q < VCHUNK; q++) acc[q] += s[q] * k;
}
static void chunk_clip(uint8_t *restrict d, const int32_t *restrict acc) {
    for (int q = 0; q < VCHUNK; q++) d[q] = clip8(acc[q]);
}

/* Vertical pass: output row i = Σ_j src row (bounds[2i] - row0 + j) * coeffs[i][j], over `width` pixels, VCHUNK
 * bytes at a time (the accumulators stay in registers across the taps), then the tail byte by byte. */
static void pass_vertical(const uint8_t *src, int src_stride, int row0, int width, const resample_axis *ax,
                          uint8_t *dst, int dst_stride) {
    int n3 = 3 * width;
    int32_t acc[VCHUNK];
    for (int i = 0; i < ax->count; i++) {
        const int32_t *k = ax->coeffs + (size_t)i * ax->ksize;
        const uint8_t *s0 = src + (ptrdiff_t)(ax->bounds[2 * i] - row0) * src_stride;
        int n = ax->bounds[2 * i + 1];
        uint8_t *d = dst + (ptrdiff_t)i * dst_stride;
        int x = 0;
        for (; x + VCHUNK <= n3; x += VCHUNK) {
            chunk_fill(acc, 1 << (PRECISION_BITS - 1));
            for (int j = 0; j < n; j++) chunk_mac(acc, s0 + (ptrdiff_t)j * src_stride + x, k[j]);
            chunk_clip(d + x, acc);
        }
        for (; x < n3; x++) {
            int32_t a = 1 << (PRECISION_BITS - 1);
            for (int j = 0; j < n; j++) a += s0[(ptrdiff_t)j * src_stride + x] * k[j];
            d[x] = clip8(a);
        }
    }
}

/* The window [wx, wx+ww) x [wy, wy+wh) of src (w x h) resized to ow x oh, into dst. Pillow's order: horizontal
 * pass (if the width changes) into uint8 rows, then the vertical pass (if the height changes); neither: a copy. */
static clxp_status resize_window(const uint8_t *src, int w, int h, int stride, int ow, int oh, int wx, int wy, int ww,
                                 int wh, uint8_t *dst, int dst_stride, clxp_error *err) {
    if (ww <= 0 || wh <= 0) return CLXP_OK;
    int need_h = ow != w, need_v = oh != h;
    if (!need_h && !need_v) {
        for (int y = 0; y < wh; y++)
            memcpy(dst + (ptrdiff_t)y * dst_stride, src + (ptrdiff_t)(wy + y) * stride + 3 * (ptrdiff_t)wx,
                   3 * (size_t)ww);
        return CLXP_OK;
    }
    resample_axis ax = {0}, ay = {0};
    uint8_t *tmp = NULL;
    int32_t *block = NULL;
    clxp_status st = CLXP_OK;
    if (need_h && (st = axis_init(&ax, w, ow, wx, ww, err)) != CLXP_OK) goto done;
    if (need_v && (st = axis_init(&ay, h, oh, wy, wh, err)) != CLXP_OK) goto done;
    if (need_h) {
        int span = ax.bounds[2 * (ww - 1)] + ax.bounds[2 * (ww - 1) + 1] - ax.bounds[0];
        block = malloc(sizeof(int32_t) * HLANES * (size_t)(span > 0 ? span : 1));
        if (!block) {
            st = clxp_err_set(err, CLXP_ERR_NOMEM, "resize: out of memory");
            goto done;
        }
    }
    if (need_h && need_v) {
        /* only the source rows the window's vertical taps read */
        int y0 = ay.bounds[0], y1 = ay.bounds[2 * (wh - 1)] + ay.bounds[2 * (wh - 1) + 1];
        tmp = malloc(3 * (size_t)ww * (size_t)(y1 - y0));
        if (!tmp) {
            st = clxp_err_set(err, CLXP_ERR_NOMEM, "resize: out of memory for a %dx%d intermediate", ww, y1 - y0);
            goto done;
        }
        pass_horizontal(src + (ptrdiff_t)y0 * stride, stride, y1 - y0, &ax, block, tmp, 3 * ww);
        pass_vertical(tmp, 3 * ww, y0, ww, &ay, dst, dst_stride);
    } else if (need_h) {
        pass_horizontal(src + (ptrdiff_t)wy * stride, stride, wh, &ax, block, dst, dst_stride);
    } else {
        pass_vertical(src + 3 * (ptrdiff_t)wx, stride, 0, ww, &ay, dst, dst_stride);
    }
done:
    free(tmp);
    free(block);
    axis_free(&ax);
    axis_free(&ay);
    return st;
}

clxp_status clip_resize_bicubic(const uint8_t *src, int width, int height, int stride, uint8_t *dst, int out_width,
                                int out_height, int dst_stride, clxp_error *err) {
    if (!src || !dst || width <= 0 || height <= 0 || out_width <= 0 || out_height <= 0 || stride < 3 * width ||
        dst_stride < 3 * out_width)
        return clxp_err_set(err, CLXP_ERR_INVALID, "resize: invalid arguments (%dx%d -> %dx%d)", width, height,
                            out_width, out_height);
    return resize_window(src, width, height, stride, out_width, out_height, 0, 0, out_width, out_height, dst,
                         dst_stride, err);
}

/* ---- configuration and sizes ----------------------------------------------------------------------------------- */

static int size_ok(int v) {
    return v >= 1 && v <= CLIP_PREPROC_MAX_SIZE;
}

clxp_status clip_preproc_cfg_check(const clip_preproc_cfg *cfg, const char *what, clxp_error *err) {
    if (!what) what = "preprocessor config";
    if (!cfg) return clxp_err_set(err, CLXP_ERR_INVALID, "%s: no configuration", what);
    if (cfg->do_resize) {
        if (cfg->resample != CLIP_RESAMPLE_BICUBIC)
            return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: resample = %d is not supported (only 3 = bicubic)",
                                what, cfg->resample);
        if (cfg->shortest_edge != 0 && !size_ok(cfg->shortest_edge))
            return clxp_err_set(err, CLXP_ERR_INVALID, "%s: size.shortest_edge = %d is out of range (1..%d)", what,
                                cfg->shortest_edge, CLIP_PREPROC_MAX_SIZE);
        if (cfg->shortest_edge == 0 && (!size_ok(cfg->size_height) || !size_ok(cfg->size_width)))
            return clxp_err_set(err, CLXP_ERR_INVALID, "%s: size %dx%d (height x width) is out of range (1..%d)",
                                what, cfg->size_height, cfg->size_width, CLIP_PREPROC_MAX_SIZE);
    }
    if (cfg->do_center_crop && (!size_ok(cfg->crop_height) || !size_ok(cfg->crop_width)))
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: crop_size %dx%d (height x width) is out of range (1..%d)",
                            what, cfg->crop_height, cfg->crop_width, CLIP_PREPROC_MAX_SIZE);
    if (cfg->do_rescale && !(isfinite(cfg->rescale_factor) && cfg->rescale_factor > 0))
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: rescale_factor = %g must be a positive number", what,
                            cfg->rescale_factor);
    if (cfg->do_normalize) {
        for (int c = 0; c < 3; c++) {
            if (!isfinite(cfg->image_mean[c]))
                return clxp_err_set(err, CLXP_ERR_INVALID, "%s: image_mean[%d] is not finite", what, c);
            if (!(isfinite(cfg->image_std[c]) && cfg->image_std[c] > 0))
                return clxp_err_set(err, CLXP_ERR_INVALID, "%s: image_std[%d] = %g must be positive", what, c,
                                    (double)cfg->image_std[c]);
        }
    }
    return CLXP_OK;
}

/* Only images that are actually stored are limited: with a centre crop, only the crop window of the resized
 * image is computed, so a 32768x1 line (resized to 7340032x224) is fine. */
static clxp_status check_materialised(int rw, int rh, int width, int height, clxp_error *err) {
    if ((int64_t)rw * rh > CLIP_PREPROC_MAX_PIXELS)
        return clxp_err_set(err, CLXP_ERR_LIMIT, "preprocess: a %dx%d image resizes to %dx%d, over %lld pixels",
                            width, height, rw, rh, (long long)CLIP_PREPROC_MAX_PIXELS);
    return CLXP_OK;
}

clxp_status clip_resize_output_size(const clip_preproc_cfg *cfg, int width, int height, int *out_width,
                                    int *out_height, clxp_error *err) {
    if (width <= 0 || height <= 0)
        return clxp_err_set(err, CLXP_ERR_INVALID, "preprocess: invalid image size %dx%d", width, height);
    int64_t rw = width, rh = height;
    if (cfg->do_resize) {
        if (cfg->shortest_edge > 0) {
            /* transformers get_resize_output_image_size(default_to_square=False): short side -> S,
             * long side -> int(S * long / short), a true division in double then truncation. */
            int64_t s = cfg->shortest_edge;
            int64_t shorter = width <= height ? width : height, longer = width <= height ? height : width;
            double l = (double)(s * longer) / (double)shorter;
            if (l > (double)INT_MAX)
                return clxp_err_set(err, CLXP_ERR_LIMIT, "preprocess: a %dx%d image resizes to more than %d pixels "
                                    "on its long side", width, height, INT_MAX);
            int64_t nl = (int64_t)l;
            if (width <= height) {
                rw = s;
                rh = nl;
            } else {
                rw = nl;
                rh = s;
            }
        } else {
            rw = cfg->size_width;
            rh = cfg->size_height;
        }
        if (rw < 1 || rh < 1) /* int(S * long / short) >= S >= 1; kept for safety */
            return clxp_err_set(err, CLXP_ERR_INVALID, "preprocess: %dx%d image resizes to nothing", width, height);
    }
    *out_width = (int)rw;
    *out_height = (int)rh;
    return CLXP_OK;
}

clxp_status clip_preproc_output_size(const clip_preproc_cfg *cfg, int width, int height, int *out_width,
                                     int *out_height, clxp_error *err) {
    if (cfg->do_center_crop) {
        if (width <= 0 || height <= 0)
            return clxp_err_set(err, CLXP_ERR_INVALID, "preprocess: invalid image size %dx%d", width, height);
        *out_width = cfg->crop_width;
        *out_height = cfg->crop_height;
        return CLXP_OK;
    }
    clxp_status st = clip_resize_output_size(cfg, width, height, out_width, out_height, err);
    if (st == CLXP_OK) st = check_materialised(*out_width, *out_height, width, height, err);
    return st;
}

/* Python's floor division by 2 (the crop offset is negative when the image is smaller than the crop). */
static int floor_half(int v) {
    return v >= 0 ? v / 2 : -((-v + 1) / 2);
}

/* ---- the pipeline ------------------------------------------------------------------------------------------------ */

/* Rescale + normalise as a per-channel lookup table: the result only depends on (channel, uint8 value).
 * transformers: rescale = (uint8 as float64 * factor) cast to float32; normalise = (x - mean) / std in float32. */
static void build_lut(const clip_preproc_cfg *cfg, float lut[3][256]) {
    for (int c = 0; c < 3; c++) {
        for (int v = 0; v < 256; v++) {
            float x = cfg->do_rescale ? (float)((double)v * cfg->rescale_factor) : (float)v;
            if (cfg->do_normalize) {
                float centred = x - cfg->image_mean[c];
                x = centred / cfg->image_std[c];
            }
            lut[c][v] = x;
        }
    }
}

clxp_status clip_preprocess(const clip_preproc_cfg *cfg, const uint8_t *rgb, int width, int height, int stride,
                            float *out_chw, clip_preproc_debug *dbg, clxp_error *err) {
    if (dbg) memset(dbg, 0, sizeof *dbg);
    clxp_status st = clip_preproc_cfg_check(cfg, "preprocess", err);
    if (st != CLXP_OK) return st;
    if (!rgb || !out_chw || width <= 0 || height <= 0 || stride < 3 * width)
        return clxp_err_set(err, CLXP_ERR_INVALID, "preprocess: invalid arguments (%dx%d image, stride %d)", width,
                            height, stride);
    int rw, rh, ow, oh;
    if ((st = clip_resize_output_size(cfg, width, height, &rw, &rh, err)) != CLXP_OK) return st;
    if ((st = clip_preproc_output_size(cfg, width, height, &ow, &oh, err)) != CLXP_OK) return st;

    /* Crop window in resized coordinates: transformers center_crop takes rows top .. top+crop_h-1 with
     * top = (H - crop_h) // 2, and zero-pads where that leaves the image (image smaller than the crop). */
    int top = 0, left = 0;
    if (cfg->do_center_crop) {
        top = floor_half(rh - oh);
        left = floor_half(rw - ow);
    }
    int x0 = left > 0 ? left : 0, y0 = top > 0 ? top : 0;
    int x1 = left + ow < rw ? left + ow : rw, y1 = top + oh < rh ? top + oh : rh;

    uint8_t *resized = NULL, *final = NULL;
    const uint8_t *plane = NULL; /* the uint8 image that gets rescaled/normalised */
    int plane_stride = 0;
    if (cfg->do_resize && dbg) { /* the full resized image is wanted: compute it all, then crop from it */
        if ((st = check_materialised(rw, rh, width, height, err)) != CLXP_OK) return st;
        resized = malloc(3 * (size_t)rw * (size_t)rh);
        if (!resized) return clxp_err_set(err, CLXP_ERR_NOMEM, "preprocess: out of memory (%dx%d)", rw, rh);
        st = resize_window(rgb, width, height, stride, rw, rh, 0, 0, rw, rh, resized, 3 * rw, err);
        if (st != CLXP_OK) goto fail;
    }
    if (cfg->do_center_crop) {
        final = calloc(3 * (size_t)ow * (size_t)oh, 1); /* zeros = transformers' padding */
        if (!final) {
            st = clxp_err_set(err, CLXP_ERR_NOMEM, "preprocess: out of memory (%dx%d)", ow, oh);
            goto fail;
        }
        uint8_t *win = final + 3 * ((ptrdiff_t)(y0 - top) * ow + (x0 - left));
        if (x1 > x0 && y1 > y0) {
            const uint8_t *from = resized ? resized : (cfg->do_resize ? NULL : rgb);
            int from_stride = resized ? 3 * rw : stride;
            if (from) {
                for (int y = y0; y < y1; y++)
                    memcpy(win + (ptrdiff_t)(y - y0) * 3 * ow, from + (ptrdiff_t)y * from_stride + 3 * (ptrdiff_t)x0,
                           3 * (size_t)(x1 - x0));
            } else { /* resize only the pixels the crop keeps */
                st = resize_window(rgb, width, height, stride, rw, rh, x0, y0, x1 - x0, y1 - y0, win, 3 * ow, err);
                if (st != CLXP_OK) goto fail;
            }
        }
        plane = final;
        plane_stride = 3 * ow;
    } else if (cfg->do_resize) {
        if (!resized) {
            resized = malloc(3 * (size_t)rw * (size_t)rh);
            if (!resized) return clxp_err_set(err, CLXP_ERR_NOMEM, "preprocess: out of memory (%dx%d)", rw, rh);
            st = resize_window(rgb, width, height, stride, rw, rh, 0, 0, rw, rh, resized, 3 * rw, err);
            if (st != CLXP_OK) goto fail;
        }
        plane = resized;
        plane_stride = 3 * rw;
    } else {
        plane = rgb;
        plane_stride = stride;
    }

    float lut[3][256];
    build_lut(cfg, lut);
    size_t area = (size_t)ow * (size_t)oh;
    for (int y = 0; y < oh; y++) {
        const uint8_t *p = plane + (ptrdiff_t)y * plane_stride;
        float *r = out_chw + (size_t)y * ow, *g = r + area, *b = g + area;
        for (int x = 0; x < ow; x++, p += 3) {
            r[x] = lut[0][p[0]];
            g[x] = lut[1][p[1]];
            b[x] = lut[2][p[2]];
        }
    }

    if (dbg) {
        dbg->resized = resized;
        dbg->resized_width = resized ? rw : 0;
        dbg->resized_height = resized ? rh : 0;
        dbg->cropped = final;
        dbg->cropped_width = final ? ow : 0;
        dbg->cropped_height = final ? oh : 0;
    } else {
        free(resized);
        free(final);
    }
    return CLXP_OK;

fail:
    free(resized);
    free(final);
    return st;
}
