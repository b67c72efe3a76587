/* clip_bench: end-to-end throughput of the CLIP towers on a real configuration with random weights.
 *
 *   build/bench/clip_bench [--config bench/configs/clip-vit-base-patch32.json | --model DIR] [--reps N]
 *                          [--min-time SEC] [--json] [--keep]
 *
 * 1. Writes a temporary model directory: config.json (copied) and model.safetensors with N(0, 0.02) weights
 *    for every tensor clip_model_load expects (LayerNorm weights 1 and biases 0, logit_scale ln(100)). The
 *    weights are generated in a child process so that the peak RSS reported is that of loading + inference;
 *    the directory is removed as soon as the model is loaded (the weights stay mapped) unless --keep.
 *    --model DIR benchmarks an existing model directory instead.
 * 2. Measures the peak of the GEMM library (dnnl_sgemm, called exactly as nn_linear calls it) on the shapes
 *    the vision encoder runs at batch 16, in the same process and thread pool.
 * 3. Measures images/s (batch 1 and 16) and prompts/s (batch 16, typical and full-length prompts), each the
 *    median of several timed repetitions after warm-up, and the achieved GFLOP/s from an analytic FLOP
 *    count, as a fraction of the GEMM peak.
 * Threads: OMP_NUM_THREADS, else all online CPUs (libgomp's default); oneDNN shares the same pool.
 */
#include <dnnl.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/clip_config.h"
#include "io/safetensors_write.h"
#include "models/clip.h"
#include "util/fileio.h"

#define DEFAULT_CONFIG "bench/configs/clip-vit-base-patch32.json"
#define GOAL_RATIO 0.70

typedef struct {
    const char *config_path;
    const char *model_dir; /* an existing model directory to benchmark instead of a generated one */
    int reps;     /* timed repetitions of each measurement (at least; short ones repeat for >= min_time) */
    double min_time;
    int json, keep;
} options;

/* ---- random weights --------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_next(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_uniform(void) { return ((double)(rng_next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

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
    static const char *const files[] = {"config.json", "model.safetensors"};
    char path[4200];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* ---- timing ------------------------------------------------------------------------------------------- */

typedef int (*bench_fn)(void *ctx); /* returns 1 on success */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    int M, N, K;
    const float *A, *B;
    float *C;
} gemm_ctx;

static int run_gemm(void *p) {
    gemm_ctx *g = p;
    /* exactly nn_linear: y[M,N] = x[M,K] W[N,K]^T, row-major */
    return dnnl_sgemm('N', 'T', g->M, g->N, g->K, 1.0f, g->A, g->K, g->B, g->K, 0.0f, g->C, g->N) == dnnl_success;
}

/* The peak GEMM shape, run just before each timed call of a tower: the peak as it is at that moment, so that the
 * ratio of each run is taken under the same conditions (other processes, clocks) as the run itself. */
typedef struct {
    gemm_ctx g;
    double flops;
} probe;

typedef struct {
    double median, best; /* seconds per call */
    double ratio;        /* median over the runs of (flops / time) / (probe GFLOP/s just before it); 0 without probe */
    double probe_gflops; /* median probe rate */
} timing;

static double median_of(double *v, int n) {
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* `warm` untimed calls, then at least `reps` timed calls, more (up to 200) while the timed total is under
 * min_time. With pr, each timed call is preceded by three probe GEMMs (the fastest counts) and paired with it;
 * flops is the work of one call. Returns 0 on failure. */
static int measure(bench_fn fn, void *ctx, int warm, int reps, double min_time, const probe *pr, double flops,
                   timing *out) {
    enum { MAX_REPS = 200 };
    double t[MAX_REPS], ratio[MAX_REPS], rate[MAX_REPS], total = 0;
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
        rate[n] = pr ? pr->flops / tp * 1e-9 : 0;
        ratio[n] = pr ? (flops / t[n]) / (pr->flops / tp) : 0;
        total += t[n++];
    }
    out->ratio = median_of(ratio, n);
    out->probe_gflops = median_of(rate, n);
    out->median = median_of(t, n);
    out->best = t[0]; /* t is sorted now */
    return 1;
}

