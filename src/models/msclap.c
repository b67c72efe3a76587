/* MS-CLAP 2023 (see msclap.h for the model and shared/golden/msclap-tiny-2023/README.md for the reference). */
#include "models/msclap.h"

#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zip.h>

#include "io/safetensors_write.h"
#include "nn/gemm.h"
#include "nn/interp.h"
#include "nn/ops.h"
#include "nn/swin.h"
#include "util/error.h"
#include "util/fileio.h"

#define LN_EPS 1e-5f
#define PRE_A "audio_encoder.base.htsat"
#define PRE_T "caption_encoder.base"
#define MAX_YAML_BYTES ((size_t)1 << 20)

/* ---- tensor access ------------------------------------------------------------------------------------------------
 */

typedef struct {
    msclap_model *m;
    clxp_error *err;
    clxp_status st;
} loader;

static const st_tensor *find(const msclap_model *m, const char *name) {
    return m->tf ? torch_find(m->tf, name) : st_find(m->sf, name);
}

static const st_tensor *findf(const msclap_model *m, const char *fmt, ...) CLXP_PRINTF(2, 3);
static const st_tensor *findf(const msclap_model *m, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return find(m, name);
}

static float *own(loader *L, size_t n) {
    if (L->st != CLXP_OK) return NULL;
    msclap_model *m = L->m;
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? 2 * m->cap_owned : 64;
        float **no = realloc(m->owned, (size_t)cap * sizeof *no);
        if (!no) {
            L->st = clxp_err_set(L->err, CLXP_ERR_NOMEM, "out of memory");
            return NULL;
        }
        m->owned = no;
        m->cap_owned = cap;
    }
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) {
        L->st = clxp_err_set(L->err, CLXP_ERR_NOMEM, "out of memory");
        return NULL;
    }
    m->owned[m->n_owned++] = p;
    return p;
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *dims) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++) n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)dims[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* Float32 view of a tensor with exactly the given shape (a scalar may be [] or [1]). */
static const float *get(loader *L, const int64_t *dims, int ndim, const char *fmt, ...) CLXP_PRINTF(4, 5);
static const float *get(loader *L, const int64_t *dims, int ndim, const char *fmt, ...) {
    if (L->st != CLXP_OK) return NULL;
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const st_tensor *t = find(L->m, name);
    if (!t) {
        L->st = clxp_err_set(L->err, CLXP_ERR_FORMAT, "%s: missing tensor \"%s\"", L->m->source, name);
        return NULL;
    }
    int ok = t->ndim == ndim || (ndim == 0 && t->ndim == 1 && t->shape[0] == 1);
    for (int i = 0; ok && i < ndim && i < t->ndim; i++) ok = t->shape[i] == dims[i];
    if (!ok) {
        char want[160], got[160];
        shape_str(want, sizeof want, ndim, dims);
        shape_str(got, sizeof got, t->ndim, t->shape);
        L->st = clxp_err_set(L->err, CLXP_ERR_FORMAT, "%s: tensor \"%s\" has shape %s, expected %s", L->m->source, name,
                             got, want);
        return NULL;
    }
    if (t->dtype == ST_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) return t->data;
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 && t->dtype != ST_F64) {
        L->st = clxp_err_set(L->err, CLXP_ERR_UNSUPPORTED, "%s: tensor \"%s\" has dtype %s, expected a float type",
                             L->m->source, name, st_dtype_name(t->dtype));
        return NULL;
    }
    float *buf = own(L, (size_t)t->numel);
    if (buf && (L->st = st_to_f32(t, buf, L->err)) != CLXP_OK) return NULL;
    return buf;
}

#define D0 NULL, 0
#define D1(a) ((const int64_t[]){(a)}), 1
#define D2(a, b) ((const int64_t[]){(a), (b)}), 2
#define D3(a, b, c) ((const int64_t[]){(a), (b), (c)}), 3
#define D4(a, b, c, d) ((const int64_t[]){(a), (b), (c), (d)}), 4

/* Shape dimension i of a tensor, or -1 when the tensor is absent / has fewer dimensions. */
static int64_t dim_of(const st_tensor *t, int i) { return t && t->ndim > i ? t->shape[i] : -1; }

/* ---- names ---------------------------------------------------------------------------------------------------- */

static int names_ok(const st_tensor *a, const st_tensor *b) { return a && b; }

int msclap_st_is_msclap(const st_file *f) {
    return names_ok(st_find(f, PRE_T ".wte.weight"), st_find(f, PRE_A ".patch_embed.proj.weight"));
}

int msclap_torch_is_msclap(const torch_file *f) {
    return !torch_is_torchscript(f) &&
           names_ok(torch_find(f, PRE_T ".wte.weight"), torch_find(f, PRE_A ".patch_embed.proj.weight"));
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* ---- finding a checkpoint without loading it ------------------------------------------------------------------ */

#define PROBE_MAX_PICKLE ((zip_uint64_t)256 << 20)

static int has_names(const char *buf, size_t len) {
    return memmem(buf, len, PRE_T ".wte.weight", strlen(PRE_T ".wte.weight")) &&
           memmem(buf, len, PRE_A ".patch_embed", strlen(PRE_A ".patch_embed"));
}

int msclap_probe_file(const char *path) {
    if (!clxp_is_file(path)) return 0;
    unsigned char magic[8] = {0};
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    size_t got = fread(magic, 1, sizeof magic, fp);
    fclose(fp);
    if (got >= 2 && magic[0] == 'P' && magic[1] == 'K') {
        int zerr = 0, found = 0;
        zip_t *z = zip_open(path, ZIP_RDONLY, &zerr);
        if (!z) return 0;
        zip_int64_t n = zip_get_num_entries(z, 0);
        for (zip_int64_t i = 0; i < n && !found; i++) {
            const char *nm = zip_get_name(z, (zip_uint64_t)i, 0);
            size_t l = nm ? strlen(nm) : 0;
            if (l < 8 || strcmp(nm + l - 8, "data.pkl") != 0 || (l > 8 && nm[l - 9] != '/')) continue;
            zip_stat_t zs;
            if (zip_stat_index(z, (zip_uint64_t)i, 0, &zs) != 0 || !(zs.valid & ZIP_STAT_SIZE) ||
                zs.size > PROBE_MAX_PICKLE)
                break;
            char *buf = malloc(zs.size ? (size_t)zs.size : 1);
            zip_file_t *zf = buf ? zip_fopen_index(z, (zip_uint64_t)i, 0) : NULL;
            if (zf) {
                zip_int64_t r = zip_fread(zf, buf, zs.size);
                if (r > 0) found = has_names(buf, (size_t)r);
                zip_fclose(zf);
            }
            free(buf);
            break;
        }
        zip_discard(z);
        return found;
    }
    st_file *f = NULL;
    clxp_error ignore;
    if (st_open(path, &f, &ignore) != CLXP_OK) return 0;
    int ok = msclap_st_is_msclap(f);
    st_close(f);
    return ok;
}

static int has_ext(const char *name, const char *ext) {
    size_t l = strlen(name), e = strlen(ext);
    return l > e && strcmp(name + l - e, ext) == 0;
}

char *msclap_locate(const char *path) {
    if (clxp_is_file(path)) return msclap_probe_file(path) ? strdup(path) : NULL;
    if (!clxp_is_dir(path)) return NULL;
    char *cfg = clxp_path_join(path, "config.json");
    int hf = cfg && clxp_is_file(cfg);
    free(cfg);
    if (hf) return NULL;
    char *first = clxp_path_join(path, "CLAP_weights_2023.pth");
    if (first && msclap_probe_file(first)) return first;
    free(first);
    DIR *d = opendir(path);
    if (!d) return NULL;
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 256)
        if (has_ext(e->d_name, ".pth") || has_ext(e->d_name, ".pt") || has_ext(e->d_name, ".bin") ||
            has_ext(e->d_name, ".safetensors"))
            if ((names[n] = strdup(e->d_name)) != NULL) n++;
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    char *found = NULL;
    for (int i = 0; i < n; i++) {
        char *p = found ? NULL : clxp_path_join(path, names[i]);
        if (p && msclap_probe_file(p)) found = p;
        else free(p);
        free(names[i]);
    }
    return found;
}

