/* seed_stock.c - stock into Redis through Sentinel, blocking; see seed_stock.h. */
#include "seed_stock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "rds_sync.h"

#define SEED_MISMATCH_SHOWN 10   /* per-coupon warnings before only the count is told */

int seed_redis_check_sentinels(const char *sentinels, cg_error *err)
{
    return rds_sync_check_sentinels(sentinels, err);
}

int seed_redis_connect(const char *sentinels, const char *master_name, int timeout_ms,
                       seed_redis *r, cg_error *err)
{
    rds_sync_opts o = {sentinels, master_name, timeout_ms, SEED_STOCK_DISCOVER_MS, NULL,
                       LOG_LEVEL_WARN};
    int rc;

    memset(r, 0, sizeof(*r));
    r->timeout_ms = timeout_ms;
    rc = rds_sync_master(&o, &r->ctx, r->addr, sizeof(r->addr), &r->replicas, err);
    if (rc == CG_OK)
        log_info("-", "redis: master %s, %d replica%s", r->addr, r->replicas,
                 r->replicas == 1 ? "" : "s");
    return rc;
}

void seed_redis_close(seed_redis *r)
{
    if (r->ctx != NULL)
        redisFree(r->ctx);
    r->ctx = NULL;
}

/* ---- loading ------------------------------------------------------------------ */

/* Commands queued inside each MULTI (between MULTI and EXEC). */
#define SEED_LOAD_QUEUED 6
#define SEED_RESET_QUEUED 7

static int seed_append(seed_redis *r, int argc, const char **argv, cg_error *err)
{
    if (redisAppendCommandArgv(r->ctx, argc, argv, NULL) != REDIS_OK)
        return cg_error_set(err, CG_ERR_NOMEM, "redis %s: cannot queue a command", r->addr);
    return CG_OK;
}

/* Appends one coupon's transaction to the output buffer. */
static int seed_append_coupon(seed_redis *r, const seed_coupon *c, int reset, cg_error *err)
{
    char stock[KEY_MAX], total[KEY_MAX], room[KEY_MAX], holders[KEY_MAX], sagas[KEY_MAX];
    char room_coupons[KEY_MAX];
    char n[24], rid[24], cid[24];
    const char *nx = reset ? NULL : "NX";
    int argc = reset ? 3 : 4, rc;

    snprintf(stock, sizeof(stock), KEY_STOCK_FMT, c->coupon_id);
    snprintf(total, sizeof(total), KEY_STOCK_TOTAL_FMT, c->coupon_id);
    snprintf(room, sizeof(room), KEY_STOCK_ROOM_FMT, c->coupon_id);
    snprintf(holders, sizeof(holders), KEY_STOCK_HOLDERS_FMT, c->coupon_id);
    snprintf(sagas, sizeof(sagas), KEY_STOCK_SAGAS_FMT, c->coupon_id);
    snprintf(room_coupons, sizeof(room_coupons), KEY_ROOM_COUPONS_FMT, c->room_id);
    snprintf(n, sizeof(n), "%lld", c->total_stock);
    snprintf(rid, sizeof(rid), "%lld", c->room_id);
    snprintf(cid, sizeof(cid), "%lld", c->coupon_id);
    {
        const char *multi[] = {"MULTI"};
        const char *get[] = {"GET", stock};
        const char *set_stock[] = {"SET", stock, n, nx};
        const char *set_total[] = {"SET", total, n, nx};
        const char *set_room[] = {"SET", room, rid, nx};
        const char *del[] = {"DEL", holders, sagas};
        const char *sadd[] = {"SADD", KEY_COUPONS, cid};
        const char *sadd_room[] = {"SADD", room_coupons, cid};
        const char *mget[] = {"MGET", total, room};
        const char *exec[] = {"EXEC"};

        if ((rc = seed_append(r, 1, multi, err)) != CG_OK ||
            (reset && (rc = seed_append(r, 2, get, err)) != CG_OK) ||
            (rc = seed_append(r, argc, set_stock, err)) != CG_OK ||
            (rc = seed_append(r, argc, set_total, err)) != CG_OK ||
            (rc = seed_append(r, argc, set_room, err)) != CG_OK ||
            (reset && (rc = seed_append(r, 3, del, err)) != CG_OK) ||
            (rc = seed_append(r, 3, sadd, err)) != CG_OK ||
            (rc = seed_append(r, 3, sadd_room, err)) != CG_OK ||
            (!reset && (rc = seed_append(r, 3, mget, err)) != CG_OK) ||
            (rc = seed_append(r, 1, exec, err)) != CG_OK)
            return rc;
    }
    return CG_OK;
}

/* An integer from a bulk string reply; -1 for nil or garbage. */
static long long seed_reply_ll(const redisReply *rep)
{
    char *end = NULL;
    long long v;

    if (rep == NULL || rep->type != REDIS_REPLY_STRING)
        return -1;
    v = strtoll(rep->str, &end, 10);
    return end != rep->str && *end == '\0' ? v : -1;
}

