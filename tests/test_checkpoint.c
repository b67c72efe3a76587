/* Model files other than HF safetensors directories (io/checkpoint.h, io/clip_vocab.h) through the public API.
 *
 * From a clean clone: tests/data/clip-tiny-quickgelu's weights are written here, in a temporary directory, as an
 * open_clip state dict (.bin + open_clip_config.json), a scripted-open_clip-like TorchScript archive (module tree
 * with num_heads and QuickGELU objects) and an OpenAI-style traced archive (no hyperparameters: needs the head
 * override), with the reverse of the name mapping (q/k/v fused into in_proj, projections transposed); each must
 * reproduce the goldens of tests/data/clip-tiny-quickgelu/golden (image embeddings from pixel_values, text
 * embeddings from the raw prompts through the built-in CLIP vocabulary), and so must its `convert`ed directory
 * (bit-identical to the original load). The built-in vocabulary gives the tokenizer.json ids for every prompt.
 * Unknown layouts and damaged files are clean errors.
 * With the shared golden data ($CLXP_SHARED, else ../shared/golden): every file of openclip-tiny-quickgelu/
 * against the clip-tiny-quickgelu goldens (the fp16 archive against its own expected outputs), and converted. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "api/internal.h"
#include "clxp.h"
#include "io/checkpoint.h"
#include "io/clip_vocab.h"
#include "io/safetensors.h"
#include "text/tokenizer.h"
#include "util/json.h"
#include "test.h"

#define REL_TOL 1e-4

static char tmp_dir[4096];

static const char *tmp_path(const char *name) {
    static char buf[2][4200];
    static int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp_dir, name);
    return buf[k];
}

/* ---- byte buffers and pickles ----------------------------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bbuf;

static void bb_put(bbuf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n) c *= 2;
        uint8_t *p = realloc(b->p, c);
        if (!p) abort();
        b->p = p;
        b->cap = c;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void bb_u8(bbuf *b, unsigned v) {
    uint8_t c = (uint8_t)v;
    bb_put(b, &c, 1);
}

static void pb_str(bbuf *b, const char *s) {
    uint32_t n = (uint32_t)strlen(s);
    bb_u8(b, 'X');
    for (int i = 0; i < 4; i++) bb_u8(b, (n >> (8 * i)) & 0xff);
    bb_put(b, s, n);
}

static void pb_int(bbuf *b, int64_t v) {
    uint32_t u = (uint32_t)v;
    bb_u8(b, 'J');
    for (int i = 0; i < 4; i++) bb_u8(b, (u >> (8 * i)) & 0xff);
}

static void pb_global(bbuf *b, const char *mod, const char *name) {
    bb_u8(b, 'c');
    bb_put(b, mod, strlen(mod));
    bb_u8(b, '\n');
    bb_put(b, name, strlen(name));
    bb_u8(b, '\n');
}

typedef struct {
    char name[128];
    int ndim;
    int64_t shape[4];
    float *data; /* owned */
    size_t numel;
} ftensor;

/* _rebuild_tensor_v2(('storage', FloatStorage, key, 'cpu', numel), 0, size, stride, False, OrderedDict()) */
static void pb_tensor(bbuf *b, const ftensor *t, int key) {
    char k[16];
    snprintf(k, sizeof k, "%d", key);
    pb_global(b, "torch._utils", "_rebuild_tensor_v2");
    bb_u8(b, '(');
    bb_u8(b, '(');
    pb_str(b, "storage");
    pb_global(b, "torch", "FloatStorage");
    pb_str(b, k);
    pb_str(b, "cpu");
    pb_int(b, (int64_t)t->numel);
    bb_u8(b, 't');
    bb_u8(b, 'Q');
    pb_int(b, 0);
    bb_u8(b, '(');
    for (int d = 0; d < t->ndim; d++) pb_int(b, t->shape[d]);
    bb_u8(b, 't');
    bb_u8(b, '(');
    int64_t stride = 1;
    int64_t strides[4];
    for (int d = t->ndim - 1; d >= 0; d--) strides[d] = stride, stride *= t->shape[d];
    for (int d = 0; d < t->ndim; d++) pb_int(b, strides[d]);
    bb_u8(b, 't');
    bb_u8(b, 0x89);
    pb_global(b, "collections", "OrderedDict");
    bb_u8(b, ')');
    bb_u8(b, 'R');
    bb_u8(b, 't');
    bb_u8(b, 'R');
}

/* ---- the tiny CLIP in open_clip names ---------------------------------------------------------------------------- */

typedef struct {
    ftensor *t;
    int n;
} tset;

static ftensor *ts_add(tset *s, const char *name, int ndim, const int64_t *shape) {
    s->t = realloc(s->t, (size_t)(s->n + 1) * sizeof *s->t);
    ftensor *t = &s->t[s->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d], t->numel *= (size_t)shape[d];
    t->data = calloc(t->numel ? t->numel : 1, sizeof(float));
    return t;
}