/* CPU seconds used by everything on the machine (/proc/stat, all CPUs, idle and iowait excluded) and by this
 * process: their difference over the measurements is what other processes took from it. */
static double machine_busy_s(void) {
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[8] = {0};
    int n = f ? fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                       &v[6], &v[7])
              : 0;
    if (f) fclose(f);
    if (n < 4) return -1;
    /* user nice system [idle iowait] irq softirq steal */
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* ---- GEMM peak ---------------------------------------------------------------------------------------- */

/* ---- FLOP counts (multiply-add = 2 FLOPs; elementwise ops, LayerNorm, softmax and biases ignored) -------- */

/* Vision tower, per image, with N = (S/P)^2 patches, T = N + 1 tokens, K = C*P*P:
 *   patch embedding GEMM       2*N*K*D
 *   per layer: q,k,v GEMM      2*T*D*3D
 *              out projection  2*T*D*D
 *              fc1, fc2        2*T*D*F + 2*T*F*D
 *              Q K^T, P V      2*T*T*D + 2*T*T*D   (all heads together: H * T*T*(D/H))
 *   projection                 2*D*Pj              */
static double vision_flops(const clip_config *c) {
    const double D = c->vision.hidden, F = c->vision.mlp, P = c->patch_size, g = c->image_size / c->patch_size;
    const double N = g * g, T = N + 1, K = c->num_channels * P * P;
    const double layer = 2 * T * D * (3 * D + D + 2 * F) + 4 * T * T * D;
    return 2 * N * K * D + c->vision.layers * layer + 2 * D * c->projection_dim;
}

/* Text tower, per prompt, computed over Tc positions (the production path stops at the pooled token):
 *   per layer: 2*Tc*D*(3D + D + 2F) for the GEMMs, plus causal attention 4*D*Tc*(Tc+1)/2 (the visible pairs
 *   only, as nn_attention computes them); projection 2*D*Pj. */
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

/* B prompts of T ids: BOS, len-2 random word pieces, EOS, then EOS padding (as the CLIP tokenizer pads) with
 * mask 0. Returns the number of positions the tower computes (the pooled position + 1). */
static int make_prompts(const clip_model *m, int B, int T, int len, int32_t *ids, int32_t *mask) {
    const clip_config *c = &m->cfg;
    const int bos = 49406 < c->vocab_size ? 49406 : c->vocab_size - 2;
    const int eos = 49407 < c->vocab_size ? 49407 : c->vocab_size - 1;
    for (int b = 0; b < B; b++) {
        int32_t *r = ids + (size_t)b * T, *k = mask + (size_t)b * T;
        for (int t = 0; t < T; t++) {
            if (t == 0) r[t] = bos;
            else if (t < len - 1) r[t] = 256 + (int32_t)(rng_next() % (uint64_t)(bos - 256));
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

/* ---- report ------------------------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    int batch, tokens; /* tokens: computed positions for text rows, 0 for images */
    timing t;          /* per batch */
    double flops;      /* per batch */
} row;

static double peak_rss_mb(void) {
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss / 1024.0 : 0;
}

static const char *isa_name(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
    }
}

static void cpu_model(char *buf, size_t n) {
    snprintf(buf, n, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            const char *v = strchr(line, ':');
            if (v) {
                v++;
                while (*v == ' ') v++;
                snprintf(buf, n, "%s", v);
                buf[strcspn(buf, "\n")] = '\0';
            }
            break;
        }
    }
    fclose(f);
}

static void usage(void) {
    fprintf(stderr, "usage: clip_bench [--config PATH | --model DIR] [--reps N] [--min-time SEC] [--json] [--keep]\n"
                    "  --config    CLIPConfig JSON to benchmark with random weights (default %s)\n"
                    "  --model     benchmark this model directory (config.json, model.safetensors) instead\n"
                    "  --reps      timed repetitions per measurement, median reported (default 5)\n"
                    "  --min-time  keep repeating short measurements for at least this long (default 1.0 s)\n"
                    "  --json      print the results as one JSON object instead of the table\n"
                    "  --keep      keep the generated model directory (its path is printed)\n"
                    "threads: OMP_NUM_THREADS (default: all online CPUs)\n",
            DEFAULT_CONFIG);
}

