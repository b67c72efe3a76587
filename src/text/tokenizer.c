/*
 * Byte-level BPE tokenizer driven by tokenizer.json — see tokenizer.h for the pipeline and divergences.
 *
 * Layout of this file:
 *   1. small containers (byte buffer, string map, pair map)
 *   2. UTF-8 and Unicode helpers
 *   3. regexes (PCRE2 with Oniguruma's iteration semantics)
 *   4. the tokenizer object
 *   5. encoding: added tokens, normalizers, pre-tokenizers, BPE, post-processing
 *   6. loading tokenizer.json
 *   7. public API
 *
 * Encoding works on a list of "pieces" (HF's PreTokenizedString splits): each stage reads the pieces
 * of the previous stage and writes a new list whose text lives in its own buffer, so no stage ever
 * reads from a buffer it is appending to. A piece either carries text still to be processed or is an
 * already identified added token (its id).
 */
#include "text/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "util/error.h"
#include "util/fileio.h"
#include "util/json.h"
#include "util/utf8.h"

/* ======================================================================================================
 * 1. Containers
 * ==================================================================================================== */

/* Make room for `need` items of `elem` bytes; returns the (possibly moved) array, NULL on failure with
 * the old array left valid. */
static void *grow(void *p, size_t *cap, size_t need, size_t elem) {
    if (p && need <= *cap) return p;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2) return NULL;
        c *= 2;
    }
    if (c > SIZE_MAX / elem) return NULL;
    void *q = realloc(p, c * elem);
    if (!q) return NULL;
    *cap = c;
    return q;
}

/* Growable byte string, always NUL-terminated once allocated. */
typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static int sb_reserve(sbuf *b, size_t extra) {
    if (extra > SIZE_MAX - b->n - 1) return 0;
    char *q = grow(b->p, &b->cap, b->n + extra + 1, 1);
    if (!q) return 0;
    b->p = q;
    return 1;
}

static int sb_add(sbuf *b, const void *s, size_t n) {
    if (!sb_reserve(b, n)) return 0;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return 1;
}

static void sb_clear(sbuf *b) {
    b->n = 0;
    if (b->p) b->p[0] = '\0';
}

static void sb_free(sbuf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a, then a final mix so the low bits are usable */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 32;
    h *= 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 29);
}

/* String -> int32 map with open addressing; keys are copied (NUL-terminated) into one buffer. */
typedef struct {
    size_t off;
    uint32_t len;
    int32_t val;
} smap_ent;

typedef struct {
    sbuf keys;
    smap_ent *ents;
    size_t n, cap;
    uint32_t *slots; /* 0: empty, else entry index + 1 */
    size_t mask;
} smap;

static long smap_find(const smap *m, const char *k, size_t n) {
    if (!m->slots) return -1;
    size_t h = (size_t)hash_bytes(k, n) & m->mask;
    for (;;) {
        uint32_t s = m->slots[h];
        if (!s) return -1;
        const smap_ent *e = &m->ents[s - 1];
        if (e->len == n && memcmp(m->keys.p + e->off, k, n) == 0) return (long)(s - 1);
        h = (h + 1) & m->mask;
    }
}

static int32_t smap_get(const smap *m, const char *k, size_t n) {
    long i = smap_find(m, k, n);
    return i < 0 ? -1 : m->ents[i].val;
}

static const char *smap_key(const smap *m, size_t i) { return m->keys.p + m->ents[i].off; }

static int smap_rehash(smap *m, size_t nslots) {
    uint32_t *s = calloc(nslots, sizeof *s);
    if (!s) return 0;
    for (size_t i = 0; i < m->n; i++) {
        size_t h = (size_t)hash_bytes(m->keys.p + m->ents[i].off, m->ents[i].len) & (nslots - 1);
        while (s[h]) h = (h + 1) & (nslots - 1);
        s[h] = (uint32_t)(i + 1);
    }
    free(m->slots);
    m->slots = s;
    m->mask = nslots - 1;
    return 1;
}

/* Insert or overwrite (a later duplicate key wins, as when serde fills a HashMap). 0 on failure. */
static int smap_put(smap *m, const char *k, size_t n, int32_t val) {
    long i = smap_find(m, k, n);
    if (i >= 0) {
        m->ents[i].val = val;
        return 1;
    }
    if (n > UINT32_MAX || m->n >= UINT32_MAX - 1) return 0;
    if (!m->slots || (m->n + 1) * 2 > m->mask + 1) {
        size_t ns = m->slots ? (m->mask + 1) * 2 : 64;
        if (!smap_rehash(m, ns)) return 0;
    }
    smap_ent *e = grow(m->ents, &m->cap, m->n + 1, sizeof *m->ents);
    if (!e) return 0;
    m->ents = e;
    size_t off = m->keys.n;
    if (!sb_add(&m->keys, k, n) || !sb_add(&m->keys, "", 1)) return 0;
    m->ents[m->n] = (smap_ent){off, (uint32_t)n, val};
    size_t h = (size_t)hash_bytes(k, n) & m->mask;
    while (m->slots[h]) h = (h + 1) & m->mask;
    m->slots[h] = (uint32_t)(m->n + 1);
    m->n++;
    return 1;
}

static void smap_free(smap *m) {
    sb_free(&m->keys);
    free(m->ents);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* (left id, right id) -> (rank, merged id), sized once for all merges. */
typedef struct {
    uint64_t key;
    uint32_t rank;
    int32_t new_id;
} pslot;

typedef struct {
    pslot *s;
    size_t mask;
} pmap;

#define PMAP_EMPTY UINT64_MAX

static uint64_t pair_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static size_t pair_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xFF51AFD7ED558CCDULL;
    k ^= k >> 33;
    return (size_t)k;
}

static int pmap_init(pmap *m, size_t n) {
    size_t sz = 16;
    while (sz < 2 * n + 2) sz *= 2;
    m->s = malloc(sz * sizeof *m->s);
    if (!m->s) return 0;
    for (size_t i = 0; i < sz; i++) m->s[i].key = PMAP_EMPTY;
    m->mask = sz - 1;
    return 1;
}

/* A later duplicate pair overwrites the earlier one, as HF's HashMap collect does. */
static void pmap_put(pmap *m, int32_t a, int32_t b, uint32_t rank, int32_t new_id) {
    uint64_t k = pair_key(a, b);
    size_t h = pair_hash(k) & m->mask;
    while (m->s[h].key != PMAP_EMPTY && m->s[h].key != k) h = (h + 1) & m->mask;
    m->s[h] = (pslot){k, rank, new_id};
}

static const pslot *pmap_get(const pmap *m, int32_t a, int32_t b) {
    if (!m->s) return NULL;
    uint64_t k = pair_key(a, b);
    size_t h = pair_hash(k) & m->mask;
    while (m->s[h].key != PMAP_EMPTY) {
        if (m->s[h].key == k) return &m->s[h];
        h = (h + 1) & m->mask;
    }
    return NULL;
}

/* ======================================================================================================
 * 2. UTF-8 / Unicode helpers (inputs are validated first, so decoding can trust the encoding)
 * ==================================================================================================== */

static size_t u8_len(char c) {
    unsigned char u = (unsigned char)c;
    return u < 0x80 ? 1 : u < 0xE0 ? 2 : u < 0xF0 ? 3 : 4;
}

static uint32_t u8_decode(const char *s, size_t *n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t l = u8_len(s[0]);
    uint32_t cp = l == 1 ? u[0] : l == 2 ? (u[0] & 0x1Fu) : l == 3 ? (u[0] & 0x0Fu) : (u[0] & 0x07u);
    for (size_t i = 1; i < l; i++) cp = (cp << 6) | (u[i] & 0x3Fu);
    *n = l;
    return cp;
}

static size_t u8_encode(uint32_t cp, char *o) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Start of the character that ends just before byte `end` (end > 0). */
static size_t u8_prev(const char *s, size_t end) {
    size_t k = end - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    return k;
}

/* Unicode White_Space: Rust's char::is_whitespace, the regex crate's and Oniguruma's \s. */
static int is_white_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* ======================================================================================================
 * 3. Regexes
 * ==================================================================================================== */

/* HF compiles patterns with Oniguruma (Ruby syntax). PCRE2 with UCP agrees except for a few classes:
 * \s there is White_Space (PCRE2 adds U+180E), \w is Letter|Mark|Number|Connector_Punctuation (PCRE2
 * 10.42: Letter|Number|'_'). Rewrite those; everything else is passed through. */
static int translate_regex(const char *p, size_t n, sbuf *out) {
    static const char word[] = "\\p{L}\\p{M}\\p{N}\\p{Pc}";
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char d = p[i + 1];
            int ok = 1;
            if (d == 'Q') { /* \Q...\E is literal text: copy it untouched */
                const char *e = NULL;
                for (size_t k = i + 2; k + 1 < n; k++)
                    if (p[k] == '\\' && p[k + 1] == 'E') {
                        e = p + k + 2;
                        break;
                    }
                size_t stop = e ? (size_t)(e - p) : n;
                if (!sb_add(out, p + i, stop - i)) return 0;
                i = stop - 1;
                continue;
            }
            if (d == 's')
                ok = sb_add(out, "\\p{White_Space}", 15);
            else if (d == 'S')
                ok = sb_add(out, "\\P{White_Space}", 15);
            else if (d == 'w' && in_class)
                ok = sb_add(out, word, sizeof word - 1);
            else if (d == 'w')
                ok = sb_add(out, "[", 1) && sb_add(out, word, sizeof word - 1) && sb_add(out, "]", 1);
            else if (d == 'W' && !in_class)
                ok = sb_add(out, "[^", 2) && sb_add(out, word, sizeof word - 1) && sb_add(out, "]", 1);
            else
                ok = sb_add(out, p + i, 2);
            if (!ok) return 0;
            i++;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = 1;
            if (!sb_add(out, "[", 1)) return 0;
            /* "[^]..." and "[]...": a ']' right after the opening is a literal, not the end */
            if (i + 1 < n && p[i + 1] == '^') {
                if (!sb_add(out, "^", 1)) return 0;
                i++;
            }
            if (i + 1 < n && p[i + 1] == ']') {
                if (!sb_add(out, "]", 1)) return 0;
                i++;
            }
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && p[i + 1] == ':') { /* POSIX class [:alpha:] */
            const char *e = NULL;
            for (size_t k = i + 2; k + 1 < n; k++)
                if (p[k] == ':' && p[k + 1] == ']') {
                    e = p + k + 2;
                    break;
                }
            if (e) {
                if (!sb_add(out, p + i, (size_t)(e - (p + i)))) return 0;
                i = (size_t)(e - p) - 1;
                continue;
            }
        }
        if (in_class && c == ']') in_class = 0;
        if (!sb_add(out, &c, 1)) return 0;
    }
    return sb_add(out, "", 0);
}

