#include "io/checkpoint.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/clip_vocab.h"
#include "io/safetensors_write.h"
#include "io/torchzip.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/json.h"

#define MAX_CANDIDATES 16

struct ckpt_model {
    ckpt_format fmt;
    char *dir;          /* directory of the files */
    char *weights_file; /* the weights file used */
    char *hf_dir;       /* hf-* formats */
    char *desc;
    torch_file *tf;
    st_file *sf;
    /* mapped tensors */
    st_tensor *t;
    int n, cap;
    void **bufs; /* data made here (transposes) */
    int n_bufs, cap_bufs;
    /* source bookkeeping */
    unsigned char *used;
    /* generated files (non-hf formats) */
    char *config_json, *preproc_json;
    char *tokenizer_path; /* tokenizer.json or merges file to use; NULL: built in */
    int tokenizer_is_merges;
};

const char *ckpt_format_name(ckpt_format f) {
    switch (f) {
    case CKPT_HF_SAFETENSORS: return "hf-safetensors";
    case CKPT_HF_PYTORCH: return "hf-pytorch";
    case CKPT_OPENCLIP: return "open_clip";
    case CKPT_TORCHSCRIPT: return "torchscript";
    case CKPT_OPENAI: return "openai";
    }
    return "?";
}

ckpt_format ckpt_get_format(const ckpt_model *c) { return c->fmt; }
const char *ckpt_description(const ckpt_model *c) { return c->desc; }
const char *ckpt_weights_file(const ckpt_model *c) { return c->weights_file; }
const char *ckpt_hf_dir(const ckpt_model *c) { return c->hf_dir; }
int ckpt_count(const ckpt_model *c) { return c->n; }
const st_tensor *ckpt_at(const ckpt_model *c, int i) { return &c->t[i]; }

static void free_tensors(ckpt_model *c) {
    for (int i = 0; i < c->n; i++) free((char *)c->t[i].name);
    free(c->t);
    c->t = NULL;
    c->n = c->cap = 0;
    for (int i = 0; i < c->n_bufs; i++) free(c->bufs[i]);
    free(c->bufs);
    c->bufs = NULL;
    c->n_bufs = c->cap_bufs = 0;
    torch_close(c->tf);
    c->tf = NULL;
    st_close(c->sf);
    c->sf = NULL;
}

void ckpt_free(ckpt_model *c) {
    if (!c) return;
    free_tensors(c);
    free(c->used);
    free(c->dir);
    free(c->weights_file);
    free(c->hf_dir);
    free(c->desc);
    free(c->config_json);
    free(c->preproc_json);
    free(c->tokenizer_path);
    free(c);
}

static char *xasprintf(const char *fmt, ...) CLXP_PRINTF(1, 2);
static char *xasprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) s = NULL;
    va_end(ap);
    return s;
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcmp(s + n - k, suf) == 0;
}

static char *dir_of(const char *path) {
    const char *sl = strrchr(path, '/');
    if (!sl) return strdup(".");
    if (sl == path) return strdup("/");
    return strndup(path, (size_t)(sl - path));
}

static int file_in(const char *dir, const char *name) {
    char *p = clxp_path_join(dir, name);
    int r = p && clxp_is_file(p);
    free(p);
    return r;
}

/* ---- source tensors -------------------------------------------------------------------------------------------- */

static int src_count(const ckpt_model *c) { return c->tf ? torch_count(c->tf) : c->sf ? st_count(c->sf) : 0; }
static const st_tensor *src_at(const ckpt_model *c, int i) { return c->tf ? torch_at(c->tf, i) : st_at(c->sf, i); }

static int src_index(const ckpt_model *c, const char *name) {
    int n = src_count(c);
    for (int i = 0; i < n; i++)
        if (strcmp(src_at(c, i)->name, name) == 0) return i;
    return -1;
}

static const st_tensor *src_get(ckpt_model *c, const char *name) {
    int i = src_index(c, name);
    if (i < 0) return NULL;
    c->used[i] = 1;
    return src_at(c, i);
}

static const st_tensor *src_peek(const ckpt_model *c, const char *name) {
    int i = src_index(c, name);
    return i < 0 ? NULL : src_at(c, i);
}

/* ---- mapped tensors -------------------------------------------------------------------------------------------- */

static st_tensor *add(ckpt_model *c, const char *name, clxp_error *err) {
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 256;
        st_tensor *nt = realloc(c->t, (size_t)cap * sizeof *nt);
        if (!nt) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory"), NULL;
        c->t = nt;
        c->cap = cap;
    }
    st_tensor *t = &c->t[c->n];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory"), NULL;
    c->n++;
    return t;
}

static int is_float(st_dtype d) { return d == ST_F32 || d == ST_F16 || d == ST_BF16 || d == ST_F64; }

/* The source tensor `from` (which must exist, be floating point and have ndim dims) under HF name `to`. */
static const st_tensor *need(ckpt_model *c, const char *from, int ndim, clxp_error *err) {
    const st_tensor *s = src_get(c, from);
    if (!s) return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: missing tensor \"%s\"", c->weights_file, from), NULL;
    if (!is_float(s->dtype))
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: tensor \"%s\" has dtype %s, expected a float type",
                            c->weights_file, from, st_dtype_name(s->dtype)),
               NULL;
    if (ndim >= 0 && s->ndim != ndim)
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: tensor \"%s\" has %d dimensions, expected %d", c->weights_file,
                            from, s->ndim, ndim),
               NULL;
    return s;
}

static clxp_status map_copy(ckpt_model *c, const char *from, const char *to, int ndim, clxp_error *err) {
    const st_tensor *s = need(c, from, ndim, err);
    if (!s) return err ? err->code : CLXP_ERR_FORMAT;
    st_tensor *t = add(c, to, err);
    if (!t) return CLXP_ERR_NOMEM;
    const char *nm = t->name;
    *t = *s;
    t->name = nm;
    return CLXP_OK;
}

/* Rows [part*R/parts, (part+1)*R/parts) of a fused tensor (in_proj_weight [3D, D], in_proj_bias [3D]). */
static clxp_status map_split(ckpt_model *c, const char *from, const char *to, int ndim, int part, int parts,
                             clxp_error *err) {
    const st_tensor *s = need(c, from, ndim, err);
    if (!s) return err ? err->code : CLXP_ERR_FORMAT;
    if (s->shape[0] % parts != 0)
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: tensor \"%s\" has %lld rows, not a multiple of %d",
                            c->weights_file, from, (long long)s->shape[0], parts);
    st_tensor *t = add(c, to, err);
    if (!t) return CLXP_ERR_NOMEM;
    const char *nm = t->name;
    *t = *s;
    t->name = nm;
    t->shape[0] = s->shape[0] / parts;
    t->numel = s->numel / parts;
    t->nbytes = s->nbytes / (size_t)parts;
    t->data = (const char *)s->data + (size_t)part * t->nbytes;
    return CLXP_OK;
}

