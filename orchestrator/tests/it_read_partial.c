/* it_read_partial.c - the read API with a shard server down, through the
 * orchestrator's public HTTP API against the real stack (docs/read-api.md,
 * "partial answers").
 *
 * Under the default hash map, with the test's rows (it_read_kit.h) on all
 * four shards, mariadb-s1 (shards 1 and 3) is SIGKILLed: a cross-shard read
 * must answer 200 within PARTIAL_BOUND_MS with partial:true, missing_shards
 * [1,3] and exactly the rows of shards 0 and 2; room stats, global
 * statistics and the shard status say the same; a read of a live shard alone
 * is not partial, a read of a dead shard alone is partial and empty. After
 * `scripts/stack start-one mariadb-s1` the reads are complete again within a
 * bound. The partial counters of /admin/stats and /metrics move. Then a shard
 * that hangs (its table locked) is missing after order-svc's query timeout,
 * and with order-svc stopped the relayed reads answer 503 at once while room
 * and global statistics answer their Redis part. Whatever happens, the
 * server and order-svc are started again (the restore test, itr_restore). */
#include "it_read_kit.h"

#define PARTIAL_BOUND_MS 2000    /* a partial answer may take this long at most */
#define RECOVER_MS 30000         /* bound on reads being complete after the restart */
#define DOWN_MASK 0xaULL         /* shards 1 and 3: mariadb-s1 */
#define LIVE_MASK 0x5ULL
#define QUERY_TIMEOUT_MS 1000    /* order-svc's query_timeout_ms (default) */
#define AT_ONCE_MS 500           /* "at once": a refused connection, no waiting */

static int rows_ok;                /* the rows are in, order-svc under hash */
static long long partial_before;   /* /admin/stats reads.partial_total before the kill */

/* GET path, expecting 200 with a JSON object within the bound. */
static json_t *get_ok(const char *path, itr_res *r)
{
    if (itr_get(path, r) != 200 || !json_is_object(r->json)) {
        TH_FAIL_AT("GET %s: status %d, body %.300s", path, r->status, r->body ? r->body : "");
        return NULL;
    }
    if (r->ms >= PARTIAL_BOUND_MS)
        TH_FAIL_AT("GET %s took %lld ms (bound %d)", path, r->ms, PARTIAL_BOUND_MS);
    return r->json;
}

static long long partial_total(void)
{
    itr_res r;
    long long v = -1;

    if (itr_get("/admin/stats", &r) == 200)
        v = itr_jint(itr_jget(r.json, "reads"), "partial_total");
    itr_res_clear(&r);
    return v;
}

static long long metric_value(const char *name)
{
    itr_res r;
    long long v = -1;

    if (itr_get("/metrics", &r) == 200)
        v = itr_metric(r.body, name);
    itr_res_clear(&r);
    return v;
}

static void recent_where(const json_t *o, char *where, size_t len)
{
    char since[ITR_TIME_BUF];

    itr_time_text(itr_parse_iso(itr_jstr(o, "since")), 0, since, sizeof(since));
    snprintf(where, len, "grab_time >= '%s'", since);
}

/* A list read of every shard with mariadb-s1 down: the rows of 0 and 2.
 * where NULL: the window of the recent orders' own answer. */
