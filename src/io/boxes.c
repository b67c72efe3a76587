#include "io/boxes.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <utf8proc.h>

#include "util/error.h"
#include "util/fileio.h"
#include "util/json.h"
#include "util/utf8.h"

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

/* Grow *arr (element size sz) to hold at least need elements. */
static int grow(void **arr, int *cap, int need, size_t sz) {
    if (need <= *cap) return 1;
    int nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *p = realloc(*arr, (size_t)nc * sz);
    if (!p) return 0;
    *arr = p;
    *cap = nc;
    return 1;
}

void boxes_free(box_set *s) {
    if (!s) return;
    for (int i = 0; i < s->n_labels; i++) free(s->labels[i]);
    free(s->labels);
    free(s->boxes);
    free(s->frames);
    free(s->path);
    memset(s, 0, sizeof *s);
}

typedef struct {
    box_set *s;
    int cap_boxes, cap_frames, cap_labels;
    int *slots; /* label hash table: index + 1 into s->labels, 0 = empty; n_slots is a power of two */
    int n_slots;
    const char *what;
    char where[1200]; /* "<what>:<line>" for messages */
    clxp_error *err;
} parser;

static clxp_status nomem(parser *ps) { return clxp_err_set(ps->err, CLXP_ERR_NOMEM, "%s: out of memory", ps->what); }

static uint32_t hash_str(const char *str) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)str; *p; p++) h = (h ^ *p) * 16777619u;
    return h;
}

/* The set's copy of label (each distinct label is stored once); NULL on allocation failure. */
static char *intern_label(parser *ps, const char *label) {
    box_set *s = ps->s;
    if (2 * (s->n_labels + 1) > ps->n_slots) { /* keep the table at most half full */
        int ns = ps->n_slots ? ps->n_slots * 2 : 64;
        int *slots = calloc((size_t)ns, sizeof *slots);
        if (!slots) return NULL;
        for (int i = 0; i < s->n_labels; i++) {
            uint32_t k = hash_str(s->labels[i]) & (uint32_t)(ns - 1);
            while (slots[k]) k = (k + 1) & (uint32_t)(ns - 1);
            slots[k] = i + 1;
        }
        free(ps->slots);
        ps->slots = slots;
        ps->n_slots = ns;
    }
    uint32_t k = hash_str(label) & (uint32_t)(ps->n_slots - 1);
    for (; ps->slots[k]; k = (k + 1) & (uint32_t)(ps->n_slots - 1))
        if (strcmp(s->labels[ps->slots[k] - 1], label) == 0) return s->labels[ps->slots[k] - 1];
    char *copy = strdup(label);
    if (!copy || !grow((void **)&s->labels, &ps->cap_labels, s->n_labels + 1, sizeof *s->labels)) {
        free(copy);
        return NULL;
    }
    s->labels[s->n_labels++] = copy;
    ps->slots[k] = s->n_labels;
    return copy;
}

/* A finite number, or a FORMAT error naming the key (and the box when idx >= 0). */
static clxp_status get_number(parser *ps, const cJSON *v, int idx, double *out) {
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
        *out = v->valuedouble;
        return CLXP_OK;
    }
    if (idx >= 0)
        return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s: boxes[%d]: \"%s\" must be a finite number", ps->where, idx,
                            v->string);
    return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s: \"%s\" must be a finite number", ps->where, v->string);
}

static clxp_status get_bool(parser *ps, const cJSON *v, int idx, int *out) {
    if (cJSON_IsBool(v)) {
        *out = cJSON_IsTrue(v);
        return CLXP_OK;
    }
    if (idx >= 0)
        return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s: boxes[%d]: \"%s\" must be true or false", ps->where, idx,
                            v->string);
    return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s: \"%s\" must be true or false", ps->where, v->string);
}

/* Index of key in keys[0..n), or -1. */
static int key_index(const char *key, const char *const *keys, int n) {
    for (int i = 0; key && i < n; i++)
        if (strcmp(key, keys[i]) == 0) return i;
    return -1;
}

static double clamp_coord(double v) {
    if (v > CLXP_BOXES_MAX_COORD) return CLXP_BOXES_MAX_COORD;
    if (v < -CLXP_BOXES_MAX_COORD) return -CLXP_BOXES_MAX_COORD;
    return v;
}