static void ts_free(tset *s) {
    for (int i = 0; i < s->n; i++) free(s->t[i].data);
    free(s->t);
    s->t = NULL;
    s->n = 0;
}

static const st_tensor *hf(st_file *f, const char *name) {
    const st_tensor *t = st_find(f, name);
    if (!t) printf("  missing %s\n", name);
    return t;
}

static void copy_t(tset *s, st_file *f, const char *from, const char *to) {
    const st_tensor *t = hf(f, from);
    if (!t) return;
    ftensor *o = ts_add(s, to, t->ndim, t->shape);
    st_to_f32(t, o->data, NULL);
}

static void transpose_t(tset *s, st_file *f, const char *from, const char *to) {
    const st_tensor *t = hf(f, from);
    if (!t || t->ndim != 2) return;
    int64_t R = t->shape[0], C = t->shape[1], shp[2] = {C, R};
    float *tmp = malloc((size_t)(R * C) * sizeof *tmp);
    st_to_f32(t, tmp, NULL);
    ftensor *o = ts_add(s, to, 2, shp);
    for (int64_t i = 0; i < R; i++)
        for (int64_t j = 0; j < C; j++) o->data[j * R + i] = tmp[i * C + j];
    free(tmp);
}

static void fuse_t(tset *s, st_file *f, const char *prefix, const char *suffix, const char *to) {
    const char *qkv[3] = {"q_proj", "k_proj", "v_proj"};
    char nm[256];
    snprintf(nm, sizeof nm, "%s.self_attn.q_proj.%s", prefix, suffix);
    const st_tensor *q = hf(f, nm);
    if (!q) return;
    int64_t shp[2] = {3 * q->shape[0], q->ndim == 2 ? q->shape[1] : 0};
    ftensor *o = ts_add(s, to, q->ndim, shp);
    for (int p = 0; p < 3; p++) {
        snprintf(nm, sizeof nm, "%s.self_attn.%s.%s", prefix, qkv[p], suffix);
        const st_tensor *t = hf(f, nm);
        if (t) st_to_f32(t, o->data + (size_t)p * (o->numel / 3), NULL);
    }
}

/* tests/data/clip-tiny-quickgelu/model.safetensors in open_clip / OpenAI names (the reverse of the loader's map). */
static void openclip_tensors(tset *s) {
    st_file *f = NULL;
    if (st_open(test_data("clip-tiny-quickgelu/model.safetensors"), &f, NULL) != CLXP_OK) return;
    copy_t(s, f, "text_model.embeddings.position_embedding.weight", "positional_embedding");
    transpose_t(s, f, "text_projection.weight", "text_projection");
    const st_tensor *ls = hf(f, "logit_scale");
    if (ls) st_to_f32(ls, ts_add(s, "logit_scale", 0, NULL)->data, NULL);
    copy_t(s, f, "vision_model.embeddings.class_embedding", "visual.class_embedding");
    copy_t(s, f, "vision_model.embeddings.position_embedding.weight", "visual.positional_embedding");
    transpose_t(s, f, "visual_projection.weight", "visual.proj");
    copy_t(s, f, "vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight");
    copy_t(s, f, "vision_model.pre_layrnorm.weight", "visual.ln_pre.weight");
    copy_t(s, f, "vision_model.pre_layrnorm.bias", "visual.ln_pre.bias");
    static const char *const pairs[][2] = {{"layer_norm1.weight", "ln_1.weight"}, {"layer_norm1.bias", "ln_1.bias"},
                                           {"self_attn.out_proj.weight", "attn.out_proj.weight"},
                                           {"self_attn.out_proj.bias", "attn.out_proj.bias"},
                                           {"layer_norm2.weight", "ln_2.weight"}, {"layer_norm2.bias", "ln_2.bias"},
                                           {"mlp.fc1.weight", "mlp.c_fc.weight"}, {"mlp.fc1.bias", "mlp.c_fc.bias"},
                                           {"mlp.fc2.weight", "mlp.c_proj.weight"}, {"mlp.fc2.bias", "mlp.c_proj.bias"}};
    for (int tower = 0; tower < 2; tower++) {
        for (int i = 0; i < 2; i++) {
            char from[256], to[256], pre[128];
            snprintf(pre, sizeof pre, "%s.encoder.layers.%d", tower ? "text_model" : "vision_model", i);
            const char *op = tower ? "transformer.resblocks" : "visual.transformer.resblocks";
            snprintf(to, sizeof to, "%s.%d.attn.in_proj_weight", op, i);
            fuse_t(s, f, pre, "weight", to);
            snprintf(to, sizeof to, "%s.%d.attn.in_proj_bias", op, i);
            fuse_t(s, f, pre, "bias", to);
            for (size_t k = 0; k < sizeof pairs / sizeof *pairs; k++) {
                snprintf(from, sizeof from, "%s.%s", pre, pairs[k][0]);
                snprintf(to, sizeof to, "%s.%d.%s", op, i, pairs[k][1]);
                copy_t(s, f, from, to);
            }
        }
        if (!tower) {
            copy_t(s, f, "vision_model.post_layernorm.weight", "visual.ln_post.weight");
            copy_t(s, f, "vision_model.post_layernorm.bias", "visual.ln_post.bias");
        }
    }
    copy_t(s, f, "text_model.embeddings.token_embedding.weight", "token_embedding.weight");
    copy_t(s, f, "text_model.final_layer_norm.weight", "ln_final.weight");
    copy_t(s, f, "text_model.final_layer_norm.bias", "ln_final.bias");
    st_close(f);
}

