/* test_log.c - unit tests of the log line format and level filtering. */
#include <fcntl.h>
#include <unistd.h>

#include "log.h"
#include "testhelp.h"

static int log_pipe[2];

/* Reads what was logged so far (the pipe is non-blocking). */
static size_t drain(char *buf, size_t size)
{
    ssize_t n = read(log_pipe[0], buf, size - 1);

    buf[n > 0 ? n : 0] = '\0';
    return n > 0 ? (size_t)n : 0;
}

static void test_format(void)
{
    char buf[4096];
    char expect[64];

    log_set_level(LOG_LEVEL_DEBUG);
    log_info("saga-123", "reserved %d of %s", 3, "coupon 7");
    TH_REQUIRE(drain(buf, sizeof(buf)) > 0);
    /* 2026-11-22T03:10:00.123Z test_log[pid] info test_log.c:NN [saga-123] reserved 3 of coupon 7 */
    TH_CHECK(buf[4] == '-' && buf[10] == 'T' && buf[23] == 'Z');
    snprintf(expect, sizeof(expect), "test_log[%d] info ", (int)getpid());
    TH_CHECK(strstr(buf, expect) != NULL);
    TH_CHECK(strstr(buf, " test_log.c:") != NULL);
    TH_CHECK(strstr(buf, "[saga-123] reserved 3 of coupon 7\n") != NULL);
    log_warn(NULL, "no id");
    drain(buf, sizeof(buf));
    TH_CHECK(strstr(buf, " warn ") != NULL && strstr(buf, "[-] no id\n") != NULL);
}

static int side_effects;

static int count_call(void)
{
    return ++side_effects;
}

static void test_levels(void)
{
    char buf[4096];

    log_set_level(LOG_LEVEL_WARN);
    side_effects = 0;
    log_debug("x", "debug %d", count_call());
    log_info("x", "info %d", count_call());
    TH_CHECK_INT(drain(buf, sizeof(buf)), 0);
    TH_CHECK_INT(side_effects, 0); /* arguments are not even evaluated below the level */
    log_error("x", "error %d", count_call());
    drain(buf, sizeof(buf));
    TH_CHECK(strstr(buf, " error ") != NULL && strstr(buf, "error 1\n") != NULL);
    log_set_level(LOG_LEVEL_MAX);
    log_error("x", "silenced");
    TH_CHECK_INT(drain(buf, sizeof(buf)), 0);
}

static void test_parse(void)
{
    int level = -1;

    TH_CHECK_INT(log_level_parse("debug", &level), CG_OK);
    TH_CHECK_INT(level, LOG_LEVEL_DEBUG);
    TH_CHECK_INT(log_level_parse("error", &level), CG_OK);
    TH_CHECK_INT(level, LOG_LEVEL_ERROR);
    TH_CHECK_INT(log_level_parse("loud", &level), CG_ERR_INVALID);
    TH_CHECK_STR(log_level_name(LOG_LEVEL_WARN), "warn");
}

static void test_long_line_cut(void)
{
    char big[LOG_LINE_MAX * 2];
    char buf[LOG_LINE_MAX * 2];
    size_t n;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_set_level(LOG_LEVEL_INFO);
    log_info("id", "%s", big);
    n = drain(buf, sizeof(buf));
    TH_CHECK(n <= LOG_LINE_MAX);
    TH_CHECK(n > 4 && buf[n - 1] == '\n' && memcmp(buf + n - 4, "...", 3) == 0);
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"line format", test_format},
        {"level filtering", test_levels},
        {"level names", test_parse},
        {"long lines are cut visibly", test_long_line_cut},
    };
    int rc;

    if (pipe2(log_pipe, O_NONBLOCK) != 0)
        return 1;
    log_set_program(argv[0]);
    log_set_fd(log_pipe[1]);
    rc = th_main("log", tests, TH_TABLE_LEN(tests), argc, argv);
    log_set_fd(2);
    return rc;
}
