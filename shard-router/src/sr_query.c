/* sr_query.c - cross-shard reads over a pool of shard worker threads; see
 * sr_query.h.
 *
 * Ownership: a scatter holds one slot per asked shard and a reference count
 * (one for its owner, one per slot still queued or running). A worker writes
 * only into its own slot, and only until it marks the slot done under the
 * pool lock; after that the slot belongs to the owner. When the owner stops
 * waiting (all answered or the timeout passed) it takes a snapshot of the
 * done slots, marks the scatter abandoned and reads only those slots; a late
 * worker finds the scatter abandoned, so it neither runs a query nobody
 * awaits nor wakes anyone, and the last of owner and workers to drop its
 * reference frees the scatter. One mutex guards the queues, the done flags
 * and the counts: it is held for a few pointer moves, never during a query. */
#include "sr_query.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

typedef struct sr_scatter sr_scatter_t;

/* One shard's share of a scatter. */
typedef struct sr_slot {
    struct sr_slot *next;     /* in the worker's queue */
    sr_scatter_t *sc;
    int shard;
    char *sql;                /* owned copy */
    int done;                 /* under the pool lock: the worker has finished */
    /* Written by the worker until done, then read by the owner. */
    int status;
    char errmsg[CG_ERROR_MSG_MAX];
    char ***rows;
    size_t n_rows, cap;
    unsigned int n_cols;
    int64_t sum;
    long long us;              /* the query's time on the worker */
} sr_slot;

struct sr_scatter {
    sr_pool *pool;
    enum sr_mode mode;
    uint64_t asked;
    size_t limit;
    unsigned int order_col;
    int timeout_ms;
    long long t0;
    int refs, n_asked, n_done, abandoned;   /* under the pool lock */
    sr_slot slots[SR_MAX_SHARDS];
    /* Async only; owned by the base's thread. */
    struct event_base *base;
    int efd;                  /* workers poke it (under the lock, unless abandoned) */
    struct event *ev_fd, *ev_timer;
    sr_done_cb cb;
    void *cb_arg;
};

typedef struct sr_worker {
    sr_pool *pool;
    int shard;
    pthread_t thread;
    int started;
    pthread_cond_t cond;      /* "the queue is not empty, or stop" */
    int cond_ready;
    sr_slot *head, *tail;     /* under the pool lock */
    int queued;
    /* The worker thread's own. */
    db_config cfg;
    MYSQL *conn;
    int fails;                /* failed connects in a row */
    long long next_try_ms;    /* no connect attempt before this */
} sr_worker;

struct sr_pool {
    int n;
    pthread_mutex_t lock;
    pthread_cond_t done_cond; /* a slot of a blocking scatter is done (CLOCK_MONOTONIC) */
    int lock_ready, cond_ready, stop;
    sr_worker workers[SR_MAX_SHARDS];
};

static long long sr_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long long sr_now_ms(void)
{
    return sr_now_us() / 1000;
}

/* Writes to an eventfd; a full counter (EAGAIN) already means "wake up". */
static void sr_poke(int fd)
{
    uint64_t one = 1;
    ssize_t n;

    do
        n = write(fd, &one, sizeof(one));
    while (n < 0 && errno == EINTR);
}

/* ---- values and the merge ------------------------------------------------ */

