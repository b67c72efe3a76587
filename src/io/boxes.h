/* Detections files (`--boxes FILE`): boxes per frame, for classifying regions instead of whole frames.
 *
 * Format: JSON Lines, UTF-8 (a leading byte order mark is skipped). One JSON object per line; blank lines
 * (spaces, tabs, CR only) are ignored. Each line gives the boxes of one frame:
 *
 *     {"frame": 12, "boxes": [{"x": 10, "y": 20, "w": 100, "h": 50, "label": "person", "score": 0.91}]}
 *     {"time": 3.5, "normalized": true, "boxes": [{"x1": 0.1, "y1": 0.2, "x2": 0.5, "y2": 0.9, "label": "car"}]}
 *     {"frame": 13, "boxes": []}
 *
 * Line keys:
 *   "frame"       0-based index of the frame in the video stream (an integer >= 0), or
 *   "time"        the frame's timestamp in seconds from the start of the stream (a number >= 0);
 *                 exactly one of "frame" and "time" per line. A "time" line applies to the frame whose
 *                 timestamp is within half a frame duration of it (t - d/2 <= time < t + d/2; 1 ms when the
 *                 duration is unknown). For a still image the frame is 0 and the time 0.
 *   "boxes"       required: an array of box objects, possibly empty (a frame without detections).
 *   "normalized"  optional, true or false (default false): the line's coordinates are fractions of the frame
 *                 width/height (0..1) instead of pixels.
 * Box keys: either "x", "y", "w", "h" (top-left corner and size) or "x1", "y1", "x2", "y2" (top-left and
 * bottom-right corners), all four numbers, in pixels (x to the right, y down, (0, 0) the top-left corner of
 * the frame as displayed, after rotation) or, with "normalized": true, in fractions. Optional in a box:
 * "label" (a string: the detector's class, matched by --target), "score" (a number: the detector's
 * confidence, reported as is), "normalized" (true/false, overrides the line's). Keys are case-sensitive; a
 * null value is the same as an absent key; other keys are ignored. Several lines may address the same frame:
 * all their boxes apply, in file order. An empty file (or one of blank lines only) is valid and has no boxes.
 *
 * Not errors when the file is read: coordinates that are negative or past the frame's edges (the box is
 * clipped to the frame), boxes of zero or negative size, x2 <= x1 or y2 <= y1 (skipped with a warning when
 * the frame is processed), frames or times past the end of the video (a warning after the run).
 * Coordinates beyond +-1e9 are clamped to +-1e9.
 *
 * Errors (CLXP_ERR_FORMAT, "<path>:<line>: <cause>"): invalid UTF-8, a NUL byte, a line that is not one JSON
 * object (or has anything after it), malformed JSON, a missing "boxes" array, neither or both of "frame" and
 * "time", a duplicate key, a value of the wrong type, a number that is not finite (1e999), a negative or
 * fractional frame, a negative time, a box with a missing coordinate or mixing the two forms.
 * Limits (CLXP_ERR_LIMIT, hostile files): the file CLXP_BOXES_MAX_FILE bytes, a line CLXP_BOXES_MAX_LINE bytes
 * and about CLXP_BOXES_MAX_LINE_VALUES JSON values (counted as commas), CLXP_BOXES_MAX_PER_LINE boxes per
 * line, CLXP_BOXES_MAX_BOXES boxes and CLXP_BOXES_MAX_LINES lines in all, JSON nesting CLXP_MAX_JSON_DEPTH. */
#ifndef CLXP_IO_BOXES_H
#define CLXP_IO_BOXES_H

#include <stdint.h>

#include "clxp.h"

#define CLXP_BOXES_MAX_FILE ((size_t)256 << 20)
#define CLXP_BOXES_MAX_LINE ((size_t)16 << 20)
#define CLXP_BOXES_MAX_LINE_VALUES 2000000
#define CLXP_BOXES_MAX_PER_LINE 100000
#define CLXP_BOXES_MAX_BOXES 10000000
#define CLXP_BOXES_MAX_LINES 10000000
#define CLXP_BOXES_MAX_COORD 1e9

