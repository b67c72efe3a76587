/* pipeline_bench: the media pipeline (decode -> select -> RGB -> CLIP preprocessing -> model) on a real-size video,
 * and the CLAP audio tower on the real clap-htsat-unfused configuration, both with random weights.
 *
 *   build/bench/pipeline_bench [--config bench/configs/clip-vit-base-patch32.json] [--clip FILE] [--reps N]
 *                              [--every-seconds S] [--modes LIST] [--data tests/data] [--compare-spin]
 *                              [--no-video] [--no-clap] [--no-yardsticks] [--keep]
 *
 * Set-up (not timed): a temporary directory with
 *   - clip.mp4: 30 s of 1280x720 at 30 fps from the ffmpeg CLI (lavfi testsrc2, libx264 -preset veryfast, -g 250,
 *     yuv420p), unless --clip names a file;
 *   - a ViT-B/32 model (--config, tokenizer of tests/data, the CLIP preprocessing of openai/clip-vit-base-patch32)
 *     and a clap-htsat-unfused model (config written below from the real repository's config.json), random weights
 *     of standard deviation 0.02 (LayerNorms 1/0), written by child processes while the clip is encoded.
 * Video rows, one per selection mode (every frame of the first S seconds, --interval 1, --keyframes, both,
 * --interval 1 with --skip-nonref):
 *   decode-only     video_open/video_next (demux, decode, select, RGB) + clip_preprocess, no model;
 *   inference-only  model_encode_pixels on as many preprocessed frames, batches of 16, no decoding;
 *   pipeline        clxp_run_file with the same options (decoding thread + model on the calling thread);
 *   each alone with all threads; the repetitions interleave the three, and each ratio wall / (decode + inference)
 *   is taken within one repetition; CPU seconds of the process are reported beside the wall times. Yardsticks: the
 *   ffmpeg CLI decoding the clip (-threads 2, -f null), and a bare libavcodec decode loop (no filter graph, no RGB)
 *   for all frames, non-reference frames skipped, key frames only. --compare-spin reruns the --interval 1 row in a
 *   child process (this executable) with the other libgomp spin setting.
 * CLAP rows: log-mel extraction of one 10-s window (clap_fe_extract), then model_encode_features at batch 1 and 8,
 *   10-s windows/s and GFLOP/s from the analytic HTSAT count below, against the dnnl_sgemm peak measured in the same
 *   run (each timed call paired with a probe GEMM just before it, as clip_bench does).
 * Threads: OMP_NUM_THREADS, else all online CPUs; FFmpeg's decoder picks its own (thread_count 0, as clxp does).
 * libgomp's spin after parallel regions matters here (see src/cli/main.c): bench/run.sh sets GOMP_SPINCOUNT=10000
 * as the CLI does unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set; the report says which was in effect.
 * Other processes' CPU use during the measurements is reported (as clip_bench does).
 */
#include <dnnl.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <omp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

#include "bench_common.h"
#include "api/internal.h"
#include "io/clap_config.h"
#include "io/clip_config.h"
#include "io/safetensors_write.h"
#include "media/audio_features.h"
#include "media/preprocess.h"
#include "media/video.h"
#include "nn/gemm.h"
#include "util/fileio.h"

#define DEFAULT_CONFIG "bench/configs/clip-vit-base-patch32.json"
#define GOAL_RATIO 1.10 /* pipeline wall <= 1.1 x (decode-only + inference-only) */
#define MAX_REPS 50
#define BATCH 16
#define CLAP_B 8

