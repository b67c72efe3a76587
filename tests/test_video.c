/* End-to-end tests of the video pipeline through the public API (clxp_run_file): frame counts, frame numbers and
 * timestamps of every selection mode (every frame, --every, --interval, --keyframes, --start/--duration, --scene),
 * rotation metadata and anamorphic pixels, a variable-frame-rate file against ffprobe, a file damaged in the
 * middle, audio-only input, stream selection and --vf, detection boxes, still images, and the classification of
 * extracted frames against classifying the same pixels as image files.
 *
 * The inputs are generated at test time with the ffmpeg command-line tool (Debian's ffmpeg package, installed by
 * scripts/install-deps.sh) into one mkdtemp directory under $TMPDIR or /tmp, removed at the end. They are tiny
 * (at most 320x240, at most 4 s) so the whole binary runs in a few seconds, also under ASan. The model is the tiny
 * random-weight test model: its classifications are meaningless but deterministic. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libavutil/log.h>

#include "clxp.h"
#include "scratch.h"
#include "test.h"

#define N_LABELS 3
#define MAX_RECS 4096

static clxp_model *g_model;
static clxp_labelbank *g_bank;
static int g_have_x264;

/* ---- helpers: shell, files ---------------------------------------------------------------------------- */

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static uint8_t *read_all(const char *path, long *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    long n = file_size(path);
    uint8_t *buf = n > 0 ? malloc((size_t)n) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (size) *size = n;
    return buf;
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fputs(text, f);
    return fclose(f) == 0;
}

/* Binary PPM (P6): lossless, and FFmpeg decodes it into RGB24 as is. */
static int write_ppm(const char *path, const uint8_t *rgb, int w, int h) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fprintf(f, "P6\n%d %d\n255\n", w, h);
    size_t n = (size_t)w * h * 3;
    int ok = fwrite(rgb, 1, n, f) == n;
    return (fclose(f) == 0) && ok;
}

#define FFMPEG "ffmpeg -nostdin -hide_banner -loglevel error -y "

/* A generated input, made on first use: its path in the test directory, or NULL (the check then fails). */
typedef struct gen_input {
    const char *name;
    const char *dep;  /* made first (an input of this one), or NULL */
    const char *args; /* ffmpeg arguments before the output path; "%s" = the directory */
} gen_input;

static const char *const x264_gop25 =
    "-c:v libx264 -preset ultrafast -bf 2 -g 25 -keyint_min 25 -sc_threshold 0 -pix_fmt yuv420p";
static const char *const mpeg4_gop25 = "-c:v mpeg4 -q:v 5 -bf 2 -g 25";

static const gen_input g_inputs[] = {
    /* 2 s of 25 fps, a key frame every 25 frames (at 0 and 1 s), B-frames (decode order != display order) */
    {"cfr.mp4", NULL, "-f lavfi -i testsrc=size=64x48:rate=25:duration=2 %C"},
    /* red 2 s, blue 2 s, test pattern 2 s at 10 fps: scene cuts at 2.0 and 4.0 s (frames 20 and 40) */
    {"scene.mp4", NULL,
     "-f lavfi -i color=red:size=64x48:rate=10:duration=2 -f lavfi -i color=blue:size=64x48:rate=10:duration=2 "
     "-f lavfi -i testsrc=size=64x48:rate=10:duration=2 -filter_complex '[0:v][1:v][2:v]concat=n=3:v=1:a=0[v]' "
     "-map '[v]' -c:v mpeg4 -q:v 2 -g 100"},
    {"src320.mp4", NULL, "-f lavfi -i testsrc=size=320x240:rate=10:duration=0.3 -c:v mpeg4 -q:v 3"},
    {"rot90.mp4", "src320.mp4", "-i '%s/src320.mp4' -c copy -metadata:s:v:0 rotate=90"},
    {"rot180.mp4", "src320.mp4", "-i '%s/src320.mp4' -c copy -metadata:s:v:0 rotate=180"},
    {"rot270.mp4", "src320.mp4", "-i '%s/src320.mp4' -c copy -metadata:s:v:0 rotate=270"},
    /* 160x120 stored, pixels twice as wide as tall: displayed 320x120 */
    {"sar.mp4", NULL, "-f lavfi -i testsrc=size=160x120:rate=10:duration=0.3 -vf setsar=2 -c:v mpeg4 -q:v 3"},
    /* variable frame rate: 10 frames 0.1 s apart, then 0.04 s apart, with a 13/26 ms jitter (ms time base) */
    {"vfr.mkv", NULL,
     "-f lavfi -i testsrc=size=64x48:rate=25:duration=1.6 "
     "-vf \"settb=1/1000,setpts='(if(lt(N,10),N*0.1,1+(N-10)*0.04)+0.013*mod(N,3))/TB'\" "
     "-c:v mpeg4 -q:v 5 -fps_mode passthrough -enc_time_base 1/1000"},
    /* MPEG-TS (starts at 1.4 s), one key frame only: the damage propagates until the end */
    {"ts.ts", NULL, "-f lavfi -i testsrc=size=160x120:rate=25:duration=4 -c:v mpeg4 -q:v 3 -g 250 -f mpegts"},
    /* MPEG-TS has no average frame rate (avg_frame_rate 0/0), only r_frame_rate; key frames at 0, 1, 2 s */
    {"g25.ts", NULL, "-f lavfi -i testsrc=size=64x48:rate=25:duration=3 -c:v mpeg4 -q:v 5 -g 25 -f mpegts"},
    {"sine.wav", NULL, "-f lavfi -i sine=frequency=440:duration=0.5"},
    {"sine.m4a", NULL, "-f lavfi -i sine=frequency=440:duration=0.5 -c:a aac"},
    /* streams: 0 video 64x48, 1 video 32x24, 2 audio */
    {"two.mkv", NULL,
     "-f lavfi -i testsrc=size=64x48:rate=10:duration=1 -f lavfi -i color=green:size=32x24:rate=10:duration=1 "
     "-f lavfi -i sine=duration=1 -map 0:v -map 1:v -map 2:a -c:v mpeg4 -q:v 5 -c:a pcm_s16le"},
};

#define N_INPUTS (sizeof g_inputs / sizeof g_inputs[0])
static char g_input_path[N_INPUTS][1024]; /* stable paths of the inputs made so far */

