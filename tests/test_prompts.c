/* Labels and categories files: the seed's files load unchanged; malformed files give line-numbered errors. */
#include <unistd.h>

#include "io/prompts.h"
#include "test.h"

static clxp_status parse(const char *s, int cat, prompt_set *p, clxp_error *err) {
    return prompts_parse(s, strlen(s), "mem.txt", cat, p, err);
}

TEST(seed_labels_file) {
    prompt_set p;
    clxp_error err = {0};
    REQUIRE(prompts_load(test_data("seed/labels_clip_person.txt"), &p, &err) == CLXP_OK);
    CHECK(!p.is_categories);
    CHECK_EQ_INT(p.n, 3);
    CHECK_STR(p.text[0], "a person crying");
    CHECK_STR(p.text[2], "a angry person"); /* last line has no newline */
    prompts_free(&p);
}

TEST(seed_categories_file) {
    prompt_set p;
    clxp_error err = {0};
    REQUIRE(prompts_load(test_data("seed/categories_clip.txt"), &p, &err) == CLXP_OK);
    CHECK(p.is_categories);
    /* the seed README: 3 units, 11 categories, 110 prompts */
    CHECK_EQ_INT(p.n_units, 3);
    CHECK_EQ_INT(p.n_cats, 11);
    CHECK_EQ_INT(p.n, 110);
    CHECK_STR(p.units[0].name, "RecordingSystem");
    CHECK_STR(p.cats[0].name, "Home Recording"); /* trailing space in the file is trimmed */
    CHECK_STR(p.text[0], "Low-res image with noise and uneven lighting.");
    int total = 0;
    for (int c = 0; c < p.n_cats; c++) {
        CHECK(p.cats[c].n_prompts > 0);
        CHECK_EQ_INT(p.cats[c].first_prompt, total);
        total += p.cats[c].n_prompts;
    }
    CHECK_EQ_INT(total, p.n);
    prompts_free(&p);
    for (int i = 0; i < 2; i++) {
        const char *f = i ? "seed/clip_combined_analysis.txt" : "seed/categories_clap.txt";
        REQUIRE(prompts_load(test_data(f), &p, &err) == CLXP_OK);
        CHECK(p.is_categories && p.n_units >= 1 && p.n > 10);
        prompts_free(&p);
    }
}

TEST(blank_lines_crlf_bom) {
    prompt_set p;
    clxp_error err = {0};
    REQUIRE(parse("\xEF\xBB\xBF" "a cat\r\n\r\n  \t\n a dog  \r\n", 0, &p, &err) == CLXP_OK);
    CHECK_EQ_INT(p.n, 2);
    CHECK_STR(p.text[0], "a cat");
    CHECK_STR(p.text[1], "a dog");
    prompts_free(&p);
}

TEST(errors) {
    prompt_set p;
    clxp_error err = {0};
    CHECK_EQ_INT(parse("", 0, &p, &err), CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "mem.txt: no prompts");
    CHECK_EQ_INT(parse("\n \n", 0, &p, &err), CLXP_ERR_FORMAT);
    CHECK_EQ_INT(parse("ok\nbad \xC3\x28 utf8\n", 0, &p, &err), CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "mem.txt:2: not valid UTF-8");
    CHECK_EQ_INT(parse("a prompt\n[Unit]\n(Cat)\nx\n", 1, &p, &err), CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "mem.txt:1: prompt before any [Unit] line");
    CHECK_EQ_INT(parse("[Unit]\nprompt\n", 1, &p, &err), CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "mem.txt:2: prompt before any (Category) line");
    CHECK_EQ_INT(parse("[Unit]\n", 1, &p, &err), CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "has no categories");
    CHECK_EQ_INT(parse("[A]\n(c)\nx\n[B]\n[C]\n(d)\ny\n", 1, &p, &err), CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "mem.txt:5: unit \"B\" has no categories");
    CHECK_EQ_INT(parse("[A]\n(c)\n(d)\ny\n", 1, &p, &err), CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "category \"c\" has no prompts");
    CHECK_EQ_INT(parse("[ ]\n(c)\ny\n", 1, &p, &err), CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, "empty unit name");
    /* a 1 MB single-line label exceeds the per-prompt limit */
    size_t n = 1 << 20;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[n] = '\0';
    CHECK_EQ_INT(prompts_parse(big, n, "big.txt", 0, &p, &err), CLXP_ERR_LIMIT);
    CHECK_CONTAINS(err.msg, "big.txt:1: prompt is 1048576 bytes long");
    free(big);
    CHECK_EQ_INT(prompts_load("/nonexistent/labels.txt", &p, &err), CLXP_ERR_IO);
    CHECK_CONTAINS(err.msg, "/nonexistent/labels.txt: cannot open");
    /* "[]" makes a file a categories file (and is an empty unit name), not a label "[]" */
    char path[] = "/tmp/clxp-prompts-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    FILE *f = fdopen(fd, "w");
    REQUIRE(f);
    fputs("[]\n(Day)\na photo taken by day\n", f);
    fclose(f);
    CHECK_EQ_INT(prompts_load(path, &p, &err), CLXP_ERR_FORMAT);
    CHECK_CONTAINS(err.msg, ":1: empty unit name");
    unlink(path);
}

TEST(many_labels) {
    /* 100 000 labels are within the limits */
    size_t cap = 100000 * 16;
    char *buf = malloc(cap), *w = buf;
    for (int i = 0; i < 100000; i++) w += sprintf(w, "label %d\n", i);
    prompt_set p;
    clxp_error err = {0};
    REQUIRE(prompts_parse(buf, (size_t)(w - buf), "many.txt", 0, &p, &err) == CLXP_OK);
    CHECK_EQ_INT(p.n, 100000);
    CHECK_STR(p.text[99999], "label 99999");
    prompts_free(&p);
    free(buf);
}

int main(void) {
    RUN(seed_labels_file);
    RUN(seed_categories_file);
    RUN(blank_lines_crlf_bom);
    RUN(errors);
    RUN(many_labels);
    return test_summary();
}
