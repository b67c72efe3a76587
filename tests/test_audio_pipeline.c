/* End-to-end tests of the audio pipeline with CLAP models through the public API (clxp_run_file,
 * clxp_encode_audio, clxp_encode_audio_files): the golden WAVs against the reference probabilities and against
 * encoding the same samples by hand; the number, start and length of the windows for inputs shorter than, exactly,
 * and longer than a window, with --hop (overlapping windows and gaps between them) and --start/--duration, each
 * window's scores against clxp_encode_audio on the same samples (the last one repeat-padded); 44.1 kHz stereo
 * input; silence, a 1-sample file and an empty one; a file damaged in the middle; NaN/Inf samples; the
 * deterministic crop of a long clip in single-window mode (clxp_encode_audio_files, "rand_trunc" and "fusion");
 * the sound track of a video, stream selection, and the errors for a CLAP model on a silent video, a CLIP model on
 * an audio file and the video frame-selection options with a CLAP model.
 *
 * Not tested: one pass classifying the frames and the sound of a file together (CLIP + CLAP) is not implemented.
 *
 * WAV inputs are written here with exactly known samples; the others are made with the ffmpeg command-line tool
 * (Debian's ffmpeg package, installed by scripts/install-deps.sh). All go into one mkdtemp directory under $TMPDIR
 * or /tmp, removed at the end, and are at most 25 s long. The models are the tiny random-weight CLAP test models
 * (48 kHz, 10-s windows of 480000 samples): their classifications are meaningless but deterministic. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <libavutil/log.h>

#include "clxp.h"
#include "scratch.h"
#include "golden.h"
#include "test.h"

#define RATE 48000
#define WIN 480000 /* samples of a window: 10 s at 48 kHz */
#define N_LABELS 3
#define MAX_CLASSES 64
#define MAX_RECS 64
#define MAX_DIM 1024

static clxp_model *g_unf, *g_fus, *g_clip; /* clap-tiny-unfused (rand_trunc), clap-tiny-fused, a CLIP model */
static clxp_labelbank *g_bank_unf, *g_bank_fus, *g_bank_clip;

/* ---- helpers: shell, files ------------------------------------------------------------------------------------ */

/* ---- helpers: test signals ------------------------------------------------------------------------------------ */

/* Two channels of a test sound that changes over time (so windows differ): a chirp rising from 200 Hz by 60 Hz per
 * second, and a 1 kHz tone fading in and out every 2 s. */
static double sig_left(double t) { return 0.3 * sin(2 * M_PI * (200 * t + 30 * t * t)); }
static double sig_right(double t) { return 0.2 * sin(2 * M_PI * 1000 * t) * (0.5 - 0.5 * cos(M_PI * t)); }

static int16_t to_s16(double x) {
    long v = lrint(x * 32767.0);
    return (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v);
}

/* A 48 kHz mono s16 WAV of n samples of (left + right) / 2; *samples (if not NULL) receives the samples as clxp
 * decodes them (v / 32768.0f, malloc'd). Returns the path or NULL. */
static const char *wav48(const char *name, size_t n, float **samples) {
    int16_t *pcm = malloc((n ? n : 1) * sizeof *pcm);
    float *s = samples ? malloc((n ? n : 1) * sizeof *s) : NULL;
    if (!pcm || (samples && !s)) {
        free(pcm);
        free(s);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / RATE;
        pcm[i] = to_s16(0.5 * (sig_left(t) + sig_right(t)));
        if (s) s[i] = (float)pcm[i] / 32768.0f;
    }
    const char *path = scratch_wav(name, 1, 1, RATE, 16, pcm, n * sizeof *pcm);
    free(pcm);
    if (samples) {
        if (path) *samples = s;
        else free(s);
    }
    return path;
}

/* ---- log capture --------------------------------------------------------------------------------------------- */

/* clxp logs from the decoding thread too. */
static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_log[65536];
static size_t g_log_len;
static int g_log_warnings;

static void capture_log(void *user, clxp_log_level level, const char *msg) {
    (void)user;
    pthread_mutex_lock(&g_log_mu);
    if (level <= CLXP_LOG_WARN) g_log_warnings++;
    int n = snprintf(g_log + g_log_len, sizeof g_log - g_log_len, "%s\n", msg);
    if (n > 0) g_log_len += (size_t)n < sizeof g_log - g_log_len ? (size_t)n : sizeof g_log - g_log_len - 1;
    pthread_mutex_unlock(&g_log_mu);
}

static void log_reset(void) {
    pthread_mutex_lock(&g_log_mu);
    g_log[0] = '\0';
    g_log_len = 0;
    g_log_warnings = 0;
    pthread_mutex_unlock(&g_log_mu);
}

/* A copy of the log so far (the decoding thread has ended when clxp_run_file returns). */
static void log_copy(char *out, size_t cap) {
    pthread_mutex_lock(&g_log_mu);
    snprintf(out, cap, "%s", g_log);
    pthread_mutex_unlock(&g_log_mu);
}

/* ---- collecting results -------------------------------------------------------------------------------------- */

typedef struct rec {
    const char *input;
    int stream_index;
    char media_type;
    int64_t frame_index, pts;
    double time, duration;
    int width, height, box_index;
    int n_classes;
    float scores[MAX_CLASSES];
    int has_rgb;
} rec;

typedef struct collect {
    rec r[MAX_RECS];
    int n, overflow;
    int stop_after; /* > 0: ask the run to stop after this many results */
    int n_progress, progress_bad;
    double last_pos;
    int64_t last_frames;
} collect;

static int on_result(void *user, const clxp_result *r) {
    collect *c = user;
    if (c->n == MAX_RECS || r->n_classes > MAX_CLASSES) {
        c->overflow = 1;
        return 1;
    }
    rec *e = &c->r[c->n++];
    memset(e, 0, sizeof *e);
    e->input = r->input;
    e->stream_index = r->stream_index;
    e->media_type = r->media_type;
    e->frame_index = r->frame_index;
    e->pts = r->pts;
    e->time = r->time;
    e->duration = r->duration;
    e->width = r->width;
    e->height = r->height;
    e->box_index = r->box_index;
    e->n_classes = r->n_classes;
    memcpy(e->scores, r->scores, (size_t)r->n_classes * sizeof *e->scores);
    e->has_rgb = r->rgb != NULL;
    return c->stop_after > 0 && c->n >= c->stop_after;
}

static void on_progress(void *user, double pos, double dur, int64_t frames) {
    collect *c = user;
    if (pos + 1e-9 < c->last_pos || frames < c->last_frames) c->progress_bad = 1;
    c->last_pos = pos;
    c->last_frames = frames;
    c->n_progress++;
    (void)dur;
}

static clxp_run_options opts(void) {
    clxp_run_options o;
    memset(&o, 0, sizeof o);
    return o;
}

