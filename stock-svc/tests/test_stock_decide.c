/* test_stock_decide.c - fixed cases for the reserve/release decisions and
 * the recorded-outcome codec (stock-svc/src/stock_decide.c). */
#include <stdio.h>
#include <string.h>

#include "msg.h"
#include "../src/stock_conf.h"
#include "../src/stock_decide.h"
#include "testhelp.h"

#define S(c) "0000000000000000000000000000000" c   /* a saga id ending in c */

static stock_outcome rec(const char *v)
{
    stock_outcome o;

    memset(&o, 0, sizeof(o));
    if (v != NULL && stock_outcome_parse(v, strlen(v), &o) != CG_OK)
        o.rec = -1;
    return o;
}

/* The recorded form of an answer, "-" for none. */
static const char *fmt(const stock_outcome *o, char *buf, size_t size)
{
    if (stock_outcome_format(o, buf, size) != CG_OK)
        snprintf(buf, size, "-");
    return buf;
}

#define CHECK_OUT(o, want, want_record, want_take)                         \
    do {                                                                   \
        char b_[STOCK_RECORD_MAX];                                         \
        TH_CHECK_STR(fmt(&(o).outcome, b_, sizeof(b_)), want);             \
        TH_CHECK_INT((o).record, want_record);                             \
        TH_CHECK_INT((o).take, want_take);                                 \
    } while (0)

static void test_outcome_codec(void)
{
    stock_outcome o;
    char buf[STOCK_RECORD_MAX];
    const char *result, *reason;
    static const char *const bad[] = {"", "r", "RR", "J", "J:", "J:Out", "J:a b", "X:x", "LL",
                                      "J:0123456789012345678901234567890123"};

    TH_CHECK_INT(stock_outcome_parse("R", 1, &o), CG_OK);
    TH_CHECK_INT(o.rec, STOCK_REC_RESERVED);
    TH_CHECK_INT(stock_outcome_parse("L", 1, &o), CG_OK);
    TH_CHECK_INT(o.rec, STOCK_REC_RELEASED);
    TH_CHECK_INT(stock_outcome_parse("J:out_of_stock", 14, &o), CG_OK);
    TH_CHECK_INT(o.rec, STOCK_REC_REJECTED);
    TH_CHECK_STR(o.reason, "out_of_stock");
    TH_CHECK_INT(stock_outcome_format(&o, buf, sizeof(buf)), CG_OK);
    TH_CHECK_STR(buf, "J:out_of_stock");
    /* Not NUL-terminated input: only len bytes count. */
    TH_CHECK_INT(stock_outcome_parse("J:duplicateXYZ", 11, &o), CG_OK);
    TH_CHECK_STR(o.reason, "duplicate");
    for (size_t i = 0; i < TH_TABLE_LEN(bad); i++)
        TH_CHECK_INT(stock_outcome_parse(bad[i], strlen(bad[i]), &o), CG_ERR_INVALID);
    o.rec = STOCK_REC_NONE;
    TH_CHECK_INT(stock_outcome_format(&o, buf, sizeof(buf)), CG_ERR_INVALID);
    o.rec = STOCK_REC_RESERVED;
    TH_CHECK_INT(stock_outcome_format(&o, buf, 1), CG_ERR_INVALID);   /* no room */

    o = rec("R");
    stock_outcome_reply(&o, &result, &reason);
    TH_CHECK_STR(result, "reserved");
    TH_CHECK_STR(reason, "");
    o = rec("L");
    stock_outcome_reply(&o, &result, &reason);
    TH_CHECK_STR(result, "rejected");
    TH_CHECK_STR(reason, "released");
    o = rec("J:duplicate");
    stock_outcome_reply(&o, &result, &reason);
    TH_CHECK_STR(result, "rejected");
    TH_CHECK_STR(reason, "duplicate");
}

static void test_reserve_stock_runs_out(void)
{
    stock_rsv_in in[4] = {
        {S("1"), 11, {0, ""}, 0}, {S("2"), 12, {0, ""}, 0},
        {S("3"), 13, {0, ""}, 0}, {S("4"), 14, {0, ""}, 0},
    };
    stock_rsv_out out[4];
    long long taken = -1;

    TH_REQUIRE(stock_decide_reserve(2, 1, in, 4, out, &taken) == CG_OK);
    TH_CHECK_INT(taken, 2);
    CHECK_OUT(out[0], "R", 1, 1);
    CHECK_OUT(out[1], "R", 1, 1);
    CHECK_OUT(out[2], "J:out_of_stock", 1, 0);
    CHECK_OUT(out[3], "J:out_of_stock", 1, 0);
}

