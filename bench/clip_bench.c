/* clip_bench: throughput of the CLIP towers on real configurations with random weights, in fp32 and bf16, against
 * the GEMM peak of the same precision measured in the same process, with peak memory, the label-bank build time
 * and PyTorch and ONNX Runtime comparison rows. `make bench` runs it (bench/run.sh).
 *
 *   build/bench/clip_bench [--configs b32,b16,l14] [--config PATH ...] [--precisions fp32,bf16] [--reps N]
 *                          [--min-time SEC] [--torch | --no-torch] [--ort | --no-ort] [--keep]
 *
 * For each configuration (default: ViT-B/32, ViT-B/16, ViT-L/14 from bench/configs):
 * 1. A temporary model directory: config.json (copied), model.safetensors with N(0, 0.02) weights for every tensor
 *    clip_model_load expects (LayerNorm weights 1, biases 0, logit_scale ln 100), generated in a child process,
 *    and the real CLIP tokenizer.json (tests/data) so that label banks can be built.
 * 2. For each precision, a child process (so that each reports its own peak RSS) loads it through the library
 *    (clxp_model_load: weights packed once in that precision) and measures
 *      - the GEMM peak of that precision: nn_linear_m with packed weights on the image tower's batch-16 shapes
 *        (and, for reference, dnnl_sgemm in fp32), in the same thread pool;
 *      - images/s at batch 1 and 16; for the text towers (CLIP-B of B/32, CLIP-L of L/14) prompts/s at batch 16 for
 *        typical (10-token) and full-context prompts; each the median of repeated calls after warm-up, with the
 *        achieved GFLOP/s (analytic count) and its ratio to the peak probed just before each call (paired);
 *      - the label bank of the seed's categories file (tests/data/seed/categories_clip.txt): seconds to build;
 *      - peak RSS against the weights in that precision plus one batch-16 activation arena.
 * 3. --torch (default when /usr/bin/python3 has torch): bench/torch_clip.py runs a plain PyTorch module of the same
 *    image tower on the same weights, same thread count, with OpenMP OpenBLAS and OPENBLAS_CORETYPE set for this
 *    CPU; its fp32 output is compared with clxp's (relative max difference) and clxp/PyTorch ratios printed.
 * 4. --ort (default when /usr/bin/python3 has torch and bench/ort has onnxruntime-node): bench/onnx_export.py exports
 *    the same PyTorch modules (image tower; CLIP-B text tower) to ONNX (opset 14, dynamic batch axis) and
 *    bench/ort/ort_clip.js runs them with onnxruntime-node's CPU execution provider (intra-op threads = the thread
 *    count, all graph optimisations); fp32 outputs compared with clxp's, clxp/ORT ratios printed (bf16 rows against
 *    ORT fp32). ViT-B/32 only, like the PyTorch row.
 * Threads: OMP_NUM_THREADS, else all online CPUs; oneDNN and clxp's kernels share one OpenMP pool.
 */
#include <dnnl.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_common.h"
#include "api/internal.h"
#include "io/clip_config.h"
#include "io/safetensors_write.h"
#include "models/clip.h"
#include "nn/gemm.h"
#include "util/fileio.h"

/* ---- random weights --------------------------------------------------------------------------------- */