/* A zip archive (libzip, stored entries) under the top folder "archive/". */
static int write_archive(const char *path, const bbuf *pkl, const tset *s, const bbuf *constants) {
    int ze = 0;
    zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &ze);
    if (!z) return 0;
    int ok = 1;
    char name[64];
    zip_source_t *src = zip_source_buffer(z, pkl->p, pkl->n, 0);
    zip_int64_t idx = src ? zip_file_add(z, "archive/data.pkl", src, ZIP_FL_OVERWRITE) : -1;
    ok &= idx >= 0 && zip_set_file_compression(z, (zip_uint64_t)idx, ZIP_CM_STORE, 0) == 0;
    for (int i = 0; i < s->n && ok; i++) {
        snprintf(name, sizeof name, "archive/data/%d", i);
        src = zip_source_buffer(z, s->t[i].data, s->t[i].numel * sizeof(float), 0);
        idx = src ? zip_file_add(z, name, src, ZIP_FL_OVERWRITE) : -1;
        ok &= idx >= 0 && zip_set_file_compression(z, (zip_uint64_t)idx, ZIP_CM_STORE, 0) == 0;
    }
    if (constants) {
        src = zip_source_buffer(z, constants->p, constants->n, 0);
        idx = src ? zip_file_add(z, "archive/constants.pkl", src, ZIP_FL_OVERWRITE) : -1;
        ok &= idx >= 0;
    }
    src = zip_source_buffer(z, "3\n", 2, 0);
    idx = src ? zip_file_add(z, "archive/version", src, ZIP_FL_OVERWRITE) : -1;
    ok &= idx >= 0;
    if (zip_close(z) != 0) {
        zip_discard(z);
        ok = 0;
    }
    return ok;
}

/* torch.save(state_dict): OrderedDict filled by SETITEMS. */
static int write_state_dict(const char *path, const tset *s) {
    bbuf p = {0};
    bb_u8(&p, 0x80);
    bb_u8(&p, 2);
    pb_global(&p, "collections", "OrderedDict");
    bb_u8(&p, ')');
    bb_u8(&p, 'R');
    bb_u8(&p, '(');
    for (int i = 0; i < s->n; i++) {
        pb_str(&p, s->t[i].name);
        pb_tensor(&p, &s->t[i], i);
    }
    bb_u8(&p, 'u');
    bb_u8(&p, '.');
    int ok = write_archive(path, &p, s, NULL);
    free(p.p);
    return ok;
}

/* The module object tree of a TorchScript archive: every dotted prefix is a __torch__ object whose BUILD state is
 * its attribute dict. scripted: MultiheadAttention objects carry num_heads (4); every mlp gets a `gelu` object of
 * class `act` (QuickGELU or GELU, or another name for the unknown-layout test). */
static void emit_node(bbuf *p, const tset *s, const char *prefix, int scripted, const char *act, const char *ns) {
    size_t pl = strlen(prefix);
    pb_global(p, ns, prefix[0] ? "Module" : "CLIP");
    bb_u8(p, ')');
    bb_u8(p, 0x81); /* NEWOBJ */
    bb_u8(p, '}');
    bb_u8(p, '(');
    pb_str(p, "training");
    bb_u8(p, 0x89);
    /* direct tensors and children, in first-appearance order */
    char done[64][64];
    int n_done = 0;
    for (int i = 0; i < s->n; i++) {
        const char *nm = s->t[i].name;
        if (pl && (strncmp(nm, prefix, pl) != 0 || nm[pl] != '.')) continue;
        const char *rest = pl ? nm + pl + 1 : nm;
        const char *dot = strchr(rest, '.');
        if (!dot) {
            pb_str(p, rest);
            pb_tensor(p, &s->t[i], i);
            continue;
        }
        char child[64];
        snprintf(child, sizeof child, "%.*s", (int)(dot - rest), rest);
        int seen = 0;
        for (int k = 0; k < n_done && !seen; k++) seen = !strcmp(done[k], child);
        if (seen || n_done == 64) continue;
        snprintf(done[n_done++], sizeof done[0], "%s", child);
        char sub[256];
        snprintf(sub, sizeof sub, "%s%s%s", prefix, pl ? "." : "", child);
        pb_str(p, child);
        emit_node(p, s, sub, scripted, act, ns);
    }
    if (scripted && pl > 5 && !strcmp(prefix + pl - 5, ".attn")) {
        pb_str(p, "num_heads");
        pb_int(p, 4);
    }
    if (pl > 4 && !strcmp(prefix + pl - 4, ".mlp")) {
        pb_str(p, "gelu");
        pb_global(p, ns, act);
        bb_u8(p, ')');
        bb_u8(p, 0x81);
        bb_u8(p, '}');
        pb_str(p, "training");
        bb_u8(p, 0x89);
        bb_u8(p, 's');
        bb_u8(p, 'b');
    }
    bb_u8(p, 'u'); /* SETITEMS */
    bb_u8(p, 'b'); /* BUILD */
}

