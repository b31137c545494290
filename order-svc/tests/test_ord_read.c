/* test_ord_read.c - order-svc's read queries without servers: parsing,
 * which shards each strategy asks, the SQL, and the answers made of merged
 * rows (ord_read.h). */
#include <string.h>

#include <jansson.h>

#include "../src/ord_read.h"
#include "testhelp.h"

#define NOW_MS 1795000000000LL   /* 2026-11-18T11:06:40Z */

static sr_map map;

static void test_parse(void)
{
    ordq q;
    ordq_refusal why;

    TH_REQUIRE(ordq_parse(1, "/api/user/42/coupons", NULL, NOW_MS, &q, &why) == CG_OK);
    TH_CHECK_INT(q.kind, ORDQ_USER_COUPONS);
    TH_CHECK_INT(q.id, 42);
    TH_CHECK_INT(q.limit, ORDQ_USER_LIMIT_DEF);
    TH_REQUIRE(ordq_parse(1, "/api/orders/recent", "hours=24&limit=7", NOW_MS, &q, &why) == CG_OK);
    TH_CHECK_INT(q.kind, ORDQ_RECENT);
    TH_CHECK_INT(q.hours, 24);
    TH_CHECK_INT(q.limit, 7);
    TH_REQUIRE(ordq_parse(1, "/api/room/3/orders", NULL, NOW_MS, &q, &why) == CG_OK);
    TH_CHECK_INT(q.limit, ORDQ_ROOM_LIMIT_DEF);
    TH_REQUIRE(ordq_parse(1, "/internal/room/3/counts", NULL, NOW_MS, &q, &why) == CG_OK);
    TH_CHECK_INT(q.kind, ORDQ_ROOM_COUNTS);

    TH_CHECK_INT(ordq_parse(1, "/api/room/3/orders", "limit=501", NOW_MS, &q, &why),
                 CG_ERR_INVALID);
    TH_CHECK_INT(why.code, 400);
    TH_CHECK_STR(why.field, "limit");
    TH_CHECK_INT(ordq_parse(1, "/api/orders/recent", "hours=721", NOW_MS, &q, &why),
                 CG_ERR_INVALID);
    TH_CHECK_STR(why.field, "hours");
    TH_CHECK_INT(ordq_parse(1, "/internal/totals", "limit=5", NOW_MS, &q, &why), CG_ERR_INVALID);
    TH_CHECK_STR(why.field, "query");
    TH_CHECK_INT(ordq_parse(1, "/api/user/abc/coupons", NULL, NOW_MS, &q, &why), CG_ERR_INVALID);
    TH_CHECK_INT(why.code, 400);
    TH_CHECK_STR(why.field, "user_id");
    TH_CHECK_INT(ordq_parse(0, "/api/user/1/coupons", NULL, NOW_MS, &q, &why), CG_ERR_INVALID);
    TH_CHECK_INT(why.code, 405);
    TH_CHECK_INT(ordq_parse(1, "/api/user/1", NULL, NOW_MS, &q, &why), CG_ERR_INVALID);
    TH_CHECK_INT(why.code, 404);
}

/* The asked shards of a query under the current map. */
static uint64_t asked(const char *path, const char *query)
{
    ordq q;
    ordq_refusal why;
    static ordq_plan plan;
    cg_error err;

    if (ordq_parse(1, path, query, NOW_MS, &q, &why) != CG_OK ||
        ordq_plan_build(&q, &map, 100, &plan, &err) != CG_OK)
        return 0;
    for (int s = 0; s < map.n_shards; s++) {
        if ((plan.shards >> s & 1) != (plan.sql[s] != NULL))
            return 0;   /* a statement for every asked shard, and only for those */
    }
    return plan.shards;
}