/* Run a file through the pipeline; the results go into a new collect (never NULL unless out of memory). */
static clxp_status run_file(clxp_model *m, const clxp_labelbank *b, const char *path, clxp_run_options *o,
                            collect **out, clxp_error *err) {
    collect *c = calloc(1, sizeof *c);
    *out = c;
    memset(err, 0, sizeof *err);
    if (!c) return CLXP_ERR_NOMEM;
    clxp_run_options dflt = opts();
    if (!o) o = &dflt;
    o->progress = on_progress;
    o->progress_user = c;
    return clxp_run_file(m, b, path ? path : "(missing input)", o, on_result, c, err);
}

/* A call that must succeed; prints the error message when it does not (err is the caller's clxp_error). */
#define CHECK_RUN_OK(call)                                                                                            \
    do {                                                                                                              \
        clxp_status st_ = (call);                                                                                     \
        if (st_ != CLXP_OK) printf("  %s:%d: %s\n", __FILE__, __LINE__, err.msg);                                    \
        CHECK_EQ_INT(st_, CLXP_OK);                                                                                   \
    } while (0)

static double max_diff(const float *a, const float *b, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d != d ? INFINITY : d;
    }
    return m;
}

static int all_finite(const float *s, int n) {
    for (int i = 0; i < n; i++)
        if (!isfinite(s[i])) return 0;
    return 1;
}

/* Every result is an audio window of stream `stream` with n_classes finite probabilities summing to 1, numbered
 * 0, 1, 2, ... */
static void check_audio_records(const collect *c, int stream, int n_classes) {
    CHECK(!c->overflow);
    for (int i = 0; i < c->n; i++) {
        const rec *r = &c->r[i];
        CHECK_EQ_INT(r->media_type, 'a');
        CHECK_EQ_INT(r->stream_index, stream);
        CHECK_EQ_INT(r->frame_index, i);
        CHECK_EQ_INT(r->box_index, -1);
        CHECK(!r->has_rgb);
        CHECK_EQ_INT(r->n_classes, n_classes);
        CHECK(all_finite(r->scores, r->n_classes));
        double sum = 0;
        for (int k = 0; k < r->n_classes; k++) sum += r->scores[k];
        CHECK_NEAR(sum, 1.0, 1e-5);
        if (test_failed_checks) break;
    }
}

/* The windows: their number, start times and lengths (seconds; exact to 1e-9). */
static void check_windows(const collect *c, int n, const double *times, const double *durations) {
    CHECK_EQ_INT(c->n, n);
    for (int i = 0; i < c->n && i < n; i++) {
        CHECK_NEAR(c->r[i].time, times[i], 1e-9);
        CHECK_NEAR(c->r[i].duration, durations[i], 1e-9);
    }
}

/* Scores of one clip of samples, encoded and classified by hand. */
static clxp_status score_samples(clxp_model *m, const clxp_labelbank *b, const float *s, size_t n, float *scores,
                                 clxp_error *err) {
    float emb[MAX_DIM];
    clxp_status st = clxp_encode_audio(m, s, n, RATE, emb, err);
    if (st == CLXP_OK) st = clxp_classify(b, emb, 1, NULL, scores, err);
    return st;
}

/* Each window's scores are those of clxp_encode_audio on its samples: window k holds samples [first + k * hop,
 * first + k * hop + WIN) of s (cut at n: the last window's shorter clip is repeat-padded by the model's feature
 * extractor, in the pipeline as in clxp_encode_audio). */
static void check_window_samples(clxp_model *m, const clxp_labelbank *b, const collect *c, const float *s, size_t n,
                                 size_t first, size_t hop) {
    clxp_error err;
    double worst = 0;
    for (int k = 0; k < c->n; k++) {
        size_t from = first + (size_t)k * hop;
        REQUIRE(from < n);
        size_t len = n - from < WIN ? n - from : WIN;
        CHECK_NEAR(c->r[k].duration, (double)len / RATE, 1e-9);
        float sc[MAX_CLASSES];
        CHECK_RUN_OK(score_samples(m, b, s + from, len, sc, &err));
        worst = fmax(worst, max_diff(c->r[k].scores, sc, c->r[k].n_classes));
    }
    if (worst > 1e-6) printf("  windows vs clxp_encode_audio on their samples: max |diff| = %.3g\n", worst);
    CHECK(worst <= 1e-6);
}

/* ---- 1. the golden WAVs ------------------------------------------------------------------------------------- */

/* The golden prompts that survive unchanged as a line of a labels file (not empty, no control character, no
 * leading or trailing space, not a "[Unit]"-looking line), as in tests/cli/test_cli.sh. */
static int usable_as_line(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || s[0] == '[' || s[0] == ' ' || s[n - 1] == ' ') return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 0;
    return 1;
}

static cJSON *read_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 65536;
            char *p = realloc(buf, cap);
            if (!p) break;
            buf = p;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
    }
    fclose(f);
    cJSON *j = NULL;
    if (buf) {
        buf[len] = '\0';
        j = cJSON_Parse(buf);
    }
    free(buf);
    return j;
}

/* The golden inputs of a model directory through clxp_run_file against a labels file of its usable golden prompts:
 * one window (start 0, the clip's length); scores = softmax over the labels of exp(logit_scale_a) * cos computed
 * here from clxp_encode_audio (the WAV parsed here) and clxp_encode_texts, = clxp_classify, and = the reference
 * probabilities of zero_shot.json renormalised over the kept prompts (a softmax over a subset of the logits). */
