/* stock_coupon.c - one coupon's pending items and its one job at a time.
 *
 * Items of every admitted delivery queue up per coupon; a job takes a batch
 * (the longest run of one kind at the head of the queue, up to batch_max),
 * so that one Redis round trip and one transaction serve many sagas, and
 * only one transaction per coupon is in flight in this process (other
 * coupons run in parallel on other leases).
 *
 * A reserve batch first takes the cheap path on shared connections: GET the
 * stock and HMGET the batch's sagas. Recorded sagas get their answer again,
 * an unknown coupon is rejected, and a sold-out coupon records
 * J:out_of_stock with HSETNX (a redelivered reserve must not succeed later
 * when stock comes back; with WAIT on, the transaction records it instead);
 * only when stock is left does the batch go on to the transaction. A
 * release batch goes straight to it.
 *
 * The transaction runs on a lease: WATCH the three keys, read (GET stock,
 * HMGET sagas, SMISMEMBER holders), decide (stock_decide.c), then MULTI,
 * DECRBY/INCRBY, SADD/SREM, HSET, EXEC; optionally WAIT for replicas (a
 * short count is logged and answered; a lost WAIT is retried, as below). A
 * nil EXEC (another process changed the keys) retries the batch after a
 * jittered backoff, at most max_watch_retries times, then the deliveries
 * are nacked with requeue. A timeout or lost connection leaves the outcome
 * unknown: the batch is retried after a backoff and finds its own recorded
 * outcome if the EXEC did apply. Error replies are retried a few times,
 * then the batch's deliveries are dead-lettered with the error. */
#include "stock_int.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define STOCK_WATCH_BACKOFF_CAP 64   /* a conflict backoff grows to watch_backoff_ms * this */

static const char *const stock_coupon_state_names[STOCK_CP_STATE_MAX] = {
    "idle", "runnable", "check", "mark", "lease-wait", "watch", "exec", "wait", "backoff",
};

const char *stock_coupon_state_name(int state)
{
    return state >= 0 && state < STOCK_CP_STATE_MAX ? stock_coupon_state_names[state] : "?";
}

static void stock_coupon_set_state(stock_coupon *cp, int state)
{
    assert(state >= 0 && state < STOCK_CP_STATE_MAX);
    log_debug("-", "coupon %lld: %s -> %s", cp->id, stock_coupon_state_names[cp->state],
              stock_coupon_state_names[state]);
    cp->state = state;
}

/* ---- the table ------------------------------------------------------------------ */

static size_t stock_slot(const stock_svc *svc, long long id)
{
    uint64_t x = (uint64_t)id * 0x9e3779b97f4a7c15ULL;

    return (size_t)(x >> 32) & (svc->table_size - 1);
}

stock_coupon *stock_coupon_find(stock_svc *svc, long long id)
{
    stock_coupon *cp;

    if (svc->table == NULL)
        return NULL;
    for (cp = svc->table[stock_slot(svc, id)]; cp != NULL && cp->id != id; cp = cp->hnext)
        ;
    return cp;
}

static int stock_table_grow(stock_svc *svc)
{
    size_t old_size = svc->table_size, size = old_size ? old_size * 2 : 64;
    stock_coupon **old = svc->table, **t = calloc(size, sizeof(*t));

    if (t == NULL)
        return CG_ERR_NOMEM;
    svc->table = t;
    svc->table_size = size;
    for (size_t i = 0; i < old_size; i++) {
        stock_coupon *cp, *next;

        for (cp = old[i]; cp != NULL; cp = next) {
            size_t s = stock_slot(svc, cp->id);

            next = cp->hnext;
            cp->hnext = t[s];
            t[s] = cp;
        }
    }
    free(old);
    return CG_OK;
}

static stock_coupon *stock_coupon_new(stock_svc *svc, long long id)
{
    stock_coupon *cp = NULL;
    size_t s;

    if (svc->n_coupons >= svc->table_size && stock_table_grow(svc) != CG_OK)
        goto done;
    cp = calloc(1, sizeof(*cp));
    if (cp == NULL)
        goto done;
    cp->svc = svc;
    cp->id = id;
    cp->state = STOCK_CP_IDLE;
    stock_list_init(&cp->link);
    stock_list_init(&cp->queue);
    snprintf(cp->key_stock, sizeof(cp->key_stock), KEY_STOCK_FMT, id);
    snprintf(cp->key_holders, sizeof(cp->key_holders), KEY_STOCK_HOLDERS_FMT, id);
    snprintf(cp->key_sagas, sizeof(cp->key_sagas), KEY_STOCK_SAGAS_FMT, id);
    s = stock_slot(svc, id);
    cp->hnext = svc->table[s];
    svc->table[s] = cp;
    svc->n_coupons++;
done:
    return cp;
}

static void stock_coupon_free(stock_svc *svc, stock_coupon *cp)
{
    stock_coupon **pp = &svc->table[stock_slot(svc, cp->id)];

    while (*pp != cp)
        pp = &(*pp)->hnext;
    *pp = cp->hnext;
    svc->n_coupons--;
    stock_list_remove(&cp->link);
    free(cp);
}

/* ---- queue ---------------------------------------------------------------------- */

