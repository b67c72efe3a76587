/* Error reporting helpers shared by every module (see clxp_error in clxp.h). */
#ifndef CLXP_UTIL_ERROR_H
#define CLXP_UTIL_ERROR_H

#include "clxp.h"

#if defined(__GNUC__)
#define CLXP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CLXP_PRINTF(a, b)
#endif

/* Fill err (if non-NULL) with code and a formatted one-line message; returns code. */
clxp_status clxp_err_set(clxp_error *err, clxp_status code, const char *fmt, ...) CLXP_PRINTF(3, 4);

/* Prefix an already-set message: "<prefix>: <old message>". Returns err->code (or code if err is NULL). */
clxp_status clxp_err_prefix(clxp_error *err, clxp_status code, const char *fmt, ...) CLXP_PRINTF(3, 4);

/* Internal logging through the callback installed with clxp_set_log_callback. */
void clxp_log(clxp_log_level level, const char *fmt, ...) CLXP_PRINTF(2, 3);

#endif
