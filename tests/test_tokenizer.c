/* Tokenizer: bit-exact against the CLIP, RoBERTa and GPT-2 goldens, feature checks on tiny hand-written
 * tokenizer.json files, hostile inputs and malformed files. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <time.h>

#include "test.h"
#include "text/tokenizer.h"
#include "util/json.h"

#define CTX 77

/* ---- helpers ------------------------------------------------------------------------------------------- */

/* Copy a JSON int array into out (at most cap); returns its length or -1. */
static int json_ints(const cJSON *arr, int32_t *out, int cap) {
    if (!cJSON_IsArray(arr)) return -1;
    int n = 0;
    for (const cJSON *e = arr->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || n >= cap) return -1;
        out[n++] = (int32_t)e->valuedouble;
    }
    return n;
}

/* Compare ids[0..n) with the JSON array; prints the first difference. */
static int same_ids(const char *label, const char *text, const int32_t *ids, int n, const cJSON *want) {
    int32_t w[512];
    int nw = json_ints(want, w, 512);
    if (nw != n) {
        printf("  %s \"%s\": %d ids, expected %d\n", label, text, n, nw);
        return 0;
    }
    for (int i = 0; i < n; i++)
        if (ids[i] != w[i]) {
            printf("  %s \"%s\": id[%d] = %d, expected %d\n", label, text, i, ids[i], w[i]);
            return 0;
        }
    return 1;
}

static clxp_status enc(const clxp_tokenizer *t, const char *s, tok_encode_opts o, int32_t *ids, int32_t *mask, int cap,
                       int *n) {
    clxp_error err = {0};
    clxp_status st = tok_encode(t, s, strlen(s), &o, ids, mask, cap, n, &err);
    if (st != CLXP_OK && st != CLXP_ERR_LIMIT) printf("  encode \"%.40s\": %s\n", s, err.msg);
    return st;
}

/* Encode without specials/truncation/padding into a static buffer; returns the count (-1 on error). */
static int plain(const clxp_tokenizer *t, const char *s, int32_t *ids) {
    int n = 0;
    return enc(t, s, (tok_encode_opts){0, 0, 0, -1}, ids, NULL, 256, &n) == CLXP_OK ? n : -1;
}

static int ids_eq(const int32_t *a, int na, const int32_t *b, int nb) {
    return na == nb && (na == 0 || memcmp(a, b, (size_t)na * sizeof *a) == 0);
}

static clxp_tokenizer *load(const char *rel) {
    clxp_tokenizer *t = NULL;
    clxp_error err = {0};
    if (tok_load(test_data(rel), &t, &err) != CLXP_OK) printf("  load %s: %s\n", rel, err.msg);
    return t;
}

static cJSON *load_json(const char *rel) {
    cJSON *j = NULL;
    clxp_error err = {0};
    if (clxp_json_load(test_data(rel), &j, &err) != CLXP_OK) printf("  %s\n", err.msg);
    return j;
}

/* ---- CLIP ---------------------------------------------------------------------------------------------- */

static void check_clip(const char *dir) {
    char p[256];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    clxp_tokenizer *t = load(p);
    snprintf(p, sizeof p, "%s/golden/tokens.json", dir);
    cJSON *g = load_json(p);
    REQUIRE(t && g);
    /* the pad token comes from special_tokens_map.json, tokenizer.json has padding: null */
    CHECK_EQ_INT(tok_pad_id(t), 49407);
    CHECK_EQ_INT(tok_num_special_tokens(t), 2);
    CHECK_EQ_INT(tok_vocab_size(t), 49408);
    int compared = 0;
    const cJSON *prompts = cJSON_GetObjectItem(g, "prompts");
    for (const cJSON *pr = prompts ? prompts->child : NULL; pr; pr = pr->next) {
        const char *text = cJSON_GetObjectItem(pr, "text")->valuestring;
        int32_t ids[CTX], mask[CTX], full[256];
        int n = 0, nf = 0;
        CHECK(enc(t, text, TOK_OPTS_CONTEXT77, ids, mask, CTX, &n) == CLXP_OK);
        CHECK_EQ_INT(n, CTX);
        CHECK(same_ids("clip input_ids", text, ids, n, cJSON_GetObjectItem(pr, "input_ids")));
        CHECK(same_ids("clip attention_mask", text, mask, n, cJSON_GetObjectItem(pr, "attention_mask")));
        CHECK(enc(t, text, (tok_encode_opts){1, 0, 0, -1}, full, NULL, 256, &nf) == CLXP_OK);
        CHECK(same_ids("clip unpadded", text, full, nf, cJSON_GetObjectItem(pr, "unpadded_untruncated_ids")));
        compared++;
    }
    CHECK_EQ_INT(compared, 16);
    /* The extra prompt (curly quotes, a ligature, full-width letters): the slow tokenizer runs ftfy.fix_text,
     * tokenizer.json has no such step. We follow tokenizer.json, i.e. the Rust library's ids. */
    int divergent = 0;
    const cJSON *extra = cJSON_GetObjectItem(g, "divergent_extra_not_used_in_model_goldens");
    for (const cJSON *pr = extra ? extra->child : NULL; pr; pr = pr->next) {
        const char *text = cJSON_GetObjectItem(pr, "text")->valuestring;
        int32_t ids[CTX], mask[CTX];
        int n = 0;
        CHECK(enc(t, text, TOK_OPTS_CONTEXT77, ids, mask, CTX, &n) == CLXP_OK);
        CHECK(same_ids("clip divergent (fast)", text, ids, n, cJSON_GetObjectItem(pr, "fast_tokenizer_input_ids")));
        CHECK(!cJSON_IsTrue(cJSON_GetObjectItem(pr, "fast_agrees")));
        divergent++;
    }
    CHECK_EQ_INT(divergent, 1);
    printf("  %s: %d prompts + %d divergent prompt compared\n", dir, compared, divergent);
    cJSON_Delete(g);
    tok_free(t);
}

