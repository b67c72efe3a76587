/* Fuzz target: clxp_json_parse (UTF-8 and nesting-depth checks in front of cJSON) and the typed getters every
 * loader uses, on each member of the top-level object. */
#include <string.h>

#include "fuzz.h"
#include "util/json.h"

int fuzz_json(const uint8_t *data, size_t size) {
    cJSON *root = NULL;
    clxp_error err;
    clxp_status st = clxp_json_parse((const char *)data, size, "fuzz.json", &root, &err);
    if (st != CLXP_OK) {
        FUZZ_ASSERT(root == NULL && err.code == st && !strchr(err.msg, '\n'));
        return 0;
    }
    FUZZ_ASSERT(root != NULL);
    if (cJSON_IsObject(root)) {
        int n = 0;
        for (const cJSON *c = root->child; c && n < 64; c = c->next, n++) {
            int i = 0, b = 0;
            double d = 0;
            const char *s = NULL;
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, c->string); /* the first of duplicate keys */
            FUZZ_ASSERT(v != NULL);
            if (clxp_json_int(root, c->string, 7, &i, "fuzz.json", &err) == CLXP_OK && cJSON_IsNumber(v))
                FUZZ_ASSERT((double)i == v->valuedouble);
            if (clxp_json_double(root, c->string, 0.5, &d, "fuzz.json", &err) == CLXP_OK && cJSON_IsNumber(v))
                FUZZ_ASSERT(d == v->valuedouble);
            (void)clxp_json_bool(root, c->string, 0, &b, "fuzz.json", &err);
            if (clxp_json_string(root, c->string, "x", &s, "fuzz.json", &err) == CLXP_OK) FUZZ_ASSERT(s != NULL);
        }
    }
    cJSON_Delete(root);
    return 0;
}

FUZZ_ENTRY(fuzz_json)