/* ---- msclap's YAML (only the few flat keys needed) ------------------------------------------------------------ */

typedef struct {
    double sampling_rate, duration;
    int text_len, n_head; /* 0: absent */
} yaml_vals;

/* Parse "key: value" lines; `section` tracks the last unindented "name:" line without a value. */
static void parse_yaml(const char *buf, size_t len, yaml_vals *v) {
    char section[64] = "", line[512];
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && buf[j] != '\n') j++;
        size_t n = j - i < sizeof line - 1 ? j - i : sizeof line - 1;
        memcpy(line, buf + i, n);
        line[n] = '\0';
        i = j + 1;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        int indent = 0;
        while (line[indent] == ' ' || line[indent] == '\t') indent++;
        char *key = line + indent, *colon = strchr(key, ':');
        if (!*key || !colon) continue;
        *colon = '\0';
        char *val = colon + 1;
        while (*val == ' ' || *val == '\t') val++;
        size_t vl = strlen(val);
        while (vl && isspace((unsigned char)val[vl - 1])) val[--vl] = '\0';
        size_t kl = strlen(key);
        while (kl && isspace((unsigned char)key[kl - 1])) key[--kl] = '\0';
        if (indent == 0) {
            if (!*val) {
                snprintf(section, sizeof section, "%.*s", (int)(sizeof section - 1), key);
                continue;
            }
            section[0] = '\0';
            if (strcmp(key, "sampling_rate") == 0) v->sampling_rate = atof(val);
            else if (strcmp(key, "duration") == 0) v->duration = atof(val);
            else if (strcmp(key, "text_len") == 0) v->text_len = atoi(val);
        } else if (strcmp(section, "gpt2") == 0 && strcmp(key, "n_head") == 0) {
            v->n_head = atoi(val);
        }
    }
}

/* The first (by name) *.yml / *.yaml of dir that mentions audioenc_name. Returns 1 when one was read. */
static int read_yaml(const char *dir, yaml_vals *v, char *used, size_t used_cap) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 256) {
        size_t l = strlen(e->d_name);
        if ((l > 4 && strcmp(e->d_name + l - 4, ".yml") == 0) || (l > 5 && strcmp(e->d_name + l - 5, ".yaml") == 0))
            if ((names[n] = strdup(e->d_name)) != NULL) n++;
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    int found = 0;
    for (int i = 0; i < n; i++) {
        char *p = clxp_path_join(dir, names[i]), *buf = NULL;
        size_t len = 0;
        clxp_error ignore;
        if (!found && p && clxp_is_file(p) && clxp_read_file(p, MAX_YAML_BYTES, &buf, &len, &ignore) == CLXP_OK) {
            if (strstr(buf, "audioenc_name")) {
                parse_yaml(buf, len, v);
                snprintf(used, used_cap, "%s", p);
                found = 1;
            }
            free(buf);
        }
        free(p);
        free(names[i]);
    }
    return found;
}

/* ---- configuration from the shapes ---------------------------------------------------------------------------- */

