/* Output files: format names, atomic creation (temporary file + rename), dispatch to the formats. */
#include "output/writer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "output/writer_impl.h"
#include "util/error.h"

/* ---- format names ------------------------------------------------------------------------------------------ */

static const struct {
    const char *name;
    out_format fmt;
} format_names[] = {
    {"jsonl", OUT_JSONL}, {"ndjson", OUT_JSONL}, {"csv", OUT_CSV},   {"srt", OUT_SRT},
    {"vtt", OUT_VTT},     {"webvtt", OUT_VTT},   {"html", OUT_HTML}, {"htm", OUT_HTML},
};

static int lookup_format(const char *name, out_format *f) {
    for (size_t i = 0; i < sizeof format_names / sizeof format_names[0]; i++) {
        if (strcasecmp(name, format_names[i].name) == 0) {
            *f = format_names[i].fmt;
            return 1;
        }
    }
    return 0;
}

clxp_status out_format_parse(const char *name, out_format *f, clxp_error *err) {
    if (name && lookup_format(name, f)) return CLXP_OK;
    return clxp_err_set(err, CLXP_ERR_INVALID, "unknown output format '%s' (use jsonl, csv, srt, vtt or html)",
                        name ? name : "");
}

clxp_status out_format_from_path(const char *path, out_format *f, clxp_error *err) {
    const char *base = path ? strrchr(path, '/') : NULL;
    base = base ? base + 1 : path;
    const char *dot = base ? strrchr(base, '.') : NULL;
    if (dot && dot != base && strcasecmp(dot + 1, "webvtt") != 0 && lookup_format(dot + 1, f)) return CLXP_OK;
    return clxp_err_set(err, CLXP_ERR_INVALID,
                        "%s: cannot tell the output format from the file name (use .jsonl, .csv, .srt, .vtt or .html, "
                        "or give the format)",
                        path ? path : "");
}

const char *out_format_name(out_format f) {
    switch (f) {
    case OUT_JSONL: return "jsonl";
    case OUT_CSV: return "csv";
    case OUT_SRT: return "srt";
    case OUT_VTT: return "vtt";
    case OUT_HTML: return "html";
    }
    return "unknown";
}

static const out_format_ops *ops_for(out_format f) {
    switch (f) {
    case OUT_JSONL: return &out_jsonl_ops;
    case OUT_CSV: return &out_csv_ops;
    case OUT_SRT: return &out_srt_ops;
    case OUT_VTT: return &out_vtt_ops;
    case OUT_HTML: return &out_html_ops;
    }
    return NULL;
}

/* ---- helpers for the formats ----------------------------------------------------------------------------- */

clxp_status out_check_stream(out_writer *w, clxp_error *err) {
    if (!ferror(w->f)) return CLXP_OK;
    return clxp_err_set(err, CLXP_ERR_IO, "%s: write error: %s", w->path, strerror(errno ? errno : EIO));
}

static int rank_cmp(const void *pa, const void *pb) {
    const out_rank_pair *a = pa, *b = pb;
    if (a->p != b->p) return a->p > b->p ? -1 : 1;
    return (a->c > b->c) - (a->c < b->c);
}

int out_rank(const float *scores, int n, int k, float confidence, out_rank_pair *pairs, int *idx) {
    int m = 0;
    for (int c = 0; c < n; c++)
        if (scores[c] >= confidence) pairs[m++] = (out_rank_pair){scores[c], c};
    qsort(pairs, (size_t)m, sizeof *pairs, rank_cmp);
    if (k > 0 && k < m) m = k;
    for (int i = 0; i < m; i++) idx[i] = pairs[i].c;
    return m;
}

int64_t out_ms(double t) { return isfinite(t) && t > 0 && t < 9e12 ? (int64_t)llround(t * 1000.0) : 0; }

void out_format_ms(char *buf, size_t size, int64_t ms, char sep) {
    if (ms < 0) ms = 0;
    snprintf(buf, size, "%02" PRId64 ":%02d:%02d%c%03d", ms / 3600000, (int)(ms / 60000 % 60), (int)(ms / 1000 % 60),
             sep, (int)(ms % 1000));
}

double out_round(double x, int decimals) {
    double s = pow(10.0, decimals);
    if (!isfinite(x) || fabs(x) * s > 9e15) return x;
    double r = round(x * s) / s;
    return r == 0 ? 0.0 : r; /* no "-0" */
}

