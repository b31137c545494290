/* it_ct_check.c - the checker against real Redis and real shards, on
 * states planted on purpose.
 *
 * A consistent coupon is written straight into Redis (stock, total, room,
 * holders, reservations, saga logs) and the shards (rows on their hash
 * shards, counted in order_counts by the shards' own triggers); the checker
 * must pass it. Then each test breaks it the way a bug would - an extra
 * row, a holder without a row, a negative stock, a row on the wrong shard,
 * a read model that no longer counts the rows - and the checker (and the
 * `consistency-test check` command, by exit status) must fail; and the
 * read-model check must keep passing while orders are written and cancelled
 * beside it. Everything planted is removed again.
 * Needs the stack's environment (stack.env, REPO_DIR) and the shard schema
 * applied; other coupons' sagas may run meanwhile (a check of given coupons
 * only counts their own active sagas). */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
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
static long long stray_coupon;   /* no stock, no rows: only a planted count */
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
    /* rows first: their delete trigger moves the counts, removed after */
    for (int i = 0; i < shards.n; i++) {
        sql(i, "DELETE FROM coupon_results WHERE coupon_id = %lld", coupon);
        sql(i, "DELETE FROM order_counts WHERE coupon_id IN (%lld, %lld)", coupon, stray_coupon);
    }
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

/* A full check (every coupon; busy, so that the rest of the stack's sagas
 * do not matter); the output lands in out_buf. */
