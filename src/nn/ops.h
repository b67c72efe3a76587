/* Elementwise and row-wise kernels of the transformer encoders, in float32, parallel over rows (OpenMP). */
#ifndef CLXP_NN_OPS_H
#define CLXP_NN_OPS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* exp(a) for a <= 0, within 2 ulp of expf; a below -87 (including -inf) is taken as -87 (e^-87 ~ 1.6e-38).
 * Branch-free with integer selects only, so that it vectorises inside `omp simd` loops (gcc does not if-convert
 * float selects there under -ftrapping-math). Cephes' expf polynomial on a - k ln 2, times 2^k. */
static inline float nn_exp_nonpos(float a) {
    uint32_t ab;
    memcpy(&ab, &a, 4);
    ab &= 0x7fffffffu;
    ab = ab < 0x42ae0000u ? ab : 0x42ae0000u; /* |a| <= 87 */
    memcpy(&a, &ab, 4);
    a = -a;
    float k = (a * 1.44269504f + 12582912.0f) - 12582912.0f; /* round(a / ln 2), in [-126, 0] */
    float r = a - k * 0.693359375f + k * 2.12194440e-4f;     /* a - k ln 2, ln 2 in two parts */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float e = p * r * r + r + 1.0f;
    uint32_t sb = (uint32_t)((int32_t)k + 127) << 23; /* 2^k */
    float s;
    memcpy(&s, &sb, 4);
    return e * s;
}

typedef enum nn_act { NN_ACT_QUICK_GELU, NN_ACT_GELU, NN_ACT_RELU } nn_act;

/* out[r,:] = (x[r,:] - mean) / sqrt(var + eps) * gamma + beta for each of rows rows of width d (biased var). */
void nn_layernorm(const float *x, int rows, int d, const float *gamma, const float *beta, float eps, float *out);

/* x[i] = act(x[i]) for n values. quick_gelu: x*sigmoid(1.702x); gelu: the exact erf form (nn_gelu). */
void nn_activation(float *x, size_t n, nn_act act);
/* One gelu value as nn_activation computes it (vectorised erfc, relative error ~2e-7); for tests. */
float nn_gelu(float x);

/* Row-wise L2 normalisation in place (a zero row stays zero). */
void nn_l2_normalize(float *x, int rows, int d);

/* Numerically stable softmax over n values in place. */
void nn_softmax(float *x, int n);

/* Multi-head self-attention on a packed qkv buffer.
 * qkv: [B*T, 3*D] rows holding q | k | v (heads contiguous inside each, head_dim = D/H).
 * out: [B*T, D]. q is scaled by head_dim^-0.5 before the product (as CLIP does).
 * causal: key j is visible from query i only if j <= i. key_mask (may be NULL): [B*T] with 0 for keys
 * to ignore (padding). work: scratch of nn_attention_work_size(B, T, H) floats. */
size_t nn_attention_work_size(int B, int T, int H);
void nn_attention(const float *qkv, int B, int T, int D, int H, int causal, const int *key_mask, float *out,
                  float *work);

#endif
