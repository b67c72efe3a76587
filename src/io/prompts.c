#include "io/prompts.h"

#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/fileio.h"
#include "util/utf8.h"

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

/* Copy of s[0..len) plus a NUL. Not strndup: the buffer given to prompts_parse need not be NUL-terminated, and
 * ASan's strndup interceptor with strict_string_checks=1 (the CI setting) reads up to the NUL. */
static char *dup_range(const char *s, size_t len) {
    char *t = malloc(len + 1);
    if (!t) return NULL;
    memcpy(t, s, len);
    t[len] = '\0';
    return t;
}

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

void prompts_free(prompt_set *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) free(p->text[i]);
    for (int i = 0; i < p->n_units; i++) free(p->units[i].name);
    for (int i = 0; i < p->n_cats; i++) free(p->cats[i].name);
    free(p->text);
    free(p->units);
    free(p->cats);
    memset(p, 0, sizeof *p);
}

typedef struct {
    prompt_set *p;
    int cap_text, cap_units, cap_cats;
    const char *what;
    clxp_error *err;
} parser;

static clxp_status add_prompt(parser *ps, const char *s, size_t len, int line) {
    prompt_set *p = ps->p;
    if (p->n >= CLXP_MAX_PROMPTS)
        return clxp_err_set(ps->err, CLXP_ERR_LIMIT, "%s: more than %d prompts (line %d)", ps->what, CLXP_MAX_PROMPTS,
                            line);
    char *t = dup_range(s, len);
    if (!t || !grow((void **)&p->text, &ps->cap_text, p->n + 1, sizeof *p->text)) {
        free(t);
        return clxp_err_set(ps->err, CLXP_ERR_NOMEM, "%s: out of memory", ps->what);
    }
    p->text[p->n++] = t;
    if (p->is_categories) p->cats[p->n_cats - 1].n_prompts++;
    return CLXP_OK;
}

/* "[Unit]" or "(Category)" header: returns its trimmed name. */
static clxp_status header_name(parser *ps, const char *s, size_t len, int line, char **out) {
    size_t a = 1, b = len - 1;
    while (a < b && is_space(s[a])) a++;
    while (b > a && is_space(s[b - 1])) b--;
    if (a == b) return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s:%d: empty %s name", ps->what, line,
                                    s[0] == '[' ? "unit" : "category");
    *out = dup_range(s + a, b - a);
    return *out ? CLXP_OK : clxp_err_set(ps->err, CLXP_ERR_NOMEM, "%s: out of memory", ps->what);
}

static clxp_status categories_line(parser *ps, const char *s, size_t len, int line) {
    prompt_set *p = ps->p;
    char *name = NULL;
    clxp_status st;
    if (s[0] == '[' && s[len - 1] == ']') {
        if (p->n_units && p->units[p->n_units - 1].n_cats == 0)
            return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s:%d: unit \"%s\" has no categories", ps->what, line,
                                p->units[p->n_units - 1].name);
        if ((st = header_name(ps, s, len, line, &name)) != CLXP_OK) return st;
        if (!grow((void **)&p->units, &ps->cap_units, p->n_units + 1, sizeof *p->units)) {
            free(name);
            return clxp_err_set(ps->err, CLXP_ERR_NOMEM, "%s: out of memory", ps->what);
        }
        p->units[p->n_units++] = (prompt_unit){name, p->n_cats, 0};
        return CLXP_OK;
    }
    if (s[0] == '(' && s[len - 1] == ')') {
        if (!p->n_units)
            return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s:%d: category before any [Unit] line", ps->what, line);
        if (p->n_cats && p->cats[p->n_cats - 1].n_prompts == 0)
            return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s:%d: category \"%s\" has no prompts", ps->what, line,
                                p->cats[p->n_cats - 1].name);
        if ((st = header_name(ps, s, len, line, &name)) != CLXP_OK) return st;
        if (!grow((void **)&p->cats, &ps->cap_cats, p->n_cats + 1, sizeof *p->cats)) {
            free(name);
            return clxp_err_set(ps->err, CLXP_ERR_NOMEM, "%s: out of memory", ps->what);
        }
        p->cats[p->n_cats++] = (prompt_cat){name, p->n_units - 1, p->n, 0};
        p->units[p->n_units - 1].n_cats++;
        return CLXP_OK;
    }
    if (!p->n_cats || p->cats[p->n_cats - 1].unit != p->n_units - 1)
        return clxp_err_set(ps->err, CLXP_ERR_FORMAT, "%s:%d: prompt before any %s line", ps->what, line,
                            p->n_units ? "(Category)" : "[Unit]");
    return add_prompt(ps, s, len, line);
}