enum { K_X, K_Y, K_W, K_H, K_X1, K_Y1, K_X2, K_Y2, K_LABEL, K_SCORE, K_NORMALIZED, N_BOX_KEYS };
static const char *const box_keys[N_BOX_KEYS] = {"x", "y", "w", "h", "x1", "y1", "x2", "y2",
                                                 "label", "score", "normalized"};

static clxp_status parse_box(parser *ps, const cJSON *o, int idx, int line_normalized, box *out) {
    if (!cJSON_IsObject(o))
        return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s: boxes[%d] is not an object", ps->where, idx);
    const cJSON *v[N_BOX_KEYS] = {0};
    for (const cJSON *c = o->child; c; c = c->next) {
        int k = key_index(c->string, box_keys, N_BOX_KEYS);
        if (k < 0) continue; /* other keys are ignored */
        if (v[k]) return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s: boxes[%d]: duplicate key \"%s\"", ps->where, idx,
                                      box_keys[k]);
        v[k] = c;
    }
    for (int k = 0; k < N_BOX_KEYS; k++)
        if (v[k] && cJSON_IsNull(v[k])) v[k] = NULL; /* null = absent */
    int n_size = !!v[K_X] + !!v[K_Y] + !!v[K_W] + !!v[K_H];
    int n_corner = !!v[K_X1] + !!v[K_Y1] + !!v[K_X2] + !!v[K_Y2];
    if (n_size && n_corner)
        return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s: boxes[%d] mixes \"x\", \"y\", \"w\", \"h\" with \"x1\", "
                            "\"y1\", \"x2\", \"y2\"", ps->where, idx);
    if (!n_size && !n_corner)
        return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s: boxes[%d] has no coordinates (needs \"x\", \"y\", \"w\", "
                            "\"h\" or \"x1\", \"y1\", \"x2\", \"y2\")", ps->where, idx);
    int k0 = n_size ? K_X : K_X1;
    double c[4];
    for (int k = 0; k < 4; k++) {
        if (!v[k0 + k])
            return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s: boxes[%d]: missing \"%s\"", ps->where, idx,
                                box_keys[k0 + k]);
        clxp_status st = get_number(ps, v[k0 + k], idx, &c[k]);
        if (st != CLXP_OK) return st;
    }
    /* corners; x + w may overflow to infinity, which the clamp brings back */
    double x1 = c[0], y1 = c[1], x2 = n_size ? c[0] + c[2] : c[2], y2 = n_size ? c[1] + c[3] : c[3];
    x1 = clamp_coord(x1);
    y1 = clamp_coord(y1);
    x2 = clamp_coord(x2);
    y2 = clamp_coord(y2);
    *out = (box){(float)x1, (float)y1, (float)(x2 - x1), (float)(y2 - y1), line_normalized, NULL, NAN};
    clxp_status st;
    if (v[K_NORMALIZED] && (st = get_bool(ps, v[K_NORMALIZED], idx, &out->normalized)) != CLXP_OK) return st;
    if (v[K_SCORE]) {
        double sc;
        if ((st = get_number(ps, v[K_SCORE], idx, &sc)) != CLXP_OK) return st;
        out->score = (float)(sc > FLT_MAX ? FLT_MAX : sc < -FLT_MAX ? -FLT_MAX : sc);
    }
    if (v[K_LABEL]) {
        if (!cJSON_IsString(v[K_LABEL]))
            return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s: boxes[%d]: \"label\" must be a string", ps->where, idx);
        if (!(out->label = intern_label(ps, v[K_LABEL]->valuestring))) return nomem(ps);
    }
    return CLXP_OK;
}

enum { L_FRAME, L_TIME, L_BOXES, L_NORMALIZED, N_LINE_KEYS };
static const char *const line_keys[N_LINE_KEYS] = {"frame", "time", "boxes", "normalized"};

