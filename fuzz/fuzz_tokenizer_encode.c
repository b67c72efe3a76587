/* Fuzz target: tok_encode of arbitrary bytes with the real tokenizers the models ship (CLIP, RoBERTa for CLAP,
 * GPT-2 for MS-CLAP), loaded once from the test data (see fuzz_data_dir).
 *
 * Input: byte 0 picks the tokenizer (bits 0-1: CLIP, RoBERTa, GPT-2, CLIP) and add_special_tokens (bit 2);
 * byte 1 is max_length (0: none), byte 2 pad_to (0: none); the rest is the text. (Words longer than
 * TOK_BPE_CHUNK are left to tests/test_tokenizer.c: 64 KiB per input would take seconds under ASan.) Checked on every result: ids
 * in the vocabulary, the length rules of truncation and padding, the mask, and that a truncated encoding
 * without special tokens is a prefix of the untruncated one (HF truncates after tokenizing). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "text/tokenizer.h"

static clxp_tokenizer *toks[3];

void fuzz_tokenizer_encode_cleanup(void) {
    for (int i = 0; i < 3; i++) {
        tok_free(toks[i]);
        toks[i] = NULL;
    }
}

int fuzz_tokenizer_encode_init(const char *data_dir) {
    static const char *files[3] = {"clip-tiny-quickgelu/tokenizer.json", "tokenizers/roberta/tokenizer.json",
                                    "tokenizers/gpt2/tokenizer.json"};
    for (int i = 0; i < 3; i++) {
        if (toks[i]) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", data_dir, files[i]);
        clxp_error err;
        if (tok_load(path, &toks[i], &err) != CLXP_OK) {
            fprintf(stderr, "fuzz_tokenizer_encode: %s (set CLXP_TEST_DATA to the tests/data directory)\n", err.msg);
            fuzz_tokenizer_encode_cleanup();
            return -1;
        }
    }
    /* MS-CLAP registers "!" as a special token on its GPT-2 tokenizer */
    clxp_error err;
    if (tok_token_to_id(toks[2], "<|endoftext|>") >= 0 && tok_add_special_token(toks[2], "!", NULL, &err) != CLXP_OK) {
        fprintf(stderr, "fuzz_tokenizer_encode: %s\n", err.msg);
        fuzz_tokenizer_encode_cleanup();
        return -1;
    }
    return 0;
}

#ifdef CLXP_LIBFUZZER
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    if (fuzz_tokenizer_encode_init(fuzz_data_dir(*argc > 0 ? (*argv)[0] : NULL)) != 0) exit(1);
    return 0;
}
#endif

/* Encode into a buffer of exactly the size asked for; returns the status, *out (malloc'd) and *n. */
static clxp_status encode(const clxp_tokenizer *t, const char *text, size_t len, const tok_encode_opts *o,
                          int32_t **out, int32_t **mask_out, int *n) {
    clxp_error err;
    int need = 0;
    *out = *mask_out = NULL;
    clxp_status st = tok_encode(t, text, len, o, NULL, NULL, 0, &need, &err);
    if (st != CLXP_ERR_LIMIT) {
        FUZZ_ASSERT(st != CLXP_OK || need == 0);
        *n = need;
        return st;
    }
    FUZZ_ASSERT(need > 0);
    int32_t *ids = malloc((size_t)need * sizeof *ids), *mask = malloc((size_t)need * sizeof *mask);
    FUZZ_ASSERT(ids && mask);
    st = tok_encode(t, text, len, o, ids, mask, need, n, &err);
    FUZZ_ASSERT(st == CLXP_OK && *n == need); /* the same call with the capacity it asked for succeeds */
    *out = ids;
    *mask_out = mask;
    return st;
}

int fuzz_tokenizer_encode(const uint8_t *data, size_t size) {
    if (size < 3 || !toks[0]) return 0;
    const clxp_tokenizer *t = toks[(data[0] & 3) == 3 ? 0 : data[0] & 3];
    tok_encode_opts o = {(data[0] >> 2) & 1, data[1], data[2], -1};
    const char *text = (const char *)data + 3;
    size_t len = size - 3;
    int32_t *ids = NULL, *mask = NULL;
    int n = 0;
    clxp_status st = encode(t, text, len, &o, &ids, &mask, &n);
    if (st != CLXP_OK) {
        /* the only failures: invalid UTF-8, padding without a pad token, max_length below the specials */
        FUZZ_ASSERT(st == CLXP_ERR_INVALID);
        return 0;
    }
    int vs = tok_vocab_size(t), n_special = o.add_special_tokens ? tok_num_special_tokens(t) : 0;
    int longest = o.max_length > o.pad_to ? o.max_length : o.pad_to;
    if (o.max_length > 0) FUZZ_ASSERT(n <= longest);
    if (o.pad_to > 0) FUZZ_ASSERT(n >= o.pad_to);
    for (int i = 0; i < n; i++) FUZZ_ASSERT(ids[i] >= 0 && ids[i] < vs);
    int n_tokens = 0; /* the mask: 1 for the tokens, then 0 for the padding (pad ids) */
    while (n_tokens < n && mask[n_tokens] == 1) n_tokens++;
    for (int i = n_tokens; i < n; i++) FUZZ_ASSERT(mask[i] == 0 && ids[i] == tok_pad_id(t));
    FUZZ_ASSERT(n_tokens >= n_special);
    if (o.max_length > 0) FUZZ_ASSERT(n_tokens <= o.max_length);

    /* truncation without specials keeps a prefix of the full encoding */
    if (!o.add_special_tokens && o.max_length > 0) {
        tok_encode_opts full = {0, 0, 0, -1};
        int32_t *fids = NULL, *fmask = NULL;
        int fn = 0;
        FUZZ_ASSERT(encode(t, text, len, &full, &fids, &fmask, &fn) == CLXP_OK);
        int want = fn < o.max_length ? fn : o.max_length;
        FUZZ_ASSERT(n_tokens == want);
        for (int i = 0; i < want; i++) FUZZ_ASSERT(ids[i] == fids[i]);
        free(fids);
        free(fmask);
    }
    free(ids);
    free(mask);
    return 0;
}

FUZZ_ENTRY(fuzz_tokenizer_encode)