/* ---- files ------------------------------------------------------------------------------------------------- */

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* The directory part of path: "." without a slash, "/" for "/name". malloc'd, NULL if out of memory. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, path, n);
    d[n] = '\0';
    return d;
}

/* Create "<target>.XXXXXX.part" exclusively (XXXXXX random); returns the descriptor, or -1 with errno. */
static int create_temp(const char *target, char **tmp_out) {
    static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t n = strlen(target) + sizeof ".XXXXXX.part";
    char *t = malloc(n);
    if (!t) {
        errno = ENOMEM;
        return -1;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15u ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 32) ^
                 (uint64_t)(uintptr_t)t;
    for (int attempt = 0; attempt < 100; attempt++) {
        char rnd[7];
        for (int i = 0; i < 6; i++) {
            x ^= x << 13; /* xorshift64 */
            x ^= x >> 7;
            x ^= x << 17;
            rnd[i] = chars[x % (sizeof chars - 1)];
        }
        rnd[6] = '\0';
        snprintf(t, n, "%s.%s.part", target, rnd);
        int fd = open(t, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) {
            *tmp_out = t;
            return fd;
        }
        if (errno != EEXIST) break;
    }
    int e = errno;
    free(t);
    errno = e;
    return -1;
}

int out_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    return a && b && stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Checks of the path (see writer.h), then the temporary file, or the path itself for devices and FIFOs. */
static clxp_status open_file(out_writer *w, const out_options *o, clxp_error *err) {
    const char *path = w->path;
    struct stat st;
    int exists = 0;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return clxp_err_set(err, CLXP_ERR_IO, "%s: is a directory", path);
        if (o->input && out_same_file(path, o->input))
            return clxp_err_set(err, CLXP_ERR_INVALID, "%s: the output file is the input file", path);
        if (!S_ISREG(st.st_mode)) { /* /dev/null, a FIFO, a terminal: written directly */
            w->f = fopen(path, "w");
            if (!w->f) return clxp_err_set(err, CLXP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
            return CLXP_OK;
        }
        if (!o->overwrite)
            return clxp_err_set(err, CLXP_ERR_IO, "%s: already exists (use -y to overwrite)", path);
        exists = 1;
    } else if (errno != ENOENT) {
        return clxp_err_set(err, CLXP_ERR_IO, "%s: %s", path, strerror(errno));
    } else {
        char *dir = dir_of(path);
        if (!dir) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
        struct stat ds;
        int e = stat(dir, &ds) == 0 ? (S_ISDIR(ds.st_mode) ? 0 : ENOTDIR) : errno;
        if (e) {
            clxp_status s = clxp_err_set(err, CLXP_ERR_IO, "%s: directory %s %s", path, dir,
                                         e == ENOENT ? "does not exist" : strerror(e));
            free(dir);
            return s;
        }
        free(dir);
    }
    /* a symbolic link to a file: replace the file it points to, not the link */
    struct stat ls;
    if (exists && lstat(path, &ls) == 0 && S_ISLNK(ls.st_mode)) w->target = realpath(path, NULL);
    else w->target = strdup(path);
    if (!w->target) return clxp_err_set(err, CLXP_ERR_IO, "%s: %s", path, strerror(errno));

    int fd = create_temp(w->target, &w->tmp);
    if (fd < 0)
        return clxp_err_set(err, CLXP_ERR_IO, "%s: cannot create a temporary file next to it: %s", path,
                            strerror(errno));
    if (exists) (void)fchmod(fd, st.st_mode & 07777); /* keep the replaced file's permissions; best effort */
    w->f = fdopen(fd, "w");
    if (!w->f) {
        int e = errno;
        close(fd);
        return clxp_err_set(err, CLXP_ERR_IO, "%s: cannot open %s: %s", path, w->tmp, strerror(e));
    }
    return CLXP_OK;
}

static void free_writer(out_writer *w) {
    if (w->ops && w->ops->free_state) w->ops->free_state(w->state);
    for (int i = 0; i < w->n_banks; i++) agg_units_free(&w->banks[i].units);
    free(w->path);
    free(w->target);
    free(w->tmp);
    free(w->input);
    free(w->model);
    for (int i = 0; i < w->n_sources; i++) free(w->sources[i]);
    free(w->sources);
    free(w);
}