/* 1 when s is an optional '-' and one or more digits. */
static int sr_is_int(const char *s)
{
    if (*s == '-')
        s++;
    if (*s == '\0')
        return 0;
    for (; *s != '\0'; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* Compares non-negative digit strings of any length (BIGINT UNSIGNED does
 * not fit an int64). */
static int sr_digits_cmp(const char *a, const char *b)
{
    size_t la, lb;

    while (*a == '0' && a[1] != '\0')
        a++;
    while (*b == '0' && b[1] != '\0')
        b++;
    la = strlen(a);
    lb = strlen(b);
    if (la != lb)
        return la < lb ? -1 : 1;
    return strcmp(a, b);
}

int sr_value_cmp(const char *a, const char *b)
{
    int neg_a, neg_b;

    if (a == NULL || b == NULL)
        return (a != NULL) - (b != NULL);   /* NULL below every value */
    if (!sr_is_int(a) || !sr_is_int(b)) {
        int c = strcmp(a, b);

        return (c > 0) - (c < 0);
    }
    neg_a = a[0] == '-';
    neg_b = b[0] == '-';
    if (neg_a != neg_b)
        return neg_a ? -1 : 1;
    return neg_a ? sr_digits_cmp(b + 1, a + 1) : sr_digits_cmp(a, b);
}

/* The merge; taken[i] (when not NULL) receives how many rows of list i went
 * to out, always a prefix of the list. The heads are scanned linearly: there
 * are at most SR_MAX_SHARDS lists, so a heap would not pay for itself. */
static int sr_merge_core(const sr_list *lists, int n, unsigned int order_col, size_t limit,
                         char ***out, size_t *n_out, size_t *taken, int *bad_list, cg_error *err)
{
    size_t idx[SR_MAX_SHARDS] = {0}, avail[SR_MAX_SHARDS] = {0}, count = 0;
    unsigned int n_cols = 0;
    int i, best, rc = CG_OK;

    *n_out = 0;
    if (bad_list != NULL)
        *bad_list = -1;
    if (n < 0 || n > SR_MAX_SHARDS || (n > 0 && lists == NULL))
        return cg_error_set(err, CG_ERR_INVALID, "sr_merge: %d lists (0..%d)", n, SR_MAX_SHARDS);
    for (i = 0; i < n; i++) {
        const sr_list *l = &lists[i];

        avail[i] = l->rows == NULL ? 0 : (l->n_rows < limit ? l->n_rows : limit);
        if (avail[i] == 0)
            continue;
        if (n_cols != 0 && l->n_cols != n_cols) {
            rc = cg_error_set(err, CG_ERR_INVALID, "sr_merge: shard %d has %u columns, others %u",
                              i, l->n_cols, n_cols);
            goto err;
        }
        n_cols = l->n_cols;
        if (order_col >= n_cols) {
            rc = cg_error_set(err, CG_ERR_INVALID, "sr_merge: order column %u of %u columns",
                              order_col, n_cols);
            goto err;
        }
        for (size_t r = 1; r < avail[i]; r++) {
            if (sr_value_cmp(l->rows[r - 1][order_col], l->rows[r][order_col]) < 0) {
                rc = cg_error_set(err, CG_ERR_INVALID,
                                  "sr_merge: shard %d rows are not sorted by column %u "
                                  "descending (row %zu)", i, order_col, r);
                goto err;
            }
        }
    }
    while (count < limit) {
        best = -1;
        for (i = 0; i < n; i++) {
            if (idx[i] >= avail[i])
                continue;
            /* Strictly greater: on a tie the lower shard goes first. */
            if (best < 0 || sr_value_cmp(lists[i].rows[idx[i]][order_col],
                                         lists[best].rows[idx[best]][order_col]) > 0)
                best = i;
        }
        if (best < 0)
            break;
        out[count++] = lists[best].rows[idx[best]++];
    }
    *n_out = count;
    if (taken != NULL)
        for (i = 0; i < n; i++)
            taken[i] = idx[i];
    goto done;
err:
    if (bad_list != NULL)
        *bad_list = i;
done:
    return rc;
}

int sr_merge_desc(const sr_list *lists, int n, unsigned int order_col, size_t limit,
                  char ***out, size_t *n_out, int *bad_list, cg_error *err)
{
    if (out == NULL || n_out == NULL)
        return cg_error_set(err, CG_ERR_INVALID, "sr_merge: NULL output");
    return sr_merge_core(lists, n, order_col, limit, out, n_out, NULL, bad_list, err);
}

/* ---- slots and scatters ---------------------------------------------------- */

static void sr_slot_clear_rows(sr_slot *s)
{
    for (size_t i = 0; i < s->n_rows; i++)
        free(s->rows[i]);
    free(s->rows);
    s->rows = NULL;
    s->n_rows = s->cap = 0;
    s->n_cols = 0;
    s->sum = 0;
}

static void sr_scatter_free(sr_scatter_t *sc)
{
    if (sc == NULL)
        return;
    for (int i = 0; i < SR_MAX_SHARDS; i++) {
        sr_slot_clear_rows(&sc->slots[i]);
        free(sc->slots[i].sql);
    }
    if (sc->ev_fd != NULL)
        event_free(sc->ev_fd);
    if (sc->ev_timer != NULL)
        event_free(sc->ev_timer);
    if (sc->efd >= 0)
        close(sc->efd);
    free(sc);
}

/* Drops one reference; the last one frees the scatter. */
static void sr_scatter_unref(sr_scatter_t *sc)
{
    sr_pool *pool = sc->pool;
    int last;

    pthread_mutex_lock(&pool->lock);
    last = --sc->refs == 0;
    pthread_mutex_unlock(&pool->lock);
    if (last)
        sr_scatter_free(sc);
}

/* Marks a slot done and wakes its owner. Called with the pool lock held;
 * returns 1 when the caller must free the scatter (after unlocking). */
static int sr_slot_finish_locked(sr_slot *s)
{
    sr_scatter_t *sc = s->sc;

    s->done = 1;
    sc->n_done++;
    if (!sc->abandoned) {
        if (sc->efd >= 0)
            sr_poke(sc->efd);
        else
            pthread_cond_broadcast(&sc->pool->done_cond);
    }
    return --sc->refs == 0;
}

static int sr_check_request(const sr_pool *pool, const sr_request *req, uint64_t *asked,
                            cg_error *err)
{
    uint64_t all = pool->n >= 64 ? UINT64_MAX : (UINT64_C(1) << pool->n) - 1;

    if (req->mode >= SR_MODE_MAX)
        return cg_error_set(err, CG_ERR_INVALID, "sr_scatter: unknown mode %d", (int)req->mode);
    if (req->timeout_ms <= 0)
        return cg_error_set(err, CG_ERR_INVALID, "sr_scatter: timeout_ms must be > 0");
    if (req->mode == SR_ROWS && (req->limit < 1 || req->limit > SR_LIMIT_MAX))
        return cg_error_set(err, CG_ERR_INVALID, "sr_scatter: limit %zu out of 1..%d",
                            req->limit, SR_LIMIT_MAX);
    if (req->mode == SR_ROWS && req->order_col >= SR_COLS_MAX)
        return cg_error_set(err, CG_ERR_INVALID, "sr_scatter: order column %u out of range",
                            req->order_col);
    *asked = req->shards == 0 ? all : req->shards;
    if ((*asked & ~all) != 0)
        return cg_error_set(err, CG_ERR_INVALID, "sr_scatter: shard mask 0x%llx beyond %d shards",
                            (unsigned long long)req->shards, pool->n);
    for (int i = 0; i < pool->n; i++) {
        if ((*asked >> i & 1) == 0)
            continue;
        if (req->sql == NULL && (req->sql_per_shard == NULL || req->sql_per_shard[i] == NULL))
            return cg_error_set(err, CG_ERR_INVALID, "sr_scatter: no SQL for shard %d", i);
    }
    return CG_OK;
}

/* A new scatter for req with one reference (the owner's); nothing queued. */
static int sr_scatter_new(sr_pool *pool, const sr_request *req, sr_scatter_t **out,
                          cg_error *err)
{
    sr_scatter_t *sc = NULL;
    uint64_t asked = 0;
    int rc;

    *out = NULL;
    if (pool == NULL || req == NULL)
        return cg_error_set(err, CG_ERR_INVALID, "sr_scatter: NULL pool or request");
    rc = sr_check_request(pool, req, &asked, err);
    if (rc != CG_OK)
        goto err;
    sc = calloc(1, sizeof(*sc));
    if (sc == NULL) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "sr_scatter: out of memory");
        goto err;
    }
    sc->efd = -1;
    sc->pool = pool;
    sc->mode = req->mode;
    sc->asked = asked;
    sc->limit = req->limit;
    sc->order_col = req->order_col;
    sc->timeout_ms = req->timeout_ms;
    sc->refs = 1;
    for (int i = 0; i < pool->n; i++) {
        sr_slot *s = &sc->slots[i];

        if ((asked >> i & 1) == 0)
            continue;
        s->sc = sc;
        s->shard = i;
        s->sql = strdup(req->sql != NULL ? req->sql : req->sql_per_shard[i]);
        if (s->sql == NULL) {
            rc = cg_error_set(err, CG_ERR_NOMEM, "sr_scatter: out of memory");
            goto err;
        }
        sc->n_asked++;
    }
    *out = sc;
    sc = NULL;
    rc = CG_OK;
    goto done;
err:
    sr_scatter_free(sc);
done:
    return rc;
}

