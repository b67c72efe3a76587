/* The public API (include/clxp.h) on top of the modules: model directory loading, batching of texts and
 * images through the CLIP towers, label banks and scoring. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clxp.h"
#include "classify/scoring.h"
#include "io/checkpoint.h"
#include "io/preprocessor_config.h"
#include "io/prompts.h"
#include "io/safetensors_write.h"
#include "media/audio.h"
#include "media/image.h"
#include "media/preprocess.h"
#include "models/clip.h"
#include "models/msclap.h"
#include "nn/ops.h"
#include "text/tokenizer.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/json.h"
#include "api/internal.h"

/* Batch sizes the towers are run with (bounded activation memory whatever the caller passes). */
#define TEXT_BATCH 64
#define IMAGE_BATCH 16

struct clxp_labelbank {
    int n, dim;
    char **labels;
    float *emb; /* [n, dim], normalised */
    float logit_scale;
    prompt_set cats; /* categories bank: units and categories (cats.n_units > 0); its prompts are `labels` */
    char **templates;
    int n_templates;
    char model_id[17];
};

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* A saved label bank belongs to the model that made it: hash what determines text embeddings cheaply — the
 * configuration, the text projection and the logit scale (a fine-tuned text tower changes its projection too). */
static clxp_status model_identity(clxp_model *m, const char *dir, clxp_error *err) {
    char *path = clxp_path_join(dir, "config.json"), *buf = NULL;
    size_t len = 0;
    if (!path) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    clxp_status st = clxp_read_file(path, CLXP_MAX_JSON_BYTES, &buf, &len, err);
    free(path);
    if (st != CLXP_OK) return st;
    uint64_t h = fnv1a(1469598103934665603ull, buf, len);
    free(buf);
    if (m->kind == MODEL_CLIP) {
        const clip_config *c = &m->clip->cfg;
        h = fnv1a(h, m->clip->tproj.f32, (size_t)c->projection_dim * c->text.hidden * sizeof(float));
        h = fnv1a(h, &m->clip->logit_scale, sizeof m->clip->logit_scale);
    } else {
        const clap_config *c = &m->clap->cfg;
        h = fnv1a(h, m->clap->tproj2_w, (size_t)c->projection_dim * c->projection_dim * sizeof(float));
        h = fnv1a(h, &m->clap->logit_scale_a, sizeof m->clap->logit_scale_a);
    }
    snprintf(m->id, sizeof m->id, "%016llx", (unsigned long long)h);
    return CLXP_OK;
}

static int default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void fill_clip_info(clxp_model *m) {
    const clip_config *c = &m->clip->cfg;
    clxp_model_info *i = &m->info;
    i->kind = "clip";
    i->embed_dim = c->projection_dim;
    i->logit_scale = expf(m->clip->logit_scale);
    i->image_size = c->image_size;
    i->patch_size = c->patch_size;
    i->vision_hidden = c->vision.hidden;
    i->vision_layers = c->vision.layers;
    i->vision_heads = c->vision.heads;
    i->vision_mlp = c->vision.mlp;
    i->vision_act = clip_act_name(c->vision.act);
    i->context_length = c->context_length;
    i->vocab_size = c->vocab_size;
    i->text_hidden = c->text.hidden;
    i->text_layers = c->text.layers;
    i->text_heads = c->text.heads;
    i->text_mlp = c->text.mlp;
    i->text_act = clip_act_name(c->text.act);
    i->resize_shortest_edge = m->pp.do_resize ? m->pp.shortest_edge : 0;
    i->crop_size = m->pp.do_center_crop ? m->pp.crop_height : c->image_size;
    memcpy(i->image_mean, m->pp.image_mean, sizeof i->image_mean);
    memcpy(i->image_std, m->pp.image_std, sizeof i->image_std);
    i->weights_dtype = weights_dtype(m->clip->w);
    i->n_params = weights_numel(m->clip->w);
}

static void fill_clap_info(clxp_model *m) {
    const clap_config *c = &m->clap->cfg;
    const clap_feature_config *f = clap_fe_config(m->fe);
    clxp_model_info *i = &m->info;
    i->kind = "clap";
    i->embed_dim = c->projection_dim;
    i->logit_scale = clap_logit_scale_audio(m->clap);
    i->logit_scale_text = clap_logit_scale_text(m->clap);
    i->context_length = m->context;
    i->vocab_size = c->text.vocab_size;
    i->text_hidden = c->text.hidden;
    i->text_layers = c->text.layers;
    i->text_heads = c->text.heads;
    i->text_mlp = c->text.intermediate;
    i->text_act = clap_act_name(c->text.hidden_act);
    i->sample_rate = f->sampling_rate;
    i->clip_seconds = (double)f->nb_max_samples / f->sampling_rate;
    i->audio_hidden = c->audio.hidden_size;
    i->audio_stages = c->audio.n_stages;
    i->audio_window = c->audio.window_size;
    i->mel_bins = f->feature_size;
    i->audio_truncation = f->truncation == CLAP_TRUNC_FUSION ? "fusion" : "rand_trunc";
    i->weights_dtype = weights_dtype(m->clap->w);
    i->n_params = weights_numel(m->clap->w);
}

/* config.json's model_type: "clip" (also when absent, as in some exports) or "clap". */
static clxp_status detect_kind(const char *dir, model_kind *kind, clxp_error *err) {
    char *path = clxp_path_join(dir, "config.json");
    if (!path) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    cJSON *root = NULL;
    clxp_status st = clxp_json_load(path, &root, err);
    const char *mt = NULL;
    if (st == CLXP_OK && !cJSON_IsObject(root)) st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: not a JSON object", path);
    if (st == CLXP_OK) st = clxp_json_string(root, "model_type", "clip", &mt, path, err);
    if (st == CLXP_OK) {
        if (strcmp(mt, "clap") == 0) *kind = MODEL_CLAP;
        else if (strcmp(mt, "clip") == 0) *kind = MODEL_CLIP;
        else
            st = clxp_err_set(err, CLXP_ERR_UNSUPPORTED,
                              "%s: model_type \"%s\" is not supported (clxp reads \"clip\" and \"clap\" models)", path,
                              mt);
    }
    cJSON_Delete(root);
    free(path);
    return st;
}

/* The preprocessed image must be exactly the tower's input size. */
static clxp_status check_preproc_matches(const clxp_model *m, const char *what, clxp_error *err) {
    int ow = 0, oh = 0, S = m->clip->cfg.image_size;
    clxp_status st = clip_preproc_output_size(&m->pp, S, S, &ow, &oh, err);
    if (st != CLXP_OK) return st;
    if (ow != S || oh != S || !m->pp.do_center_crop)
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED,
                            "%s: preprocessing must produce %dx%d images for this model (center crop %dx%d%s)", what,
                            S, S, m->pp.crop_width, m->pp.crop_height, m->pp.do_center_crop ? "" : " disabled");
    return CLXP_OK;
}