/* Compile a Regex (literal = 0) or String (literal = 1) pattern. `where` names the JSON field. */
static clxp_status re_compile(const char *pat, size_t n, int literal, pcre2_code **out, const char *what,
                              const char *where, clxp_error *err) {
    *out = NULL;
    size_t bad = 0;
    if (!clxp_utf8_valid(pat, n, &bad))
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: %s: pattern is not valid UTF-8", what, where);
    sbuf tr = {0};
    if (!literal && !translate_regex(pat, n, &tr)) {
        sb_free(&tr);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", what);
    }
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (!cc) {
        sb_free(&tr);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", what);
    }
    pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
    /* Ruby syntax: ^ and $ are line anchors. PCRE2_LITERAL accepts only a few other options. */
    uint32_t opt = PCRE2_UTF | PCRE2_NO_UTF_CHECK | (literal ? PCRE2_LITERAL : PCRE2_UCP | PCRE2_MULTILINE);
    int ec = 0;
    PCRE2_SIZE eo = 0;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)(literal ? pat : tr.p), literal ? n : tr.n, opt, &ec, &eo, cc);
    pcre2_compile_context_free(cc);
    sb_free(&tr);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: %s: bad regex \"%.80s\": %s", what, where, pat, (char *)msg);
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional: the interpreter is used when unavailable */
    *out = re;
    return CLXP_OK;
}

/* ======================================================================================================
 * 4. The tokenizer object
 * ==================================================================================================== */

typedef enum {
    N_NFC,
    N_NFD,
    N_NFKC,
    N_NFKD,
    N_LOWER,
    N_REPLACE,
    N_STRIP,
    N_PREPEND,
    N_STRIP_ACCENTS,
    N_BYTELEVEL
} norm_kind;

typedef struct {
    norm_kind kind;
    pcre2_code *re; /* Replace */
    char *str;      /* Replace content, Prepend text */
    size_t str_len;
    int left, right; /* Strip */
} norm_step;

typedef enum { P_SPLIT, P_BYTELEVEL } pre_kind;
enum { B_REMOVED, B_ISOLATED, B_MERGED_PREV, B_MERGED_NEXT, B_CONTIGUOUS };

typedef struct {
    pre_kind kind;
    pcre2_code *re; /* Split */
    int behavior, invert;
    int add_prefix_space, use_regex; /* ByteLevel */
} pre_step;

typedef struct {
    char *content; /* as written in the file */
    size_t len;
    char *norm; /* for normalized tokens: the content run through the normalizers (the pattern matched) */
    size_t norm_len;
    int32_t id;
    unsigned char single_word, lstrip, rstrip, normalized, special;
} added_tok;

/* Added tokens of one pass as a byte trie: walking it from a position gives the longest token starting
 * there, so scanning positions left to right gives HF's leftmost-longest Aho-Corasick matches. */
typedef struct {
    pmap edges;               /* (node, byte) -> child node (in new_id) */
    int32_t *term;            /* node -> index in added, or -1 */
    unsigned char first[256]; /* bytes some token starts with */
    size_t n_nodes;
} trie;

#define TMPL_SEQ (-1) /* template slot for the tokenized text */
#define TMPL_MAX 4096 /* bound on the composed post-processor template */
#define STEPS_MAX 64  /* bound on normalizers and on pre-tokenizers (the pipeline recurses per step) */

struct clxp_tokenizer {
    char *name; /* source named in every message */
    /* BPE model */
    smap vocab;
    int32_t *id_ent; /* id -> vocab entry index or -1 */
    size_t n_id_ent;
    pmap merges;
    char *prefix, *suffix; /* continuing_subword_prefix, end_of_word_suffix (NULL: none) */
    size_t prefix_len, suffix_len;
    int32_t unk_id; /* -1: no unk token, unknown characters are dropped */
    int fuse_unk, ignore_merges;
    /* added tokens */
    added_tok *added;
    size_t n_added, cap_added;
    smap added_map; /* content -> index in added */
    trie m_raw, m_norm;
    pcre2_code *word_re; /* \w for single_word checks; only when some token needs it */
    /* pipeline */
    norm_step *norms;
    size_t n_norms, cap_norms;
    pre_step *pres;
    size_t n_pres, cap_pres;
    pcre2_code *gpt2_re; /* ByteLevel's split regex */
    char bchar[256][2];  /* GPT-2 bytes_to_unicode, UTF-8 encoded */
    unsigned char bchar_len[256];
    int32_t *tmpl; /* post-processor: ids and TMPL_SEQ */
    size_t n_tmpl;
    int n_special; /* HF's added_tokens(false): tokens reserved by truncation */
    int32_t pad_id;
    int32_t max_id;
};

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to U+0100 + n in byte order. */
static void build_byte_map(clxp_tokenizer *t) {
    uint32_t n = 0;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        uint32_t cp = keep ? (uint32_t)b : 256 + n++;
        char o[4];
        size_t l = u8_encode(cp, o);
        memcpy(t->bchar[b], o, l);
        t->bchar_len[b] = (unsigned char)l;
    }
}

/* ======================================================================================================
 * 5. Encoding
 * ==================================================================================================== */

/* Words longer than TOK_BPE_CHUNK are run through BPE in pieces of that size (see tokenizer.h): a 1 MB
 * word would otherwise cost about a second in the priority queue. No real label comes near it. */
#define TOK_STOP 1 /* internal status: enough tokens for the truncation, unwind */

typedef struct {
    size_t s, e;
    int flag; /* is a match */
} span;

typedef struct {
    int32_t c, prev, next;
    uint32_t len; /* bytes covered; 0 once merged into its left neighbour */
} sym;

typedef struct {
    uint32_t rank, pos;
    int32_t new_id;
} hitem;

/* Per pipeline level: buffers for text that level produces (children only read them). */
typedef struct {
    sbuf a, b;
} level_buf;

/* Scratch memory of one tok_encode call (or of loading). */
typedef struct {
    const clxp_tokenizer *t;
    const char *name;
    clxp_error *err;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
    sbuf nb[2]; /* normalizer ping-pong buffers */
    sbuf key;   /* BPE vocabulary lookups */
    level_buf *lv;
    size_t n_lv;
    sym *syms;
    size_t cap_syms;
    hitem *heap;
    size_t n_heap, cap_heap;
    int32_t *ids; /* content ids produced by the model */
    size_t n_ids, cap_ids;
    long limit; /* stop once this many ids exist; -1: no limit */
    /* bytes of text the normalizers and byte-level steps may still produce (see text_budget): each step can
     * double the text, so a hostile pipeline of many would grow it exponentially */
    size_t budget;
} enc_ctx;

static void ctx_init(enc_ctx *c, const clxp_tokenizer *t, const char *name, clxp_error *err) {
    memset(c, 0, sizeof *c);
    c->t = t;
    c->name = name;
    c->err = err;
    c->limit = -1;
}

static void ctx_free(enc_ctx *c) {
    pcre2_match_data_free(c->md);
    pcre2_match_context_free(c->mctx);
    pcre2_jit_stack_free(c->jit);
    sb_free(&c->nb[0]);
    sb_free(&c->nb[1]);
    sb_free(&c->key);
    for (size_t i = 0; i < c->n_lv; i++) {
        sb_free(&c->lv[i].a);
        sb_free(&c->lv[i].b);
    }
    free(c->lv);
    free(c->syms);
    free(c->heap);
    free(c->ids);
}

static clxp_status nomem(enc_ctx *c) { return clxp_err_set(c->err, CLXP_ERR_NOMEM, "%s: out of memory", c->name); }

/* Charge n bytes of produced text to the budget; CLXP_ERR_LIMIT once it is spent. */
static clxp_status spend(enc_ctx *c, size_t n) {
    if (n <= c->budget) {
        c->budget -= n;
        return CLXP_OK;
    }
    return clxp_err_set(c->err, CLXP_ERR_LIMIT,
                        "%s: its normalizers and pre-tokenizers expand the text more than %dx (a pipeline real "
                        "tokenizers do not have)",
                        c->name, TOK_MAX_EXPANSION);
}

/* --- regex matching ---------------------------------------------------------------------------------- */

/* First match of re in s[0..n) at or after `start`: 1 with [*ms, *me), 0 if none, or an error status. */
static int re_search(enc_ctx *c, const pcre2_code *re, const char *s, size_t n, size_t start, uint32_t opts, size_t *ms,
                     size_t *me) {
    if (!c->md && !(c->md = pcre2_match_data_create(1, NULL))) return nomem(c);
    /* the text was validated once: no per-call UTF check (it would make matching quadratic) */
    int rc = pcre2_match(re, (PCRE2_SPTR)s, n, start, opts | PCRE2_NO_UTF_CHECK, c->md, c->mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !c->jit) { /* the default 32 KiB JIT stack ran out: use a big one */
        if (!(c->mctx = pcre2_match_context_create(NULL)) ||
            !(c->jit = pcre2_jit_stack_create(32 << 10, 64 << 20, NULL)))
            return nomem(c);
        pcre2_jit_stack_assign(c->mctx, NULL, c->jit);
        rc = pcre2_match(re, (PCRE2_SPTR)s, n, start, opts | PCRE2_NO_UTF_CHECK, c->md, c->mctx);
    }
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(rc, msg, sizeof msg);
        int lim = rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_HEAPLIMIT ||
                  rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_NOMEMORY;
        return clxp_err_set(c->err, lim ? CLXP_ERR_LIMIT : CLXP_ERR_INTERNAL, "%s: regex match failed: %s", c->name,
                            (char *)msg);
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
    if (ov[1] < ov[0] || ov[0] < start || ov[1] > n) /* \K tricks: refuse rather than misbehave */
        return clxp_err_set(c->err, CLXP_ERR_UNSUPPORTED, "%s: regex produced a match outside the text", c->name);
    *ms = ov[0];
    *me = ov[1];
    return 1;
}

/* HF's Pattern::find_matches for a regex, one span at a time: spans cover s[0..n), flag = is a match.
 * Matches follow Oniguruma's find_iter: an empty match right where the previous match ended is skipped
 * by advancing one character. An empty text gives one empty non-match span. */
