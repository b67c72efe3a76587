/* encoder_ops: where the time of the CLIP encoders goes, op class by op class, and what faster kernels would gain.
 *
 *   build/bench/encoder_ops [--config bench/configs/clip-vit-base-patch32.json] [--reps N] [--quick]
 *
 * For each workload (vision tower at batch 16 and 1, text tower at batch 16 with full and typical prompts) it
 * builds random layers of the configured shape (no model file needed) and times, with the library's own kernels
 * (src/nn: nn_layernorm, nn_gemm, nn_linear, nn_attention, nn_activation), every op of one encoder layer: the GEMMs,
 * their bias passes, attention, LayerNorm and the activation; then the whole encoder (all layers, distinct weights)
 * run exactly as models/clip.c runs it.
 *
 * It then times experimental replacements, defined below with an xp_ prefix, on the same inputs, checks them
 * against the library kernels (max |diff| relative to max |ref|) and runs the whole encoder with all of them:
 *   - attention with `omp simd` on its inner loops (a pragma-only change of nn_attention),
 *   - attention as two sgemm calls per (batch, head) with a vectorised softmax,
 *   - quick_gelu with a branch-free exp that compilers vectorise (fused with the fc1 bias),
 *   - LayerNorm and bias passes with `omp simd` (gcc 12 at -O2 vectorises no loop of src/nn without it).
 * Times are the best of the repetitions (the least disturbed by other processes), after warm-up.
 */
#include <dnnl.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench_common.h"
#include "io/clip_config.h"
#include "nn/gemm.h"
#include "nn/ops.h"

#define DEFAULT_CONFIG "bench/configs/clip-vit-base-patch32.json"

static int g_reps = 7;

/* ---- helpers -------------------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static float rng_normal(void) { /* sum of 4 uniforms, variance 1: good enough for activations and weights */
    float s = 0;
    for (int i = 0; i < 4; i++) {
        uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        s += (float)((double)(z >> 11) * (1.0 / 9007199254740992.0)) - 0.5f;
    }
    return s * 1.7320508f;
}

static float *alloc_floats(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, (n ? n : 1) * sizeof(float)) != 0) {
        fprintf(stderr, "encoder_ops: cannot allocate %zu MB\n", n * 4 >> 20);
        exit(1);
    }
    return p;
}

static float *random_floats(size_t n, float sd) {
    float *p = alloc_floats(n);
    for (size_t i = 0; i < n; i++) p[i] = rng_normal() * sd;
    return p;
}

static float *const_floats(size_t n, float v) {
    float *p = alloc_floats(n);
    for (size_t i = 0; i < n; i++) p[i] = v;
    return p;
}

/* max |a - b| / max |b| */
static double rel_diff(const float *a, const float *b, size_t n) {
    double md = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > md || d != d) md = d != d ? INFINITY : d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return mb > 0 ? md / mb : md;
}

/* ---- experimental kernels ---------------------------------------------------------------------------------- */

/* exp(a) for a <= 0, within ~2 ulp of expf; a below -87 is taken as -87 (e^-87 ~ 1.6e-38), -inf included.
 * Branch-free, no library call, integer selects only (gcc with -ftrapping-math refuses to if-convert float
 * selects here): gcc and clang vectorise it inside `omp simd` loops. Cephes expf polynomial. */
static inline float xp_exp_nonpos(float a) {
    uint32_t ab;
    memcpy(&ab, &a, 4);
    ab &= 0x7fffffffu;
    ab = ab < 0x42ae0000u ? ab : 0x42ae0000u; /* |a| <= 87 */
    memcpy(&a, &ab, 4);
    a = -a;
    float k = (a * 1.44269504f + 12582912.0f) - 12582912.0f; /* round(a / ln 2), in [-126, 0] */
    float r = a - k * 0.693359375f + k * 2.12194440e-4f;     /* a - k ln 2 (two-part ln 2) */
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

/* quick_gelu(x) = x * sigmoid(1.702 x) = x / (1 + e^-z) for z >= 0, x e^z / (1 + e^z) for z < 0 (z = 1.702 x):
 * only e^-|z| is needed, which never overflows. */
static inline float xp_quick_gelu1(float x) {
    float z = 1.702f * x;
    uint32_t zb, eb, nb;
    memcpy(&zb, &z, 4);
    float e = xp_exp_nonpos(z), num;
    memcpy(&eb, &e, 4);
    uint32_t neg = 0u - (zb >> 31);
    nb = (eb & neg) | (0x3f800000u & ~neg); /* z < 0 ? e : 1 */
    memcpy(&num, &nb, 4);
    return x * num / (1.0f + e);
}

static void xp_quick_gelu(float *x, size_t n) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = xp_quick_gelu1(x[i]);
}