static void check_golden(clxp_model *m, const char *dir, const char *const *inputs, int n_inputs) {
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/zero_shot.json", test_data(dir));
    cJSON *zs = read_json(path);
    REQUIRE(zs);
    const cJSON *prompts = cJSON_GetObjectItem(zs, "prompts"), *results = cJSON_GetObjectItem(zs, "results");
    const int P = cJSON_GetArraySize(prompts);
    if (!(P > 0 && P <= MAX_CLASSES && cJSON_GetArraySize(results) > 0)) {
        CHECK(P > 0 && P <= MAX_CLASSES);
        cJSON_Delete(zs);
        return;
    }
    const char *labels[MAX_CLASSES];
    int keep[MAX_CLASSES], L = 0;
    const char *lpath = scratch_path("golden_labels.txt");
    FILE *lf = fopen(lpath, "wb");
    for (int j = 0; j < P; j++) {
        const char *s = cJSON_GetStringValue(cJSON_GetArrayItem(prompts, j));
        keep[j] = s && usable_as_line(s);
        if (keep[j]) {
            labels[L++] = s;
            if (lf) fprintf(lf, "%s\n", s);
        }
    }
    int lf_ok = lf && fclose(lf) == 0;
    CHECK(lf_ok);
    CHECK(L >= 10 && L < P); /* some prompts cannot be a line: the test is about the subset */
    clxp_error err;
    clxp_labelbank *bank = NULL;
    if (!lf_ok || clxp_labelbank_load_file(m, lpath, NULL, 0, &bank, &err) != CLXP_OK) {
        if (lf_ok) printf("  %s\n", err.msg);
        CHECK(bank != NULL);
        cJSON_Delete(zs);
        return;
    }
    CHECK_EQ_INT(clxp_labelbank_n_classes(bank), L);
    const int dim = clxp_model_get_info(m)->embed_dim;
    float *temb = malloc((size_t)L * dim * sizeof *temb);
    REQUIRE(temb);
    CHECK_RUN_OK(clxp_encode_texts(m, labels, L, temb, &err));
    /* the bank holds the same text embeddings */
    test_diff dt = test_compare(clxp_labelbank_embeddings(bank), temb, (size_t)L * dim);
    CHECK(dt.max_abs <= 1e-6);
    const double scale = clxp_model_get_info(m)->logit_scale;
    CHECK_NEAR(clxp_labelbank_logit_scale(bank), scale, 1e-6 * scale);

    for (int i = 0; i < n_inputs; i++) {
        char rel[512];
        snprintf(rel, sizeof rel, "%s/golden/inputs/%s", dir, inputs[i]);
        const char *wav = test_data(rel);
        char wav_path[1024];
        snprintf(wav_path, sizeof wav_path, "%s", wav);
        size_t n = 0;
        int rate = 0;
        float *s = golden_read_wav(wav_path, &n, &rate);
        if (!s) printf("  %s: not a PCM s16 mono WAV\n", wav_path);
        REQUIRE(s);
        CHECK_EQ_INT(rate, RATE);

        collect *c;
        clxp_run_options o = opts();
        CHECK_RUN_OK(run_file(m, bank, wav_path, &o, &c, &err));
        check_audio_records(c, 0, L);
        const double len = (double)n / RATE;
        check_windows(c, 1, (const double[]){0}, &len);
        if (c->n == 1) {
            CHECK_EQ_INT(c->r[0].pts, INT64_MIN);
            CHECK_STR(c->r[0].input, wav_path);
        }
        /* by hand: the audio embedding of the WAV's samples, the cosines, the softmax */
        float aemb[MAX_DIM], by_classify[MAX_CLASSES];
        double by_hand[MAX_CLASSES], mx = -INFINITY, sum = 0;
        CHECK_RUN_OK(clxp_encode_audio(m, s, n, RATE, aemb, &err));
        CHECK_RUN_OK(clxp_classify(bank, aemb, 1, NULL, by_classify, &err));
        for (int j = 0; j < L; j++) {
            double cos = 0;
            for (int d = 0; d < dim; d++) cos += (double)aemb[d] * temb[(size_t)j * dim + d];
            by_hand[j] = scale * cos;
            mx = fmax(mx, by_hand[j]);
        }
        for (int j = 0; j < L; j++) sum += (by_hand[j] = exp(by_hand[j] - mx));
        /* the reference: zero_shot.json's probabilities of this input over the kept prompts, renormalised */
        const cJSON *gp = NULL;
        for (int k = 0; k < cJSON_GetArraySize(results); k++) {
            const cJSON *e = cJSON_GetArrayItem(results, k);
            const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(e, "input"));
            if (name && strcmp(name, inputs[i]) == 0) gp = cJSON_GetObjectItem(e, "probs");
        }
        CHECK(gp && cJSON_GetArraySize(gp) == P);
        double gold[MAX_CLASSES], gsum = 0;
        for (int j = 0, l = 0; gp && j < P && j < cJSON_GetArraySize(gp); j++)
            if (keep[j]) gsum += (gold[l++] = cJSON_GetArrayItem(gp, j)->valuedouble);
        double d_hand = 0, d_classify = 0, d_gold = 0;
        int top_run = 0, top_gold = 0;
        for (int j = 0; c->n == 1 && j < L; j++) {
            d_hand = fmax(d_hand, fabs(c->r[0].scores[j] - by_hand[j] / sum));
            d_classify = fmax(d_classify, fabs((double)c->r[0].scores[j] - by_classify[j]));
            if (gp) d_gold = fmax(d_gold, fabs(c->r[0].scores[j] - gold[j] / gsum));
            if (c->r[0].scores[j] > c->r[0].scores[top_run]) top_run = j;
            if (gold[j] > gold[top_gold]) top_gold = j;
        }
        if (d_hand > 1e-6 || d_classify > 1e-6 || d_gold > 1e-5)
            printf("  %s: |run - by hand| %.3g, |run - clxp_classify| %.3g, |run - zero_shot.json| %.3g\n",
                   inputs[i], d_hand, d_classify, d_gold);
        CHECK(c->n == 1 && d_hand <= 1e-6);
        CHECK(c->n == 1 && d_classify <= 1e-6);
        CHECK(c->n == 1 && gp && d_gold <= 1e-5);
        CHECK_EQ_INT(top_run, top_gold);
        free(c);
        free(s);
    }
    free(temb);
    clxp_labelbank_free(bank);
    cJSON_Delete(zs);
}

/* "rand_trunc": 3 s (repeat-padded), exactly 10 s, 0.5 s. */
TEST(golden_unfused) {
    static const char *const in[] = {"b_tones_10s.wav", "a_chirp_noise_3s.wav", "c_clicks_0p5s.wav"};
    check_golden(g_unf, "clap-tiny-unfused", in, 3);
}

/* "fusion": a 3-s clip (4 identical repeat-padded channels, is_longer set). The 14-s golden used random crops. */
TEST(golden_fused) {
    static const char *const in[] = {"a_chirp_noise_3s.wav"};
    check_golden(g_fus, "clap-tiny-fused", in, 1);
}

/* ---- 2. windows: count, start, length, samples ------------------------------------------------------------- */

/* A generated 48 kHz WAV of n samples through the unfused model with options o: the windows (count, start, length)
 * and, if verify, each window's scores against clxp_encode_audio on its samples [first + k * hop, ... + WIN), cut
 * at `end` (the end of --duration; 0: n). Returns the results (the caller frees them) or NULL. */
static collect *wav_windows(const char *name, size_t n, clxp_run_options *o, int count, const double *times,
                            const double *durations, size_t first, size_t hop, size_t end, int verify) {
    float *s = NULL;
    const char *path = wav48(name, n, &s);
    CHECK(path != NULL);
    if (!path) return NULL;
    clxp_error err;
    collect *c;
    CHECK_RUN_OK(run_file(g_unf, g_bank_unf, path, o, &c, &err));
    check_audio_records(c, 0, N_LABELS);
    check_windows(c, count, times, durations);
    if (verify) check_window_samples(g_unf, g_bank_unf, c, s, end ? end : n, first, hop);
    CHECK(c->n_progress > 0);
    CHECK(!c->progress_bad);
    if (c->n) CHECK_EQ_INT(c->last_frames, c->n);
    free(s);
    return c;
}

static void check_wav_windows(const char *name, size_t n, clxp_run_options *o, int count, const double *times,
                              const double *durations, size_t first, size_t hop, size_t end) {
    free(wav_windows(name, n, o, count, times, durations, first, hop, end, 1));
}

