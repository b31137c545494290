/* db.c - blocking MariaDB connections with bounded timeouts; see db.h.
 *
 * A thin layer over Connector/C: it sets the options every connection of the
 * system needs (timeouts, no auto-reconnect, utf8mb4, TCP, strict SQL) and
 * turns the connector's error numbers into status codes, with a message that
 * names the server, so that callers deal with one error model. */
#include "db.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <errmsg.h>
#include <mysqld_error.h>

#include "log.h"

/* Strict mode: a value that does not fit is an error, not a silent
 * truncation. Autocommit is the server default, but stated: a statement that
 * returned OK is durable, whatever the server's configuration says. */
#define DB_SESSION_SQL                                                          \
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"   \
    "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION', autocommit = 1"

#define DB_SERVER_MAX 384   /* "host:port/database" in error messages */
#define DB_SQL_SHOWN 48     /* characters of a failing statement quoted in its error */
#define DB_CLOCK_SLACK_MS 100

static pthread_once_t db_init_once = PTHREAD_ONCE_INIT;
static int db_init_status = -1;

static void db_library_init(void)
{
    /* mysql_init() would do this on first use, but not thread-safely. */
    db_init_status = mysql_library_init(0, NULL, NULL);
}

static long long db_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The connector takes whole seconds: round up, and at least 1, since 0 would
 * mean "wait forever". */
static unsigned int db_timeout_s(int ms)
{
    if (ms <= 1000)
        return 1;
    return (unsigned int)(ms / 1000 + (ms % 1000 != 0));
}

/* The status for a connector or server error number. The connector reports
 * a timeout as a lost connection (CR_SERVER_LOST and friends), so the clock
 * tells them apart: a connection error after at least the timeout is one. */
static int db_status_of(unsigned int code, long long elapsed_ms, unsigned int timeout_s)
{
    switch (code) {
    case CR_OUT_OF_MEMORY:
        return CG_ERR_NOMEM;
    case CR_COMMANDS_OUT_OF_SYNC:
        return CG_ERR_STATE;
    case ER_DUP_ENTRY:
    case ER_DUP_KEY:
    case ER_DUP_UNIQUE:
    case ER_LOCK_DEADLOCK:
    case ER_LOCK_WAIT_TIMEOUT:
        return CG_ERR_CONFLICT;
    case ER_CON_COUNT_ERROR:            /* the server is busy or going away: */
    case ER_TOO_MANY_USER_CONNECTIONS:  /* transient, worth a retry later */
    case ER_OUT_OF_RESOURCES:
    case ER_SERVER_SHUTDOWN:
    case ER_CONNECTION_KILLED:
    case ER_ABORTING_CONNECTION:
    case ER_NEW_ABORTING_CONNECTION:
    case ER_NET_READ_ERROR:
    case ER_NET_READ_INTERRUPTED:
    case ER_NET_ERROR_ON_WRITE:
    case ER_NET_WRITE_INTERRUPTED:
    case ER_HOST_IS_BLOCKED:
        return CG_ERR_IO;
    default:
        break;
    }
    if ((code >= CR_MIN_ERROR && code <= CR_MAX_ERROR) || code >= CER_MIN_ERROR) {
        /* A client-side error: the connection failed or broke. */
        if (elapsed_ms >= (long long)timeout_s * 1000 - DB_CLOCK_SLACK_MS)
            return CG_ERR_TIMEOUT;
        return CG_ERR_IO;
    }
    /* A server error about the request itself: credentials, unknown
     * database, SQL syntax, a value strict mode refuses. */
    return CG_ERR_INVALID;
}

/* "host:port/database" of an open (or broken) connection. */
static void db_server_name(MYSQL *conn, char *buf, size_t len)
{
    const char *host = NULL, *schema = NULL;
    unsigned int port = 0;

    if (mariadb_get_infov(conn, MARIADB_CONNECTION_HOST, &host) != 0)
        host = NULL;
    if (mariadb_get_infov(conn, MARIADB_CONNECTION_PORT, &port) != 0)
        port = 0;
    if (mariadb_get_infov(conn, MARIADB_CONNECTION_SCHEMA, &schema) != 0)
        schema = NULL;
    snprintf(buf, len, "%s:%u/%s", host != NULL ? host : "?", port, schema != NULL ? schema : "");
}