TEST(clip_quickgelu_goldens) { check_clip("clip-tiny-quickgelu"); }
TEST(clip_gelu_goldens) { check_clip("clip-tiny-gelu"); }

TEST(clip_lookups) {
    clxp_tokenizer *t = load("clip-tiny-quickgelu/tokenizer.json");
    REQUIRE(t);
    CHECK_EQ_INT(tok_token_to_id(t, "a</w>"), 320);
    CHECK_EQ_INT(tok_token_to_id(t, "<|startoftext|>"), 49406);
    CHECK_EQ_INT(tok_token_to_id(t, "no such token"), -1);
    CHECK_STR(tok_id_to_token(t, 49407), "<|endoftext|>");
    CHECK_STR(tok_id_to_token(t, 320), "a</w>");
    CHECK(tok_id_to_token(t, 49408) == NULL);
    CHECK(tok_id_to_token(t, -1) == NULL);
    tok_free(t);
}

/* Unicode details where a naive implementation would differ from the Rust library. */
TEST(clip_unicode_details) {
    clxp_tokenizer *t = load("clip-tiny-quickgelu/tokenizer.json");
    REQUIRE(t);
    int32_t a[256], b[256];
    /* Rust's char::to_lowercase('İ') is "i" + U+0307, not the simple mapping "i" */
    int na = plain(t, "\xC4\xB0", a), nb = plain(t, "i\xCC\x87", b);
    CHECK(na > 0 && ids_eq(a, na, b, nb));
    nb = plain(t, "i", b);
    CHECK(!ids_eq(a, na, b, nb));
    /* U+180E is not White_Space (Oniguruma's \s); PCRE2's own \s would have collapsed it into a space */
    na = plain(t,
               "a\xE1\xA0\x8E"
               "b",
               a);
    nb = plain(t, "a b", b);
    CHECK(na > 2 && !ids_eq(a, na, b, nb));
    /* but U+3000 is: "a<U+3000>b" = "a b" */
    na = plain(t,
               "a\xE3\x80\x80"
               "b",
               a);
    CHECK(ids_eq(a, na, b, nb));
    /* NUL is an ordinary character */
    int n = 0;
    clxp_error err = {0};
    CHECK(tok_encode(t, "a\0b", 3, NULL, a, NULL, 256, &n, &err) == CLXP_OK);
    CHECK(n > 4);
    tok_free(t);
}

/* ---- RoBERTa ------------------------------------------------------------------------------------------- */

TEST(roberta_goldens) {
    clxp_tokenizer *t = load("tokenizers/roberta/tokenizer.json");
    cJSON *g = load_json("tokenizers/roberta/tokens.json");
    REQUIRE(t && g);
    CHECK_EQ_INT(tok_pad_id(t), -1); /* no sibling files, padding: null */
    CHECK_EQ_INT(tok_token_to_id(t, "<mask>"), 50264);
    CHECK_EQ_INT(tok_vocab_size(t), 50265);
    const tok_encode_opts o = {1, CTX, CTX, 1};
    int compared = 0, extra = 0;
    const cJSON *lists[2] = {cJSON_GetObjectItem(g, "prompts"),
                             cJSON_GetObjectItem(g, "extra_prompts_not_used_in_model_goldens")};
    for (int l = 0; l < 2; l++)
        for (const cJSON *pr = lists[l] ? lists[l]->child : NULL; pr; pr = pr->next) {
            const char *text = cJSON_GetObjectItem(pr, "text")->valuestring;
            int32_t ids[CTX], mask[CTX], full[256];
            int n = 0, nf = 0;
            CHECK(enc(t, text, o, ids, mask, CTX, &n) == CLXP_OK);
            CHECK_EQ_INT(n, CTX);
            CHECK(same_ids("roberta input_ids", text, ids, n, cJSON_GetObjectItem(pr, "input_ids")));
            CHECK(same_ids("roberta attention_mask", text, mask, n, cJSON_GetObjectItem(pr, "attention_mask")));
            CHECK(same_ids("roberta fast", text, ids, n, cJSON_GetObjectItem(pr, "fast_tokenizer_input_ids")));
            CHECK(enc(t, text, (tok_encode_opts){1, 0, 0, -1}, full, NULL, 256, &nf) == CLXP_OK);
            CHECK(same_ids("roberta unpadded", text, full, nf, cJSON_GetObjectItem(pr, "unpadded_untruncated_ids")));
            if (l == 0)
                compared++;
            else
                extra++;
        }
    CHECK_EQ_INT(compared, 16);
    CHECK(extra >= 1);
    printf("  roberta: %d prompts + %d extra compared\n", compared, extra);
    cJSON_Delete(g);
    tok_free(t);
}

