/* ord_svc.c - order-svc's loop side: deliveries, admission, replies, acks; see ord_svc.h.
 *
 * Life of a command delivery (an ord_cmd):
 *   delivered -> decoded into items, each routed to its shard -> parked until
 *   its items fit the bounds (per-shard queue, total pending) -> submitted to
 *   the shard workers -> items come back decided (eventfd per shard) -> the
 *   decided items of all commands are grouped into one order.reply per
 *   reply_to -> every reply covering the command confirmed -> ack -> freed.
 * Parked commands are still unacked deliveries, so the broker's prefetch is
 * what bounds them. Replies and dead letters the broker refuses, or whose
 * confirm is lost, are published again with backoff (an ord_pub each).
 *
 * Results come back from the workers through an eventfd per shard watched
 * by libevent, rather than event_active() from the worker threads: that needs
 * evthread_use_pthreads() and makes every libevent call on the loop take a
 * lock, while an eventfd costs one write per batch and coalesces wakeups; it
 * is also how mq's I/O thread talks to the loop. */
#include "ord_svc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "log.h"
#include "mq.h"
#include "msg.h"
#include "ord_http.h"
#include "ord_queue.h"
#include "ord_shard.h"
#include "sr_map.h"

#define ORD_TICK_MS 100              /* the one periodic timer */
#define ORD_HELD_LOG_MS 5000         /* how often held-back commands are logged */
#define ORD_DEAD_ATTEMPTS 8          /* dead-letter publishes before a plain reject */
#define ORD_PUB_FIRST_RETRY_MS 50

/* A command delivery and its items. */
typedef struct ord_cmd {
    struct ord_cmd *prev, *next;     /* svc->cmds: every live command */
    struct ord_cmd *park_next;       /* svc->parked FIFO */
    mq_message *msg;                 /* owned */
    int op;                          /* enum ord_op */
    int parked;
    size_t n;
    size_t undecided;                /* items not decided by a shard yet */
    size_t unconfirmed;              /* decided items whose reply is not confirmed yet:
                                        waiting for a flush, published, or to be re-sent */
    const void *mark;                /* the reply being built that references it; NULL otherwise */
    size_t mark_ref;                 /* its index in that reply's refs */
    uint16_t per_shard[SR_MAX_SHARDS];
    ord_item items[];
} ord_cmd;

/* What an ord_pub publishes. */
enum ord_pub_kind {
    ORD_PUB_REPLY = 0,   /* an order.reply to a reply_to queue */
    ORD_PUB_DEAD = 1,    /* a dead letter for a message that cannot be processed */
    ORD_PUB_KIND_MAX
};

typedef struct ord_pub_ref {
    ord_cmd *cmd;
    size_t count;                    /* items of cmd in the reply */
} ord_pub_ref;

/* A publish the service waits on until the broker confirms it. */
typedef struct ord_pub {
    struct ord_pub *prev, *next;     /* svc->pubs */
    int kind;                        /* enum ord_pub_kind */
    int in_flight;                   /* published, confirm not in yet */
    int attempts;
    long long retry_at;              /* > 0: waiting to be published again */
    char message_id[MSG_SAGA_ID_LEN + 1];
    char correlation_id[MSG_SAGA_ID_LEN + 1];
    char *reply_to;                  /* REPLY */
    char *body;                      /* REPLY */
    size_t len;
    ord_pub_ref *refs;               /* REPLY: the commands it answers */
    size_t n_refs;
    mq_message *msg;                 /* DEAD: owned until acked or rejected */
    char reason[CG_ERROR_MSG_MAX];   /* DEAD */
    struct ord_svc *svc;
} ord_pub;

struct ord_svc {
    const ord_conf *conf;
    struct event_base *base;
    sr_map map;
    int n_shards;
    ord_shard *shards[SR_MAX_SHARDS];
    size_t load[SR_MAX_SHARDS];      /* items submitted to each shard, not back yet */
    int shard_stopped[SR_MAX_SHARDS];
    mq_client *mq;
    ord_http *http;                  /* the query API */
    struct event *tick;
    struct event *flush_ev;