static const char *input(const char *name) {
    for (size_t i = 0; i < N_INPUTS; i++) {
        const gen_input *g = &g_inputs[i];
        if (strcmp(g->name, name) != 0) continue;
        if (g_input_path[i][0]) return g_input_path[i];
        if (g->dep && !input(g->dep)) return NULL;
        char path[1024], args[2048];
        snprintf(path, sizeof path, "%s/%s", scratch_dir(), name);
        const char *codec = g_have_x264 ? x264_gop25 : mpeg4_gop25;
        /* expand %s (the directory) and %C (the GOP-25 codec options) */
        size_t o = 0;
        for (const char *p = g->args; *p && o + 600 < sizeof args; p++) {
            if (p[0] == '%' && (p[1] == 's' || p[1] == 'C')) {
                o += (size_t)snprintf(args + o, sizeof args - o, "%s", p[1] == 's' ? scratch_dir() : codec);
                p++;
            } else {
                args[o++] = *p;
            }
        }
        args[o] = '\0';
        if (scratch_sh(FFMPEG "%s '%s'", args, path) != 0 || !scratch_exists(path)) return NULL;
        memcpy(g_input_path[i], path, sizeof path);
        return g_input_path[i];
    }
    printf("  no generator for %s\n", name);
    return NULL;
}

/* ---- log capture ----------------------------------------------------------------------------------------- */

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

/* ---- collecting results ------------------------------------------------------------------------------------ */

typedef struct rec {
    int stream_index;
    char media_type;
    int64_t frame_index, pts;
    double time, duration;
    int width, height;
    int box_index;
    float box_x, box_y, box_w, box_h, box_score;
    char box_label[32];
    int n_classes;
    float scores[N_LABELS];
    uint8_t *rgb; /* copy of the classified pixels */
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
    if (c->n == MAX_RECS) {
        c->overflow = 1;
        return 1;
    }
    rec *e = &c->r[c->n++];
    memset(e, 0, sizeof *e);
    e->stream_index = r->stream_index;
    e->media_type = r->media_type;
    e->frame_index = r->frame_index;
    e->pts = r->pts;
    e->time = r->time;
    e->duration = r->duration;
    e->width = r->width;
    e->height = r->height;
    e->box_index = r->box_index;
    e->box_x = r->box_x;
    e->box_y = r->box_y;
    e->box_w = r->box_w;
    e->box_h = r->box_h;
    e->box_score = r->box_score;
    if (r->box_label) snprintf(e->box_label, sizeof e->box_label, "%s", r->box_label);
    e->n_classes = r->n_classes;
    for (int i = 0; i < N_LABELS && i < r->n_classes; i++) e->scores[i] = r->scores[i];
    if (r->rgb && r->width > 0 && r->height > 0) {
        size_t n = (size_t)r->width * r->height * 3;
        e->rgb = malloc(n);
        if (e->rgb) memcpy(e->rgb, r->rgb, n);
    }
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

static void collect_free(collect *c) {
    for (int i = 0; i < c->n; i++) free(c->r[i].rgb);
    free(c);
}

/* Run a file through the pipeline; the results go into a new collect (never NULL unless out of memory). */
static clxp_status run_file(const char *path, clxp_run_options *o, collect **out, clxp_error *err) {
    collect *c = calloc(1, sizeof *c);
    *out = c;
    if (!c) return CLXP_ERR_NOMEM;
    memset(err, 0, sizeof *err);
    clxp_run_options dflt;
    memset(&dflt, 0, sizeof dflt);
    if (!o) o = &dflt;
    o->progress = on_progress;
    o->progress_user = c;
    return clxp_run_file(g_model, g_bank, path ? path : "(missing input)", o, on_result, c, err);
}

/* A call that must succeed; prints the error message when it does not (err is the caller's clxp_error). */
#define CHECK_RUN_OK(call)                                                                                            \
    do {                                                                                                              \
        clxp_status st_ = (call);                                                                                     \
        if (st_ != CLXP_OK) printf("  %s:%d: %s\n", __FILE__, __LINE__, err.msg);                                    \
        CHECK_EQ_INT(st_, CLXP_OK);                                                                                   \
    } while (0)

static clxp_run_options opts(void) {
    clxp_run_options o;
    memset(&o, 0, sizeof o);
    return o;
}

static double max_score_diff(const float *a, const float *b, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d != d ? INFINITY : d;
    }
    return m;
}

static double mean_abs_diff(const uint8_t *a, const uint8_t *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += abs((int)a[i] - (int)b[i]);
    return n ? s / (double)n : 0;
}

/* The first frame as the ffmpeg tool shows it (autorotation, filters in vf), RGB24; NULL on failure. */
static uint8_t *ffmpeg_first_frame(const char *path, const char *vf, int w, int h) {
    const char *raw = scratch_path("oracle.rgb");
    char vfopt[256] = "";
    if (vf) snprintf(vfopt, sizeof vfopt, "-vf '%s'", vf);
    /* swscale flags close to the pipeline's RGB conversion (media/image.c): measured 0.9 to 1.6 levels apart */
    if (scratch_sh(FFMPEG "-i '%s' %s -sws_flags bilinear+accurate_rnd+full_chroma_int+full_chroma_inp+bitexact "
                  "-frames:v 1 -f rawvideo -pix_fmt rgb24 '%s'",
           path, vfopt, raw) != 0)
        return NULL;
    long n = 0;
    uint8_t *buf = read_all(raw, &n);
    if (buf && n != (long)w * h * 3) {
        printf("  %s: ffmpeg's frame has %ld bytes, expected %dx%dx3\n", path, n, w, h);
        free(buf);
        buf = NULL;
    }
    unlink(raw);
    return buf;
}

/* ---- 1. selection modes on a constant-frame-rate clip ------------------------------------------------------- */

