/* preprocessor_config.json parsing (see preprocessor_config.h). */
#include "io/preprocessor_config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "util/error.h"
#include "util/fileio.h"
#include "util/json.h"

/* transformers CLIPImageProcessor.__init__ defaults. */
#define HF_DEFAULT_SIZE 224

void clip_preproc_cfg_defaults(clip_preproc_cfg *cfg, int image_size) {
    cfg->do_resize = 1;
    cfg->shortest_edge = image_size;
    cfg->size_height = 0;
    cfg->size_width = 0;
    cfg->resample = CLIP_RESAMPLE_BICUBIC;
    cfg->do_center_crop = 1;
    cfg->crop_height = image_size;
    cfg->crop_width = image_size;
    cfg->do_rescale = 1;
    cfg->rescale_factor = 1.0 / 255.0;
    cfg->do_normalize = 1;
    cfg->image_mean[0] = (float)CLIP_OPENAI_MEAN_R;
    cfg->image_mean[1] = (float)CLIP_OPENAI_MEAN_G;
    cfg->image_mean[2] = (float)CLIP_OPENAI_MEAN_B;
    cfg->image_std[0] = (float)CLIP_OPENAI_STD_R;
    cfg->image_std[1] = (float)CLIP_OPENAI_STD_G;
    cfg->image_std[2] = (float)CLIP_OPENAI_STD_B;
    cfg->do_convert_rgb = 1;
}

/* An integer size value: present, integral, within 1..CLIP_PREPROC_MAX_SIZE. `key` is the full key for messages. */
static clxp_status int_size(const cJSON *v, const char *what, const char *key, int *out, clxp_error *err) {
    if (!v || !cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: \"%s\" must be an integer", what, key);
    double d = v->valuedouble;
    if (!(d >= 1 && d <= CLIP_PREPROC_MAX_SIZE))
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: \"%s\" = %g is out of range (1..%d)", what, key, d,
                            CLIP_PREPROC_MAX_SIZE);
    *out = (int)d;
    return CLXP_OK;
}

/* size / crop_size as [H, W] or {"height": H, "width": W}; *matched = 0 when the value has neither shape. */
static clxp_status height_width(const cJSON *v, const char *what, const char *key, int *h, int *w, int *matched,
                                clxp_error *err) {
    char k1[64], k2[64];
    *matched = 0;
    if (cJSON_IsArray(v)) {
        if (cJSON_GetArraySize(v) != 2)
            return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: \"%s\" as a list must be [height, width]", what, key);
        *matched = 1;
        snprintf(k1, sizeof k1, "%s[0]", key);
        snprintf(k2, sizeof k2, "%s[1]", key);
        clxp_status st = int_size(cJSON_GetArrayItem(v, 0), what, k1, h, err);
        if (st == CLXP_OK) st = int_size(cJSON_GetArrayItem(v, 1), what, k2, w, err);
        return st;
    }
    if (cJSON_IsObject(v)) {
        const cJSON *hv = cJSON_GetObjectItemCaseSensitive(v, "height");
        const cJSON *wv = cJSON_GetObjectItemCaseSensitive(v, "width");
        if (!hv || !wv || cJSON_IsNull(hv) || cJSON_IsNull(wv)) return CLXP_OK;
        *matched = 1;
        snprintf(k1, sizeof k1, "%s.height", key);
        snprintf(k2, sizeof k2, "%s.width", key);
        clxp_status st = int_size(hv, what, k1, h, err);
        if (st == CLXP_OK) st = int_size(wv, what, k2, w, err);
        return st;
    }
    return CLXP_OK;
}

static clxp_status parse_size(const cJSON *root, const char *what, clip_preproc_cfg *cfg, clxp_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "size");
    if (!v || cJSON_IsNull(v)) return CLXP_OK;
    if (cJSON_IsNumber(v)) { /* older files: an int is the shortest edge (get_size_dict default_to_square=False) */
        cfg->size_height = cfg->size_width = 0;
        return int_size(v, what, "size", &cfg->shortest_edge, err);
    }
    if (cJSON_IsObject(v)) {
        const cJSON *se = cJSON_GetObjectItemCaseSensitive(v, "shortest_edge");
        if (se && !cJSON_IsNull(se)) { /* CLIPImageProcessor.resize checks shortest_edge first */
            cfg->size_height = cfg->size_width = 0;
            return int_size(se, what, "size.shortest_edge", &cfg->shortest_edge, err);
        }
    }
    int h = 0, w = 0, matched = 0;
    clxp_status st = height_width(v, what, "size", &h, &w, &matched, err);
    if (st != CLXP_OK) return st;
    if (!matched)
        return clxp_err_set(err, CLXP_ERR_FORMAT,
                            "%s: \"size\" must be an integer, {\"shortest_edge\": N} or {\"height\": H, \"width\": W}",
                            what);
    cfg->shortest_edge = 0;
    cfg->size_height = h;
    cfg->size_width = w;
    return CLXP_OK;
}