/* An idle coupon with work goes on the run list; an idle empty one is freed. */
static void stock_coupon_settle(stock_svc *svc, stock_coupon *cp)
{
    if (cp->state != STOCK_CP_IDLE)
        return;
    if (cp->n_queued > 0) {
        stock_coupon_set_state(cp, STOCK_CP_RUNNABLE);
        stock_list_push_back(&svc->runnable, &cp->link);
        stock_kick(svc);
    } else {
        stock_coupon_free(svc, cp);
    }
}

int stock_coupon_enqueue(stock_svc *svc, stock_item *it)
{
    stock_coupon *cp = stock_coupon_find(svc, it->m.coupon_id);

    if (cp == NULL)
        cp = stock_coupon_new(svc, it->m.coupon_id);
    if (cp == NULL)
        return CG_ERR_NOMEM;
    stock_item_set_state(it, STOCK_ITEM_QUEUED);
    stock_list_push_back(&cp->queue, &it->link);
    cp->n_queued++;
    svc->n_pending++;
    stock_coupon_settle(svc, cp);
    return CG_OK;
}

void stock_coupon_unqueue(stock_svc *svc, stock_item *it)
{
    stock_coupon *cp = stock_coupon_find(svc, it->m.coupon_id);

    assert(cp != NULL && it->state == STOCK_ITEM_QUEUED);
    stock_list_remove(&it->link);
    cp->n_queued--;
    svc->n_pending--;
    /* An emptied runnable or backing-off coupon is settled when its turn comes. */
}

/* ---- job memory ---------------------------------------------------------------------- */

static void stock_job_free(stock_job *j)
{
    free(j->items);
    free(j->recorded);
    free(j->holds);
    free(j->marked);
    free(j->rsv);
    free(j->rel);
    free(j->marks);
    free(j->users);
    free(j->argv);
    free(j->argvlen);
    memset(j, 0, sizeof(*j));
}

static int stock_job_alloc(stock_job *j, size_t n)
{
    size_t nargs = 2 * n + 8;

    memset(j, 0, sizeof(*j));
    j->items = calloc(n, sizeof(*j->items));
    j->recorded = calloc(n, sizeof(*j->recorded));
    j->holds = calloc(n, 1);
    j->marked = calloc(n, 1);
    j->rsv = calloc(n, sizeof(*j->rsv));
    j->rel = calloc(n, sizeof(*j->rel));
    j->marks = calloc(n, sizeof(*j->marks));
    j->users = calloc(n, sizeof(*j->users));
    j->argv = calloc(nargs, sizeof(*j->argv));
    j->argvlen = calloc(nargs, sizeof(*j->argvlen));
    if (!j->items || !j->recorded || !j->holds || !j->marked || !j->rsv || !j->rel ||
        !j->marks || !j->users || !j->argv || !j->argvlen) {
        stock_job_free(j);
        return CG_ERR_NOMEM;
    }
    return CG_OK;
}

/* ---- argv building ------------------------------------------------------------------ */

typedef struct stock_args {
    stock_job *j;
    int argc;
} stock_args;

static void stock_arg(stock_args *a, const char *s)
{
    a->j->argv[a->argc] = s;
    a->j->argvlen[a->argc] = strlen(s);
    a->argc++;
}

/* ---- job end ------------------------------------------------------------------------- */

static void stock_job_release_lease(stock_svc *svc, stock_job *j)
{
    /* While the client is being freed it frees the leases itself. */
    if (j->lease != NULL && !svc->closing)
        rds_lease_release(j->lease);
    j->lease = NULL;
}

/* Ends the job: the items still in the batch have been answered, requeued
 * or dropped by the caller. */
static void stock_job_end(stock_svc *svc, stock_coupon *cp, int next_state)
{
    stock_job_release_lease(svc, &cp->job);
    stock_job_free(&cp->job);
    svc->n_busy--;
    stock_coupon_set_state(cp, next_state);
    if (next_state == STOCK_CP_BACKOFF)
        stock_list_push_back(&svc->backoff, &cp->link);
    else
        stock_coupon_settle(svc, cp);
    stock_kick(svc);   /* a lease, room under the limits, or answers to publish */
}

/* Puts the batch back at the head of the queue, in order; items whose
 * delivery was given back meanwhile are dropped instead. */
static void stock_job_requeue(stock_svc *svc, stock_coupon *cp)
{
    stock_job *j = &cp->job;

    for (size_t k = j->n; k-- > 0;) {
        stock_item *it = j->items[k];

        svc->n_pending--;
        if ((svc->stopping || svc->closing) && it->dlv->state == STOCK_DLV_ACTIVE) {
            /* Not answered: the delivery must not be acked; the broker
             * redelivers it once this process has closed its connection. */
            stock_dlv_give_back(svc, it->dlv, STOCK_GIVE_DROP, NULL);
        }
        if (stock_item_moot(it)) {
            stock_item_done(svc, it);
            continue;
        }
        stock_item_set_state(it, STOCK_ITEM_QUEUED);
        stock_list_push_front(&cp->queue, &it->link);
        cp->n_queued++;
        svc->n_pending++;
    }
    j->n = 0;
}

