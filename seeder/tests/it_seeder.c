/* it_seeder.c - integration tests of `scripts/stack migrate` and the seeder
 * binary against the local stack (the runner sources stack.env and exports
 * REPO_DIR). The seeder runs as a separate process, as `make run` runs it,
 * with small sizes (2,000 users, 50 coupons); the test checks what landed in
 * the main database and in Redis (master found through Sentinel).
 *
 * The tests run in order and share state. The test owns user ids 1-2,000,
 * rooms 1-100 and coupons 1-50 while it runs: it deletes those rows and
 * Redis keys first, and leaves them seeded with fresh stock (stock = total,
 * no holders), which is exactly what a later `seeder` run would produce. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "db.h"
#include "itkit.h"
#include "keys.h"
#include "log.h"
#include "rds_sync.h"
#include "sr_map.h"
#include "testhelp.h"
#include "../src/seed_data.h"
#include "../src/seed_history.h"

#define N_USERS 2000
#define N_COUPONS 50
#define N_ROOMS 100
#define HOT_ROOMS 5
#define SALE_TAKEN 3              /* stock "sold" between two runs */
#define SEEDER_LIMIT_S 120        /* bound on one seeder run */
#define MIGRATE_BOUND_MS 10000    /* two migrations on a healthy stack */
#define OUT_MAX 16384
#define HISTORY_ROWS 20000
#define MAX_SHARDS 8
#define RANGE_ROOM_MAP "1:0,26:1,51:2,76:3"

static const char *main_spec, *shards, *user, *sentinels, *master_name;
static char password[256], seeder_bin[PATH_MAX], seeder_out[OUT_MAX];
static MYSQL *db;

/* Checksums of the first run, compared after a re-seed from scratch. */
static long long sum_users, sum_coupons, sum_details;

/* ---- helpers ------------------------------------------------------------------ */

static MYSQL *connect_spec(const char *spec)
{
    db_config cfg;
    char buf[256];
    cg_error err = {0, ""};
    MYSQL *conn = NULL;

    db_config_defaults(&cfg);
    if (db_parse_addr(spec, &cfg, buf, sizeof(buf), &err) != CG_OK) {
        TH_FAIL_AT("%s", err.msg);
        return NULL;
    }
    cfg.user = user;
    cfg.password = password;
    cfg.read_timeout_ms = 10000;
    if (db_connect(&cfg, &conn, &err) != CG_OK)
        TH_FAIL_AT("%s", err.msg);
    return conn;
}

static long long q64_on(MYSQL *conn, const char *fmt, ...) CG_PRINTF(2, 3);
static long long q64_on(MYSQL *conn, const char *fmt, ...)
{
    char sql[1024];
    cg_error err = {0, ""};
    int64_t v = -1;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    if (conn == NULL || db_query_int64(conn, sql, &v, &err) != CG_OK) {
        TH_FAIL_AT("%s: %s", sql, conn == NULL ? "no connection" : err.msg);
        return -1;
    }
    return (long long)v;
}

#define q64(...) q64_on(db, __VA_ARGS__)

static void sql_exec(const char *sql)
{
    cg_error err = {0, ""};

    if (db == NULL || db_exec(db, sql, NULL, &err) != CG_OK)
        TH_FAIL_AT("%s: %s", sql, db == NULL ? "no connection" : err.msg);
}

/* A blocking connection to the master the sentinels name (one round, ROLE
 * checked); a failure is recorded. */
static redisContext *redis_master(void)
{
    rds_sync_opts o = {sentinels, master_name, 2000, 0, NULL, LOG_LEVEL_DEBUG};
    redisContext *m = NULL;
    cg_error err;

    if (rds_sync_master(&o, &m, NULL, 0, NULL, &err) != CG_OK)
        TH_FAIL_AT("%s", err.msg);
    return m;
}

/* Runs a command whose reply is an integer, or a bulk string holding one;
 * -1 for nil, -2 on failure (recorded). */