void out_abort(out_writer *w) {
    if (!w) return;
    if (w->f && !w->is_stdout) fclose(w->f);
    else if (w->f) fflush(w->f);
    if (w->tmp) unlink(w->tmp);
    free_writer(w);
}

const char *out_partial_path(const out_writer *w) { return w ? w->tmp : NULL; }

const char *out_source_name(const out_writer *w, int source) {
    return source >= 0 && source < w->n_sources ? w->sources[source] : NULL;
}

/* per_input: the input of r, appended when it differs from the previous result's; -1 if out of memory. */
static int source_of(out_writer *w, const clxp_result *r) {
    if (!w->per_input) return 0;
    const char *name = r->input ? r->input : "";
    if (w->n_sources > 0 && strcmp(w->sources[w->n_sources - 1], name) == 0) return w->n_sources - 1;
    if (w->n_sources == w->cap_sources) {
        int cap = w->cap_sources ? 2 * w->cap_sources : 8;
        char **p = realloc(w->sources, (size_t)cap * sizeof *p);
        if (!p) return -1;
        w->sources = p;
        w->cap_sources = cap;
    }
    if (!(w->sources[w->n_sources] = strdup(name))) return -1;
    return w->n_sources++;
}

const out_bank *out_bank_of(const out_writer *w, const clxp_result *r) {
    if (!r->bank) return &w->banks[0];
    for (int i = 0; i < w->n_banks; i++)
        if (w->banks[i].bank == r->bank) return &w->banks[i];
    return NULL;
}

clxp_status out_open(const char *path, out_format fmt, const clxp_labelbank *bank, const out_options *o,
                     out_writer **out, clxp_error *err) {
    return out_open_banks(path, fmt, &bank, 1, o, out, err);
}

