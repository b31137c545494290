/* ord_shard.c - the per-shard worker: batching, transactions, reconnects; see ord_shard.h.
 *
 * Why the barrier is safe in both orders (REPEATABLE READ, set on connect):
 *  - create: BEGIN; SELECT saga_id FROM saga_barriers WHERE saga_id IN (...)
 *    LOCK IN SHARE MODE; INSERT the rows of the sagas without a barrier; COMMIT.
 *  - cancel: BEGIN; INSERT IGNORE INTO saga_barriers ...; DELETE FROM
 *    coupon_results WHERE saga_id IN (...); COMMIT.
 *  If the create's locking read comes first, it holds a shared lock on each
 *  barrier row, or on the index gap where a missing one would go, until it
 *  commits; the cancel's barrier insert waits for that, and its DELETE, a
 *  locking read of the latest committed rows, then finds and removes the row.
 *  If the cancel's barrier insert comes first, the create's locking read waits
 *  for the cancel to commit and then sees the barrier (locking reads see the
 *  latest committed version, not the snapshot), so it inserts nothing. Either
 *  way the end state is barrier + no row. Lock cycles between two batches
 *  surface as deadlocks (CG_ERR_CONFLICT): the transaction is re-run, then
 *  item by item.
 *
 * Unknown outcomes: a COMMIT whose answer was lost marks its items
 * commit_unknown; they go back to the queue and the same idempotent
 * transaction runs again after the reconnect, which tells what is there. */
#include "ord_shard.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "ord_sql.h"

#define ORD_SHARD_LABEL_MAX 320
#define ORD_SHARD_ADDR_MAX 256
#define ORD_BACKLOG_LOG_MS 5000     /* how often a down shard logs its backlog */
#define ORD_CONFLICT_PAUSE_MS 200   /* pause after items kept conflicting alone */

struct ord_shard {
    /* Set by ord_shard_new, read-only afterwards. */
    ord_shard_config cfg;
    char addr_buf[ORD_SHARD_ADDR_MAX];     /* cfg.db's strings */
    char user_buf[128], password_buf[512];
    char label[ORD_SHARD_LABEL_MAX];
    struct event_base *base;
    ord_shard_done_cb on_done;
    void *arg;
    int event_fd;                          /* worker -> loop: look at `done` */
    int lock_ready, cond_ready;

    pthread_mutex_t lock;                  /* guards the fields below */
    pthread_cond_t cond;                   /* worker waits for work, stop or a deadline */
    ord_queue queue;
    ord_list done;
    int stop;
    int state;                             /* enum ord_shard_state */

    /* Loop thread only. */
    struct event *ev;
    pthread_t thread;
    int thread_started;

    /* Worker thread only. */
    MYSQL *conn;
    long long down_since_ms;               /* when the shard became unreachable, 0 when up */
    long long next_connect_ms;
    long long pause_until_ms;
    long long next_backlog_log_ms;
    size_t n_given_up;                     /* creates given up since the last backlog log */
    int backoff_ms;
    uint32_t rand_state;
    ord_item *batch[MSG_MAX_BATCH];
    ord_item *back[MSG_MAX_BATCH];
    char sql[ORD_SQL_MAX];
};

static const char *const ord_shard_state_names[ORD_SHARD_STATE_MAX] = {
    "connecting", "up", "down", "stopped",
};