/* The line's object is parsed; add its entry and boxes. */
static clxp_status add_line(parser *ps, const cJSON *j, int line) {
    box_set *s = ps->s;
    const cJSON *v[N_LINE_KEYS] = {0};
    for (const cJSON *c = j->child; c; c = c->next) {
        int k = key_index(c->string, line_keys, N_LINE_KEYS);
        if (k < 0) continue; /* other keys are ignored */
        if (v[k]) return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s: duplicate key \"%s\"", ps->where, line_keys[k]);
        v[k] = c;
    }
    for (int k = 0; k < N_LINE_KEYS; k++)
        if (v[k] && cJSON_IsNull(v[k])) v[k] = NULL;
    if (v[L_FRAME] && v[L_TIME])
        return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s: has both \"frame\" and \"time\" (exactly one addresses "
                            "the frame)", ps->where);
    if (!v[L_FRAME] && !v[L_TIME])
        return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s: needs \"frame\" (an index) or \"time\" (seconds)",
                            ps->where);
    box_frame f = {0};
    f.line = line;
    f.first = s->n_boxes;
    clxp_status st;
    double d = 0;
    if (v[L_FRAME]) {
        if ((st = get_number(ps, v[L_FRAME], -1, &d)) != CLXP_OK) return st;
        if (d < 0 || d != floor(d) || d > 9007199254740992.0)
            return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s: \"frame\" must be an integer >= 0 (got %.17g)",
                                ps->where, d);
        f.frame = (int64_t)d;
    } else {
        if ((st = get_number(ps, v[L_TIME], -1, &d)) != CLXP_OK) return st;
        if (d < 0) return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s: \"time\" must be >= 0 (got %.17g)", ps->where, d);
        f.by_time = 1;
        f.time = d + 0.0; /* -0 becomes +0 */
    }
    int normalized = 0;
    if (v[L_NORMALIZED] && (st = get_bool(ps, v[L_NORMALIZED], -1, &normalized)) != CLXP_OK) return st;
    if (!v[L_BOXES]) return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s: missing \"boxes\" (an array)", ps->where);
    if (!cJSON_IsArray(v[L_BOXES]))
        return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s: \"boxes\" must be an array", ps->where);
    int n = cJSON_GetArraySize(v[L_BOXES]);
    if (n > CLXP_BOXES_MAX_PER_LINE)
        return clxp_err_set(ps->err, CLXP_ERR_LIMIT, "%s: %d boxes, more than the limit of %d per line", ps->where, n,
                            CLXP_BOXES_MAX_PER_LINE);
    if (n > CLXP_BOXES_MAX_BOXES - s->n_boxes)
        return clxp_err_set(ps->err, CLXP_ERR_LIMIT, "%s: more than %d boxes in the file", ps->where,
                            CLXP_BOXES_MAX_BOXES);
    if (s->n_frames >= CLXP_BOXES_MAX_LINES)
        return clxp_err_set(ps->err, CLXP_ERR_LIMIT, "%s: more than %d lines in the file", ps->where,
                            CLXP_BOXES_MAX_LINES);
    if (!grow((void **)&s->boxes, &ps->cap_boxes, s->n_boxes + n, sizeof *s->boxes) ||
        !grow((void **)&s->frames, &ps->cap_frames, s->n_frames + 1, sizeof *s->frames))
        return nomem(ps);
    int idx = 0;
    for (const cJSON *c = v[L_BOXES]->child; c; c = c->next, idx++) {
        if ((st = parse_box(ps, c, idx, normalized, &s->boxes[s->n_boxes])) != CLXP_OK) return st;
        s->n_boxes++;
    }
    f.count = s->n_boxes - f.first;
    s->frames[s->n_frames++] = f;
    return CLXP_OK;
}