static int write_torchscript(const char *path, const tset *s, int scripted, const char *act) {
    bbuf p = {0}, c = {0};
    bb_u8(&p, 0x80);
    bb_u8(&p, 2);
    emit_node(&p, s, "", scripted, act, scripted ? "__torch__.open_clip.model" : "__torch__.clip.model.___torch_mangle_3");
    bb_u8(&p, '.');
    bb_u8(&c, 0x80);
    bb_u8(&c, 2);
    bb_u8(&c, ')');
    bb_u8(&c, '.');
    int ok = write_archive(path, &p, s, &c);
    free(p.p);
    free(c.p);
    return ok;
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

/* ---- goldens ------------------------------------------------------------------------------------------------------ */

typedef struct {
    char **prompts;
    int n_prompts;
    float *pixels; /* [B,3,S,S] */
    int B;
    float *image_embeds, *text_embeds, *logits; /* golden */
} goldens;

static float *read_f32(st_file *g, const char *name, size_t *n) {
    const st_tensor *t = st_find(g, name);
    if (!t) return NULL;
    float *o = malloc((size_t)t->numel * sizeof *o);
    st_to_f32(t, o, NULL);
    if (n) *n = (size_t)t->numel;
    return o;
}

/* golden.safetensors (pixel_values and prompts from `dir`) with the expected outputs from `expected` (NULL: the
 * same file). */
static int load_goldens(const char *dir, const char *expected, goldens *G) {
    memset(G, 0, sizeof *G);
    char path[4200];
    snprintf(path, sizeof path, "%s/golden/inputs/prompts.json", dir);
    cJSON *root = NULL;
    if (clxp_json_load(path, &root, NULL) != CLXP_OK) return 0;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "prompts");
    G->n_prompts = cJSON_GetArraySize(arr);
    G->prompts = calloc((size_t)G->n_prompts, sizeof *G->prompts);
    for (int i = 0; i < G->n_prompts; i++) G->prompts[i] = strdup(cJSON_GetArrayItem(arr, i)->valuestring);
    cJSON_Delete(root);
    snprintf(path, sizeof path, "%s/golden/golden.safetensors", dir);
    st_file *g = NULL, *e = NULL;
    if (st_open(path, &g, NULL) != CLXP_OK) return 0;
    if (expected && st_open(expected, &e, NULL) != CLXP_OK) {
        st_close(g);
        return 0;
    }
    size_t np = 0;
    G->pixels = read_f32(g, "pixel_values", &np);
    G->B = 5;
    G->image_embeds = read_f32(e ? e : g, "image_embeds", NULL);
    G->text_embeds = read_f32(e ? e : g, "text_embeds", NULL);
    G->logits = read_f32(e ? e : g, "logits_per_image", NULL);
    st_close(g);
    st_close(e);
    return G->pixels && G->image_embeds && G->text_embeds && G->logits;
}

static void free_goldens(goldens *G) {
    for (int i = 0; i < G->n_prompts; i++) free(G->prompts[i]);
    free(G->prompts);
    free(G->pixels);
    free(G->image_embeds);
    free(G->text_embeds);
    free(G->logits);
}

/* max |a-b| / max |b| */
static double rel_err(const float *a, const float *b, size_t n) {
    double m = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs((double)a[i] - b[i]));
        r = fmax(r, fabs((double)b[i]));
        if (a[i] != a[i]) return INFINITY;
    }
    return r > 0 ? m / r : m;
}

typedef struct {
    float *img, *txt;
    int dim;
} outputs;

