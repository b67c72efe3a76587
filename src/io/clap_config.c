/* CLAP config.json and preprocessor_config.json parsing (see clap_config.h). */
#include "io/clap_config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/fileio.h"
#include "util/json.h"

/* Upper bounds that keep every derived size comfortably inside int and size_t arithmetic. */
#define MAX_DIM 65536
#define MAX_LAYERS 1024
#define MAX_VOCAB (1 << 24)
#define MAX_POSITIONS 65536
#define MAX_SPEC 8192

void clap_config_defaults(clap_config *c) {
    memset(c, 0, sizeof *c);
    /* ClapAudioConfig() */
    clap_audio_config *a = &c->audio;
    a->num_mel_bins = 64;
    a->spec_size = 256;
    a->patch_size = 4;
    a->patch_stride[0] = a->patch_stride[1] = 4;
    a->patch_embeds_hidden_size = 96;
    a->n_stages = 4;
    const int depths[4] = {2, 2, 6, 2}, heads[4] = {4, 8, 16, 32};
    for (int i = 0; i < 4; i++) {
        a->depths[i] = depths[i];
        a->heads[i] = heads[i];
    }
    a->window_size = 8;
    a->mlp_ratio = 4.0;
    a->qkv_bias = 1;
    a->hidden_size = 768;
    a->hidden_act = CLAP_ACT_GELU;
    a->layer_norm_eps = 1e-5;
    a->enable_fusion = 0;
    a->enable_patch_layer_norm = 1;
    a->aff_block_r = 4;
    /* ClapTextConfig() */
    c->text = (clap_text_config){.vocab_size = 50265,
                                 .hidden = 768,
                                 .layers = 12,
                                 .heads = 12,
                                 .intermediate = 3072,
                                 .max_position_embeddings = 514,
                                 .type_vocab_size = 1,
                                 .pad_token_id = 1,
                                 .bos_token_id = 0,
                                 .eos_token_id = 2,
                                 .hidden_act = CLAP_ACT_GELU,
                                 .layer_norm_eps = 1e-12};
    /* ClapConfig() */
    c->projection_dim = 512;
    c->projection_act = CLAP_ACT_RELU;
}

const char *clap_act_name(clap_act a) {
    switch (a) {
    case CLAP_ACT_GELU: return "gelu";
    case CLAP_ACT_RELU: return "relu";
    case CLAP_ACT_QUICK_GELU: return "quick_gelu";
    }
    return "?";
}

int clap_audio_freq_ratio(const clap_audio_config *a) { return a->spec_size / a->num_mel_bins; }
int clap_audio_grid(const clap_audio_config *a) { return a->spec_size / a->patch_stride[0]; }
int clap_audio_stage_dim(const clap_audio_config *a, int stage) { return a->patch_embeds_hidden_size << stage; }

/* ---- field helpers ------------------------------------------------------------------------------------------ */

/* `section` is the key prefix for messages ("audio_config." or ""). */
static clxp_status get_int(const cJSON *o, const char *key, int *v, int lo, int hi, const char *what,
                           const char *section, clxp_error *err) {
    clxp_status st = clxp_json_int(o, key, *v, v, what, err);
    if (st != CLXP_OK) return st;
    if (*v < lo || *v > hi)
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: %s%s = %d is out of range [%d, %d]", what, section, key, *v, lo,
                            hi);
    return CLXP_OK;
}

static clxp_status get_eps(const cJSON *o, const char *key, double *v, const char *what, const char *section,
                           clxp_error *err) {
    clxp_status st = clxp_json_double(o, key, *v, v, what, err);
    if (st != CLXP_OK) return st;
    if (!(*v > 0 && *v < 1))
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: %s%s = %g must be in (0, 1)", what, section, key, *v);
    return CLXP_OK;
}