/* Gives back the deliveries of the batch (after too many conflicts or errors). */
static void stock_job_give_back(stock_svc *svc, stock_coupon *cp, int how, const char *reason)
{
    stock_job *j = &cp->job;

    for (size_t k = 0; k < j->n; k++) {
        stock_item *it = j->items[k];

        svc->n_pending--;
        /* Its delivery first, so that the item is dropped rather than requeued. */
        stock_dlv_give_back(svc, it->dlv, how, reason);
        stock_item_done(svc, it);
    }
    j->n = 0;
}

static int64_t stock_backoff_us(stock_svc *svc, long long base_ms, long long cap_ms, int attempt)
{
    long long ms = base_ms;

    for (int i = 1; i < attempt && ms < cap_ms; i++)
        ms *= 2;
    if (ms > cap_ms)
        ms = cap_ms;
    /* Full backoff at most, half at least: instances that collided spread out. */
    return (int64_t)stock_jitter(svc, ms * 500, ms * 1000);
}

/* Redis could not be asked or did not answer: try the batch again later. */
static void stock_job_failed(stock_svc *svc, stock_coupon *cp)
{
    stock_job *j = &cp->job;
    const stock_conf *conf = svc->conf;

    svc->stats.redis_failures++;
    stock_redis_health(svc, 0, j->why);
    stock_job_requeue(svc, cp);
    if (svc->stopping || svc->closing) {
        stock_job_end(svc, cp, STOCK_CP_IDLE);
        return;
    }
    cp->failures++;
    cp->not_before_us = stock_now_us() +
                        stock_backoff_us(svc, conf->retry_min_ms, conf->retry_max_ms, cp->failures);
    stock_job_end(svc, cp, STOCK_CP_BACKOFF);
}

/* Redis answered with an error or a value that makes no sense: retry a few
 * times (the data may be repaired), then dead-letter the deliveries. */
static void stock_job_error(stock_svc *svc, stock_coupon *cp)
{
    stock_job *j = &cp->job;
    const stock_conf *conf = svc->conf;
    char reason[300];

    cp->errors++;
    if (cp->errors < conf->max_error_attempts && !svc->stopping && !svc->closing) {
        log_warn(j->items[0]->m.saga_id, "coupon %lld: %s (attempt %d of %lld)", cp->id, j->why,
                 cp->errors, conf->max_error_attempts);
        stock_job_requeue(svc, cp);
        cp->not_before_us = stock_now_us() + stock_backoff_us(svc, conf->retry_min_ms,
                                                              conf->retry_max_ms, cp->errors);
        stock_job_end(svc, cp, STOCK_CP_BACKOFF);
        return;
    }
    if (svc->stopping || svc->closing) {
        stock_job_requeue(svc, cp);
        stock_job_end(svc, cp, STOCK_CP_IDLE);
        return;
    }
    log_error(j->items[0]->m.saga_id, "coupon %lld: %s; dead-lettering the commands of a "
              "batch of %zu item(s)", cp->id, j->why, j->n);
    snprintf(reason, sizeof(reason), "coupon %lld: %s", cp->id, j->why);
    cp->errors = 0;
    stock_job_give_back(svc, cp, STOCK_GIVE_DEAD, reason);
    stock_job_end(svc, cp, STOCK_CP_IDLE);
}

static void stock_job_conflict(stock_svc *svc, stock_coupon *cp)
{
    stock_job *j = &cp->job;
    const stock_conf *conf = svc->conf;

    svc->stats.conflicts++;
    cp->conflicts++;
    if (cp->conflicts <= conf->max_watch_retries || svc->stopping || svc->closing) {
        log_debug(j->items[0]->m.saga_id, "coupon %lld: WATCH conflict %d on a batch of %zu",
                  cp->id, cp->conflicts, j->n);
        stock_job_requeue(svc, cp);
        if (svc->stopping || svc->closing) {
            stock_job_end(svc, cp, STOCK_CP_IDLE);
            return;
        }
        cp->not_before_us = stock_now_us() +
                            stock_backoff_us(svc, conf->watch_backoff_ms,
                                             conf->watch_backoff_ms * STOCK_WATCH_BACKOFF_CAP,
                                             cp->conflicts);
        stock_job_end(svc, cp, STOCK_CP_BACKOFF);
        return;
    }
    log_warn(j->items[0]->m.saga_id, "coupon %lld: %d WATCH conflicts in a row; requeueing the "
             "commands of a batch of %zu", cp->id, cp->conflicts, j->n);
    svc->stats.requeued++;
    cp->conflicts = 0;
    stock_job_give_back(svc, cp, STOCK_GIVE_REQUEUE, NULL);
    stock_job_end(svc, cp, STOCK_CP_IDLE);
}

static void stock_job_succeeded(stock_svc *svc, stock_coupon *cp)
{
    cp->failures = cp->errors = 0;
    stock_redis_health(svc, 1, NULL);
    stock_job_end(svc, cp, STOCK_CP_IDLE);
}

/* ---- reply bookkeeping ------------------------------------------------------------- */

static void stock_job_note_status(stock_job *j, int status, const char *what)
{
    if (j->status == CG_OK && !j->bad) {
        j->status = status;
        snprintf(j->why, sizeof(j->why), "%s: %s", what,
                 status == CG_ERR_STATE ? "no connection to the master"
                 : status == CG_ERR_IO  ? "connection lost"
                                        : cg_status_name(status));
    }
}

