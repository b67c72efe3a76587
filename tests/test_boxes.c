/* Detections files (--boxes): parsing, lookup by frame and time, crop geometry, --target matching, errors, limits. */
#include <unistd.h>

#include "io/boxes.h"
#include "test.h"

static clxp_status parse(const char *s, box_set *b, clxp_error *err) {
    return boxes_parse(s, strlen(s), "mem.jsonl", b, err);
}

TEST(both_forms) {
    box_set s;
    clxp_error err = {0};
    const char *txt =
        "{\"frame\": 12, \"boxes\": [{\"x\": 10, \"y\": 20, \"w\": 100, \"h\": 50, \"label\": \"person\", "
        "\"score\": 0.91}, {\"x\": -5.5, \"y\": 0, \"w\": 3, \"h\": 4}]}\n"
        "{\"time\": 3.5, \"boxes\": [{\"x1\": 0.1, \"y1\": 0.2, \"x2\": 0.5, \"y2\": 0.9, \"label\": \"car\"}], "
        "\"normalized\": true}\n"
        "{\"frame\": 13, \"boxes\": []}\n";
    REQUIRE(parse(txt, &s, &err) == CLXP_OK);
    CHECK_EQ_INT(s.n_frames, 3);
    CHECK_EQ_INT(s.n_boxes, 3);
    CHECK_STR(s.path, "mem.jsonl");
    /* sorted: frame 12, frame 13, then time 3.5 */
    CHECK(!s.frames[0].by_time && s.frames[0].frame == 12 && s.frames[0].line == 1);
    CHECK(!s.frames[1].by_time && s.frames[1].frame == 13 && s.frames[1].count == 0 && s.frames[1].line == 3);
    CHECK(s.frames[2].by_time && s.frames[2].time == 3.5 && s.frames[2].line == 2);
    CHECK_EQ_INT(s.frames[0].first, 0);
    CHECK_EQ_INT(s.frames[0].count, 2);
    CHECK_EQ_INT(s.frames[2].first, 2);
    CHECK_EQ_INT(s.frames[2].count, 1);
    const box *b = &s.boxes[0];
    CHECK(b->x == 10 && b->y == 20 && b->w == 100 && b->h == 50 && !b->normalized);
    CHECK_STR(b->label, "person");
    CHECK_NEAR(b->score, 0.91, 1e-6);
    b = &s.boxes[1];
    CHECK(b->x == -5.5f && b->w == 3 && b->label == NULL && isnan(b->score));
    b = &s.boxes[2];
    CHECK(b->normalized);
    CHECK_NEAR(b->x, 0.1, 1e-7);
    CHECK_NEAR(b->y, 0.2, 1e-7);
    CHECK_NEAR(b->w, 0.4, 1e-7);
    CHECK_NEAR(b->h, 0.7, 1e-7);
    CHECK_STR(b->label, "car");
    boxes_free(&s);
    boxes_free(&s); /* a freed set is zeroed: freeing again is harmless */
    CHECK(s.boxes == NULL && s.n_frames == 0);
}