/* A 2-D tensor transposed (x @ proj in OpenAI's code is Linear with weight proj^T). */
static clxp_status map_transpose(ckpt_model *c, const char *from, const char *to, clxp_error *err) {
    const st_tensor *s = need(c, from, 2, err);
    if (!s) return err ? err->code : CLXP_ERR_FORMAT;
    const size_t es = st_dtype_size(s->dtype), R = (size_t)s->shape[0], C = (size_t)s->shape[1];
    if (c->n_bufs == c->cap_bufs) {
        int cap = c->cap_bufs ? 2 * c->cap_bufs : 8;
        void **nb = realloc(c->bufs, (size_t)cap * sizeof *nb);
        if (!nb) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
        c->bufs = nb;
        c->cap_bufs = cap;
    }
    char *buf = malloc(s->nbytes ? s->nbytes : 1);
    if (!buf) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory transposing \"%s\"", from);
    c->bufs[c->n_bufs++] = buf;
    const char *src = s->data;
    for (size_t i = 0; i < R; i++)
        for (size_t j = 0; j < C; j++) memcpy(buf + (j * R + i) * es, src + (i * C + j) * es, es);
    st_tensor *t = add(c, to, err);
    if (!t) return CLXP_ERR_NOMEM;
    const char *nm = t->name;
    *t = *s;
    t->name = nm;
    t->shape[0] = (int64_t)C;
    t->shape[1] = (int64_t)R;
    t->data = buf;
    return CLXP_OK;
}

/* ---- open_clip / OpenAI names ---------------------------------------------------------------------------------- */

typedef struct {
    int width, layers, mlp, heads;
    const char *heads_from;
    int quick_gelu; /* -1 unknown */
} tower;

typedef struct {
    tower v, t;
    int patch, channels, image_size, grid;
    int context, vocab, proj;
    const char *act_from;
    /* preprocessing */
    double mean[3], std[3];
    int resample; /* PIL code: 3 bicubic, 2 bilinear */
    const char *resize_mode;
} oc_config;

static int count_layers(const ckpt_model *c, const char *prefix) {
    int n = 0;
    char name[256];
    for (;;) {
        snprintf(name, sizeof name, "%s.%d.ln_1.weight", prefix, n);
        if (!src_peek(c, name)) return n;
        n++;
    }
}

static clxp_status map_layers(ckpt_model *c, const char *from, const char *to, int layers, clxp_error *err) {
    static const char *const copies[][2] = {
        {"ln_1.weight", "layer_norm1.weight"},       {"ln_1.bias", "layer_norm1.bias"},
        {"ln_2.weight", "layer_norm2.weight"},       {"ln_2.bias", "layer_norm2.bias"},
        {"attn.out_proj.weight", "self_attn.out_proj.weight"}, {"attn.out_proj.bias", "self_attn.out_proj.bias"},
        {"mlp.c_fc.weight", "mlp.fc1.weight"},       {"mlp.c_fc.bias", "mlp.fc1.bias"},
        {"mlp.c_proj.weight", "mlp.fc2.weight"},     {"mlp.c_proj.bias", "mlp.fc2.bias"},
    };
    static const char *const qkv[3] = {"q_proj", "k_proj", "v_proj"};
    char a[256], b[256];
    clxp_status st = CLXP_OK;
    for (int i = 0; i < layers && st == CLXP_OK; i++) {
        for (size_t k = 0; k < sizeof copies / sizeof copies[0] && st == CLXP_OK; k++) {
            snprintf(a, sizeof a, "%s.%d.%s", from, i, copies[k][0]);
            snprintf(b, sizeof b, "%s.encoder.layers.%d.%s", to, i, copies[k][1]);
            st = map_copy(c, a, b, strstr(copies[k][0], "weight") && strstr(copies[k][0], "ln_") == NULL ? 2 : 1,
                          err);
        }
        for (int p = 0; p < 3 && st == CLXP_OK; p++) {
            snprintf(a, sizeof a, "%s.%d.attn.in_proj_weight", from, i);
            snprintf(b, sizeof b, "%s.encoder.layers.%d.self_attn.%s.weight", to, i, qkv[p]);
            st = map_split(c, a, b, 2, p, 3, err);
            if (st != CLXP_OK) break;
            snprintf(a, sizeof a, "%s.%d.attn.in_proj_bias", from, i);
            snprintf(b, sizeof b, "%s.encoder.layers.%d.self_attn.%s.bias", to, i, qkv[p]);
            st = map_split(c, a, b, 1, p, 3, err);
        }
    }
    return st;
}

/* A list of (some of) the source tensors for messages. */
static void list_names(const ckpt_model *c, int only_unused, char *buf, size_t cap, int *count) {
    size_t len = 0;
    int k = 0;
    buf[0] = '\0';
    for (int i = 0; i < src_count(c); i++) {
        if (only_unused && c->used[i]) continue;
        if (k < 5 && len < cap) len += (size_t)snprintf(buf + len, cap - len, "%s\"%s\"", k ? ", " : "", src_at(c, i)->name);
        k++;
    }
    if (k > 5 && len < cap) snprintf(buf + len, cap - len, ", ... (%d in all)", k);
    *count = k;
}

/* Tensors a CLIP file carries that the engine does not need. */
static int ignorable_src(const char *name) {
    return !strcmp(name, "attn_mask") || !strcmp(name, "input_resolution") || !strcmp(name, "context_length") ||
           !strcmp(name, "vocab_size") || ends_with(name, ".attn_mask");
}

/* What kind of tower this is, for an error about a layout that is not a ViT CLIP. */
static clxp_status check_layout(const ckpt_model *c, clxp_error *err) {
    const char *f = c->weights_file;
    if (src_peek(c, "visual.attnpool.c_proj.weight") || src_peek(c, "visual.layer1.0.conv1.weight"))
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED,
                            "%s: a ResNet image tower (visual.layer1..4, visual.attnpool: RN50-style CLIP) is not "
                            "supported; clxp runs ViT CLIP models",
                            f);
    if (src_peek(c, "visual.trunk.patch_embed.proj.weight") || src_peek(c, "visual.trunk.cls_token"))
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: a timm image tower (visual.trunk.*) is not supported", f);
    if (!src_peek(c, "visual.conv1.weight") || !src_peek(c, "token_embedding.weight")) {
        char names[600];
        int n = 0;
        list_names(c, 0, names, sizeof names, &n);
        if (c->fmt == CKPT_TORCHSCRIPT || c->fmt == CKPT_OPENAI) {
            const char *root = torch_module_class(c->tf, "");
            return clxp_err_set(err, CLXP_ERR_UNSUPPORTED,
                                "%s: unknown TorchScript module layout: root %s with %d tensors (%s); expected an "
                                "open_clip or OpenAI CLIP (visual.conv1.weight, token_embedding.weight, ...)",
                                f, root ? root : "(none)", n, n ? names : "none");
        }
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED,
                            "%s: unknown checkpoint layout: %d tensors (%s); expected Hugging Face CLIP/CLAP names "
                            "(with config.json) or open_clip/OpenAI names (visual.conv1.weight, ...)",
                            f, n, n ? names : "none");
    }
    return CLXP_OK;
}

