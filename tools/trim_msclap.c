/* trim_msclap: write the small MS-CLAP test checkpoint of tests/data/msclap-tiny-2023 from the shared one.
 *
 *   trim_msclap IN.safetensors GOLDEN.safetensors OUT.safetensors
 *
 * Drops what clxp recomputes or never uses: the front end's STFT kernels and melW (recomputed from the formulas,
 * which tests/test_msclap_golden.c checks against the originals when the shared data is present), the shifted-window
 * masks and relative position indices (recomputed), the tscam head (not used for embeddings). Keeps only the rows of
 * the GPT-2 token embedding `caption_encoder.base.wte.weight` that the golden prompts use (input_ids and
 * extra.long_prompt.input_ids of GOLDEN, plus 0 = '!', 220 = ' ', 50256 = <|endoftext|>), in increasing id order,
 * with the metadata entries "items:caption_encoder.base.wte.weight" (the ids) and "vocab_size"; the test expands
 * them back to a full-size matrix (zeros elsewhere) before loading. Every kept byte is copied unchanged.
 *
 * Build (not built by make): make build/libclxp.a && cc -std=c11 -D_GNU_SOURCE -Iinclude -Isrc tools/trim_msclap.c \
 *     build/libclxp.a $(pkg-config --libs libavformat libavcodec libavfilter libavutil libswscale libswresample \
 *     libcjson libpcre2-8 libutf8proc libzip) -ldnnl -fopenmp -lm -o build/trim_msclap */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "io/safetensors_write.h"

#define WTE "caption_encoder.base.wte.weight"

static int dropped(const char *name) {
    static const char *const subs[] = {"spectrogram_extractor.", "logmel_extractor.", ".attn_mask",
                                       ".relative_position_index", "htsat.tscam_conv.", "htsat.head."};
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
        if (strstr(name, subs[i])) return 1;
    return 0;
}

static void mark_ids(const st_tensor *t, unsigned char *used, int64_t vocab) {
    for (int64_t i = 0; t && t->dtype == ST_I64 && i < t->numel; i++) {
        int64_t v;
        memcpy(&v, (const char *)t->data + 8 * i, 8);
        if (v >= 0 && v < vocab) used[v] = 1;
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s IN.safetensors GOLDEN.safetensors OUT.safetensors\n", argv[0]);
        return 2;
    }
    clxp_error err;
    st_file *in = NULL, *g = NULL;
    if (st_open(argv[1], &in, &err) != CLXP_OK || st_open(argv[2], &g, &err) != CLXP_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const st_tensor *wte = st_find(in, WTE);
    if (!wte || wte->ndim != 2 || wte->dtype != ST_F32) {
        fprintf(stderr, "%s: no F32 %s\n", argv[1], WTE);
        return 1;
    }
    const int64_t V = wte->shape[0], D = wte->shape[1];
    unsigned char *used = calloc((size_t)V, 1);
    mark_ids(st_find(g, "input_ids"), used, V);
    mark_ids(st_find(g, "extra.long_prompt.input_ids"), used, V);
    used[0] = 1;
    if (V > 220) used[220] = 1;
    used[V - 1] = 1;
    int64_t nu = 0;
    for (int64_t i = 0; i < V; i++) nu += used[i];
    float *rows = malloc((size_t)(nu * D) * sizeof *rows);
    char *list = malloc((size_t)nu * 8 + 1);
    size_t len = 0;
    list[0] = '\0';
    for (int64_t i = 0, k = 0; i < V; i++)
        if (used[i]) {
            memcpy(rows + k * D, (const float *)wte->data + i * D, (size_t)D * sizeof *rows);
            len += (size_t)sprintf(list + len, k ? ",%lld" : "%lld", (long long)i);
            k++;
        }
    const int n = st_count(in);
    st_write_tensor *out = calloc((size_t)n, sizeof *out);
    int64_t wshape[2] = {nu, D};
    int n_out = 0;
    for (int i = 0; i < n; i++) {
        const st_tensor *t = st_at(in, i);
        if (dropped(t->name)) continue;
        if (strcmp(t->name, WTE) == 0) out[n_out++] = (st_write_tensor){t->name, t->dtype, 2, wshape, rows};
        else out[n_out++] = (st_write_tensor){t->name, t->dtype, t->ndim, t->shape, t->data};
    }
    char vocab[32];
    snprintf(vocab, sizeof vocab, "%lld", (long long)V);
    st_write_meta meta[3] = {{"items:" WTE, list},
                             {"vocab_size", vocab},
                             {"trimmed_by", "tools/trim_msclap.c (wte rows of the golden prompts only)"}};
    int rc = st_write(argv[3], out, n_out, meta, 3, &err) == CLXP_OK ? 0 : 1;
    if (rc) fprintf(stderr, "%s\n", err.msg);
    else printf("%d of %d tensors, %lld of %lld wte rows written to %s\n", n_out, n, (long long)nu, (long long)V, argv[3]);
    free(out);
    free(rows);
    free(list);
    free(used);
    st_close(in);
    st_close(g);
    return rc;
}
