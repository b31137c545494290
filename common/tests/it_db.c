/* it_db.c - integration tests of the MariaDB connection helper (db.h)
 * against the local stack: mariadb-main (grab_main), mariadb-s0 (grab_shard0,
 * grab_shard2) and mariadb-s1 (grab_shard1, grab_shard3), see scripts/stack.
 * The runner sources run/stack.env (MARIADB_MAIN, MARIADB_SHARDS,
 * MARIADB_USER, MARIADB_PASSWORD_FILE) and exports REPO_DIR.
 *
 * Besides the happy paths it checks the failure model: refused credentials,
 * a closed port, a server that accepts TCP but never speaks, a read timeout,
 * a connection killed on the server and a server killed under an open
 * connection. None may hang or reconnect silently. The server-kill test
 * always starts mariadb-s1 again, so that the stack is healthy afterwards. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "itkit.h"
#include "testhelp.h"

#define MAX_SHARDS 16
#define ADDR_BUF 256
#define QUICK_FAIL_MS 1000    /* a refused connection or a dead server answers at once */
#define TIMEOUT_SLACK_MS 1500 /* the cap on a timeout beyond its configured value */

static const char *repo_dir, *main_spec, *user;
static char password[256];
static char shard_specs[MAX_SHARDS][ADDR_BUF];
static int n_shards;

/* ---- helpers ------------------------------------------------------------------ */

/* A config for one "host:port/database" of the stack, as the grab user.
 * buf holds the parsed strings. */
static int config_for(const char *spec, db_config *cfg, char *buf, size_t buflen)
{
    cg_error err = {0, ""};

    db_config_defaults(cfg);
    if (db_parse_addr(spec, cfg, buf, buflen, &err) != CG_OK) {
        TH_FAIL_AT("db_parse_addr(%s): %s", spec, err.msg);
        return -1;
    }
    cfg->user = user;
    cfg->password = password;
    return 0;
}

static MYSQL *connect_to(const char *spec)
{
    db_config cfg;
    char buf[ADDR_BUF];
    cg_error err = {0, ""};
    MYSQL *conn = NULL;

    if (config_for(spec, &cfg, buf, sizeof(buf)) != 0)
        return NULL;
    if (db_connect(&cfg, &conn, &err) != CG_OK)
        TH_FAIL_AT("db_connect(%s): %s", spec, err.msg);
    return conn;
}

/* The query's integer, or `fallback` after recording a failure. */
static int64_t query_int(MYSQL *conn, const char *sql, int64_t fallback)
{
    cg_error err = {0, ""};
    int64_t v = fallback;

    if (db_query_int64(conn, sql, &v, &err) != CG_OK) {
        TH_FAIL_AT("%s: %s", sql, err.msg);
        v = fallback;
    }
    return v;
}

