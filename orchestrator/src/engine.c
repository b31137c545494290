/* engine.c - the saga engine; see engine.h and docs/saga.md.
 *
 * A saga moves only through its log: every state change is an EVAL on the
 * saga log (saga_log.c), and the next command goes out only from that
 * write's acknowledgement (on_log_written -> saga_enter). Commands are
 * queued per kind and published once per loop iteration (flush_ev, see
 * engine_init) or when a batch is full, as one message with reply_to = this
 * instance's reply queue. Step deadlines sit in a min-heap (saga_table.c)
 * that the process's one timer drains (engine_tick). */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "http_api.h"
#include "log.h"

#define NACK_RESEND_MS 100        /* wait before re-sending a nacked publish */
#define LOG_RETRY_MIN_MS 50       /* first wait before re-trying a failed log write */
#define LOG_RETRY_MAX_MS 2000

/* A published batch: which sagas were in it, to re-send when it is nacked. */
typedef struct pubrec {
    orch *o;
    enum msg_kind kind;
    size_t n;
    char ids[][MSG_SAGA_ID_LEN + 1];
} pubrec;

/* A reply for a saga not in memory, while its log entry is read. */
typedef struct lookup {
    orch *o;
    enum msg_kind kind;
    msg_item item;
    dref *d;
} lookup;

static void saga_enter(orch *o, saga *s);
static void saga_go(orch *o, saga *s, enum saga_state to);

/* ---- small helpers ---------------------------------------------------------- */

static void dref_release(dref *d)
{
    if (d == NULL || --d->refs > 0)
        return;
    /* Once the broker client is gone, unacked replies return to the queue. */
    if (d->o->mq != NULL) {
        if (mq_ack(d->o->mq, d->id, 0) != CG_OK)
            log_warn("-", "ack of reply delivery %llu failed", (unsigned long long)d->id.tag);
    }
    free(d);
}

static void saga_take_ack(saga *s, dref *d)
{
    if (d == NULL)
        return;
    if (s->ack != NULL)
        dref_release(s->ack);
    d->refs++;
    s->ack = d;
}

static void saga_drop_ack(saga *s)
{
    dref *d = s->ack;

    s->ack = NULL;
    dref_release(d);
}

static void schedule(orch *o, saga *s, long long deadline_ms)
{
    if (saga_table_schedule(&o->sagas, s, deadline_ms) != CG_OK)
        log_error(s->id, "out of memory scheduling a deadline: the saga waits for the sweep");
}

/* Unlinks and frees a saga; its waiters must have been answered or detached. */
static void saga_free(orch *o, saga *s)
{
    saga_table_remove(&o->sagas, s);
    saga_drop_ack(s);
    free(s);
}

/* The saga leaves memory without an outcome (the log refused a write): its
 * waiters follow the log; the orphan sweep or another owner carries on. */
static void saga_abandon(orch *o, saga *s)
{
    http_saga_detach(o, s);
    saga_free(o, s);
}

/* ---- the outbox ----------------------------------------------------------- */

static const char *kind_key(enum msg_kind kind)
{
    return (kind == MSG_STOCK_RESERVE || kind == MSG_STOCK_RELEASE) ? MSG_KEY_STOCK : MSG_KEY_ORDER;
}

static void pub_failed(orch *o, const pubrec *rec)
{
    long long now = orch_now_ms();

    o->stats.nacked += rec->n;
    for (size_t i = 0; i < rec->n; i++) {
        saga *s = saga_table_find(&o->sagas, rec->ids[i]);

        /* Only a saga still waiting for this command gets it again. */
        if (s != NULL && saga_step_command(s->step) == rec->kind) {
            s->free_resend = 1;
            schedule(o, s, now + NACK_RESEND_MS);
        }
    }
}

static void on_confirm(mq_client *c, int result, void *arg)
{
    pubrec *rec = arg;

    (void)c;
    if (result != MQ_PUBLISH_ACKED && rec->o->mq != NULL) {
        log_warn("-", "%s batch of %zu %s by the broker: re-sending", msg_kind_name(rec->kind),
                 rec->n, result == MQ_PUBLISH_NACKED ? "nacked" : "unconfirmed");
        pub_failed(rec->o, rec);
    }
    free(rec);
}

