/* it_ct_check.c - the checker against real Redis and real shards, on
 * states planted on purpose.
 *
 * A consistent coupon is written straight into Redis (stock, total, room,
 * holders, reservations, saga logs) and the shards (rows on their hash
 * shards); the checker must pass it. Then each test breaks it the way a bug
 * would - an extra row, a holder without a row, a negative stock, a row on
 * the wrong shard - and the checker (and the `consistency-test check`
 * command, by exit status) must fail. Everything planted is removed again.
 * Needs the stack's environment (stack.env, REPO_DIR) and the shard schema
 * applied; other coupons' sagas may run meanwhile (a check of given coupons
 * only counts their own active sagas). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/ct_check.h"
#include "../src/ct_conf.h"
#include "../src/ct_fp.h"
#include "../src/ct_quiet.h"
#include "../src/ct_redis.h"
#include "../src/ct_run.h"
#include "../src/ct_shards.h"
#include "db.h"
#include "keys.h"
#include "log.h"
#include "testhelp.h"

#define ROOM 6
#define N_GOOD 3

static ct_conf conf;
static ct_env env;
static ct_shards shards;
static long long coupon;
static char out_buf[1 << 16];
static FILE *out;

static const char *saga(int i)
{
    static char ids[16][33];

    snprintf(ids[i], sizeof(ids[i]), "c7%06x%024x", (unsigned)getpid() & 0xffffff, 0xb000 + i);
    return ids[i];
}

/* Runs a Redis command that must succeed. */
static int rcmd(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int rcmd(const char *fmt, ...)
{
    cg_error err = {0};
    redisContext *rc = ct_env_redis(&env, &err);
    redisReply *r;
    va_list ap;
    int ok;

    if (rc == NULL) {
        fprintf(stdout, "    redis: %s\n", err.msg);
        return 0;
    }
    va_start(ap, fmt);
    r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    ok = r != NULL && r->type != REDIS_REPLY_ERROR;
    if (!ok)
        fprintf(stdout, "    redis %s: %s\n", fmt, r != NULL ? r->str : rc->errstr);
    if (r != NULL)
        freeReplyObject(r);
    return ok;
}

static int sql(int shard, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sql(int shard, const char *fmt, ...)
{
    char q[1024];
    cg_error err = {0};
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(q, sizeof(q), fmt, ap);
    va_end(ap);
    if (db_exec(shards.conn[shard], q, NULL, &err) != CG_OK) {
        fprintf(stdout, "    shard %d: %s\n", shard, err.msg);
        return 0;
    }
    return 1;
}

static int shard_of(long long user)
{
    return sr_shard_of(&env.map, user, ROOM, 0);
}

static int insert_row(int saga_no, long long user, int shard)
{
    return sql(shard, "INSERT INTO coupon_results (saga_id, user_id, coupon_id, room_id, grab_status, "
               "grab_time) VALUES ('%s', %lld, %lld, %d, 1, NOW(3))", saga(saga_no), user, coupon, ROOM);
}

static int saga_log(int saga_no, const char *state, long long user)
{
    return rcmd("HSET saga:%s state %s user_id %lld coupon_id %lld room_id %d", saga(saga_no), state, user,
                coupon, ROOM) &&
           rcmd("EXPIRE saga:%s 3600", saga(saga_no));
}

static void unplant(void)
{
    rcmd("DEL stock:{%lld} stock:{%lld}:total stock:{%lld}:room stock:{%lld}:holders stock:{%lld}:sagas", coupon,
         coupon, coupon, coupon, coupon);
    for (int i = 0; i < 16; i++)
        rcmd("DEL saga:%s", saga(i));
    rcmd("DEL sagas:active:it-ct-%d", (int)getpid());
    for (int i = 0; i < shards.n; i++)
        sql(i, "DELETE FROM coupon_results WHERE coupon_id = %lld", coupon);
}

/* Coupon: total 10, stock 7, users 1-3 granted (sagas 1-3), saga 4 rejected. */
static int plant_good(void)
{
    int ok = 1;

    unplant();
    ok &= rcmd("SET stock:{%lld} 7", coupon) && rcmd("SET stock:{%lld}:total 10", coupon) &&
          rcmd("SET stock:{%lld}:room %d", coupon, ROOM);
    for (int u = 1; u <= N_GOOD; u++) {
        ok &= rcmd("SADD stock:{%lld}:holders %d", coupon, u);
        ok &= rcmd("HSET stock:{%lld}:sagas %s R", coupon, saga(u));
        ok &= saga_log(u, "COMPLETED", u);
        ok &= insert_row(u, u, shard_of(u));
    }
    ok &= rcmd("HSET stock:{%lld}:sagas %s J:out_of_stock", coupon, saga(4));
    ok &= saga_log(4, "COMPENSATED", 4);
    return ok;
}

/* Checks the planted coupon; the output lands in out_buf. */
static int check(int quiet)
{
    int failed;

    rewind(out);
    memset(out_buf, 0, sizeof(out_buf));
    ct_report_init(&env.rep, out);
    failed = ct_env_check(&env, &coupon, 1, NULL, 0, quiet, NULL);
    fflush(out);
    return failed;
}

/* `consistency-test check --coupon C`: its exit status. */
static int run_cli(void)
{
    char cmd[1024];
    int rc;

    snprintf(cmd, sizeof(cmd), "\"%s/build/bin/consistency-test\" check --coupon %lld >/dev/null 2>&1",
             conf.repo_dir, coupon);
    rc = system(cmd);
    return rc == -1 || !WIFEXITED(rc) ? -1 : WEXITSTATUS(rc);
}

#define EXPECT_FAIL(prefix)                                                              \
    do {                                                                                 \
        if (strstr(out_buf, "FAIL " prefix) == NULL)                                     \
            TH_FAIL_AT("expected a FAIL %s line; output:\n%s", prefix, out_buf);          \
    } while (0)

static void test_good_state_passes(void)
{
    TH_REQUIRE(plant_good());
    TH_CHECK_INT(check(1), 0);
    if (env.rep.failed != 0)
        fprintf(stdout, "%s", out_buf);
    TH_CHECK_INT(env.rep.passed, 7);
    TH_CHECK_INT(run_cli(), 0);
}

static void test_extra_row_fails(void)
{
    TH_REQUIRE(plant_good());
    TH_REQUIRE(saga_log(6, "COMPLETED", 4));
    TH_REQUIRE(insert_row(6, 4, shard_of(4)));   /* granted with no stock behind it */
    TH_CHECK(check(1) > 0);
    EXPECT_FAIL("I2 quiet");
    EXPECT_FAIL("I3 one per user");
    TH_CHECK_INT(run_cli(), 1);
}

static void test_oversell_fails(void)
{
    TH_REQUIRE(plant_good());
    TH_REQUIRE(rcmd("SET stock:{%lld}:total 2", coupon) && rcmd("SET stock:{%lld} 0", coupon));
    TH_CHECK(check(0) > 0);
    EXPECT_FAIL("I1 no oversell");
}

static void test_holder_without_row_fails(void)
{
    TH_REQUIRE(plant_good());
    /* Reserved (stock taken, holder, R) but the order never came: orphan. */
    TH_REQUIRE(rcmd("DECR stock:{%lld}", coupon) && rcmd("SADD stock:{%lld}:holders 9", coupon) &&
               rcmd("HSET stock:{%lld}:sagas %s R", coupon, saga(7)) && saga_log(7, "COMPENSATED", 9));
    TH_CHECK(check(1) > 0);
    EXPECT_FAIL("I2 quiet");
    EXPECT_FAIL("I5 every saga finished");
    TH_CHECK_INT(run_cli(), 1);
    /* Busy, it is a reservation in flight. */
    TH_CHECK_INT(check(0), 0);
}

static void test_negative_stock_fails(void)
{
    TH_REQUIRE(plant_good());
    TH_REQUIRE(rcmd("SET stock:{%lld} -1", coupon));
    TH_CHECK(check(0) > 0);
    EXPECT_FAIL("I7 stock never negative");
    EXPECT_FAIL("I2 conservation");
    TH_CHECK_INT(run_cli(), 1);
}

static void test_wrong_shard_fails(void)
{
    int s1 = shard_of(1);

    TH_REQUIRE(plant_good());
    TH_REQUIRE(sql(s1, "DELETE FROM coupon_results WHERE saga_id = '%s'", saga(1)));
    TH_REQUIRE(insert_row(1, 1, (s1 + 1) % shards.n));
    TH_CHECK(check(0) > 0);
    EXPECT_FAIL("I7 placement");
}

static void test_unfinished_saga_fails(void)
{
    ct_quiet_status st;
    cg_error err = {0};
    const char *ids[2];

    TH_REQUIRE(plant_good());
    TH_REQUIRE(saga_log(2, "RESERVED", 2));
    TH_CHECK(check(1) > 0);
    EXPECT_FAIL("I5 every saga finished");
    /* The quiet wait sees it too, and gives up at its bound. */
    ids[0] = saga(1);
    ids[1] = saga(2);
    TH_CHECK_INT(ct_wait_quiet(&env, ids, 2, 1500, &st, NULL, NULL, &err), CG_ERR_TIMEOUT);
    TH_CHECK_INT(st.not_finished, 1);
    /* Finished, the saga no longer keeps the wait busy (whether the rest of
     * the stack is at rest is not this test's business). */
    TH_REQUIRE(saga_log(2, "COMPLETED", 2));
    if (ct_wait_quiet(&env, ids, 2, 1500, &st, NULL, NULL, &err) != CG_OK)
        fprintf(stdout, "    (the stack is not at rest otherwise: %s)\n", err.msg);
    TH_CHECK_INT(st.not_finished, 0);
}

static void test_active_saga_of_coupon_fails(void)
{
    TH_REQUIRE(plant_good());
    /* Saga 3 still listed as active by some instance. */
    TH_REQUIRE(rcmd("ZADD sagas:active:it-ct-%d 1 %s", (int)getpid(), saga(3)));
    TH_CHECK(check(1) > 0);
    EXPECT_FAIL("I5 every saga finished");
    TH_REQUIRE(rcmd("DEL sagas:active:it-ct-%d", (int)getpid()));
    TH_CHECK_INT(check(1), 0);
}

static void test_fingerprint(void)
{
    const char *ids[] = {saga(1), saga(4)};
    char *a = NULL, *b = NULL, *c = NULL;
    cg_error err = {0};

    TH_REQUIRE(plant_good());
    TH_REQUIRE(ct_fingerprint(&env, coupon, ids, 2, &a, &err) == CG_OK);
    TH_REQUIRE(ct_fingerprint(&env, coupon, ids, 2, &b, &err) == CG_OK);
    TH_CHECK_STR(a, b);
    TH_CHECK(strstr(a, saga(1)) != NULL);
    TH_REQUIRE(sql(shard_of(1), "UPDATE coupon_results SET use_status = 1 WHERE saga_id = '%s'", saga(1)));
    TH_REQUIRE(ct_fingerprint(&env, coupon, ids, 2, &c, &err) == CG_OK);
    TH_CHECK(strcmp(a, c) != 0);
    rewind(out);
    TH_CHECK_INT(ct_fingerprint_diff(&env.rep, a, c, 4), 1);
    free(a);
    free(b);
    free(c);
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"a consistent state passes", test_good_state_passes},
        {"an extra row fails", test_extra_row_fails},
        {"more rows than stock fails", test_oversell_fails},
        {"a holder without a row fails", test_holder_without_row_fails},
        {"a negative stock fails", test_negative_stock_fails},
        {"a row on the wrong shard fails", test_wrong_shard_fails},
        {"an unfinished saga fails", test_unfinished_saga_fails},
        {"an active saga of the coupon fails", test_active_saga_of_coupon_fails},
        {"fingerprints see a change", test_fingerprint},
    };
    char *cargv[] = {argv[0], NULL};
    cg_error err = {0};
    int rc;

    log_set_level(LOG_LEVEL_WARN);
    out = fmemopen(out_buf, sizeof(out_buf), "w");
    if (out == NULL || cfg_load(&ct_conf_spec, &conf, 1, cargv, &err) != CG_OK ||
        ct_env_init(&env, &conf, out, &err) != CG_OK || ct_shards_open(&conf, &shards, &err) != CG_OK) {
        fprintf(stdout, "it_ct_check: %s (source the stack's stack.env)\n0 passed, 1 failed\n", err.msg);
        return 1;
    }
    coupon = 900000000LL + (long long)(getpid() % 1000000);
    rc = th_main("it_ct_check", tests, TH_TABLE_LEN(tests), argc, argv);
    unplant();
    ct_shards_close(&shards);
    ct_env_close(&env);
    cfg_free(&ct_conf_spec, &conf);
    fclose(out);
    return rc;
}