    ord_cmd *cmds;                   /* every live command */
    ord_cmd *parked, *parked_tail;   /* waiting for room, in arrival order */
    size_t n_parked;
    size_t pending;                  /* items of submitted commands not yet acked */
    ord_list decided;                /* decided items waiting to be put in a reply */
    ord_pub *pubs;
    size_t n_pubs;

    msg_batch *in_batch;             /* decode scratch */
    msg_batch *out_batch;            /* encode scratch */

    int ready;
    int stopping;
    int closing;                     /* inside ord_svc_free: callbacks only clean up */
    int clean;
    long long stop_deadline;
    long long next_held_log;
    uint64_t n_created, n_failed, n_cancelled, n_dead;
};

static long long ord_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ord_svc_admit(ord_svc *svc);
static void ord_pub_send(ord_svc *svc, ord_pub *pub);

/* ---- commands --------------------------------------------------------- */

/* The log id of a message: its saga when it has one, else its message id. */
static const char *ord_msg_id(const mq_message *msg)
{
    if (msg->correlation_id != NULL)
        return msg->correlation_id;
    return msg->message_id != NULL ? msg->message_id : "-";
}

static ord_cmd *ord_cmd_new(ord_svc *svc, mq_message *msg, int op, const msg_batch *batch)
{
    ord_cmd *cmd = calloc(1, sizeof(*cmd) + batch->n * sizeof(ord_item));

    if (cmd == NULL)
        return NULL;
    cmd->msg = msg;
    cmd->op = op;
    cmd->n = batch->n;
    cmd->undecided = batch->n;
    for (size_t i = 0; i < batch->n; i++) {
        ord_item *it = &cmd->items[i];

        it->cmd = cmd;
        it->in = batch->items[i];
        it->op = op;
        /* grab_time is in ms; the router takes seconds. */
        it->shard = sr_shard_of(&svc->map, it->in.user_id, it->in.room_id, it->in.grab_time / 1000);
        cmd->per_shard[it->shard]++;
    }
    cmd->next = svc->cmds;
    if (svc->cmds != NULL)
        svc->cmds->prev = cmd;
    svc->cmds = cmd;
    return cmd;
}

/* Frees a command that is no longer parked and that no shard holds. */
static void ord_cmd_free(ord_svc *svc, ord_cmd *cmd, int submitted)
{
    if (cmd->prev != NULL)
        cmd->prev->next = cmd->next;
    else
        svc->cmds = cmd->next;
    if (cmd->next != NULL)
        cmd->next->prev = cmd->prev;
    if (submitted)
        svc->pending -= cmd->n;
    mq_message_free(cmd->msg);
    free(cmd);
}

/* Acks and frees a command once everything it asked for is decided and
 * every reply about it is confirmed. */
static void ord_cmd_check(ord_svc *svc, ord_cmd *cmd)
{
    int rc;

    if (cmd->undecided > 0 || cmd->unconfirmed > 0 || svc->closing)
        return;
    rc = mq_ack(svc->mq, cmd->msg->id, 0);
    if (rc != CG_OK)
        log_warn(ord_msg_id(cmd->msg), "ack failed (%s): the broker will redeliver",
                 cg_status_name(rc));
    else
        log_debug(ord_msg_id(cmd->msg), "%s of %zu items done and acked",
                  msg_kind_name(cmd->op == ORD_OP_CREATE ? MSG_ORDER_CREATE : MSG_ORDER_CANCEL),
                  cmd->n);
    ord_cmd_free(svc, cmd, 1);
}

static void ord_park(ord_svc *svc, ord_cmd *cmd)
{
    cmd->parked = 1;
    cmd->park_next = NULL;
    if (svc->parked_tail != NULL)
        svc->parked_tail->park_next = cmd;
    else
        svc->parked = cmd;
    svc->parked_tail = cmd;
    svc->n_parked++;
}

