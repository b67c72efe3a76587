#include "nn/ops.h"

#include <math.h>
#include <omp.h>
#include <string.h>

void nn_layernorm(const float *x, int rows, int d, const float *gamma, const float *beta, float eps, float *out) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * d;
        float *o = out + (size_t)r * d;
        double sum = 0;
        for (int i = 0; i < d; i++) sum += xr[i];
        float mean = (float)(sum / d);
        double var = 0;
        for (int i = 0; i < d; i++) {
            float c = xr[i] - mean;
            var += (double)c * c;
        }
        float inv = (float)(1.0 / sqrt(var / d + eps));
        for (int i = 0; i < d; i++) o[i] = (xr[i] - mean) * inv * gamma[i] + beta[i];
    }
}

void nn_activation(float *x, size_t n, nn_act act) {
    switch (act) {
    case NN_ACT_QUICK_GELU:
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
        break;
    case NN_ACT_GELU:
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
        break;
    case NN_ACT_RELU:
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0;
        break;
    }
}

void nn_l2_normalize(float *x, int rows, int d) {
    for (int r = 0; r < rows; r++) {
        float *v = x + (size_t)r * d;
        double s = 0;
        for (int i = 0; i < d; i++) s += (double)v[i] * v[i];
        if (s <= 0) continue;
        float inv = (float)(1.0 / sqrt(s));
        for (int i = 0; i < d; i++) v[i] *= inv;
    }
}

void nn_softmax(float *x, int n) {
    if (n <= 0) return;
    float mx = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > mx) mx = x[i];
    double sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

size_t nn_attention_work_size(int B, int T, int H) {
    (void)B;
    (void)H;
    /* one score row of T floats per thread */
    return (size_t)omp_get_max_threads() * (size_t)T;
}

void nn_attention(const float *qkv, int B, int T, int D, int H, int causal, const int *key_mask, float *out,
                  float *work) {
    const int hd = D / H;
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t ld = (size_t)3 * D;
    /* One task per (batch, head, query row): scores against all visible keys, softmax, weighted sum of values. */
#pragma omp parallel
    {
        float *s = work + (size_t)omp_get_thread_num() * T;
#pragma omp for schedule(static) collapse(2)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                const float *base = qkv + (size_t)b * T * ld;
                const int *km = key_mask ? key_mask + (size_t)b * T : NULL;
                for (int i = 0; i < T; i++) {
                    const float *q = base + (size_t)i * ld + (size_t)h * hd;
                    int nk = causal ? i + 1 : T;
                    float mx = -INFINITY;
                    for (int j = 0; j < nk; j++) {
                        if (km && !km[j]) {
                            s[j] = -INFINITY;
                            continue;
                        }
                        const float *k = base + (size_t)j * ld + D + (size_t)h * hd;
                        float dot = 0;
                        for (int c = 0; c < hd; c++) dot += (q[c] * scale) * k[c];
                        s[j] = dot;
                        if (dot > mx) mx = dot;
                    }
                    float *o = out + ((size_t)b * T + i) * D + (size_t)h * hd;
                    memset(o, 0, (size_t)hd * sizeof *o);
                    if (mx == -INFINITY) continue; /* no visible key: HF would average; cannot happen for CLIP */
                    float sum = 0;
                    for (int j = 0; j < nk; j++) {
                        float e = s[j] == -INFINITY ? 0.0f : expf(s[j] - mx);
                        s[j] = e;
                        sum += e;
                    }
                    float inv = 1.0f / sum;
                    for (int j = 0; j < nk; j++) {
                        if (s[j] == 0.0f) continue;
                        const float *v = base + (size_t)j * ld + 2 * (size_t)D + (size_t)h * hd;
                        float p = s[j] * inv;
                        for (int c = 0; c < hd; c++) o[c] += p * v[c];
                    }
                }
            }
    }
}