static clxp_status infer_config(msclap_model *m, const char *yaml_dir, clxp_error *err) {
    msclap_config *c = &m->cfg;
    const char *src = m->source;
    const st_tensor *pw = find(m, PRE_A ".patch_embed.proj.weight");
    if (!pw || pw->ndim != 4 || pw->shape[1] != 1 || pw->shape[2] != pw->shape[3] || pw->shape[2] < 1)
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: patch_embed.proj.weight is not [E, 1, p, p]", src);
    c->embed_dim = (int)pw->shape[0];
    c->patch = (int)pw->shape[2];
    c->mels = (int)dim_of(find(m, PRE_A ".bn0.weight"), 0);
    c->spec_size = 256; /* HTSAT_Swin_Transformer's default, which msclap uses */
    c->mlp_ratio = 4;
    c->n_stages = 0;
    c->window = 0;
    while (c->n_stages < MSCLAP_MAX_STAGES && findf(m, PRE_A ".layers.%d.blocks.0.norm1.weight", c->n_stages)) {
        int s = c->n_stages, depth = 0;
        while (depth < 64 && findf(m, PRE_A ".layers.%d.blocks.%d.norm1.weight", s, depth)) depth++;
        const st_tensor *tb = findf(m, PRE_A ".layers.%d.blocks.0.attn.relative_position_bias_table", s);
        if (!tb || tb->ndim != 2)
            return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: layers.%d.blocks.0.attn.relative_position_bias_table missing",
                                src, s);
        int side = (int)lround(sqrt((double)tb->shape[0]));
        if (side * side != tb->shape[0] || side % 2 == 0)
            return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: relative_position_bias_table has %lld rows, not (2w-1)^2", src,
                                (long long)tb->shape[0]);
        int ws = (side + 1) / 2;
        if (s == 0) c->window = ws;
        c->depths[s] = depth;
        c->heads[s] = (int)tb->shape[1];
        c->n_stages++;
    }
    if (c->n_stages == 0 || c->mels <= 0)
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: no HTS-AT layers or bn0 in the checkpoint", src);
    /* the first shifted mask tells the grid: [nW, ws^2, ws^2], nW = (res0 / ws)^2 */
    const st_tensor *mk = find(m, PRE_A ".layers.0.blocks.1.attn_mask");
    if (mk && mk->ndim == 3 && c->window > 0) {
        int g = (int)lround(sqrt((double)mk->shape[0]));
        if (g * g == mk->shape[0]) c->spec_size = g * c->window * c->patch;
    }
    c->out_emb = (int)dim_of(find(m, PRE_A ".norm.weight"), 0);
    c->d_proj = (int)dim_of(find(m, "audio_encoder.projection.linear1.weight"), 0);
    const st_tensor *wte = find(m, PRE_T ".wte.weight"), *wpe = find(m, PRE_T ".wpe.weight");
    c->vocab = (int)dim_of(wte, 0);
    c->n_embd = (int)dim_of(wte, 1);
    c->n_positions = (int)dim_of(wpe, 0);
    c->n_layer = 0;
    while (c->n_layer < 1024 && findf(m, PRE_T ".h.%d.ln_1.weight", c->n_layer)) c->n_layer++;
    c->n_inner = (int)dim_of(find(m, PRE_T ".h.0.mlp.c_fc.weight"), 1);
    if (c->vocab <= 0 || c->n_embd <= 0 || c->n_positions <= 0 || c->n_layer == 0 || c->n_inner <= 0 ||
        c->out_emb <= 0 || c->d_proj <= 0)
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: incomplete MS-CLAP state dict (GPT-2, norm or projection missing)",
                            src);
    msclap_fe_config_defaults(&c->fe);
    c->fe.mels = c->mels;
    c->text_len = 77;
    yaml_vals y = {0};
    char ypath[4096] = "";
    if (read_yaml(yaml_dir, &y, ypath, sizeof ypath)) {
        if (y.sampling_rate > 0) {
            if (y.sampling_rate < 1000 || y.sampling_rate > 384000 || y.sampling_rate != floor(y.sampling_rate))
                return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: sampling_rate %g is not usable", ypath, y.sampling_rate);
            c->fe.sample_rate = (int)y.sampling_rate;
        }
        if (y.duration > 0) {
            double n = y.duration * c->fe.sample_rate;
            if (n < c->fe.fft || n > (1 << 26))
                return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: duration %g is not usable", ypath, y.duration);
            c->fe.window_samples = (int)n; /* int(duration * sampling_rate) */
        } else {
            c->fe.window_samples = 7 * c->fe.sample_rate;
        }
        if (y.text_len > 0) c->text_len = y.text_len;
        if (y.n_head > 0) {
            c->n_head = y.n_head;
            c->n_head_from_yaml = 1;
        }
        clxp_log(CLXP_LOG_INFO, "%s: MS-CLAP settings from %s", src, ypath);
    }
    if (!c->n_head) {
        if (c->n_embd % 64)
            return clxp_err_set(err, CLXP_ERR_UNSUPPORTED,
                                "%s: GPT-2 width %d is not a multiple of 64: its head count is not in the weights; put "
                                "msclap's config YAML with gpt2: n_head: N next to the checkpoint",
                                src, c->n_embd);
        c->n_head = c->n_embd / 64;
    }
    if (c->n_embd % c->n_head)
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: GPT-2 width %d is not divisible by %d heads", src, c->n_embd,
                            c->n_head);
    if (c->text_len < 2 || c->text_len > c->n_positions)
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: text_len %d outside [2, %d]", src, c->text_len, c->n_positions);
    /* the grid must halve cleanly down to the last stage and hold whole windows */
    if (c->window < 1 || c->spec_size % c->patch || c->spec_size % c->mels || c->spec_size / c->mels < 1)
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: unsupported HTS-AT geometry", src);
    int res = c->spec_size / c->patch;
    for (int s = 0; s < c->n_stages; s++) {
        int ws = res <= c->window ? res : c->window;
        if (res % ws || (s < c->n_stages - 1 && res % 2) || c->heads[s] < 1 ||
            ((c->embed_dim << s) % c->heads[s]) != 0)
            return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: unsupported HTS-AT geometry at stage %d", src, s);
        if (s < c->n_stages - 1) res /= 2;
    }
    if ((c->embed_dim << (c->n_stages - 1)) != c->out_emb)
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: HTS-AT final width %d, expected %d", src, c->out_emb,
                            c->embed_dim << (c->n_stages - 1));
    return CLXP_OK;
}

/* ---- loading -------------------------------------------------------------------------------------------------- */

/* A Conv1D weight [in, out] transposed to [out, in] (owned). */
static float *get_conv1d(loader *L, int64_t in, int64_t out, const char *fmt, int i) {
    const float *w = get(L, D2(in, out), fmt, i);
    float *t = own(L, (size_t)(in * out));
    if (L->st != CLXP_OK) return NULL;
    for (int64_t r = 0; r < in; r++)
        for (int64_t c = 0; c < out; c++) t[c * in + r] = w[r * out + c];
    return t;
}

/* A stored buffer (relative_position_index, attn_mask), when present, must equal the computed one. */
static void check_rel_index(loader *L, int s, int b, int ws) {
    if (L->st != CLXP_OK) return;
    const st_tensor *t = findf(L->m, PRE_A ".layers.%d.blocks.%d.attn.relative_position_index", s, b);
    if (!t) return;
    const int64_t N = (int64_t)ws * ws;
    int ok = t->ndim == 2 && t->shape[0] == N && t->shape[1] == N && t->dtype == ST_I64;
    for (int64_t i = 0; ok && i < N * N; i++) {
        int64_t v;
        memcpy(&v, (const char *)t->data + 8 * i, 8);
        ok = v == swin_relative_index(ws, (int)(i / N), (int)(i % N));
    }
    if (!ok)
        L->st = clxp_err_set(L->err, CLXP_ERR_UNSUPPORTED,
                             "%s: layers.%d.blocks.%d.attn.relative_position_index is not the standard %dx%d index",
                             L->m->source, s, b, ws, ws);
}

static void check_mask(loader *L, int s, int b, const float *mask, int64_t nW, int64_t N) {
    if (L->st != CLXP_OK) return;
    const st_tensor *t = findf(L->m, PRE_A ".layers.%d.blocks.%d.attn_mask", s, b);
    if (!t) return;
    const float *p = get(L, D3(nW, N, N), PRE_A ".layers.%d.blocks.%d.attn_mask", s, b);
    if (!p) return;
    for (int64_t i = 0; i < nW * N * N; i++)
        if (p[i] != (mask ? mask[i] : 0.0f)) {
            L->st = clxp_err_set(L->err, CLXP_ERR_UNSUPPORTED,
                                 "%s: layers.%d.blocks.%d.attn_mask is not the standard shifted-window mask",
                                 L->m->source, s, b);
            return;
        }
}

static void load_proj(loader *L, const char *pre, int64_t in, msclap_proj *p) {
    const int64_t P = L->m->cfg.d_proj;
    p->w1 = get(L, D2(P, in), "%s.projection.linear1.weight", pre);
    p->w2 = get(L, D2(P, P), "%s.projection.linear2.weight", pre);
    p->ln_w = get(L, D1(P), "%s.projection.layer_norm.weight", pre);
    p->ln_b = get(L, D1(P), "%s.projection.layer_norm.bias", pre);
}

