/* ord_queue.c - items, lists and the per-shard batching queue; see ord_queue.h. */
#include "ord_queue.h"

#include <string.h>

void ord_list_push(ord_list *l, ord_item *it)
{
    it->next = NULL;
    if (l->tail != NULL)
        l->tail->next = it;
    else
        l->head = it;
    l->tail = it;
    l->n++;
}

ord_item *ord_list_pop(ord_list *l)
{
    ord_item *it = l->head;

    if (it != NULL) {
        l->head = it->next;
        if (l->head == NULL)
            l->tail = NULL;
        it->next = NULL;
        l->n--;
    }
    return it;
}

void ord_list_splice(ord_list *dst, ord_list *src)
{
    if (src->head == NULL)
        return;
    if (dst->tail != NULL)
        dst->tail->next = src->head;
    else
        dst->head = src->head;
    dst->tail = src->tail;
    dst->n += src->n;
    src->head = src->tail = NULL;
    src->n = 0;
}

size_t ord_queue_len(const ord_queue *q)
{
    return q->ops[ORD_OP_CREATE].n + q->ops[ORD_OP_CANCEL].n;
}

size_t ord_queue_len_op(const ord_queue *q, int op)
{
    return q->ops[op].n;
}

void ord_queue_push(ord_queue *q, ord_item *it, long long now_ms)
{
    it->queued_ms = now_ms;
    ord_list_push(&q->ops[it->op], it);
}

size_t ord_queue_take(ord_queue *q, size_t max, ord_item **out, int *op)
{
    const ord_item *create = q->ops[ORD_OP_CREATE].head, *cancel = q->ops[ORD_OP_CANCEL].head;
    ord_list *l;
    size_t n = 0;

    if (create == NULL && cancel == NULL)
        return 0;
    if (max > MSG_MAX_BATCH)
        max = MSG_MAX_BATCH;
    /* Oldest first, so neither operation starves; a cancel wins a tie since
     * a compensation is what a saga is waiting on to finish. */
    if (cancel != NULL && (create == NULL || cancel->queued_ms <= create->queued_ms))
        *op = ORD_OP_CANCEL;
    else
        *op = ORD_OP_CREATE;
    l = &q->ops[*op];
    while (n < max && l->head != NULL)
        out[n++] = ord_list_pop(l);
    return n;
}

void ord_queue_put_back(ord_queue *q, ord_item *const *items, size_t n)
{
    ord_list *l;

    if (n == 0)
        return;
    l = &q->ops[items[0]->op];
    for (size_t i = n; i-- > 0;) {
        ord_item *it = items[i];

        it->next = l->head;
        l->head = it;
        if (l->tail == NULL)
            l->tail = it;
        l->n++;
    }
}

/* When a waiting create may be given up, -1 when never. */
static long long ord_give_up_at(const ord_item *it, long long down_since_ms, long long give_up_ms)
{
    long long since = it->queued_ms > down_since_ms ? it->queued_ms : down_since_ms;

    return it->commit_unknown ? -1 : since + give_up_ms;
}

size_t ord_queue_give_up(ord_queue *q, long long now_ms, long long down_since_ms,
                         long long give_up_ms, ord_list *out)
{
    ord_list *l = &q->ops[ORD_OP_CREATE], keep = {NULL, NULL, 0};
    ord_item *it;
    size_t moved = 0;
    long long at;

    if (down_since_ms <= 0)
        return 0;
    while ((it = ord_list_pop(l)) != NULL) {
        at = ord_give_up_at(it, down_since_ms, give_up_ms);
        if (at >= 0 && at <= now_ms) {
            it->outcome = ORD_OUT_FAILED;
            it->reason = ORD_REASON_SHARD_UNAVAILABLE;
            ord_list_push(out, it);
            moved++;
        } else {
            ord_list_push(&keep, it);
        }
    }
    *l = keep;
    return moved;
}

long long ord_queue_next_give_up(const ord_queue *q, long long down_since_ms, long long give_up_ms)
{
    long long next = -1, at;

    if (down_since_ms <= 0)
        return -1;
    for (const ord_item *it = q->ops[ORD_OP_CREATE].head; it != NULL; it = it->next) {
        at = ord_give_up_at(it, down_since_ms, give_up_ms);
        if (at >= 0 && (next < 0 || at < next))
            next = at;
    }
    return next;
}

void ord_queue_drain(ord_queue *q, ord_list *out)
{
    for (int op = 0; op < ORD_OP_MAX; op++)
        ord_list_splice(out, &q->ops[op]);
}

void ord_items_settle_create(ord_item *const *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (items[i]->barred) {
            items[i]->outcome = ORD_OUT_FAILED;
            items[i]->reason = MSG_REASON_BARRED;
        } else {
            items[i]->outcome = ORD_OUT_CREATED;
            items[i]->reason = NULL;
        }
    }
}

void ord_items_settle_cancel(ord_item *const *items, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        items[i]->outcome = ORD_OUT_CANCELLED;
        items[i]->reason = NULL;
    }
}

size_t ord_items_mark_barred(ord_item *const *items, size_t n, const char *saga_id)
{
    size_t hits = 0;

    for (size_t i = 0; i < n; i++) {
        if (strcmp(items[i]->in.saga_id, saga_id) == 0) {
            items[i]->barred = 1;
            hits++;
        }
    }
    return hits;
}

const char *ord_outcome_result(int outcome)
{
    switch (outcome) {
    case ORD_OUT_CREATED:
        return MSG_RESULT_CREATED;
    case ORD_OUT_FAILED:
        return MSG_RESULT_FAILED;
    case ORD_OUT_CANCELLED:
        return MSG_RESULT_CANCELLED;
    default:
        return NULL;
    }
}