/* y[M,N] += bias, then quick_gelu: one pass instead of nn_linear's bias pass + nn_activation's pass. */
static void xp_bias_quick_gelu(float *y, int M, int N, const float *bias) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++) {
        float *row = y + (size_t)i * N;
#pragma omp simd
        for (int j = 0; j < N; j++) row[j] = xp_quick_gelu1(row[j] + bias[j]);
    }
}

static void xp_bias(float *y, int M, int N, const float *bias) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++) {
        float *row = y + (size_t)i * N;
#pragma omp simd
        for (int j = 0; j < N; j++) row[j] += bias[j];
    }
}

/* nn_linear with the bias pass vectorised. */
static void xp_linear(const float *x, int M, int K, const float *W, const float *bias, int N, float *y, int acc) {
    dnnl_sgemm('N', 'T', M, N, K, 1.0f, x, K, W, K, acc ? 1.0f : 0.0f, y, N);
    if (bias) xp_bias(y, M, N, bias);
}

/* nn_layernorm with `omp simd` on its three loops (same double accumulation, reassociated). */
static void xp_layernorm(const float *x, int rows, int d, const float *gamma, const float *beta, float eps,
                         float *out) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * d;
        float *o = out + (size_t)r * d;
        double sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int i = 0; i < d; i++) sum += xr[i];
        float mean = (float)(sum / d);
        double var = 0;
#pragma omp simd reduction(+ : var)
        for (int i = 0; i < d; i++) {
            float c = xr[i] - mean;
            var += (double)c * c;
        }
        float inv = (float)(1.0 / sqrt(var / d + eps));
#pragma omp simd
        for (int i = 0; i < d; i++) o[i] = (xr[i] - mean) * inv * gamma[i] + beta[i];
    }
}

/* nn_attention with `omp simd` on the q.k dot product and the p*v accumulation: the only change. */
static void xp_attention_simd(const float *qkv, int B, int T, int D, int H, int causal, const int *key_mask,
                              float *out, float *work) {
    const int hd = D / H;
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t ld = (size_t)3 * D;
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
#pragma omp simd reduction(+ : dot)
                        for (int c = 0; c < hd; c++) dot += (q[c] * scale) * k[c];
                        s[j] = dot;
                        if (dot > mx) mx = dot;
                    }
                    float *o = out + ((size_t)b * T + i) * D + (size_t)h * hd;
                    memset(o, 0, (size_t)hd * sizeof *o);
                    if (mx == -INFINITY) continue;
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
#pragma omp simd
                        for (int c = 0; c < hd; c++) o[c] += p * v[c];
                    }
                }
            }
    }
}

static size_t xp_attention_gemm_work(int T) { return (size_t)omp_get_max_threads() * (size_t)T * (size_t)T; }

/* Attention as GEMMs: per (batch, head), S = scale Q K^T (one sgemm, T x T x hd), row softmax over the visible
 * keys (vectorised exp), O = P V (one sgemm, T x hd x T). oneDNN runs sequentially inside the parallel region. */