TEST(windows_short) { /* 3 s: one window of 3 s, repeat-padded */
    clxp_run_options o = opts();
    check_wav_windows("w3.wav", 3 * RATE, &o, 1, (const double[]){0}, (const double[]){3}, 0, WIN, 0);
}

TEST(windows_exact) { /* exactly 20 s: two full windows, no third one */
    clxp_run_options o = opts();
    check_wav_windows("w20.wav", 20 * RATE, &o, 2, (const double[]){0, 10}, (const double[]){10, 10}, 0, WIN, 0);
}

TEST(windows_long) { /* 25 s: 0-10, 10-20, 20-25 (the last one repeat-padded) */
    clxp_run_options o = opts();
    check_wav_windows("w25.wav", 25 * RATE, &o, 3, (const double[]){0, 10, 20}, (const double[]){10, 10, 5}, 0, WIN,
                      0);
}

TEST(windows_one_sample_over) { /* 10 s + 1 sample: a second window of one sample */
    clxp_run_options o = opts();
    check_wav_windows("w10p1.wav", WIN + 1, &o, 2, (const double[]){0, 10}, (const double[]){10, 1.0 / RATE}, 0,
                      WIN, 0);
}

/* --hop 5 on 24 s: a window starts every 5 s while samples remain; the one that reaches the end (15-24) is the
 * last and holds what is left. Batches of 2 (2 + 2) give the same scores as the default batch. */
TEST(windows_hop_overlap) {
    clxp_run_options o = opts();
    o.hop = 5;
    collect *c1 = wav_windows("w24.wav", 24 * RATE, &o, 4, (const double[]){0, 5, 10, 15},
                              (const double[]){10, 10, 10, 9}, 0, 5 * RATE, 0, 1);
    REQUIRE(c1);
    const char *path = wav48("w24.wav", 24 * RATE, NULL);
    REQUIRE(path);
    clxp_error err;
    collect *c2;
    o = opts();
    o.hop = 5;
    o.batch = 2;
    CHECK_RUN_OK(run_file(g_unf, g_bank_unf, path, &o, &c2, &err));
    CHECK_EQ_INT(c2->n, c1->n);
    double worst = 0;
    for (int i = 0; i < c1->n && i < c2->n; i++) {
        worst = fmax(worst, max_diff(c1->r[i].scores, c2->r[i].scores, N_LABELS));
        CHECK_NEAR(c2->r[i].time, c1->r[i].time, 0);
    }
    CHECK(worst <= 1e-6);
    free(c1);
    free(c2);
}

/* Overlapping windows on an input whose end falls exactly on the end of a window: that window (15-25 for --hop 5
 * on 25 s, 10-20 on 20 s) reaches the end and is the last, as the window that reaches the end is the last on 24 s
 * and as nothing follows the last full window without --hop. A window of nothing but the previous window's tail
 * (20-25, 15-20), repeat-padded, would classify no new sound. */
TEST(windows_hop_exact_end) {
    clxp_run_options o = opts();
    o.hop = 5;
    free(wav_windows("w25.wav", 25 * RATE, &o, 4, (const double[]){0, 5, 10, 15}, (const double[]){10, 10, 10, 10}, 0,
                     5 * RATE, 0, 0));
    o = opts();
    o.hop = 5;
    free(wav_windows("w20.wav", 20 * RATE, &o, 3, (const double[]){0, 5, 10}, (const double[]){10, 10, 10}, 0,
                     5 * RATE, 0, 0));
    /* the end of --duration too: [5 s, 15 s) is one window */
    o = opts();
    o.hop = 5;
    o.start = 5;
    o.duration = 10;
    free(wav_windows("w25.wav", 25 * RATE, &o, 1, (const double[]){5}, (const double[]){10}, 5 * RATE, 5 * RATE,
                     15 * RATE, 0));
}

/* A hop of a fractional number of seconds (360000 samples) on 24 s: 0-10, 7.5-17.5, 15-24. */
TEST(windows_hop_fraction) {
    clxp_run_options o = opts();
    o.hop = 7.5;
    check_wav_windows("w24.wav", 24 * RATE, &o, 3, (const double[]){0, 7.5, 15}, (const double[]){10, 10, 9}, 0,
                      15 * RATE / 2, 0);
}

/* --hop 12 > the window: 0-10, 12-22, 24-25 (the gaps are skipped). */
TEST(windows_hop_gap) {
    clxp_run_options o = opts();
    o.hop = 12;
    check_wav_windows("w25.wav", 25 * RATE, &o, 3, (const double[]){0, 12, 24}, (const double[]){10, 10, 1}, 0,
                      12 * RATE, 0);
}

/* --start 5 --duration 12: windows at 5 s (10 s) and 15 s (2 s), the samples [5 s, 17 s) of the file; with --hop 4:
 * 5-15, 9-17 (the end of the duration). */
TEST(windows_start_duration) {
    clxp_run_options o = opts();
    o.start = 5;
    o.duration = 12;
    check_wav_windows("w25.wav", 25 * RATE, &o, 2, (const double[]){5, 15}, (const double[]){10, 2}, 5 * RATE, WIN,
                      17 * RATE);
    o = opts();
    o.start = 5;
    o.duration = 12;
    o.hop = 4;
    check_wav_windows("w25.wav", 25 * RATE, &o, 2, (const double[]){5, 9}, (const double[]){10, 8}, 5 * RATE,
                      4 * RATE, 17 * RATE);
    /* --start alone: 5-15, 15-25 */
    o = opts();
    o.start = 5;
    free(wav_windows("w25.wav", 25 * RATE, &o, 2, (const double[]){5, 15}, (const double[]){10, 10}, 5 * RATE, WIN, 0,
                     0));
}

/* --start past the end: no window, no error (as for video). */
TEST(start_past_end) {
    const char *path = wav48("w3.wav", 3 * RATE, NULL);
    REQUIRE(path);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    o.start = 5;
    CHECK_RUN_OK(run_file(g_unf, g_bank_unf, path, &o, &c, &err));
    CHECK_EQ_INT(c->n, 0);
    free(c);
}

/* The fused model in the pipeline: each window (at most 10 s) is repeat-padded, never cropped. */
TEST(windows_fused) {
    float *s = NULL;
    const char *path = wav48("w25.wav", 25 * RATE, &s);
    REQUIRE(path);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    CHECK_RUN_OK(run_file(g_fus, g_bank_fus, path, &o, &c, &err));
    check_audio_records(c, 0, N_LABELS);
    check_windows(c, 3, (const double[]){0, 10, 20}, (const double[]){10, 10, 5});
    check_window_samples(g_fus, g_bank_fus, c, s, 25 * RATE, 0, WIN);
    free(c);
    free(s);
}

/* on_result asking to stop after the first window: CLXP_OK and that window only. */
TEST(stop_early) {
    const char *path = wav48("w25.wav", 25 * RATE, NULL);
    REQUIRE(path);
    clxp_error err;
    collect *c = calloc(1, sizeof *c);
    REQUIRE(c);
    c->stop_after = 1;
    clxp_run_options o = opts();
    o.batch = 1;
    CHECK_RUN_OK(clxp_run_file(g_unf, g_bank_unf, path, &o, on_result, c, &err));
    CHECK_EQ_INT(c->n, 1);
    free(c);
}