static void stock_job_note_bad(stock_job *j, const char *what, const redisReply *r)
{
    if (j->status == CG_OK && !j->bad) {
        j->bad = 1;
        if (r != NULL && r->type == REDIS_REPLY_ERROR)
            snprintf(j->why, sizeof(j->why), "%s answered %.150s", what, r->str);
        else
            snprintf(j->why, sizeof(j->why), "%s: unexpected reply", what);
    }
}

/* Checks a reply: 1 when it can be used (not a failure, not an error). */
static int stock_reply_ok(stock_job *j, int status, const redisReply *r, const char *what)
{
    if (status != CG_OK) {
        stock_job_note_status(j, status, what);
        return 0;
    }
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        stock_job_note_bad(j, what, r);
        return 0;
    }
    return 1;
}

/* Counts an accepted submit, or notes why it was refused. */
static void stock_sent(stock_job *j, int rc, const char *what)
{
    if (rc == CG_OK)
        j->outstanding++;
    else
        stock_job_note_status(j, rc, what);
}

static void stock_job_step(stock_svc *svc, stock_coupon *cp);

static void stock_got(stock_svc *svc, stock_coupon *cp)
{
    assert(cp->job.outstanding > 0);
    if (--cp->job.outstanding == 0)
        stock_job_step(svc, cp);
}

static void stock_parse_stock(stock_job *j, const redisReply *r)
{
    char *end;
    long long v;

    if (r->type == REDIS_REPLY_NIL) {
        j->stock_exists = 0;
        return;
    }
    if (r->type != REDIS_REPLY_STRING) {
        stock_job_note_bad(j, "GET stock", r);
        return;
    }
    errno = 0;
    v = strtoll(r->str, &end, 10);
    if (errno != 0 || end == r->str || *end != '\0') {
        j->bad = 1;
        snprintf(j->why, sizeof(j->why), "stock value '%.40s' is not an integer", r->str);
        return;
    }
    j->stock_exists = 1;
    j->stock = v;
}

static void stock_parse_sagas(stock_job *j, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != j->n) {
        stock_job_note_bad(j, "HMGET sagas", r);
        return;
    }
    for (size_t i = 0; i < j->n; i++) {
        const redisReply *e = r->element[i];

        memset(&j->recorded[i], 0, sizeof(j->recorded[i]));
        if (e->type == REDIS_REPLY_NIL)
            continue;
        if (e->type != REDIS_REPLY_STRING ||
            stock_outcome_parse(e->str, e->len, &j->recorded[i]) != CG_OK) {
            j->bad = 1;
            snprintf(j->why, sizeof(j->why), "saga %s has an unreadable record",
                     j->items[i]->m.saga_id);
            return;
        }
    }
}

static void stock_on_get(rds_client *c, int status, redisReply *r, void *arg)
{
    stock_coupon *cp = arg;

    (void)c;
    if (stock_reply_ok(&cp->job, status, r, "GET stock"))
        stock_parse_stock(&cp->job, r);
    stock_got(cp->svc, cp);
}

static void stock_on_hmget(rds_client *c, int status, redisReply *r, void *arg)
{
    stock_coupon *cp = arg;

    (void)c;
    if (stock_reply_ok(&cp->job, status, r, "HMGET sagas"))
        stock_parse_sagas(&cp->job, r);
    stock_got(cp->svc, cp);
}

static void stock_on_smismember(rds_client *c, int status, redisReply *r, void *arg)
{
    stock_coupon *cp = arg;
    stock_job *j = &cp->job;

    (void)c;
    if (stock_reply_ok(j, status, r, "SMISMEMBER holders")) {
        if (r->type != REDIS_REPLY_ARRAY || r->elements != j->n)
            stock_job_note_bad(j, "SMISMEMBER holders", r);
        for (size_t i = 0; i < j->n && !j->bad; i++)
            j->holds[i] = r->element[i]->type == REDIS_REPLY_INTEGER && r->element[i]->integer;
    }
    stock_got(cp->svc, cp);
}

static void stock_on_status(rds_client *c, int status, redisReply *r, void *arg)
{
    stock_coupon *cp = arg;

    (void)c;
    if (stock_reply_ok(&cp->job, status, r, "WATCH") && r->type != REDIS_REPLY_STATUS)
        stock_job_note_bad(&cp->job, "WATCH", r);
    stock_got(cp->svc, cp);
}

static void stock_on_hsetnx(rds_client *c, int status, redisReply *r, void *arg)
{
    stock_mark *mk = arg;
    stock_coupon *cp = mk->cp;

    (void)c;
    if (stock_reply_ok(&cp->job, status, r, "HSETNX sagas")) {
        if (r->type == REDIS_REPLY_INTEGER)
            cp->job.marked[mk->idx] = r->integer == 1;
        else
            stock_job_note_bad(&cp->job, "HSETNX sagas", r);
    }
    stock_got(cp->svc, cp);
}