/* The shard spec whose database is `db`, or NULL. */
static const char *shard_spec(const char *db)
{
    for (int i = 0; i < n_shards; i++) {
        const char *slash = strrchr(shard_specs[i], '/');

        if (slash != NULL && strcmp(slash + 1, db) == 0)
            return shard_specs[i];
    }
    return NULL;
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_parse_addr(void)
{
    static const char *const bad[] = {
        "", "127.0.0.1", "127.0.0.1:3306", "127.0.0.1:3306/", ":3306/db", "h:/db", "h:x/db",
        "h:0/db", "h:65536/db", "h:-1/db", "h: 1/db", "h:1/db/x", "h/x:1/db", "[::1/db",
        "[::1]3306/db",
    };
    db_config cfg;
    char buf[64];
    cg_error err = {0, ""};

    db_config_defaults(&cfg);
    TH_CHECK_INT(db_parse_addr("127.0.0.1:17030/grab_main", &cfg, buf, sizeof(buf), &err), CG_OK);
    TH_CHECK_STR(cfg.host, "127.0.0.1");
    TH_CHECK_INT(cfg.port, 17030);
    TH_CHECK_STR(cfg.database, "grab_main");
    TH_CHECK_INT(cfg.connect_timeout_ms, 2000);   /* left alone */
    TH_CHECK_INT(db_parse_addr("[::1]:3306/db1", &cfg, buf, sizeof(buf), &err), CG_OK);
    TH_CHECK_STR(cfg.host, "::1");
    TH_CHECK_INT(cfg.port, 3306);
    TH_CHECK_STR(cfg.database, "db1");
    for (size_t i = 0; i < TH_TABLE_LEN(bad); i++) {
        err.code = 0;
        if (db_parse_addr(bad[i], &cfg, buf, sizeof(buf), &err) != CG_ERR_INVALID)
            TH_FAIL_AT("accepted \"%s\"", bad[i]);
        TH_CHECK_INT(err.code, CG_ERR_INVALID);
    }
    /* "h" + NUL + "db" + NUL needs 5 bytes. */
    TH_CHECK_INT(db_parse_addr("h:1/db", &cfg, buf, 4, &err), CG_ERR_INVALID);
    TH_CHECK_INT(db_parse_addr("h:1/db", &cfg, buf, 5, &err), CG_OK);
}

/* Main and every shard: connect, and the session is what db_connect promises. */
static void test_connect_all(void)
{
    const char *specs[1 + MAX_SHARDS];
    int n = 0;

    specs[n++] = main_spec;
    for (int i = 0; i < n_shards; i++)
        specs[n++] = shard_specs[i];
    for (int i = 0; i < n; i++) {
        db_config cfg;
        char buf[ADDR_BUF], sql[512];
        MYSQL *conn;

        if (config_for(specs[i], &cfg, buf, sizeof(buf)) != 0)
            continue;
        conn = connect_to(specs[i]);
        if (conn == NULL)
            continue;
        fprintf(stdout, "    connected to %s\n", specs[i]);
        TH_CHECK_INT(query_int(conn, "SELECT 1", 0), 1);
        TH_CHECK_INT(query_int(conn, "SELECT @@port", 0), cfg.port);
        snprintf(sql, sizeof(sql), "SELECT DATABASE() = '%s'", cfg.database);
        TH_CHECK_INT(query_int(conn, sql, 0), 1);
        TH_CHECK_INT(query_int(conn, "SELECT @@session.autocommit", 0), 1);
        TH_CHECK_INT(query_int(conn, "SELECT FIND_IN_SET('STRICT_ALL_TABLES', @@session.sql_mode) > 0", 0), 1);
        TH_CHECK_INT(query_int(conn, "SELECT @@character_set_client = 'utf8mb4' AND "
                                     "@@character_set_results = 'utf8mb4'", 0), 1);
        db_close(conn);
    }
}

static void test_exec_and_query(void)
{
    MYSQL *conn = connect_to(shard_specs[0]);
    cg_error err = {0, ""};
    uint64_t affected = 99;
    int64_t v = 0;

    TH_REQUIRE(conn != NULL);
    TH_CHECK_INT(db_exec(conn, "CREATE TEMPORARY TABLE it_db_t (id INT PRIMARY KEY, v INT NOT NULL)",
                         NULL, &err), CG_OK);
    TH_CHECK_INT(db_exec(conn, "INSERT INTO it_db_t VALUES (1, 10), (2, 20)", &affected, &err), CG_OK);
    TH_CHECK_INT(affected, 2);
    TH_CHECK_INT(db_exec(conn, "UPDATE it_db_t SET v = v + 1 WHERE id = 2", &affected, &err), CG_OK);
    TH_CHECK_INT(affected, 1);
    TH_CHECK_INT(query_int(conn, "SELECT v FROM it_db_t WHERE id = 2", 0), 21);

    /* A duplicate key is a conflict, and the connection stays usable. */
    TH_CHECK_INT(db_exec(conn, "INSERT INTO it_db_t VALUES (1, 11)", &affected, &err), CG_ERR_CONFLICT);
    TH_CHECK(strstr(err.msg, "Duplicate") != NULL);
    TH_CHECK(strstr(err.msg, "(1062)") != NULL);
    TH_CHECK_INT(affected, 0);
    /* Strict mode: a value that does not fit is refused, not truncated. */
    TH_CHECK_INT(db_exec(conn, "INSERT INTO it_db_t VALUES (3, 'abc')", NULL, &err), CG_ERR_INVALID);
    TH_CHECK_INT(db_exec(conn, "INSERT INTO it_db_t VALUES (4, 99999999999)", NULL, &err), CG_ERR_INVALID);
    TH_CHECK_INT(db_exec(conn, "SELEC nonsense", NULL, &err), CG_ERR_INVALID);
    TH_CHECK(strstr(err.msg, shard_specs[0]) != NULL);   /* names the server */
    TH_CHECK_INT(query_int(conn, "SELECT COUNT(*) FROM it_db_t", 0), 2);

    /* db_exec of a query discards its rows; the next statement still works. */
    TH_CHECK_INT(db_exec(conn, "SELECT * FROM it_db_t", &affected, &err), CG_OK);
    TH_CHECK_INT(affected, 2);
    TH_CHECK_INT(query_int(conn, "SELECT -9223372036854775807 - 1", 0), INT64_MIN);
    TH_CHECK_INT(db_query_int64(conn, "SELECT v FROM it_db_t WHERE id = 99", &v, &err), CG_ERR_NOTFOUND);
    TH_CHECK_INT(db_query_int64(conn, "SELECT NULL", &v, &err), CG_ERR_NOTFOUND);
    TH_CHECK_INT(db_query_int64(conn, "SELECT 'x'", &v, &err), CG_ERR_INVALID);
    TH_CHECK_INT(db_query_int64(conn, "SELECT 1.5", &v, &err), CG_ERR_INVALID);
    TH_CHECK_INT(db_query_int64(conn, "SELECT 18446744073709551615", &v, &err), CG_ERR_INVALID);
    TH_CHECK_INT(db_query_int64(conn, "DO 1", &v, &err), CG_ERR_INVALID);
    TH_CHECK_INT(query_int(conn, "SELECT 7", 0), 7);
    db_close(conn);
}

static void test_wrong_password(void)
{
    db_config cfg;
    char buf[ADDR_BUF];
    cg_error err = {0, ""};
    MYSQL *conn = (MYSQL *)&cfg;   /* must come back NULL */
    long long t0;

    TH_REQUIRE(config_for(main_spec, &cfg, buf, sizeof(buf)) == 0);
    cfg.password = "not-the-password";
    t0 = itk_now_ms();
    TH_CHECK_INT(db_connect(&cfg, &conn, &err), CG_ERR_INVALID);
    TH_CHECK(itk_now_ms() - t0 < QUICK_FAIL_MS);
    TH_CHECK(conn == NULL);
    TH_CHECK(strstr(err.msg, "Access denied") != NULL);
    TH_CHECK(strstr(err.msg, main_spec) != NULL);
    fprintf(stdout, "    %s\n", err.msg);

    TH_REQUIRE(config_for(main_spec, &cfg, buf, sizeof(buf)) == 0);
    cfg.database = "no_such_db";
    TH_CHECK_INT(db_connect(&cfg, &conn, &err), CG_ERR_INVALID);
    TH_CHECK(conn == NULL);
}

static void test_closed_port(void)
{
    db_config cfg;
    cg_error err = {0, ""};
    MYSQL *conn = NULL;
    long long t0, elapsed;

    db_config_defaults(&cfg);
    cfg.port = itk_closed_port();
    cfg.user = user;
    cfg.password = password;
    TH_REQUIRE(cfg.port > 0);
    t0 = itk_now_ms();
    TH_CHECK_INT(db_connect(&cfg, &conn, &err), CG_ERR_IO);
    elapsed = itk_now_ms() - t0;
    TH_CHECK(elapsed < QUICK_FAIL_MS);
    TH_CHECK(conn == NULL);
    fprintf(stdout, "    %lld ms: %s\n", elapsed, err.msg);
}

/* Accepts TCP, never answers: the handshake wait is bounded by the connect timeout. */
static void test_silent_server(void)
{
    db_config cfg;
    cg_error err = {0, ""};
    MYSQL *conn = NULL;
    long long t0, elapsed;
    int port = 0, fd = itk_silent_listener(&port);

    TH_REQUIRE(fd >= 0);
    db_config_defaults(&cfg);
    cfg.port = port;
    cfg.user = user;
    cfg.password = password;
    cfg.connect_timeout_ms = 1000;
    cfg.read_timeout_ms = 30000;   /* must not be the bound that applies */
    t0 = itk_now_ms();
    TH_CHECK_INT(db_connect(&cfg, &conn, &err), CG_ERR_TIMEOUT);
    elapsed = itk_now_ms() - t0;
    close(fd);
    TH_CHECK(conn == NULL);
    TH_CHECK(elapsed >= cfg.connect_timeout_ms - 100);
    TH_CHECK(elapsed < cfg.connect_timeout_ms + TIMEOUT_SLACK_MS);
    fprintf(stdout, "    %lld ms: %s\n", elapsed, err.msg);
}

/* A statement that outlasts the read timeout fails with a timeout, and the
 * connection is then dead for good (no silent reconnect). */
static void test_read_timeout(void)
{
    db_config cfg;
    char buf[ADDR_BUF];
    cg_error err = {0, ""};
    MYSQL *conn = NULL;
    long long t0, elapsed;
    int64_t v = 0;
    int rc;

    TH_REQUIRE(config_for(main_spec, &cfg, buf, sizeof(buf)) == 0);
    cfg.read_timeout_ms = 1000;
    TH_REQUIRE(db_connect(&cfg, &conn, &err) == CG_OK);
    t0 = itk_now_ms();
    TH_CHECK_INT(db_query_int64(conn, "SELECT SLEEP(5)", &v, &err), CG_ERR_TIMEOUT);
    elapsed = itk_now_ms() - t0;
    fprintf(stdout, "    %lld ms: %s\n", elapsed, err.msg);
    TH_CHECK(elapsed < cfg.read_timeout_ms + TIMEOUT_SLACK_MS);
    t0 = itk_now_ms();
    rc = db_query_int64(conn, "SELECT 1", &v, &err);
    elapsed = itk_now_ms() - t0;
    fprintf(stdout, "    after it: %lld ms: %s\n", elapsed, rc == CG_OK ? "ok" : err.msg);
    TH_CHECK(rc != CG_OK);
    TH_CHECK(rc == CG_ERR_IO || rc == CG_ERR_STATE);
    TH_CHECK(elapsed < QUICK_FAIL_MS);
    db_close(conn);
}

/* The server kills the session: the next statement fails, and so does the
 * one after it (a reconnect would answer with a fresh session). */
static void test_killed_connection(void)
{
    MYSQL *victim = connect_to(main_spec), *killer = connect_to(main_spec);
    cg_error err = {0, ""};
    int64_t id = -1, v = 0;
    char sql[64];
    int rc;

    if (victim == NULL || killer == NULL)
        goto done;
    id = query_int(victim, "SELECT CONNECTION_ID()", -1);
    TH_CHECK_INT(db_exec(victim, "SET @it_db_marker = 42", NULL, &err), CG_OK);
    snprintf(sql, sizeof(sql), "KILL CONNECTION %lld", (long long)id);
    TH_CHECK_INT(db_exec(killer, sql, NULL, &err), CG_OK);
    rc = db_query_int64(victim, "SELECT @it_db_marker", &v, &err);
    fprintf(stdout, "    after KILL: %s\n", rc == CG_OK ? "ok" : err.msg);
    TH_CHECK_INT(rc, CG_ERR_IO);
    rc = db_query_int64(victim, "SELECT CONNECTION_ID()", &v, &err);
    TH_CHECK(rc == CG_ERR_IO || rc == CG_ERR_STATE);
    if (rc == CG_OK)
        TH_FAIL_AT("reconnected silently: connection id %lld -> %lld", (long long)id, (long long)v);

done:
    db_close(victim);
    db_close(killer);
}

/* Everything but the restart, so that a failed requirement still leaves the
 * restart to the caller. */
static void server_killed_checks(const char *spec)
{
    MYSQL *conn = connect_to(spec), *conn2 = NULL;
    cg_error err = {0, ""};
    int64_t v = 0;
    long long t0, elapsed;
    int rc;

    TH_REQUIRE(conn != NULL);
    TH_REQUIRE(query_int(conn, "SELECT 1", 0) == 1);
    TH_REQUIRE(itk_script("stack", "kill mariadb-s1") == 0);
    t0 = itk_now_ms();
    rc = db_query_int64(conn, "SELECT 1", &v, &err);
    elapsed = itk_now_ms() - t0;
    fprintf(stdout, "    query after kill: %lld ms: %s\n", elapsed, rc == CG_OK ? "ok" : err.msg);
    TH_CHECK_INT(rc, CG_ERR_IO);
    TH_CHECK(elapsed < QUICK_FAIL_MS);
    rc = db_query_int64(conn, "SELECT 1", &v, &err);
    TH_CHECK(rc == CG_ERR_IO || rc == CG_ERR_STATE);
    db_close(conn);

    /* While it is down, a new connection fails fast. */
    {
        db_config cfg;
        char buf[ADDR_BUF];

        TH_REQUIRE(config_for(spec, &cfg, buf, sizeof(buf)) == 0);
        t0 = itk_now_ms();
        TH_CHECK_INT(db_connect(&cfg, &conn2, &err), CG_ERR_IO);
        TH_CHECK(itk_now_ms() - t0 < QUICK_FAIL_MS);
        db_close(conn2);
    }
}

static void test_server_killed(void)
{
    const char *spec = shard_spec("grab_shard1");
    MYSQL *conn = NULL;

    TH_REQUIRE(spec != NULL);
    server_killed_checks(spec);
    /* Always: the stack must be whole for whatever runs next. */
    TH_CHECK(itk_script("stack", "start-one mariadb-s1") == 0);
    conn = connect_to(spec);
    TH_REQUIRE(conn != NULL);
    TH_CHECK_INT(query_int(conn, "SELECT DATABASE() = 'grab_shard1'", 0), 1);
    db_close(conn);
    conn = connect_to(shard_spec("grab_shard3"));
    TH_REQUIRE(conn != NULL);
    TH_CHECK_INT(query_int(conn, "SELECT 1", 0), 1);
    db_close(conn);
}

static const struct th_test tests[] = {
    {"parse_addr", test_parse_addr},
    {"connect_all", test_connect_all},
    {"exec_and_query", test_exec_and_query},
    {"wrong_password", test_wrong_password},
    {"closed_port", test_closed_port},
    {"silent_server", test_silent_server},
    {"read_timeout", test_read_timeout},
    {"killed_connection", test_killed_connection},
    {"server_killed", test_server_killed},
};

int main(int argc, char **argv)
{
    const char *level = itk_env("LOG_LEVEL", NULL), *shards = itk_env("MARIADB_SHARDS", NULL), *pw_file;
    int lvl = LOG_LEVEL_INFO;

    log_set_program("it_db");
    if (level != NULL && log_level_parse(level, &lvl) == CG_OK)
        log_set_level(lvl);
    main_spec = itk_env("MARIADB_MAIN", NULL);
    user = itk_env("MARIADB_USER", NULL);
    pw_file = itk_env("MARIADB_PASSWORD_FILE", NULL);
    repo_dir = itk_env("REPO_DIR", NULL);
    if (main_spec == NULL || shards == NULL || user == NULL || pw_file == NULL || repo_dir == NULL) {
        fprintf(stdout, "it_db: needs the stack environment (run/stack.env: MARIADB_MAIN, "
                "MARIADB_SHARDS, MARIADB_USER, MARIADB_PASSWORD_FILE) and REPO_DIR\n");
        fprintf(stdout, "0 passed, 1 failed\n");
        return 1;
    }
    if (itk_read_secret(pw_file, password, sizeof(password)) != 0) {
        fprintf(stdout, "it_db: cannot read %s\n0 passed, 1 failed\n", pw_file);
        return 1;
    }
    for (const char *p = shards; *p != '\0' && n_shards < MAX_SHARDS;) {
        size_t len = strcspn(p, ",");

        if (len > 0 && len < ADDR_BUF) {
            memcpy(shard_specs[n_shards], p, len);
            shard_specs[n_shards][len] = '\0';
            n_shards++;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    if (n_shards == 0) {
        fprintf(stdout, "it_db: MARIADB_SHARDS lists no shard\n0 passed, 1 failed\n");
        return 1;
    }
    return th_main("it_db", tests, TH_TABLE_LEN(tests), argc, argv);
}