static void xp_attention_gemm(const float *qkv, int B, int T, int D, int H, int causal, const int *key_mask,
                              float *out, float *work) {
    const int hd = D / H, ld = 3 * D;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel
    {
        float *S = work + (size_t)omp_get_thread_num() * T * T;
#pragma omp for schedule(static) collapse(2)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                const float *q = qkv + (size_t)b * T * ld + (size_t)h * hd, *k = q + D, *v = q + 2 * D;
                const int *km = key_mask ? key_mask + (size_t)b * T : NULL;
                dnnl_sgemm('N', 'T', T, T, hd, scale, q, ld, k, ld, 0.0f, S, T);
                for (int i = 0; i < T; i++) {
                    float *s = S + (size_t)i * T;
                    const int nk = causal ? i + 1 : T;
                    float mx = -INFINITY;
                    for (int j = 0; j < nk; j++)
                        if ((!km || km[j]) && s[j] > mx) mx = s[j];
                    if (mx == -INFINITY) { /* no visible key: zero output, as nn_attention */
                        memset(s, 0, (size_t)T * sizeof *s);
                        continue;
                    }
#pragma omp simd
                    for (int j = 0; j < nk; j++) s[j] = xp_exp_nonpos(s[j] - mx);
                    if (km)
                        for (int j = 0; j < nk; j++)
                            if (!km[j]) s[j] = 0.0f;
                    float sum = 0;
#pragma omp simd reduction(+ : sum)
                    for (int j = 0; j < nk; j++) sum += s[j];
                    const float inv = 1.0f / sum;
#pragma omp simd
                    for (int j = 0; j < nk; j++) s[j] *= inv;
                    for (int j = nk; j < T; j++) s[j] = 0.0f;
                }
                dnnl_sgemm('N', 'N', T, hd, T, 1.0f, S, T, v, ld, 0.0f, out + (size_t)b * T * D + (size_t)h * hd, D);
            }
    }
}

/* ---- one workload -------------------------------------------------------------------------------------------- */

typedef struct {
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b, *qkv_w, *qkv_b, *o_w, *o_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} layer_w;

typedef struct {
    const char *name;
    int D, F, H, L, B, T, causal, valid; /* valid: unmasked tokens per sequence (text) */
    nn_act act;
    float eps;
    layer_w *lw;                               /* L layers */
    float *x, *x0, *h, *qkv, *att, *mlp, *work; /* activations; x0: the encoder input */
    int *km;
    int op;   /* which op op_run runs */
    int mode; /* 0 = library kernels, 1 = experimental */
} wl;

enum {
    OP_LN,
    OP_QKV_GEMM,
    OP_QKV_BIAS,
    OP_ATTN,
    OP_OUT_GEMM,
    OP_OUT_BIAS,
    OP_FC1_GEMM,
    OP_FC1_BIAS,
    OP_ACT,
    OP_FC2_GEMM,
    OP_FC2_BIAS,
    N_OPS,
    OP_ATTN_SIMD = N_OPS,
    OP_ATTN_GEMM,
    OP_ACT_XP,
    OP_BIAS_ACT_XP,
    OP_LN_XP,
    OP_BIAS_XP,
    OP_ENCODER
};

/* nn_linear's bias pass, as src/nn/gemm.c writes it. */
static void lib_bias(float *y, int M, int N, const float *bias) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < M; i++) {
        float *row = y + (size_t)i * N;
        for (int j = 0; j < N; j++) row[j] += bias[j];
    }
}

