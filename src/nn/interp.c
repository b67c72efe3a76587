#include "nn/interp.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* The products below are written out exactly as they are rounded; keep clang from fusing others (gcc's -std=c11
 * already disables contraction). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

void nn_interp_rows_bilinear(const float *in, int in_rows, int cols, float *out, int out_rows) {
    /* area_pixel_compute_scale: in / out in float. The source index scale * (i + 0.5) - 0.5 is exact in double
     * and PyTorch keeps it there: the index is its truncation, lambda1 = (float)(real - index). */
    const float scale = (float)in_rows / (float)out_rows;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < out_rows; i++) {
        double real = (double)scale * ((double)i + 0.5) - 0.5;
        if (real < 0) real = 0;
        int64_t i0 = (int64_t)real;
        if (i0 > in_rows - 1) i0 = in_rows - 1;
        int64_t i1 = i0 + (i0 < in_rows - 1 ? 1 : 0);
        float l1 = (float)(real - (double)i0);
        if (l1 < 0) l1 = 0;
        if (l1 > 1) l1 = 1;
        float l0 = 1.0f - l1;
        const float *r0 = in + (size_t)i0 * cols, *r1 = in + (size_t)i1 * cols;
        float *o = out + (size_t)i * cols;
        for (int j = 0; j < cols; j++) o[j] = fmaf(r0[j], l0, r1[j] * l1);
    }
}

/* upsample_bicubic2d's Keys kernel with A = -0.75 (get_cubic_upsample_coefficients / cubic_convolution1,2), in
 * float, with the one fused multiply-add the reference build has in cubic_convolution2. */
static inline float cubic1(float x, float A) { return ((A + 2) * x - (A + 3)) * x * x + 1; }
static inline float cubic2(float x, float A) {
    float a = A * x - 5 * A;
    float b = fmaf(a, x, 8 * A);
    return b * x - 4 * A;
}

void nn_interp_rows_bicubic_ac(const float *in, int in_rows, int cols, float *out, int out_rows) {
    const float A = -0.75f;
    /* align_corners=True: scale = (in - 1) / (out - 1) in float (0 for a single output row); source index
     * scale * i in float, index = floor of it, t = scale * i - index from the exact product (a fused
     * multiply-add: rounding the product first would cost up to half an ulp of the index, ~6e-5 near 1000). */
    const float scale = out_rows > 1 ? (float)(in_rows - 1) / (float)(out_rows - 1) : 0.0f;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < out_rows; i++) {
        float real = scale * (float)i;
        int64_t idx = (int64_t)floorf(real);
        float t = fmaf(scale, (float)i, -(float)idx);
        float w[4] = {cubic2(t + 1.0f, A), cubic1(t, A), cubic1(1.0f - t, A), cubic2((1.0f - t) + 1.0f, A)};
        const float *r[4];
        for (int k = 0; k < 4; k++) {
            int64_t s = idx - 1 + k; /* access clamped to the border, as upsample_bicubic2d does */
            if (s < 0) s = 0;
            if (s > in_rows - 1) s = in_rows - 1;
            r[k] = in + (size_t)s * cols;
        }
        float *o = out + (size_t)i * cols;
        for (int j = 0; j < cols; j++)
            o[j] = fmaf(r[3][j], w[3], fmaf(r[2][j], w[2], fmaf(r[0][j], w[0], r[1][j] * w[1])));
    }
}