TEST(every_frame) {
    const char *in = input("cfr.mp4");
    REQUIRE(in);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    CHECK_EQ_INT(c->n, 50);
    for (int i = 0; i < c->n; i++) {
        const rec *r = &c->r[i];
        CHECK_EQ_INT(r->frame_index, i);
        CHECK_NEAR(r->time, i / 25.0, 1e-6);
        CHECK_NEAR(r->duration, 0.04, 1e-6);
        CHECK_EQ_INT(r->stream_index, 0);
        CHECK_EQ_INT(r->media_type, 'v');
        CHECK_EQ_INT(r->width, 64);
        CHECK_EQ_INT(r->height, 48);
        CHECK_EQ_INT(r->box_index, -1);
        CHECK_EQ_INT(r->n_classes, N_LABELS);
        CHECK(r->rgb != NULL);
        CHECK_NEAR(r->scores[0] + r->scores[1] + r->scores[2], 1.0, 1e-5);
        CHECK(r->pts != INT64_MIN);
        if (i > 0) CHECK(r->pts > c->r[i - 1].pts);
        if (test_failed_checks) break;
    }
    /* the 2 s clip has distinct frames: the test pattern moves */
    if (c->n == 50) CHECK(memcmp(c->r[0].rgb, c->r[49].rgb, 64 * 48 * 3) != 0);
    CHECK(c->n_progress > 0);
    CHECK(!c->progress_bad);
    CHECK_EQ_INT(c->last_frames, 50);
    collect_free(c);
}

/* Selected frames: their frame numbers (and time = frame / 25). */
static void check_frames(const collect *c, const int *frames, int n) {
    CHECK_EQ_INT(c->n, n);
    for (int i = 0; i < c->n && i < n; i++) {
        CHECK_EQ_INT(c->r[i].frame_index, frames[i]);
        CHECK_NEAR(c->r[i].time, frames[i] / 25.0, 1e-6);
    }
}

TEST(every_n) {
    const char *in = input("cfr.mp4");
    REQUIRE(in);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    o.every_n = 10;
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    static const int want[] = {0, 10, 20, 30, 40};
    check_frames(c, want, 5);
    collect_free(c);
    /* every 7: 0, 7, ..., 49 */
    o = opts();
    o.every_n = 7;
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    static const int want7[] = {0, 7, 14, 21, 28, 35, 42, 49};
    check_frames(c, want7, 8);
    collect_free(c);
}

TEST(interval) {
    const char *in = input("cfr.mp4");
    REQUIRE(in);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    /* 0.4 s = 10 frames: slots fall on frames */
    o.every_t = 0.4;
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    static const int want4[] = {0, 10, 20, 30, 40};
    check_frames(c, want4, 5);
    collect_free(c);
    /* 0.5 s = 12.5 frames: the first frame at or after each slot 0, 0.5, 1, 1.5 (0.52 s is frame 13), and the
     * slots do not drift */
    o = opts();
    o.every_t = 0.5;
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    static const int want5[] = {0, 13, 25, 38};
    check_frames(c, want5, 4);
    collect_free(c);
    /* longer than the clip: the first frame only */
    o = opts();
    o.every_t = 10;
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    static const int want10[] = {0};
    check_frames(c, want10, 1);
    collect_free(c);
}

TEST(interval_with_every) {
    const char *in = input("cfr.mp4");
    REQUIRE(in);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    /* interval first (0, 5, 10, ..., 45), then every 2nd of those */
    o.every_t = 0.2;
    o.every_n = 2;
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    static const int want[] = {0, 10, 20, 30, 40};
    check_frames(c, want, 5);
    collect_free(c);
    o = opts();
    o.every_t = 0.2;
    o.every_n = 3;
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    static const int want3[] = {0, 15, 30, 45};
    check_frames(c, want3, 4);
    collect_free(c);
}

TEST(keyframes) {
    const char *in = input("cfr.mp4");
    REQUIRE(in);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    o.keyframes_only = 1;
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    static const int want[] = {0, 25};
    check_frames(c, want, 2);
    /* key frames decoded alone are the same pictures as in a full decode (intra frames) */
    collect *all;
    o = opts();
    CHECK_RUN_OK(run_file(in, &o, &all, &err));
    if (c->n == 2 && all->n == 50) {
        CHECK(memcmp(c->r[1].rgb, all->r[25].rgb, 64 * 48 * 3) == 0);
        CHECK_EQ_INT(c->r[1].pts, all->r[25].pts);
    }
    collect_free(all);
    collect_free(c);
}

/* --skip-nonref: the decoder drops non-reference (B) frames; what is left is a subset of the full decode, pixel for
 * pixel, and --interval then takes the first remaining frame at or after each time asked for. */
TEST(skip_nonref) {
    const char *in = input("cfr.mp4");
    REQUIRE(in);
    clxp_error err;
    collect *c, *all;
    clxp_run_options o = opts();
    CHECK_RUN_OK(run_file(in, &o, &all, &err));
    o.skip_nonref = 1;
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    printf("  %d of %d frames decoded with non-reference frames skipped\n", c->n, all->n);
    CHECK(all->n == 50 && c->n >= 2 && c->n < all->n);
    for (int i = 0; i < c->n && all->n == 50; i++) {
        int j = 0;
        while (j < all->n && all->r[j].pts != c->r[i].pts) j++;
        CHECK(j < all->n);
        if (j == all->n) break;
        CHECK(memcmp(c->r[i].rgb, all->r[j].rgb, 64 * 48 * 3) == 0);
        CHECK_EQ_INT(c->r[i].frame_index, all->r[j].frame_index);
        if (i > 0) CHECK(c->r[i].pts > c->r[i - 1].pts);
    }
    collect *iv;
    o.every_t = 0.2;
    CHECK_RUN_OK(run_file(in, &o, &iv, &err));
    CHECK(iv->n >= 2 && iv->n <= 10);
    for (int i = 0, k = 0; i < iv->n; i++) {
        /* the first skip_nonref frame at or after some target k * 0.2 s, one result per target at most */
        while ((k + 1) * 0.2 <= iv->r[i].time + 1e-9) k++;
        int first = -1;
        for (int j = 0; j < c->n && first < 0; j++)
            if (c->r[j].time >= k * 0.2 - 1e-9) first = j;
        CHECK(first >= 0 && c->r[first].pts == iv->r[i].pts);
        k++;
    }
    collect_free(iv);
    collect_free(all);
    collect_free(c);
}