/* The encoder loop of models/clip.c, with the library's kernels (mode 0) or the experimental ones (mode 1). */
static void run_encoder(wl *w) {
    const int D = w->D, F = w->F, rows = w->B * w->T;
    const int *km = w->causal ? w->km : NULL;
    memcpy(w->x, w->x0, (size_t)rows * D * sizeof(float));
    for (int i = 0; i < w->L; i++) {
        const layer_w *l = &w->lw[i];
        if (w->mode == 0) {
            nn_layernorm(w->x, rows, D, l->ln1_w, l->ln1_b, w->eps, w->h);
            nn_linear(w->h, rows, D, l->qkv_w, l->qkv_b, 3 * D, w->qkv, 0, NULL);
            nn_attention(w->qkv, w->B, w->T, D, w->H, w->causal, km, w->att, w->work);
            nn_linear(w->att, rows, D, l->o_w, l->o_b, D, w->x, 1, NULL);
            nn_layernorm(w->x, rows, D, l->ln2_w, l->ln2_b, w->eps, w->h);
            nn_linear(w->h, rows, D, l->fc1_w, l->fc1_b, F, w->mlp, 0, NULL);
            nn_activation(w->mlp, (size_t)rows * F, w->act);
            nn_linear(w->mlp, rows, F, l->fc2_w, l->fc2_b, D, w->x, 1, NULL);
        } else {
            xp_layernorm(w->x, rows, D, l->ln1_w, l->ln1_b, w->eps, w->h);
            xp_linear(w->h, rows, D, l->qkv_w, l->qkv_b, 3 * D, w->qkv, 0);
            xp_attention_gemm(w->qkv, w->B, w->T, D, w->H, w->causal, km, w->att, w->work);
            xp_linear(w->att, rows, D, l->o_w, l->o_b, D, w->x, 1);
            xp_layernorm(w->x, rows, D, l->ln2_w, l->ln2_b, w->eps, w->h);
            xp_linear(w->h, rows, D, l->fc1_w, NULL, F, w->mlp, 0);
            if (w->act == NN_ACT_QUICK_GELU) {
                xp_bias_quick_gelu(w->mlp, rows, F, l->fc1_b);
            } else {
                xp_bias(w->mlp, rows, F, l->fc1_b);
                nn_activation(w->mlp, (size_t)rows * F, w->act);
            }
            xp_linear(w->mlp, rows, F, l->fc2_w, l->fc2_b, D, w->x, 1);
        }
    }
}

static void op_run(void *ctx) {
    wl *w = ctx;
    const layer_w *l = &w->lw[0];
    const int D = w->D, F = w->F, rows = w->B * w->T;
    const int *km = w->causal ? w->km : NULL;
    switch (w->op) {
    case OP_LN: nn_layernorm(w->x, rows, D, l->ln1_w, l->ln1_b, w->eps, w->h); break;
    case OP_QKV_GEMM: nn_gemm('N', 'T', rows, 3 * D, D, 1, w->h, D, l->qkv_w, D, 0, w->qkv, 3 * D, NULL); break;
    case OP_QKV_BIAS: lib_bias(w->qkv, rows, 3 * D, l->qkv_b); break;
    case OP_ATTN: nn_attention(w->qkv, w->B, w->T, D, w->H, w->causal, km, w->att, w->work); break;
    case OP_OUT_GEMM: nn_gemm('N', 'T', rows, D, D, 1, w->att, D, l->o_w, D, 1, w->h, D, NULL); break;
    case OP_OUT_BIAS: lib_bias(w->h, rows, D, l->o_b); break;
    case OP_FC1_GEMM: nn_gemm('N', 'T', rows, F, D, 1, w->h, D, l->fc1_w, D, 0, w->mlp, F, NULL); break;
    case OP_FC1_BIAS: lib_bias(w->mlp, rows, F, l->fc1_b); break;
    case OP_ACT: nn_activation(w->mlp, (size_t)rows * F, w->act); break;
    case OP_FC2_GEMM: nn_gemm('N', 'T', rows, D, F, 1, w->mlp, F, l->fc2_w, F, 1, w->h, D, NULL); break;
    case OP_FC2_BIAS: lib_bias(w->h, rows, D, l->fc2_b); break;
    case OP_ATTN_SIMD: xp_attention_simd(w->qkv, w->B, w->T, D, w->H, w->causal, km, w->att, w->work); break;
    case OP_ATTN_GEMM: xp_attention_gemm(w->qkv, w->B, w->T, D, w->H, w->causal, km, w->att, w->work); break;
    case OP_ACT_XP: xp_quick_gelu(w->mlp, (size_t)rows * F); break;
    case OP_BIAS_ACT_XP: xp_bias_quick_gelu(w->mlp, rows, F, l->fc1_b); break;
    case OP_LN_XP: xp_layernorm(w->x, rows, D, l->ln1_w, l->ln1_b, w->eps, w->h); break;
    case OP_BIAS_XP: xp_bias(w->qkv, rows, 3 * D, l->qkv_b); break;
    case OP_ENCODER: run_encoder(w); break;
    }
}