static void test_shards_per_strategy(void)
{
    cg_error err;
    uint64_t one;

    TH_REQUIRE(sr_map_build(&map, SR_HASH, 4, NULL, &err) == CG_OK);
    one = UINT64_C(1) << sr_shard_of_user(&map, 42);
    TH_CHECK_INT(asked("/api/user/42/coupons", NULL), one);
    TH_CHECK_INT(asked("/api/room/3/orders", NULL), 0xf);
    TH_CHECK_INT(asked("/internal/room/3/counts", NULL), 0xf);
    TH_CHECK_INT(asked("/api/orders/recent", "hours=1"), 0xf);
    TH_CHECK_INT(asked("/internal/totals", NULL), 0xf);

    TH_REQUIRE(sr_map_build(&map, SR_RANGE_ROOM, 4, "1:0,26:1,51:2,76:3", &err) == CG_OK);
    TH_CHECK_INT(asked("/api/user/42/coupons", NULL), 0xf);
    TH_CHECK_INT(asked("/api/room/30/orders", NULL), 1 << 1);
    TH_CHECK_INT(asked("/internal/room/99/counts", NULL), 1 << 3);
    TH_CHECK_INT(asked("/internal/shards", NULL), 0xf);

    /* NOW_MS is 2026-11-18T11:06:40Z: one hour stays on that day's shard,
     * a day reaches back into the 17th's, three days into the 15th's. */
    TH_REQUIRE(sr_map_build(&map, SR_RANGE_DAY, 4,
                            "2026-11-01:0,2026-11-10:1,2026-11-17:2,2026-11-18:3", &err) == CG_OK);
    TH_CHECK_INT(asked("/api/orders/recent", "hours=1"), 1 << 3);
    TH_CHECK_INT(asked("/api/orders/recent", "hours=24"), (1 << 2) | (1 << 3));
    TH_CHECK_INT(asked("/api/orders/recent", "hours=72"), (1 << 1) | (1 << 2) | (1 << 3));
    TH_CHECK_INT(asked("/api/orders/recent", "hours=720"), 0xf);
    TH_CHECK_INT(asked("/api/room/30/orders", NULL), 0xf);
}

static void test_sql(void)
{
    ordq q;
    ordq_refusal why;
    ordq_plan plan;
    cg_error err;
    int s;

    TH_REQUIRE(sr_map_build(&map, SR_HASH, 4, NULL, &err) == CG_OK);
    TH_REQUIRE(ordq_parse(1, "/api/user/42/coupons", "limit=5", NOW_MS, &q, &why) == CG_OK);
    TH_REQUIRE(ordq_plan_build(&q, &map, 100, &plan, &err) == CG_OK);
    s = sr_shard_of_user(&map, 42);
    TH_REQUIRE(plan.sql[s] != NULL);
    TH_CHECK(strstr(plan.sql[s], "WHERE user_id = 42 ORDER BY grab_time DESC, result_id DESC "
                                 "LIMIT 5") != NULL);
    TH_CHECK_INT(plan.req.limit, 5);
    TH_CHECK_INT(plan.req.mode, SR_ROWS);
    TH_REQUIRE(ordq_parse(1, "/api/orders/recent", "hours=2", NOW_MS, &q, &why) == CG_OK);
    TH_REQUIRE(ordq_plan_build(&q, &map, 100, &plan, &err) == CG_OK);
    /* the window's start, rendered in C as UTC: NOW - 2 h */
    TH_CHECK(strstr(plan.sql[0], "grab_time >= '2026-11-18 09:06:40.000'") != NULL);
}

/* Builds a result as the merge would give it. */
static char **row(const char *a, const char *b, const char *c)
{
    static char *cells[16][3];
    static int next;
    char **r = cells[next++ % 16];

    r[0] = (char *)a;
    r[1] = (char *)b;
    r[2] = (char *)c;
    return r;
}

