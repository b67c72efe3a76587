/* cJSON helpers: parse a file with a clear error, typed field access with defaults. */
#ifndef CLXP_UTIL_JSON_H
#define CLXP_UTIL_JSON_H

#include <cjson/cJSON.h>

#include "clxp.h"

/* Maximum nesting depth accepted (checked before cJSON parses). */
#define CLXP_MAX_JSON_DEPTH 128

/* Parse the JSON file at path; on failure the message names the file and the byte offset. */
clxp_status clxp_json_load(const char *path, cJSON **out, clxp_error *err);
/* Parse a buffer; `what` names the source in messages (usually a path). */
clxp_status clxp_json_parse(const char *buf, size_t len, const char *what, cJSON **out, clxp_error *err);

/* Typed lookups: return CLXP_OK and store the value, or the default when the key is absent or null;
 * a present value of the wrong type or out of the int range is a CLXP_ERR_FORMAT naming what/key. */
clxp_status clxp_json_int(const cJSON *obj, const char *key, int def, int *out, const char *what, clxp_error *err);
clxp_status clxp_json_double(const cJSON *obj, const char *key, double def, double *out, const char *what,
                             clxp_error *err);
clxp_status clxp_json_bool(const cJSON *obj, const char *key, int def, int *out, const char *what, clxp_error *err);
/* Returns the string value (owned by the cJSON tree) or def. */
clxp_status clxp_json_string(const cJSON *obj, const char *key, const char *def, const char **out, const char *what,
                             clxp_error *err);

#endif
