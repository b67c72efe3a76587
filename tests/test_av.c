/* clxp_run_file_av: one pass with a CLIP model on a file's video and a CLAP model on its audio.
 *  - every result of each stream equals the result of clxp_run_file with that model alone, bit for bit (scores
 *    compared with memcmp), with the same metadata; each stream's results come in order and name their bank;
 *  - a file without audio runs the CLIP model alone (and one without video the CLAP model alone);
 *  - models of the wrong kind, and a bank of another model, are refused;
 *  - an output writer opened with both banks writes each result with its own labels and refuses a foreign bank.
 * The input is made with the ffmpeg tool in a mkdtemp directory (12 s of 64x48 video at 5 fps, 44.1 kHz stereo
 * sound). Models: the tiny random-weight test models. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clxp.h"
#include "output/writer.h"
#include "test.h"

#define MAX_RESULTS 256
#define MAX_CLASSES 64

typedef struct rec {
    char media;
    int stream;
    int64_t frame;
    double time, duration;
    const clxp_labelbank *bank;
    int n;
    float scores[MAX_CLASSES];
} rec;

typedef struct recs {
    rec r[MAX_RESULTS];
    int n;
} recs;

static int collect(void *user, const clxp_result *r) {
    recs *c = user;
    if (c->n == MAX_RESULTS || r->n_classes > MAX_CLASSES) return 1;
    rec *e = &c->r[c->n++];
    e->media = r->media_type;
    e->stream = r->stream_index;
    e->frame = r->frame_index;
    e->time = r->time;
    e->duration = r->duration;
    e->bank = r->bank;
    e->n = r->n_classes;
    memcpy(e->scores, r->scores, (size_t)r->n_classes * sizeof(float));
    return 0;
}

static char g_dir[256], g_av[300], g_video[300];
static clxp_model *g_clip, *g_clap;
static clxp_labelbank *g_vbank, *g_abank;

static int make_inputs(void) {
    snprintf(g_dir, sizeof g_dir, "%s/clxp-test-av.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_dir)) return 0;
    snprintf(g_av, sizeof g_av, "%s/av.mkv", g_dir);
    snprintf(g_video, sizeof g_video, "%s/video.mkv", g_dir);
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc=size=64x48:rate=5:duration=12 "
             "-f lavfi -i sine=frequency=330:sample_rate=44100:duration=12 -ac 2 -c:v mpeg4 -c:a pcm_s16le %s && "
             "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i testsrc=size=64x48:rate=5:duration=2 "
             "-c:v mpeg4 %s",
             g_av, g_video);
    return system(cmd) == 0;
}

static void cleanup(void) {
    unlink(g_av);
    unlink(g_video);
    rmdir(g_dir);
}

static int same_rec(const rec *a, const rec *b) {
    return a->media == b->media && a->stream == b->stream && a->frame == b->frame && a->time == b->time &&
           a->duration == b->duration && a->n == b->n && memcmp(a->scores, b->scores, (size_t)a->n * sizeof(float)) == 0;
}

TEST(combined_equals_separate) {
    clxp_error err = {0};
    clxp_run_options o = {.every_t = 0.8, .hop = 4, .batch = 4};
    static recs both, v, a;
    both.n = v.n = a.n = 0;
    CHECK_EQ_INT(clxp_run_file_av(g_clip, g_vbank, g_clap, g_abank, g_av, &o, collect, &both, &err), CLXP_OK);
    if (err.code) printf("  %s\n", err.msg);
    CHECK_EQ_INT(clxp_run_file(g_clip, g_vbank, g_av, &o, collect, &v, &err), CLXP_OK);
    o.every_t = 0;
    CHECK_EQ_INT(clxp_run_file(g_clap, g_abank, g_av, &o, collect, &a, &err), CLXP_OK);
    CHECK_EQ_INT(v.n, 15); /* 12 s, one frame per 0.8 s */
    CHECK_EQ_INT(a.n, 2);  /* windows 0-10 s and 4-12 s (it reaches the end: the last) */
    CHECK_EQ_INT(both.n, v.n + a.n);
    int iv = 0, ia = 0, sorted = 1;
    for (int i = 0; i < both.n; i++) {
        const rec *r = &both.r[i];
        for (int j = i - 1; j >= 0; j--) /* each stream in presentation order */
            if (both.r[j].media == r->media) {
                if (r->time < both.r[j].time) sorted = 0;
                break;
            }
        if (r->media == 'v') {
            CHECK(r->bank == g_vbank);
            CHECK(iv < v.n && same_rec(r, &v.r[iv]));
            iv++;
        } else {
            CHECK(r->bank == g_abank);
            CHECK(ia < a.n && same_rec(r, &a.r[ia]));
            ia++;
        }
    }
    CHECK(sorted);
    CHECK_EQ_INT(iv, v.n);
    CHECK_EQ_INT(ia, a.n);
    CHECK(v.r[0].bank == g_vbank); /* single runs name their bank too */
    CHECK(a.r[0].bank == g_abank);
}