TEST(start_duration) {
    const char *in = input("cfr.mp4");
    REQUIRE(in);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    o.start = 1;
    o.duration = 0.5;
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    static const int want[] = {25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37};
    check_frames(c, want, 13);
    for (int i = 0; i < c->n; i++) CHECK(c->r[i].time >= 1.0 - 1e-9 && c->r[i].time < 1.5);
    /* the same pixels as frames 25..37 of a full decode (the seek lands on the key frame at 1 s) */
    collect *all;
    clxp_run_options oa = opts();
    CHECK_RUN_OK(run_file(in, &oa, &all, &err));
    for (int i = 0; i < c->n && all->n == 50 && c->n == 13; i++) {
        CHECK(memcmp(c->r[i].rgb, all->r[25 + i].rgb, 64 * 48 * 3) == 0);
        CHECK_EQ_INT(c->r[i].pts, all->r[25 + i].pts);
    }
    collect_free(c);

    /* start between frames and between key frames: seek to the key frame at 0, decode and drop until 0.5 s;
     * the first frame at or after 0.5 s is frame 13 (0.52 s) */
    o = opts();
    o.start = 0.5;
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    CHECK_EQ_INT(c->n, 37);
    if (c->n > 0) {
        CHECK_EQ_INT(c->r[0].frame_index, 13);
        CHECK_NEAR(c->r[0].time, 0.52, 1e-6);
        CHECK_EQ_INT(c->r[c->n - 1].frame_index, 49);
        if (all->n == 50) CHECK(memcmp(c->r[0].rgb, all->r[13].rgb, 64 * 48 * 3) == 0);
    }
    collect_free(c);
    collect_free(all);

    /* duration alone: [0, 0.5) */
    o = opts();
    o.duration = 0.5;
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    CHECK_EQ_INT(c->n, 13);
    if (c->n) CHECK_EQ_INT(c->r[c->n - 1].frame_index, 12);
    collect_free(c);

    /* start with interval: slots from the start */
    o = opts();
    o.start = 1;
    o.every_t = 0.2;
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    static const int want_t[] = {25, 30, 35, 40, 45};
    check_frames(c, want_t, 5);
    collect_free(c);
}

TEST(start_past_end) {
    const char *in = input("cfr.mp4");
    REQUIRE(in);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    o.start = 5;
    log_reset();
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    CHECK_EQ_INT(c->n, 0);
    collect_free(c);
    /* just past the last frame (1.96 s) */
    o = opts();
    o.start = 1.97;
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    CHECK_EQ_INT(c->n, 0);
    collect_free(c);
    CHECK_EQ_INT(g_log_warnings, 0);
}

TEST(stop_early) {
    const char *in = input("cfr.mp4");
    REQUIRE(in);
    clxp_error err;
    collect *c = calloc(1, sizeof *c);
    REQUIRE(c);
    c->stop_after = 3;
    clxp_run_options o = opts();
    o.batch = 2;
    CHECK_EQ_INT(clxp_run_file(g_model, g_bank, in, &o, on_result, c, &err), CLXP_OK);
    CHECK_EQ_INT(c->n, 3);
    collect_free(c);
}

/* After a seek, and with key frames only, frame numbers come from the timestamps and the frame rate: also in a
 * container without an average frame rate (MPEG-TS), where the frame rate is r_frame_rate. */
TEST(mpegts_frame_numbers) {
    const char *in = input("g25.ts");
    REQUIRE(in);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    CHECK_EQ_INT(c->n, 75);
    for (int i = 0; i < c->n; i++) {
        CHECK_EQ_INT(c->r[i].frame_index, i);
        CHECK_NEAR(c->r[i].time, i / 25.0, 1e-6);
        if (test_failed_checks) break;
    }
    collect_free(c);
    o = opts();
    o.start = 1.5;
    o.duration = 0.2;
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    static const int want[] = {38, 39, 40, 41, 42};
    check_frames(c, want, 5);
    collect_free(c);
    o = opts();
    o.keyframes_only = 1;
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    static const int want_k[] = {0, 25, 50};
    check_frames(c, want_k, 3);
    collect_free(c);
}

/* ---- 2. scene changes ----------------------------------------------------------------------------------- */

TEST(scene) {
    const char *in = input("scene.mp4");
    REQUIRE(in);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    o.scene = 0.3;
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    /* libavfilter's scene score of the first frame is 0 (there is no previous frame): frame 0 is never selected
     * by gt(scene,X); the two cuts are */
    CHECK_EQ_INT(c->n, 2);
    if (c->n == 2) {
        CHECK_EQ_INT(c->r[0].frame_index, 20);
        CHECK_NEAR(c->r[0].time, 2.0, 1e-6);
        CHECK_EQ_INT(c->r[1].frame_index, 40);
        CHECK_NEAR(c->r[1].time, 4.0, 1e-6);
        /* frame 20 is blue, frame 40 the test pattern */
        const uint8_t *p = c->r[0].rgb + (24 * 64 + 32) * 3;
        CHECK(p[2] > 200 && p[0] < 40 && p[1] < 40);
    }
    collect_free(c);
    /* a threshold close to 1 keeps nothing: solid red -> solid blue scores below it */
    o = opts();
    o.scene = 0.99;
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    CHECK_EQ_INT(c->n, 0);
    collect_free(c);
    /* scene, then every 2nd of the selected frames */
    o = opts();
    o.scene = 0.3;
    o.every_n = 2;
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    CHECK_EQ_INT(c->n, 1);
    if (c->n) CHECK_EQ_INT(c->r[0].frame_index, 20);
    collect_free(c);
}

/* ---- 3. rotation and anamorphic pixels ----------------------------------------------------------------- */

static void check_rotated(const char *name, int w, int h) {
    const char *in = input(name);
    REQUIRE(in);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    CHECK_EQ_INT(c->n, 3);
    if (c->n < 1) {
        collect_free(c);
        return;
    }
    CHECK_EQ_INT(c->r[0].width, w);
    CHECK_EQ_INT(c->r[0].height, h);
    /* the same orientation as the ffmpeg tool's autorotation (small differences: RGB conversion) */
    uint8_t *want = c->r[0].width == w && c->r[0].height == h ? ffmpeg_first_frame(in, NULL, w, h) : NULL;
    CHECK(want != NULL);
    if (want) {
        size_t n = (size_t)w * h * 3;
        double d = mean_abs_diff(c->r[0].rgb, want, n);
        if (!(d < 4)) printf("  %s: mean |pipeline - ffmpeg| = %.2f levels\n", name, d);
        CHECK(d < 4);
        /* the check can tell: the 180-degree-rotated picture is far off */
        uint8_t *flip = malloc(n);
        if (flip) {
            for (size_t p = 0; p < n / 3; p++) memcpy(flip + 3 * p, want + 3 * (n / 3 - 1 - p), 3);
            CHECK(mean_abs_diff(c->r[0].rgb, flip, n) > 20);
        }
        free(flip);
    }
    free(want);
    collect_free(c);
}