static void stock_on_exec(rds_client *c, int status, redisReply *r, void *arg)
{
    stock_coupon *cp = arg;
    stock_job *j = &cp->job;

    (void)c;
    if (stock_reply_ok(j, status, r, "EXEC")) {
        if (r->type == REDIS_REPLY_NIL) {
            j->conflict = 1;
        } else if (r->type != REDIS_REPLY_ARRAY) {
            stock_job_note_bad(j, "EXEC", r);
        } else {
            for (size_t i = 0; i < r->elements; i++)
                if (r->element[i]->type == REDIS_REPLY_ERROR)
                    stock_job_note_bad(j, "a command in EXEC", r->element[i]);
        }
    }
    stock_got(cp->svc, cp);
}

static void stock_on_wait(rds_client *c, int status, redisReply *r, void *arg)
{
    stock_coupon *cp = arg;
    stock_svc *svc = cp->svc;
    long long want = svc->conf->wait_replicas;
    char why[160];

    (void)c;
    if (status != CG_OK) {
        /* The connection went (or WAIT outlived the command timeout): whether
         * the write survives a failover is unknown, so the batch is asked
         * again rather than answered; it finds its outcome if it did. */
        stock_job_note_status(&cp->job, status, "WAIT");
    } else if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        snprintf(why, sizeof(why), "WAIT %lld answered %.80s", want,
                 r != NULL && r->type == REDIS_REPLY_ERROR ? r->str : "something else");
        stock_wait_health(svc, 0, cp->job.items[0]->m.saga_id, why);
    } else if (r->integer < want) {
        /* Applied on the master; only its copy on a replica is late. */
        snprintf(why, sizeof(why), "WAIT saw %lld of %lld replica(s) within %lld ms",
                 r->integer, want, svc->conf->wait_timeout_ms);
        stock_wait_health(svc, 0, cp->job.items[0]->m.saga_id, why);
    } else {
        stock_wait_health(svc, 1, cp->job.items[0]->m.saga_id, NULL);
    }
    stock_got(svc, cp);
}

/* ---- the cheap path -------------------------------------------------------------------- */

static void stock_cheap_start(stock_svc *svc, stock_coupon *cp)
{
    stock_job *j = &cp->job;
    stock_args a = {j, 0};
    int rc;

    stock_coupon_set_state(cp, STOCK_CP_CHECK);
    rc = rds_command(svc->rds, stock_on_get, cp, "GET %s", cp->key_stock);
    stock_sent(j, rc, "GET stock");
    if (rc == CG_OK) {
        stock_arg(&a, "HMGET");
        stock_arg(&a, cp->key_sagas);
        for (size_t i = 0; i < j->n; i++)
            stock_arg(&a, j->items[i]->m.saga_id);
        rc = rds_command_argv(svc->rds, stock_on_hmget, cp, a.argc, j->argv, j->argvlen);
        stock_sent(j, rc, "HMGET sagas");
    }
    if (j->outstanding == 0)
        stock_job_step(svc, cp);
}

/* Answers a reserve item from an outcome and takes it out of the batch. */
static void stock_answer_outcome(stock_svc *svc, stock_item *it, const stock_outcome *o)
{
    const char *result, *reason;

    stock_outcome_reply(o, &result, &reason);
    svc->n_pending--;
    stock_item_answer(svc, it, result, reason);
}

static void stock_tx_begin(stock_svc *svc, stock_coupon *cp);

static void stock_cheap_decide(stock_svc *svc, stock_coupon *cp)
{
    stock_job *j = &cp->job;
    stock_outcome unknown = {STOCK_REC_REJECTED, MSG_REASON_UNKNOWN_COUPON};
    size_t kept = 0;
    stock_args a = {j, 0};
    int rc = CG_OK;

    for (size_t i = 0; i < j->n; i++) {
        stock_item *it = j->items[i];

        if (j->recorded[i].rec != STOCK_REC_NONE) {
            svc->stats.cheap++;
            stock_answer_outcome(svc, it, &j->recorded[i]);
        } else if (!j->stock_exists) {
            svc->stats.cheap++;
            stock_answer_outcome(svc, it, &unknown);
        } else {
            j->items[kept++] = it;
        }
    }
    j->n = kept;
    if (j->n == 0) {
        stock_job_succeeded(svc, cp);
    } else if (j->stock > 0 || svc->conf->wait_replicas > 0) {
        /* With WAIT on, rejections are recorded in the transaction too, so
         * that WAIT covers them (HSETNX on a shared connection cannot be
         * waited for: WAIT counts one connection's writes). */
        stock_tx_begin(svc, cp);
    } else {
        /* Sold out: record the rejection unless something else got there first. */
        stock_coupon_set_state(cp, STOCK_CP_MARK);
        for (size_t i = 0; i < j->n && rc == CG_OK; i++) {
            j->marks[i].cp = cp;
            j->marks[i].idx = i;
            j->marked[i] = 0;
            a.argc = 0;
            stock_arg(&a, "HSETNX");
            stock_arg(&a, cp->key_sagas);
            stock_arg(&a, j->items[i]->m.saga_id);
            stock_arg(&a, "J:" MSG_REASON_OUT_OF_STOCK);
            rc = rds_command_argv(svc->rds, stock_on_hsetnx, &j->marks[i], a.argc, j->argv,
                                  j->argvlen);
            stock_sent(j, rc, "HSETNX sagas");
        }
        if (j->outstanding == 0)
            stock_job_step(svc, cp);
    }
}