static int parse_args(int argc, char **argv, options *o) {
    *o = (options){DEFAULT_CONFIG, NULL, 5, 1.0, 0, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--config") == 0 && i + 1 < argc) o->config_path = argv[++i];
        else if (strcmp(a, "--model") == 0 && i + 1 < argc) o->model_dir = argv[++i];
        else if (strcmp(a, "--reps") == 0 && i + 1 < argc) o->reps = atoi(argv[++i]);
        else if (strcmp(a, "--min-time") == 0 && i + 1 < argc) o->min_time = atof(argv[++i]);
        else if (strcmp(a, "--json") == 0) o->json = 1;
        else if (strcmp(a, "--keep") == 0) o->keep = 1;
        else {
            usage();
            return 0;
        }
    }
    if (o->reps < 1 || o->reps > 100 || !(o->min_time >= 0 && o->min_time <= 60)) {
        usage();
        return 0;
    }
    return 1;
}

/* Everything measured, for the report. */
typedef struct {
    const char *config_path;
    int threads, n_rows, Mg, peak_shape;
    int64_t n_params;
    double write_s, load_s, rss_mb, foreign; /* foreign: share of the CPUs other processes used while measuring */
    const char *shape_names[4];
    int shapes[4][2];
    timing gemm[4];
    double gemm_flops[4], peak, peak_best, mix;
    row rows[4];
} results;

static void print_json(const results *R) {
    const dnnl_version_t *ver = dnnl_version();
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    printf("{\"config\":\"%s\",\"threads\":%d,\"cpu\":\"%s\",\"onednn\":\"%d.%d.%d\",\"isa\":\"%s\",", R->config_path,
           R->threads, cpu, ver->major, ver->minor, ver->patch, isa_name(dnnl_get_effective_cpu_isa()));
    printf("\"params\":%lld,\"write_s\":%.3f,\"load_s\":%.3f,\"gemm\":[", (long long)R->n_params, R->write_s,
           R->load_s);
    for (int s = 0; s < 4; s++)
        printf("%s{\"name\":\"%s\",\"M\":%d,\"N\":%d,\"K\":%d,\"gflops\":%.2f,\"gflops_best\":%.2f}", s ? "," : "",
               R->shape_names[s], R->Mg, R->shapes[s][0], R->shapes[s][1],
               R->gemm_flops[s] / R->gemm[s].median * 1e-9, R->gemm_flops[s] / R->gemm[s].best * 1e-9);
    printf("],\"gemm_peak_gflops\":%.2f,\"gemm_peak_best_gflops\":%.2f,\"gemm_layer_mix_gflops\":%.2f,\"rows\":[",
           R->peak, R->peak_best, R->mix);
    for (int r = 0; r < R->n_rows; r++) {
        const row *w = &R->rows[r];
        printf("%s{\"name\":\"%s\",\"batch\":%d,\"tokens\":%d,\"ms_per_batch\":%.3f,\"ms_per_batch_best\":%.3f,"
               "\"items_per_s\":%.3f,\"gflop_per_item\":%.4f,\"gflops\":%.2f,\"probe_gflops\":%.2f,"
               "\"peak_ratio\":%.4f,\"peak_ratio_paired\":%.4f}",
               r ? "," : "", w->name, w->batch, w->tokens, w->t.median * 1e3, w->t.best * 1e3, w->batch / w->t.median,
               w->flops / w->batch * 1e-9, w->flops / w->t.median * 1e-9, w->t.probe_gflops,
               w->flops / w->t.median * 1e-9 / R->peak, w->t.ratio);
    }
    const row *b16 = &R->rows[1];
    printf("],\"image_b16_peak_ratio\":%.4f,\"goal_ratio\":%.2f,\"peak_rss_mb\":%.1f,\"foreign_cpu\":%.3f}\n",
           b16->flops / b16->t.median * 1e-9 / R->peak, GOAL_RATIO, R->rss_mb, R->foreign);
}