static int ord_fits(const ord_svc *svc, const ord_cmd *cmd)
{
    if (svc->pending + cmd->n > (size_t)svc->conf->pending_max)
        return 0;
    for (int s = 0; s < svc->n_shards; s++) {
        if (cmd->per_shard[s] > 0 &&
            svc->load[s] + cmd->per_shard[s] > (size_t)svc->conf->shard_queue_max)
            return 0;
    }
    return 1;
}

static void ord_submit(ord_svc *svc, ord_cmd *cmd)
{
    ord_list lists[SR_MAX_SHARDS];

    memset(lists, 0, sizeof(lists[0]) * (size_t)svc->n_shards);
    for (size_t i = 0; i < cmd->n; i++)
        ord_list_push(&lists[cmd->items[i].shard], &cmd->items[i]);
    svc->pending += cmd->n;
    for (int s = 0; s < svc->n_shards; s++) {
        if (lists[s].n == 0)
            continue;
        svc->load[s] += lists[s].n;
        ord_shard_submit(svc->shards[s], &lists[s]);
    }
}

/* Submits every parked command that fits now, oldest first; one that does
 * not fit (its shard is full) does not hold back the ones behind it. */
static void ord_svc_admit(ord_svc *svc)
{
    ord_cmd *cmd = svc->parked, *prev = NULL, *next;

    while (cmd != NULL) {
        next = cmd->park_next;
        if (svc->stopping || !ord_fits(svc, cmd)) {
            prev = cmd;
            cmd = next;
            continue;
        }
        if (prev != NULL)
            prev->park_next = next;
        else
            svc->parked = next;
        if (svc->parked_tail == cmd)
            svc->parked_tail = prev;
        svc->n_parked--;
        cmd->parked = 0;
        cmd->park_next = NULL;
        ord_submit(svc, cmd);
        cmd = next;
    }
}

/* Drops every parked command unacked: after a broker disconnect their
 * deliveries are back in the queue already, and on stop they go back when
 * the connection closes. */
static void ord_drop_parked(ord_svc *svc, const char *why)
{
    ord_cmd *cmd;
    size_t n = svc->n_parked;

    while ((cmd = svc->parked) != NULL) {
        svc->parked = cmd->park_next;
        ord_cmd_free(svc, cmd, 0);
    }
    svc->parked_tail = NULL;
    svc->n_parked = 0;
    if (n > 0)
        log_info("-", "dropped %zu waiting commands unacked (%s)", n, why);
}

/* ---- publishes: replies and dead letters --------------------------------- */

static void ord_pub_unlink(ord_svc *svc, ord_pub *pub)
{
    if (pub->prev != NULL)
        pub->prev->next = pub->next;
    else
        svc->pubs = pub->next;
    if (pub->next != NULL)
        pub->next->prev = pub->prev;
    svc->n_pubs--;
}

static void ord_pub_free(ord_svc *svc, ord_pub *pub)
{
    ord_pub_unlink(svc, pub);
    free(pub->reply_to);
    free(pub->body);
    free(pub->refs);
    mq_message_free(pub->msg);
    free(pub);
}

static ord_pub *ord_pub_new(ord_svc *svc, int kind)
{
    ord_pub *pub = calloc(1, sizeof(*pub));

    if (pub == NULL)
        return NULL;
    pub->kind = kind;
    pub->svc = svc;
    if (msg_saga_id_new(pub->message_id) != CG_OK)
        snprintf(pub->message_id, sizeof(pub->message_id), "%016llx%016llx",
                 (unsigned long long)ord_now_ms(), (unsigned long long)(uintptr_t)pub);
    pub->next = svc->pubs;
    if (svc->pubs != NULL)
        svc->pubs->prev = pub;
    svc->pubs = pub;
    svc->n_pubs++;
    return pub;
}