static void stock_mark_done(stock_svc *svc, stock_coupon *cp)
{
    stock_job *j = &cp->job;
    size_t kept = 0;

    for (size_t i = 0; i < j->n; i++) {
        stock_item *it = j->items[i];

        if (j->marked[i]) {
            svc->stats.cheap++;
            svc->n_pending--;
            stock_item_answer(svc, it, MSG_RESULT_REJECTED, MSG_REASON_OUT_OF_STOCK);
        } else {
            j->items[kept++] = it;   /* recorded meanwhile: the next round reads it */
        }
    }
    j->n = kept;
    stock_job_requeue(svc, cp);
    stock_job_succeeded(svc, cp);
}

/* ---- the transaction ---------------------------------------------------------------- */

static void stock_tx_watch(stock_svc *svc, stock_coupon *cp)
{
    stock_job *j = &cp->job;
    stock_args a = {j, 0};
    int rc;

    stock_coupon_set_state(cp, STOCK_CP_WATCH);
    rc = rds_lease_command(j->lease, stock_on_status, cp, "WATCH %s %s %s", cp->key_stock,
                           cp->key_holders, cp->key_sagas);
    stock_sent(j, rc, "WATCH");
    if (rc == CG_OK && j->kind == MSG_STOCK_RESERVE) {
        rc = rds_lease_command(j->lease, stock_on_get, cp, "GET %s", cp->key_stock);
        stock_sent(j, rc, "GET stock");
    }
    if (rc == CG_OK) {
        stock_arg(&a, "HMGET");
        stock_arg(&a, cp->key_sagas);
        for (size_t i = 0; i < j->n; i++)
            stock_arg(&a, j->items[i]->m.saga_id);
        rc = rds_lease_command_argv(j->lease, stock_on_hmget, cp, a.argc, j->argv, j->argvlen);
        stock_sent(j, rc, "HMGET sagas");
    }
    if (rc == CG_OK && j->kind == MSG_STOCK_RESERVE) {
        a.argc = 0;
        stock_arg(&a, "SMISMEMBER");
        stock_arg(&a, cp->key_holders);
        for (size_t i = 0; i < j->n; i++)
            stock_arg(&a, j->users[i]);
        rc = rds_lease_command_argv(j->lease, stock_on_smismember, cp, a.argc, j->argv,
                                    j->argvlen);
        stock_sent(j, rc, "SMISMEMBER holders");
    }
    if (j->outstanding == 0)
        stock_job_step(svc, cp);
}

static void stock_tx_begin(stock_svc *svc, stock_coupon *cp)
{
    stock_job *j = &cp->job;

    for (size_t i = 0; i < j->n; i++)
        snprintf(j->users[i], sizeof(j->users[i]), "%lld", j->items[i]->m.user_id);
    if (!rds_client_is_up(svc->rds)) {
        stock_job_note_status(j, CG_ERR_STATE, "lease");
        stock_job_failed(svc, cp);
        return;
    }
    j->lease = rds_lease_acquire(svc->rds);
    if (j->lease == NULL) {
        stock_coupon_set_state(cp, STOCK_CP_LEASE_WAIT);
        stock_list_push_back(&svc->lease_wait, &cp->link);
        return;
    }
    stock_tx_watch(svc, cp);
}

/* Sends MULTI ... EXEC with the writes the decision asks for. */
static void stock_tx_exec(stock_svc *svc, stock_coupon *cp)
{
    stock_job *j = &cp->job;
    int reserve = j->kind == MSG_STOCK_RESERVE;
    char delta[24];
    char (*vals)[STOCK_RECORD_MAX] = NULL;
    stock_args a = {j, 0};
    int rc;

    stock_coupon_set_state(cp, STOCK_CP_EXEC);
    vals = calloc(j->n, sizeof(*vals));
    if (vals == NULL) {
        stock_job_note_status(j, CG_ERR_NOMEM, "MULTI");
        stock_job_step(svc, cp);
        return;
    }
    rc = rds_lease_command(j->lease, NULL, NULL, "MULTI");
    stock_sent(j, rc, "MULTI");
    if (rc == CG_OK)
        j->outstanding--;   /* no callback: EXEC's reply says it all */
    if (rc == CG_OK && j->delta > 0) {
        snprintf(delta, sizeof(delta), "%lld", j->delta);
        rc = rds_lease_command(j->lease, NULL, NULL, "%s %s %s", reserve ? "DECRBY" : "INCRBY",
                               cp->key_stock, delta);
        stock_sent(j, rc, reserve ? "DECRBY" : "INCRBY");
        if (rc == CG_OK)
            j->outstanding--;
        stock_arg(&a, reserve ? "SADD" : "SREM");
        stock_arg(&a, cp->key_holders);
        for (size_t i = 0; i < j->n; i++)
            if (reserve ? j->rsv[i].take : j->rel[i].give_back)
                stock_arg(&a, j->users[i]);
        if (rc == CG_OK)
            rc = rds_lease_command_argv(j->lease, NULL, NULL, a.argc, j->argv, j->argvlen);
        stock_sent(j, rc, reserve ? "SADD" : "SREM");
        if (rc == CG_OK)
            j->outstanding--;
    }
    a.argc = 0;
    stock_arg(&a, "HSET");
    stock_arg(&a, cp->key_sagas);
    for (size_t i = 0; i < j->n && rc == CG_OK; i++) {
        static const stock_outcome released = {STOCK_REC_RELEASED, ""};

        if (!(reserve ? j->rsv[i].record : j->rel[i].record))
            continue;
        if (stock_outcome_format(reserve ? &j->rsv[i].outcome : &released, vals[i],
                                 sizeof(vals[i])) != CG_OK) {
            stock_job_note_status(j, CG_ERR_INVALID, "HSET");
            rc = CG_ERR_INVALID;
            break;
        }
        stock_arg(&a, j->items[i]->m.saga_id);
        stock_arg(&a, vals[i]);
    }
    if (rc == CG_OK) {
        rc = rds_lease_command_argv(j->lease, NULL, NULL, a.argc, j->argv, j->argvlen);
        stock_sent(j, rc, "HSET");
        if (rc == CG_OK)
            j->outstanding--;
    }
    if (rc == CG_OK) {
        rc = rds_lease_command(j->lease, stock_on_exec, cp, "EXEC");
        stock_sent(j, rc, "EXEC");
    }
    free(vals);   /* hiredis formatted the commands: the strings are no longer needed */
    /* Not sent in full: releasing the lease DISCARDs what was queued. */
    if (j->outstanding == 0)
        stock_job_step(svc, cp);
}