/* Queues every slot on its shard's worker. A shard whose queue is full (or a
 * stopping pool) gets its slot done at once, as missing. */
static void sr_scatter_submit(sr_scatter_t *sc)
{
    sr_pool *pool = sc->pool;

    sc->t0 = sr_now_ms();
    pthread_mutex_lock(&pool->lock);
    for (int i = 0; i < pool->n; i++) {
        sr_slot *s = &sc->slots[i];
        sr_worker *w = &pool->workers[i];

        if ((sc->asked >> i & 1) == 0)
            continue;
        if (pool->stop || w->queued >= SR_QUEUE_MAX) {
            s->status = pool->stop ? CG_ERR_STATE : CG_ERR_FULL;
            snprintf(s->errmsg, sizeof(s->errmsg), "shard %d: %s", i,
                     pool->stop ? "the pool is stopping" : "queue full (shard too slow)");
            s->done = 1;
            sc->n_done++;
            continue;
        }
        s->next = NULL;
        if (w->tail != NULL)
            w->tail->next = s;
        else
            w->head = s;
        w->tail = s;
        w->queued++;
        sc->refs++;
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&pool->lock);
}

/* Under the lock: which slots are done now, and stop the workers from
 * touching the rest. */
static void sr_scatter_snapshot(sr_scatter_t *sc, int *taken)
{
    pthread_mutex_lock(&sc->pool->lock);
    for (int i = 0; i < SR_MAX_SHARDS; i++)
        taken[i] = sc->slots[i].done;
    sc->abandoned = 1;
    pthread_mutex_unlock(&sc->pool->lock);
}