/* <mask> has lstrip: it swallows the space before it; <s> is matched after normalization. */
TEST(roberta_special_strings) {
    clxp_tokenizer *t = load("tokenizers/roberta/tokenizer.json");
    REQUIRE(t);
    int32_t a[256], b[256];
    int na = plain(t, "x <mask>", a), nb = plain(t, "x<mask>", b);
    CHECK(na == 2 && a[1] == 50264 && ids_eq(a, na, b, nb));
    na = plain(t, "<s></s>", a);
    CHECK(na == 2 && a[0] == 0 && a[1] == 2);
    tok_free(t);
}

/* ---- GPT-2 / MS-CLAP ---------------------------------------------------------------------------------- */

TEST(gpt2_goldens) {
    clxp_tokenizer *t = load("tokenizers/gpt2/tokenizer.json");
    clxp_tokenizer *ms = load("tokenizers/gpt2/tokenizer.json");
    cJSON *g = load_json("tokenizers/gpt2/tokens.json");
    REQUIRE(t && ms && g);
    CHECK_EQ_INT(tok_num_special_tokens(t), 0); /* the ByteLevel post-processor adds nothing */
    CHECK_EQ_INT(tok_vocab_size(t), 50257);
    /* MS-CLAP registers '!' as the (special) pad token */
    int bang = -1;
    clxp_error err = {0};
    CHECK(tok_add_special_token(ms, "!", &bang, &err) == CLXP_OK);
    CHECK_EQ_INT(bang, 0);
    int compared = 0;
    const cJSON *prompts = cJSON_GetObjectItem(g, "prompts");
    for (const cJSON *pr = prompts ? prompts->child : NULL; pr; pr = pr->next) {
        const char *text = cJSON_GetObjectItem(pr, "text")->valuestring;
        int32_t ids[256], mask[256];
        int n = 0;
        for (int special = 0; special < 2; special++) {
            CHECK(enc(t, text, (tok_encode_opts){special, 0, 0, -1}, ids, NULL, 256, &n) == CLXP_OK);
            CHECK(same_ids("gpt2 plain", text, ids, n, cJSON_GetObjectItem(pr, "plain_input_ids")));
        }
        /* microsoft/CLAP: text + " <|endoftext|>", padded to 77 with '!' (0), never truncated */
        char buf[1024];
        snprintf(buf, sizeof buf, "%s <|endoftext|>", text);
        CHECK(enc(ms, buf, (tok_encode_opts){0, 0, CTX, 0}, ids, mask, 256, &n) == CLXP_OK);
        CHECK(same_ids("msclap input_ids", text, ids, n, cJSON_GetObjectItem(pr, "msclap_input_ids")));
        CHECK(same_ids("msclap attention_mask", text, mask, n, cJSON_GetObjectItem(pr, "msclap_attention_mask")));
        compared++;
    }
    CHECK_EQ_INT(compared, 16);
    printf("  gpt2: %d prompts compared (plain and MS-CLAP)\n", compared);
    /* with '!' special, "wow!!" keeps the two '!' apart; plain GPT-2 merges them */
    int32_t a[16], b[16];
    int na = plain(t, "wow!!", a), nb = plain(ms, "wow!!", b);
    CHECK(na == 2 && a[1] == tok_token_to_id(t, "!!"));
    CHECK(nb == 3 && b[1] == 0 && b[2] == 0);
    /* a token outside the vocabulary gets the next free id (after the 50257 entries), as in HF */
    int pad = -1;
    CHECK(tok_add_special_token(ms, "<|pad|>", &pad, &err) == CLXP_OK);
    CHECK_EQ_INT(pad, 50257);
    CHECK_EQ_INT(tok_vocab_size(ms), 50258);
    CHECK_EQ_INT(tok_token_to_id(ms, "<|pad|>"), 50257);
    CHECK_STR(tok_id_to_token(ms, 50257), "<|pad|>");
    nb = plain(ms, "a<|pad|>b", b);
    CHECK(nb == 3 && b[0] == 64 && b[1] == 50257 && b[2] == 65);
    CHECK_EQ_INT(tok_add_special_token(ms, "", &pad, &err), CLXP_ERR_INVALID);
    cJSON_Delete(g);
    tok_free(t);
    tok_free(ms);
}

/* ---- encode options ----------------------------------------------------------------------------------- */