static void stock_tx_answer(stock_svc *svc, stock_coupon *cp);

static void stock_tx_decide(stock_svc *svc, stock_coupon *cp)
{
    stock_job *j = &cp->job;
    int writes = 0;
    int rc;

    if (j->kind == MSG_STOCK_RESERVE) {
        stock_rsv_in *in = calloc(j->n, sizeof(*in));

        rc = CG_ERR_NOMEM;
        if (in != NULL) {
            for (size_t i = 0; i < j->n; i++) {
                in[i].saga_id = j->items[i]->m.saga_id;
                in[i].user_id = j->items[i]->m.user_id;
                in[i].recorded = j->recorded[i];
                in[i].holds = j->holds[i];
            }
            rc = stock_decide_reserve(j->stock, j->stock_exists, in, j->n, j->rsv, &j->delta);
        }
        free(in);
        for (size_t i = 0; i < j->n; i++)
            writes += j->rsv[i].record;
    } else {
        stock_rel_in *in = calloc(j->n, sizeof(*in));

        rc = CG_ERR_NOMEM;
        if (in != NULL) {
            for (size_t i = 0; i < j->n; i++) {
                in[i].saga_id = j->items[i]->m.saga_id;
                in[i].user_id = j->items[i]->m.user_id;
                in[i].recorded = j->recorded[i];
            }
            rc = stock_decide_release(in, j->n, j->rel, &j->delta);
        }
        free(in);
        for (size_t i = 0; i < j->n; i++)
            writes += j->rel[i].record;
    }
    if (rc != CG_OK) {
        stock_job_note_status(j, rc, "decide");
        stock_job_step(svc, cp);
    } else if (writes > 0) {
        stock_tx_exec(svc, cp);
    } else {
        /* Nothing to write: releasing the lease UNWATCHes. */
        stock_tx_answer(svc, cp);
    }
}

/* The transaction applied (or had nothing to write): answer the batch. */
static void stock_tx_answer(stock_svc *svc, stock_coupon *cp)
{
    stock_job *j = &cp->job;

    for (size_t i = 0; i < j->n; i++) {
        if (j->kind == MSG_STOCK_RESERVE) {
            stock_answer_outcome(svc, j->items[i], &j->rsv[i].outcome);
        } else {
            svc->n_pending--;
            stock_item_answer(svc, j->items[i], MSG_RESULT_RELEASED, NULL);
        }
    }
    j->n = 0;
    stock_job_succeeded(svc, cp);
}

static void stock_exec_done(stock_svc *svc, stock_coupon *cp)
{
    stock_job *j = &cp->job;
    int rc;

    svc->stats.tx++;
    cp->conflicts = 0;
    log_debug(j->items[0]->m.saga_id, "coupon %lld: %s batch of %zu applied, %lld unit(s)",
              cp->id, msg_kind_name(j->kind), j->n, j->delta);
    if (svc->conf->wait_replicas > 0) {
        stock_coupon_set_state(cp, STOCK_CP_WAIT);
        rc = rds_lease_command(j->lease, stock_on_wait, cp, "WAIT %lld %lld",
                               svc->conf->wait_replicas, svc->conf->wait_timeout_ms);
        if (rc == CG_OK) {
            j->outstanding++;
            return;
        }
        /* Refused at once (the connection is gone): as a failed WAIT. */
        stock_job_note_status(j, rc, "WAIT");
        stock_job_step(svc, cp);
        return;
    }
    stock_tx_answer(svc, cp);
}

/* ---- the job's steps ----------------------------------------------------------------- */

