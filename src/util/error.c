#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *clxp_status_str(clxp_status s) {
    switch (s) {
    case CLXP_OK: return "ok";
    case CLXP_ERR_IO: return "i/o error";
    case CLXP_ERR_FORMAT: return "format error";
    case CLXP_ERR_UNSUPPORTED: return "unsupported";
    case CLXP_ERR_INVALID: return "invalid argument";
    case CLXP_ERR_NOMEM: return "out of memory";
    case CLXP_ERR_LIMIT: return "limit exceeded";
    case CLXP_ERR_INTERNAL: return "internal error";
    }
    return "unknown error";
}

/* Replace control characters so a message always stays on one line. */
static void one_line(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20) *s = ' ';
}

clxp_status clxp_err_set(clxp_error *err, clxp_status code, const char *fmt, ...) {
    if (!err) return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    one_line(err->msg);
    err->code = code;
    return code;
}

clxp_status clxp_err_prefix(clxp_error *err, clxp_status code, const char *fmt, ...) {
    if (!err) return code;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    int room = (int)(sizeof err->msg) - 3 - (int)strlen(prefix);
    snprintf(err->msg, sizeof err->msg, "%s: %.*s", prefix, room > 0 ? room : 0, old);
    one_line(err->msg);
    if (err->code == CLXP_OK) err->code = code;
    return err->code;
}

/* Logging is the one piece of global mutable state (set once, before use). */
static clxp_log_fn g_log_fn;
static void *g_log_user;
static clxp_log_level g_log_max = CLXP_LOG_WARN;

void clxp_set_log_callback(clxp_log_fn fn, void *user, clxp_log_level max_level) {
    g_log_fn = fn;
    g_log_user = user;
    g_log_max = max_level;
}

void clxp_log(clxp_log_level level, const char *fmt, ...) {
    if (!g_log_fn || level > g_log_max) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    g_log_fn(g_log_user, level, buf);
}