TEST(rotation_90) { check_rotated("rot90.mp4", 240, 320); }
TEST(rotation_180) { check_rotated("rot180.mp4", 320, 240); }
TEST(rotation_270) { check_rotated("rot270.mp4", 240, 320); }

TEST(anamorphic) {
    const char *in = input("sar.mp4");
    REQUIRE(in);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    CHECK_EQ_INT(c->n, 3);
    if (c->n) {
        CHECK_EQ_INT(c->r[0].width, 320);
        CHECK_EQ_INT(c->r[0].height, 120);
        uint8_t *want = c->r[0].width == 320 && c->r[0].height == 120
                            ? ffmpeg_first_frame(in, "scale=trunc(iw*sar/2)*2:ih,setsar=1", 320, 120)
                            : NULL;
        CHECK(want != NULL);
        if (want) CHECK(mean_abs_diff(c->r[0].rgb, want, (size_t)320 * 120 * 3) < 4);
        free(want);
    }
    collect_free(c);
    /* --vf sees the square-pixel frame */
    o = opts();
    o.vf = "crop=iw/2:ih";
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    if (c->n) {
        CHECK_EQ_INT(c->r[0].width, 160);
        CHECK_EQ_INT(c->r[0].height, 120);
    }
    collect_free(c);
}

/* ---- 4. variable frame rate ------------------------------------------------------------------------------- */

/* Frame times of a file's first video stream from ffprobe, from the stream's start time; returns the count. */
static int ffprobe_times(const char *path, double *t, int max) {
    char cmd[2048];
    double start = 0;
    snprintf(cmd, sizeof cmd, "ffprobe -v error -select_streams v:0 -show_entries stream=start_time -of csv=p=0 '%s'",
             path);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    if (fscanf(p, "%lf", &start) != 1) start = 0;
    pclose(p);
    snprintf(cmd, sizeof cmd, "ffprobe -v error -select_streams v:0 -show_entries frame=pts_time -of csv=p=0 '%s'",
             path);
    p = popen(cmd, "r");
    if (!p) return -1;
    int n = 0;
    char line[256];
    while (fgets(line, sizeof line, p)) {
        double v;
        if (sscanf(line, "%lf", &v) == 1 && n < max) t[n++] = v - start;
    }
    return pclose(p) == 0 ? n : -1;
}

TEST(vfr) {
    const char *in = input("vfr.mkv");
    REQUIRE(in);
    double want[256];
    int n = ffprobe_times(in, want, 256);
    REQUIRE(n == 40);
    /* the file is really variable: 0.1 s steps, then 0.04 s steps with jitter */
    CHECK(want[1] - want[0] > 0.09);
    CHECK(want[12] - want[11] < 0.03);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    CHECK_EQ_INT(c->n, n);
    for (int i = 0; i < c->n && i < n; i++) {
        CHECK_EQ_INT(c->r[i].frame_index, i);
        CHECK_NEAR(c->r[i].time, want[i], 1e-3);
        if (test_failed_checks) break;
    }
    collect_free(c);

    /* --interval by timestamp: the first frame at or after each slot k * 0.25 */
    o = opts();
    o.every_t = 0.25;
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    int sel[256], ns = 0;
    double next = 0;
    for (int i = 0; i < n; i++) {
        if (want[i] < next - 1e-6) continue;
        sel[ns++] = i;
        while (next <= want[i] + 1e-6) next += 0.25;
    }
    CHECK_EQ_INT(c->n, ns);
    for (int i = 0; i < c->n && i < ns; i++) {
        CHECK_EQ_INT(c->r[i].frame_index, sel[i]);
        CHECK_NEAR(c->r[i].time, want[sel[i]], 1e-3);
    }
    collect_free(c);
}

/* ---- 5. damaged file -------------------------------------------------------------------------------------- */

/* 2 KB of fixed pseudo-random bytes at half of the file. */
static int damage(const char *path) {
    long size = file_size(path);
    FILE *f = fopen(path, "r+b");
    if (!f || size < 8192) {
        if (f) fclose(f);
        return 0;
    }
    fseek(f, size / 2, SEEK_SET);
    uint32_t s = 12345;
    for (int i = 0; i < 2048; i++) {
        s = s * 1103515245u + 12345u;
        fputc((int)((s >> 16) & 0xff), f);
    }
    return fclose(f) == 0;
}

static const char *damaged_input(void) {
    static char bad[1024];
    if (bad[0]) return bad;
    const char *good = input("ts.ts");
    if (!good) return NULL;
    char path[1024];
    snprintf(path, sizeof path, "%s/bad.ts", scratch_dir());
    if (scratch_sh("cp '%s' '%s'", good, path) != 0 || !damage(path)) return NULL;
    memcpy(bad, path, sizeof bad);
    return bad;
}

TEST(corrupt_packet) {
    const char *in = damaged_input();
    REQUIRE(in);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    log_reset();
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    /* some frames are lost, the rest is there: from the start to the end */
    CHECK(c->n >= 80 && c->n < 100);
    if (c->n > 0) {
        CHECK_NEAR(c->r[0].time, 0, 1e-6);
        CHECK(c->r[c->n - 1].time >= 3.9);
    }
    double gap_from = 0, gap_to = 0;
    for (int i = 1; i < c->n; i++) {
        CHECK(c->r[i].time > c->r[i - 1].time);
        if (c->r[i].time - c->r[i - 1].time > gap_to - gap_from) {
            gap_from = c->r[i - 1].time;
            gap_to = c->r[i].time;
        }
    }
    /* the damage is in the middle */
    CHECK(gap_from > 1.0 && gap_to < 3.0);
    /* a warning names the time of the damage, and the summary counts the skipped packets or frames */
    pthread_mutex_lock(&g_log_mu);
    char log[sizeof g_log];
    memcpy(log, g_log, sizeof log);
    pthread_mutex_unlock(&g_log_mu);
    CHECK_CONTAINS(log, "corrupt");
    const char *at = strstr(log, " at ");
    double t = -1;
    CHECK(at && sscanf(at, " at %lf s", &t) == 1);
    if (!(t >= gap_from - 1e-6 && t <= gap_to + 1e-6)) printf("  warned at %.3f s, gap (%.3f, %.3f)\n", t, gap_from, gap_to);
    CHECK(t >= gap_from - 1e-6 && t <= gap_to + 1e-6);
    CHECK_CONTAINS(log, "corrupt packets or frames were skipped");
    const char *sum = strstr(log, "corrupt packets or frames");
    long count = 0;
    while (sum && sum > log && sum[-1] != ':') sum--;
    CHECK(sum && sscanf(sum, " %ld", &count) == 1 && count >= 1);
    collect_free(c);
}

