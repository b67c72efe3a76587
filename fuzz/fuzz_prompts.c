/* Fuzz target: prompt files, parsed both as a labels file and as a categories file ([Unit] / (Category)). */
#include <string.h>

#include "fuzz.h"
#include "io/prompts.h"

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

static void check_text(const char *s) {
    size_t n = strlen(s);
    FUZZ_ASSERT(n >= 1 && n <= CLXP_MAX_PROMPT_BYTES && !strchr(s, '\n'));
    FUZZ_ASSERT(!is_space(s[0]) && !is_space(s[n - 1]));
}

static void check_set(const prompt_set *p, int categories) {
    FUZZ_ASSERT(p->n >= 1 && p->n <= CLXP_MAX_PROMPTS && p->is_categories == categories);
    for (int i = 0; i < p->n; i++) check_text(p->text[i]);
    if (!categories) {
        FUZZ_ASSERT(p->n_units == 0 && p->n_cats == 0);
        return;
    }
    FUZZ_ASSERT(p->n_units >= 1 && p->n_cats >= p->n_units);
    int next_cat = 0, next_prompt = 0;
    for (int u = 0; u < p->n_units; u++) {
        const prompt_unit *un = &p->units[u];
        check_text(un->name);
        FUZZ_ASSERT(un->first_cat == next_cat && un->n_cats >= 1 && un->first_cat + un->n_cats <= p->n_cats);
        for (int k = un->first_cat; k < un->first_cat + un->n_cats; k++) {
            const prompt_cat *c = &p->cats[k];
            check_text(c->name);
            FUZZ_ASSERT(c->unit == u && c->first_prompt == next_prompt && c->n_prompts >= 1);
            next_prompt += c->n_prompts;
        }
        next_cat += un->n_cats;
    }
    FUZZ_ASSERT(next_cat == p->n_cats && next_prompt == p->n);
}

int fuzz_prompts(const uint8_t *data, size_t size) {
    for (int categories = 0; categories < 2; categories++) {
        prompt_set p;
        clxp_error err;
        clxp_status st = prompts_parse((const char *)data, size, "prompts.txt", categories, &p, &err);
        if (st == CLXP_OK) {
            check_set(&p, categories);
        } else {
            FUZZ_ASSERT(err.code == st && !strchr(err.msg, '\n'));
            FUZZ_ASSERT(p.n == 0 && p.text == NULL && p.units == NULL && p.cats == NULL);
        }
        prompts_free(&p);
        prompts_free(&p); /* freeing a freed (zeroed) set is fine */
    }
    return 0;
}

FUZZ_ENTRY(fuzz_prompts)