static int dim(const st_tensor *t, int i) { return t && i < t->ndim ? (int)t->shape[i] : -1; }

/* Shapes -> sizes. */
static clxp_status infer_shapes(const ckpt_model *c, oc_config *o, clxp_error *err) {
    const char *f = c->weights_file;
    const st_tensor *conv = src_peek(c, "visual.conv1.weight"), *vpos = src_peek(c, "visual.positional_embedding");
    const st_tensor *vproj = src_peek(c, "visual.proj"), *tok = src_peek(c, "token_embedding.weight");
    const st_tensor *tpos = src_peek(c, "positional_embedding"), *tproj = src_peek(c, "text_projection");
    if (!conv || conv->ndim != 4 || conv->shape[2] != conv->shape[3])
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: visual.conv1.weight must be [width, channels, patch, patch]", f);
    if (!vpos || vpos->ndim != 2 || !vproj || vproj->ndim != 2 || !tok || tok->ndim != 2 || !tpos || tpos->ndim != 2 ||
        !tproj || tproj->ndim != 2)
        return clxp_err_set(err, CLXP_ERR_FORMAT,
                            "%s: visual.positional_embedding, visual.proj, token_embedding.weight, positional_embedding "
                            "and text_projection must all be present as 2-D tensors",
                            f);
    o->v.width = dim(conv, 0);
    o->channels = dim(conv, 1);
    o->patch = dim(conv, 2);
    int npos = dim(vpos, 0) - 1;
    o->grid = (int)lround(sqrt((double)(npos > 0 ? npos : 0)));
    if (npos <= 0 || o->grid * o->grid != npos)
        return clxp_err_set(err, CLXP_ERR_FORMAT,
                            "%s: visual.positional_embedding has %d rows: not 1 + a square number of patches", f,
                            npos + 1);
    o->image_size = o->grid * o->patch;
    o->v.layers = count_layers(c, "visual.transformer.resblocks");
    o->t.layers = count_layers(c, "transformer.resblocks");
    if (o->v.layers == 0 || o->t.layers == 0)
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: no %s.0.* tensors", f,
                            o->v.layers ? "transformer.resblocks" : "visual.transformer.resblocks");
    o->v.mlp = dim(src_peek(c, "visual.transformer.resblocks.0.mlp.c_fc.weight"), 0);
    o->t.mlp = dim(src_peek(c, "transformer.resblocks.0.mlp.c_fc.weight"), 0);
    o->vocab = dim(tok, 0);
    o->t.width = dim(tok, 1);
    o->context = dim(tpos, 0);
    o->proj = dim(tproj, 1);
    if (o->v.mlp <= 0 || o->t.mlp <= 0)
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: missing mlp.c_fc.weight in the first block", f);
    if (dim(vproj, 0) != o->v.width || dim(vproj, 1) != o->proj || dim(tproj, 0) != o->t.width)
        return clxp_err_set(err, CLXP_ERR_FORMAT,
                            "%s: visual.proj [%d, %d] and text_projection [%d, %d] do not match the widths %d / %d", f,
                            dim(vproj, 0), dim(vproj, 1), dim(tproj, 0), dim(tproj, 1), o->v.width, o->t.width);
    return CLXP_OK;
}

static void oc_defaults(oc_config *o) {
    memset(o, 0, sizeof *o);
    static const double mean[3] = {0.48145466, 0.4578275, 0.40821073}, std[3] = {0.26862954, 0.26130258, 0.27577711};
    memcpy(o->mean, mean, sizeof mean);
    memcpy(o->std, std, sizeof std);
    o->resample = 3;
    o->resize_mode = "shortest";
    o->v.quick_gelu = o->t.quick_gelu = -1;
}