/* ---- 3. resampling --------------------------------------------------------------------------------------------- */

/* 25 s at 44.1 kHz stereo: the channel mean resampled to 48 kHz gives 25 * 48000 samples, so the same windows as
 * the 48 kHz mono file of the same sound; the scores are close (resampling changes the samples a little). */
TEST(resampled_44k_stereo) {
    const size_t n = 25 * 44100;
    int16_t *pcm = malloc(2 * n * sizeof *pcm);
    REQUIRE(pcm);
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / 44100;
        pcm[2 * i] = to_s16(sig_left(t));
        pcm[2 * i + 1] = to_s16(sig_right(t));
    }
    const char *p44 = scratch_wav("s44.wav", 1, 2, 44100, 16, pcm, 2 * n * sizeof *pcm);
    free(pcm);
    REQUIRE(p44);
    char p44_path[1024];
    snprintf(p44_path, sizeof p44_path, "%s", p44);
    const char *p48 = wav48("w25.wav", 25 * RATE, NULL);
    REQUIRE(p48);
    clxp_error err;
    collect *c44, *c48;
    clxp_run_options o = opts();
    CHECK_RUN_OK(run_file(g_unf, g_bank_unf, p44_path, &o, &c44, &err));
    o = opts();
    CHECK_RUN_OK(run_file(g_unf, g_bank_unf, p48, &o, &c48, &err));
    check_audio_records(c44, 0, N_LABELS);
    check_windows(c44, 3, (const double[]){0, 10, 20}, (const double[]){10, 10, 5});
    double worst = 0;
    for (int i = 0; i < c44->n && i < c48->n; i++) worst = fmax(worst, max_diff(c44->r[i].scores, c48->r[i].scores, N_LABELS));
    printf("  44.1 kHz stereo vs 48 kHz mono: max |score diff| = %.3g\n", worst);
    CHECK(worst < 0.02);
    /* --start, --duration and --hop: the same window times as at 48 kHz */
    o = opts();
    o.start = 5;
    o.duration = 12;
    o.hop = 7;
    free(c44);
    CHECK_RUN_OK(run_file(g_unf, g_bank_unf, p44_path, &o, &c44, &err));
    check_windows(c44, 2, (const double[]){5, 12}, (const double[]){10, 5});
    free(c44);
    free(c48);
}

/* ---- 4. silence, one sample, nothing ----------------------------------------------------------------------- */

/* All zeros: the log-mel is the -100 dB floor everywhere; the scores are finite. */
TEST(silence) {
    int16_t *pcm = calloc(5 * RATE, sizeof *pcm);
    REQUIRE(pcm);
    const char *path = scratch_wav("silence.wav", 1, 1, RATE, 16, pcm, 5 * RATE * sizeof *pcm);
    free(pcm);
    REQUIRE(path);
    clxp_error err;
    for (int model = 0; model < 2; model++) {
        collect *c;
        clxp_run_options o = opts();
        CHECK_RUN_OK(run_file(model ? g_fus : g_unf, model ? g_bank_fus : g_bank_unf, path, &o, &c, &err));
        check_audio_records(c, 0, N_LABELS);
        check_windows(c, 1, (const double[]){0}, (const double[]){5});
        free(c);
    }
}

TEST(one_sample) {
    const int16_t v = 12345;
    const char *path = scratch_wav("one.wav", 1, 1, RATE, 16, &v, sizeof v);
    REQUIRE(path);
    clxp_error err;
    for (int model = 0; model < 2; model++) {
        clxp_model *m = model ? g_fus : g_unf;
        const clxp_labelbank *b = model ? g_bank_fus : g_bank_unf;
        collect *c;
        clxp_run_options o = opts();
        CHECK_RUN_OK(run_file(m, b, path, &o, &c, &err));
        check_audio_records(c, 0, N_LABELS);
        check_windows(c, 1, (const double[]){0}, (const double[]){1.0 / RATE});
        /* = that sample repeated over the whole window */
        const float x = 12345 / 32768.0f;
        float sc[N_LABELS];
        CHECK_RUN_OK(score_samples(m, b, &x, 1, sc, &err));
        if (c->n == 1) CHECK(max_diff(c->r[0].scores, sc, N_LABELS) <= 1e-6);
        free(c);
    }
}

/* A WAV without samples: no window, no crash. (clxp_encode_audio_files calls it a format error.) */
TEST(empty_file) {
    const char *path = scratch_wav("empty.wav", 1, 1, RATE, 16, NULL, 0);
    REQUIRE(path);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    clxp_status st = run_file(g_unf, g_bank_unf, path, &o, &c, &err);
    CHECK(st == CLXP_OK || st == CLXP_ERR_FORMAT);
    CHECK_EQ_INT(c->n, 0);
    free(c);
    float emb[MAX_DIM];
    CHECK_EQ_INT(clxp_encode_audio_files(g_unf, &path, 1, emb, &err), CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, path);
}

/* ---- 5. damaged in the middle --------------------------------------------------------------------------------- */

/* 2 KB of fixed pseudo-random bytes in the middle of a copy of good. */
static const char *damaged_copy(const char *good, const char *name) {
    if (!good) return NULL;
    const char *path = scratch_path(name);
    if (scratch_sh("cp '%s' '%s'", good, path) != 0) return NULL;
    FILE *f = fopen(path, "r+b");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size / 2, SEEK_SET);
    uint32_t s = 12345;
    for (int i = 0; i < 2048; i++) {
        s = s * 1103515245u + 12345u;
        fputc((int)((s >> 16) & 0xff), f);
    }
    return fclose(f) == 0 && size > 8192 ? path : NULL;
}

/* 25 s of sound with garbage at about 12.5 s: CLXP_OK, a warning naming the file and the time of the damage, and
 * every window of the intact file (0, 10, 20 s; a little of the sound is lost, so the last one is a bit shorter). */