/* dir's tokenizer.json; the user's --tokenizer (a tokenizer.json) only where dir has none (a directory with its
 * own says so in a warning). */
static clxp_status load_tokenizer(clxp_model *m, const char *dir, int vocab, clxp_error *err) {
    char *tok_path = clxp_path_join(dir, "tokenizer.json");
    if (!tok_path) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    clxp_status st;
    if (m->user_tokenizer && clxp_is_file(tok_path)) {
        clxp_log(CLXP_LOG_WARN, "%s: the model's own tokenizer is used; --tokenizer %s is ignored", tok_path,
                 m->user_tokenizer);
    } else if (m->user_tokenizer) {
        free(tok_path);
        tok_path = strdup(m->user_tokenizer);
        if (!tok_path) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    if (!clxp_is_file(tok_path))
        st = clxp_err_set(err, CLXP_ERR_IO, "%s: missing (clxp needs the fast tokenizer file, or --tokenizer FILE)",
                          tok_path);
    else st = tok_load(tok_path, &m->tok, err);
    if (st == CLXP_OK && tok_vocab_size(m->tok) > vocab)
        st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: tokenizer has %d tokens but the model's vocabulary is %d",
                          tok_path, tok_vocab_size(m->tok), vocab);
    free(tok_path);
    return st;
}

/* w: the weights when a checkpoint was mapped (taken over), or NULL: dir's model.safetensors. */
static clxp_status load_clip(clxp_model *m, const char *dir, weights *w, clxp_error *err) {
    clxp_status st = clip_model_load_weights(dir, w, &m->clip, err);
    if (st == CLXP_OK) st = load_tokenizer(m, dir, m->clip->cfg.vocab_size, err);
    if (st != CLXP_OK) return st;
    m->context = m->clip->cfg.context_length;
    m->pad_id = -1; /* the tokenizer's (CLIP pads with <|endoftext|>; padded positions never matter) */
    char *pp_path = clxp_path_join(dir, "preprocessor_config.json");
    if (!pp_path) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    if (clxp_is_file(pp_path)) {
        st = clip_preproc_cfg_load(pp_path, &m->pp, err);
    } else {
        clip_preproc_cfg_defaults(&m->pp, m->clip->cfg.image_size);
        clxp_log(CLXP_LOG_WARN, "%s: missing, using CLIPImageProcessor defaults for %dx%d", pp_path,
                 m->clip->cfg.image_size, m->clip->cfg.image_size);
    }
    if (st == CLXP_OK) st = check_preproc_matches(m, pp_path, err);
    free(pp_path);
    if (st == CLXP_OK) fill_clip_info(m);
    return st;
}

/* LAION's text call: 77 tokens, padded with the model's pad id (HF's ClapProcessor forwards the same kwargs). */
#define CLAP_CONTEXT 77

static clxp_status load_clap(clxp_model *m, const char *dir, weights *w, clxp_error *err) {
    clxp_status st = clap_model_load_weights(dir, w, &m->clap, err);
    if (st == CLXP_OK) st = load_tokenizer(m, dir, m->clap->cfg.text.vocab_size, err);
    if (st != CLXP_OK) return st;
    const clap_text_config *t = &m->clap->cfg.text;
    m->context = CLAP_CONTEXT < t->max_position_embeddings - t->pad_token_id - 1
                     ? CLAP_CONTEXT
                     : t->max_position_embeddings - t->pad_token_id - 1;
    m->pad_id = tok_pad_id(m->tok) >= 0 ? tok_pad_id(m->tok) : t->pad_token_id;
    char *pp_path = clxp_path_join(dir, "preprocessor_config.json");
    if (!pp_path) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    clap_feature_config fc;
    if (clxp_is_file(pp_path)) {
        st = clap_feature_config_load(pp_path, &fc, err);
    } else {
        clap_feature_config_defaults(&fc);
        clxp_log(CLXP_LOG_WARN, "%s: missing, using ClapFeatureExtractor defaults", pp_path);
    }
    if (st == CLXP_OK && fc.feature_size != m->clap->cfg.audio.num_mel_bins)
        st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: feature_size %d differs from the model's num_mel_bins %d", pp_path,
                          fc.feature_size, m->clap->cfg.audio.num_mel_bins);
    if (st == CLXP_OK) st = clap_fe_create(&fc, &m->fe, err);
    if (st == CLXP_OK && clap_fe_frames(m->fe) > clap_max_frames(m->clap))
        st = clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: %d feature frames, more than the audio tower's %d", pp_path,
                          clap_fe_frames(m->fe), clap_max_frames(m->clap));
    free(pp_path);
    if (st == CLXP_OK) fill_clap_info(m);
    return st;
}

/* fp32 or bf16 from the user's choice and the CPU (auto: bf16 where oneDNN runs bf16 natively). */
static clxp_status choose_precision(const clxp_load_options *opt, nn_precision *out, clxp_error *err) {
    const clxp_precision p = opt ? opt->precision : CLXP_PRECISION_AUTO;
    switch (p) {
    case CLXP_PRECISION_AUTO: *out = nn_cpu_has_bf16() ? NN_BF16 : NN_FP32; return CLXP_OK;
    case CLXP_PRECISION_FP32: *out = NN_FP32; return CLXP_OK;
    case CLXP_PRECISION_BF16:
        if (!nn_cpu_has_bf16())
            return clxp_err_set(err, CLXP_ERR_UNSUPPORTED,
                                "bf16 needs a CPU with AVX512-BF16 or AMX instructions; this one has %s (use fp32)",
                                nn_cpu_isa());
        *out = NN_BF16;
        return CLXP_OK;
    }
    return clxp_err_set(err, CLXP_ERR_INVALID, "unknown precision %d", (int)p);
}

/* Pack the towers' linear weights once in the chosen precision (after loading: the model's identity hash and
 * info are taken from the files first). */
static clxp_status pack_model(clxp_model *m, const clxp_load_options *opt, clxp_error *err) {
    nn_precision prec = NN_FP32;
    clxp_status st = choose_precision(opt, &prec, err);
    if (st != CLXP_OK) return st;
    omp_set_num_threads(m->n_threads);
    if (m->clip) st = clip_model_pack(m->clip, prec, err);
    if (st == CLXP_OK && m->clap) st = clap_model_pack(m->clap, prec, err);
    if (st == CLXP_OK && m->msclap) st = msclap_model_pack(m->msclap, prec, err);
    m->info.precision = prec == NN_BF16 ? "bf16" : "fp32";
    return st;
}