static int check_full(void)
{
    int failed;

    rewind(out);
    memset(out_buf, 0, sizeof(out_buf));
    ct_report_init(&env.rep, out);
    failed = ct_env_check(&env, NULL, 0, NULL, 0, 0, NULL);
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
    TH_CHECK_INT(env.rep.passed, 8);
    /* the triggers counted the planted rows */
    if (strstr(out_buf, "PASS R1 read model: order_counts equals the rows per shard, room and coupon: "
                        "3 entries, 3 counted = 3 rows") == NULL)
        TH_FAIL_AT("expected R1 to pass over 3 rows; output:\n%s", out_buf);
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

/* One (room, coupon) count one too high, as a trigger firing twice for a
 * redelivered create would leave it. */
static void test_read_model_off_fails(void)
{
    int s1 = shard_of(1);

    TH_REQUIRE(plant_good());
    TH_REQUIRE(sql(s1, "UPDATE order_counts SET orders = orders + 1 WHERE room_id = %d AND coupon_id = %lld",
                   ROOM, coupon));
    TH_CHECK_INT(check(0), 1);   /* the read model, nothing else */
    EXPECT_FAIL("R1 read model");
    {
        char line[160];

        snprintf(line, sizeof(line), "shard %d, room %d, coupon %lld: order_counts says ", s1, ROOM, coupon);
        if (strstr(out_buf, line) == NULL)
            TH_FAIL_AT("expected an offender \"%s...\"; output:\n%s", line, out_buf);
    }
    TH_CHECK_INT(run_cli(), 1);
    TH_REQUIRE(sql(s1, "UPDATE order_counts SET orders = orders - 1 WHERE room_id = %d AND coupon_id = %lld",
                   ROOM, coupon));
    TH_CHECK_INT(check(1), 0);
    TH_CHECK_INT(run_cli(), 0);
}

/* A row deleted with the trigger bypassed: the DELETE fires it, so the
 * count is put back by hand, as a delete outside the trigger would leave it. */
static void test_read_model_trigger_bypassed_fails(void)
{
    int s2 = shard_of(2);

    TH_REQUIRE(plant_good());
    TH_REQUIRE(sql(s2, "DELETE FROM coupon_results WHERE saga_id = '%s'", saga(2)));
    TH_REQUIRE(sql(s2, "UPDATE order_counts SET orders = orders + 1 WHERE room_id = %d AND coupon_id = %lld",
                   ROOM, coupon));
    /* busy: a holder without a row is a reservation in flight, so only the
     * read model is wrong */
    TH_CHECK_INT(check(0), 1);
    EXPECT_FAIL("R1 read model");
    TH_CHECK_INT(run_cli(), 1);
    /* the count right again: the busy state is consistent */
    TH_REQUIRE(sql(s2, "UPDATE order_counts SET orders = orders - 1 WHERE room_id = %d AND coupon_id = %lld",
                   ROOM, coupon));
    TH_CHECK_INT(check(0), 0);
    /* the row back (its trigger counts it): the quiet state is whole again */
    TH_REQUIRE(insert_row(2, 2, s2));
    TH_CHECK_INT(check(1), 0);
}

/* Counts without rows: for a room of the checked coupon (seen by a check
 * of that coupon), and for a coupon without stock or rows at all (seen
 * only by a full check). */
static void test_read_model_count_without_rows_fails(void)
{
    TH_REQUIRE(plant_good());
    TH_REQUIRE(sql(0, "INSERT INTO order_counts (room_id, coupon_id, orders) VALUES (%d, %lld, 5)",
                   ROOM + 1, coupon));
    TH_CHECK_INT(check(0), 1);
    EXPECT_FAIL("R1 read model");
    TH_CHECK_INT(run_cli(), 1);
    /* a 0, as the delete trigger leaves it behind, is right */
    TH_REQUIRE(sql(0, "UPDATE order_counts SET orders = 0 WHERE room_id = %d AND coupon_id = %lld",
                   ROOM + 1, coupon));
    TH_CHECK_INT(check(1), 0);

    TH_REQUIRE(sql(1, "INSERT INTO order_counts (room_id, coupon_id, orders) VALUES (%d, %lld, 4)", ROOM,
                   stray_coupon));
    TH_CHECK_INT(check(1), 0);   /* not one of the checked coupons */
    check_full();
    EXPECT_FAIL("R1 read model");
    {
        char line[160];

        snprintf(line, sizeof(line), "shard 1, room %d, coupon %lld (no stock loaded): order_counts says 4, "
                 "0 rows", ROOM, stray_coupon);
        if (strstr(out_buf, line) == NULL)
            TH_FAIL_AT("expected an offender \"%s\"; output:\n%s", line, out_buf);
    }
    TH_REQUIRE(sql(1, "DELETE FROM order_counts WHERE coupon_id = %lld", stray_coupon));
    check_full();
    /* whether the rest of the stack passes the other checks is not this
     * test's business; the read model must */
    if (strstr(out_buf, "PASS R1 read model") == NULL)
        TH_FAIL_AT("expected R1 to pass a full check again; output:\n%s", out_buf);
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define CHURN_USERS 5        /* with the 3 planted rows, within the total of 10 */
#define CHURN_MS 3000

/* The child: for ms milliseconds, orders of users 101.. of the coupon are
 * written and cancelled (insert, then delete; the triggers count both) on
 * their shards, over its own connections. Exits 0 when every write worked. */
static void churn(long long ms)
{
    ct_shards own;
    cg_error err = {0};
    long long end = now_ms() + ms;
    int ok;

    ok = ct_shards_open(&conf, &own, &err) == CG_OK;
    while (ok && now_ms() < end) {
        for (int k = 0; k < CHURN_USERS && ok; k++) {
            char q[512];
            long long user = 101 + k;

            snprintf(q, sizeof(q), "INSERT INTO coupon_results (saga_id, user_id, coupon_id, room_id, "
                     "grab_status, grab_time) VALUES ('c8%06x%024x', %lld, %lld, %d, 1, NOW(3))",
                     (unsigned)getpid() & 0xffffff, k, user, coupon, ROOM);
            ok = db_exec(own.conn[shard_of(user)], q, NULL, &err) == CG_OK;
        }
        for (int k = 0; k < CHURN_USERS && ok; k++) {
            char q[256];
            long long user = 101 + k;

            snprintf(q, sizeof(q), "DELETE FROM coupon_results WHERE coupon_id = %lld AND user_id = %lld",
                     coupon, user);
            ok = db_exec(own.conn[shard_of(user)], q, NULL, &err) == CG_OK;
        }
    }
    if (!ok)
        fprintf(stdout, "    churn: %s\n", err.msg);
    ct_shards_close(&own);
    _exit(ok ? 0 : 1);
}

/* A correct system under writes: orders committed and cancelled on the
 * coupon's shards while it is checked over and over (busy). However the
 * commits fall between the reads, R1 must pass every time, because each
 * shard's rows and counts are read in one transaction. */
static void test_read_model_holds_under_writes(void)
{
    int checks = 0, failed_r1 = 0, wstatus = 0;
    long long deadline;
    pid_t child;

    TH_REQUIRE(plant_good());
    fflush(stdout);
    child = fork();
    TH_REQUIRE(child >= 0);
    if (child == 0)
        churn(CHURN_MS);
    deadline = now_ms() + CHURN_MS + 10000;
    while (waitpid(child, &wstatus, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(child, SIGKILL);
            waitpid(child, &wstatus, 0);
            TH_FAIL_AT("the writer did not stop within its bound");
            break;
        }
        check(0);
        checks++;
        if (strstr(out_buf, "PASS R1 read model") == NULL) {
            if (failed_r1++ == 0)
                fprintf(stdout, "    R1 failed under writes:\n%s", out_buf);
        }
    }
    TH_CHECK(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
    fprintf(stdout, "    %d busy checks while orders were written and cancelled, R1 failed in %d\n", checks,
            failed_r1);
    TH_CHECK(checks >= 10);
    TH_CHECK_INT(failed_r1, 0);
    /* the writer's rows are all cancelled: the quiet state is the planted one */
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
    /* the read model is part of it too */
    free(b);
    b = NULL;
    TH_CHECK(strstr(a, " count ") != NULL);
    if (sql(shard_of(1), "UPDATE order_counts SET orders = orders + 1 WHERE room_id = %d AND coupon_id = %lld",
            ROOM, coupon) &&
        ct_fingerprint(&env, coupon, ids, 2, &b, &err) == CG_OK)
        TH_CHECK_INT(ct_fingerprint_diff(&env.rep, c, b, 4), 1);
    else
        TH_FAIL_AT("changing the count or fingerprinting failed: %s", err.msg);
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
        {"a read model count off by one fails", test_read_model_off_fails},
        {"a row deleted past its trigger fails", test_read_model_trigger_bypassed_fails},
        {"a count without rows fails", test_read_model_count_without_rows_fails},
        {"the read model holds while orders are written", test_read_model_holds_under_writes},
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
    stray_coupon = coupon + 1000000;
    rc = th_main("it_ct_check", tests, TH_TABLE_LEN(tests), argc, argv);
    unplant();
    ct_shards_close(&shards);
    ct_env_close(&env);
    cfg_free(&ct_conf_spec, &conf);
    fclose(out);
    return rc;
}