/* Load `model` with opt, encode the goldens' pixels and prompts, compare; keeps the outputs in *o if non-NULL. */
static void check_model(const char *label, const char *model, const clxp_load_options *opt, const goldens *G,
                        const char *want_format, outputs *o) {
    clxp_error err = {0};
    clxp_model *m = NULL;
    clxp_status st = clxp_model_load(model, opt, &m, &err);
    if (st != CLXP_OK) printf("  %s: %s\n", label, err.msg);
    REQUIRE(st == CLXP_OK);
    const clxp_model_info *inf = clxp_model_get_info(m);
    if (want_format) CHECK_STR(inf->format, want_format);
    const int dim = inf->embed_dim, B = G->B, P = G->n_prompts;
    float *img = malloc((size_t)B * dim * sizeof *img), *txt = malloc((size_t)P * dim * sizeof *txt);
    float *logits = malloc((size_t)B * P * sizeof *logits);
    CHECK(model_encode_pixels(m, G->pixels, B, img, &err) == CLXP_OK);
    CHECK(clxp_encode_texts(m, (const char *const *)G->prompts, P, txt, &err) == CLXP_OK);
    for (int b = 0; b < B; b++)
        for (int p = 0; p < P; p++) {
            double s = 0;
            for (int k = 0; k < dim; k++) s += (double)img[b * dim + k] * txt[p * dim + k];
            logits[b * P + p] = (float)(s * inf->logit_scale);
        }
    double ei = rel_err(img, G->image_embeds, (size_t)B * dim), et = rel_err(txt, G->text_embeds, (size_t)P * dim);
    double el = rel_err(logits, G->logits, (size_t)B * P);
    printf("  %-44s image_embeds %.2e  text_embeds %.2e  logits %.2e (relative to max; tol %g)\n", label, ei, et, el,
           REL_TOL);
    CHECK(ei <= REL_TOL);
    CHECK(et <= REL_TOL);
    CHECK(el <= REL_TOL);
    free(logits);
    if (o) {
        o->img = img;
        o->txt = txt;
        o->dim = dim;
    } else {
        free(img);
        free(txt);
    }
    clxp_model_free(m);
}

/* Convert `model` into a fresh directory and check it loads with bit-identical outputs. */
static void check_converted(const char *label, const char *model, const clxp_load_options *opt, const goldens *G,
                            const char *outdir) {
    outputs a = {0}, b = {0};
    check_model(label, model, opt, G, NULL, &a);
    ckpt_options co = {opt ? opt->tokenizer : NULL, opt ? opt->vision_heads : 0, opt ? opt->text_heads : 0};
    ckpt_model *ck = NULL;
    clxp_error err = {0};
    mkdir(outdir, 0777);
    clxp_status st = ckpt_open(model, &co, &ck, &err);
    if (st == CLXP_OK) st = ckpt_write_dir(ck, outdir, 1, &err);
    if (st != CLXP_OK) printf("  convert %s: %s\n", label, err.msg);
    CHECK(st == CLXP_OK);
    ckpt_free(ck);
    clxp_load_options plain = {.precision = CLXP_PRECISION_FP32};
    char lab[256];
    snprintf(lab, sizeof lab, "%s converted", label);
    check_model(lab, outdir, &plain, G, "hf-safetensors", &b);
    if (a.img && b.img) {
        CHECK(memcmp(a.img, b.img, (size_t)G->B * a.dim * sizeof(float)) == 0);
        CHECK(memcmp(a.txt, b.txt, (size_t)G->n_prompts * a.dim * sizeof(float)) == 0);
    }
    free(a.img);
    free(a.txt);
    free(b.img);
    free(b.txt);
    static const char *const files[] = {"config.json", "model.safetensors", "tokenizer.json",
                                        "preprocessor_config.json", "special_tokens_map.json",
                                        "tokenizer_config.json", "vocab.json", "merges.txt"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", outdir, files[i]);
        unlink(p);
    }
    rmdir(outdir);
}

static const char quickgelu_cfg[] =
    "{\"model_cfg\": {\"embed_dim\": 32, \"quick_gelu\": true, \"vision_cfg\": {\"image_size\": 32, \"layers\": 2, "
    "\"width\": 64, \"head_width\": 16, \"mlp_ratio\": 2.0, \"patch_size\": 8}, \"text_cfg\": {\"context_length\": 77, "
    "\"vocab_size\": 49408, \"width\": 48, \"heads\": 4, \"layers\": 2, \"mlp_ratio\": 2.0}}, \"preprocess_cfg\": "
    "{\"mean\": [0.48145466, 0.4578275, 0.40821073], \"std\": [0.26862954, 0.26130258, 0.27577711], "
    "\"interpolation\": \"bicubic\", \"resize_mode\": \"shortest\"}}\n";

static const clxp_load_options fp32 = {.precision = CLXP_PRECISION_FP32};
static const clxp_load_options fp32_heads = {.precision = CLXP_PRECISION_FP32, .vision_heads = 4, .text_heads = 4};

/* ---- tests ------------------------------------------------------------------------------------------------------ */

