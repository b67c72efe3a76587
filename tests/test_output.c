/* Output writers (src/output) and the run aggregation (src/classify/aggregate): exact bytes of every format for
 * hand-made results, and the file integrity rules (atomic temp + rename, no overwrite without the flag, abort,
 * missing directory, output == input).
 *
 * The label banks come from the tiny test model (their embeddings are irrelevant here); the results are built by
 * hand with chosen scores. Every test works in its own mkdtemp directory (under $TMPDIR or /tmp) and checks that
 * no temporary file is left behind. */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

#include <libavcodec/avcodec.h>
#include <libavutil/base64.h>

#include "classify/aggregate.h"
#include "clxp.h"
#include "output/writer.h"
#include "test.h"
#include "util/fileio.h"

/* the golden comparisons are for the exact fp32 path (bf16: tests/test_precision.c) */
static const clxp_load_options g_fp32 = {.precision = CLXP_PRECISION_FP32};

static clxp_model *g_model;
static clxp_labelbank *g_labels; /* cat | dog "big", brown | café <b>& */
static clxp_labelbank *g_cats;   /* [Scene] Day, Night  [Crowd] Empty, Busy */

static const char *const label_names[] = {"cat", "dog \"big\", brown", "caf\xc3\xa9 <b>&"};

/* ---- helpers ---------------------------------------------------------------------------------------------- */

static char *make_dir(void) {
    const char *t = getenv("TMPDIR");
    char buf[512];
    snprintf(buf, sizeof buf, "%s/clxp-out-XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(buf) ? strdup(buf) : NULL;
}

/* Entries of a directory, without . and .. */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* Remove a flat directory and everything in it, free its name. */
static void remove_dir(char *dir) {
    if (!dir) return;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p = clxp_path_join(dir, e->d_name);
        if (p) unlink(p);
        free(p);
    }
    if (d) closedir(d);
    rmdir(dir);
    free(dir);
}

static char *slurp(const char *path) {
    char *buf = NULL;
    clxp_error err;
    return clxp_read_file(path, (size_t)1 << 30, &buf, NULL, &err) == CLXP_OK ? buf : NULL;
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fputs(text, f);
    return fclose(f) == 0;
}