static void flush_kind(orch *o, enum msg_kind kind)
{
    msg_batch *b = o->outbox[kind];
    pubrec *rec = NULL;
    char *body = NULL, mid[160];
    size_t len = 0;
    mq_props props;
    int rc;

    if (b == NULL || b->n == 0)
        return;
    rec = malloc(sizeof(*rec) + b->n * sizeof(rec->ids[0]));
    if (rec == NULL) {
        log_error("-", "out of memory publishing %s: the steps time out and are re-sent",
                  msg_kind_name(kind));
        goto done;
    }
    rec->o = o;
    rec->kind = kind;
    rec->n = b->n;
    for (size_t i = 0; i < b->n; i++)
        memcpy(rec->ids[i], b->items[i].saga_id, MSG_SAGA_ID_LEN + 1);
    rc = msg_encode_new(b, &body, &len);
    if (rc == CG_OK) {
        memset(&props, 0, sizeof(props));
        snprintf(mid, sizeof(mid), "%s-%lld-%llu", o->conf.instance_id, o->boot_wall_ms,
                 ++o->msg_seq);
        props.message_id = mid;
        props.correlation_id = b->n == 1 ? b->items[0].saga_id : NULL;
        props.reply_to = o->reply_queue;
        props.type = msg_kind_name(kind);
        rc = mq_publish(o->mq, MSG_EXCHANGE_CMD, kind_key(kind), &props, body, len, on_confirm,
                        rec);
    }
    if (rc != CG_OK) {
        log_warn("-", "publishing %zu %s failed (%s): re-sending", b->n, msg_kind_name(kind),
                 cg_status_name(rc));
        pub_failed(o, rec);
        free(rec);
    } else {
        o->stats.batches++;
        o->stats.batch_items += b->n;
        log_debug(b->n == 1 ? b->items[0].saga_id : "-", "published %s x%zu as %s",
                  msg_kind_name(kind), b->n, mid);
    }
done:
    free(body);
    b->n = 0;
}

void engine_flush(orch *o)
{
    static const enum msg_kind kinds[] = {MSG_STOCK_RESERVE, MSG_ORDER_CREATE, MSG_ORDER_CANCEL,
                                          MSG_STOCK_RELEASE};

    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        flush_kind(o, kinds[i]);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    engine_flush(arg);
}

static void outbox_add(orch *o, enum msg_kind kind, const saga *s)
{
    msg_batch *b = o->outbox[kind];
    msg_item *it = &b->items[b->n++];

    memset(it, 0, sizeof(*it));
    memcpy(it->saga_id, s->id, sizeof(it->saga_id));
    it->user_id = s->user_id;
    it->coupon_id = s->coupon_id;
    if (kind == MSG_ORDER_CREATE || kind == MSG_ORDER_CANCEL) {
        it->room_id = s->room_id;
        it->grab_time = s->grab_time;
    }
    if (b->n == MSG_MAX_BATCH)
        flush_kind(o, kind);
    else
        event_active(o->flush_ev, EV_TIMEOUT, 0);   /* no-op when already active */
}

/* ---- steps ------------------------------------------------------------------- */

/* How long a sent step waits for its reply: the step timeout, and for the
 * compensation steps (retried forever) a growing backoff up to its cap. */
static long long step_wait_ms(const orch *o, const saga *s)
{
    long long t = o->conf.step_timeout_ms;

    if (s->step == SAGA_STEP_CANCEL || s->step == SAGA_STEP_RELEASE) {
        int shift = s->attempts > 1 ? s->attempts - 1 : 0;

        if (shift > 16)
            shift = 16;
        t <<= shift;
        if (t > o->conf.comp_backoff_max_ms)
            t = o->conf.comp_backoff_max_ms;
        if (t < o->conf.step_timeout_ms)
            t = o->conf.step_timeout_ms;
    }
    return t;
}

