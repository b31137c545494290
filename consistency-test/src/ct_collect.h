/* ct_collect.h - fills a snapshot from the live system.
 *
 * Per coupon, the shards' rows are read first and the coupon's Redis keys
 * second (in one MULTI/EXEC): a reservation is recorded before its order is
 * written and released only after the order is gone, so a row seen first
 * has its reservation still there when Redis is read, and the checks that
 * hold at any instant stay true even while sagas run. Each shard's
 * order_counts rows of the coupon are read in the same transaction as its
 * rows (not before or after them: an order committed in between would move
 * one side only, and with inserts and cancels both running no order of two
 * separate reads is safe), so the read-model check holds at any instant too.
 * Then the saga log of every saga the coupon mentions (and of the extra ids
 * a scenario knows), and the active-saga sets. */
#ifndef CT_COLLECT_H
#define CT_COLLECT_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "ct_conf.h"
#include "ct_shards.h"
#include "ct_snap.h"
#include "status.h"

/* A saga a scenario knows of (from an HTTP answer), so that its log is read
 * even when it never reached stock-svc. */
typedef struct ct_extra_saga {
    long long coupon_id;
    char saga_id[CT_SAGA_ID_LEN + 1];
} ct_extra_saga;

#define CT_STRAY_ROWS_MAX 20   /* rows shown per unknown coupon and shard */

/* Reads coupons[0..n-1], or every coupon of the `coupons` set when n is 0
 * (a full check, which also looks for rows of coupons without stock).
 * Active sagas are counted over every instance's set, but with coupons
 * given only those of these coupons. */
int ct_collect(const ct_conf *conf, redisContext *rc, ct_shards *sh, const long long *coupons,
               size_t n, const ct_extra_saga *extra, size_t n_extra, ct_snapshot *out,
               cg_error *err) CG_MUSTCHECK;

#endif