TEST(normalized_labels_nulls_extra_keys) {
    box_set s;
    clxp_error err = {0};
    const char *txt =
        "\xEF\xBB\xBF{\"frame\": 0, \"normalized\": true, \"boxes\": [{\"x\": 0, \"y\": 0, \"w\": 1, \"h\": 1}, "
        "{\"x\": 1, \"y\": 2, \"w\": 3, \"h\": 4, \"normalized\": false, \"label\": \"person\"}]}\r\n"
        "\r\n   \t\n"
        "{\"frame\": 1, \"boxes\": [{\"x\": 1, \"y\": 2, \"w\": 3, \"h\": 4, \"normalized\": true, \"label\": "
        "\"person\", \"score\": null, \"track_id\": 7, \"extra\": {\"a\": [1, 2]}}], \"time\": null, "
        "\"source\": \"yolo\"}";
    REQUIRE(parse(txt, &s, &err) == CLXP_OK);
    CHECK_EQ_INT(s.n_frames, 2);
    CHECK_EQ_INT(s.n_boxes, 3);
    CHECK(s.boxes[0].normalized);
    CHECK(!s.boxes[1].normalized);
    CHECK(s.boxes[2].normalized);
    CHECK(isnan(s.boxes[2].score));
    /* one copy per distinct label */
    CHECK_EQ_INT(s.n_labels, 1);
    CHECK(s.boxes[1].label == s.boxes[2].label);
    CHECK_EQ_INT(s.frames[1].line, 4);
    boxes_free(&s);

    /* an empty file, or only blank lines: no entries */
    REQUIRE(parse("", &s, &err) == CLXP_OK);
    CHECK_EQ_INT(s.n_frames, 0);
    boxes_free(&s);
    REQUIRE(parse("\n\n  \n", &s, &err) == CLXP_OK);
    CHECK_EQ_INT(s.n_frames, 0);
    boxes_free(&s);

    /* huge but finite coordinates are clamped; they still cover the frame */
    REQUIRE(parse("{\"frame\": 0, \"boxes\": [{\"x\": -1e300, \"y\": -1e300, \"w\": 1e308, \"h\": 1e308}]}", &s,
                  &err) == CLXP_OK);
    int x, y, cw, ch;
    CHECK_EQ_INT(box_crop_rect(&s.boxes[0], 640, 480, &x, &y, &cw, &ch), 0);
    CHECK(x == 0 && y == 0 && cw == 640 && ch == 480);
    boxes_free(&s);
}

TEST(many_labels_interned) {
    /* 5000 distinct labels, each used twice: the hash table grows and finds them all */
    size_t cap = 5000 * 2 * 80 + 64;
    char *buf = malloc(cap), *w = buf;
    for (int i = 0; i < 5000; i++)
        w += sprintf(w, "{\"frame\": %d, \"boxes\": [{\"x\":0,\"y\":0,\"w\":1,\"h\":1,\"label\":\"l%d\"}]}\n", i, i);
    for (int i = 0; i < 5000; i++)
        w += sprintf(w, "{\"frame\": %d, \"boxes\": [{\"x\":0,\"y\":0,\"w\":1,\"h\":1,\"label\":\"l%d\"}]}\n", i, i);
    box_set s;
    clxp_error err = {0};
    REQUIRE(boxes_parse(buf, (size_t)(w - buf), "many.jsonl", &s, &err) == CLXP_OK);
    CHECK_EQ_INT(s.n_labels, 5000);
    CHECK_EQ_INT(s.n_boxes, 10000);
    for (int i = 0; i < 5000; i++) CHECK(s.boxes[i].label == s.boxes[i + 5000].label);
    CHECK_STR(s.boxes[4321].label, "l4321");
    boxes_free(&s);
    free(buf);
}