static long long rint_cmd(redisContext *c, const char *fmt, ...)
{
    redisReply *r;
    long long v = -2;
    va_list ap;

    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r == NULL) {
        TH_FAIL_AT("redis: %s: %s", fmt, c->errstr);
        return -2;
    }
    if (r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r->type == REDIS_REPLY_NIL)
        v = -1;
    else if (r->type == REDIS_REPLY_STRING)
        v = strtoll(r->str, NULL, 10);
    else
        TH_FAIL_AT("redis: %s: unexpected reply type %d (%s)", fmt, r->type,
                   r->type == REDIS_REPLY_ERROR ? r->str : "");
    freeReplyObject(r);
    return v;
}

/* Runs the seeder with env (VAR=value ..., may be "") and args; its output
 * goes to seeder_out and, indented, to stdout. Returns its exit status. */
static int run_seeder(const char *env, const char *args)
{
    char path[] = "/tmp/it_seeder.XXXXXX", cmd[PATH_MAX + 1024];
    FILE *f;
    size_t n = 0;
    int fd, rc;

    seeder_out[0] = '\0';
    fd = mkstemp(path);
    if (fd < 0) {
        TH_FAIL_AT("mkstemp failed");
        return -1;
    }
    close(fd);
    snprintf(cmd, sizeof(cmd), "env %s timeout %d \"%s\" %s >%s 2>&1", env, SEEDER_LIMIT_S,
             seeder_bin, args, path);
    rc = system(cmd);
    rc = rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    f = fopen(path, "r");
    if (f != NULL) {
        n = fread(seeder_out, 1, sizeof(seeder_out) - 1, f);
        fclose(f);
    }
    seeder_out[n] = '\0';
    unlink(path);
    fprintf(stdout, "    $ seeder %s -> exit %d\n", args, rc);
    for (char *line = seeder_out, *end; *line != '\0'; line = end + (*end != '\0')) {
        end = line + strcspn(line, "\n");
        fprintf(stdout, "    | %.*s\n", (int)(end - line), line);
    }
    return rc;
}

static void wipe_db_rows(void)
{
    char sql[256];

    snprintf(sql, sizeof(sql), "DELETE FROM stock_logs WHERE coupon_id <= %d", N_COUPONS);
    sql_exec(sql);
    snprintf(sql, sizeof(sql), "DELETE FROM coupon_details WHERE coupon_id <= %d", N_COUPONS);
    sql_exec(sql);
    snprintf(sql, sizeof(sql), "DELETE FROM coupons WHERE coupon_id <= %d", N_COUPONS);
    sql_exec(sql);
    snprintf(sql, sizeof(sql), "DELETE FROM live_rooms WHERE room_id <= %d", N_ROOMS);
    sql_exec(sql);
    snprintf(sql, sizeof(sql), "DELETE FROM users WHERE user_id <= %d", N_USERS);
    sql_exec(sql);
}

static void wipe_redis_keys(redisContext *r)
{
    char k[5][KEY_MAX];

    for (long long c = 1; c <= N_COUPONS; c++) {
        snprintf(k[0], KEY_MAX, KEY_STOCK_FMT, c);
        snprintf(k[1], KEY_MAX, KEY_STOCK_TOTAL_FMT, c);
        snprintf(k[2], KEY_MAX, KEY_STOCK_ROOM_FMT, c);
        snprintf(k[3], KEY_MAX, KEY_STOCK_HOLDERS_FMT, c);
        snprintf(k[4], KEY_MAX, KEY_STOCK_SAGAS_FMT, c);
        TH_CHECK(rint_cmd(r, "DEL %s %s %s %s %s", k[0], k[1], k[2], k[3], k[4]) >= 0);
        TH_CHECK(rint_cmd(r, "SREM %s %lld", KEY_COUPONS, c) >= 0);
    }
}

/* Every seeded coupon's Redis keys against the database; taken[c] is the
 * stock expected to be missing from coupon c (NULL: none). */
