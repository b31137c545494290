/* seed_stock.h - loads the coupons' stock into Redis, found through Sentinel.
 *
 * A blocking hiredis connection (a tool, not a service): the master is the
 * address the sentinels give for the master name, trusted only after ROLE
 * says "master", every connect and command bounded by the timeout. Each
 * coupon is one MULTI/EXEC (keys.h):
 *   load  (default): SET stock:{C} N NX; SET stock:{C}:total N NX;
 *                    SET stock:{C}:room R NX; SADD coupons C;
 *                    MGET stock:{C}:total stock:{C}:room
 *         NX: a re-run never resets the stock of a sale under way; the MGET
 *         shows a total or room that differs from the database's.
 *   reset (--reset-stock): GET stock:{C}; SET stock:{C} N; SET ...:total N;
 *                    SET ...:room R; DEL ...:holders ...:sagas; SADD coupons C
 * The transactions are pipelined, SEED_STOCK_CHUNK coupons per round trip. */
#ifndef SEED_STOCK_H
#define SEED_STOCK_H

#include <hiredis/hiredis.h>

#include "seed_data.h"
#include "status.h"

#define SEED_STOCK_CHUNK 100          /* coupons per pipelined round trip */
#define SEED_STOCK_DISCOVER_MS 10000  /* bound on finding a master that says so */
#define SEED_STOCK_ADDR_MAX 80          /* RDS_SYNC_ADDR_MAX */

/* What happened to one coupon's stock. */
enum seed_stock_action {
    SEED_STOCK_KEPT = 0,     /* the stock key existed: left alone */
    SEED_STOCK_LOADED = 1,   /* the stock key was set from the total */
    SEED_STOCK_RESET = 2,    /* --reset-stock overwrote it */
    SEED_STOCK_ACTION_MAX
};

typedef struct seed_stock_outcome {
    int action;              /* enum seed_stock_action */
    long long previous;      /* SEED_STOCK_RESET: the stock before, -1 when there was none */
    int mismatch;            /* SEED_STOCK_KEPT: Redis total or room differs from the database */
} seed_stock_outcome;

typedef struct seed_redis {
    redisContext *ctx;
    char addr[SEED_STOCK_ADDR_MAX];   /* the master, "ip:port" */
    int replicas;                     /* replicas the master's ROLE lists */
    int timeout_ms;
} seed_redis;

/* CG_ERR_INVALID unless sentinels is a list of ip:port. */
int seed_redis_check_sentinels(const char *sentinels, cg_error *err) CG_MUSTCHECK;

/* Asks the sentinels ("ip:port,...") for master_name's address and connects
 * to it, retrying (bounded by SEED_STOCK_DISCOVER_MS) while none answers or
 * the answer is not a master yet (a failover under way). */
int seed_redis_connect(const char *sentinels, const char *master_name, int timeout_ms,
                       seed_redis *r, cg_error *err) CG_MUSTCHECK;
void seed_redis_close(seed_redis *r);

/* Loads coupons cs[0..n-1] (load or reset, see the top); out[i] says what
 * happened to cs[i]. On error some coupons may be loaded already: a re-run
 * is safe. */
int seed_stock_load(seed_redis *r, const seed_coupon *cs, long long n, int reset,
                    seed_stock_outcome *out, cg_error *err) CG_MUSTCHECK;

/* WAIT for the master's replicas (up to timeout_ms); *acked gets how many
 * acknowledged everything written so far. */
int seed_stock_wait_replicas(seed_redis *r, int timeout_ms, long long *acked,
                             cg_error *err) CG_MUSTCHECK;

#endif