static void send_step(orch *o, saga *s, enum saga_step step)
{
    enum msg_kind kind = saga_step_command(step);

    saga_set_step(s, step);
    s->attempts++;
    outbox_add(o, kind, s);
    schedule(o, s, orch_now_ms() + step_wait_ms(o, s));
}

/* ---- the log ------------------------------------------------------------------- */

static void log_retry_later(orch *o, saga *s)
{
    int shift = s->log_failures < 6 ? s->log_failures : 6;
    long long wait = (long long)LOG_RETRY_MIN_MS << shift;

    if (wait > LOG_RETRY_MAX_MS)
        wait = LOG_RETRY_MAX_MS;
    schedule(o, s, orch_now_ms() + wait);
}

static void on_log_written(int result, const char *bound, void *arg);

static int sagalog_write(orch *o, saga *s)
{
    saga_put p;
    int rc;

    memset(&p, 0, sizeof(p));
    p.instance = o->conf.instance_id;
    p.s = s;
    p.to = s->log_to;
    p.is_new = s->log_new;
    p.now_wall_ms = orch_wall_ms();
    /* the set's score: when the saga should have moved on at the latest */
    p.score = p.now_wall_ms + o->conf.step_timeout_ms * (o->conf.step_retries + 2);
    p.ttl_s = o->conf.saga_ttl_s;
    p.idem = s->idem;
    p.idem_ttl_s = o->conf.idem_ttl_s;
    rc = saga_log_put(o->rds, &p, on_log_written, s);
    if (rc == CG_OK) {
        s->log_inflight = 1;
        saga_table_unschedule(&o->sagas, s);
        o->stats.log_writes++;
    }
    return rc;
}

static void on_log_written(int result, const char *bound, void *arg)
{
    saga *s = arg;
    orch *o = s->ctx;

    s->log_inflight = 0;
    if (o->rds == NULL)
        return;   /* shutting down: the client is being freed */
    switch (result) {
    case SAGA_PUT_OK:
        if (s->log_new)
            o->stats.started++;
        s->log_failures = 0;
        s->log_new = 0;
        saga_set_state(s, s->log_to);
        saga_drop_ack(s);
        saga_enter(o, s);
        break;
    case SAGA_PUT_UNKNOWN:
        s->log_failures++;
        o->stats.log_retries++;
        log_warn(s->id, "saga log write of %s failed (attempt %d): retrying",
                 saga_state_name(s->log_to), s->log_failures);
        log_retry_later(o, s);
        break;
    case SAGA_PUT_NOT_OWNER:
    case SAGA_PUT_STALE:
    case SAGA_PUT_MISSING:
        o->stats.log_refused++;
        log_warn(s->id, "saga log refused %s (%s): leaving the saga to its owner",
                 saga_state_name(s->log_to),
                 result == SAGA_PUT_NOT_OWNER ? "adopted by another instance"
                 : result == SAGA_PUT_STALE   ? "the log is ahead"
                                              : "no such saga");
        saga_abandon(o, s);
        break;
    case SAGA_PUT_BOUND:
        /* Nothing was logged: the key belongs to an earlier saga, which is
         * what a repeated key answers. */
        log_debug(s->id, "Idempotency-Key %s names saga %s: following it", s->idem, bound);
        http_saga_rebound(o, s, bound);
        saga_free(o, s);
        break;
    default:
        log_error(s->id, "saga log write result %d out of range", result);
        abort();
    }
}

/* Moves the saga to `to`: writes the log; the state changes (and the next
 * command goes out) when the write is acknowledged. */
static void saga_go(orch *o, saga *s, enum saga_state to)
{
    s->log_to = to;
    saga_set_step(s, SAGA_STEP_LOG);
    if (sagalog_write(o, s) != CG_OK) {
        s->log_failures++;
        log_retry_later(o, s);
    }
}

static void compensate(orch *o, saga *s, const char *reason)
{
    /* From RESERVED, order.create went out and may yet run: cancel it first. */
    s->comp = s->state == SAGA_RESERVED ? SAGA_COMP_CANCEL : SAGA_COMP_RELEASE;
    snprintf(s->reason, sizeof(s->reason), "%s", reason);
    log_info(s->id, "compensating from %s: %s", saga_state_name(s->state), reason);
    saga_go(o, s, SAGA_COMPENSATING);
}