/* ACT2FN names: "gelu" is the exact erf form (GELUActivation); only the activations nn/ops.h implements. */
static clxp_status get_act(const cJSON *o, const char *key, clap_act *act, const char *what, const char *section,
                           clxp_error *err) {
    const char *s = NULL;
    clxp_status st = clxp_json_string(o, key, clap_act_name(*act), &s, what, err);
    if (st != CLXP_OK) return st;
    if (strcmp(s, "gelu") == 0)
        *act = CLAP_ACT_GELU;
    else if (strcmp(s, "relu") == 0)
        *act = CLAP_ACT_RELU;
    else if (strcmp(s, "quick_gelu") == 0)
        *act = CLAP_ACT_QUICK_GELU;
    else
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: unsupported %s%s \"%s\" (gelu, relu or quick_gelu)", what,
                            section, key, s);
    return CLXP_OK;
}

/* A list of 1..max integers in [lo, hi]; absent or null keeps *n / v. */
static clxp_status get_int_list(const cJSON *o, const char *key, int *v, int *n, int max, int lo, int hi,
                                const char *what, const char *section, clxp_error *err) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!arr || cJSON_IsNull(arr)) return CLXP_OK;
    if (!cJSON_IsArray(arr))
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: %s%s must be a list of integers", what, section, key);
    int cnt = cJSON_GetArraySize(arr);
    if (cnt < 1 || cnt > max)
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: %s%s has %d entries (1 to %d supported)", what, section,
                            key, cnt, max);
    for (int i = 0; i < cnt; i++) {
        const cJSON *e = cJSON_GetArrayItem(arr, i);
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble))
            return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: %s%s[%d] must be an integer", what, section, key, i);
        if (e->valuedouble < lo || e->valuedouble > hi)
            return clxp_err_set(err, CLXP_ERR_INVALID, "%s: %s%s[%d] = %g is out of range [%d, %d]", what, section, key,
                                i, e->valuedouble, lo, hi);
        v[i] = (int)e->valuedouble;
    }
    *n = cnt;
    return CLXP_OK;
}

/* An int or a list of `dims` equal ints (transformers accepts both for patch_size / patch_stride). */
static clxp_status get_int_or_pair(const cJSON *o, const char *key, int *v, const char *what, const char *section,
                                   clxp_error *err) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!x || cJSON_IsNull(x)) return CLXP_OK;
    if (cJSON_IsNumber(x)) {
        int s = v[0];
        clxp_status st = get_int(o, key, &s, 1, MAX_SPEC, what, section, err);
        if (st == CLXP_OK) v[0] = v[1] = s;
        return st;
    }
    int n = 0, tmp[2] = {0, 0};
    clxp_status st = get_int_list(o, key, tmp, &n, 2, 1, MAX_SPEC, what, section, err);
    if (st != CLXP_OK) return st;
    if (n != 2) return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: %s%s must be an integer or a pair", what, section, key);
    v[0] = tmp[0];
    v[1] = tmp[1];
    return CLXP_OK;
}

