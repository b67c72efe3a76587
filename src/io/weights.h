/* A model's weights: one model.safetensors or the shards listed by model.safetensors.index.json.
 * Tensors are looked up by their Hugging Face names, shape-checked, and handed out as float32:
 * aligned F32 data is used in place from the mapping, other float dtypes are converted once into
 * buffers owned by the weight set. Every name looked up is recorded so that unexpected extra tensors
 * can be reported afterwards. */
#ifndef CLXP_IO_WEIGHTS_H
#define CLXP_IO_WEIGHTS_H

#include <stdint.h>

#include "clxp.h"
#include "io/safetensors.h"

typedef struct weights weights;

/* dir: a model directory holding model.safetensors or model.safetensors.index.json. */
clxp_status weights_open_dir(const char *dir, weights **out, clxp_error *err);
void weights_free(weights *w);
/* Release the resident pages of the mapped files (st_release_pages); tensors stay readable. */
void weights_release_pages(weights *w);

/* A weight set over n tensors in memory (other checkpoint formats, io/checkpoint.h). The array and the data stay
 * owned by the caller until weights_free, which then calls release(owner) (release may be NULL). On failure
 * release(owner) has been called. `source` names the set in messages. */
clxp_status weights_from_memory(const char *source, const st_tensor *tensors, int n, void (*release)(void *),
                                void *owner, weights **out, clxp_error *err);

/* The tensor called name, or NULL if absent (records the name as used). */
const st_tensor *weights_find(weights *w, const char *name);

/* Float32 view of the tensor `name` whose shape must be exactly dims[0..ndim). Missing tensor,
 * wrong shape or non-float dtype: an error naming the tensor, the expected and the actual shape. */
clxp_status weights_f32(weights *w, const char *name, int ndim, const int64_t *dims, const float **out,
                        clxp_error *err);

/* Report tensors present in the files but never looked up, skipping names for which ignore(name) is 1.
 * Returns CLXP_ERR_FORMAT listing (some of) them by name. */
clxp_status weights_check_unused(const weights *w, int (*ignore)(const char *name), clxp_error *err);

/* Summary for `clxp info`: number of tensors, parameters, and the dtype of the floating-point tensors ("F32",
 * "F16", ..., "mixed"). */
int weights_count(const weights *w);
int64_t weights_numel(const weights *w);
const char *weights_dtype(const weights *w);
const char *weights_source(const weights *w); /* file name (or index file) the weights came from */

#endif