/* Runs when every reply of the current step is in. */
static void stock_job_step(stock_svc *svc, stock_coupon *cp)
{
    stock_job *j = &cp->job;

    if (j->status != CG_OK) {
        stock_job_failed(svc, cp);
        return;
    }
    if (j->bad) {
        stock_job_error(svc, cp);
        return;
    }
    switch (cp->state) {
    case STOCK_CP_CHECK:
        stock_cheap_decide(svc, cp);
        break;
    case STOCK_CP_MARK:
        stock_mark_done(svc, cp);
        break;
    case STOCK_CP_WATCH:
        stock_tx_decide(svc, cp);
        break;
    case STOCK_CP_EXEC:
        if (j->conflict)
            stock_job_conflict(svc, cp);
        else
            stock_exec_done(svc, cp);
        break;
    case STOCK_CP_WAIT:
        stock_tx_answer(svc, cp);
        break;
    default:
        log_error("-", "coupon %lld: job step in impossible state %s", cp->id,
                  stock_coupon_state_name(cp->state));
        abort();
    }
}

static void stock_job_start(stock_svc *svc, stock_coupon *cp)
{
    stock_job *j = &cp->job;
    size_t n = 0, max = (size_t)svc->conf->batch_max;
    int kind;
    stock_link *l;

    if (cp->n_queued == 0) {
        stock_coupon_set_state(cp, STOCK_CP_IDLE);
        stock_coupon_settle(svc, cp);
        return;
    }
    kind = STOCK_OF(cp->queue.next, stock_item, link)->dlv->kind;
    for (l = cp->queue.next; l != &cp->queue && n < max; l = l->next, n++)
        if (STOCK_OF(l, stock_item, link)->dlv->kind != kind)
            break;
    if (stock_job_alloc(j, n) != CG_OK) {
        log_error("-", "coupon %lld: out of memory for a batch of %zu; trying later", cp->id, n);
        cp->not_before_us = stock_now_us() + svc->conf->retry_max_ms * 1000;
        stock_coupon_set_state(cp, STOCK_CP_BACKOFF);
        stock_list_push_back(&svc->backoff, &cp->link);
        return;
    }
    j->kind = kind;
    for (j->n = 0; j->n < n; j->n++) {
        stock_item *it = STOCK_OF(cp->queue.next, stock_item, link);

        stock_list_remove(&it->link);
        cp->n_queued--;
        stock_item_set_state(it, STOCK_ITEM_WORKING);
        j->items[j->n] = it;
    }
    svc->n_busy++;
    if (kind == MSG_STOCK_RESERVE)
        stock_cheap_start(svc, cp);
    else
        stock_tx_begin(svc, cp);
}

/* ---- scheduling ------------------------------------------------------------------------ */

static void stock_leases_offer(stock_svc *svc)
{
    while (!stock_list_empty(&svc->lease_wait)) {
        stock_coupon *cp = STOCK_OF(svc->lease_wait.next, stock_coupon, link);
        rds_lease *lease;

        if (!rds_client_is_up(svc->rds)) {
            stock_list_remove(&cp->link);
            stock_job_note_status(&cp->job, CG_ERR_STATE, "lease");
            stock_job_failed(svc, cp);
            continue;
        }
        lease = rds_lease_acquire(svc->rds);
        if (lease == NULL)
            break;
        stock_list_remove(&cp->link);
        cp->job.lease = lease;
        stock_tx_watch(svc, cp);
    }
}

void stock_coupons_run(stock_svc *svc)
{
    stock_leases_offer(svc);
    while (!svc->stopping && !stock_list_empty(&svc->runnable)) {
        stock_coupon *cp = STOCK_OF(svc->runnable.next, stock_coupon, link);

        stock_list_remove(&cp->link);
        stock_job_start(svc, cp);
    }
}

void stock_coupons_tick(stock_svc *svc, int64_t now_us)
{
    stock_link *l, *next;

    for (l = svc->backoff.next; l != &svc->backoff; l = next) {
        stock_coupon *cp = STOCK_OF(l, stock_coupon, link);

        next = l->next;
        if (cp->not_before_us > now_us && !svc->stopping)
            continue;
        stock_list_remove(&cp->link);
        stock_coupon_set_state(cp, STOCK_CP_IDLE);
        stock_coupon_settle(svc, cp);
    }
    stock_leases_offer(svc);
}

void stock_coupons_stop(stock_svc *svc)
{
    /* Jobs waiting for a lease have sent nothing: hand their items back. */
    while (!stock_list_empty(&svc->lease_wait)) {
        stock_coupon *cp = STOCK_OF(svc->lease_wait.next, stock_coupon, link);

        stock_list_remove(&cp->link);
        stock_job_requeue(svc, cp);
        stock_job_end(svc, cp, STOCK_CP_IDLE);
    }
}

void stock_coupons_free(stock_svc *svc)
{
    for (size_t i = 0; i < svc->table_size; i++) {
        stock_coupon *cp, *next;

        for (cp = svc->table[i]; cp != NULL; cp = next) {
            next = cp->hnext;
            stock_job_free(&cp->job);
            free(cp);
        }
    }
    free(svc->table);
    svc->table = NULL;
    svc->table_size = svc->n_coupons = 0;
}
