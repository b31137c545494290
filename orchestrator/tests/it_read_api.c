/* it_read_api.c - integration tests of the read API (docs/read-api.md)
 * through the orchestrator's public HTTP API, against the real stack, under
 * each sharding strategy: hash (the default map), range-room and range-day.
 *
 * For each strategy the test restarts order-svc with it, inserts its own
 * rows (it_read_kit.h) directly on the shards sr_shard_of() names, and
 * checks every order endpoint against the same question asked of the shards
 * with plain SQL: a user's coupons, a room's orders, recent orders (several
 * windows and limits), a room's counts (and order_counts = COUNT(*) for
 * every room and coupon on every shard), global statistics and the shard
 * status. Lists are compared row by row in order, counts exactly, and
 * shards_asked must be the one shard the strategy allows (a user under hash,
 * a room under range-room, a window under range-day) or else all of them.
 * Then the limit/merge order: rows interleaved over the four shards, limits
 * under one shard's share, the answer exactly the newest `limit` rows.
 *
 * The partial answer (a shard server killed) is in it_read_partial.c, stock,
 * /admin/stats and /metrics in it_read_stock.c, bad parameters in
 * it_read_params.c. The runner exports stack.env and REPO_DIR; order-svc is
 * left running under the default strategy. */
#include "it_read_kit.h"

static int phase_ok;   /* the strategy's order-svc runs and its rows are in */

/* ---- helpers ----------------------------------------------------------------------------- */

static int row_of_user(const itr_row *w, long long u)
{
    return w->user == u;
}

static int row_of_room(const itr_row *w, long long r)
{
    return w->room == r;
}

/* path + "?limit=N" when limit > 0. */
static void with_limit(char *out, size_t len, const char *path, long long limit)
{
    if (limit > 0)
        snprintf(out, len, "%s?limit=%lld", path, limit);
    else
        snprintf(out, len, "%s", path);
}

/* Expected shards for a user / room query under the current map. */
static uint64_t user_shards(long long u)
{
    int s = sr_shard_of_user(&itr.map, u);

    return s >= 0 ? UINT64_C(1) << s : itr_all();
}

/* The rows of the test in an answer. */
static int mine_in(const json_t *o)
{
    json_t *orders = itr_jget(o, "orders"), *e;
    size_t i;
    int n = 0;

    json_array_foreach(orders, i, e) {
        const char *s = itr_jstr(e, "saga_id");

        n += s != NULL && strncmp(s, ITR_SAGA_PREFIX, strlen(ITR_SAGA_PREFIX)) == 0;
    }
    return n;
}

/* A list query (user coupons, room orders) checked against the reference. */
static void check_list(const char *path, const char *id_field, long long id, const char *where,
                       long long limit, long long def_limit, uint64_t asked)
{
    long long eff = limit > 0 ? limit : def_limit, foreign = 0;
    char url[256];
    itr_refs *ref = malloc(sizeof(*ref));
    itr_res r;
    json_t *o;

    memset(&r, 0, sizeof(r));
    with_limit(url, sizeof(url), path, limit);
    if (ref == NULL || (o = itr_get_ok(url, &r)) == NULL)
        goto done;
    itr_check_shard_fields(url, o, asked, 0);
    TH_CHECK_INT(itr_jint(o, id_field), id);
    TH_CHECK_INT(itr_jint(o, "limit"), eff);
    if (itr_ref_load(where, eff, asked, ref, &foreign) == 0)
        itr_check_orders(url, o, ref);
    if (foreign > 0)
        fprintf(stdout, "    %s: %lld rows of other tests on shards not asked\n", url, foreign);

done:
    itr_res_clear(&r);
    free(ref);
}

/* ---- the strategies ---------------------------------------------------------------------- */

static void start_phase(enum sr_strategy st, const char *spec)
{
    int per[ITR_SHARDS] = {0};

    phase_ok = 0;
    if (!itr.map_ready || itr.strategy != st || strcmp(itr.map_spec, spec ? spec : "") != 0)
        TH_REQUIRE(itr_order_svc_restart(st, spec) == 0);
    TH_REQUIRE(itr_rows_insert() == 0);
    for (int i = 0; i < ITR_N_ROWS; i++)
        per[itr.rows[i].shard]++;
    fprintf(stdout, "    %s \"%s\": test rows per shard %d %d %d %d\n", sr_strategy_name(st),
            itr.map_spec, per[0], per[1], per[2], per[3]);
    for (int s = 0; s < ITR_SHARDS; s++)
        TH_CHECK(per[s] > 0);   /* every strategy spreads the set over all shards */
    phase_ok = 1;
}