clxp_status out_open_banks(const char *path, out_format fmt, const clxp_labelbank *const *banks, int n_banks,
                           const out_options *o, out_writer **out, clxp_error *err) {
    *out = NULL;
    if (!path || !*path) return clxp_err_set(err, CLXP_ERR_INVALID, "empty output path");
    if (!banks || n_banks < 1 || n_banks > OUT_MAX_BANKS)
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: 1 to %d label banks are needed", path, OUT_MAX_BANKS);
    for (int i = 0; i < n_banks; i++)
        if (!banks[i]) return clxp_err_set(err, CLXP_ERR_INVALID, "%s: no label bank", path);
    const out_format_ops *ops = ops_for(fmt);
    if (!ops) return clxp_err_set(err, CLXP_ERR_INVALID, "%s: unknown output format %d", path, (int)fmt);
    const out_options defaults = {0};
    if (!o) o = &defaults;

    out_writer *w = calloc(1, sizeof *w);
    if (!w) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    w->fmt = fmt;
    int banks_ok = 1;
    for (int i = 0; i < n_banks; i++) {
        out_bank *b = &w->banks[i];
        b->bank = banks[i];
        b->n_classes = clxp_labelbank_n_classes(banks[i]);
        b->n_units = clxp_labelbank_n_units(banks[i]);
        b->top_k = o->top_k <= 0 || o->top_k > b->n_classes ? b->n_classes : o->top_k;
        if (b->n_classes > w->max_classes) w->max_classes = b->n_classes;
        if (b->n_units > w->max_classes) w->max_classes = b->n_units;
        w->n_banks = i + 1;
        if (agg_units_init(&b->units, banks[i]) != CLXP_OK) banks_ok = 0;
    }
    w->confidence = o->confidence;
    w->overwrite = o->overwrite;
    w->per_input = o->per_input != 0;
    w->path = strdup(path);
    w->input = dup_or_null(o->input);
    w->model = dup_or_null(o->model);
    clxp_status st = CLXP_OK;
    if (!w->path || (o->input && !w->input) || (o->model && !w->model) || !banks_ok) {
        free_writer(w);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    if (strcmp(path, "-") == 0) {
        w->is_stdout = 1;
        w->f = stdout;
    } else {
        st = open_file(w, o, err);
    }
    /* ops is set only now so that a failed open does not free a state that was never made */
    if (st == CLXP_OK) {
        w->ops = ops;
        st = ops->begin(w, err);
    }
    if (st == CLXP_OK) st = out_check_stream(w, err);
    if (st != CLXP_OK) {
        out_abort(w);
        return st;
    }
    *out = w;
    return CLXP_OK;
}

/* Remember the first failure: every later call reports it again. */
static clxp_status fail(out_writer *w, clxp_status st, clxp_error *err) {
    w->failed = *err;
    w->failed.code = st;
    return st;
}

clxp_status out_write(out_writer *w, const clxp_result *r, clxp_error *err) {
    clxp_error local;
    if (!err) err = &local;
    if (!w || !r) return clxp_err_set(err, CLXP_ERR_INVALID, "out_write: no writer or no result");
    if (w->failed.code != CLXP_OK) {
        *err = w->failed;
        return w->failed.code;
    }
    clxp_status st;
    const out_bank *b = out_bank_of(w, r);
    if (!b)
        st = clxp_err_set(err, CLXP_ERR_INVALID, "%s: a result of a label bank this output was not opened with",
                          w->path);
    else if (r->n_classes != b->n_classes || (r->n_classes > 0 && !r->scores))
        st = clxp_err_set(err, CLXP_ERR_INVALID, "%s: a result has %d scores, the label bank has %d classes",
                          w->path, r->n_classes, b->n_classes);
    else if ((w->source = source_of(w, r)) < 0) st = clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", w->path);
    else st = w->ops->write(w, b, r, err);
    if (st == CLXP_OK) st = out_check_stream(w, err);
    return st == CLXP_OK ? CLXP_OK : fail(w, st, err);
}

/* Move the finished temporary file to its place; without overwrite, never over a file that appeared meanwhile. */
static clxp_status publish(out_writer *w, clxp_error *err) {
    int r;
    if (w->overwrite) {
        r = rename(w->tmp, w->target);
    } else {
        r = renameat2(AT_FDCWD, w->tmp, AT_FDCWD, w->target, RENAME_NOREPLACE);
        if (r != 0 && (errno == EINVAL || errno == ENOSYS)) { /* a file system without RENAME_NOREPLACE */
            struct stat st;
            if (lstat(w->target, &st) == 0) errno = EEXIST;
            else r = rename(w->tmp, w->target);
        }
    }
    if (r == 0) {
        char *dir = dir_of(w->target); /* make the rename itself durable; best effort */
        int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dir);
        free(w->tmp);
        w->tmp = NULL;
        return CLXP_OK;
    }
    if (errno == EEXIST) {
        clxp_status s = clxp_err_set(err, CLXP_ERR_IO,
                                     "%s: appeared while writing and was not replaced (use -y to overwrite); "
                                     "the output is in %s",
                                     w->path, w->tmp);
        free(w->tmp); /* keep the finished output */
        w->tmp = NULL;
        return s;
    }
    return clxp_err_set(err, CLXP_ERR_IO, "%s: cannot rename %s to it: %s", w->path, w->tmp, strerror(errno));
}

clxp_status out_close(out_writer *w, clxp_error *err) {
    clxp_error local;
    if (!err) err = &local;
    if (!w) return clxp_err_set(err, CLXP_ERR_INVALID, "out_close: no writer");
    clxp_status st = w->failed.code;
    if (st != CLXP_OK) *err = w->failed;
    if (st == CLXP_OK) st = w->ops->finish(w, err);
    if (st == CLXP_OK && (fflush(w->f) != 0 || ferror(w->f)))
        st = clxp_err_set(err, CLXP_ERR_IO, "%s: write error: %s", w->path, strerror(errno ? errno : EIO));
    if (w->is_stdout) {
        w->f = NULL;
        free_writer(w);
        return st;
    }
    if (st == CLXP_OK && w->tmp && fsync(fileno(w->f)) != 0)
        st = clxp_err_set(err, CLXP_ERR_IO, "%s: fsync: %s", w->path, strerror(errno));
    int closed = fclose(w->f);
    w->f = NULL;
    if (st == CLXP_OK && closed != 0)
        st = clxp_err_set(err, CLXP_ERR_IO, "%s: write error: %s", w->path, strerror(errno));
    if (st == CLXP_OK && w->tmp) st = publish(w, err);
    out_abort(w); /* removes the temporary file if it is still there */
    return st;
}