typedef struct {
    const char *config_path, *clip_path, *data_dir;
    const char *child_model; /* internal: run the mode rows on this model directory and print them (spin child) */
    int reps;
    double every_seconds;
    unsigned modes, spin_modes; /* bit i: mode row i */
    int compare_spin, no_video, no_clap, no_yardsticks, keep;
} options;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* Median of v[0..n) (v is left unchanged). */
static double median(const double *v, int n) {
    double t[MAX_REPS > 200 ? MAX_REPS : 200];
    if (n <= 0) return 0;
    if (n > (int)(sizeof t / sizeof t[0])) n = (int)(sizeof t / sizeof t[0]);
    memcpy(t, v, (size_t)n * sizeof *t);
    qsort(t, (size_t)n, sizeof t[0], bench_cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* ---- random weights ------------------------------------------------------------------------------------------ */

/* Uniform in (-1, 1). */
static float rng_sym(void) { return (float)(((double)(bench_rng_next() >> 11) + 0.5) * (2.0 / 9007199254740992.0) - 1.0); }

/* Zero-mean values of standard deviation sd (uniform: the values only have to be finite and of a sane size). */
static void fill_random(float *x, size_t n, float sd) {
    const float a = sd * 1.7320508f; /* uniform(-a, a) has sd a / sqrt(3) */
    for (size_t i = 0; i < n; i++) x[i] = a * rng_sym();
}

typedef struct {
    char name[160];
    int ndim;
    int64_t shape[4];
    int random;  /* 1: random with sd 0.02; 0: every element is `value` */
    float value;
} tensor_spec;

typedef struct {
    tensor_spec *v;
    int n, cap, ok;
} spec_list;

static void spec_add(spec_list *l, int random, float value, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                     const char *fmt, ...) __attribute__((format(printf, 9, 10)));
static void spec_add(spec_list *l, int random, float value, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                     const char *fmt, ...) {
    if (!l->ok) return;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 256;
        tensor_spec *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) {
            l->ok = 0;
            return;
        }
        l->v = v;
        l->cap = cap;
    }
    tensor_spec *t = &l->v[l->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->ndim = ndim;
    const int64_t d[4] = {d0, d1, d2, d3};
    memcpy(t->shape, d, sizeof d);
    t->random = random;
    t->value = value;
}

/* Shorthands: a random tensor, ones, zeros, with 1, 2 or 4 dimensions. */
#define R1(l, a, ...) spec_add(l, 1, 0, 1, a, 0, 0, 0, __VA_ARGS__)
#define R2(l, a, b, ...) spec_add(l, 1, 0, 2, a, b, 0, 0, __VA_ARGS__)
#define R4(l, a, b, c, d, ...) spec_add(l, 1, 0, 4, a, b, c, d, __VA_ARGS__)
#define ONES(l, a, ...) spec_add(l, 0, 1.0f, 1, a, 0, 0, 0, __VA_ARGS__)
#define ZEROS(l, a, ...) spec_add(l, 0, 0.0f, 1, a, 0, 0, 0, __VA_ARGS__)

/* A LayerNorm (`prefix`.weight ones, .bias zeros) or a Linear (.weight [n, k], .bias [n], random). */
static void add_pair(spec_list *l, int linear, int64_t n, int64_t k, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void add_pair(spec_list *l, int linear, int64_t n, int64_t k, const char *fmt, ...) {
    char p[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p, sizeof p, fmt, ap);
    va_end(ap);
    if (linear) {
        spec_add(l, 1, 0, 2, n, k, 0, 0, "%s.weight", p);
        spec_add(l, 1, 0, 1, n, 0, 0, 0, "%s.bias", p);
    } else {
        spec_add(l, 0, 1.0f, 1, n, 0, 0, 0, "%s.weight", p);
        spec_add(l, 0, 0.0f, 1, n, 0, 0, 0, "%s.bias", p);
    }
}
#define LN(l, d, ...) add_pair(l, 0, d, 0, __VA_ARGS__)
#define LIN(l, n, k, ...) add_pair(l, 1, n, k, __VA_ARGS__)

/* Every tensor clip_model_load looks up, with Hugging Face names and shapes (as bench/clip_bench.c). */
static void clip_specs(const clip_config *c, spec_list *l) {
    const int64_t Dv = c->vision.hidden, Dt = c->text.hidden, P = c->patch_size, Pj = c->projection_dim;
    const int64_t grid = c->image_size / c->patch_size;
    R4(l, Dv, c->num_channels, P, P, "vision_model.embeddings.patch_embedding.weight");
    R1(l, Dv, "vision_model.embeddings.class_embedding");
    R2(l, grid * grid + 1, Dv, "vision_model.embeddings.position_embedding.weight");
    LN(l, Dv, "vision_model.pre_layrnorm");
    LN(l, Dv, "vision_model.post_layernorm");
    R2(l, Pj, Dv, "visual_projection.weight");
    R2(l, c->vocab_size, Dt, "text_model.embeddings.token_embedding.weight");
    R2(l, c->context_length, Dt, "text_model.embeddings.position_embedding.weight");
    LN(l, Dt, "text_model.final_layer_norm");
    R2(l, Pj, Dt, "text_projection.weight");
    spec_add(l, 0, 4.6052f, 0, 0, 0, 0, 0, "logit_scale"); /* ln(100) */
    const struct {
        const char *prefix;
        const clip_tower_config *t;
    } towers[2] = {{"vision_model", &c->vision}, {"text_model", &c->text}};
    for (int k = 0; k < 2; k++) {
        const char *p = towers[k].prefix;
        const int64_t D = towers[k].t->hidden, F = towers[k].t->mlp;
        for (int i = 0; i < towers[k].t->layers; i++) {
            static const char *const proj[4] = {"q_proj", "k_proj", "v_proj", "out_proj"};
            for (int j = 1; j <= 2; j++) LN(l, D, "%s.encoder.layers.%d.layer_norm%d", p, i, j);
            for (int j = 0; j < 4; j++) LIN(l, D, D, "%s.encoder.layers.%d.self_attn.%s", p, i, proj[j]);
            LIN(l, F, D, "%s.encoder.layers.%d.mlp.fc1", p, i);
            LIN(l, D, F, "%s.encoder.layers.%d.mlp.fc2", p, i);
        }
    }
}

/* Every tensor clap_model_load looks up for an unfused model (src/models/clap.c). */
static void clap_specs(const clap_config *c, spec_list *l) {
    const clap_audio_config *a = &c->audio;
    const clap_text_config *t = &c->text;
    const char *pre = "audio_model.audio_encoder";
    const int64_t D0 = a->patch_embeds_hidden_size, P = a->patch_size, Pj = c->projection_dim, Fm = a->num_mel_bins;
    ONES(l, Fm, "%s.batch_norm.weight", pre);
    ZEROS(l, Fm, "%s.batch_norm.bias", pre);
    ZEROS(l, Fm, "%s.batch_norm.running_mean", pre);
    ONES(l, Fm, "%s.batch_norm.running_var", pre);
    R4(l, D0, 1, P, P, "%s.patch_embed.proj.weight", pre);
    R1(l, D0, "%s.patch_embed.proj.bias", pre);
    if (a->enable_patch_layer_norm) LN(l, D0, "%s.patch_embed.norm", pre);
    int res = clap_audio_grid(a);
    for (int s = 0; s < a->n_stages; s++) {
        const int64_t D = clap_audio_stage_dim(a, s), F = (int64_t)(a->mlp_ratio * (double)D);
        const int64_t ws = res <= a->window_size ? res : a->window_size;
        for (int i = 0; i < a->depths[s]; i++) {
            char p[160];
            snprintf(p, sizeof p, "%s.layers.%d.blocks.%d", pre, s, i);
            LN(l, D, "%s.layernorm_before", p);
            LN(l, D, "%s.layernorm_after", p);
            static const char *const qkv[3] = {"query", "key", "value"};
            for (int j = 0; j < 3; j++) {
                R2(l, D, D, "%s.attention.self.%s.weight", p, qkv[j]);
                if (a->qkv_bias) R1(l, D, "%s.attention.self.%s.bias", p, qkv[j]);
            }
            R2(l, (2 * ws - 1) * (2 * ws - 1), a->heads[s], "%s.attention.self.relative_position_bias_table", p);
            LIN(l, D, D, "%s.attention.output.dense", p);
            LIN(l, F, D, "%s.intermediate.dense", p);
            LIN(l, D, F, "%s.output.dense", p);
        }
        if (s < a->n_stages - 1) {
            LN(l, 4 * D, "%s.layers.%d.downsample.norm", pre, s);
            R2(l, 2 * D, 4 * D, "%s.layers.%d.downsample.reduction.weight", pre, s);
            res /= 2;
        }
    }
    LN(l, a->hidden_size, "%s.norm", pre);
    LIN(l, Pj, a->hidden_size, "audio_projection.linear1");
    LIN(l, Pj, Pj, "audio_projection.linear2");
    const int64_t D = t->hidden, I = t->intermediate;
    R2(l, t->vocab_size, D, "text_model.embeddings.word_embeddings.weight");
    R2(l, t->max_position_embeddings, D, "text_model.embeddings.position_embeddings.weight");
    R2(l, t->type_vocab_size, D, "text_model.embeddings.token_type_embeddings.weight");
    LN(l, D, "text_model.embeddings.LayerNorm");
    for (int i = 0; i < t->layers; i++) {
        char p[128];
        snprintf(p, sizeof p, "text_model.encoder.layer.%d", i);
        LIN(l, D, D, "%s.attention.self.query", p);
        LIN(l, D, D, "%s.attention.self.key", p);
        LIN(l, D, D, "%s.attention.self.value", p);
        LIN(l, D, D, "%s.attention.output.dense", p);
        LN(l, D, "%s.attention.output.LayerNorm", p);
        LIN(l, I, D, "%s.intermediate.dense", p);
        LIN(l, D, I, "%s.output.dense", p);
        LN(l, D, "%s.output.LayerNorm", p);
    }
    LIN(l, D, D, "text_model.pooler.dense");
    LIN(l, Pj, D, "text_projection.linear1");
    LIN(l, Pj, Pj, "text_projection.linear2");
    spec_add(l, 0, 2.6593f, 0, 0, 0, 0, 0, "logit_scale_a"); /* ln(1 / 0.07), ClapModel's init */
    spec_add(l, 0, 2.6593f, 0, 0, 0, 0, 0, "logit_scale_t");
}

static size_t spec_numel(const tensor_spec *t) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    return n;
}

/* Write the tensors of l to path; 1 on success (message printed otherwise). */
static int write_weights(const spec_list *l, const char *path) {
    size_t total = 0;
    for (int i = 0; i < l->n; i++) total += spec_numel(&l->v[i]);
    st_write_tensor *ts = calloc((size_t)l->n, sizeof *ts);
    float *data = malloc(total * sizeof *data);
    int ok = 0;
    if (!ts || !data) {
        fprintf(stderr, "pipeline_bench: cannot allocate %zu MB for the random weights\n", total * 4 >> 20);
        goto done;
    }
    float *p = data;
    for (int i = 0; i < l->n; i++) {
        const tensor_spec *t = &l->v[i];
        size_t n = spec_numel(t);
        if (t->random) fill_random(p, n, 0.02f);
        else
            for (size_t k = 0; k < n; k++) p[k] = t->value;
        ts[i] = (st_write_tensor){t->name, ST_F32, t->ndim, t->shape, p};
        p += n;
    }
    st_write_meta meta[1] = {{"format", "pt"}};
    clxp_error err;
    if (st_write(path, ts, l->n, meta, 1, &err) != CLXP_OK) fprintf(stderr, "pipeline_bench: %s\n", err.msg);
    else ok = 1;
done:
    free(data);
    free(ts);
    return ok;
}

/* Fork a child that writes dir/model.safetensors for the specs (its memory never counts in this process).
 * Returns the pid (> 0) or -1. Must run before the first OpenMP parallel region. */
static pid_t spawn_writer(const spec_list *l, const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) perror("pipeline_bench: fork");
    if (pid == 0) _exit(write_weights(l, path) ? 0 : 1);
    return pid;
}

static int wait_ok(pid_t pid) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return 0;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Run argv (PATH search) with stdout and stderr to /dev/null unless show_err; returns the pid or -1. */
static pid_t spawn_cmd(char *const argv[], int show_err) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (!show_err) posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int e = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e != 0) {
        fprintf(stderr, "pipeline_bench: cannot run %s: %s\n", argv[0], strerror(e));
        return -1;
    }
    return pid;
}

/* Wall time of a command, -1 on failure. */
static double time_cmd(char *const argv[]) {
    double t0 = now_s();
    pid_t pid = spawn_cmd(argv, 1);
    if (pid < 0 || !wait_ok(pid)) return -1;
    return now_s() - t0;
}

static int write_text(const char *dir, const char *name, const char *text) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    size_t len = strlen(text);
    int ok = f && fwrite(text, 1, len, f) == len;
    if (f && fclose(f) != 0) ok = 0;
    if (!ok) fprintf(stderr, "pipeline_bench: cannot write %s: %s\n", path, strerror(errno));
    return ok;
}