void sr_result_free(sr_result *res)
{
    if (res == NULL)
        return;
    for (size_t i = 0; i < res->n_rows; i++)
        free(res->rows[i]);
    free(res->rows);
    memset(res, 0, sizeof(*res));
}

/* Builds the result from the done slots (taken[]); rows move from the slots
 * into res. */
static int sr_collect(sr_scatter_t *sc, const int *taken, sr_result *res, cg_error *err)
{
    sr_list lists[SR_MAX_SHARDS];
    size_t took[SR_MAX_SHARDS] = {0};
    int bad = -1, rc = CG_OK, n = sc->pool->n;

    memset(res, 0, sizeof(*res));
    memset(lists, 0, sizeof(lists));
    res->mode = sc->mode;
    for (int i = 0; i < n; i++) {
        sr_slot *s = &sc->slots[i];

        if ((sc->asked >> i & 1) == 0)
            continue;
        if (!taken[i] || s->status != CG_OK) {
            res->shard_status[i] = taken[i] ? s->status : CG_ERR_TIMEOUT;
            res->missing[res->n_missing++] = i;
            if (res->error[0] == '\0')
                snprintf(res->error, sizeof(res->error), "%s",
                         taken[i] ? s->errmsg : "no answer within the timeout");
            continue;
        }
        res->shard_us[i] = s->us;
        lists[i].rows = s->rows;
        lists[i].n_rows = s->n_rows;
        lists[i].n_cols = s->n_cols;
        res->sum += s->sum;
    }
    res->partial = res->n_missing > 0;
    if (sc->mode == SR_ROWS) {
        res->rows = calloc(sc->limit, sizeof(*res->rows));
        if (res->rows == NULL) {
            rc = cg_error_set(err, CG_ERR_NOMEM, "sr_scatter: out of memory");
            goto err;
        }
        rc = sr_merge_core(lists, n, sc->order_col, sc->limit, res->rows, &res->n_rows, took,
                           &bad, err);
        if (rc != CG_OK)
            goto err;
        for (int i = 0; i < n; i++) {
            sr_slot *s = &sc->slots[i];

            if (took[i] == 0)
                continue;
            /* The rows now belong to res: the slot keeps the rest. */
            memmove(s->rows, s->rows + took[i], (s->n_rows - took[i]) * sizeof(*s->rows));
            s->n_rows -= took[i];
            if (res->n_cols == 0)
                res->n_cols = s->n_cols;
        }
    }
    res->elapsed_ms = sr_now_ms() - sc->t0;
    goto done;
err:
    free(res->rows);
    memset(res, 0, sizeof(*res));
done:
    return rc;
}