/* open_clip_config.json: {"model_cfg": {...}, "preprocess_cfg": {...}} (a bare model config is accepted too). */
static clxp_status read_openclip_config(const char *path, oc_config *o, cJSON **keep, clxp_error *err) {
    cJSON *root = NULL;
    clxp_status st = clxp_json_load(path, &root, err);
    if (st != CLXP_OK) return st;
    *keep = root;
    if (!cJSON_IsObject(root)) return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: not a JSON object", path);
    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(root, "model_cfg");
    if (!mc) mc = root;
    const cJSON *vc = cJSON_GetObjectItemCaseSensitive(mc, "vision_cfg");
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(mc, "text_cfg");
    if (!cJSON_IsObject(vc) || !cJSON_IsObject(tc))
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: model_cfg.vision_cfg and model_cfg.text_cfg must be objects",
                            path);
    static const char *const unsupported_v[] = {"timm_model_name", "attentional_pool", "no_ln_pre",
                                                 "final_ln_after_pool", "input_patchnorm"};
    for (size_t i = 0; i < sizeof unsupported_v / sizeof *unsupported_v; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(vc, unsupported_v[i]);
        if (x && !cJSON_IsNull(x) && !cJSON_IsFalse(x))
            return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: vision_cfg.%s is not supported", path,
                                unsupported_v[i]);
    }
    const cJSON *vl = cJSON_GetObjectItemCaseSensitive(vc, "layers");
    if (vl && !cJSON_IsNumber(vl))
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED,
                            "%s: vision_cfg.layers is a list: a ResNet image tower, not supported", path);
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(tc, "hf_model_name");
    if (x && !cJSON_IsNull(x))
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: text_cfg.hf_model_name (a Hugging Face text tower) is not "
                                                       "supported", path);
    const char *pool = NULL;
    if ((st = clxp_json_string(vc, "pool_type", "tok", &pool, path, err)) != CLXP_OK) return st;
    if (strcmp(pool, "tok") != 0)
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: vision_cfg.pool_type \"%s\" is not supported (\"tok\")",
                            path, pool);
    if ((st = clxp_json_string(tc, "pool_type", "argmax", &pool, path, err)) != CLXP_OK) return st;
    if (strcmp(pool, "argmax") != 0)
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: text_cfg.pool_type \"%s\" is not supported (\"argmax\")",
                            path, pool);
    int qg = 0;
    double head_width = 64, vwidth = 0;
    int theads = 8;
    if ((st = clxp_json_bool(mc, "quick_gelu", 0, &qg, path, err)) != CLXP_OK ||
        (st = clxp_json_double(vc, "head_width", 64, &head_width, path, err)) != CLXP_OK ||
        (st = clxp_json_double(vc, "width", 768, &vwidth, path, err)) != CLXP_OK ||
        (st = clxp_json_int(tc, "heads", 8, &theads, path, err)) != CLXP_OK)
        return st;
    if (!(head_width >= 1) || !(vwidth >= 1) || fmod(vwidth, head_width) != 0 || theads < 1)
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: vision_cfg.width %g is not a multiple of head_width %g", path,
                            vwidth, head_width);
    o->v.heads = (int)(vwidth / head_width);
    o->t.heads = theads;
    o->v.heads_from = o->t.heads_from = "open_clip_config.json";
    o->v.quick_gelu = o->t.quick_gelu = qg;
    o->act_from = "open_clip_config.json quick_gelu";
    const cJSON *pc = cJSON_GetObjectItemCaseSensitive(root, "preprocess_cfg");
    if (cJSON_IsObject(pc)) {
        static const char *const keys[2] = {"mean", "std"};
        for (int k = 0; k < 2; k++) {
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(pc, keys[k]);
            if (!a) continue;
            if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 3)
                return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: preprocess_cfg.%s must be a list of 3 numbers", path,
                                    keys[k]);
            for (int i = 0; i < 3; i++) {
                const cJSON *e = cJSON_GetArrayItem(a, i);
                if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || (k == 1 && e->valuedouble <= 0))
                    return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: preprocess_cfg.%s[%d] is not a usable number",
                                        path, keys[k], i);
                (k ? o->std : o->mean)[i] = e->valuedouble;
            }
        }
        const char *interp = NULL;
        if ((st = clxp_json_string(pc, "interpolation", "bicubic", &interp, path, err)) != CLXP_OK) return st;
        if (!strcmp(interp, "bicubic")) o->resample = 3;
        else if (!strcmp(interp, "bilinear")) o->resample = 2;
        else
            return clxp_err_set(err, CLXP_ERR_UNSUPPORTED,
                                "%s: preprocess_cfg.interpolation \"%s\" is not supported (bicubic or bilinear)", path,
                                interp);
        if ((st = clxp_json_string(pc, "resize_mode", "shortest", &o->resize_mode, path, err)) != CLXP_OK) return st;
        if (strcmp(o->resize_mode, "shortest") != 0)
            clxp_log(CLXP_LOG_WARN,
                     "%s: preprocess_cfg.resize_mode \"%s\": clxp resizes the shortest edge and center-crops "
                     "(open_clip's \"shortest\")",
                     path, o->resize_mode);
    }
    return CLXP_OK;
}

static const char *last_component(const char *cls) {
    const char *d = cls ? strrchr(cls, '.') : NULL;
    return d ? d + 1 : cls;
}

/* QuickGELU / GELU from the class of a block's activation module (scripted and traced archives). */
static clxp_status ts_activation(const ckpt_model *c, const char *prefix, int *quick, clxp_error *err) {
    char path[256];
    snprintf(path, sizeof path, "%s.0.mlp.gelu", prefix);
    const char *cls = torch_module_class(c->tf, path);
    if (!cls) {
        *quick = -1;
        return CLXP_OK;
    }
    const char *last = last_component(cls);
    if (!strcmp(last, "QuickGELU")) *quick = 1;
    else if (!strcmp(last, "GELU")) *quick = 0;
    else
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED,
                            "%s: unknown TorchScript module layout: %s is a %s, expected QuickGELU or GELU",
                            c->weights_file, path, cls);
    return CLXP_OK;
}

static char *make_config_json(const oc_config *o) {
    cJSON *r = cJSON_CreateObject();
    if (!r) return NULL;
    cJSON_AddStringToObject(r, "model_type", "clip");
    cJSON *arch = cJSON_AddArrayToObject(r, "architectures");
    if (arch) cJSON_AddItemToArray(arch, cJSON_CreateString("CLIPModel"));
    cJSON_AddNumberToObject(r, "projection_dim", o->proj);
    cJSON_AddNumberToObject(r, "logit_scale_init_value", 2.6592);
    cJSON_AddStringToObject(r, "torch_dtype", "float32");
    cJSON *t = cJSON_AddObjectToObject(r, "text_config");
    cJSON *v = cJSON_AddObjectToObject(r, "vision_config");
    if (t) {
        cJSON_AddStringToObject(t, "model_type", "clip_text_model");
        cJSON_AddNumberToObject(t, "hidden_size", o->t.width);
        cJSON_AddNumberToObject(t, "intermediate_size", o->t.mlp);
        cJSON_AddNumberToObject(t, "num_hidden_layers", o->t.layers);
        cJSON_AddNumberToObject(t, "num_attention_heads", o->t.heads);
        cJSON_AddNumberToObject(t, "max_position_embeddings", o->context);
        cJSON_AddNumberToObject(t, "vocab_size", o->vocab);
        cJSON_AddStringToObject(t, "hidden_act", o->t.quick_gelu ? "quick_gelu" : "gelu");
        cJSON_AddNumberToObject(t, "layer_norm_eps", 1e-5);
        cJSON_AddNumberToObject(t, "bos_token_id", 49406);
        cJSON_AddNumberToObject(t, "eos_token_id", 49407);
        cJSON_AddNumberToObject(t, "pad_token_id", 1);
        cJSON_AddNumberToObject(t, "projection_dim", o->proj);
    }
    if (v) {
        cJSON_AddStringToObject(v, "model_type", "clip_vision_model");
        cJSON_AddNumberToObject(v, "hidden_size", o->v.width);
        cJSON_AddNumberToObject(v, "intermediate_size", o->v.mlp);
        cJSON_AddNumberToObject(v, "num_hidden_layers", o->v.layers);
        cJSON_AddNumberToObject(v, "num_attention_heads", o->v.heads);
        cJSON_AddNumberToObject(v, "image_size", o->image_size);
        cJSON_AddNumberToObject(v, "patch_size", o->patch);
        cJSON_AddNumberToObject(v, "num_channels", o->channels);
        cJSON_AddStringToObject(v, "hidden_act", o->v.quick_gelu ? "quick_gelu" : "gelu");
        cJSON_AddNumberToObject(v, "layer_norm_eps", 1e-5);
        cJSON_AddNumberToObject(v, "projection_dim", o->proj);
    }
    char *s = (t && v) ? cJSON_Print(r) : NULL;
    cJSON_Delete(r);
    return s;
}