static clxp_status parse_crop(const cJSON *root, const char *what, clip_preproc_cfg *cfg, clxp_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "crop_size");
    if (!v || cJSON_IsNull(v)) return CLXP_OK;
    if (cJSON_IsNumber(v)) { /* an int is a square crop (get_size_dict default_to_square=True) */
        clxp_status st = int_size(v, what, "crop_size", &cfg->crop_height, err);
        cfg->crop_width = cfg->crop_height;
        return st;
    }
    int h = 0, w = 0, matched = 0;
    clxp_status st = height_width(v, what, "crop_size", &h, &w, &matched, err);
    if (st != CLXP_OK) return st;
    if (!matched)
        return clxp_err_set(err, CLXP_ERR_FORMAT,
                            "%s: \"crop_size\" must be an integer or {\"height\": H, \"width\": W}", what);
    cfg->crop_height = h;
    cfg->crop_width = w;
    return CLXP_OK;
}

/* image_mean / image_std: 3 numbers, or one number for every channel (transformers' normalize accepts both). */
static clxp_status parse_triplet(const cJSON *root, const char *what, const char *key, int positive, float out[3],
                                 clxp_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) return CLXP_OK;
    double d[3];
    if (cJSON_IsNumber(v)) {
        d[0] = d[1] = d[2] = v->valuedouble;
    } else if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 3) {
        for (int c = 0; c < 3; c++) {
            const cJSON *e = cJSON_GetArrayItem(v, c);
            if (!cJSON_IsNumber(e))
                return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: \"%s\"[%d] must be a number", what, key, c);
            d[c] = e->valuedouble;
        }
    } else {
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: \"%s\" must be a list of 3 numbers", what, key);
    }
    for (int c = 0; c < 3; c++) {
        /* numpy casts them to the float32 of the image: round once, here */
        float f = (float)d[c];
        if (!isfinite(d[c]) || !isfinite(f) || (positive && !(f > 0)))
            return clxp_err_set(err, CLXP_ERR_INVALID, "%s: \"%s\"[%d] = %g must be %s", what, key, c, d[c],
                                positive ? "a positive number" : "a finite number");
        out[c] = f;
    }
    return CLXP_OK;
}

clxp_status clip_preproc_cfg_parse(const char *json, size_t len, const char *what, clip_preproc_cfg *cfg,
                                   clxp_error *err) {
    if (!what) what = "preprocessor_config.json";
    cJSON *root = NULL;
    clxp_status st = clxp_json_parse(json, len, what, &root, err);
    if (st != CLXP_OK) return st;
    clip_preproc_cfg c;
    clip_preproc_cfg_defaults(&c, HF_DEFAULT_SIZE);
    if (!cJSON_IsObject(root)) {
        st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: expected a JSON object", what);
        goto done;
    }
    if ((st = clxp_json_bool(root, "do_resize", c.do_resize, &c.do_resize, what, err)) != CLXP_OK) goto done;
    if ((st = clxp_json_bool(root, "do_center_crop", c.do_center_crop, &c.do_center_crop, what, err)) != CLXP_OK)
        goto done;
    if ((st = clxp_json_bool(root, "do_rescale", c.do_rescale, &c.do_rescale, what, err)) != CLXP_OK) goto done;
    if ((st = clxp_json_bool(root, "do_normalize", c.do_normalize, &c.do_normalize, what, err)) != CLXP_OK) goto done;
    if ((st = clxp_json_bool(root, "do_convert_rgb", c.do_convert_rgb, &c.do_convert_rgb, what, err)) != CLXP_OK)
        goto done;
    if ((st = clxp_json_int(root, "resample", c.resample, &c.resample, what, err)) != CLXP_OK) goto done;
    if ((st = clxp_json_double(root, "rescale_factor", c.rescale_factor, &c.rescale_factor, what, err)) != CLXP_OK)
        goto done;
    if (!(c.rescale_factor > 0)) {
        st = clxp_err_set(err, CLXP_ERR_INVALID, "%s: \"rescale_factor\" = %g must be positive", what,
                          c.rescale_factor);
        goto done;
    }
    if ((st = parse_size(root, what, &c, err)) != CLXP_OK) goto done;
    if ((st = parse_crop(root, what, &c, err)) != CLXP_OK) goto done;
    if ((st = parse_triplet(root, what, "image_mean", 0, c.image_mean, err)) != CLXP_OK) goto done;
    if ((st = parse_triplet(root, what, "image_std", 1, c.image_std, err)) != CLXP_OK) goto done;
    if (c.do_resize && c.resample != CLIP_RESAMPLE_BICUBIC) {
        static const char *names[] = {"nearest", "lanczos", "bilinear", "bicubic", "box", "hamming"};
        st = clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: \"resample\" = %d (%s) is not supported (only 3 = bicubic)",
                          what, c.resample, c.resample >= 0 && c.resample <= 5 ? names[c.resample] : "unknown");
        goto done;
    }
    if ((st = clip_preproc_cfg_check(&c, what, err)) != CLXP_OK) goto done;
    *cfg = c;
done:
    cJSON_Delete(root);
    return st;
}

clxp_status clip_preproc_cfg_load(const char *path, clip_preproc_cfg *cfg, clxp_error *err) {
    char *buf = NULL;
    size_t len = 0;
    clxp_status st = clxp_read_file(path, CLXP_MAX_JSON_BYTES, &buf, &len, err);
    if (st != CLXP_OK) return st;
    st = clip_preproc_cfg_parse(buf, len, path, cfg, err);
    free(buf);
    return st;
}