static void check_redis_stock(redisContext *r, const int *taken)
{
    char k[KEY_MAX];
    long long wrong = 0;

    for (long long c = 1; c <= N_COUPONS; c++) {
        long long total = q64("SELECT total_stock FROM coupons WHERE coupon_id = %lld", c);
        long long room = q64("SELECT room_id FROM coupons WHERE coupon_id = %lld", c);
        long long stock, rtotal, rroom, member;

        snprintf(k, sizeof(k), KEY_STOCK_FMT, c);
        stock = rint_cmd(r, "GET %s", k);
        snprintf(k, sizeof(k), KEY_STOCK_TOTAL_FMT, c);
        rtotal = rint_cmd(r, "GET %s", k);
        snprintf(k, sizeof(k), KEY_STOCK_ROOM_FMT, c);
        rroom = rint_cmd(r, "GET %s", k);
        member = rint_cmd(r, "SISMEMBER %s %lld", KEY_COUPONS, c);
        if (stock != total - (taken ? taken[c] : 0) || rtotal != total || rroom != room ||
            member != 1) {
            if (wrong++ < 5)
                TH_FAIL_AT("coupon %lld: stock %lld total %lld room %lld member %lld; database: "
                           "total %lld room %lld, %d taken", c, stock, rtotal, rroom, member,
                           total, room, taken ? taken[c] : 0);
        }
    }
    TH_CHECK_INT(wrong, 0);
}

/* ---- 1. migrate -------------------------------------------------------------------- */

static void test_migrate(void)
{
    long long t0 = itk_now_ms();
    int n = 0;

    TH_CHECK_INT(itk_script("stack", "migrate"), 0);
    TH_CHECK_INT(itk_script("stack", "migrate"), 0);   /* idempotent */
    fprintf(stdout, "    two migrations in %lld ms\n", itk_now_ms() - t0);
    TH_CHECK(itk_now_ms() - t0 < MIGRATE_BOUND_MS);
    TH_CHECK_INT(q64("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = "
                     "DATABASE() AND table_name IN ('users', 'live_rooms', 'coupons', "
                     "'coupon_details', 'stock_logs')"), 5);
    for (const char *p = shards; *p != '\0'; n++) {
        char spec[256];
        size_t len = strcspn(p, ",");
        MYSQL *s;

        snprintf(spec, sizeof(spec), "%.*s", (int)len, p);
        s = connect_spec(spec);
        TH_CHECK_INT(q64_on(s, "SELECT COUNT(*) FROM information_schema.tables WHERE "
                              "table_schema = DATABASE() AND table_name IN ('coupon_results', "
                              "'saga_barriers')"), 2);
        TH_CHECK_INT(q64_on(s, "SELECT COUNT(*) FROM information_schema.statistics WHERE "
                              "table_schema = DATABASE() AND table_name = 'coupon_results' AND "
                              "index_name = 'uk_saga' AND non_unique = 0"), 1);
        db_close(s);
        p += len + (p[len] == ',');
    }
    TH_CHECK_INT(n, 4);
}

/* ---- 2. first run ------------------------------------------------------------------- */

