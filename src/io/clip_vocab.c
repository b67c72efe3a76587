#include "io/clip_vocab.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "util/error.h"

/* data/clip_bpe_merges.zip, linked in (the path is relative to the repository root, where make runs the compiler). */
__asm__(".section .rodata\n"
        ".balign 16\n"
        ".globl clxp_clip_merges_zip\n"
        "clxp_clip_merges_zip:\n"
        ".incbin \"data/clip_bpe_merges.zip\"\n"
        ".globl clxp_clip_merges_zip_end\n"
        "clxp_clip_merges_zip_end:\n"
        ".byte 0\n"
        ".previous\n");
extern const unsigned char clxp_clip_merges_zip[];
extern const unsigned char clxp_clip_merges_zip_end[];

#define N_MERGES (CLIP_VOCAB_SIZE - 512 - 2)
#define MAX_MERGES_BYTES ((size_t)4 << 20)

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 1 << 20;
        while (c < b->n + n + 1) c *= 2;
        char *p = realloc(b->p, c);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

/* s[0..n) (UTF-8) escaped for a JSON string literal. */
static void sb_esc(sbuf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sb_put(b, e, 2);
        } else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            sb_str(b, e);
        } else {
            sb_put(b, (const char *)&s[i], 1);
        }
    }
}

static void sb_json(sbuf *b, const char *s, size_t n) {
    sb_put(b, "\"", 1);
    sb_esc(b, s, n);
    sb_put(b, "\"", 1);
}

/* GPT-2's bytes_to_unicode: the code point standing for byte b, as UTF-8 in out (returns its length). */
static int byte_symbol(int b, char *out) {
    int cp;
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
        cp = b;
    } else {
        int n = 0; /* rank of b among the bytes not mapped to themselves */
        for (int x = 0; x < b; x++)
            if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) n++;
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* The byte symbols in bytes_to_unicode's order: printable ranges first, then the others. */
static void byte_order(int order[256]) {
    int k = 0;
    for (int b = 0; b < 256; b++)
        if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) order[k++] = b;
    for (int b = 0; b < 256; b++)
        if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) order[k++] = b;
}