/* Runs the entry action of the state just logged. */
static void saga_enter(orch *o, saga *s)
{
    switch (s->state) {
    case SAGA_STARTED:
        send_step(o, s, SAGA_STEP_RESERVE);
        break;
    case SAGA_RESERVED:
        send_step(o, s, SAGA_STEP_CREATE);
        break;
    case SAGA_COMPENSATING:
        /* The outcome is decided (nothing will be granted): answer now. */
        http_saga_decided(o, s);
        send_step(o, s, s->comp == SAGA_COMP_CANCEL ? SAGA_STEP_CANCEL : SAGA_STEP_RELEASE);
        break;
    case SAGA_COMPLETED:
        o->stats.completed++;
        log_info(s->id, "completed: coupon %lld granted to user %lld", s->coupon_id, s->user_id);
        saga_set_step(s, SAGA_STEP_NONE);
        http_saga_decided(o, s);
        saga_free(o, s);
        break;
    case SAGA_COMPENSATED:
        o->stats.compensated++;
        log_info(s->id, "compensated: coupon %lld not granted to user %lld (%s)", s->coupon_id,
                 s->user_id, s->reason);
        saga_set_step(s, SAGA_STEP_NONE);
        http_saga_decided(o, s);
        saga_free(o, s);
        break;
    default:
        log_error(s->id, "saga state %d out of range", (int)s->state);
        abort();
    }
}

/* ---- sagas ------------------------------------------------------------------- */

void engine_attach_waiter(saga *s, waiter *w)
{
    w->saga = s;
    w->remote = 0;
    w->snext = s->waiters;
    s->waiters = w;
}

int engine_start(orch *o, const char *id, const char *idem, long long user_id,
                 long long coupon_id, long long room_id, waiter *w)
{
    saga *s = calloc(1, sizeof(*s));
    int rc;

    if (s == NULL)
        return CG_ERR_NOMEM;
    memcpy(s->id, id, MSG_SAGA_ID_LEN + 1);
    s->ctx = o;
    s->user_id = user_id;
    s->coupon_id = coupon_id;
    s->room_id = room_id;
    s->created_ms = s->grab_time = orch_wall_ms();
    s->state = SAGA_STARTED;
    s->heap_idx = SAGA_HEAP_NONE;
    s->log_new = 1;
    if (idem != NULL)
        snprintf(s->idem, sizeof(s->idem), "%s", idem);
    s->log_to = SAGA_STARTED;
    s->step = SAGA_STEP_LOG;
    rc = saga_table_add(&o->sagas, s);
    if (rc != CG_OK) {
        free(s);
        return rc;
    }
    rc = sagalog_write(o, s);
    if (rc != CG_OK) {
        saga_table_remove(&o->sagas, s);
        free(s);
        return rc;
    }
    if (w != NULL)
        engine_attach_waiter(s, w);
    log_debug(s->id, "started: user %lld coupon %lld room %lld", user_id, coupon_id, room_id);
    return CG_OK;
}

void engine_resume(orch *o, const saga_record *rec)
{
    saga *s;

    if (saga_table_find(&o->sagas, rec->id) != NULL || saga_state_terminal(rec->state))
        return;
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        log_error(rec->id, "out of memory resuming the saga: the next sweep tries again");
        return;
    }
    memcpy(s->id, rec->id, sizeof(s->id));
    s->ctx = o;
    s->user_id = rec->user_id;
    s->coupon_id = rec->coupon_id;
    s->room_id = rec->room_id;
    s->grab_time = rec->grab_time;
    s->created_ms = rec->created_ms;
    s->state = rec->state;
    s->comp = rec->comp;
    snprintf(s->reason, sizeof(s->reason), "%s", rec->reason);
    s->heap_idx = SAGA_HEAP_NONE;
    s->recovered = 1;
    if (saga_table_add(&o->sagas, s) != CG_OK) {
        free(s);
        return;
    }
    log_info(s->id, "resuming in state %s%s%s (last owner %s)", saga_state_name(s->state),
             s->state == SAGA_COMPENSATING ? ", next " : "",
             s->state == SAGA_COMPENSATING ? saga_comp_name(s->comp) : "",
             rec->owner[0] ? rec->owner : "?");
    saga_enter(o, s);
}

