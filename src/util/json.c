#include "util/json.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/fileio.h"
#include "util/utf8.h"

/* cJSON recurses once per nesting level; reject deep documents before handing them over, counting
 * brackets outside strings. */
static int json_depth_ok(const char *buf, size_t len, size_t *where) {
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == '"') in_str = 1;
        else if (c == '[' || c == '{') {
            if (++depth > CLXP_MAX_JSON_DEPTH) {
                *where = i;
                return 0;
            }
        } else if (c == ']' || c == '}') depth--;
    }
    return 1;
}

clxp_status clxp_json_parse(const char *buf, size_t len, const char *what, cJSON **out, clxp_error *err) {
    *out = NULL;
    size_t where = 0;
    if (!clxp_utf8_valid(buf, len, &where))
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: JSON is not valid UTF-8 (byte %zu)", what, where);
    if (!json_depth_ok(buf, len, &where))
        return clxp_err_set(err, CLXP_ERR_LIMIT, "%s: JSON nested deeper than %d levels (at byte %zu)", what,
                            CLXP_MAX_JSON_DEPTH, where);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!j) {
        size_t off = end && end >= buf ? (size_t)(end - buf) : 0;
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: malformed JSON near byte %zu", what, off);
    }
    *out = j;
    return CLXP_OK;
}

clxp_status clxp_json_load(const char *path, cJSON **out, clxp_error *err) {
    char *buf = NULL;
    size_t len = 0;
    clxp_status st = clxp_read_file(path, CLXP_MAX_JSON_BYTES, &buf, &len, err);
    if (st != CLXP_OK) return st;
    st = clxp_json_parse(buf, len, path, out, err);
    free(buf);
    return st;
}

static const cJSON *field(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

clxp_status clxp_json_int(const cJSON *obj, const char *key, int def, int *out, const char *what, clxp_error *err) {
    const cJSON *v = field(obj, key);
    if (!v) {
        *out = def;
        return CLXP_OK;
    }
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d != floor(d) || d < INT_MIN || d > INT_MAX)
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: \"%s\" must be an integer", what, key);
    *out = (int)d;
    return CLXP_OK;
}

clxp_status clxp_json_double(const cJSON *obj, const char *key, double def, double *out, const char *what,
                             clxp_error *err) {
    const cJSON *v = field(obj, key);
    if (!v) {
        *out = def;
        return CLXP_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: \"%s\" must be a finite number", what, key);
    *out = v->valuedouble;
    return CLXP_OK;
}

clxp_status clxp_json_bool(const cJSON *obj, const char *key, int def, int *out, const char *what, clxp_error *err) {
    const cJSON *v = field(obj, key);
    if (!v) {
        *out = def;
        return CLXP_OK;
    }
    if (!cJSON_IsBool(v)) return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: \"%s\" must be true or false", what, key);
    *out = cJSON_IsTrue(v);
    return CLXP_OK;
}

clxp_status clxp_json_string(const cJSON *obj, const char *key, const char *def, const char **out, const char *what,
                             clxp_error *err) {
    const cJSON *v = field(obj, key);
    if (!v) {
        *out = def;
        return CLXP_OK;
    }
    if (!cJSON_IsString(v)) return clxp_err_set(err, CLXP_ERR_FORMAT, "%s: \"%s\" must be a string", what, key);
    *out = v->valuestring;
    return CLXP_OK;
}
