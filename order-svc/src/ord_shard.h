/* ord_shard.h - one worker thread per shard database, running order
 * transactions on its own MariaDB connection.
 *
 * MariaDB calls block, so they never run on the event loop: the loop hands
 * items to a shard's bounded queue (ord_shard_submit), the worker groups them
 * into one transaction per batch, and decided items come back to the loop
 * through an eventfd watched by libevent (on_done runs on the loop thread).
 * The worker keeps its connection open, reopens it with backoff after an
 * error (db.c never reconnects silently), re-runs a transaction whose COMMIT
 * outcome was lost, and, while the shard is unreachable, gives up creates
 * that never reached COMMIT after give_up_ms. Cancels wait for the shard. */
#ifndef ORD_SHARD_H
#define ORD_SHARD_H

#include <stddef.h>

#include "db.h"
#include "ord_queue.h"
#include "status.h"

struct event_base;
typedef struct ord_shard ord_shard;

/* The worker's connection state. */
enum ord_shard_state {
    ORD_SHARD_CONNECTING = 0,  /* started, first connect not yet answered */
    ORD_SHARD_UP = 1,          /* connected: running batches */
    ORD_SHARD_DOWN = 2,        /* a connect or statement failed: reconnecting with backoff */
    ORD_SHARD_STOPPED = 3,     /* the worker has exited */
    ORD_SHARD_STATE_MAX
};

typedef struct ord_shard_config {
    int index;                 /* shard number, for logs */
    db_config db;              /* strings are copied */
    size_t batch_max;          /* items per transaction, 1..MSG_MAX_BATCH */
    int txn_retries;           /* re-runs of a transaction after a deadlock / lock wait */
    long long give_up_ms;      /* creates wait this long for an unreachable shard */
    int reconnect_min_ms;      /* first reconnect delay, doubled up to the max */
    int reconnect_max_ms;
} ord_shard_config;

/* Runs on the loop thread with the items the worker decided (moved into the
 * callee's hands, done may be empty: the call also reports a stopped worker). */
typedef void (*ord_shard_done_cb)(ord_shard *s, ord_list *done, void *arg);

/* Starts the worker, which connects at once. NULL on failure with err set. */
ord_shard *ord_shard_new(struct event_base *base, const ord_shard_config *cfg,
                         ord_shard_done_cb on_done, void *arg, cg_error *err);

/* Queues items (all of them; the caller keeps within its bound). Loop only. */
void ord_shard_submit(ord_shard *s, ord_list *items);

/* Asks the worker to exit after the transaction it is running; queued items
 * stay undecided. */
void ord_shard_stop(ord_shard *s);

int ord_shard_state(ord_shard *s);
const char *ord_shard_state_name(int state);
int ord_shard_index(const ord_shard *s);
const char *ord_shard_label(const ord_shard *s);   /* "shard 1 (host:port/db)" */

/* Joins the worker (call after it reported ORD_SHARD_STOPPED, or accept a
 * wait of up to one statement timeout) and frees everything. Items still
 * queued are not touched: they belong to their commands. */
void ord_shard_free(ord_shard *s);

#endif
