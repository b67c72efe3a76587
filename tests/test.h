/* A tiny test harness: each tests/test_*.c is one binary made of TEST(...) functions.
 *
 *   TEST(name) { CHECK(cond); CHECK_EQ_INT(a, b); CHECK_NEAR(a, b, tol); ... }
 *   int main(void) { RUN(name); ...; return test_summary(); }
 *
 * Every CHECK prints file:line and the values on failure. test_summary() prints
 * "RESULT <passed> <failed>" which tests/run.sh adds up into "N passed, N failed".
 * Test data lives in tests/data; test_data(path) prefixes it ($CLXP_TEST_DATA overrides).
 */
#ifndef CLXP_TEST_H
#define CLXP_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern int test_failed_checks; /* failures within the current test */
extern int tests_passed, tests_failed;

#define TEST(name) static void test_##name(void)

#define RUN(name)                                                                                                     \
    do {                                                                                                              \
        test_failed_checks = 0;                                                                                       \
        test_##name();                                                                                                \
        if (test_failed_checks) {                                                                                     \
            tests_failed++;                                                                                           \
            printf("FAIL %s\n", #name);                                                                               \
        } else {                                                                                                      \
            tests_passed++;                                                                                           \
            printf("ok   %s\n", #name);                                                                               \
        }                                                                                                             \
        fflush(stdout);                                                                                               \
    } while (0)

#define CHECK(cond)                                                                                                   \
    do {                                                                                                              \
        if (!(cond)) {                                                                                                \
            printf("  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);                                        \
            test_failed_checks++;                                                                                     \
        }                                                                                                             \
    } while (0)

/* Like CHECK but returns from the test function on failure (for preconditions). */
#define REQUIRE(cond)                                                                                                 \
    do {                                                                                                              \
        if (!(cond)) {                                                                                                \
            printf("  %s:%d: REQUIRE(%s) failed\n", __FILE__, __LINE__, #cond);                                      \
            test_failed_checks++;                                                                                     \
            return;                                                                                                   \
        }                                                                                                             \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                                            \
    do {                                                                                                              \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                                         \
        if (va_ != vb_) {                                                                                             \
            printf("  %s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b, va_, vb_);                \
            test_failed_checks++;                                                                                     \
        }                                                                                                             \
    } while (0)

#define CHECK_STR(a, b)                                                                                               \
    do {                                                                                                              \
        const char *sa_ = (a), *sb_ = (b);                                                                            \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0) {                                                                 \
            printf("  %s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a, #b, sa_ ? sa_ : "(null)", \
                   sb_ ? sb_ : "(null)");                                                                             \
            test_failed_checks++;                                                                                     \
        }                                                                                                             \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                                         \
    do {                                                                                                              \
        double va_ = (double)(a), vb_ = (double)(b);                                                                  \
        if (!(fabs(va_ - vb_) <= (tol))) {                                                                            \
            printf("  %s:%d: |%s - %s| <= %g failed: %.9g vs %.9g\n", __FILE__, __LINE__, #a, #b, (double)(tol), va_, \
                   vb_);                                                                                              \
            test_failed_checks++;                                                                                     \
        }                                                                                                             \
    } while (0)

/* Checks that substring `needle` occurs in `hay`. */
#define CHECK_CONTAINS(hay, needle)                                                                                   \
    do {                                                                                                              \
        const char *h_ = (hay), *n_ = (needle);                                                                       \
        if (!h_ || !strstr(h_, n_)) {                                                                                 \
            printf("  %s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__, h_ ? h_ : "(null)", n_);         \
            test_failed_checks++;                                                                                     \
        }                                                                                                             \
    } while (0)

/* Path under the test data directory; returns a static buffer (use before the next call). */
const char *test_data(const char *rel);
/* Same, into a second buffer so two paths can be held at once. */
const char *test_data2(const char *rel);

/* Error comparison of float arrays: max |a-b|, and ||a-b|| / ||b||. */
typedef struct {
    double max_abs, rel;
} test_diff;
test_diff test_compare(const float *a, const float *b, size_t n);

int test_summary(void);

#endif