/* Best seconds per call of each of ops[0..n), timed round-robin (op 0, op 1, ..., op 0, ...) so that every op
 * samples the same periods of the run: a burst of activity from another process slows them all, and the best of
 * the repetitions is the least disturbed. */
static void time_ops(wl *w, const int *ops, int n, int warm, int reps, double *best) {
    for (int k = 0; k < n; k++) {
        best[k] = INFINITY;
        w->op = ops[k];
        for (int r = 0; r < warm; r++) op_run(w);
    }
    for (int r = 0; r < reps; r++)
        for (int k = 0; k < n; k++) {
            w->op = ops[k];
            double t0 = omp_get_wtime();
            op_run(w);
            double t = omp_get_wtime() - t0;
            if (t < best[k]) best[k] = t;
        }
}

/* The whole encoder with the library kernels (t[0]) and the experimental ones (t[1]), alternating. */
static void time_encoders(wl *w, int reps, double t[2]) {
    t[0] = t[1] = INFINITY;
    w->op = OP_ENCODER;
    for (int r = 0; r <= reps; r++)
        for (int mode = 0; mode < 2; mode++) {
            w->mode = mode;
            double t0 = omp_get_wtime();
            op_run(w);
            double dt = omp_get_wtime() - t0;
            if (r > 0 && dt < t[mode]) t[mode] = dt; /* round 0 is the warm-up */
        }
    w->mode = 0;
}

static void wl_init(wl *w, const char *name, const clip_tower_config *c, int B, int T, int causal, int valid) {
    memset(w, 0, sizeof *w);
    w->name = name;
    w->D = c->hidden;
    w->F = c->mlp;
    w->H = c->heads;
    w->L = c->layers;
    w->B = B;
    w->T = T;
    w->causal = causal;
    w->valid = valid;
    w->act = c->act == CLIP_ACT_GELU ? NN_ACT_GELU : NN_ACT_QUICK_GELU;
    w->eps = (float)c->ln_eps;
    const size_t D = (size_t)w->D, F = (size_t)w->F, rows = (size_t)B * T;
    w->lw = calloc((size_t)w->L, sizeof *w->lw);
    if (!w->lw) exit(1);
    for (int i = 0; i < w->L; i++) {
        layer_w *l = &w->lw[i];
        l->ln1_w = const_floats(D, 1.0f);
        l->ln1_b = const_floats(D, 0.0f);
        l->ln2_w = const_floats(D, 1.0f);
        l->ln2_b = const_floats(D, 0.0f);
        l->qkv_w = random_floats(3 * D * D, 0.02f);
        l->qkv_b = random_floats(3 * D, 0.02f);
        l->o_w = random_floats(D * D, 0.02f);
        l->o_b = random_floats(D, 0.02f);
        l->fc1_w = random_floats(F * D, 0.02f);
        l->fc1_b = random_floats(F, 0.02f);
        l->fc2_w = random_floats(D * F, 0.02f);
        l->fc2_b = random_floats(D, 0.02f);
    }
    w->x0 = random_floats(rows * D, 1.0f);
    w->x = alloc_floats(rows * D);
    memcpy(w->x, w->x0, rows * D * sizeof(float));
    w->h = random_floats(rows * D, 1.0f);
    w->qkv = random_floats(rows * 3 * D, 1.0f);
    w->att = random_floats(rows * D, 1.0f);
    w->mlp = random_floats(rows * F, 1.0f);
    size_t ws = nn_attention_work_size(B, T, w->H), wg = xp_attention_gemm_work(T);
    w->work = alloc_floats(ws > wg ? ws : wg);
    w->km = malloc(rows * sizeof *w->km);
    if (!w->km) exit(1);
    for (size_t i = 0; i < rows; i++) w->km[i] = (int)(i % (size_t)T) < valid;
}

