/* safetensors reader: mmap the file, validate the header strictly, expose tensors in place.
 *
 * Format: u64 little-endian header length N, N bytes of UTF-8 JSON
 *   { "name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {..} }
 * then the data section; offsets are relative to the start of the data section.
 * Validation: JSON well-formed, known dtype, shape product x dtype size == end - begin (no overflow),
 * offsets inside the file, no two tensors overlapping, no duplicate names.
 */
#ifndef CLXP_IO_SAFETENSORS_H
#define CLXP_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "clxp.h"

typedef enum st_dtype {
    ST_F64, ST_F32, ST_F16, ST_BF16, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL
} st_dtype;

#define ST_MAX_DIMS 8

typedef struct st_tensor {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    size_t nbytes;
    const void *data; /* points into the mapping; valid until st_close */
} st_tensor;

typedef struct st_file st_file;

clxp_status st_open(const char *path, st_file **out, clxp_error *err);
/* Same validation on len bytes in memory (for fuzzing and tests). The buffer is not copied: it must stay
 * valid and unchanged until st_close, and tensor data points into it (not necessarily aligned). `name`
 * stands for the path in messages and st_path (NULL: "(memory)"). */
clxp_status st_open_memory(const void *buf, size_t len, const char *name, st_file **out, clxp_error *err);
void st_close(st_file *f);
/* Drop the mapping's pages from this process's memory (they are read again from the file if touched): after the
 * model has packed the weights it needs, the file's copy need not stay resident. No-op for in-memory files. */
void st_release_pages(st_file *f);

const char *st_path(const st_file *f);
int st_count(const st_file *f);
const st_tensor *st_at(const st_file *f, int i);
const st_tensor *st_find(const st_file *f, const char *name); /* NULL if absent */
const char *st_metadata(const st_file *f, const char *key);   /* NULL if absent */

const char *st_dtype_name(st_dtype t);
size_t st_dtype_size(st_dtype t);

/* Convert any floating dtype (F64/F32/F16/BF16) to float32; returns CLXP_ERR_UNSUPPORTED for others. */
clxp_status st_to_f32(const st_tensor *t, float *dst, clxp_error *err);

/* Half-precision conversions (also used by other modules). */
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t h);

#endif
