/* sr_query.h - cross-shard reads: ask several MariaDB shards in parallel,
 * wait a bounded time, merge their newest-first rows (or add up a count).
 *
 * An sr_pool holds one worker thread per shard, each with its own blocking
 * connection (db.h) and a bounded queue of queries. A scatter hands one
 * query to each selected shard at once, so the shards work in parallel and
 * the answer takes as long as the slowest shard, never their sum. A shard
 * that is down, slow or whose queue is full does not fail the read and never
 * holds the caller beyond timeout_ms: it is listed as missing and the result
 * is marked partial. A worker whose connection broke reconnects on its next
 * query, with an exponential backoff between failed attempts (inside the
 * backoff a query fails at once, so a dead shard costs no time).
 *
 * The SQL contract (SR_ROWS): every shard's statement must already return
 * its rows sorted by the order column descending and carry its own limit,
 * e.g. "SELECT ... WHERE room_id = 7 ORDER BY grab_time DESC, result_id DESC
 * LIMIT 50", with the same columns on every shard. The shards do the sorting
 * on their indexes; this module only merges the sorted lists (k-way merge),
 * keeps at most `limit` rows of each shard (a guard, should the LIMIT be
 * missing) and `limit` rows in all. A shard list that is not sorted is a
 * broken contract and fails the scatter with CG_ERR_INVALID. Values compare
 * as integers when both are integers, else as byte strings (DATETIME text
 * "YYYY-MM-DD hh:mm:ss.fff" sorts as time); SQL NULL sorts below every
 * value. Equal values keep shard order (lower shard first), then each
 * shard's own order, so the merge is deterministic.
 *
 * SR_SUM: every shard's statement returns one integer in its first column
 * (e.g. "SELECT COUNT(*) FROM ..." or "SELECT SUM(x) ..."); no row or NULL
 * counts as 0. The result is the sum over the shards that answered.
 *
 * Threads: sr_scatter blocks (a tool, a test, a worker thread);
 * sr_scatter_start never blocks and delivers the result on a libevent
 * event_base, woken through an eventfd as mq.c does for its I/O thread. All
 * calls on one pool from one thread at a time (the loop thread, usually);
 * the pool's own workers are the only other threads. */
#ifndef SR_QUERY_H
#define SR_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "db.h"
#include "sr_map.h"
#include "status.h"

#define SR_QUEUE_MAX 32         /* queries waiting per shard; beyond: that shard is missing */
#define SR_LIMIT_MAX 10000      /* cap on a scatter's limit (rows per shard and in all) */
#define SR_COLS_MAX 64          /* cap on the columns of a row */
#define SR_BACKOFF_MIN_MS 100   /* first wait after a failed connect */
#define SR_BACKOFF_MAX_MS 2000  /* longest wait between connect attempts */

enum sr_mode {
    SR_ROWS = 0,   /* merge the rows newest first and apply the limit */
    SR_SUM = 1,    /* add up one integer per shard */
    SR_MODE_MAX
};

typedef struct sr_pool sr_pool;

/* One read over several shards. */
typedef struct sr_request {
    enum sr_mode mode;
    uint64_t shards;                  /* bit i: ask shard i; 0: every shard of the pool */
    const char *sql;                  /* the statement for every shard, or NULL: */
    const char *const *sql_per_shard; /* [n_shards] statements, one per asked shard */
    size_t limit;                     /* SR_ROWS: 1..SR_LIMIT_MAX */
    unsigned int order_col;           /* SR_ROWS: index of the column sorted descending */
    int timeout_ms;                   /* > 0: the longest the caller waits */
} sr_request;

/* The answer. Rows and their strings are owned by the result. */
typedef struct sr_result {
    enum sr_mode mode;
    unsigned int n_cols;      /* columns per row (0 when no shard returned rows) */
    size_t n_rows;
    char ***rows;             /* rows[i][j]: NUL-terminated, NULL for SQL NULL */
    int64_t sum;              /* SR_SUM */
    int partial;              /* 1 when an asked shard is missing */
    int n_missing;
    int missing[SR_MAX_SHARDS];   /* the missing shards, rising */
    int shard_status[SR_MAX_SHARDS];  /* per asked shard: CG_OK, or why it is missing */
    long long shard_us[SR_MAX_SHARDS];  /* per answering shard: its query time in us */
    long long elapsed_ms;     /* the whole scatter */
    char error[CG_ERROR_MSG_MAX];   /* why the first missing shard is missing, or "" */
} sr_result;

/* Called on the event_base's thread when an async scatter ends (all shards
 * answered or the timeout passed). status is CG_OK (the result may still be
 * partial) or an error for the whole read (err says which). res is freed
 * when the callback returns; to keep it, copy *res and zero res. */
typedef void (*sr_done_cb)(int status, sr_result *res, const cg_error *err, void *arg);

typedef struct sr_scatter sr_handle;   /* a started async scatter */

/* Starts one worker per shard (shards[i] is shard i; the strings are copied).
 * Workers connect lazily, on their first query. *out is NULL on error. */
int sr_pool_new(const db_config *shards, int n_shards, sr_pool **out, cg_error *err) CG_MUSTCHECK;

int sr_pool_shards(const sr_pool *pool);

/* Stops and joins the workers (each finishes its current query, bounded by
 * the connection's read timeout) and closes the connections. Every async
 * scatter must have completed or been cancelled first. NULL is allowed. */
void sr_pool_free(sr_pool *pool);

/* Runs req and waits at most req->timeout_ms (plus merge time). CG_OK with
 * a filled *res, partial or not; CG_ERR_INVALID for a bad request or a shard
 * answer that breaks the contract; CG_ERR_NOMEM. On error *res is empty.
 * Free with sr_result_free either way. */
int sr_scatter(sr_pool *pool, const sr_request *req, sr_result *res, cg_error *err) CG_MUSTCHECK;

/* As sr_scatter, without blocking: cb runs later on base's thread (never
 * from inside this call). *handle (may be NULL) allows sr_scatter_cancel
 * until cb has run. On error cb is never called. */
int sr_scatter_start(sr_pool *pool, struct event_base *base, const sr_request *req,
                     sr_done_cb cb, void *arg, sr_handle **handle, cg_error *err) CG_MUSTCHECK;

/* Abandons a started scatter: cb will not be called. Only before cb ran,
 * from base's thread. */
void sr_scatter_cancel(sr_handle *sc);

/* Frees the rows and empties res (it can be reused). NULL is allowed. */
void sr_result_free(sr_result *res);

/* ---- the pure merge, exposed for tests ---------------------------------- */

/* One shard's answer: n_rows rows of n_cols values, sorted by the order
 * column descending. */
typedef struct sr_list {
    char ***rows;
    size_t n_rows;
    unsigned int n_cols;
} sr_list;

/* Compares two column values for the merge: <0, 0, >0 as a < b. */
int sr_value_cmp(const char *a, const char *b);

/* Merges n lists (NULL-row lists count as empty) into out[0..*n_out) taking
 * at most `limit` rows of each list and `limit` in all; the row pointers are
 * borrowed from the lists, not copied. out holds `limit` entries.
 * CG_ERR_INVALID when a list is not sorted, lists differ in n_cols, or
 * order_col is out of range. *bad_list names the offending list (or -1). */
int sr_merge_desc(const sr_list *lists, int n, unsigned int order_col, size_t limit,
                  char ***out, size_t *n_out, int *bad_list, cg_error *err) CG_MUSTCHECK;

#endif