static int count_substr(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static clxp_result mk(int stream, char media, int64_t frame, double t, double dur, const float *scores, int n) {
    clxp_result r;
    memset(&r, 0, sizeof r);
    r.input = "in.mp4";
    r.stream_index = stream;
    r.media_type = media;
    r.frame_index = frame;
    r.pts = frame * 512;
    r.time = t;
    r.duration = dur;
    r.box_index = -1;
    r.box_score = NAN;
    r.n_classes = n;
    r.scores = scores;
    return r;
}

/* Open path in dir, write the results, close; returns the file's text (caller frees) or NULL. */
static char *run_writer(const char *dir, const char *name, out_format fmt, const clxp_labelbank *bank,
                        const out_options *o, const clxp_result *rs, int n) {
    char *path = clxp_path_join(dir, name);
    clxp_error err = {0};
    out_writer *w = NULL;
    char *text = NULL;
    if (out_open(path, fmt, bank, o, &w, &err) != CLXP_OK) {
        printf("  out_open: %s\n", err.msg);
        free(path);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (out_write(w, &rs[i], &err) != CLXP_OK) {
            printf("  out_write: %s\n", err.msg);
            out_abort(w);
            free(path);
            return NULL;
        }
    }
    if (out_close(w, &err) == CLXP_OK) text = slurp(path);
    else printf("  out_close: %s\n", err.msg);
    free(path);
    return text;
}

/* ---- format names ------------------------------------------------------------------------------------------- */

TEST(format_names) {
    out_format f = OUT_CSV;
    clxp_error err = {0};
    CHECK(out_format_parse("jsonl", &f, &err) == CLXP_OK && f == OUT_JSONL);
    CHECK(out_format_parse("NDJSON", &f, &err) == CLXP_OK && f == OUT_JSONL);
    CHECK(out_format_parse("csv", &f, &err) == CLXP_OK && f == OUT_CSV);
    CHECK(out_format_parse("srt", &f, &err) == CLXP_OK && f == OUT_SRT);
    CHECK(out_format_parse("vtt", &f, &err) == CLXP_OK && f == OUT_VTT);
    CHECK(out_format_parse("html", &f, &err) == CLXP_OK && f == OUT_HTML);
    CHECK_EQ_INT(out_format_parse("xml", &f, &err), CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "'xml'");
    CHECK(out_format_from_path("a/b.c/out.JSONL", &f, &err) == CLXP_OK && f == OUT_JSONL);
    CHECK(out_format_from_path("x.ndjson", &f, &err) == CLXP_OK && f == OUT_JSONL);
    CHECK(out_format_from_path("x.csv", &f, &err) == CLXP_OK && f == OUT_CSV);
    CHECK(out_format_from_path("x.srt", &f, &err) == CLXP_OK && f == OUT_SRT);
    CHECK(out_format_from_path("x.vtt", &f, &err) == CLXP_OK && f == OUT_VTT);
    CHECK(out_format_from_path("x.htm", &f, &err) == CLXP_OK && f == OUT_HTML);
    CHECK(out_format_from_path("x.html", &f, &err) == CLXP_OK && f == OUT_HTML);
    CHECK_EQ_INT(out_format_from_path("dir.csv/noext", &f, &err), CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "dir.csv/noext");
    CHECK_EQ_INT(out_format_from_path(".csv", &f, &err), CLXP_ERR_INVALID);
    CHECK_STR(out_format_name(OUT_VTT), "vtt");
}

/* ---- aggregation -------------------------------------------------------------------------------------------- */

TEST(aggregate_labels) {
    agg *a = agg_create(g_labels);
    REQUIRE(a);
    /* stream 3: cat wins 3 times (0.9, 0.7, 0.8), dog once (0.6), dog once below the confidence (0.4) */
    const float s[5][3] = {{0.9f, 0.05f, 0.05f},
                           {0.7f, 0.2f, 0.1f},
                           {0.2f, 0.6f, 0.2f},
                           {0.8f, 0.1f, 0.1f},
                           {0.3f, 0.4f, 0.3f}};
    clxp_error err = {0};
    for (int i = 0; i < 5; i++) {
        clxp_result r = mk(3, 'v', i, i, 0, s[i], 3);
        CHECK(agg_add(a, &r, 0, 0.5f, &err) == CLXP_OK);
    }
    const float t[3] = {0.1f, 0.1f, 0.8f};
    clxp_result r = mk(1, 'a', 0, 0, 1, t, 3);
    CHECK(agg_add(a, &r, 0, 0.5f, &err) == CLXP_OK);
    r.n_classes = 2;
    CHECK_EQ_INT(agg_add(a, &r, 0, 0.5f, &err), CLXP_ERR_INVALID);

    REQUIRE(agg_n_streams(a) == 2);
    CHECK_EQ_INT(agg_stream_index(a, 0), 1); /* sorted by stream index */
    CHECK_EQ_INT(agg_stream_media(a, 0), 'a');
    CHECK_EQ_INT(agg_stream_index(a, 1), 3);
    CHECK_EQ_INT(agg_stream_results(a, 1), 5);
    CHECK_EQ_INT(agg_count(a, 1, 0), 3);
    CHECK_NEAR(agg_mean(a, 1, 0), 0.8, 1e-6);
    CHECK_EQ_INT(agg_count(a, 1, 1), 1);
    CHECK_NEAR(agg_sum(a, 1, 1), 0.6, 1e-6);
    CHECK_EQ_INT(agg_count(a, 1, 2), 0);
    CHECK_NEAR(agg_mean(a, 1, 2), 0.0, 0);
    int cls[3];
    REQUIRE(agg_ranked(a, 1, cls) == 2);
    CHECK_EQ_INT(cls[0], 0);
    CHECK_EQ_INT(cls[1], 1);
    agg_free(a);
}

TEST(aggregate_ranking_ties) {
    /* equal counts: by name (bytewise), so "caf\xc3\xa9..." < "cat" < "dog..." */
    agg *a = agg_create(g_labels);
    REQUIRE(a);
    const float s[3][3] = {{0.2f, 0.7f, 0.1f}, {0.6f, 0.2f, 0.2f}, {0.1f, 0.2f, 0.7f}};
    for (int i = 0; i < 3; i++) {
        clxp_result r = mk(0, 'v', i, i, 0, s[i], 3);
        CHECK(agg_add(a, &r, 0, 0, NULL) == CLXP_OK);
    }
    int cls[3];
    REQUIRE(agg_ranked(a, 0, cls) == 3);
    CHECK_EQ_INT(cls[0], 2);
    CHECK_EQ_INT(cls[1], 0);
    CHECK_EQ_INT(cls[2], 1);
    agg_free(a);
}

TEST(aggregate_categories) {
    agg *a = agg_create(g_cats);
    REQUIRE(a);
    /* Day/Night sum to 1, Empty/Busy sum to 1 */
    const float s[3][4] = {{0.9f, 0.1f, 0.3f, 0.7f}, {0.6f, 0.4f, 0.45f, 0.55f}, {0.2f, 0.8f, 0.5f, 0.5f}};
    for (int i = 0; i < 3; i++) {
        clxp_result r = mk(0, 'v', i, i, 0, s[i], 4);
        CHECK(agg_add(a, &r, 0, 0.6f, NULL) == CLXP_OK);
    }
    /* Day: 0.9, 0.6 (>= 0.6) -> 2, mean 0.75; Night: 0.8 -> 1; Busy: 0.7 (0.55 < 0.6) -> 1;
     * Empty wins the 0.5/0.5 tie (lower index) but 0.5 < 0.6 */
    CHECK_EQ_INT(agg_count(a, 0, 0), 2);
    CHECK_NEAR(agg_mean(a, 0, 0), 0.75, 1e-6);
    CHECK_EQ_INT(agg_count(a, 0, 1), 1);
    CHECK_EQ_INT(agg_count(a, 0, 2), 0);
    CHECK_EQ_INT(agg_count(a, 0, 3), 1);
    int cls[4];
    REQUIRE(agg_ranked(a, 0, cls) == 3);
    CHECK_EQ_INT(cls[0], 0); /* Day (2) */
    CHECK_EQ_INT(cls[1], 3); /* Busy before Night: names */
    CHECK_EQ_INT(cls[2], 1);
    agg_units u;
    REQUIRE(agg_units_init(&u, g_cats) == CLXP_OK);
    CHECK_EQ_INT(agg_units_n_winners(&u), 2);
    int win[2];
    CHECK_EQ_INT(agg_units_winners(&u, s[2], win), 2);
    CHECK_EQ_INT(win[0], 1);
    CHECK_EQ_INT(win[1], 2);
    agg_units_free(&u);
    agg_free(a);
}

/* ---- jsonl -------------------------------------------------------------------------------------------------- */

TEST(jsonl_labels) {
    char *dir = make_dir();
    REQUIRE(dir);
    const float s0[3] = {0.7f, 0.2f, 0.1f}, s1[3] = {0.05f, 0.15f, 0.8f}, s2[3] = {1.0f / 3, 1.0f / 3, 1.0f / 3};
    clxp_result rs[4] = {mk(0, 'v', 0, 0, 0.04, s0, 3), mk(0, 'v', 12, 0.48, 0.04, s1, 3),
                         mk(1, 'a', 2, 2.0, 1.0, s2, 3), mk(0, 'v', 13, 1.0 / 3.0, 0, s0, 3)};
    rs[1].pts = INT64_MIN;
    rs[3].box_index = 1;
    rs[3].box_x = 10.5f;
    rs[3].box_y = 20;
    rs[3].box_w = 100;
    rs[3].box_h = 80.25f;
    rs[3].box_label = "per\"son";
    rs[3].box_score = 0.875f;
    rs[3].input = NULL; /* falls back to the options' input */
    rs[3].pts = (int64_t)1 << 60;
    out_options o = {.top_k = 2, .confidence = 0.1f, .input = "opt.mp4"};
    char *text = run_writer(dir, "out.jsonl", OUT_JSONL, g_labels, &o, rs, 4);
    REQUIRE(text);
    const char *expect =
        "{\"input\":\"in.mp4\",\"stream\":0,\"media\":\"video\",\"frame\":0,\"pts\":0,\"time\":0,\"duration\":0.04,"
        "\"labels\":[{\"label\":\"cat\",\"p\":0.7},{\"label\":\"dog \\\"big\\\", brown\",\"p\":0.2}]}\n"
        "{\"input\":\"in.mp4\",\"stream\":0,\"media\":\"video\",\"frame\":12,\"pts\":null,\"time\":0.48,"
        "\"duration\":0.04,\"labels\":[{\"label\":\"caf\xc3\xa9 <b>&\",\"p\":0.8},{\"label\":\"dog \\\"big\\\", "
        "brown\",\"p\":0.15}]}\n"
        "{\"input\":\"in.mp4\",\"stream\":1,\"media\":\"audio\",\"frame\":2,\"pts\":1024,\"time\":2,\"duration\":1,"
        "\"end\":3,\"labels\":[{\"label\":\"cat\",\"p\":0.333333},{\"label\":\"dog \\\"big\\\", brown\","
        "\"p\":0.333333}]}\n"
        "{\"input\":\"opt.mp4\",\"stream\":0,\"media\":\"video\",\"frame\":13,\"pts\":1152921504606846976,"
        "\"time\":0.333333,\"duration\":0,\"box\":{\"index\":1,\"x\":10.5,\"y\":20,\"w\":100,\"h\":80.25,"
        "\"label\":\"per\\\"son\",\"score\":0.875},\"labels\":[{\"label\":\"cat\",\"p\":0.7},{\"label\":\"dog "
        "\\\"big\\\", brown\",\"p\":0.2}]}\n";
    CHECK_STR(text, expect);
    free(text);
    /* top_k 0 = all, confidence filters; no input anywhere: no "input" key */
    rs[0].input = NULL;
    out_options all = {.top_k = 0, .confidence = 0.15f};
    text = run_writer(dir, "all.jsonl", OUT_JSONL, g_labels, &all, rs, 1);
    REQUIRE(text);
    CHECK_STR(text, "{\"stream\":0,\"media\":\"video\",\"frame\":0,\"pts\":0,\"time\":0,\"duration\":0.04,\"labels\":"
                    "[{\"label\":\"cat\",\"p\":0.7},{\"label\":\"dog \\\"big\\\", brown\",\"p\":0.2}]}\n");
    free(text);
    CHECK_EQ_INT(count_entries(dir), 2);
    remove_dir(dir);
}

TEST(jsonl_categories) {
    char *dir = make_dir();
    REQUIRE(dir);
    const float s0[4] = {0.2f, 0.8f, 0.55f, 0.45f};
    clxp_result r = mk(0, 'v', 5, 0.2, 0.04, s0, 4);
    /* every unit is reported, whatever top_k and confidence say */
    out_options o = {.top_k = 1, .confidence = 0.9f};
    char *text = run_writer(dir, "c.jsonl", OUT_JSONL, g_cats, &o, &r, 1);
    REQUIRE(text);
    CHECK_STR(text, "{\"input\":\"in.mp4\",\"stream\":0,\"media\":\"video\",\"frame\":5,\"pts\":2560,\"time\":0.2,"
                    "\"duration\":0.04,\"units\":[{\"unit\":\"Scene\",\"category\":\"Night\",\"score\":0.8},"
                    "{\"unit\":\"Crowd\",\"category\":\"Empty\",\"score\":0.55}]}\n");
    free(text);
    remove_dir(dir);
}

/* JSONL is flushed per record: the temporary file holds the lines while the run goes on. */
TEST(jsonl_flushed_per_record) {
    char *dir = make_dir();
    REQUIRE(dir);
    char *path = clxp_path_join(dir, "live.jsonl");
    out_writer *w = NULL;
    clxp_error err = {0};
    REQUIRE(out_open(path, OUT_JSONL, g_labels, NULL, &w, &err) == CLXP_OK);
    const float s0[3] = {0.5f, 0.25f, 0.25f};
    clxp_result r = mk(0, 'v', 0, 0, 0, s0, 3);
    CHECK(out_write(w, &r, &err) == CLXP_OK);
    const char *part = out_partial_path(w);
    REQUIRE(part);
    CHECK(strncmp(part, path, strlen(path)) == 0);
    CHECK(strlen(part) == strlen(path) + strlen(".XXXXXX.part"));
    CHECK(strcmp(part + strlen(part) - 5, ".part") == 0);
    char *text = slurp(part);
    CHECK(text && count_substr(text, "\n") == 1);
    free(text);
    CHECK(!clxp_is_file(path)); /* not there before out_close */
    CHECK(out_close(w, &err) == CLXP_OK);
    CHECK(clxp_is_file(path));
    CHECK_EQ_INT(count_entries(dir), 1);
    free(path);
    remove_dir(dir);
}

/* ---- csv ---------------------------------------------------------------------------------------------------- */

TEST(csv_labels) {
    char *dir = make_dir();
    REQUIRE(dir);
    /* video stream 0: cat wins 3x (0.9, 0.7, 0.8) -> 0.8000 / 3; the quoted label wins once with 0.6; one
     * result below the confidence; audio stream 1: café wins twice (0.55, 0.65) -> 0.6000 / 2 */
    const float s[7][3] = {{0.9f, 0.05f, 0.05f}, {0.7f, 0.2f, 0.1f},  {0.2f, 0.6f, 0.2f},   {0.8f, 0.1f, 0.1f},
                           {0.3f, 0.4f, 0.3f},   {0.2f, 0.25f, 0.55f}, {0.15f, 0.2f, 0.65f}};
    clxp_result rs[7];
    for (int i = 0; i < 5; i++) rs[i] = mk(0, 'v', i, i * 0.04, 0.04, s[i], 3);
    rs[5] = mk(1, 'a', 0, 0, 1, s[5], 3);
    rs[6] = mk(1, 'a', 1, 1, 1, s[6], 3);
    /* interleave the streams in time order as the pipeline does */
    clxp_result order[7] = {rs[0], rs[5], rs[1], rs[2], rs[3], rs[6], rs[4]};
    out_options o = {.confidence = 0.5f};
    char *text = run_writer(dir, "avg.csv", OUT_CSV, g_labels, &o, order, 7);
    REQUIRE(text);
    CHECK_STR(text, "stream_id,label,avg_probability,count\n"
                    "0,cat,0.8000,3\n"
                    "0,\"dog \"\"big\"\", brown\",0.6000,1\n"
                    "1,caf\xc3\xa9 <b>&,0.6000,2\n");
    free(text);
    /* no results: the header alone */
    text = run_writer(dir, "empty.csv", OUT_CSV, g_labels, &o, NULL, 0);
    CHECK_STR(text, "stream_id,label,avg_probability,count\n");
    free(text);
    CHECK_EQ_INT(count_entries(dir), 2);
    remove_dir(dir);
}

TEST(csv_categories) {
    char *dir = make_dir();
    REQUIRE(dir);
    const float s[4][4] = {
        {0.9f, 0.1f, 0.3f, 0.7f}, {0.6f, 0.4f, 0.45f, 0.55f}, {0.2f, 0.8f, 0.5f, 0.5f}, {0.7f, 0.3f, 0.1f, 0.9f}};
    clxp_result rs[4];
    for (int i = 0; i < 4; i++) rs[i] = mk(0, 'v', i, i, 0, s[i], 4);
    out_options o = {.confidence = 0.6f};
    char *text = run_writer(dir, "cats.csv", OUT_CSV, g_cats, &o, rs, 4);
    REQUIRE(text);
    /* Day 0.9, 0.6, 0.7 -> 0.7333 x3; Busy 0.7, 0.9 -> 0.8000 x2 (0.55 < 0.6); Night 0.8 x1; Empty never */
    CHECK_STR(text, "stream_id,label,avg_probability,count\n"
                    "0,Day,0.7333,3\n"
                    "0,Busy,0.8000,2\n"
                    "0,Night,0.8000,1\n");
    free(text);
    remove_dir(dir);
}

/* ---- subtitles ---------------------------------------------------------------------------------------------- */

/* Several inputs (out_options.per_input): stream 0 of two files and two still images never merge. */
TEST(per_input) {
    char *dir = make_dir();
    REQUIRE(dir);
    const float cat[3] = {0.9f, 0.05f, 0.05f}, cat2[3] = {0.7f, 0.2f, 0.1f}, dog[3] = {0.2f, 0.6f, 0.2f},
                cafe[3] = {0.1f, 0.1f, 0.8f};
    clxp_result rs[8] = {mk(0, 'v', 0, 0, 1, cat, 3),  mk(0, 'v', 1, 1, 1, cat2, 3), mk(1, 'a', 0, 0, 1, cafe, 3),
                         mk(0, 'v', 0, 0, 1, dog, 3),  mk(0, 'v', 1, 1, 1, dog, 3),  mk(0, 'v', 2, 2, 1, cat, 3),
                         mk(0, 'v', 0, 0, 0, cafe, 3), mk(0, 'v', 0, 0, 0, cat, 3)};
    const char *names[8] = {"a.mp4", "a.mp4", "a.mp4", "b,c.mp4", "b,c.mp4", "b,c.mp4", "x.jpg", "y.jpg"};
    for (int i = 0; i < 8; i++) rs[i].input = names[i];
    out_options o = {.confidence = 0.5f, .per_input = 1};
    char *text = run_writer(dir, "multi.csv", OUT_CSV, g_labels, &o, rs, 8);
    REQUIRE(text);
    CHECK_STR(text, "input,stream_id,label,avg_probability,count\n"
                    "a.mp4,0,cat,0.8000,2\n"
                    "a.mp4,1,caf\xc3\xa9 <b>&,0.8000,1\n"
                    "\"b,c.mp4\",0,\"dog \"\"big\"\", brown\",0.6000,2\n"
                    "\"b,c.mp4\",0,cat,0.9000,1\n"
                    "x.jpg,0,caf\xc3\xa9 <b>&,0.8000,1\n"
                    "y.jpg,0,cat,0.9000,1\n");
    free(text);
    /* without per_input the stream index alone is the key (the avgclass header, stream 0 merged) */
    out_options merged = {.confidence = 0.5f};
    text = run_writer(dir, "merged.csv", OUT_CSV, g_labels, &merged, rs, 8);
    REQUIRE(text);
    CHECK_STR(text, "stream_id,label,avg_probability,count\n"
                    "0,cat,0.8500,4\n"
                    "0,\"dog \"\"big\"\", brown\",0.6000,2\n"
                    "0,caf\xc3\xa9 <b>&,0.8000,1\n"
                    "1,caf\xc3\xa9 <b>&,0.8000,1\n");
    free(text);
    /* subtitles follow the first input's stream only */
    text = run_writer(dir, "multi.srt", OUT_SRT, g_labels, &o, rs, 8);
    REQUIRE(text);
    CHECK_STR(text, "1\n00:00:00,000 --> 00:00:02,000\ncat (80%)\n\n");
    free(text);
    /* html: a chart per input and stream with more than one result (in input order); the streams with one
     * result (the audio window, the still images) are counted, and every result has its row */
    text = run_writer(dir, "multi.html", OUT_HTML, g_labels, &o, rs, 8);
    REQUIRE(text);
    CHECK_EQ_INT(count_substr(text, "<svg"), 2);
    CHECK_CONTAINS(text, "<h2>a.mp4: stream 0 (video): 2 frames</h2>");
    CHECK_CONTAINS(text, "<h2>b,c.mp4: stream 0 (video): 3 frames</h2>");
    CHECK(!strstr(text, "a.mp4: stream 1") && !strstr(text, "x.jpg: stream"));
    CHECK_CONTAINS(text, "3 streams with a single result are not charted (their results are in the table).");
    CHECK(strstr(text, "<h2>a.mp4: stream 0") < strstr(text, "<h2>b,c.mp4: stream 0"));
    CHECK_EQ_INT(count_substr(text, "<tr><td>"), 8);
    CHECK_CONTAINS(text, "<td class=\"n\">y.jpg<br>stream 0, frame 0</td>");
    free(text);
    CHECK_EQ_INT(count_entries(dir), 4);
    remove_dir(dir);
}

TEST(srt_runs_and_times) {
    char *dir = make_dir();
    REQUIRE(dir);
    const float A1[3] = {0.9f, 0.05f, 0.05f}, A2[3] = {0.7f, 0.2f, 0.1f}, B[3] = {0.2f, 0.75f, 0.05f},
                Blow[3] = {0.3f, 0.4f, 0.3f}, C[3] = {0.1f, 0.1f, 0.8f};
    clxp_result rs[9] = {
        mk(0, 'v', 0, 3661.5, 0.5, A1, 3), mk(1, 'a', 0, 3661.5, 1.0, C, 3), /* other stream: ignored */
        mk(0, 'v', 0, 3661.6, 0.5, C, 3),                                     /* a box: ignored */
        mk(0, 'v', 1, 3662.0, 0.5, A2, 3), mk(0, 'v', 2, 3662.5, 0.5, B, 3),
        mk(0, 'v', 3, 3663.0, 0.5, Blow, 3), /* same top label as B, so the same cue */
        mk(0, 'v', 4, 3663.5, 0.5, Blow, 3), /* mean (0.75 + 0.4 + 0.4) / 3 = 0.5167 -> 52% */
        mk(0, 'v', 5, 3664.0, 0.5, C, 3), mk(0, 'v', 6, 3664.5, 0.5, A2, 3)};
    rs[2].box_index = 0;
    out_options o = {.confidence = 0.5f};
    char *text = run_writer(dir, "out.srt", OUT_SRT, g_labels, &o, rs, 9);
    REQUIRE(text);
    CHECK_STR(text, "1\n01:01:01,500 --> 01:01:02,500\ncat (80%)\n\n"
                    "2\n01:01:02,500 --> 01:01:04,000\ndog \"big\", brown (52%)\n\n"
                    "3\n01:01:04,000 --> 01:01:04,500\ncaf\xc3\xa9 <b>& (80%)\n\n"
                    "4\n01:01:04,500 --> 01:01:05,000\ncat (70%)\n\n");
    free(text);
    /* a run whose mean is below the confidence gets no cue, and the numbering has no gap */
    const float D[3] = {0.45f, 0.35f, 0.2f};
    clxp_result rs2[3] = {mk(0, 'v', 0, 0, 0, D, 3), mk(0, 'v', 1, 2, 0, C, 3), mk(0, 'v', 2, 4, 0, C, 3)};
    text = run_writer(dir, "low.srt", OUT_SRT, g_labels, &o, rs2, 3);
    REQUIRE(text);
    /* durations unknown: the last cue ends one median spacing (2 s) after the last result */
    CHECK_STR(text, "1\n00:00:02,000 --> 00:00:06,000\ncaf\xc3\xa9 <b>& (80%)\n\n");
    free(text);
    CHECK_EQ_INT(count_entries(dir), 2);
    remove_dir(dir);
}

TEST(vtt_categories_and_escaping) {
    char *dir = make_dir();
    REQUIRE(dir);
    const float d1[4] = {0.9f, 0.1f, 0.3f, 0.7f}, d2[4] = {0.8f, 0.2f, 0.4f, 0.6f}, n1[4] = {0.3f, 0.7f, 0.4f, 0.6f};
    clxp_result rs[3] = {mk(2, 'v', 0, 0, 0, d1, 4), mk(2, 'v', 1, 1.25, 0, d2, 4), mk(2, 'v', 2, 2.5, 0, n1, 4)};
    out_options o = {.confidence = 0.65f};
    char *text = run_writer(dir, "out.vtt", OUT_VTT, g_cats, &o, rs, 3);
    REQUIRE(text);
    /* run 1: Day 85%, Busy 65%; run 2 (single result, no duration, median spacing 1.25 s): Night 70%, Busy 0.6
     * below the confidence: its line is left out */
    CHECK_STR(text, "WEBVTT\n\n"
                    "00:00:00.000 --> 00:00:02.500\nScene: Day (85%)\nCrowd: Busy (65%)\n\n"
                    "00:00:02.500 --> 00:00:03.750\nScene: Night (70%)\n\n");
    free(text);
    /* labels bank: & < > escaped in cue text; a single result without duration or spacing lasts 1 s */
    const float C[3] = {0.1f, 0.1f, 0.8f};
    clxp_result r = mk(0, 'v', 0, 59.9996, 0, C, 3);
    text = run_writer(dir, "esc.vtt", OUT_VTT, g_labels, NULL, &r, 1);
    REQUIRE(text);
    CHECK_STR(text, "WEBVTT\n\n00:01:00.000 --> 00:01:01.000\ncaf\xc3\xa9 &lt;b&gt;&amp; (80%)\n\n");
    free(text);
    /* nothing to show: the header alone */
    text = run_writer(dir, "none.vtt", OUT_VTT, g_labels, NULL, NULL, 0);
    CHECK_STR(text, "WEBVTT\n\n");
    free(text);
    remove_dir(dir);
}

/* ---- html --------------------------------------------------------------------------------------------------- */

/* The first thumbnail of an html page decoded back to pixels: its size and the colour of pixel (0,0). */
static int decode_first_thumbnail(const char *html, int *w, int *h, uint8_t rgb[3]) {
    const char *p = strstr(html, "data:image/png;base64,");
    if (!p) return 0;
    p += strlen("data:image/png;base64,");
    const char *q = strchr(p, '"');
    if (!q) return 0;
    char *b64 = strndup(p, (size_t)(q - p));
    int cap = (int)(q - p);
    uint8_t *png = av_malloc((size_t)cap + AV_INPUT_BUFFER_PADDING_SIZE);
    int n = b64 && png ? av_base64_decode(png, b64, cap) : -1;
    free(b64);
    int ok = 0;
    const AVCodec *codec = avcodec_find_decoder(AV_CODEC_ID_PNG);
    AVCodecContext *ctx = codec ? avcodec_alloc_context3(codec) : NULL;
    AVPacket *pkt = av_packet_alloc();
    AVFrame *fr = av_frame_alloc();
    if (n > 8 && ctx && pkt && fr && avcodec_open2(ctx, codec, NULL) == 0) {
        memset(png + n, 0, AV_INPUT_BUFFER_PADDING_SIZE);
        pkt->data = png;
        pkt->size = n;
        if (avcodec_send_packet(ctx, pkt) == 0 && avcodec_receive_frame(ctx, fr) == 0 &&
            fr->format == AV_PIX_FMT_RGB24) {
            *w = fr->width;
            *h = fr->height;
            memcpy(rgb, fr->data[0], 3);
            ok = 1;
        }
    }
    av_frame_free(&fr);
    av_packet_free(&pkt);
    avcodec_free_context(&ctx);
    av_free(png);
    return ok;
}

TEST(html_page) {
    char *dir = make_dir();
    REQUIRE(dir);
    enum { W = 320, H = 180 };
    uint8_t *rgb = malloc((size_t)W * H * 3);
    REQUIRE(rgb);
    for (int i = 0; i < W * H; i++) {
        rgb[3 * i] = 200;
        rgb[3 * i + 1] = 100;
        rgb[3 * i + 2] = 50;
    }
    const float s0[3] = {0.7f, 0.2f, 0.1f}, s1[3] = {0.1f, 0.2f, 0.7f};
    clxp_result rs[3] = {mk(0, 'v', 0, 0, 0.04, s0, 3), mk(0, 'v', 1, 1, 0.04, s1, 3), mk(1, 'a', 0, 0, 1, s1, 3)};
    rs[0].rgb = rgb;
    rs[0].width = W;
    rs[0].height = H;
    out_options o = {.top_k = 2, .input = "in<put>&\"x\".mp4", .model = "models/clip"};
    char *text = run_writer(dir, "r.html", OUT_HTML, g_labels, &o, rs, 3);
    free(rgb);
    REQUIRE(text);
    CHECK(strncmp(text, "<!DOCTYPE html>", 15) == 0);
    CHECK_CONTAINS(text, "<title>clxp: in&lt;put&gt;&amp;&quot;x&quot;.mp4</title>");
    CHECK_CONTAINS(text, "<dt>Model</dt><dd>models/clip</dd>");
    CHECK_CONTAINS(text, "<svg");
    CHECK_EQ_INT(count_substr(text, "<svg"), 2); /* one chart per stream */
    CHECK_EQ_INT(count_substr(text, "<polyline"), 3);
    CHECK_CONTAINS(text, "<h2>Stream 1 (audio): 1 windows</h2>");
    CHECK_CONTAINS(text, "<img width=\"160\" height=\"90\" alt=\"frame 0\" src=\"data:image/png;base64,iVBORw0KGgo");
    CHECK_EQ_INT(count_substr(text, "data:image/png"), 1);
    CHECK_CONTAINS(text, "caf\xc3\xa9 &lt;b&gt;&amp;");
    CHECK_CONTAINS(text, "dog &quot;big&quot;, brown");
    CHECK(!strstr(text, "<b>"));
    /* self-contained: no external resource */
    CHECK(!strstr(text, "src=\"http") && !strstr(text, "href=") && !strstr(text, "<script") && !strstr(text, "<link"));
    CHECK_EQ_INT(count_substr(text, "<tr><td>"), 3);
    CHECK_CONTAINS(text, "<td class=\"n\">in.mp4<br>stream 0, frame 0</td>"); /* not the page's input */
    CHECK_CONTAINS(text, "00:00:01.000");
    size_t len = strlen(text);
    CHECK(len > 8 && strcmp(text + len - 8, "</html>\n") == 0);
    int tw = 0, th = 0;
    uint8_t px[3] = {0, 0, 0};
    CHECK(decode_first_thumbnail(text, &tw, &th, px));
    CHECK_EQ_INT(tw, 160);
    CHECK_EQ_INT(th, 90);
    CHECK(px[0] == 200 && px[1] == 100 && px[2] == 50);
    free(text);
    remove_dir(dir);
}

TEST(html_categories) {
    char *dir = make_dir();
    REQUIRE(dir);
    const float s0[4] = {0.2f, 0.8f, 0.55f, 0.45f};
    clxp_result r = mk(0, 'v', 0, 0, 0, s0, 4);
    char *text = run_writer(dir, "c.html", OUT_HTML, g_cats, NULL, &r, 1);
    REQUIRE(text);
    CHECK_CONTAINS(text, "<span class=\"p\">80.0%</span>Scene: Night<br><span class=\"p\">55.0%</span>Crowd: Empty");
    CHECK_CONTAINS(text, "<title>clxp: clxp results</title>");
    CHECK_CONTAINS(text, "<circle"); /* a single point */
    free(text);
    remove_dir(dir);
}

/* Long runs: rows thin out (stride doubling), chart points are halved (means of pairs). */
TEST(html_bounded) {
    char *dir = make_dir();
    REQUIRE(dir);
    char *path = clxp_path_join(dir, "long.html");
    out_writer *w = NULL;
    clxp_error err = {0};
    REQUIRE(out_open(path, OUT_HTML, g_labels, NULL, &w, &err) == CLXP_OK);
    const float s0[3] = {0.5f, 0.3f, 0.2f};
    for (int i = 0; i < 10000; i++) {
        clxp_result r = mk(0, 'v', i, i * 0.04, 0.04, s0, 3);
        if (out_write(w, &r, &err) != CLXP_OK) break;
    }
    CHECK(out_close(w, &err) == CLXP_OK);
    char *text = slurp(path);
    REQUIRE(text);
    /* rows: results 0..199, then every 2nd from 201 (50 rows, to 299), every 4th from 303 (to 499), every 8th
     * from 507 (to 899), every 16th from 915 (to 1699), 32nd from 1731 (to 3299), 64th from 3363 (to 6499),
     * 128th from 6627 (to 9999 - ...): 200 + 6 * 50 + 27 */
    CHECK_EQ_INT(count_substr(text, "<tr><td>"), 527);
    CHECK_CONTAINS(text, "527 of 10000 results are listed");
    /* chart: 4096 points at stride 1, halved to 2048 (stride 2) at result 4097, again at 8193 (stride 4): 2048 +
     * (10000 - 8192) / 4 = 2500 points per line */
    CHECK_CONTAINS(text, "Each point is the mean of 4 consecutive results.");
    const char *pl = strstr(text, "points=\"");
    REQUIRE(pl);
    const char *end = strchr(pl + 8, '"');
    REQUIRE(end);
    int points = 1;
    for (const char *p = pl + 8; p < end; p++) points += *p == ' ';
    CHECK_EQ_INT(points, 2500);
    free(text);
    free(path);
    CHECK_EQ_INT(count_entries(dir), 1);
    remove_dir(dir);
}

/* ---- integrity -------------------------------------------------------------------------------------------- */

TEST(existing_file_needs_overwrite) {
    char *dir = make_dir();
    REQUIRE(dir);
    char *path = clxp_path_join(dir, "out.csv");
    REQUIRE(write_text(path, "old\n"));
    out_writer *w = NULL;
    clxp_error err = {0};
    out_options o = {0};
    CHECK_EQ_INT(out_open(path, OUT_CSV, g_labels, &o, &w, &err), CLXP_ERR_IO);
    CHECK(w == NULL);
    CHECK_CONTAINS(err.msg, path);
    CHECK_CONTAINS(err.msg, "already exists (use -y to overwrite)");
    CHECK(!strchr(err.msg, '\n'));
    char *text = slurp(path);
    CHECK_STR(text, "old\n");
    free(text);
    CHECK_EQ_INT(count_entries(dir), 1);

    /* with overwrite: the old file stays until out_close replaces it, keeping its permission bits */
    REQUIRE(chmod(path, 0640) == 0);
    o.overwrite = 1;
    REQUIRE(out_open(path, OUT_CSV, g_labels, &o, &w, &err) == CLXP_OK);
    const float s0[3] = {0.5f, 0.3f, 0.2f};
    clxp_result r = mk(0, 'v', 0, 0, 0, s0, 3);
    CHECK(out_write(w, &r, &err) == CLXP_OK);
    text = slurp(path);
    CHECK_STR(text, "old\n");
    free(text);
    CHECK_EQ_INT(count_entries(dir), 2); /* the file and the .part */
    CHECK(out_close(w, &err) == CLXP_OK);
    text = slurp(path);
    CHECK_STR(text, "stream_id,label,avg_probability,count\n0,cat,0.5000,1\n");
    free(text);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640);
    CHECK_EQ_INT(count_entries(dir), 1);
    free(path);
    remove_dir(dir);
}

