/* it_sr_cli.c - integration tests of the operator CLI (shard-router status,
 * counts, verify) against the stack's four shards: mariadb-s0 (grab_shard0,
 * grab_shard2) and mariadb-s1 (grab_shard1, grab_shard3). The runner sources
 * stack.env and exports REPO_DIR; this test maps MARIADB_SHARDS, MARIADB_USER
 * and MARIADB_PASSWORD_FILE onto SR_* and runs the built binary (the one
 * beside this test's build directory, or SR_CLI_BIN) through popen.
 *
 * Its rows use coupon ids 700000..799999 (removed before and after): rows
 * placed as the hash strategy says on all four shards (verify exits 0,
 * status and counts show the shards' counts), one misplaced row (verify
 * exits 1 and names it), and mariadb-s1 killed (status reports shards 1 and
 * 3 down within a bound, verify exits 3); the kill test always starts
 * mariadb-s1 again. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db.h"
#include "sr_map.h"
#include "itkit.h"
#include "testhelp.h"

#define N_SHARDS 4
#define ADDR_BUF 256
#define ROWS_PER_SHARD 25
#define COUPON 700001
#define OWN_ROWS "coupon_id BETWEEN 700000 AND 799999"
#define TIMEOUT_MS 1500      /* the CLI's --timeout-ms in the kill test */
#define BOUND_MS 6000        /* a whole command with a shard down */
#define RECOVER_MS 30000     /* bound on the wait for a restarted shard */
#define OUT_MAX 65536

static char password[256];
static char specs[N_SHARDS][ADDR_BUF], bufs[N_SHARDS][ADDR_BUF];
static db_config cfgs[N_SHARDS];
static char cli_bin[PATH_MAX];
static sr_map map;
static int n_saga;

/* ---- helpers ------------------------------------------------------------------ */

static MYSQL *connect_shard(int s)
{
    cg_error err = {0, ""};
    MYSQL *conn = NULL;

    if (db_connect(&cfgs[s], &conn, &err) != CG_OK)
        TH_FAIL_AT("db_connect(shard %d): %s", s, err.msg);
    return conn;
}

static int exec_on(int s, const char *sql)
{
    cg_error err = {0, ""};
    MYSQL *conn = connect_shard(s);
    int ok = conn != NULL && db_exec(conn, sql, NULL, &err) == CG_OK;

    if (conn != NULL && !ok)
        TH_FAIL_AT("shard %d: %s: %s", s, sql, err.msg);
    db_close(conn);
    return ok;
}

static int cleanup(void)
{
    int ok = 1;

    for (int s = 0; s < N_SHARDS; s++)
        ok &= exec_on(s, "DELETE FROM coupon_results WHERE " OWN_ROWS);
    return ok;
}

static long long count_on(int s)
{
    cg_error err = {0, ""};
    MYSQL *conn = connect_shard(s);
    int64_t n = -1;

    if (conn != NULL && db_query_int64(conn, "SELECT COUNT(*) FROM coupon_results", &n, &err) != CG_OK)
        TH_FAIL_AT("shard %d: count: %s", s, err.msg);
    db_close(conn);
    return n;
}

/* Inserts one test row on shard s; the saga id is returned in saga. */
static int insert_row(int s, long long user, long long room, const char *time, char *saga)
{
    char sql[512];

    snprintf(saga, 33, "srcli%02d%025d", s, ++n_saga);
    snprintf(sql, sizeof(sql),
             "INSERT INTO coupon_results (saga_id, user_id, coupon_id, room_id, grab_time) "
             "VALUES ('%s', %lld, %d, %lld, '%s')", saga, user, COUPON, room, time);
    return exec_on(s, sql);
}

/* Runs the CLI with args, its stdout and stderr into out; returns its exit
 * status (-1 when it did not exit normally). */