static char *make_preproc_json(const oc_config *o) {
    cJSON *r = cJSON_CreateObject();
    if (!r) return NULL;
    cJSON *crop = cJSON_AddObjectToObject(r, "crop_size");
    if (crop) {
        cJSON_AddNumberToObject(crop, "height", o->image_size);
        cJSON_AddNumberToObject(crop, "width", o->image_size);
    }
    cJSON_AddTrueToObject(r, "do_center_crop");
    cJSON_AddTrueToObject(r, "do_convert_rgb");
    cJSON_AddTrueToObject(r, "do_normalize");
    cJSON_AddTrueToObject(r, "do_rescale");
    cJSON_AddTrueToObject(r, "do_resize");
    cJSON_AddItemToObject(r, "image_mean", cJSON_CreateDoubleArray(o->mean, 3));
    cJSON_AddStringToObject(r, "image_processor_type", "CLIPImageProcessor");
    cJSON_AddItemToObject(r, "image_std", cJSON_CreateDoubleArray(o->std, 3));
    cJSON_AddNumberToObject(r, "resample", o->resample);
    cJSON_AddNumberToObject(r, "rescale_factor", 1.0 / 255.0);
    cJSON *size = cJSON_AddObjectToObject(r, "size");
    if (size) cJSON_AddNumberToObject(size, "shortest_edge", o->image_size);
    char *s = crop && size ? cJSON_Print(r) : NULL;
    cJSON_Delete(r);
    return s;
}

/* Map open_clip / OpenAI names (state dicts, scripted and traced archives) and infer the configuration. */
static clxp_status map_openclip(ckpt_model *c, const ckpt_options *opt, clxp_error *err) {
    clxp_status st = check_layout(c, err);
    if (st != CLXP_OK) return st;
    oc_config o;
    oc_defaults(&o);
    cJSON *cfg_json = NULL;
    char *cfg_path = NULL;
    if (c->fmt == CKPT_OPENCLIP && c->dir && file_in(c->dir, "open_clip_config.json")) {
        cfg_path = clxp_path_join(c->dir, "open_clip_config.json");
        if (!cfg_path) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
        st = read_openclip_config(cfg_path, &o, &cfg_json, err);
    }
    if (st == CLXP_OK) st = infer_shapes(c, &o, err);
    if (st == CLXP_OK && c->fmt == CKPT_TORCHSCRIPT) {
        int64_t h = 0;
        if (torch_attr_int(c->tf, "visual.transformer.resblocks.0.attn.num_heads", &h) && h > 0 && h < 65536)
            o.v.heads = (int)h, o.v.heads_from = "the archive's num_heads";
        if (torch_attr_int(c->tf, "transformer.resblocks.0.attn.num_heads", &h) && h > 0 && h < 65536)
            o.t.heads = (int)h, o.t.heads_from = "the archive's num_heads";
    }
    if (st == CLXP_OK && (c->fmt == CKPT_TORCHSCRIPT || c->fmt == CKPT_OPENAI)) {
        st = ts_activation(c, "visual.transformer.resblocks", &o.v.quick_gelu, err);
        if (st == CLXP_OK) st = ts_activation(c, "transformer.resblocks", &o.t.quick_gelu, err);
        if (st == CLXP_OK && (o.v.quick_gelu >= 0 || o.t.quick_gelu >= 0)) o.act_from = "the archive's module classes";
    }
    if (st == CLXP_OK) {
        /* OpenAI's conventions where nothing says otherwise: heads = width / 64, QuickGELU */
        tower *tw[2] = {&o.v, &o.t};
        for (int k = 0; k < 2; k++) {
            if (tw[k]->quick_gelu < 0) {
                tw[k]->quick_gelu = 1;
                o.act_from = "OpenAI's QuickGELU (nothing in the file says otherwise)";
            }
            if (tw[k]->heads <= 0) {
                tw[k]->heads = tw[k]->width / 64;
                tw[k]->heads_from = "width / 64 (OpenAI's rule)";
            }
        }
        if (opt && opt->vision_heads > 0) o.v.heads = opt->vision_heads, o.v.heads_from = "--vision-heads";
        if (opt && opt->text_heads > 0) o.t.heads = opt->text_heads, o.t.heads_from = "--text-heads";
        for (int k = 0; k < 2; k++)
            if (tw[k]->heads <= 0 || tw[k]->width % tw[k]->heads != 0)
                st = clxp_err_set(err, CLXP_ERR_INVALID,
                                  "%s: %s width %d is not divisible into %d attention heads (%s); give the head "
                                  "count with %s",
                                  c->weights_file, k ? "text" : "vision", tw[k]->width, tw[k]->heads,
                                  tw[k]->heads_from, k ? "--text-heads N" : "--vision-heads N");
    }
    if (st == CLXP_OK && c->fmt == CKPT_OPENAI && (o.v.width % 64 || o.t.width % 64) &&
        !(opt && opt->vision_heads > 0 && opt->text_heads > 0))
        clxp_log(CLXP_LOG_WARN,
                 "%s: OpenAI archives do not store head counts; using width/64 = %d vision and %d text heads (a "
                 "non-standard model needs --vision-heads/--text-heads)",
                 c->weights_file, o.v.heads, o.t.heads);
    free(cfg_path);
    cJSON_Delete(cfg_json);
    if (st != CLXP_OK) return st;

    /* the tensors */
    st = map_copy(c, "visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight", 4, err);
    if (!st) st = map_copy(c, "visual.class_embedding", "vision_model.embeddings.class_embedding", 1, err);
    if (!st) st = map_copy(c, "visual.positional_embedding", "vision_model.embeddings.position_embedding.weight", 2, err);
    if (!st) st = map_copy(c, "visual.ln_pre.weight", "vision_model.pre_layrnorm.weight", 1, err);
    if (!st) st = map_copy(c, "visual.ln_pre.bias", "vision_model.pre_layrnorm.bias", 1, err);
    if (!st) st = map_copy(c, "visual.ln_post.weight", "vision_model.post_layernorm.weight", 1, err);
    if (!st) st = map_copy(c, "visual.ln_post.bias", "vision_model.post_layernorm.bias", 1, err);
    if (!st) st = map_transpose(c, "visual.proj", "visual_projection.weight", err);
    if (!st) st = map_layers(c, "visual.transformer.resblocks", "vision_model", o.v.layers, err);
    if (!st) st = map_copy(c, "token_embedding.weight", "text_model.embeddings.token_embedding.weight", 2, err);
    if (!st) st = map_copy(c, "positional_embedding", "text_model.embeddings.position_embedding.weight", 2, err);
    if (!st) st = map_copy(c, "ln_final.weight", "text_model.final_layer_norm.weight", 1, err);
    if (!st) st = map_copy(c, "ln_final.bias", "text_model.final_layer_norm.bias", 1, err);
    if (!st) st = map_transpose(c, "text_projection", "text_projection.weight", err);
    if (!st) st = map_layers(c, "transformer.resblocks", "text_model", o.t.layers, err);
    if (!st) st = map_copy(c, "logit_scale", "logit_scale", -1, err);
    if (st != CLXP_OK) return st;
    for (int i = 0; i < src_count(c); i++)
        if (ignorable_src(src_at(c, i)->name)) c->used[i] = 1;
    char names[600];
    int n_unused = 0;
    list_names(c, 1, names, sizeof names, &n_unused);
    if (n_unused)
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED,
                            "%s: %d tensor%s that a ViT CLIP does not have (an unsupported variant?): %s",
                            c->weights_file, n_unused, n_unused == 1 ? "" : "s", names);

    c->config_json = make_config_json(&o);
    c->preproc_json = make_preproc_json(&o);
    if (!c->config_json || !c->preproc_json) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    const char *what = c->fmt == CKPT_OPENCLIP      ? "open_clip state dict"
                       : c->fmt == CKPT_TORCHSCRIPT ? "TorchScript archive (open_clip, scripted)"
                                                    : "TorchScript archive (OpenAI layout, traced)";
    c->desc = xasprintf("%s %s; open_clip/OpenAI names mapped to Hugging Face CLIPModel (%d tensors: in_proj split "
                        "into q/k/v, visual.proj and text_projection transposed); inferred from the shapes: vision "
                        "%d wide x %d layers, patch %d, image %d, text %d wide x %d layers, context %d, vocab %d, "
                        "projection %d; heads %d vision (%s) / %d text (%s); activation %s (%s)",
                        what, c->weights_file, c->n, o.v.width, o.v.layers, o.patch, o.image_size, o.t.width,
                        o.t.layers, o.context, o.vocab, o.proj, o.v.heads, o.v.heads_from, o.t.heads,
                        o.t.heads_from, o.v.quick_gelu ? "quick_gelu" : "gelu",
                        o.act_from ? o.act_from : "open_clip's default GELU");
    if (!c->desc) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    return CLXP_OK;
}

