/* it_read_stock.c - the read API's Redis side and its own counters, through
 * the orchestrator's public HTTP API against the real stack
 * (docs/read-api.md): /api/coupon/{id}/stock for every seeded coupon equals
 * the keys read directly from the master (stock_source "replica", the
 * orchestrator's default), a sold-out coupon and a coupon without stock
 * (404); /api/room/{id}/stats merges Redis' coupons and stock with the
 * shards' counts (the test's rows, it_read_kit.h, give some coupons orders);
 * the stock totals of /api/statistics/global and /admin/stats equal the sums
 * over Redis; /admin/stats and /metrics carry their documented fields.
 *
 * The test writes Redis keys only for its own coupons and room (FAKE_*, not
 * in the coupons set) and deletes them. */
#include "it_read_kit.h"

#define FAKE_COUPON 9100999LL
#define FAKE_COUPON2 9100998LL  /* in FAKE_ROOM's set, with stock */
#define FAKE_COUPON3 9100997LL  /* in FAKE_ROOM's set, no keys at all */
#define FAKE_ROOM 910998LL
#define REPLICA_MS 3000        /* bound on a replica catching up with a write */
#define STOCK_CHECK_MAX 2000   /* coupons checked one by one at most */

static int rows_ok;
static long long stock_reads;   /* /api/coupon/{id}/stock requests made */

typedef struct stock_sums {
    long long coupons, total, remaining;
} stock_sums;

/* The stock of every coupon in the coupons set, from the master. */
static int redis_sums(stock_sums *out)
{
    redisReply *r = itr_redis("SMEMBERS coupons");

    memset(out, 0, sizeof(*out));
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return -1;
    }
    for (size_t i = 0; i < r->elements; i++) {
        long long c = atoll(r->element[i]->str), rem, tot;

        if (c <= 0)
            continue;
        rem = itr_reply_int(itr_redis("GET stock:{%lld}", c));
        tot = itr_reply_int(itr_redis("GET stock:{%lld}:total", c));
        out->coupons++;
        out->remaining += rem > 0 ? rem : 0;
        out->total += tot > 0 ? tot : 0;
    }
    freeReplyObject(r);
    return 0;
}

static void check_sums(const char *what, const json_t *o, const stock_sums *want)
{
    TH_CHECK_INT(itr_jint(o, "coupons"), want->coupons);
    TH_CHECK_INT(itr_jint(o, "stock_total"), want->total);
    TH_CHECK_INT(itr_jint(o, "stock_remaining"), want->remaining);
    TH_CHECK_INT(itr_jint(o, "stock_taken"), want->total - want->remaining);
    if (itr_jint(o, "stock_total") != want->total)
        fprintf(stdout, "    %s: stock_total %lld, Redis %lld\n", what, itr_jint(o, "stock_total"),
                want->total);
}