TEST(lookup) {
    box_set s;
    clxp_error err = {0};
    const char *txt = "{\"frame\": 5, \"boxes\": [{\"x\":0,\"y\":0,\"w\":1,\"h\":1}]}\n"          /* line 1 */
                      "{\"time\": 0.2, \"boxes\": [{\"x\":0,\"y\":0,\"w\":2,\"h\":2}]}\n"        /* line 2 */
                      "{\"frame\": 3, \"boxes\": []}\n"                                          /* line 3 */
                      "{\"frame\": 5, \"boxes\": [{\"x\":0,\"y\":0,\"w\":3,\"h\":3}]}\n"          /* line 4 */
                      "{\"time\": 0.221, \"boxes\": [{\"x\":0,\"y\":0,\"w\":4,\"h\":4}]}\n"       /* line 5 */
                      "{\"time\": 100, \"boxes\": []}\n";                                        /* line 6 */
    REQUIRE(parse(txt, &s, &err) == CLXP_OK);
    const box_frame *out[8];
    /* several lines for frame 5: both, in file order */
    int n = boxes_for_frame(&s, 5, NAN, 0, out, 8);
    REQUIRE(n == 2);
    CHECK_EQ_INT(out[0]->line, 1);
    CHECK_EQ_INT(out[1]->line, 4);
    CHECK(s.boxes[out[1]->first].w == 3);
    CHECK_EQ_INT(boxes_for_frame(&s, 4, NAN, 0, out, 8), 0);
    CHECK_EQ_INT(boxes_for_frame(&s, 6, NAN, 0, out, 8), 0);
    CHECK_EQ_INT(boxes_for_frame(&s, 3, NAN, 0, out, 8), 1);
    /* by time, 25 fps (0.04 s): frame at 0.2 matches [0.18, 0.22): 0.2 only; frame at 0.24 matches 0.221 */
    n = boxes_for_frame(&s, -1, 0.2, 0.04, out, 8);
    REQUIRE(n == 1);
    CHECK_EQ_INT(out[0]->line, 2);
    n = boxes_for_frame(&s, -1, 0.24, 0.04, out, 8);
    REQUIRE(n == 1);
    CHECK_EQ_INT(out[0]->line, 5);
    /* 10 fps: the frame at 0.2 covers [0.15, 0.25): both time lines */
    n = boxes_for_frame(&s, -1, 0.2, 0.1, out, 8);
    REQUIRE(n == 2);
    CHECK_EQ_INT(out[0]->line, 2);
    CHECK_EQ_INT(out[1]->line, 5);
    CHECK_EQ_INT(boxes_for_frame(&s, -1, 0.5, 0.1, out, 8), 0);
    /* unknown duration: 1 ms */
    CHECK_EQ_INT(boxes_for_frame(&s, -1, 0.2005, 0, out, 8), 1);
    CHECK_EQ_INT(boxes_for_frame(&s, -1, 0.202, 0, out, 8), 0);
    CHECK_EQ_INT(boxes_for_frame(&s, -1, 0.202, NAN, out, 8), 0);
    /* by index and time at once; max limits what is stored, not the count */
    n = boxes_for_frame(&s, 5, 0.2, 0.1, out, 3);
    CHECK_EQ_INT(n, 4);
    CHECK(out[0]->line == 1 && out[1]->line == 4 && out[2]->line == 2);
    CHECK_EQ_INT(boxes_for_frame(&s, 5, 0.2, 0.1, NULL, 0), 4);

    /* entries never matched: frames past the end of the video */
    unsigned char *matched = calloc((size_t)s.n_frames, 1);
    for (int64_t f = 0; f < 10; f++) {
        n = boxes_for_frame(&s, f, (double)f / 25, 0.04, out, 8);
        for (int i = 0; i < n && i < 8; i++) matched[out[i] - s.frames] = 1;
    }
    const box_frame *first = NULL;
    /* frame 5 (0.2 s) matched lines 1, 4, 2; frame 3 line 3; frame 6 (0.24 s) line 5; line 6 (100 s) never */
    CHECK_EQ_INT(boxes_unmatched(&s, matched, &first), 1);
    REQUIRE(first != NULL);
    CHECK_EQ_INT(first->line, 6);
    CHECK_EQ_INT(boxes_warn_unmatched(&s, matched), 1);
    memset(matched, 0, (size_t)s.n_frames);
    CHECK_EQ_INT(boxes_unmatched(&s, matched, &first), 6);
    CHECK_EQ_INT(first->line, 1);
    memset(matched, 1, (size_t)s.n_frames);
    CHECK_EQ_INT(boxes_warn_unmatched(&s, matched), 0);
    free(matched);
    boxes_free(&s);
}

TEST(target) {
    box b = {0, 0, 1, 1, 0, "person", NAN};
    CHECK(box_matches_target(&b, "person"));
    CHECK(box_matches_target(&b, "PERSON"));
    CHECK(box_matches_target(&b, "PeRsOn"));
    CHECK(!box_matches_target(&b, "person "));
    CHECK(!box_matches_target(&b, "persons"));
    CHECK(!box_matches_target(&b, "perso"));
    CHECK(!box_matches_target(&b, ""));
    CHECK(box_matches_target(&b, NULL));
    b.label = "Caf\xC3\xA9"; /* Café */
    CHECK(box_matches_target(&b, "CAF\xC3\x89")); /* CAFÉ */
    CHECK(box_matches_target(&b, "caf\xC3\xA9"));
    CHECK(!box_matches_target(&b, "cafe"));
    b.label = "\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3"; /* ΟΔΟΣ matches οδος (final sigma) */
    CHECK(box_matches_target(&b, "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82"));
    b.label = "bad \xC3"; /* not UTF-8: the bytes must be equal */
    CHECK(box_matches_target(&b, "bad \xC3"));
    CHECK(!box_matches_target(&b, "BAD \xC3"));
    b.label = "";
    CHECK(box_matches_target(&b, ""));
    b.label = NULL;
    CHECK(!box_matches_target(&b, "person"));
    CHECK(!box_matches_target(&b, ""));
}

