/* ord_read.h - order-svc's read queries: what a GET asks (parsed strictly),
 * which shards can answer it under the configured strategy, the SQL each of
 * them runs, and the JSON made of the merged rows. Pure: the HTTP side
 * (ord_http.c) runs the plan with the shard-router's scatter-gather.
 *
 * The queries (docs/read-api.md has the answers' JSON):
 *   GET /api/user/{id}/coupons?limit=        the user's newest orders
 *   GET /api/room/{id}/orders?limit=         the room's newest orders
 *   GET /api/orders/recent?hours=&limit=     the newest orders of the last hours
 *   GET /internal/room/{id}/counts           orders per coupon of the room
 *   GET /internal/totals                     orders per room and per shard
 *   GET /internal/shards                     per shard: up, rows, query time; balance
 * A query that one shard can answer asks only that shard: a user under hash,
 * a room under range-room, a window under range-day asks the shards whose
 * days meet it. The counts read the order_counts table (schema/shard.sql),
 * which triggers keep exact in each order's own transaction. */
#ifndef ORD_READ_H
#define ORD_READ_H

#include <stdint.h>

#include "sr_map.h"
#include "sr_query.h"
#include "status.h"

#define ORDQ_LIMIT_MAX 500          /* cap on ?limit= */
#define ORDQ_USER_LIMIT_DEF 50
#define ORDQ_ROOM_LIMIT_DEF 20
#define ORDQ_RECENT_LIMIT_DEF 50
#define ORDQ_HOURS_DEF 1
#define ORDQ_HOURS_MAX 720          /* 30 days */
#define ORDQ_SQL_MAX 512            /* one shard's statement */

enum ordq_kind {
    ORDQ_USER_COUPONS = 0,
    ORDQ_ROOM_ORDERS,
    ORDQ_RECENT,
    ORDQ_ROOM_COUNTS,
    ORDQ_TOTALS,
    ORDQ_SHARDS,
    ORDQ_KIND_MAX
};

typedef struct ordq {
    enum ordq_kind kind;
    long long id;          /* user or room */
    long long limit;
    long long hours;
    long long now_ms;      /* wall clock (UTC ms) the window ends at */
} ordq;

/* Why a request has no query: the HTTP code and, for 400, the field. */
typedef struct ordq_refusal {
    int code;              /* 400, 404 or 405 */
    const char *field;     /* 400: the path id's name or the parameter; may be NULL */
    char message[CG_ERROR_MSG_MAX];
} ordq_refusal;

/* Parses a request. is_get: the method is GET (every query is). CG_OK with
 * *q filled, else CG_ERR_INVALID with *why filled. */
int ordq_parse(int is_get, const char *path, const char *query, long long now_ms, ordq *q,
               ordq_refusal *why) CG_MUSTCHECK;

const char *ordq_kind_name(enum ordq_kind k);

/* What to ask the shards. sql[i] points into text for every asked shard. */
typedef struct ordq_plan {
    sr_request req;
    uint64_t shards;                     /* the asked ones (never 0) */
    const char *sql[SR_MAX_SHARDS];
    char text[SR_MAX_SHARDS][ORDQ_SQL_MAX];
} ordq_plan;

/* Fills plan for q under map; req.timeout_ms is timeout_ms. */
int ordq_plan_build(const ordq *q, const sr_map *map, int timeout_ms, ordq_plan *plan,
                    cg_error *err) CG_MUSTCHECK;

/* The answer's JSON (a json_t *, NULL when out of memory) from the
 * scatter's result. shard_addr[i] names shard i ("host:port/db"). */
void *ordq_answer(const ordq *q, const sr_map *map, const ordq_plan *plan, const sr_result *res,
                  const char *const *shard_addr);

/* "YYYY-MM-DD hh:mm:ss.fff" (DATETIME(3) text, UTC) -> "YYYY-MM-DDThh:mm:ss.fffZ".
 * Copies anything else as is. */
void ordq_iso_time(const char *sql_time, char *out, size_t len);

#endif