TEST(builtin_vocab_matches_tokenizer_json) {
    char *json = NULL;
    size_t len = 0;
    clxp_error err = {0};
    REQUIRE(clip_vocab_tokenizer_json(&json, &len, &err) == CLXP_OK);
    clxp_tokenizer *a = NULL, *b = NULL;
    REQUIRE(tok_load_buffer(json, len, "built-in", &a, &err) == CLXP_OK);
    REQUIRE(tok_load(test_data("clip-tiny-quickgelu/tokenizer.json"), &b, &err) == CLXP_OK);
    CHECK_EQ_INT(tok_vocab_size(a), CLIP_VOCAB_SIZE);
    CHECK_EQ_INT(tok_vocab_size(b), CLIP_VOCAB_SIZE);
    int same = 1;
    for (int id = 0; id < CLIP_VOCAB_SIZE && same; id++) {
        const char *x = tok_id_to_token(a, id), *y = tok_id_to_token(b, id);
        same = x && y && !strcmp(x, y);
        if (!same) printf("  id %d: %s vs %s\n", id, x ? x : "(null)", y ? y : "(null)");
    }
    CHECK(same);
    goldens G;
    REQUIRE(load_goldens(test_data("clip-tiny-quickgelu"), NULL, &G));
    const tok_encode_opts o = {1, 77, 77, 49407};
    int32_t ia[77], ma[77], ib[77], mb[77];
    for (int i = 0; i < G.n_prompts; i++) {
        int la = 0, lb = 0;
        CHECK(tok_encode(a, G.prompts[i], strlen(G.prompts[i]), &o, ia, ma, 77, &la, &err) == CLXP_OK);
        CHECK(tok_encode(b, G.prompts[i], strlen(G.prompts[i]), &o, ib, mb, 77, &lb, &err) == CLXP_OK);
        CHECK(la == lb && memcmp(ia, ib, sizeof ia) == 0);
    }
    free_goldens(&G);
    tok_free(a);
    tok_free(b);
    free(json);
    /* a merges.txt with the wrong number of merges */
    char *out = NULL;
    CHECK(clip_vocab_from_merges("#version: 0.2\na b\n", 18, "m.txt", &out, &len, &err) == CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "m.txt: 1 merges, the CLIP vocabulary needs 48894");
    CHECK(clip_vocab_from_merges("ab\n", 3, "m.txt", &out, &len, &err) == CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "line 1 is not a merge");
}

TEST(openclip_state_dict_from_repo_weights) {
    goldens G;
    REQUIRE(load_goldens(test_data("clip-tiny-quickgelu"), NULL, &G));
    tset s = {0};
    openclip_tensors(&s);
    REQUIRE(s.n == 62);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/oc", tmp_dir);
    REQUIRE(mkdir(dir, 0777) == 0);
    char bin[4300], cfg[4300];
    snprintf(bin, sizeof bin, "%s/open_clip_pytorch_model.bin", dir);
    snprintf(cfg, sizeof cfg, "%s/open_clip_config.json", dir);
    REQUIRE(write_state_dict(bin, &s));
    REQUIRE(write_text(cfg, quickgelu_cfg));
    check_model("open_clip dir (tmp)", dir, &fp32, &G, "open_clip", NULL);
    check_model("open_clip .bin (tmp)", bin, &fp32, &G, "open_clip", NULL);
    clxp_load_options with_tok = fp32;
    with_tok.tokenizer = test_data("clip-tiny-quickgelu/tokenizer.json");
    check_model("open_clip .bin, --tokenizer tokenizer.json", bin, &with_tok, &G, "open_clip", NULL);
    with_tok.tokenizer = tmp_path("no-such-tokenizer.json");
    clxp_error terr = {0};
    clxp_model *tm = NULL;
    CHECK(clxp_model_load(bin, &with_tok, &tm, &terr) == CLXP_ERR_IO);
    CHECK_CONTAINS(terr.msg, "no-such-tokenizer.json: tokenizer file not found");
    check_converted("open_clip dir (tmp)", dir, &fp32, &G, tmp_path("oc_conv"));
    /* without the config: heads by width/64 (1 and 0 here) -> a clear error naming the option */
    unlink(cfg);
    clxp_error err = {0};
    clxp_model *m = NULL;
    CHECK(clxp_model_load(bin, &fp32, &m, &err) == CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "text width 48 is not divisible into 0 attention heads");
    CHECK_CONTAINS(err.msg, "--text-heads");
    check_model("open_clip .bin, no config, heads given", bin, &fp32_heads, &G, "open_clip", NULL);
    /* a directory with two candidate model files */
    char other[4300];
    snprintf(other, sizeof other, "%s/other.pt", dir);
    unlink(bin);
    REQUIRE(write_state_dict(other, &s));
    snprintf(bin, sizeof bin, "%s/b.pt", dir);
    REQUIRE(write_state_dict(bin, &s));
    CHECK(clxp_model_load(dir, &fp32_heads, &m, &err) == CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "several model files");
    unlink(bin);
    check_model("dir with the only .pt", dir, &fp32_heads, &G, "open_clip", NULL);
    unlink(other);
    rmdir(dir);
    ts_free(&s);
    free_goldens(&G);
}

