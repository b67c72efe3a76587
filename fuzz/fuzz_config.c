/* Fuzz target: the model configuration loaders. The first byte picks the parser (mod 4), the rest is the JSON:
 *   0: CLIP config.json           (clip_config_parse)
 *   1: CLAP config.json           (clap_config_parse)
 *   2: CLAP preprocessor_config   (clap_feature_config_parse, then clap_fe_create / clap_fe_extract when cheap)
 *   3: CLIP preprocessor_config   (clip_preproc_cfg_parse)
 * On success the invariants the model code relies on are checked. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "io/clap_config.h"
#include "io/clip_config.h"
#include "io/preprocessor_config.h"
#include "media/audio_features.h"
#include "media/preprocess.h"

static void check_err(clxp_status st, const clxp_error *err) {
    FUZZ_ASSERT(st != CLXP_OK && err->code == st);
    FUZZ_ASSERT(memchr(err->msg, '\0', sizeof err->msg) && !strchr(err->msg, '\n'));
}

static void check_tower(const clip_tower_config *t) {
    FUZZ_ASSERT(t->hidden >= 1 && t->layers >= 1 && t->heads >= 1 && t->mlp >= 1 && t->hidden % t->heads == 0);
    FUZZ_ASSERT(t->ln_eps > 0 && t->ln_eps < 1);
}

static void clip(const char *json, size_t len) {
    clip_config c;
    clxp_error err;
    clxp_status st = clip_config_parse(json, len, "config.json", &c, &err);
    if (st != CLXP_OK) {
        check_err(st, &err);
        return;
    }
    check_tower(&c.vision);
    check_tower(&c.text);
    FUZZ_ASSERT(c.patch_size >= 1 && c.image_size % c.patch_size == 0 && c.num_channels == 3);
    FUZZ_ASSERT(c.vocab_size >= 1 && c.context_length >= 2 && c.projection_dim >= 1);
}

static void clap(const char *json, size_t len) {
    clap_config c;
    clxp_error err;
    clxp_status st = clap_config_parse(json, len, "config.json", &c, &err);
    if (st != CLXP_OK) {
        check_err(st, &err);
        return;
    }
    const clap_audio_config *a = &c.audio;
    FUZZ_ASSERT(a->n_stages >= 1 && a->n_stages <= CLAP_MAX_STAGES);
    FUZZ_ASSERT(a->num_mel_bins >= 1 && a->spec_size % a->num_mel_bins == 0 && clap_audio_freq_ratio(a) >= 1);
    FUZZ_ASSERT(a->patch_size >= 1 && a->patch_size == a->patch_stride[0] && a->patch_size == a->patch_stride[1]);
    int res = clap_audio_grid(a);
    FUZZ_ASSERT(res >= 1);
    for (int i = 0; i < a->n_stages; i++) {
        if (i > 0) res /= 2;
        FUZZ_ASSERT(res >= 1 && a->window_size >= 1 && res % a->window_size == 0);
        int dim = clap_audio_stage_dim(a, i);
        FUZZ_ASSERT(dim >= 1 && a->heads[i] >= 1 && dim % a->heads[i] == 0 && a->depths[i] >= 1);
    }
    FUZZ_ASSERT(a->hidden_size == clap_audio_stage_dim(a, a->n_stages - 1));
    const clap_text_config *t = &c.text;
    FUZZ_ASSERT(t->heads >= 1 && t->hidden % t->heads == 0 && t->pad_token_id < t->vocab_size);
    FUZZ_ASSERT(t->pad_token_id + 1 < t->max_position_embeddings);
    FUZZ_ASSERT(clap_act_name(a->hidden_act)[0] != '?' && clap_act_name(c.projection_act)[0] != '?');
}

static void clap_features(const char *json, size_t len) {
    clap_feature_config c;
    clxp_error err;
    clxp_status st = clap_feature_config_parse(json, len, "preprocessor_config.json", &c, &err);
    if (st != CLXP_OK) {
        check_err(st, &err);
        return;
    }
    FUZZ_ASSERT(c.sampling_rate >= 1 && c.sampling_rate <= CLAP_FE_MAX_RATE);
    FUZZ_ASSERT(c.feature_size >= 1 && c.feature_size <= CLAP_FE_MAX_MELS);
    FUZZ_ASSERT(c.fft_window_size >= 2 && c.fft_window_size <= CLAP_FE_MAX_FFT && c.hop_length >= 1);
    FUZZ_ASSERT(c.nb_max_samples >= 1 && c.nb_max_samples <= CLAP_FE_MAX_SAMPLES);
    FUZZ_ASSERT(c.frequency_min >= 0 && c.frequency_min < c.frequency_max);
    FUZZ_ASSERT(clap_truncation_name(c.truncation) != NULL);
    /* the extractor this configuration builds, on a short clip and on one past nb_max_samples, when that stays
     * cheap (filters bins x mels, features channels x frames x mels, one FFT per hop) */
    int bins = c.fft_window_size / 2 + 1, frames = c.nb_max_samples / c.hop_length + 1;
    if ((int64_t)bins * c.feature_size > 1 << 16 || (int64_t)4 * frames * c.feature_size > 1 << 16 ||
        ((int64_t)c.nb_max_samples * 2 / c.hop_length + 2) * c.fft_window_size > 1 << 15)
        return;
    clap_fe *fe = NULL;
    st = clap_fe_create(&c, &fe, &err);
    FUZZ_ASSERT(st == CLXP_OK);
    FUZZ_ASSERT(clap_fe_bins(fe) == bins && clap_fe_frames(fe) == frames && clap_fe_mels(fe) == c.feature_size);
    size_t nf = (size_t)clap_fe_channels(fe) * (size_t)frames * (size_t)c.feature_size;
    float *features = malloc(nf * sizeof *features);
    size_t n_long = (size_t)c.nb_max_samples + (size_t)c.nb_max_samples / 2 + 1;
    float *wave = malloc(n_long * sizeof *wave);
    FUZZ_ASSERT(features && wave);
    uint32_t x = 12345;
    for (size_t i = 0; i < n_long; i++) {
        x = x * 1664525u + 1013904223u;
        wave[i] = (float)((int32_t)x >> 8) / 8388608.0f * 0.5f;
    }
    const size_t lengths[3] = {1, (size_t)c.nb_max_samples / 3 + 1, n_long};
    for (int k = 0; k < 3; k++) {
        int is_longer = -1;
        st = clap_fe_extract(fe, wave, lengths[k], NULL, features, &is_longer, NULL, &err);
        FUZZ_ASSERT(st == CLXP_OK && (is_longer == 0 || is_longer == 1));
        for (size_t i = 0; i < nf; i++) FUZZ_ASSERT(!isnan(features[i]));
    }
    free(wave);
    free(features);
    clap_fe_free(fe);
}