static long long ord_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ord_sleep_ms(long long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static uint32_t ord_rand(ord_shard *s)
{
    /* xorshift32: jitter only. */
    uint32_t x = s->rand_state;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s->rand_state = x;
    return x;
}

const char *ord_shard_state_name(int state)
{
    return state >= 0 && state < ORD_SHARD_STATE_MAX ? ord_shard_state_names[state] : "?";
}

/* The one setter of the state; call with the lock held. */
static void ord_shard_set_state(ord_shard *s, int to)
{
    assert(to >= 0 && to < ORD_SHARD_STATE_MAX);
    if (s->state == to)
        return;
    log_debug(s->label, "state %s -> %s", ord_shard_state_name(s->state), ord_shard_state_name(to));
    s->state = to;
}

/* Wakes the loop to collect `done`. */
static void ord_shard_poke(ord_shard *s)
{
    uint64_t one = 1;
    ssize_t n;

    do {
        n = write(s->event_fd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
}

/* ---- connection --------------------------------------------------------- */

static void ord_shard_close(ord_shard *s)
{
    db_close(s->conn);
    s->conn = NULL;
}

/* Called with the lock held, after closing the connection: it broke; retry at once (a killed
 * connection to a live server comes back), then with backoff. */
static void ord_shard_lost(ord_shard *s, const cg_error *err)
{
    long long now = ord_now_ms();

    log_warn(s->label, "connection lost: %s", err->msg);
    if (s->down_since_ms == 0)
        s->down_since_ms = now;
    s->next_connect_ms = now;
    s->next_backlog_log_ms = now + ORD_BACKLOG_LOG_MS;
    ord_shard_set_state(s, ORD_SHARD_DOWN);
}

static int ord_shard_open(ord_shard *s, cg_error *err)
{
    char sql[96];
    long long wait_s = s->cfg.db.read_timeout_ms / 2000;
    int rc;

    rc = db_connect(&s->cfg.db, &s->conn, err);
    if (rc != CG_OK)
        goto done;
    /* The barrier argument (top of file) needs gap locks: REPEATABLE READ,
     * whatever the server default. A lock wait must end well within the read
     * timeout, so that it surfaces as a conflict (retried) and not as a
     * broken connection (an unknown outcome). */
    rc = db_exec(s->conn, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", NULL, err);
    if (rc != CG_OK)
        goto done;
    snprintf(sql, sizeof(sql), "SET SESSION innodb_lock_wait_timeout = %lld",
             wait_s < 1 ? 1 : wait_s);
    rc = db_exec(s->conn, sql, NULL, err);
done:
    if (rc != CG_OK)
        ord_shard_close(s);
    return rc;
}

/* One connect attempt; the lock is not held. */
static void ord_shard_connect(ord_shard *s)
{
    cg_error err = {0, ""};
    long long now;
    int rc = ord_shard_open(s, &err), was;

    now = ord_now_ms();
    pthread_mutex_lock(&s->lock);
    was = s->state;
    if (rc == CG_OK) {
        if (was == ORD_SHARD_DOWN)
            log_info(s->label, "up again after %.1fs, %zu items waiting",
                     (double)(now - s->down_since_ms) / 1000.0, ord_queue_len(&s->queue));
        else
            log_info(s->label, "connected");
        s->down_since_ms = 0;
        s->backoff_ms = s->cfg.reconnect_min_ms;
        ord_shard_set_state(s, ORD_SHARD_UP);
    } else {
        if (s->down_since_ms == 0) {
            s->down_since_ms = now;
            s->next_backlog_log_ms = now + ORD_BACKLOG_LOG_MS;
        }
        if (was != ORD_SHARD_DOWN)
            log_warn(s->label, "unreachable: %s", err.msg);
        else
            log_debug(s->label, "reconnect failed: %s", err.msg);
        s->next_connect_ms = now + s->backoff_ms + (long long)(ord_rand(s) % (uint32_t)(s->backoff_ms / 4 + 1));
        s->backoff_ms = s->backoff_ms * 2 > s->cfg.reconnect_max_ms ? s->cfg.reconnect_max_ms
                                                                     : s->backoff_ms * 2;
        ord_shard_set_state(s, ORD_SHARD_DOWN);
    }
    pthread_mutex_unlock(&s->lock);
}

/* ---- transactions (lock not held) ---------------------------------------- */

struct ord_barrier_scan {
    ord_item *const *items;
    size_t n;
};

static int ord_on_barrier_row(void *arg, unsigned int n_fields, char **values)
{
    struct ord_barrier_scan *scan = arg;

    if (n_fields >= 1 && values[0] != NULL)
        (void)ord_items_mark_barred(scan->items, scan->n, values[0]);
    return CG_OK;
}

static int ord_txn_create_body(ord_shard *s, ord_item *const *items, size_t n, cg_error *err)
{
    struct ord_barrier_scan scan = {items, n};
    size_t rows = 0;
    int rc;

    for (size_t i = 0; i < n; i++)
        items[i]->barred = 0;
    rc = ord_sql_barrier_select(items, n, s->sql, sizeof(s->sql));
    if (rc != CG_OK)
        return cg_error_set(err, rc, "building the barrier query: %s", cg_status_name(rc));
    rc = db_query_rows(s->conn, s->sql, ord_on_barrier_row, &scan, NULL, err);
    if (rc != CG_OK)
        return rc;
    rc = ord_sql_create_insert(items, n, s->sql, sizeof(s->sql), &rows);
    if (rc != CG_OK)
        return cg_error_set(err, rc, "building the insert: %s", cg_status_name(rc));
    if (rows > 0)
        rc = db_exec(s->conn, s->sql, NULL, err);
    return rc;
}

static int ord_txn_cancel_body(ord_shard *s, ord_item *const *items, size_t n, cg_error *err)
{
    int rc;

    rc = ord_sql_cancel_barriers(items, n, s->sql, sizeof(s->sql));
    if (rc != CG_OK)
        return cg_error_set(err, rc, "building the barrier insert: %s", cg_status_name(rc));
    rc = db_exec(s->conn, s->sql, NULL, err);
    if (rc != CG_OK)
        return rc;
    rc = ord_sql_cancel_delete(items, n, s->sql, sizeof(s->sql));
    if (rc != CG_OK)
        return cg_error_set(err, rc, "building the delete: %s", cg_status_name(rc));
    return db_exec(s->conn, s->sql, NULL, err);
}

/* Errors after which the connection is closed and the outcome of a COMMIT
 * under way is unknown (the connector's out-of-memory can strike mid-reply). */
static int ord_is_conn_error(int rc)
{
    return rc == CG_ERR_IO || rc == CG_ERR_TIMEOUT || rc == CG_ERR_STATE || rc == CG_ERR_NOMEM;
}

/* One attempt at the whole transaction. On CG_OK the items' outcomes are set.
 * A connection error leaves the connection to the caller to close; any other
 * error has been rolled back. */
static int ord_txn(ord_shard *s, ord_item *const *items, size_t n, int op, cg_error *err)
{
    cg_error rb_err = {0, ""};
    int rc, rb;

    rc = db_exec(s->conn, "BEGIN", NULL, err);
    if (rc != CG_OK)
        goto done;
    rc = op == ORD_OP_CREATE ? ord_txn_create_body(s, items, n, err)
                             : ord_txn_cancel_body(s, items, n, err);
    if (rc != CG_OK)
        goto rollback;
    rc = db_exec(s->conn, "COMMIT", NULL, err);
    if (ord_is_conn_error(rc)) {
        /* Sent, but the answer is lost: it may have committed. */
        for (size_t i = 0; i < n; i++)
            items[i]->commit_unknown = 1;
        log_warn(s->label, "COMMIT of %zu %s items has an unknown outcome; re-running after "
                 "reconnect", n, op == ORD_OP_CREATE ? "create" : "cancel");
    }
    if (rc != CG_OK)
        goto done;
    if (op == ORD_OP_CREATE)
        ord_items_settle_create(items, n);
    else
        ord_items_settle_cancel(items, n);
    goto done;

rollback:
    if (!ord_is_conn_error(rc)) {
        /* A deadlock has rolled back already, a lock wait timeout only its
         * statement: end the transaction either way. */
        rb = db_exec(s->conn, "ROLLBACK", NULL, &rb_err);
        if (rb != CG_OK) {
            *err = rb_err;
            rc = rb;
        }
    }
done:
    return rc;
}

/* The transaction, re-run after conflicts up to txn_retries times. */
static int ord_txn_retry(ord_shard *s, ord_item *const *items, size_t n, int op, cg_error *err)
{
    int rc;

    for (int attempt = 0;; attempt++) {
        rc = ord_txn(s, items, n, op, err);
        if (rc != CG_ERR_CONFLICT || attempt >= s->cfg.txn_retries)
            break;
        log_debug(s->label, "conflict on %zu items (attempt %d): %s", n, attempt + 1, err->msg);
        ord_sleep_ms((5LL << attempt) + ord_rand(s) % 5);
    }
    return rc;
}

/* Holds the queue back a while after items were kept: briefly after lock
 * conflicts, longer after a refusal that needs someone to act (a missing
 * table, a read-only server), so that neither spins. */
static void ord_shard_pause(ord_shard *s, int rc)
{
    s->pause_until_ms = ord_now_ms() + (rc == CG_ERR_CONFLICT ? ORD_CONFLICT_PAUSE_MS
                                                              : s->cfg.reconnect_max_ms);
}

static void ord_log_item(const ord_shard *s, const ord_item *it)
{
    if (it->outcome == ORD_OUT_FAILED)
        log_info(it->in.saga_id, "%s: create failed: %s", s->label, it->reason);
    else
        log_debug(it->in.saga_id, "%s: %s", s->label, ord_outcome_result(it->outcome));
}

/* Runs a taken batch. Decided items go to done; undecided ones to s->back
 * (count in *n_back) for the queue's front. Returns CG_OK, or the connection
 * error that ended the run (the connection is then closed by the caller). */
static int ord_shard_run(ord_shard *s, ord_item **items, size_t n, int op, ord_list *done,
                         size_t *n_back, cg_error *err)
{
    int rc, stop;
    size_t i;

    *n_back = 0;
    rc = ord_txn_retry(s, items, n, op, err);
    if (rc == CG_OK) {
        for (i = 0; i < n; i++) {
            ord_log_item(s, items[i]);
            ord_list_push(done, items[i]);
        }
        return CG_OK;
    }
    if (ord_is_conn_error(rc) || n == 1)
        goto alone_failed;
    /* The batch keeps conflicting (or one item is refused): item by item, so
     * that one bad item or hot lock does not hold back the rest. */
    log_warn(s->label, "batch of %zu failed (%s), running item by item", n, err->msg);
    for (i = 0; i < n; i++) {
        pthread_mutex_lock(&s->lock);
        stop = s->stop;
        pthread_mutex_unlock(&s->lock);
        if (stop) {
            rc = CG_OK;
            break;
        }
        rc = ord_txn_retry(s, &items[i], 1, op, err);
        if (rc == CG_OK) {
            ord_log_item(s, items[i]);
            ord_list_push(done, items[i]);
            continue;
        }
        if (ord_is_conn_error(rc))
            break;
        if (rc != CG_ERR_CONFLICT && op == ORD_OP_CREATE && !items[i]->commit_unknown) {
            /* Refused by the server and rolled back: definitely no row. */
            log_error(items[i]->in.saga_id, "%s: create refused: %s", s->label, err->msg);
            items[i]->outcome = ORD_OUT_FAILED;
            items[i]->reason = ORD_REASON_DB_ERROR;
            ord_list_push(done, items[i]);
            continue;
        }
        /* A cancel (never given up) or a create that may be committed: keep it. */
        log_warn(items[i]->in.saga_id, "%s: %s kept for a later retry: %s", s->label,
                 op == ORD_OP_CREATE ? "create" : "cancel", err->msg);
        s->back[(*n_back)++] = items[i];
        ord_shard_pause(s, rc);
    }
    for (; i < n; i++)
        s->back[(*n_back)++] = items[i];
    return rc == CG_OK || !ord_is_conn_error(rc) ? CG_OK : rc;

alone_failed:
    if (!ord_is_conn_error(rc) && op == ORD_OP_CREATE && !items[0]->commit_unknown &&
        rc != CG_ERR_CONFLICT) {
        log_error(items[0]->in.saga_id, "%s: create refused: %s", s->label, err->msg);
        items[0]->outcome = ORD_OUT_FAILED;
        items[0]->reason = ORD_REASON_DB_ERROR;
        ord_list_push(done, items[0]);
        return CG_OK;
    }
    for (i = 0; i < n; i++)
        s->back[(*n_back)++] = items[i];
    if (!ord_is_conn_error(rc)) {
        log_warn(s->label, "%zu %s items kept for a later retry: %s", n,
                 op == ORD_OP_CREATE ? "create" : "cancel", err->msg);
        ord_shard_pause(s, rc);
        return CG_OK;
    }
    return rc;
}

/* ---- the worker ---------------------------------------------------------- */

/* Waits on the condition until deadline_ms (monotonic; < 0: no deadline). */
static void ord_shard_wait(ord_shard *s, long long deadline_ms)
{
    struct timespec ts;

    if (deadline_ms < 0) {
        pthread_cond_wait(&s->cond, &s->lock);
        return;
    }
    ts.tv_sec = (time_t)(deadline_ms / 1000);
    ts.tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
    (void)pthread_cond_timedwait(&s->cond, &s->lock, &ts);
}

static long long ord_min_deadline(long long a, long long b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

/* With the lock held, while the shard is down: gives up overdue creates and
 * logs the backlog now and then. Returns when to look again (-1: never). */
static long long ord_shard_down_chores(ord_shard *s, long long now)
{
    ord_list gave_up = {NULL, NULL, 0};

    if (ord_queue_give_up(&s->queue, now, s->down_since_ms, s->cfg.give_up_ms, &gave_up) > 0) {
        for (const ord_item *it = gave_up.head; it != NULL; it = it->next)
            log_info(it->in.saga_id, "%s: create failed: %s (unreachable for %.1fs)", s->label,
                     it->reason, (double)(now - s->down_since_ms) / 1000.0);
        s->n_given_up += gave_up.n;
        ord_list_splice(&s->done, &gave_up);
        ord_shard_poke(s);
    }
    if (now >= s->next_backlog_log_ms) {
        if (ord_queue_len(&s->queue) > 0 || s->n_given_up > 0)
            log_warn(s->label, "unreachable for %.1fs: %zu creates, %zu cancels waiting; %zu "
                     "creates given up since the last report",
                     (double)(now - s->down_since_ms) / 1000.0,
                     ord_queue_len_op(&s->queue, ORD_OP_CREATE),
                     ord_queue_len_op(&s->queue, ORD_OP_CANCEL), s->n_given_up);
        s->n_given_up = 0;
        s->next_backlog_log_ms = now + ORD_BACKLOG_LOG_MS;
    }
    return ord_min_deadline(ord_queue_next_give_up(&s->queue, s->down_since_ms, s->cfg.give_up_ms),
                            s->next_backlog_log_ms);
}

/* Takes one batch and runs it, dropping the lock meanwhile. */
static void ord_shard_work(ord_shard *s)
{
    ord_list done = {NULL, NULL, 0};
    cg_error err = {0, ""};
    size_t n, n_back = 0;
    int op = ORD_OP_CREATE, rc;

    n = ord_queue_take(&s->queue, s->cfg.batch_max, s->batch, &op);
    pthread_mutex_unlock(&s->lock);
    rc = ord_shard_run(s, s->batch, n, op, &done, &n_back, &err);
    if (rc != CG_OK)
        ord_shard_close(s);
    pthread_mutex_lock(&s->lock);
    ord_queue_put_back(&s->queue, s->back, n_back);
    if (rc != CG_OK)
        ord_shard_lost(s, &err);
    if (done.n > 0) {
        ord_list_splice(&s->done, &done);
        ord_shard_poke(s);
    }
}

static void *ord_shard_main(void *arg)
{
    ord_shard *s = arg;
    long long now, wake;

    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        now = ord_now_ms();
        wake = -1;
        switch (s->state) {
        case ORD_SHARD_CONNECTING:
        case ORD_SHARD_DOWN:
            if (s->state == ORD_SHARD_DOWN)
                wake = ord_shard_down_chores(s, now);
            if (now >= s->next_connect_ms) {
                pthread_mutex_unlock(&s->lock);
                ord_shard_connect(s);
                pthread_mutex_lock(&s->lock);
                continue;
            }
            wake = ord_min_deadline(wake, s->next_connect_ms);
            break;
        case ORD_SHARD_UP:
            if (now < s->pause_until_ms) {
                wake = s->pause_until_ms;
                break;
            }
            if (ord_queue_len(&s->queue) > 0) {
                ord_shard_work(s);
                continue;
            }
            break;
        default:
            log_error(s->label, "worker in state %d", s->state);
            abort();
        }
        ord_shard_wait(s, wake);
    }
    ord_shard_close(s);
    ord_shard_set_state(s, ORD_SHARD_STOPPED);
    pthread_mutex_unlock(&s->lock);
    ord_shard_poke(s);
    return NULL;
}

/* ---- loop side ----------------------------------------------------------- */

static void ord_shard_on_event(evutil_socket_t fd, short what, void *arg)
{
    ord_shard *s = arg;
    ord_list done = {NULL, NULL, 0};
    uint64_t n;

    (void)what;
    /* Reset the counter before taking the list: a poke after the take is
     * seen on the next round, so nothing is left behind. */
    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        log_warn(s->label, "eventfd read: %s", strerror(errno));
    pthread_mutex_lock(&s->lock);
    ord_list_splice(&done, &s->done);
    pthread_mutex_unlock(&s->lock);
    s->on_done(s, &done, s->arg);
}

static int ord_copy_str(const char **dst, const char *src, char *buf, size_t len)
{
    if (src == NULL) {
        *dst = NULL;
        return CG_OK;
    }
    if (strlen(src) >= len)
        return CG_ERR_INVALID;
    memcpy(buf, src, strlen(src) + 1);
    *dst = buf;
    return CG_OK;
}

ord_shard *ord_shard_new(struct event_base *base, const ord_shard_config *cfg,
                         ord_shard_done_cb on_done, void *arg, cg_error *err)
{
    pthread_condattr_t ca;
    ord_shard *s = calloc(1, sizeof(*s));
    const char *host = cfg->db.host != NULL ? cfg->db.host : "127.0.0.1";
    const char *database = cfg->db.database != NULL ? cfg->db.database : "";
    size_t host_len = strlen(host);
    int rc;

    if (s == NULL) {
        cg_error_set(err, CG_ERR_NOMEM, "shard %d: out of memory", cfg->index);
        goto err;
    }
    s->event_fd = -1;
    s->cfg = *cfg;
    /* Own copies of the strings: "host\0database\0" in addr_buf. */
    if (host_len + strlen(database) + 2 > sizeof(s->addr_buf) ||
        ord_copy_str(&s->cfg.db.user, cfg->db.user, s->user_buf, sizeof(s->user_buf)) != CG_OK ||
        ord_copy_str(&s->cfg.db.password, cfg->db.password, s->password_buf,
                     sizeof(s->password_buf)) != CG_OK) {
        cg_error_set(err, CG_ERR_INVALID, "shard %d: database settings too long", cfg->index);
        goto err;
    }
    memcpy(s->addr_buf, host, host_len + 1);
    memcpy(s->addr_buf + host_len + 1, database, strlen(database) + 1);
    s->cfg.db.host = s->addr_buf;
    s->cfg.db.database = database[0] != '\0' ? s->addr_buf + host_len + 1 : NULL;
    if (s->cfg.batch_max < 1 || s->cfg.batch_max > MSG_MAX_BATCH)
        s->cfg.batch_max = MSG_MAX_BATCH;
    if (s->cfg.reconnect_min_ms < 1)
        s->cfg.reconnect_min_ms = 1;
    if (s->cfg.reconnect_max_ms < s->cfg.reconnect_min_ms)
        s->cfg.reconnect_max_ms = s->cfg.reconnect_min_ms;
    s->backoff_ms = s->cfg.reconnect_min_ms;
    s->rand_state = (uint32_t)((uint64_t)ord_now_ms() * 2654435761u) ^ (uint32_t)(cfg->index + 1);
    if (s->rand_state == 0)
        s->rand_state = 1;
    snprintf(s->label, sizeof(s->label), "shard %d (%s:%d/%s)", cfg->index, s->cfg.db.host,
             s->cfg.db.port, database);
    s->base = base;
    s->on_done = on_done;
    s->arg = arg;
    s->state = ORD_SHARD_CONNECTING;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        cg_error_set(err, CG_ERR_NOMEM, "%s: mutex", s->label);
        goto err;
    }
    s->lock_ready = 1;
    /* Deadlines are on the monotonic clock, like every timer here. */
    if (pthread_condattr_init(&ca) != 0 || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&s->cond, &ca) != 0) {
        cg_error_set(err, CG_ERR_NOMEM, "%s: condition variable", s->label);
        goto err;
    }
    pthread_condattr_destroy(&ca);
    s->cond_ready = 1;
    s->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->event_fd < 0) {
        cg_error_set(err, CG_ERR_IO, "%s: eventfd: %s", s->label, strerror(errno));
        goto err;
    }
    s->ev = event_new(base, s->event_fd, EV_READ | EV_PERSIST, ord_shard_on_event, s);
    if (s->ev == NULL || event_add(s->ev, NULL) != 0) {
        cg_error_set(err, CG_ERR_NOMEM, "%s: event", s->label);
        goto err;
    }
    rc = pthread_create(&s->thread, NULL, ord_shard_main, s);
    if (rc != 0) {
        cg_error_set(err, CG_ERR_NOMEM, "%s: thread: %s", s->label, strerror(rc));
        goto err;
    }
    s->thread_started = 1;
    return s;

err:
    ord_shard_free(s);
    return NULL;
}

void ord_shard_submit(ord_shard *s, ord_list *items)
{
    long long now = ord_now_ms();
    ord_item *it;

    pthread_mutex_lock(&s->lock);
    while ((it = ord_list_pop(items)) != NULL)
        ord_queue_push(&s->queue, it, now);
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

void ord_shard_stop(ord_shard *s)
{
    pthread_mutex_lock(&s->lock);
    s->stop = 1;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

int ord_shard_state(ord_shard *s)
{
    int state;

    pthread_mutex_lock(&s->lock);
    state = s->state;
    pthread_mutex_unlock(&s->lock);
    return state;
}

int ord_shard_index(const ord_shard *s)
{
    return s->cfg.index;
}

const char *ord_shard_label(const ord_shard *s)
{
    return s->label;
}

void ord_shard_free(ord_shard *s)
{
    if (s == NULL)
        return;
    if (s->thread_started) {
        ord_shard_stop(s);
        pthread_join(s->thread, NULL);
    }
    if (s->ev != NULL)
        event_free(s->ev);
    if (s->event_fd >= 0)
        close(s->event_fd);
    if (s->cond_ready)
        pthread_cond_destroy(&s->cond);
    if (s->lock_ready)
        pthread_mutex_destroy(&s->lock);
    db_close(s->conn);
    free(s);
}