/* One non-blank line, buf[a..b) trimmed, starting at buf[start] (offsets in messages count from there). */
static clxp_status parse_line(parser *ps, const char *buf, size_t start, size_t a, size_t b, int line) {
    snprintf(ps->where, sizeof ps->where, "%.1100s:%d", ps->what, line);
    if (memchr(buf + a, '\0', b - a))
        return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s: contains a NUL byte", ps->where);
    if (buf[a] != '{')
        return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s: not a JSON object (JSON Lines: one {...} object per line)",
                            ps->where);
    /* Find the end of the object (brackets outside strings) and count commas: the number of JSON values, which
     * bounds the memory cJSON allocates. */
    size_t end = b, commas = 0;
    int depth = 0, in_str = 0;
    for (size_t i = a; i < b; i++) {
        char c = buf[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == '"') in_str = 1;
        else if (c == ',') commas++;
        else if (c == '{' || c == '[') depth++;
        else if ((c == '}' || c == ']') && --depth == 0) {
            end = i + 1;
            break;
        }
    }
    if (commas > CLXP_BOXES_MAX_LINE_VALUES)
        return clxp_err_set(ps->err, CLXP_ERR_LIMIT, "%s: more than %d JSON values on one line", ps->where,
                            CLXP_BOXES_MAX_LINE_VALUES);
    size_t t = end;
    while (t < b && is_space(buf[t])) t++;
    if (t < b)
        return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s: unexpected text after the JSON object at byte %zu (one "
                            "object per line)", ps->where, t - start);
    cJSON *j = NULL;
    clxp_status st = clxp_json_parse(buf + start, end - start, ps->where, &j, ps->err);
    if (st != CLXP_OK) return st;
    st = add_line(ps, j, line);
    cJSON_Delete(j);
    return st;
}

static int cmp_frames(const void *pa, const void *pb) {
    const box_frame *a = pa, *b = pb;
    if (a->by_time != b->by_time) return a->by_time - b->by_time;
    if (!a->by_time && a->frame != b->frame) return a->frame < b->frame ? -1 : 1;
    if (a->by_time && a->time != b->time) return a->time < b->time ? -1 : 1;
    return a->line - b->line;
}

clxp_status boxes_parse(const char *buf, size_t len, const char *what, box_set *out, clxp_error *err) {
    memset(out, 0, sizeof *out);
    if (len > CLXP_BOXES_MAX_FILE)
        return clxp_err_set(err, CLXP_ERR_LIMIT, "%s: %zu bytes, more than the limit of %zu", what, len,
                            CLXP_BOXES_MAX_FILE);
    size_t bad = 0;
    if (!clxp_utf8_valid(buf, len, &bad)) {
        int line = 1;
        for (size_t i = 0; i < bad; i++) line += buf[i] == '\n';
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s:%d: not valid UTF-8 (byte offset %zu)", what, line, bad);
    }
    if (!(out->path = strdup(what))) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", what);
    parser ps = {.s = out, .what = what, .err = err};
    clxp_status st = CLXP_OK;
    size_t pos = 0;
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) pos = 3; /* UTF-8 byte order mark */
    for (int line = 1; pos < len && st == CLXP_OK; line++) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        if (end - pos > CLXP_BOXES_MAX_LINE) {
            st = clxp_err_set(err, CLXP_ERR_LIMIT, "%s:%d: line is %zu bytes long, more than the limit of %zu", what,
                              line, end - pos, CLXP_BOXES_MAX_LINE);
            break;
        }
        size_t a = pos, b = end;
        while (a < b && is_space(buf[a])) a++;
        while (b > a && is_space(buf[b - 1])) b--;
        if (a < b) st = parse_line(&ps, buf, pos, a, b, line);
        pos = end + 1;
    }
    free(ps.slots);
    if (st != CLXP_OK) {
        boxes_free(out);
        return st;
    }
    if (out->n_frames > 1) qsort(out->frames, (size_t)out->n_frames, sizeof *out->frames, cmp_frames);
    return CLXP_OK;
}

clxp_status boxes_load(const char *path, box_set *out, clxp_error *err) {
    char *buf = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    clxp_status st = clxp_read_file(path, CLXP_BOXES_MAX_FILE, &buf, &len, err);
    if (st != CLXP_OK) return st;
    st = boxes_parse(buf, len, path, out, err);
    free(buf);
    return st;
}

/* ---- lookup ---------------------------------------------------------------------------------------------------- */

/* 1 if entry f sorts before the key (by_time, frame or time): "frame" entries come before all "time" entries. */
static int sorts_before(const box_frame *f, int by_time, int64_t frame, double time) {
    if (f->by_time != by_time) return f->by_time < by_time;
    return by_time ? f->time < time : f->frame < frame;
}