/* Checks the EXEC reply of coupon c and fills *out. */
static int seed_check_exec(seed_redis *r, const seed_coupon *c, int reset, const redisReply *rep,
                           seed_stock_outcome *out, cg_error *err)
{
    size_t want = reset ? SEED_RESET_QUEUED : SEED_LOAD_QUEUED;

    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != want)
        return cg_error_set(err, CG_ERR_PROTOCOL, "redis %s: coupon %lld: EXEC answered %s%s",
                            r->addr, c->coupon_id,
                            rep->type == REDIS_REPLY_ERROR ? "" : "not the expected array",
                            rep->type == REDIS_REPLY_ERROR ? rep->str : "");
    for (size_t i = 0; i < rep->elements; i++) {
        if (rep->element[i]->type == REDIS_REPLY_ERROR)
            return cg_error_set(err, CG_ERR_PROTOCOL, "redis %s: coupon %lld: command %zu of its "
                                "transaction failed: %s", r->addr, c->coupon_id, i + 1,
                                rep->element[i]->str);
    }
    memset(out, 0, sizeof(*out));
    if (reset) {
        out->action = SEED_STOCK_RESET;
        out->previous = seed_reply_ll(rep->element[0]);
        return CG_OK;
    }
    /* element 0: SET stock NX answers OK when it set, nil when the key existed */
    out->action = rep->element[0]->type == REDIS_REPLY_STATUS ? SEED_STOCK_LOADED : SEED_STOCK_KEPT;
    out->previous = -1;
    {
        const redisReply *mget = rep->element[5];

        if (mget->type != REDIS_REPLY_ARRAY || mget->elements != 2)
            return cg_error_set(err, CG_ERR_PROTOCOL, "redis %s: coupon %lld: MGET answered "
                                "no pair", r->addr, c->coupon_id);
        out->mismatch = seed_reply_ll(mget->element[0]) != c->total_stock ||
                        seed_reply_ll(mget->element[1]) != c->room_id;
    }
    return CG_OK;
}

/* Reads one coupon's replies: +OK for MULTI, +QUEUED per command, EXEC's array. */
static int seed_read_coupon(seed_redis *r, const seed_coupon *c, int reset,
                            seed_stock_outcome *out, cg_error *err)
{
    int queued = reset ? SEED_RESET_QUEUED : SEED_LOAD_QUEUED, rc = CG_OK;
    void *vp = NULL;
    redisReply *rep;

    for (int i = 0; i < queued + 2 && rc == CG_OK; i++) {
        if (redisGetReply(r->ctx, &vp) != REDIS_OK || vp == NULL)
            return rds_sync_fail(r->ctx, r->addr, "reading the stock transactions' replies", err);
        rep = vp;
        if (i == queued + 1)
            rc = seed_check_exec(r, c, reset, rep, out, err);
        else if (rep->type != REDIS_REPLY_STATUS)
            rc = cg_error_set(err, CG_ERR_PROTOCOL, "redis %s: coupon %lld: %s answered %s",
                              r->addr, c->coupon_id, i == 0 ? "MULTI" : "a queued command",
                              rep->type == REDIS_REPLY_ERROR ? rep->str : "no status");
        freeReplyObject(rep);
    }
    return rc;
}

int seed_stock_load(seed_redis *r, const seed_coupon *cs, long long n, int reset,
                    seed_stock_outcome *out, cg_error *err)
{
    long long shown = 0;
    int rc = CG_OK;

    for (long long i = 0; i < n && rc == CG_OK; i += SEED_STOCK_CHUNK) {
        long long end = n - i > SEED_STOCK_CHUNK ? i + SEED_STOCK_CHUNK : n;

        for (long long k = i; k < end && rc == CG_OK; k++)
            rc = seed_append_coupon(r, &cs[k], reset, err);
        /* Every reply is read even after a failure, or the connection would be out of step;
         * it is closed on error anyway, so stop at the first. */
        for (long long k = i; k < end && rc == CG_OK; k++) {
            rc = seed_read_coupon(r, &cs[k], reset, &out[k], err);
            if (rc == CG_OK && out[k].mismatch && shown++ < SEED_MISMATCH_SHOWN)
                log_warn("-", "coupon %lld: Redis keeps a total or room that differs from the "
                         "database's (total %lld, room %lld); --reset-stock overwrites it",
                         cs[k].coupon_id, cs[k].total_stock, cs[k].room_id);
        }
    }
    return rc;
}

int seed_stock_wait_replicas(seed_redis *r, int timeout_ms, long long *acked, cg_error *err)
{
    redisReply *rep;
    int rc;

    *acked = 0;
    /* The server holds the answer up to timeout_ms: the socket must wait longer. */
    if (redisSetTimeout(r->ctx, rds_sync_tv(timeout_ms + r->timeout_ms)) != REDIS_OK)
        return rds_sync_fail(r->ctx, r->addr, "setting the WAIT timeout", err);
    rep = redisCommand(r->ctx, "WAIT %d %d", r->replicas, timeout_ms);
    if (rep == NULL)
        return rds_sync_fail(r->ctx, r->addr, "WAIT", err);
    if (redisSetTimeout(r->ctx, rds_sync_tv(r->timeout_ms)) != REDIS_OK) {
        freeReplyObject(rep);
        return rds_sync_fail(r->ctx, r->addr, "setting the timeout back", err);
    }
    if (rep->type == REDIS_REPLY_INTEGER) {
        *acked = rep->integer;
        rc = CG_OK;
    } else {
        rc = cg_error_set(err, CG_ERR_PROTOCOL, "redis %s: WAIT answered %s", r->addr,
                          rep->type == REDIS_REPLY_ERROR ? rep->str : "no integer");
    }
    freeReplyObject(rep);
    return rc;
}