static clxp_status parse_audio(const cJSON *o, clap_audio_config *a, const char *what, clxp_error *err) {
    const char *sec = "audio_config.";
    clxp_status st;
    int ps[2] = {a->patch_size, a->patch_size};
    int n_heads = a->n_stages;
    if ((st = get_int(o, "num_mel_bins", &a->num_mel_bins, 1, MAX_SPEC, what, sec, err)) ||
        (st = get_int(o, "spec_size", &a->spec_size, 1, MAX_SPEC, what, sec, err)) ||
        (st = get_int_or_pair(o, "patch_size", ps, what, sec, err)) ||
        (st = get_int_or_pair(o, "patch_stride", a->patch_stride, what, sec, err)) ||
        (st = get_int(o, "patch_embeds_hidden_size", &a->patch_embeds_hidden_size, 1, MAX_DIM, what, sec, err)) ||
        (st = get_int_list(o, "depths", a->depths, &a->n_stages, CLAP_MAX_STAGES, 1, MAX_LAYERS, what, sec, err)) ||
        (st =
             get_int_list(o, "num_attention_heads", a->heads, &n_heads, CLAP_MAX_STAGES, 1, MAX_DIM, what, sec, err)) ||
        (st = get_int(o, "window_size", &a->window_size, 1, MAX_SPEC, what, sec, err)) ||
        (st = clxp_json_double(o, "mlp_ratio", a->mlp_ratio, &a->mlp_ratio, what, err)) ||
        (st = clxp_json_bool(o, "qkv_bias", a->qkv_bias, &a->qkv_bias, what, err)) ||
        (st = get_int(o, "hidden_size", &a->hidden_size, 1, MAX_DIM * 8, what, sec, err)) ||
        (st = get_act(o, "hidden_act", &a->hidden_act, what, sec, err)) ||
        (st = get_eps(o, "layer_norm_eps", &a->layer_norm_eps, what, sec, err)) ||
        (st = clxp_json_bool(o, "enable_fusion", a->enable_fusion, &a->enable_fusion, what, err)) ||
        (st = clxp_json_bool(o, "enable_patch_layer_norm", a->enable_patch_layer_norm, &a->enable_patch_layer_norm,
                             what, err)) ||
        (st = get_int(o, "aff_block_r", &a->aff_block_r, 1, MAX_DIM, what, sec, err)))
        return st;
    /* Fields transformers has but that only allow one value in a model that runs. */
    int in_ch = 1, flatten = 1;
    if ((st = get_int(o, "patch_embed_input_channels", &in_ch, 1, 1, what, sec, err)) ||
        (st = clxp_json_bool(o, "flatten_patch_embeds", flatten, &flatten, what, err)))
        return st;
    if (!flatten)
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: %sflatten_patch_embeds = false is not supported", what,
                            sec);
    const char *fusion_type = NULL;
    if ((st = clxp_json_string(o, "fusion_type", NULL, &fusion_type, what, err))) return st;
    /* ClapAudioPatchEmbed always builds the 2-D AFF block; "channel_map" would give proj 4 input channels, which
     * its forward (channel 0 only) cannot run. */
    if (a->enable_fusion && fusion_type && strcmp(fusion_type, "channel_map") == 0)
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: %sfusion_type \"channel_map\" is not supported", what, sec);
    if (n_heads != a->n_stages)
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: %snum_attention_heads has %d entries but depths has %d", what,
                            sec, n_heads, a->n_stages);
    if (a->spec_size % a->num_mel_bins != 0)
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: %sspec_size %d is not a multiple of num_mel_bins %d", what,
                            sec, a->spec_size, a->num_mel_bins);
    if (ps[0] != ps[1] || a->patch_stride[0] != a->patch_stride[1] || ps[0] != a->patch_stride[0])
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED,
                            "%s: %spatch_size must equal patch_stride (square, non-overlapping patches)", what, sec);
    a->patch_size = ps[0];
    if (a->spec_size % a->patch_size != 0)
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: %sspec_size %d is not a multiple of patch_size %d", what,
                            sec, a->spec_size, a->patch_size);
    /* Every stage resolution must be a multiple of the window: transformers pads otherwise (not implemented
     * here), and a resolution below the window cannot run in transformers at all (its bias table is built for
     * the configured window). */
    int res = clap_audio_grid(a);
    for (int i = 0; i < a->n_stages; i++) {
        if (i > 0) {
            if (res % 2 != 0)
                return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: %sstage %d resolution %d is odd", what, sec, i - 1,
                                    res);
            res /= 2;
        }
        if (res % a->window_size != 0)
            return clxp_err_set(err, CLXP_ERR_UNSUPPORTED,
                                "%s: %sstage %d resolution %dx%d is not a multiple of window_size %d", what, sec, i,
                                res, res, a->window_size);
        int64_t dim = (int64_t)a->patch_embeds_hidden_size << i;
        if (dim > MAX_DIM)
            return clxp_err_set(err, CLXP_ERR_INVALID, "%s: %sstage %d width %lld is too large", what, sec, i,
                                (long long)dim);
        if (dim % a->heads[i] != 0)
            return clxp_err_set(err, CLXP_ERR_INVALID,
                                "%s: %sstage %d width %lld is not divisible by num_attention_heads[%d] = %d", what, sec,
                                i, (long long)dim, i, a->heads[i]);
        double mlp = a->mlp_ratio * (double)dim;
        if (!(mlp >= 1 && mlp <= 8.0 * MAX_DIM))
            return clxp_err_set(err, CLXP_ERR_INVALID, "%s: %smlp_ratio %g gives an MLP width out of range", what, sec,
                                a->mlp_ratio);
    }
    /* ClapAudioEncoder.forward regroups the last map by freq_ratio before pooling (a reshape that needs it). */
    if (res % clap_audio_freq_ratio(a) != 0)
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED,
                            "%s: %sthe last stage resolution %d is not a multiple of spec_size / num_mel_bins = %d",
                            what, sec, res, clap_audio_freq_ratio(a));
    int64_t last = (int64_t)a->patch_embeds_hidden_size << (a->n_stages - 1);
    if (a->hidden_size != last)
        return clxp_err_set(err, CLXP_ERR_INVALID,
                            "%s: %shidden_size %d differs from the last stage width %lld (patch_embeds_hidden_size * "
                            "2^(stages-1)) that the projection receives",
                            what, sec, a->hidden_size, (long long)last);
    if (a->enable_fusion) {
        if (a->patch_embeds_hidden_size / a->aff_block_r < 1)
            return clxp_err_set(err, CLXP_ERR_INVALID, "%s: %saff_block_r %d leaves no AFF channels", what, sec,
                                a->aff_block_r);
        /* mel_conv2d: kernel (p, 3p), stride (p, 3p); its three crops side by side must fit the global width. */
        int g = clap_audio_grid(a), lw = 3 * ((a->spec_size - 3 * a->patch_size) / (3 * a->patch_size) + 1);
        if (a->spec_size < 3 * a->patch_size || lw > g)
            return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: %sfusion needs spec_size >= 3 * patch_size", what, sec);
    }
    return CLXP_OK;
}

