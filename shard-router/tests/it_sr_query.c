/* it_sr_query.c - integration tests of the cross-shard read path (sr_query.h)
 * against the stack's four shards: mariadb-s0 (grab_shard0, grab_shard2) and
 * mariadb-s1 (grab_shard1, grab_shard3). The runner sources stack.env
 * (MARIADB_SHARDS, MARIADB_USER, MARIADB_PASSWORD_FILE) and exports REPO_DIR.
 *
 * The test inserts its own rows into coupon_results on every shard (coupon
 * ids >= 800000, removed before and after) and checks each scatter against
 * the same computation done here over all rows read directly: newest-N
 * order and limit, the per-shard limit, parallelism (each shard sleeps
 * 0.3 s), a slow shard and a killed server reported as missing within the
 * timeout, and the sum mode. The kill test always starts mariadb-s1 again. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "db.h"
#include "log.h"
#include "sr_query.h"
#include "itkit.h"
#include "testhelp.h"

#define N_SHARDS 4
#define ADDR_BUF 256
#define ROWS_PER_SHARD 30
#define COUPON_BASE 800000
#define MARGIN_MS 400        /* allowed beyond a timeout */
#define SLEEP_MS 300         /* each shard's SLEEP in the parallel test */
#define RECOVER_MS 30000     /* bound on the wait for a restarted shard */

#define COLS "saga_id, grab_time, result_id"
#define WHERE "coupon_id >= 800000"
#define ORDER "ORDER BY grab_time DESC, result_id DESC"

static char password[256];
static char specs[N_SHARDS][ADDR_BUF], bufs[N_SHARDS][ADDR_BUF];
static db_config cfgs[N_SHARDS];
static int n_shards;

/* A row as the test computes it. */
typedef struct ref_row {
    int shard;
    long long result_id;
    char saga[40];
    char time[32];
    long long amount;
} ref_row;

static ref_row all_rows[N_SHARDS * ROWS_PER_SHARD];
static int n_all;

/* ---- helpers ------------------------------------------------------------------ */

static MYSQL *connect_shard(int s)
{
    cg_error err = {0, ""};
    MYSQL *conn = NULL;

    if (db_connect(&cfgs[s], &conn, &err) != CG_OK)
        TH_FAIL_AT("db_connect(shard %d): %s", s, err.msg);
    return conn;
}

static int exec_all(const char *sql)
{
    int ok = 1;

    for (int s = 0; s < n_shards; s++) {
        cg_error err = {0, ""};
        MYSQL *conn = connect_shard(s);

        if (conn == NULL || db_exec(conn, sql, NULL, &err) != CG_OK) {
            if (conn != NULL)
                TH_FAIL_AT("shard %d: %s: %s", s, sql, err.msg);
            ok = 0;
        }
        db_close(conn);
    }
    return ok;
}

static int on_ref_row(void *arg, unsigned int n, char **v)
{
    int shard = *(int *)arg;
    ref_row *r;

    if (n != 4 || n_all >= (int)TH_TABLE_LEN(all_rows))
        return CG_ERR_INVALID;
    r = &all_rows[n_all++];
    r->shard = shard;
    snprintf(r->saga, sizeof(r->saga), "%s", v[0]);
    snprintf(r->time, sizeof(r->time), "%s", v[1]);
    r->result_id = atoll(v[2]);
    r->amount = atoll(v[3]);
    return CG_OK;
}

/* Newest first; on equal times the lower shard, then the higher result_id:
 * the order the library promises. */
static int ref_cmp(const void *pa, const void *pb)
{
    const ref_row *a = pa, *b = pb;
    int c = strcmp(b->time, a->time);

    if (c != 0)
        return c;
    if (a->shard != b->shard)
        return a->shard - b->shard;
    return (b->result_id > a->result_id) - (b->result_id < a->result_id);
}

/* Reads every test row of every shard directly, sorted as expected. */
static int load_reference(void)
{
    n_all = 0;
    for (int s = 0; s < n_shards; s++) {
        cg_error err = {0, ""};
        MYSQL *conn = connect_shard(s);
        int rc;

        if (conn == NULL)
            return 0;
        rc = db_query_rows(conn,
                           "SELECT saga_id, grab_time, result_id, CAST(order_amount AS SIGNED) "
                           "FROM coupon_results WHERE " WHERE, on_ref_row, &s, NULL, &err);
        db_close(conn);
        if (rc != CG_OK) {
            TH_FAIL_AT("shard %d: %s", s, err.msg);
            return 0;
        }
    }
    qsort(all_rows, (size_t)n_all, sizeof(all_rows[0]), ref_cmp);
    return 1;
}