static void wl_free(wl *w) {
    for (int i = 0; i < w->L; i++) {
        layer_w *l = &w->lw[i];
        float *p[12] = {l->ln1_w, l->ln1_b, l->ln2_w, l->ln2_b, l->qkv_w, l->qkv_b,
                        l->o_w,   l->o_b,   l->fc1_w, l->fc1_b, l->fc2_w, l->fc2_b};
        for (int k = 0; k < 12; k++) free(p[k]);
    }
    free(w->lw);
    free(w->x0);
    free(w->x);
    free(w->h);
    free(w->qkv);
    free(w->att);
    free(w->mlp);
    free(w->work);
    free(w->km);
}

/* FLOPs of one layer's op (2 per multiply-add); attention counts the visible (causal) pairs only. */
static double op_flops(const wl *w, int op) {
    const double rows = (double)w->B * w->T, D = w->D, F = w->F, T = w->T;
    const double pairs = w->causal ? T * (T + 1) / 2 : T * T;
    switch (op) {
    case OP_QKV_GEMM: return 2 * rows * D * 3 * D;
    case OP_OUT_GEMM: return 2 * rows * D * D;
    case OP_FC1_GEMM:
    case OP_FC2_GEMM: return 2 * rows * D * F;
    case OP_ATTN:
    case OP_ATTN_SIMD:
    case OP_ATTN_GEMM: return 4 * w->B * pairs * D;
    default: return 0;
    }
}

/* Correctness of the experimental kernels against the library ones on this workload's data. */
static void check_variants(wl *w, double *d_attn_simd, double *d_attn_gemm, double *d_act, double *d_ln,
                           double *d_enc) {
    const size_t rows = (size_t)w->B * w->T, D = (size_t)w->D, F = (size_t)w->F;
    const int *km = w->causal ? w->km : NULL;
    float *ref = alloc_floats(rows * (F > 3 * D ? F : 3 * D));
    nn_attention(w->qkv, w->B, w->T, w->D, w->H, w->causal, km, ref, w->work);
    xp_attention_simd(w->qkv, w->B, w->T, w->D, w->H, w->causal, km, w->att, w->work);
    *d_attn_simd = rel_diff(w->att, ref, rows * D);
    xp_attention_gemm(w->qkv, w->B, w->T, w->D, w->H, w->causal, km, w->att, w->work);
    *d_attn_gemm = rel_diff(w->att, ref, rows * D);

    float *src = random_floats(rows * F, 2.0f);
    memcpy(ref, src, rows * F * sizeof *ref);
    lib_bias(ref, (int)rows, (int)F, w->lw[0].fc1_b);
    nn_activation(ref, rows * F, NN_ACT_QUICK_GELU);
    memcpy(w->mlp, src, rows * F * sizeof *ref);
    xp_bias_quick_gelu(w->mlp, (int)rows, (int)F, w->lw[0].fc1_b);
    *d_act = rel_diff(w->mlp, ref, rows * F);
    free(src);

    nn_layernorm(w->x0, (int)rows, (int)D, w->lw[0].ln1_w, w->lw[0].ln1_b, w->eps, ref);
    xp_layernorm(w->x0, (int)rows, (int)D, w->lw[0].ln1_w, w->lw[0].ln1_b, w->eps, w->h);
    *d_ln = rel_diff(w->h, ref, rows * D);

    w->mode = 0;
    run_encoder(w);
    memcpy(ref, w->x, rows * D * sizeof *ref);
    w->mode = 1;
    run_encoder(w);
    *d_enc = rel_diff(w->x, ref, rows * D);
    w->mode = 0;
    free(ref);
}