static void load_audio(loader *L) {
    msclap_model *m = L->m;
    const msclap_config *c = &m->cfg;
    const int64_t E = c->embed_dim, P = c->patch, Fm = c->mels;
    /* bn0 folded as PyTorch's CPU eval kernel: alpha = invstd * w, beta = b - mean * alpha */
    const float *w = get(L, D1(Fm), PRE_A ".bn0.weight"), *b = get(L, D1(Fm), PRE_A ".bn0.bias");
    const float *mean = get(L, D1(Fm), PRE_A ".bn0.running_mean"), *var = get(L, D1(Fm), PRE_A ".bn0.running_var");
    m->bn_scale = own(L, (size_t)Fm);
    m->bn_shift = own(L, (size_t)Fm);
    for (int64_t i = 0; L->st == CLXP_OK && i < Fm; i++) {
        if (!(var[i] >= 0)) {
            L->st = clxp_err_set(L->err, CLXP_ERR_FORMAT, "%s: bn0.running_var[%lld] = %g is negative", m->source,
                                 (long long)i, (double)var[i]);
            return;
        }
        float invstd = 1.0f / sqrtf(var[i] + LN_EPS);
        m->bn_scale[i] = invstd * w[i];
        m->bn_shift[i] = b[i] - mean[i] * m->bn_scale[i];
    }
    m->patch_w = get(L, D4(E, 1, P, P), PRE_A ".patch_embed.proj.weight");
    m->patch_b = get(L, D1(E), PRE_A ".patch_embed.proj.bias");
    m->patch_ln_w = get(L, D1(E), PRE_A ".patch_embed.norm.weight");
    m->patch_ln_b = get(L, D1(E), PRE_A ".patch_embed.norm.bias");
    int res = c->spec_size / c->patch;
    for (int s = 0; s < c->n_stages && L->st == CLXP_OK; s++) {
        swin_stage *sg = &m->stages[s];
        sg->dim = (int)(E << s);
        sg->res = res;
        sg->heads = c->heads[s];
        sg->depth = c->depths[s];
        sg->mlp = c->mlp_ratio * sg->dim;
        const int single = res <= c->window;
        sg->window = single ? res : c->window;
        const int64_t D = sg->dim, ws = sg->window, N = ws * ws, nW = (res / ws) * (res / ws);
        sg->blocks = calloc((size_t)sg->depth, sizeof *sg->blocks);
        if (!sg->blocks) {
            L->st = clxp_err_set(L->err, CLXP_ERR_NOMEM, "out of memory");
            return;
        }
        for (int i = 0; i < sg->depth && L->st == CLXP_OK; i++) {
            swin_block *bk = &sg->blocks[i];
            char p[128];
            snprintf(p, sizeof p, PRE_A ".layers.%d.blocks.%d", s, i);
            bk->shift = (i % 2 == 1 && !single) ? c->window / 2 : 0;
            bk->ln1_w = get(L, D1(D), "%s.norm1.weight", p);
            bk->ln1_b = get(L, D1(D), "%s.norm1.bias", p);
            bk->qkv_w = get(L, D2(3 * D, D), "%s.attn.qkv.weight", p);
            bk->qkv_b = get(L, D1(3 * D), "%s.attn.qkv.bias", p);
            bk->o_w = get(L, D2(D, D), "%s.attn.proj.weight", p);
            bk->o_b = get(L, D1(D), "%s.attn.proj.bias", p);
            bk->ln2_w = get(L, D1(D), "%s.norm2.weight", p);
            bk->ln2_b = get(L, D1(D), "%s.norm2.bias", p);
            bk->fc1_w = get(L, D2(sg->mlp, D), "%s.mlp.fc1.weight", p);
            bk->fc1_b = get(L, D1(sg->mlp), "%s.mlp.fc1.bias", p);
            bk->fc2_w = get(L, D2(D, sg->mlp), "%s.mlp.fc2.weight", p);
            bk->fc2_b = get(L, D1(D), "%s.mlp.fc2.bias", p);
            const float *table =
                get(L, D2((2 * ws - 1) * (2 * ws - 1), sg->heads), "%s.attn.relative_position_bias_table", p);
            check_rel_index(L, s, i, (int)ws);
            if (L->st != CLXP_OK) break;
            bk->bias = malloc((size_t)(sg->heads * N * N) * sizeof *bk->bias);
            if (!bk->bias) {
                L->st = clxp_err_set(L->err, CLXP_ERR_NOMEM, "out of memory");
                break;
            }
            swin_expand_bias(table, (int)ws, sg->heads, bk->bias);
            if (bk->shift && !sg->mask) {
                sg->mask = malloc((size_t)(nW * N * N) * sizeof *sg->mask);
                if (!sg->mask) {
                    L->st = clxp_err_set(L->err, CLXP_ERR_NOMEM, "out of memory");
                    break;
                }
                swin_shift_mask(res, res, (int)ws, bk->shift, sg->mask);
            }
            check_mask(L, s, i, bk->shift ? sg->mask : NULL, nW, N);
        }
        if (s < c->n_stages - 1) {
            sg->merge_ln_w = get(L, D1(4 * D), PRE_A ".layers.%d.downsample.norm.weight", s);
            sg->merge_ln_b = get(L, D1(4 * D), PRE_A ".layers.%d.downsample.norm.bias", s);
            sg->merge_w = get(L, D2(2 * D, 4 * D), PRE_A ".layers.%d.downsample.reduction.weight", s);
            res /= 2;
        }
        swin_stage_init_matrices(sg);
    }
    m->norm_w = get(L, D1(c->out_emb), PRE_A ".norm.weight");
    m->norm_b = get(L, D1(c->out_emb), PRE_A ".norm.bias");
    load_proj(L, "audio_encoder", c->out_emb, &m->aproj);
}

static void load_text(loader *L) {
    msclap_model *m = L->m;
    const msclap_config *c = &m->cfg;
    const int64_t D = c->n_embd, I = c->n_inner;
    m->wte = get(L, D2(c->vocab, D), PRE_T ".wte.weight");
    m->wpe = get(L, D2(c->n_positions, D), PRE_T ".wpe.weight");
    if (L->st != CLXP_OK) return;
    m->tl = calloc((size_t)c->n_layer, sizeof *m->tl);
    if (!m->tl) {
        L->st = clxp_err_set(L->err, CLXP_ERR_NOMEM, "out of memory");
        return;
    }
    for (int i = 0; i < c->n_layer && L->st == CLXP_OK; i++) {
        msclap_gpt2_layer *l = &m->tl[i];
        l->ln1_w = get(L, D1(D), PRE_T ".h.%d.ln_1.weight", i);
        l->ln1_b = get(L, D1(D), PRE_T ".h.%d.ln_1.bias", i);
        l->attn_w = get_conv1d(L, D, 3 * D, PRE_T ".h.%d.attn.c_attn.weight", i);
        l->attn_b = get(L, D1(3 * D), PRE_T ".h.%d.attn.c_attn.bias", i);
        l->aproj_w = get_conv1d(L, D, D, PRE_T ".h.%d.attn.c_proj.weight", i);
        l->aproj_b = get(L, D1(D), PRE_T ".h.%d.attn.c_proj.bias", i);
        l->ln2_w = get(L, D1(D), PRE_T ".h.%d.ln_2.weight", i);
        l->ln2_b = get(L, D1(D), PRE_T ".h.%d.ln_2.bias", i);
        l->fc_w = get_conv1d(L, D, I, PRE_T ".h.%d.mlp.c_fc.weight", i);
        l->fc_b = get(L, D1(I), PRE_T ".h.%d.mlp.c_fc.bias", i);
        l->mproj_w = get_conv1d(L, I, D, PRE_T ".h.%d.mlp.c_proj.weight", i);
        l->mproj_b = get(L, D1(D), PRE_T ".h.%d.mlp.c_proj.bias", i);
    }
    m->lnf_w = get(L, D1(D), PRE_T ".ln_f.weight");
    m->lnf_b = get(L, D1(D), PRE_T ".ln_f.bias");
    load_proj(L, "caption_encoder", D, &m->tproj);
}

