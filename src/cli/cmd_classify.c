/* clxp classify: rank the prompts of a labels file (or score a categories file) for each image. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify/scoring.h"
#include "cli/cli.h"
#include "util/error.h"

#define MAX_TEMPLATES 256
#define FILE_BATCH 16

static const char *classify_help =
    "Usage: clxp classify -m MODEL_DIR -l LABELS [options] IMAGE...\n"
    "\n"
    "Classifies each image against the prompts of LABELS (zero-shot): the probabilities are a softmax over\n"
    "the labels of logit_scale * cosine(image, label) / temperature.\n"
    "\n"
    "LABELS is either a labels file (one prompt per line, UTF-8, blank lines ignored) or a categories file\n"
    "('[Unit]' lines open a classification unit, '(Category)' lines a category, other lines are the\n"
    "category's prompts): then a softmax runs over each unit's prompts, a category scores the sum of its\n"
    "prompts' probabilities, and each unit reports its best category.\n"
    "\n"
    "Options:\n"
    "  -m, --model DIR          Hugging Face CLIP model directory (required)\n"
    "  -l, --labels FILE        labels or categories file (required)\n"
    "      --template TEXT      prompt template with '{}' for the label, e.g. 'a photo of {}.'; repeat it to\n"
    "                           average several templates (prompt ensembling). Labels files only.\n"
    "  -k, --top K              show the K most probable labels (default 5; 0 = all)\n"
    "      --confidence P       only show labels with probability >= P (default 0)\n"
    "      --logit-scale S      multiply cosines by S instead of the model's learned exp(logit_scale)\n"
    "      --temperature T      divide logits by T (default 1)\n"
    "      --json               print JSON instead of a table\n"
    "  -t, --threads N          worker threads (default: all cores)\n"
    "  -q, --quiet              only errors on stderr\n"
    "  -v, --verbose            more messages on stderr (repeat for FFmpeg's own messages)\n"
    "  -h, --help               show this help\n"
    "\n"
    "Images: any still image FFmpeg decodes (PNG, JPEG, BMP, WebP, TIFF, ...).\n"
    "Example:\n"
    "  clxp classify -m clip-vit-base-patch32 -l labels.txt --template 'a photo of {}.' cat.jpg\n";

typedef struct {
    const char *model, *labels;
    const char *templates[MAX_TEMPLATES];
    int n_templates, top, json, verbosity;
    float confidence, logit_scale, temperature;
    clxp_load_options load;
} options;

static int parse_args(int argc, char **argv, options *o) {
    enum { OPT_TEMPLATE = 1000, OPT_CONF, OPT_SCALE, OPT_TEMP, OPT_JSON };
    static const struct option opts[] = {{"model", required_argument, NULL, 'm'},
                                         {"labels", required_argument, NULL, 'l'},
                                         {"template", required_argument, NULL, OPT_TEMPLATE},
                                         {"top", required_argument, NULL, 'k'},
                                         {"confidence", required_argument, NULL, OPT_CONF},
                                         {"logit-scale", required_argument, NULL, OPT_SCALE},
                                         {"temperature", required_argument, NULL, OPT_TEMP},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         {"threads", required_argument, NULL, 't'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->top = 5;
    o->verbosity = 1;
    o->temperature = 1;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:l:k:t:qvh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'l': o->labels = optarg; break;
        case OPT_TEMPLATE:
            if (o->n_templates == MAX_TEMPLATES) return cli_usage_error("classify", "more than %d templates", MAX_TEMPLATES);
            if (!strstr(optarg, "{}")) return cli_usage_error("classify", "template '%s' has no '{}'", optarg);
            o->templates[o->n_templates++] = optarg;
            break;
        case 'k':
            if (cli_parse_int(optarg, 0, 1 << 30, &o->top)) return cli_usage_error("classify", "bad --top '%s'", optarg);
            break;
        case OPT_CONF:
            if (cli_parse_float(optarg, &o->confidence) || o->confidence < 0 || o->confidence > 1)
                return cli_usage_error("classify", "--confidence must be in [0, 1], got '%s'", optarg);
            break;
        case OPT_SCALE:
            if (cli_parse_float(optarg, &o->logit_scale) || !(o->logit_scale > 0) || !isfinite(o->logit_scale))
                return cli_usage_error("classify", "--logit-scale must be a positive number, got '%s'", optarg);
            break;
        case OPT_TEMP:
            if (cli_parse_float(optarg, &o->temperature) || !(o->temperature > 0) || !isfinite(o->temperature))
                return cli_usage_error("classify", "--temperature must be a positive number, got '%s'", optarg);
            break;
        case OPT_JSON: o->json = 1; break;
        case 't':
            if (cli_parse_int(optarg, 1, 4096, &o->load.n_threads))
                return cli_usage_error("classify", "bad --threads '%s'", optarg);
            break;
        case 'q': o->verbosity = 0; break;
        case 'v': o->verbosity++; break;
        case 'h': fputs(classify_help, stdout); return -1;
        default: return cli_usage_error("classify", "invalid option");
        }
    }
    if (!o->model) return cli_usage_error("classify", "missing -m MODEL_DIR");
    if (!o->labels) return cli_usage_error("classify", "missing -l LABELS");
    if (optind >= argc) return cli_usage_error("classify", "no input images");
    return 0;
}

/* ---- output ------------------------------------------------------------------------------------------- */