/* ---- the worker ---------------------------------------------------------- */

typedef struct sr_row_ctx {
    sr_slot *slot;
    size_t keep;
} sr_row_ctx;

/* Copies one row into a single allocation: the pointer array, then the
 * strings. Rows beyond the limit are dropped (the guard of the contract). */
static int sr_on_row(void *arg, unsigned int n_fields, char **values)
{
    sr_row_ctx *ctx = arg;
    sr_slot *s = ctx->slot;
    size_t size, len[SR_COLS_MAX];
    char **row, *p;

    if (s->n_rows >= ctx->keep)
        return CG_OK;
    if (n_fields == 0 || n_fields > SR_COLS_MAX)
        return CG_ERR_INVALID;
    if (s->n_rows == s->cap) {
        size_t cap = s->cap == 0 ? 16 : s->cap * 2;
        char ***rows;

        if (cap > ctx->keep)
            cap = ctx->keep;
        rows = realloc(s->rows, cap * sizeof(*rows));
        if (rows == NULL)
            return CG_ERR_NOMEM;
        s->rows = rows;
        s->cap = cap;
    }
    size = n_fields * sizeof(char *);
    for (unsigned int i = 0; i < n_fields; i++) {
        len[i] = values[i] != NULL ? strlen(values[i]) : 0;
        size += values[i] != NULL ? len[i] + 1 : 0;
    }
    row = malloc(size);
    if (row == NULL)
        return CG_ERR_NOMEM;
    p = (char *)(row + n_fields);
    for (unsigned int i = 0; i < n_fields; i++) {
        if (values[i] == NULL) {
            row[i] = NULL;
            continue;
        }
        memcpy(p, values[i], len[i] + 1);
        row[i] = p;
        p += len[i] + 1;
    }
    s->rows[s->n_rows++] = row;
    s->n_cols = n_fields;
    return CG_OK;
}

/* Opens the connection when there is none, unless the backoff says wait. */
static int sr_worker_connect(sr_worker *w, cg_error *err)
{
    long long now = sr_now_ms(), wait;
    int rc;

    if (w->conn != NULL)
        return CG_OK;
    if (now < w->next_try_ms)
        return cg_error_set(err, CG_ERR_IO, "down, next connect attempt in %lld ms",
                            w->next_try_ms - now);
    rc = db_connect(&w->cfg, &w->conn, err);
    if (rc != CG_OK) {
        wait = SR_BACKOFF_MIN_MS;
        for (int i = 0; i < w->fails && wait < SR_BACKOFF_MAX_MS; i++)
            wait *= 2;
        if (wait > SR_BACKOFF_MAX_MS)
            wait = SR_BACKOFF_MAX_MS;
        w->fails++;
        w->next_try_ms = sr_now_ms() + wait;
        if (w->fails == 1)
            log_warn("-", "shard %d: connect failed (%s), retrying every <= %d ms", w->shard,
                     err != NULL ? err->msg : "?", SR_BACKOFF_MAX_MS);
        return rc;
    }
    if (w->fails > 0)
        log_info("-", "shard %d: connected again after %d failed attempts", w->shard, w->fails);
    w->fails = 0;
    return CG_OK;
}

/* Runs one slot's query. A broken connection is closed; when it was an old
 * one (the server restarted since) the read is retried once on a new one:
 * reads are idempotent. A timeout is not retried: it would double the wait. */