/* frame_index is the frame number in the stream (video.h): frames lost to the damage leave gaps in the numbers,
 * as in the timestamps, rather than renumbering every later frame. */
TEST(corrupt_packet_frame_numbers) {
    const char *in = damaged_input();
    REQUIRE(in);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    int bad = 0;
    for (int i = 0; i < c->n; i++) {
        long long want = llround(c->r[i].time * 25);
        if (c->r[i].frame_index != want) {
            if (!bad) printf("  first wrong frame number: %lld at %.3f s, expected %lld\n",
                             (long long)c->r[i].frame_index, c->r[i].time, want);
            bad++;
        }
    }
    if (bad) printf("  %d of %d results have a wrong frame_index\n", bad, c->n);
    CHECK_EQ_INT(bad, 0);
    collect_free(c);
}

/* ---- 6. audio only ---------------------------------------------------------------------------------------- */

static void check_audio_only(const char *name) {
    const char *in = input(name);
    REQUIRE(in);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    CHECK_EQ_INT(run_file(in, &o, &c, &err), CLXP_ERR_UNSUPPORTED);
    CHECK_EQ_INT(c->n, 0);
    CHECK_EQ_INT(err.code, CLXP_ERR_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, in);
    CHECK_CONTAINS(err.msg, "no video stream");
    CHECK_CONTAINS(err.msg, "audio");
    CHECK_CONTAINS(err.msg, "CLAP");
    CHECK(!strchr(err.msg, '\n'));
    collect_free(c);
}

TEST(audio_only_wav) { check_audio_only("sine.wav"); }
TEST(audio_only_m4a) { check_audio_only("sine.m4a"); }

/* ---- 7. frames vs images -------------------------------------------------------------------------------------- */

TEST(frames_vs_images) {
    const char *in = input("cfr.mp4");
    REQUIRE(in);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    o.every_n = 7;
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    REQUIRE(c->n == 8);
    char names[8][1024];
    const char *paths[8];
    for (int i = 0; i < c->n; i++) {
        char f[64];
        snprintf(f, sizeof f, "frame%02d.ppm", i);
        snprintf(names[i], sizeof names[i], "%s", scratch_path(f));
        paths[i] = names[i];
        CHECK(c->r[i].rgb && write_ppm(paths[i], c->r[i].rgb, c->r[i].width, c->r[i].height));
    }
    const int dim = clxp_model_get_info(g_model)->embed_dim;
    float *emb = malloc((size_t)8 * dim * sizeof *emb);
    float scores[8 * N_LABELS];
    REQUIRE(emb);
    /* all 8 files in one batch (the pipeline ran them in one batch of 8 too) */
    CHECK_EQ_INT(clxp_encode_image_files(g_model, paths, 8, emb, &err), CLXP_OK);
    CHECK_EQ_INT(clxp_classify(g_bank, emb, 8, NULL, scores, &err), CLXP_OK);
    double d_same = 0;
    for (int i = 0; i < 8; i++) {
        double d = max_score_diff(c->r[i].scores, scores + i * N_LABELS, N_LABELS);
        if (d > d_same) d_same = d;
    }
    if (d_same != 0) printf("  frames vs images (same batch): max |diff| = %.3g\n", d_same);
    CHECK(d_same == 0);
    /* one file at a time: a different batch composition */
    double d_single = 0;
    for (int i = 0; i < 8; i++) {
        float s1[N_LABELS];
        CHECK_EQ_INT(clxp_encode_image_files(g_model, paths + i, 1, emb, &err), CLXP_OK);
        CHECK_EQ_INT(clxp_classify(g_bank, emb, 1, NULL, s1, &err), CLXP_OK);
        double d = max_score_diff(c->r[i].scores, s1, N_LABELS);
        if (d > d_single) d_single = d;
    }
    if (d_single > 0) printf("  frames vs images (batch 8 vs batch 1): max |diff| = %.3g\n", d_single);
    CHECK(d_single <= 1e-6);
    /* the pipeline with batches of 3 (3 + 3 + 2) */
    collect *c3;
    o = opts();
    o.every_n = 7;
    o.batch = 3;
    CHECK_RUN_OK(run_file(in, &o, &c3, &err));
    CHECK_EQ_INT(c3->n, 8);
    double d_b3 = 0;
    for (int i = 0; i < c3->n && i < 8; i++) {
        double d = max_score_diff(c3->r[i].scores, c->r[i].scores, N_LABELS);
        if (d > d_b3) d_b3 = d;
        CHECK(memcmp(c3->r[i].rgb, c->r[i].rgb, (size_t)64 * 48 * 3) == 0);
    }
    if (d_b3 > 0) printf("  pipeline batch 3 vs batch 16: max |diff| = %.3g\n", d_b3);
    CHECK(d_b3 <= 1e-6);
    collect_free(c3);
    free(emb);
    for (int i = 0; i < 8; i++) unlink(paths[i]);
    collect_free(c);
}

/* ---- 8. boxes -------------------------------------------------------------------------------------------- */