TEST(encode_options) {
    clxp_tokenizer *t = load("clip-tiny-quickgelu/tokenizer.json");
    REQUIRE(t);
    int32_t ids[CTX], mask[CTX];
    int n = -1;
    clxp_error err = {0};
    const char *s = "a photo of a cat";
    /* too small a buffer: LIMIT and the size needed */
    CHECK_EQ_INT(tok_encode(t, s, strlen(s), NULL, ids, NULL, 3, &n, &err), CLXP_ERR_LIMIT);
    CHECK_EQ_INT(n, 7);
    CHECK_EQ_INT(tok_encode(t, s, strlen(s), &TOK_OPTS_CONTEXT77, ids, mask, 10, &n, &err), CLXP_ERR_LIMIT);
    CHECK_EQ_INT(n, CTX);
    /* truncation keeps BOS ... EOS */
    CHECK(enc(t, s, (tok_encode_opts){1, 4, 0, -1}, ids, mask, CTX, &n) == CLXP_OK);
    CHECK(n == 4 && ids[0] == 49406 && ids[1] == 320 && ids[2] == 1125 && ids[3] == 49407);
    CHECK(enc(t, s, (tok_encode_opts){1, 2, 0, -1}, ids, mask, CTX, &n) == CLXP_OK);
    CHECK(n == 2 && ids[0] == 49406 && ids[1] == 49407);
    CHECK(enc(t, s, (tok_encode_opts){0, 2, 0, -1}, ids, mask, CTX, &n) == CLXP_OK);
    CHECK(n == 2 && ids[0] == 320 && ids[1] == 1125);
    /* max_length below the number of specials */
    tok_encode_opts o = {1, 1, 0, -1};
    CHECK_EQ_INT(tok_encode(t, s, strlen(s), &o, ids, mask, CTX, &n, &err), CLXP_ERR_INVALID);
    /* explicit pad id, mask */
    CHECK(enc(t, s, (tok_encode_opts){1, 0, 10, 0}, ids, mask, CTX, &n) == CLXP_OK);
    CHECK(n == 10 && ids[7] == 0 && ids[9] == 0 && mask[6] == 1 && mask[7] == 0);
    /* padding never truncates */
    CHECK(enc(t, s, (tok_encode_opts){1, 0, 3, -1}, ids, mask, CTX, &n) == CLXP_OK);
    CHECK_EQ_INT(n, 7);
    /* bad arguments */
    CHECK_EQ_INT(tok_encode(t, NULL, 3, NULL, ids, mask, CTX, &n, &err), CLXP_ERR_INVALID);
    CHECK_EQ_INT(tok_encode(t, "", 0, NULL, ids, mask, CTX, &n, &err), CLXP_OK);
    CHECK(n == 2);
    tok_free(t);
    /* padding without any pad token */
    t = load("tokenizers/roberta/tokenizer.json");
    REQUIRE(t);
    CHECK_EQ_INT(tok_encode(t, s, strlen(s), &TOK_OPTS_CONTEXT77, ids, mask, CTX, &n, &err), CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "pad");
    tok_free(t);
}

/* ---- hostile input ------------------------------------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* 1 MB single-line labels: one giant word, or many words. Must finish quickly (no timing assert). */
TEST(long_inputs) {
    const char *files[3] = {"clip-tiny-quickgelu/tokenizer.json", "tokenizers/roberta/tokenizer.json",
                            "tokenizers/gpt2/tokenizer.json"};
    const size_t len = (size_t)1 << 20;
    char *s = malloc(len + 1);
    REQUIRE(s);
    unsigned rng = 12345;
    for (int f = 0; f < 3; f++) {
        clxp_tokenizer *t = load(files[f]);
        REQUIRE(t);
        int bos = f == 0 ? 49406 : 0, eos = f == 0 ? 49407 : 2, nspec = tok_num_special_tokens(t);
        for (int kind = 0; kind < 3; kind++) {
            for (size_t i = 0; i < len; i++) {
                rng = rng * 1103515245u + 12345u;
                s[i] = kind == 0 ? 'a' : kind == 1 ? (char)('a' + (rng >> 16) % 26) : (i % 2 ? ' ' : 'a');
            }
            s[len] = '\0';
            int32_t ids[CTX], mask[CTX];
            int n = 0;
            double t0 = now_s();
            CHECK(enc(t, s, (tok_encode_opts){1, CTX, CTX, 0}, ids, mask, CTX, &n) == CLXP_OK);
            double dt = now_s() - t0;
            CHECK_EQ_INT(n, CTX);
            if (nspec) CHECK(ids[0] == bos && ids[CTX - 1] == eos);
            int ones = 0;
            for (int i = 0; i < CTX; i++) ones += mask[i];
            CHECK_EQ_INT(ones, CTX);
            printf("  %s, 1 MB of %s: %.3f s\n", files[f],
                   kind == 0   ? "'a'"
                   : kind == 1 ? "random letters"
                               : "\"a \"",
                   dt);
        }
        tok_free(t);
    }
    /* without truncation: the whole 1 MB word goes through BPE (priority queue, not quadratic) */
    clxp_tokenizer *t = load(files[2]);
    REQUIRE(t);
    for (size_t i = 0; i < len; i++) {
        rng = rng * 1103515245u + 12345u;
        s[i] = (char)('a' + (rng >> 16) % 26);
    }
    int n = 0;
    int32_t one;
    clxp_error err = {0};
    double t0 = now_s();
    CHECK_EQ_INT(tok_encode(t, s, len, NULL, &one, NULL, 1, &n, &err), CLXP_ERR_LIMIT);
    CHECK(n > 1000);
    int32_t *all = malloc((size_t)n * sizeof *all);
    int n2 = 0;
    REQUIRE(all);
    CHECK(tok_encode(t, s, len, NULL, all, NULL, n, &n2, &err) == CLXP_OK);
    CHECK_EQ_INT(n2, n);
    printf("  gpt2, 1 MB random word without truncation: %d tokens, %.3f s (two passes)\n", n, now_s() - t0);
    free(all);
    tok_free(t);
    free(s);
}