static void test_first_run(void)
{
    redisContext *r = redis_master();
    char args[128];

    TH_REQUIRE(r != NULL && db != NULL);
    wipe_db_rows();
    wipe_redis_keys(r);
    snprintf(args, sizeof(args), "--users %d --coupons %d", N_USERS, N_COUPONS);
    TH_CHECK_INT(run_seeder("", args), 0);
    /* progress: a line per table */
    TH_CHECK(strstr(seeder_out, "users              2000 rows") != NULL);
    TH_CHECK(strstr(seeder_out, "2000 new, 0 kept") != NULL);
    TH_CHECK(strstr(seeder_out, "live_rooms") != NULL);
    TH_CHECK(strstr(seeder_out, "coupon_details") != NULL);
    TH_CHECK(strstr(seeder_out, "50 loaded, 0 reset, 0 kept") != NULL);
    TH_CHECK(strstr(seeder_out, "stock_logs") != NULL);

    TH_CHECK_INT(q64("SELECT COUNT(*) FROM users WHERE user_id <= %d", N_USERS), N_USERS);
    /* 2,000 is a multiple of 20: the split is exact */
    TH_CHECK_INT(q64("SELECT COUNT(*) FROM users WHERE user_id <= %d AND user_level = 0", N_USERS),
                 N_USERS * 70 / 100);
    TH_CHECK_INT(q64("SELECT COUNT(*) FROM users WHERE user_id <= %d AND user_level = 1", N_USERS),
                 N_USERS * 25 / 100);
    TH_CHECK_INT(q64("SELECT COUNT(*) FROM users WHERE user_id <= %d AND user_level = 2", N_USERS),
                 N_USERS * 5 / 100);

    TH_CHECK_INT(q64("SELECT COUNT(*) FROM live_rooms WHERE room_id <= %d", N_ROOMS), N_ROOMS);
    TH_CHECK_INT(q64("SELECT COUNT(*) FROM live_rooms WHERE room_id <= %d AND is_hot = 1",
                     N_ROOMS), HOT_ROOMS);
    TH_CHECK_INT(q64("SELECT COUNT(*) FROM live_rooms WHERE room_id <= %d AND is_hot = 1",
                     HOT_ROOMS), HOT_ROOMS);

    TH_CHECK_INT(q64("SELECT COUNT(*) FROM coupons WHERE coupon_id <= %d", N_COUPONS), N_COUPONS);
    TH_CHECK_INT(q64("SELECT COUNT(*) FROM coupons WHERE coupon_id <= %d AND "
                     "room_id <> (coupon_id - 1) DIV 5 + 1", N_COUPONS), 0);
    TH_CHECK_INT(q64("SELECT COUNT(*) FROM coupons WHERE coupon_id <= %d AND room_id <= %d",
                     N_COUPONS, HOT_ROOMS), HOT_ROOMS * 5);
    TH_CHECK_INT(q64("SELECT COUNT(*) FROM coupons WHERE coupon_id <= %d AND room_id <= %d AND "
                     "total_stock NOT BETWEEN 5000 AND 20000", N_COUPONS, HOT_ROOMS), 0);
    TH_CHECK_INT(q64("SELECT COUNT(*) FROM coupons WHERE coupon_id <= %d AND room_id > %d AND "
                     "total_stock NOT BETWEEN 500 AND 5000", N_COUPONS, HOT_ROOMS), 0);
    TH_CHECK_INT(q64("SELECT COUNT(*) FROM coupon_details WHERE coupon_id <= %d", N_COUPONS),
                 N_COUPONS);

    /* one 'load' row per coupon, saying what was loaded */
    TH_CHECK_INT(q64("SELECT COUNT(*) FROM stock_logs l JOIN coupons c USING (coupon_id) WHERE "
                     "l.coupon_id <= %d AND l.change_type = 'load' AND l.change_amount = "
                     "c.total_stock AND l.stock_after = c.total_stock", N_COUPONS), N_COUPONS);
    TH_CHECK_INT(q64("SELECT COUNT(*) FROM stock_logs WHERE coupon_id <= %d", N_COUPONS), N_COUPONS);

    check_redis_stock(r, NULL);

    sum_users = q64("SELECT SUM(CRC32(CONCAT_WS(',', user_id, username, user_level))) FROM users "
                    "WHERE user_id <= %d", N_USERS);
    sum_coupons = q64("SELECT SUM(CRC32(CONCAT_WS(',', coupon_id, room_id, coupon_name, "
                      "coupon_type, discount_amount, min_order, total_stock, start_time, "
                      "end_time, status))) FROM coupons WHERE coupon_id <= %d", N_COUPONS);
    sum_details = q64("SELECT SUM(CRC32(CONCAT_WS(',', coupon_id, description, usage_rules, "
                      "image_url))) FROM coupon_details WHERE coupon_id <= %d", N_COUPONS);
    redisFree(r);
}

/* ---- 3. a re-run during a sale ----------------------------------------------------- */

static int taken_from_1[N_COUPONS + 1] = {[1] = SALE_TAKEN};