static void ord_pub_retry_later(ord_svc *svc, ord_pub *pub, const char *why)
{
    long long delay = (long long)ORD_PUB_FIRST_RETRY_MS << (pub->attempts < 10 ? pub->attempts : 10);
    const char *id = pub->kind == ORD_PUB_DEAD ? ord_msg_id(pub->msg)
                     : pub->correlation_id[0] != '\0' ? pub->correlation_id : pub->message_id;

    if (delay > svc->conf->reply_retry_max_ms)
        delay = svc->conf->reply_retry_max_ms;
    pub->retry_at = ord_now_ms() + delay;

    log_warn(id, "%s to %s not confirmed (%s), attempt %d; again in %lld ms",
             pub->kind == ORD_PUB_DEAD ? "dead letter" : "reply",
             pub->kind == ORD_PUB_DEAD ? MSG_QUEUE_DEAD : pub->reply_to, why, pub->attempts, delay);
}

static void ord_on_pub_confirm(mq_client *c, int result, void *arg)
{
    ord_pub *pub = arg;
    ord_svc *svc = pub->svc;
    int rc;

    (void)c;
    pub->in_flight = 0;
    if (svc->closing) {
        ord_pub_free(svc, pub);
        return;
    }
    if (result != MQ_PUBLISH_ACKED) {
        if (pub->kind == ORD_PUB_DEAD && pub->attempts >= ORD_DEAD_ATTEMPTS) {
            /* Never loop forever: reject it, and order.cmd's own dead-lettering
             * moves it to grab.dead (without our reason). */
            log_error(ord_msg_id(pub->msg), "dead letter refused %d times; rejecting the message",
                      pub->attempts);
            (void)mq_nack(svc->mq, pub->msg->id, 0);
            ord_pub_free(svc, pub);
            return;
        }
        ord_pub_retry_later(svc, pub, result == MQ_PUBLISH_NACKED ? "nacked" : "outcome unknown");
        return;
    }
    switch (pub->kind) {
    case ORD_PUB_REPLY:
        for (size_t i = 0; i < pub->n_refs; i++)
            pub->refs[i].cmd->unconfirmed -= pub->refs[i].count;
        for (size_t i = 0; i < pub->n_refs; i++)
            ord_cmd_check(svc, pub->refs[i].cmd);
        break;
    case ORD_PUB_DEAD:
        rc = mq_ack(svc->mq, pub->msg->id, 0);
        if (rc != CG_OK)
            log_warn(ord_msg_id(pub->msg), "ack of a dead-lettered message failed (%s)",
                     cg_status_name(rc));
        break;
    default:
        log_error("-", "publish of kind %d", pub->kind);
        abort();
    }
    ord_pub_free(svc, pub);
    ord_svc_admit(svc);
}

static void ord_pub_send(ord_svc *svc, ord_pub *pub)
{
    mq_props props = {0};
    int rc;

    pub->retry_at = 0;
    pub->attempts++;
    switch (pub->kind) {
    case ORD_PUB_REPLY:
        props.type = msg_kind_name(MSG_ORDER_REPLY);
        props.message_id = pub->message_id;
        props.correlation_id = pub->correlation_id[0] != '\0' ? pub->correlation_id : NULL;
        rc = mq_publish(svc->mq, "", pub->reply_to, &props, pub->body, pub->len,
                        ord_on_pub_confirm, pub);
        break;
    case ORD_PUB_DEAD:
        rc = msg_dead_letter(svc->mq, pub->msg, MSG_QUEUE_ORDER, pub->reason, ord_on_pub_confirm,
                             pub);
        break;
    default:
        log_error("-", "publish of kind %d", pub->kind);
        abort();
    }
    if (rc == CG_OK)
        pub->in_flight = 1;
    else
        ord_pub_retry_later(svc, pub, cg_status_name(rc));
}