TEST(crop_rect) {
    int x = -1, y = -1, cw = -1, ch = -1;
    box b = {10, 20, 100, 50, 0, NULL, NAN};
    REQUIRE(box_crop_rect(&b, 640, 480, &x, &y, &cw, &ch) == 0);
    CHECK(x == 10 && y == 20 && cw == 100 && ch == 50);
    b = (box){10.5f, 20.25f, 100, 50, 0, NULL, NAN}; /* fractional: floor / ceil */
    REQUIRE(box_crop_rect(&b, 640, 480, &x, &y, &cw, &ch) == 0);
    CHECK(x == 10 && y == 20 && cw == 101 && ch == 51);
    b = (box){-30, -10, 100, 50, 0, NULL, NAN}; /* partly outside: negative corner */
    REQUIRE(box_crop_rect(&b, 640, 480, &x, &y, &cw, &ch) == 0);
    CHECK(x == 0 && y == 0 && cw == 70 && ch == 40);
    b = (box){600, 450, 100, 50, 0, NULL, NAN}; /* partly outside: right/bottom */
    REQUIRE(box_crop_rect(&b, 640, 480, &x, &y, &cw, &ch) == 0);
    CHECK(x == 600 && y == 450 && cw == 40 && ch == 30);
    b = (box){-100, -100, 1000, 1000, 0, NULL, NAN}; /* covers the frame */
    REQUIRE(box_crop_rect(&b, 640, 480, &x, &y, &cw, &ch) == 0);
    CHECK(x == 0 && y == 0 && cw == 640 && ch == 480);
    b = (box){639.5f, 0, 5, 5, 0, NULL, NAN}; /* half a pixel inside: one pixel */
    REQUIRE(box_crop_rect(&b, 640, 480, &x, &y, &cw, &ch) == 0);
    CHECK(x == 639 && cw == 1);
    /* entirely outside */
    b = (box){700, 10, 50, 50, 0, NULL, NAN};
    CHECK_EQ_INT(box_crop_rect(&b, 640, 480, &x, &y, &cw, &ch), -1);
    b = (box){-60, 10, 50, 50, 0, NULL, NAN};
    CHECK_EQ_INT(box_crop_rect(&b, 640, 480, &x, &y, &cw, &ch), -1);
    b = (box){640, 10, 50, 50, 0, NULL, NAN}; /* touching the right edge */
    CHECK_EQ_INT(box_crop_rect(&b, 640, 480, &x, &y, &cw, &ch), -1);
    b = (box){10, -50, 50, 50, 0, NULL, NAN}; /* touching the top edge */
    CHECK_EQ_INT(box_crop_rect(&b, 640, 480, &x, &y, &cw, &ch), -1);
    /* empty, negative, NaN, infinite */
    b = (box){10, 10, 0, 50, 0, NULL, NAN};
    CHECK_EQ_INT(box_crop_rect(&b, 640, 480, &x, &y, &cw, &ch), -1);
    b = (box){10, 10, 50, 0, 0, NULL, NAN};
    CHECK_EQ_INT(box_crop_rect(&b, 640, 480, &x, &y, &cw, &ch), -1);
    b = (box){10, 10, -5, 50, 0, NULL, NAN};
    CHECK_EQ_INT(box_crop_rect(&b, 640, 480, &x, &y, &cw, &ch), -1);
    b = (box){NAN, 10, 5, 50, 0, NULL, NAN};
    CHECK_EQ_INT(box_crop_rect(&b, 640, 480, &x, &y, &cw, &ch), -1);
    b = (box){10, 10, NAN, 50, 0, NULL, NAN};
    CHECK_EQ_INT(box_crop_rect(&b, 640, 480, &x, &y, &cw, &ch), -1);
    b = (box){10, 10, INFINITY, 50, 0, NULL, NAN};
    CHECK_EQ_INT(box_crop_rect(&b, 640, 480, &x, &y, &cw, &ch), -1);
    b = (box){10, 10, 5, 5, 0, NULL, NAN}; /* empty frame */
    CHECK_EQ_INT(box_crop_rect(&b, 0, 480, &x, &y, &cw, &ch), -1);
    CHECK_EQ_INT(box_crop_rect(NULL, 640, 480, &x, &y, &cw, &ch), -1);
    /* normalized */
    b = (box){0.1f, 0.2f, 0.4f, 0.7f, 1, NULL, NAN};
    REQUIRE(box_crop_rect(&b, 1920, 1080, &x, &y, &cw, &ch) == 0);
    CHECK(x == 192 && y == 216 && cw == 768 && ch == 756);
    b = (box){0, 0, 1, 1, 1, NULL, NAN};
    REQUIRE(box_crop_rect(&b, 1920, 1080, &x, &y, &cw, &ch) == 0);
    CHECK(x == 0 && y == 0 && cw == 1920 && ch == 1080);
    b = (box){0.5f, -0.5f, 1, 1, 1, NULL, NAN};
    REQUIRE(box_crop_rect(&b, 100, 100, &x, &y, &cw, &ch) == 0);
    CHECK(x == 50 && y == 0 && cw == 50 && ch == 50);
    b = (box){1.5f, 0, 1, 1, 1, NULL, NAN};
    CHECK_EQ_INT(box_crop_rect(&b, 100, 100, &x, &y, &cw, &ch), -1);
    /* a box from the file, x2 <= x1: kept when parsed, nothing to crop */
    box_set s;
    clxp_error err = {0};
    REQUIRE(parse("{\"frame\": 0, \"boxes\": [{\"x1\": 50, \"y1\": 10, \"x2\": 40, \"y2\": 20}, "
                  "{\"x1\": 5, \"y1\": 5, \"x2\": 5, \"y2\": 9}]}", &s, &err) == CLXP_OK);
    CHECK_EQ_INT(s.n_boxes, 2);
    CHECK_EQ_INT(box_crop_rect(&s.boxes[0], 640, 480, &x, &y, &cw, &ch), -1);
    CHECK_EQ_INT(box_crop_rect(&s.boxes[1], 640, 480, &x, &y, &cw, &ch), -1);
    boxes_free(&s);
}