static void saga_expired(orch *o, saga *s)
{
    switch (s->step) {
    case SAGA_STEP_NONE:
        break;
    case SAGA_STEP_LOG:
        if (!s->log_inflight && sagalog_write(o, s) != CG_OK) {
            s->log_failures++;
            log_retry_later(o, s);
        }
        break;
    case SAGA_STEP_RESERVE:
    case SAGA_STEP_CREATE:
        if (s->free_resend) {
            s->free_resend = 0;
            s->attempts--;   /* the nacked publish does not count */
            send_step(o, s, s->step);
        } else if (s->attempts <= o->conf.step_retries) {
            o->stats.resends++;
            log_info(s->id, "no reply to %s after %lld ms: re-sending (%d of %lld re-sends)",
                     msg_kind_name(saga_step_command(s->step)), o->conf.step_timeout_ms,
                     s->attempts, o->conf.step_retries);
            send_step(o, s, s->step);
        } else {
            o->stats.step_timeouts++;
            log_warn(s->id, "%s unanswered after %d sends: outcome unknown",
                     msg_kind_name(saga_step_command(s->step)), s->attempts);
            compensate(o, s, "timeout");
        }
        break;
    case SAGA_STEP_CANCEL:
    case SAGA_STEP_RELEASE:
        /* Compensation never gives up; the wait grows up to comp_backoff_max_ms. */
        if (!s->free_resend) {
            o->stats.resends++;
            log_info(s->id, "no reply to %s: re-sending (attempt %d)",
                     msg_kind_name(saga_step_command(s->step)), s->attempts + 1);
        }
        s->free_resend = 0;
        send_step(o, s, s->step);
        break;
    default:
        log_error(s->id, "saga step %d out of range", (int)s->step);
        abort();
    }
}

void engine_tick(orch *o, long long now_ms)
{
    saga *s;

    while ((s = saga_table_pop_expired(&o->sagas, now_ms)) != NULL)
        saga_expired(o, s);
}

/* ---- replies ------------------------------------------------------------------- */