static void load_frontend(loader *L) {
    msclap_model *m = L->m;
    const msclap_config *c = &m->cfg;
    const int64_t K = c->fe.fft / 2 + 1, N = c->fe.fft;
    const float *melW = NULL, *kr = NULL, *ki = NULL;
    if (find(m, PRE_A ".logmel_extractor.melW")) melW = get(L, D2(K, c->mels), PRE_A ".logmel_extractor.melW");
    if (find(m, PRE_A ".spectrogram_extractor.stft.conv_real.weight") ||
        find(m, PRE_A ".spectrogram_extractor.stft.conv_imag.weight")) {
        kr = get(L, D3(K, 1, N), PRE_A ".spectrogram_extractor.stft.conv_real.weight");
        ki = get(L, D3(K, 1, N), PRE_A ".spectrogram_extractor.stft.conv_imag.weight");
    }
    if (L->st != CLXP_OK) return;
    L->st = msclap_fe_create(&c->fe, melW, kr, ki, &m->fe, L->err);
    if (L->st == CLXP_OK && kr && !msclap_fe_uses_fft(m->fe))
        clxp_log(CLXP_LOG_WARN, "%s: non-standard STFT kernels; computing the spectrogram with them directly (slow)",
                 m->source);
}

static void summarize(msclap_model *m) {
    int n = m->tf ? torch_count(m->tf) : st_count(m->sf);
    const char *d = NULL;
    m->n_params = 0;
    for (int i = 0; i < n; i++) {
        const st_tensor *t = m->tf ? torch_at(m->tf, i) : st_at(m->sf, i);
        if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 && t->dtype != ST_F64) continue;
        m->n_params += t->numel;
        const char *x = st_dtype_name(t->dtype);
        if (!d) d = x;
        else if (strcmp(d, x) != 0) d = "mixed";
    }
    m->dtype = d ? d : "none";
}

/* Every linear layer's matrix, or their number (out NULL / cap 0). */
static int model_matrices(void *model, nn_matrix **out, int cap) {
    msclap_model *m = model;
    int n = 0;
    if (cap > 0) out[0] = &m->patch;
    n++;
    for (int s = 0; s < m->cfg.n_stages && s < MSCLAP_MAX_STAGES; s++) n = swin_stage_matrices(&m->stages[s], out, n, cap);
    for (int i = 0; m->tl && i < m->cfg.n_layer; i++) {
        nn_matrix *l4[4] = {&m->tl[i].attn, &m->tl[i].aproj, &m->tl[i].fc, &m->tl[i].mproj};
        for (int k = 0; k < 4; k++, n++)
            if (n < cap) out[n] = l4[k];
    }
    return n;
}

/* After loading: every matrix refers to its fp32 weight. */
static void init_matrices(msclap_model *m) {
    const msclap_config *c = &m->cfg;
    m->patch = nn_matrix_plain(m->patch_w, c->embed_dim, c->patch * c->patch);
    for (int i = 0; i < c->n_layer; i++) {
        msclap_gpt2_layer *l = &m->tl[i];
        l->attn = nn_matrix_plain(l->attn_w, 3 * c->n_embd, c->n_embd);
        l->aproj = nn_matrix_plain(l->aproj_w, c->n_embd, c->n_embd);
        l->fc = nn_matrix_plain(l->fc_w, c->n_inner, c->n_embd);
        l->mproj = nn_matrix_plain(l->mproj_w, c->n_embd, c->n_inner);
    }
}

/* Free one of the model's owned buffers (and forget it). */
static void drop_owned(msclap_model *m, float **p) {
    for (int i = 0; *p && i < m->n_owned; i++)
        if (m->owned[i] == *p) {
            free(m->owned[i]);
            m->owned[i] = NULL;
        }
    *p = NULL;
}

clxp_status msclap_model_pack(msclap_model *m, nn_precision prec, clxp_error *err) {
    if (m->packed) return clxp_err_set(err, CLXP_ERR_INTERNAL, "msclap_model_pack: already packed");
    clxp_status st = nn_matrices_pack(model_matrices, m, &m->eng, prec, err);
    if (st != CLXP_OK) return st;
    for (int s = 0; s < m->cfg.n_stages; s++) swin_stage_drop_fp32(&m->stages[s]);
    for (int i = 0; i < m->cfg.n_layer; i++) { /* the transposed GPT-2 copies */
        msclap_gpt2_layer *l = &m->tl[i];
        drop_owned(m, &l->attn_w);
        drop_owned(m, &l->aproj_w);
        drop_owned(m, &l->fc_w);
        drop_owned(m, &l->mproj_w);
    }
    m->packed = 1;
    return CLXP_OK;
}

clxp_status msclap_model_load(const char *path, const char *yaml_dir, msclap_model **out, clxp_error *err) {
    *out = NULL;
    msclap_model *m = calloc(1, sizeof *m);
    if (!m || !(m->source = strdup(path))) {
        free(m);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    /* the format from the content: a zip ("PK") is a torch checkpoint, anything else is tried as safetensors */
    unsigned char magic[2] = {0, 0};
    FILE *fp = fopen(path, "rb");
    clxp_status st = CLXP_OK;
    if (!fp) st = clxp_err_set(err, CLXP_ERR_IO, "%s: cannot open", path);
    else {
        size_t got = fread(magic, 1, 2, fp);
        fclose(fp);
        if (got == 2 && magic[0] == 'P' && magic[1] == 'K') {
            m->format = "pth";
            st = torch_open(path, &m->tf, err);
            if (st == CLXP_OK && !msclap_torch_is_msclap(m->tf))
                st = clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: not an MS-CLAP checkpoint (a %s without %s)", path,
                                  torch_kind(m->tf), PRE_T ".wte.weight");
        } else {
            m->format = "safetensors";
            st = st_open(path, &m->sf, err);
            if (st == CLXP_OK && !msclap_st_is_msclap(m->sf))
                st = clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: not an MS-CLAP checkpoint (no %s)", path,
                                  PRE_T ".wte.weight");
            if (st == CLXP_OK) m->converted_from = st_metadata(m->sf, "converted_from");
        }
    }
    char *dir = NULL;
    if (st == CLXP_OK && !yaml_dir) {
        dir = strdup(path);
        if (!dir) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
        else {
            char *slash = strrchr(dir, '/');
            if (slash == dir) slash[1] = '\0';
            else if (slash) *slash = '\0';
            else strcpy(dir, ".");
            yaml_dir = dir;
        }
    }
    if (st == CLXP_OK) st = infer_config(m, yaml_dir, err);
    free(dir);
    if (st == CLXP_OK) {
        loader L = {m, err, CLXP_OK};
        load_audio(&L);
        load_text(&L);
        const float *ls = get(&L, D0, "logit_scale");
        if (L.st == CLXP_OK && (!isfinite(ls[0]) || ls[0] > 100.0f))
            L.st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: logit_scale %g is not a usable value", path, (double)ls[0]);
        if (L.st == CLXP_OK) m->logit_scale = ls[0];
        load_frontend(&L);
        st = L.st;
    }
    if (st != CLXP_OK) {
        msclap_model_free(m);
        return st;
    }
    init_matrices(m);
    summarize(m);
    *out = m;
    return CLXP_OK;
}