typedef struct {
    const pcre2_code *re;
    const char *s;
    size_t n, prev, last_end, last_match_end;
    size_t pm_s, pm_e; /* a match held back while the gap before it is returned */
    int have_last, have_pm, done;
} span_iter;

static void span_iter_init(span_iter *it, const pcre2_code *re, const char *s, size_t n) {
    memset(it, 0, sizeof *it);
    it->re = re;
    it->s = s;
    it->n = n;
}

/* 1: *out is the next span; 0: no more; < 0: error. */
static int span_next(enc_ctx *c, span_iter *it, span *out) {
    if (it->have_pm) {
        it->have_pm = 0;
        *out = (span){it->pm_s, it->pm_e, 1};
        return 1;
    }
    if (it->done) return 0;
    if (it->n == 0) {
        it->done = 1;
        *out = (span){0, 0, 0};
        return 1;
    }
    while (it->last_end <= it->n) {
        size_t ms, me;
        int r = re_search(c, it->re, it->s, it->n, it->last_end, 0, &ms, &me);
        if (r < 0) return r;
        if (r == 0) break;
        if (ms == me && it->have_last && it->last_match_end == me) {
            it->last_end += it->last_end < it->n ? u8_len(it->s[it->last_end]) : 1;
            continue;
        }
        it->last_end = it->last_match_end = me;
        it->have_last = 1;
        size_t prev = it->prev;
        it->prev = me;
        if (prev != ms) {
            it->have_pm = 1;
            it->pm_s = ms;
            it->pm_e = me;
            *out = (span){prev, ms, 0};
        } else {
            *out = (span){ms, me, 1};
        }
        return 1;
    }
    it->done = 1;
    if (it->prev == it->n) return 0;
    *out = (span){it->prev, it->n, 0};
    it->prev = it->n;
    return 1;
}

/* NormalizedString::split over the spans of a Split pre-tokenizer, streamed with one span of look-ahead:
 *   Removed: drop the matches; Isolated: keep everything apart;
 *   MergedWithPrevious: a match joins the non-match before it; MergedWithNext: a match joins the
 *   non-match after it; Contiguous: neighbouring spans with the same flag join. */
typedef struct {
    span_iter it;
    int behavior, invert;
    span pend; /* held back: the next span may still join it */
    int have_pend, last;
} split_iter;

static int split_next(enc_ctx *c, split_iter *si, size_t *ps, size_t *pe) {
    for (;;) {
        span x;
        int r = span_next(c, &si->it, &x);
        if (r < 0) return r;
        if (r == 0) {
            if (!si->have_pend) return 0;
            si->have_pend = 0;
            *ps = si->pend.s, *pe = si->pend.e;
            return 1;
        }
        int m = si->invert ? !x.flag : x.flag, b = si->behavior;
        if (b == B_REMOVED && m) continue;
        if (b == B_REMOVED || b == B_ISOLATED) {
            *ps = x.s, *pe = x.e;
            return 1;
        }
        int merge = si->have_pend && (b == B_CONTIGUOUS    ? m == si->last
                                      : b == B_MERGED_PREV ? (m && !si->last)
                                                           : (si->last && !m));
        si->last = m;
        if (merge) {
            si->pend.e = x.e;
            continue;
        }
        span out = si->pend;
        int had = si->have_pend;
        si->pend = x;
        si->have_pend = 1;
        if (had) {
            *ps = out.s, *pe = out.e;
            return 1;
        }
    }
}

/* --- the pipeline, depth first ------------------------------------------------------------------------- *
 * Levels: 0 cuts the raw added tokens out of the text, 1 normalizes and cuts the normalized ones, 2.. are
 * the pre-tokenizers, the last is the BPE model. Every piece a level produces goes through all later
 * levels before the next piece is produced, so once truncation has enough tokens nothing more is done;
 * the order of the ids is that of HF's list of splits. */

static clxp_status emit_piece(enc_ctx *c, size_t level, const char *s, size_t n);

static int push_id(enc_ctx *c, int32_t id) {
    int32_t *v = grow(c->ids, &c->cap_ids, c->n_ids + 1, sizeof *c->ids);
    if (!v) return 0;
    c->ids = v;
    c->ids[c->n_ids++] = id;
    return 1;
}

static clxp_status limit_reached(const enc_ctx *c) {
    return c->limit >= 0 && c->n_ids >= (size_t)c->limit ? TOK_STOP : CLXP_OK;
}

/* An added token skips the remaining levels. */
static clxp_status emit_token(enc_ctx *c, int32_t id) { return push_id(c, id) ? limit_reached(c) : nomem(c); }

/* --- added tokens --------------------------------------------------------------------------------------- */

static const char *tok_pattern(const added_tok *a, int normalized, size_t *len) {
    if (normalized && a->norm) {
        *len = a->norm_len;
        return a->norm;
    }
    *len = a->len;
    return a->content;
}

/* Leftmost-longest added token in s[from..n): 1 with [*ms, *me) and the token. */
static int trie_find(const clxp_tokenizer *t, const trie *tr, const char *s, size_t n, size_t from, size_t *ms,
                     size_t *me, const added_tok **which) {
    if (tr->n_nodes <= 1) return 0;
    for (size_t pos = from; pos < n; pos++) {
        if (!tr->first[(unsigned char)s[pos]]) continue;
        int32_t node = 0, best = -1;
        for (size_t k = pos; k < n; k++) {
            const pslot *e = pmap_get(&tr->edges, node, (unsigned char)s[k]);
            if (!e) break;
            node = e->new_id;
            if (tr->term[node] >= 0) {
                best = tr->term[node];
                *me = k + 1;
            }
        }
        if (best >= 0) {
            *ms = pos;
            *which = &t->added[best];
            return 1;
        }
    }
    return 0;
}

/* Rust regex `\w` at byte `at` of s[0..n) (an anchored match of word_re). */
static clxp_status word_char_at(enc_ctx *c, const char *s, size_t n, size_t at, int *is_word) {
    size_t ms, me;
    int r = re_search(c, c->t->word_re, s, n, at, PCRE2_ANCHORED, &ms, &me);
    if (r < 0) return (clxp_status)r;
    *is_word = r;
    return CLXP_OK;
}

/* AddedVocabulary::find_matches + split_with_indices for one pass: cut s into text pieces (passed on to
 * level + 1) and added tokens. */
static clxp_status split_added(enc_ctx *c, size_t level, int normalized, const char *s, size_t n) {
    const clxp_tokenizer *t = c->t;
    const trie *tr = normalized ? &t->m_norm : &t->m_raw;
    size_t start_offset = 0, from = 0, ms, me;
    const added_tok *a;
    clxp_status st;
    while (trie_find(t, tr, s, n, from, &ms, &me, &a)) {
        from = me; /* the automaton resumes after the raw match, whatever happens to it below */
        size_t start = ms, stop = me;
        if (a->single_word) {
            int before = 0, after = 0;
            if (start > 0 && (st = word_char_at(c, s, start, u8_prev(s, start), &before)) != CLXP_OK) return st;
            if (stop < n && (st = word_char_at(c, s, n, stop, &after)) != CLXP_OK) return st;
            if (before || after) continue; /* not a whole word: leave it in the text */
        }
        if (a->lstrip) { /* swallow the whitespace before it, but not what a previous token took */
            size_t ns = start;
            while (ns > start_offset) {
                size_t p = u8_prev(s, ns), l;
                if (!is_white_space(u8_decode(s + p, &l))) break;
                ns = p;
            }
            start = ns;
        }
        if (a->rstrip) {
            while (stop < n) {
                size_t l;
                if (!is_white_space(u8_decode(s + stop, &l))) break;
                stop += l;
            }
        }
        if (start < start_offset) continue; /* starts inside the previous token's rstrip (see tokenizer.h) */
        if ((st = emit_piece(c, level + 1, s + start_offset, start - start_offset)) != CLXP_OK ||
            (st = emit_token(c, a->id)) != CLXP_OK)
            return st;
        start_offset = stop;
    }
    return emit_piece(c, level + 1, s + start_offset, n - start_offset);
}

/* --- normalizers ------------------------------------------------------------------------------------------ */

static int is_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) return 0;
    return 1;
}

static clxp_status norm_utf8proc(enc_ctx *c, utf8proc_option_t flags, const char *s, size_t n, sbuf *dst) {
    if (is_ascii(s, n)) return sb_add(dst, s, n) ? CLXP_OK : nomem(c); /* ASCII is in every normal form */
    if (n > (size_t)(PTRDIFF_MAX / 8)) return clxp_err_set(c->err, CLXP_ERR_LIMIT, "%s: text too long", c->name);
    utf8proc_uint8_t *o = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &o, flags);
    if (r < 0) {
        free(o);
        if (r == UTF8PROC_ERROR_NOMEM) return nomem(c);
        return clxp_err_set(c->err, CLXP_ERR_INTERNAL, "%s: unicode normalization failed: %s", c->name,
                            utf8proc_errmsg(r));
    }
    int ok = sb_add(dst, o, (size_t)r);
    free(o);
    return ok ? CLXP_OK : nomem(c);
}