/* Labels bank: the top-k labels at or above the confidence threshold. */
static void print_labels_table(const char *file, const clxp_labelbank *b, const float *p, const int *idx, int k,
                               float conf) {
    printf("%s\n", file);
    for (int r = 0; r < k; r++)
        if (p[idx[r]] >= conf)
            printf("  %2d. %6.2f%%  %s\n", r + 1, 100.0 * p[idx[r]], clxp_labelbank_class_name(b, idx[r]));
}

static cJSON *labels_json(const char *file, const clxp_labelbank *b, const float *p, const int *idx, int k,
                          float conf) {
    cJSON *r = cJSON_CreateObject(), *arr;
    cJSON_AddStringToObject(r, "file", file);
    arr = cJSON_AddArrayToObject(r, "labels");
    for (int i = 0; i < k; i++) {
        if (p[idx[i]] < conf) continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "label", clxp_labelbank_class_name(b, idx[i]));
        cJSON_AddNumberToObject(e, "probability", p[idx[i]]);
        cJSON_AddItemToArray(arr, e);
    }
    return r;
}

/* Categories bank: the best category of each unit. */
static int best_of_unit(const clxp_labelbank *b, const float *cs, int u) {
    int best = -1;
    for (int c = 0; c < clxp_labelbank_n_classes(b); c++)
        if (clxp_labelbank_class_unit(b, c) == u && (best < 0 || cs[c] > cs[best])) best = c;
    return best;
}

static void print_categories_table(const char *file, const clxp_labelbank *b, const float *cs) {
    printf("%s\n", file);
    for (int u = 0; u < clxp_labelbank_n_units(b); u++) {
        int c = best_of_unit(b, cs, u);
        printf("  %-24s %-28s %6.2f%%\n", clxp_labelbank_unit_name(b, u), clxp_labelbank_class_name(b, c),
               100.0 * cs[c]);
    }
}

static cJSON *categories_json(const char *file, const clxp_labelbank *b, const float *cs) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "file", file);
    cJSON *units = cJSON_AddArrayToObject(r, "units");
    for (int u = 0; u < clxp_labelbank_n_units(b); u++) {
        int best = best_of_unit(b, cs, u);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "unit", clxp_labelbank_unit_name(b, u));
        cJSON_AddStringToObject(e, "category", clxp_labelbank_class_name(b, best));
        cJSON_AddNumberToObject(e, "score", cs[best]);
        cJSON *all = cJSON_AddArrayToObject(e, "categories");
        for (int c = 0; c < clxp_labelbank_n_classes(b); c++) {
            if (clxp_labelbank_class_unit(b, c) != u) continue;
            cJSON *ce = cJSON_CreateObject();
            cJSON_AddStringToObject(ce, "category", clxp_labelbank_class_name(b, c));
            cJSON_AddNumberToObject(ce, "score", cs[c]);
            cJSON_AddItemToArray(all, ce);
        }
        cJSON_AddItemToArray(units, e);
    }
    return r;
}