static void test_rerun_keeps_sale(void)
{
    redisContext *r = redis_master();
    long long users, rooms, coupons, details, logs;
    char args[128], k[KEY_MAX];

    TH_REQUIRE(r != NULL && db != NULL);
    /* a sale under way on coupon 1: stock taken, a holder, a saga */
    snprintf(k, sizeof(k), KEY_STOCK_FMT, 1LL);
    TH_CHECK(rint_cmd(r, "DECRBY %s %d", k, SALE_TAKEN) >= 0);
    snprintf(k, sizeof(k), KEY_STOCK_HOLDERS_FMT, 1LL);
    TH_CHECK_INT(rint_cmd(r, "SADD %s 777", k), 1);
    snprintf(k, sizeof(k), KEY_STOCK_SAGAS_FMT, 1LL);
    TH_CHECK_INT(rint_cmd(r, "HSET %s it-seeder-saga R", k), 1);
    users = q64("SELECT COUNT(*) FROM users");
    rooms = q64("SELECT COUNT(*) FROM live_rooms");
    coupons = q64("SELECT COUNT(*) FROM coupons");
    details = q64("SELECT COUNT(*) FROM coupon_details");
    logs = q64("SELECT COUNT(*) FROM stock_logs");

    snprintf(args, sizeof(args), "--users %d --coupons %d", N_USERS, N_COUPONS);
    TH_CHECK_INT(run_seeder("", args), 0);
    TH_CHECK(strstr(seeder_out, "0 new, 2000 kept") != NULL);
    TH_CHECK(strstr(seeder_out, "0 loaded, 0 reset, 50 kept") != NULL);
    TH_CHECK_INT(q64("SELECT COUNT(*) FROM users"), users);
    TH_CHECK_INT(q64("SELECT COUNT(*) FROM live_rooms"), rooms);
    TH_CHECK_INT(q64("SELECT COUNT(*) FROM coupons"), coupons);
    TH_CHECK_INT(q64("SELECT COUNT(*) FROM coupon_details"), details);
    TH_CHECK_INT(q64("SELECT COUNT(*) FROM stock_logs"), logs);   /* nothing loaded, nothing logged */
    check_redis_stock(r, taken_from_1);
    snprintf(k, sizeof(k), KEY_STOCK_HOLDERS_FMT, 1LL);
    TH_CHECK_INT(rint_cmd(r, "SCARD %s", k), 1);
    snprintf(k, sizeof(k), KEY_STOCK_SAGAS_FMT, 1LL);
    TH_CHECK_INT(rint_cmd(r, "HLEN %s", k), 1);
    redisFree(r);
}

/* ---- 4. the same data from the same seed -------------------------------------------- */

static void test_deterministic(void)
{
    redisContext *r = redis_master();
    char args[128];

    TH_REQUIRE(r != NULL && db != NULL);
    TH_REQUIRE(sum_users > 0 && sum_coupons > 0 && sum_details > 0);
    wipe_db_rows();   /* the database from scratch; Redis keeps the sale */
    snprintf(args, sizeof(args), "--users %d --coupons %d", N_USERS, N_COUPONS);
    TH_CHECK_INT(run_seeder("", args), 0);
    TH_CHECK_INT(q64("SELECT SUM(CRC32(CONCAT_WS(',', user_id, username, user_level))) FROM users "
                     "WHERE user_id <= %d", N_USERS), sum_users);
    TH_CHECK_INT(q64("SELECT SUM(CRC32(CONCAT_WS(',', coupon_id, room_id, coupon_name, "
                     "coupon_type, discount_amount, min_order, total_stock, start_time, "
                     "end_time, status))) FROM coupons WHERE coupon_id <= %d", N_COUPONS),
                 sum_coupons);
    TH_CHECK_INT(q64("SELECT SUM(CRC32(CONCAT_WS(',', coupon_id, description, usage_rules, "
                     "image_url))) FROM coupon_details WHERE coupon_id <= %d", N_COUPONS),
                 sum_details);
    check_redis_stock(r, taken_from_1);
    redisFree(r);
}

/* ---- 5. --reset-stock ------------------------------------------------------------------ */