/* HF names: every tensor as it is. */
static clxp_status map_identity(ckpt_model *c, clxp_error *err) {
    for (int i = 0; i < src_count(c); i++) {
        const st_tensor *s = src_at(c, i);
        st_tensor *t = add(c, s->name, err);
        if (!t) return CLXP_ERR_NOMEM;
        const char *nm = t->name;
        *t = *s;
        t->name = nm;
    }
    c->desc = xasprintf("Hugging Face PyTorch checkpoint %s (%s, %d tensors, HF names) with %s/config.json",
                        c->weights_file, torch_kind(c->tf), c->n, c->dir);
    return c->desc ? CLXP_OK : clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
}

/* ---- locating the files ---------------------------------------------------------------------------------------- */

static int is_model_file_name(const char *n) {
    return ends_with(n, ".pt") || ends_with(n, ".pth") || ends_with(n, ".bin");
}

/* The weights file of a directory by the documented precedence (NULL + *hf_native for model.safetensors). */
static clxp_status pick_in_dir(const char *dir, char **file, int *hf_native, clxp_error *err) {
    *file = NULL;
    *hf_native = 0;
    int has_cfg = file_in(dir, "config.json");
    if (file_in(dir, "model.safetensors") || file_in(dir, "model.safetensors.index.json")) {
        /* (a missing config.json is then the HF loader's error) */
        *hf_native = 1;
        return CLXP_OK;
    }
    static const char *const fixed[] = {"pytorch_model.bin", "open_clip_model.safetensors",
                                        "open_clip_pytorch_model.bin"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        if (i == 0 && !has_cfg) continue;
        if (file_in(dir, fixed[i])) {
            *file = clxp_path_join(dir, fixed[i]);
            if (*file)
                clxp_log(CLXP_LOG_INFO,
                         "%s: using %s (precedence: model.safetensors, pytorch_model.bin with config.json, "
                         "open_clip_model.safetensors, open_clip_pytorch_model.bin, a single .pt/.pth/.bin)",
                         dir, fixed[i]);
            return *file ? CLXP_OK : clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
        }
    }
    DIR *d = opendir(dir);
    if (!d) return clxp_err_set(err, CLXP_ERR_IO, "%s: cannot read the directory: %s", dir, strerror(errno));
    char *cand[MAX_CANDIDATES];
    int n = 0, more = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !is_model_file_name(e->d_name) || !file_in(dir, e->d_name)) continue;
        if (n < MAX_CANDIDATES) cand[n++] = strdup(e->d_name);
        else more++;
    }
    closedir(d);
    clxp_status st = CLXP_OK;
    if (n == 0 && !file_in(dir, "open_clip_config.json")) {
        *hf_native = 1; /* nothing else here: the HF loader names what is missing (config.json, model.safetensors) */
    } else if (n == 0) {
        st = clxp_err_set(err, CLXP_ERR_IO,
                          "%s: no model files (config.json + model.safetensors or pytorch_model.bin, "
                          "open_clip_config.json + open_clip_pytorch_model.bin, or a .pt/.pth/.bin file)",
                          dir);
    } else if (n > 1) {
        char list[600];
        size_t len = 0;
        list[0] = '\0';
        for (int i = 0; i < n && len < sizeof list; i++)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", cand[i] ? cand[i] : "?");
        st = clxp_err_set(err, CLXP_ERR_INVALID, "%s: several model files (%s%s); give one with -m %s/FILE", dir, list,
                          more ? ", ..." : "", dir);
    } else if (!cand[0] || !(*file = clxp_path_join(dir, cand[0]))) {
        st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    } else {
        clxp_log(CLXP_LOG_INFO, "%s: using %s (the only .pt/.pth/.bin file)", dir, cand[0]);
    }
    for (int i = 0; i < n; i++) free(cand[i]);
    return st;
}