static clxp_status norm_apply(enc_ctx *c, const norm_step *st, const char *s, size_t n, sbuf *dst) {
    const clxp_tokenizer *t = c->t;
    sb_clear(dst);
    if (!sb_reserve(dst, n)) return nomem(c);
    switch (st->kind) {
    case N_NFC: return norm_utf8proc(c, UTF8PROC_STABLE | UTF8PROC_COMPOSE, s, n, dst);
    case N_NFD: return norm_utf8proc(c, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE, s, n, dst);
    case N_NFKC: return norm_utf8proc(c, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT, s, n, dst);
    case N_NFKD: return norm_utf8proc(c, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, s, n, dst);
    case N_LOWER:
        /* Rust's char::to_lowercase: the simple mapping, except U+0130 which becomes "i" + U+0307 */
        for (size_t i = 0; i < n;) {
            char o[8];
            size_t l = 1, ol = 1;
            unsigned char b = (unsigned char)s[i];
            if (b < 0x80) {
                o[0] = (char)(b >= 'A' && b <= 'Z' ? b + 32 : b);
            } else {
                uint32_t cp = u8_decode(s + i, &l);
                if (cp == 0x130)
                    memcpy(o, "i\xCC\x87", ol = 3);
                else
                    ol = u8_encode((uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), o);
            }
            if (!sb_add(dst, o, ol)) return nomem(c);
            i += l;
        }
        return CLXP_OK;
    case N_REPLACE: {
        span_iter it;
        span x;
        int r;
        span_iter_init(&it, st->re, s, n);
        while ((r = span_next(c, &it, &x)) == 1) {
            int ok = x.flag ? sb_add(dst, st->str, st->str_len) : sb_add(dst, s + x.s, x.e - x.s);
            if (!ok) return nomem(c);
        }
        return r < 0 ? (clxp_status)r : CLXP_OK;
    }
    case N_STRIP: {
        size_t a = 0, b = n, l;
        if (st->left)
            while (a < n && is_white_space(u8_decode(s + a, &l))) a += l;
        if (st->right)
            while (b > a) {
                size_t p = u8_prev(s, b);
                if (!is_white_space(u8_decode(s + p, &l))) break;
                b = p;
            }
        return sb_add(dst, s + a, b - a) ? CLXP_OK : nomem(c);
    }
    case N_PREPEND:
        if (n > 0 && !sb_add(dst, st->str, st->str_len)) return nomem(c);
        return sb_add(dst, s, n) ? CLXP_OK : nomem(c);
    case N_STRIP_ACCENTS:
        for (size_t i = 0; i < n;) {
            size_t l;
            utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)u8_decode(s + i, &l));
            if (cat != UTF8PROC_CATEGORY_MN && cat != UTF8PROC_CATEGORY_MC && cat != UTF8PROC_CATEGORY_ME &&
                !sb_add(dst, s + i, l))
                return nomem(c);
            i += l;
        }
        return CLXP_OK;
    case N_BYTELEVEL:
        for (size_t i = 0; i < n; i++) {
            unsigned char b = (unsigned char)s[i];
            if (!sb_add(dst, t->bchar[b], t->bchar_len[b])) return nomem(c);
        }
        return CLXP_OK;
    }
    return clxp_err_set(c->err, CLXP_ERR_INTERNAL, "%s: bad normalizer", c->name);
}

/* Run every normalizer on s; the result is s itself or one of the context's buffers. */
static clxp_status run_normalizers(enc_ctx *c, const char *s, size_t n, const char **res, size_t *res_n) {
    const char *cur = s;
    size_t cur_n = n;
    for (size_t i = 0; i < c->t->n_norms; i++) {
        sbuf *dst = &c->nb[i & 1];
        clxp_status st = norm_apply(c, &c->t->norms[i], cur, cur_n, dst);
        if (st == CLXP_OK) st = spend(c, dst->n);
        if (st != CLXP_OK) return st;
        cur = dst->p;
        cur_n = dst->n;
    }
    *res = cur;
    *res_n = cur_n;
    return CLXP_OK;
}

/* --- pre-tokenizers -------------------------------------------------------------------------------------- */

static clxp_status pre_split(enc_ctx *c, size_t level, const pre_step *ps, const char *s, size_t n) {
    split_iter si = {.behavior = ps->behavior, .invert = ps->invert};
    span_iter_init(&si.it, ps->re, s, n);
    size_t a, b;
    int r;
    while ((r = split_next(c, &si, &a, &b)) == 1) {
        clxp_status st = emit_piece(c, level + 1, s + a, b - a);
        if (st != CLXP_OK) return st;
    }
    return (clxp_status)r;
}

/* Map s through bytes_to_unicode into dst. */
static int bytelevel_map(const clxp_tokenizer *t, const char *s, size_t n, sbuf *dst) {
    sb_clear(dst);
    if (!sb_reserve(dst, 2 * n)) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        memcpy(dst->p + dst->n, t->bchar[b], t->bchar_len[b]);
        dst->n += t->bchar_len[b];
    }
    dst->p[dst->n] = '\0';
    return 1;
}

static clxp_status pre_bytelevel(enc_ctx *c, size_t level, const pre_step *ps, const char *s, size_t n) {
    const clxp_tokenizer *t = c->t;
    level_buf *lb = &c->lv[level];
    if (ps->add_prefix_space && s[0] != ' ') { /* every piece gets it, as in HF */
        sb_clear(&lb->a);
        if (!sb_add(&lb->a, " ", 1) || !sb_add(&lb->a, s, n)) return nomem(c);
        s = lb->a.p;
        n = lb->a.n;
    }
    if (!ps->use_regex) {
        if (!bytelevel_map(t, s, n, &lb->b)) return nomem(c);
        clxp_status st = spend(c, lb->b.n);
        return st != CLXP_OK ? st : emit_piece(c, level + 1, lb->b.p, lb->b.n);
    }
    span_iter it;
    span x;
    int r;
    span_iter_init(&it, t->gpt2_re, s, n);
    while ((r = span_next(c, &it, &x)) == 1) { /* Isolated: matches and gaps alike */
        if (x.e == x.s) continue;
        if (!bytelevel_map(t, s + x.s, x.e - x.s, &lb->b)) return nomem(c);
        clxp_status st = spend(c, lb->b.n);
        if (st == CLXP_OK) st = emit_piece(c, level + 1, lb->b.p, lb->b.n);
        if (st != CLXP_OK) return st;
    }
    return (clxp_status)r;
}

/* --- BPE ------------------------------------------------------------------------------------------------- */

static int hless(const hitem *a, const hitem *b) { return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos; }

static int heap_push(enc_ctx *c, hitem it) {
    hitem *h = grow(c->heap, &c->cap_heap, c->n_heap + 1, sizeof *c->heap);
    if (!h) return 0;
    c->heap = h;
    size_t i = c->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hless(&it, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = it;
    return 1;
}

static hitem heap_pop(enc_ctx *c) {
    hitem *h = c->heap, top = h[0], last = h[--c->n_heap];
    size_t n = c->n_heap, i = 0;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= n) break;
        size_t m = (l + 1 < n && hless(&h[l + 1], &h[l])) ? l + 1 : l;
        if (!hless(&h[m], &last)) break;
        h[i] = h[m];
        i = m;
    }
    if (n > 0) h[i] = last;
    return top;
}

/* Word::merge_all on sy[0..ns): repeatedly apply the lowest-ranked merge, leftmost first, through a
 * priority queue (O(n log n)). Stale queue entries are recognised as in HF: the pair at that position no
 * longer merges into the same token. */
static clxp_status bpe_merge(enc_ctx *c, sym *sy, size_t ns) {
    const clxp_tokenizer *t = c->t;
    c->n_heap = 0;
    for (size_t k = 0; k + 1 < ns; k++) {
        const pslot *m = pmap_get(&t->merges, sy[k].c, sy[k + 1].c);
        if (m && !heap_push(c, (hitem){m->rank, (uint32_t)k, m->new_id})) return nomem(c);
    }
    while (c->n_heap > 0) {
        hitem top = heap_pop(c);
        sym *l = &sy[top.pos];
        if (l->len == 0 || l->next < 0) continue; /* merged away, or now the last symbol */
        sym *r = &sy[l->next];
        const pslot *m = pmap_get(&t->merges, l->c, r->c);
        if (!m || m->new_id != top.new_id) continue;
        l->c = top.new_id;
        l->len += r->len;
        l->next = r->next;
        r->len = 0;
        if (l->next >= 0) sy[l->next].prev = (int32_t)top.pos;
        if (l->prev >= 0 && (m = pmap_get(&t->merges, sy[l->prev].c, l->c)) &&
            !heap_push(c, (hitem){m->rank, (uint32_t)l->prev, m->new_id}))
            return nomem(c);
        if (l->next >= 0 && (m = pmap_get(&t->merges, l->c, sy[l->next].c)) &&
            !heap_push(c, (hitem){m->rank, top.pos, m->new_id}))
            return nomem(c);
    }
    for (size_t k = 0; k < ns; k++)
        if (sy[k].len != 0 && !push_id(c, sy[k].c)) return nomem(c);
    return CLXP_OK;
}

/* BPE::merge_word for w[a..b) of the word w[0..n): one symbol per character, the continuing-subword
 * prefix on all but the word's first character and the end-of-word suffix on its last; characters not
 * in the vocabulary become the unk token (fused if fuse_unk) or vanish when there is none. */
static clxp_status bpe_range(enc_ctx *c, const char *w, size_t n, size_t a, size_t b) {
    const clxp_tokenizer *t = c->t;
    sym *sy = grow(c->syms, &c->cap_syms, b - a, sizeof *c->syms);
    if (!sy) return nomem(c);
    c->syms = sy;
    size_t ns = 0;
    int32_t unk = -1;
    uint32_t unk_len = 0;
#define ADD_SYM(id_, len_)                                                                                             \
    do {                                                                                                               \
        sy[ns] = (sym){(id_), (int32_t)ns - 1, -1, (len_)};                                                            \
        if (ns > 0) sy[ns - 1].next = (int32_t)ns;                                                                     \
        ns++;                                                                                                          \
    } while (0)
    for (size_t i = a; i < b;) {
        size_t cl = u8_len(w[i]);
        sb_clear(&c->key);
        if ((i > 0 && t->prefix && !sb_add(&c->key, t->prefix, t->prefix_len)) || !sb_add(&c->key, w + i, cl) ||
            (i + cl >= n && t->suffix && !sb_add(&c->key, t->suffix, t->suffix_len)))
            return nomem(c);
        int32_t id = smap_get(&t->vocab, c->key.p, c->key.n);
        if (id >= 0) {
            if (unk >= 0) ADD_SYM(unk, unk_len);
            unk = -1;
            ADD_SYM(id, (uint32_t)cl);
        } else if (t->unk_id >= 0) {
            if (unk >= 0 && t->fuse_unk) {
                unk_len += (uint32_t)cl;
            } else {
                if (unk >= 0) ADD_SYM(unk, unk_len);
                unk = t->unk_id;
                unk_len = (uint32_t)cl;
            }
        }
        i += cl;
    }
    if (unk >= 0) ADD_SYM(unk, unk_len);
#undef ADD_SYM
    return bpe_merge(c, sy, ns);
}

static clxp_status bpe_word(enc_ctx *c, const char *w, size_t n) {
    const clxp_tokenizer *t = c->t;
    if (t->ignore_merges) {
        int32_t id = smap_get(&t->vocab, w, n);
        if (id >= 0) return emit_token(c, id);
    }
    for (size_t a = 0; a < n;) {
        size_t b = n;
        if (n - a > TOK_BPE_CHUNK) { /* giant word: cut at a character boundary */
            b = a + TOK_BPE_CHUNK;
            while (((unsigned char)w[b] & 0xC0) == 0x80) b--;
        }
        clxp_status st = bpe_range(c, w, n, a, b);
        if (st == CLXP_OK) st = limit_reached(c);
        if (st != CLXP_OK) return st;
        a = b;
    }
    return CLXP_OK;
}

