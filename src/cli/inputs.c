/* Directory arguments of `clxp classify` expanded to the media files below them (see inputs.h). */
#include "cli/inputs.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "media/video.h"
#include "util/error.h"

static clxp_status add(cli_inputs *in, int *cap, const char *path, clxp_error *err) {
    if (in->n >= CLI_MAX_INPUTS)
        return clxp_err_set(err, CLXP_ERR_LIMIT, "%s: more than %d inputs", path, CLI_MAX_INPUTS);
    if (in->n == *cap) {
        int c = *cap ? 2 * *cap : 64;
        char **p = realloc(in->path, (size_t)c * sizeof *p);
        if (!p) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
        in->path = p;
        *cap = c;
    }
    if (!(in->path[in->n] = strdup(path))) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    in->n++;
    return CLXP_OK;
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The entries of dir, hidden ones left out (counted in in->skipped), sorted bytewise. */
static clxp_status list_dir(cli_inputs *in, const char *dir, char ***out, size_t *n_out, clxp_error *err) {
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(dir);
    if (!d) return clxp_err_set(err, CLXP_ERR_IO, "%s: cannot read the directory: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    clxp_status st = CLXP_OK;
    struct dirent *e;
    while (st == CLXP_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') { /* ".", "..", hidden entries */
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) in->skipped++;
            continue;
        }
        if (n == cap) {
            size_t c = cap ? 2 * cap : 32;
            char **p = realloc(names, c * sizeof *p);
            if (!p) {
                st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
                break;
            }
            names = p;
            cap = c;
        }
        if (!(names[n] = strdup(e->d_name))) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
        else n++;
    }
    closedir(d);
    if (st == CLXP_OK && n > 1) qsort(names, n, sizeof *names, cmp_names);
    *out = names;
    *n_out = n;
    return st;
}

/* The media files below dir, appended to in (depth guards against absurd nesting). */
static clxp_status walk(cli_inputs *in, int *cap, const char *dir, int depth, clxp_error *err) {
    if (depth > 64) return clxp_err_set(err, CLXP_ERR_LIMIT, "%s: directories nested more than 64 deep", dir);
    char **names = NULL;
    size_t n = 0;
    clxp_status st = list_dir(in, dir, &names, &n, err);
    const size_t dl = strlen(dir);
    const char *sep = dl > 0 && dir[dl - 1] == '/' ? "" : "/";
    for (size_t i = 0; i < n && st == CLXP_OK; i++) {
        size_t len = dl + strlen(names[i]) + 2;
        char *path = malloc(len);
        if (!path) {
            st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
            break;
        }
        snprintf(path, len, "%s%s%s", dir, sep, names[i]);
        struct stat ls, s;
        if (lstat(path, &ls) != 0 || stat(path, &s) != 0) in->skipped++; /* vanished, or a dangling link */
        else if (S_ISDIR(s.st_mode) && S_ISLNK(ls.st_mode)) in->skipped++; /* a link to a directory: no loops */
        else if (S_ISDIR(s.st_mode)) st = walk(in, cap, path, depth + 1, err);
        else if (S_ISREG(s.st_mode) && media_probe_file(path)) st = add(in, cap, path, err);
        else in->skipped++;
        free(path);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return st;
}

clxp_status cli_inputs_expand(char *const *args, int n_args, cli_inputs *out, clxp_error *err) {
    memset(out, 0, sizeof *out);
    int cap = 0;
    clxp_status st = CLXP_OK;
    for (int i = 0; i < n_args && st == CLXP_OK; i++) {
        struct stat s;
        if (stat(args[i], &s) != 0 || !S_ISDIR(s.st_mode)) {
            st = add(out, &cap, args[i], err);
            continue;
        }
        const int before = out->n;
        st = walk(out, &cap, args[i], 0, err);
        if (st == CLXP_OK && out->n == before)
            st = clxp_err_set(err, CLXP_ERR_INVALID,
                              "%s: a directory without any image, video or audio file (files below it are probed, "
                              "hidden ones skipped)",
                              args[i]);
    }
    if (st != CLXP_OK) cli_inputs_free(out);
    return st;
}

void cli_inputs_free(cli_inputs *in) {
    for (int i = 0; i < in->n; i++) free(in->path[i]);
    free(in->path);
    memset(in, 0, sizeof *in);
}