static int copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = a ? fopen(to, "wb") : NULL;
    int ok = a && b;
    char buf[65536];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, a)) > 0) ok = fwrite(buf, 1, n, b) == n;
    if (a) fclose(a);
    if (b) ok &= fclose(b) == 0;
    return ok;
}

/* A HF directory that ships pytorch_model.bin (HF names) instead of model.safetensors. */
TEST(hf_pytorch_model_bin) {
    goldens G;
    REQUIRE(load_goldens(test_data("clip-tiny-quickgelu"), NULL, &G));
    tset s = {0};
    st_file *f = NULL;
    REQUIRE(st_open(test_data("clip-tiny-quickgelu/model.safetensors"), &f, NULL) == CLXP_OK);
    for (int i = 0; i < st_count(f); i++) copy_t(&s, f, st_at(f, i)->name, st_at(f, i)->name);
    st_close(f);
    char dir[4200], p[4400];
    snprintf(dir, sizeof dir, "%s/hfbin", tmp_dir);
    REQUIRE(mkdir(dir, 0777) == 0);
    static const char *const files[] = {"config.json", "tokenizer.json", "preprocessor_config.json",
                                        "special_tokens_map.json", "tokenizer_config.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "clip-tiny-quickgelu/%s", files[i]);
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        REQUIRE(copy_file(test_data(rel), p));
    }
    snprintf(p, sizeof p, "%s/pytorch_model.bin", dir);
    REQUIRE(write_state_dict(p, &s));
    check_model("HF directory with pytorch_model.bin", dir, &fp32, &G, "hf-pytorch", NULL);
    check_model("HF pytorch_model.bin file", p, &fp32, &G, "hf-pytorch", NULL);
    check_converted("HF pytorch_model.bin", dir, &fp32, &G, tmp_path("hf_conv"));
    unlink(p);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
    ts_free(&s);
    free_goldens(&G);
}

TEST(torchscript_archives_from_repo_weights) {
    goldens G;
    REQUIRE(load_goldens(test_data("clip-tiny-quickgelu"), NULL, &G));
    tset s = {0};
    openclip_tensors(&s);
    REQUIRE(s.n == 62);
    char scripted[4300], traced[4300];
    snprintf(scripted, sizeof scripted, "%s", tmp_path("scripted.pt"));
    snprintf(traced, sizeof traced, "%s", tmp_path("traced.pt"));
    REQUIRE(write_torchscript(scripted, &s, 1, "QuickGELU"));
    check_model("scripted (num_heads, QuickGELU objects)", scripted, &fp32, &G, "torchscript", NULL);
    REQUIRE(write_torchscript(traced, &s, 0, "QuickGELU"));
    check_model("OpenAI-style traced, --*-heads 4", traced, &fp32_heads, &G, "openai", NULL);
    check_converted("OpenAI-style traced", traced, &fp32_heads, &G, tmp_path("tr_conv"));
    /* GELU objects: the exact-erf activation is taken (and the outputs differ from the quick_gelu goldens) */
    REQUIRE(write_torchscript(scripted, &s, 1, "GELU"));
    clxp_error err = {0};
    clxp_model *m = NULL;
    clxp_status st = clxp_model_load(scripted, &fp32, &m, &err);
    if (st != CLXP_OK) printf("  %s\n", err.msg);
    REQUIRE(st == CLXP_OK);
    CHECK_STR(clxp_model_get_info(m)->vision_act, "gelu");
    clxp_model_free(m);
    /* an unknown activation class */
    REQUIRE(write_torchscript(scripted, &s, 1, "Swish"));
    CHECK(clxp_model_load(scripted, &fp32, &m, &err) == CLXP_ERR_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "unknown TorchScript module layout: visual.transformer.resblocks.0.mlp.gelu is a "
                            "__torch__.open_clip.model.Swish, expected QuickGELU or GELU");
    unlink(scripted);
    unlink(traced);
    ts_free(&s);
    free_goldens(&G);
}