static clxp_status parse_text(const cJSON *o, clap_text_config *t, const char *what, clxp_error *err) {
    const char *sec = "text_config.";
    clxp_status st;
    if ((st = get_int(o, "vocab_size", &t->vocab_size, 1, MAX_VOCAB, what, sec, err)) ||
        (st = get_int(o, "hidden_size", &t->hidden, 1, MAX_DIM, what, sec, err)) ||
        (st = get_int(o, "num_hidden_layers", &t->layers, 1, MAX_LAYERS, what, sec, err)) ||
        (st = get_int(o, "num_attention_heads", &t->heads, 1, MAX_DIM, what, sec, err)) ||
        (st = get_int(o, "intermediate_size", &t->intermediate, 1, MAX_DIM * 8, what, sec, err)) ||
        (st = get_int(o, "max_position_embeddings", &t->max_position_embeddings, 3, MAX_POSITIONS, what, sec, err)) ||
        (st = get_int(o, "type_vocab_size", &t->type_vocab_size, 1, MAX_VOCAB, what, sec, err)) ||
        (st = get_int(o, "pad_token_id", &t->pad_token_id, 0, MAX_VOCAB, what, sec, err)) ||
        (st = get_int(o, "bos_token_id", &t->bos_token_id, 0, MAX_VOCAB, what, sec, err)) ||
        (st = get_int(o, "eos_token_id", &t->eos_token_id, 0, MAX_VOCAB, what, sec, err)) ||
        (st = get_act(o, "hidden_act", &t->hidden_act, what, sec, err)) ||
        (st = get_eps(o, "layer_norm_eps", &t->layer_norm_eps, what, sec, err)))
        return st;
    const char *pet = NULL;
    if ((st = clxp_json_string(o, "position_embedding_type", "absolute", &pet, what, err))) return st;
    if (strcmp(pet, "absolute") != 0)
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED,
                            "%s: %sposition_embedding_type \"%s\" is not supported (absolute)", what, sec, pet);
    int is_decoder = 0;
    if ((st = clxp_json_bool(o, "is_decoder", 0, &is_decoder, what, err))) return st;
    if (is_decoder)
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: %sis_decoder = true is not supported", what, sec);
    if (t->hidden % t->heads != 0)
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: %shidden_size %d is not divisible by num_attention_heads %d",
                            what, sec, t->hidden, t->heads);
    if (t->pad_token_id >= t->vocab_size || t->pad_token_id + 1 >= t->max_position_embeddings)
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: %spad_token_id %d does not fit the vocabulary / positions",
                            what, sec, t->pad_token_id);
    return CLXP_OK;
}

