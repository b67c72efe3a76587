#include "nn/swin.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
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

/* ---- stages ------------------------------------------------------------------------------------------------------ */

void swin_stage_init_matrices(swin_stage *sg) {
    const int D = sg->dim;
    for (int i = 0; sg->blocks && i < sg->depth; i++) {
        swin_block *bk = &sg->blocks[i];
        bk->qkv = nn_matrix_plain(bk->qkv_w, 3 * D, D);
        bk->o = nn_matrix_plain(bk->o_w, D, D);
        bk->fc1 = nn_matrix_plain(bk->fc1_w, sg->mlp, D);
        bk->fc2 = nn_matrix_plain(bk->fc2_w, D, sg->mlp);
    }
    if (sg->merge_w) sg->merge = nn_matrix_plain(sg->merge_w, 2 * D, 4 * D);
}

int swin_stage_matrices(swin_stage *sg, nn_matrix **out, int n, int cap) {
#define ADD(mat)                    \
    do {                            \
        if (n < cap) out[n] = (mat); \
        n++;                        \
    } while (0)
    for (int i = 0; sg->blocks && i < sg->depth; i++) {
        ADD(&sg->blocks[i].qkv);
        ADD(&sg->blocks[i].o);
        ADD(&sg->blocks[i].fc1);
        ADD(&sg->blocks[i].fc2);
    }
    if (sg->merge_w) ADD(&sg->merge);
#undef ADD
    return n;
}

void swin_stage_drop_fp32(swin_stage *sg) {
    for (int i = 0; sg->blocks && i < sg->depth; i++) {
        swin_block *bk = &sg->blocks[i];
        free(bk->owned_w);
        bk->owned_w = NULL;
        /* the packed matrices replace every fp32 weight (biases stay) */
        bk->qkv_w = bk->o_w = bk->fc1_w = bk->fc2_w = NULL;
    }
}

void swin_stage_free(swin_stage *sg) {
    for (int i = 0; sg->blocks && i < sg->depth; i++) {
        swin_block *bk = &sg->blocks[i];
        nn_matrix_release(&bk->qkv);
        nn_matrix_release(&bk->o);
        nn_matrix_release(&bk->fc1);
        nn_matrix_release(&bk->fc2);
        free(bk->owned_w);
        free(bk->owned_b);
        free(bk->bias);
    }
    nn_matrix_release(&sg->merge);
    free(sg->blocks);
    free(sg->mask);
    memset(sg, 0, sizeof *sg);
}

clxp_status swin_stage_blocks(const swin_stage *sg, int B, float ln_eps, nn_act act, float *x, float *h, float *att,
                              float *qkv, float *mlp, float *work, clxp_error *err) {
    const int R = sg->res, D = sg->dim, ws = sg->window, N = ws * ws, nW = (R / ws) * (R / ws), rows = B * R * R;
    clxp_status st = CLXP_OK;
    for (int i = 0; i < sg->depth && st == CLXP_OK; i++) {
        const swin_block *bk = &sg->blocks[i];
        /* x += attn(LN(x)), computed on the rows gathered in (shifted) window order */
        nn_layernorm(x, rows, D, bk->ln1_w, bk->ln1_b, ln_eps, att);
        swin_gather(att, B, R, R, D, ws, bk->shift, h);
        if ((st = nn_linear_m(&bk->qkv, h, rows, bk->qkv_b, qkv, 0, err)) != CLXP_OK) break;
        swin_window_attention(qkv, B * nW, N, D, sg->heads, bk->bias, bk->shift ? sg->mask : NULL, nW, att, work);
        if ((st = nn_linear_m(&bk->o, att, rows, bk->o_b, h, 0, err)) != CLXP_OK) break;
        swin_scatter_add(h, B, R, R, D, ws, bk->shift, x);
        /* x += MLP(LN(x)) */
        nn_layernorm(x, rows, D, bk->ln2_w, bk->ln2_b, ln_eps, h);
        if ((st = nn_linear_m(&bk->fc1, h, rows, bk->fc1_b, mlp, 0, err)) != CLXP_OK) break;
        nn_activation(mlp, (size_t)rows * sg->mlp, act);
        st = nn_linear_m(&bk->fc2, mlp, rows, bk->fc2_b, x, 1, err);
    }
    return st;
}

clxp_status swin_stage_merge(const swin_stage *sg, int B, float merge_eps, float *x, float *h, clxp_error *err) {
    const int R = sg->res, D = sg->dim, rows = B * R * R;
    swin_merge_gather(x, B, R, D, h);
    nn_layernorm(h, rows / 4, 4 * D, sg->merge_ln_w, sg->merge_ln_b, merge_eps, h);
    return nn_linear_m(&sg->merge, h, rows / 4, NULL, x, 0, err);
}
