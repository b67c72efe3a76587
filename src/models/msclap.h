/* Microsoft CLAP 2023 ("msclap" 1.3.3, microsoft/CLAP e8a6467), float32: HTS-AT audio encoder + GPT-2 text encoder,
 * loaded from the checkpoint as users have it (CLAP_weights_2023.pth: a torch zip holding {'model': state_dict}) or
 * a safetensors copy with the same names. Every convention is the one spelled out in
 * shared/golden/msclap-tiny-2023/README.md; the ones that differ from LAION / HF CLAP (models/clap.h):
 *
 * Audio (msclap/models/htsat.py HTSAT_Swin_Transformer, on log-mel features [B, T <= 1024, 64], T = 965 for 7 s):
 *   bn0 over the mel bins (eval), time resized to spec_size * 4 = 1024 with bicubic align_corners=True, folded to a
 *   256 x 256 image (row = chunk * 64 + mel, column = frame within the 256-frame chunk), patch embed Conv2d(1 -> E,
 *   4, 4) + LayerNorm, Swin stages (norm1 / fused attn.qkv / attn.proj / norm2 / mlp.fc1 -> exact GELU -> fc2;
 *   odd blocks shifted by window / 2, -100 mask; q scaled by d^-0.5; relative position bias), PatchMerging
 *   (x00, x10, x01, x11 -> LN -> Linear without bias) after every stage but the last, final norm, mean over the
 *   tokens (latent_output).
 * Text (transformers GPT2Model): h = wte[ids] + wpe[0..T-1]; pre-LN blocks (ln_1, c_attn with Conv1D weights stored
 *   [in, out], causal + padding mask, c_proj; ln_2, c_fc -> gelu_new (tanh form) -> c_proj); ln_f; pooled at
 *   index count(ids != 0) - 1 (msclap's TextEncoder: every '!' is id 0 and moves the index left, reproduced).
 * Projections (clap.py Projection), both towers: e1 = linear1(x) (no bias), out = LayerNorm(e1 + linear2(gelu(e1))).
 * Scores: one learned scale, similarity = exp(logit_scale) t . a on L2-normalised embeddings.
 *
 * Configuration: msclap hard-codes it; here it is read from the tensor shapes (HTS-AT embed dim, depths, heads from
 * the relative position tables, window; GPT-2 vocab, positions, width, layers; projection size). GPT-2's head count
 * is in no shape: it is the YAML's gpt2.n_head when an msclap config (*.yml / *.yaml with audioenc_name) lies next
 * to the checkpoint, else n_embd / 64 (GPT-2's rule: 12 for the real 768-wide model). The YAML's sampling_rate,
 * duration and text_len are read too (defaults 44100, 7, 77). Unknown tensors are ignored, as msclap's
 * load_state_dict(strict=False) does; the front end's STFT kernels and melW are used when the checkpoint has them
 * (media/msclap_features.h). The stored shift masks and relative position indices must be the standard ones.
 *
 * A model is used by one thread at a time; the kernels use OpenMP inside.
 */
#ifndef CLXP_MODELS_MSCLAP_H
#define CLXP_MODELS_MSCLAP_H

#include <stdint.h>

#include "clxp.h"
#include "io/safetensors.h"
#include "io/torchzip.h"
#include "media/msclap_features.h"
#include "models/clap.h"
#include "nn/swin.h"
#include "text/tokenizer.h"

#define MSCLAP_MAX_STAGES 8

typedef struct msclap_config {
    /* HTS-AT */
    int mels, spec_size, patch, embed_dim, n_stages, depths[MSCLAP_MAX_STAGES], heads[MSCLAP_MAX_STAGES], window;
    int mlp_ratio, out_emb;
    /* GPT-2 */
    int vocab, n_positions, n_embd, n_layer, n_head, n_inner;
    int n_head_from_yaml; /* 1: gpt2.n_head read from the YAML; 0: n_embd / 64 */
    int text_len;         /* 77: prompts are padded to it (never truncated) */
    int d_proj;
    msclap_fe_config fe;
} msclap_config;


typedef struct msclap_gpt2_layer {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b, *attn_b, *aproj_b, *fc_b, *mproj_b;
    float *attn_w, *aproj_w, *fc_w, *mproj_w; /* transposed to [out, in] (in the model's owned list; freed and
                                                 NULL once packed) */
    nn_matrix attn, aproj, fc, mproj;          /* the four matrices above as the GEMMs use them */
} msclap_gpt2_layer;

typedef struct msclap_proj {
    const float *w1, *w2, *ln_w, *ln_b;
} msclap_proj;

typedef struct msclap_model {
    msclap_config cfg;
    char *source;    /* checkpoint path */
    const char *format; /* "pth" ("{'model': state_dict}" torch zip) or "safetensors" */
    const char *converted_from; /* a safetensors file written by msclap_write_dir: its source (else NULL) */
    torch_file *tf;
    st_file *sf;
    float **owned;
    int n_owned, cap_owned;
    int64_t n_params;
    const char *dtype;
    msclap_fe *fe;
    /* audio */
    float *bn_scale, *bn_shift;
    const float *patch_w, *patch_b, *patch_ln_w, *patch_ln_b;
    nn_matrix patch; /* patch_w as [embed_dim, patch * patch] */
    swin_stage stages[MSCLAP_MAX_STAGES]; /* HTS-AT's Swin stages (nn/swin.h) */
    const float *norm_w, *norm_b;
    msclap_proj aproj, tproj;
    /* text */
    const float *wte, *wpe, *lnf_w, *lnf_b;
    msclap_gpt2_layer *tl;
    float logit_scale; /* raw */
    nn_engine *eng;    /* msclap_model_pack's */
    int packed;
} msclap_model;