static void test_hash_setup(void)
{
    start_phase(SR_HASH, NULL);
}

static void test_range_room_setup(void)
{
    start_phase(SR_RANGE_ROOM, ITR_RANGE_ROOM_MAP);
}

/* Days: up to 9 days ago -> 0, 8-6 -> 1, 5-3 -> 2, the last 2 days and today
 * -> 3, so that any window of 48 h or less lies on shard 3 alone. */
static void test_range_day_setup(void)
{
    char d60[16], d8[16], d5[16], d2[16], spec[128];

    itr_day_text(60, d60, sizeof(d60));
    itr_day_text(8, d8, sizeof(d8));
    itr_day_text(5, d5, sizeof(d5));
    itr_day_text(2, d2, sizeof(d2));
    snprintf(spec, sizeof(spec), "%s:0,%s:1,%s:2,%s:3", d60, d8, d5, d2);
    start_phase(SR_RANGE_DAY, spec);
}

/* ---- the endpoints ----------------------------------------------------------------------- */

static void test_user_coupons(void)
{
    static const int users[] = {0, 5, 10, 15};
    static const long long limits[] = {0, 2, 1, 500};
    char path[128];

    TH_REQUIRE(phase_ok);
    for (size_t i = 0; i < TH_TABLE_LEN(users); i++) {
        long long u = itr.users[users[i]];
        uint64_t asked = user_shards(u), holds = itr_rows_shards(row_of_user, u);
        char where[64];

        /* One shard under hash (the one holding the user's rows), all otherwise;
         * under the range strategies the user's rows are spread (a real merge). */
        if (itr.strategy == SR_HASH) {
            TH_CHECK_INT(itr_popcount(asked), 1);
            TH_CHECK_INT(asked, holds);
        } else {
            TH_CHECK_INT(asked, itr_all());
            TH_CHECK(itr_popcount(holds) > 1);
        }
        snprintf(path, sizeof(path), "/api/user/%lld/coupons", u);
        snprintf(where, sizeof(where), "user_id = %lld", u);
        for (size_t k = 0; k < TH_TABLE_LEN(limits); k++)
            check_list(path, "user_id", u, where, limits[k], 50, asked);
    }
    /* A user without orders: an empty list from the same shards. */
    snprintf(path, sizeof(path), "/api/user/%lld/coupons", ITR_USER_END);
    check_list(path, "user_id", ITR_USER_END, "user_id = 5000999", 0, 50,
               user_shards(ITR_USER_END));
}

static void test_room_orders(void)
{
    long long rooms[] = {itr.rooms[0], itr.rooms[3], itr.rooms[6], 1, ITR_ROOM_END};
    static const long long limits[] = {0, 5, 1, 500};
    char path[128], where[64];

    TH_REQUIRE(phase_ok);
    for (size_t i = 0; i < TH_TABLE_LEN(rooms); i++) {
        uint64_t asked = itr_room_shards(rooms[i]), holds = itr_rows_shards(row_of_room, rooms[i]);

        if (itr.strategy == SR_RANGE_ROOM) {
            TH_CHECK_INT(itr_popcount(asked), 1);
            if (holds != 0)
                TH_CHECK_INT(asked, holds);
        } else {
            TH_CHECK_INT(asked, itr_all());
        }
        snprintf(path, sizeof(path), "/api/room/%lld/orders", rooms[i]);
        snprintf(where, sizeof(where), "room_id = %lld", rooms[i]);
        for (size_t k = 0; k < TH_TABLE_LEN(limits); k++)
            check_list(path, "room_id", rooms[i], where, limits[k], 20, asked);
    }
}

/* One recent-orders query: the window's start (since) from the answer, the
 * shards that meet it under the map, the rows from the shards. */