static int link_file(const char *src, const char *dir, const char *name) {
    char path[4200], *abs = realpath(src, NULL);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int ok = abs && symlink(abs, path) == 0;
    if (!ok) fprintf(stderr, "pipeline_bench: cannot link %s into %s: %s\n", src, dir, strerror(errno));
    free(abs);
    return ok;
}

static void remove_dir(const char *dir) {
    static const char *const files[] = {"config.json", "model.safetensors", "tokenizer.json",
                                        "special_tokens_map.json", "preprocessor_config.json", "clip.mp4"};
    char path[4200];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

/* openai/clip-vit-base-patch32's preprocessor_config.json (CLIPImageProcessor, shortest edge 224, crop 224). */
static const char clip_preprocessor_json[] =
    "{\"crop_size\": {\"height\": 224, \"width\": 224}, \"do_center_crop\": true, \"do_convert_rgb\": true,\n"
    " \"do_normalize\": true, \"do_rescale\": true, \"do_resize\": true,\n"
    " \"image_mean\": [0.48145466, 0.4578275, 0.40821073], \"image_std\": [0.26862954, 0.26130258, 0.27577711],\n"
    " \"image_processor_type\": \"CLIPImageProcessor\", \"resample\": 3, \"rescale_factor\": 0.00392156862745098,\n"
    " \"size\": {\"shortest_edge\": 224}}\n";

/* laion/clap-htsat-unfused config.json (the fields clxp reads; HTSAT-tiny audio tower, RoBERTa-base text tower). */
static const char clap_config_json[] =
    "{\"architectures\": [\"ClapModel\"], \"model_type\": \"clap\", \"projection_dim\": 512,\n"
    " \"projection_hidden_act\": \"relu\", \"logit_scale_init_value\": 14.285714285714285,\n"
    " \"audio_config\": {\"model_type\": \"clap_audio_model\", \"aff_block_r\": 4, \"depths\": [2, 2, 6, 2],\n"
    "  \"enable_fusion\": false, \"enable_patch_layer_norm\": true, \"flatten_patch_embeds\": true,\n"
    "  \"fusion_type\": null, \"hidden_act\": \"gelu\", \"hidden_size\": 768, \"layer_norm_eps\": 1e-05,\n"
    "  \"mlp_ratio\": 4.0, \"num_attention_heads\": [4, 8, 16, 32], \"num_mel_bins\": 64,\n"
    "  \"patch_embed_input_channels\": 1, \"patch_embeds_hidden_size\": 96, \"patch_size\": 4,\n"
    "  \"patch_stride\": [4, 4], \"projection_dim\": 512, \"projection_hidden_act\": \"relu\", \"qkv_bias\": true,\n"
    "  \"spec_size\": 256, \"window_size\": 8},\n"
    " \"text_config\": {\"model_type\": \"clap_text_model\", \"bos_token_id\": 0, \"eos_token_id\": 2,\n"
    "  \"hidden_act\": \"gelu\", \"hidden_size\": 768, \"intermediate_size\": 3072, \"layer_norm_eps\": 1e-12,\n"
    "  \"max_position_embeddings\": 514, \"num_attention_heads\": 12, \"num_hidden_layers\": 12,\n"
    "  \"pad_token_id\": 1, \"projection_dim\": 512, \"projection_hidden_act\": \"relu\", \"type_vocab_size\": 1,\n"
    "  \"vocab_size\": 50265}}\n";

/* laion/clap-htsat-unfused preprocessor_config.json (ClapFeatureExtractor). */
static const char clap_preprocessor_json[] =
    "{\"chunk_length_s\": 10, \"feature_extractor_type\": \"ClapFeatureExtractor\", \"feature_size\": 64,\n"
    " \"fft_window_size\": 1024, \"frequency_max\": 14000, \"frequency_min\": 50, \"hop_length\": 480,\n"
    " \"max_length_s\": 10, \"n_fft\": 1024, \"nb_frequency_bins\": 513, \"nb_max_frames\": 1000,\n"
    " \"nb_max_samples\": 480000, \"padding\": \"repeatpad\", \"padding_side\": \"right\", \"padding_value\": 0.0,\n"
    " \"return_attention_mask\": false, \"sampling_rate\": 48000, \"top_db\": null, \"truncation\": \"rand_trunc\"}\n";

/* ---- CPU accounting (as clip_bench) ------------------------------------------------------------------------------- */

/* ---- GEMM probe and paired timing (as clip_bench) ------------------------------------------------------------ */

typedef struct {
    int M, N, K;
    const float *A, *B;
    float *C;
    const nn_matrix *W; /* packed weights (nn_linear_m, as the models run them), or NULL: dnnl_sgemm on B */
} gemm_ctx;

static int run_gemm(void *p) { /* y[M,N] = x[M,K] W[N,K]^T, row-major */
    const gemm_ctx *g = p;
    clxp_error err;
    if (g->W) return nn_linear_m(g->W, g->A, g->M, NULL, g->C, 0, &err) == CLXP_OK;
    return dnnl_sgemm('N', 'T', g->M, g->N, g->K, 1.0f, g->A, g->K, g->B, g->K, 0.0f, g->C, g->N) == dnnl_success;
}

typedef struct {
    double median, best; /* seconds per call */
    double ratio;        /* median over the runs of (flops / time) / (probe rate just before); 0 without probe */
    double probe_gflops;
} timing;

typedef int (*bench_fn)(void *ctx);

/* `warm` untimed calls, then >= reps timed calls, more (up to 200) while the total is under min_time. With pr, each
 * timed call is preceded by the fastest of three probe GEMMs (pr_flops each) and paired with it. */
static int measure(bench_fn fn, void *ctx, int warm, int reps, double min_time, const gemm_ctx *pr, double pr_flops,
                   double flops, timing *out) {
    double t[200], ratio[200], rate[200], total = 0;
    int n = 0;
    for (int i = 0; i < warm; i++)
        if (!fn(ctx)) return 0;
    while (n < 200 && (n < reps || total < min_time)) {
        double tp = INFINITY;
        for (int k = 0; pr && k < 3; k++) {
            gemm_ctx g = *pr;
            double t0 = now_s();
            if (!run_gemm(&g)) return 0;
            double dt = now_s() - t0;
            if (dt < tp) tp = dt;
        }
        double t0 = now_s();
        if (!fn(ctx)) return 0;
        t[n] = now_s() - t0;
        rate[n] = pr ? pr_flops / tp * 1e-9 : 0;
        ratio[n] = pr ? (flops / t[n]) / (pr_flops / tp) : 0;
        total += t[n++];
    }
    out->ratio = median(ratio, n);
    out->probe_gflops = median(rate, n);
    out->median = median(t, n);
    qsort(t, (size_t)n, sizeof t[0], bench_cmp_double);
    out->best = t[0];
    return 1;
}

/* ---- video: yardsticks --------------------------------------------------------------------------------------- */

/* A bare libavcodec decode of the whole clip (thread_count 0 as clxp's reader; no filter graph, no RGB):
 * skip = AVDISCARD_DEFAULT (every frame), AVDISCARD_NONREF, AVDISCARD_NONKEY. Counts the frames out, the key
 * packets and all packets of the stream (each may be NULL). Returns seconds or -1. */
static double raw_decode(const char *path, enum AVDiscard skip, int64_t *frames, int64_t *keyframes,
                         int64_t *packets) {
    double t0 = now_s();
    AVFormatContext *fmt = NULL;
    AVCodecContext *dec = NULL;
    AVPacket *pkt = av_packet_alloc();
    AVFrame *frame = av_frame_alloc();
    int64_t nf = 0, nk = 0, np = 0;
    int ok = 0;
    if (!pkt || !frame || avformat_open_input(&fmt, path, NULL, NULL) < 0 || avformat_find_stream_info(fmt, NULL) < 0)
        goto done;
    const AVCodec *codec = NULL;
    int idx = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (idx < 0 || !codec || !(dec = avcodec_alloc_context3(codec)) ||
        avcodec_parameters_to_context(dec, fmt->streams[idx]->codecpar) < 0)
        goto done;
    dec->thread_count = 0;
    dec->skip_frame = skip;
    if (avcodec_open2(dec, codec, NULL) < 0) goto done;
    for (int eof = 0; !eof;) {
        int e = av_read_frame(fmt, pkt);
        if (e < 0) {
            eof = 1;
            avcodec_send_packet(dec, NULL);
        } else {
            int use = pkt->stream_index == idx && (skip != AVDISCARD_NONKEY || (pkt->flags & AV_PKT_FLAG_KEY));
            nk += pkt->stream_index == idx && (pkt->flags & AV_PKT_FLAG_KEY);
            np += pkt->stream_index == idx;
            if (use) avcodec_send_packet(dec, pkt);
            av_packet_unref(pkt);
            if (!use) continue;
        }
        while (avcodec_receive_frame(dec, frame) >= 0) {
            nf++;
            av_frame_unref(frame);
        }
    }
    ok = 1;
done:
    avcodec_free_context(&dec);
    avformat_close_input(&fmt);
    av_frame_free(&frame);
    av_packet_free(&pkt);
    if (frames) *frames = nf;
    if (keyframes) *keyframes = nk;
    if (packets) *packets = np;
    return ok ? now_s() - t0 : -1;
}

/* ---- video: modes ------------------------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    double every_t;
    int keyframes;
    int skip_nonref;
    double duration; /* 0: the whole clip */
    int64_t frames;
    int n; /* repetitions done */
    /* wall seconds, CPU seconds of this process (all threads), ratio pipe / (dec + inf) of the same repetition */
    double dec[MAX_REPS], pre[MAX_REPS], inf[MAX_REPS], pipe[MAX_REPS], ratio[MAX_REPS];
    double dec_cpu[MAX_REPS], inf_cpu[MAX_REPS], pipe_cpu[MAX_REPS];
} mode_row;