static void clip_preproc(const char *json, size_t len) {
    clip_preproc_cfg c;
    clxp_error err;
    clxp_status st = clip_preproc_cfg_parse(json, len, "preprocessor_config.json", &c, &err);
    if (st != CLXP_OK) {
        check_err(st, &err);
        return;
    }
    if (c.do_resize) {
        FUZZ_ASSERT(c.resample == CLIP_RESAMPLE_BICUBIC);
        FUZZ_ASSERT(c.shortest_edge > 0 || (c.size_height > 0 && c.size_width > 0));
    }
    if (c.do_center_crop) FUZZ_ASSERT(c.crop_height >= 1 && c.crop_width >= 1);
    FUZZ_ASSERT(c.rescale_factor > 0);
    for (int k = 0; k < 3; k++) FUZZ_ASSERT(c.image_std[k] > 0);
    /* the size arithmetic on extreme images, then the whole pipeline on a small one when it stays cheap */
    static const int sizes[][2] = {{1, 1}, {1, 32768}, {32768, 1}, {32768, 32768}, {7, 5}, {640, 480}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int rw = 0, rh = 0, ow = 0, oh = 0;
        if (clip_resize_output_size(&c, sizes[i][0], sizes[i][1], &rw, &rh, &err) == CLXP_OK)
            FUZZ_ASSERT(rw >= 1 && rh >= 1);
        if (clip_preproc_output_size(&c, sizes[i][0], sizes[i][1], &ow, &oh, &err) == CLXP_OK)
            FUZZ_ASSERT(ow >= 1 && oh >= 1 && (int64_t)ow * oh <= CLIP_PREPROC_MAX_PIXELS);
    }
    int rw = 0, rh = 0, ow = 0, oh = 0;
    if (clip_resize_output_size(&c, 7, 5, &rw, &rh, &err) != CLXP_OK ||
        clip_preproc_output_size(&c, 7, 5, &ow, &oh, &err) != CLXP_OK)
        return;
    if ((int64_t)rw * rh > 65536 || (int64_t)ow * oh > 65536) return;
    uint8_t rgb[5][7][3];
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 7; x++)
            for (int k = 0; k < 3; k++) rgb[y][x][k] = (uint8_t)(37 * x + 11 * y + 101 * k);
    float *out = malloc((size_t)ow * (size_t)oh * 3 * sizeof *out);
    FUZZ_ASSERT(out != NULL);
    clxp_status st2 = clip_preprocess(&c, &rgb[0][0][0], 7, 5, 7 * 3, out, NULL, &err);
    FUZZ_ASSERT(st2 == CLXP_OK);
    free(out);
}

int fuzz_config(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *json = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 4) {
    case 0: clip(json, len); break;
    case 1: clap(json, len); break;
    case 2: clap_features(json, len); break;
    default: clip_preproc(json, len); break;
    }
    return 0;
}

FUZZ_ENTRY(fuzz_config)
