/* clxp convert: write any supported model file as a standard Hugging Face directory. Also the model-file options
 * shared by the commands (--tokenizer, --vision-heads, --text-heads). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "io/checkpoint.h"
#include "models/msclap.h"
#include "util/error.h"
#include "util/fileio.h"

int cli_model_option(const char *cmd, int c, const char *arg, clxp_load_options *lo) {
    switch (c) {
    case CLI_OPT_TOKENIZER: lo->tokenizer = arg; return 0;
    case CLI_OPT_VISION_HEADS:
        if (cli_parse_int(arg, 1, 4096, &lo->vision_heads)) return cli_usage_error(cmd, "bad --vision-heads '%s'", arg);
        return 0;
    case CLI_OPT_PRECISION:
        if (strcmp(arg, "auto") == 0)
            lo->precision = CLXP_PRECISION_AUTO;
        else if (strcmp(arg, "fp32") == 0)
            lo->precision = CLXP_PRECISION_FP32;
        else if (strcmp(arg, "bf16") == 0)
            lo->precision = CLXP_PRECISION_BF16;
        else
            return cli_usage_error(cmd, "bad --precision '%s' (fp32, bf16 or auto)", arg);
        return 0;
    case CLI_OPT_TEXT_HEADS:
        if (cli_parse_int(arg, 1, 4096, &lo->text_heads)) return cli_usage_error(cmd, "bad --text-heads '%s'", arg);
        return 0;
    default: return cli_usage_error(cmd, "invalid option");
    }
}

static const char *convert_help =
    "Usage: clxp convert [options] IN OUT_DIR\n"
    "\n"
    "Writes the model IN (any format -m accepts: a Hugging Face directory with pytorch_model.bin, an open_clip\n"
    "checkpoint + open_clip_config.json, a TorchScript or OpenAI .pt archive, ...) as a standard Hugging Face\n"
    "directory: config.json, model.safetensors (Hugging Face names, the file's dtypes), tokenizer.json (the\n"
    "built-in CLIP vocabulary unless the input has one or --tokenizer is given), special_tokens_map.json,\n"
    "tokenizer_config.json and preprocessor_config.json. OUT_DIR is created; an existing non-empty OUT_DIR is\n"
    "refused unless -y. The converted directory loads fast (mmap) and gives identical results.\n"
    "An MS-CLAP 2023 checkpoint (CLAP_weights_2023.pth or a safetensors copy) becomes model.safetensors (its\n"
    "tensors unchanged), msclap_config.yml (msclap's YAML with the settings in force, GPT-2's head count among\n"
    "them) and GPT-2's tokenizer.json (from next to the checkpoint, or --tokenizer).\n"
    "\n"
    "Options:\n"
    "  -y, --overwrite          write into an existing non-empty OUT_DIR (files of the same names are replaced)\n"
    CLI_MODEL_OPTIONS_HELP
    "  -q, --quiet              no summary on stderr\n"
    "  -h, --help               show this help\n";

static int dir_is_empty(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) empty = 0;
    closedir(d);
    return empty;
}

static clxp_status make_out_dir(const char *out, clxp_error *err) {
    if (!clxp_is_dir(out) && mkdir(out, 0777) != 0)
        return clxp_err_set(err, CLXP_ERR_IO, "%s: cannot create the directory: %s", out, strerror(errno));
    return CLXP_OK;
}

/* MS-CLAP 2023: loaded (and checked) with its own loader, written by msclap_write_dir. */
static int convert_msclap(const char *file, const clxp_load_options *lo, const char *out, int quiet) {
    clxp_error err = {0};
    if (lo->vision_heads || lo->text_heads) {
        clxp_err_set(&err, CLXP_ERR_INVALID,
                     "%s: --vision-heads / --text-heads do not apply to MS-CLAP (GPT-2's head count comes from msclap's "
                     "YAML next to the checkpoint, else n_embd / 64)",
                     file);
        return cli_fail(&err);
    }
    msclap_model *m = NULL;
    clxp_tokenizer *tok = NULL;
    char *tok_path = NULL;
    clxp_status st = msclap_model_load(file, NULL, &m, &err);
    if (st == CLXP_OK) st = msclap_tokenizer_load(m, lo->tokenizer, &tok, &tok_path, &err);
    tok_free(tok);
    if (st == CLXP_OK) st = make_out_dir(out, &err);
    if (st == CLXP_OK) st = msclap_write_dir(m, tok_path, out, &err);
    if (st == CLXP_OK && !quiet)
        fprintf(stderr, "clxp: converted %s (msclap %s, GPT-2 heads %d%s) to %s\n", file, m->format, m->cfg.n_head,
                m->cfg.n_head_from_yaml ? " from the msclap YAML" : ", n_embd / 64", out);
    free(tok_path);
    msclap_model_free(m);
    return st == CLXP_OK ? 0 : cli_fail(&err);
}

int cmd_convert(int argc, char **argv) {
    static const struct option opts[] = {{"overwrite", no_argument, NULL, 'y'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         CLI_MODEL_LONG_OPTIONS,
                                         {NULL, 0, NULL, 0}};
    int overwrite = 0, quiet = 0, c;
    clxp_load_options lo = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "yqh", opts, NULL)) != -1) {
        switch (c) {
        case 'y': overwrite = 1; break;
        case 'q': quiet = 1; break;
        case 'h': fputs(convert_help, stdout); return 0;
        default: {
            int r = cli_model_option("convert", c, optarg, &lo);
            if (r) return r;
        }
        }
    }
    if (optind != argc - 2) return cli_usage_error("convert", "expected IN and OUT_DIR");
    const char *in = argv[optind], *out = argv[optind + 1];
    clxp_error err = {0};
    if (clxp_is_file(out)) {
        clxp_err_set(&err, CLXP_ERR_IO, "%s: exists and is a file (OUT_DIR must be a directory)", out);
        return cli_fail(&err);
    }
    if (clxp_is_dir(out) && !dir_is_empty(out) && !overwrite) {
        clxp_err_set(&err, CLXP_ERR_IO, "%s: directory exists and is not empty (use -y to write into it)", out);
        return cli_fail(&err);
    }
    char *ms_file = msclap_locate(in); /* MS-CLAP 2023 checkpoints have their own loader (as with -m) */
    if (ms_file) {
        int r = convert_msclap(ms_file, &lo, out, quiet);
        free(ms_file);
        return r;
    }
    ckpt_options co = {lo.tokenizer, lo.vision_heads, lo.text_heads};
    ckpt_model *ck = NULL;
    if (ckpt_open(in, &co, &ck, &err) != CLXP_OK) return cli_fail(&err);
    if (ckpt_get_format(ck) == CKPT_HF_SAFETENSORS && !quiet)
        fprintf(stderr, "clxp: note: %s is already a Hugging Face safetensors directory; copying it\n", in);
    if (make_out_dir(out, &err) != CLXP_OK) {
        ckpt_free(ck);
        return cli_fail(&err);
    }
    clxp_status st = ckpt_write_dir(ck, out, 1, &err);
    if (st == CLXP_OK && !quiet)
        fprintf(stderr, "clxp: converted %s (%s, %d tensors) to %s\n", ckpt_weights_file(ck),
                ckpt_format_name(ckpt_get_format(ck)), ckpt_count(ck), out);
    ckpt_free(ck);
    return st == CLXP_OK ? 0 : cli_fail(&err);
}