static void test_answers(void)
{
    ordq q;
    ordq_refusal why;
    ordq_plan plan;
    sr_result res;
    cg_error err;
    char **rows[4];
    const char *addr[4] = {"a:1/s0", "a:1/s1", "b:2/s2", "b:2/s3"};
    json_t *j, *list;

    TH_REQUIRE(sr_map_build(&map, SR_HASH, 4, NULL, &err) == CG_OK);

    /* Room counts: merged rows (coupon desc) add up per coupon, rising. */
    TH_REQUIRE(ordq_parse(1, "/internal/room/1/counts", NULL, NOW_MS, &q, &why) == CG_OK);
    TH_REQUIRE(ordq_plan_build(&q, &map, 100, &plan, &err) == CG_OK);
    memset(&res, 0, sizeof(res));
    rows[0] = row("5", "10", "0");
    rows[1] = row("5", "7", "2");
    rows[2] = row("2", "1", "3");
    res.rows = rows;
    res.n_rows = 3;
    res.n_cols = 3;
    j = ordq_answer(&q, &map, &plan, &res, addr);
    TH_REQUIRE(j != NULL);
    TH_CHECK_INT(json_integer_value(json_object_get(j, "orders")), 18);
    list = json_object_get(j, "coupons");
    TH_CHECK_INT(json_array_size(list), 2);
    TH_CHECK_INT(json_integer_value(json_object_get(json_array_get(list, 0), "coupon_id")), 2);
    TH_CHECK_INT(json_integer_value(json_object_get(json_array_get(list, 1), "orders")), 17);
    TH_CHECK(json_is_false(json_object_get(j, "partial")));
    json_decref(j);

    /* Shard status with shard 1 missing: balance over the shards that answered. */
    TH_REQUIRE(ordq_parse(1, "/internal/shards", NULL, NOW_MS, &q, &why) == CG_OK);
    TH_REQUIRE(ordq_plan_build(&q, &map, 100, &plan, &err) == CG_OK);
    memset(&res, 0, sizeof(res));
    rows[0] = row("3", "100", NULL);
    rows[1] = row("2", "300", NULL);
    rows[2] = row("0", "200", NULL);
    res.rows = rows;
    res.n_rows = 3;
    res.n_cols = 2;
    res.partial = 1;
    res.n_missing = 1;
    res.missing[0] = 1;
    res.shard_status[1] = CG_ERR_IO;
    j = ordq_answer(&q, &map, &plan, &res, addr);
    TH_REQUIRE(j != NULL);
    TH_CHECK_INT(json_integer_value(json_object_get(j, "total_rows")), 600);
    TH_CHECK(json_real_value(json_object_get(j, "balance_score")) > 1.499 &&
             json_real_value(json_object_get(j, "balance_score")) < 1.501);
    list = json_object_get(j, "shards");
    TH_CHECK(json_is_false(json_object_get(json_array_get(list, 1), "up")));
    TH_CHECK(json_is_true(json_object_get(json_array_get(list, 2), "up")));
    TH_CHECK_INT(json_integer_value(json_object_get(json_array_get(list, 2), "rows")), 300);
    TH_CHECK(json_is_true(json_object_get(j, "partial")));
    TH_CHECK_INT(json_integer_value(json_array_get(json_object_get(j, "missing_shards"), 0)), 1);
    json_decref(j);
}

static void test_iso_time(void)
{
    char out[40];

    ordq_iso_time("2026-11-22 05:30:00.123", out, sizeof(out));
    TH_CHECK_STR(out, "2026-11-22T05:30:00.123Z");
    ordq_iso_time("garbage", out, sizeof(out));
    TH_CHECK_STR(out, "garbage");
    ordq_iso_time(NULL, out, sizeof(out));
    TH_CHECK_STR(out, "");
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"parsing and refusals", test_parse},
        {"shards asked per strategy", test_shards_per_strategy},
        {"statements", test_sql},
        {"answers from merged rows", test_answers},
        {"grab_time as ISO 8601", test_iso_time},
    };

    return th_main("ord_read", tests, TH_TABLE_LEN(tests), argc, argv);
}
