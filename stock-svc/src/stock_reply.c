/* stock_reply.c - answers and what becomes of each delivery.
 *
 * Answered items wait on one list; a flush groups them by the reply_to of
 * their command and publishes one stock.reply batch (at most MSG_MAX_BATCH
 * items) per group through the default exchange. A delivery is acked only
 * when every one of its items has a reply the broker confirmed; a reply
 * that is nacked or whose fate is unknown is published again (the receiver
 * is idempotent on the saga id). A delivery that cannot finish here is
 * given back: nacked with requeue, dead-lettered with a reason, or simply
 * never acked when its connection or this process goes away. */
#include "stock_int.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const char *const stock_item_state_names[STOCK_ITEM_STATE_MAX] = {
    "held", "queued", "working", "answered", "publishing", "done",
};

static const char *const stock_dlv_state_names[STOCK_DLV_STATE_MAX] = {
    "held", "active", "dead", "abandoned",
};

const char *stock_item_state_name(int state)
{
    return state >= 0 && state < STOCK_ITEM_STATE_MAX ? stock_item_state_names[state] : "?";
}

void stock_item_set_state(stock_item *it, int state)
{
    assert(state >= 0 && state < STOCK_ITEM_STATE_MAX);
    log_debug(it->m.saga_id, "item of coupon %lld: %s -> %s", it->m.coupon_id,
              stock_item_state_names[it->state], stock_item_state_names[state]);
    it->state = state;
}

void stock_dlv_set_state(stock_delivery *d, int state)
{
    assert(state >= 0 && state < STOCK_DLV_STATE_MAX);
    log_debug(d->msg->message_id ? d->msg->message_id : "-", "delivery: %s -> %s",
              stock_dlv_state_names[d->state], stock_dlv_state_names[state]);
    d->state = state;
}

int stock_item_moot(const stock_item *it)
{
    return it->dlv->state != STOCK_DLV_ACTIVE;
}

/* ---- completion --------------------------------------------------------------- */

void stock_dlv_free(stock_svc *svc, stock_delivery *d)
{
    stock_list_remove(&d->all);
    stock_list_remove(&d->link);
    mq_message_free(d->msg);
    free(d);
    svc->n_deliveries--;
}

void stock_dlv_maybe_free(stock_svc *svc, stock_delivery *d)
{
    const char *id = d->msg->message_id ? d->msg->message_id : "-";

    if (d->open > 0 || d->dl != STOCK_DL_NONE)
        return;
    switch (d->state) {
    case STOCK_DLV_ACTIVE:
        /* Every reply is confirmed: the command is done. */
        if (!svc->closing && mq_ack(svc->mq, d->msg->id, 0) != CG_OK)
            log_warn(id, "cannot ack a finished command; the broker will redeliver it");
        break;
    case STOCK_DLV_DEAD:        /* acked when its dead letter was confirmed */
    case STOCK_DLV_ABANDONED:
        break;
    case STOCK_DLV_HELD:
        return;                 /* an admitted delivery cannot be HELD with no open item */
    default:
        log_error(id, "delivery in impossible state %d", d->state);
        abort();
    }
    stock_dlv_free(svc, d);
}

void stock_item_done(stock_svc *svc, stock_item *it)
{
    stock_delivery *d = it->dlv;

    assert(it->state != STOCK_ITEM_DONE && d->open > 0);
    stock_item_set_state(it, STOCK_ITEM_DONE);
    d->open--;
    stock_dlv_maybe_free(svc, d);
}

void stock_item_answer(stock_svc *svc, stock_item *it, const char *result, const char *reason)
{
    snprintf(it->m.result, sizeof(it->m.result), "%s", result);
    snprintf(it->m.reason, sizeof(it->m.reason), "%s", reason ? reason : "");
    if (strcmp(result, MSG_RESULT_RESERVED) == 0)
        svc->stats.reserved++;
    else if (strcmp(result, MSG_RESULT_REJECTED) == 0)
        svc->stats.rejected++;
    else
        svc->stats.released++;
    log_debug(it->m.saga_id, "coupon %lld user %lld: %s%s%s", it->m.coupon_id, it->m.user_id,
              result, it->m.reason[0] ? " " : "", it->m.reason);
    if (stock_item_moot(it)) {
        stock_item_done(svc, it);
        return;
    }
    stock_item_set_state(it, STOCK_ITEM_ANSWERED);
    stock_list_push_back(&svc->answered, &it->link);
    stock_kick(svc);
}