void msclap_model_free(msclap_model *m) {
    if (!m) return;
    nn_matrices_release(model_matrices, m);
    nn_engine_free(m->eng);
    for (int s = 0; s < MSCLAP_MAX_STAGES; s++) {
        swin_stage *sg = &m->stages[s];
        swin_stage_free(sg);
    }
    free(m->tl);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    msclap_fe_free(m->fe);
    if (m->tf) torch_close(m->tf);
    if (m->sf) st_close(m->sf);
    free(m->source);
    free(m);
}

/* ---- GPT-2's tokenizer, converted directories ------------------------------------------------------------------ */

clxp_status msclap_tokenizer_load(const msclap_model *m, const char *tokenizer, clxp_tokenizer **out, char **path_out,
                                  clxp_error *err) {
    *out = NULL;
    if (path_out) *path_out = NULL;
    char *path = NULL;
    if (tokenizer) {
        path = strdup(tokenizer);
    } else {
        char *dir = strdup(m->source), *slash = dir ? strrchr(dir, '/') : NULL;
        if (slash) *slash = '\0';
        path = dir ? clxp_path_join(slash ? dir : ".", "tokenizer.json") : NULL;
        free(dir);
    }
    if (!path) return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    clxp_status st;
    if (!clxp_is_file(path))
        st = clxp_err_set(err, CLXP_ERR_IO,
                          "%s: missing: MS-CLAP needs GPT-2's tokenizer.json (Hugging Face 'gpt2') next to the "
                          "checkpoint or given with --tokenizer",
                          path);
    else st = tok_load(path, out, err);
    int pad = -1;
    if (st == CLXP_OK) st = tok_add_special_token(*out, "!", &pad, err);
    if (st == CLXP_OK && (pad != 0 || tok_vocab_size(*out) > m->cfg.vocab))
        st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: not GPT-2's tokenizer ('!' is id %d, %d tokens; the model has %d)",
                          path, pad, tok_vocab_size(*out), m->cfg.vocab);
    if (st != CLXP_OK) {
        tok_free(*out);
        *out = NULL;
        free(path);
        return st;
    }
    if (path_out) *path_out = path;
    else free(path);
    return CLXP_OK;
}

