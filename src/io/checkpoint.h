/* Model files as users have them, turned into what the engine loads: a Hugging Face CLIP/CLAP directory
 * (config.json, model.safetensors tensors with HF names, tokenizer.json, preprocessor_config.json).
 *
 * Formats (ckpt_format):
 *   hf-safetensors   a HF directory with model.safetensors / model.safetensors.index.json: loaded as it is
 *   hf-pytorch       a HF directory (or its pytorch_model.bin) whose weights are pytorch_model.bin (torch.save zip):
 *                    HF names, the directory's config.json (CLIP or CLAP), tokenizer and preprocessor files
 *   open_clip        an open_clip state dict (open_clip_pytorch_model.bin, open_clip_model.safetensors, or any
 *                    .bin/.pt/.pth state dict with open_clip/OpenAI names), with open_clip_config.json from the same
 *                    directory when present (model_cfg: heads, quick_gelu; preprocess_cfg: mean/std, ...)
 *   torchscript      torch.jit.script of an open_clip CLIP: heads from each MultiheadAttention's num_heads,
 *                    activation from the class of mlp.gelu (QuickGELU or GELU)
 *   openai           an OpenAI-style traced archive (ViT-B-32.pt layout): no hyperparameters stored; heads =
 *                    width / 64 (OpenAI's rule) unless overridden, QuickGELU
 * For every format but hf-*, the configuration comes from the tensor shapes (widths, patch size, grid, layers, MLP
 * sizes, context length, vocabulary, projection) and the names are mapped to HF's: in_proj split into q/k/v,
 * visual.proj and text_projection transposed, the rest copied (see README "Model files"). Tensors keep their dtype
 * (float16 ones are converted to float32 once, when the model takes them).
 *
 * -m precedence in a directory: model.safetensors(.index.json) > pytorch_model.bin (with config.json) >
 * open_clip_model.safetensors > open_clip_pytorch_model.bin > the only *.pt / *.pth / *.bin file; several
 * candidates of the last kind are an error naming them. */
#ifndef CLXP_IO_CHECKPOINT_H
#define CLXP_IO_CHECKPOINT_H

#include "clxp.h"
#include "io/safetensors.h"
#include "io/weights.h"

typedef enum ckpt_format {
    CKPT_HF_SAFETENSORS,
    CKPT_HF_PYTORCH,
    CKPT_OPENCLIP,
    CKPT_TORCHSCRIPT,
    CKPT_OPENAI
} ckpt_format;

typedef struct ckpt_options {
    const char *tokenizer;        /* tokenizer.json or CLIP merges.txt for files without one (NULL: built in) */
    int vision_heads, text_heads; /* > 0: override the attention head counts */
} ckpt_options;

typedef struct ckpt_model ckpt_model;

/* Open path (directory or file) and work out everything (no temporary files). */
clxp_status ckpt_open(const char *path, const ckpt_options *opt, ckpt_model **out, clxp_error *err);
void ckpt_free(ckpt_model *c);

ckpt_format ckpt_get_format(const ckpt_model *c);
const char *ckpt_format_name(ckpt_format f); /* "hf-safetensors", "open_clip", ... */
/* One line: the file used and how it was mapped, e.g. "open_clip state dict open_clip_pytorch_model.bin + ...". */
const char *ckpt_description(const ckpt_model *c);
const char *ckpt_weights_file(const ckpt_model *c);
/* The directory holding config.json etc. for hf-* formats (NULL for the others: use ckpt_write_dir). */
const char *ckpt_hf_dir(const ckpt_model *c);

/* The tensors under their HF names (valid until ckpt_free or ckpt_take_weights). */
int ckpt_count(const ckpt_model *c);
const st_tensor *ckpt_at(const ckpt_model *c, int i);

/* Write config.json, preprocessor_config.json, tokenizer.json (and, with_weights, model.safetensors) into the
 * existing directory dir. For hf-* formats the directory's own files are copied (tokenizer_config.json and
 * special_tokens_map.json too when present). */
clxp_status ckpt_write_dir(const ckpt_model *c, const char *dir, int with_weights, clxp_error *err);

/* A weight set over the mapped tensors; the ckpt_model's tensor data moves into it (c keeps its description; its
 * tensors are gone afterwards). */
clxp_status ckpt_take_weights(ckpt_model *c, weights **out, clxp_error *err);

/* What the model loader uses: the directory to load from and what to undo afterwards. For hf-safetensors this is the
 * directory itself; hf-pytorch hands over the weights (w) for the directory's config; the other formats write
 * the config files to a new temporary directory and hand over the weights to load with them. */
typedef struct ckpt_prepared {
    char *dir;       /* load from here */
    char *tmpdir;    /* removed by ckpt_prepared_done (NULL if none) */
    weights *w;      /* the mapped weights to load dir's model with (NULL: dir's own model.safetensors); owned
                        until taken */
    char *format;    /* ckpt_format_name */
    char *description;
    char *weights_file;
} ckpt_prepared;

clxp_status ckpt_prepare(const char *path, const ckpt_options *opt, ckpt_prepared *p, clxp_error *err);
/* Removes the temporary directory and any weights nobody took; keeps format/description/weights_file (freed by
 * ckpt_prepared_free). */
void ckpt_prepared_done(ckpt_prepared *p);
void ckpt_prepared_free(ckpt_prepared *p);

#endif