static int run_cli(char *out, size_t size, const char *args)
{
    char cmd[PATH_MAX + 512];
    size_t len = 0, n;
    FILE *p;
    int st;

    snprintf(cmd, sizeof(cmd), "\"%s\" %s 2>&1", cli_bin, args);
    out[0] = '\0';
    p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    while (len + 1 < size && (n = fread(out + len, 1, size - 1 - len, p)) > 0)
        len += n;
    out[len] = '\0';
    st = pclose(p);
    fprintf(stdout, "    $ shard-router %s\n%s", args, out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The line of `status` for shard s ("S address state latency rows"). */
static int status_line(const char *out, int s, char *state, long long *rows)
{
    const char *line = out;

    while (line != NULL && *line != '\0') {
        int idx;
        char addr[ADDR_BUF], rows_s[32], lat[32];

        if (sscanf(line, "%d %255s %15s %31s %31s", &idx, addr, state, lat, rows_s) == 5 &&
            idx == s) {
            *rows = strcmp(rows_s, "-") == 0 ? -1 : atoll(rows_s);
            return 1;
        }
        line = strchr(line, '\n');
        line = line != NULL ? line + 1 : NULL;
    }
    return 0;
}

static int shard_up(int s)
{
    MYSQL *conn = NULL;
    cg_error err = {0, ""};
    int ok = db_connect(&cfgs[s], &conn, &err) == CG_OK;

    db_close(conn);
    return ok;
}

/* Starts mariadb-s1 again and waits (bounded) until shard 1 answers. */
static void restore_s1(void)
{
    long long deadline = itk_now_ms() + RECOVER_MS;
    int up = 0;

    TH_CHECK_INT(itk_script("stack", "start-one mariadb-s1"), 0);
    while (!(up = shard_up(1)) && itk_now_ms() < deadline)
        usleep(100 * 1000);
    TH_CHECK(up);
}

/* ---- tests -------------------------------------------------------------------- */

/* ROWS_PER_SHARD rows on every shard, each where the hash strategy puts it. */
static void test_verify_in_place(void)
{
    static char out[OUT_MAX];
    int placed[N_SHARDS] = {0}, total = 0;
    char saga[40], time[32], expect[64];
    long long user = 1000;

    TH_REQUIRE(cleanup());
    while (total < N_SHARDS * ROWS_PER_SHARD && user < 1000000) {
        long long room = 40 + user % 7;
        int s = sr_shard_of(&map, ++user, room, 0);

        if (placed[s] >= ROWS_PER_SHARD)
            continue;
        snprintf(time, sizeof(time), "2024-05-01 10:%02d:%02d.000", placed[s] / 60 % 60,
                 placed[s] % 60);
        TH_REQUIRE(insert_row(s, user, room, time, saga));
        placed[s]++;
        total++;
    }
    TH_REQUIRE(total == N_SHARDS * ROWS_PER_SHARD);

    TH_CHECK_INT(run_cli(out, sizeof(out), "verify"), 0);
    TH_CHECK(strstr(out, " 0 misplaced") != NULL);
    TH_CHECK_INT(run_cli(out, sizeof(out), "verify --batch 7"), 0);   /* several batches */

    TH_CHECK_INT(run_cli(out, sizeof(out), "status"), 0);
    for (int s = 0; s < N_SHARDS; s++) {
        char state[16] = "";
        long long rows = -2, want = count_on(s);

        TH_CHECK(want >= ROWS_PER_SHARD);
        TH_CHECK(status_line(out, s, state, &rows));
        TH_CHECK_STR(state, "up");
        TH_CHECK_INT(rows, want);
    }
    TH_CHECK(strstr(out, "balance ") != NULL);

    TH_CHECK_INT(run_cli(out, sizeof(out), "counts --by coupon"), 0);
    for (int s = 0; s < N_SHARDS; s++) {
        snprintf(expect, sizeof(expect), "%-12d %5d %12d\n", COUPON, s, ROWS_PER_SHARD);
        TH_CHECK(strstr(out, expect) != NULL);
    }
}

/* One row on shard 2 whose user hashes to another shard. */
static void test_verify_misplaced(void)
{
    static char out[OUT_MAX];
    char saga[40], expect[128];
    long long user = 5000;
    int want;

    while (sr_shard_of(&map, ++user, 41, 0) == 2)
        ;
    want = sr_shard_of(&map, user, 41, 0);
    TH_REQUIRE(insert_row(2, user, 41, "2024-05-02 12:00:00.000", saga));
    TH_CHECK_INT(run_cli(out, sizeof(out), "verify"), 1);
    TH_CHECK(strstr(out, saga) != NULL);
    snprintf(expect, sizeof(expect), "belongs on shard %d", want);
    TH_CHECK(strstr(out, expect) != NULL);
    TH_CHECK(strstr(out, " 1 misplaced") != NULL);
    TH_CHECK_INT(run_cli(out, sizeof(out), "verify --max-list 0"), 1);   /* counted, not listed */
    TH_CHECK(strstr(out, saga) == NULL);
    snprintf(expect, sizeof(expect), "DELETE FROM coupon_results WHERE saga_id = '%s'", saga);
    TH_CHECK(exec_on(2, expect));
    TH_CHECK_INT(run_cli(out, sizeof(out), "verify"), 0);
}

/* mariadb-s1 killed: shards 1 and 3 are down, 0 and 2 still answer. */
static void test_shard_down(void)
{
    static char out[OUT_MAX];
    char args[64];
    long long t0, ms;

    snprintf(args, sizeof(args), "status --timeout-ms %d", TIMEOUT_MS);
    TH_REQUIRE(itk_script("stack", "kill mariadb-s1") == 0);
    t0 = itk_now_ms();
    TH_CHECK_INT(run_cli(out, sizeof(out), args), 3);
    ms = itk_now_ms() - t0;
    fprintf(stdout, "    status with mariadb-s1 down took %lld ms\n", ms);
    TH_CHECK(ms < BOUND_MS);
    for (int s = 0; s < N_SHARDS; s++) {
        char state[16] = "";
        long long rows = -2;

        TH_CHECK(status_line(out, s, state, &rows));
        TH_CHECK_STR(state, s % 2 == 1 ? "down" : "up");
    }
    TH_CHECK(strstr(out, "on 2 of 4 shards") != NULL);

    t0 = itk_now_ms();
    TH_CHECK_INT(run_cli(out, sizeof(out), "verify --timeout-ms 1500"), 3);
    TH_CHECK(itk_now_ms() - t0 < BOUND_MS);
    TH_CHECK(strstr(out, "shard 1 (") != NULL);
    TH_CHECK(strstr(out, "shard 3 (") != NULL);
    restore_s1();
    TH_CHECK_INT(run_cli(out, sizeof(out), "verify"), 0);
}

/* Bad settings and commands exit 2; route still works. */
static void test_usage(void)
{
    static char out[OUT_MAX];

    TH_CHECK_INT(run_cli(out, sizeof(out), "verify --shard-strategy nope"), 2);
    TH_CHECK_INT(run_cli(out, sizeof(out), "counts --by user"), 2);
    TH_CHECK_INT(run_cli(out, sizeof(out), "frobnicate"), 2);
    TH_CHECK_INT(run_cli(out, sizeof(out), "status --help"), 0);
    TH_CHECK(strstr(out, "balance score") != NULL);
    TH_CHECK_INT(run_cli(out, sizeof(out), "route --strategy hash --shards 4 5 6"), 0);
    TH_CHECK_INT(atoi(out), sr_shard_of(&map, 5, 6, 0));
}

static void test_cleanup(void)
{
    TH_CHECK(cleanup());
}

/* ---- setup -------------------------------------------------------------------- */

static int setup(void)
{
    const char *shards = getenv("MARIADB_SHARDS"), *p, *bin = getenv("SR_CLI_BIN");
    char self[PATH_MAX];
    cg_error err = {0, ""};
    ssize_t n;

    if (shards == NULL || itk_read_secret(getenv("MARIADB_PASSWORD_FILE"), password,
                                          sizeof(password)) != 0) {
        fprintf(stderr, "it_sr_cli: source the stack's stack.env first\n");
        return -1;
    }
    p = shards;
    for (int s = 0; s < N_SHARDS; s++) {
        size_t len = strcspn(p, ",");

        if (len == 0 || len >= ADDR_BUF)
            return -1;
        memcpy(specs[s], p, len);
        specs[s][len] = '\0';
        db_config_defaults(&cfgs[s]);
        if (db_parse_addr(specs[s], &cfgs[s], bufs[s], ADDR_BUF, &err) != CG_OK)
            return -1;
        cfgs[s].user = itk_env("MARIADB_USER", "grab");
        cfgs[s].password = password;
        p += len + (p[len] == ',');
    }
    if (sr_map_build(&map, SR_HASH, N_SHARDS, NULL, &err) != CG_OK)
        return -1;
    setenv("SR_SHARDS", shards, 1);
    setenv("SR_DB_USER", itk_env("MARIADB_USER", "grab"), 1);
    setenv("SR_DB_PASSWORD_FILE", getenv("MARIADB_PASSWORD_FILE"), 1);
    setenv("SR_SHARD_STRATEGY", "hash", 1);
    setenv("SR_SHARD_MAP", "", 1);
    setenv("SR_LOG_LEVEL", "error", 1);
    /* BUILD/tests/it_sr_cli runs BUILD/bin/shard-router, so ASan tests ASan. */
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (bin != NULL && bin[0] != '\0') {
        snprintf(cli_bin, sizeof(cli_bin), "%s", bin);
    } else if (n > 0) {
        char *slash;

        self[n] = '\0';
        for (int k = 0; k < 2 && (slash = strrchr(self, '/')) != NULL; k++)
            *slash = '\0';
        snprintf(cli_bin, sizeof(cli_bin), "%.*s/bin/shard-router", PATH_MAX - 32, self);
    }
    if (access(cli_bin, X_OK) != 0)
        snprintf(cli_bin, sizeof(cli_bin), "%.*s/build/bin/shard-router", PATH_MAX - 64,
                 itk_env("REPO_DIR", "."));
    fprintf(stdout, "it_sr_cli: running %s\n", cli_bin);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"verify_in_place", test_verify_in_place},
        {"verify_misplaced", test_verify_misplaced},
        {"shard_down", test_shard_down},
        {"usage", test_usage},
        {"cleanup", test_cleanup},
    };

    if (setup() != 0)
        return 1;
    return th_main("it_sr_cli", tests, TH_TABLE_LEN(tests), argc, argv);
}
