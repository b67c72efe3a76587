/* safetensors writer (the format read by io/safetensors.h).
 *
 * Layout written: u64 little-endian header length N, N bytes of JSON, then the data section.
 * The header is {"__metadata__": {..}, "<name>": {"dtype", "shape", "data_offsets"}, ...} with the metadata
 * first (only when there is some), tensors sorted by name (strcmp), no whitespace, padded with trailing spaces
 * so that 8 + N is a multiple of 8 (the data section starts 8-byte aligned). Tensor data is laid out
 * contiguously in the same sorted order. Data is copied byte for byte: the caller provides it little-endian.
 *
 * The file is written to a temporary file in the destination directory, flushed to disk, then renamed over
 * path, so readers never see a partial file and a failure leaves any previous file untouched.
 */
#ifndef CLXP_IO_SAFETENSORS_WRITE_H
#define CLXP_IO_SAFETENSORS_WRITE_H

#include <stdint.h>

#include "clxp.h"
#include "io/safetensors.h"

typedef struct st_write_tensor {
    const char *name;      /* non-empty UTF-8, unique, not "__metadata__" */
    st_dtype dtype;
    int ndim;              /* 0..ST_MAX_DIMS (0: a scalar) */
    const int64_t *shape;  /* ndim non-negative sizes (may be NULL when ndim == 0) */
    const void *data;      /* product(shape) * st_dtype_size(dtype) bytes (may be NULL when that is 0) */
} st_write_tensor;

typedef struct st_write_meta {
    const char *key, *value; /* UTF-8 strings; keys unique */
} st_write_meta;

/* Write n tensors and n_meta metadata entries (meta may be NULL when n_meta == 0) to path.
 * Invalid input (duplicate or empty names, bad dtype/shape, invalid UTF-8): CLXP_ERR_INVALID;
 * I/O failures: CLXP_ERR_IO naming the path. */
clxp_status st_write(const char *path, const st_write_tensor *tensors, int n, const st_write_meta *meta, int n_meta,
                     clxp_error *err);

#endif
