/* Fuzz target: detections files (--boxes, JSON Lines), then the lookups and geometry the video path does with
 * the result: boxes_for_frame, box_crop_rect, box_matches_target, boxes_warn_unmatched. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "io/boxes.h"

static int owned_label(const box_set *s, const char *label) {
    for (int i = 0; i < s->n_labels; i++)
        if (s->labels[i] == label) return 1;
    return 0;
}

static void check_crop(const box *b, int fw, int fh) {
    int x = -1, y = -1, cw = 0, ch = 0;
    if (box_crop_rect(b, fw, fh, &x, &y, &cw, &ch) != 0) return;
    FUZZ_ASSERT(x >= 0 && y >= 0 && cw >= 1 && ch >= 1);
    FUZZ_ASSERT((int64_t)x + cw <= fw && (int64_t)y + ch <= fh);
}

static void check_set(const box_set *s) {
    FUZZ_ASSERT(s->n_boxes >= 0 && s->n_frames >= 0 && s->n_labels >= 0 && s->path);
    for (int i = 0; i < s->n_labels; i++)
        for (int k = 0; k < i && k < 64; k++) FUZZ_ASSERT(strcmp(s->labels[i], s->labels[k]) != 0);
    int64_t total = 0;
    for (int i = 0; i < s->n_frames; i++) {
        const box_frame *f = &s->frames[i];
        FUZZ_ASSERT(f->first >= 0 && f->count >= 0 && f->first + f->count <= s->n_boxes && f->line >= 1);
        FUZZ_ASSERT(f->by_time ? (f->frame == 0 && f->time >= 0 && isfinite(f->time)) : (f->frame >= 0 && f->time == 0));
        if (i > 0) { /* sorted: frame entries by index, then time entries by time, ties in file order */
            const box_frame *p = &s->frames[i - 1];
            FUZZ_ASSERT(p->by_time <= f->by_time);
            if (p->by_time == f->by_time) {
                if (f->by_time) FUZZ_ASSERT(p->time < f->time || (p->time == f->time && p->line < f->line));
                else FUZZ_ASSERT(p->frame < f->frame || (p->frame == f->frame && p->line < f->line));
            }
        }
        total += f->count;
    }
    FUZZ_ASSERT(total == s->n_boxes);
    for (int i = 0; i < s->n_boxes; i++) {
        const box *b = &s->boxes[i];
        FUZZ_ASSERT(!b->label || owned_label(s, b->label));
        FUZZ_ASSERT(box_matches_target(b, NULL) == 1);
        if (b->label) FUZZ_ASSERT(box_matches_target(b, b->label) == 1);
        (void)box_matches_target(b, "Person");
        check_crop(b, 1920, 1080);
        check_crop(b, 1, 1);
        check_crop(b, INT_MAX, INT_MAX);
    }
}

int fuzz_boxes(const uint8_t *data, size_t size) {
    box_set s;
    clxp_error err;
    clxp_status st = boxes_parse((const char *)data, size, "boxes.jsonl", &s, &err);
    if (st != CLXP_OK) {
        FUZZ_ASSERT(err.code == st && !strchr(err.msg, '\n'));
        FUZZ_ASSERT(s.boxes == NULL && s.frames == NULL && s.labels == NULL && s.path == NULL);
        boxes_free(&s);
        return 0;
    }
    check_set(&s);
    /* look every entry up the way the video loop does, marking what matched */
    unsigned char *matched = calloc(s.n_frames ? (size_t)s.n_frames : 1, 1);
    FUZZ_ASSERT(matched != NULL);
    const box_frame *out[8];
    for (int i = 0; i < s.n_frames && i < 256; i++) {
        const box_frame *f = &s.frames[i];
        int n = boxes_for_frame(&s, f->by_time ? -1 : f->frame, f->by_time ? f->time : NAN, 1.0 / 30, out, 8);
        if (!f->by_time || f->time < 1e6) FUZZ_ASSERT(n >= 1); /* time + tol == time for huge times */
        for (int k = 0; k < n && k < 8; k++) {
            FUZZ_ASSERT(out[k] >= s.frames && out[k] < s.frames + s.n_frames);
            matched[out[k] - s.frames] = 1;
        }
        if (!f->by_time || f->time < 1e6) FUZZ_ASSERT(matched[i] == 1 || n > 8);
    }
    (void)boxes_for_frame(&s, 0, 0.0, 0.0, out, 8);
    (void)boxes_for_frame(&s, INT64_MAX, INFINITY, NAN, out, 8);
    (void)boxes_warn_unmatched(&s, matched);
    const box_frame *first = NULL;
    int un = boxes_unmatched(&s, NULL, &first);
    FUZZ_ASSERT(un == s.n_frames && (un == 0) == (first == NULL));
    free(matched);
    boxes_free(&s);
    boxes_free(&s);
    return 0;
}

FUZZ_ENTRY(fuzz_boxes)