TEST(unknown_layouts_and_damaged_files) {
    clxp_error err = {0};
    clxp_model *m = NULL;
    /* a TorchScript archive of something that is not a CLIP: the error says what it found */
    tset s = {0};
    int64_t shp[2] = {4, 3};
    ts_add(&s, "encoder.weight", 2, shp);
    ts_add(&s, "decoder.weight", 2, shp);
    char p[4300];
    snprintf(p, sizeof p, "%s", tmp_path("other_model.pt"));
    REQUIRE(write_torchscript(p, &s, 1, "QuickGELU"));
    CHECK(clxp_model_load(p, &fp32, &m, &err) == CLXP_ERR_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "unknown TorchScript module layout: root __torch__.open_clip.model.CLIP with 2 tensors "
                            "(\"encoder.weight\", \"decoder.weight\")");
    /* the same as a state dict */
    REQUIRE(write_state_dict(p, &s));
    CHECK(clxp_model_load(p, &fp32, &m, &err) == CLXP_ERR_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "unknown checkpoint layout: 2 tensors");
    /* a ResNet tower */
    ts_free(&s);
    ts_add(&s, "visual.layer1.0.conv1.weight", 2, shp);
    REQUIRE(write_state_dict(p, &s));
    CHECK(clxp_model_load(p, &fp32, &m, &err) == CLXP_ERR_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "ResNet image tower");
    ts_free(&s);
    /* a complete CLIP plus a tensor the engine does not know */
    openclip_tensors(&s);
    int64_t one[1] = {1};
    ts_add(&s, "logit_bias", 1, one);
    REQUIRE(write_state_dict(p, &s));
    CHECK(clxp_model_load(p, &fp32_heads, &m, &err) == CLXP_ERR_UNSUPPORTED);
    CHECK_CONTAINS(err.msg, "1 tensor that a ViT CLIP does not have (an unsupported variant?): \"logit_bias\"");
    ts_free(&s);
    /* truncated archive, not a zip, missing file */
    FILE *f = fopen(p, "rb");
    REQUIRE(f);
    char buf[300];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    f = fopen(p, "wb");
    REQUIRE(f);
    fwrite(buf, 1, n, f);
    fclose(f);
    CHECK(clxp_model_load(p, &fp32, &m, &err) != CLXP_OK);
    CHECK(m == NULL);
    CHECK_CONTAINS(err.msg, "other_model.pt");
    REQUIRE(write_text(p, "hello"));
    CHECK(clxp_model_load(p, &fp32, &m, &err) != CLXP_OK);
    CHECK_CONTAINS(err.msg, "other_model.pt");
    unlink(p);
    CHECK(clxp_model_load(p, &fp32, &m, &err) == CLXP_ERR_IO);
    CHECK_CONTAINS(err.msg, "does not exist");
}

/* ---- the shared golden files -------------------------------------------------------------------------------------- */

static const char *shared_root(void) {
    static char buf[4096];
    const char *env = getenv("CLXP_SHARED");
    snprintf(buf, sizeof buf, "%s", env && *env ? env : "../shared/golden");
    struct stat sb;
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/openclip-tiny-quickgelu/open_clip_pytorch_model.bin", buf);
    return stat(probe, &sb) == 0 ? buf : NULL;
}

TEST(shared_openclip_files) {
    const char *root = shared_root();
    if (!root) {
        printf("  skipped (no shared golden data: set CLXP_SHARED or put it at ../shared/golden)\n");
        return;
    }
    char gdir[4200], oc[4200], path[4400], exp16[4400];
    snprintf(gdir, sizeof gdir, "%s/clip-tiny-quickgelu", root);
    snprintf(oc, sizeof oc, "%s/openclip-tiny-quickgelu", root);
    goldens G, H;
    REQUIRE(load_goldens(gdir, NULL, &G));
    snprintf(exp16, sizeof exp16, "%s/openai_style_fp16_expected.safetensors", oc);
    REQUIRE(load_goldens(gdir, exp16, &H));
    check_model("shared open_clip directory", oc, &fp32, &G, "open_clip", NULL);
    snprintf(path, sizeof path, "%s/open_clip_pytorch_model.bin", oc);
    check_model("shared open_clip_pytorch_model.bin", path, &fp32, &G, "open_clip", NULL);
    check_converted("shared open_clip_pytorch_model.bin", path, &fp32, &G, tmp_path("s_oc"));
    snprintf(path, sizeof path, "%s/clip_model_scripted.pt", oc);
    check_model("shared clip_model_scripted.pt", path, &fp32, &G, "torchscript", NULL);
    check_converted("shared clip_model_scripted.pt", path, &fp32, &G, tmp_path("s_sc"));
    snprintf(path, sizeof path, "%s/openai_style.pt", oc);
    check_model("shared openai_style.pt (heads 4/4)", path, &fp32_heads, &G, "openai", NULL);
    check_converted("shared openai_style.pt", path, &fp32_heads, &G, tmp_path("s_oa"));
    snprintf(path, sizeof path, "%s/openai_style_fp16.pt", oc);
    check_model("shared openai_style_fp16.pt vs its expected", path, &fp32_heads, &H, "openai", NULL);
    check_converted("shared openai_style_fp16.pt", path, &fp32_heads, &H, tmp_path("s_16"));
    free_goldens(&G);
    free_goldens(&H);
}

int main(void) {
    const char *td = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/clxp-test-ckpt-XXXXXX", td && *td ? td : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(builtin_vocab_matches_tokenizer_json);
    RUN(openclip_state_dict_from_repo_weights);
    RUN(hf_pytorch_model_bin);
    RUN(torchscript_archives_from_repo_weights);
    RUN(unknown_layouts_and_damaged_files);
    RUN(shared_openclip_files);
    rmdir(tmp_dir);
    return test_summary();
}