/* --- dispatch -------------------------------------------------------------------------------------------- */

static clxp_status emit_piece(enc_ctx *c, size_t level, const char *s, size_t n) {
    const clxp_tokenizer *t = c->t;
    if (n == 0) return CLXP_OK; /* HF drops empty splits */
    if (level == 0) return split_added(c, 0, 0, s, n);
    if (level == 1) {
        const char *r;
        size_t rn;
        clxp_status st = run_normalizers(c, s, n, &r, &rn);
        return st != CLXP_OK ? st : split_added(c, 1, 1, r, rn);
    }
    if (level - 2 < t->n_pres) {
        const pre_step *ps = &t->pres[level - 2];
        return ps->kind == P_SPLIT ? pre_split(c, level, ps, s, n) : pre_bytelevel(c, level, ps, s, n);
    }
    return bpe_word(c, s, n);
}

/* Tokenize text into c->ids (content only). limit >= 0: stop once that many ids exist (HF's
 * tokenize_with_limit; the caller truncates). */
static clxp_status encode_content(enc_ctx *c, const char *text, size_t len, long limit) {
    c->limit = limit;
    c->n_ids = 0;
    c->budget = (len + 4096) * TOK_MAX_EXPANSION;
    c->n_lv = c->t->n_pres + 3;
    if (!(c->lv = calloc(c->n_lv, sizeof *c->lv))) return nomem(c);
    if (limit == 0) return CLXP_OK;
    clxp_status st = emit_piece(c, 0, text, len);
    return st == TOK_STOP ? CLXP_OK : st;
}

/* ======================================================================================================
 * 6. Loading
 * ==================================================================================================== */

/* A JSON member, NULL when absent or null. */
static const cJSON *jget(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static clxp_status jbool(const cJSON *o, const char *k, int def, int *out, const char *what, const char *ctx,
                         clxp_error *err) {
    const cJSON *v = jget(o, k);
    if (!v) {
        *out = def;
        return CLXP_OK;
    }
    if (!cJSON_IsBool(v)) return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: %s.%s must be true or false", what, ctx, k);
    *out = cJSON_IsTrue(v);
    return CLXP_OK;
}

/* Optional string member (NULL when absent/null); present but not a string is an error. */
static clxp_status jstr(const cJSON *o, const char *k, const char **out, const char *what, const char *ctx,
                        clxp_error *err) {
    const cJSON *v = jget(o, k);
    *out = NULL;
    if (!v) return CLXP_OK;
    if (!cJSON_IsString(v)) return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: %s.%s must be a string", what, ctx, k);
    *out = v->valuestring;
    return CLXP_OK;
}

static int json_id(const cJSON *v, int32_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d < TOK_MAX_ID) || d != floor(d)) return 0;
    *out = (int32_t)d;
    return 1;
}

static char *dup_bytes(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* --- model --------------------------------------------------------------------------------------------- */

static clxp_status parse_merge(const cJSON *m, size_t i, const char **a, size_t *al, const char **b, size_t *bl,
                               const char *what, clxp_error *err) {
    if (cJSON_IsString(m)) { /* "a b": exactly one space */
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' '))
            return clxp_err_set(err, CLXP_ERR_FORMAT,
                                "%s: model.merges[%zu] \"%.60s\" is not two tokens separated by "
                                "one space",
                                what, i, s);
        *a = s, *al = (size_t)(sp - s), *b = sp + 1, *bl = strlen(sp + 1);
        return CLXP_OK;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) && cJSON_IsString(m->child->next)) {
        *a = m->child->valuestring, *al = strlen(*a);
        *b = m->child->next->valuestring, *bl = strlen(*b);
        return CLXP_OK;
    }
    return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: model.merges[%zu] must be \"a b\" or [\"a\", \"b\"]", what, i);
}

static clxp_status parse_merges(clxp_tokenizer *t, const cJSON *merges, const char *what, clxp_error *err) {
    if (!pmap_init(&t->merges, (size_t)cJSON_GetArraySize(merges)))
        return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", what);
    sbuf nt = {0};
    uint32_t rank = 0;
    size_t i = 0;
    clxp_status st = CLXP_OK;
    for (const cJSON *m = merges->child; m && st == CLXP_OK; m = m->next, i++) {
        if (cJSON_IsString(m) && strncmp(m->valuestring, "#version", 8) == 0) continue; /* merges.txt header */
        const char *a = NULL, *b = NULL;
        size_t al = 0, bl = 0;
        if ((st = parse_merge(m, i, &a, &al, &b, &bl, what, err)) != CLXP_OK) break;
        int32_t ia = smap_get(&t->vocab, a, al), ib = smap_get(&t->vocab, b, bl);
        if (ia < 0 || ib < 0) {
            st = clxp_err_set(err, CLXP_ERR_FORMAT,
                              "%s: model.merges[%zu] uses token \"%.60s\" which is not in the "
                              "vocabulary",
                              what, i, ia < 0 ? a : b);
            break;
        }
        /* merged token = a + b without b's continuing-subword prefix */
        size_t skip = t->prefix_len;
        if (skip > bl) {
            st = clxp_err_set(err, CLXP_ERR_FORMAT,
                              "%s: model.merges[%zu]: \"%.60s\" is shorter than the "
                              "continuing_subword_prefix",
                              what, i, b);
            break;
        }
        sb_clear(&nt);
        if (!sb_add(&nt, a, al) || !sb_add(&nt, b + skip, bl - skip)) {
            st = clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", what);
            break;
        }
        int32_t inew = smap_get(&t->vocab, nt.p, nt.n);
        if (inew < 0) {
            st = clxp_err_set(err, CLXP_ERR_FORMAT,
                              "%s: model.merges[%zu] makes \"%.60s\" which is not in the "
                              "vocabulary",
                              what, i, nt.p);
            break;
        }
        pmap_put(&t->merges, ia, ib, rank++, inew);
    }
    sb_free(&nt);
    return st;
}

static clxp_status parse_model(clxp_tokenizer *t, const cJSON *model, const char *what, clxp_error *err) {
    if (!model) return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: missing \"model\" section", what);
    if (!cJSON_IsObject(model)) return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: \"model\" must be an object", what);
    const char *type, *unk, *prefix, *suffix;
    clxp_status st;
    if ((st = jstr(model, "type", &type, what, "model", err)) != CLXP_OK) return st;
    if (type && strcmp(type, "BPE") != 0)
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: unsupported model type \"%.60s\" (only BPE)", what, type);
    int byte_fallback, dropout_set = 0;
    if ((st = jbool(model, "byte_fallback", 0, &byte_fallback, what, "model", err)) != CLXP_OK ||
        (st = jbool(model, "fuse_unk", 0, &t->fuse_unk, what, "model", err)) != CLXP_OK ||
        (st = jbool(model, "ignore_merges", 0, &t->ignore_merges, what, "model", err)) != CLXP_OK ||
        (st = jstr(model, "unk_token", &unk, what, "model", err)) != CLXP_OK ||
        (st = jstr(model, "continuing_subword_prefix", &prefix, what, "model", err)) != CLXP_OK ||
        (st = jstr(model, "end_of_word_suffix", &suffix, what, "model", err)) != CLXP_OK)
        return st;
    if (byte_fallback) return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: model.byte_fallback is not supported", what);
    const cJSON *dropout = jget(model, "dropout");
    if (dropout) {
        if (!cJSON_IsNumber(dropout))
            return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: model.dropout must be a number", what);
        dropout_set = dropout->valuedouble != 0.0;
    }
    if (dropout_set) /* HF would drop merges at random: not reproducible */
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: model.dropout must be 0 or null", what);
    if ((prefix && !(t->prefix = dup_bytes(prefix, strlen(prefix)))) ||
        (suffix && !(t->suffix = dup_bytes(suffix, strlen(suffix)))))
        return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", what);
    t->prefix_len = prefix ? strlen(prefix) : 0;
    t->suffix_len = suffix ? strlen(suffix) : 0;

    const cJSON *vocab = jget(model, "vocab"), *merges = jget(model, "merges");
    if (!cJSON_IsObject(vocab)) return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: model.vocab must be an object", what);
    if (!cJSON_IsArray(merges)) return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: model.merges must be an array", what);
    int32_t max_id = -1;
    for (const cJSON *v = vocab->child; v; v = v->next) {
        int32_t id;
        if (!json_id(v, &id))
            return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: model.vocab[\"%.60s\"] must be an integer id in [0, %d)",
                                what, v->string, TOK_MAX_ID);
        if (!smap_put(&t->vocab, v->string, strlen(v->string), id))
            return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", what);
        if (id > max_id) max_id = id;
    }
    t->n_id_ent = (size_t)(max_id + 1);
    if (t->n_id_ent && !(t->id_ent = malloc(t->n_id_ent * sizeof *t->id_ent)))
        return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", what);
    for (size_t i = 0; i < t->n_id_ent; i++) t->id_ent[i] = -1;
    for (size_t i = 0; i < t->vocab.n; i++) t->id_ent[t->vocab.ents[i].val] = (int32_t)i;
    t->max_id = max_id;

    t->unk_id = -1;
    if (unk) { /* HF fails on the first unknown character instead; refusing early is clearer */
        t->unk_id = smap_get(&t->vocab, unk, strlen(unk));
        if (t->unk_id < 0)
            return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: model.unk_token \"%.60s\" is not in the vocabulary", what,
                                unk);
    }
    return parse_merges(t, merges, what, err);
}

/* --- normalizers / pre-tokenizers / post-processors -------------------------------------------------- */

/* {"String": "..."} or {"Regex": "..."} */
static clxp_status parse_pattern(const cJSON *o, const char *what, const char *ctx, pcre2_code **re, clxp_error *err) {
    const cJSON *p = jget(o, "pattern");
    const cJSON *s = p ? jget(p, "String") : NULL, *r = p ? jget(p, "Regex") : NULL;
    if (!cJSON_IsObject(p) || (!s == !r) || !cJSON_IsString(s ? s : r))
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: %s.pattern must be {\"String\": ...} or {\"Regex\": ...}", what,
                            ctx);
    const char *pat = (s ? s : r)->valuestring;
    return re_compile(pat, strlen(pat), s != NULL, re, what, ctx, err);
}

static clxp_status get_type(const cJSON *o, const char *what, const char *ctx, const char **type, clxp_error *err) {
    if (!cJSON_IsObject(o)) return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: %s must be an object", what, ctx);
    clxp_status st = jstr(o, "type", type, what, ctx, err);
    if (st == CLXP_OK && !*type) st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: %s has no \"type\"", what, ctx);
    return st;
}