static void sr_worker_run(sr_worker *w, sr_slot *s)
{
    cg_error err = {0, ""};
    sr_row_ctx ctx = {s, s->sc->limit};
    long long t0 = sr_now_us();
    int rc = CG_OK, fresh;

    for (int attempt = 0; attempt < 2; attempt++) {
        fresh = w->conn == NULL;
        rc = sr_worker_connect(w, &err);
        if (rc != CG_OK)
            break;
        sr_slot_clear_rows(s);
        if (s->sc->mode == SR_SUM) {
            rc = db_query_int64(w->conn, s->sql, &s->sum, &err);
            if (rc == CG_ERR_NOTFOUND) {   /* SUM over no rows is NULL: 0 */
                s->sum = 0;
                rc = CG_OK;
            }
        } else {
            rc = db_query_rows(w->conn, s->sql, sr_on_row, &ctx, NULL, &err);
            if (rc == CG_ERR_INVALID && err.msg[0] == '\0')
                cg_error_set(&err, rc, "shard %d: a row of more than %d columns", w->shard,
                             SR_COLS_MAX);
        }
        if (rc == CG_OK || rc == CG_ERR_INVALID || rc == CG_ERR_CONFLICT)
            break;
        db_close(w->conn);
        w->conn = NULL;
        if (rc != CG_ERR_IO || fresh)
            break;
        log_info("-", "shard %d: connection lost (%s), reconnecting", w->shard, err.msg);
    }
    if (rc != CG_OK) {
        sr_slot_clear_rows(s);
        snprintf(s->errmsg, sizeof(s->errmsg), "shard %d: %s", w->shard,
                 err.msg[0] != '\0' ? err.msg : cg_status_name(rc));
        log_debug("-", "%s", s->errmsg);
    }
    s->status = rc;
    s->us = sr_now_us() - t0;
}

static void *sr_worker_main(void *arg)
{
    sr_worker *w = arg;
    sr_pool *pool = w->pool;
    sr_slot *s;
    sr_scatter_t *last;
    int skip;

    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->stop && w->head == NULL)
            pthread_cond_wait(&w->cond, &pool->lock);
        if (w->head == NULL)
            break;
        s = w->head;
        w->head = s->next;
        if (w->head == NULL)
            w->tail = NULL;
        w->queued--;
        skip = pool->stop || s->sc->abandoned;
        pthread_mutex_unlock(&pool->lock);
        if (skip) {
            /* Nobody waits for it any more (or the pool is closing). */
            s->status = pool->stop ? CG_ERR_STATE : CG_ERR_TIMEOUT;
            snprintf(s->errmsg, sizeof(s->errmsg), "shard %d: not run (%s)", w->shard,
                     s->status == CG_ERR_STATE ? "pool stopping" : "caller gone");
        } else {
            sr_worker_run(w, s);
        }
        pthread_mutex_lock(&pool->lock);
        last = sr_slot_finish_locked(s) ? s->sc : NULL;
        if (last != NULL) {
            pthread_mutex_unlock(&pool->lock);
            sr_scatter_free(last);
            pthread_mutex_lock(&pool->lock);
        }
    }
    pthread_mutex_unlock(&pool->lock);
    db_close(w->conn);
    w->conn = NULL;
    return NULL;
}

/* ---- the pool ---------------------------------------------------------------- */

static void sr_free_config(db_config *cfg)
{
    free((char *)cfg->host);
    free((char *)cfg->user);
    if (cfg->password != NULL) {
        explicit_bzero((char *)cfg->password, strlen(cfg->password));
        free((char *)cfg->password);
    }
    free((char *)cfg->database);
    memset(cfg, 0, sizeof(*cfg));
}

static int sr_copy_config(db_config *dst, const db_config *src)
{
    *dst = *src;
    dst->host = src->host != NULL ? strdup(src->host) : NULL;
    dst->user = src->user != NULL ? strdup(src->user) : NULL;
    dst->password = src->password != NULL ? strdup(src->password) : NULL;
    dst->database = src->database != NULL ? strdup(src->database) : NULL;
    if ((src->host != NULL && dst->host == NULL) || (src->user != NULL && dst->user == NULL) ||
        (src->password != NULL && dst->password == NULL) ||
        (src->database != NULL && dst->database == NULL))
        return CG_ERR_NOMEM;
    return CG_OK;
}

