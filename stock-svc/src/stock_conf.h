/* stock_conf.h - stock-svc's settings: the shared service rows (svc_conf.h,
 * env prefix STOCK_) plus the knobs of its transactions, retries and limits.
 *
 * One table (stock_conf_spec) over one struct; cfg_load() fills it from the
 * defaults, a file, STOCK_* variables and flags, and stock_conf_validate()
 * checks what a single row cannot (e.g. WAIT must finish before rds gives
 * up on the command and drops the connection). */
#ifndef STOCK_CONF_H
#define STOCK_CONF_H

#include "cfg.h"
#include "status.h"
#include "svc_conf.h"

typedef struct stock_conf {
    svc_conf svc;
    long long max_watch_retries;   /* conflicting EXECs of one batch before its deliveries
                                      are nacked with requeue */
    long long watch_backoff_ms;    /* first backoff after a conflict; doubles, jittered */
    long long wait_replicas;       /* WAIT for this many replicas after EXEC; 0: off */
    long long wait_timeout_ms;     /* WAIT's own timeout (below redis_timeout_ms) */
    long long batch_max;           /* items per transaction (<= MSG_MAX_BATCH) */
    long long max_pending;         /* items admitted and not yet answered, all coupons */
    long long max_coupon_pending;  /* of which for one coupon */
    long long redis_pool;          /* Redis connections; all but one can hold a lease */
    long long retry_min_ms;        /* backoff after a Redis failure, doubling ... */
    long long retry_max_ms;        /* ... up to this */
    long long max_error_attempts;  /* Redis error replies for one batch before its
                                      deliveries are dead-lettered */
    long long reply_retry_ms;      /* pause before publishing a refused reply again */
    long long tick_ms;             /* the persistent timer: backoffs, retries, stats */
    long long stats_interval_ms;   /* a stats line at most this often, when it changed */
    long long shutdown_timeout_ms; /* bound on the graceful stop */
} stock_conf;

extern const cfg_spec stock_conf_spec;

/* The cross-field checks (also run by cfg_load and --check-config). */
int stock_conf_validate(const void *conf, cg_error *err) CG_MUSTCHECK;

#endif
