/* Reader for PyTorch checkpoint files as users have them: torch.save zip archives (state dicts, also nested in
 * {'model': ...} / {'state_dict': ...}) and TorchScript archives (torch.jit.script / trace .save). The layout is
 * specified in shared/golden/openclip-tiny-quickgelu/README.md ("On-disk structure").
 *
 * Container: a ZIP read with libzip (central directory, stored and deflated entries, ZIP64, CRC-checked reads).
 * Records are looked up by name under the archive's top folder, taken from the first central-directory entry
 * (as torch does; the folder is the saved file's base name or "archive"). Declared entry sizes are checked against
 * the archive size (stored entries), TORCH_MAX_RECORD_BYTES and, for storages, against the element count the
 * pickle declares, before anything is allocated.
 *
 * Records used: data.pkl (the pickle, see io/unpickle.h), data/<key> (raw little-endian storages), constants.pkl +
 * constants/<key> (TorchScript constants), byteorder ("little"; "big" is refused: this reader is little-endian
 * only), version or .data/version (a decimal 1..TORCH_MAX_VERSION). Others (code/, *.debug_pkl,
 * .data/serialization_id, .format_version, .storage_alignment, extra/) are ignored.
 * A file that is not a ZIP but a pickle (torch.save(..., _use_new_zipfile_serialization=False), torch < 1.6) is
 * refused as the legacy format; TorchScript's pre-1.4 model.json format as well.
 *
 * Kinds (torch_kind):
 *   "state_dict"                 data.pkl is a dict name -> tensor (collections.OrderedDict or dict)
 *   "state_dict['model']"        {'model': state dict, ...} (MS-CLAP .pth)
 *   "state_dict['state_dict']"   {'state_dict': state dict, ...} (training checkpoints)
 *   with " (module. stripped)"   appended when every name started with "module." (DataParallel), removed here.
 *   "torchscript"                constants.pkl present: data.pkl is the module object tree (__torch__.* objects
 *                                whose BUILD state is their attribute dict); parameters and buffers are named by
 *                                their attribute path from the root (= the state-dict names).
 * Non-tensor values in a state dict are ignored.
 *
 * Tensors come out as st_tensor (io/safetensors.h): the storage's dtype (F32/F16/BF16/F64/I64/I32/I16/I8/U8/BOOL,
 * not converted), the shape, and contiguous row-major data: a view into the storage when the tensor is contiguous,
 * else a gathered copy (strides and offset applied). All data is owned by the torch_file and stays valid until
 * torch_close. Every storage element a tensor touches is checked to lie inside its storage record, and a storage
 * record must hold exactly numel x element size bytes.
 *
 * Memory: every storage record a tensor references is read once into its own buffer (64-byte-aligned data offsets
 * in the file do not matter then; malloc alignment suffices for every dtype); unreferenced records (code/, debug
 * pickles, unused storages) are never read. Limits (CLXP_ERR_LIMIT): TORCH_MAX_RECORD_BYTES per record and per
 * tensor, TORCH_MAX_PICKLE_BYTES per pickle, the unpickler's bounds (io/unpickle.h), at most 2^18 entries and 64 MiB
 * of names from a module tree, and gathered copies of strided views at most the archive size + 256 MiB in all (a few
 * elements expanded with zero strides cannot become gigabytes). Compressed entries must declare a possible deflate
 * ratio (< 1100:1).
 */
#ifndef CLXP_IO_TORCHZIP_H
#define CLXP_IO_TORCHZIP_H

#include <stddef.h>
#include <stdint.h>

#include "clxp.h"
#include "io/safetensors.h"

/* Largest single record (storage or pickle after decompression) read. */
#define TORCH_MAX_RECORD_BYTES ((uint64_t)8 << 30)
/* Largest pickle record (data.pkl, constants.pkl). */
#define TORCH_MAX_PICKLE_BYTES ((uint64_t)256 << 20)
/* Largest archive format version accepted (torch 2.x writes up to 10). */
#define TORCH_MAX_VERSION 64

typedef struct torch_file torch_file;

/* Open and read everything (the archive is closed again before returning). Errors name the path: CLXP_ERR_IO
 * (unreadable), CLXP_ERR_FORMAT (malformed zip/pickle/tensor), CLXP_ERR_UNSUPPORTED (forbidden GLOBAL or opcode,
 * legacy format, big-endian storages, unknown module layout), CLXP_ERR_LIMIT (a bound), CLXP_ERR_NOMEM. */
clxp_status torch_open(const char *path, torch_file **out, clxp_error *err);
/* The same on len bytes in memory (not kept after the call); `name` stands for the path (NULL: "(memory)"). */
clxp_status torch_open_memory(const void *buf, size_t len, const char *name, torch_file **out, clxp_error *err);
void torch_close(torch_file *f);

const char *torch_path(const torch_file *f);
const char *torch_kind(const torch_file *f);
int torch_is_torchscript(const torch_file *f);

/* The named tensors, in file order. */
int torch_count(const torch_file *f);
const st_tensor *torch_at(const torch_file *f, int i);
const st_tensor *torch_find(const torch_file *f, const char *name); /* NULL if absent */

/* TorchScript only (0 / NULL otherwise). Module objects: attribute path ("" for the root) and class name as written
 * in the file, e.g. "__torch__.open_clip.transformer.QuickGELU" or, for traced modules,
 * "__torch__.clip.model.___torch_mangle_12.QuickGELU" (compare the last component to ignore mangling). */
int torch_module_count(const torch_file *f);
const char *torch_module_path(const torch_file *f, int i);
const char *torch_module_class_at(const torch_file *f, int i);
const char *torch_module_class(const torch_file *f, const char *path); /* NULL if no module object there */
/* Distinct class names in order of first appearance. */
int torch_class_count(const torch_file *f);
const char *torch_class_at(const torch_file *f, int i);
/* Scalar attributes of module objects by path ("visual.transformer.resblocks.0.attn.num_heads"): 1 if found.
 * torch_attr_int accepts int and bool attributes, torch_attr_float float and int ones. */
int torch_attr_int(const torch_file *f, const char *path, int64_t *out);
int torch_attr_float(const torch_file *f, const char *path, double *out);
const char *torch_attr_str(const torch_file *f, const char *path); /* NULL if absent or not a str */
/* Tensors of constants.pkl (CONSTANTS.c<i> in the TorchScript code), named "c<i>". */
int torch_const_count(const torch_file *f);
const st_tensor *torch_const_at(const torch_file *f, int i);
const st_tensor *torch_const_find(const torch_file *f, const char *name);

#endif