static clxp_status parse_normalizer(clxp_tokenizer *t, const cJSON *j, const char *what, clxp_error *err) {
    const char *type;
    clxp_status st = get_type(j, what, "normalizer", &type, err);
    if (st != CLXP_OK) return st;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = jget(j, "normalizers");
        if (!cJSON_IsArray(list))
            return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: normalizer Sequence needs a \"normalizers\" array", what);
        for (const cJSON *e = list->child; e && st == CLXP_OK; e = e->next) st = parse_normalizer(t, e, what, err);
        return st;
    }
    norm_step ns = {0};
    static const struct {
        const char *name;
        norm_kind kind;
    } simple[] = {{"NFC", N_NFC},
                  {"NFD", N_NFD},
                  {"NFKC", N_NFKC},
                  {"NFKD", N_NFKD},
                  {"Lowercase", N_LOWER},
                  {"StripAccents", N_STRIP_ACCENTS},
                  {"ByteLevel", N_BYTELEVEL}};
    size_t k;
    for (k = 0; k < sizeof simple / sizeof *simple; k++)
        if (strcmp(type, simple[k].name) == 0) break;
    if (k < sizeof simple / sizeof *simple) {
        ns.kind = simple[k].kind;
    } else if (strcmp(type, "Replace") == 0) {
        const char *content;
        ns.kind = N_REPLACE;
        if ((st = jstr(j, "content", &content, what, "normalizer", err)) != CLXP_OK) return st;
        if (!content) return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: normalizer Replace needs a \"content\"", what);
        if (!(ns.str = dup_bytes(content, strlen(content))))
            return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", what);
        ns.str_len = strlen(content);
        if ((st = parse_pattern(j, what, "normalizer Replace", &ns.re, err)) != CLXP_OK) {
            free(ns.str);
            return st;
        }
    } else if (strcmp(type, "Strip") == 0) {
        ns.kind = N_STRIP;
        if ((st = jbool(j, "strip_left", 1, &ns.left, what, "normalizer", err)) != CLXP_OK ||
            (st = jbool(j, "strip_right", 1, &ns.right, what, "normalizer", err)) != CLXP_OK)
            return st;
    } else if (strcmp(type, "Prepend") == 0) {
        const char *pre;
        ns.kind = N_PREPEND;
        if ((st = jstr(j, "prepend", &pre, what, "normalizer", err)) != CLXP_OK) return st;
        if (!pre) return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: normalizer Prepend needs a \"prepend\" string", what);
        if (!(ns.str = dup_bytes(pre, strlen(pre))))
            return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", what);
        ns.str_len = strlen(pre);
    } else {
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: unsupported normalizer type \"%.60s\"", what, type);
    }
    norm_step *v = t->n_norms < STEPS_MAX ? grow(t->norms, &t->cap_norms, t->n_norms + 1, sizeof *t->norms) : NULL;
    if (!v) {
        free(ns.str);
        pcre2_code_free(ns.re);
        if (t->n_norms >= STEPS_MAX)
            return clxp_err_set(err, CLXP_ERR_LIMIT, "%s: more than %d normalizers", what, STEPS_MAX);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", what);
    }
    t->norms = v;
    t->norms[t->n_norms++] = ns;
    return CLXP_OK;
}

static const char GPT2_REGEX[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static clxp_status parse_pretokenizer(clxp_tokenizer *t, const cJSON *j, const char *what, clxp_error *err) {
    const char *type;
    clxp_status st = get_type(j, what, "pre_tokenizer", &type, err);
    if (st != CLXP_OK) return st;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = jget(j, "pretokenizers");
        if (!cJSON_IsArray(list))
            return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: pre_tokenizer Sequence needs a \"pretokenizers\" array",
                                what);
        for (const cJSON *e = list->child; e && st == CLXP_OK; e = e->next) st = parse_pretokenizer(t, e, what, err);
        return st;
    }
    pre_step ps = {0};
    if (strcmp(type, "Split") == 0) {
        static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
        const char *beh;
        ps.kind = P_SPLIT;
        if ((st = jstr(j, "behavior", &beh, what, "pre_tokenizer Split", err)) != CLXP_OK ||
            (st = jbool(j, "invert", 0, &ps.invert, what, "pre_tokenizer Split", err)) != CLXP_OK)
            return st;
        ps.behavior = -1;
        for (int k = 0; beh && k < 5; k++)
            if (strcmp(beh, names[k]) == 0) ps.behavior = k; /* same order as the B_* constants */
        if (ps.behavior < 0)
            return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: pre_tokenizer Split: unknown behavior \"%.40s\"", what,
                                beh ? beh : "(missing)");
        if ((st = parse_pattern(j, what, "pre_tokenizer Split", &ps.re, err)) != CLXP_OK) return st;
    } else if (strcmp(type, "ByteLevel") == 0) {
        ps.kind = P_BYTELEVEL;
        if ((st = jbool(j, "add_prefix_space", 1, &ps.add_prefix_space, what, "pre_tokenizer ByteLevel", err)) !=
                CLXP_OK ||
            (st = jbool(j, "use_regex", 1, &ps.use_regex, what, "pre_tokenizer ByteLevel", err)) != CLXP_OK)
            return st;
        if (ps.use_regex && !t->gpt2_re &&
            (st = re_compile(GPT2_REGEX, sizeof GPT2_REGEX - 1, 0, &t->gpt2_re, what, "ByteLevel", err)) != CLXP_OK)
            return st;
    } else {
        return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: unsupported pre_tokenizer type \"%.60s\"", what, type);
    }
    pre_step *v = t->n_pres < STEPS_MAX ? grow(t->pres, &t->cap_pres, t->n_pres + 1, sizeof *t->pres) : NULL;
    if (!v) {
        pcre2_code_free(ps.re);
        if (t->n_pres >= STEPS_MAX)
            return clxp_err_set(err, CLXP_ERR_LIMIT, "%s: more than %d pre-tokenizers", what, STEPS_MAX);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", what);
    }
    t->pres = v;
    t->pres[t->n_pres++] = ps;
    return CLXP_OK;
}

/* Apply one more post-processor after the current ones: its template, with every TMPL_SEQ replaced by the
 * current template. n_special adds up as in HF (PostProcessor::added_tokens of a Sequence is the sum). */
static clxp_status compose_post(clxp_tokenizer *t, const int32_t *p, size_t np, int n_special, const char *what,
                                clxp_error *err) {
    size_t total = 0;
    for (size_t i = 0; i < np; i++) total += p[i] == TMPL_SEQ ? t->n_tmpl : 1;
    if (total > TMPL_MAX)
        return clxp_err_set(err, CLXP_ERR_LIMIT, "%s: post_processor template longer than %d tokens", what, TMPL_MAX);
    int32_t *nt = malloc((total ? total : 1) * sizeof *nt);
    if (!nt) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", what);
    size_t w = 0;
    for (size_t i = 0; i < np; i++) {
        if (p[i] != TMPL_SEQ) {
            nt[w++] = p[i];
        } else {
            memcpy(nt + w, t->tmpl, t->n_tmpl * sizeof *nt);
            w += t->n_tmpl;
        }
    }
    free(t->tmpl);
    t->tmpl = nt;
    t->n_tmpl = w;
    t->n_special += n_special;
    return CLXP_OK;
}

/* ["<s>", 0] as used by RobertaProcessing / BertProcessing */
static clxp_status parse_tok_pair(const cJSON *j, const char *key, int32_t *id, const char *what, clxp_error *err) {
    const cJSON *v = jget(j, key);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || !cJSON_IsString(v->child) || !json_id(v->child->next, id))
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: post_processor.%s must be [\"token\", id]", what, key);
    return CLXP_OK;
}

/* One TemplateProcessing piece: {"Sequence": {"id": "A"}} / {"SpecialToken": {"id": "<s>"}} or the string
 * forms "$A", "$0", "<s>", "<s>:1". Appends TMPL_SEQ or the special token's ids to buf. */
static clxp_status template_piece(const cJSON *pc, const cJSON *specials, sbuf *buf, int *n_special, const char *what,
                                  clxp_error *err) {
    const char *seq = NULL, *special = NULL;
    char tmp[256];
    if (cJSON_IsString(pc)) {
        snprintf(tmp, sizeof tmp, "%s", pc->valuestring);
        char *colon = strrchr(tmp, ':');
        if (colon) *colon = '\0'; /* the type id does not matter for input ids */
        if (tmp[0] == '$')
            seq = tmp[1] ? tmp + 1 : "A";
        else
            special = tmp;
    } else if (cJSON_IsObject(pc) && jget(pc, "Sequence")) {
        const cJSON *id = jget(jget(pc, "Sequence"), "id");
        seq = cJSON_IsString(id) ? id->valuestring : "";
    } else if (cJSON_IsObject(pc) && jget(pc, "SpecialToken")) {
        const cJSON *id = jget(jget(pc, "SpecialToken"), "id");
        if (!cJSON_IsString(id))
            return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: post_processor: SpecialToken without id", what);
        special = id->valuestring;
    } else {
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: post_processor: bad template piece", what);
    }
    if (seq) {
        /* "$A", "$a" and "$<type id>" all mean the first sequence; a single sequence has no B */
        int digits = seq[0] != '\0';
        for (const char *q = seq; *q; q++) digits &= *q >= '0' && *q <= '9';
        if (strcmp(seq, "A") != 0 && strcmp(seq, "a") != 0 && !digits)
            return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: post_processor: the single template uses sequence \"%.20s\"",
                                what, seq);
        int32_t m = TMPL_SEQ;
        return sb_add(buf, &m, sizeof m) ? CLXP_OK : clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", what);
    }
    const cJSON *sp = specials ? jget(specials, special) : NULL;
    const cJSON *ids = sp ? jget(sp, "ids") : NULL;
    if (!cJSON_IsArray(ids))
        return clxp_err_set(err, CLXP_ERR_FORMAT,
                            "%s: post_processor: special token \"%.60s\" is not in special_tokens", what, special);
    for (const cJSON *e = ids->child; e; e = e->next) {
        int32_t id;
        if (!json_id(e, &id))
            return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: post_processor: bad id for \"%.60s\"", what, special);
        if (!sb_add(buf, &id, sizeof id)) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", what);
        ++*n_special;
        if (buf->n / sizeof id > TMPL_MAX)
            return clxp_err_set(err, CLXP_ERR_LIMIT, "%s: post_processor template longer than %d tokens", what,
                                TMPL_MAX);
    }
    return CLXP_OK;
}