static void check_recent(long long hours, long long limit)
{
    long long eff_h = hours > 0 ? hours : 1, eff_l = limit > 0 ? limit : 50;
    long long t0 = itr_wall_ms(), t1, since, foreign = 0, mine_want = 0;
    char path[128], where[160], since_sql[ITR_TIME_BUF];
    itr_refs *ref = malloc(sizeof(*ref));
    uint64_t asked;
    itr_res r;
    json_t *o;

    if (hours > 0 && limit > 0)
        snprintf(path, sizeof(path), "/api/orders/recent?hours=%lld&limit=%lld", hours, limit);
    else if (hours > 0)
        snprintf(path, sizeof(path), "/api/orders/recent?hours=%lld", hours);
    else
        with_limit(path, sizeof(path), "/api/orders/recent", limit);
    o = itr_get_ok(path, &r);
    t1 = itr_wall_ms();
    if (ref == NULL || o == NULL)
        goto done;
    TH_CHECK_INT(itr_jint(o, "hours"), eff_h);
    TH_CHECK_INT(itr_jint(o, "limit"), eff_l);
    since = itr_parse_iso(itr_jstr(o, "since"));
    if (since < t0 - eff_h * 3600000LL - 1000 || since > t1 - eff_h * 3600000LL + 1000) {
        TH_FAIL_AT("%s: since %s is not now - %lld h", path, itr_jstr(o, "since"), eff_h);
        goto done;
    }
    asked = sr_shards_of_window(&itr.map, since / 1000, (since + eff_h * 3600000LL) / 1000);
    if (itr.strategy == SR_RANGE_DAY && eff_h <= 48)
        TH_CHECK_INT(asked, UINT64_C(1) << 3);   /* the last days' shard alone */
    else if (itr.strategy != SR_RANGE_DAY)
        TH_CHECK_INT(asked, itr_all());
    itr_check_shard_fields(path, o, asked, 0);
    itr_time_text(since, 0, since_sql, sizeof(since_sql));
    snprintf(where, sizeof(where), "grab_time >= '%s'", since_sql);
    if (itr_ref_load(where, eff_l, asked, ref, &foreign) != 0)
        goto done;
    itr_check_orders(path, o, ref);
    /* The reference is not empty by accident: with room for them, every test
     * row of the window is in the answer. */
    for (int i = 0; i < ITR_N_ROWS; i++)
        mine_want += itr.rows[i].t_ms >= since;
    if ((long long)ref->n < eff_l)
        TH_CHECK_INT(mine_in(o), mine_want);
    fprintf(stdout, "    %s: %lld rows (%d of the test), shards 0x%llx%s\n", path,
            itr_jint(o, "count"), mine_in(o), (unsigned long long)asked,
            foreign > 0 ? ", other tests' rows on shards not asked" : "");

done:
    itr_res_clear(&r);
    free(ref);
}

static void test_recent_orders(void)
{
    static const long long cases[][2] = {
        {0, 0}, {1, 0}, {6, 3}, {48, 500}, {48, 7}, {100, 500}, {720, 500}, {720, 5},
    };

    TH_REQUIRE(phase_ok);
    for (size_t i = 0; i < TH_TABLE_LEN(cases); i++)
        check_recent(cases[i][0], cases[i][1]);
}

/* order_counts equals COUNT(*) for every (room, coupon) on every shard: rows
 * without a counter, counters that disagree, counters without rows. */
static void check_order_counts(void)
{
    for (int s = 0; s < ITR_SHARDS; s++) {
        long long bad = itr_db_int(
            s, "SELECT (SELECT COUNT(*) FROM (SELECT room_id, coupon_id, COUNT(*) AS n FROM "
               "coupon_results GROUP BY room_id, coupon_id) x LEFT JOIN order_counts o ON "
               "o.room_id = x.room_id AND o.coupon_id = x.coupon_id WHERE o.orders IS NULL OR "
               "o.orders <> x.n) + (SELECT COUNT(*) FROM order_counts o WHERE o.orders <> 0 AND "
               "NOT EXISTS (SELECT 1 FROM coupon_results r WHERE r.room_id = o.room_id AND "
               "r.coupon_id = o.coupon_id))");

        if (bad != 0)
            TH_FAIL_AT("shard %d: %lld (room, coupon) counters differ from COUNT(*)", s, bad);
    }
}