static void check_damaged(const char *good, const char *name) {
    REQUIRE(good);
    char good_path[1024];
    snprintf(good_path, sizeof good_path, "%s", good);
    const char *bad = damaged_copy(good_path, name);
    REQUIRE(bad);
    char bad_path[1024];
    snprintf(bad_path, sizeof bad_path, "%s", bad);
    clxp_error err;
    collect *cg, *cb;
    clxp_run_options o = opts();
    log_reset();
    CHECK_RUN_OK(run_file(g_unf, g_bank_unf, good_path, &o, &cg, &err));
    CHECK_EQ_INT(g_log_warnings, 0);
    o = opts();
    log_reset();
    CHECK_RUN_OK(run_file(g_unf, g_bank_unf, bad_path, &o, &cb, &err));
    char log[sizeof g_log];
    log_copy(log, sizeof log);
    check_audio_records(cg, 0, N_LABELS);
    check_audio_records(cb, 0, N_LABELS);
    CHECK_EQ_INT(cg->n, 3);
    CHECK_EQ_INT(cb->n, 3);
    for (int i = 0; i < cb->n && i < 3; i++) CHECK_NEAR(cb->r[i].time, 10.0 * i, 1e-9);
    if (cg->n == 3) CHECK_NEAR(cg->r[2].duration, 5, 0.06); /* encoder padding: a few ms more */
    if (cb->n == 3 && cg->n == 3) {
        CHECK(cb->r[2].duration <= cg->r[2].duration + 1e-9);
        CHECK(cb->r[2].duration > cg->r[2].duration - 0.5);
        /* the first window is before the damage: the same samples, the same scores */
        CHECK(max_diff(cb->r[0].scores, cg->r[0].scores, N_LABELS) <= 1e-6);
    }
    CHECK(g_log_warnings >= 1);
    CHECK_CONTAINS(log, bad_path);
    CHECK_CONTAINS(log, "corrupt audio");
    const char *at = strstr(log, " at ");
    double t = -1;
    CHECK(at && sscanf(at, " at %lf s", &t) == 1);
    if (!(t > 11 && t < 14)) printf("  the damage is at about 12.5 s; log:\n%s", log);
    CHECK(t > 11 && t < 14);
    CHECK_CONTAINS(log, "corrupt audio packets or frames were skipped");
    free(cg);
    free(cb);
}

TEST(corrupt_middle_mp3) {
    check_damaged(scratch_ffmpeg("tone25.mp3", "-f lavfi -i 'aevalsrc=0.4*sin(2*PI*(300+40*t)*t):s=44100:d=25' -c:a libmp3lame"),
                  "bad25.mp3");
}

TEST(corrupt_middle_adts) {
    check_damaged(scratch_ffmpeg("tone25.aac", "-f lavfi -i 'aevalsrc=0.4*sin(2*PI*(300+40*t)*t):s=48000:d=25' -c:a aac -f adts"),
                  "bad25.aac");
}

/* ---- 6. determinism and the crop of long clips ------------------------------------------------------------- */

/* A 14-s clip: the same input gives the same output every time, bit for bit; in single-window mode
 * (clxp_encode_audio_files) it is cropped as clxp_encode_audio crops the same samples ("fusion": 4 channels from
 * the whole clip and 3 fixed chunks). */
TEST(determinism_fused) {
    const size_t n = 14 * RATE;
    float *s = NULL;
    const char *p = wav48("w14.wav", n, &s);
    REQUIRE(p);
    char path[1024];
    snprintf(path, sizeof path, "%s", p);
    const char *paths[1] = {path};
    clxp_error err;
    collect *c1, *c2;
    clxp_run_options o = opts();
    CHECK_RUN_OK(run_file(g_fus, g_bank_fus, path, &o, &c1, &err));
    o = opts();
    CHECK_RUN_OK(run_file(g_fus, g_bank_fus, path, &o, &c2, &err));
    check_windows(c1, 2, (const double[]){0, 10}, (const double[]){10, 4});
    CHECK_EQ_INT(c2->n, c1->n);
    for (int i = 0; i < c1->n && i < c2->n; i++)
        CHECK(memcmp(c1->r[i].scores, c2->r[i].scores, N_LABELS * sizeof(float)) == 0);
    free(c1);
    free(c2);

    const int dim = clxp_model_get_info(g_fus)->embed_dim;
    float e1[MAX_DIM], e2[MAX_DIM], e3[MAX_DIM], e4[MAX_DIM];
    CHECK_RUN_OK(clxp_encode_audio_files(g_fus, paths, 1, e1, &err));
    CHECK_RUN_OK(clxp_encode_audio_files(g_fus, paths, 1, e2, &err));
    CHECK(memcmp(e1, e2, (size_t)dim * sizeof *e1) == 0);
    CHECK_RUN_OK(clxp_encode_audio(g_fus, s, n, RATE, e3, &err));
    CHECK(memcmp(e1, e3, (size_t)dim * sizeof *e1) == 0);
    CHECK(all_finite(e1, dim));
    /* the crop is not the first 10 s, and the whole 14 s count (not the pipeline's first window) */
    CHECK_RUN_OK(clxp_encode_audio(g_fus, s, WIN, RATE, e4, &err));
    CHECK(max_diff(e1, e4, dim) > 1e-4);
    free(s);
}

/* "rand_trunc" in single-window mode: a 14-s clip is its centre 10 s, samples [(n - WIN) / 2, ... + WIN) (a
 * random window in transformers; fixed here), every time. */
TEST(crop_rand_trunc_centre) {
    const size_t n = 14 * RATE;
    float *s = NULL;
    const char *p = wav48("w14.wav", n, &s);
    REQUIRE(p);
    char path[1024];
    snprintf(path, sizeof path, "%s", p);
    const char *paths[1] = {path};
    clxp_error err;
    const int dim = clxp_model_get_info(g_unf)->embed_dim;
    float e1[MAX_DIM], e2[MAX_DIM], centre[MAX_DIM], head[MAX_DIM];
    CHECK_RUN_OK(clxp_encode_audio_files(g_unf, paths, 1, e1, &err));
    CHECK_RUN_OK(clxp_encode_audio_files(g_unf, paths, 1, e2, &err));
    CHECK(memcmp(e1, e2, (size_t)dim * sizeof *e1) == 0);
    CHECK_RUN_OK(clxp_encode_audio(g_unf, s + (n - WIN) / 2, WIN, RATE, centre, &err));
    CHECK_RUN_OK(clxp_encode_audio(g_unf, s, WIN, RATE, head, &err));
    double d_centre = max_diff(e1, centre, dim), d_head = max_diff(e1, head, dim);
    if (d_centre > 1e-6) printf("  14-s clip vs its centre 10 s: max |diff| = %.3g\n", d_centre);
    CHECK(d_centre <= 1e-6);
    CHECK(d_head > 1e-4);
    free(s);
}

/* ---- 7. videos, streams, the wrong kind of model -------------------------------------------------------------- */

/* A video with a sound track (stream 0 video, stream 1 AAC audio, 3 s): a CLAP model classifies the sound (stream
 * 1), a CLIP model the frames (stream 0). */
