/* Prompt files: plain labels files and the seed's categories files.
 *
 * Labels file: one prompt per line, UTF-8; leading/trailing whitespace (and CR) is trimmed; blank lines
 * are ignored. Categories file: "[Unit]" opens a classification unit, "(Category)" opens a category of
 * the current unit, every other non-blank line is a prompt of the current category. Prompt lines before
 * any unit/category are an error with the line number.
 * Limits (hostile input): file size CLXP_MAX_PROMPT_FILE, CLXP_MAX_PROMPTS prompts, CLXP_MAX_PROMPT_BYTES
 * bytes per prompt. */
#ifndef CLXP_IO_PROMPTS_H
#define CLXP_IO_PROMPTS_H

#include "clxp.h"

#define CLXP_MAX_PROMPT_FILE ((size_t)64 << 20)
#define CLXP_MAX_PROMPTS 1000000
#define CLXP_MAX_PROMPT_BYTES 4096

typedef struct prompt_unit {
    char *name;
    int first_cat, n_cats;
} prompt_unit;

typedef struct prompt_cat {
    char *name;
    int unit;
    int first_prompt, n_prompts;
} prompt_cat;

typedef struct prompt_set {
    int n;
    char **text; /* n prompts, in file order */
    int is_categories;
    int n_units, n_cats;
    prompt_unit *units;
    prompt_cat *cats;
} prompt_set;

clxp_status prompts_load_labels(const char *path, prompt_set *out, clxp_error *err);
clxp_status prompts_load_categories(const char *path, prompt_set *out, clxp_error *err);
/* Categories file if any line is a "[Unit]" line (a whole line in square brackets), labels file otherwise. */
clxp_status prompts_load(const char *path, prompt_set *out, clxp_error *err);
/* Parse from memory (buf need not be NUL-terminated; what names the source in messages); for fuzzing and tests. */
clxp_status prompts_parse(const char *buf, size_t len, const char *what, int categories, prompt_set *out,
                          clxp_error *err);
void prompts_free(prompt_set *p);

#endif