static clxp_status parse_postprocessor(clxp_tokenizer *t, const cJSON *j, const char *what, clxp_error *err) {
    const char *type;
    clxp_status st = get_type(j, what, "post_processor", &type, err);
    if (st != CLXP_OK) return st;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = jget(j, "processors");
        if (!cJSON_IsArray(list))
            return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: post_processor Sequence needs a \"processors\" array", what);
        for (const cJSON *e = list->child; e && st == CLXP_OK; e = e->next) st = parse_postprocessor(t, e, what, err);
        return st;
    }
    if (strcmp(type, "ByteLevel") == 0) return CLXP_OK; /* only trims offsets */
    if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0) {
        int32_t p[3] = {0, TMPL_SEQ, 0};
        if ((st = parse_tok_pair(j, "cls", &p[0], what, err)) != CLXP_OK ||
            (st = parse_tok_pair(j, "sep", &p[2], what, err)) != CLXP_OK)
            return st;
        return compose_post(t, p, 3, 2, what, err);
    }
    if (strcmp(type, "TemplateProcessing") == 0) {
        const cJSON *single = jget(j, "single"), *specials = jget(j, "special_tokens");
        if (!cJSON_IsArray(single))
            return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: post_processor TemplateProcessing needs a \"single\" array",
                                what);
        if (specials && !cJSON_IsObject(specials))
            return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: post_processor.special_tokens must be an object", what);
        sbuf buf = {0};
        int n_special = 0;
        for (const cJSON *pc = single->child; pc && st == CLXP_OK; pc = pc->next)
            st = template_piece(pc, specials, &buf, &n_special, what, err);
        if (st == CLXP_OK)
            st = compose_post(t, (const int32_t *)(void *)buf.p, buf.n / sizeof(int32_t), n_special, what, err);
        sb_free(&buf);
        return st;
    }
    return clxp_err_set(err, CLXP_ERR_UNSUPPORTED, "%s: unsupported post_processor type \"%.60s\"", what, type);
}

/* --- added tokens ------------------------------------------------------------------------------------------- */

static int32_t lookup_id(const clxp_tokenizer *t, const char *s, size_t n) {
    long a = smap_find(&t->added_map, s, n);
    if (a >= 0) return t->added[t->added_map.ents[a].val].id;
    return smap_get(&t->vocab, s, n);
}

/* The id HF gives the next token that is in neither vocabulary (AddedVocabulary::add_tokens). */
static int32_t first_free_id(const clxp_tokenizer *t) {
    int32_t vs = (int32_t)t->vocab.n, max = -1;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].id > max) max = t->added[i].id;
    if (max < 0) return vs;
    return (max >= vs || vs == 0) ? max + 1 : vs;
}

/* Add (or update) an added token. proto->content is copied. json_id: the id written in the file, -1 if none. */
static clxp_status add_token(clxp_tokenizer *t, enc_ctx *c, const added_tok *proto, int32_t *next_id, int32_t json_id,
                             int32_t *id_out, const char *what, clxp_error *err) {
    if (proto->len == 0) return CLXP_OK; /* HF ignores empty tokens */
    long ai = smap_find(&t->added_map, proto->content, proto->len);
    int32_t id = lookup_id(t, proto->content, proto->len);
    if (id < 0) id = (*next_id)++;
    if (id >= TOK_MAX_ID) return clxp_err_set(err, CLXP_ERR_LIMIT, "%s: too many added tokens", what);
    if (json_id >= 0 && json_id != id)
        clxp_log(CLXP_LOG_WARN, "%s: added token \"%.60s\" has id %d in the file but gets id %d, as in HF tokenizers",
                 what, proto->content, (int)json_id, (int)id);
    char *norm = NULL;
    size_t norm_len = 0;
    if (proto->normalized && t->n_norms > 0) { /* matched against its normalized form */
        const char *r;
        c->budget = (proto->len + 4096) * TOK_MAX_EXPANSION;
        clxp_status st = run_normalizers(c, proto->content, proto->len, &r, &norm_len);
        if (st != CLXP_OK) return st;
        if (!(norm = dup_bytes(r, norm_len))) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", what);
    }
    added_tok *a;
    if (ai >= 0) {
        a = &t->added[t->added_map.ents[ai].val];
        free(a->norm);
    } else {
        added_tok *v = grow(t->added, &t->cap_added, t->n_added + 1, sizeof *t->added);
        char *content = v ? dup_bytes(proto->content, proto->len) : NULL;
        if (v) t->added = v;
        if (!content || !smap_put(&t->added_map, proto->content, proto->len, (int32_t)t->n_added)) {
            free(content);
            free(norm);
            return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", what);
        }
        a = &t->added[t->n_added++];
        a->content = content;
        a->len = proto->len;
    }
    a->norm = norm;
    a->norm_len = norm_len;
    a->id = id;
    a->single_word = proto->single_word;
    a->lstrip = proto->lstrip;
    a->rstrip = proto->rstrip;
    a->normalized = proto->normalized;
    a->special = proto->special;
    if (id > t->max_id) t->max_id = id;
    if (id_out) *id_out = id;
    return CLXP_OK;
}

static void trie_free(trie *tr) {
    free(tr->edges.s);
    free(tr->term);
    memset(tr, 0, sizeof *tr);
}

/* Build the trie of one pass (normalized or raw tokens). The first token wins a duplicated pattern. */
static int trie_build(const clxp_tokenizer *t, trie *tr, int normalized) {
    trie_free(tr);
    size_t total = 1;
    for (size_t i = 0; i < t->n_added; i++) {
        size_t pl;
        tok_pattern(&t->added[i], normalized, &pl);
        if (!t->added[i].normalized == !normalized) total += pl;
    }
    if (!pmap_init(&tr->edges, total) || !(tr->term = malloc(total * sizeof *tr->term))) return 0;
    for (size_t i = 0; i < total; i++) tr->term[i] = -1;
    tr->n_nodes = 1;
    for (size_t i = 0; i < t->n_added; i++) {
        size_t pl;
        const char *p = tok_pattern(&t->added[i], normalized, &pl);
        if (!t->added[i].normalized != !normalized || pl == 0) continue;
        int32_t node = 0;
        for (size_t k = 0; k < pl; k++) {
            const pslot *e = pmap_get(&tr->edges, node, (unsigned char)p[k]);
            if (e) {
                node = e->new_id;
            } else {
                int32_t child = (int32_t)tr->n_nodes++;
                pmap_put(&tr->edges, node, (unsigned char)p[k], 0, child);
                node = child;
            }
        }
        if (tr->term[node] < 0) tr->term[node] = (int32_t)i;
        tr->first[(unsigned char)p[0]] = 1;
    }
    return 1;
}

/* Rebuild the matchers after the added tokens changed. */
static clxp_status added_refresh(clxp_tokenizer *t, const char *what, clxp_error *err) {
    if (!trie_build(t, &t->m_raw, 0) || !trie_build(t, &t->m_norm, 1))
        return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", what);
    int need_word = 0;
    for (size_t i = 0; i < t->n_added; i++) need_word |= t->added[i].single_word;
    if (need_word && !t->word_re) {
        /* the regex crate's Unicode \w, used by HF for single_word */
        static const char w[] = "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]";
        return re_compile(w, sizeof w - 1, 0, &t->word_re, what, "single_word", err);
    }
    return CLXP_OK;
}

static clxp_status parse_added_tokens(clxp_tokenizer *t, const cJSON *list, const char *what, clxp_error *err) {
    if (!list) return added_refresh(t, what, err);
    if (!cJSON_IsArray(list)) return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: added_tokens must be an array", what);
    enc_ctx c;
    ctx_init(&c, t, what, err);
    int32_t next_id = first_free_id(t);
    clxp_status st = CLXP_OK;
    int i = 0;
    for (const cJSON *e = list->child; e && st == CLXP_OK; e = e->next, i++) {
        char ctx[48];
        snprintf(ctx, sizeof ctx, "added_tokens[%d]", i);
        const char *content;
        int32_t id;
        int sw, ls, rs, norm, special;
        if (!cJSON_IsObject(e)) {
            st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: %s must be an object", what, ctx);
            break;
        }
        if ((st = jstr(e, "content", &content, what, ctx, err)) != CLXP_OK) break;
        if (!content || !json_id(jget(e, "id"), &id)) {
            st = clxp_err_set(err, CLXP_ERR_FORMAT, "%s: %s needs a \"content\" string and an integer \"id\"", what,
                              ctx);
            break;
        }
        if ((st = jbool(e, "single_word", 0, &sw, what, ctx, err)) != CLXP_OK ||
            (st = jbool(e, "lstrip", 0, &ls, what, ctx, err)) != CLXP_OK ||
            (st = jbool(e, "rstrip", 0, &rs, what, ctx, err)) != CLXP_OK ||
            (st = jbool(e, "normalized", 1, &norm, what, ctx, err)) != CLXP_OK ||
            (st = jbool(e, "special", 0, &special, what, ctx, err)) != CLXP_OK)
            break;
        added_tok proto = {(char *)content,
                           strlen(content),
                           NULL,
                           0,
                           id,
                           (unsigned char)sw,
                           (unsigned char)ls,
                           (unsigned char)rs,
                           (unsigned char)norm,
                           (unsigned char)special};
        st = add_token(t, &c, &proto, &next_id, id, NULL, what, err);
    }
    ctx_free(&c);
    return st == CLXP_OK ? added_refresh(t, what, err) : st;
}

/* --- the whole file -------------------------------------------------------------------------------------- */

static clxp_status build(clxp_tokenizer *t, const cJSON *root, const char *what, clxp_error *err) {
    if (!cJSON_IsObject(root)) return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: top level must be a JSON object", what);
    build_byte_map(t);
    t->pad_id = -1;
    t->max_id = -1;
    if (!(t->tmpl = malloc(sizeof *t->tmpl))) return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", what);
    t->tmpl[0] = TMPL_SEQ; /* no post-processor: the text alone */
    t->n_tmpl = 1;
    clxp_status st;
    /* the model first: normalizers and added tokens refer to it; added tokens last, once the normalizer
     * that shapes their patterns exists (HF's deserializer does the same) */
    if ((st = parse_model(t, jget(root, "model"), what, err)) != CLXP_OK) return st;
    const cJSON *n = jget(root, "normalizer"), *p = jget(root, "pre_tokenizer"), *pp = jget(root, "post_processor");
    if (n && (st = parse_normalizer(t, n, what, err)) != CLXP_OK) return st;
    if (p && (st = parse_pretokenizer(t, p, what, err)) != CLXP_OK) return st;
    if (pp && (st = parse_postprocessor(t, pp, what, err)) != CLXP_OK) return st;
    if ((st = parse_added_tokens(t, jget(root, "added_tokens"), what, err)) != CLXP_OK) return st;
    const cJSON *pad = jget(root, "padding");
    if (cJSON_IsObject(pad)) {
        int32_t id;
        if (jget(pad, "pad_id") && json_id(jget(pad, "pad_id"), &id)) t->pad_id = id;
    }
    return CLXP_OK;
}