void stock_dlv_give_back(stock_svc *svc, stock_delivery *d, int how, const char *reason)
{
    const char *id = d->msg->message_id ? d->msg->message_id : "-";

    if (d->state == STOCK_DLV_ABANDONED)
        return;
    if (d->state == STOCK_DLV_DEAD) {
        /* Already going to the dead letters; only a lost connection stops that
         * (the ack would go nowhere). */
        if (how == STOCK_GIVE_DROP && d->dl == STOCK_DL_DUE) {
            stock_list_remove(&d->link);
            d->dl = STOCK_DL_NONE;
        }
        if (how == STOCK_GIVE_DROP)
            stock_dlv_set_state(d, STOCK_DLV_ABANDONED);
        stock_dlv_maybe_free(svc, d);
        return;
    }
    if (d->state == STOCK_DLV_HELD)
        stock_list_remove(&d->link);
    for (size_t i = 0; i < d->n_items; i++) {
        stock_item *it = &d->items[i];

        switch (it->state) {
        case STOCK_ITEM_HELD:
            stock_item_set_state(it, STOCK_ITEM_DONE);
            d->open--;
            break;
        case STOCK_ITEM_QUEUED:
            stock_coupon_unqueue(svc, it);
            stock_item_set_state(it, STOCK_ITEM_DONE);
            d->open--;
            break;
        case STOCK_ITEM_ANSWERED:
            stock_list_remove(&it->link);
            stock_item_set_state(it, STOCK_ITEM_DONE);
            d->open--;
            break;
        default:
            break;   /* WORKING, PUBLISHING: dropped when they come back */
        }
    }
    switch (how) {
    case STOCK_GIVE_REQUEUE:
        stock_dlv_set_state(d, STOCK_DLV_ABANDONED);
        if (!svc->closing && mq_nack(svc->mq, d->msg->id, 1) != CG_OK)
            log_warn(id, "cannot nack; the broker redelivers it when the connection closes");
        break;
    case STOCK_GIVE_DEAD:
        stock_dlv_set_state(d, STOCK_DLV_DEAD);
        snprintf(d->reason, sizeof(d->reason), "%s", reason ? reason : "failed");
        d->dl = STOCK_DL_DUE;
        d->dl_due_us = 0;
        stock_list_push_back(&svc->dead, &d->link);
        stock_kick(svc);
        break;
    default:
        stock_dlv_set_state(d, STOCK_DLV_ABANDONED);
        break;
    }
    stock_dlv_maybe_free(svc, d);
}

/* ---- reply publishing ------------------------------------------------------------ */

typedef struct stock_pub {
    stock_svc *svc;
    size_t n;
    stock_item *items[];
} stock_pub;

static void stock_on_reply_confirm(mq_client *c, int result, void *arg)
{
    stock_pub *p = arg;
    stock_svc *svc = p->svc;

    (void)c;
    svc->n_publishing--;
    if (result == MQ_PUBLISH_ACKED) {
        svc->stats.replies++;
        if (svc->replies_refused && !svc->closing)
            log_info(p->items[0]->m.saga_id, "replies are taken again");
        svc->replies_refused = 0;
    } else if (!svc->closing && !svc->replies_refused) {
        /* Once per change, not per batch: a full reply queue refuses them all. */
        svc->replies_refused = 1;
        log_warn(p->items[0]->m.saga_id, "reply batch of %zu to %s %s: publishing replies "
                 "again every %lld ms until taken", p->n, p->items[0]->dlv->msg->reply_to,
                 result == MQ_PUBLISH_NACKED ? "refused" : "unconfirmed",
                 svc->conf->reply_retry_ms);
    }
    for (size_t i = 0; i < p->n; i++) {
        stock_item *it = p->items[i];

        if (result == MQ_PUBLISH_ACKED || svc->closing || stock_item_moot(it)) {
            stock_item_done(svc, it);
        } else {
            svc->stats.republished++;
            stock_item_set_state(it, STOCK_ITEM_ANSWERED);
            stock_list_push_back(&svc->answered, &it->link);
        }
    }
    if (result != MQ_PUBLISH_ACKED)
        svc->reply_hold_until_us = stock_now_us() + svc->conf->reply_retry_ms * 1000;
    free(p);
    stock_kick(svc);
}

