/* Swin Transformer window attention kernels (transformers 4.40.2 SwinLayer / SwinSelfAttention, used by CLAP's
 * HTSAT audio tower as ClapAudioLayer / ClapAudioSelfAttention), float32, parallel over windows and heads (OpenMP).
 *
 * Token maps are token-major: x[b, y * W + x, c]. A layer works on windows of ws x ws tokens of the map rolled by
 * -shift in both directions (torch.roll(shifts=(-shift, -shift))), ordered batch, window row, window column
 * (window_partition), tokens inside a window row-major. Instead of rolling, partitioning, reversing and rolling
 * back, the kernels below gather the rows of the map into that window order and scatter (add) them back, so every
 * row-wise operation in between (LayerNorm, the q/k/v and output projections) is done once on the gathered rows. */
#ifndef CLXP_NN_SWIN_H
#define CLXP_NN_SWIN_H

#include <stddef.h>

#include "clxp.h"
#include "nn/gemm.h"
#include "nn/ops.h"

/* win[(b, wy, wx, iy, ix), :] = x[b, ((wy*ws + iy + shift) mod H) * W + (wx*ws + ix + shift) mod W, :]. */
void swin_gather(const float *x, int B, int H, int W, int C, int ws, int shift, float *win);

/* The inverse permutation, accumulating: x[token] += win[row of that token] (the residual connection after the
 * window attention, with window_reverse and the +shift roll folded in). */
void swin_scatter_add(const float *win, int B, int H, int W, int C, int ws, int shift, float *x);

/* 2x2 patch merging of x[B, R*R, C] into out[B, (R/2)^2, 4C]: for output token (i, j) the input tokens
 * (2i, 2j), (2i+1, 2j), (2i, 2j+1), (2i+1, 2j+1) (ClapAudioPatchMerging's x0..x3; MS-CLAP's HTSAT likewise). */
void swin_merge_gather(const float *x, int B, int R, int C, float *out);

/* Relative position bias of one layer expanded to [heads, N, N] (N = ws * ws) from the learned table
 * [(2ws-1)^2, heads]: bias[h, i, j] = table[((yi - yj + ws - 1) * (2ws - 1) + (xi - xj + ws - 1)) * heads + h]
 * (SwinSelfAttention.relative_position_index). */
void swin_expand_bias(const float *table, int ws, int heads, float *bias);

/* relative_position_index[i * N + j] of a ws x ws window, the buffer transformers stores with the weights. */
long swin_relative_index(int ws, int i, int j);

/* The shifted-window attention mask [nW, N, N] of an H x W map (nW = (H/ws) * (W/ws), SwinLayer.get_attn_mask):
 * tokens of the rolled map are labelled by the region ([0, H-ws), [H-ws, H-shift), [H-shift, H) per axis) they
 * came from; mask = -100 (not -inf) between different regions, 0 inside one. */
void swin_shift_mask(int H, int W, int ws, int shift, float *mask);

/* Scratch floats swin_window_attention needs for windows of N tokens and heads of head_dim channels (per thread:
 * one score row and the head's keys transposed). */
size_t swin_attention_work_size(int N, int head_dim);

/* Multi-head self-attention inside each window.
 * qkv: [n_win * N, 3C] rows in window order holding q | k | v (head h = channels h*hd .. h*hd+hd-1, hd = C/heads).
 * scores = (q . k) / sqrt(hd) + bias[h] (+ mask[w mod mask_nw] when mask is not NULL), softmax over keys,
 * out[n_win * N, C] = probabilities . v (SwinSelfAttention.forward). */
void swin_window_attention(const float *qkv, int n_win, int N, int C, int heads, const float *bias, const float *mask,
                           int mask_nw, float *out, float *work);

/* ---- a Swin stage: its blocks and patch merging (LAION CLAP's HTSAT and MS-CLAP's HTSAT alike) ---------------- */

/* One block: x += proj(window_attention(qkv(LN1(x)))) in (shifted) window order, then x += fc2(act(fc1(LN2(x)))).
 * The fp32 weights (pointers into the model file, or buffers the loader made, listed in `owned`) back the four
 * matrices until they are packed. */
typedef struct swin_block {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    const float *qkv_w, *o_w, *fc1_w, *fc2_w;     /* [3D, D] q|k|v, [D, D], [mlp, D], [D, mlp] */
    const float *qkv_b, *o_b, *fc1_b, *fc2_b;     /* qkv_b NULL without a q/k/v bias */
    nn_matrix qkv, o, fc1, fc2;                   /* swin_stage_init_matrices, then possibly packed */
    float *owned_w, *owned_b; /* the loader's buffers behind qkv_w / qkv_b when it made them (q|k|v concatenated
                                 from three tensors), else NULL; owned_w is freed once packed, owned_b with the stage */
    float *bias;     /* relative position bias expanded to [heads, N, N] (owned) */
    int shift;       /* 0 or window / 2 */
} swin_block;

typedef struct swin_stage {
    int dim, res, heads, depth, window, mlp; /* channels, map side, heads, blocks, window side, MLP width */
    swin_block *blocks;                      /* [depth] (owned) */
    const float *merge_ln_w, *merge_ln_b, *merge_w; /* patch merging LN [4D] and reduction [2D, 4D]; NULL after the
                                                       last stage */
    nn_matrix merge;
    float *mask; /* [nW, N, N] shift mask (owned; NULL when no block shifts) */
} swin_stage;

/* Point every matrix of the stage at its fp32 weight (after loading). */
void swin_stage_init_matrices(swin_stage *sg);
/* Append pointers to the stage's matrices to out (room for cap; more are counted, not stored); returns n plus
 * their number. */
int swin_stage_matrices(swin_stage *sg, nn_matrix **out, int n, int cap);
/* After packing: free the loader's weight buffers (owned_w: the packed matrices replaced them); the fp32 weight
 * pointers are cleared. */
void swin_stage_drop_fp32(swin_stage *sg);
/* Free what the stage owns (blocks, biases, mask, loader buffers, packed matrices); the stage is then empty. */
void swin_stage_free(swin_stage *sg);

/* Run the stage's blocks on x[B, res*res, dim] in place. LayerNorms use ln_eps; the MLP activation is act.
 * Scratch: h, att [B*res*res, dim], qkv [B*res*res, 3*dim], mlp [B*res*res, mlp], work
 * (swin_attention_work_size floats per thread, as swin_window_attention). */
clxp_status swin_stage_blocks(const swin_stage *sg, int B, float ln_eps, nn_act act, float *x, float *h, float *att,
                              float *qkv, float *mlp, float *work, clxp_error *err);
/* Patch merging after the blocks: x[B, res*res, dim] -> x[B, (res/2)^2, 2*dim] (LayerNorm with merge_eps over the
 * 4*dim gathered channels, then the reduction); h: scratch [B*res*res, dim]. Only for a stage with merge_w. */
clxp_status swin_stage_merge(const swin_stage *sg, int B, float merge_eps, float *x, float *h, clxp_error *err);

#endif