int sr_pool_new(const db_config *shards, int n_shards, sr_pool **out, cg_error *err)
{
    sr_pool *pool = NULL;
    pthread_condattr_t attr;
    sigset_t all, old;
    int rc;

    if (out != NULL)
        *out = NULL;
    if (shards == NULL || out == NULL || n_shards < 1 || n_shards > SR_MAX_SHARDS)
        return cg_error_set(err, CG_ERR_INVALID, "sr_pool: need 1..%d shards", SR_MAX_SHARDS);
    pool = calloc(1, sizeof(*pool));
    if (pool == NULL) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "sr_pool: out of memory");
        goto err;
    }
    pool->n = n_shards;
    if (pthread_mutex_init(&pool->lock, NULL) != 0) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "sr_pool: pthread_mutex_init failed");
        goto err;
    }
    pool->lock_ready = 1;
    /* The blocking wait has a deadline on the monotonic clock, immune to
     * changes of the wall clock. */
    if (pthread_condattr_init(&attr) != 0 ||
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&pool->done_cond, &attr) != 0) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "sr_pool: pthread_cond_init failed");
        goto err;
    }
    pthread_condattr_destroy(&attr);
    pool->cond_ready = 1;
    for (int i = 0; i < n_shards; i++) {
        sr_worker *w = &pool->workers[i];

        w->pool = pool;
        w->shard = i;
        if (sr_copy_config(&w->cfg, &shards[i]) != CG_OK) {
            rc = cg_error_set(err, CG_ERR_NOMEM, "sr_pool: out of memory");
            goto err;
        }
        if (pthread_cond_init(&w->cond, NULL) != 0) {
            rc = cg_error_set(err, CG_ERR_NOMEM, "sr_pool: pthread_cond_init failed");
            goto err;
        }
        w->cond_ready = 1;
    }
    /* Workers run with every signal blocked: signals belong to the loop
     * thread (SIGTERM), and SIGPIPE from a dead server must not reach them. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < n_shards; i++) {
        sr_worker *w = &pool->workers[i];

        rc = pthread_create(&w->thread, NULL, sr_worker_main, w);
        if (rc != 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            rc = cg_error_set(err, CG_ERR_NOMEM, "sr_pool: pthread_create: %s", strerror(rc));
            goto err;
        }
        w->started = 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    *out = pool;
    rc = CG_OK;
    goto done;
err:
    sr_pool_free(pool);
done:
    return rc;
}

int sr_pool_shards(const sr_pool *pool)
{
    return pool != NULL ? pool->n : 0;
}

void sr_pool_free(sr_pool *pool)
{
    if (pool == NULL)
        return;
    if (pool->lock_ready) {
        pthread_mutex_lock(&pool->lock);
        pool->stop = 1;
        for (int i = 0; i < pool->n; i++)
            if (pool->workers[i].cond_ready)
                pthread_cond_signal(&pool->workers[i].cond);
        pthread_mutex_unlock(&pool->lock);
    }
    for (int i = 0; i < pool->n; i++) {
        sr_worker *w = &pool->workers[i];

        /* A worker drains its queue (each slot not run) before it exits. */
        if (w->started)
            pthread_join(w->thread, NULL);
        if (w->cond_ready)
            pthread_cond_destroy(&w->cond);
        sr_free_config(&w->cfg);
    }
    if (pool->cond_ready)
        pthread_cond_destroy(&pool->done_cond);
    if (pool->lock_ready)
        pthread_mutex_destroy(&pool->lock);
    free(pool);
}

/* ---- blocking and async scatters ---------------------------------------------- */