static void print_table(const results *R, const options *opt) {
    const dnnl_version_t *ver = dnnl_version();
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    const char *env_threads = getenv("OMP_NUM_THREADS");
    printf("clxp benchmark: %s (%sfp32)\n", R->config_path, opt->model_dir ? "" : "random weights, ");
    printf("  cpu      %s, %d thread%s (%s), oneDNN %d.%d.%d isa %s\n", cpu, R->threads, R->threads == 1 ? "" : "s",
           env_threads ? "OMP_NUM_THREADS" : "all online CPUs", ver->major, ver->minor, ver->patch,
           isa_name(dnnl_get_effective_cpu_isa()));
    if (opt->model_dir)
        printf("  model    %.1f M parameters, loaded in %.2f s\n", R->n_params * 1e-6, R->load_s);
    else
        printf("  model    %.1f M parameters (random), written in %.1f s, loaded in %.2f s\n", R->n_params * 1e-6,
               R->write_s, R->load_s);
    printf("  timing   median (and best) of >= %d runs, >= %.1f s, after warm-up\n\n", opt->reps, opt->min_time);
    printf("  GEMM peak, dnnl_sgemm as nn_linear calls it (x[M,K] W[N,K]^T):\n");
    printf("    %-10s %6s %6s %6s %10s %10s\n", "shape", "M", "N", "K", "GFLOP/s", "(best)");
    for (int s = 0; s < 4; s++)
        printf("    %-10s %6d %6d %6d %10.1f %10.1f\n", R->shape_names[s], R->Mg, R->shapes[s][0], R->shapes[s][1],
               R->gemm_flops[s] / R->gemm[s].median * 1e-9, R->gemm_flops[s] / R->gemm[s].best * 1e-9);
    printf("    %-31s %10.1f %10.1f   (best shape)\n", "peak", R->peak, R->peak_best);
    printf("    %-31s %10.1f %10s   (one layer's 4 GEMMs: total FLOP / total time)\n\n", "layer mix", R->mix, "");
    printf("  %-26s %5s %6s %9s %9s %9s %10s %8s %8s %8s\n", "workload", "batch", "tokens", "ms/batch", "(best)",
           "items/s", "GFLOP/item", "GFLOP/s", "of peak", "(paired)");
    for (int r = 0; r < R->n_rows; r++) {
        const row *w = &R->rows[r];
        char tok[16] = "-";
        if (w->tokens) snprintf(tok, sizeof tok, "%d", w->tokens);
        const double g = w->flops / w->t.median * 1e-9;
        printf("  %-26s %5d %6s %9.2f %9.2f %9.2f %10.3f %8.1f %7.1f%% %7.1f%%\n", w->name, w->batch, tok,
               w->t.median * 1e3, w->t.best * 1e3, w->batch / w->t.median, w->flops / w->batch * 1e-9, g,
               100 * g / R->peak, 100 * w->t.ratio);
    }
    printf("  of peak: GFLOP/s / GEMM peak; (paired): median over the runs of GFLOP/s / the %s GEMM probed just "
           "before\n  each run (median probe %.1f GFLOP/s), steadier when other processes load the machine\n",
           R->shape_names[R->peak_shape], R->rows[1].t.probe_gflops);
    const row *b16 = &R->rows[1];
    const double ratio = b16->flops / b16->t.median * 1e-9 / R->peak;
    printf("\n  peak RSS %.0f MB\n", R->rss_mb);
    if (R->foreign >= 0)
        printf("  other processes used %.0f%% of the CPUs while measuring%s\n", 100 * R->foreign,
               R->foreign > 0.05 ? ": timings are disturbed, rerun on a quiet machine" : "");
    const char *verdict = R->foreign > 0.05 ? "inconclusive, the machine was busy" : ratio >= GOAL_RATIO ? "met" : "NOT met";
    printf("  ratio: image tower at batch %d reaches %.1f%% of the GEMM peak (paired: %.1f%%); goal >= %.0f%%: %s\n",
           b16->batch, 100 * ratio, 100 * b16->t.ratio, 100 * GOAL_RATIO, verdict);
}