/* Sends msg to grab.dead with the reason; acked once that is confirmed. */
static void ord_dead_letter(ord_svc *svc, mq_message *msg, const char *fmt, ...) CG_PRINTF(3, 4);
static void ord_dead_letter(ord_svc *svc, mq_message *msg, const char *fmt, ...)
{
    ord_pub *pub = ord_pub_new(svc, ORD_PUB_DEAD);
    va_list ap;

    if (pub == NULL) {
        /* Out of memory: leave it unacked; it comes back after a reconnect. */
        log_error(ord_msg_id(msg), "out of memory dead-lettering a message");
        mq_message_free(msg);
        return;
    }
    pub->msg = msg;
    va_start(ap, fmt);
    vsnprintf(pub->reason, sizeof(pub->reason), fmt, ap);
    va_end(ap);
    svc->n_dead++;
    log_warn(ord_msg_id(msg), "dead-lettering message %s (type %s): %s",
             msg->message_id ? msg->message_id : "-", msg->type ? msg->type : "-", pub->reason);
    ord_pub_send(svc, pub);
}

/* Moves the decided items with the reply_to of the list's first item (up to
 * a batch) into one reply and publishes it. On failure (out of memory) the
 * items stay in the list for the next flush. */
static void ord_reply_one(ord_svc *svc)
{
    const char *reply_to = svc->decided.head->cmd->msg->reply_to;
    ord_list rest = {NULL, NULL, 0}, taken = {NULL, NULL, 0};
    msg_batch *b = svc->out_batch;
    ord_pub *pub = ord_pub_new(svc, ORD_PUB_REPLY);
    ord_item *it;
    int rc;

    if (pub == NULL)
        goto fail;
    pub->reply_to = strdup(reply_to);
    pub->refs = calloc(MSG_MAX_BATCH, sizeof(*pub->refs));
    if (pub->reply_to == NULL || pub->refs == NULL)
        goto fail;
    b->kind = MSG_ORDER_REPLY;
    b->n = 0;
    while ((it = ord_list_pop(&svc->decided)) != NULL) {
        msg_item *out;

        if (b->n == MSG_MAX_BATCH || strcmp(it->cmd->msg->reply_to, pub->reply_to) != 0) {
            ord_list_push(&rest, it);
            continue;
        }
        out = &b->items[b->n++];
        memset(out, 0, sizeof(*out));
        memcpy(out->saga_id, it->in.saga_id, sizeof(out->saga_id));
        snprintf(out->result, sizeof(out->result), "%s", ord_outcome_result(it->outcome));
        if (it->reason != NULL)
            snprintf(out->reason, sizeof(out->reason), "%s", it->reason);
        ord_list_push(&taken, it);
    }
    rc = msg_encode_new(b, &pub->body, &pub->len);
    if (rc != CG_OK) {
        log_error("-", "encoding a reply of %zu items: %s", b->n, cg_status_name(rc));
        ord_list_splice(&taken, &rest);
        svc->decided = taken;
        goto fail;
    }
    svc->decided = rest;
    if (b->n == 1)
        memcpy(pub->correlation_id, b->items[0].saga_id, sizeof(pub->correlation_id));
    /* One ref per command, found through the command's mark. */
    for (it = taken.head; it != NULL; it = it->next) {
        ord_cmd *cmd = it->cmd;

        if (cmd->mark != pub) {
            cmd->mark = pub;
            cmd->mark_ref = pub->n_refs++;
            pub->refs[cmd->mark_ref].cmd = cmd;
        }
        pub->refs[cmd->mark_ref].count++;
    }
    /* A mark is only valid while this reply is built: once the reply is
     * confirmed and freed, a later one may get the same address, and a stale
     * mark would count the command's items in a ref of another command (or
     * past n_refs), so the command would never be acked. */
    for (size_t i = 0; i < pub->n_refs; i++)
        pub->refs[i].cmd->mark = NULL;
    log_debug(pub->correlation_id[0] ? pub->correlation_id : pub->message_id,
              "reply of %zu items to %s", b->n, pub->reply_to);
    ord_pub_send(svc, pub);
    return;

fail:
    log_error("-", "could not build a reply; retrying on the next tick");
    if (pub != NULL)
        ord_pub_free(svc, pub);
}

/* Publishes every decided item, one reply per reply_to (and per batch). */
static void ord_flush(evutil_socket_t fd, short what, void *arg)
{
    ord_svc *svc = arg;
    size_t before;

    (void)fd;
    (void)what;
    while (svc->decided.n > 0) {
        before = svc->decided.n;
        ord_reply_one(svc);
        if (svc->decided.n == before)
            break;   /* out of memory: the timer tries again */
    }
}