static void test_room_stats(void)
{
    itr_res r;
    int mine = 0;

    TH_REQUIRE(phase_ok);
    check_order_counts();
    itr_check_room_stats(itr.rooms[0]);   /* orders only (no stock in Redis) */
    itr_check_room_stats(itr.rooms[4]);
    itr_check_room_stats(1);              /* stock in Redis, some coupons with orders */
    for (int i = 0; i < ITR_N_ROWS; i++)
        mine += itr.rows[i].room == itr.rooms[0];
    TH_CHECK_INT(mine, ITR_BIG_ROWS);
    /* Neither stock nor orders: 404 naming the room. */
    TH_CHECK_INT(itr_get("/api/room/910999/stats", &r), 404);
    TH_CHECK_STR(itr_jstr(r.json, "field"), "room_id");
    itr_res_clear(&r);
}

/* COUNT(*) of every shard into per; the total. */
static long long shard_rows(long long *per)
{
    long long total = 0;

    for (int s = 0; s < ITR_SHARDS; s++) {
        per[s] = itr_db_int(s, "SELECT COUNT(*) FROM coupon_results");
        total += per[s];
    }
    return total;
}

/* GET path while no order is written: the shards' counts are the same
 * before and after the answer (a few tries; a saga resumed by a restarted
 * orchestrator may still be writing). The counts go to per. */
static json_t *get_stable(const char *path, itr_res *r, long long *per)
{
    long long again[ITR_SHARDS];
    json_t *o = NULL;

    for (int attempt = 0; attempt < 3; attempt++) {
        shard_rows(per);
        itr_res_clear(r);
        if ((o = itr_get_ok(path, r)) == NULL)
            return NULL;
        shard_rows(again);
        if (memcmp(per, again, sizeof(again)) == 0)
            return o;
        fprintf(stdout, "    %s: rows written meanwhile, again\n", path);
    }
    TH_FAIL_AT("%s: the shards never held still", path);
    return o;
}

/* Orders per shard and per room, counted directly over every shard. */
static void test_global_stats(void)
{
    long long per[ITR_SHARDS], total = 0, sorted[512];
    itr_kv rooms = {{0}, {0}, 0};
    int n_sorted = 0, n_top;
    json_t *o, *list, *e;
    itr_res r;
    size_t i;

    TH_REQUIRE(phase_ok);
    memset(&r, 0, sizeof(r));
    TH_REQUIRE_OR_DONE((o = get_stable("/api/statistics/global", &r, per)) != NULL);
    for (int s = 0; s < ITR_SHARDS; s++)
        total += per[s];
    TH_REQUIRE(itr_db_kv(itr_all(), "SELECT room_id, COUNT(*) FROM coupon_results GROUP BY "
                                    "room_id", &rooms) == 0);
    for (int j = 0; j < rooms.n; j++) {   /* the counts, largest first */
        int at = n_sorted++;

        for (; at > 0 && sorted[at - 1] < rooms.val[j]; at--)
            sorted[at] = sorted[at - 1];
        sorted[at] = rooms.val[j];
    }
    itr_check_shard_fields("global", o, itr_all(), 0);
    TH_CHECK_INT(itr_jint(o, "orders"), total);
    list = itr_jget(o, "per_shard");
    TH_CHECK_INT(json_array_size(list), ITR_SHARDS);
    json_array_foreach(list, i, e) {
        TH_CHECK_INT(itr_jint(e, "shard"), (long long)i);
        if (i < ITR_SHARDS)
            TH_CHECK_INT(itr_jint(e, "orders"), per[i]);
    }
    /* top_rooms: the 10 largest counts, each room's own count. */
    list = itr_jget(o, "top_rooms");
    n_top = n_sorted < 10 ? n_sorted : 10;
    TH_CHECK(json_array_size(list) <= 10);
    json_array_foreach(list, i, e) {
        long long room = itr_jint(e, "room_id"), n = itr_jint(e, "orders");

        TH_CHECK_INT(n, itr_kv_get(&rooms, room));
        if ((int)i < n_top)
            TH_CHECK_INT(n, sorted[i]);
        else
            TH_CHECK_INT(n, 0);   /* only rooms without orders beyond the counted ones */
    }
    TH_CHECK(json_array_size(list) >= (size_t)n_top);
    TH_CHECK_INT(itr_kv_get(&rooms, itr.rooms[0]), ITR_BIG_ROWS);
    TH_CHECK(json_is_integer(itr_jget(o, "coupons")));
    TH_CHECK_STR(itr_jstr(o, "stock_source"), "replica");
    fprintf(stdout, "    global: %lld orders (per shard %lld %lld %lld %lld), %d rooms\n", total,
            per[0], per[1], per[2], per[3], rooms.n);

done:
    itr_res_clear(&r);
}