/* One coupon's answer against its keys. */
static void check_coupon(long long c)
{
    long long rem = itr_reply_int(itr_redis("GET stock:{%lld}", c));
    long long tot = itr_reply_int(itr_redis("GET stock:{%lld}:total", c));
    long long holders = itr_reply_int(itr_redis("SCARD stock:{%lld}:holders", c));
    long long want_rem = rem > 0 ? rem : 0;
    char path[96];
    itr_res r;

    snprintf(path, sizeof(path), "/api/coupon/%lld/stock", c);
    stock_reads++;
    if (itr_get(path, &r) != 200) {
        TH_FAIL_AT("GET %s: %d %.200s", path, r.status, r.body ? r.body : "");
    } else if (itr_jint(r.json, "coupon_id") != c || itr_jint(r.json, "remaining") != want_rem ||
               itr_jint(r.json, "total") != tot ||
               itr_jint(r.json, "taken") != tot - want_rem ||
               itr_jint(r.json, "holders") != holders ||
               itr_jbool(r.json, "sold_out") != (rem <= 0) ||
               itr_jstr(r.json, "stock_source") == NULL ||
               strcmp(itr_jstr(r.json, "stock_source"), "replica") != 0) {
        TH_FAIL_AT("%s: %s; Redis remaining %lld total %lld holders %lld", path, r.body, rem, tot,
                   holders);
    }
    itr_res_clear(&r);
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_setup(void)
{
    rows_ok = 0;
    TH_REQUIRE(itr.map_ready && itr.strategy == SR_HASH);
    TH_REQUIRE(itr_rows_insert() == 0);
    rows_ok = 1;
}

static void test_every_coupon(void)
{
    long long ids[STOCK_CHECK_MAX], t0 = itk_now_ms();
    int n = itr_redis_ids("coupons", ids, STOCK_CHECK_MAX);

    TH_REQUIRE(n > 0);
    for (int i = 0; i < n; i++)
        check_coupon(ids[i]);
    fprintf(stdout, "    %d coupons checked in %lld ms\n", n, itk_now_ms() - t0);
}

/* Keys written to the master reach the API through the replica; a sold-out
 * coupon says so; once deleted, 404. */
static void test_sold_out(void)
{
    long long deadline;
    itr_res r;
    int seen = 0;

    memset(&r, 0, sizeof(r));
    freeReplyObject(itr_redis("SET stock:{%lld} 0", FAKE_COUPON));
    freeReplyObject(itr_redis("SET stock:{%lld}:total 3", FAKE_COUPON));
    freeReplyObject(itr_redis("SADD stock:{%lld}:holders 5000001 5000002 5000003", FAKE_COUPON));
    deadline = itk_now_ms() + REPLICA_MS;
    while (!seen && itk_now_ms() < deadline) {
        itr_res_clear(&r);
        seen = itr_get("/api/coupon/9100999/stock", &r) == 200 &&
               itr_jint(r.json, "holders") == 3;
        if (!seen)
            itk_run_for(itr.base, 20);   /* a poll interval, bounded by the deadline */
    }
    TH_CHECK(seen);
    if (seen) {
        TH_CHECK_INT(itr_jint(r.json, "remaining"), 0);
        TH_CHECK_INT(itr_jint(r.json, "total"), 3);
        TH_CHECK_INT(itr_jint(r.json, "taken"), 3);
        TH_CHECK_INT(itr_jbool(r.json, "sold_out"), 1);
        TH_CHECK_STR(itr_jstr(r.json, "stock_source"), "replica");
    }
    itr_res_clear(&r);
    freeReplyObject(itr_redis("DEL stock:{%lld} stock:{%lld}:total stock:{%lld}:holders",
                              FAKE_COUPON, FAKE_COUPON, FAKE_COUPON));
    deadline = itk_now_ms() + REPLICA_MS;
    seen = 0;
    while (!seen && itk_now_ms() < deadline) {
        itr_res_clear(&r);
        seen = itr_get("/api/coupon/9100999/stock", &r) == 404;
        if (!seen)
            itk_run_for(itr.base, 20);
    }
    TH_CHECK(seen);
    TH_CHECK_STR(itr_jstr(r.json, "error"), "not_found");
    TH_CHECK_STR(itr_jstr(r.json, "field"), "coupon_id");
    itr_res_clear(&r);
}

static void test_unknown_coupon(void)
{
    static const char *const paths[] = {
        "/api/coupon/999999999/stock",
        "/api/coupon/9000000000000000000/stock",   /* the largest id: valid, unknown */
    };

    for (size_t i = 0; i < TH_TABLE_LEN(paths); i++) {
        itr_res r;

        TH_CHECK_INT(itr_get(paths[i], &r), 404);
        TH_CHECK_STR(itr_jstr(r.json, "error"), "not_found");
        TH_CHECK_STR(itr_jstr(r.json, "field"), "coupon_id");
        itr_res_clear(&r);
    }
}

static void test_room_stats(void)
{
    TH_REQUIRE(rows_ok);
    itr_check_room_stats(1);     /* 5 coupons with stock, 1 and 2 with the test's orders */
    itr_check_room_stats(2);
    itr_check_room_stats(100);
    itr_check_room_stats(itr.rooms[0]);   /* orders only */
}

/* A room known to Redis only: one coupon with stock, one whose keys are
 * missing (null, not a number), orders 0 from the shards (order-svc said
 * so). The keys reach the API through the replica (bounded poll). */
static void test_room_redis_only(void)
{
    long long deadline = itk_now_ms() + REPLICA_MS;
    json_t *coupons, *e;
    itr_res r;
    int seen = 0;

    memset(&r, 0, sizeof(r));
    freeReplyObject(itr_redis("SET stock:{%lld} 4", FAKE_COUPON2));
    freeReplyObject(itr_redis("SET stock:{%lld}:total 5", FAKE_COUPON2));
    freeReplyObject(itr_redis("SADD room:{%lld}:coupons %lld %lld", FAKE_ROOM, FAKE_COUPON2,
                              FAKE_COUPON3));
    while (!seen && itk_now_ms() < deadline) {
        itr_res_clear(&r);
        seen = itr_get("/api/room/910998/stats", &r) == 200 &&
               json_array_size(itr_jget(r.json, "coupons")) == 2 &&
               itr_jint(r.json, "stock_total") == 5;
        if (!seen)
            itk_run_for(itr.base, 20);   /* a poll interval, bounded by the deadline */
    }
    TH_CHECK(seen);
    coupons = itr_jget(r.json, "coupons");
    e = json_array_get(coupons, 0);
    TH_CHECK_INT(itr_jint(e, "coupon_id"), FAKE_COUPON3);
    TH_CHECK(json_is_null(itr_jget(e, "remaining")) && json_is_null(itr_jget(e, "total")));
    TH_CHECK_INT(itr_jint(e, "orders"), 0);
    e = json_array_get(coupons, 1);
    TH_CHECK_INT(itr_jint(e, "coupon_id"), FAKE_COUPON2);
    TH_CHECK_INT(itr_jint(e, "remaining"), 4);
    TH_CHECK_INT(itr_jint(e, "total"), 5);
    TH_CHECK_INT(itr_jint(e, "orders"), 0);
    TH_CHECK_INT(itr_jint(r.json, "stock_remaining"), 4);
    TH_CHECK_INT(itr_jint(r.json, "stock_taken"), 1);
    TH_CHECK_INT(itr_jint(r.json, "orders"), 0);
    TH_CHECK_INT(itr_jbool(r.json, "partial"), 0);
    itr_res_clear(&r);
    freeReplyObject(itr_redis("DEL room:{%lld}:coupons stock:{%lld} stock:{%lld}:total",
                              FAKE_ROOM, FAKE_COUPON2, FAKE_COUPON2));
}

static void test_global_stock(void)
{
    stock_sums want;
    json_t *o;
    itr_res r;

    TH_REQUIRE(redis_sums(&want) == 0);
    TH_REQUIRE_OR_DONE((o = itr_get_ok("/api/statistics/global", &r)) != NULL);
    check_sums("global", o, &want);
    TH_CHECK_STR(itr_jstr(o, "stock_source"), "replica");
    fprintf(stdout, "    global: %lld coupons, stock %lld of %lld\n", want.coupons,
            want.remaining, want.total);

done:
    itr_res_clear(&r);
}

static void test_admin_stats(void)
{
    static const char *const queues[] = {"stock.cmd", "order.cmd", "grab.dead",
                                         "orch.reply.orchestrator"};
    static const char *const states[] = {"STARTED", "RESERVED", "COMPLETED", "COMPENSATING",
                                         "COMPENSATED"};
    stock_sums want;
    json_t *o, *v;
    itr_res r;

    TH_REQUIRE(redis_sums(&want) == 0);
    TH_REQUIRE_OR_DONE((o = itr_get_ok("/admin/stats", &r)) != NULL);
    TH_CHECK_STR(itr_jstr(o, "instance"), "orchestrator");
    TH_CHECK_INT(itr_jbool(o, "ready"), 1);
    v = itr_jget(o, "sagas");
    TH_CHECK(itr_jint(v, "in_memory") >= 0);
    for (size_t i = 0; i < TH_TABLE_LEN(states); i++)
        TH_CHECK(itr_jint(itr_jget(v, "by_state"), states[i]) >= 0);
    TH_CHECK(json_is_object(itr_jget(v, "by_step")));
    TH_CHECK(itr_jint(v, "started_total") >= 0 && itr_jint(v, "completed_total") >= 0 &&
             itr_jint(v, "compensated_total") >= 0);
    TH_CHECK(itr_jint(itr_jget(o, "grabs"), "accepted_total") >= 0);
    v = itr_jget(itr_jget(o, "rates_per_s"), "grabs");
    TH_CHECK(json_is_number(itr_jget(v, "1s")) && json_is_number(itr_jget(v, "10s")) &&
             json_is_number(itr_jget(v, "60s")));
    v = itr_jget(o, "reads");
    TH_CHECK(itr_jint(itr_jget(v, "requests"), "coupon_stock") >= stock_reads);
    TH_CHECK(itr_jint(v, "errors_total") >= 0 && itr_jint(v, "partial_total") >= 0);
    TH_CHECK_INT(itr_jint(v, "inflight"), 0);
    v = itr_jget(o, "stock");
    TH_CHECK(json_is_object(v));
    check_sums("admin stats", v, &want);
    TH_CHECK_INT(itr_jbool(v, "truncated"), 0);
    v = itr_jget(o, "queues");
    for (size_t i = 0; i < TH_TABLE_LEN(queues); i++)
        TH_CHECK(itr_jint(itr_jget(v, queues[i]), "messages") >= 0);
    TH_CHECK(itr_jint(itr_jget(v, "stock.cmd"), "consumers") >= 1);
    TH_CHECK(itr_jint(itr_jget(v, "order.cmd"), "consumers") >= 1);
    TH_CHECK(itr_jint(itr_jget(v, "orch.reply.orchestrator"), "consumers") >= 1);
    TH_CHECK_STR(itr_jstr(o, "redis_master"), itr.redis_addr);

done:
    itr_res_clear(&r);
}

static void test_metrics(void)
{
    static const char *const present[] = {
        "grab_requests_total", "grab_sagas_started_total", "grab_sagas_completed_total",
        "grab_sagas_compensated_total", "grab_sagas_in_memory{state=\"STARTED\"}",
        "grab_read_errors_total", "grab_read_partial_total", "grab_redis_commands_total",
        "grab_broker_published_total", "grab_order_queries_total",
    };
    itr_res r;

    TH_REQUIRE_OR_DONE(itr_get("/metrics", &r) == 200 && r.body != NULL);
    for (size_t i = 0; i < TH_TABLE_LEN(present); i++)
        if (itr_metric(r.body, present[i]) < 0)
            TH_FAIL_AT("/metrics: no %s", present[i]);
    TH_CHECK(strstr(r.body, "# TYPE grab_requests_total counter\n") != NULL);
    TH_CHECK(itr_metric(r.body, "grab_read_requests_total{endpoint=\"coupon_stock\"}") >=
             stock_reads);
    TH_CHECK(itr_metric(r.body, "grab_read_requests_total{endpoint=\"room_stats\"}") >= 4);
    TH_CHECK(itr_metric(r.body, "grab_order_queries_total") >= 4);
    TH_CHECK_INT(itr_metric(r.body, "grab_redis_up"), 1);
    TH_CHECK_INT(itr_metric(r.body, "grab_broker_up"), 1);

done:
    itr_res_clear(&r);
}

static void test_restore(void)
{
    rows_ok = 0;
    freeReplyObject(itr_redis("DEL stock:{%lld} stock:{%lld}:total stock:{%lld}:holders",
                              FAKE_COUPON, FAKE_COUPON, FAKE_COUPON));
    freeReplyObject(itr_redis("DEL room:{%lld}:coupons stock:{%lld} stock:{%lld}:total",
                              FAKE_ROOM, FAKE_COUPON2, FAKE_COUPON2));
    itr_restore();
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"setup: hash, rows on every shard", test_setup},
        {"coupon stock equals Redis for every coupon", test_every_coupon},
        {"a sold-out coupon, then its keys deleted: 404", test_sold_out},
        {"unknown coupons: 404", test_unknown_coupon},
        {"room stats: Redis stock and shard counts", test_room_stats},
        {"a room known to Redis only, a coupon without keys", test_room_redis_only},
        {"global statistics: stock totals equal Redis", test_global_stock},
        {"/admin/stats: documented fields", test_admin_stats},
        {"/metrics: documented counters", test_metrics},
        {"restore: rows gone, order-svc under hash", test_restore},
    };

    return itr_main("it_read_stock", tests, TH_TABLE_LEN(tests), argc, argv);
}