/* ---- shard results ---------------------------------------------------------- */

static void ord_on_done(ord_shard *s, ord_list *done, void *arg)
{
    ord_svc *svc = arg;
    int index = ord_shard_index(s);
    ord_item *it;

    while ((it = ord_list_pop(done)) != NULL) {
        svc->load[index]--;
        /* Counted as unconfirmed from now on, so that the command cannot be
         * acked before the reply carrying this item is confirmed. */
        it->cmd->undecided--;
        it->cmd->unconfirmed++;
        switch (it->outcome) {
        case ORD_OUT_CREATED: svc->n_created++; break;
        case ORD_OUT_FAILED: svc->n_failed++; break;
        case ORD_OUT_CANCELLED: svc->n_cancelled++; break;
        default:
            log_error(it->in.saga_id, "%s returned an undecided item", ord_shard_label(s));
            abort();
        }
        ord_list_push(&svc->decided, it);
    }
    if (!svc->shard_stopped[index] && ord_shard_state(s) == ORD_SHARD_STOPPED) {
        svc->shard_stopped[index] = 1;
        log_info("-", "%s: worker stopped", ord_shard_label(s));
    }
    /* Replies for every shard that reported in this round go out together. */
    if (svc->decided.n > 0)
        event_active(svc->flush_ev, EV_TIMEOUT, 0);
    ord_svc_admit(svc);
}

/* ---- deliveries ----------------------------------------------------------- */

static void ord_on_delivery(mq_client *c, mq_message *msg, void *arg)
{
    ord_svc *svc = arg;
    enum msg_kind kind;
    jv_error jerr;
    ord_cmd *cmd;

    (void)c;
    if (svc->stopping) {
        /* Not acked: it goes back to the queue when the connection closes. */
        mq_message_free(msg);
        return;
    }
    if (msg->type == NULL || msg_kind_parse(msg->type, &kind) != CG_OK ||
        (kind != MSG_ORDER_CREATE && kind != MSG_ORDER_CANCEL)) {
        ord_dead_letter(svc, msg, "unknown message type '%.64s' on %s", msg->type ? msg->type : "",
                        MSG_QUEUE_ORDER);
        return;
    }
    memset(&jerr, 0, sizeof(jerr));
    if (msg_decode(kind, msg->body, msg->body_len, svc->in_batch, &jerr) != CG_OK) {
        ord_dead_letter(svc, msg, "%s%s%s", jerr.field, jerr.field[0] ? ": " : "", jerr.msg);
        return;
    }
    if (msg->reply_to == NULL || msg->reply_to[0] == '\0') {
        ord_dead_letter(svc, msg, "no reply_to: the result could not be answered");
        return;
    }
    cmd = ord_cmd_new(svc, msg, kind == MSG_ORDER_CREATE ? ORD_OP_CREATE : ORD_OP_CANCEL,
                      svc->in_batch);
    if (cmd == NULL) {
        log_error(ord_msg_id(msg), "out of memory taking a command; it stays unacked");
        mq_message_free(msg);
        return;
    }
    log_debug(ord_msg_id(msg), "%s of %zu items from %s%s", msg->type, cmd->n, msg->reply_to,
              msg->redelivered ? " (redelivered)" : "");
    ord_park(svc, cmd);
    ord_svc_admit(svc);
}