static void test_reserve_duplicates(void)
{
    /* User 21 twice in the batch, user 22 already a holder; stock 2 goes to
     * 21 and 23, and 24 finds none left. */
    stock_rsv_in in[5] = {
        {S("1"), 21, {0, ""}, 0}, {S("2"), 21, {0, ""}, 0}, {S("3"), 22, {0, ""}, 1},
        {S("4"), 23, {0, ""}, 0}, {S("5"), 24, {0, ""}, 0},
    };
    stock_rsv_out out[5];
    long long taken = -1;

    TH_REQUIRE(stock_decide_reserve(2, 1, in, 5, out, &taken) == CG_OK);
    TH_CHECK_INT(taken, 2);
    CHECK_OUT(out[0], "R", 1, 1);
    CHECK_OUT(out[1], "J:duplicate", 1, 0);
    CHECK_OUT(out[2], "J:duplicate", 1, 0);
    CHECK_OUT(out[3], "R", 1, 1);
    CHECK_OUT(out[4], "J:out_of_stock", 1, 0);
}

static void test_reserve_holder_without_stock(void)
{
    /* Duplicate is decided before stock: a holder asking again when stock is 0. */
    stock_rsv_in in[2] = {{S("1"), 31, {0, ""}, 1}, {S("2"), 32, {0, ""}, 0}};
    stock_rsv_out out[2];
    long long taken = -1;

    TH_REQUIRE(stock_decide_reserve(0, 1, in, 2, out, &taken) == CG_OK);
    TH_CHECK_INT(taken, 0);
    CHECK_OUT(out[0], "J:duplicate", 1, 0);
    CHECK_OUT(out[1], "J:out_of_stock", 1, 0);
    /* A negative stock (never written by us) counts as none. */
    TH_REQUIRE(stock_decide_reserve(-5, 1, in + 1, 1, out, &taken) == CG_OK);
    TH_CHECK_INT(taken, 0);
    CHECK_OUT(out[0], "J:out_of_stock", 1, 0);
}

static void test_reserve_recorded_wins(void)
{
    /* Recorded outcomes are answered again whatever stock and holders say;
     * the user of a recorded R holds the coupon, which must not turn it into
     * a duplicate. */
    stock_rsv_in in[4] = {
        {S("1"), 41, {0, ""}, 1}, {S("2"), 42, {0, ""}, 0},
        {S("3"), 43, {0, ""}, 0}, {S("4"), 44, {0, ""}, 0},
    };
    stock_rsv_out out[4];
    long long taken = -1;

    in[0].recorded = rec("R");
    in[1].recorded = rec("J:out_of_stock");
    in[2].recorded = rec("L");
    TH_REQUIRE(stock_decide_reserve(10, 1, in, 4, out, &taken) == CG_OK);
    TH_CHECK_INT(taken, 1);
    CHECK_OUT(out[0], "R", 0, 0);
    CHECK_OUT(out[1], "J:out_of_stock", 0, 0);   /* stock came back: still rejected */
    CHECK_OUT(out[2], "L", 0, 0);                /* the release barrier */
    CHECK_OUT(out[3], "R", 1, 1);
    /* Also when the stock key is gone. */
    TH_REQUIRE(stock_decide_reserve(0, 0, in, 4, out, &taken) == CG_OK);
    TH_CHECK_INT(taken, 0);
    CHECK_OUT(out[0], "R", 0, 0);
    CHECK_OUT(out[3], "J:unknown_coupon", 0, 0);  /* not recorded */
}

static void test_reserve_same_saga_in_batch(void)
{
    /* A redelivered command batched with its first copy: one unit, one write,
     * the same answer twice; likewise for a rejected one. */
    stock_rsv_in in[5] = {
        {S("1"), 51, {0, ""}, 0}, {S("2"), 52, {0, ""}, 0}, {S("1"), 51, {0, ""}, 0},
        {S("3"), 53, {0, ""}, 0}, {S("3"), 53, {0, ""}, 0},
    };
    stock_rsv_out out[5];
    long long taken = -1;

    TH_REQUIRE(stock_decide_reserve(2, 1, in, 5, out, &taken) == CG_OK);
    TH_CHECK_INT(taken, 2);
    CHECK_OUT(out[0], "R", 1, 1);
    CHECK_OUT(out[1], "R", 1, 1);
    CHECK_OUT(out[2], "R", 0, 0);
    CHECK_OUT(out[3], "J:out_of_stock", 1, 0);
    CHECK_OUT(out[4], "J:out_of_stock", 0, 0);
}

static void test_reserve_unknown_coupon(void)
{
    stock_rsv_in in[1] = {{S("1"), 61, {0, ""}, 0}};
    stock_rsv_out out[1];
    long long taken = -1;

    TH_REQUIRE(stock_decide_reserve(0, 0, in, 1, out, &taken) == CG_OK);
    TH_CHECK_INT(taken, 0);
    CHECK_OUT(out[0], "J:unknown_coupon", 0, 0);
}

