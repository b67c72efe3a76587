#include "test.h"

int test_failed_checks;
int tests_passed, tests_failed;

static const char *data_root(void) {
    const char *r = getenv("CLXP_TEST_DATA");
    return r && *r ? r : "tests/data";
}

const char *test_data(const char *rel) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", data_root(), rel);
    return buf;
}

const char *test_data2(const char *rel) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", data_root(), rel);
    return buf;
}

test_diff test_compare(const float *a, const float *b, size_t n) {
    test_diff d = {0, 0};
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)a[i] - (double)b[i];
        if (fabs(e) > d.max_abs || e != e) d.max_abs = e != e ? INFINITY : fabs(e);
        num += e * e;
        den += (double)b[i] * b[i];
    }
    d.rel = den > 0 ? sqrt(num / den) : sqrt(num);
    return d;
}

int test_summary(void) {
    printf("RESULT %d %d\n", tests_passed, tests_failed);
    return tests_failed ? 1 : 0;
}
