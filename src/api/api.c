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
#include "io/preprocessor_config.h"
#include "io/prompts.h"
#include "media/image.h"
#include "media/preprocess.h"
#include "models/clip.h"
#include "nn/ops.h"
#include "text/tokenizer.h"
#include "util/error.h"
#include "util/fileio.h"
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
};

static int default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void fill_info(clxp_model *m) {
    const clip_config *c = &m->clip->cfg;
    clxp_model_info *i = &m->info;
    i->kind = "clip";
    i->path = m->path;
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

clxp_status clxp_model_load(const char *dir, const clxp_load_options *opt, clxp_model **out, clxp_error *err) {
    *out = NULL;
    if (!dir || !*dir) return clxp_err_set(err, CLXP_ERR_INVALID, "no model directory given");
    if (!clxp_is_dir(dir))
        return clxp_err_set(err, CLXP_ERR_IO, "%s: %s", dir,
                            clxp_is_file(dir) ? "is a file; expected a Hugging Face model directory"
                                              : "model directory does not exist");
    clxp_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(dir))) {
        free(m);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    m->n_threads = opt && opt->n_threads > 0 ? opt->n_threads : default_threads();
    clxp_status st = clip_model_load(dir, &m->clip, err);
    char *tok_path = clxp_path_join(dir, "tokenizer.json"), *pp_path = clxp_path_join(dir, "preprocessor_config.json");
    if (st == CLXP_OK && (!tok_path || !pp_path)) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    if (st == CLXP_OK) {
        if (!clxp_is_file(tok_path))
            st = clxp_err_set(err, CLXP_ERR_IO, "%s: missing (clxp needs the fast tokenizer file)", tok_path);
        else st = tok_load(tok_path, &m->tok, err);
    }
    if (st == CLXP_OK && tok_vocab_size(m->tok) > m->clip->cfg.vocab_size)
        st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: tokenizer has %d tokens but the model's vocabulary is %d",
                          tok_path, tok_vocab_size(m->tok), m->clip->cfg.vocab_size);
    if (st == CLXP_OK) {
        if (clxp_is_file(pp_path)) {
            st = clip_preproc_cfg_load(pp_path, &m->pp, err);
        } else {
            clip_preproc_cfg_defaults(&m->pp, m->clip->cfg.image_size);
            clxp_log(CLXP_LOG_WARN, "%s: missing, using CLIPImageProcessor defaults for %dx%d", pp_path,
                     m->clip->cfg.image_size, m->clip->cfg.image_size);
        }
    }
    if (st == CLXP_OK) st = check_preproc_matches(m, pp_path, err);
    free(tok_path);
    free(pp_path);
    if (st != CLXP_OK) {
        clxp_model_free(m);
        return st;
    }
    fill_info(m);
    *out = m;
    return CLXP_OK;
}

void clxp_model_free(clxp_model *m) {
    if (!m) return;
    clip_model_free(m->clip);
    tok_free(m->tok);
    free(m->path);
    free(m);
}

const clxp_model_info *clxp_model_get_info(const clxp_model *m) { return &m->info; }

clxp_status clxp_encode_texts(clxp_model *m, const char *const *texts, int n, float *out, clxp_error *err) {
    if (n < 0 || (n > 0 && (!texts || !out))) return clxp_err_set(err, CLXP_ERR_INVALID, "invalid arguments");
    omp_set_num_threads(m->n_threads);
    const int T = m->clip->cfg.context_length, dim = m->info.embed_dim;
    int32_t *ids = malloc((size_t)TEXT_BATCH * T * sizeof *ids), *mask = malloc((size_t)TEXT_BATCH * T * sizeof *mask);
    clxp_status st = (ids && mask) ? CLXP_OK : clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    const tok_encode_opts opts = {1, T, T, -1};
    for (int b0 = 0; b0 < n && st == CLXP_OK; b0 += TEXT_BATCH) {
        int B = n - b0 < TEXT_BATCH ? n - b0 : TEXT_BATCH;
        for (int i = 0; i < B && st == CLXP_OK; i++) {
            int len = 0;
            const char *t = texts[b0 + i] ? texts[b0 + i] : "";
            st = tok_encode(m->tok, t, strlen(t), &opts, ids + (size_t)i * T, mask + (size_t)i * T, T, &len, err);
            if (st != CLXP_OK) clxp_err_prefix(err, st, "prompt %d", b0 + i + 1);
        }
        if (st == CLXP_OK)
            st = clip_encode_tokens(m->clip, ids, mask, B, T, 0, out + (size_t)b0 * dim, NULL, NULL, err);
        if (st == CLXP_OK) nn_l2_normalize(out + (size_t)b0 * dim, B, dim);
    }
    free(ids);
    free(mask);
    return st;
}

clxp_status model_encode_pixels(clxp_model *m, const float *pixels, int B, float *out, clxp_error *err) {
    omp_set_num_threads(m->n_threads);
    clxp_status st = clip_encode_pixels(m->clip, pixels, B, out, NULL, NULL, err);
    if (st == CLXP_OK) nn_l2_normalize(out, B, m->info.embed_dim);
    return st;
}

clxp_status clxp_encode_images(clxp_model *m, const clxp_image *images, int n, float *out, clxp_error *err) {
    if (n < 0 || (n > 0 && (!images || !out))) return clxp_err_set(err, CLXP_ERR_INVALID, "invalid arguments");
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
    for (int i = 0; b->labels && i < b->n; i++) free(b->labels[i]);
    free(b->labels);
    free(b->emb);
    free(b);
}

int clxp_labelbank_size(const clxp_labelbank *b) { return b->n; }
const char *clxp_labelbank_label(const clxp_labelbank *b, int i) { return (i >= 0 && i < b->n) ? b->labels[i] : NULL; }
const float *clxp_labelbank_embeddings(const clxp_labelbank *b) { return b->emb; }

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
    /* A mid-gray image and two prompts through both towers: every output must be finite. */
    const int S = m->info.image_size, dim = m->info.embed_dim;
    uint8_t *gray = malloc((size_t)S * S * 3);
    float *emb = malloc((size_t)3 * dim * sizeof *emb);
    clxp_status st = (gray && emb) ? CLXP_OK : clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    if (st == CLXP_OK) {
        memset(gray, 128, (size_t)S * S * 3);
        clxp_image im = {gray, S, S, 3 * S};
        const char *texts[2] = {"a photo of a cat", "a photo of a dog"};
        st = clxp_encode_images(m, &im, 1, emb, err);
        if (st == CLXP_OK) st = clxp_encode_texts(m, texts, 2, emb + dim, err);
    }
    for (int i = 0; st == CLXP_OK && i < 3 * dim; i++)
        if (!isfinite(emb[i]))
            st = clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: self-test produced non-finite embeddings", m->path);
    free(gray);
    free(emb);
    return st;
}