TEST(missing_audio_runs_video_alone) {
    clxp_error err = {0};
    static recs both, v;
    both.n = v.n = 0;
    CHECK_EQ_INT(clxp_run_file_av(g_clip, g_vbank, g_clap, g_abank, g_video, NULL, collect, &both, &err), CLXP_OK);
    CHECK_EQ_INT(clxp_run_file(g_clip, g_vbank, g_video, NULL, collect, &v, &err), CLXP_OK);
    CHECK_EQ_INT(both.n, 10);
    CHECK_EQ_INT(both.n, v.n);
    for (int i = 0; i < both.n && i < v.n; i++) CHECK(both.r[i].media == 'v' && same_rec(&both.r[i], &v.r[i]));
}

TEST(wrong_models_refused) {
    clxp_error err = {0};
    recs *c = calloc(1, sizeof *c);
    REQUIRE(c);
    CHECK_EQ_INT(clxp_run_file_av(g_clap, g_abank, g_clip, g_vbank, g_av, NULL, collect, c, &err), CLXP_ERR_INVALID);
    CHECK(strstr(err.msg, "must be a CLIP model") != NULL);
    CHECK_EQ_INT(clxp_run_file_av(g_clip, g_vbank, g_clip, g_vbank, g_av, NULL, collect, c, &err), CLXP_ERR_INVALID);
    CHECK(strstr(err.msg, "must be a CLAP model") != NULL);
    /* the banks swapped: made by other models */
    CHECK_EQ_INT(clxp_run_file_av(g_clip, g_abank, g_clap, g_vbank, g_av, NULL, collect, c, &err), CLXP_ERR_INVALID);
    CHECK(strstr(err.msg, "label bank") != NULL);
    CHECK_EQ_INT(clxp_run_file_av(g_clip, g_vbank, g_clap, g_abank, "/nonexistent/x.mkv", NULL, collect, c, &err),
                 CLXP_ERR_IO);
    CHECK_EQ_INT(c->n, 0);
    free(c);
}

TEST(writer_with_two_banks) {
    char path[320];
    snprintf(path, sizeof path, "%s/out.csv", g_dir);
    const clxp_labelbank *banks[2] = {g_vbank, g_abank};
    clxp_error err = {0};
    out_writer *w = NULL;
    REQUIRE(out_open_banks(path, OUT_CSV, banks, 2, NULL, &w, &err) == CLXP_OK);
    float sv[MAX_CLASSES] = {0}, sa[MAX_CLASSES] = {0};
    sv[1] = 1; /* video: class 1 */
    sa[2] = 1; /* audio: class 2 */
    clxp_result rv = {.media_type = 'v', .stream_index = 0, .box_index = -1, .n_classes = clxp_labelbank_n_classes(g_vbank),
                      .scores = sv, .bank = g_vbank};
    clxp_result ra = {.media_type = 'a', .stream_index = 1, .box_index = -1, .n_classes = clxp_labelbank_n_classes(g_abank),
                      .scores = sa, .bank = g_abank};
    CHECK_EQ_INT(out_write(w, &ra, &err), CLXP_OK);
    CHECK_EQ_INT(out_write(w, &rv, &err), CLXP_OK);
    CHECK_EQ_INT(out_close(w, &err), CLXP_OK);
    FILE *f = fopen(path, "r");
    REQUIRE(f);
    char text[1024] = {0};
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char want[1024];
    snprintf(want, sizeof want, "stream_id,label,avg_probability,count\n0,%s,1.0000,1\n1,%s,1.0000,1\n",
             clxp_labelbank_class_name(g_vbank, 1), clxp_labelbank_class_name(g_abank, 2));
    CHECK_STR(text, want);
    unlink(path);
    /* a writer of the video bank alone refuses an audio result */
    REQUIRE(out_open_banks(path, OUT_JSONL, banks, 1, NULL, &w, &err) == CLXP_OK);
    CHECK_EQ_INT(out_write(w, &ra, &err), CLXP_ERR_INVALID);
    out_abort(w);
}

int main(void) {
    clxp_error err = {0};
    if (!make_inputs()) {
        printf("FAIL make_inputs (the ffmpeg tool is needed)\nRESULT 0 1\n");
        return 1;
    }
    const char *vl[] = {"a photo of a cat", "a photo of a dog", "a diagram"};
    const char *al[] = {"rock music", "dog barking", "a sine tone", "speech"};
    clxp_load_options lo = {.n_threads = 1};
    if (clxp_model_load(test_data("clip-tiny-quickgelu"), &lo, &g_clip, &err) != CLXP_OK ||
        clxp_model_load(test_data("clap-tiny-unfused"), &lo, &g_clap, &err) != CLXP_OK ||
        clxp_labelbank_create(g_clip, vl, 3, NULL, 0, &g_vbank, &err) != CLXP_OK ||
        clxp_labelbank_create(g_clap, al, 4, NULL, 0, &g_abank, &err) != CLXP_OK) {
        printf("FAIL setup: %s\nRESULT 0 1\n", err.msg);
        cleanup();
        return 1;
    }
    RUN(combined_equals_separate);
    RUN(missing_audio_runs_video_alone);
    RUN(wrong_models_refused);
    RUN(writer_with_two_banks);
    clxp_labelbank_free(g_vbank);
    clxp_labelbank_free(g_abank);
    clxp_model_free(g_clip);
    clxp_model_free(g_clap);
    cleanup();
    return test_summary();
}
