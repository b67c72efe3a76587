/* Helpers shared by every fuzz target and tests/test_regress.c (see fuzz.h). */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void fuzz_fail(const char *file, int line, const char *cond) {
    fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", file, line, cond);
    abort();
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

const char *fuzz_data_dir(const char *argv0) {
    static char buf[4096];
    const char *env = getenv("CLXP_TEST_DATA");
    if (env && *env) return env;
    if (is_dir("tests/data")) return "tests/data";
    const char *slash = argv0 ? strrchr(argv0, '/') : NULL;
    if (slash) {
        snprintf(buf, sizeof buf, "%.*s/../tests/data", (int)(slash - argv0), argv0);
        if (is_dir(buf)) return buf;
    }
    return "tests/data";
}