typedef struct {
    const char *text;
    clxp_status code;
    const char *msg;
} bad_case;

TEST(errors) {
    static const bad_case cases[] = {
        {"{\"frame\": 0, \"boxes\": []}\n{\"frame\": 1, \"boxes\": [}\n", CLXP_ERR_FORMAT,
         "mem.jsonl:2: malformed JSON"},
        {"{\"frame\": 0, \"boxes\": []\n", CLXP_ERR_FORMAT, "mem.jsonl:1: malformed JSON"},
        {"\n\n[{\"frame\": 0, \"boxes\": []}]\n", CLXP_ERR_FORMAT, "mem.jsonl:3: not a JSON object"},
        {"42\n", CLXP_ERR_FORMAT, "mem.jsonl:1: not a JSON object"},
        {"{\"frame\": 0, \"boxes\": []} {\"frame\": 1, \"boxes\": []}\n", CLXP_ERR_FORMAT,
         "mem.jsonl:1: unexpected text after the JSON object"},
        {"{\"frame\": 0, \"boxes\": []}\n{\"boxes\": []}\n", CLXP_ERR_FORMAT,
         "mem.jsonl:2: needs \"frame\" (an index) or \"time\" (seconds)"},
        {"{\"frame\": 0, \"time\": 0, \"boxes\": []}\n", CLXP_ERR_FORMAT,
         "mem.jsonl:1: has both \"frame\" and \"time\""},
        {"{\"frame\": 0, \"frame\": 1, \"boxes\": []}\n", CLXP_ERR_FORMAT, "mem.jsonl:1: duplicate key \"frame\""},
        {"{\"frame\": 0}\n", CLXP_ERR_FORMAT, "mem.jsonl:1: missing \"boxes\""},
        {"{\"frame\": 0, \"boxes\": {}}\n", CLXP_ERR_FORMAT, "mem.jsonl:1: \"boxes\" must be an array"},
        {"{\"frame\": \"0\", \"boxes\": []}\n", CLXP_ERR_FORMAT, "mem.jsonl:1: \"frame\" must be a finite number"},
        {"{\"frame\": -1, \"boxes\": []}\n", CLXP_ERR_FORMAT, "mem.jsonl:1: \"frame\" must be an integer >= 0"},
        {"{\"frame\": 1.5, \"boxes\": []}\n", CLXP_ERR_FORMAT, "mem.jsonl:1: \"frame\" must be an integer >= 0"},
        {"{\"frame\": 1e30, \"boxes\": []}\n", CLXP_ERR_FORMAT, "mem.jsonl:1: \"frame\" must be an integer >= 0"},
        {"{\"frame\": 1e999, \"boxes\": []}\n", CLXP_ERR_FORMAT, "mem.jsonl:1: \"frame\" must be a finite number"},
        {"{\"time\": -0.5, \"boxes\": []}\n", CLXP_ERR_FORMAT, "mem.jsonl:1: \"time\" must be >= 0"},
        {"{\"time\": -1e999, \"boxes\": []}\n", CLXP_ERR_FORMAT, "mem.jsonl:1: \"time\" must be a finite number"},
        {"{\"time\": true, \"boxes\": []}\n", CLXP_ERR_FORMAT, "mem.jsonl:1: \"time\" must be a finite number"},
        {"{\"frame\": 0, \"normalized\": 1, \"boxes\": []}\n", CLXP_ERR_FORMAT,
         "mem.jsonl:1: \"normalized\" must be true or false"},
        {"{\"frame\": 0, \"boxes\": [1]}\n", CLXP_ERR_FORMAT, "mem.jsonl:1: boxes[0] is not an object"},
        {"{\"frame\": 0, \"boxes\": [{\"x\": 1, \"y\": 1, \"w\": 1, \"h\": 1}, {\"x\": 1, \"y\": 1, \"w\": 1}]}\n",
         CLXP_ERR_FORMAT, "mem.jsonl:1: boxes[1]: missing \"h\""},
        {"{\"frame\": 0, \"boxes\": [{\"x1\": 1, \"y1\": 1, \"y2\": 1}]}\n", CLXP_ERR_FORMAT,
         "mem.jsonl:1: boxes[0]: missing \"x2\""},
        {"{\"frame\": 0, \"boxes\": [{\"x\": 1, \"y\": 1, \"x2\": 1, \"y2\": 1}]}\n", CLXP_ERR_FORMAT,
         "mem.jsonl:1: boxes[0] mixes"},
        {"{\"frame\": 0, \"boxes\": [{\"label\": \"car\"}]}\n", CLXP_ERR_FORMAT,
         "mem.jsonl:1: boxes[0] has no coordinates"},
        {"{\"frame\": 0, \"boxes\": [{\"x\": 1, \"y\": \"1\", \"w\": 1, \"h\": 1}]}\n", CLXP_ERR_FORMAT,
         "mem.jsonl:1: boxes[0]: \"y\" must be a finite number"},
        {"{\"frame\": 0, \"boxes\": [{\"x\": 1, \"y\": 1, \"w\": 1e999, \"h\": 1}]}\n", CLXP_ERR_FORMAT,
         "mem.jsonl:1: boxes[0]: \"w\" must be a finite number"},
        {"{\"frame\": 0, \"boxes\": [{\"x\": 1, \"x\": 2, \"y\": 1, \"w\": 1, \"h\": 1}]}\n", CLXP_ERR_FORMAT,
         "mem.jsonl:1: boxes[0]: duplicate key \"x\""},
        {"{\"frame\": 0, \"boxes\": [{\"x\": 1, \"y\": 1, \"w\": 1, \"h\": 1, \"label\": 3}]}\n", CLXP_ERR_FORMAT,
         "mem.jsonl:1: boxes[0]: \"label\" must be a string"},
        {"{\"frame\": 0, \"boxes\": [{\"x\": 1, \"y\": 1, \"w\": 1, \"h\": 1, \"score\": \"high\"}]}\n",
         CLXP_ERR_FORMAT, "mem.jsonl:1: boxes[0]: \"score\" must be a finite number"},
        {"{\"frame\": 0, \"boxes\": [{\"x\": 1, \"y\": 1, \"w\": 1, \"h\": 1, \"score\": 1e999}]}\n", CLXP_ERR_FORMAT,
         "mem.jsonl:1: boxes[0]: \"score\" must be a finite number"},
        {"{\"frame\": 0, \"boxes\": [{\"x\": 1, \"y\": 1, \"w\": 1, \"h\": 1, \"normalized\": \"yes\"}]}\n",
         CLXP_ERR_FORMAT, "mem.jsonl:1: boxes[0]: \"normalized\" must be true or false"},
        {"{\"frame\": 0, \"boxes\": []}\n{\"frame\": 1, \"boxes\": [], \"label\": \"caf\xC3\x28\"}\n", CLXP_ERR_FORMAT,
         "mem.jsonl:2: not valid UTF-8"},
        {"\xEF\xBB\xBF{\"frame\": 0, \"boxes\": [{\"x\": 1, \"y\": 1, \"w\": 1, \"h\": 1, "
         "\"label\": \"\xED\xA0\x80\"}]}",
         CLXP_ERR_FORMAT, "mem.jsonl:1: not valid UTF-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        box_set s;
        clxp_error err = {0};
        clxp_status st = parse(cases[i].text, &s, &err);
        if (st != cases[i].code || !strstr(err.msg, cases[i].msg))
            printf("  case %zu: status %d, message \"%s\"\n", i, (int)st, err.msg);
        CHECK_EQ_INT(st, cases[i].code);
        CHECK_CONTAINS(err.msg, cases[i].msg);
        CHECK(s.boxes == NULL && s.frames == NULL && s.path == NULL && s.n_frames == 0); /* nothing left to free */
    }
    /* a NUL byte inside a line */
    static const char nul[] = "{\"frame\": 0, \"boxes\": []}\n{\"frame\": 1,\0 \"boxes\": []}\n";
    box_set s;
    clxp_error err = {0};
    CHECK_EQ_INT(boxes_parse(nul, sizeof nul - 1, "mem.jsonl", &s, &err), CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "mem.jsonl:2: contains a NUL byte");
    /* a missing file */
    CHECK_EQ_INT(boxes_load("/nonexistent/boxes.jsonl", &s, &err), CLXP_ERR_IO);
    CHECK_CONTAINS(err.msg, "/nonexistent/boxes.jsonl: cannot open");
}

/* A line with n boxes {"x":0,"y":0,"w":1,"h":1}, malloc'd. */
static char *line_with_boxes(int n, size_t *len) {
    const char *one = "{\"x\":0,\"y\":0,\"w\":1,\"h\":1},";
    size_t lone = strlen(one), cap = 64 + (size_t)n * lone;
    char *buf = malloc(cap);
    size_t w = (size_t)sprintf(buf, "{\"frame\": 0, \"boxes\": [");
    for (int i = 0; i < n; i++, w += lone) memcpy(buf + w, one, lone);
    if (n) w--; /* the last comma */
    w += (size_t)sprintf(buf + w, "]}\n");
    *len = w;
    return buf;
}

TEST(limits) {
    box_set s;
    clxp_error err = {0};
    size_t len;
    char *buf = line_with_boxes(CLXP_BOXES_MAX_PER_LINE, &len);
    REQUIRE(boxes_parse(buf, len, "ok.jsonl", &s, &err) == CLXP_OK);
    CHECK_EQ_INT(s.n_boxes, CLXP_BOXES_MAX_PER_LINE);
    boxes_free(&s);
    free(buf);
    buf = line_with_boxes(CLXP_BOXES_MAX_PER_LINE + 1, &len);
    CHECK_EQ_INT(boxes_parse(buf, len, "big.jsonl", &s, &err), CLXP_ERR_LIMIT);
    CHECK_CONTAINS(err.msg, "big.jsonl:1: 100001 boxes, more than the limit of 100000 per line");
    free(buf);

    /* too many JSON values on one line (an array of 2 000 001 zeros under an ignored key) */
    size_t n = CLXP_BOXES_MAX_LINE_VALUES + 1;
    buf = malloc(2 * n + 64);
    size_t w = (size_t)sprintf(buf, "{\"frame\": 0, \"boxes\": [], \"junk\": [");
    for (size_t i = 0; i < n; i++) {
        buf[w++] = '0';
        buf[w++] = ',';
    }
    w += (size_t)sprintf(buf + w, "0]}");
    CHECK_EQ_INT(boxes_parse(buf, w, "values.jsonl", &s, &err), CLXP_ERR_LIMIT);
    CHECK_CONTAINS(err.msg, "values.jsonl:1: more than 2000000 JSON values");
    free(buf);

    /* a line longer than 16 MiB (a long string) */
    n = CLXP_BOXES_MAX_LINE + 1;
    buf = malloc(n + 64);
    w = (size_t)sprintf(buf, "{\"frame\": 0, \"boxes\": []}\n{\"frame\": 1, \"boxes\": [], \"junk\": \"");
    memset(buf + w, 'a', n);
    w += n;
    w += (size_t)sprintf(buf + w, "\"}");
    CHECK_EQ_INT(boxes_parse(buf, w, "long.jsonl", &s, &err), CLXP_ERR_LIMIT);
    CHECK_CONTAINS(err.msg, "long.jsonl:2: line is");
    free(buf);

    /* deep nesting */
    n = 200;
    buf = malloc(2 * n + 64);
    w = (size_t)sprintf(buf, "{\"frame\": 0, \"boxes\": [], \"junk\": ");
    for (size_t i = 0; i < n; i++) buf[w++] = '[';
    for (size_t i = 0; i < n; i++) buf[w++] = ']';
    buf[w++] = '}';
    CHECK_EQ_INT(boxes_parse(buf, w, "deep.jsonl", &s, &err), CLXP_ERR_LIMIT);
    CHECK_CONTAINS(err.msg, "deep.jsonl:1: JSON nested deeper than");
    free(buf);
}

TEST(load_file) {
    char path[] = "/tmp/clxp_test_boxes_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    const char *txt = "{\"frame\": 2, \"boxes\": [{\"x\": 1, \"y\": 2, \"w\": 3, \"h\": 4, \"label\": \"dog\"}]}\n";
    CHECK(write(fd, txt, strlen(txt)) == (ssize_t)strlen(txt));
    close(fd);
    box_set s;
    clxp_error err = {0};
    REQUIRE(boxes_load(path, &s, &err) == CLXP_OK);
    CHECK_STR(s.path, path);
    CHECK_EQ_INT(s.n_boxes, 1);
    CHECK_STR(s.boxes[0].label, "dog");
    const box_frame *out[2];
    CHECK_EQ_INT(boxes_for_frame(&s, 2, 0.08, 0.04, out, 2), 1);
    boxes_free(&s);
    /* the error names the file and line */
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL);
    fputs("{\"frame\": 2, \"boxes\": []}\n{\"frame\": -2, \"boxes\": []}\n", f);
    fclose(f);
    CHECK_EQ_INT(boxes_load(path, &s, &err), CLXP_ERR_FORMAT);
    char want[256];
    snprintf(want, sizeof want, "%s:2: \"frame\" must be an integer >= 0", path);
    CHECK_CONTAINS(err.msg, want);
    unlink(path);
}

int main(void) {
    RUN(both_forms);
    RUN(normalized_labels_nulls_extra_keys);
    RUN(many_labels_interned);
    RUN(lookup);
    RUN(target);
    RUN(crop_rect);
    RUN(errors);
    RUN(limits);
    RUN(load_file);
    return test_summary();
}