/* Invalid UTF-8 is refused (CLXP_ERR_INVALID naming the byte offset), never replaced. */
TEST(invalid_utf8) {
    clxp_tokenizer *t = load("clip-tiny-quickgelu/tokenizer.json");
    REQUIRE(t);
    const char *bad[] = {"\xFF", "abc\xE2\x82", "\xC0\xAF", "\xED\xA0\x80", "ok \xF4\x90\x80\x80", "\x80\x61\x62\x63"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int32_t ids[CTX];
        int n = 5;
        clxp_error err = {0};
        CHECK_EQ_INT(tok_encode(t, bad[i], strlen(bad[i]), &TOK_OPTS_CONTEXT77, ids, NULL, CTX, &n, &err),
                     CLXP_ERR_INVALID);
        CHECK_CONTAINS(err.msg, "UTF-8");
        CHECK_EQ_INT(n, 0);
    }
    CHECK_EQ_INT(tok_encode(t, "x", 1 + TOK_MAX_TEXT_BYTES, NULL, NULL, NULL, 0, &(int){0}, NULL), CLXP_ERR_LIMIT);
    tok_free(t);
}

/* Several threads encode with one tokenizer at once. */
typedef struct {
    const clxp_tokenizer *t;
    int ok;
} thread_arg;

static void *encode_thread(void *p) {
    thread_arg *a = p;
    const char *texts[] = {"a photo of a cat", "Ünïcödé naïve café", "<|endoftext|> in text", "東京の猫"};
    int32_t first[4][CTX];
    a->ok = 1;
    for (int rep = 0; rep < 50; rep++)
        for (int i = 0; i < 4; i++) {
            int32_t ids[CTX];
            int n = 0;
            clxp_error err;
            if (tok_encode(a->t, texts[i], strlen(texts[i]), &TOK_OPTS_CONTEXT77, ids, NULL, CTX, &n, &err) !=
                    CLXP_OK ||
                n != CTX) {
                a->ok = 0;
                continue;
            }
            if (rep == 0)
                memcpy(first[i], ids, sizeof ids);
            else if (memcmp(first[i], ids, sizeof ids) != 0)
                a->ok = 0;
        }
    return NULL;
}

TEST(concurrent_encode) {
    clxp_tokenizer *t = load("clip-tiny-quickgelu/tokenizer.json");
    REQUIRE(t);
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){t, 0};
        CHECK(pthread_create(&th[i], NULL, encode_thread, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(args[i].ok);
    }
    tok_free(t);
}

/* ---- features on tiny hand-written tokenizers ------------------------------------------------------------ */

static clxp_tokenizer *mini(const char *json) {
    clxp_tokenizer *t = NULL;
    clxp_error err = {0};
    if (tok_load_buffer(json, strlen(json), "mini.json", &t, &err) != CLXP_OK) printf("  mini: %s\n", err.msg);
    return t;
}

/* A word-level vocabulary (ignore_merges: a word in the vocab is one token) so ids show the splits. */
#define MINI_VOCAB                                                                                                     \
    "\"vocab\": {\"<unk>\": 0, \"a\": 1, \"b\": 2, \"c\": 3, \"-\": 4, \"a-\": 5, \"b-\": 6, \"-b\": 7, \"-c\": 8,"    \
    " \"--\": 9, \"[M]\": 10, \" \": 11, \"[m]\": 12, \"+\": 13}"

static clxp_tokenizer *mini_split(const char *behavior, int invert, const char *pattern) {
    char json[2048];
    snprintf(json, sizeof json,
             "{\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"ignore_merges\": true, " MINI_VOCAB
             ", \"merges\": []},"
             " \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": %s, \"behavior\": \"%s\", \"invert\": %s}}",
             pattern, behavior, invert ? "true" : "false");
    return mini(json);
}

TEST(split_behaviors) {
    static const struct {
        const char *behavior;
        int32_t want[8];
        int n;
    } cases[] = {{"Removed", {1, 2, 3}, 3},
                 {"Isolated", {1, 4, 2, 4, 4, 3}, 6},
                 {"MergedWithPrevious", {5, 6, 4, 3}, 4},
                 {"MergedWithNext", {1, 7, 4, 8}, 4},
                 {"Contiguous", {1, 4, 2, 9, 3}, 5}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        clxp_tokenizer *t = mini_split(cases[i].behavior, 0, "{\"String\": \"-\"}");
        REQUIRE(t);
        int32_t ids[64];
        int n = plain(t, "a-b--c", ids);
        if (!ids_eq(ids, n, cases[i].want, cases[i].n)) printf("  behavior %s\n", cases[i].behavior);
        CHECK(ids_eq(ids, n, cases[i].want, cases[i].n));
        tok_free(t);
    }
    /* invert: the regex matches the words, the non-matching "-" runs are removed */
    clxp_tokenizer *t = mini_split("Removed", 1, "{\"Regex\": \"[a-c]\"}");
    REQUIRE(t);
    int32_t ids[64], want[] = {1, 2, 3};
    int n = plain(t, "a-b--c", ids);
    CHECK(ids_eq(ids, n, want, 3));
    tok_free(t);
}