/* ---- MS-CLAP 2023 (models/msclap.h): its own checkpoint, tokenizer call and front end --------------------------- */

/* The checkpoint file, its directory's tokenizer.json (GPT-2's; or opt->tokenizer) with '!' registered as the pad
 * special token, as msclap's CLAPWrapper does. */
static clxp_status load_msclap(clxp_model *m, const char *file, const clxp_load_options *opt, clxp_error *err) {
    clxp_status st = msclap_model_load(file, NULL, &m->msclap, err);
    if (st != CLXP_OK) return st;
    const msclap_model *ms = m->msclap;
    st = msclap_tokenizer_load(ms, opt ? opt->tokenizer : NULL, &m->tok, NULL, err);
    if (st != CLXP_OK) return st;
    m->kind = MODEL_CLAP;
    m->context = ms->cfg.text_len;
    m->pad_id = 0;
    const msclap_config *c = &ms->cfg;
    clxp_model_info *i = &m->info;
    i->kind = "clap";
    i->embed_dim = c->d_proj;
    i->logit_scale = i->logit_scale_text = msclap_logit_scale(ms);
    i->context_length = c->text_len;
    i->vocab_size = c->vocab;
    i->text_hidden = c->n_embd;
    i->text_layers = c->n_layer;
    i->text_heads = c->n_head;
    i->text_mlp = c->n_inner;
    i->text_act = "gelu_new";
    i->sample_rate = c->fe.sample_rate;
    i->clip_seconds = (double)c->fe.window_samples / c->fe.sample_rate;
    i->audio_hidden = c->out_emb;
    i->audio_stages = c->n_stages;
    i->audio_window = c->window;
    i->mel_bins = c->mels;
    i->audio_truncation = "repeat";
    i->weights_dtype = ms->dtype;
    i->n_params = ms->n_params;
    char detail[4300];
    snprintf(detail, sizeof detail, "MS-CLAP 2023 (HTS-AT + GPT-2) %s %s%s%.2000s, GPT-2 heads %d%s", ms->format, file,
             ms->converted_from ? " converted by clxp from " : "", ms->converted_from ? ms->converted_from : "",
             c->n_head, c->n_head_from_yaml ? " (from the msclap YAML)" : " (n_embd / 64)");
    m->format = strdup("msclap");
    m->format_detail = strdup(detail);
    m->weights_file = strdup(file);
    if (!m->format || !m->format_detail || !m->weights_file) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    i->format = m->format;
    i->format_detail = m->format_detail;
    i->weights_file = m->weights_file;
    /* identity: the configuration, the text projection and the logit scale */
    uint64_t h = fnv1a(1469598103934665603ull, "msclap", 6);
    h = fnv1a(h, c, sizeof *c);
    h = fnv1a(h, ms->tproj.w2, (size_t)c->d_proj * c->d_proj * sizeof(float));
    h = fnv1a(h, &ms->logit_scale, sizeof ms->logit_scale);
    snprintf(m->id, sizeof m->id, "%016llx", (unsigned long long)h);
    return CLXP_OK;
}

/* msclap's text call: prompt + " <|endoftext|>", no BOS, padded with '!' (id 0) to text_len, never truncated (up to
 * the model's positions). A '!' in a prompt is a pad-id token, so msclap pools before the end: reproduced, with a
 * warning. */
static clxp_status msclap_encode_texts(clxp_model *m, const char *const *texts, int n, float *out, clxp_error *err) {
    msclap_model *ms = m->msclap;
    const int cap = ms->cfg.n_positions, T0 = ms->cfg.text_len, dim = m->info.embed_dim;
    int32_t *ids = malloc((size_t)cap * sizeof *ids), *mask = malloc((size_t)cap * sizeof *mask);
    clxp_status st = ids && mask ? CLXP_OK : clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    const tok_encode_opts opts = {0, 0, T0, 0};
    for (int i = 0; i < n && st == CLXP_OK; i++) {
        const char *t = texts[i] ? texts[i] : "";
        size_t len = strlen(t);
        char *s = malloc(len + 16);
        if (!s) {
            st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
            break;
        }
        memcpy(s, t, len);
        memcpy(s + len, " <|endoftext|>", 15);
        int got = 0;
        st = tok_encode(m->tok, s, len + 14, &opts, ids, mask, cap, &got, err);
        free(s);
        if (st == CLXP_ERR_LIMIT)
            st = clxp_err_set(err, CLXP_ERR_LIMIT, "%d tokens, more than the model's %d positions", got, cap);
        if (st != CLXP_OK) {
            clxp_err_prefix(err, st, "prompt %d", i + 1);
            break;
        }
        if (strchr(t, '!'))
            clxp_log(CLXP_LOG_WARN,
                     "prompt %d \"%s\" contains '!': MS-CLAP pads with '!', so msclap (and clxp, which reproduces it) "
                     "pools its embedding at token %d instead of the final <|endoftext|>",
                     i + 1, t, msclap_pooled_index(ids, got));
        st = msclap_encode_tokens(ms, ids, mask, 1, got, out + (size_t)i * dim, NULL, NULL, err);
        if (st == CLXP_OK) nn_l2_normalize(out + (size_t)i * dim, 1, dim);
    }
    free(ids);
    free(mask);
    return st;
}

size_t model_audio_input_size(const clxp_model *m) {
    if (m->msclap) return (size_t)msclap_fe_frames(m->msclap->fe) * m->msclap->cfg.mels;
    return (size_t)clap_fe_channels(m->fe) * clap_fe_frames(m->fe) * clap_fe_mels(m->fe);
}

size_t model_audio_window(const clxp_model *m) {
    if (m->msclap) return (size_t)m->msclap->cfg.fe.window_samples;
    return (size_t)clap_fe_config(m->fe)->nb_max_samples;
}

clxp_status model_audio_features(const clxp_model *m, const float *samples, size_t n, float *features, int *is_longer,
                                  clxp_error *err) {
    if (!m->msclap) return clap_fe_extract(m->fe, samples, n, NULL, features, is_longer, NULL, err);
    long crop = -1;
    clxp_status st = msclap_fe_extract(m->msclap->fe, samples, n, -1, features, &crop, err);
    if (is_longer) *is_longer = crop >= 0;
    return st;
}