int sr_scatter(sr_pool *pool, const sr_request *req, sr_result *res, cg_error *err)
{
    sr_scatter_t *sc = NULL;
    int taken[SR_MAX_SHARDS];
    struct timespec deadline;
    long long end_ms;
    int rc;

    if (res == NULL)
        return cg_error_set(err, CG_ERR_INVALID, "sr_scatter: NULL result");
    memset(res, 0, sizeof(*res));
    rc = sr_scatter_new(pool, req, &sc, err);
    if (rc != CG_OK)
        goto done;
    sr_scatter_submit(sc);
    end_ms = sc->t0 + sc->timeout_ms;
    deadline.tv_sec = (time_t)(end_ms / 1000);
    deadline.tv_nsec = (long)(end_ms % 1000) * 1000000L;
    pthread_mutex_lock(&pool->lock);
    while (sc->n_done < sc->n_asked) {
        if (pthread_cond_timedwait(&pool->done_cond, &pool->lock, &deadline) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&pool->lock);
    sr_scatter_snapshot(sc, taken);
    rc = sr_collect(sc, taken, res, err);
    sr_scatter_unref(sc);
done:
    return rc;
}

/* Ends an async scatter on the base's thread: stops the workers from poking,
 * frees the events and, when asked, delivers the result. */
static void sr_async_finish(sr_scatter_t *sc, int deliver)
{
    int taken[SR_MAX_SHARDS];
    cg_error err = {0, ""};
    sr_result res;
    int rc;

    sr_scatter_snapshot(sc, taken);
    event_free(sc->ev_fd);
    event_free(sc->ev_timer);
    sc->ev_fd = sc->ev_timer = NULL;
    close(sc->efd);   /* safe: no worker pokes an abandoned scatter */
    sc->efd = -1;
    if (deliver) {
        rc = sr_collect(sc, taken, &res, &err);
        sc->cb(rc, &res, &err, sc->cb_arg);
        sr_result_free(&res);
    }
    sr_scatter_unref(sc);
}

static void sr_on_efd(evutil_socket_t fd, short what, void *arg)
{
    sr_scatter_t *sc = arg;
    uint64_t v;
    int all;

    (void)what;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warn("-", "sr_scatter: reading the eventfd: %s", strerror(errno));
    pthread_mutex_lock(&sc->pool->lock);
    all = sc->n_done == sc->n_asked;
    pthread_mutex_unlock(&sc->pool->lock);
    if (all)
        sr_async_finish(sc, 1);
}

static void sr_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sr_async_finish(arg, 1);
}

int sr_scatter_start(sr_pool *pool, struct event_base *base, const sr_request *req,
                     sr_done_cb cb, void *arg, sr_handle **handle, cg_error *err)
{
    sr_scatter_t *sc = NULL;
    struct timeval tv;
    int rc;

    if (handle != NULL)
        *handle = NULL;
    if (base == NULL || cb == NULL)
        return cg_error_set(err, CG_ERR_INVALID, "sr_scatter_start: base and cb are required");
    rc = sr_scatter_new(pool, req, &sc, err);
    if (rc != CG_OK)
        goto err;
    sc->base = base;
    sc->cb = cb;
    sc->cb_arg = arg;
    sc->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (sc->efd < 0) {
        rc = cg_error_set(err, CG_ERR_IO, "sr_scatter_start: eventfd: %s", strerror(errno));
        goto err;
    }
    sc->ev_fd = event_new(base, sc->efd, EV_READ | EV_PERSIST, sr_on_efd, sc);
    sc->ev_timer = evtimer_new(base, sr_on_timeout, sc);
    tv.tv_sec = sc->timeout_ms / 1000;
    tv.tv_usec = (sc->timeout_ms % 1000) * 1000;
    if (sc->ev_fd == NULL || sc->ev_timer == NULL || event_add(sc->ev_fd, NULL) != 0 ||
        evtimer_add(sc->ev_timer, &tv) != 0) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "sr_scatter_start: cannot register events");
        goto err;
    }
    sr_scatter_submit(sc);
    /* Every shard may have failed at once (full queues): the loop still
     * delivers it, never this call. */
    pthread_mutex_lock(&pool->lock);
    if (sc->n_done == sc->n_asked)
        sr_poke(sc->efd);
    pthread_mutex_unlock(&pool->lock);
    if (handle != NULL)
        *handle = sc;
    rc = CG_OK;
    goto done;
err:
    sr_scatter_free(sc);
done:
    return rc;
}

void sr_scatter_cancel(sr_handle *sc)
{
    if (sc != NULL)
        sr_async_finish(sc, 0);
}
