/* log.c - see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int log_level_threshold = LOG_LEVEL_INFO;

static const char *log_program = "-";
static int log_fd = 2;

static const char *const log_level_names[LOG_LEVEL_MAX] = {"debug", "info", "warn", "error"};

void log_set_level(int level)
{
    if (level < LOG_LEVEL_DEBUG)
        level = LOG_LEVEL_DEBUG;
    if (level > LOG_LEVEL_MAX)
        level = LOG_LEVEL_MAX;
    log_level_threshold = level;
}

int log_level_parse(const char *name, int *level)
{
    for (int i = 0; i < LOG_LEVEL_MAX; i++) {
        if (strcmp(name, log_level_names[i]) == 0) {
            *level = i;
            return CG_OK;
        }
    }
    return CG_ERR_INVALID;
}

const char *log_level_name(int level)
{
    return (level >= 0 && level < LOG_LEVEL_MAX) ? log_level_names[level] : "?";
}

void log_set_program(const char *name)
{
    const char *slash = strrchr(name, '/');

    log_program = slash ? slash + 1 : name;
}

void log_set_fd(int fd)
{
    log_fd = fd;
}

void log_write(int level, const char *file, int line, const char *id, const char *fmt, ...)
{
    char buf[LOG_LINE_MAX];
    struct timeval tv;
    struct tm tm;
    const char *base = strrchr(file, '/');
    size_t len;
    int n;
    va_list ap;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s[%d] %s %s:%d [%s] ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(tv.tv_usec / 1000), log_program, (int)getpid(), log_level_name(level),
                 base ? base + 1 : file, line, id ? id : "-");
    len = (n > 0 && (size_t)n < sizeof(buf)) ? (size_t)n : 0;
    va_start(ap, fmt);
    n = vsnprintf(buf + len, sizeof(buf) - len, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    len += (size_t)n;
    if (len > sizeof(buf) - 2) {
        /* Cut, and say so: a silent cut reads as a complete message. */
        len = sizeof(buf) - 2;
        memcpy(buf + len - 3, "...", 3);
    }
    buf[len++] = '\n';
    /* One write per line keeps lines whole when threads log at once. */
    if (write(log_fd, buf, len) < 0) {
        /* Nowhere left to report a failing log sink. */
    }
}
