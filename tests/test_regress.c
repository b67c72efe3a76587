/* Regression inputs of the fuzzers: every file in tests/regress/<target>/ (the crashers, hangs and leaks the
 * libFuzzer targets in fuzz/ found, kept after the fix) and every seed in fuzz/corpus/<target>/ is replayed
 * through the same function as the fuzz target (fuzz/fuzz_<target>.c), in the normal build, so that `make test`
 * and the ASan + UBSan build (`make SAN=1 BUILD=build-san test`) catch a regression without libFuzzer.
 * A broken invariant aborts the binary (reported by tests/run.sh); a sanitizer report does the same.
 *
 * Also tests the in-memory entry points added for fuzzing (st_open_memory, clip_config_parse) against their
 * file counterparts. $CLXP_TEST_REGRESS overrides tests/regress, $CLXP_FUZZ_CORPUS fuzz/corpus.
 */
#include <dirent.h>
#include <stdint.h>

#include "fuzz.h"
#include "io/clip_config.h"
#include "io/safetensors.h"
#include "test.h"
#include "util/fileio.h"

typedef int (*fuzz_fn)(const uint8_t *data, size_t size);

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Replay every regular file of dir (sorted by name) through fn; returns the number of files, -1 if dir is absent. */
static int replay_dir(const char *dir, fuzz_fn fn) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    char **names = NULL;
    int n = 0, cap = 0;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "README.md") == 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, (size_t)cap * sizeof *nn);
            if (!nn) break;
            names = nn;
        }
        names[n] = strdup(e->d_name);
        if (names[n]) n++;
    }
    closedir(d);
    if (n) qsort(names, (size_t)n, sizeof *names, cmp_str);
    int replayed = 0;
    for (int i = 0; i < n; i++) {
        char *path = clxp_path_join(dir, names[i]);
        char *buf = NULL;
        size_t len = 0;
        clxp_error err;
        if (path && clxp_is_file(path) && clxp_read_file(path, (size_t)64 << 20, &buf, &len, &err) == CLXP_OK) {
            /* an exact-size copy, not NUL-terminated, as libFuzzer passes it: over-reads are caught */
            uint8_t *exact = malloc(len ? len : 1);
            if (exact) {
                memcpy(exact, buf, len);
                fflush(stdout);
                fn(exact, len);
                replayed++;
            }
            CHECK(exact != NULL);
            free(exact);
            free(buf);
        } else if (path && clxp_is_file(path)) {
            printf("  %s\n", err.msg);
            CHECK(0);
        }
        free(path);
        free(names[i]);
    }
    free(names);
    return replayed;
}

static void replay(const char *target, fuzz_fn fn) {
    const char *regress = getenv("CLXP_TEST_REGRESS"), *corpus = getenv("CLXP_FUZZ_CORPUS");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", regress && *regress ? regress : "tests/regress", target);
    int n_regress = replay_dir(dir, fn);
    snprintf(dir, sizeof dir, "%s/%s", corpus && *corpus ? corpus : "fuzz/corpus", target);
    int n_seeds = replay_dir(dir, fn);
    printf("  %s: %d regression inputs, %d seeds replayed\n", target, n_regress > 0 ? n_regress : 0,
           n_seeds > 0 ? n_seeds : 0);
    CHECK(n_seeds > 0); /* every target has seeds: finding none means the directory is wrong */
}

TEST(safetensors) { replay("safetensors", fuzz_safetensors); }
TEST(config) { replay("config", fuzz_config); }
TEST(tokenizer_load) { replay("tokenizer_load", fuzz_tokenizer_load); }
TEST(tokenizer_encode) {
    REQUIRE(fuzz_tokenizer_encode_init(fuzz_data_dir(NULL)) == 0);
    replay("tokenizer_encode", fuzz_tokenizer_encode);
    fuzz_tokenizer_encode_cleanup();
}
TEST(prompts) { replay("prompts", fuzz_prompts); }
TEST(boxes) { replay("boxes", fuzz_boxes); }
TEST(json) { replay("json", fuzz_json); }
TEST(pickle) { replay("pickle", fuzz_pickle); }
TEST(torch) { replay("torch", fuzz_torch); }
TEST(image) {
    fuzz_image_init();
    replay("image", fuzz_image);
}