/* The timeout that bounds a statement: the sooner of read and write. */
static unsigned int db_statement_timeout_s(MYSQL *conn)
{
    unsigned int rd = 0, wr = 0;

    if (mysql_get_optionv(conn, MYSQL_OPT_READ_TIMEOUT, &rd) != 0 || rd == 0)
        rd = 1;
    if (mysql_get_optionv(conn, MYSQL_OPT_WRITE_TIMEOUT, &wr) != 0 || wr == 0)
        wr = 1;
    return rd < wr ? rd : wr;
}

/* Fills err from the connection's last error, for a statement that started
 * at t0, and returns the status. */
static int db_fail_sql(MYSQL *conn, const char *sql, long long t0, cg_error *err)
{
    char server[DB_SERVER_MAX];
    unsigned int code = mysql_errno(conn);
    int status = db_status_of(code, db_now_ms() - t0, db_statement_timeout_s(conn));

    db_server_name(conn, server, sizeof(server));
    log_debug("-", "db: %s: \"%.*s\": %s (%u)", server, DB_SQL_SHOWN, sql, mysql_error(conn), code);
    return cg_error_set(err, status, "mariadb %s: \"%.*s%s\": %s (%u)", server, DB_SQL_SHOWN, sql,
                        strlen(sql) > DB_SQL_SHOWN ? "..." : "", mysql_error(conn), code);
}

void db_config_defaults(db_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->host = "127.0.0.1";
    cfg->port = 3306;
    cfg->connect_timeout_ms = 2000;
    cfg->read_timeout_ms = 5000;
    cfg->write_timeout_ms = 5000;
}

int db_parse_addr(const char *spec, db_config *cfg, char *buf, size_t buflen, cg_error *err)
{
    const char *host, *host_end, *port_start, *slash, *db;
    size_t host_len, db_len;
    char *end;
    long port;

    if (spec == NULL || cfg == NULL || buf == NULL)
        return cg_error_set(err, CG_ERR_INVALID, "db_parse_addr: NULL argument");
    if (spec[0] == '[') {   /* [v6addr]:port/db */
        host = spec + 1;
        host_end = strchr(host, ']');
        if (host_end == NULL || host_end[1] != ':')
            goto bad;
        port_start = host_end + 2;
    } else {
        host = spec;
        host_end = strchr(spec, ':');
        if (host_end == NULL)
            goto bad;
        port_start = host_end + 1;
    }
    host_len = (size_t)(host_end - host);
    if (host_len == 0 || memchr(host, '/', host_len) != NULL)
        goto bad;
    slash = strchr(port_start, '/');
    if (slash == NULL || !isdigit((unsigned char)port_start[0]))
        goto bad;
    errno = 0;
    port = strtol(port_start, &end, 10);
    if (end != slash || errno != 0 || port < 1 || port > 65535)
        goto bad;
    db = slash + 1;
    db_len = strlen(db);
    if (db_len == 0 || strpbrk(db, "/:") != NULL)
        goto bad;
    if (host_len + 1 + db_len + 1 > buflen)
        return cg_error_set(err, CG_ERR_INVALID, "database address \"%s\": longer than %zu bytes",
                            spec, buflen);
    memcpy(buf, host, host_len);
    buf[host_len] = '\0';
    memcpy(buf + host_len + 1, db, db_len + 1);
    cfg->host = buf;
    cfg->port = (int)port;
    cfg->database = buf + host_len + 1;
    return CG_OK;

bad:
    return cg_error_set(err, CG_ERR_INVALID,
                        "database address \"%s\": expected host:port/database", spec);
}

