/* log.h - leveled, one-line-per-event logging to stderr.
 *
 * Every line carries time, program, pid, level, file:line and an id field
 * (a saga id, request id or "-"), so that one grep follows one saga across
 * all processes. The macros test the level before any formatting happens
 * (Redis serverLog, pgbouncer slog_*). Safe to call from several threads:
 * each line is built in a local buffer and written with one write(2). */
#ifndef CG_LOG_H
#define CG_LOG_H

#include "status.h"

enum log_level {
    LOG_LEVEL_DEBUG = 0,   /* state transitions, per-message detail */
    LOG_LEVEL_INFO = 1,    /* lifecycle: start, connect, failover, recovery */
    LOG_LEVEL_WARN = 2,    /* something went wrong and was handled (retry, reconnect) */
    LOG_LEVEL_ERROR = 3,   /* something went wrong and was not handled */
    LOG_LEVEL_MAX          /* sentinel; also means "log nothing" */
};

/* Longest line written; longer messages are cut and end in "...". */
#define LOG_LINE_MAX 2048

/* The current threshold; read by the macros, set through log_set_level(). */
extern int log_level_threshold;

void log_set_level(int level);
/* Parses "debug", "info", "warn" or "error" into *level; CG_ERR_INVALID otherwise. */
int log_level_parse(const char *name, int *level) CG_MUSTCHECK;
const char *log_level_name(int level);
/* Program name printed on each line (not copied: pass a string literal or argv[0]). */
void log_set_program(const char *name);
/* Where lines go; 2 (stderr) by default. Tests point it at a pipe. */
void log_set_fd(int fd);

void log_write(int level, const char *file, int line, const char *id,
               const char *fmt, ...) CG_PRINTF(5, 6);

#define log_at(level, id, ...)                                              \
    do {                                                                    \
        if ((level) >= log_level_threshold)                                 \
            log_write((level), __FILE__, __LINE__, (id), __VA_ARGS__);      \
    } while (0)

#define log_debug(id, ...) log_at(LOG_LEVEL_DEBUG, (id), __VA_ARGS__)
#define log_info(id, ...)  log_at(LOG_LEVEL_INFO, (id), __VA_ARGS__)
#define log_warn(id, ...)  log_at(LOG_LEVEL_WARN, (id), __VA_ARGS__)
#define log_error(id, ...) log_at(LOG_LEVEL_ERROR, (id), __VA_ARGS__)

#endif
