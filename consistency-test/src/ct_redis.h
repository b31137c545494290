/* ct_redis.h - blocking Redis reads for the checker, through Sentinel.
 *
 * A CLI may block, so this is plain synchronous hiredis with connect and
 * command timeouts: ask the sentinels in turn for the master's address
 * (SENTINEL get-master-addr-by-name), connect, and trust it only when ROLE
 * says master. Every read of one coupon's keys runs in one MULTI/EXEC, so
 * its stock, total, holders and outcomes are one consistent picture. */
#ifndef CT_REDIS_H
#define CT_REDIS_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "ct_conf.h"
#include "ct_snap.h"
#include "status.h"

/* The saga-log field that holds the saga's state (orchestrator). */
#define CT_SAGA_STATE_FIELD "state"

/* Connects to the current master into *out (free with redisFree); master
 * (may be NULL) receives "ip:port". */
int ct_redis_connect(const ct_conf *conf, redisContext **out, char *master, size_t master_len,
                     cg_error *err) CG_MUSTCHECK;

/* Runs one command; *reply (freeReplyObject) is set on CG_OK, which
 * includes error replies; CG_ERR_IO when the connection failed. */
int ct_redis_cmd(redisContext *rc, redisReply **reply, cg_error *err, const char *fmt, ...)
    CG_MUSTCHECK;

/* Reads the coupon's stock, total, holders, outcomes and room into c. */
int ct_redis_read_coupon(redisContext *rc, ct_coupon *c, cg_error *err) CG_MUSTCHECK;

/* The coupon ids in the `coupons` set, sorted, into a new array (free()). */
int ct_redis_coupon_ids(redisContext *rc, long long **ids, size_t *n, cg_error *err) CG_MUSTCHECK;

/* Entries over every sagas:active:* sorted set; sample (may be NULL) gets
 * "<key> <id>" of one. With coupons given (n_coupons > 0), only the sagas of
 * those coupons count (by the coupon_id of their saga log; a saga without a
 * log counts, since it cannot be told apart). */
int ct_redis_active_sagas(redisContext *rc, const long long *coupons, size_t n_coupons,
                          long long *count, char *sample, size_t sample_len, cg_error *err) CG_MUSTCHECK;

/* The saga-log state of each id (pipelined): states[i] gets the state, ""
 * when the field is missing; found[i] whether saga:<id> exists at all. */
int ct_redis_saga_states(redisContext *rc, const char *const *ids, size_t n,
                         char (*states)[CT_SAGA_STATE_MAX], int *found, cg_error *err) CG_MUSTCHECK;

#endif