TEST(abort_leaves_nothing) {
    char *dir = make_dir();
    REQUIRE(dir);
    char *path = clxp_path_join(dir, "out.jsonl");
    REQUIRE(write_text(path, "precious\n"));
    out_options o = {.overwrite = 1};
    out_writer *w = NULL;
    clxp_error err = {0};
    const float s0[3] = {0.5f, 0.3f, 0.2f};
    clxp_result r = mk(0, 'v', 0, 0, 0, s0, 3);
    for (out_format f = OUT_JSONL; f <= OUT_HTML; f++) {
        REQUIRE(out_open(path, f, g_labels, &o, &w, &err) == CLXP_OK);
        CHECK(out_write(w, &r, &err) == CLXP_OK);
        out_abort(w);
        char *text = slurp(path);
        CHECK_STR(text, "precious\n");
        free(text);
        CHECK_EQ_INT(count_entries(dir), 1);
    }
    out_abort(NULL);
    /* a new path: nothing at all */
    char *fresh = clxp_path_join(dir, "new.srt");
    REQUIRE(out_open(fresh, OUT_SRT, g_labels, NULL, &w, &err) == CLXP_OK);
    CHECK(out_write(w, &r, &err) == CLXP_OK);
    out_abort(w);
    CHECK(!clxp_is_file(fresh));
    CHECK_EQ_INT(count_entries(dir), 1);

    /* a failed write is sticky: out_close fails with that error and removes the temporary file */
    REQUIRE(out_open(fresh, OUT_JSONL, g_labels, NULL, &w, &err) == CLXP_OK);
    clxp_result bad = r;
    bad.n_classes = 4;
    CHECK_EQ_INT(out_write(w, &bad, &err), CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "4 scores");
    CHECK_EQ_INT(out_write(w, &r, &err), CLXP_ERR_INVALID);
    err.msg[0] = '\0';
    CHECK_EQ_INT(out_close(w, &err), CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "4 scores");
    CHECK(!clxp_is_file(fresh));
    CHECK_EQ_INT(count_entries(dir), 1);
    free(fresh);
    free(path);
    remove_dir(dir);
}