clxp_status ckpt_open(const char *path, const ckpt_options *opt, ckpt_model **out, clxp_error *err) {
    *out = NULL;
    if (!path || !*path) return clxp_err_set(err, CLXP_ERR_INVALID, "no model given");
    ckpt_model *c = calloc(1, sizeof *c);
    if (!c) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    clxp_status st = CLXP_OK;
    char *file = NULL;
    if (clxp_is_dir(path)) {
        int native = 0;
        st = pick_in_dir(path, &file, &native, err);
        if (st == CLXP_OK && !(c->dir = strdup(path))) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
        if (st == CLXP_OK && native) {
            c->fmt = CKPT_HF_SAFETENSORS;
            c->hf_dir = strdup(path);
            c->weights_file = clxp_path_join(path, file_in(path, "model.safetensors") ? "model.safetensors"
                                                                                       : "model.safetensors.index.json");
            c->desc = xasprintf("Hugging Face directory %s (config.json + safetensors)", path);
            if (!c->hf_dir || !c->weights_file || !c->desc) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
            if (st == CLXP_OK) {
                *out = c;
                return CLXP_OK;
            }
        }
    } else if (clxp_is_file(path) && (!strcmp(path, "model.safetensors") || ends_with(path, "/model.safetensors"))) {
        /* a HF directory's weights file: the directory */
        char *d = dir_of(path);
        free(c);
        if (!d) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
        st = ckpt_open(d, opt, out, err);
        free(d);
        return st;
    } else if (clxp_is_file(path) && !is_model_file_name(path) && !ends_with(path, ".safetensors")) {
        st = clxp_err_set(err, CLXP_ERR_IO,
                          "%s: is a file but not a model file (.bin, .pt, .pth, open_clip .safetensors); expected a "
                          "model directory or model file",
                          path);
    } else if (clxp_is_file(path)) {
        if (!(file = strdup(path)) || !(c->dir = dir_of(path))) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    } else {
        st = clxp_err_set(err, CLXP_ERR_IO, "%s: no such model file or directory", path);
    }
    if (st != CLXP_OK) {
        free(file);
        ckpt_free(c);
        return st;
    }
    c->weights_file = file;
    if (ends_with(file, ".safetensors")) {
        /* open_clip_model.safetensors: open_clip names */
        st = st_open(file, &c->sf, err);
        c->fmt = CKPT_OPENCLIP;
    } else {
        st = torch_open(file, &c->tf, err);
        if (st == CLXP_OK) {
            if (torch_is_torchscript(c->tf)) {
                int64_t h;
                c->fmt = torch_attr_int(c->tf, "visual.transformer.resblocks.0.attn.num_heads", &h) ||
                                 torch_attr_int(c->tf, "transformer.resblocks.0.attn.num_heads", &h)
                             ? CKPT_TORCHSCRIPT
                             : CKPT_OPENAI;
            } else if (torch_find(c->tf, "visual.conv1.weight") || torch_find(c->tf, "token_embedding.weight") ||
                       !file_in(c->dir, "config.json")) {
                c->fmt = CKPT_OPENCLIP;
            } else {
                c->fmt = CKPT_HF_PYTORCH;
            }
        }
    }
    if (st == CLXP_OK && !(c->used = calloc((size_t)src_count(c) + 1, 1)))
        st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    if (st == CLXP_OK) {
        if (c->fmt == CKPT_HF_PYTORCH) {
            if (!(c->hf_dir = strdup(c->dir))) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
            else st = map_identity(c, err);
        } else {
            st = map_openclip(c, opt, err);
        }
    }
    if (st == CLXP_OK && c->fmt != CKPT_HF_PYTORCH) {
        if (opt && opt->tokenizer) {
            if (!clxp_is_file(opt->tokenizer))
                st = clxp_err_set(err, CLXP_ERR_IO, "%s: tokenizer file not found", opt->tokenizer);
            else if (!(c->tokenizer_path = strdup(opt->tokenizer)))
                st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
            c->tokenizer_is_merges = !ends_with(opt->tokenizer, ".json");
        } else if (file_in(c->dir, "tokenizer.json")) {
            c->tokenizer_path = clxp_path_join(c->dir, "tokenizer.json");
        }
    }
    if (st != CLXP_OK) {
        ckpt_free(c);
        return st;
    }
    *out = c;
    return CLXP_OK;
}

/* ---- writing ----------------------------------------------------------------------------------------------- */

static clxp_status write_text(const char *dir, const char *name, const char *text, size_t len, clxp_error *err) {
    char *p = clxp_path_join(dir, name);
    if (!p) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    clxp_status st = clxp_write_file_atomic(p, text, len, err);
    free(p);
    return st;
}

/* Copy from_dir/name to to_dir/name in chunks (through name.part, renamed when complete). */
static clxp_status copy_file(const char *from_dir, const char *to_dir, const char *name, int required,
                             clxp_error *err) {
    char *src = clxp_path_join(from_dir, name), *dst = clxp_path_join(to_dir, name);
    char *tmp = dst ? xasprintf("%s.part", dst) : NULL;
    clxp_status st = CLXP_OK;
    if (!src || !dst || !tmp) {
        st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    } else if (!clxp_is_file(src)) {
        if (required) st = clxp_err_set(err, CLXP_ERR_IO, "%s: missing", src);
    } else {
        FILE *in = fopen(src, "rb"), *out = in ? fopen(tmp, "wb") : NULL;
        if (!in || !out) {
            st = clxp_err_set(err, CLXP_ERR_IO, "%s: %s", in ? tmp : src, strerror(errno));
        } else {
            char buf[1 << 15];
            size_t n;
            int bad = 0;
            while (!bad && (n = fread(buf, 1, sizeof buf, in)) > 0) bad = fwrite(buf, 1, n, out) != n;
            bad |= ferror(in);
            bad |= fflush(out) != 0;
            if (bad) st = clxp_err_set(err, CLXP_ERR_IO, "%s: cannot copy to %s: %s", src, tmp, strerror(errno));
        }
        if (in) fclose(in);
        if (out && fclose(out) != 0 && st == CLXP_OK)
            st = clxp_err_set(err, CLXP_ERR_IO, "%s: cannot write: %s", tmp, strerror(errno));
        if (out && st == CLXP_OK && rename(tmp, dst) != 0)
            st = clxp_err_set(err, CLXP_ERR_IO, "%s: cannot write: %s", dst, strerror(errno));
        if (out && st != CLXP_OK) unlink(tmp);
    }
    free(src);
    free(dst);
    free(tmp);
    return st;
}

static clxp_status tokenizer_text(const ckpt_model *c, char **out, size_t *len, clxp_error *err) {
    if (!c->tokenizer_path) return clip_vocab_tokenizer_json(out, len, err);
    char *buf = NULL;
    size_t n = 0;
    clxp_status st = clxp_read_file(c->tokenizer_path, (size_t)256 << 20, &buf, &n, err);
    if (st != CLXP_OK || !c->tokenizer_is_merges) {
        *out = buf;
        *len = n;
        return st;
    }
    st = clip_vocab_from_merges(buf, n, c->tokenizer_path, out, len, err);
    free(buf);
    return st;
}