clxp_status clap_config_parse(const char *json, size_t len, const char *what, clap_config *c, clxp_error *err) {
    clap_config_defaults(c);
    cJSON *root = NULL;
    clxp_status st = clxp_json_parse(json, len, what, &root, err);
    if (st != CLXP_OK) return st;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: not a JSON object", what);
    }
    const char *mt = NULL;
    st = clxp_json_string(root, "model_type", "clap", &mt, what, err);
    if (st == CLXP_OK && strcmp(mt, "clap") != 0)
        st = clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not a CLAP model (expected \"clap\")",
                          what, mt);
    const cJSON *ac = cJSON_GetObjectItemCaseSensitive(root, "audio_config");
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    if (st == CLXP_OK &&
        ((ac && !cJSON_IsObject(ac) && !cJSON_IsNull(ac)) || (tc && !cJSON_IsObject(tc) && !cJSON_IsNull(tc))))
        st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: audio_config and text_config must be objects", what);
    if (st == CLXP_OK) st = get_int(root, "projection_dim", &c->projection_dim, 1, MAX_DIM, what, "", err);
    if (st == CLXP_OK) st = get_act(root, "projection_hidden_act", &c->projection_act, what, "", err);
    if (st == CLXP_OK && cJSON_IsObject(ac)) st = parse_audio(ac, &c->audio, what, err);
    if (st == CLXP_OK && cJSON_IsObject(tc)) st = parse_text(tc, &c->text, what, err);
    cJSON_Delete(root);
    return st;
}

clxp_status clap_config_load(const char *path, clap_config *cfg, clxp_error *err) {
    char *buf = NULL;
    size_t len = 0;
    clap_config_defaults(cfg);
    clxp_status st = clxp_read_file(path, CLXP_MAX_JSON_BYTES, &buf, &len, err);
    if (st != CLXP_OK) return st;
    st = clap_config_parse(buf, len, path, cfg, err);
    free(buf);
    return st;
}

/* ---- preprocessor_config.json ------------------------------------------------------------------------------- */

void clap_feature_config_defaults(clap_feature_config *c) {
    /* ClapFeatureExtractor.__init__ defaults */
    c->sampling_rate = 48000;
    c->feature_size = 64;
    c->fft_window_size = 1024;
    c->hop_length = 480;
    c->nb_max_samples = 10 * 48000;
    c->frequency_min = 0;
    c->frequency_max = 14000;
    c->truncation = CLAP_TRUNC_FUSION;
    c->padding = CLAP_PAD_REPEATPAD;
}

const char *clap_truncation_name(clap_truncation t) { return t == CLAP_TRUNC_FUSION ? "fusion" : "rand_trunc"; }