TEST(bad_paths) {
    char *dir = make_dir();
    REQUIRE(dir);
    out_writer *w = NULL;
    clxp_error err = {0};
    out_options o = {.overwrite = 1};

    char *missing = clxp_path_join(dir, "no/such/dir/out.csv");
    CHECK_EQ_INT(out_open(missing, OUT_CSV, g_labels, &o, &w, &err), CLXP_ERR_IO);
    CHECK_CONTAINS(err.msg, missing);
    CHECK_CONTAINS(err.msg, "does not exist");
    CHECK(w == NULL);
    free(missing);

    CHECK_EQ_INT(out_open(dir, OUT_CSV, g_labels, &o, &w, &err), CLXP_ERR_IO);
    CHECK_CONTAINS(err.msg, "is a directory");

    /* the output is the input: refused even with overwrite, also under another name of the same file */
    char *input = clxp_path_join(dir, "in.mp4");
    REQUIRE(write_text(input, "video bytes"));
    o.input = input;
    CHECK_EQ_INT(out_open(input, OUT_JSONL, g_labels, &o, &w, &err), CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, input);
    CHECK_CONTAINS(err.msg, "is the input");
    char *alias = clxp_path_join(dir, "./in.mp4");
    CHECK_EQ_INT(out_open(alias, OUT_JSONL, g_labels, &o, &w, &err), CLXP_ERR_INVALID);
    free(alias);
    char *link = clxp_path_join(dir, "link.mp4");
    REQUIRE(symlink(input, link) == 0);
    CHECK_EQ_INT(out_open(link, OUT_JSONL, g_labels, &o, &w, &err), CLXP_ERR_INVALID);
    CHECK(out_same_file(link, input));
    CHECK(!out_same_file(input, dir));
    CHECK(!out_same_file(input, "/nonexistent/file"));
    char *text = slurp(input);
    CHECK_STR(text, "video bytes");
    free(text);

    /* a symbolic link to another file: the file is replaced, the link stays */
    char *target = clxp_path_join(dir, "target.csv");
    REQUIRE(write_text(target, "old"));
    unlink(link);
    REQUIRE(symlink(target, link) == 0);
    REQUIRE(out_open(link, OUT_CSV, g_labels, &o, &w, &err) == CLXP_OK);
    CHECK(out_close(w, &err) == CLXP_OK);
    struct stat st;
    CHECK(lstat(link, &st) == 0 && S_ISLNK(st.st_mode));
    text = slurp(target);
    CHECK_STR(text, "stream_id,label,avg_probability,count\n");
    free(text);
    CHECK_EQ_INT(count_entries(dir), 3);
    free(target);
    free(link);
    free(input);

    CHECK_EQ_INT(out_open("", OUT_CSV, g_labels, &o, &w, &err), CLXP_ERR_INVALID);
    CHECK_EQ_INT(out_open("x.csv", (out_format)42, g_labels, &o, &w, &err), CLXP_ERR_INVALID);
    remove_dir(dir);
}