#define N_MODES 5

/* CPU seconds of this process, all threads. */
static double proc_cpu_s(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* Decode + select + RGB + preprocess every frame the mode keeps, no model. *pre_s: the time in clip_preprocess. */
static double decode_only(const char *clip, const mode_row *md, const clip_preproc_cfg *pp, float *pix,
                          int64_t *frames, double *pre_s) {
    double t0 = now_s(), pre = 0;
    video_options vo;
    memset(&vo, 0, sizeof vo);
    vo.keyframes_only = md->keyframes;
    vo.skip_nonref = md->skip_nonref;
    vo.every_t = md->every_t;
    vo.duration = md->duration;
    video_reader *r = NULL;
    clxp_error err;
    int64_t n = 0;
    clxp_status st = video_open(clip, &vo, &r, &err);
    for (int eof = 0; st == CLXP_OK;) {
        video_frame f;
        if ((st = video_next(r, &f, &eof, &err)) != CLXP_OK || eof) break;
        double t1 = now_s();
        st = clip_preprocess(pp, f.rgb, f.width, f.height, 3 * f.width, pix, NULL, &err);
        pre += now_s() - t1;
        n++;
    }
    video_close(r);
    if (st != CLXP_OK) {
        fprintf(stderr, "pipeline_bench: %s\n", err.msg);
        return -1;
    }
    *frames = n;
    *pre_s = pre;
    return now_s() - t0;
}

/* The model on n preprocessed frames in batches of 16 (pix holds 16 frames). */
static double inference_only(clxp_model *m, const float *pix, int64_t n, float *emb) {
    double t0 = now_s();
    clxp_error err;
    for (int64_t b0 = 0; b0 < n; b0 += BATCH) {
        int B = n - b0 < BATCH ? (int)(n - b0) : BATCH;
        if (model_encode_pixels(m, pix, B, emb, &err) != CLXP_OK) {
            fprintf(stderr, "pipeline_bench: %s\n", err.msg);
            return -1;
        }
    }
    return now_s() - t0;
}

static int count_result(void *user, const clxp_result *r) {
    (void)r;
    ++*(int64_t *)user;
    return 0;
}

static double pipeline(clxp_model *m, const clxp_labelbank *bank, const char *clip, const mode_row *md,
                       int64_t *frames) {
    clxp_run_options o;
    memset(&o, 0, sizeof o);
    o.every_t = md->every_t;
    o.keyframes_only = md->keyframes;
    o.skip_nonref = md->skip_nonref;
    o.duration = md->duration;
    o.batch = BATCH;
    clxp_error err;
    int64_t n = 0;
    double t0 = now_s();
    if (clxp_run_file(m, bank, clip, &o, count_result, &n, &err) != CLXP_OK) {
        fprintf(stderr, "pipeline_bench: %s\n", err.msg);
        return -1;
    }
    *frames = n;
    return now_s() - t0;
}

/* ---- CLAP ---------------------------------------------------------------------------------------------------- */

/* HTSAT (unfused) per 10-s window, multiply-add = 2 FLOPs; BatchNorm, the time interpolation, LayerNorms, softmax,
 * GELU and biases ignored. Grid G = spec_size / patch (64), stage s: R = G / 2^s tokens per side, L = R^2 tokens,
 * D = D0 * 2^s, F = mlp_ratio * D, windows of N = w^2 tokens (w = min(window, R)):
 *   patch embedding            2 * G^2 * P^2 * D0
 *   per block: q,k,v, out      2 * L * D * (3D + D)
 *              fc1, fc2        2 * L * D * 2F
 *              Q K^T, P V      4 * L * N * D       (each window: N x N x D twice, all heads together)
 *   patch merging (stages 0..n-2)  2 * (L/4) * 4D * 2D
 *   projection                 2 * (hidden * Pj + Pj * Pj) */
static double htsat_flops(const clap_config *c) {
    const clap_audio_config *a = &c->audio;
    const double G = clap_audio_grid(a), P = a->patch_size, D0 = a->patch_embeds_hidden_size;
    double f = 2 * G * G * P * P * D0;
    for (int s = 0; s < a->n_stages; s++) {
        const double R = G / (1 << s), L = R * R, D = D0 * (1 << s), F = floor(a->mlp_ratio * D);
        const double w = R < a->window_size ? R : a->window_size, N = w * w;
        f += a->depths[s] * (2 * L * D * (4 * D + 2 * F) + 4 * L * N * D);
        if (s < a->n_stages - 1) f += 2 * (L / 4) * 4 * D * 2 * D;
    }
    return f + 2.0 * (a->hidden_size * c->projection_dim + c->projection_dim * c->projection_dim);
}

typedef struct {
    clxp_model *m;
    const float *feat;
    const int *is_longer;
    int B;
    float *emb;
} clap_ctx;

static int run_clap(void *p) {
    clap_ctx *c = p;
    clxp_error err;
    if (model_encode_features(c->m, c->feat, c->is_longer, c->B, c->emb, &err) != CLXP_OK) {
        fprintf(stderr, "pipeline_bench: %s\n", err.msg);
        return 0;
    }
    return 1;
}

typedef struct {
    const clap_fe *fe;
    const float *wave;
    size_t n;
    float *feat;
} fe_ctx;

static int run_fe(void *p) {
    fe_ctx *c = p;
    clxp_error err;
    int is_longer = 0;
    if (clap_fe_extract(c->fe, c->wave, c->n, NULL, c->feat, &is_longer, NULL, &err) != CLXP_OK) {
        fprintf(stderr, "pipeline_bench: %s\n", err.msg);
        return 0;
    }
    return 1;
}

#define N_SHAPES 5

typedef struct {
    int ok;
    double flops, fe_s;
    const char *shape_names[N_SHAPES];
    int shapes[N_SHAPES][3];
    double shape_gflops[N_SHAPES], peak;
    int peak_shape;
    timing t[2];
    int batch[2];
    int64_t n_params;
    const char *precision;
} clap_results;

static int run_clap_bench(const char *dir, const options *opt, clxp_precision prec, clap_results *R) {
    clxp_model *m = NULL;
    clxp_error err;
    clxp_load_options lo = {.n_threads = omp_get_max_threads(), .precision = prec};
    nn_matrix mats[N_SHAPES];
    int n_mats = 0;
    if (clxp_model_load(dir, &lo, &m, &err) != CLXP_OK) {
        fprintf(stderr, "pipeline_bench: %s\n", err.msg);
        return 0;
    }
    const clap_config *cfg = &m->clap->cfg;
    const int D2 = clap_audio_stage_dim(&cfg->audio, 2), D0 = cfg->audio.patch_embeds_hidden_size;
    const int G = clap_audio_grid(&cfg->audio);
    R->n_params = m->info.n_params;
    R->precision = m->info.precision;
    R->flops = htsat_flops(cfg);
    /* representative GEMMs at batch 8: stage 2 (6 of the 12 blocks, half the FLOPs) q/k/v, fc1, fc2; stage 0 fc1 (the
     * tallest); and ViT-B/32's fc2 at batch 16 (clip_bench's usual peak shape) */
    const int L2 = CLAP_B * (G / 4) * (G / 4), L0 = CLAP_B * G * G;
    const int shapes[N_SHAPES][3] = {{L2, 3 * D2, D2}, {L2, 4 * D2, D2}, {L2, D2, 4 * D2}, {L0, 4 * D0, D0},
                                     {800, 768, 3072}};
    const char *names[N_SHAPES] = {"s2 qkv", "s2 fc1", "s2 fc2", "s0 fc1", "ViT fc2"};
    memcpy(R->shapes, shapes, sizeof shapes);
    memcpy(R->shape_names, names, sizeof names);
    size_t maxA = 0, maxW = 0, maxC = 0;
    for (int s = 0; s < N_SHAPES; s++) {
        size_t a = (size_t)shapes[s][0] * shapes[s][2], w = (size_t)shapes[s][1] * shapes[s][2],
               c = (size_t)shapes[s][0] * shapes[s][1];
        if (a > maxA) maxA = a;
        if (w > maxW) maxW = w;
        if (c > maxC) maxC = c;
    }
    const size_t nf = (size_t)clap_fe_channels(m->fe) * clap_fe_frames(m->fe) * clap_fe_mels(m->fe);
    const size_t nw = (size_t)clap_fe_config(m->fe)->nb_max_samples;
    const int rate = clap_fe_config(m->fe)->sampling_rate;
    float *A = malloc(maxA * sizeof *A), *W = malloc(maxW * sizeof *W), *C = malloc(maxC * sizeof *C);
    float *wave = malloc(nw * sizeof *wave), *feat = malloc(CLAP_B * nf * sizeof *feat);
    float *emb = malloc((size_t)CLAP_B * m->info.embed_dim * sizeof *emb);
    int ok = 0;
    if (!A || !W || !C || !wave || !feat || !emb) {
        fprintf(stderr, "pipeline_bench: out of memory\n");
        goto out;
    }
    fill_random(A, maxA, 1.0f);
    fill_random(W, maxW, 0.02f);
    /* a 10-s window: two chirps and noise */
    for (size_t i = 0; i < nw; i++) {
        double t = (double)i / rate;
        wave[i] = (float)(0.3 * sin(2 * M_PI * (200 + 300 * t) * t) + 0.2 * sin(2 * M_PI * (3000 - 100 * t) * t) +
                          0.05 * rng_sym());
    }
    timing tf;
    fe_ctx fc = {m->fe, wave, nw, feat};
    if (!measure(run_fe, &fc, 1, opt->reps, 0.5, NULL, 0, 0, &tf)) goto out;
    R->fe_s = tf.median;
    int is_longer[CLAP_B] = {0};
    for (int b = 1; b < CLAP_B; b++) memcpy(feat + b * nf, feat, nf * sizeof *feat);
    for (int s = 0; s < N_SHAPES; s++, n_mats++) { /* the GEMMs as the tower runs them: packed, same precision */
        mats[s] = nn_matrix_plain(W, shapes[s][1], shapes[s][2]);
        if (nn_matrix_pack(&mats[s], m->clap->eng, prec == CLXP_PRECISION_BF16 ? NN_BF16 : NN_FP32, &err) != CLXP_OK) {
            fprintf(stderr, "pipeline_bench: %s\n", err.msg);
            goto out;
        }
        gemm_ctx g = {shapes[s][0], shapes[s][1], shapes[s][2], A, W, C, &mats[s]};
        timing tg;
        double fl = 2.0 * g.M * g.N * g.K;
        if (!measure(run_gemm, &g, 2, 2 * opt->reps, 0.5, NULL, 0, 0, &tg)) goto out;
        R->shape_gflops[s] = fl / tg.median * 1e-9;
        if (R->shape_gflops[s] > R->peak) {
            R->peak = R->shape_gflops[s];
            R->peak_shape = s;
        }
    }
    const int ps = R->peak_shape;
    const gemm_ctx pr = {shapes[ps][0], shapes[ps][1], shapes[ps][2], A, W, C, &mats[ps]};
    const double pr_flops = 2.0 * pr.M * pr.N * pr.K;
    const int batches[2] = {1, CLAP_B};
    for (int i = 0; i < 2; i++) {
        clap_ctx cc = {m, feat, is_longer, batches[i], emb};
        R->batch[i] = batches[i];
        if (!measure(run_clap, &cc, 1, opt->reps, 1.0, &pr, pr_flops, R->flops * batches[i], &R->t[i])) goto out;
    }
    ok = 1;
out:
    for (int s = 0; s < n_mats; s++) nn_matrix_release(&mats[s]);
    free(A);
    free(W);
    free(C);
    free(wave);
    free(feat);
    free(emb);
    clxp_model_free(m);
    return ok;
}

/* ---- report --------------------------------------------------------------------------------------------------- */

typedef struct {
    int video_ok;
    double gen_s;
    long long clip_bytes;
    int64_t clip_frames, clip_keys;
    double cli_all[MAX_REPS], cli_key[MAX_REPS];
    int n_cli;
    double raw[3][MAX_REPS];
    int64_t raw_frames[3];
    int n_raw;
    mode_row modes[N_MODES];
    int spin_ok; /* the pipeline rows again in a child process with the other libgomp spin setting */
    char spin_other[64];
    mode_row spin[N_MODES];
    clap_results clap[2]; /* fp32, bf16 */
    double foreign;
} results;

static const char *wait_setting(char *buf, size_t n) {
    const char *spin = getenv("GOMP_SPINCOUNT"), *policy = getenv("OMP_WAIT_POLICY");
    if (policy) snprintf(buf, n, "OMP_WAIT_POLICY=%s", policy);
    else if (spin) snprintf(buf, n, "GOMP_SPINCOUNT=%s", spin);
    else snprintf(buf, n, "libgomp default spin");
    return buf;
}

static void print_modes(const mode_row *modes, unsigned mask) {
    printf("    %-26s %6s %8s %8s %8s %8s %8s %8s %8s %8s %10s\n", "mode", "frames", "decode", "(cpu)", "(preproc)",
           "infer", "(cpu)", "pipeline", "(cpu)", "frames/s", "wall/(d+i)");
    for (int i = 0; i < N_MODES; i++) {
        const mode_row *md = &modes[i];
        if (!(mask >> i & 1) || md->n == 0) continue;
        const double p = median(md->pipe, md->n);
        printf("    %-26s %6lld %7.2fs %7.2fs %7.2fs %7.2fs %7.2fs %7.2fs %7.2fs %8.2f %10.3f\n", md->name,
               (long long)md->frames, median(md->dec, md->n), median(md->dec_cpu, md->n), median(md->pre, md->n),
               median(md->inf, md->n), median(md->inf_cpu, md->n), p, median(md->pipe_cpu, md->n), md->frames / p,
               median(md->ratio, md->n));
    }
}

static void print_report(const results *R, const options *opt, int threads) {
    char cpu[256], wait[128];
    bench_cpu_model(cpu, sizeof cpu);
    const dnnl_version_t *ver = dnnl_version();
    printf("clxp pipeline benchmark (random weights; video rows fp32, the audio tower in fp32 and bf16)\n");
    printf("  cpu      %s, %d thread%s (%s), oneDNN %d.%d.%d, %s\n", cpu, threads, threads == 1 ? "" : "s",
           getenv("OMP_NUM_THREADS") ? "OMP_NUM_THREADS" : "all online CPUs", ver->major, ver->minor, ver->patch,
           wait_setting(wait, sizeof wait));
    printf("  timing   median of %d runs; decode-only, inference-only and the pipeline each alone, interleaved\n",
           opt->reps);
    if (R->video_ok) {
        const double cli_all = median(R->cli_all, R->n_cli), cli_key = median(R->cli_key, R->n_cli);
        printf("  video    %s: %.1f MB, %lld frames, %lld key frames\n",
               opt->clip_path ? opt->clip_path : "30 s 1280x720 30 fps H.264 (testsrc2, libx264 veryfast, -g 250)",
               R->clip_bytes / 1e6, (long long)R->clip_frames, (long long)R->clip_keys);
        if (R->gen_s > 0) printf("           generated in %.1f s (the models were written meanwhile)\n", R->gen_s);
        if (R->n_cli > 0) {
            printf("\n  decoding yardsticks, whole clip (no RGB, no preprocessing, no model):\n");
            printf("    %-60s %7.2f s %8.0f frames/s\n", "ffmpeg -threads 2 -i clip.mp4 -f null -", cli_all,
                   R->clip_frames / cli_all);
            printf("    %-60s %7.2f s %8.0f frames/s\n", "ffmpeg -threads 2 -skip_frame nokey -i clip.mp4 -f null -",
                   cli_key, R->clip_keys / cli_key);
            const char *raw_names[3] = {"libavcodec, every frame (thread_count 0 as clxp)",
                                        "libavcodec, non-reference frames skipped (AVDISCARD_NONREF)",
                                        "libavcodec, key frames only (AVDISCARD_NONKEY)"};
            const double raw_all = median(R->raw[0], R->n_raw);
            for (int i = 0; i < 3; i++) {
                const double t = median(R->raw[i], R->n_raw);
                printf("    %-60s %7.2f s %8.0f frames/s %6.1fx faster (%lld frames)\n", raw_names[i], t,
                       R->raw_frames[i] / t, raw_all / t, (long long)R->raw_frames[i]);
            }
        }
        printf("\n  ViT-B/32 on the clip, batch %d; decode = demux + decode + select + RGB + preprocessing, no model;\n"
               "  infer = the model alone on as many frames; (cpu) = CPU seconds of the process, all threads:\n",
               BATCH);
        print_modes(R->modes, 0x1F);
        double ref = 0;
        for (int i = 0; i < N_MODES; i++)
            if (R->modes[i].n && R->modes[i].every_t > 0 && !R->modes[i].keyframes && !R->modes[i].skip_nonref &&
                R->modes[i].duration == 0)
                ref = median(R->modes[i].pipe, R->modes[i].n);
        if (ref > 0) {
            printf("    clip time vs 1 frame/s:");
            for (int i = 0; i < N_MODES; i++) {
                const mode_row *md = &R->modes[i];
                if (md->n && md->duration == 0 && (md->keyframes || md->skip_nonref || md->every_t == 0))
                    printf("  %s %.1fx faster", md->name, ref / median(md->pipe, md->n));
            }
            printf("\n");
        }
        printf("    wall/(d+i): median over the runs of pipeline / (decode + infer) of the same run; goal <= %.2f\n",
               GOAL_RATIO);
        if (R->spin_ok) {
            printf("\n  the same in a child process with %s (libgomp reads it at start-up):\n", R->spin_other);
            print_modes(R->spin, opt->spin_modes);
        }
    }
    for (int cp = 0; cp < 2; cp++) {
        const clap_results *C = &R->clap[cp];
        if (!C->ok) continue;
        printf("\n  CLAP laion/clap-htsat-unfused config (%.1f M parameters), 10-s windows at 48 kHz, "
               "HTSAT %.2f GFLOP/window, %s:\n",
               C->n_params * 1e-6, C->flops * 1e-9, C->precision);
        printf("    GEMM GFLOP/s (packed %s matmul as the tower runs it, M x N x K):", C->precision);
        for (int s = 0; s < N_SHAPES; s++)
            printf("%s %s %dx%dx%d %.1f", s ? ";" : "", C->shape_names[s], C->shapes[s][0], C->shapes[s][1],
                   C->shapes[s][2], C->shape_gflops[s]);
        printf("\n    GEMM peak %.1f GFLOP/s (%s); log-mel features (clap_fe_extract) %.1f ms per window\n", C->peak,
               C->shape_names[C->peak_shape], C->fe_s * 1e3);
        printf("    %-26s %5s %9s %9s %10s %8s %8s %8s\n", "workload", "batch", "ms/batch", "(best)", "windows/s",
               "GFLOP/s", "of peak", "(paired)");
        for (int i = 0; i < 2; i++) {
            const timing *t = &C->t[i];
            const double g = C->flops * C->batch[i] / t->median * 1e-9;
            printf("    %-26s %5d %9.1f %9.1f %10.2f %8.1f %7.1f%% %7.1f%%\n", "audio tower (HTSAT)", C->batch[i],
                   t->median * 1e3, t->best * 1e3, C->batch[i] / t->median, g, 100 * g / C->peak, 100 * t->ratio);
        }
        printf("    (paired): median over the runs of GFLOP/s / the peak GEMM timed just before each run\n");
    }
    if (R->foreign >= 0)
        printf("\n  other processes used %.0f%% of the CPUs while measuring%s\n", 100 * R->foreign,
               R->foreign > 0.05 ? ": timings are disturbed (ratios within one run still compare)" : "");
    if (R->video_ok) {
        for (int i = 0; i < N_MODES; i++) {
            const mode_row *md = &R->modes[i];
            if (!md->n) continue;
            const double r = median(md->ratio, md->n);
            printf("  ratio: %-26s wall / (decode + infer) = %.3f, goal <= %.2f: %s\n", md->name, r, GOAL_RATIO,
                   r <= GOAL_RATIO ? "met" : R->foreign > 0.05 ? "NOT met (machine busy)" : "NOT met");
        }
    }
}

/* ---- main ----------------------------------------------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr,
            "usage: pipeline_bench [--config PATH] [--clip FILE] [--reps N] [--every-seconds S] [--modes LIST]\n"
            "                      [--data DIR] [--compare-spin] [--no-video] [--no-clap] [--no-yardsticks] [--keep]\n"
            "  --config         CLIPConfig JSON of the video model (default %s)\n"
            "  --clip           use this video instead of generating the 30 s 720p H.264 clip with the ffmpeg CLI\n"
            "  --reps           repetitions of every measurement, median reported (default 3)\n"
            "  --every-seconds  the every-frame row decodes and classifies the first S seconds (default 2)\n"
            "  --modes          video rows to run, a comma list of every,interval,keyframes,interval-keyframes,\n"
            "                   interval-nonref\n"
            "                   (default all)\n"
            "  --data           directory with the test tokenizers (default tests/data)\n"
            "  --compare-spin   also run the --interval 1 row in a child process with the other libgomp spin\n"
            "                   setting (GOMP_SPINCOUNT=10000 vs libgomp's default)\n"
            "  --no-video, --no-clap, --no-yardsticks  skip a section (yardsticks: ffmpeg CLI, bare libavcodec)\n"
            "  --keep           keep the temporary directory (its path is printed)\n"
            "threads: OMP_NUM_THREADS (default: all online CPUs)\n",
            DEFAULT_CONFIG);
}

static const char *const mode_keys[N_MODES] = {"every", "interval", "keyframes", "interval-keyframes",
                                                 "interval-nonref"};

static int parse_modes(const char *s, unsigned *mask) {
    *mask = 0;
    while (*s) {
        size_t n = strcspn(s, ",");
        int found = 0;
        for (int i = 0; i < N_MODES; i++)
            if (strlen(mode_keys[i]) == n && strncmp(s, mode_keys[i], n) == 0) {
                *mask |= 1u << i;
                found = 1;
            }
        if (!found) return 0;
        s += n;
        if (*s == ',') s++;
    }
    return *mask != 0;
}

static int parse_args(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->config_path = DEFAULT_CONFIG;
    o->data_dir = "tests/data";
    o->reps = 3;
    o->every_seconds = 2.0;
    o->modes = 0x1F;
    o->spin_modes = 1u << 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--config") == 0 && i + 1 < argc) o->config_path = argv[++i];
        else if (strcmp(a, "--clip") == 0 && i + 1 < argc) o->clip_path = argv[++i];
        else if (strcmp(a, "--reps") == 0 && i + 1 < argc) o->reps = atoi(argv[++i]);
        else if (strcmp(a, "--every-seconds") == 0 && i + 1 < argc) o->every_seconds = atof(argv[++i]);
        else if (strcmp(a, "--modes") == 0 && i + 1 < argc) {
            if (!parse_modes(argv[++i], &o->modes)) {
                usage();
                return 0;
            }
        } else if (strcmp(a, "--data") == 0 && i + 1 < argc) o->data_dir = argv[++i];
        else if (strcmp(a, "--compare-spin") == 0) o->compare_spin = 1;
        else if (strcmp(a, "--child-model") == 0 && i + 1 < argc) o->child_model = argv[++i]; /* internal */
        else if (strcmp(a, "--no-video") == 0) o->no_video = 1;
        else if (strcmp(a, "--no-clap") == 0) o->no_clap = 1;
        else if (strcmp(a, "--no-yardsticks") == 0) o->no_yardsticks = 1;
        else if (strcmp(a, "--keep") == 0) o->keep = 1;
        else {
            usage();
            return 0;
        }
    }
    if (o->reps < 1 || o->reps > MAX_REPS || !(o->every_seconds > 0 && o->every_seconds <= 3600) ||
        (o->child_model && !o->clip_path)) {
        usage();
        return 0;
    }
    return 1;
}