/* msclap's config YAML with the settings in force (parse_yaml reads them back) and informative sizes. */
static char *make_yaml(const msclap_model *m) {
    const msclap_config *c = &m->cfg;
    const int sr = c->fe.sample_rate, ws = c->fe.window_samples;
    double dur = (double)ws / sr; /* read back as (int)(duration * sampling_rate): make that exact */
    for (int k = 0; k < 8 && (int)(dur * sr) < ws; k++) dur = nextafter(dur, INFINITY);
    char src[512];
    snprintf(src, sizeof src, "%s", m->source);
    for (char *p = src; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    char depths[128] = "", heads[128] = "";
    size_t ld = 0, lh = 0;
    for (int s = 0; s < c->n_stages; s++) {
        ld += (size_t)snprintf(depths + ld, sizeof depths - ld, "%s%d", s ? ", " : "", c->depths[s]);
        lh += (size_t)snprintf(heads + lh, sizeof heads - lh, "%s%d", s ? ", " : "", c->heads[s]);
    }
    const char *fmt =
        "# MS-CLAP 2023 settings for model.safetensors, written by clxp convert from %s.\n"
        "# msclap's config YAML format (config_2023.yml). clxp reads sampling_rate, duration, text_len and\n"
        "# gpt2: n_head (GPT-2's head count is in no tensor shape: %s); the other sizes are\n"
        "# informative (clxp takes them from the tensor shapes).\n"
        "text_model: 'gpt2'\n"
        "text_len: %d\n"
        "transformer_embed_dim: %d\n"
        "audioenc_name: 'HTSAT'\n"
        "out_emb: %d\n"
        "sampling_rate: %d\n"
        "duration: %.17g\n"
        "mel_bins: %d\n"
        "d_proj: %d\n"
        "htsat:\n"
        "  spec_size: %d\n"
        "  patch_size: %d\n"
        "  embed_dim: %d\n"
        "  depths: [%s]\n"
        "  num_heads: [%s]\n"
        "  window_size: %d\n"
        "gpt2:\n"
        "  vocab_size: %d\n"
        "  n_positions: %d\n"
        "  n_embd: %d\n"
        "  n_layer: %d\n"
        "  n_head: %d\n"
        "  n_inner: %d\n";
    const char *how = c->n_head_from_yaml ? "taken from the source's YAML" : "inferred as n_embd / 64";
    size_t cap = strlen(fmt) + sizeof src + sizeof depths + sizeof heads + 64 + 20 * 24;
    char *y = malloc(cap);
    if (y)
        snprintf(y, cap, fmt, src, how, c->text_len, c->n_embd, c->out_emb, sr, dur, c->mels, c->d_proj, c->spec_size,
                 c->patch, c->embed_dim, depths, heads, c->window, c->vocab, c->n_positions, c->n_embd, c->n_layer,
                 c->n_head, c->n_inner);
    return y;
}

clxp_status msclap_write_dir(const msclap_model *m, const char *tokenizer, const char *dir, clxp_error *err) {
    const int n = m->tf ? torch_count(m->tf) : st_count(m->sf);
    st_write_tensor *wt = calloc((size_t)n + 1, sizeof *wt);
    char *wpath = clxp_path_join(dir, "model.safetensors"), *ypath = clxp_path_join(dir, "msclap_config.yml");
    char *tpath = clxp_path_join(dir, "tokenizer.json"), *yaml = make_yaml(m), *tok = NULL;
    size_t tlen = 0;
    clxp_status st = wt && wpath && ypath && tpath && yaml ? CLXP_OK : clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    if (st == CLXP_OK) st = clxp_read_file(tokenizer, CLXP_MAX_JSON_BYTES, &tok, &tlen, err);
    if (st == CLXP_OK) {
        for (int i = 0; i < n; i++) {
            const st_tensor *t = m->tf ? torch_at(m->tf, i) : st_at(m->sf, i);
            wt[i] = (st_write_tensor){t->name, t->dtype, t->ndim, t->shape, t->data};
        }
        const st_write_meta meta[2] = {{"format", "pt"}, {"converted_from", m->source}};
        st = st_write(wpath, wt, n, meta, 2, err);
    }
    if (st == CLXP_OK) st = clxp_write_file_atomic(ypath, yaml, strlen(yaml), err);
    if (st == CLXP_OK) st = clxp_write_file_atomic(tpath, tok, tlen, err);
    free(wt);
    free(wpath);
    free(ypath);
    free(tpath);
    free(yaml);
    free(tok);
    return st;
}

int msclap_max_frames(const msclap_model *m) { return m->cfg.spec_size * (m->cfg.spec_size / m->cfg.mels); }

float msclap_logit_scale(const msclap_model *m) { return expf(m->logit_scale); }

int msclap_pooled_index(const int32_t *ids, int T) {
    int n = 0;
    for (int t = 0; t < T; t++) n += ids[t] != 0;
    return n - 1;
}

/* ---- forward helpers ------------------------------------------------------------------------------------------ */

static void emit(clap_hook hook, void *ctx, const char *name, const float *data, int ndim, int64_t d0, int64_t d1,
                 int64_t d2, int64_t d3) {
    if (!hook) return;
    int64_t shape[4] = {d0, d1, d2, d3};
    hook(ctx, name, data, ndim, shape);
}

/* Projection: out = LN(e1 + linear2(gelu(e1))), e1 = linear1(x); e1s: [B, P] receives e1; tmp: [2 B P]. */
static clxp_status projection(const msclap_model *m, const msclap_proj *p, const float *x, int B, int K, float *e1,
                              float *tmp, float *out, clxp_error *err) {
    const int P = m->cfg.d_proj;
    clxp_status st = nn_linear(x, B, K, p->w1, NULL, P, e1, 0, err);
    if (st != CLXP_OK) return st;
    float *g = tmp, *sum = tmp + (size_t)B * P;
    memcpy(g, e1, (size_t)B * P * sizeof *g);
    nn_activation(g, (size_t)B * P, NN_ACT_GELU);
    memcpy(sum, e1, (size_t)B * P * sizeof *sum);
    if ((st = nn_linear(g, B, P, p->w2, NULL, P, sum, 1, err)) != CLXP_OK) return st;
    nn_layernorm(sum, B, P, p->ln_w, p->ln_b, LN_EPS, out);
    return CLXP_OK;
}

/* ---- audio tower ---------------------------------------------------------------------------------------------- */

clxp_status msclap_encode_features(msclap_model *m, const float *features, int B, int T, float *embeds, clap_hook hook,
                                   void *ctx, clxp_error *err) {
    const msclap_config *c = &m->cfg;
    const int Fm = c->mels, S = c->spec_size, ratio = S / Fm, Tw = S * ratio, P = c->patch, G = S / P, N0 = G * G;
    const int E = c->embed_dim;
    if (B <= 0) return CLXP_OK;
    if (T < 1 || T > Tw) return clxp_err_set(err, CLXP_ERR_INVALID, "%d feature frames outside [1, %d]", T, Tw);
    size_t mlp_n = (size_t)B * N0 * m->stages[0].mlp, work_n = 0;
    for (int s = 0; s < c->n_stages; s++) {
        const swin_stage *sg = &m->stages[s];
        size_t w = swin_attention_work_size(sg->window * sg->window, sg->dim / sg->heads);
        if (w > work_n) work_n = w;
    }
    const size_t map0 = (size_t)B * N0 * E, img = (size_t)B * S * S;
    const size_t sz_a = img > (size_t)B * T * Fm ? img : (size_t)B * T * Fm;
    const size_t small_n = (size_t)B * (c->out_emb + 3 * c->d_proj);
    float *bufa = malloc(sz_a * sizeof(float)), *bufb = malloc(img * sizeof(float));
    float *x = malloc(map0 * sizeof(float)), *h = malloc(map0 * sizeof(float)), *att = malloc(map0 * sizeof(float));
    float *qkv = malloc(3 * map0 * sizeof(float)), *mlpb = malloc(mlp_n * sizeof(float));
    float *work = malloc((work_n ? work_n : 1) * sizeof(float)), *small = malloc(small_n * sizeof(float));
    clxp_status st = CLXP_OK;
    if (!bufa || !bufb || !x || !h || !att || !qkv || !mlpb || !work || !small) {
        st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory for the MS-CLAP audio tower");
        goto done;
    }
    /* 1. bn0 over the mel bins */
    for (size_t r = 0; r < (size_t)B * T; r++)
        for (int f = 0; f < Fm; f++)
            bufa[r * Fm + f] = features[r * Fm + f] * m->bn_scale[f] + m->bn_shift[f];
    emit(hook, ctx, "audio.bn0_output", bufa, 4, B, 1, T, Fm);
    /* 2. reshape_wav2img: T -> Tw frames (bicubic align_corners=True), folded to S x S */
    for (int b = 0; b < B; b++) {
        if (T == Tw) memcpy(bufb + (size_t)b * Tw * Fm, bufa + (size_t)b * T * Fm, (size_t)Tw * Fm * sizeof *bufb);
        else nn_interp_rows_bicubic_ac(bufa + (size_t)b * T * Fm, T, Fm, bufb + (size_t)b * Tw * Fm, Tw);
    }
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int row = 0; row < S; row++) {
            const int chunk = row / Fm, f = row % Fm;
            const float *src = bufb + (size_t)b * Tw * Fm + (size_t)chunk * S * Fm + f;
            float *o = bufa + (size_t)b * S * S + (size_t)row * S;
            for (int t = 0; t < S; t++) o[t] = src[(size_t)t * Fm];
        }
    emit(hook, ctx, "audio.mel2img", bufa, 4, B, 1, S, S);
    /* 3. patch embedding (im2col + GEMM) + LayerNorm */
    {
        float *colb = bufb; /* B * N0 * P * P = B * S * S floats */
#pragma omp parallel for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int gy = 0; gy < G; gy++)
                for (int gx = 0; gx < G; gx++) {
                    float *d = colb + (((size_t)b * G + gy) * G + gx) * P * P;
                    const float *s0 = bufa + (size_t)b * S * S + (size_t)gy * P * S + (size_t)gx * P;
                    for (int ky = 0; ky < P; ky++) memcpy(d + (size_t)ky * P, s0 + (size_t)ky * S, (size_t)P * sizeof *d);
                }
        if ((st = nn_linear_m(&m->patch, colb, B * N0, m->patch_b, x, 0, err)) != CLXP_OK) goto done;
        nn_layernorm(x, B * N0, E, m->patch_ln_w, m->patch_ln_b, LN_EPS, x);
    }
    emit(hook, ctx, "audio.hidden_states.0", x, 3, B, N0, E, 0);
    /* 4. Swin stages */
    char name[80];
    for (int s = 0; s < c->n_stages; s++) {
        const swin_stage *sg = &m->stages[s];
        const int R = sg->res, D = sg->dim;
        if ((st = swin_stage_blocks(sg, B, LN_EPS, NN_ACT_GELU, x, h, att, qkv, mlpb, work, err)) != CLXP_OK) goto done;
        if (sg->merge_w) {
            snprintf(name, sizeof name, "audio.hidden_states_before_downsampling.%d", s + 1);
            emit(hook, ctx, name, x, 3, B, (int64_t)R * R, D, 0);
            if ((st = swin_stage_merge(sg, B, LN_EPS, x, h, err)) != CLXP_OK) goto done;
            snprintf(name, sizeof name, "audio.hidden_states.%d", s + 1);
            emit(hook, ctx, name, x, 3, B, (int64_t)(R / 2) * (R / 2), 2 * D, 0);
        } else {
            snprintf(name, sizeof name, "audio.hidden_states.%d", s + 1);
            emit(hook, ctx, name, x, 3, B, (int64_t)R * R, D, 0);
        }
    }
    /* 5. final LayerNorm, mean over the tokens, projection */
    {
        const swin_stage *last = &m->stages[c->n_stages - 1];
        const int NL = last->res * last->res, Dl = c->out_emb;
        nn_layernorm(x, B * NL, Dl, m->norm_w, m->norm_b, LN_EPS, h);
        emit(hook, ctx, "audio.norm_output", h, 3, B, NL, Dl, 0);
        float *lat = small, *e1 = small + (size_t)B * Dl, *tmp = e1 + (size_t)B * c->d_proj;
        for (int b = 0; b < B; b++)
            for (int k = 0; k < Dl; k++) {
                double acc = 0;
                for (int p = 0; p < NL; p++) acc += h[((size_t)b * NL + p) * Dl + k];
                lat[(size_t)b * Dl + k] = (float)(acc / NL);
            }
        emit(hook, ctx, "audio.latent_output", lat, 2, B, Dl, 0, 0);
        if ((st = projection(m, &m->aproj, lat, B, Dl, e1, tmp, embeds, err)) != CLXP_OK) goto done;
        emit(hook, ctx, "audio.projection.linear1", e1, 2, B, c->d_proj, 0, 0);
        emit(hook, ctx, "audio_embeds_unnormalized", embeds, 2, B, c->d_proj, 0, 0);
    }
done:
    free(bufa);
    free(bufb);
    free(x);
    free(h);
    free(att);
    free(qkv);
    free(mlpb);
    free(work);
    free(small);
    return st;
}