TEST(boxes) {
    const char *in = input("cfr.mp4");
    REQUIRE(in);
    const char *bx = scratch_path("boxes.jsonl");
    REQUIRE(write_text(bx,
                       "{\"frame\": 0, \"boxes\": [{\"x\": 8, \"y\": 4, \"w\": 16, \"h\": 12, \"label\": \"person\", "
                       "\"score\": 0.9}, {\"x\": 50, \"y\": 40, \"w\": 30, \"h\": 30, \"label\": \"person\"}, "
                       "{\"x\": 5, \"y\": 5, \"w\": 10, \"h\": 10, \"label\": \"car\"}, "
                       "{\"x\": 10, \"y\": 10, \"w\": 0, \"h\": 5, \"label\": \"person\"}]}\n"
                       "{\"frame\": 10, \"normalized\": true, \"boxes\": [{\"x1\": 0.25, \"y1\": 0.5, \"x2\": 0.75, "
                       "\"y2\": 1.0, \"label\": \"Person\"}]}\n"
                       "{\"frame\": 500, \"boxes\": [{\"x\": 0, \"y\": 0, \"w\": 4, \"h\": 4, \"label\": \"person\"}]}\n"));
    clxp_error err;
    collect *c, *whole;
    clxp_run_options o = opts();
    o.every_n = 10;
    o.boxes = bx;
    o.target = "PERSON";
    log_reset();
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    o = opts();
    o.every_n = 10;
    CHECK_RUN_OK(run_file(in, &o, &whole, &err));
    REQUIRE(whole->n == 5);
    CHECK_EQ_INT(c->n, 3);
    /* frame, box index, x, y, w, h */
    static const int want[3][6] = {{0, 0, 8, 4, 16, 12}, {0, 1, 50, 40, 14, 8}, {10, 0, 16, 24, 32, 24}};
    for (int i = 0; i < c->n && i < 3; i++) {
        const rec *r = &c->r[i];
        CHECK_EQ_INT(r->frame_index, want[i][0]);
        CHECK_NEAR(r->time, want[i][0] / 25.0, 1e-6);
        CHECK_EQ_INT(r->box_index, want[i][1]);
        CHECK_EQ_INT(r->box_x, want[i][2]);
        CHECK_EQ_INT(r->box_y, want[i][3]);
        CHECK_EQ_INT(r->box_w, want[i][4]);
        CHECK_EQ_INT(r->box_h, want[i][5]);
        CHECK_EQ_INT(r->width, want[i][4]);
        CHECK_EQ_INT(r->height, want[i][5]);
        CHECK(strcasecmp(r->box_label, "person") == 0);
        /* the crop's pixels are the frame's, and its scores those of classifying that crop as an image */
        const rec *w = &whole->r[want[i][0] / 10];
        int ok = r->rgb != NULL && w->rgb != NULL;
        for (int y = 0; ok && y < want[i][5]; y++)
            ok = memcmp(r->rgb + (size_t)y * want[i][4] * 3,
                        w->rgb + ((size_t)(want[i][3] + y) * 64 + want[i][2]) * 3, (size_t)want[i][4] * 3) == 0;
        CHECK(ok);
        if (ok) {
            clxp_image img = {r->rgb, r->width, r->height, 3 * r->width};
            float emb[1024], s[N_LABELS];
            CHECK_EQ_INT(clxp_encode_images(g_model, &img, 1, emb, &err), CLXP_OK);
            CHECK_EQ_INT(clxp_classify(g_bank, emb, 1, NULL, s, &err), CLXP_OK);
            CHECK(max_score_diff(r->scores, s, N_LABELS) <= 1e-6);
        }
    }
    if (c->n == 3) {
        CHECK_NEAR(c->r[0].box_score, 0.9, 1e-6);
        CHECK(isnan(c->r[1].box_score));
        CHECK_STR(c->r[2].box_label, "Person");
    }
    pthread_mutex_lock(&g_log_mu);
    char log[sizeof g_log];
    memcpy(log, g_log, sizeof log);
    pthread_mutex_unlock(&g_log_mu);
    /* the empty box (line 1, box 3) is skipped with a warning; the line for frame 500 matched nothing */
    CHECK_CONTAINS(log, "boxes.jsonl:1: box 3 is empty");
    CHECK_CONTAINS(log, "1 of 3 lines matched no processed frame");
    CHECK_CONTAINS(log, "line 3");
    collect_free(whole);
    collect_free(c);

    /* without a target every box is classified: 3 on frame 0 (the empty one skipped), 1 on frame 10 */
    o = opts();
    o.every_n = 10;
    o.boxes = bx;
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    CHECK_EQ_INT(c->n, 4);
    if (c->n == 4) {
        CHECK_EQ_INT(c->r[2].box_index, 2);
        CHECK_STR(c->r[2].box_label, "car");
        CHECK_EQ_INT(c->r[3].frame_index, 10);
    }
    collect_free(c);
    unlink(bx);
}

/* ---- 9. still image ----------------------------------------------------------------------------------------- */

TEST(still_image) {
    const char *png = test_data("clip-tiny-quickgelu/golden/inputs/img1_checker_200x120.png");
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    CHECK_RUN_OK(run_file(png, &o, &c, &err));
    REQUIRE(c->n == 1);
    CHECK_EQ_INT(c->r[0].frame_index, 0);
    CHECK_NEAR(c->r[0].time, 0, 0);
    CHECK_EQ_INT(c->r[0].stream_index, 0);
    CHECK_EQ_INT(c->r[0].width, 200);
    CHECK_EQ_INT(c->r[0].height, 120);
    CHECK_EQ_INT(c->r[0].box_index, -1);
    float emb[1024], s[N_LABELS];
    REQUIRE(clxp_model_get_info(g_model)->embed_dim <= 1024);
    CHECK_EQ_INT(clxp_encode_image_files(g_model, &png, 1, emb, &err), CLXP_OK);
    CHECK_EQ_INT(clxp_classify(g_bank, emb, 1, NULL, s, &err), CLXP_OK);
    double d = max_score_diff(c->r[0].scores, s, N_LABELS);
    if (d != 0) printf("  still image: max |diff| = %.3g\n", d);
    CHECK(d == 0);
    collect_free(c);
}

/* ---- 10. streams and filters -------------------------------------------------------------------------- */

