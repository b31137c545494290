/* ct_run.h - what the commands share: the settings, a Redis connection that
 * is re-opened after a failure (servers are killed on purpose), the report,
 * and one call that collects a snapshot and runs the checks on it. */
#ifndef CT_RUN_H
#define CT_RUN_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "ct_collect.h"
#include "ct_conf.h"
#include "ct_report.h"
#include "ct_snap.h"
#include "status.h"

typedef struct ct_env {
    const ct_conf *conf;
    redisContext *rc;        /* NULL until needed, and after a failure */
    char master[64];
    int n_shards;
    sr_map map;
    ct_report rep;
    /* messages held (ready + unacknowledged) per queue before the current
     * scenario (ct_quiet_baseline) */
    char held_name[16][128];
    long held_base[16];
    size_t n_held;
} ct_env;

int ct_env_init(ct_env *env, const ct_conf *conf, FILE *out, cg_error *err) CG_MUSTCHECK;
void ct_env_close(ct_env *env);

/* The Redis master connection, (re)connected through Sentinel as needed;
 * NULL with err set when no master answers. */
redisContext *ct_env_redis(ct_env *env, cg_error *err);
/* Drops the connection after an I/O error, so the next call reconnects. */
void ct_env_redis_failed(ct_env *env);

/* Opens fresh shard connections, collects the coupons (all when n is 0)
 * and runs every check as counted lines; snap (may be NULL) keeps the
 * snapshot for the caller (ct_snapshot_free). Returns the number of
 * failed checks, counting a failure to collect as one. */
int ct_env_check(ct_env *env, const long long *coupons, size_t n, const ct_extra_saga *extra,
                 size_t n_extra, int quiet, ct_snapshot *snap);

/* `consistency-test check`: the exit status. */
int ct_run_check(const ct_conf *conf, const long long *coupons, size_t n, int quiet);

#endif