static int is(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

static void set_sold_out(orch *o, long long coupon_id)
{
    coupon_entry *e;

    if (o->conf.sold_out_ttl_ms <= 0)
        return;
    e = coupon_cache_get(&o->coupons, coupon_id);
    if (e != NULL)
        e->sold_out_until = orch_now_ms() + o->conf.sold_out_ttl_ms;
}

/* Applies a reply to a saga in memory when it answers what the saga waits
 * for; anything else (late, duplicate, for an earlier step) is logged and
 * dropped: the saga's state already accounts for it. */
static void handle_reply(orch *o, saga *s, enum msg_kind kind, const msg_item *it, dref *d)
{
    const char *r = it->result;

    if (kind == MSG_STOCK_REPLY && s->step == SAGA_STEP_RESERVE) {
        if (is(r, MSG_RESULT_RESERVED)) {
            saga_take_ack(s, d);
            saga_go(o, s, SAGA_RESERVED);
            return;
        }
        if (is(r, MSG_RESULT_REJECTED)) {
            snprintf(s->reason, sizeof(s->reason), "%s", it->reason[0] ? it->reason : "rejected");
            if (is(s->reason, MSG_REASON_OUT_OF_STOCK))
                set_sold_out(o, s->coupon_id);
            s->comp = SAGA_COMP_NONE;
            saga_take_ack(s, d);
            saga_go(o, s, SAGA_COMPENSATED);   /* definite: nothing was reserved */
            return;
        }
    } else if (kind == MSG_STOCK_REPLY && s->step == SAGA_STEP_RELEASE) {
        if (is(r, MSG_RESULT_RELEASED)) {
            saga_take_ack(s, d);
            saga_go(o, s, SAGA_COMPENSATED);
            return;
        }
    } else if (kind == MSG_ORDER_REPLY && s->step == SAGA_STEP_CREATE) {
        if (is(r, MSG_RESULT_CREATED)) {
            saga_take_ack(s, d);
            saga_go(o, s, SAGA_COMPLETED);
            return;
        }
        if (is(r, MSG_RESULT_FAILED)) {
            saga_take_ack(s, d);
            /* An earlier send of the create may still run: cancel leaves a barrier. */
            compensate(o, s, it->reason[0] ? it->reason : "order_failed");
            return;
        }
    } else if (kind == MSG_ORDER_REPLY && s->step == SAGA_STEP_CANCEL) {
        if (is(r, MSG_RESULT_CANCELLED)) {
            /* Progress inside COMPENSATING is not logged: a recovery that
             * repeats the (idempotent) cancel costs one round trip. */
            s->comp = SAGA_COMP_RELEASE;
            send_step(o, s, SAGA_STEP_RELEASE);
            return;
        }
    }
    o->stats.replies_ignored++;
    log_info(s->id, "ignoring %s %s%s%s in state %s (step %s)", msg_kind_name(kind), r,
             it->reason[0] ? " " : "", it->reason, saga_state_name(s->state),
             saga_step_name(s->step));
}

static void on_lookup(int status, int found, int mine, const saga_record *rec, void *arg)
{
    lookup *l = arg;
    orch *o = l->o;
    saga *s;

    if (o->rds == NULL) {
        /* shutting down */
    } else if ((s = saga_table_find(&o->sagas, l->item.saga_id)) != NULL) {
        handle_reply(o, s, l->kind, &l->item, l->d);   /* it came back in the meantime */
    } else if (status != CG_OK) {
        log_warn(l->item.saga_id, "cannot read the saga log for a %s reply (%s): dropped; "
                 "the saga's owner re-sends its step", msg_kind_name(l->kind),
                 cg_status_name(status));
    } else if (!found) {
        log_warn(l->item.saga_id, "%s %s for a saga the log does not know: dropped",
                 msg_kind_name(l->kind), l->item.result);
    } else if (saga_state_terminal(rec->state)) {
        log_info(l->item.saga_id, "late %s %s for a saga already %s: dropped",
                 msg_kind_name(l->kind), l->item.result, saga_state_name(rec->state));
    } else if (!mine) {
        log_info(l->item.saga_id, "%s %s for a saga owned by %s: dropped",
                 msg_kind_name(l->kind), l->item.result, rec->owner);
    } else {
        /* Ours but not in memory (adopted, or a log write of unknown outcome):
         * take it back; its current step is re-sent and answered again. */
        engine_resume(o, rec);
    }
    dref_release(l->d);
    free(l);
}

static void reply_lookup(orch *o, enum msg_kind kind, const msg_item *it, dref *d)
{
    lookup *l = malloc(sizeof(*l));

    o->stats.replies_looked_up++;
    if (l == NULL) {
        log_error(it->saga_id, "out of memory looking up a reply: dropped");
        return;
    }
    l->o = o;
    l->kind = kind;
    l->item = *it;
    l->d = d;
    d->refs++;
    if (saga_log_load(o->rds, o->conf.instance_id, it->saga_id, on_lookup, l) != CG_OK) {
        log_warn(it->saga_id, "cannot read the saga log for a %s reply: dropped",
                 msg_kind_name(kind));
        d->refs--;
        free(l);
    }
}

typedef struct dead_ctx {
    orch *o;
    mq_delivery_id id;
} dead_ctx;

static void on_dead_confirm(mq_client *c, int result, void *arg)
{
    dead_ctx *dc = arg;

    if (dc->o->mq != NULL) {
        if (result == MQ_PUBLISH_ACKED)
            (void)mq_ack(c, dc->id, 0);
        else
            (void)mq_nack(c, dc->id, 0);   /* the queue's own dead-lettering, without a reason */
    }
    free(dc);
}

static void dead_letter(orch *o, mq_message *msg, const char *reason)
{
    dead_ctx *dc = malloc(sizeof(*dc));

    log_warn(msg->correlation_id ? msg->correlation_id : "-", "bad reply message %s: %s",
             msg->message_id ? msg->message_id : "?", reason);
    if (dc != NULL) {
        dc->o = o;
        dc->id = msg->id;
    }
    if (dc == NULL || msg_dead_letter(o->mq, msg, o->reply_queue, reason, on_dead_confirm, dc) != CG_OK) {
        free(dc);
        (void)mq_nack(o->mq, msg->id, 0);
    }
}

void engine_on_delivery(mq_client *c, mq_message *msg, void *arg)
{
    orch *o = arg;
    enum msg_kind kind;
    jv_error err;
    char reason[300];
    dref *d;

    (void)c;
    if (msg->type == NULL || msg_kind_parse(msg->type, &kind) != CG_OK ||
        (kind != MSG_STOCK_REPLY && kind != MSG_ORDER_REPLY)) {
        snprintf(reason, sizeof(reason), "type '%s' is not a reply kind",
                 msg->type ? msg->type : "");
        dead_letter(o, msg, reason);
        goto done;
    }
    memset(&err, 0, sizeof(err));
    if (msg_decode(kind, msg->body, msg->body_len, o->inbox, &err) != CG_OK) {
        snprintf(reason, sizeof(reason), "%s%s%s", err.field, err.field[0] ? ": " : "", err.msg);
        dead_letter(o, msg, reason);
        goto done;
    }
    d = malloc(sizeof(*d));
    if (d == NULL) {
        (void)mq_nack(o->mq, msg->id, 1);
        goto done;
    }
    d->o = o;
    d->id = msg->id;
    d->refs = 1;
    for (size_t i = 0; i < o->inbox->n; i++) {
        const msg_item *it = &o->inbox->items[i];
        saga *s = saga_table_find(&o->sagas, it->saga_id);

        o->stats.replies++;
        log_debug(it->saga_id, "%s %s%s%s", msg_kind_name(kind), it->result,
                  it->reason[0] ? " " : "", it->reason);
        if (s != NULL)
            handle_reply(o, s, kind, it, d);
        else
            reply_lookup(o, kind, it, d);
    }
    dref_release(d);
done:
    mq_message_free(msg);
}

/* ---- setup --------------------------------------------------------------------- */

int engine_init(orch *o)
{
    static const enum msg_kind kinds[] = {MSG_STOCK_RESERVE, MSG_STOCK_RELEASE, MSG_ORDER_CREATE,
                                          MSG_ORDER_CANCEL};
    int rc = saga_table_init(&o->sagas, (size_t)o->conf.max_inflight_sagas);

    if (rc != CG_OK)
        return rc;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        o->outbox[kinds[i]] = calloc(1, sizeof(msg_batch));
        if (o->outbox[kinds[i]] == NULL)
            return CG_ERR_NOMEM;
        o->outbox[kinds[i]]->kind = kinds[i];
    }
    o->inbox = calloc(1, sizeof(msg_batch));
    /* Activated by the first item queued; libevent appends it to the active
     * queue behind every event already ready in this iteration, so it runs
     * once after them all. (A lower priority would be wrong: libevent skips
     * lower-priority queues while higher ones have work, so under steady
     * I/O the flush would starve until a batch filled up.) */
    o->flush_ev = event_new(o->base, -1, 0, on_flush, o);
    if (o->inbox == NULL || o->flush_ev == NULL)
        return CG_ERR_NOMEM;
    return CG_OK;
}

void engine_destroy(orch *o)
{
    for (size_t i = 0; i < o->sagas.n_buckets; i++) {
        saga *s;

        while ((s = o->sagas.buckets[i]) != NULL) {
            http_saga_detach(o, s);
            saga_free(o, s);
        }
    }
    saga_table_destroy(&o->sagas);
    for (int k = 0; k < MSG_KIND_MAX; k++) {
        free(o->outbox[k]);
        o->outbox[k] = NULL;
    }
    free(o->inbox);
    o->inbox = NULL;
    if (o->flush_ev != NULL)
        event_free(o->flush_ev);
    o->flush_ev = NULL;
}