/* ---- text tower ----------------------------------------------------------------------------------------------- */

/* transformers' NewGELUActivation (gelu_new): 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))), float32 ops. */
static void gelu_new(float *x, size_t n) {
    const float k = 0.7978845608028654f; /* math.sqrt(2.0 / math.pi) */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        float cube = v * v * v; /* torch.pow(x, 3.0) */
        x[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * cube)));
    }
}

clxp_status msclap_encode_tokens(msclap_model *m, const int32_t *ids, const int32_t *mask, int B, int T, float *embeds,
                                 clap_hook hook, void *ctx, clxp_error *err) {
    const msclap_config *c = &m->cfg;
    const int D = c->n_embd, I = c->n_inner, H = c->n_head, Pj = c->d_proj;
    if (B <= 0) return CLXP_OK;
    if (T <= 0 || T > c->n_positions)
        return clxp_err_set(err, CLXP_ERR_INVALID, "token sequence length %d outside [1, %d]", T, c->n_positions);
    int Tc = 0;
    for (int b = 0; b < B; b++) {
        int last = -1;
        for (int t = 0; t < T; t++) {
            int32_t id = ids[(size_t)b * T + t];
            if (id < 0 || id >= c->vocab)
                return clxp_err_set(err, CLXP_ERR_INVALID, "token id %d outside the vocabulary (%d)", id, c->vocab);
            if (!mask || mask[(size_t)b * T + t]) last = t;
        }
        if (msclap_pooled_index(ids + (size_t)b * T, T) < 0)
            return clxp_err_set(err, CLXP_ERR_INVALID, "sequence %d has no non-zero token to pool at", b);
        if (last + 1 > Tc) Tc = last + 1;
    }
    /* the pooled index may lie past the last unmasked token only if the mask hides real tokens */
    for (int b = 0; b < B; b++) {
        int pi = msclap_pooled_index(ids + (size_t)b * T, T);
        if (pi + 1 > Tc) Tc = pi + 1;
    }
    const size_t rows = (size_t)B * Tc;
    float *x = malloc(rows * D * sizeof(float)), *h = malloc(rows * D * sizeof(float));
    float *qkv = malloc(rows * 3 * D * sizeof(float)), *att = malloc(rows * D * sizeof(float));
    float *mlp = malloc(rows * I * sizeof(float)), *work = malloc(nn_attention_work_size(B, Tc, H) * sizeof(float));
    float *small = malloc((size_t)B * (D + 3 * Pj) * sizeof(float));
    int *km = malloc(rows * sizeof *km);
    clxp_status st = CLXP_OK;
    if (!x || !h || !qkv || !att || !mlp || !work || !small || !km) {
        st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory for the MS-CLAP text tower");
        goto done;
    }
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Tc; t++) {
            const int32_t id = ids[(size_t)b * T + t];
            const float *we = m->wte + (size_t)id * D, *pe = m->wpe + (size_t)t * D;
            float *xr = x + ((size_t)b * Tc + t) * D;
            for (int j = 0; j < D; j++) xr[j] = we[j] + pe[j];
            km[(size_t)b * Tc + t] = mask ? mask[(size_t)b * T + t] != 0 : 1;
        }
    emit(hook, ctx, "text.embeddings", x, 3, B, Tc, D, 0);
    char name[64];
    for (int i = 0; i < c->n_layer; i++) {
        const msclap_gpt2_layer *l = &m->tl[i];
        nn_layernorm(x, (int)rows, D, l->ln1_w, l->ln1_b, LN_EPS, h);
        if ((st = nn_linear_m(&l->attn, h, (int)rows, l->attn_b, qkv, 0, err)) != CLXP_OK) goto done;
        nn_attention(qkv, B, Tc, D, H, 1, km, att, work);
        if ((st = nn_linear_m(&l->aproj, att, (int)rows, l->aproj_b, x, 1, err)) != CLXP_OK) goto done;
        nn_layernorm(x, (int)rows, D, l->ln2_w, l->ln2_b, LN_EPS, h);
        if ((st = nn_linear_m(&l->fc, h, (int)rows, l->fc_b, mlp, 0, err)) != CLXP_OK) goto done;
        gelu_new(mlp, rows * I);
        if ((st = nn_linear_m(&l->mproj, mlp, (int)rows, l->mproj_b, x, 1, err)) != CLXP_OK) goto done;
        snprintf(name, sizeof name, "text.block_output.%d", i);
        emit(hook, ctx, name, x, 3, B, Tc, D, 0);
    }
    nn_layernorm(x, (int)rows, D, m->lnf_w, m->lnf_b, LN_EPS, h);
    emit(hook, ctx, "text.last_hidden_state", h, 3, B, Tc, D, 0);
    {
        float *pooled = small, *e1 = small + (size_t)B * D, *tmp = e1 + (size_t)B * Pj;
        for (int b = 0; b < B; b++) {
            int pi = msclap_pooled_index(ids + (size_t)b * T, T);
            memcpy(pooled + (size_t)b * D, h + ((size_t)b * Tc + pi) * D, (size_t)D * sizeof *pooled);
        }
        emit(hook, ctx, "text.pooled_output", pooled, 2, B, D, 0, 0);
        if ((st = projection(m, &m->tproj, pooled, B, D, e1, tmp, embeds, err)) != CLXP_OK) goto done;
        emit(hook, ctx, "text.projection.linear1", e1, 2, B, Pj, 0, 0);
        emit(hook, ctx, "text_embeds_unnormalized", embeds, 2, B, Pj, 0, 0);
    }
done:
    free(x);
    free(h);
    free(qkv);
    free(att);
    free(mlp);
    free(work);
    free(small);
    free(km);
    return st;
}