/* path: an MS-CLAP checkpoint file (torch zip .pth/.pt or .safetensors; the format is told by the content).
 * yaml_dir: directory searched for msclap's config YAML (NULL: the checkpoint's directory).
 * A file that is readable but holds no MS-CLAP state dict gives CLXP_ERR_UNSUPPORTED. */
clxp_status msclap_model_load(const char *path, const char *yaml_dir, msclap_model **out, clxp_error *err);
void msclap_model_free(msclap_model *m);
/* Pack every linear layer of both towers (the Swin blocks and patch merging, the patch embedding, GPT-2's four
 * per layer) in the given precision, as clap_model_pack does (once; the fp32 copies clxp made are freed). The
 * projections, LayerNorms, attention and activations stay fp32. */
clxp_status msclap_model_pack(msclap_model *m, nn_precision prec, clxp_error *err);

/* GPT-2's tokenizer for m: the file tokenizer, or (NULL) tokenizer.json next to the checkpoint, with '!' registered
 * as the pad special token (id 0), as msclap's CLAPWrapper does; refused unless '!' is id 0 and the vocabulary fits
 * the model's. path_out (may be NULL): the file used (malloc'd). */
clxp_status msclap_tokenizer_load(const msclap_model *m, const char *tokenizer, clxp_tokenizer **out, char **path_out,
                                  clxp_error *err);

/* Write m into the existing directory dir as a converted MS-CLAP directory that msclap_locate and msclap_model_load
 * read back as the same model (clxp convert):
 *   model.safetensors   every tensor of the checkpoint, names, dtypes and values unchanged (metadata format "pt",
 *                       converted_from = the source file), read back by mmap;
 *   msclap_config.yml   msclap's config YAML format (the keys read next to a checkpoint, see above) with the settings
 *                       in force: sampling_rate, duration, text_len and gpt2: n_head (inferred or from the source's
 *                       YAML), plus informative sizes;
 *   tokenizer.json      a byte copy of tokenizer (the file msclap_tokenizer_load used).
 * Other files of dir are left alone (a second YAML naming audioenc_name that sorts first would be read instead). */
clxp_status msclap_write_dir(const msclap_model *m, const char *tokenizer, const char *dir, clxp_error *err);

/* 1 if the names of this safetensors / torch file are an MS-CLAP state dict (caption_encoder.base.wte.weight and
 * audio_encoder.base.htsat.patch_embed.proj.weight present). */
int msclap_st_is_msclap(const st_file *f);
int msclap_torch_is_msclap(const torch_file *f);

/* 1 if the file is an MS-CLAP checkpoint, by its tensor names, without reading the weights: a torch zip whose
 * data.pkl names caption_encoder.base.wte.weight and audio_encoder.base.htsat.* (the pickle only), or a
 * safetensors file with those tensors (the header only). Unreadable files give 0. */
int msclap_probe_file(const char *path);

/* The MS-CLAP checkpoint `-m path` means, or NULL (malloc'd path): path itself when it is an MS-CLAP file; for a
 * directory without config.json (a Hugging Face directory is never MS-CLAP), CLAP_weights_2023.pth when it is one,
 * else the first by name of its *.pth / *.pt / *.bin / *.safetensors files that is one. */
char *msclap_locate(const char *path);

/* Frames the audio tower accepts at most (spec_size * 4 = 1024). */
int msclap_max_frames(const msclap_model *m);

/* features: [B, T, mels] log-mel (the golden's [B, 1, T, mels]). embeds: [B, d_proj] unnormalised. The hook sees
 * "audio.bn0_output", "audio.mel2img", "audio.hidden_states.k", "audio.hidden_states_before_downsampling.k" ([B, L, C]),
 * "audio.norm_output", "audio.latent_output", "audio.projection.linear1", "audio_embeds_unnormalized". */
clxp_status msclap_encode_features(msclap_model *m, const float *features, int B, int T, float *embeds, clap_hook hook,
                                   void *ctx, clxp_error *err);

/* ids, mask: [B, T] (T <= n_positions), mask 1 on real tokens (right padding). Every row needs a non-zero id.
 * embeds: [B, d_proj] unnormalised. Hook: "text.embeddings", "text.block_output.i", "text.last_hidden_state"
 * ([B, T', D], T' = last real token of the batch + 1), "text.pooled_output", "text.projection.linear1",
 * "text_embeds_unnormalized". */
clxp_status msclap_encode_tokens(msclap_model *m, const int32_t *ids, const int32_t *mask, int B, int T, float *embeds,
                                 clap_hook hook, void *ctx, clxp_error *err);

/* msclap's pooled index of one row: count(ids != 0) - 1 (-1 when every id is 0). */
int msclap_pooled_index(const int32_t *ids, int T);

float msclap_logit_scale(const msclap_model *m); /* exp(logit_scale) */

#endif
