/* Whole-file reading with a size limit, and cJSON loading helpers. */
#ifndef CLXP_UTIL_FILEIO_H
#define CLXP_UTIL_FILEIO_H

#include <stddef.h>

#include "clxp.h"

/* Largest JSON file clxp parses (tokenizer.json of real models is ~4 MB). */
#define CLXP_MAX_JSON_BYTES ((size_t)256 << 20)

/* Read a whole file into a NUL-terminated malloc'd buffer (caller frees). Fails with a message
 * naming the path when missing/unreadable (CLXP_ERR_IO) or larger than max_bytes (CLXP_ERR_LIMIT). */
clxp_status clxp_read_file(const char *path, size_t max_bytes, char **out, size_t *len, clxp_error *err);

/* Write len bytes to path through path.part, flushed and renamed over path (readers never see a partial file; a
 * failure leaves any previous file untouched). Errors name the file (CLXP_ERR_IO). */
clxp_status clxp_write_file_atomic(const char *path, const void *data, size_t len, clxp_error *err);

/* Join dir and name into a malloc'd path (caller frees); NULL on allocation failure. */
char *clxp_path_join(const char *dir, const char *name);

/* 1 if path exists and is a regular file / a directory. */
int clxp_is_file(const char *path);
int clxp_is_dir(const char *path);

#endif