int db_connect(const db_config *cfg, MYSQL **out, cg_error *err)
{
    MYSQL *conn = NULL;
    char server[DB_SERVER_MAX];
    unsigned int connect_s, read_s, write_s, protocol = MYSQL_PROTOCOL_TCP;
    my_bool reconnect = 0;
    long long t0;
    int rc;

    if (out != NULL)
        *out = NULL;
    if (cfg == NULL || out == NULL || cfg->host == NULL || cfg->port < 1 || cfg->port > 65535)
        return cg_error_set(err, CG_ERR_INVALID, "db_connect: a host and a port 1-65535 are required");
    snprintf(server, sizeof(server), "%s:%d/%s", cfg->host, cfg->port,
             cfg->database != NULL ? cfg->database : "");
    pthread_once(&db_init_once, db_library_init);
    if (db_init_status != 0) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "mariadb %s: mysql_library_init failed", server);
        goto done;
    }
    conn = mysql_init(NULL);
    if (conn == NULL) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "mariadb %s: mysql_init failed", server);
        goto done;
    }
    connect_s = db_timeout_s(cfg->connect_timeout_ms);
    read_s = db_timeout_s(cfg->read_timeout_ms);
    write_s = db_timeout_s(cfg->write_timeout_ms);
    /* Reconnect off explicitly: a dropped connection must surface as an
     * error, not be replaced by a fresh session behind the caller's back. */
    if (mysql_options(conn, MYSQL_OPT_CONNECT_TIMEOUT, &connect_s) != 0 ||
        mysql_options(conn, MYSQL_OPT_READ_TIMEOUT, &read_s) != 0 ||
        mysql_options(conn, MYSQL_OPT_WRITE_TIMEOUT, &write_s) != 0 ||
        mysql_options(conn, MYSQL_OPT_RECONNECT, &reconnect) != 0 ||
        mysql_options(conn, MYSQL_OPT_PROTOCOL, &protocol) != 0 ||
        mysql_options(conn, MYSQL_SET_CHARSET_NAME, "utf8mb4") != 0) {
        rc = cg_error_set(err, CG_ERR_INVALID, "mariadb %s: setting connection options: %s",
                          server, mysql_error(conn));
        goto done;
    }
    t0 = db_now_ms();
    if (mysql_real_connect(conn, cfg->host, cfg->user, cfg->password, cfg->database,
                           (unsigned int)cfg->port, NULL, 0) == NULL) {
        rc = cg_error_set(err, db_status_of(mysql_errno(conn), db_now_ms() - t0, connect_s),
                          "mariadb %s: connect: %s (%u)", server, mysql_error(conn),
                          mysql_errno(conn));
        log_debug("-", "db: %s", err != NULL ? err->msg : "connect failed");
        goto done;
    }
    t0 = db_now_ms();
    if (mysql_real_query(conn, DB_SESSION_SQL, strlen(DB_SESSION_SQL)) != 0) {
        rc = db_fail_sql(conn, DB_SESSION_SQL, t0, err);
        goto done;
    }
    log_debug("-", "db: connected to %s (connection id %lu)", server, mysql_thread_id(conn));
    *out = conn;
    conn = NULL;
    rc = CG_OK;

done:
    db_close(conn);
    return rc;
}

int db_exec(MYSQL *conn, const char *sql, uint64_t *affected, cg_error *err)
{
    MYSQL_RES *res = NULL;
    my_ulonglong n;
    long long t0;
    int rc;

    if (affected != NULL)
        *affected = 0;
    if (conn == NULL || sql == NULL)
        return cg_error_set(err, CG_ERR_INVALID, "db_exec: NULL connection or statement");
    t0 = db_now_ms();
    if (mysql_real_query(conn, sql, strlen(sql)) != 0) {
        rc = db_fail_sql(conn, sql, t0, err);
        goto done;
    }
    if (mysql_field_count(conn) > 0) {
        /* It returned rows after all: read them, or the connection would be
         * out of step for the next statement. */
        res = mysql_store_result(conn);
        if (res == NULL) {
            rc = db_fail_sql(conn, sql, t0, err);
            goto done;
        }
    }
    n = mysql_affected_rows(conn);
    if (affected != NULL && n != (my_ulonglong)-1)
        *affected = (uint64_t)n;
    rc = CG_OK;

done:
    if (res != NULL)
        mysql_free_result(res);
    return rc;
}