static void test_shards_status(void)
{
    long long per[ITR_SHARDS], total = 0, max = 0;
    json_t *o, *list, *e;
    double score, want;
    itr_res r;
    size_t i;

    TH_REQUIRE(phase_ok);
    memset(&r, 0, sizeof(r));
    TH_REQUIRE_OR_DONE((o = get_stable("/admin/shards/status", &r, per)) != NULL);
    for (int s = 0; s < ITR_SHARDS; s++) {
        total += per[s];
        max = per[s] > max ? per[s] : max;
    }
    itr_check_shard_fields("shards status", o, itr_all(), 0);
    list = itr_jget(o, "shards");
    TH_CHECK_INT(json_array_size(list), ITR_SHARDS);
    json_array_foreach(list, i, e) {
        json_t *ms = itr_jget(e, "query_ms");

        if (i >= ITR_SHARDS)
            break;
        TH_CHECK_INT(itr_jint(e, "shard"), (long long)i);
        TH_CHECK_STR(itr_jstr(e, "address"), itr.shard_spec[i]);
        TH_CHECK_INT(itr_jbool(e, "up"), 1);
        TH_CHECK_INT(itr_jint(e, "rows"), per[i]);
        TH_CHECK(json_is_number(ms) && json_number_value(ms) >= 0 &&
                 json_number_value(ms) < 5000);
    }
    TH_CHECK_INT(itr_jint(o, "total_rows"), total);
    score = json_number_value(itr_jget(o, "balance_score"));
    want = (double)max * ITR_SHARDS / (double)total;
    /* The answer carries 6 significant digits. */
    if (!json_is_number(itr_jget(o, "balance_score")) || fabs(score - want) > 1e-5 * want)
        TH_FAIL_AT("balance_score %f, want max/mean = %f", score, want);
    fprintf(stdout, "    shards: rows %lld %lld %lld %lld, balance %.4f\n", per[0], per[1],
            per[2], per[3], score);

done:
    itr_res_clear(&r);
}

/* ---- limit and merge order --------------------------------------------------------------- */

/* The big room's rows newest first, as computed here without SQL: time
 * descending, the lower shard first, then the later insert (higher
 * result_id) first. */
static int big_cmp(const void *pa, const void *pb)
{
    const itr_row *a = *(const itr_row *const *)pa, *b = *(const itr_row *const *)pb;

    if (a->t_ms != b->t_ms)
        return a->t_ms < b->t_ms ? 1 : -1;
    if (a->shard != b->shard)
        return a->shard - b->shard;
    return strcmp(b->saga, a->saga);   /* the saga ids rise with the insert order */
}

/* How often consecutive rows of an answer change shard. */
static int shard_switches(const json_t *o)
{
    json_t *orders = itr_jget(o, "orders");
    int n = 0;

    for (size_t i = 1; i < json_array_size(orders); i++)
        n += itr_jint(json_array_get(orders, i), "shard") !=
             itr_jint(json_array_get(orders, i - 1), "shard");
    return n;
}