static void test_reserve_full_batch(void)
{
    static stock_rsv_in in[STOCK_DECIDE_MAX + 1];
    static stock_rsv_out out[STOCK_DECIDE_MAX + 1];
    static char ids[STOCK_DECIDE_MAX + 1][MSG_SAGA_ID_LEN + 1];
    long long taken = -1;
    int reserved = 0, dup = 0, oos = 0;

    /* 512 items, users 0..255 each twice (second copy a new saga), stock 200. */
    for (int i = 0; i <= STOCK_DECIDE_MAX; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%032x", i);
        in[i].saga_id = ids[i];
        in[i].user_id = 1000 + i % 256;
        memset(&in[i].recorded, 0, sizeof(in[i].recorded));
        in[i].holds = 0;
    }
    TH_CHECK_INT(stock_decide_reserve(200, 1, in, STOCK_DECIDE_MAX + 1, out, &taken),
                 CG_ERR_INVALID);
    TH_REQUIRE(stock_decide_reserve(200, 1, in, STOCK_DECIDE_MAX, out, &taken) == CG_OK);
    for (int i = 0; i < STOCK_DECIDE_MAX; i++) {
        reserved += out[i].outcome.rec == STOCK_REC_RESERVED;
        dup += strcmp(out[i].outcome.reason, "duplicate") == 0;
        oos += strcmp(out[i].outcome.reason, "out_of_stock") == 0;
    }
    TH_CHECK_INT(taken, 200);
    TH_CHECK_INT(reserved, 200);
    TH_CHECK_INT(dup, 200);        /* the second copies of the 200 takers */
    TH_CHECK_INT(oos, 112);        /* users 200..255, twice each */
}

static void test_release(void)
{
    stock_rel_in in[6] = {
        {S("1"), 71, {0, ""}}, {S("2"), 72, {0, ""}}, {S("3"), 73, {0, ""}},
        {S("4"), 74, {0, ""}}, {S("1"), 71, {0, ""}}, {S("4"), 74, {0, ""}},
    };
    stock_rel_out out[6];
    long long given = -1;

    in[0].recorded = rec("R");
    in[1].recorded = rec("L");
    in[2].recorded = rec("J:out_of_stock");
    in[4].recorded = rec("R");   /* the same snapshot: must not give back twice */
    TH_REQUIRE(stock_decide_release(in, 6, out, &given) == CG_OK);
    TH_CHECK_INT(given, 1);
    TH_CHECK(out[0].give_back == 1 && out[0].record == 1);
    TH_CHECK(out[1].give_back == 0 && out[1].record == 0);
    TH_CHECK(out[2].give_back == 0 && out[2].record == 0);
    TH_CHECK(out[3].give_back == 0 && out[3].record == 1);   /* the barrier */
    TH_CHECK(out[4].give_back == 0 && out[4].record == 0);
    TH_CHECK(out[5].give_back == 0 && out[5].record == 0);
    TH_CHECK_INT(stock_decide_release(in, STOCK_DECIDE_MAX + 1, out, &given), CG_ERR_INVALID);
}

static void test_conf_validate(void)
{
    stock_conf c;
    cg_error err;
    const char *argv[] = {"stock-svc"};

    memset(&c, 0, sizeof(c));
    TH_REQUIRE(cfg_load(&stock_conf_spec, &c, 1, (char **)argv, &err) == CG_OK);
    TH_CHECK_INT(c.max_watch_retries, 10);
    TH_CHECK_INT(c.wait_replicas, 0);
    TH_CHECK_INT(c.batch_max, MSG_MAX_BATCH);
    TH_CHECK_INT(stock_conf_validate(&c, &err), CG_OK);
    c.wait_replicas = 1;
    c.wait_timeout_ms = c.svc.redis_timeout_ms;
    TH_CHECK_INT(stock_conf_validate(&c, &err), CG_ERR_INVALID);
    TH_CHECK(strstr(err.msg, "wait_timeout_ms") != NULL);
    c.wait_timeout_ms = c.svc.redis_timeout_ms - 1;
    TH_CHECK_INT(stock_conf_validate(&c, &err), CG_OK);
    cfg_free(&stock_conf_spec, &c);
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"recorded outcome codec", test_outcome_codec},
        {"reserve: stock runs out", test_reserve_stock_runs_out},
        {"reserve: duplicates in batch and holders", test_reserve_duplicates},
        {"reserve: holder without stock", test_reserve_holder_without_stock},
        {"reserve: recorded outcome wins", test_reserve_recorded_wins},
        {"reserve: same saga twice in a batch", test_reserve_same_saga_in_batch},
        {"reserve: unknown coupon", test_reserve_unknown_coupon},
        {"reserve: full batch", test_reserve_full_batch},
        {"release: once, barrier, repeats", test_release},
        {"config: wait timeout below redis timeout", test_conf_validate},
    };

    return th_main("stock_decide", tests, TH_TABLE_LEN(tests), argc, argv);
}