/* Index of the first entry that does not sort before the key. */
static int lower_bound(const box_set *s, int by_time, int64_t frame, double time) {
    int lo = 0, hi = s->n_frames;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (sorts_before(&s->frames[mid], by_time, frame, time)) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

int boxes_for_frame(const box_set *s, int64_t frame_index, double time, double frame_duration,
                    const box_frame **out, int max) {
    if (!s) return 0;
    int found = 0;
    if (frame_index >= 0) {
        for (int i = lower_bound(s, 0, frame_index, 0); i < s->n_frames; i++) {
            const box_frame *f = &s->frames[i];
            if (f->by_time || f->frame != frame_index) break;
            if (found < max) out[found] = f;
            found++;
        }
    }
    if (!isnan(time)) {
        double tol = frame_duration > 0 && isfinite(frame_duration) ? frame_duration / 2 : 0.001;
        for (int i = lower_bound(s, 1, 0, time - tol); i < s->n_frames; i++) {
            const box_frame *f = &s->frames[i];
            if (!(f->time < time + tol)) break;
            if (found < max) out[found] = f;
            found++;
        }
    }
    return found;
}

int boxes_unmatched(const box_set *s, const unsigned char *matched, const box_frame **first) {
    int n = 0;
    const box_frame *fst = NULL;
    for (int i = 0; s && i < s->n_frames; i++) {
        if (matched && matched[i]) continue;
        n++;
        if (!fst || s->frames[i].line < fst->line) fst = &s->frames[i];
    }
    if (first) *first = fst;
    return n;
}

int boxes_warn_unmatched(const box_set *s, const unsigned char *matched) {
    const box_frame *f = NULL;
    int n = boxes_unmatched(s, matched, &f);
    if (n == 0) return 0;
    char addr[64];
    if (f->by_time) snprintf(addr, sizeof addr, "time %.3f s", f->time);
    else snprintf(addr, sizeof addr, "frame %lld", (long long)f->frame);
    clxp_log(CLXP_LOG_WARN, "%s: %d of %d lines matched no processed frame (past the end of the video, or not "
             "among the frames sampled); the first is line %d (%s)", s->path ? s->path : "boxes", n, s->n_frames,
             f->line, addr);
    return n;
}

/* ---- geometry and labels ---------------------------------------------------------------------------------------- */

/* v, or the nearest integer when v is within 0.01 of it (undoes float error in scaled normalised coordinates). */
static double snap(double v) {
    double r = round(v);
    return fabs(v - r) <= 0.01 ? r : v;
}

int box_crop_rect(const box *b, int frame_w, int frame_h, int *x, int *y, int *cw, int *ch) {
    if (!b || frame_w <= 0 || frame_h <= 0) return -1;
    double bx = b->x, by = b->y, bw = b->w, bh = b->h;
    if (!isfinite(bx) || !isfinite(by) || !isfinite(bw) || !isfinite(bh) || !(bw > 0) || !(bh > 0)) return -1;
    if (b->normalized) {
        bx *= frame_w;
        bw *= frame_w;
        by *= frame_h;
        bh *= frame_h;
    }
    double x0 = fmax(floor(snap(bx)), 0), x1 = fmin(ceil(snap(bx + bw)), frame_w);
    double y0 = fmax(floor(snap(by)), 0), y1 = fmin(ceil(snap(by + bh)), frame_h);
    if (!(x1 - x0 >= 1) || !(y1 - y0 >= 1)) return -1;
    *x = (int)x0;
    *y = (int)y0;
    *cw = (int)(x1 - x0);
    *ch = (int)(y1 - y0);
    return 0;
}

static int same_char(utf8proc_int32_t a, utf8proc_int32_t b) {
    return a == b || utf8proc_tolower(a) == utf8proc_tolower(b) || utf8proc_toupper(a) == utf8proc_toupper(b);
}

int box_matches_target(const box *b, const char *target) {
    if (!target) return 1;
    if (!b || !b->label) return 0;
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)b->label, *q = (const utf8proc_uint8_t *)target;
    while (*p && *q) {
        utf8proc_int32_t cp, cq;
        utf8proc_ssize_t np = utf8proc_iterate(p, -1, &cp), nq = utf8proc_iterate(q, -1, &cq);
        if (np <= 0 || nq <= 0) return strcmp(b->label, target) == 0; /* not UTF-8: exact bytes only */
        if (!same_char(cp, cq)) return 0;
        p += np;
        q += nq;
    }
    return !*p && !*q;
}