static void test_reset_stock(void)
{
    redisContext *r = redis_master();
    char args[128], k[KEY_MAX];

    TH_REQUIRE(r != NULL && db != NULL);
    snprintf(args, sizeof(args), "--users %d --coupons %d --reset-stock", N_USERS, N_COUPONS);
    TH_CHECK_INT(run_seeder("", args), 0);
    TH_CHECK(strstr(seeder_out, "0 loaded, 50 reset, 0 kept") != NULL);
    check_redis_stock(r, NULL);
    snprintf(k, sizeof(k), KEY_STOCK_HOLDERS_FMT, 1LL);
    TH_CHECK_INT(rint_cmd(r, "EXISTS %s", k), 0);
    snprintf(k, sizeof(k), KEY_STOCK_SAGAS_FMT, 1LL);
    TH_CHECK_INT(rint_cmd(r, "EXISTS %s", k), 0);
    TH_CHECK_INT(q64("SELECT COUNT(*) FROM stock_logs WHERE coupon_id <= %d AND "
                     "note LIKE 'seeder --reset-stock%%'", N_COUPONS), N_COUPONS);
    TH_CHECK_INT(q64("SELECT change_amount FROM stock_logs WHERE coupon_id = 1 AND "
                     "note LIKE 'seeder --reset-stock%%'"), SALE_TAKEN);
    TH_CHECK_INT(q64("SELECT COUNT(*) FROM stock_logs WHERE coupon_id BETWEEN 2 AND %d AND "
                     "note LIKE 'seeder --reset-stock%%' AND change_amount = 0", N_COUPONS),
                 N_COUPONS - 1);
    redisFree(r);
}

/* ---- 6. failures ------------------------------------------------------------------------ */

static void test_failures(void)
{
    char env[256];

    TH_CHECK_INT(run_seeder("", "--users 10 --coupons 50 --rooms 3"), 2);
    TH_CHECK(strstr(seeder_out, "'rooms'") != NULL);
    TH_CHECK_INT(run_seeder("", "--users 10 --no-such-flag 1"), 2);
    TH_CHECK_INT(run_seeder("SEED_SENTINELS=127.0.0.1", "--users 10 --coupons 5"), 2);
    TH_CHECK(strstr(seeder_out, "not ip:port") != NULL);
    snprintf(env, sizeof(env), "SEED_MAIN_DB=127.0.0.1:%d/grab_main", itk_closed_port());
    TH_CHECK_INT(run_seeder(env, "--users 10 --coupons 5"), 1);
    TH_CHECK(strstr(seeder_out, "connect") != NULL);
    snprintf(env, sizeof(env), "SEED_SENTINEL_MASTER=it-seeder-no-such-master");
    TH_CHECK_INT(run_seeder(env, "--users 10 --coupons 5"), 1);
    TH_CHECK(strstr(seeder_out, "does not know master") != NULL);
}

/* ---- history (--history) ------------------------------------------------------ */

static MYSQL *shard_db[MAX_SHARDS];
static int n_shards;

/* Rows of the history (saga ids with its prefix) on shard i. */
static long long history_on(int i)
{
    return q64_on(shard_db[i], "SELECT COUNT(*) FROM coupon_results WHERE saga_id LIKE '%s%%'",
                  SEED_HISTORY_PREFIX);
}

static long long history_total(void)
{
    long long t = 0;

    for (int i = 0; i < n_shards; i++)
        t += history_on(i);
    return t;
}

static void history_delete(void)
{
    char sql[256];
    cg_error err = {0, ""};

    snprintf(sql, sizeof(sql), "DELETE FROM coupon_results WHERE saga_id LIKE '%s%%'",
             SEED_HISTORY_PREFIX);
    for (int i = 0; i < n_shards; i++) {
        if (shard_db[i] == NULL || db_exec(shard_db[i], sql, NULL, &err) != CG_OK)
            TH_FAIL_AT("shard %d: %s", i, shard_db[i] == NULL ? "no connection" : err.msg);
    }
}