/* ---- run ------------------------------------------------------------------------------------------------ */

int cmd_classify(int argc, char **argv) {
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    cli_setup_logging(o.verbosity);

    clxp_error err = {0};
    clxp_model *m = NULL;
    clxp_labelbank *bank = NULL;
    if (clxp_model_load(o.model, &o.load, &m, &err) != CLXP_OK ||
        clxp_labelbank_load_file(m, o.labels, o.templates, o.n_templates, &bank, &err) != CLXP_OK) {
        clxp_model_free(m);
        return cli_fail(&err);
    }
    const int n_img = argc - optind, dim = clxp_model_get_info(m)->embed_dim, C = clxp_labelbank_n_classes(bank);
    const int categories = clxp_labelbank_n_units(bank) > 0;
    const char *const *files = (const char *const *)argv + optind;
    float *emb = malloc((size_t)n_img * dim * sizeof *emb);
    float *scores = malloc((size_t)n_img * C * sizeof *scores);
    int k = o.top <= 0 || o.top > C ? C : o.top;
    int *idx = malloc((size_t)k * sizeof *idx);
    clxp_status st = (emb && scores && idx) ? CLXP_OK : clxp_err_set(&err, CLXP_ERR_NOMEM, "out of memory");
    for (int b0 = 0; b0 < n_img && st == CLXP_OK; b0 += FILE_BATCH) {
        int B = n_img - b0 < FILE_BATCH ? n_img - b0 : FILE_BATCH;
        st = clxp_encode_image_files(m, files + b0, B, emb + (size_t)b0 * dim, &err);
    }
    clxp_score_options so = {o.logit_scale, o.temperature};
    if (st == CLXP_OK) st = clxp_classify(bank, emb, n_img, &so, scores, &err);
    /* Output only once every image has been classified: a failing input leaves no partial output. */
    cJSON *root = NULL, *results = NULL;
    if (st == CLXP_OK && o.json) {
        root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "model", o.model);
        cJSON_AddStringToObject(root, "labels_file", o.labels);
        cJSON_AddNumberToObject(root, "logit_scale",
                                o.logit_scale > 0 ? o.logit_scale : clxp_labelbank_logit_scale(bank));
        cJSON_AddNumberToObject(root, "temperature", o.temperature);
        results = cJSON_AddArrayToObject(root, "results");
    }
    for (int i = 0; i < n_img && st == CLXP_OK; i++) {
        const float *p = scores + (size_t)i * C;
        if (categories) {
            if (o.json) cJSON_AddItemToArray(results, categories_json(files[i], bank, p));
            else print_categories_table(files[i], bank, p);
        } else {
            score_top_k(p, C, k, idx);
            if (o.json) cJSON_AddItemToArray(results, labels_json(files[i], bank, p, idx, k, o.confidence));
            else print_labels_table(files[i], bank, p, idx, k, o.confidence);
        }
    }
    if (root && st == CLXP_OK) {
        char *s = cJSON_Print(root);
        if (s) puts(s);
        else st = clxp_err_set(&err, CLXP_ERR_NOMEM, "out of memory");
        free(s);
    }
    cJSON_Delete(root);
    free(emb);
    free(scores);
    free(idx);
    clxp_labelbank_free(bank);
    clxp_model_free(m);
    if (fflush(stdout) != 0 && st == CLXP_OK) st = clxp_err_set(&err, CLXP_ERR_IO, "cannot write to standard output");
    return st == CLXP_OK ? 0 : cli_fail(&err);
}