/* Mode rows of the video section. */
static void init_modes(mode_row *modes, double every_seconds) {
    static char every_name[64];
    snprintf(every_name, sizeof every_name, "every frame, first %g s", every_seconds);
    modes[0] = (mode_row){.name = every_name, .duration = every_seconds};
    modes[1] = (mode_row){.name = "1 frame/s (--interval 1)", .every_t = 1};
    modes[2] = (mode_row){.name = "key frames (--keyframes)", .keyframes = 1};
    modes[3] = (mode_row){.name = "1 frame/s + key frames", .every_t = 1, .keyframes = 1};
    modes[4] = (mode_row){.name = "1 frame/s, non-ref skipped", .every_t = 1, .skip_nonref = 1};
}

/* The rows of `mask`: decode-only, inference-only and the pipeline, interleaved, each repetition in turn. */
static int run_modes(const char *model_dir, const char *clip, const options *opt, unsigned mask, mode_row *modes) {
    clxp_model *m = NULL;
    clxp_labelbank *bank = NULL;
    clxp_error err;
    clxp_load_options lo = {.n_threads = omp_get_max_threads(), .precision = CLXP_PRECISION_FP32};
    const char *labels[8] = {"a cat", "a dog", "a car", "a test pattern", "people", "a city", "a forest", "text"};
    if (clxp_model_load(model_dir, &lo, &m, &err) != CLXP_OK ||
        clxp_labelbank_create(m, labels, 8, NULL, 0, &bank, &err) != CLXP_OK) {
        fprintf(stderr, "pipeline_bench: %s\n", err.msg);
        clxp_model_free(m);
        return 0;
    }
    const int S = m->info.image_size;
    const size_t plane = (size_t)3 * S * S;
    float *pix = malloc(BATCH * plane * sizeof *pix), *emb = malloc((size_t)BATCH * m->info.embed_dim * sizeof *emb);
    int ok = 0;
    if (!pix || !emb) {
        fprintf(stderr, "pipeline_bench: out of memory\n");
        goto out;
    }
    fill_random(pix, BATCH * plane, 1.0f);
    if (inference_only(m, pix, BATCH, emb) < 0) goto out; /* warm-up: activation arena, oneDNN kernels */
    init_modes(modes, opt->every_seconds);
    for (int r = 0; r < opt->reps; r++) {
        for (int i = 0; i < N_MODES; i++) {
            mode_row *md = &modes[i];
            if (!(mask >> i & 1)) continue;
            int64_t nd = 0, np = 0;
            double pre = 0, c[6];
            c[0] = proc_cpu_s();
            const double d = decode_only(clip, md, &m->pp, pix, &nd, &pre);
            c[1] = proc_cpu_s();
            if (d < 0) goto out;
            fill_random(pix, plane, 1.0f); /* the model sees random pixels, not the last frame repeated */
            c[2] = proc_cpu_s();
            const double inf = inference_only(m, pix, nd, emb);
            c[3] = proc_cpu_s();
            const double p = pipeline(m, bank, clip, md, &np);
            c[4] = proc_cpu_s();
            if (inf < 0 || p < 0) goto out;
            if (np != nd) {
                fprintf(stderr, "pipeline_bench: %s: the pipeline classified %lld frames, decode-only kept %lld\n",
                        md->name, (long long)np, (long long)nd);
                goto out;
            }
            md->frames = nd;
            md->dec[r] = d;
            md->pre[r] = pre;
            md->inf[r] = inf;
            md->pipe[r] = p;
            md->ratio[r] = p / (d + inf);
            md->dec_cpu[r] = c[1] - c[0];
            md->inf_cpu[r] = c[3] - c[2];
            md->pipe_cpu[r] = c[4] - c[3];
            md->n = r + 1;
        }
    }
    ok = 1;
out:
    free(pix);
    free(emb);
    clxp_labelbank_free(bank);
    clxp_model_free(m);
    return ok;
}