TEST(video_with_audio) {
    const char *p = scratch_ffmpeg("av.mp4", "-f lavfi -i testsrc=size=64x48:rate=10:duration=3 "
                                  "-f lavfi -i 'aevalsrc=0.4*sin(2*PI*(300+100*t)*t):s=48000:d=3' "
                                  "-c:v mpeg4 -q:v 5 -c:a aac");
    REQUIRE(p);
    char path[1024];
    snprintf(path, sizeof path, "%s", p);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    CHECK_RUN_OK(run_file(g_unf, g_bank_unf, path, &o, &c, &err));
    check_audio_records(c, 1, N_LABELS);
    CHECK_EQ_INT(c->n, 1);
    if (c->n == 1) {
        CHECK_NEAR(c->r[0].time, 0, 1e-9);
        CHECK(c->r[0].duration > 2.95 && c->r[0].duration < 3.03); /* FFmpeg 5.1 keeps the last AAC frame's padding */
        /* a clip shorter than a window: the same as the file in single-window mode */
        const char *paths[1] = {path};
        float emb[MAX_DIM], sc[N_LABELS];
        CHECK_RUN_OK(clxp_encode_audio_files(g_unf, paths, 1, emb, &err));
        CHECK_RUN_OK(clxp_classify(g_bank_unf, emb, 1, NULL, sc, &err));
        CHECK(max_diff(c->r[0].scores, sc, N_LABELS) <= 1e-6);
    }
    free(c);
    /* --hop 1: the first window already reaches the end (a clip shorter than a window is one window) */
    o = opts();
    o.hop = 1;
    CHECK_RUN_OK(run_file(g_unf, g_bank_unf, path, &o, &c, &err));
    CHECK_EQ_INT(c->n, 1);
    if (c->n) CHECK_EQ_INT(c->r[0].stream_index, 1);
    free(c);

    o = opts();
    CHECK_RUN_OK(run_file(g_clip, g_bank_clip, path, &o, &c, &err));
    CHECK_EQ_INT(c->n, 30);
    for (int i = 0; i < c->n; i++) {
        CHECK_EQ_INT(c->r[i].media_type, 'v');
        CHECK_EQ_INT(c->r[i].stream_index, 0);
        CHECK_EQ_INT(c->r[i].frame_index, i);
        CHECK_EQ_INT(c->r[i].width, 64);
        if (test_failed_checks) break;
    }
    free(c);
}

/* Stream selection: video 0, audio 1 (a tone), audio 2 (silence); "a:1" is stream 2, a video stream is refused. */
TEST(audio_stream_select) {
    const char *p = scratch_ffmpeg("two_audio.mkv", "-f lavfi -i testsrc=size=64x48:rate=10:duration=2 "
                                         "-f lavfi -i 'aevalsrc=0.4*sin(2*PI*440*t):s=48000:d=2' "
                                         "-f lavfi -i 'anullsrc=r=44100:cl=stereo' -t 2 "
                                         "-map 0:v -map 1:a -map 2:a -c:v mpeg4 -q:v 5 -c:a pcm_s16le");
    REQUIRE(p);
    char path[1024];
    snprintf(path, sizeof path, "%s", p);
    clxp_error err;
    collect *c0, *c1;
    clxp_run_options o = opts();
    CHECK_RUN_OK(run_file(g_unf, g_bank_unf, path, &o, &c0, &err));
    check_audio_records(c0, 1, N_LABELS);
    check_windows(c0, 1, (const double[]){0}, (const double[]){2});
    o = opts();
    o.stream = "a:1";
    CHECK_RUN_OK(run_file(g_unf, g_bank_unf, path, &o, &c1, &err));
    check_audio_records(c1, 2, N_LABELS);
    check_windows(c1, 1, (const double[]){0}, (const double[]){2});
    if (c0->n == 1 && c1->n == 1) CHECK(max_diff(c0->r[0].scores, c1->r[0].scores, N_LABELS) > 1e-6);
    free(c0);
    free(c1);

    static const char *const bad[][2] = {
        {"0", "not an audio stream"}, {"v", "not an audio stream"}, {"a:5", "no stream matches"}};
    for (int i = 0; i < 3; i++) {
        collect *c;
        o = opts();
        o.stream = bad[i][0];
        CHECK_EQ_INT(run_file(g_unf, g_bank_unf, path, &o, &c, &err), CLXP_ERR_INVALID);
        CHECK_EQ_INT(c->n, 0);
        CHECK_CONTAINS(err.msg, path);
        CHECK_CONTAINS(err.msg, bad[i][1]);
        free(c);
    }
}

/* A CLAP model on a video without sound. */
TEST(no_audio_stream) {
    const char *p = scratch_ffmpeg("silent_film.mp4", "-f lavfi -i testsrc=size=64x48:rate=10:duration=0.5 -c:v mpeg4");
    REQUIRE(p);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    CHECK_EQ_INT(run_file(g_unf, g_bank_unf, p, &o, &c, &err), CLXP_ERR_UNSUPPORTED);
    CHECK_EQ_INT(err.code, CLXP_ERR_UNSUPPORTED);
    CHECK_EQ_INT(c->n, 0);
    CHECK_CONTAINS(err.msg, p);
    CHECK_CONTAINS(err.msg, "no audio stream");
    CHECK_CONTAINS(err.msg, "CLIP");
    CHECK(!strchr(err.msg, '\n'));
    free(c);
    float emb[MAX_DIM];
    CHECK_EQ_INT(clxp_encode_audio_files(g_unf, &p, 1, emb, &err), CLXP_ERR_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "no audio stream");
}

/* A CLIP model on an audio file: the no-video message that points to CLAP models. */
TEST(clip_on_audio) {
    const char *p = wav48("w3.wav", 3 * RATE, NULL);
    REQUIRE(p);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    CHECK_EQ_INT(run_file(g_clip, g_bank_clip, p, &o, &c, &err), CLXP_ERR_UNSUPPORTED);
    CHECK_EQ_INT(c->n, 0);
    CHECK_CONTAINS(err.msg, p);
    CHECK_CONTAINS(err.msg, "no video stream");
    CHECK_CONTAINS(err.msg, "CLAP");
    free(c);
    /* and the audio encoders refuse a CLIP model */
    float emb[MAX_DIM];
    const float x[4] = {0};
    CHECK(clxp_encode_audio(g_clip, x, 4, RATE, emb, &err) != CLXP_OK);
    CHECK(clxp_encode_audio_files(g_clip, &p, 1, emb, &err) != CLXP_OK);
}

/* The video frame selections make no sense for audio windows: CLXP_ERR_INVALID before anything is decoded. */
TEST(video_options_rejected) {
    const char *p = wav48("w3.wav", 3 * RATE, NULL);
    REQUIRE(p);
    const char *bx = scratch_path("boxes.jsonl");
    FILE *f = fopen(bx, "wb");
    REQUIRE(f);
    fputs("{\"frame\": 0, \"boxes\": [{\"x\": 0, \"y\": 0, \"w\": 4, \"h\": 4}]}\n", f);
    REQUIRE(fclose(f) == 0);
    for (int k = 0; k < 7; k++) {
        clxp_run_options o = opts();
        switch (k) {
        case 0: o.scene = 0.3; break;
        case 1: o.vf = "scale=32:24"; break;
        case 2: o.every_n = 2; break;
        case 3: o.every_t = 1; break;
        case 4: o.keyframes_only = 1; break;
        case 5: o.boxes = bx; break;
        default: o.hop = -1; break;
        }
        clxp_error err;
        collect *c;
        CHECK_EQ_INT(run_file(g_unf, g_bank_unf, p, &o, &c, &err), CLXP_ERR_INVALID);
        CHECK_EQ_INT(err.code, CLXP_ERR_INVALID);
        CHECK_EQ_INT(c->n, 0);
        if (k < 6) {
            CHECK_CONTAINS(err.msg, p);
            CHECK_CONTAINS(err.msg, "CLAP");
            CHECK_CONTAINS(err.msg, "--hop");
        } else {
            CHECK_CONTAINS(err.msg, "hop");
        }
        CHECK(!strchr(err.msg, '\n'));
        free(c);
    }
}