clxp_status clap_feature_config_parse(const char *json, size_t len, const char *what, clap_feature_config *c,
                                      clxp_error *err) {
    clap_feature_config_defaults(c);
    cJSON *root = NULL;
    clxp_status st = clxp_json_parse(json, len, what, &root, err);
    if (st != CLXP_OK) return st;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: not a JSON object", what);
    }
    double max_len_s = 10, fmin = c->frequency_min, fmax = c->frequency_max;
    const char *trunc = NULL, *pad = NULL, *fe_type = NULL;
    if ((st = get_int(root, "sampling_rate", &c->sampling_rate, 1, CLAP_FE_MAX_RATE, what, "", err)) ||
        (st = get_int(root, "feature_size", &c->feature_size, 1, CLAP_FE_MAX_MELS, what, "", err)) ||
        (st = get_int(root, "fft_window_size", &c->fft_window_size, 2, CLAP_FE_MAX_FFT, what, "", err)) ||
        (st = get_int(root, "hop_length", &c->hop_length, 1, CLAP_FE_MAX_FFT, what, "", err)) ||
        (st = clxp_json_double(root, "max_length_s", max_len_s, &max_len_s, what, err)) ||
        (st = clxp_json_double(root, "frequency_min", fmin, &fmin, what, err)) ||
        (st = clxp_json_double(root, "frequency_max", fmax, &fmax, what, err)) ||
        (st = clxp_json_string(root, "truncation", "fusion", &trunc, what, err)) ||
        (st = clxp_json_string(root, "padding", "repeatpad", &pad, what, err)) ||
        (st = clxp_json_string(root, "feature_extractor_type", "ClapFeatureExtractor", &fe_type, what, err)))
        goto out;
    if (strcmp(fe_type, "ClapFeatureExtractor") != 0) {
        st = clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: feature_extractor_type \"%s\" is not ClapFeatureExtractor",
                          what, fe_type);
        goto out;
    }
    /* nb_max_samples = max_length_s * sampling_rate (ClapFeatureExtractor.__init__); it is a sample count. */
    double ns = max_len_s * c->sampling_rate;
    if (!(ns >= 1 && ns <= CLAP_FE_MAX_SAMPLES) || ns != floor(ns)) {
        st = clxp_err_set(err, CLXP_ERR_INVALID,
                          "%s: max_length_s %g x sampling_rate %d is not a sample count in [1, %d]", what, max_len_s,
                          c->sampling_rate, CLAP_FE_MAX_SAMPLES);
        goto out;
    }
    c->nb_max_samples = (int)ns;
    if (c->fft_window_size % 2 != 0) {
        st = clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: fft_window_size %d is odd (only even sizes are supported)",
                          what, c->fft_window_size);
        goto out;
    }
    if (c->nb_max_samples < c->fft_window_size) {
        st = clxp_err_set(err, CLXP_ERR_INVALID, "%s: max_length_s gives %d samples, fewer than fft_window_size %d",
                          what, c->nb_max_samples, c->fft_window_size);
        goto out;
    }
    if (!(fmin >= 0 && fmin < fmax && fmax <= c->sampling_rate / 2.0)) {
        st = clxp_err_set(err, CLXP_ERR_INVALID,
                          "%s: frequency_min %g / frequency_max %g must satisfy 0 <= min < max <= sampling_rate/2",
                          what, fmin, fmax);
        goto out;
    }
    c->frequency_min = fmin;
    c->frequency_max = fmax;
    if (strcmp(trunc, "fusion") == 0)
        c->truncation = CLAP_TRUNC_FUSION;
    else if (strcmp(trunc, "rand_trunc") == 0)
        c->truncation = CLAP_TRUNC_RAND_TRUNC;
    else {
        st = clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: truncation \"%s\" is not supported (fusion or rand_trunc)",
                          what, trunc);
        goto out;
    }
    if (strcmp(pad, "repeatpad") == 0)
        c->padding = CLAP_PAD_REPEATPAD;
    else if (strcmp(pad, "repeat") == 0)
        c->padding = CLAP_PAD_REPEAT;
    else if (strcmp(pad, "pad") == 0)
        c->padding = CLAP_PAD_PAD;
    else {
        st = clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: padding \"%s\" is not supported (repeatpad, repeat or pad)",
                          what, pad);
        goto out;
    }
out:
    cJSON_Delete(root);
    return st;
}

clxp_status clap_feature_config_load(const char *path, clap_feature_config *cfg, clxp_error *err) {
    char *buf = NULL;
    size_t len = 0;
    clap_feature_config_defaults(cfg);
    clxp_status st = clxp_read_file(path, CLXP_MAX_JSON_BYTES, &buf, &len, err);
    if (st != CLXP_OK) return st;
    st = clap_feature_config_parse(buf, len, path, cfg, err);
    free(buf);
    return st;
}