/* Runs a query and reads its whole result set into *res (the caller frees
 * it), so that read errors and timeouts on the rows surface now and the
 * connection stays in step. CG_ERR_INVALID when it returns no result set. */
static int db_query_stored(MYSQL *conn, const char *sql, MYSQL_RES **res, cg_error *err)
{
    char server[DB_SERVER_MAX];
    long long t0 = db_now_ms();

    *res = NULL;
    if (mysql_real_query(conn, sql, strlen(sql)) != 0)
        return db_fail_sql(conn, sql, t0, err);
    *res = mysql_store_result(conn);
    if (*res != NULL)
        return CG_OK;
    if (mysql_errno(conn) != 0)
        return db_fail_sql(conn, sql, t0, err);
    db_server_name(conn, server, sizeof(server));
    return cg_error_set(err, CG_ERR_INVALID, "mariadb %s: \"%.*s\": returned no result set",
                        server, DB_SQL_SHOWN, sql);
}

int db_query_int64(MYSQL *conn, const char *sql, int64_t *out, cg_error *err)
{
    MYSQL_RES *res = NULL;
    MYSQL_ROW row;
    char server[DB_SERVER_MAX], *end;
    long long v;
    int rc;

    if (conn == NULL || sql == NULL || out == NULL)
        return cg_error_set(err, CG_ERR_INVALID, "db_query_int64: NULL argument");
    rc = db_query_stored(conn, sql, &res, err);
    if (rc != CG_OK)
        goto done;
    row = mysql_fetch_row(res);
    if (row == NULL || row[0] == NULL) {
        db_server_name(conn, server, sizeof(server));
        rc = cg_error_set(err, CG_ERR_NOTFOUND, "mariadb %s: \"%.*s\": %s", server, DB_SQL_SHOWN,
                          sql, row == NULL ? "no row" : "NULL value");
        goto done;
    }
    errno = 0;
    v = strtoll(row[0], &end, 10);
    if (row[0][0] == '\0' || *end != '\0' || errno != 0) {
        db_server_name(conn, server, sizeof(server));
        rc = cg_error_set(err, CG_ERR_INVALID, "mariadb %s: \"%.*s\": \"%.32s\" is not an int64",
                          server, DB_SQL_SHOWN, sql, row[0]);
        goto done;
    }
    *out = (int64_t)v;
    rc = CG_OK;

done:
    if (res != NULL)
        mysql_free_result(res);
    return rc;
}

int db_query_rows(MYSQL *conn, const char *sql, db_row_cb on_row, void *arg, uint64_t *n_rows,
                  cg_error *err)
{
    MYSQL_RES *res = NULL;
    MYSQL_ROW row;
    unsigned int n_fields;
    int rc;

    if (n_rows != NULL)
        *n_rows = 0;
    if (conn == NULL || sql == NULL || on_row == NULL)
        return cg_error_set(err, CG_ERR_INVALID, "db_query_rows: NULL argument");
    rc = db_query_stored(conn, sql, &res, err);
    if (rc != CG_OK)
        goto done;
    if (n_rows != NULL)
        *n_rows = (uint64_t)mysql_num_rows(res);
    n_fields = mysql_num_fields(res);
    rc = CG_OK;
    while (rc == CG_OK && (row = mysql_fetch_row(res)) != NULL)
        rc = on_row(arg, n_fields, row);

done:
    if (res != NULL)
        mysql_free_result(res);
    return rc;
}

void db_close(MYSQL *conn)
{
    if (conn != NULL)
        mysql_close(conn);
}