/* Child output: one line per row, medians. */
static void print_child_rows(const mode_row *modes) {
    for (int i = 0; i < N_MODES; i++) {
        const mode_row *md = &modes[i];
        if (!md->n) continue;
        printf("row %d %lld %.6f %.6f %.6f %.6f %.6f %.6f %.6f %.6f\n", i, (long long)md->frames,
               median(md->dec, md->n), median(md->dec_cpu, md->n), median(md->pre, md->n), median(md->inf, md->n),
               median(md->inf_cpu, md->n), median(md->pipe, md->n), median(md->pipe_cpu, md->n),
               median(md->ratio, md->n));
    }
}

/* Run the spin_modes rows in a child process (this executable) with the other libgomp spin setting. */
static int run_spin_child(const char *model_dir, const char *clip, const options *opt, results *R) {
    char reps[16], secs[32], modes[128] = "";
    snprintf(reps, sizeof reps, "%d", opt->reps);
    snprintf(secs, sizeof secs, "%g", opt->every_seconds);
    for (int i = 0; i < N_MODES; i++)
        if (opt->spin_modes >> i & 1) snprintf(modes + strlen(modes), sizeof modes - strlen(modes), "%s%s",
                                               modes[0] ? "," : "", mode_keys[i]);
    char *argv[] = {"/proc/self/exe", "--child-model", (char *)model_dir, "--clip",  (char *)clip, "--reps", reps,
                    "--every-seconds", secs, "--modes", modes, "--no-clap", NULL};
    /* the other setting: the CLI's short spin when none was set, else libgomp's default */
    const int had = getenv("GOMP_SPINCOUNT") || getenv("OMP_WAIT_POLICY");
    size_t n_env = 0;
    while (environ[n_env]) n_env++;
    char **env = calloc(n_env + 2, sizeof *env);
    if (!env) return 0;
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++)
        if (strncmp(environ[i], "GOMP_SPINCOUNT=", 15) != 0 && strncmp(environ[i], "OMP_WAIT_POLICY=", 16) != 0)
            env[k++] = environ[i];
    if (!had) env[k++] = "GOMP_SPINCOUNT=10000";
    snprintf(R->spin_other, sizeof R->spin_other, "%s", had ? "libgomp's default spin" : "GOMP_SPINCOUNT=10000");
    int fds[2];
    if (pipe(fds) != 0) {
        free(env);
        return 0;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    pid_t pid;
    fflush(NULL);
    int e = posix_spawn(&pid, argv[0], &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    close(fds[1]);
    if (e != 0) {
        close(fds[0]);
        fprintf(stderr, "pipeline_bench: cannot re-run itself: %s\n", strerror(e));
        return 0;
    }
    FILE *f = fdopen(fds[0], "r");
    char line[512];
    init_modes(R->spin, opt->every_seconds);
    int rows = 0;
    while (f && fgets(line, sizeof line, f)) {
        int i;
        long long frames;
        double v[9];
        if (sscanf(line, "row %d %lld %lf %lf %lf %lf %lf %lf %lf %lf", &i, &frames, &v[0], &v[1], &v[2], &v[3], &v[4],
                   &v[5], &v[6], &v[7]) == 10 &&
            i >= 0 && i < N_MODES) {
            mode_row *md = &R->spin[i];
            md->frames = frames;
            md->n = 1;
            md->dec[0] = v[0];
            md->dec_cpu[0] = v[1];
            md->pre[0] = v[2];
            md->inf[0] = v[3];
            md->inf_cpu[0] = v[4];
            md->pipe[0] = v[5];
            md->pipe_cpu[0] = v[6];
            md->ratio[0] = v[7];
            rows++;
        }
    }
    if (f) fclose(f);
    else close(fds[0]);
    return wait_ok(pid) && rows > 0;
}

/* The video section: yardsticks, then the mode rows (and the spin comparison). */
static int run_video(const char *model_dir, const char *clip, const options *opt, results *R) {
    char *ff_all[] = {"ffmpeg", "-nostdin", "-v", "error", "-threads", "2", "-i", (char *)clip, "-f", "null", "-",
                      NULL};
    char *ff_key[] = {"ffmpeg", "-nostdin", "-v",  "error", "-threads", "2", "-skip_frame", "nokey", "-i",
                      (char *)clip, "-f", "null", "-", NULL};
    const enum AVDiscard skips[3] = {AVDISCARD_DEFAULT, AVDISCARD_NONREF, AVDISCARD_NONKEY};
    for (int r = 0; r < opt->reps && !opt->no_yardsticks; r++) {
        if ((R->cli_all[r] = time_cmd(ff_all)) < 0 || (R->cli_key[r] = time_cmd(ff_key)) < 0) {
            fprintf(stderr, "pipeline_bench: the ffmpeg CLI failed on %s\n", clip);
            return 0;
        }
        R->n_cli = r + 1;
        for (int i = 0; i < 3; i++) {
            if ((R->raw[i][r] = raw_decode(clip, skips[i], &R->raw_frames[i], NULL, NULL)) < 0) {
                fprintf(stderr, "pipeline_bench: cannot decode %s\n", clip);
                return 0;
            }
        }
        R->n_raw = r + 1;
    }
    if (raw_decode(clip, AVDISCARD_NONKEY, NULL, &R->clip_keys, &R->clip_frames) < 0) {
        fprintf(stderr, "pipeline_bench: cannot decode %s\n", clip);
        return 0;
    }
    if (!run_modes(model_dir, clip, opt, opt->modes, R->modes)) return 0;
    if (opt->compare_spin && !run_spin_child(model_dir, clip, opt, R))
        fprintf(stderr, "pipeline_bench: the spin comparison failed\n");
    R->spin_ok = opt->compare_spin && R->spin[1].n + R->spin[0].n + R->spin[2].n + R->spin[3].n > 0;
    return 1;
}

int main(int argc, char **argv) {
    options opt;
    if (!parse_args(argc, argv, &opt)) return 2;
    if (opt.child_model) { /* internal: the spin comparison's child */
        mode_row modes[N_MODES];
        memset(modes, 0, sizeof modes);
        if (!run_modes(opt.child_model, opt.clip_path, &opt, opt.modes, modes)) return 1;
        print_child_rows(modes);
        return 0;
    }
    static results R;
    R.foreign = -1;
    const char *tmp_base = getenv("TMPDIR");
    char dir[4096], clip_dir[4200], clap_dir[4200], clip[4300], tok[4200];
    snprintf(dir, sizeof dir, "%s/clxp-pipeline-XXXXXX", tmp_base && *tmp_base ? tmp_base : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "pipeline_bench: cannot create a temporary directory: %s\n", strerror(errno));
        return 1;
    }
    snprintf(clip_dir, sizeof clip_dir, "%s/clip-vit-base-patch32", dir);
    snprintf(clap_dir, sizeof clap_dir, "%s/clap-htsat-unfused", dir);
    snprintf(clip, sizeof clip, "%s/clip.mp4", dir);
    if (opt.clip_path) snprintf(clip, sizeof clip, "%s", opt.clip_path);
    int rc = 1, video = !opt.no_video, clap = !opt.no_clap;
    spec_list clip_l = {NULL, 0, 0, 1}, clap_l = {NULL, 0, 0, 1};
    pid_t writers[2] = {-1, -1}, gen = -1;
    const double t0 = now_s();

    /* set-up: model directories (weights written by child processes) and the clip, all at once */
    if (video) {
        clip_config cc;
        clxp_error err;
        char *cfg_text = NULL, stm[4200];
        size_t len = 0;
        snprintf(tok, sizeof tok, "%s/clip-tiny-quickgelu/tokenizer.json", opt.data_dir);
        snprintf(stm, sizeof stm, "%s/clip-tiny-quickgelu/special_tokens_map.json", opt.data_dir);
        if (clip_config_load(opt.config_path, &cc, &err) != CLXP_OK ||
            clxp_read_file(opt.config_path, CLXP_MAX_JSON_BYTES, &cfg_text, &len, &err) != CLXP_OK) {
            fprintf(stderr, "pipeline_bench: %s\n", err.msg);
            goto done;
        }
        int ok = mkdir(clip_dir, 0700) == 0 && write_text(clip_dir, "config.json", cfg_text) &&
                 write_text(clip_dir, "preprocessor_config.json", clip_preprocessor_json) &&
                 link_file(tok, clip_dir, "tokenizer.json") && link_file(stm, clip_dir, "special_tokens_map.json");
        free(cfg_text);
        if (!ok) goto done;
        clip_specs(&cc, &clip_l);
        if (!clip_l.ok || (writers[0] = spawn_writer(&clip_l, clip_dir)) < 0) goto done;
        if (!opt.clip_path) {
            char *argv_gen[] = {"ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                                "testsrc2=size=1280x720:rate=30:duration=30", "-c:v", "libx264", "-preset", "veryfast",
                                "-g", "250", "-pix_fmt", "yuv420p", "-an", clip, NULL};
            if ((gen = spawn_cmd(argv_gen, 1)) < 0) {
                fprintf(stderr, "pipeline_bench: the video rows need the ffmpeg CLI with libx264 "
                                "(Debian: apt-get install ffmpeg), or --clip FILE\n");
                goto done;
            }
        }
    }
    if (clap) {
        clap_config ac;
        clxp_error err;
        snprintf(tok, sizeof tok, "%s/tokenizers/roberta/tokenizer.json", opt.data_dir);
        if (clap_config_parse(clap_config_json, strlen(clap_config_json), "clap-htsat-unfused config", &ac, &err) !=
            CLXP_OK) {
            fprintf(stderr, "pipeline_bench: %s\n", err.msg);
            goto done;
        }
        if (!(mkdir(clap_dir, 0700) == 0 && write_text(clap_dir, "config.json", clap_config_json) &&
              write_text(clap_dir, "preprocessor_config.json", clap_preprocessor_json) &&
              link_file(tok, clap_dir, "tokenizer.json")))
            goto done;
        clap_specs(&ac, &clap_l);
        if (!clap_l.ok || (writers[1] = spawn_writer(&clap_l, clap_dir)) < 0) goto done;
    }
    for (int i = 0; i < 2; i++)
        if (writers[i] > 0) {
            int ok = wait_ok(writers[i]);
            writers[i] = -1;
            if (!ok) {
                fprintf(stderr, "pipeline_bench: writing the random model failed\n");
                goto done;
            }
        }
    if (gen > 0) {
        int ok = wait_ok(gen);
        gen = -1;
        if (!ok) {
            fprintf(stderr, "pipeline_bench: the ffmpeg CLI could not make the clip (it needs libx264)\n");
            goto done;
        }
        R.gen_s = now_s() - t0;
    }
    if (video) {
        struct stat sb;
        if (stat(clip, &sb) != 0) {
            fprintf(stderr, "pipeline_bench: %s: %s\n", clip, strerror(errno));
            goto done;
        }
        R.clip_bytes = (long long)sb.st_size;
    }

    const double busy0 = bench_machine_busy_s(), self0 = bench_cpu_s(1), wall0 = now_s();
    if (video) R.video_ok = run_video(clip_dir, clip, &opt, &R);
    if (clap) {
        R.clap[0].ok = run_clap_bench(clap_dir, &opt, CLXP_PRECISION_FP32, &R.clap[0]);
        if (nn_cpu_has_bf16()) R.clap[1].ok = run_clap_bench(clap_dir, &opt, CLXP_PRECISION_BF16, &R.clap[1]);
    }
    const double busy1 = bench_machine_busy_s(), self1 = bench_cpu_s(1), wall1 = now_s();
    const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (busy0 >= 0 && busy1 >= 0 && ncpu > 0) {
        R.foreign = ((busy1 - busy0) - (self1 - self0)) / ((wall1 - wall0) * (double)ncpu);
        if (R.foreign < 0) R.foreign = 0;
    }
    if ((!video || R.video_ok) || (!clap || R.clap[0].ok)) print_report(&R, &opt, omp_get_max_threads());
    rc = (video && !R.video_ok) || (clap && !R.clap[0].ok);
done:
    for (int i = 0; i < 2; i++)
        if (writers[i] > 0) wait_ok(writers[i]);
    if (gen > 0) wait_ok(gen);
    free(clip_l.v);
    free(clap_l.v);
    if (opt.keep) {
        fprintf(stderr, "pipeline_bench: kept %s\n", dir);
    } else {
        remove_dir(clip_dir);
        remove_dir(clap_dir);
        remove_dir(dir);
    }
    return rc;
}
