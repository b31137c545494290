/* mq_internal.h - what mq.c (the loop side) and mq_thread.c (the I/O thread)
 * share: the client struct, the items that travel between the two threads,
 * and the intrusive FIFO lists that carry them. Not for use outside mq*.c.
 *
 * Ownership: an item belongs to whichever list it is on; commands go loop ->
 * thread through c->cmds, events go thread -> loop through c->events, both
 * under c->lock. A publish travels as one allocation the whole way: it is
 * queued as MQ_ITEM_PUBLISH and comes back as MQ_ITEM_CONFIRM, and a queue-depth
 * request likewise as MQ_ITEM_QSTATS -> MQ_ITEM_QSTATS_DONE. */
#ifndef CG_MQ_INTERNAL_H
#define CG_MQ_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "mq.h"

struct event;

/* What an item is. */
enum mq_item_kind {
    MQ_ITEM_PUBLISH = 0,   /* command: publish u.pub; turns into MQ_ITEM_CONFIRM */
    MQ_ITEM_ACK,           /* command: basic.ack u.ack */
    MQ_ITEM_NACK,          /* command: basic.nack u.ack */
    MQ_ITEM_CONSUME,       /* command: start (and keep) consumer u.consumer */
    MQ_ITEM_CONFIRM,       /* event: u.pub.result is the outcome of a publish */
    MQ_ITEM_DELIVERY,      /* event: u.dlv.msg for u.dlv.consumer */
    MQ_ITEM_STATE,         /* event: the connection went up (u.up = 1) or down */
    MQ_ITEM_QSTATS,        /* command: passive-declare the queues of u.qstats; turns
                              into MQ_ITEM_QSTATS_DONE */
    MQ_ITEM_QSTATS_DONE,   /* event: u.qstats answered (or failed, u.qstats.status) */
    MQ_ITEM_MAX            /* sentinel */
};

/* A registered consumer; lives until mq_client_free. */
typedef struct mq_consumer {
    struct mq_consumer *next;     /* loop-owned list of every consumer, for freeing */
    char *queue;
    mq_delivery_cb on_delivery;
    void *arg;
} mq_consumer;

typedef struct mq_pub {
    const char *exchange, *routing_key;   /* point into the same allocation */
    const char *message_id, *correlation_id, *reply_to, *type, *content_type;
    const void *body;
    size_t len;
    int transient;
    uint64_t seq;                 /* thread only: confirm sequence number once sent */
    int result;                   /* enum mq_publish_result, once resolved */
    mq_confirm_cb on_confirm;
    void *arg;
} mq_pub;

/* A queue-depth request; q and the names point into the same allocation. */
typedef struct mq_qstats {
    mq_queue_info *q;
    int n;
    int status;                   /* the call's status, once answered */
    mq_queue_stats_cb cb;
    void *arg;
} mq_qstats;

typedef struct mq_item {
    struct mq_item *next;
    int kind;                     /* enum mq_item_kind */
    union {
        mq_pub pub;
        struct {
            mq_delivery_id id;
            int flag;             /* ACK: multiple; NACK: requeue */
        } ack;
        mq_consumer *consumer;
        struct {
            mq_consumer *consumer;
            mq_message *msg;
        } dlv;
        int up;
        mq_qstats qstats;
    } u;
} mq_item;

/* Fails a whole queue-depth request with status (every queue too). */
static inline void mq_qstats_fail(mq_qstats *qs, int status)
{
    qs->status = status;
    for (int i = 0; i < qs->n; i++) {
        qs->q[i].status = status;
        qs->q[i].messages = qs->q[i].consumers = 0;
    }
}

/* A FIFO of items. */
typedef struct mq_list {
    mq_item *head, *tail;
} mq_list;

static inline void mq_list_push(mq_list *l, mq_item *it)
{
    it->next = NULL;
    if (l->tail)
        l->tail->next = it;
    else
        l->head = it;
    l->tail = it;
}

static inline mq_item *mq_list_pop(mq_list *l)
{
    mq_item *it = l->head;

    if (it) {
        l->head = it->next;
        if (l->head == NULL)
            l->tail = NULL;
        it->next = NULL;
    }
    return it;
}

/* Moves every item of src to the end of dst, in order. */
static inline void mq_list_splice(mq_list *dst, mq_list *src)
{
    if (src->head == NULL)
        return;
    if (dst->tail)
        dst->tail->next = src->head;
    else
        dst->head = src->head;
    dst->tail = src->tail;
    src->head = src->tail = NULL;
}

struct mq_client {
    /* Set by mq_client_new, read-only afterwards (both threads read them). */
    struct event_base *base;
    mq_config cfg;                /* strings owned: see mq.c copy_config */
    mq_topology topo;             /* deep copy */
    mq_state_cb on_state;
    void *state_arg;
    int wake_fd;                  /* eventfd: loop -> thread, "look at cmds" */
    int event_fd;                 /* eventfd: thread -> loop, "look at events" */

    pthread_mutex_t lock;         /* guards the three fields below */
    mq_list cmds;
    mq_list events;
    int stop;                     /* set once by mq_client_free */

    /* Loop thread only. */
    pthread_t thread;
    int thread_started;
    int lock_ready;
    struct event *ev;
    int closing;                  /* inside mq_client_free: refuse new work */
    int up;
    int was_up;                   /* has been up once: the next up is a reconnect */
    mq_stats stats;
    int n_qstats;                 /* mq_queue_stats calls whose callback has not run */
    mq_consumer *consumers;
};

/* The I/O thread's body (mq_thread.c); arg is the mq_client. */
void *mq_thread_main(void *arg);

/* Appends a batch of events and wakes the loop if it was not already due to
 * look (mq.c). Called by the thread. */
void mq_post_events(mq_client *c, mq_list *batch);

/* Frees an item that is not a delivery handed to the user. */
void mq_item_free(mq_item *it);

#endif