static void ord_log_ready(ord_svc *svc)
{
    char up[256] = "", down[256] = "", other[256] = "";
    size_t lu = 0, ld = 0, lo = 0;

    for (int s = 0; s < svc->n_shards; s++) {
        int state = ord_shard_state(svc->shards[s]);

        if (state == ORD_SHARD_UP)
            lu += (size_t)snprintf(up + lu, sizeof(up) - lu, "%s%d", lu ? "," : "", s);
        else if (state == ORD_SHARD_DOWN)
            ld += (size_t)snprintf(down + ld, sizeof(down) - ld, "%s%d", ld ? "," : "", s);
        else
            lo += (size_t)snprintf(other + lo, sizeof(other) - lo, "%s%d", lo ? "," : "", s);
        if (lu >= sizeof(up) || ld >= sizeof(down) || lo >= sizeof(other))
            break;
    }
    log_info("-", "order-svc ready: consuming %s; %d shards by %s; shards up [%s] down [%s] "
             "connecting [%s]", MSG_QUEUE_ORDER, svc->n_shards, sr_strategy_name(svc->map.strategy),
             up, down, other);
}

static void ord_on_mq_state(mq_client *c, int up, void *arg)
{
    ord_svc *svc = arg;

    (void)c;
    if (up && !svc->ready) {
        svc->ready = 1;
        ord_log_ready(svc);
    } else if (up) {
        log_info("-", "broker connection back; consuming %s again", MSG_QUEUE_ORDER);
    } else {
        log_warn("-", "broker connection lost; unacked commands will be redelivered");
        ord_drop_parked(svc, "broker connection lost");
    }
}

/* ---- the periodic timer --------------------------------------------------- */

static int ord_stop_done(const ord_svc *svc)
{
    for (int s = 0; s < svc->n_shards; s++) {
        if (!svc->shard_stopped[s])
            return 0;
    }
    return svc->n_pubs == 0 && svc->decided.n == 0;
}

static void ord_on_tick(evutil_socket_t fd, short what, void *arg)
{
    ord_svc *svc = arg;
    long long now = ord_now_ms();
    ord_pub *pub, *next;

    (void)fd;
    (void)what;
    for (pub = svc->pubs; pub != NULL; pub = next) {
        next = pub->next;
        if (pub->retry_at > 0 && now >= pub->retry_at)
            ord_pub_send(svc, pub);
    }
    if (svc->decided.n > 0)
        ord_flush(-1, 0, svc);
    ord_svc_admit(svc);
    if (svc->n_parked > 0 && now >= svc->next_held_log) {
        log_warn("-", "%zu commands held back: %zu of %lld items pending", svc->n_parked,
                 svc->pending, svc->conf->pending_max);
        svc->next_held_log = now + ORD_HELD_LOG_MS;
    }
    if (svc->stopping) {
        if (ord_stop_done(svc)) {
            svc->clean = 1;
            event_base_loopbreak(svc->base);
        } else if (now >= svc->stop_deadline) {
            log_warn("-", "stop timed out after %lld ms: %zu publishes unconfirmed, %zu items "
                     "pending", svc->conf->shutdown_timeout_ms, svc->n_pubs, svc->pending);
            event_base_loopbreak(svc->base);
        }
    }
}

/* ---- lifecycle ------------------------------------------------------------ */