/* `shard-router verify` of the same build under the strategy; its exit status. */
static int run_verify(const char *strategy, const char *map)
{
    char bin[PATH_MAX], cmd[2 * PATH_MAX];
    int rc;

    snprintf(bin, sizeof(bin), "%.*s/shard-router", (int)(strrchr(seeder_bin, '/') - seeder_bin),
             seeder_bin);
    snprintf(cmd, sizeof(cmd), "env SR_SHARDS='%s' SR_DB_USER='%s' SR_DB_PASSWORD_FILE='%s' "
             "SR_SHARD_STRATEGY='%s' SR_SHARD_MAP='%s' timeout %d \"%s\" verify",
             shards, user, getenv("MARIADB_PASSWORD_FILE"), strategy, map, SEEDER_LIMIT_S, bin);
    rc = system(cmd);
    return rc == -1 ? -1 : WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* The rows per shard the seeder must have placed, recomputed. */
static void history_expected(enum sr_strategy strategy, const char *spec, long long *out)
{
    seed_history_plan p = {SEED_DEFAULT_SEED, HISTORY_ROWS, N_USERS, N_COUPONS, HOT_ROOMS, 30,
                           seed_history_day_start((int64_t)time(NULL)), 2000};
    seed_history_gen g;
    seed_history_row r;
    sr_map map;
    cg_error err = {0, ""};

    memset(out, 0, sizeof(*out) * MAX_SHARDS);
    if (seed_history_init(&g, &p, &err) != CG_OK ||
        sr_map_build(&map, strategy, n_shards, spec, &err) != CG_OK) {
        TH_FAIL_AT("%s", err.msg);
        return;
    }
    for (long long i = 0; i < p.rows; i++) {
        seed_history_make(&g, i, &r);
        out[sr_shard_of(&map, r.user_id, r.room_id, r.grab_ms / 1000)]++;
    }
}

static void check_history_placed(enum sr_strategy strategy, const char *spec)
{
    long long want[MAX_SHARDS];

    history_expected(strategy, spec, want);
    for (int i = 0; i < n_shards; i++) {
        long long got = history_on(i);

        if (got != want[i])
            TH_FAIL_AT("shard %d holds %lld history rows, %lld expected", i, got, want[i]);
        /* one row per (user, coupon) at most */
        TH_CHECK_INT(q64_on(shard_db[i], "SELECT COUNT(*) FROM (SELECT 1 FROM coupon_results "
                            "GROUP BY user_id, coupon_id HAVING COUNT(*) > 1) d"), 0);
    }
}

static void test_history_hash(void)
{
    char args[128];

    TH_REQUIRE(n_shards > 1);
    history_delete();
    snprintf(args, sizeof(args), "--users %d --coupons %d --history %d", N_USERS, N_COUPONS,
             HISTORY_ROWS);
    TH_CHECK_INT(run_seeder("SEED_SHARD_STRATEGY=hash", args), 0);
    TH_CHECK(strstr(seeder_out, "20000 new, 0 kept") != NULL);
    TH_CHECK(strstr(seeder_out, "rows/s") != NULL);
    TH_CHECK_INT(history_total(), HISTORY_ROWS);
    check_history_placed(SR_HASH, NULL);
    TH_CHECK_INT(run_verify("hash", ""), 0);
    /* a re-run: the same saga ids, nothing new */
    TH_CHECK_INT(run_seeder("SEED_SHARD_STRATEGY=hash", args), 0);
    TH_CHECK(strstr(seeder_out, "0 new, 20000 kept") != NULL);
    TH_CHECK_INT(history_total(), HISTORY_ROWS);
    check_history_placed(SR_HASH, NULL);
    /* the next test starts from no history */
    history_delete();
    TH_CHECK_INT(history_total(), 0);
}

static void test_history_range_room(void)
{
    char args[128];
    long long most = 0;

    TH_REQUIRE(n_shards == 4);
    history_delete();
    snprintf(args, sizeof(args), "--users %d --coupons %d --history %d", N_USERS, N_COUPONS,
             HISTORY_ROWS);
    TH_CHECK_INT(run_seeder("SEED_SHARD_STRATEGY=range-room SEED_SHARD_MAP=" RANGE_ROOM_MAP,
                            args), 0);
    TH_CHECK_INT(history_total(), HISTORY_ROWS);
    check_history_placed(SR_RANGE_ROOM, RANGE_ROOM_MAP);
    for (int i = 1; i < n_shards; i++)
        most = history_on(i) > most ? history_on(i) : most;
    /* the hot rooms 1-5 (half the rows) are all in shard 0's range */
    TH_CHECK(history_on(0) > most);
    TH_CHECK(history_on(0) >= HISTORY_ROWS / 2);
    /* other tests verify the shards under hash: leave no history behind */
    history_delete();
    TH_CHECK_INT(history_total(), 0);
}

static void test_history_bad(void)
{
    TH_CHECK_INT(run_seeder("", "--users 10 --coupons 5 --history 51"), 1);
    TH_CHECK(strstr(seeder_out, "'history'") != NULL);
    TH_CHECK_INT(history_total(), 0);
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"migrate applies the schema everywhere, twice", test_migrate},
        {"first run: counts, split, rooms, stock ranges, Redis", test_first_run},
        {"re-run during a sale duplicates nothing, keeps stock", test_rerun_keeps_sale},
        {"same seed, same data", test_deterministic},
        {"--reset-stock resets stock, holders and sagas", test_reset_stock},
        {"bad settings exit 2, unreachable servers exit 1", test_failures},
        {"--history under hash: placed, verified, re-run adds nothing", test_history_hash},
        {"--history under range-room: the hot rooms' shard holds the most", test_history_range_room},
        {"--history beyond the distinct pairs is refused", test_history_bad},
    };
    const char *pw_file;
    char self[PATH_MAX - 64], *slash;
    ssize_t n;
    int rc;

    log_set_program("it_seeder");
    main_spec = itk_env("MARIADB_MAIN", NULL);
    shards = itk_env("MARIADB_SHARDS", NULL);
    user = itk_env("MARIADB_USER", NULL);
    pw_file = itk_env("MARIADB_PASSWORD_FILE", NULL);
    sentinels = itk_env("SENTINEL_ADDRS", NULL);
    master_name = itk_env("SENTINEL_MASTER_NAME", NULL);
    if (main_spec == NULL || shards == NULL || user == NULL || pw_file == NULL ||
        sentinels == NULL || master_name == NULL || itk_env("REPO_DIR", NULL) == NULL) {
        fprintf(stdout, "it_seeder: needs the stack environment (stack.env: MARIADB_MAIN, "
                "MARIADB_SHARDS, MARIADB_USER, MARIADB_PASSWORD_FILE, SENTINEL_ADDRS, "
                "SENTINEL_MASTER_NAME) and REPO_DIR\n0 passed, 1 failed\n");
        return 1;
    }
    if (itk_read_secret(pw_file, password, sizeof(password)) != 0) {
        fprintf(stdout, "0 passed, 1 failed\n");
        return 1;
    }
    /* The seeder of the same build: <build>/tests/it_seeder -> <build>/bin/seeder. */
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    slash = strrchr(self, '/');
    if (slash != NULL)
        *slash = '\0';
    snprintf(seeder_bin, sizeof(seeder_bin), "%s/../bin/seeder", self);
    if (access(seeder_bin, X_OK) != 0) {
        fprintf(stdout, "it_seeder: %s not built\n0 passed, 1 failed\n", seeder_bin);
        return 1;
    }
    /* The seeder's settings from the stack, as `make run` maps them. */
    setenv("SEED_MAIN_DB", main_spec, 1);
    setenv("SEED_DB_USER", user, 1);
    setenv("SEED_DB_PASSWORD_FILE", pw_file, 1);
    setenv("SEED_SENTINELS", sentinels, 1);
    setenv("SEED_SENTINEL_MASTER", master_name, 1);
    db = connect_spec(main_spec);
    if (db == NULL) {
        fprintf(stdout, "it_seeder: cannot connect to %s\n0 passed, 1 failed\n", main_spec);
        return 1;
    }
    setenv("SEED_SHARDS", shards, 1);
    for (const char *p = shards; p != NULL && *p != '\0' && n_shards < MAX_SHARDS;) {
        const char *end = strchr(p, ',');
        char spec[256];

        snprintf(spec, sizeof(spec), "%.*s", (int)(end != NULL ? end - p : (long)strlen(p)), p);
        shard_db[n_shards++] = connect_spec(spec);
        p = end != NULL ? end + 1 : NULL;
    }
    rc = th_main("it_seeder", tests, TH_TABLE_LEN(tests), argc, argv);
    for (int i = 0; i < n_shards; i++)
        db_close(shard_db[i]);
    db_close(db);
    return rc;
}
