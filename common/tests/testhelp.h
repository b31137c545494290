/* testhelp.h - a tiny test harness shared by unit and integration tests.
 *
 * A test binary lists its tests in a table and calls th_main(); each test is
 * a void function that checks with TH_CHECK (records a failure and goes on)
 * or TH_REQUIRE (records a failure and returns from the test). The binary
 * prints one line per test and ends with "N passed, N failed", the line that
 * scripts/run-tests adds up. Modeled on Redis' testhelp.h and hiredis' test.c. */
#ifndef CG_TESTHELP_H
#define CG_TESTHELP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct th_test {
    const char *name;
    void (*fn)(void);
};

static int th_current_failures;

#define TH_FAIL_AT(...)                                                   \
    do {                                                                  \
        th_current_failures++;                                            \
        fprintf(stdout, "    %s:%d: ", __FILE__, __LINE__);               \
        fprintf(stdout, __VA_ARGS__);                                     \
        fputc('\n', stdout);                                              \
    } while (0)

#define TH_CHECK(cond)                                                    \
    do {                                                                  \
        if (!(cond))                                                      \
            TH_FAIL_AT("check failed: %s", #cond);                        \
    } while (0)

#define TH_REQUIRE(cond)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            TH_FAIL_AT("requirement failed: %s", #cond);                  \
            return;                                                       \
        }                                                                 \
    } while (0)

/* Records a failure and jumps to the test's `done:` label, for tests that
 * hold resources to release. */
#define TH_REQUIRE_OR_DONE(cond)                                          \
    do {                                                                  \
        if (!(cond)) {                                                    \
            TH_FAIL_AT("requirement failed: %s", #cond);                  \
            goto done;                                                    \
        }                                                                 \
    } while (0)

#define TH_CHECK_INT(a, b)                                                \
    do {                                                                  \
        long long th_a_ = (long long)(a), th_b_ = (long long)(b);         \
        if (th_a_ != th_b_)                                               \
            TH_FAIL_AT("%s == %s: %lld != %lld", #a, #b, th_a_, th_b_);   \
    } while (0)

#define TH_CHECK_STR(a, b)                                                \
    do {                                                                  \
        const char *th_a_ = (a), *th_b_ = (b);                            \
        if (th_a_ == NULL || th_b_ == NULL || strcmp(th_a_, th_b_) != 0)  \
            TH_FAIL_AT("%s == %s: \"%s\" != \"%s\"", #a, #b,              \
                       th_a_ ? th_a_ : "(null)", th_b_ ? th_b_ : "(null)"); \
    } while (0)

#define TH_TABLE_LEN(t) (sizeof(t) / sizeof((t)[0]))

/* Runs the tests whose name contains argv[1] (all when absent). Returns the
 * process exit status: 0 when every test passed. */
static inline int th_main(const char *suite, const struct th_test *tests, size_t n,
                          int argc, char **argv)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    for (size_t i = 0; i < n; i++) {
        if (filter && strstr(tests[i].name, filter) == NULL)
            continue;
        th_current_failures = 0;
        fprintf(stdout, "[%s] %s ...\n", suite, tests[i].name);
        tests[i].fn();
        if (th_current_failures == 0) {
            passed++;
            fprintf(stdout, "[%s] ok   %s\n", suite, tests[i].name);
        } else {
            failed++;
            fprintf(stdout, "[%s] FAIL %s\n", suite, tests[i].name);
        }
    }
    fprintf(stdout, "%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}

#endif