/* st_open_memory sees the same tensors as st_open; its messages name the buffer. */
TEST(st_open_memory) {
    const char *path = test_data("clip-tiny-quickgelu/model.safetensors");
    char *buf = NULL;
    size_t len = 0;
    clxp_error err = {0};
    REQUIRE(clxp_read_file(path, (size_t)64 << 20, &buf, &len, &err) == CLXP_OK);
    st_file *a = NULL, *b = NULL;
    REQUIRE(st_open(path, &a, &err) == CLXP_OK);
    CHECK(st_open_memory(buf, len, "mem.safetensors", &b, &err) == CLXP_OK);
    if (b) {
        CHECK_STR(st_path(b), "mem.safetensors");
        CHECK_EQ_INT(st_count(a), st_count(b));
        for (int i = 0; i < st_count(a) && i < st_count(b); i++) {
            const st_tensor *x = st_at(a, i), *y = st_at(b, i);
            CHECK_STR(x->name, y->name);
            CHECK(x->dtype == y->dtype && x->numel == y->numel && x->nbytes == y->nbytes);
            CHECK((const char *)y->data >= buf && (const char *)y->data + y->nbytes <= buf + len);
            CHECK(memcmp(x->data, y->data, x->nbytes) == 0);
        }
    }
    st_close(b);
    st_close(a);
    /* a truncated copy: the header's offsets no longer fit; the message names the buffer */
    CHECK_EQ_INT(st_open_memory(buf, len - 1, NULL, &b, &err), CLXP_ERR_FORMAT);
    CHECK(b == NULL);
    CHECK_CONTAINS(err.msg, "(memory)");
    CHECK_EQ_INT(st_open_memory(buf, 7, "short", &b, &err), CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "short: file too short");
    free(buf);
}

static int same_tower(const clip_tower_config *x, const clip_tower_config *y) {
    return x->hidden == y->hidden && x->layers == y->layers && x->heads == y->heads && x->mlp == y->mlp &&
           x->act == y->act && x->ln_eps == y->ln_eps;
}

/* clip_config_parse gives what clip_config_load gives; messages start with `what`. */
TEST(clip_config_parse) {
    const char *path = test_data("clip-tiny-gelu/config.json");
    char *buf = NULL;
    size_t len = 0;
    clxp_error err = {0};
    REQUIRE(clxp_read_file(path, (size_t)1 << 20, &buf, &len, &err) == CLXP_OK);
    clip_config a, b;
    REQUIRE(clip_config_load(path, &a, &err) == CLXP_OK);
    CHECK(clip_config_parse(buf, len, "mem/config.json", &b, &err) == CLXP_OK);
    CHECK(same_tower(&a.vision, &b.vision) && same_tower(&a.text, &b.text));
    CHECK(a.image_size == b.image_size && a.patch_size == b.patch_size && a.num_channels == b.num_channels);
    CHECK(a.vocab_size == b.vocab_size && a.context_length == b.context_length);
    CHECK(a.eos_token_id == b.eos_token_id && a.bos_token_id == b.bos_token_id && a.pad_token_id == b.pad_token_id);
    CHECK(a.projection_dim == b.projection_dim);
    CHECK_EQ_INT(b.text.act, CLIP_ACT_GELU);
    free(buf);
    const char *bad = "{\"vision_config\": {\"hidden_size\": 30, \"num_attention_heads\": 7}}";
    CHECK_EQ_INT(clip_config_parse(bad, strlen(bad), "mem/config.json", &b, &err), CLXP_ERR_INVALID);
    CHECK_CONTAINS(err.msg, "mem/config.json: vision_config.hidden_size 30");
    CHECK_EQ_INT(clip_config_parse("{\"projection_dim\": 5", 19, "x.json", &b, &err), CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "x.json: malformed JSON");
}

int main(void) {
    RUN(st_open_memory);
    RUN(clip_config_parse);
    RUN(safetensors);
    RUN(config);
    RUN(tokenizer_load);
    RUN(tokenizer_encode);
    RUN(prompts);
    RUN(boxes);
    RUN(json);
    RUN(pickle);
    RUN(torch);
    RUN(image);
    return test_summary();
}