/* GEMM peak, then the towers (each run paired with a probe of the peak GEMM); fills R. Returns 1 on success. */
static int run_all(clip_model *m, const options *opt, results *R) {
    const clip_config *cfg = &m->cfg;
    int ok = 0;
    float *A = NULL, *W = NULL, *C = NULL, *pixels = NULL, *embeds = NULL;
    int32_t *ids = NULL, *mask = NULL;

    /* GEMM peak on the vision encoder's shapes at batch 16: M = 16 * tokens, (N, K) of qkv, out, fc1, fc2. */
    const int Dv = cfg->vision.hidden, Fv = cfg->vision.mlp, g = cfg->image_size / cfg->patch_size;
    const int Tv = g * g + 1, Bmax = 16;
    const int shapes[4][2] = {{3 * Dv, Dv}, {Dv, Dv}, {Fv, Dv}, {Dv, Fv}};
    const char *names[4] = {"qkv", "out_proj", "fc1", "fc2"};
    R->Mg = Bmax * Tv;
    memcpy(R->shapes, shapes, sizeof shapes);
    memcpy(R->shape_names, names, sizeof names);
    const size_t maxK = (size_t)(Fv > Dv ? Fv : Dv), maxN = (size_t)(Fv > 3 * Dv ? Fv : 3 * Dv);
    A = malloc((size_t)R->Mg * maxK * sizeof *A);
    W = malloc(maxN * maxK * sizeof *W);
    C = malloc((size_t)R->Mg * maxN * sizeof *C);
    const int S = cfg->image_size, Tt = cfg->context_length;
    pixels = malloc((size_t)Bmax * 3 * S * S * sizeof *pixels);
    embeds = malloc((size_t)Bmax * cfg->projection_dim * sizeof *embeds);
    ids = malloc((size_t)Bmax * Tt * sizeof *ids);
    mask = malloc((size_t)Bmax * Tt * sizeof *mask);
    if (!A || !W || !C || !pixels || !embeds || !ids || !mask) {
        fprintf(stderr, "clip_bench: out of memory\n");
        goto out;
    }
    fill_normal(A, (size_t)R->Mg * maxK, 1.0f);
    fill_normal(W, maxN * maxK, 0.02f);
    fill_normal(pixels, (size_t)Bmax * 3 * S * S, 1.0f);
    const double busy0 = machine_busy_s(), self0 = self_cpu_s(), wall0 = omp_get_wtime();
    double mix_flops = 0, mix_sec = 0;
    for (int s = 0; s < 4; s++) {
        gemm_ctx gc = {R->Mg, shapes[s][0], shapes[s][1], A, W, C};
        if (!measure(run_gemm, &gc, 3, opt->reps * 2, opt->min_time, NULL, 0, &R->gemm[s])) {
            fprintf(stderr, "clip_bench: dnnl_sgemm failed\n");
            goto out;
        }
        R->gemm_flops[s] = 2.0 * R->Mg * gc.N * gc.K;
        double rate = R->gemm_flops[s] / R->gemm[s].median * 1e-9, best = R->gemm_flops[s] / R->gemm[s].best * 1e-9;
        if (rate > R->peak) {
            R->peak = rate;
            R->peak_shape = s;
        }
        if (best > R->peak_best) R->peak_best = best;
        mix_flops += R->gemm_flops[s];
        mix_sec += R->gemm[s].median;
    }
    R->mix = mix_flops / mix_sec * 1e-9;
    const int ps = R->peak_shape;
    const probe pr = {{R->Mg, shapes[ps][0], shapes[ps][1], A, W, C}, R->gemm_flops[ps]};

    const int img_batches[2] = {1, Bmax};
    for (int i = 0; i < 2; i++) {
        tower_ctx tc = {m, img_batches[i], 0, pixels, embeds, NULL, NULL};
        row *w = &R->rows[R->n_rows++];
        *w = (row){.name = "image tower", .batch = tc.B, .flops = vision_flops(cfg) * tc.B};
        if (!measure(run_image, &tc, 2, opt->reps, opt->min_time, &pr, w->flops, &w->t)) goto out;
    }
    const int lens[2] = {10 < Tt ? 10 : Tt, Tt};
    const char *text_names[2] = {"text tower, typical prompt", "text tower, full context"};
    for (int i = 0; i < 2; i++) {
        int Tc = make_prompts(m, Bmax, Tt, lens[i], ids, mask);
        tower_ctx tc = {m, Bmax, Tt, NULL, embeds, ids, mask};
        row *w = &R->rows[R->n_rows++];
        *w = (row){.name = text_names[i], .batch = Bmax, .tokens = Tc, .flops = text_flops(cfg, Tc) * Bmax};
        if (!measure(run_text, &tc, 2, opt->reps, opt->min_time, &pr, w->flops, &w->t)) goto out;
    }
    const double busy1 = machine_busy_s(), self1 = self_cpu_s(), wall1 = omp_get_wtime();
    const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    R->foreign = busy0 < 0 || busy1 < 0 || ncpu < 1
                     ? -1
                     : ((busy1 - busy0) - (self1 - self0)) / ((wall1 - wall0) * (double)ncpu);
    if (R->foreign < 0 && R->foreign > -1) R->foreign = 0;
    ok = 1;
out:
    free(A);
    free(W);
    free(C);
    free(pixels);
    free(embeds);
    free(ids);
    free(mask);
    return ok;
}

