/* db.h - blocking MariaDB connections with bounded timeouts (MariaDB
 * Connector/C, libmysqlclient API).
 *
 * Every call blocks for at most the configured timeouts, so it belongs on a
 * worker thread (or in a tool or test), never on an event loop. A connection
 * never reconnects by itself: a dropped connection surfaces as an error and
 * the caller decides (a silent reconnect would lose session state and hide
 * whether a write happened). Sessions are utf8mb4, autocommit, strict SQL.
 *
 * Status codes (status.h) and what the caller should do with them:
 *   CG_ERR_IO        cannot connect, or the connection broke (server gone, lost,
 *                    killed): close it; the outcome of a write is unknown
 *   CG_ERR_TIMEOUT   the connect, read or write timeout passed: as CG_ERR_IO
 *   CG_ERR_CONFLICT  duplicate key, deadlock or lock wait timeout: the statement
 *                    changed nothing; the connection is still usable
 *   CG_ERR_INVALID   bad argument, bad SQL, refused credentials, unknown database,
 *                    a value strict mode rejects: retrying will not help
 *   CG_ERR_NOTFOUND  db_query_int64: no row, or the value is NULL
 *   CG_ERR_NOMEM     the connector could not allocate
 * Error messages name the server as host:port/database and carry the
 * connector's text and error number. */
#ifndef CG_DB_H
#define CG_DB_H

#include <stddef.h>
#include <stdint.h>

#include <mysql.h>

#include "status.h"

typedef struct db_config {
    const char *host;         /* IP address or name (default "127.0.0.1") */
    int port;                 /* default 3306 */
    const char *user;         /* NULL: the connector's default (the login name) */
    const char *password;     /* NULL: none */
    const char *database;     /* NULL: none selected */
    int connect_timeout_ms;   /* TCP connect and handshake (default 2000) */
    int read_timeout_ms;      /* per read from the server (default 5000) */
    int write_timeout_ms;     /* per write to the server (default 5000) */
} db_config;

/* Fills the defaults named above; user, password and database become NULL. */
void db_config_defaults(db_config *cfg);

/* Parses "host:port/database" (host may be "[v6addr]") into cfg->host,
 * cfg->port and cfg->database; other fields are left alone. The strings are
 * copied into buf (buflen bytes, owned by the caller, who keeps it alive as
 * long as cfg is used). CG_ERR_INVALID on a malformed spec or a small buf. */
int db_parse_addr(const char *spec, db_config *cfg, char *buf, size_t buflen,
                  cg_error *err) CG_MUSTCHECK;

/* Opens a new connection into *out (the caller owns it: db_close). On error
 * *out is NULL. */
int db_connect(const db_config *cfg, MYSQL **out, cg_error *err) CG_MUSTCHECK;

/* Runs one statement that returns no rows (a result set, if any, is
 * discarded). affected, when not NULL, receives the affected-row count. */
int db_exec(MYSQL *conn, const char *sql, uint64_t *affected, cg_error *err) CG_MUSTCHECK;

/* Runs a query and reads the first column of its first row as an integer.
 * CG_ERR_NOTFOUND when there is no row or the value is NULL; CG_ERR_INVALID
 * when the value is not an integer or the statement returns no result set. */
int db_query_int64(MYSQL *conn, const char *sql, int64_t *out, cg_error *err) CG_MUSTCHECK;

/* Called by db_query_rows once per row: n_fields values, each a NUL-terminated
 * string or NULL for SQL NULL, valid only during the call. Returning anything
 * but CG_OK stops the scan; db_query_rows then returns that status. */
typedef int (*db_row_cb)(void *arg, unsigned int n_fields, char **values);

/* Runs a query and hands each row of its result set to on_row. The whole
 * result is read before the first call, so that read errors and timeouts
 * surface before any row is seen. n_rows, when not NULL, receives the row
 * count. CG_ERR_INVALID when the statement returns no result set. */
int db_query_rows(MYSQL *conn, const char *sql, db_row_cb on_row, void *arg, uint64_t *n_rows,
                  cg_error *err) CG_MUSTCHECK;

/* Closes a connection from db_connect; NULL is allowed. */
void db_close(MYSQL *conn);

#endif