TEST(stream_select) {
    const char *in = input("two.mkv");
    REQUIRE(in);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    CHECK_EQ_INT(c->n, 10);
    if (c->n) {
        CHECK_EQ_INT(c->r[0].stream_index, 0);
        CHECK_EQ_INT(c->r[0].width, 64);
    }
    collect_free(c);

    o = opts();
    o.stream = "v:1";
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    CHECK_EQ_INT(c->n, 10);
    for (int i = 0; i < c->n; i++) {
        CHECK_EQ_INT(c->r[i].stream_index, 1);
        CHECK_EQ_INT(c->r[i].width, 32);
        CHECK_EQ_INT(c->r[i].height, 24);
        CHECK_EQ_INT(c->r[i].frame_index, i);
    }
    collect_free(c);

    o = opts();
    o.stream = "1";
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    CHECK(c->n == 10 && c->r[0].stream_index == 1);
    collect_free(c);

    static const char *const bad[][2] = {
        {"v:x", "invalid stream specifier"}, {"v:5", "no stream matches"}, {"2", "not a video stream"}};
    for (int i = 0; i < 3; i++) {
        o = opts();
        o.stream = bad[i][0];
        CHECK_EQ_INT(run_file(in, &o, &c, &err), CLXP_ERR_INVALID);
        CHECK_EQ_INT(c->n, 0);
        CHECK_CONTAINS(err.msg, in);
        CHECK_CONTAINS(err.msg, bad[i][0]);
        CHECK_CONTAINS(err.msg, bad[i][1]);
        collect_free(c);
    }
}

TEST(vf) {
    const char *in = input("src320.mp4");
    REQUIRE(in);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    o.vf = "scale=64:48";
    CHECK_RUN_OK(run_file(in, &o, &c, &err));
    CHECK_EQ_INT(c->n, 3);
    for (int i = 0; i < c->n; i++) {
        CHECK_EQ_INT(c->r[i].width, 64);
        CHECK_EQ_INT(c->r[i].height, 48);
        CHECK_EQ_INT(c->r[i].frame_index, i);
        CHECK_NEAR(c->r[i].time, i * 0.1, 1e-6);
    }
    collect_free(c);
    /* --vf after the rotation: the filter sees the 240x320 picture */
    const char *rot = input("rot90.mp4");
    REQUIRE(rot);
    o = opts();
    o.vf = "crop=iw:ih/2";
    CHECK_RUN_OK(run_file(rot, &o, &c, &err));
    if (c->n) {
        CHECK_EQ_INT(c->r[0].width, 240);
        CHECK_EQ_INT(c->r[0].height, 160);
    }
    collect_free(c);
}

TEST(vf_invalid) {
    const char *in = input("src320.mp4");
    REQUIRE(in);
    clxp_error err;
    collect *c;
    static const char *const bad[] = {"nosuchfilter=3", "scale=foo", "scale=64:48,"};
    for (int i = 0; i < 3; i++) {
        clxp_run_options o = opts();
        o.vf = bad[i];
        CHECK_EQ_INT(run_file(in, &o, &c, &err), CLXP_ERR_INVALID);
        CHECK_EQ_INT(c->n, 0);
        CHECK_CONTAINS(err.msg, bad[i]);
        CHECK_CONTAINS(err.msg, "filter graph");
        CHECK(!strchr(err.msg, '\n'));
        collect_free(c);
    }
}

/* Like every clxp error (clxp.h), a bad --vf names the input it was applied to, and an unknown filter is named
 * as such rather than as "Invalid argument". */
TEST(vf_invalid_message) {
    const char *in = input("src320.mp4");
    REQUIRE(in);
    clxp_error err;
    collect *c;
    clxp_run_options o = opts();
    o.vf = "nosuchfilter=3";
    CHECK_EQ_INT(run_file(in, &o, &c, &err), CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, in);
    CHECK_CONTAINS(err.msg, "nosuchfilter");
    CHECK(strstr(err.msg, "no such filter") || strstr(err.msg, "No such filter") || strstr(err.msg, "unknown filter"));
    collect_free(c);
}

/* ---- main ------------------------------------------------------------------------------------------------ */

int main(void) {
    av_log_set_level(AV_LOG_QUIET); /* the damaged file makes the decoder talk; clxp's warnings are checked */
    clxp_set_log_callback(capture_log, NULL, CLXP_LOG_WARN);
    if (!scratch_init("video")) return test_summary();
    if (scratch_sh("ffprobe -hide_banner -version >/dev/null 2>&1") != 0) {
        printf("FAIL setup\n  the ffprobe tool is needed (scripts/install-deps.sh installs it)\n");
        tests_failed++;
        scratch_cleanup();
        return test_summary();
    }
    g_have_x264 = system("ffmpeg -hide_banner -encoders 2>/dev/null | grep -q libx264") == 0;

    clxp_error err;
    /* One inference thread: with OpenMP's default (active) wait policy, idle worker threads spin and starve the
     * decoding thread on a 2-core machine (a run is then several times slower). No check depends on it. */
    clxp_load_options lo = {.n_threads = 1, .precision = CLXP_PRECISION_FP32};
    const char *labels[N_LABELS] = {"a photo of a cat", "a photo of a dog", "a red square"};
    if (clxp_model_load(test_data("clip-tiny-quickgelu"), &lo, &g_model, &err) != CLXP_OK ||
        clxp_labelbank_create(g_model, labels, N_LABELS, NULL, 0, &g_bank, &err) != CLXP_OK) {
        printf("FAIL setup\n  %s\n", err.msg);
        tests_failed++;
    } else {
        RUN(every_frame);
        RUN(every_n);
        RUN(interval);
        RUN(interval_with_every);
        RUN(keyframes);
        RUN(skip_nonref);
        RUN(start_duration);
        RUN(start_past_end);
        RUN(stop_early);
        RUN(mpegts_frame_numbers);
        RUN(scene);
        RUN(rotation_90);
        RUN(rotation_180);
        RUN(rotation_270);
        RUN(anamorphic);
        RUN(vfr);
        RUN(corrupt_packet);
        RUN(corrupt_packet_frame_numbers);
        RUN(audio_only_wav);
        RUN(audio_only_m4a);
        RUN(frames_vs_images);
        RUN(boxes);
        RUN(still_image);
        RUN(stream_select);
        RUN(vf);
        RUN(vf_invalid);
        RUN(vf_invalid_message);
    }
    clxp_labelbank_free(g_bank);
    clxp_model_free(g_model);
    scratch_cleanup();
    return test_summary();
}