clxp_status clxp_model_load(const char *dir, const clxp_load_options *opt, clxp_model **out, clxp_error *err) {
    *out = NULL;
    if (!dir || !*dir) return clxp_err_set(err, CLXP_ERR_INVALID, "no model directory given");
    if (!clxp_is_dir(dir) && !clxp_is_file(dir))
        return clxp_err_set(err, CLXP_ERR_IO, "%s: model directory or file does not exist", dir);
    clxp_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(dir))) {
        free(m);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    m->n_threads = opt && opt->n_threads > 0 ? opt->n_threads : default_threads();
    /* Other checkpoint formats become a HF directory to load from (io/checkpoint.h). */
    const ckpt_options co = {opt ? opt->tokenizer : NULL, opt ? opt->vision_heads : 0, opt ? opt->text_heads : 0};
    ckpt_prepared prep;
    char *ms_file = msclap_locate(dir); /* MS-CLAP 2023 checkpoints have their own loader */
    clxp_status st = ms_file ? load_msclap(m, ms_file, opt, err) : ckpt_prepare(dir, &co, &prep, err);
    free(ms_file);
    if (st == CLXP_OK && !m->msclap) {
        m->format = prep.format;
        m->format_detail = prep.description;
        m->weights_file = prep.weights_file;
        prep.format = prep.description = prep.weights_file = NULL;
        const char *src = prep.dir;
        /* non-HF formats get their tokenizer written into src by ckpt_prepare (from --tokenizer or built in) */
        m->user_tokenizer = opt && m->format && strncmp(m->format, "hf-", 3) == 0 ? opt->tokenizer : NULL;
        st = detect_kind(src, &m->kind, err);
        weights *w = prep.w; /* taken over by the model loader */
        prep.w = NULL;
        if (st == CLXP_OK) st = m->kind == MODEL_CLAP ? load_clap(m, src, w, err) : load_clip(m, src, w, err);
        else weights_free(w);
        if (st == CLXP_OK) st = model_identity(m, src, err);
        ckpt_prepared_done(&prep);
        ckpt_prepared_free(&prep);
        m->info.format = m->format;
        m->info.format_detail = m->format_detail;
        m->info.weights_file = m->weights_file;
    }
    if (st == CLXP_OK) st = pack_model(m, opt, err);
    if (st != CLXP_OK) {
        clxp_model_free(m);
        return st;
    }
    m->info.path = m->path;
    *out = m;
    return CLXP_OK;
}

void clxp_model_free(clxp_model *m) {
    if (!m) return;
    clip_model_free(m->clip);
    clap_model_free(m->clap);
    clap_fe_free(m->fe);
    msclap_model_free(m->msclap);
    tok_free(m->tok);
    free(m->path);
    free(m->format);
    free(m->format_detail);
    free(m->weights_file);
    free(m);
}

const clxp_model_info *clxp_model_get_info(const clxp_model *m) { return &m->info; }

/* Prompts are tokenized a chunk at a time and encoded in batches of similar length: the CLIP tower stops at the
 * batch's last pooled EOS and the RoBERTa tower at its longest real prompt, so sorting by that length avoids
 * computing positions that no prompt of the batch needs (exact either way). */
#define TEXT_CHUNK 4096

typedef struct {
    int len, idx;
} text_len;

static int cmp_text_len(const void *a, const void *b) {
    const text_len *x = a, *y = b;
    return x->len != y->len ? x->len - y->len : x->idx - y->idx;
}

clxp_status clxp_encode_texts(clxp_model *m, const char *const *texts, int n, float *out, clxp_error *err) {
    if (n < 0 || (n > 0 && (!texts || !out))) return clxp_err_set(err, CLXP_ERR_INVALID, "invalid arguments");
    omp_set_num_threads(m->n_threads);
    if (m->msclap) return msclap_encode_texts(m, texts, n, out, err);
    const int T = m->context, dim = m->info.embed_dim;
    const int chunk = n < TEXT_CHUNK ? (n > 0 ? n : 1) : TEXT_CHUNK;
    int32_t *ids = malloc((size_t)chunk * T * sizeof *ids), *mask = malloc((size_t)chunk * T * sizeof *mask);
    int32_t *bids = malloc((size_t)TEXT_BATCH * T * sizeof *bids), *bmask = malloc((size_t)TEXT_BATCH * T * sizeof *bmask);
    text_len *order = malloc((size_t)chunk * sizeof *order);
    float *bemb = malloc((size_t)TEXT_BATCH * dim * sizeof *bemb);
    clxp_status st = (ids && mask && bids && bmask && order && bemb) ? CLXP_OK
                                                                     : clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    const tok_encode_opts opts = {1, T, T, m->pad_id};
    for (int c0 = 0; c0 < n && st == CLXP_OK; c0 += chunk) {
        const int C = n - c0 < chunk ? n - c0 : chunk;
        for (int i = 0; i < C && st == CLXP_OK; i++) {
            int len = 0;
            const char *t = texts[c0 + i] ? texts[c0 + i] : "";
            int32_t *ti = ids + (size_t)i * T, *tm = mask + (size_t)i * T;
            st = tok_encode(m->tok, t, strlen(t), &opts, ti, tm, T, &len, err);
            if (st != CLXP_OK) {
                clxp_err_prefix(err, st, "prompt %d", c0 + i + 1);
                break;
            }
            int need = 0; /* positions the tower must compute for this prompt */
            if (m->kind == MODEL_CLIP) need = clip_pooled_index(&m->clip->cfg, ti, T) + 1;
            else
                for (int k = 0; k < T; k++) need += tm[k] != 0;
            order[i] = (text_len){need, i};
        }
        if (st != CLXP_OK) break;
        qsort(order, (size_t)C, sizeof *order, cmp_text_len);
        for (int b0 = 0; b0 < C && st == CLXP_OK; b0 += TEXT_BATCH) {
            const int B = C - b0 < TEXT_BATCH ? C - b0 : TEXT_BATCH;
            for (int i = 0; i < B; i++) {
                memcpy(bids + (size_t)i * T, ids + (size_t)order[b0 + i].idx * T, (size_t)T * sizeof *bids);
                memcpy(bmask + (size_t)i * T, mask + (size_t)order[b0 + i].idx * T, (size_t)T * sizeof *bmask);
            }
            if (m->kind == MODEL_CLAP) st = clap_encode_tokens(m->clap, bids, bmask, B, T, bemb, NULL, NULL, err);
            else st = clip_encode_tokens(m->clip, bids, bmask, B, T, 0, bemb, NULL, NULL, err);
            if (st != CLXP_OK) break;
            nn_l2_normalize(bemb, B, dim);
            for (int i = 0; i < B; i++)
                memcpy(out + (size_t)(c0 + order[b0 + i].idx) * dim, bemb + (size_t)i * dim, (size_t)dim * sizeof *out);
        }
    }
    free(ids);
    free(mask);
    free(bids);
    free(bmask);
    free(order);
    free(bemb);
    return st;
}