/* Compares a result with the newest `limit` reference rows of the shards in
 * mask; reports the first difference. */
static void check_rows(const sr_result *res, size_t limit, unsigned mask)
{
    size_t k = 0;

    TH_CHECK_INT(res->mode, SR_ROWS);
    for (int i = 0; i < n_all && k < limit; i++) {
        if ((mask >> all_rows[i].shard & 1) == 0)
            continue;
        if (k >= res->n_rows) {
            TH_FAIL_AT("result has %zu rows, expected more (row %zu: %s)", res->n_rows, k,
                       all_rows[i].saga);
            return;
        }
        if (strcmp(res->rows[k][0], all_rows[i].saga) != 0 ||
            strcmp(res->rows[k][1], all_rows[i].time) != 0) {
            TH_FAIL_AT("row %zu: got %s %s, expected %s %s (shard %d)", k, res->rows[k][0],
                       res->rows[k][1], all_rows[i].saga, all_rows[i].time, all_rows[i].shard);
            return;
        }
        k++;
    }
    TH_CHECK_INT(res->n_rows, k);
}

/* The shard a test saga id names: "srqSS" + 27 digits of the row. */
static int saga_shard(const char *saga)
{
    return (saga[3] - '0') * 10 + (saga[4] - '0');
}

static sr_pool *new_pool(void)
{
    cg_error err = {0, ""};
    sr_pool *pool = NULL;

    if (sr_pool_new(cfgs, n_shards, &pool, &err) != CG_OK)
        TH_FAIL_AT("sr_pool_new: %s", err.msg);
    return pool;
}

static int scatter(sr_pool *pool, const sr_request *req, sr_result *res)
{
    cg_error err = {0, ""};
    int rc = sr_scatter(pool, req, res, &err);

    if (rc != CG_OK)
        TH_FAIL_AT("sr_scatter: %s (%s)", err.msg, cg_status_name(rc));
    return rc;
}

static sr_request rows_request(const char *sql, size_t limit, int timeout_ms)
{
    sr_request req;

    memset(&req, 0, sizeof(req));
    req.mode = SR_ROWS;
    req.sql = sql;
    req.limit = limit;
    req.order_col = 1;
    req.timeout_ms = timeout_ms;
    return req;
}

/* Polls until every shard answers (a restarted or busy shard is back). */
static int wait_all_up(sr_pool *pool, int bound_ms)
{
    long long deadline = itk_now_ms() + bound_ms;
    sr_request req = rows_request("SELECT 1, 1", 1, 1000);
    sr_result res;
    int up = 0;

    while (!up && itk_now_ms() < deadline) {
        if (scatter(pool, &req, &res) != CG_OK)
            break;
        up = !res.partial;
        sr_result_free(&res);
        if (!up)
            usleep(100 * 1000);   /* a poll interval, not a sync: bounded by the deadline */
    }
    return up;
}

/* ---- fixture ---------------------------------------------------------------- */