/* Added-token flags: the space before/after the token becomes token 11 unless stripped. */
static clxp_tokenizer *mini_added(const char *flags, const char *normalizer) {
    char json[2048];
    snprintf(json, sizeof json,
             "{\"added_tokens\": [{\"id\": 10, \"content\": \"[M]\", %s, \"special\": true}],"
             " \"normalizer\": %s,"
             " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"ignore_merges\": true, " MINI_VOCAB
             ", \"merges\": []},"
             " \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"Isolated\","
             " \"invert\": false}}",
             flags, normalizer);
    return mini(json);
}

TEST(added_token_flags) {
    static const struct {
        const char *flags, *text;
        int32_t want[8];
        int n;
    } cases[] = {
        {"\"normalized\": false", "a [M] b", {1, 11, 10, 11, 2}, 5},
        {"\"normalized\": false, \"lstrip\": true", "a  [M] b", {1, 10, 11, 2}, 4},
        {"\"normalized\": false, \"rstrip\": true", "a [M]  b", {1, 11, 10, 2}, 4},
        {"\"normalized\": false, \"lstrip\": true, \"rstrip\": true", "a [M] b", {1, 10, 2}, 3},
        {"\"normalized\": false, \"single_word\": true", "a [M] b", {1, 11, 10, 11, 2}, 5},
        /* inside a word it stays text: '[', 'M', ']' are unknown characters */
        {"\"normalized\": false, \"single_word\": true", "a[M]b", {1, 0, 0, 0, 2}, 5},
        {"\"normalized\": false, \"single_word\": true", "[M]", {10}, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        clxp_tokenizer *t = mini_added(cases[i].flags, "null");
        REQUIRE(t);
        int32_t ids[64];
        int n = plain(t, cases[i].text, ids);
        if (!ids_eq(ids, n, cases[i].want, cases[i].n))
            printf("  case %zu: %s on \"%s\"\n", i, cases[i].flags, cases[i].text);
        CHECK(ids_eq(ids, n, cases[i].want, cases[i].n));
        tok_free(t);
    }
    /* normalized tokens match the normalized text, the others the raw text */
    const char *lower = "{\"type\": \"Lowercase\"}";
    clxp_tokenizer *t = mini_added("\"normalized\": true", lower);
    REQUIRE(t);
    int32_t ids[64], w1[] = {10}, w2[] = {10};
    int n = plain(t, "[M]", ids);
    CHECK(ids_eq(ids, n, w1, 1)); /* "[M]" -> "[m]", the token's pattern is "[m]" too */
    n = plain(t, "[m]", ids);
    CHECK(ids_eq(ids, n, w2, 1));
    tok_free(t);
    t = mini_added("\"normalized\": false", lower);
    REQUIRE(t);
    int32_t w3[] = {12};
    n = plain(t, "[m]", ids); /* lowercase text is not the raw token: BPE gives the vocab word "[m]" */
    CHECK(ids_eq(ids, n, w3, 1));
    tok_free(t);
}

TEST(normalizers_and_postprocessors) {
    /* Replace with a literal, Strip, Sequence; TemplateProcessing inside a Sequence with ByteLevel */
    const char *json =
        "{\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Strip\", \"strip_left\": true,"
        " \"strip_right\": true}, {\"type\": \"Replace\", \"pattern\": {\"String\": \"+\"}, \"content\": \"-\"}]},"
        " \"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"ignore_merges\": true, " MINI_VOCAB
        ", \"merges\": []},"
        " \"post_processor\": {\"type\": \"Sequence\", \"processors\": [{\"type\": \"ByteLevel\"},"
        " {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}},"
        " {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, \"</s>:0\"], \"pair\": [],"
        " \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [3], \"tokens\": [\"c\"]},"
        " \"</s>\": {\"id\": \"</s>\", \"ids\": [2], \"tokens\": [\"b\"]}}}]}}";
    clxp_tokenizer *t = mini(json);
    REQUIRE(t);
    CHECK_EQ_INT(tok_num_special_tokens(t), 2);
    int32_t ids[64], mask[64], w1[] = {3, 5, 2}, w2[] = {3, 5, 2, 11, 11};
    int n = 0;
    CHECK(enc(t, " \t a+ \n", (tok_encode_opts){1, 0, 0, -1}, ids, mask, 64, &n) == CLXP_OK);
    CHECK(ids_eq(ids, n, w1, 3));
    CHECK(enc(t, "a+", (tok_encode_opts){1, 0, 5, 11}, ids, mask, 64, &n) == CLXP_OK);
    CHECK(ids_eq(ids, n, w2, 5) && mask[2] == 1 && mask[3] == 0);
    tok_free(t);
}

TEST(bpe_model_options) {
    /* continuing_subword_prefix, merges as pairs and as strings, unk with and without fuse_unk */
    const char *fmt =
        "{\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"fuse_unk\": %s, \"continuing_subword_prefix\":"
        " \"##\", \"vocab\": {\"<unk>\": 0, \"a\": 1, \"##b\": 2, \"ab\": 3, \"##c\": 4, \"abc\": 5, \"c\": 6,"
        " \"##a\": 7}, \"merges\": [[\"a\", \"##b\"], \"ab ##c\"]}}";
    char json[1024];
    for (int fuse = 0; fuse < 2; fuse++) {
        snprintf(json, sizeof json, fmt, fuse ? "true" : "false");
        clxp_tokenizer *t = mini(json);
        REQUIRE(t);
        int32_t ids[64], w1[] = {5}, w2[] = {3, 0, 0, 7}, w3[] = {3, 0, 7};
        int n = plain(t, "abc", ids);
        CHECK(ids_eq(ids, n, w1, 1));
        n = plain(t, "abxya", ids); /* x, y unknown: two unk, or one fused */
        CHECK(fuse ? ids_eq(ids, n, w3, 3) : ids_eq(ids, n, w2, 4));
        tok_free(t);
    }
    /* end_of_word_suffix (CLIP's </w>): the last character carries it */
    clxp_tokenizer *t = mini("{\"model\": {\"type\": \"BPE\", \"end_of_word_suffix\": \"</w>\", \"vocab\":"
                             " {\"a\": 0, \"b\": 1, \"b</w>\": 2, \"ab</w>\": 3, \"a</w>\": 4},"
                             " \"merges\": [\"a b</w>\"]}}");
    REQUIRE(t);
    int32_t ids[64], w1[] = {3}, w2[] = {0, 1, 4};
    int n = plain(t, "ab", ids);
    CHECK(ids_eq(ids, n, w1, 1));
    n = plain(t, "aba", ids); /* only the last 'a' carries the suffix; no merge applies */
    CHECK(ids_eq(ids, n, w2, 3));
    n = plain(t, "zzz", ids); /* no unk token: unknown characters vanish, as in HF */
    CHECK_EQ_INT(n, 0);
    tok_free(t);
}

/* ---- malformed tokenizer.json ----------------------------------------------------------------------------- */

static void expect_error(const char *json, clxp_status want, const char *needle) {
    clxp_tokenizer *t = NULL;
    clxp_error err = {0};
    clxp_status st = tok_load_buffer(json, strlen(json), "bad/tokenizer.json", &t, &err);
    if (st != want) printf("  got %d (%s) for %.80s\n", st, err.msg, json);
    CHECK_EQ_INT(st, want);
    CHECK(t == NULL);
    CHECK_CONTAINS(err.msg, "bad/tokenizer.json");
    if (needle) CHECK_CONTAINS(err.msg, needle);
    CHECK(strchr(err.msg, '\n') == NULL);
}

#define OK_MODEL "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"a b\"]}"

/* A pipeline of doubling steps (ByteLevel pre-tokenizers, Replace normalizers) would grow a text exponentially
 * (the fuzzer found 15 ByteLevel steps taking over 20 s): encoding stops at TOK_MAX_EXPANSION with CLXP_ERR_LIMIT,
 * while the real one-ByteLevel pipeline is untouched. */
static void check_expansion(const char *steps_json, int is_normalizer, int n) {
    char *buf = malloc(65536);
    REQUIRE(buf);
    size_t o = (size_t)snprintf(buf, 65536, "{\"model\": {\"type\": \"BPE\", \"unk_token\": \"u\", \"vocab\": "
                                              "{\"u\": 0, \"a\": 1}, \"merges\": []}, \"%s\": {\"type\": "
                                              "\"Sequence\", \"%s\": [",
                                is_normalizer ? "normalizer" : "pre_tokenizer",
                                is_normalizer ? "normalizers" : "pretokenizers");
    for (int i = 0; i < n; i++) o += (size_t)snprintf(buf + o, 65536 - o, "%s%s", i ? ", " : "", steps_json);
    o += (size_t)snprintf(buf + o, 65536 - o, "]}}");
    clxp_tokenizer *t = NULL;
    clxp_error err = {0};
    REQUIRE(tok_load_buffer(buf, o, "grow.json", &t, &err) == CLXP_OK);
    int32_t ids[256];
    int cnt = 0;
    char text[200];
    memset(text, 'a', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    for (int i = 0; i < 199; i += 7) text[i] = ' ';
    CHECK_EQ_INT(tok_encode(t, text, strlen(text), NULL, ids, NULL, 256, &cnt, &err), CLXP_ERR_LIMIT);
    CHECK_CONTAINS(err.msg, "grow.json: its normalizers and pre-tokenizers expand the text more than 64x");
    tok_free(t);
    free(buf);
}

TEST(exponential_pipelines) {
    check_expansion("{\"type\": \"ByteLevel\", \"add_prefix_space\": true}", 0, 30);
    check_expansion("{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}", 0, 30);
    check_expansion("{\"type\": \"Replace\", \"pattern\": {\"String\": \"a\"}, \"content\": \"aa\"}", 1, 60);
    check_expansion("{\"type\": \"ByteLevel\"}", 1, 30);
}

TEST(malformed_files) {
    expect_error("{\"model\": ", CLXP_ERR_FORMAT, "JSON");
    expect_error("", CLXP_ERR_FORMAT, NULL);
    expect_error("[1, 2]", CLXP_ERR_FORMAT, NULL);
    expect_error("{}", CLXP_ERR_FORMAT, "model");
    expect_error("{\"normalizer\": null}", CLXP_ERR_FORMAT, "model");
    expect_error("{" OK_MODEL ", \"pre_tokenizer\": {\"type\": \"Foo\"}}", CLXP_ERR_UNSUPPORTED,
                 "unsupported pre_tokenizer type \"Foo\"");
    expect_error("{" OK_MODEL ", \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Bar\"}]}}",
                 CLXP_ERR_UNSUPPORTED, "unsupported normalizer type \"Bar\"");
    expect_error("{" OK_MODEL ", \"post_processor\": {\"type\": \"Baz\"}}", CLXP_ERR_UNSUPPORTED, "Baz");
    expect_error("{" OK_MODEL ", \"pre_tokenizer\": {\"behavior\": \"Removed\"}}", CLXP_ERR_FORMAT, "type");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a c\"]}}",
                 CLXP_ERR_FORMAT, "\"c\"");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}",
                 CLXP_ERR_FORMAT, "\"ab\"");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a  b\"]}}",
                 CLXP_ERR_FORMAT, "merges[0]");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": [\"a\"], \"merges\": []}}", CLXP_ERR_FORMAT, "vocab");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"zero\"}, \"merges\": []}}", CLXP_ERR_FORMAT,
                 "vocab");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}", CLXP_ERR_FORMAT, "vocab");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": 7}}", CLXP_ERR_FORMAT, "merges");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": [[\"a\"]]}}", CLXP_ERR_FORMAT, "merges");
    expect_error("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", CLXP_ERR_UNSUPPORTED, "WordPiece");
    expect_error("{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": {}, \"merges\": []}}",
                 CLXP_ERR_UNSUPPORTED, "byte_fallback");
    expect_error("{\"model\": {\"type\": \"BPE\", \"dropout\": 0.1, \"vocab\": {}, \"merges\": []}}",
                 CLXP_ERR_UNSUPPORTED, "dropout");
    expect_error("{\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"vocab\": {}, \"merges\": []}}",
                 CLXP_ERR_FORMAT, "unk");
    expect_error("{\"model\": {\"type\": 3, \"vocab\": {}, \"merges\": []}}", CLXP_ERR_FORMAT, "type");
    expect_error("{" OK_MODEL ", \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"},"
                 " \"behavior\": \"Removed\", \"invert\": false}}",
                 CLXP_ERR_FORMAT, "regex");
    expect_error("{" OK_MODEL ", \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"a\"},"
                 " \"behavior\": \"Sideways\"}}",
                 CLXP_ERR_FORMAT, "Sideways");
    expect_error("{" OK_MODEL ", \"normalizer\": {\"type\": \"Replace\", \"pattern\": \"x\", \"content\": \"y\"}}",
                 CLXP_ERR_FORMAT, "pattern");
    expect_error("{" OK_MODEL ", \"added_tokens\": [{\"content\": \"x\"}]}", CLXP_ERR_FORMAT, "added_tokens[0]");
    expect_error("{" OK_MODEL ", \"added_tokens\": {}}", CLXP_ERR_FORMAT, "added_tokens");
    expect_error("{" OK_MODEL ", \"added_tokens\": [{\"id\": 5, \"content\": \"x\", \"lstrip\": 1}]}", CLXP_ERR_FORMAT,
                 "lstrip");
    expect_error("{" OK_MODEL ", \"post_processor\": {\"type\": \"RobertaProcessing\", \"sep\": [\"</s>\"],"
                 " \"cls\": [\"<s>\", 0]}}",
                 CLXP_ERR_FORMAT, "sep");
    expect_error("{" OK_MODEL ", \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [\"<x>\", \"$A\"],"
                 " \"special_tokens\": {}}}",
                 CLXP_ERR_FORMAT, "<x>");
    expect_error("{" OK_MODEL ", \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [\"$B\"]}}",
                 CLXP_ERR_FORMAT, "B");
    expect_error("{\"model\": {\"vocab\": {\"\xFF\": 0}, \"merges\": []}}", CLXP_ERR_FORMAT, "UTF-8");
    /* the smallest valid file */
    clxp_tokenizer *t = mini("{" OK_MODEL "}");
    CHECK(t != NULL);
    int32_t ids[8], w[] = {2, 0};
    CHECK(ids_eq(ids, plain(t, "aba", ids), w, 2));
    tok_free(t);
    /* files */
    clxp_error err = {0};
    CHECK_EQ_INT(tok_load("tests/data/no/such/tokenizer.json", &t, &err), CLXP_ERR_IO);
    CHECK_CONTAINS(err.msg, "no/such/tokenizer.json");
    CHECK(t == NULL);
    tok_free(NULL);
}

int main(void) {
    RUN(clip_quickgelu_goldens);
    RUN(clip_gelu_goldens);
    RUN(clip_lookups);
    RUN(clip_unicode_details);
    RUN(roberta_goldens);
    RUN(roberta_special_strings);
    RUN(gpt2_goldens);
    RUN(encode_options);
    RUN(long_inputs);
    RUN(invalid_utf8);
    RUN(concurrent_encode);
    RUN(split_behaviors);
    RUN(added_token_flags);
    RUN(normalizers_and_postprocessors);
    RUN(bpe_model_options);
    RUN(malformed_files);
    RUN(exponential_pipelines);
    return test_summary();
}
