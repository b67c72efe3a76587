/* UTF-8 validation (strict: no overlongs, no surrogates, nothing above U+10FFFF). */
#ifndef CLXP_UTIL_UTF8_H
#define CLXP_UTIL_UTF8_H

#include <stddef.h>

/* Returns 1 if buf[0..len) is valid UTF-8; otherwise 0 and *bad = offset of the first bad byte. */
int clxp_utf8_valid(const char *buf, size_t len, size_t *bad);

#endif