static double rng_uniform(void) { return ((double)(bench_rng_next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

/* n samples of N(0, sd^2) (Box-Muller). */
static void fill_normal(float *x, size_t n, float sd) {
    for (size_t i = 0; i < n; i += 2) {
        double r = sqrt(-2.0 * log(rng_uniform())), a = 6.283185307179586 * rng_uniform();
        x[i] = (float)(r * cos(a)) * sd;
        if (i + 1 < n) x[i + 1] = (float)(r * sin(a)) * sd;
    }
}

typedef enum { INIT_NORMAL, INIT_ONES, INIT_ZEROS, INIT_LOGIT_SCALE } init_kind;

typedef struct {
    char name[128];
    int ndim;
    int64_t shape[4];
    init_kind init;
} tensor_spec;

typedef struct {
    tensor_spec *v;
    int n, cap;
} spec_list;

static int spec_add(spec_list *l, init_kind init, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                    const char *fmt, ...) __attribute__((format(printf, 8, 9)));
static int spec_add(spec_list *l, init_kind init, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                    const char *fmt, ...) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 256;
        tensor_spec *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return 0;
        l->v = v;
        l->cap = cap;
    }
    tensor_spec *t = &l->v[l->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->ndim = ndim;
    int64_t d[4] = {d0, d1, d2, d3};
    memcpy(t->shape, d, sizeof d);
    t->init = init;
    return 1;
}

/* Every tensor clip_model_load looks up, with Hugging Face names and shapes. */
static int clip_specs(const clip_config *c, spec_list *l) {
    const int64_t Dv = c->vision.hidden, Dt = c->text.hidden, P = c->patch_size, Pj = c->projection_dim;
    const int64_t grid = c->image_size / c->patch_size;
    int ok = 1;
    ok &= spec_add(l, INIT_NORMAL, 4, Dv, c->num_channels, P, P, "vision_model.embeddings.patch_embedding.weight");
    ok &= spec_add(l, INIT_NORMAL, 1, Dv, 0, 0, 0, "vision_model.embeddings.class_embedding");
    ok &= spec_add(l, INIT_NORMAL, 2, grid * grid + 1, Dv, 0, 0, "vision_model.embeddings.position_embedding.weight");
    ok &= spec_add(l, INIT_ONES, 1, Dv, 0, 0, 0, "vision_model.pre_layrnorm.weight");
    ok &= spec_add(l, INIT_ZEROS, 1, Dv, 0, 0, 0, "vision_model.pre_layrnorm.bias");
    ok &= spec_add(l, INIT_ONES, 1, Dv, 0, 0, 0, "vision_model.post_layernorm.weight");
    ok &= spec_add(l, INIT_ZEROS, 1, Dv, 0, 0, 0, "vision_model.post_layernorm.bias");
    ok &= spec_add(l, INIT_NORMAL, 2, Pj, Dv, 0, 0, "visual_projection.weight");
    ok &= spec_add(l, INIT_NORMAL, 2, c->vocab_size, Dt, 0, 0, "text_model.embeddings.token_embedding.weight");
    ok &= spec_add(l, INIT_NORMAL, 2, c->context_length, Dt, 0, 0, "text_model.embeddings.position_embedding.weight");
    ok &= spec_add(l, INIT_ONES, 1, Dt, 0, 0, 0, "text_model.final_layer_norm.weight");
    ok &= spec_add(l, INIT_ZEROS, 1, Dt, 0, 0, 0, "text_model.final_layer_norm.bias");
    ok &= spec_add(l, INIT_NORMAL, 2, Pj, Dt, 0, 0, "text_projection.weight");
    ok &= spec_add(l, INIT_LOGIT_SCALE, 0, 0, 0, 0, 0, "logit_scale");
    const struct {
        const char *prefix;
        const clip_tower_config *t;
    } towers[2] = {{"vision_model", &c->vision}, {"text_model", &c->text}};
    for (int k = 0; k < 2; k++) {
        const char *p = towers[k].prefix;
        const int64_t D = towers[k].t->hidden, F = towers[k].t->mlp;
        for (int i = 0; i < towers[k].t->layers; i++) {
            static const char *const proj[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
            for (int j = 1; j <= 2; j++) {
                ok &= spec_add(l, INIT_ONES, 1, D, 0, 0, 0, "%s.encoder.layers.%d.layer_norm%d.weight", p, i, j);
                ok &= spec_add(l, INIT_ZEROS, 1, D, 0, 0, 0, "%s.encoder.layers.%d.layer_norm%d.bias", p, i, j);
            }
            for (int j = 0; j < 4; j++) {
                ok &= spec_add(l, INIT_NORMAL, 2, D, D, 0, 0, "%s.encoder.layers.%d.self_attn.%s.weight", p, i, proj[j]);
                ok &= spec_add(l, INIT_NORMAL, 1, D, 0, 0, 0, "%s.encoder.layers.%d.self_attn.%s.bias", p, i, proj[j]);
            }
            ok &= spec_add(l, INIT_NORMAL, 2, F, D, 0, 0, "%s.encoder.layers.%d.mlp.fc1.weight", p, i);
            ok &= spec_add(l, INIT_NORMAL, 1, F, 0, 0, 0, "%s.encoder.layers.%d.mlp.fc1.bias", p, i);
            ok &= spec_add(l, INIT_NORMAL, 2, D, F, 0, 0, "%s.encoder.layers.%d.mlp.fc2.weight", p, i);
            ok &= spec_add(l, INIT_NORMAL, 1, D, 0, 0, 0, "%s.encoder.layers.%d.mlp.fc2.bias", p, i);
        }
    }
    return ok;
}

static size_t spec_numel(const tensor_spec *t) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    return n;
}

/* Write model.safetensors for cfg into dir; returns the number of parameters, or -1 (message printed). */
static int64_t write_random_model(const clip_config *cfg, const char *path) {
    spec_list l = {0};
    st_write_tensor *ts = NULL;
    float *data = NULL;
    int64_t result = -1;
    if (!clip_specs(cfg, &l)) {
        fprintf(stderr, "clip_bench: out of memory\n");
        goto done;
    }
    size_t total = 0;
    for (int i = 0; i < l.n; i++) total += spec_numel(&l.v[i]);
    ts = calloc((size_t)l.n, sizeof *ts);
    data = malloc(total * sizeof *data);
    if (!ts || !data) {
        fprintf(stderr, "clip_bench: cannot allocate %zu MB for the random weights\n", total * 4 >> 20);
        goto done;
    }
    float *p = data;
    for (int i = 0; i < l.n; i++) {
        const tensor_spec *t = &l.v[i];
        size_t n = spec_numel(t);
        switch (t->init) {
        case INIT_NORMAL: fill_normal(p, n, 0.02f); break;
        case INIT_ONES:
            for (size_t k = 0; k < n; k++) p[k] = 1.0f;
            break;
        case INIT_ZEROS: memset(p, 0, n * sizeof *p); break;
        case INIT_LOGIT_SCALE: p[0] = 4.6052f; break; /* ln(100), as trained CLIP checkpoints end up */
        }
        ts[i] = (st_write_tensor){t->name, ST_F32, t->ndim, t->shape, p};
        p += n;
    }
    st_write_meta meta[1] = {{"format", "pt"}};
    clxp_error err;
    if (st_write(path, ts, l.n, meta, 1, &err) != CLXP_OK) {
        fprintf(stderr, "clip_bench: %s\n", err.msg);
        goto done;
    }
    result = (int64_t)total;
done:
    free(data);
    free(ts);
    free(l.v);
    return result;
}

/* Generate the model in a child process (its memory never counts in this process's peak RSS). */
static int write_model_dir(const clip_config *cfg, const char *config_path, const char *dir, int64_t *n_params) {
    char *cfg_text = NULL, path[4200];
    size_t len = 0;
    clxp_error err;
    if (clxp_read_file(config_path, CLXP_MAX_JSON_BYTES, &cfg_text, &len, &err) != CLXP_OK) {
        fprintf(stderr, "clip_bench: %s\n", err.msg);
        return 0;
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(cfg_text, 1, len, f) == len;
    if (f && fclose(f) != 0) ok = 0;
    free(cfg_text);
    if (!ok) {
        fprintf(stderr, "clip_bench: cannot write %s: %s\n", path, strerror(errno));
        return 0;
    }
    int fds[2];
    if (pipe(fds) != 0) {
        perror("clip_bench: pipe");
        return 0;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("clip_bench: fork");
        close(fds[0]);
        close(fds[1]);
        return 0;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (pid == 0) {
        close(fds[0]);
        int64_t n = write_random_model(cfg, path);
        ssize_t w = write(fds[1], &n, sizeof n);
        _exit(n >= 0 && w == (ssize_t)sizeof n ? 0 : 1);
    }
    close(fds[1]);
    int64_t n = -1;
    if (read(fds[0], &n, sizeof n) != (ssize_t)sizeof n) n = -1;
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || n < 0) {
        fprintf(stderr, "clip_bench: writing the random model failed\n");
        return 0;
    }
    *n_params = n;
    return 1;
}

static void remove_model_dir(const char *dir) {
    static const char *const files[] = {"config.json", "model.safetensors", "tokenizer.json", "special_tokens_map.json",
                                        "tokenizer_config.json", "check_pixels.f32",
                                        "check_embeds.f32", "check_ids.i32", "check_text_embeds.f32",
                                        "vision.onnx", "text.onnx"};
    char path[4200];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* ---- timing ------------------------------------------------------------------------------------------- */

typedef int (*bench_fn)(void *ctx); /* returns 1 on success */

static double median_of(double *v, int n) {
    qsort(v, (size_t)n, sizeof v[0], bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* One GEMM of a linear layer: y[M,N] = x[M,K] W^T, W packed (nn_linear_m) or plain (dnnl_sgemm as nn_linear). */
typedef struct {
    int M;
    const nn_matrix *W;
    const float *x;
    float *y;
} gemm_ctx;

static int run_gemm(void *p) {
    gemm_ctx *g = p;
    clxp_error err;
    return nn_linear_m(g->W, g->x, g->M, NULL, g->y, 0, &err) == CLXP_OK;
}

typedef struct {
    double median, best; /* seconds per call */
    double ratio;        /* median over the runs of (flops / time) / (probe GFLOP/s just before it); 0 without probe */
} timing;

/* The peak GEMM shape, run just before each timed call of a tower (the fastest of three counts). */
typedef struct {
    gemm_ctx g;
    double flops;
} probe;

/* `warm` untimed calls, then at least `reps` timed calls, more (up to 200) while the timed total is under
 * min_time. Returns 0 on failure. */
static int measure(bench_fn fn, void *ctx, int warm, int reps, double min_time, const probe *pr, double flops,
                   timing *out) {
    enum { MAX_REPS = 200 };
    double t[MAX_REPS], ratio[MAX_REPS], total = 0;
    int n = 0;
    for (int i = 0; i < warm; i++)
        if (!fn(ctx)) return 0;
    while (n < MAX_REPS && (n < reps || total < min_time)) {
        double tp = INFINITY;
        for (int k = 0; pr && k < 3; k++) {
            gemm_ctx g = pr->g;
            double t0 = omp_get_wtime();
            if (!run_gemm(&g)) return 0;
            double dt = omp_get_wtime() - t0;
            if (dt < tp) tp = dt;
        }
        double t0 = omp_get_wtime();
        if (!fn(ctx)) return 0;
        t[n] = omp_get_wtime() - t0;
        ratio[n] = pr ? (flops / t[n]) / (pr->flops / tp) : 0;
        total += t[n++];
    }
    out->ratio = median_of(ratio, n);
    out->median = median_of(t, n);
    out->best = t[0]; /* sorted now */
    return 1;
}

/* ---- FLOP counts (multiply-add = 2 FLOPs; elementwise ops, LayerNorm, softmax and biases ignored) -------- */

/* Vision tower, per image, N = (S/P)^2 patches, T = N + 1 tokens, K = C*P*P: patch GEMM 2*N*K*D; per layer
 * 2*T*D*(3D + D + 2F) for the GEMMs and 4*T*T*D for Q K^T and P V; projection 2*D*Pj. */
static double vision_flops(const clip_config *c) {
    const double D = c->vision.hidden, F = c->vision.mlp, P = c->patch_size, g = c->image_size / c->patch_size;
    const double N = g * g, T = N + 1, K = c->num_channels * P * P;
    const double layer = 2 * T * D * (3 * D + D + 2 * F) + 4 * T * T * D;
    return 2 * N * K * D + c->vision.layers * layer + 2 * D * c->projection_dim;
}

/* Text tower, per prompt, over the Tc positions computed: per layer 2*Tc*D*(3D + D + 2F) and the causal
 * attention 4*D*Tc*(Tc+1)/2; projection 2*D*Pj. */
static double text_flops(const clip_config *c, int Tc) {
    const double D = c->text.hidden, F = c->text.mlp, T = Tc;
    const double layer = 2 * T * D * (3 * D + D + 2 * F) + 4 * D * T * (T + 1) / 2;
    return c->text.layers * layer + 2 * D * c->projection_dim;
}

/* ---- tower runs --------------------------------------------------------------------------------------- */

typedef struct {
    clip_model *m;
    int B, T;
    float *pixels, *embeds;
    int32_t *ids, *mask;
} tower_ctx;

static int run_image(void *p) {
    tower_ctx *c = p;
    clxp_error err;
    if (clip_encode_pixels(c->m, c->pixels, c->B, c->embeds, NULL, NULL, &err) != CLXP_OK) {
        fprintf(stderr, "clip_bench: %s\n", err.msg);
        return 0;
    }
    return 1;
}

static int run_text(void *p) {
    tower_ctx *c = p;
    clxp_error err;
    if (clip_encode_tokens(c->m, c->ids, c->mask, c->B, c->T, 0, c->embeds, NULL, NULL, &err) != CLXP_OK) {
        fprintf(stderr, "clip_bench: %s\n", err.msg);
        return 0;
    }
    return 1;
}

/* B prompts of T ids: BOS, len-2 random word pieces, EOS, then EOS padding with mask 0. Returns the number of
 * positions the tower computes (the pooled position + 1). */
static int make_prompts(const clip_model *m, int B, int T, int len, int32_t *ids, int32_t *mask) {
    const clip_config *c = &m->cfg;
    const int bos = 49406 < c->vocab_size ? 49406 : c->vocab_size - 2;
    const int eos = 49407 < c->vocab_size ? 49407 : c->vocab_size - 1;
    for (int b = 0; b < B; b++) {
        int32_t *r = ids + (size_t)b * T, *k = mask + (size_t)b * T;
        for (int t = 0; t < T; t++) {
            if (t == 0) r[t] = bos;
            else if (t < len - 1) r[t] = 256 + (int32_t)(bench_rng_next() % (uint64_t)(bos - 256));
            else r[t] = eos;
            k[t] = t < len;
        }
    }
    int Tc = 0;
    for (int b = 0; b < B; b++) {
        int p = clip_pooled_index(c, ids + (size_t)b * T, T) + 1;
        if (p > Tc) Tc = p;
    }
    return Tc;
}

/* ---- one configuration in one precision, in a child process ------------------------------------------------- */

#define MAX_ROWS 4

typedef struct {
    char name[32];
    int batch, tokens; /* tokens: computed positions for text rows, 0 for images */
    timing t;          /* per batch */
    double flops;      /* per batch */
    double torch_items_s; /* PyTorch on the same row (image rows), 0 if not measured */
} row;

/* Everything a child measures; sent whole through a pipe. */
typedef struct {
    int ok, precision; /* NN_FP32 / NN_BF16 */
    int threads;
    int64_t n_params;
    double load_s;
    double peak, peak_best, sgemm_peak; /* GFLOP/s: the precision's packed matmul (median, best), dnnl_sgemm */
    int peak_shape;
    double rss_mb, weights_mb, act_mb;
    double bank_s;
    int bank_prompts;
    double foreign;
    int n_rows;
    row rows[MAX_ROWS];
} child_result;

typedef struct {
    const char *key, *path, *label;
    int text; /* measure the text tower with this configuration */
} config_entry;

static const config_entry g_configs[] = {
    {"b32", "bench/configs/clip-vit-base-patch32.json", "ViT-B/32", 1},
    {"b16", "bench/configs/clip-vit-base-patch16.json", "ViT-B/16", 0}, /* same text tower as B/32 */
    {"l14", "bench/configs/clip-vit-large-patch14.json", "ViT-L/14", 1},
};

typedef struct {
    const config_entry *configs[8];
    int n_configs;
    int precisions[2], n_precisions;
    int reps;
    double min_time;
    int torch, ort, keep;
} options;

#define SEED_CATEGORIES "tests/data/seed/categories_clip.txt"
#define CLIP_TOKENIZER_DIR "tests/data/clip-tiny-quickgelu"
static const char *const g_tokenizer_files[] = {"tokenizer.json", "special_tokens_map.json", "tokenizer_config.json"};

static size_t model_packed_bytes(const clip_model *m, int64_t *matrix_params) {
    size_t b = 0;
    int64_t n = 0;
    const nn_matrix *top[3] = {&m->patch, &m->vproj, &m->tproj};
    for (int i = 0; i < 3; i++) b += nn_matrix_packed_bytes(top[i]), n += (int64_t)top[i]->N * top[i]->K;
    const struct {
        const clip_layer *l;
        int n;
    } towers[2] = {{m->vlayers, m->cfg.vision.layers}, {m->tlayers, m->cfg.text.layers}};
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < towers[t].n; i++) {
            const nn_matrix *mm[4] = {&towers[t].l[i].qkv, &towers[t].l[i].o, &towers[t].l[i].fc1, &towers[t].l[i].fc2};
            for (int k = 0; k < 4; k++) b += nn_matrix_packed_bytes(mm[k]), n += (int64_t)mm[k]->N * mm[k]->K;
        }
    *matrix_params = n;
    return b;
}

/* Peak resident set so far (VmHWM), MB. */
static double peak_rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %lf", &kb) == 1) break;
    if (f) fclose(f);
    return kb / 1024;
}

static int child_measure(const char *dir, const config_entry *ce, int prec, const options *opt, child_result *R) {
    memset(R, 0, sizeof *R);
    R->precision = prec;
    R->threads = omp_get_max_threads();
    clxp_error err;
    clxp_model *M = NULL;
    const clxp_load_options lo = {.n_threads = R->threads,
                                  .precision = prec == NN_BF16 ? CLXP_PRECISION_BF16 : CLXP_PRECISION_FP32};
    double t0 = omp_get_wtime();
    if (clxp_model_load(dir, &lo, &M, &err) != CLXP_OK) {
        fprintf(stderr, "clip_bench: %s\n", err.msg);
        return 0;
    }
    R->load_s = omp_get_wtime() - t0;
    clip_model *m = M->clip;
    const clip_config *cfg = &m->cfg;
    R->n_params = weights_numel(m->w);
    int ok = 0;
    const int Dv = cfg->vision.hidden, Fv = cfg->vision.mlp, g = cfg->image_size / cfg->patch_size;
    const int Tv = g * g + 1, Bmax = 16, Mg = Bmax * Tv, S = cfg->image_size, Tt = cfg->context_length;
    const int shapes[4][2] = {{3 * Dv, Dv}, {Dv, Dv}, {Fv, Dv}, {Dv, Fv}};
    const size_t maxK = (size_t)Fv, maxN = (size_t)(Fv > 3 * Dv ? Fv : 3 * Dv);
    float *A = malloc((size_t)Mg * maxK * sizeof *A), *W = malloc(maxN * maxK * sizeof *W);
    float *C = malloc((size_t)Mg * maxN * sizeof *C);
    float *pixels = malloc((size_t)Bmax * 3 * S * S * sizeof *pixels);
    float *embeds = malloc((size_t)Bmax * cfg->projection_dim * sizeof *embeds);
    int32_t *ids = malloc((size_t)Bmax * Tt * sizeof *ids), *mask = malloc((size_t)Bmax * Tt * sizeof *mask);
    nn_matrix mats[4], plain[4];
    int n_mats = 0;
    if (!A || !W || !C || !pixels || !embeds || !ids || !mask) {
        fprintf(stderr, "clip_bench: out of memory\n");
        goto out;
    }
    /* the memory of the model as an application uses it: loaded, one batch of 16 images classified (before the
     * buffers of the GEMM peak measurement below exist) */
    fill_normal(pixels, (size_t)Bmax * 3 * S * S, 1.0f);
    {
        tower_ctx tc = {m, Bmax, 0, pixels, embeds, NULL, NULL};
        if (!run_image(&tc)) goto out;
        R->rss_mb = peak_rss_mb();
        R->act_mb = m->arena_cap * sizeof(float) / 1048576.0; /* the batch-16 image arena */
    }
    fill_normal(A, (size_t)Mg * maxK, 1.0f);
    fill_normal(W, maxN * maxK, 0.02f);
    const double busy0 = bench_machine_busy_s(), self0 = bench_cpu_s(0), wall0 = omp_get_wtime();

    /* GEMM peaks: the precision's packed matmul (what the towers run), and dnnl_sgemm for reference */
    double flops[4];
    for (int s = 0; s < 4; s++, n_mats++) {
        mats[s] = nn_matrix_plain(W, shapes[s][0], shapes[s][1]);
        plain[s] = mats[s];
        if (nn_matrix_pack(&mats[s], M->clip->eng, (nn_precision)prec, &err) != CLXP_OK) {
            fprintf(stderr, "clip_bench: %s\n", err.msg);
            goto out;
        }
        flops[s] = 2.0 * Mg * shapes[s][0] * shapes[s][1];
        timing t, ts;
        gemm_ctx gc = {Mg, &mats[s], A, C}, gs = {Mg, &plain[s], A, C};
        if (!measure(run_gemm, &gc, 3, opt->reps * 2, opt->min_time, NULL, 0, &t) ||
            !measure(run_gemm, &gs, 2, opt->reps, opt->min_time / 2, NULL, 0, &ts))
            goto out;
        if (flops[s] / t.median * 1e-9 > R->peak) R->peak = flops[s] / t.median * 1e-9, R->peak_shape = s;
        if (flops[s] / t.best * 1e-9 > R->peak_best) R->peak_best = flops[s] / t.best * 1e-9;
        if (flops[s] / ts.median * 1e-9 > R->sgemm_peak) R->sgemm_peak = flops[s] / ts.median * 1e-9;
    }
    const probe pr = {{Mg, &mats[R->peak_shape], A, C}, flops[R->peak_shape]};

    const int img_batches[2] = {1, Bmax};
    for (int i = 0; i < 2; i++) {
        tower_ctx tc = {m, img_batches[i], 0, pixels, embeds, NULL, NULL};
        row *w = &R->rows[R->n_rows++];
        *w = (row){.name = "image", .batch = tc.B, .flops = vision_flops(cfg) * tc.B};
        if (!measure(run_image, &tc, 2, opt->reps, opt->min_time, &pr, w->flops, &w->t)) goto out;
    }
    if (prec == NN_FP32) {
        /* one image and its fp32 embedding, for the PyTorch module to compare with */
        char path[4200];
        snprintf(path, sizeof path, "%s/check_pixels.f32", dir);
        FILE *f = fopen(path, "wb");
        int wok = f && fwrite(pixels, sizeof(float), (size_t)3 * S * S, f) == (size_t)3 * S * S;
        if (f) fclose(f);
        clxp_error e2;
        if (wok && clip_encode_pixels(m, pixels, 1, embeds, NULL, NULL, &e2) == CLXP_OK) {
            snprintf(path, sizeof path, "%s/check_embeds.f32", dir);
            f = fopen(path, "wb");
            if (f) {
                if (fwrite(embeds, sizeof(float), (size_t)cfg->projection_dim, f) != (size_t)cfg->projection_dim)
                    fprintf(stderr, "clip_bench: cannot write %s\n", path);
                fclose(f);
            }
        }
    }
    if (ce->text) {
        const int lens[2] = {10 < Tt ? 10 : Tt, Tt};
        const char *names[2] = {"text, 10 tokens", "text, 77 tokens"};
        for (int i = 0; i < 2; i++) {
            int Tc = make_prompts(m, Bmax, Tt, lens[i], ids, mask);
            tower_ctx tc = {m, Bmax, Tt, NULL, embeds, ids, mask};
            row *w = &R->rows[R->n_rows++];
            *w = (row){.batch = Bmax, .tokens = Tc, .flops = text_flops(cfg, Tc) * Bmax};
            snprintf(w->name, sizeof w->name, "%s", names[i]);
            if (!measure(run_text, &tc, 2, opt->reps, opt->min_time, &pr, w->flops, &w->t)) goto out;
            if (i == 0 && prec == NN_FP32) {
                /* the first prompt (its Tc ids) and its fp32 embedding, for the ONNX Runtime row to compare with */
                char path[4200];
                clxp_error e2;
                snprintf(path, sizeof path, "%s/check_ids.i32", dir);
                FILE *f = fopen(path, "wb");
                int wok = f && fwrite(ids, sizeof *ids, (size_t)Tc, f) == (size_t)Tc;
                if (f && fclose(f) != 0) wok = 0;
                if (wok && clip_encode_tokens(m, ids, mask, 1, Tt, 0, embeds, NULL, NULL, &e2) == CLXP_OK) {
                    snprintf(path, sizeof path, "%s/check_text_embeds.f32", dir);
                    f = fopen(path, "wb");
                    if (f) {
                        if (fwrite(embeds, sizeof(float), (size_t)cfg->projection_dim, f) != (size_t)cfg->projection_dim)
                            fprintf(stderr, "clip_bench: cannot write %s\n", path);
                        fclose(f);
                    }
                }
            }
        }
        /* the seed's categories file, through the library (tokenizer, EOS trimming, length-sorted batches) */
        if (clxp_is_file(SEED_CATEGORIES)) {
            double best = INFINITY;
            for (int k = 0; k < 3; k++) {
                clxp_labelbank *bank = NULL;
                double b0 = omp_get_wtime();
                if (clxp_labelbank_load_file(M, SEED_CATEGORIES, NULL, 0, &bank, &err) != CLXP_OK) {
                    fprintf(stderr, "clip_bench: %s\n", err.msg);
                    goto out;
                }
                best = fmin(best, omp_get_wtime() - b0);
                R->bank_prompts = clxp_labelbank_n_prompts(bank);
                clxp_labelbank_free(bank);
            }
            R->bank_s = best;
        }
    }
    const double busy1 = bench_machine_busy_s(), self1 = bench_cpu_s(0), wall1 = omp_get_wtime();
    const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    R->foreign = busy0 < 0 || busy1 < 0 || ncpu < 1 ? -1
                                                    : ((busy1 - busy0) - (self1 - self0)) / ((wall1 - wall0) * ncpu);
    if (R->foreign < 0 && R->foreign > -1) R->foreign = 0;
    int64_t mp = 0;
    const size_t packed = model_packed_bytes(m, &mp);
    R->weights_mb = (packed + (size_t)(R->n_params - mp) * sizeof(float)) / 1048576.0;
    ok = 1;
out:
    for (int s = 0; s < n_mats; s++) nn_matrix_release(&mats[s]);
    free(A), free(W), free(C), free(pixels), free(embeds), free(ids), free(mask);
    clxp_model_free(M);
    R->ok = ok;
    return ok;
}

static int run_child(const char *dir, const config_entry *ce, int prec, const options *opt, child_result *R) {
    int fds[2];
    memset(R, 0, sizeof *R);
    if (pipe(fds) != 0) return 0;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]), close(fds[1]);
        return 0;
    }
    if (pid == 0) {
        close(fds[0]);
        child_result r;
        int ok = child_measure(dir, ce, prec, opt, &r);
        ssize_t w = write(fds[1], &r, sizeof r);
        _exit(ok && w == (ssize_t)sizeof r ? 0 : 1);
    }
    close(fds[1]);
    size_t got = 0;
    while (got < sizeof *R) {
        ssize_t n = read(fds[0], (char *)R + got, sizeof *R - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return got == sizeof *R && WIFEXITED(status) && WEXITSTATUS(status) == 0 && R->ok;
}

/* ---- PyTorch ------------------------------------------------------------------------------------------------ */

#define PYTHON "/usr/bin/python3"

static int have_torch(void) {
    return access(PYTHON, X_OK) == 0 && system(PYTHON " -c 'import torch, numpy' >/dev/null 2>&1") == 0;
}

/* OpenBLAS 0.3.21 (Debian 12) mis-detects recent CPUs: name the kernel set, AVX-512 where the CPU has it. */
static const char *openblas_coretype(void) {
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return isa == dnnl_cpu_isa_avx512_core || isa == dnnl_cpu_isa_avx512_core_vnni ||
                   isa == dnnl_cpu_isa_avx512_core_bf16 || isa == dnnl_cpu_isa_avx512_core_amx
               ? "SkylakeX"
               : "Haswell";
}

/* Runs bench/torch_clip.py on dir; fills items/s per (precision, batch) and the relative fp32 difference. */
static int run_torch(const char *dir, int threads, const options *opt, double items[2][2], double *maxdiff) {
    char cmd[8192];
    const char *omp_blas = "/usr/lib/x86_64-linux-gnu/openblas-openmp";
    snprintf(cmd, sizeof cmd,
             "%s%s%s OPENBLAS_CORETYPE=%s OMP_NUM_THREADS=%d " PYTHON
             " bench/torch_clip.py '%s' --threads %d --batches 1,16 --precisions fp32,bf16 --reps %d --min-time %g",
             clxp_is_dir(omp_blas) ? "LD_LIBRARY_PATH=" : "", clxp_is_dir(omp_blas) ? omp_blas : "",
             clxp_is_dir(omp_blas) ? "" : "", openblas_coretype(), threads, dir, threads, opt->reps, opt->min_time);
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    char line[512];
    int n = 0;
    *maxdiff = -1;
    while (fgets(line, sizeof line, p)) {
        int b;
        char prec[8];
        double ips, ms, d;
        int k = sscanf(line, "image %d %7s %lf %lf maxdiff %lf", &b, prec, &ips, &ms, &d);
        if (k >= 4) {
            items[strcmp(prec, "bf16") == 0][b == 16] = ips;
            n++;
            if (k == 5) *maxdiff = d;
        }
    }
    return pclose(p) == 0 && n == 4;
}

/* ---- ONNX Runtime ----------------------------------------------------------------------------------------------- */

#define ORT_DIR "bench/ort"

static int have_ort(void) {
    return have_torch() && system("cd " ORT_DIR " && node -e \"require('onnxruntime-node')\" >/dev/null 2>&1") == 0;
}

typedef struct {
    double image[2], text[2]; /* items/s: image batch 1 / 16; text batch 16, 10 / full-context tokens */
    double image_diff, text_diff; /* relative max difference to clxp's fp32 output, -1 if not checked */
    char version[32];
    int text_ok;
} ort_result;

/* Exports the towers with bench/onnx_export.py into dir, then times them with bench/ort/ort_clip.js. */
static int run_ort(const char *dir, int threads, int text, const options *opt, ort_result *o) {
    char cmd[8192];
    memset(o, 0, sizeof *o);
    o->image_diff = o->text_diff = -1;
    snprintf(cmd, sizeof cmd, "PYTHONWARNINGS=ignore OMP_NUM_THREADS=%d " PYTHON " bench/onnx_export.py '%s'%s >/dev/null",
             threads, dir, text ? " --text" : "");
    if (system(cmd) != 0) {
        fprintf(stderr, "clip_bench: the ONNX export failed (bench/onnx_export.py)\n");
        return 0;
    }
    snprintf(cmd, sizeof cmd, "node " ORT_DIR "/ort_clip.js '%s' --threads %d --batches 1,16 --reps %d --min-time %g%s",
             dir, threads, opt->reps, opt->min_time, text ? " --text" : "");
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    char line[512];
    int n = 0, nt = 0;
    while (fgets(line, sizeof line, p)) {
        int b, len;
        double ips, ms, d;
        int k;
        if ((k = sscanf(line, "image %d fp32 %lf %lf maxdiff %lf", &b, &ips, &ms, &d)) >= 3) {
            o->image[b == 16] = ips, n++;
            if (k == 4) o->image_diff = d;
        } else if ((k = sscanf(line, "text %d %d fp32 %lf %lf maxdiff %lf", &b, &len, &ips, &ms, &d)) >= 4) {
            o->text[len > 10] = ips, nt++;
            if (k == 5) o->text_diff = d;
        } else
            (void)sscanf(line, "version %31s", o->version);
    }
    o->text_ok = nt == 2;
    return pclose(p) == 0 && n == 2 && (!text || o->text_ok);
}

/* ---- the table ------------------------------------------------------------------------------------------------ */

typedef struct {
    const config_entry *ce;
    int64_t n_params;
    double write_s;
    child_result res[2];
    int ok[2];
    double torch[2][2], torch_diff; /* [bf16][batch 16] items/s */
    int torch_ok;
    ort_result ort;
    int ort_ok;
} config_result;

static const char *prec_name(int p) { return p == NN_BF16 ? "bf16" : "fp32"; }

static void print_table(const config_result *C, int n, const options *opt, int threads) {
    const dnnl_version_t *ver = dnnl_version();
    char cpu[256];
    bench_cpu_model(cpu, sizeof cpu);
    printf("clxp benchmark: CLIP towers, real configurations, random weights\n");
    printf("  cpu      %s, %d thread%s, oneDNN %d.%d.%d isa %s (bf16 native: %s)\n", cpu, threads,
           threads == 1 ? "" : "s", ver->major, ver->minor, ver->patch, nn_cpu_isa(), nn_cpu_has_bf16() ? "yes" : "no");
    printf("  timing   median of >= %d calls and >= %.1f s after warm-up; each precision in its own process\n\n",
           opt->reps, opt->min_time);
    printf("  GEMM peak of each precision, same process: packed matmul (nn_linear_m) on the image tower's batch-16 "
           "shapes, GFLOP/s\n");
    for (int c = 0; c < n; c++)
        for (int p = 0; p < 2; p++) {
            if (!C[c].ok[p]) continue;
            const child_result *R = &C[c].res[p];
            static const char *const shape[4] = {"qkv", "out_proj", "fc1", "fc2"};
            printf("    %-9s %s  %7.1f (best %.1f, %s); dnnl_sgemm fp32 %.1f\n", C[c].ce->label, prec_name(R->precision),
                   R->peak, R->peak_best, shape[R->peak_shape], R->sgemm_peak);
        }
    printf("\n  %-9s %-16s %5s %4s %9s %9s %8s %7s %8s %9s %10s %8s %9s\n", "model", "workload", "batch", "prec",
           "ms/batch", "items/s", "GFLOP/s", "of peak", "PyTorch", "clxp/PyT", "bf16/fp32", "ORT fp32", "clxp/ORT");
    for (int c = 0; c < n; c++)
        for (int p = 0; p < 2; p++) {
            if (!C[c].ok[p]) continue;
            const child_result *R = &C[c].res[p];
            for (int r = 0; r < R->n_rows; r++) {
                const row *w = &R->rows[r];
                const double ips = w->batch / w->t.median;
                char torch[16] = "", ratio[16] = "", speedup[16] = "";
                const int img = strcmp(w->name, "image") == 0;
                if (img && C[c].torch_ok) {
                    const double t = C[c].torch[R->precision == NN_BF16][w->batch == 16];
                    snprintf(torch, sizeof torch, "%.2f", t);
                    snprintf(ratio, sizeof ratio, "%.2fx", ips / t);
                }
                if (R->precision == NN_BF16 && C[c].ok[0] && C[c].res[0].precision == NN_FP32)
                    snprintf(speedup, sizeof speedup, "%.2fx", ips / (C[c].res[0].rows[r].batch / C[c].res[0].rows[r].t.median));
                char ort[16] = "", ort_ratio[16] = "";
                double o = 0; /* ORT fp32 on the same workload; the bf16 rows compare with it too */
                if (C[c].ort_ok && img) o = C[c].ort.image[w->batch == 16];
                else if (C[c].ort_ok && C[c].ort.text_ok && strncmp(w->name, "text", 4) == 0 && w->batch == 16)
                    o = C[c].ort.text[w->tokens > 10];
                if (o > 0) {
                    snprintf(ort, sizeof ort, "%.2f", o);
                    snprintf(ort_ratio, sizeof ort_ratio, "%.2fx", ips / o);
                }
                printf("  %-9s %-16s %5d %4s %9.2f %9.2f %8.1f %6.1f%% %8s %9s %10s %8s %9s\n", C[c].ce->label, w->name,
                       w->batch, prec_name(R->precision), 1000 * w->t.median, ips, w->flops / w->t.median * 1e-9,
                       100 * w->t.ratio, torch, ratio, speedup, ort, ort_ratio);
            }
        }
    printf("  of peak: median over the calls of GFLOP/s / the same precision's peak GEMM probed just before each call\n");
    printf("  text rows: prompts of 10 (typical) and 77 tokens, computed up to the last EOS of the batch\n\n");
    printf("  %-9s %4s %10s %10s %10s %10s %11s %11s\n", "model", "prec", "load s", "weights MB", "act MB",
           "peak RSS MB", "RSS - w - a", "label bank");
    for (int c = 0; c < n; c++)
        for (int p = 0; p < 2; p++) {
            if (!C[c].ok[p]) continue;
            const child_result *R = &C[c].res[p];
            char bank[32] = "";
            if (R->bank_prompts) snprintf(bank, sizeof bank, "%.3f s", R->bank_s);
            printf("  %-9s %4s %10.2f %10.1f %10.1f %10.1f %11.1f %11s\n", C[c].ce->label, prec_name(R->precision),
                   R->load_s, R->weights_mb, R->act_mb, R->rss_mb, R->rss_mb - R->weights_mb - R->act_mb, bank);
        }
    printf("  weights: packed matrices in the precision + the other tensors in fp32; act: the activation arena of a\n"
           "  batch of 16 images; peak RSS (VmHWM) of the process after loading and classifying one batch of 16 images\n"
           "  (16 input images included); label bank: seconds to encode the seed's categories file (%s), best of 3\n",
           SEED_CATEGORIES);
    double foreign = 0;
    for (int c = 0; c < n; c++)
        for (int p = 0; p < 2; p++)
            if (C[c].ok[p] && C[c].res[p].foreign > foreign) foreign = C[c].res[p].foreign;
    for (int c = 0; c < n; c++)
        if (C[c].torch_ok)
            printf("  PyTorch %s (%s, same weights, torch.autocast for bf16): fp32 output vs clxp relative max "
                   "difference %.2g\n",
                   C[c].ce->label, "bench/torch_clip.py", C[c].torch_diff);
    for (int c = 0; c < n; c++)
        if (C[c].ort_ok) {
            char tdiff[48] = "";
            if (C[c].ort.text_ok) snprintf(tdiff, sizeof tdiff, ", text %.2g", C[c].ort.text_diff);
            printf("  ONNX Runtime %s %s (bench/onnx_export.py, opset 14, + bench/ort/ort_clip.js, CPU execution "
                   "provider, same weights): fp32 output vs clxp relative max difference image %.2g%s; bf16 rows "
                   "compare with ORT fp32\n",
                   C[c].ort.version, C[c].ce->label, C[c].ort.image_diff, tdiff);
        }
    printf("  other processes used up to %.0f%% of the CPUs while measuring%s\n", 100 * foreign,
           foreign > 0.05 ? ": timings are disturbed, rerun on a quiet machine" : "");
    for (int c = 0; c < n; c++)
        if (C[c].ok[0] && strcmp(C[c].ce->key, "b32") == 0) {
            const child_result *R = &C[c].res[0];
            printf("  ratio: ViT-B/32 image tower, batch 16, fp32 reaches %.1f%% of the same-run fp32 GEMM peak "
                   "(goal >= 85%%); batch 1: %.1f images/s (goal >= 20)\n",
                   100 * R->rows[1].t.ratio, 1 / R->rows[0].t.median);
            if (C[c].ok[1])
                printf("  ratio: ViT-B/32 bf16: %.1f images/s at batch 16 (goal >= 100), %.1f at batch 1 (goal >= 50)\n",
                       16 / C[c].res[1].rows[1].t.median, 1 / C[c].res[1].rows[0].t.median);
        }
}

/* ---- main ----------------------------------------------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr,
            "usage: clip_bench [--configs b32,b16,l14] [--precisions fp32,bf16] [--reps N] [--min-time SEC]\n"
            "                  [--torch | --no-torch] [--ort | --no-ort] [--keep]\n"
            "  --configs     CLIP configurations to run (bench/configs): b32 ViT-B/32 (+ CLIP-B text), b16 ViT-B/16,\n"
            "                l14 ViT-L/14 (+ CLIP-L text); default all\n"
            "  --precisions  default fp32,bf16 (bf16 skipped, saying so, on a CPU without native bf16)\n"
            "  --reps        timed repetitions per measurement, median reported (default 5)\n"
            "  --min-time    keep repeating short measurements for at least this long (default 1.0 s)\n"
            "  --torch       add the PyTorch rows (default when " PYTHON " has torch and numpy); --no-torch: skip\n"
            "  --ort         add the ONNX Runtime columns (default when " PYTHON " has torch and " ORT_DIR
            " has onnxruntime-node:\n"
            "                bash scripts/install-deps.sh --bench); --no-ort: skip\n"
            "  --keep        keep the generated model directories (paths printed)\n"
            "threads: OMP_NUM_THREADS (default: all online CPUs)\n");
}

static int parse_list(const char *s, options *o, int precisions) {
    while (*s) {
        size_t n = strcspn(s, ",");
        int found = 0;
        if (precisions) {
            if (n == 4 && strncmp(s, "fp32", 4) == 0) o->precisions[o->n_precisions++] = NN_FP32, found = 1;
            else if (n == 4 && strncmp(s, "bf16", 4) == 0) o->precisions[o->n_precisions++] = NN_BF16, found = 1;
            if (o->n_precisions > 2) return 0;
        } else {
            for (size_t k = 0; k < sizeof g_configs / sizeof g_configs[0]; k++)
                if (strlen(g_configs[k].key) == n && strncmp(s, g_configs[k].key, n) == 0 && o->n_configs < 8)
                    o->configs[o->n_configs++] = &g_configs[k], found = 1;
        }
        if (!found) return 0;
        s += n;
        if (*s) s++;
    }
    return 1;
}

static int parse_args(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->reps = 5;
    o->min_time = 1.0;
    o->torch = -1;
    o->ort = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--configs") == 0 && i + 1 < argc) {
            if (!parse_list(argv[++i], o, 0)) return usage(), 0;
        } else if (strcmp(a, "--precisions") == 0 && i + 1 < argc) {
            if (!parse_list(argv[++i], o, 1)) return usage(), 0;
        } else if (strcmp(a, "--reps") == 0 && i + 1 < argc) o->reps = atoi(argv[++i]);
        else if (strcmp(a, "--min-time") == 0 && i + 1 < argc) o->min_time = atof(argv[++i]);
        else if (strcmp(a, "--torch") == 0) o->torch = 1;
        else if (strcmp(a, "--no-torch") == 0) o->torch = 0;
        else if (strcmp(a, "--ort") == 0) o->ort = 1;
        else if (strcmp(a, "--no-ort") == 0) o->ort = 0;
        else if (strcmp(a, "--keep") == 0) o->keep = 1;
        else return usage(), 0;
    }
    if (o->reps < 1 || o->reps > 100 || !(o->min_time >= 0 && o->min_time <= 60)) return usage(), 0;
    if (!o->n_configs)
        for (size_t k = 0; k < sizeof g_configs / sizeof g_configs[0]; k++) o->configs[o->n_configs++] = &g_configs[k];
    if (!o->n_precisions) o->precisions[o->n_precisions++] = NN_FP32, o->precisions[o->n_precisions++] = NN_BF16;
    return 1;
}

static int copy_file(const char *from, const char *to) {
    char *buf = NULL;
    size_t len = 0;
    clxp_error err;
    if (clxp_read_file(from, (size_t)64 << 20, &buf, &len, &err) != CLXP_OK) return 0;
    FILE *f = fopen(to, "wb");
    int ok = f && fwrite(buf, 1, len, f) == len;
    if (f && fclose(f) != 0) ok = 0;
    free(buf);
    return ok;
}

int main(int argc, char **argv) {
    options opt;
    if (!parse_args(argc, argv, &opt)) return 2;
    if (opt.torch < 0) opt.torch = have_torch();
    if (opt.ort < 0) opt.ort = have_ort();
    const char *env = getenv("OMP_NUM_THREADS");
    const int threads = env && atoi(env) > 0 ? atoi(env) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    config_result C[8];
    memset(C, 0, sizeof C);
    int rc = 0;
    for (int c = 0; c < opt.n_configs; c++) {
        config_result *cr = &C[c];
        cr->ce = opt.configs[c];
        clip_config cfg;
        clxp_error err;
        if (clip_config_load(cr->ce->path, &cfg, &err) != CLXP_OK) {
            fprintf(stderr, "clip_bench: %s\n", err.msg);
            return 1;
        }
        const char *tmp_base = getenv("TMPDIR");
        char dir[4096], path[4200];
        snprintf(dir, sizeof dir, "%s/clxp-bench-XXXXXX", tmp_base && *tmp_base ? tmp_base : "/tmp");
        if (!mkdtemp(dir)) {
            fprintf(stderr, "clip_bench: cannot create a temporary directory: %s\n", strerror(errno));
            return 1;
        }
        fprintf(stderr, "clip_bench: %s: writing random weights...\n", cr->ce->label);
        double t0 = omp_get_wtime();
        int ok = write_model_dir(&cfg, cr->ce->path, dir, &cr->n_params);
        for (int k = 0; k < 3 && ok; k++) { /* the real CLIP tokenizer, for the label bank */
            char from[512];
            snprintf(from, sizeof from, "%s/%s", CLIP_TOKENIZER_DIR, g_tokenizer_files[k]);
            snprintf(path, sizeof path, "%s/%s", dir, g_tokenizer_files[k]);
            ok = copy_file(from, path);
        }
        if (!ok) {
            fprintf(stderr, "clip_bench: cannot prepare %s (run from the repository root)\n", dir);
            remove_model_dir(dir);
            return 1;
        }
        cr->write_s = omp_get_wtime() - t0;
        for (int p = 0; p < opt.n_precisions; p++) {
            const int prec = opt.precisions[p];
            if (prec == NN_BF16 && !nn_cpu_has_bf16()) {
                fprintf(stderr, "clip_bench: bf16 skipped: this CPU (%s) has no native bf16\n", nn_cpu_isa());
                continue;
            }
            fprintf(stderr, "clip_bench: %s %s...\n", cr->ce->label, prec_name(prec));
            const int slot = prec == NN_BF16;
            cr->ok[slot] = run_child(dir, cr->ce, prec, &opt, &cr->res[slot]);
            if (!cr->ok[slot]) rc = 1;
        }
        if (opt.torch && strcmp(cr->ce->key, "b32") == 0) {
            fprintf(stderr, "clip_bench: %s PyTorch...\n", cr->ce->label);
            cr->torch_ok = run_torch(dir, threads, &opt, cr->torch, &cr->torch_diff);
            if (!cr->torch_ok) fprintf(stderr, "clip_bench: the PyTorch run failed (bench/torch_clip.py)\n");
        }
        if (opt.ort && strcmp(cr->ce->key, "b32") == 0) {
            fprintf(stderr, "clip_bench: %s ONNX Runtime...\n", cr->ce->label);
            cr->ort_ok = run_ort(dir, threads, cr->ce->text, &opt, &cr->ort);
            if (!cr->ort_ok) fprintf(stderr, "clip_bench: the ONNX Runtime run failed (bench/ort/ort_clip.js)\n");
        }
        if (opt.keep) fprintf(stderr, "clip_bench: model kept in %s\n", dir);
        else remove_model_dir(dir);
    }
    print_table(C, opt.n_configs, &opt, threads);
    return rc;
}
