#include "util/fileio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/error.h"

clxp_status clxp_read_file(const char *path, size_t max_bytes, char **out, size_t *len, clxp_error *err) {
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return clxp_err_set(err, CLXP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return clxp_err_set(err, CLXP_ERR_IO, "%s: not a regular file", path);
    }
    if ((unsigned long long)st.st_size > max_bytes) {
        fclose(f);
        return clxp_err_set(err, CLXP_ERR_LIMIT, "%s: file is %lld bytes, more than the limit of %zu", path,
                            (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n + 1);
    }
    size_t got = n ? fread(buf, 1, n, f) : 0;
    int rd_err = ferror(f);
    fclose(f);
    if (got != n || rd_err) {
        free(buf);
        return clxp_err_set(err, CLXP_ERR_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return CLXP_OK;
}

clxp_status clxp_write_file_atomic(const char *path, const void *data, size_t len, clxp_error *err) {
    size_t n = strlen(path);
    char *tmp = malloc(n + 6);
    if (!tmp) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".part", 6);
    clxp_status st = CLXP_OK;
    FILE *f = fopen(tmp, "wb");
    if (!f) st = clxp_err_set(err, CLXP_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    else {
        int bad = len && fwrite(data, 1, len, f) != len;
        bad |= fflush(f) != 0;
        bad |= fclose(f) != 0;
        if (bad || rename(tmp, path) != 0) {
            st = clxp_err_set(err, CLXP_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
            remove(tmp);
        }
    }
    free(tmp);
    return st;
}

char *clxp_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] != '/';
    char *p = malloc(a + (size_t)slash + b + 1);
    if (!p) return NULL;
    memcpy(p, dir, a);
    if (slash) p[a] = '/';
    memcpy(p + a + slash, name, b + 1);
    return p;
}

int clxp_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int clxp_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}
