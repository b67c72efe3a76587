/* clxp info: load a model, print its configuration, run a self-test. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const char *info_help =
    "Usage: clxp info [options] MODEL_DIR|MODEL_FILE\n"
    "\n"
    "Loads a Hugging Face CLIP or CLAP model directory (or another model file or directory: PyTorch .bin/.pt,\n"
    "open_clip, TorchScript, OpenAI), prints its format and how it was mapped, its configuration (input size,\n"
    "towers, dimensions, weight dtype, parameter count) and runs a self-test forward pass (a gray image or a\n"
    "tone, and two prompts) that checks every output is finite. Exits non-zero with a one-line error\n"
    "if the model cannot be loaded or is not supported.\n"
    "\n"
    "Options:\n"
    "  --json            print the configuration as JSON\n"
    "  -t, --threads N   worker threads (default: all cores)\n"
    CLI_MODEL_OPTIONS_HELP
    "  -h, --help        show this help\n";

static void print_json(const clxp_model_info *i, int selftest_ok) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", i->kind);
    cJSON_AddStringToObject(o, "path", i->path);
    cJSON_AddNumberToObject(o, "embed_dim", i->embed_dim);
    cJSON_AddNumberToObject(o, "logit_scale", i->logit_scale);
    cJSON_AddStringToObject(o, "weights_dtype", i->weights_dtype);
    cJSON_AddNumberToObject(o, "parameters", (double)i->n_params);
    cJSON_AddStringToObject(o, "precision", i->precision);
    if (i->format) cJSON_AddStringToObject(o, "format", i->format);
    if (i->format_detail) cJSON_AddStringToObject(o, "format_detail", i->format_detail);
    if (i->weights_file) cJSON_AddStringToObject(o, "weights_file", i->weights_file);
    if (strcmp(i->kind, "clap") == 0) {
        cJSON *a = cJSON_AddObjectToObject(o, "audio");
        cJSON_AddNumberToObject(a, "sample_rate", i->sample_rate);
        cJSON_AddNumberToObject(a, "window_seconds", i->clip_seconds);
        cJSON_AddNumberToObject(a, "mel_bins", i->mel_bins);
        cJSON_AddNumberToObject(a, "stages", i->audio_stages);
        cJSON_AddNumberToObject(a, "window_size", i->audio_window);
        cJSON_AddNumberToObject(a, "hidden_size", i->audio_hidden);
        cJSON_AddStringToObject(a, "truncation", i->audio_truncation);
        cJSON_AddNumberToObject(o, "logit_scale_text", i->logit_scale_text);
    }
    cJSON *v = strcmp(i->kind, "clip") == 0 ? cJSON_AddObjectToObject(o, "vision") : cJSON_CreateObject();
    cJSON_AddNumberToObject(v, "image_size", i->image_size);
    cJSON_AddNumberToObject(v, "patch_size", i->patch_size);
    cJSON_AddNumberToObject(v, "hidden_size", i->vision_hidden);
    cJSON_AddNumberToObject(v, "layers", i->vision_layers);
    cJSON_AddNumberToObject(v, "heads", i->vision_heads);
    cJSON_AddNumberToObject(v, "intermediate_size", i->vision_mlp);
    cJSON_AddStringToObject(v, "activation", i->vision_act);
    cJSON *t = cJSON_AddObjectToObject(o, "text");
    cJSON_AddNumberToObject(t, "context_length", i->context_length);
    cJSON_AddNumberToObject(t, "vocab_size", i->vocab_size);
    cJSON_AddNumberToObject(t, "hidden_size", i->text_hidden);
    cJSON_AddNumberToObject(t, "layers", i->text_layers);
    cJSON_AddNumberToObject(t, "heads", i->text_heads);
    cJSON_AddNumberToObject(t, "intermediate_size", i->text_mlp);
    cJSON_AddStringToObject(t, "activation", i->text_act);
    if (strcmp(i->kind, "clip") != 0) cJSON_Delete(v);
    cJSON *p = strcmp(i->kind, "clip") == 0 ? cJSON_AddObjectToObject(o, "preprocess") : cJSON_CreateObject();
    cJSON_AddNumberToObject(p, "resize_shortest_edge", i->resize_shortest_edge);
    cJSON_AddNumberToObject(p, "crop_size", i->crop_size);
    cJSON_AddItemToObject(p, "mean", cJSON_CreateFloatArray(i->image_mean, 3));
    cJSON_AddItemToObject(p, "std", cJSON_CreateFloatArray(i->image_std, 3));
    if (strcmp(i->kind, "clip") != 0) cJSON_Delete(p);
    cJSON_AddBoolToObject(o, "selftest_passed", selftest_ok);
    char *s = cJSON_Print(o);
    if (s) puts(s);
    free(s);
    cJSON_Delete(o);
}

static void print_text(const clxp_model_info *i) {
    const int clap = strcmp(i->kind, "clap") == 0;
    printf("model          %s\n", i->path);
    if (i->format) printf("format         %s: %s\n", i->format, i->format_detail ? i->format_detail : "");
    printf("kind           %s, embedding dim %d, logit scale %.4f", i->kind, i->embed_dim, i->logit_scale);
    if (clap) printf(" (audio; text %.4f)", i->logit_scale_text);
    printf("\nweights        %s, %.2f M parameters\n", i->weights_dtype, (double)i->n_params / 1e6);
    printf("precision      %s (matrix products; --precision fp32|bf16|auto)\n", i->precision);
    if (clap) {
        printf("audio          HTSAT, %d Hz, %.2f s windows, %d mel bins, %d stages, window %d, hidden %d, "
               "truncation %s\n",
               i->sample_rate, i->clip_seconds, i->mel_bins, i->audio_stages, i->audio_window, i->audio_hidden,
               i->audio_truncation);
    } else {
        printf("vision         %dx%d input, patch %d, hidden %d, %d layers, %d heads, MLP %d, %s\n", i->image_size,
               i->image_size, i->patch_size, i->vision_hidden, i->vision_layers, i->vision_heads, i->vision_mlp,
               i->vision_act);
    }
    printf("text           %scontext %d, vocab %d, hidden %d, %d layers, %d heads, MLP %d, %s\n",
           clap ? (i->format && strcmp(i->format, "msclap") == 0 ? "GPT-2, " : "RoBERTa, ") : "", i->context_length, i->vocab_size, i->text_hidden, i->text_layers, i->text_heads,
           i->text_mlp, i->text_act);
    if (!clap)
        printf("preprocess     shortest edge %d, center crop %d, mean (%.4f, %.4f, %.4f), std (%.4f, %.4f, %.4f)\n",
               i->resize_shortest_edge, i->crop_size, i->image_mean[0], i->image_mean[1], i->image_mean[2],
               i->image_std[0], i->image_std[1], i->image_std[2]);
}

int cmd_info(int argc, char **argv) {
    static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         CLI_MODEL_LONG_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    int json = 0, c;
    clxp_load_options lo = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "jt:h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 't':
            if (cli_parse_int(optarg, 1, 4096, &lo.n_threads)) return cli_usage_error("info", "bad --threads '%s'", optarg);
            break;
        case 'h': fputs(info_help, stdout); return 0;
        default: {
            int r = cli_model_option("info", c, optarg, &lo);
            if (r) return r;
        }
        }
    }
    if (optind != argc - 1) return cli_usage_error("info", "expected exactly one MODEL_DIR");
    clxp_error err = {0};
    clxp_model *m = NULL;
    if (clxp_model_load(argv[optind], &lo, &m, &err) != CLXP_OK) return cli_fail(&err);
    const clxp_model_info *i = clxp_model_get_info(m);
    clxp_status st = clxp_model_selftest(m, &err);
    if (json) print_json(i, st == CLXP_OK);
    else {
        print_text(i);
        printf("self-test      %s\n", st == CLXP_OK ? "passed (finite embeddings from both towers)" : "FAILED");
    }
    clxp_model_free(m);
    return st == CLXP_OK ? 0 : cli_fail(&err);
}