/* A CLAP model classifies sound, a CLIP model pictures. */
static clxp_status need_kind(const clxp_model *m, model_kind k, clxp_error *err) {
    if (m->kind == k) return CLXP_OK;
    return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: a %s model cannot encode %s (use a %s model)", m->path,
                        m->info.kind, k == MODEL_CLIP ? "images" : "audio", k == MODEL_CLIP ? "CLIP" : "CLAP");
}

clxp_status model_encode_features(clxp_model *m, const float *features, const int *is_longer, int B, float *out,
                                  clxp_error *err) {
    clxp_status st = need_kind(m, MODEL_CLAP, err);
    if (st != CLXP_OK) return st;
    omp_set_num_threads(m->n_threads);
    st = m->msclap ? msclap_encode_features(m->msclap, features, B, msclap_fe_frames(m->msclap->fe), out, NULL, NULL, err)
                   : clap_encode_features(m->clap, features, is_longer, B, clap_fe_channels(m->fe),
                                          clap_fe_frames(m->fe), out, NULL, NULL, err);
    if (st == CLXP_OK) nn_l2_normalize(out, B, m->info.embed_dim);
    return st;
}

clxp_status clxp_encode_audio(clxp_model *m, const float *samples, size_t n, int sample_rate, float *out,
                              clxp_error *err) {
    clxp_status st = need_kind(m, MODEL_CLAP, err);
    if (st != CLXP_OK) return st;
    if (!samples || n == 0 || !out) return clxp_err_set(err, CLXP_ERR_INVALID, "no audio samples given");
    if (sample_rate != m->info.sample_rate)
        return clxp_err_set(err, CLXP_ERR_INVALID, "audio at %d Hz: the model takes %d Hz (resample first)",
                            sample_rate, m->info.sample_rate);
    float *feat = malloc(model_audio_input_size(m) * sizeof *feat);
    if (!feat) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    int is_longer = 0;
    st = model_audio_features(m, samples, n, feat, &is_longer, err);
    if (st == CLXP_OK) st = model_encode_features(m, feat, &is_longer, 1, out, err);
    free(feat);
    return st;
}

clxp_status clxp_encode_audio_files(clxp_model *m, const char *const *paths, int n, float *out, clxp_error *err) {
    if (n < 0 || (n > 0 && (!paths || !out))) return clxp_err_set(err, CLXP_ERR_INVALID, "invalid arguments");
    clxp_status st = need_kind(m, MODEL_CLAP, err);
    for (int i = 0; i < n && st == CLXP_OK; i++) {
        audio_options ao = {.sample_rate = m->info.sample_rate};
        float *wave = NULL;
        size_t len = 0;
        st = audio_load(paths[i], &ao, CLAP_FE_MAX_INPUT_SAMPLES, &wave, &len, err);
        if (st == CLXP_OK && len == 0) st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: no audio samples", paths[i]);
        if (st == CLXP_OK) {
            st = clxp_encode_audio(m, wave, len, m->info.sample_rate, out + (size_t)i * m->info.embed_dim, err);
            if (st != CLXP_OK) clxp_err_prefix(err, st, "%s", paths[i]);
        }
        free(wave);
    }
    return st;
}

clxp_status model_encode_pixels(clxp_model *m, const float *pixels, int B, float *out, clxp_error *err) {
    clxp_status st0 = need_kind(m, MODEL_CLIP, err);
    if (st0 != CLXP_OK) return st0;
    omp_set_num_threads(m->n_threads);
    clxp_status st = clip_encode_pixels(m->clip, pixels, B, out, NULL, NULL, err);
    if (st == CLXP_OK) nn_l2_normalize(out, B, m->info.embed_dim);
    return st;
}

clxp_status clxp_encode_images(clxp_model *m, const clxp_image *images, int n, float *out, clxp_error *err) {
    if (n < 0 || (n > 0 && (!images || !out))) return clxp_err_set(err, CLXP_ERR_INVALID, "invalid arguments");
    if (need_kind(m, MODEL_CLIP, err) != CLXP_OK) return CLXP_ERR_UNSUPPORTED;
    omp_set_num_threads(m->n_threads);
    const int S = m->clip->cfg.image_size, dim = m->info.embed_dim;
    const size_t plane = (size_t)3 * S * S;
    float *pix = malloc((size_t)IMAGE_BATCH * plane * sizeof *pix);
    clxp_status st = pix ? CLXP_OK : clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    for (int b0 = 0; b0 < n && st == CLXP_OK; b0 += IMAGE_BATCH) {
        int B = n - b0 < IMAGE_BATCH ? n - b0 : IMAGE_BATCH;
        for (int i = 0; i < B && st == CLXP_OK; i++) {
            const clxp_image *im = &images[b0 + i];
            if (!im->rgb || im->width <= 0 || im->height <= 0 || im->stride < 3 * im->width)
                st = clxp_err_set(err, CLXP_ERR_INVALID, "image %d: invalid buffer or dimensions", b0 + i + 1);
            else
                st = clip_preprocess(&m->pp, im->rgb, im->width, im->height, im->stride, pix + (size_t)i * plane,
                                     NULL, err);
        }
        if (st == CLXP_OK) st = model_encode_pixels(m, pix, B, out + (size_t)b0 * dim, err);
    }
    free(pix);
    return st;
}

clxp_status clxp_encode_image_files(clxp_model *m, const char *const *paths, int n, float *out, clxp_error *err) {
    if (n < 0 || (n > 0 && (!paths || !out))) return clxp_err_set(err, CLXP_ERR_INVALID, "invalid arguments");
    if (need_kind(m, MODEL_CLIP, err) != CLXP_OK) return CLXP_ERR_UNSUPPORTED;
    const int dim = m->info.embed_dim;
    clxp_status st = CLXP_OK;
    /* Decode one batch at a time so memory stays bounded for long file lists. */
    for (int b0 = 0; b0 < n && st == CLXP_OK; b0 += IMAGE_BATCH) {
        int B = n - b0 < IMAGE_BATCH ? n - b0 : IMAGE_BATCH;
        clxp_rgb_image imgs[IMAGE_BATCH];
        clxp_image views[IMAGE_BATCH];
        memset(imgs, 0, sizeof imgs);
        int loaded = 0;
        for (; loaded < B && st == CLXP_OK; loaded++) {
            st = image_load(paths[b0 + loaded], &imgs[loaded], err);
            views[loaded] = (clxp_image){imgs[loaded].data, imgs[loaded].width, imgs[loaded].height,
                                         3 * imgs[loaded].width};
        }
        if (st == CLXP_OK) {
            st = clxp_encode_images(m, views, B, out + (size_t)b0 * dim, err);
            if (st != CLXP_OK) clxp_err_prefix(err, st, "%s", paths[b0]);
        }
        for (int i = 0; i < loaded; i++) image_free(&imgs[i]);
    }
    return st;
}

