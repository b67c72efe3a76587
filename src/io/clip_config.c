#include "io/clip_config.h"

#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/fileio.h"
#include "util/json.h"

/* Upper bounds that keep every derived size comfortably inside int and size_t arithmetic. */
#define MAX_DIM 65536
#define MAX_LAYERS 1024
#define MAX_IMAGE 8192
#define MAX_VOCAB (1 << 24)
#define MAX_CONTEXT 65536

void clip_config_defaults(clip_config *c) {
    memset(c, 0, sizeof *c);
    /* CLIPVisionConfig() */
    c->vision = (clip_tower_config){768, 12, 12, 3072, CLIP_ACT_QUICK_GELU, 1e-5};
    c->image_size = 224;
    c->patch_size = 32;
    c->num_channels = 3;
    /* CLIPTextConfig() */
    c->text = (clip_tower_config){512, 12, 8, 2048, CLIP_ACT_QUICK_GELU, 1e-5};
    c->vocab_size = 49408;
    c->context_length = 77;
    c->pad_token_id = 1;
    c->bos_token_id = 49406;
    c->eos_token_id = 49407;
    /* CLIPConfig() */
    c->projection_dim = 512;
}

const char *clip_act_name(clip_act a) { return a == CLIP_ACT_GELU ? "gelu" : "quick_gelu"; }

static clxp_status parse_act(const cJSON *obj, const char *key, clip_act *act, const char *what, clxp_error *err) {
    const char *s = NULL;
    clxp_status st = clxp_json_string(obj, key, clip_act_name(*act), &s, what, err);
    if (st != CLXP_OK) return st;
    if (strcmp(s, "quick_gelu") == 0) *act = CLIP_ACT_QUICK_GELU;
    else if (strcmp(s, "gelu") == 0) *act = CLIP_ACT_GELU;
    else return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: unsupported %s \"%s\" (quick_gelu or gelu)", what, key, s);
    return CLXP_OK;
}

static clxp_status get_int(const cJSON *o, const char *key, int *v, int lo, int hi, const char *what,
                           const char *section, clxp_error *err) {
    clxp_status st = clxp_json_int(o, key, *v, v, what, err);
    if (st != CLXP_OK) /* name the section too: "hidden_size" alone does not say which tower */
        return clxp_err_set(err, st, "%s: %s%s must be an integer in [%d, %d]", what, section, key, lo, hi);
    if (*v < lo || *v > hi)
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: %s%s = %d is out of range [%d, %d]", what, section, key, *v, lo,
                            hi);
    return CLXP_OK;
}

static clxp_status parse_tower(const cJSON *o, clip_tower_config *t, const char *what, const char *section,
                               clxp_error *err) {
    clxp_status st;
    if ((st = get_int(o, "hidden_size", &t->hidden, 1, MAX_DIM, what, section, err)) ||
        (st = get_int(o, "num_hidden_layers", &t->layers, 1, MAX_LAYERS, what, section, err)) ||
        (st = get_int(o, "num_attention_heads", &t->heads, 1, MAX_DIM, what, section, err)) ||
        (st = get_int(o, "intermediate_size", &t->mlp, 1, MAX_DIM * 8, what, section, err)) ||
        (st = parse_act(o, "hidden_act", &t->act, what, err)) ||
        (st = clxp_json_double(o, "layer_norm_eps", t->ln_eps, &t->ln_eps, what, err)))
        return st;
    if (t->hidden % t->heads != 0)
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: %shidden_size %d is not divisible by num_attention_heads %d",
                            what, section, t->hidden, t->heads);
    if (!(t->ln_eps > 0 && t->ln_eps < 1))
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: %slayer_norm_eps must be in (0, 1)", what, section);
    return CLXP_OK;
}

clxp_status clip_config_load(const char *path, clip_config *c, clxp_error *err) {
    char *buf = NULL;
    size_t len = 0;
    clip_config_defaults(c);
    clxp_status st = clxp_read_file(path, CLXP_MAX_JSON_BYTES, &buf, &len, err);
    if (st != CLXP_OK) return st;
    st = clip_config_parse(buf, len, path, c, err);
    free(buf);
    return st;
}

/* `path` is the name used in messages (a file path, or `what` for a buffer). */
clxp_status clip_config_parse(const char *json, size_t len, const char *path, clip_config *c, clxp_error *err) {
    clip_config_defaults(c);
    cJSON *root = NULL;
    clxp_status st = clxp_json_parse(json, len, path, &root, err);
    if (st != CLXP_OK) return st;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: not a JSON object", path);
    }
    const char *mt = NULL;
    st = clxp_json_string(root, "model_type", "clip", &mt, path, err);
    if (st == CLXP_OK && strcmp(mt, "clip") != 0)
        st = clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: model_type \"%s\" is not a CLIP model (expected \"clip\")",
                          path, mt);
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    const cJSON *vc = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
    if (st == CLXP_OK && ((tc && !cJSON_IsObject(tc) && !cJSON_IsNull(tc)) || (vc && !cJSON_IsObject(vc) && !cJSON_IsNull(vc))))
        st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: text_config and vision_config must be objects", path);
    if (st == CLXP_OK) st = get_int(root, "projection_dim", &c->projection_dim, 1, MAX_DIM, path, "", err);
    if (st == CLXP_OK && cJSON_IsObject(vc)) {
        st = parse_tower(vc, &c->vision, path, "vision_config.", err);
        if (st == CLXP_OK) st = get_int(vc, "image_size", &c->image_size, 1, MAX_IMAGE, path, "vision_config.", err);
        if (st == CLXP_OK) st = get_int(vc, "patch_size", &c->patch_size, 1, MAX_IMAGE, path, "vision_config.", err);
        if (st == CLXP_OK) st = get_int(vc, "num_channels", &c->num_channels, 3, 3, path, "vision_config.", err);
        if (st == CLXP_OK && c->image_size % c->patch_size != 0)
            st = clxp_err_set(err, CLXP_ERR_INVALID, "%s: vision_config.image_size %d is not a multiple of patch_size %d",
                              path, c->image_size, c->patch_size);
    }
    if (st == CLXP_OK && cJSON_IsObject(tc)) {
        st = parse_tower(tc, &c->text, path, "text_config.", err);
        if (st == CLXP_OK) st = get_int(tc, "vocab_size", &c->vocab_size, 1, MAX_VOCAB, path, "text_config.", err);
        if (st == CLXP_OK)
            st = get_int(tc, "max_position_embeddings", &c->context_length, 2, MAX_CONTEXT, path, "text_config.", err);
        if (st == CLXP_OK) st = get_int(tc, "eos_token_id", &c->eos_token_id, 0, MAX_VOCAB, path, "text_config.", err);
        if (st == CLXP_OK) st = get_int(tc, "bos_token_id", &c->bos_token_id, 0, MAX_VOCAB, path, "text_config.", err);
        if (st == CLXP_OK) st = get_int(tc, "pad_token_id", &c->pad_token_id, 0, MAX_VOCAB, path, "text_config.", err);
    }
    cJSON_Delete(root);
    return st;
}