static void profile(wl *w) {
    static const char *const names[N_OPS] = {
        "layernorm (x2)", "qkv GEMM", "qkv bias",        "attention",       "out_proj GEMM (+= x)", "out_proj bias",
        "fc1 GEMM",       "fc1 bias", "activation",      "fc2 GEMM (+= x)", "fc2 bias"};
    const int rows = w->B * w->T;
    const double busy0 = bench_machine_busy_s(), self0 = bench_cpu_s(0), wall0 = omp_get_wtime();

    /* the library's ops, one layer */
    double t[N_OPS], sum = 0, gemm = 0, gemm_fl = 0, peak = 0;
    int all[N_OPS];
    for (int op = 0; op < N_OPS; op++) all[op] = op;
    time_ops(w, all, N_OPS, 2, g_reps, t);
    t[OP_LN] *= 2; /* two LayerNorms per layer */
    for (int op = 0; op < N_OPS; op++) {
        sum += t[op];
        double fl = op_flops(w, op);
        if (op == OP_QKV_GEMM || op == OP_OUT_GEMM || op == OP_FC1_GEMM || op == OP_FC2_GEMM) {
            gemm += t[op];
            gemm_fl += fl;
            if (fl / t[op] > peak) peak = fl / t[op];
        }
    }
    const double layer_fl = gemm_fl + op_flops(w, OP_ATTN), enc_fl = layer_fl * w->L;

    /* the experimental kernels beside the library's, round-robin; then both whole encoders, alternating */
    double d_as, d_ag, d_act, d_ln, d_enc;
    check_variants(w, &d_as, &d_ag, &d_act, &d_ln, &d_enc);
    enum { X_ATTN, X_ATTN_SIMD, X_ATTN_GEMM, X_FC1_BIAS, X_ACT, X_ACT_XP, X_BIAS_ACT, X_LN, X_LN_XP, X_BIAS, X_BIAS_XP,
           N_X };
    const int xops[N_X] = {OP_ATTN, OP_ATTN_SIMD, OP_ATTN_GEMM, OP_FC1_BIAS, OP_ACT,     OP_ACT_XP,
                           OP_BIAS_ACT_XP, OP_LN, OP_LN_XP,     OP_QKV_BIAS, OP_BIAS_XP};
    double x[N_X], enc[2];
    time_ops(w, xops, N_X, 2, g_reps, x);
    time_encoders(w, g_reps > 3 ? (g_reps + 1) / 2 : g_reps, enc);
    const double busy1 = bench_machine_busy_s(), self1 = bench_cpu_s(0), wall1 = omp_get_wtime();
    const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    const double foreign = ((busy1 - busy0) - (self1 - self0)) / ((wall1 - wall0) * (double)(ncpu > 0 ? ncpu : 1));

    printf("\n== %s: batch %d x %d tokens (%d rows), D %d, F %d, %d heads, %d layers, %d threads\n", w->name, w->B,
           w->T, rows, w->D, w->F, w->H, w->L, omp_get_max_threads());
    printf("  %-22s %9s %9s %7s %9s\n", "op (library kernels)", "ms/layer", "ms/enc", "share", "GFLOP/s");
    for (int op = 0; op < N_OPS; op++) {
        double fl = op_flops(w, op);
        char rate[16] = "";
        if (fl > 0) snprintf(rate, sizeof rate, "%.1f", fl / t[op] * 1e-9);
        printf("  %-22s %9.3f %9.2f %6.1f%% %9s\n", names[op], t[op] * 1e3, t[op] * w->L * 1e3, 100 * t[op] / sum,
               rate);
    }
    printf("  %-22s %9.3f %9.2f %6.1f%% %9.1f\n", "sum of ops", sum * 1e3, sum * w->L * 1e3, 100.0,
           layer_fl / sum * 1e-9);
    printf("  %-22s %9.3f %9.2f %6.1f%% %9.1f   (the ceiling with these GEMMs)\n", "  of which GEMM", gemm * 1e3,
           gemm * w->L * 1e3, 100 * gemm / sum, gemm_fl / gemm * 1e-9);
    printf("  %-22s %9.3f %9.2f %7s %9.1f   (%d layers run as models/clip.c runs them)\n", "encoder, measured",
           enc[0] / w->L * 1e3, enc[0] * 1e3, "", enc_fl / enc[0] * 1e-9, w->L);

    printf("  %-40s %9s %9s %8s %9s\n", "experiment (per layer)", "lib ms", "new ms", "speed-up", "max diff");
    printf("  %-40s %9.3f %9.3f %7.1fx %9.2g\n", "attention, omp simd inner loops", x[X_ATTN] * 1e3,
           x[X_ATTN_SIMD] * 1e3, x[X_ATTN] / x[X_ATTN_SIMD], d_as);
    printf("  %-40s %9.3f %9.3f %7.1fx %9.2g\n", "attention, sgemm per (batch, head)", x[X_ATTN] * 1e3,
           x[X_ATTN_GEMM] * 1e3, x[X_ATTN] / x[X_ATTN_GEMM], d_ag);
    if (w->act == NN_ACT_QUICK_GELU) {
        printf("  %-40s %9.3f %9.3f %7.1fx %9s\n", "quick_gelu, vectorised exp", x[X_ACT] * 1e3, x[X_ACT_XP] * 1e3,
               x[X_ACT] / x[X_ACT_XP], "");
        printf("  %-40s %9.3f %9.3f %7.1fx %9.2g\n", "fc1 bias + quick_gelu, fused", (x[X_FC1_BIAS] + x[X_ACT]) * 1e3,
               x[X_BIAS_ACT] * 1e3, (x[X_FC1_BIAS] + x[X_ACT]) / x[X_BIAS_ACT], d_act);
    }
    printf("  %-40s %9.3f %9.3f %7.1fx %9.2g\n", "layernorm (x2), omp simd", 2 * x[X_LN] * 1e3, 2 * x[X_LN_XP] * 1e3,
           x[X_LN] / x[X_LN_XP], d_ln);
    printf("  %-40s %9.3f %9.3f %7.1fx %9s\n", "qkv bias pass, omp simd", x[X_BIAS] * 1e3, x[X_BIAS_XP] * 1e3,
           x[X_BIAS] / x[X_BIAS_XP], "");
    printf("  %-40s %9.2f %9.2f %7.2fx %9.2g\n", "whole encoder, all of the above (ms/enc)", enc[0] * 1e3,
           enc[1] * 1e3, enc[0] / enc[1], d_enc);
    printf("  encoder: %.1f -> %.1f GFLOP/s = %.1f%% -> %.1f%% of the best GEMM of the layer (%.1f GFLOP/s)\n",
           enc_fl / enc[0] * 1e-9, enc_fl / enc[1] * 1e-9, 100 * enc_fl / enc[0] / peak, 100 * enc_fl / enc[1] / peak,
           peak * 1e-9);
    if (busy0 >= 0 && busy1 >= 0)
        printf("  other processes used %.0f%% of the CPUs meanwhile%s\n", 100 * (foreign > 0 ? foreign : 0),
               foreign > 0.05 ? " (timings disturbed: rerun on a quiet machine)" : "");
    fflush(stdout);
}