int main(int argc, char **argv) {
    options opt;
    if (!parse_args(argc, argv, &opt)) return 2;
    results R;
    memset(&R, 0, sizeof R);
    R.config_path = opt.config_path;
    char dir[4096];
    if (opt.model_dir) {
        snprintf(dir, sizeof dir, "%s", opt.model_dir);
        R.config_path = opt.model_dir;
    } else {
        clip_config cfg;
        clxp_error err;
        if (clip_config_load(opt.config_path, &cfg, &err) != CLXP_OK) {
            fprintf(stderr, "clip_bench: %s\n", err.msg);
            return 1;
        }
        const char *tmp_base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/clxp-bench-XXXXXX", tmp_base && *tmp_base ? tmp_base : "/tmp");
        if (!mkdtemp(dir)) {
            fprintf(stderr, "clip_bench: cannot create a temporary directory: %s\n", strerror(errno));
            return 1;
        }
        /* fork before the first parallel region: the child must not inherit a running thread pool */
        double t0 = omp_get_wtime();
        if (!write_model_dir(&cfg, opt.config_path, dir, &R.n_params)) {
            remove_model_dir(dir);
            return 1;
        }
        R.write_s = omp_get_wtime() - t0;
    }

    int rc = 1;
    clip_model *m = NULL;
    clxp_error err;
    double t0 = omp_get_wtime();
    const clxp_status load_st = clip_model_load(dir, &m, &err);
    /* The weights are mapped: the generated files can go now, so that an interrupted run leaves nothing behind. */
    if (!opt.keep && !opt.model_dir) remove_model_dir(dir);
    if (load_st != CLXP_OK) {
        fprintf(stderr, "clip_bench: %s\n", err.msg);
    } else {
        R.load_s = omp_get_wtime() - t0;
        R.n_params = weights_numel(m->w);
        R.threads = omp_get_max_threads();
        if (run_all(m, &opt, &R)) {
            R.rss_mb = peak_rss_mb();
            if (opt.json) print_json(&R);
            else print_table(&R, &opt);
            rc = 0;
        }
    }
    clip_model_free(m);
    if (opt.keep && !opt.model_dir) fprintf(stderr, "clip_bench: model kept in %s\n", dir);
    return rc;
}
