#include "nn/swin.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "nn/ops.h"

void swin_gather(const float *x, int B, int H, int W, int C, int ws, int shift, float *win) {
    const int nwy = H / ws, nwx = W / ws;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int y = 0; y < H; y++) { /* y, x: coordinates in the rolled map */
            const int wy = y / ws, iy = y % ws, sy = (y + shift) % H;
            for (int xx = 0; xx < W; xx++) {
                const int wx = xx / ws, ix = xx % ws, sx = (xx + shift) % W;
                size_t row = ((((size_t)b * nwy + wy) * nwx + wx) * ws + iy) * ws + ix;
                size_t tok = (size_t)b * H * W + (size_t)sy * W + sx;
                memcpy(win + row * C, x + tok * C, (size_t)C * sizeof *win);
            }
        }
}

void swin_scatter_add(const float *win, int B, int H, int W, int C, int ws, int shift, float *x) {
    const int nwy = H / ws, nwx = W / ws;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int y = 0; y < H; y++) {
            const int wy = y / ws, iy = y % ws, sy = (y + shift) % H;
            for (int xx = 0; xx < W; xx++) {
                const int wx = xx / ws, ix = xx % ws, sx = (xx + shift) % W;
                size_t row = ((((size_t)b * nwy + wy) * nwx + wx) * ws + iy) * ws + ix;
                size_t tok = (size_t)b * H * W + (size_t)sy * W + sx;
                const float *src = win + row * C;
                float *dst = x + tok * C;
                for (int c = 0; c < C; c++) dst[c] += src[c];
            }
        }
}

long swin_relative_index(int ws, int i, int j) {
    int dy = i / ws - j / ws, dx = i % ws - j % ws;
    return (long)(dy + ws - 1) * (2 * ws - 1) + (dx + ws - 1);
}

void swin_expand_bias(const float *table, int ws, int heads, float *bias) {
    const int N = ws * ws;
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++)
                bias[((size_t)h * N + i) * N + j] = table[(size_t)swin_relative_index(ws, i, j) * heads + h];
}

static int region(int v, int size, int ws, int shift) {
    if (v < size - ws) return 0;
    if (v < size - shift) return 1;
    return 2;
}

void swin_shift_mask(int H, int W, int ws, int shift, float *mask) {
    const int nwx = W / ws, nw = (H / ws) * nwx, N = ws * ws;
    for (int w = 0; w < nw; w++) {
        const int oy = (w / nwx) * ws, ox = (w % nwx) * ws;
        for (int i = 0; i < N; i++) {
            int ri = 3 * region(oy + i / ws, H, ws, shift) + region(ox + i % ws, W, ws, shift);
            for (int j = 0; j < N; j++) {
                int rj = 3 * region(oy + j / ws, H, ws, shift) + region(ox + j % ws, W, ws, shift);
                mask[((size_t)w * N + i) * N + j] = ri != rj ? -100.0f : 0.0f;
            }
        }
    }
}

size_t swin_attention_work_size(int N, int head_dim) {
    return (size_t)omp_get_max_threads() * ((size_t)N + (size_t)N * head_dim);
}

void swin_window_attention(const float *qkv, int n_win, int N, int C, int heads, const float *bias, const float *mask,
                           int mask_nw, float *out, float *work) {
    const int hd = C / heads;
    const float sq = sqrtf((float)hd); /* scores are divided by sqrt(head_dim) after the product */
    const size_t ld = (size_t)3 * C;
#pragma omp parallel
    {
        float *s = work + (size_t)omp_get_thread_num() * ((size_t)N + (size_t)N * hd);
        float *kt = s + N; /* the head's keys transposed, [hd, N]: the score loop runs over contiguous keys */
#pragma omp for collapse(2) schedule(static)
        for (int w = 0; w < n_win; w++)
            for (int h = 0; h < heads; h++) {
                const float *base = qkv + (size_t)w * N * ld;
                const float *bh = bias + (size_t)h * N * N;
                const float *mw = mask ? mask + (size_t)(w % mask_nw) * N * N : NULL;
                for (int j = 0; j < N; j++) {
                    const float *k = base + (size_t)j * ld + C + (size_t)h * hd;
                    for (int c = 0; c < hd; c++) kt[(size_t)c * N + j] = k[c];
                }
                for (int i = 0; i < N; i++) {
                    const float *q = base + (size_t)i * ld + (size_t)h * hd;
                    /* s[j] = sum over c of q[c] k_j[c], each accumulated in c order */
                    for (int j = 0; j < N; j++) s[j] = 0;
                    for (int c = 0; c < hd; c++) {
                        const float qc = q[c], *kc = kt + (size_t)c * N;
                        /* independent lanes (no reduction): vectorised without changing any rounding; gcc -O2
                         * does not vectorise these loops on its own (unknown trip count, possible aliasing) */
#pragma omp simd
                        for (int j = 0; j < N; j++) s[j] += qc * kc[j];
                    }
                    float mx = -INFINITY;
                    const float *bi = bh + (size_t)i * N;
                    if (mw) {
                        const float *mi = mw + (size_t)i * N;
#pragma omp simd
                        for (int j = 0; j < N; j++) s[j] = s[j] / sq + bi[j] + mi[j];
                    } else {
#pragma omp simd
                        for (int j = 0; j < N; j++) s[j] = s[j] / sq + bi[j];
                    }
                    /* (a float max reduction does not vectorise under clang without fast-math) */
                    for (int j = 0; j < N; j++) mx = s[j] > mx ? s[j] : mx;
                    float sum = 0;
#pragma omp simd reduction(+ : sum)
                    for (int j = 0; j < N; j++) {
                        s[j] = nn_exp_nonpos(s[j] - mx);
                        sum += s[j];
                    }
                    const float inv = 1.0f / sum;
                    float *o = out + ((size_t)w * N + i) * C + (size_t)h * hd;
                    memset(o, 0, (size_t)hd * sizeof *o);
                    for (int j = 0; j < N; j++) {
                        const float *v = base + (size_t)j * ld + 2 * (size_t)C + (size_t)h * hd;
                        const float p = s[j] * inv;
#pragma omp simd
                        for (int c = 0; c < hd; c++) o[c] += p * v[c];
                    }
                }
            }
    }
}

void swin_merge_gather(const float *x, int B, int R, int C, float *out) {
    const int R2 = R / 2;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int i = 0; i < R2; i++)
            for (int j = 0; j < R2; j++) {
                float *o = out + (((size_t)b * R2 + i) * R2 + j) * 4 * C;
                const int dy[4] = {0, 1, 0, 1}, dx[4] = {0, 0, 1, 1};
                for (int k = 0; k < 4; k++) {
                    const float *src = x + ((size_t)b * R * R + (size_t)(2 * i + dy[k]) * R + (2 * j + dx[k])) * C;
                    memcpy(o + (size_t)k * C, src, (size_t)C * sizeof *o);
                }
            }
}
