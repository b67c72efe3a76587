/* Fuzz target: tokenizer.json loading (tok_load_buffer: model, merges, normalizers, pre-tokenizers with their
 * regexes, post-processors, added tokens). A file that loads is then used: id lookups, a few encodings with
 * different options and tok_add_special_token. The input is the file, optionally followed by a NUL byte and a text
 * to encode with it (without one, the first 200 bytes of the file itself are encoded too). */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "text/tokenizer.h"

/* Encode and check the result's shape; retries with the capacity asked for when it does not fit. */
static void encode(const clxp_tokenizer *t, const char *text, size_t len, const tok_encode_opts *opts) {
    int32_t small[16], smask[16];
    int n = -1;
    clxp_error err;
    clxp_status st = tok_encode(t, text, len, opts, small, smask, 16, &n, &err);
    int32_t *ids = small, *mask = smask;
    if (st == CLXP_ERR_LIMIT && n > 16) {
        ids = malloc((size_t)n * sizeof *ids);
        mask = malloc((size_t)n * sizeof *mask);
        FUZZ_ASSERT(ids && mask);
        int cap = n;
        st = tok_encode(t, text, len, opts, ids, mask, cap, &n, &err);
        FUZZ_ASSERT(st != CLXP_ERR_LIMIT && (st != CLXP_OK || n <= cap));
    }
    if (st == CLXP_OK) {
        FUZZ_ASSERT(n >= 0);
        if (opts && opts->pad_to > 0) FUZZ_ASSERT(n >= opts->pad_to);
        int padding = 0;
        for (int i = 0; i < n; i++) {
            FUZZ_ASSERT(ids[i] >= 0 && ids[i] < TOK_MAX_ID && (mask[i] == 0 || mask[i] == 1));
            FUZZ_ASSERT(!(padding && mask[i] == 1)); /* padding only at the end */
            padding = mask[i] == 0;
        }
    } else {
        FUZZ_ASSERT(err.code == st && !strchr(err.msg, '\n'));
    }
    if (ids != small) {
        free(ids);
        free(mask);
    }
}

int fuzz_tokenizer_load(const uint8_t *data, size_t size) {
    /* "<tokenizer.json>\0<text>": the text after the first NUL (if any) is encoded with the tokenizer */
    const uint8_t *nul = memchr(data, '\0', size);
    size_t json_len = nul ? (size_t)(nul - data) : size;
    clxp_tokenizer *t = NULL;
    clxp_error err;
    clxp_status st = tok_load_buffer((const char *)data, json_len, "tokenizer.json", &t, &err);
    if (st != CLXP_OK) {
        FUZZ_ASSERT(t == NULL && err.code == st && !strchr(err.msg, '\n'));
        return 0;
    }
    int vs = tok_vocab_size(t);
    FUZZ_ASSERT(vs >= 0 && vs <= TOK_MAX_ID && tok_num_special_tokens(t) >= 0);
    FUZZ_ASSERT(tok_id_to_token(t, -1) == NULL && tok_id_to_token(t, vs) == NULL);
    for (int id = 0; id < vs && id < 64; id++) {
        const char *s = tok_id_to_token(t, id);
        if (s) FUZZ_ASSERT(tok_token_to_id(t, s) >= 0);
    }
    (void)tok_token_to_id(t, "");
    (void)tok_token_to_id(t, "a");

    static const char *texts[] = {
        "",
        "a photo of a cat.",
        "Hello  World! <|endoftext|> <s></s><pad> don't 123 \xC3\xA9\xC3\xA8 \xE6\x97\xA5\xE6\x9C\xAC \xC2\xA0\t\n x",
        "ababababababababababababababababababababababababababababababababab aaaa bbbb abab",
    };
    const tok_encode_opts opts[] = {{1, 0, 0, -1}, {0, 0, 0, -1}, {1, 77, 77, -1}, {1, 4, 0, -1}, {0, 3, 8, 0}};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        for (size_t k = 0; k < sizeof opts / sizeof opts[0]; k++) encode(t, texts[i], strlen(texts[i]), &opts[k]);
    if (nul) {
        const char *text = (const char *)nul + 1;
        size_t len = size - json_len - 1;
        encode(t, text, len, NULL);
        encode(t, text, len, &opts[3]);
        encode(t, text, len, &opts[4]);
    } else {
        encode(t, (const char *)data, size < 200 ? size : 200, NULL);
    }

    int id = -1;
    if (tok_add_special_token(t, "<|x|>", &id, &err) == CLXP_OK) {
        FUZZ_ASSERT(id >= 0 && tok_token_to_id(t, "<|x|>") == id);
        encode(t, "a <|x|>b<|x|>", 13, NULL);
    }
    tok_free(t);
    return 0;
}

FUZZ_ENTRY(fuzz_tokenizer_load)