ord_svc *ord_svc_new(struct event_base *base, const ord_conf *conf, cg_error *err)
{
    ord_svc *svc = calloc(1, sizeof(*svc));
    enum sr_strategy strategy;
    ord_shard_config sc;
    mq_config mqc;
    mq_topology topo;
    struct timeval tick = {0, ORD_TICK_MS * 1000};
    char addr_buf[256];

    if (svc == NULL) {
        cg_error_set(err, CG_ERR_NOMEM, "out of memory");
        goto err;
    }
    svc->conf = conf;
    svc->base = base;
    svc->in_batch = malloc(sizeof(*svc->in_batch));
    svc->out_batch = malloc(sizeof(*svc->out_batch));
    svc->tick = event_new(base, -1, EV_PERSIST, ord_on_tick, svc);
    svc->flush_ev = event_new(base, -1, 0, ord_flush, svc);
    if (svc->in_batch == NULL || svc->out_batch == NULL || svc->tick == NULL ||
        svc->flush_ev == NULL) {
        cg_error_set(err, CG_ERR_NOMEM, "out of memory");
        goto err;
    }
    svc->n_shards = svc_conf_shard_count(&conf->svc);
    if (svc->n_shards < 1 || svc->n_shards > SR_MAX_SHARDS ||
        sr_strategy_parse(conf->svc.shard_strategy, &strategy) != CG_OK ||
        sr_map_build(&svc->map, strategy, svc->n_shards, conf->svc.shard_map, err) != CG_OK) {
        if (err != NULL && err->code == 0)
            cg_error_set(err, CG_ERR_INVALID, "bad shard settings");
        goto err;
    }
    for (int s = 0; s < svc->n_shards; s++) {
        memset(&sc, 0, sizeof(sc));
        if (svc_conf_shard_db(&conf->svc, s, &sc.db, addr_buf, sizeof(addr_buf), err) != CG_OK)
            goto err;
        sc.index = s;
        sc.batch_max = (size_t)conf->batch_max;
        sc.txn_retries = (int)conf->txn_retries;
        sc.give_up_ms = conf->create_give_up_ms;
        sc.reconnect_min_ms = (int)conf->reconnect_min_ms;
        sc.reconnect_max_ms = (int)conf->reconnect_max_ms;
        svc->shards[s] = ord_shard_new(base, &sc, ord_on_done, svc, err);
        if (svc->shards[s] == NULL)
            goto err;
    }
    if (ord_http_new(base, conf, &svc->map, &svc->http, err) != CG_OK)
        goto err;
    svc_conf_mq(&conf->svc, "order-svc", &mqc);
    msg_topology(&topo, NULL);
    svc->mq = mq_client_new(base, &mqc, &topo, ord_on_mq_state, svc, err);
    if (svc->mq == NULL)
        goto err;
    if (mq_consume(svc->mq, MSG_QUEUE_ORDER, ord_on_delivery, svc) != CG_OK) {
        cg_error_set(err, CG_ERR_NOMEM, "cannot register the consumer of %s", MSG_QUEUE_ORDER);
        goto err;
    }
    event_add(svc->tick, &tick);
    log_info("-", "order-svc starting: %d shards by %s, batch %lld, give-up %lld ms, broker "
             "%s:%lld", svc->n_shards, sr_strategy_name(strategy), conf->batch_max,
             conf->create_give_up_ms, conf->svc.amqp_host, conf->svc.amqp_port);
    return svc;

err:
    ord_svc_free(svc);
    return NULL;
}

void ord_svc_stop(ord_svc *svc)
{
    if (svc->stopping) {
        log_info("-", "already stopping");
        return;
    }
    svc->stopping = 1;
    svc->stop_deadline = ord_now_ms() + svc->conf->shutdown_timeout_ms;
    log_info("-", "stopping: %zu items pending, %zu publishes unconfirmed", svc->pending,
             svc->n_pubs);
    ord_drop_parked(svc, "stopping");
    for (int s = 0; s < svc->n_shards; s++)
        ord_shard_stop(svc->shards[s]);
}

int ord_svc_stopped_cleanly(const ord_svc *svc)
{
    return svc->clean;
}

void ord_svc_free(ord_svc *svc)
{
    if (svc == NULL)
        return;
    svc->closing = 1;
    ord_http_free(svc->http);
    /* First the broker: confirms still due run now and free their pubs. */
    mq_client_free(svc->mq);
    /* Then the workers, so that nothing touches the items any more. */
    for (int s = 0; s < svc->n_shards; s++)
        ord_shard_free(svc->shards[s]);
    while (svc->pubs != NULL)
        ord_pub_free(svc, svc->pubs);
    while (svc->cmds != NULL)
        ord_cmd_free(svc, svc->cmds, 0);
    if (svc->tick != NULL)
        event_free(svc->tick);
    if (svc->flush_ev != NULL)
        event_free(svc->flush_ev);
    log_info("-", "order-svc totals: %" PRIu64 " created, %" PRIu64 " failed, %" PRIu64
             " cancelled, %" PRIu64 " dead-lettered", svc->n_created, svc->n_failed,
             svc->n_cancelled, svc->n_dead);
    free(svc->in_batch);
    free(svc->out_batch);
    free(svc);
}