static void test_fixture(void)
{
    char sql[512];

    TH_REQUIRE(exec_all("DELETE FROM coupon_results WHERE " WHERE));
    for (int s = 0; s < n_shards; s++) {
        cg_error err = {0, ""};
        MYSQL *conn = connect_shard(s);

        TH_REQUIRE(conn != NULL);
        for (int j = 0; j < ROWS_PER_SHARD; j++) {
            /* Row 0 of every shard shares one time (a tie across shards at
             * the top); rows 1 and 2 share a time within the shard; the rest
             * interleave across shards. */
            int sec = j == 0 ? 86399 : (j <= 2 ? 80000 + s : 1000 + ((j * 37 + s * 11) % 500) * 7);

            snprintf(sql, sizeof(sql),
                     "INSERT INTO coupon_results (saga_id, user_id, coupon_id, room_id, grab_time, "
                     "order_amount) VALUES ('srq%02d%027d', %d, %d, %d, "
                     "TIMESTAMPADD(MICROSECOND, %d, '2026-11-01 00:00:00') + INTERVAL %d SECOND, %d)",
                     s, j, 1000 + j, COUPON_BASE + s * 100 + j, 900000 + j % 3, (j * 131 % 1000) * 1000 * (j > 2), sec,
                     j + s * 100);
            if (db_exec(conn, sql, NULL, &err) != CG_OK) {
                TH_FAIL_AT("shard %d: %s", s, err.msg);
                break;
            }
        }
        db_close(conn);
    }
    TH_REQUIRE(load_reference());
    TH_CHECK_INT(n_all, n_shards * ROWS_PER_SHARD);
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_newest_n(void)
{
    static const size_t limits[] = {1, 4, 5, 17, 60, 1000};
    sr_pool *pool = new_pool();
    char sql[512];

    TH_REQUIRE(pool != NULL);
    for (size_t i = 0; i < TH_TABLE_LEN(limits); i++) {
        sr_request req;
        sr_result res;

        snprintf(sql, sizeof(sql), "SELECT " COLS " FROM coupon_results WHERE " WHERE " " ORDER
                 " LIMIT %zu", limits[i]);
        req = rows_request(sql, limits[i], 3000);
        if (scatter(pool, &req, &res) != CG_OK)
            continue;
        fprintf(stdout, "    limit %zu: %zu rows in %lld ms\n", limits[i], res.n_rows,
                res.elapsed_ms);
        TH_CHECK_INT(res.partial, 0);
        TH_CHECK_INT(res.n_missing, 0);
        TH_CHECK_INT(res.n_cols, 3);
        check_rows(&res, limits[i], 0xf);
        if (limits[i] == 4 && res.n_rows == 4)   /* the four-way tie: shard order */
            for (int k = 0; k < 4; k++)
                TH_CHECK(strncmp(res.rows[k][0], k == 0 ? "srq00" : k == 1 ? "srq01"
                                 : k == 2 ? "srq02" : "srq03", 5) == 0);
        sr_result_free(&res);
    }
    sr_pool_free(pool);
}

/* Each shard returns at most `limit` rows (its own LIMIT, and the library's
 * guard when the SQL forgets it), and the merge returns `limit` in all. */
static void test_limit_per_shard(void)
{
    sr_pool *pool = new_pool();
    sr_request req;
    sr_result res, res2;
    int per_shard[N_SHARDS] = {0};
    char sql[512];

    TH_REQUIRE(pool != NULL);
    snprintf(sql, sizeof(sql), "SELECT " COLS " FROM coupon_results WHERE " WHERE " " ORDER
             " LIMIT 7");
    req = rows_request(sql, 7, 3000);
    TH_REQUIRE(scatter(pool, &req, &res) == CG_OK);
    check_rows(&res, 7, 0xf);
    /* Without LIMIT in the SQL: the same answer. */
    req = rows_request("SELECT " COLS " FROM coupon_results WHERE " WHERE " " ORDER, 7, 3000);
    if (scatter(pool, &req, &res2) == CG_OK) {
        check_rows(&res2, 7, 0xf);
        sr_result_free(&res2);
    }
    for (size_t k = 0; k < res.n_rows; k++)
        per_shard[saga_shard(res.rows[k][0])]++;
    for (int s = 0; s < n_shards; s++)
        TH_CHECK(per_shard[s] <= 7);
    sr_result_free(&res);

    /* One shard asked (mask): only its rows, no shard missing. */
    req = rows_request(sql, 7, 3000);
    req.shards = 1u << 2;
    TH_REQUIRE(scatter(pool, &req, &res) == CG_OK);
    TH_CHECK_INT(res.partial, 0);
    check_rows(&res, 7, 1u << 2);
    sr_result_free(&res);

    /* Per-shard statements: each shard a different room filter. */
    {
        const char *per[N_SHARDS];
        char s_sql[N_SHARDS][512];

        for (int s = 0; s < n_shards; s++) {
            snprintf(s_sql[s], sizeof(s_sql[s]), "SELECT " COLS " FROM coupon_results WHERE "
                     WHERE " AND room_id = %d " ORDER " LIMIT 3", 900000 + s % 3);
            per[s] = s_sql[s];
        }
        req = rows_request(NULL, 3, 3000);
        req.sql_per_shard = per;
        TH_REQUIRE(scatter(pool, &req, &res) == CG_OK);
        TH_CHECK_INT(res.n_rows, 3);
        for (size_t k = 0; k < res.n_rows; k++) {
            int s = saga_shard(res.rows[k][0]), j = atoi(res.rows[k][0] + 5);

            TH_CHECK_INT(j % 3, s % 3);
        }
        sr_result_free(&res);
    }
    sr_pool_free(pool);
}

static int async_done_flag;
static sr_result async_res;
static int async_status;

static void on_async_done(int status, sr_result *res, const cg_error *err, void *arg)
{
    (void)arg;
    async_status = status;
    if (status != CG_OK)
        fprintf(stdout, "    async: %s\n", err->msg);
    async_res = *res;   /* keep it: copy and empty */
    memset(res, 0, sizeof(*res));
    async_done_flag = 1;
}

static int async_done(void *arg)
{
    (void)arg;
    return async_done_flag;
}

/* Every shard sleeps 0.3 s: in parallel the read takes about 0.3 s, not
 * 4 x 0.3 s. Blocking and async. */
static void test_parallel(void)
{
    static const char sql[] =
        "SELECT c.saga_id, c.grab_time, c.result_id FROM coupon_results c, "
        "(SELECT SLEEP(0.3) AS z) w WHERE c.coupon_id >= 800000 "
        "ORDER BY c.grab_time DESC, c.result_id DESC LIMIT 10";
    sr_pool *pool = new_pool();
    struct event_base *base = event_base_new();
    sr_request req = rows_request(sql, 10, 3000);
    sr_result res;
    cg_error err = {0, ""};
    long long t0, ms;

    TH_REQUIRE(pool != NULL && base != NULL);
    TH_REQUIRE(wait_all_up(pool, 5000));   /* connections open: time the queries only */
    t0 = itk_now_ms();
    TH_REQUIRE(scatter(pool, &req, &res) == CG_OK);
    ms = itk_now_ms() - t0;
    fprintf(stdout, "    blocking: 4 shards x SLEEP(0.3) in %lld ms\n", ms);
    TH_CHECK(ms >= SLEEP_MS - 10);
    TH_CHECK(ms < 2 * SLEEP_MS);   /* serial would be 4 x 300 */
    TH_CHECK_INT(res.partial, 0);
    check_rows(&res, 10, 0xf);
    for (int s = 0; s < n_shards; s++)
        TH_CHECK(res.shard_us[s] >= (SLEEP_MS - 10) * 1000LL);
    sr_result_free(&res);

    async_done_flag = 0;
    t0 = itk_now_ms();
    TH_REQUIRE(sr_scatter_start(pool, base, &req, on_async_done, NULL, NULL, &err) == CG_OK);
    TH_CHECK_INT(async_done_flag, 0);   /* never from inside the call */
    TH_CHECK(itk_run_until(base, async_done, NULL, 3000 + MARGIN_MS));
    ms = itk_now_ms() - t0;
    fprintf(stdout, "    async: 4 shards x SLEEP(0.3) in %lld ms\n", ms);
    TH_CHECK(ms < 2 * SLEEP_MS);
    TH_CHECK_INT(async_status, CG_OK);
    TH_CHECK_INT(async_res.partial, 0);
    check_rows(&async_res, 10, 0xf);
    sr_result_free(&async_res);

    /* A cancelled scatter never calls back, and its late answers are dropped. */
    {
        sr_handle *h = NULL;

        async_done_flag = 0;
        TH_REQUIRE(sr_scatter_start(pool, base, &req, on_async_done, NULL, &h, &err) == CG_OK);
        sr_scatter_cancel(h);
        itk_run_for(base, SLEEP_MS + 200);
        TH_CHECK_INT(async_done_flag, 0);
    }
    sr_pool_free(pool);
    event_base_free(base);
}

/* A slow shard is missing after the timeout; the others' rows come back. */
static void test_slow_shard(void)
{
    const char *per[N_SHARDS];
    char fast[512];
    sr_pool *pool = new_pool();
    sr_request req;
    sr_result res;

    TH_REQUIRE(pool != NULL);
    snprintf(fast, sizeof(fast), "SELECT " COLS " FROM coupon_results WHERE " WHERE " " ORDER
             " LIMIT 8");
    for (int s = 0; s < n_shards; s++)
        per[s] = fast;
    per[2] = "SELECT c.saga_id, c.grab_time, c.result_id FROM coupon_results c, "
             "(SELECT SLEEP(2) AS z) w WHERE c.coupon_id >= 800000 "
             "ORDER BY c.grab_time DESC, c.result_id DESC LIMIT 8";
    req = rows_request(NULL, 8, 500);
    req.sql_per_shard = per;
    TH_REQUIRE(scatter(pool, &req, &res) == CG_OK);
    fprintf(stdout, "    slow shard 2: answered in %lld ms, partial %d\n", res.elapsed_ms,
            res.partial);
    TH_CHECK(res.elapsed_ms < 500 + MARGIN_MS);
    TH_CHECK_INT(res.partial, 1);
    TH_CHECK_INT(res.n_missing, 1);
    TH_CHECK_INT(res.missing[0], 2);
    TH_CHECK_INT(res.shard_status[2], CG_ERR_TIMEOUT);
    check_rows(&res, 8, 0xf & ~(1u << 2));
    sr_result_free(&res);
    /* The worker is still in its SLEEP; once done, shard 2 answers again. */
    TH_CHECK(wait_all_up(pool, 5000));
    sr_pool_free(pool);
}

/* mariadb-s1 (shards 1 and 3) killed: partial, missing 1 and 3, the rows of
 * 0 and 2, within the timeout; after start-one the pool reconnects. */
static void test_killed_server(void)
{
    char sql[512];
    sr_pool *pool = new_pool();
    sr_request req, sum;
    sr_result res;
    long long expect_sum = 0;

    TH_REQUIRE(pool != NULL);
    TH_REQUIRE(wait_all_up(pool, 5000));   /* every worker holds an open connection */
    TH_REQUIRE(itk_script("stack", "kill mariadb-s1") == 0);
    snprintf(sql, sizeof(sql), "SELECT " COLS " FROM coupon_results WHERE " WHERE " " ORDER
             " LIMIT 12");
    req = rows_request(sql, 12, 2000);
    /* Twice: first on the old (now broken) connections, then inside the
     * reconnect backoff. */
    for (int round = 0; round < 2; round++) {
        if (scatter(pool, &req, &res) != CG_OK)
            break;
        fprintf(stdout, "    round %d: %lld ms, partial %d, missing %d: %s\n", round,
                res.elapsed_ms, res.partial, res.n_missing, res.error);
        TH_CHECK(res.elapsed_ms < 2000 + MARGIN_MS);
        TH_CHECK_INT(res.partial, 1);
        TH_CHECK_INT(res.n_missing, 2);
        TH_CHECK_INT(res.missing[0], 1);
        TH_CHECK_INT(res.missing[1], 3);
        TH_CHECK(res.shard_status[1] != CG_OK && res.shard_status[3] != CG_OK);
        check_rows(&res, 12, 0x5);
        sr_result_free(&res);
    }
    memset(&sum, 0, sizeof(sum));
    sum.mode = SR_SUM;
    sum.sql = "SELECT COUNT(*) FROM coupon_results WHERE " WHERE;
    sum.timeout_ms = 2000;
    if (scatter(pool, &sum, &res) == CG_OK) {
        for (int i = 0; i < n_all; i++)
            expect_sum += all_rows[i].shard % 2 == 0;
        TH_CHECK_INT(res.partial, 1);
        TH_CHECK_INT(res.n_missing, 2);
        TH_CHECK_INT(res.sum, expect_sum);
        sr_result_free(&res);
    }
    TH_CHECK_INT(itk_script("stack", "start-one mariadb-s1"), 0);
    TH_CHECK(wait_all_up(pool, RECOVER_MS));
    if (scatter(pool, &req, &res) == CG_OK) {
        TH_CHECK_INT(res.partial, 0);
        check_rows(&res, 12, 0xf);
        sr_result_free(&res);
    }
    sr_pool_free(pool);
}

static void test_sum(void)
{
    sr_pool *pool = new_pool();
    sr_request req;
    sr_result res;
    long long count = 0, amount = 0, room = 0;

    TH_REQUIRE(pool != NULL);
    for (int i = 0; i < n_all; i++) {
        count++;
        amount += all_rows[i].amount;
        room += atoi(all_rows[i].saga + 5) % 3 == 1;
    }
    memset(&req, 0, sizeof(req));
    req.mode = SR_SUM;
    req.timeout_ms = 3000;
    req.sql = "SELECT COUNT(*) FROM coupon_results WHERE " WHERE;
    TH_REQUIRE(scatter(pool, &req, &res) == CG_OK);
    TH_CHECK_INT(res.partial, 0);
    TH_CHECK_INT(res.sum, count);
    TH_CHECK_INT(res.n_rows, 0);
    sr_result_free(&res);
    req.sql = "SELECT CAST(SUM(order_amount) AS SIGNED) FROM coupon_results WHERE " WHERE;
    TH_REQUIRE(scatter(pool, &req, &res) == CG_OK);
    TH_CHECK_INT(res.sum, amount);
    sr_result_free(&res);
    req.sql = "SELECT COUNT(*) FROM coupon_results WHERE " WHERE " AND room_id = 900001";
    TH_REQUIRE(scatter(pool, &req, &res) == CG_OK);
    TH_CHECK_INT(res.sum, room);
    sr_result_free(&res);
    /* SUM over no rows is NULL: it counts as 0. */
    req.sql = "SELECT SUM(order_amount) FROM coupon_results WHERE coupon_id = 1 AND " WHERE;
    TH_REQUIRE(scatter(pool, &req, &res) == CG_OK);
    TH_CHECK_INT(res.partial, 0);
    TH_CHECK_INT(res.sum, 0);
    sr_result_free(&res);
    /* Bad SQL on every shard: all missing, the reason given. */
    req.sql = "SELECT nope FROM coupon_results";
    TH_REQUIRE(scatter(pool, &req, &res) == CG_OK);
    TH_CHECK_INT(res.n_missing, n_shards);
    TH_CHECK_INT(res.shard_status[0], CG_ERR_INVALID);
    TH_CHECK(strstr(res.error, "nope") != NULL);
    sr_result_free(&res);
    sr_pool_free(pool);
}

static void test_cleanup(void)
{
    TH_CHECK(exec_all("DELETE FROM coupon_results WHERE " WHERE));
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"fixture", test_fixture},
        {"newest_n", test_newest_n},
        {"limit_per_shard", test_limit_per_shard},
        {"parallel", test_parallel},
        {"slow_shard", test_slow_shard},
        {"killed_server", test_killed_server},
        {"sum", test_sum},
        {"cleanup", test_cleanup},
    };
    const char *level = itk_env("LOG_LEVEL", NULL), *shards = itk_env("MARIADB_SHARDS", NULL);
    const char *user = itk_env("MARIADB_USER", NULL), *pw_file = itk_env("MARIADB_PASSWORD_FILE", NULL);
    int lvl = LOG_LEVEL_INFO;
    cg_error err = {0, ""};

    log_set_program("it_sr_query");
    if (level != NULL && log_level_parse(level, &lvl) == CG_OK)
        log_set_level(lvl);
    if (shards == NULL || user == NULL || pw_file == NULL || itk_env("REPO_DIR", NULL) == NULL ||
        itk_read_secret(pw_file, password, sizeof(password)) != 0) {
        fprintf(stdout, "it_sr_query: needs the stack environment (MARIADB_SHARDS, MARIADB_USER, "
                "MARIADB_PASSWORD_FILE) and REPO_DIR\n0 passed, 1 failed\n");
        return 1;
    }
    for (const char *p = shards; *p != '\0' && n_shards < N_SHARDS;) {
        size_t len = strcspn(p, ",");

        if (len > 0 && len < ADDR_BUF) {
            memcpy(specs[n_shards], p, len);
            specs[n_shards][len] = '\0';
            db_config_defaults(&cfgs[n_shards]);
            if (db_parse_addr(specs[n_shards], &cfgs[n_shards], bufs[n_shards], ADDR_BUF, &err) !=
                CG_OK) {
                fprintf(stdout, "it_sr_query: %s\n0 passed, 1 failed\n", err.msg);
                return 1;
            }
            cfgs[n_shards].user = user;
            cfgs[n_shards].password = password;
            cfgs[n_shards].connect_timeout_ms = 1000;
            cfgs[n_shards].read_timeout_ms = 3000;
            n_shards++;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    if (n_shards != N_SHARDS) {
        fprintf(stdout, "it_sr_query: MARIADB_SHARDS lists %d shards, need %d\n"
                "0 passed, 1 failed\n", n_shards, N_SHARDS);
        return 1;
    }
    return th_main("it_sr_query", tests, TH_TABLE_LEN(tests), argc, argv);
}