static void check_partial_list(const char *path, const char *where, long long limit)
{
    itr_refs *ref = malloc(sizeof(*ref));
    char own[160];
    itr_res r;
    json_t *o;

    memset(&r, 0, sizeof(r));
    if (ref == NULL || (o = get_ok(path, &r)) == NULL)
        goto done;
    if (where == NULL) {
        recent_where(o, own, sizeof(own));
        where = own;
    }
    fprintf(stdout, "    %s: %lld ms, partial %d, %lld rows\n", path, r.ms,
            itr_jbool(o, "partial"), itr_jint(o, "count"));
    itr_check_shard_fields(path, o, itr_all(), DOWN_MASK);
    if (itr_ref_from(where, limit, LIVE_MASK, ref) == 0)
        itr_check_orders(path, o, ref);
    for (size_t i = 0; i < json_array_size(itr_jget(o, "orders")); i++) {
        long long s = itr_jint(json_array_get(itr_jget(o, "orders"), i), "shard");

        if (s != 0 && s != 2) {
            TH_FAIL_AT("%s: a row from shard %lld", path, s);
            break;
        }
    }

done:
    itr_res_clear(&r);
    free(ref);
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_setup(void)
{
    itr_res r;

    rows_ok = 0;
    TH_REQUIRE(itr.map_ready && itr.strategy == SR_HASH);
    TH_REQUIRE(itr_rows_insert() == 0);
    /* Every pool of order-svc holds an open connection to every shard. */
    for (int i = 0; i < 4; i++) {
        TH_CHECK_INT(itr_get("/admin/shards/status", &r), 200);
        TH_CHECK_INT(itr_jbool(r.json, "partial"), 0);
        itr_res_clear(&r);
    }
    partial_before = partial_total();
    TH_CHECK(partial_before >= 0);
    rows_ok = 1;
}

static void test_cross_shard(void)
{
    char path[128], where[160];

    TH_REQUIRE(rows_ok);
    TH_REQUIRE(itk_script("stack", "kill mariadb-s1") == 0);
    itr.s1_killed = 1;
    itr_db_drop(1);
    itr_db_drop(3);
    /* Twice: first on the broken connections, then while they reconnect. */
    for (int round = 0; round < 2; round++) {
        check_partial_list("/api/orders/recent?hours=48&limit=500", NULL, 500);
        check_partial_list("/api/orders/recent?hours=720&limit=9", NULL, 9);
        snprintf(path, sizeof(path), "/api/room/%lld/orders?limit=7", itr.rooms[0]);
        snprintf(where, sizeof(where), "room_id = %lld", itr.rooms[0]);
        check_partial_list(path, where, 7);
    }
}

static void test_shard_status(void)
{
    long long per[ITR_SHARDS] = {0}, total = 0, max = 0;
    json_t *o, *list, *e;
    itr_res r;
    size_t i;

    TH_REQUIRE(rows_ok && itr.s1_killed);
    for (int s = 0; s < ITR_SHARDS; s += 2) {
        per[s] = itr_db_int(s, "SELECT COUNT(*) FROM coupon_results");
        total += per[s];
        max = per[s] > max ? per[s] : max;
    }
    TH_REQUIRE_OR_DONE((o = get_ok("/admin/shards/status", &r)) != NULL);
    itr_check_shard_fields("shards status", o, itr_all(), DOWN_MASK);
    list = itr_jget(o, "shards");
    TH_CHECK_INT(json_array_size(list), ITR_SHARDS);
    json_array_foreach(list, i, e) {
        int down = (int)(DOWN_MASK >> i & 1);

        TH_CHECK_INT(itr_jint(e, "shard"), (long long)i);
        TH_CHECK_STR(itr_jstr(e, "address"), i < ITR_SHARDS ? itr.shard_spec[i] : "");
        TH_CHECK_INT(itr_jbool(e, "up"), !down);
        if (down) {
            TH_CHECK(itr_jstr(e, "error") != NULL);
            TH_CHECK(itr_jget(e, "rows") == NULL);
        } else if (i < ITR_SHARDS) {
            TH_CHECK_INT(itr_jint(e, "rows"), per[i]);
        }
    }
    TH_CHECK_INT(itr_jint(o, "total_rows"), total);
    /* Over the shards that answered: max / mean of 0 and 2. */
    if (fabs(json_number_value(itr_jget(o, "balance_score")) - (double)max * 2 / (double)total) >
        1e-5 * max)
        TH_FAIL_AT("balance_score %f, want %f", json_number_value(itr_jget(o, "balance_score")),
                   (double)max * 2 / (double)total);
    fprintf(stdout, "    shards status: %lld ms, %s\n", r.ms, r.body);

done:
    itr_res_clear(&r);
}

static void test_counts(void)
{
    long long per0, per2, room_live;
    char path[96];
    json_t *o, *list, *e;
    itr_res r;
    size_t i;

    TH_REQUIRE(rows_ok && itr.s1_killed);
    per0 = itr_db_int(0, "SELECT COUNT(*) FROM coupon_results");
    per2 = itr_db_int(2, "SELECT COUNT(*) FROM coupon_results");
    if ((o = get_ok("/api/statistics/global", &r)) != NULL) {
        itr_check_shard_fields("global", o, itr_all(), DOWN_MASK);
        TH_CHECK_INT(itr_jint(o, "orders"), per0 + per2);
        list = itr_jget(o, "per_shard");
        TH_CHECK_INT(json_array_size(list), 2);
        json_array_foreach(list, i, e) {
            long long s = itr_jint(e, "shard");

            TH_CHECK(s == 0 || s == 2);
            TH_CHECK_INT(itr_jint(e, "orders"), s == 0 ? per0 : per2);
        }
        TH_CHECK(json_is_integer(itr_jget(o, "coupons")));   /* Redis' part is whole */
        fprintf(stdout, "    global: %lld ms, orders %lld\n", r.ms, itr_jint(o, "orders"));
    }
    itr_res_clear(&r);
    room_live = itr_db_int(0, "SELECT COUNT(*) FROM coupon_results WHERE room_id = %lld",
                           itr.rooms[0]) +
                itr_db_int(2, "SELECT COUNT(*) FROM coupon_results WHERE room_id = %lld",
                           itr.rooms[0]);
    snprintf(path, sizeof(path), "/api/room/%lld/stats", itr.rooms[0]);
    if ((o = get_ok(path, &r)) != NULL) {
        itr_check_shard_fields(path, o, itr_all(), DOWN_MASK);
        TH_CHECK_INT(itr_jint(o, "orders"), room_live);
        TH_CHECK_INT(room_live, ITR_BIG_ROWS / 2);
    }
    itr_res_clear(&r);
}

/* Under hash a user lives on one shard: a live one answers whole, a dead one
 * partial and empty, both at once. */
static void test_single_shard(void)
{
    char path[96], where[64];
    itr_refs *ref = malloc(sizeof(*ref));
    itr_res r;
    json_t *o;

    TH_REQUIRE(ref != NULL);
    for (int j = 0; j < 4; j++) {
        long long u = itr.users[j];   /* users[j] is on shard j */

        snprintf(path, sizeof(path), "/api/user/%lld/coupons", u);
        if ((o = get_ok(path, &r)) == NULL) {
            itr_res_clear(&r);
            continue;
        }
        itr_check_shard_fields(path, o, UINT64_C(1) << j, (DOWN_MASK >> j & 1) << j);
        if (DOWN_MASK >> j & 1) {
            TH_CHECK_INT(itr_jint(o, "count"), 0);
        } else {
            snprintf(where, sizeof(where), "user_id = %lld", u);
            if (itr_ref_from(where, 50, UINT64_C(1) << j, ref) == 0)
                itr_check_orders(path, o, ref);
            TH_CHECK(ref->n > 0);
        }
        fprintf(stdout, "    %s (shard %d): %lld ms, partial %d, %lld rows\n", path, j, r.ms,
                itr_jbool(o, "partial"), itr_jint(o, "count"));
        itr_res_clear(&r);
    }
    free(ref);
}

static void test_counters(void)
{
    long long after = partial_total(), metric = metric_value("grab_read_partial_total");

    TH_REQUIRE(itr.s1_killed);
    /* at least: 6 lists, status, global, room stats, 2 users */
    TH_CHECK(after >= partial_before + 11);
    TH_CHECK_INT(metric, after);
}

static void test_recovery(void)
{
    long long deadline, t0 = itk_now_ms();
    int complete = 0;
    char where[160];
    itr_refs *ref = malloc(sizeof(*ref));
    itr_res r;
    json_t *o;

    memset(&r, 0, sizeof(r));
    TH_REQUIRE(ref != NULL);
    TH_REQUIRE(itr.s1_killed);
    TH_CHECK_INT(itk_script("stack", "start-one mariadb-s1"), 0);
    itr.s1_killed = 0;
    deadline = itk_now_ms() + RECOVER_MS;
    while (!complete && itk_now_ms() < deadline) {
        if (itr_get("/admin/shards/status", &r) == 200)
            complete = itr_jbool(r.json, "partial") == 0;
        itr_res_clear(&r);
        if (!complete)
            itk_run_for(itr.base, 200);   /* a poll interval, bounded by the deadline */
    }
    fprintf(stdout, "    reads complete %lld ms after start-one\n", itk_now_ms() - t0);
    TH_CHECK(complete);
    if ((o = get_ok("/api/orders/recent?hours=48&limit=500", &r)) != NULL) {
        itr_check_shard_fields("recent after recovery", o, itr_all(), 0);
        recent_where(o, where, sizeof(where));
        if (itr_ref_load(where, 500, itr_all(), ref, NULL) == 0)
            itr_check_orders("recent after recovery", o, ref);
    }
    itr_res_clear(&r);
    free(ref);
}

/* A shard that hangs (its table locked by the test): the read answers after
 * order-svc's query_timeout_ms with that shard missing; reads of other
 * shards alone are not held up. */
static void test_hung_shard(void)
{
    cg_error err = {0, ""};
    MYSQL *lock = NULL;
    long long deadline;
    int complete = 0;
    char path[96], where[64];
    itr_refs *ref = malloc(sizeof(*ref));
    itr_res r;
    json_t *o;

    memset(&r, 0, sizeof(r));
    TH_REQUIRE_OR_DONE(ref != NULL && rows_ok && !itr.s1_killed);
    TH_REQUIRE_OR_DONE(db_connect(&itr.shard_cfg[2], &lock, &err) == CG_OK);
    TH_REQUIRE_OR_DONE(db_exec(lock, "LOCK TABLES coupon_results WRITE", NULL, &err) == CG_OK);
    o = get_ok("/api/orders/recent?hours=48&limit=500", &r);
    if (o != NULL) {
        fprintf(stdout, "    shard 2 locked: recent orders in %lld ms, partial %d\n", r.ms,
                itr_jbool(o, "partial"));
        TH_CHECK(r.ms >= QUERY_TIMEOUT_MS - 100);   /* it did wait for shard 2 */
        itr_check_shard_fields("recent, shard 2 hung", o, itr_all(), UINT64_C(1) << 2);
        recent_where(o, where, sizeof(where));
        if (itr_ref_from(where, 500, itr_all() & ~(UINT64_C(1) << 2), ref) == 0)
            itr_check_orders("recent, shard 2 hung", o, ref);
    }
    itr_res_clear(&r);
    snprintf(path, sizeof(path), "/api/user/%lld/coupons", itr.users[0]);   /* shard 0 */
    if ((o = get_ok(path, &r)) != NULL) {
        itr_check_shard_fields(path, o, 1, 0);
        TH_CHECK(r.ms < QUERY_TIMEOUT_MS / 2);
    }
    itr_res_clear(&r);
    if ((o = get_ok("/admin/shards/status", &r)) != NULL) {
        itr_check_shard_fields("shards status, shard 2 hung", o, itr_all(), UINT64_C(1) << 2);
        TH_CHECK_INT(itr_jbool(json_array_get(itr_jget(o, "shards"), 2), "up"), 0);
    }
    itr_res_clear(&r);

done:
    if (lock != NULL && db_exec(lock, "UNLOCK TABLES", NULL, &err) != CG_OK)
        TH_FAIL_AT("UNLOCK TABLES: %s", err.msg);
    db_close(lock);   /* releases the lock in any case */
    deadline = itk_now_ms() + RECOVER_MS;
    while (!complete && itk_now_ms() < deadline) {
        itr_res_clear(&r);
        complete = itr_get("/admin/shards/status", &r) == 200 && itr_jbool(r.json, "partial") == 0;
        if (!complete)
            itk_run_for(itr.base, 100);   /* a poll interval, bounded by the deadline */
    }
    TH_CHECK(complete);
    itr_res_clear(&r);
    free(ref);
}

/* order-svc stopped: relayed reads 503 at once; room and global statistics
 * answer with their Redis part and orders null (a room without stock: 503).
 * Then back under hash. */
static void test_order_svc_down(void)
{
    static const char *const relayed[] = {
        "/api/user/5000002/coupons", "/api/room/1/orders", "/api/orders/recent",
        "/admin/shards/status",
    };
    long long ids[64];
    int n_ids = itr_redis_ids("room:{1}:coupons", ids, 64);
    char path[96];
    itr_res r;
    json_t *o;

    TH_REQUIRE(rows_ok && n_ids > 0);
    TH_REQUIRE(itr_services("stop", "order-svc") == 0);
    itr.map_ready = 0;   /* the restore starts it again whatever happens */
    for (size_t i = 0; i < TH_TABLE_LEN(relayed); i++) {
        TH_CHECK_INT(itr_get(relayed[i], &r), 503);
        TH_CHECK_STR(itr_jstr(r.json, "error"), "unavailable");
        if (r.ms >= AT_ONCE_MS)   /* a refused connection is known at once */
            TH_FAIL_AT("GET %s with order-svc down took %lld ms", relayed[i], r.ms);
        itr_res_clear(&r);
    }
    if ((o = get_ok("/api/room/1/stats", &r)) != NULL) {
        json_t *coupons = itr_jget(o, "coupons");

        TH_CHECK(r.ms < AT_ONCE_MS);
        TH_CHECK_INT(itr_jbool(o, "partial"), 1);
        TH_CHECK(json_is_null(itr_jget(o, "orders")));
        TH_CHECK(itr_jstr(o, "orders_error") != NULL);
        TH_CHECK_INT(json_array_size(coupons), n_ids);
        for (size_t i = 0; i < json_array_size(coupons); i++) {
            json_t *e = json_array_get(coupons, i);

            TH_CHECK_INT(itr_jint(e, "coupon_id"), ids[i]);
            TH_CHECK(itr_jint(e, "total") > 0);
            TH_CHECK(json_is_null(itr_jget(e, "orders")));
        }
    }
    itr_res_clear(&r);
    if ((o = get_ok("/api/statistics/global", &r)) != NULL) {
        TH_CHECK(r.ms < AT_ONCE_MS);
        TH_CHECK_INT(itr_jbool(o, "partial"), 1);
        TH_CHECK(json_is_null(itr_jget(o, "orders")));
        TH_CHECK(itr_jstr(o, "orders_error") != NULL);
        TH_CHECK(itr_jint(o, "coupons") > 0 && itr_jint(o, "stock_total") > 0);
    }
    itr_res_clear(&r);
    /* A room without stock in Redis: absent and unknown are not the same, 503. */
    snprintf(path, sizeof(path), "/api/room/%lld/stats", itr.rooms[0]);
    TH_CHECK_INT(itr_get(path, &r), 503);
    TH_CHECK_STR(itr_jstr(r.json, "error"), "unavailable");
    TH_CHECK(r.ms < AT_ONCE_MS);
    itr_res_clear(&r);
    TH_CHECK_INT(itr_get("/api/coupon/1/stock", &r), 200);
    itr_res_clear(&r);
    TH_CHECK(itr_order_svc_restart(SR_HASH, NULL) == 0);
}

static void test_restore(void)
{
    rows_ok = 0;
    itr_restore();
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"setup: hash, rows on every shard", test_setup},
        {"mariadb-s1 killed: cross-shard reads partial, rows of 0 and 2", test_cross_shard},
        {"shard status: 1 and 3 down, balance over 0 and 2", test_shard_status},
        {"global and room counts partial", test_counts},
        {"single-shard reads: live whole, dead partial", test_single_shard},
        {"partial counters in /admin/stats and /metrics", test_counters},
        {"mariadb-s1 back: reads complete again", test_recovery},
        {"a hung shard: partial after the query timeout", test_hung_shard},
        {"order-svc down: 503 relayed, stats without orders", test_order_svc_down},
        {"restore: rows gone, order-svc under hash", test_restore},
    };

    return itr_main("it_read_partial", tests, TH_TABLE_LEN(tests), argc, argv);
}