/* Publishes p's items as one batch; CG_OK once the broker has it queued. */
static int stock_publish(stock_svc *svc, stock_pub *p)
{
    msg_batch *b = svc->scratch;
    char *body = NULL, mid[MSG_SAGA_ID_LEN + 1];
    size_t len = 0;
    mq_props props = {0};
    int rc;

    b->kind = MSG_STOCK_REPLY;
    b->n = p->n;
    for (size_t i = 0; i < p->n; i++) {
        msg_item *m = &b->items[i];

        memset(m, 0, sizeof(*m));
        memcpy(m->saga_id, p->items[i]->m.saga_id, sizeof(m->saga_id));
        memcpy(m->result, p->items[i]->m.result, sizeof(m->result));
        memcpy(m->reason, p->items[i]->m.reason, sizeof(m->reason));
    }
    rc = msg_encode_new(b, &body, &len);
    if (rc == CG_OK)
        rc = msg_saga_id_new(mid);
    if (rc == CG_OK) {
        props.message_id = mid;
        props.correlation_id = p->n == 1 ? p->items[0]->m.saga_id : NULL;
        props.type = msg_kind_name(MSG_STOCK_REPLY);
        rc = mq_publish(svc->mq, NULL, p->items[0]->dlv->msg->reply_to, &props, body, len,
                        stock_on_reply_confirm, p);
    }
    free(body);
    return rc;
}

void stock_replies_flush(stock_svc *svc, int64_t now_us)
{
    int rc = CG_OK;

    if (svc->closing || now_us < svc->reply_hold_until_us)
        return;
    while (rc == CG_OK && !stock_list_empty(&svc->answered)) {
        stock_item *first = STOCK_OF(svc->answered.next, stock_item, link);
        const char *to = first->dlv->msg->reply_to;
        stock_pub *p = malloc(sizeof(*p) + MSG_MAX_BATCH * sizeof(p->items[0]));
        stock_link *l, *next;

        if (p == NULL) {
            rc = CG_ERR_NOMEM;
            break;
        }
        p->svc = svc;
        p->n = 0;
        for (l = svc->answered.next; l != &svc->answered && p->n < MSG_MAX_BATCH; l = next) {
            stock_item *it = STOCK_OF(l, stock_item, link);

            next = l->next;
            if (strcmp(it->dlv->msg->reply_to, to) == 0)
                p->items[p->n++] = it;
        }
        rc = stock_publish(svc, p);
        if (rc != CG_OK) {
            free(p);
            break;
        }
        svc->n_publishing++;
        for (size_t i = 0; i < p->n; i++) {
            stock_list_remove(&p->items[i]->link);
            stock_item_set_state(p->items[i], STOCK_ITEM_PUBLISHING);
        }
    }
    if (rc != CG_OK) {
        /* Full outbound queue (or no memory): the timer tries again. */
        log_debug("-", "replies wait: %s", cg_status_name(rc));
        svc->reply_hold_until_us = now_us + svc->conf->tick_ms * 1000;
    }
}

/* ---- dead letters ---------------------------------------------------------------- */

static void stock_on_dead_confirm(mq_client *c, int result, void *arg)
{
    stock_delivery *d = arg;
    stock_svc *svc = d->svc;
    const char *id = d->msg->message_id ? d->msg->message_id : "-";

    (void)c;
    svc->n_publishing--;
    d->dl = STOCK_DL_NONE;
    if (result == MQ_PUBLISH_ACKED) {
        svc->stats.dead++;
        if (d->state == STOCK_DLV_DEAD && !svc->closing && mq_ack(svc->mq, d->msg->id, 0) != CG_OK)
            log_warn(id, "cannot ack a dead-lettered command; it may come again");
    } else if (d->state == STOCK_DLV_DEAD && !svc->closing) {
        log_warn(id, "dead letter %s: trying again", result == MQ_PUBLISH_NACKED ? "refused"
                                                                                : "unconfirmed");
        d->dl = STOCK_DL_DUE;
        d->dl_due_us = stock_now_us() + svc->conf->reply_retry_ms * 1000;
        stock_list_push_back(&svc->dead, &d->link);
    }
    stock_dlv_maybe_free(svc, d);
    stock_kick(svc);
}

void stock_dead_flush(stock_svc *svc, int64_t now_us)
{
    stock_link *l, *next;

    if (svc->closing)
        return;
    for (l = svc->dead.next; l != &svc->dead; l = next) {
        stock_delivery *d = STOCK_OF(l, stock_delivery, link);
        int rc;

        next = l->next;
        if (d->dl_due_us > now_us)
            continue;
        rc = msg_dead_letter(svc->mq, d->msg, MSG_QUEUE_STOCK, d->reason, stock_on_dead_confirm, d);
        if (rc != CG_OK) {
            d->dl_due_us = now_us + svc->conf->reply_retry_ms * 1000;
            continue;
        }
        stock_list_remove(&d->link);
        d->dl = STOCK_DL_SENT;
        svc->n_publishing++;
    }
}