clxp_status prompts_parse(const char *buf, size_t len, const char *what, int categories, prompt_set *out,
                          clxp_error *err) {
    memset(out, 0, sizeof *out);
    out->is_categories = categories;
    size_t bad = 0;
    if (!clxp_utf8_valid(buf, len, &bad)) {
        int line = 1;
        for (size_t i = 0; i < bad; i++) line += buf[i] == '\n';
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s:%d: not valid UTF-8 (byte offset %zu)", what, line, bad);
    }
    parser ps = {out, 0, 0, 0, what, err};
    clxp_status st = CLXP_OK;
    size_t pos = 0;
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) pos = 3; /* UTF-8 byte order mark */
    for (int line = 1; pos < len && st == CLXP_OK; line++) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        size_t a = pos, b = end;
        while (a < b && is_space(buf[a])) a++;
        while (b > a && is_space(buf[b - 1])) b--;
        pos = end + 1;
        if (a == b) continue;
        if (memchr(buf + a, '\0', b - a)) {
            st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s:%d: contains a NUL byte", what, line);
            break;
        }
        if (b - a > CLXP_MAX_PROMPT_BYTES) {
            st = clxp_err_set(err, CLXP_ERR_LIMIT, "%s:%d: prompt is %zu bytes long, more than the limit of %d", what,
                              line, b - a, CLXP_MAX_PROMPT_BYTES);
            break;
        }
        st = categories ? categories_line(&ps, buf + a, b - a, line) : add_prompt(&ps, buf + a, b - a, line);
    }
    if (st == CLXP_OK && categories) {
        if (!out->n_units) st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: no [Unit] found", what);
        else if (out->units[out->n_units - 1].n_cats == 0)
            st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: unit \"%s\" has no categories", what,
                              out->units[out->n_units - 1].name);
        else if (out->cats[out->n_cats - 1].n_prompts == 0)
            st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: category \"%s\" has no prompts", what,
                              out->cats[out->n_cats - 1].name);
    }
    if (st == CLXP_OK && out->n == 0) st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: no prompts (file is empty)", what);
    if (st != CLXP_OK) prompts_free(out);
    return st;
}

/* A categories file has at least one "[Unit]" line (a whole line in square brackets; "[]" too, which is then an
 * error: an empty unit name). */
static int has_unit_line(const char *buf, size_t len) {
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len, a = pos, b = end;
        while (a < b && is_space(buf[a])) a++;
        while (b > a && is_space(buf[b - 1])) b--;
        if (b - a >= 2 && buf[a] == '[' && buf[b - 1] == ']') return 1;
        pos = end + 1;
    }
    return 0;
}

static clxp_status load(const char *path, int mode, prompt_set *out, clxp_error *err) {
    char *buf = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    clxp_status st = clxp_read_file(path, CLXP_MAX_PROMPT_FILE, &buf, &len, err);
    if (st != CLXP_OK) return st;
    if (mode < 0) {
        size_t bom = (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) ? 3 : 0;
        mode = has_unit_line(buf + bom, len - bom);
    }
    st = prompts_parse(buf, len, path, mode, out, err);
    free(buf);
    return st;
}

clxp_status prompts_load_labels(const char *path, prompt_set *out, clxp_error *err) { return load(path, 0, out, err); }
clxp_status prompts_load_categories(const char *path, prompt_set *out, clxp_error *err) {
    return load(path, 1, out, err);
}
clxp_status prompts_load(const char *path, prompt_set *out, clxp_error *err) { return load(path, -1, out, err); }