/* A path that is not a regular file (here a FIFO) is written directly, never replaced. */
TEST(fifo_written_directly) {
    char *dir = make_dir();
    REQUIRE(dir);
    char *fifo = clxp_path_join(dir, "pipe.csv");
    REQUIRE(mkfifo(fifo, 0600) == 0);
    int rd = open(fifo, O_RDONLY | O_NONBLOCK);
    REQUIRE(rd >= 0);
    out_writer *w = NULL;
    clxp_error err = {0};
    CHECK(out_open(fifo, OUT_CSV, g_labels, NULL, &w, &err) == CLXP_OK);
    CHECK(out_partial_path(w) == NULL);
    CHECK(out_close(w, &err) == CLXP_OK);
    char buf[128] = {0};
    ssize_t n = read(rd, buf, sizeof buf - 1);
    CHECK(n > 0);
    CHECK_STR(buf, "stream_id,label,avg_probability,count\n");
    close(rd);
    struct stat st;
    CHECK(lstat(fifo, &st) == 0 && S_ISFIFO(st.st_mode));
    CHECK_EQ_INT(count_entries(dir), 1);
    free(fifo);
    remove_dir(dir);
}

int main(void) {
    clxp_error err = {0};
    if (clxp_model_load(test_data("clip-tiny-quickgelu"), &g_fp32, &g_model, &err) != CLXP_OK ||
        clxp_labelbank_create(g_model, label_names, 3, NULL, 0, &g_labels, &err) != CLXP_OK) {
        printf("setup: %s\n", err.msg);
        clxp_model_free(g_model);
        return 1;
    }
    char *dir = make_dir();
    char *cats = dir ? clxp_path_join(dir, "cats.txt") : NULL;
    if (!cats || !write_text(cats, "[Scene]\n(Day)\nsun\n(Night)\nmoon\n[Crowd]\n(Empty)\nnobody\n(Busy)\npeople\n") ||
        clxp_labelbank_load_file(g_model, cats, NULL, 0, &g_cats, &err) != CLXP_OK) {
        printf("setup: cannot make the categories bank: %s\n", err.msg);
        return 1;
    }
    free(cats);
    remove_dir(dir);

    RUN(format_names);
    RUN(aggregate_labels);
    RUN(aggregate_ranking_ties);
    RUN(aggregate_categories);
    RUN(jsonl_labels);
    RUN(jsonl_categories);
    RUN(jsonl_flushed_per_record);
    RUN(csv_labels);
    RUN(csv_categories);
    RUN(per_input);
    RUN(srt_runs_and_times);
    RUN(vtt_categories_and_escaping);
    RUN(html_page);
    RUN(html_categories);
    RUN(html_bounded);
    RUN(existing_file_needs_overwrite);
    RUN(abort_leaves_nothing);
    RUN(bad_paths);
    RUN(fifo_written_directly);

    clxp_labelbank_free(g_cats);
    clxp_labelbank_free(g_labels);
    clxp_model_free(g_model);
    return test_summary();
}