/* ---- 8. NaN and infinite samples ----------------------------------------------------------------------------- */

/* A float WAV with NaN, +Inf, -Inf samples: finite scores, a warning, and the scores of the same file with zeros
 * in their place. */
TEST(nonfinite_samples) {
    const size_t n = 2 * RATE;
    float *x = malloc(n * sizeof *x), *z = malloc(n * sizeof *z);
    REQUIRE(x && z);
    for (size_t i = 0; i < n; i++) z[i] = x[i] = (float)(0.5 * (sig_left((double)i / RATE) + sig_right((double)i / RATE)));
    const size_t at[4] = {100, 24000, 24001, 90000};
    x[at[0]] = NAN;
    x[at[1]] = INFINITY;
    x[at[2]] = -INFINITY;
    x[at[3]] = NAN;
    for (int i = 0; i < 4; i++) z[at[i]] = 0;
    const char *p = scratch_wav("nan.wav", 3, 1, RATE, 32, x, n * sizeof *x);
    char nan_path[1024];
    snprintf(nan_path, sizeof nan_path, "%s", p ? p : "");
    const char *pz = scratch_wav("zeros.wav", 3, 1, RATE, 32, z, n * sizeof *z);
    free(x);
    free(z);
    REQUIRE(p && pz);
    clxp_error err;
    collect *c, *cz;
    clxp_run_options o = opts();
    log_reset();
    CHECK_RUN_OK(run_file(g_unf, g_bank_unf, nan_path, &o, &c, &err));
    char log[sizeof g_log];
    log_copy(log, sizeof log);
    o = opts();
    CHECK_RUN_OK(run_file(g_unf, g_bank_unf, pz, &o, &cz, &err));
    check_audio_records(c, 0, N_LABELS);
    check_windows(c, 1, (const double[]){0}, (const double[]){2});
    if (c->n == 1 && cz->n == 1) CHECK(max_diff(c->r[0].scores, cz->r[0].scores, N_LABELS) <= 1e-6);
    CHECK(g_log_warnings >= 1);
    CHECK_CONTAINS(log, nan_path);
    CHECK_CONTAINS(log, "NaN");
    free(c);
    free(cz);
}

/* ---- categories ---------------------------------------------------------------------------------------------- */

/* The seed's CLAP categories file: per window, each unit's category scores sum to 1. */
TEST(categories_bank) {
    const char *p = wav48("w12.wav", 12 * RATE, NULL);
    REQUIRE(p);
    clxp_error err;
    clxp_labelbank *b = NULL;
    if (clxp_labelbank_load_file(g_unf, test_data("seed/categories_clap.txt"), NULL, 0, &b, &err) != CLXP_OK) {
        printf("  %s\n", err.msg);
        CHECK(b != NULL);
        return;
    }
    const int C = clxp_labelbank_n_classes(b), U = clxp_labelbank_n_units(b);
    CHECK(U >= 2);
    REQUIRE(C <= MAX_CLASSES);
    collect *c;
    clxp_run_options o = opts();
    CHECK_RUN_OK(run_file(g_unf, b, p, &o, &c, &err));
    check_windows(c, 2, (const double[]){0, 10}, (const double[]){10, 2});
    for (int i = 0; i < c->n; i++) {
        CHECK(all_finite(c->r[i].scores, C));
        for (int u = 0; u < U; u++) {
            double sum = 0;
            for (int k = 0; k < C; k++)
                if (clxp_labelbank_class_unit(b, k) == u) sum += c->r[i].scores[k];
            CHECK_NEAR(sum, 1.0, 1e-5);
        }
    }
    free(c);
    clxp_labelbank_free(b);
}

/* ---- main ------------------------------------------------------------------------------------------------ */

int main(void) {
    av_log_set_level(AV_LOG_QUIET); /* the damaged files make the decoders talk; clxp's warnings are checked */
    clxp_set_log_callback(capture_log, NULL, CLXP_LOG_WARN);
    if (!scratch_init("audio-pipeline")) return test_summary();
    clxp_error err;
    /* One inference thread: idle OpenMP workers spinning would starve the decoding thread on small machines. */
    clxp_load_options lo = {.n_threads = 1, .precision = CLXP_PRECISION_FP32};
    const char *labels[N_LABELS] = {"rock music", "a dog barking", "silence"};
    const char *dirs[3] = {"clap-tiny-unfused", "clap-tiny-fused", "clip-tiny-quickgelu"};
    clxp_model **models[3] = {&g_unf, &g_fus, &g_clip};
    clxp_labelbank **banks[3] = {&g_bank_unf, &g_bank_fus, &g_bank_clip};
    int ok = 1;
    for (int i = 0; i < 3 && ok; i++)
        ok = clxp_model_load(test_data(dirs[i]), &lo, models[i], &err) == CLXP_OK &&
             clxp_labelbank_create(*models[i], labels, N_LABELS, NULL, 0, banks[i], &err) == CLXP_OK;
    if (ok) ok = clxp_model_get_info(g_unf)->embed_dim <= MAX_DIM && clxp_model_get_info(g_fus)->embed_dim <= MAX_DIM;
    if (!ok) {
        printf("FAIL setup\n  %s\n", err.msg);
        tests_failed++;
    } else {
        RUN(golden_unfused);
        RUN(golden_fused);
        RUN(windows_short);
        RUN(windows_exact);
        RUN(windows_long);
        RUN(windows_one_sample_over);
        RUN(windows_hop_overlap);
        RUN(windows_hop_exact_end);
        RUN(windows_hop_fraction);
        RUN(windows_hop_gap);
        RUN(windows_start_duration);
        RUN(start_past_end);
        RUN(windows_fused);
        RUN(stop_early);
        RUN(resampled_44k_stereo);
        RUN(silence);
        RUN(one_sample);
        RUN(empty_file);
        RUN(corrupt_middle_mp3);
        RUN(corrupt_middle_adts);
        RUN(determinism_fused);
        RUN(crop_rand_trunc_centre);
        RUN(video_with_audio);
        RUN(audio_stream_select);
        RUN(no_audio_stream);
        RUN(clip_on_audio);
        RUN(video_options_rejected);
        RUN(nonfinite_samples);
        RUN(categories_bank);
    }
    for (int i = 0; i < 3; i++) {
        clxp_labelbank_free(*banks[i]);
        clxp_model_free(*models[i]);
    }
    scratch_cleanup();
    return test_summary();
}