/* ---- label bank --------------------------------------------------------------------------------------- */

/* template with its single "{}" replaced by label (malloc'd). */
static char *apply_template(const char *tmpl, const char *label) {
    const char *at = strstr(tmpl, "{}");
    size_t a = (size_t)(at - tmpl), l = strlen(label), rest = strlen(at + 2);
    char *s = malloc(a + l + rest + 1);
    if (!s) return NULL;
    memcpy(s, tmpl, a);
    memcpy(s + a, label, l);
    memcpy(s + a + l, at + 2, rest + 1);
    return s;
}

clxp_status clxp_labelbank_create(clxp_model *m, const char *const *labels, int n_labels,
                                  const char *const *templates, int n_templates, clxp_labelbank **out,
                                  clxp_error *err) {
    *out = NULL;
    if (n_labels <= 0 || !labels) return clxp_err_set(err, CLXP_ERR_INVALID, "no labels given");
    if (n_templates < 0 || (n_templates > 0 && !templates))
        return clxp_err_set(err, CLXP_ERR_INVALID, "invalid template list");
    for (int t = 0; t < n_templates; t++) {
        const char *at = templates[t] ? strstr(templates[t], "{}") : NULL;
        if (!at || strstr(at + 2, "{}"))
            return clxp_err_set(err, CLXP_ERR_INVALID, "template \"%s\" must contain \"{}\" exactly once",
                                templates[t] ? templates[t] : "(null)");
    }
    const int dim = m->info.embed_dim, per = n_templates ? n_templates : 1;
    clxp_labelbank *b = calloc(1, sizeof *b);
    if (!b) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    b->n = n_labels;
    b->dim = dim;
    b->logit_scale = m->info.logit_scale;
    memcpy(b->model_id, m->id, sizeof b->model_id);
    if (n_templates > 0 && !(b->templates = calloc((size_t)n_templates, sizeof *b->templates))) {
        free(b);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    for (int t = 0; t < n_templates; t++) {
        if (!(b->templates[t] = strdup(templates[t]))) {
            clxp_labelbank_free(b);
            return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
        }
        b->n_templates = t + 1;
    }
    b->labels = calloc((size_t)n_labels, sizeof *b->labels);
    b->emb = calloc((size_t)n_labels * dim, sizeof *b->emb);
    size_t n_prompts = (size_t)n_labels * per;
    char **prompts = calloc(n_prompts, sizeof *prompts);
    float *pe = malloc(n_prompts * dim * sizeof *pe);
    clxp_status st = (b->labels && b->emb && prompts && pe) ? CLXP_OK : clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n_labels && st == CLXP_OK; i++) {
        if (!labels[i] || !(b->labels[i] = strdup(labels[i]))) {
            st = clxp_err_set(err, labels[i] ? CLXP_ERR_NOMEM : CLXP_ERR_INVALID, "label %d: %s", i + 1,
                              labels[i] ? "out of memory" : "NULL label");
            break;
        }
        for (int t = 0; t < per && st == CLXP_OK; t++) {
            char *p = n_templates ? apply_template(templates[t], labels[i]) : strdup(labels[i]);
            if (!p) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
            prompts[(size_t)i * per + t] = p;
        }
    }
    if (st == CLXP_OK) st = clxp_encode_texts(m, (const char *const *)prompts, (int)n_prompts, pe, err);
    if (st == CLXP_OK) {
        /* Prompt ensembling: mean of the normalised template embeddings, normalised again. */
        for (int i = 0; i < n_labels; i++) {
            float *e = b->emb + (size_t)i * dim;
            for (int t = 0; t < per; t++) {
                const float *src = pe + ((size_t)i * per + t) * dim;
                for (int k = 0; k < dim; k++) e[k] += src[k];
            }
            for (int k = 0; k < dim; k++) e[k] /= (float)per;
        }
        nn_l2_normalize(b->emb, n_labels, dim);
    }
    for (size_t i = 0; prompts && i < n_prompts; i++) free(prompts[i]);
    free(prompts);
    free(pe);
    if (st != CLXP_OK) {
        clxp_labelbank_free(b);
        return st;
    }
    *out = b;
    return CLXP_OK;
}

clxp_status clxp_labelbank_load_file(clxp_model *m, const char *path, const char *const *templates, int n_templates,
                                     clxp_labelbank **out, clxp_error *err) {
    *out = NULL;
    prompt_set ps;
    clxp_status st = prompts_load(path, &ps, err);
    if (st != CLXP_OK) return st;
    if (ps.is_categories && n_templates > 0) {
        prompts_free(&ps);
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: templates apply to labels files, not to a categories file",
                            path);
    }
    st = clxp_labelbank_create(m, (const char *const *)ps.text, ps.n, ps.is_categories ? NULL : templates,
                               ps.is_categories ? 0 : n_templates, out, err);
    if (st == CLXP_OK && ps.is_categories) {
        (*out)->cats = ps; /* the bank keeps the unit/category structure */
        return CLXP_OK;
    }
    prompts_free(&ps);
    return st;
}

int clxp_labelbank_n_classes(const clxp_labelbank *b) { return b->cats.n_units ? b->cats.n_cats : b->n; }
int clxp_labelbank_n_prompts(const clxp_labelbank *b) { return b->n; }

const char *clxp_labelbank_class_name(const clxp_labelbank *b, int c) {
    if (c < 0 || c >= clxp_labelbank_n_classes(b)) return NULL;
    return b->cats.n_units ? b->cats.cats[c].name : b->labels[c];
}

int clxp_labelbank_n_units(const clxp_labelbank *b) { return b->cats.n_units; }

const char *clxp_labelbank_unit_name(const clxp_labelbank *b, int u) {
    return (u >= 0 && u < b->cats.n_units) ? b->cats.units[u].name : NULL;
}

int clxp_labelbank_class_unit(const clxp_labelbank *b, int c) {
    return (b->cats.n_units && c >= 0 && c < b->cats.n_cats) ? b->cats.cats[c].unit : -1;
}

float clxp_labelbank_logit_scale(const clxp_labelbank *b) { return b->logit_scale; }

void clxp_labelbank_free(clxp_labelbank *b) {
    if (!b) return;
    prompts_free(&b->cats);
    for (int t = 0; t < b->n_templates; t++) free(b->templates[t]);
    free(b->templates);
    for (int i = 0; b->labels && i < b->n; i++) free(b->labels[i]);
    free(b->labels);
    free(b->emb);
    free(b);
}