static const char *const header =
    "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":["
    "{\"id\":49406,\"content\":\"<|startoftext|>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
    "\"normalized\":true,\"special\":true},"
    "{\"id\":49407,\"content\":\"<|endoftext|>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
    "\"normalized\":false,\"special\":true}],"
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"},{\"type\":\"Replace\",\"pattern\":"
    "{\"Regex\":\"\\\\s+\"},\"content\":\" \"},{\"type\":\"Lowercase\"}]},"
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
    "\"'s|'t|'re|'ve|'m|'ll|'d|[\\\\p{L}]+|[\\\\p{N}]|[^\\\\s\\\\p{L}\\\\p{N}]+\"},\"behavior\":\"Removed\","
    "\"invert\":true},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}]},"
    "\"post_processor\":{\"type\":\"RobertaProcessing\",\"sep\":[\"<|endoftext|>\",49407],\"cls\":"
    "[\"<|startoftext|>\",49406],\"trim_offsets\":false,\"add_prefix_space\":false},"
    "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},"
    "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":\"<|endoftext|>\",\"continuing_subword_prefix\":\"\","
    "\"end_of_word_suffix\":\"</w>\",\"fuse_unk\":false,\"vocab\":{";

clxp_status clip_vocab_from_merges(const char *merges, size_t len, const char *what, char **out, size_t *out_len,
                                   clxp_error *err) {
    *out = NULL;
    *out_len = 0;
    if (len > MAX_MERGES_BYTES)
        return clxp_err_set(err, CLXP_ERR_LIMIT, "%s: larger than %zu bytes", what, MAX_MERGES_BYTES);
    /* split into lines: [start, end) of each merge */
    size_t *ls = malloc(N_MERGES * sizeof *ls), *le = malloc(N_MERGES * sizeof *le);
    if (!ls || !le) {
        free(ls);
        free(le);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    int n = 0, line = 0;
    clxp_status st = CLXP_OK;
    for (size_t i = 0; i < len && st == CLXP_OK;) {
        size_t j = i;
        while (j < len && merges[j] != '\n') j++;
        size_t e = j;
        if (e > i && merges[e - 1] == '\r') e--;
        line++;
        if (e > i && !(line == 1 && merges[i] == '#')) {
            const char *sp = memchr(merges + i, ' ', e - i);
            if (!sp || sp == merges + i || sp == merges + e - 1 || memchr(sp + 1, ' ', (size_t)(merges + e - sp - 1)) ||
                memchr(merges + i, '\0', e - i))
                st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: line %d is not a merge \"A B\"", what, line);
            else if (n >= N_MERGES)
                break; /* OpenAI's file has more merges than CLIP uses: the first 48894 */
            else {
                ls[n] = i;
                le[n] = e;
                n++;
            }
        }
        i = j + 1;
    }
    if (st == CLXP_OK && n != N_MERGES)
        st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: %d merges, the CLIP vocabulary needs %d", what, n, N_MERGES);
    sbuf b = {0};
    if (st == CLXP_OK) {
        int order[256];
        byte_order(order);
        sb_str(&b, header);
        int id = 0;
        char num[32], sym[8];
        for (int pass = 0; pass < 2; pass++)
            for (int k = 0; k < 256; k++) {
                int sl = byte_symbol(order[k], sym);
                if (pass) memcpy(sym + sl, "</w>", 4), sl += 4;
                if (id) sb_put(&b, ",", 1);
                sb_json(&b, sym, (size_t)sl);
                snprintf(num, sizeof num, ":%d", id++);
                sb_str(&b, num);
            }
        for (int k = 0; k < n; k++) {
            /* the merged token: both halves without the separating space */
            const char *s = merges + ls[k];
            const char *sp = memchr(s, ' ', le[k] - ls[k]);
            sb_put(&b, ",\"", 2);
            sb_esc(&b, s, (size_t)(sp - s));
            sb_esc(&b, sp + 1, (size_t)(merges + le[k] - sp - 1));
            sb_put(&b, "\"", 1);
            snprintf(num, sizeof num, ":%d", id++);
            sb_str(&b, num);
        }
        snprintf(num, sizeof num, ",\"<|startoftext|>\":%d", id++);
        sb_str(&b, num);
        snprintf(num, sizeof num, ",\"<|endoftext|>\":%d", id++);
        sb_str(&b, num);
        sb_str(&b, "},\"merges\":[");
        for (int k = 0; k < n; k++) {
            if (k) sb_put(&b, ",", 1);
            sb_json(&b, merges + ls[k], le[k] - ls[k]);
        }
        sb_str(&b, "]}}");
        if (b.oom) st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    }
    free(ls);
    free(le);
    if (st != CLXP_OK) {
        free(b.p);
        return st;
    }
    *out = b.p;
    *out_len = b.n;
    return CLXP_OK;
}

clxp_status clip_vocab_tokenizer_json(char **out, size_t *len, clxp_error *err) {
    *out = NULL;
    *len = 0;
    const char *what = "built-in CLIP vocabulary (data/clip_bpe_merges.zip)";
    size_t zlen = (size_t)(clxp_clip_merges_zip_end - clxp_clip_merges_zip);
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(clxp_clip_merges_zip, zlen, 0, &ze);
    zip_t *za = src ? zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze) : NULL;
    if (!za) {
        if (src) zip_source_free(src);
        zip_error_fini(&ze);
        return clxp_err_set(err, CLXP_ERR_INTERNAL, "%s: cannot open", what);
    }
    zip_error_fini(&ze);
    clxp_status st = CLXP_OK;
    zip_stat_t zs;
    char *buf = NULL;
    if (zip_stat(za, "merges.txt", 0, &zs) != 0 || !(zs.valid & ZIP_STAT_SIZE) || zs.size > MAX_MERGES_BYTES) {
        st = clxp_err_set(err, CLXP_ERR_INTERNAL, "%s: no merges.txt", what);
    } else if (!(buf = malloc((size_t)zs.size + 1))) {
        st = clxp_err_set(err, CLXP_ERR_NOMEM, "out of memory");
    } else {
        zip_file_t *zf = zip_fopen(za, "merges.txt", 0);
        zip_int64_t got = zf ? zip_fread(zf, buf, zs.size) : -1;
        if (zf) zip_fclose(zf);
        if (got != (zip_int64_t)zs.size) st = clxp_err_set(err, CLXP_ERR_INTERNAL, "%s: cannot read merges.txt", what);
    }
    zip_discard(za);
    if (st == CLXP_OK) st = clip_vocab_from_merges(buf, (size_t)zs.size, what, out, len, err);
    free(buf);
    return st;
}