clxp_status ckpt_write_dir(const ckpt_model *c, const char *dir, int with_weights, clxp_error *err) {
    clxp_status st = CLXP_OK;
    if (c->hf_dir) {
        st = copy_file(c->hf_dir, dir, "config.json", 1, err);
        static const char *const extra[] = {"tokenizer.json", "preprocessor_config.json", "tokenizer_config.json",
                                            "special_tokens_map.json", "vocab.json", "merges.txt"};
        for (size_t i = 0; i < sizeof extra / sizeof *extra && st == CLXP_OK; i++)
            st = copy_file(c->hf_dir, dir, extra[i], 0, err);
    } else {
        char *tok = NULL;
        size_t tlen = 0;
        st = write_text(dir, "config.json", c->config_json, strlen(c->config_json), err);
        if (st == CLXP_OK) st = write_text(dir, "preprocessor_config.json", c->preproc_json, strlen(c->preproc_json), err);
        if (st == CLXP_OK) st = tokenizer_text(c, &tok, &tlen, err);
        if (st == CLXP_OK) st = write_text(dir, "tokenizer.json", tok, tlen, err);
        free(tok);
        static const char stm[] = "{\"bos_token\": \"<|startoftext|>\", \"eos_token\": \"<|endoftext|>\", "
                                  "\"pad_token\": \"<|endoftext|>\", \"unk_token\": \"<|endoftext|>\"}\n";
        static const char tcfg[] = "{\"tokenizer_class\": \"CLIPTokenizer\", \"bos_token\": \"<|startoftext|>\", "
                                   "\"eos_token\": \"<|endoftext|>\", \"pad_token\": \"<|endoftext|>\", "
                                   "\"unk_token\": \"<|endoftext|>\", \"model_max_length\": 77}\n";
        if (st == CLXP_OK) st = write_text(dir, "special_tokens_map.json", stm, sizeof stm - 1, err);
        if (st == CLXP_OK) st = write_text(dir, "tokenizer_config.json", tcfg, sizeof tcfg - 1, err);
    }
    if (st != CLXP_OK || !with_weights) return st;
    if (c->fmt == CKPT_HF_SAFETENSORS) {
        /* already safetensors: copy the files byte for byte */
        if (file_in(c->hf_dir, "model.safetensors")) return copy_file(c->hf_dir, dir, "model.safetensors", 1, err);
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: sharded safetensors are already in the loadable format",
                            c->hf_dir);
    }
    st_write_tensor *wt = calloc((size_t)c->n + 1, sizeof *wt);
    if (!wt) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    for (int i = 0; i < c->n; i++)
        wt[i] = (st_write_tensor){c->t[i].name, c->t[i].dtype, c->t[i].ndim, c->t[i].shape, c->t[i].data};
    char *path = clxp_path_join(dir, "model.safetensors");
    const st_write_meta meta[2] = {{"format", "pt"}, {"converted_from", c->weights_file}};
    if (!path) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    else st = st_write(path, wt, c->n, meta, 2, err);
    free(path);
    free(wt);
    return st;
}

static void release_ckpt(void *p) { ckpt_free(p); }

clxp_status ckpt_take_weights(ckpt_model *c, weights **out, clxp_error *err) {
    *out = NULL;
    ckpt_model *own = calloc(1, sizeof *own);
    if (!own) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    own->t = c->t;
    own->n = c->n;
    own->cap = c->cap;
    own->bufs = c->bufs;
    own->n_bufs = c->n_bufs;
    own->cap_bufs = c->cap_bufs;
    own->tf = c->tf;
    own->sf = c->sf;
    c->t = NULL;
    c->n = c->cap = 0;
    c->bufs = NULL;
    c->n_bufs = c->cap_bufs = 0;
    c->tf = NULL;
    c->sf = NULL;
    const char *slash = strrchr(c->weights_file, '/');
    return weights_from_memory(slash ? slash + 1 : c->weights_file, own->t, own->n, release_ckpt, own, out, err);
}

/* ---- preparing a load ------------------------------------------------------------------------------------------ */

static void remove_tmpdir(const char *dir) {
    static const char *const files[] = {"config.json", "preprocessor_config.json", "tokenizer.json",
                                        "special_tokens_map.json", "tokenizer_config.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *p = clxp_path_join(dir, files[i]);
        if (p) unlink(p);
        free(p);
    }
    rmdir(dir);
}

clxp_status ckpt_prepare(const char *path, const ckpt_options *opt, ckpt_prepared *p, clxp_error *err) {
    memset(p, 0, sizeof *p);
    ckpt_model *c = NULL;
    clxp_status st = ckpt_open(path, opt, &c, err);
    if (st != CLXP_OK) return st;
    p->format = strdup(ckpt_format_name(c->fmt));
    p->description = strdup(c->desc);
    p->weights_file = strdup(c->weights_file);
    if (!p->format || !p->description || !p->weights_file) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    if (st == CLXP_OK && c->fmt == CKPT_HF_SAFETENSORS) {
        if (!(p->dir = strdup(c->hf_dir))) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    } else if (st == CLXP_OK && c->fmt == CKPT_HF_PYTORCH) {
        weights *w = NULL;
        if (!(p->dir = strdup(c->hf_dir))) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
        if (st == CLXP_OK) st = ckpt_take_weights(c, &w, err);
        if (st == CLXP_OK) p->w = w;
    } else if (st == CLXP_OK) {
        const char *td = getenv("TMPDIR");
        char *tmpl = xasprintf("%s/clxp-model-XXXXXX", td && *td ? td : "/tmp");
        if (!tmpl) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
        else if (!mkdtemp(tmpl)) {
            st = clxp_err_set(err, CLXP_ERR_IO, "%s: cannot create a temporary directory: %s", tmpl, strerror(errno));
            free(tmpl);
        } else {
            p->tmpdir = tmpl;
            p->dir = strdup(tmpl);
            if (!p->dir) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
        }
        if (st == CLXP_OK) st = ckpt_write_dir(c, p->dir, 0, err);
        weights *w = NULL;
        if (st == CLXP_OK) st = ckpt_take_weights(c, &w, err);
        if (st == CLXP_OK) p->w = w;
    }
    ckpt_free(c);
    if (st != CLXP_OK) {
        ckpt_prepared_done(p);
        ckpt_prepared_free(p);
    }
    return st;
}

void ckpt_prepared_done(ckpt_prepared *p) {
    weights_free(p->w);
    p->w = NULL;
    if (p->tmpdir) remove_tmpdir(p->tmpdir);
    free(p->tmpdir);
    p->tmpdir = NULL;
}

void ckpt_prepared_free(ckpt_prepared *p) {
    free(p->dir);
    free(p->format);
    free(p->description);
    free(p->weights_file);
    memset(p, 0, sizeof *p);
}