/* pad_token of transformers' special_tokens_map.json / tokenizer_config.json: a string or {"content": ...}.
 * *found = 1 when the file defines one. */
static clxp_status sidecar_pad(clxp_tokenizer *t, const char *path, int *found, clxp_error *err) {
    *found = 0;
    if (!clxp_is_file(path)) return CLXP_OK;
    cJSON *j = NULL;
    clxp_status st = clxp_json_load(path, &j, err);
    if (st != CLXP_OK) return st;
    const cJSON *v = cJSON_IsObject(j) ? jget(j, "pad_token") : NULL;
    if (cJSON_IsObject(v)) v = jget(v, "content");
    if (v && !cJSON_IsString(v)) {
        cJSON_Delete(j);
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: pad_token must be a string or {\"content\": string}", path);
    }
    if (v) {
        *found = 1;
        int32_t id = lookup_id(t, v->valuestring, strlen(v->valuestring));
        if (id >= 0)
            t->pad_id = id;
        else
            clxp_log(CLXP_LOG_WARN, "%s: pad_token \"%.60s\" is not in the vocabulary", path, v->valuestring);
    }
    cJSON_Delete(j);
    return CLXP_OK;
}

/* ======================================================================================================
 * 7. Public API
 * ==================================================================================================== */

void tok_free(clxp_tokenizer *t) {
    if (!t) return;
    free(t->name);
    smap_free(&t->vocab);
    free(t->id_ent);
    free(t->merges.s);
    free(t->prefix);
    free(t->suffix);
    for (size_t i = 0; i < t->n_added; i++) {
        free(t->added[i].content);
        free(t->added[i].norm);
    }
    free(t->added);
    smap_free(&t->added_map);
    trie_free(&t->m_raw);
    trie_free(&t->m_norm);
    pcre2_code_free(t->word_re);
    for (size_t i = 0; i < t->n_norms; i++) {
        pcre2_code_free(t->norms[i].re);
        free(t->norms[i].str);
    }
    free(t->norms);
    for (size_t i = 0; i < t->n_pres; i++) pcre2_code_free(t->pres[i].re);
    free(t->pres);
    pcre2_code_free(t->gpt2_re);
    free(t->tmpl);
    free(t);
}

clxp_status tok_load_buffer(const char *json, size_t len, const char *what, clxp_tokenizer **out, clxp_error *err) {
    if (!out) return clxp_err_set(err, CLXP_ERR_INVALID, "tok_load_buffer: out is NULL");
    *out = NULL;
    if (!what) what = "tokenizer.json";
    if (!json && len) return clxp_err_set(err, CLXP_ERR_INVALID, "%s: NULL buffer", what);
    cJSON *root = NULL;
    clxp_status st = clxp_json_parse(json ? json : "", len, what, &root, err);
    if (st != CLXP_OK) return st;
    clxp_tokenizer *t = calloc(1, sizeof *t);
    if (!t || !(t->name = dup_bytes(what, strlen(what)))) {
        free(t);
        cJSON_Delete(root);
        return clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", what);
    }
    st = build(t, root, what, err);
    cJSON_Delete(root);
    if (st != CLXP_OK) {
        tok_free(t);
        return st;
    }
    *out = t;
    return CLXP_OK;
}

clxp_status tok_load(const char *path, clxp_tokenizer **out, clxp_error *err) {
    if (!out || !path) return clxp_err_set(err, CLXP_ERR_INVALID, "tok_load: NULL argument");
    *out = NULL;
    char *buf = NULL;
    size_t len = 0;
    clxp_status st = clxp_read_file(path, CLXP_MAX_JSON_BYTES, &buf, &len, err);
    if (st != CLXP_OK) return st;
    clxp_tokenizer *t = NULL;
    st = tok_load_buffer(buf, len, path, &t, err);
    free(buf);
    if (st != CLXP_OK) return st;
    /* transformers reads the pad token from the sibling files (special_tokens_map.json wins) */
    const char *slash = strrchr(path, '/');
    char *dir = slash ? dup_bytes(path, (size_t)(slash - path) + 1) : dup_bytes("./", 2);
    static const char *side[] = {"special_tokens_map.json", "tokenizer_config.json"};
    int found = 0;
    for (int i = 0; st == CLXP_OK && !found && i < 2; i++) {
        char *p = dir ? clxp_path_join(dir, side[i]) : NULL;
        st = p ? sidecar_pad(t, p, &found, err) : clxp_err_set(err, CLXP_ERR_NOMEM, "%s: out of memory", path);
        free(p);
    }
    free(dir);
    if (st != CLXP_OK) {
        tok_free(t);
        return st;
    }
    *out = t;
    return CLXP_OK;
}

clxp_status tok_add_special_token(clxp_tokenizer *t, const char *content, int *id_out, clxp_error *err) {
    if (!t || !content) return clxp_err_set(err, CLXP_ERR_INVALID, "tok_add_special_token: NULL argument");
    size_t n = strlen(content), bad = 0;
    if (n == 0 || !clxp_utf8_valid(content, n, &bad))
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: special token must be non-empty valid UTF-8", t->name);
    enc_ctx c;
    ctx_init(&c, t, t->name, err);
    int32_t next_id = first_free_id(t), id = -1;
    added_tok proto = {(char *)content, n, NULL, 0, -1, 0, 0, 0, 0, 1};
    clxp_status st = add_token(t, &c, &proto, &next_id, -1, &id, t->name, err);
    ctx_free(&c);
    if (st == CLXP_OK) st = added_refresh(t, t->name, err);
    if (st == CLXP_OK && id_out) *id_out = id;
    return st;
}

clxp_status tok_encode(const clxp_tokenizer *t, const char *text, size_t len, const tok_encode_opts *opts, int32_t *ids,
                       int32_t *mask, int cap, int *n_out, clxp_error *err) {
    if (n_out) *n_out = 0;
    if (!t || !n_out || (!text && len) || cap < 0 || (!ids && cap > 0))
        return clxp_err_set(err, CLXP_ERR_INVALID, "tok_encode: bad arguments");
    tok_encode_opts o = opts ? *opts : (tok_encode_opts){1, 0, 0, -1};
    if (o.max_length < 0 || o.pad_to < 0)
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: max_length and pad_to must be >= 0", t->name);
    if (len > TOK_MAX_TEXT_BYTES)
        return clxp_err_set(err, CLXP_ERR_LIMIT, "%s: text of %zu bytes is longer than the limit of %zu", t->name, len,
                            TOK_MAX_TEXT_BYTES);
    size_t bad = 0;
    if (!clxp_utf8_valid(text ? text : "", len, &bad))
        return clxp_err_set(err, CLXP_ERR_INVALID, "%s: text is not valid UTF-8 (byte %zu)", t->name, bad);
    int32_t pad_id = o.pad_id >= 0 ? o.pad_id : t->pad_id;
    if (o.pad_to > 0 && pad_id < 0)
        return clxp_err_set(err, CLXP_ERR_INVALID,
                            "%s: padding requested but the tokenizer has no pad token (set "
                            "pad_id)",
                            t->name);
    /* HF: with specials, the content is truncated to max_length minus the tokens the post-processor adds */
    int n_special = o.add_special_tokens ? t->n_special : 0;
    long limit = -1;
    if (o.max_length > 0) {
        if (o.max_length < n_special)
            return clxp_err_set(err, CLXP_ERR_INVALID, "%s: max_length %d is smaller than the %d special tokens",
                                t->name, o.max_length, n_special);
        limit = o.max_length - n_special;
    }

    enc_ctx c;
    ctx_init(&c, t, t->name, err);
    clxp_status st = encode_content(&c, text ? text : "", len, limit);
    if (st != CLXP_OK) {
        ctx_free(&c);
        return st;
    }
    size_t n_content = c.n_ids;
    if (limit >= 0 && n_content > (size_t)limit) n_content = (size_t)limit;
    /* post-processor template; without specials only the text slots remain */
    size_t total = 0;
    for (size_t i = 0; i < t->n_tmpl; i++)
        if (t->tmpl[i] == TMPL_SEQ)
            total += n_content;
        else if (o.add_special_tokens)
            total++;
    size_t need = total > (size_t)o.pad_to ? total : (size_t)o.pad_to;
    if (need > (size_t)cap) {
        ctx_free(&c);
        *n_out = need > INT_MAX ? INT_MAX : (int)need;
        return clxp_err_set(err, CLXP_ERR_LIMIT, "%s: %zu tokens do not fit in %d", t->name, need, cap);
    }
    size_t w = 0;
    for (size_t i = 0; i < t->n_tmpl; i++) {
        if (t->tmpl[i] == TMPL_SEQ) {
            if (n_content) memcpy(ids + w, c.ids, n_content * sizeof *ids);
            w += n_content;
        } else if (o.add_special_tokens) {
            ids[w++] = t->tmpl[i];
        }
    }
    for (size_t i = 0; mask && i < w; i++) mask[i] = 1;
    for (; w < need; w++) {
        ids[w] = pad_id;
        if (mask) mask[w] = 0;
    }
    ctx_free(&c);
    *n_out = (int)w;
    return CLXP_OK;
}

int tok_token_to_id(const clxp_tokenizer *t, const char *token) {
    if (!t || !token) return -1;
    return lookup_id(t, token, strlen(token));
}

const char *tok_id_to_token(const clxp_tokenizer *t, int id) {
    if (!t || id < 0) return NULL;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return t->added[i].content;
    if ((size_t)id < t->n_id_ent && t->id_ent[id] >= 0) return smap_key(&t->vocab, (size_t)t->id_ent[id]);
    return NULL;
}

int tok_pad_id(const clxp_tokenizer *t) { return t ? t->pad_id : -1; }

int tok_vocab_size(const clxp_tokenizer *t) { return t ? t->max_id + 1 : 0; }

int tok_num_special_tokens(const clxp_tokenizer *t) { return t ? t->n_special : 0; }