int main(int argc, char **argv) {
    const char *config_path = DEFAULT_CONFIG;
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) config_path = argv[++i];
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) g_reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else {
            fprintf(stderr, "usage: encoder_ops [--config PATH] [--reps N] [--quick]\n"
                            "  --quick  the batch-16 vision workload only\n");
            return 2;
        }
    }
    if (g_reps < 1 || g_reps > 1000) g_reps = 7;
    clip_config cfg;
    clxp_error err;
    if (clip_config_load(config_path, &cfg, &err) != CLXP_OK) {
        fprintf(stderr, "encoder_ops: %s\n", err.msg);
        return 1;
    }
    const int g = cfg.image_size / cfg.patch_size, Tv = g * g + 1;
    printf("encoder op profile: %s, %d threads, best of %d runs per measurement\n", config_path,
           omp_get_max_threads(), g_reps);
    wl w;
    wl_init(&w, "vision encoder", &cfg.vision, 16, Tv, 0, Tv);
    profile(&w);
    wl_free(&w);
    if (quick) return 0;
    wl_init(&w, "vision encoder", &cfg.vision, 1, Tv, 0, Tv);
    profile(&w);
    wl_free(&w);
    wl_init(&w, "text encoder, full context", &cfg.text, 16, cfg.context_length, 1, cfg.context_length);
    profile(&w);
    wl_free(&w);
    const int typical = cfg.context_length < 10 ? cfg.context_length : 10;
    wl_init(&w, "text encoder, typical prompt (computed positions only)", &cfg.text, 16, typical, 1, typical);
    profile(&w);
    wl_free(&w);
    return 0;
}