int clxp_labelbank_size(const clxp_labelbank *b) { return b->n; }
const char *clxp_labelbank_label(const clxp_labelbank *b, int i) { return (i >= 0 && i < b->n) ? b->labels[i] : NULL; }
const float *clxp_labelbank_embeddings(const clxp_labelbank *b) { return b->emb; }

int clxp_labelbank_n_templates(const clxp_labelbank *b) { return b->n_templates; }
const char *clxp_labelbank_template(const clxp_labelbank *b, int i) {
    return (i >= 0 && i < b->n_templates) ? b->templates[i] : NULL;
}

#define BANK_FORMAT "clxp-labelbank-1"

/* {"labels": [...], "templates": [...], "units": [{"name": u, "categories": [{"name": c, "first": i, "count": n}]}]} */
static char *bank_prompts_json(const clxp_labelbank *b) {
    cJSON *o = cJSON_CreateObject();
    cJSON *labels = cJSON_AddArrayToObject(o, "labels"), *tmpl = cJSON_AddArrayToObject(o, "templates");
    for (int i = 0; i < b->n; i++) cJSON_AddItemToArray(labels, cJSON_CreateString(b->labels[i]));
    for (int t = 0; t < b->n_templates; t++) cJSON_AddItemToArray(tmpl, cJSON_CreateString(b->templates[t]));
    if (b->cats.n_units) {
        cJSON *units = cJSON_AddArrayToObject(o, "units");
        for (int u = 0; u < b->cats.n_units; u++) {
            const prompt_unit *un = &b->cats.units[u];
            cJSON *ue = cJSON_CreateObject(), *cs;
            cJSON_AddStringToObject(ue, "name", un->name);
            cs = cJSON_AddArrayToObject(ue, "categories");
            for (int c = un->first_cat; c < un->first_cat + un->n_cats; c++) {
                cJSON *ce = cJSON_CreateObject();
                cJSON_AddStringToObject(ce, "name", b->cats.cats[c].name);
                cJSON_AddNumberToObject(ce, "first", b->cats.cats[c].first_prompt);
                cJSON_AddNumberToObject(ce, "count", b->cats.cats[c].n_prompts);
                cJSON_AddItemToArray(cs, ce);
            }
            cJSON_AddItemToArray(units, ue);
        }
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

clxp_status clxp_labelbank_save(const clxp_labelbank *b, const char *path, int overwrite, clxp_error *err) {
    if (!overwrite && access(path, F_OK) == 0)
        return clxp_err_set(err, CLXP_ERR_IO, "%s: already exists (use -y to overwrite)", path);
    char *prompts = bank_prompts_json(b);
    if (!prompts) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    char scale[32];
    snprintf(scale, sizeof scale, "%.9g", (double)b->logit_scale);
    const int64_t shape[2] = {b->n, b->dim};
    const st_write_tensor t = {"embeddings", ST_F32, 2, shape, b->emb};
    const st_write_meta meta[4] = {{"format", BANK_FORMAT}, {"model_id", b->model_id}, {"logit_scale", scale},
                                   {"prompts", prompts}};
    clxp_status st = st_write(path, &t, 1, meta, 4, err);
    free(prompts);
    return st;
}

static clxp_status bank_from_json(clxp_labelbank *b, const char *json, const char *path, clxp_error *err) {
    cJSON *o = NULL;
    clxp_status st = clxp_json_parse(json, strlen(json), path, &o, err);
    if (st != CLXP_OK) return st;
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(o, "labels");
    const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(o, "templates");
    const cJSON *units = cJSON_GetObjectItemCaseSensitive(o, "units");
    if (!cJSON_IsArray(labels) || cJSON_GetArraySize(labels) != b->n || (tmpl && !cJSON_IsArray(tmpl)) ||
        (units && !cJSON_IsArray(units)))
        st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: label bank metadata does not match its embeddings", path);
    b->labels = calloc((size_t)b->n, sizeof *b->labels);
    if (st == CLXP_OK && !b->labels) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    for (int i = 0; st == CLXP_OK && i < b->n; i++) {
        const cJSON *l = cJSON_GetArrayItem(labels, i);
        if (!cJSON_IsString(l) || !(b->labels[i] = strdup(l->valuestring)))
            st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: label %d of the bank is not a string", path, i + 1);
    }
    int nt = tmpl ? cJSON_GetArraySize(tmpl) : 0;
    if (st == CLXP_OK && nt > 0 && !(b->templates = calloc((size_t)nt, sizeof *b->templates)))
        st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    for (int t = 0; st == CLXP_OK && t < nt; t++) {
        const cJSON *v = cJSON_GetArrayItem(tmpl, t);
        if (!cJSON_IsString(v) || !(b->templates[t] = strdup(v->valuestring)))
            st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: template %d of the bank is not a string", path, t + 1);
        else b->n_templates = t + 1;
    }
    /* categories: rebuild the prompt set (its prompts are copies of the labels) and check its spans */
    int nu = units ? cJSON_GetArraySize(units) : 0;
    prompt_set *ps = &b->cats;
    if (st == CLXP_OK && nu > 0) {
        int nc = 0;
        const cJSON *u;
        cJSON_ArrayForEach(u, units) nc += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(u, "categories"));
        ps->is_categories = 1;
        ps->units = calloc((size_t)nu, sizeof *ps->units);
        ps->cats = calloc(nc > 0 ? (size_t)nc : 1, sizeof *ps->cats);
        ps->text = calloc((size_t)b->n, sizeof *ps->text);
        if (!ps->units || !ps->cats || !ps->text) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
        for (int i = 0; st == CLXP_OK && i < b->n; i++, ps->n = i)
            if (!(ps->text[i] = strdup(b->labels[i]))) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
        int next = 0;
        cJSON_ArrayForEach(u, units) {
            if (st != CLXP_OK) break;
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(u, "name");
            const cJSON *cs = cJSON_GetObjectItemCaseSensitive(u, "categories");
            if (!cJSON_IsString(name) || !cJSON_IsArray(cs) || cJSON_GetArraySize(cs) == 0) {
                st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: malformed unit in the bank's metadata", path);
                break;
            }
            prompt_unit *pu = &ps->units[ps->n_units];
            pu->name = strdup(name->valuestring);
            pu->first_cat = ps->n_cats;
            ps->n_units++;
            const cJSON *c;
            cJSON_ArrayForEach(c, cs) {
                const cJSON *cn = cJSON_GetObjectItemCaseSensitive(c, "name");
                const cJSON *first = cJSON_GetObjectItemCaseSensitive(c, "first");
                const cJSON *count = cJSON_GetObjectItemCaseSensitive(c, "count");
                if (!cJSON_IsString(cn) || !cJSON_IsNumber(first) || !cJSON_IsNumber(count) ||
                    first->valuedouble != next || count->valuedouble < 1 || count->valuedouble > b->n - next) {
                    st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: malformed category in the bank's metadata", path);
                    break;
                }
                prompt_cat *pc = &ps->cats[ps->n_cats++];
                pc->name = strdup(cn->valuestring);
                pc->unit = ps->n_units - 1;
                pc->first_prompt = next;
                pc->n_prompts = (int)count->valuedouble;
                next += pc->n_prompts;
                pu->n_cats++;
                if (!pc->name) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
            }
            if (st == CLXP_OK && !pu->name) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
        }
        if (st == CLXP_OK && next != b->n)
            st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: the bank's categories do not cover its prompts", path);
    }
    cJSON_Delete(o);
    return st;
}

clxp_status clxp_labelbank_load(clxp_model *m, const char *path, clxp_labelbank **out, clxp_error *err) {
    *out = NULL;
    st_file *f = NULL;
    clxp_status st = st_open(path, &f, err);
    if (st != CLXP_OK) return st;
    const char *fmt = st_metadata(f, "format"), *id = st_metadata(f, "model_id");
    const char *scale = st_metadata(f, "logit_scale"), *prompts = st_metadata(f, "prompts");
    const st_tensor *t = st_find(f, "embeddings");
    const int dim = m->info.embed_dim;
    if (!fmt || strcmp(fmt, BANK_FORMAT) != 0 || !id || !scale || !prompts || !t)
        st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: not a clxp label bank", path);
    else if (strcmp(id, m->id) != 0)
        st = clxp_err_set(err, CLXP_ERR_INVALID, "%s: label bank was made by another model (id %s, this model %s)",
                          path, id, m->id);
    else if (t->dtype != ST_F32 || t->ndim != 2 || t->shape[1] != dim || t->shape[0] < 1 ||
             t->shape[0] > CLXP_MAX_PROMPTS)
        st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: label bank embeddings are not [n, %d] float32", path, dim);
    clxp_labelbank *b = NULL;
    if (st == CLXP_OK && !(b = calloc(1, sizeof *b))) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    if (st == CLXP_OK) {
        b->n = (int)t->shape[0];
        b->dim = dim;
        b->logit_scale = strtof(scale, NULL);
        memcpy(b->model_id, m->id, sizeof b->model_id);
        b->emb = malloc((size_t)b->n * dim * sizeof *b->emb);
        if (!b->emb) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
        else memcpy(b->emb, t->data, (size_t)b->n * dim * sizeof *b->emb);
        if (st == CLXP_OK && !(b->logit_scale > 0 && isfinite(b->logit_scale)))
            st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: bad logit_scale in the label bank", path);
        if (st == CLXP_OK) st = bank_from_json(b, prompts, path, err);
    }
    st_close(f);
    if (st != CLXP_OK) {
        clxp_labelbank_free(b);
        return st;
    }
    *out = b;
    return CLXP_OK;
}

clxp_status clxp_classify(const clxp_labelbank *b, const float *embeds, int n, const clxp_score_options *opt,
                          float *scores, clxp_error *err) {
    if (n < 0 || (n > 0 && (!embeds || !scores))) return clxp_err_set(err, CLXP_ERR_INVALID, "invalid arguments");
    float scale = opt && opt->logit_scale > 0 ? opt->logit_scale : b->logit_scale;
    float temp = opt && opt->temperature > 0 ? opt->temperature : 1.0f;
    if (!isfinite(scale) || !isfinite(temp))
        return clxp_err_set(err, CLXP_ERR_INVALID, "logit scale and temperature must be finite");
    float *sims = b->cats.n_units ? malloc((size_t)b->n * sizeof *sims) : NULL;
    int *best = b->cats.n_units ? malloc((size_t)b->cats.n_units * sizeof *best) : NULL;
    if (b->cats.n_units && (!sims || !best)) {
        free(sims);
        free(best);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    clxp_status st = CLXP_OK;
    for (int i = 0; i < n && st == CLXP_OK; i++) {
        const float *e = embeds + (size_t)i * b->dim;
        float *p = b->cats.n_units ? sims : scores + (size_t)i * b->n;
        for (int j = 0; j < b->n; j++) {
            const float *l = b->emb + (size_t)j * b->dim;
            float dot = 0;
            for (int k = 0; k < b->dim; k++) dot += e[k] * l[k];
            p[j] = dot;
        }
        if (b->cats.n_units) {
            if (score_categories(&b->cats, sims, scale, temp, scores + (size_t)i * b->cats.n_cats, best) != CLXP_OK)
                st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
        } else {
            for (int j = 0; j < b->n; j++) p[j] = scale * p[j] / temp;
            nn_softmax(p, b->n);
        }
    }
    free(sims);
    free(best);
    return st;
}

clxp_status clxp_model_selftest(clxp_model *m, clxp_error *err) {
    /* A mid-gray image (CLIP) or a 1-second 440 Hz tone (CLAP) and two prompts through both towers: every
     * output must be finite. */
    const int dim = m->info.embed_dim;
    float *emb = malloc((size_t)3 * dim * sizeof *emb);
    const char *texts[2] = {"a photo of a cat", "the sound of a dog"};
    clxp_status st = emb ? CLXP_OK : clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    if (st == CLXP_OK && m->kind == MODEL_CLIP) {
        const int S = m->info.image_size;
        uint8_t *gray = malloc((size_t)S * S * 3);
        if (!gray) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
        else {
            memset(gray, 128, (size_t)S * S * 3);
            clxp_image im = {gray, S, S, 3 * S};
            st = clxp_encode_images(m, &im, 1, emb, err);
        }
        free(gray);
    } else if (st == CLXP_OK) {
        const int rate = m->info.sample_rate;
        float *tone = malloc((size_t)rate * sizeof *tone);
        if (!tone) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
        for (int i = 0; tone && i < rate; i++) tone[i] = 0.25f * sinf(2.0f * 3.14159265f * 440.0f * (float)i / (float)rate);
        if (tone) st = clxp_encode_audio(m, tone, (size_t)rate, rate, emb, err);
        free(tone);
    }
    if (st == CLXP_OK) st = clxp_encode_texts(m, texts, 2, emb + dim, err);
    for (int i = 0; st == CLXP_OK && i < 3 * dim; i++)
        if (!isfinite(emb[i]))
            st = clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: self-test produced non-finite embeddings", m->path);
    free(emb);
    return st;
}

int labelbank_fits(const clxp_labelbank *b, const clxp_model *m) {
    return b->dim == m->info.embed_dim && memcmp(b->model_id, m->id, sizeof b->model_id) == 0;
}