static void test_limit_merge(void)
{
    static const long long room_limits[] = {1, 3, 7, 8, 9, 31, 32, 33};
    static const long long recent_limits[] = {1, 2, 3, 4, 5, 8, 15, 16, 17, 33};
    const itr_row *big[ITR_BIG_ROWS];
    int per[ITR_SHARDS] = {0}, n_big = 0, max_per = 0;
    long long hours = itr.strategy == SR_RANGE_DAY ? 720 : 48;
    char path[128];

    TH_REQUIRE(phase_ok);
    for (int i = 0; i < ITR_N_ROWS; i++)
        if (itr.rows[i].room == itr.rooms[0] && n_big < ITR_BIG_ROWS)
            big[n_big++] = &itr.rows[i];
    TH_REQUIRE(n_big == ITR_BIG_ROWS);
    qsort(big, (size_t)n_big, sizeof(big[0]), big_cmp);
    for (int i = 0; i < n_big; i++)
        per[big[i]->shard]++;
    for (int s = 0; s < ITR_SHARDS; s++)
        max_per = per[s] > max_per ? per[s] : max_per;
    fprintf(stdout, "    big room: rows per shard %d %d %d %d\n", per[0], per[1], per[2], per[3]);
    /* The big room's orders: exactly the newest `limit` of the in-memory list. */
    for (size_t k = 0; k < TH_TABLE_LEN(room_limits); k++) {
        long long lim = room_limits[k], want = lim < n_big ? lim : n_big;
        json_t *o, *orders;
        itr_res r;

        snprintf(path, sizeof(path), "/api/room/%lld/orders?limit=%lld", itr.rooms[0], lim);
        if ((o = itr_get_ok(path, &r)) == NULL)
            continue;
        orders = itr_jget(o, "orders");
        TH_CHECK_INT(json_array_size(orders), want);
        for (long long i = 0; i < want && i < (long long)json_array_size(orders); i++) {
            const char *saga = itr_jstr(json_array_get(orders, (size_t)i), "saga_id");

            if (saga == NULL || strcmp(saga, big[i]->saga) != 0) {
                TH_FAIL_AT("%s: row %lld is %s, want %s (shard %d)", path, i,
                           saga ? saga : "?", big[i]->saga, big[i]->shard);
                break;
            }
        }
        if (lim == 16)
            fprintf(stdout, "    %s: %d shard switches\n", path, shard_switches(o));
        itr_res_clear(&r);
    }
    /* Under hash the big room spans every shard, 8 rows each: limits below one
     * shard's share make the per-shard limit and the merge matter. */
    if (itr.strategy == SR_HASH)
        TH_CHECK_INT(max_per, ITR_BIG_ROWS / ITR_SHARDS);
    /* Recent orders over every shard, rows interleaved in time. */
    for (size_t k = 0; k < TH_TABLE_LEN(recent_limits); k++)
        check_recent(hours, recent_limits[k]);
    if (itr.strategy != SR_RANGE_DAY) {
        itr_res r;
        json_t *o;

        snprintf(path, sizeof(path), "/api/orders/recent?hours=48&limit=16");
        if ((o = itr_get_ok(path, &r)) != NULL) {
            fprintf(stdout, "    %s: %d shard switches\n", path, shard_switches(o));
            TH_CHECK(shard_switches(o) >= 3);   /* interleaved, not one shard after another */
        }
        itr_res_clear(&r);
    }
}

static void test_phase_cleanup(void)
{
    phase_ok = 0;
    TH_CHECK(itr_rows_delete() == 0);
    for (int s = 0; s < ITR_SHARDS; s++) {
        TH_CHECK_INT(itr_db_int(s, "SELECT COUNT(*) FROM coupon_results WHERE %s", ITR_MINE), 0);
        TH_CHECK_INT(itr_db_int(s, "SELECT COUNT(*) FROM order_counts WHERE room_id BETWEEN "
                                   "910000 AND 910999"), 0);
    }
    check_order_counts();
}

static void test_restore(void)
{
    phase_ok = 0;
    itr_restore();
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"hash/setup", test_hash_setup},
        {"hash/user_coupons", test_user_coupons},
        {"hash/room_orders", test_room_orders},
        {"hash/recent_orders", test_recent_orders},
        {"hash/room_stats", test_room_stats},
        {"hash/global_stats", test_global_stats},
        {"hash/shards_status", test_shards_status},
        {"hash/limit_merge", test_limit_merge},
        {"hash/cleanup", test_phase_cleanup},
        {"range-room/setup", test_range_room_setup},
        {"range-room/user_coupons", test_user_coupons},
        {"range-room/room_orders", test_room_orders},
        {"range-room/recent_orders", test_recent_orders},
        {"range-room/room_stats", test_room_stats},
        {"range-room/global_stats", test_global_stats},
        {"range-room/shards_status", test_shards_status},
        {"range-room/limit_merge", test_limit_merge},
        {"range-room/cleanup", test_phase_cleanup},
        {"range-day/setup", test_range_day_setup},
        {"range-day/user_coupons", test_user_coupons},
        {"range-day/room_orders", test_room_orders},
        {"range-day/recent_orders", test_recent_orders},
        {"range-day/room_stats", test_room_stats},
        {"range-day/global_stats", test_global_stats},
        {"range-day/shards_status", test_shards_status},
        {"range-day/limit_merge", test_limit_merge},
        {"range-day/cleanup", test_phase_cleanup},
        {"restore: rows gone, order-svc under hash", test_restore},
    };

    return itr_main("it_read_api", tests, TH_TABLE_LEN(tests), argc, argv);
}
