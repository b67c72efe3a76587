/* Reading the reference data of the golden tests (tests/golden.c): tensors of golden.safetensors files and the
 * WAV inputs, as the golden READMEs define them. */
#ifndef CLXP_TESTS_GOLDEN_H
#define CLXP_TESTS_GOLDEN_H

#include <stddef.h>
#include <stdint.h>

#include "io/safetensors.h"

/* Tensor `name` of g converted to float32 (malloc'd; NULL when absent or not convertible); its element count in
 * *numel (may be NULL). */
float *golden_f32(const st_file *g, const char *name, int64_t *numel);
/* Element i of an integer tensor (I64, or BOOL/U8 as 0/1); 0 for other dtypes. */
int64_t golden_i64(const st_tensor *t, int64_t i);
/* A RIFF/WAVE file of PCM s16le mono, decoded as sample / 32768.0 (the golden READMEs' convention): the samples
 * (malloc'd), their number and the rate; NULL (with a message) when the file is not such a file. */
float *golden_read_wav(const char *path, size_t *n_out, int *rate_out);

#endif