/* One box. The {x1, y1, x2, y2} form is stored as x = x1, y = y1, w = x2 - x1, h = y2 - y1. */
typedef struct box {
    float x, y, w, h;
    int normalized; /* 1: fractions of the frame width/height; 0: pixels */
    char *label;    /* NULL if absent; points into box_set.labels (each distinct label is stored once) */
    float score;    /* NAN if absent */
} box;

/* One line of the file: the boxes boxes[first .. first + count) of the frame it addresses. */
typedef struct box_frame {
    int by_time;   /* 1: addressed by "time", 0: by "frame" */
    int64_t frame; /* by_time == 0: the frame index (0 otherwise) */
    double time;   /* by_time == 1: seconds (0 otherwise) */
    int first, count;
    int line; /* 1-based line number in the file */
} box_frame;

typedef struct box_set {
    box *boxes; /* n_boxes, in file order */
    int n_boxes;
    box_frame *frames; /* n_frames entries (one per non-blank line), sorted: "frame" entries by index, then
                        * "time" entries by time; ties in file order */
    int n_frames;
    char **labels; /* n_labels distinct labels, owned by the set */
    int n_labels;
    char *path; /* the path (or `what`) the set was read from, for messages */
} box_set;

/* Read and parse a detections file. On failure *out is empty and err names the file and line. */
clxp_status boxes_load(const char *path, box_set *out, clxp_error *err);
/* Parse from memory (buf need not be NUL-terminated); `what` names the source in messages. For fuzzing/tests. */
clxp_status boxes_parse(const char *buf, size_t len, const char *what, box_set *out, clxp_error *err);
/* Free everything the set owns and zero it; NULL and an already-freed/zeroed set are fine. */
void boxes_free(box_set *s);

/* The entries that apply to a frame: those addressed by its index (when frame_index >= 0) and those addressed
 * by a time t with time - tol <= t < time + tol (when time is not NaN), tol = frame_duration / 2, or 1 ms if
 * frame_duration <= 0 or NaN. Returns the number of entries found (frame entries first, then time entries,
 * each in sorted order) and stores pointers into s->frames for the first min(found, max) of them in out.
 * Index of an entry: out[i] - s->frames. */
int boxes_for_frame(const box_set *s, int64_t frame_index, double time, double frame_duration,
                    const box_frame **out, int max);

/* The crop of a box in a frame_w x frame_h frame: normalized coordinates are scaled by the frame size, then
 * x0 = floor(x), y0 = floor(y), x1 = ceil(x + w), y1 = ceil(y + h) (values within 0.01 px of an integer are
 * first snapped to it, so 0.1 * 1920 gives 192), clamped to [0, frame_w] x [0, frame_h]. Returns 0 and the
 * rectangle (*x, *y, *cw >= 1, *ch >= 1) or -1 when nothing is left: w or h <= 0, a NaN/infinite value, a box
 * entirely outside the frame, an empty frame. */
int box_crop_rect(const box *b, int frame_w, int frame_h, int *x, int *y, int *cw, int *ch);

/* --target: 1 if the box's label equals target ignoring case (per code point: equal, or equal after
 * utf8proc lowercase mapping, or after uppercase mapping, so "CAFÉ" matches "Café" and "ΟΔΟΣ" "οδος"), 0
 * otherwise. A box without a label never matches; a NULL target matches every box. */
int box_matches_target(const box *b, const char *target);

/* Entries never used: the caller owns `matched`, n_frames bytes zeroed before the run, and sets
 * matched[out[i] - s->frames] = 1 for every entry boxes_for_frame returned for a processed frame.
 * Returns the number of entries with matched[i] == 0; *first (if non-NULL) gets the first of them in file
 * order (NULL if none). */
int boxes_unmatched(const box_set *s, const unsigned char *matched, const box_frame **first);
/* The same, and logs one warning (CLXP_LOG_WARN) naming the count and the first such line when there are any:
 * frames past the end of the video, or not among the frames processed (sampling, --start/--duration). */
int boxes_warn_unmatched(const box_set *s, const unsigned char *matched);

#endif
