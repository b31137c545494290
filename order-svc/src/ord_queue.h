/* ord_queue.h - the unit of work of order-svc (one item of a command) and the
 * per-shard queue that groups items into transactions.
 *
 * Pure data structures without locks or I/O, so that the grouping rules can
 * be unit-tested: a shard worker keeps its queue under its own mutex
 * (ord_shard.c) and the loop owns an item whenever no queue holds it. An
 * item is on at most one list at a time (intrusive `next`). */
#ifndef ORD_QUEUE_H
#define ORD_QUEUE_H

#include <stddef.h>

#include "msg.h"

struct ord_cmd;

/* What an item asks for. */
enum ord_op {
    ORD_OP_CREATE = 0,   /* order.create: insert the row unless barred */
    ORD_OP_CANCEL = 1,   /* order.cancel: write the barrier, delete the row */
    ORD_OP_MAX
};

/* What became of an item; only ORD_OUT_NONE items are still in work. */
enum ord_outcome {
    ORD_OUT_NONE = 0,       /* not decided yet */
    ORD_OUT_CREATED = 1,    /* the row is committed (inserted now or before) */
    ORD_OUT_FAILED = 2,     /* definitely no row; `reason` says why */
    ORD_OUT_CANCELLED = 3,  /* the barrier is committed and no row is left */
    ORD_OUT_MAX
};

/* Reasons of failed creates besides MSG_REASON_BARRED. */
#define ORD_REASON_SHARD_UNAVAILABLE "shard_unavailable"  /* shard down past the give-up time */
#define ORD_REASON_DB_ERROR          "db_error"           /* the shard refused the statement */

typedef struct ord_item {
    struct ord_item *next;
    struct ord_cmd *cmd;      /* the delivery it came in (ord_svc.c) */
    msg_item in;              /* as decoded */
    int op;                   /* enum ord_op */
    int shard;                /* sr_shard_of() */
    long long queued_ms;      /* when it entered its shard queue (monotonic ms) */
    int commit_unknown;       /* a COMMIT covering it was sent and its outcome never
                                 learned: it may be committed, so never answer failed */
    int barred;               /* scratch of a create transaction */
    int outcome;              /* enum ord_outcome */
    const char *reason;       /* static string, set with ORD_OUT_FAILED */
} ord_item;

/* A FIFO of items with its length. */
typedef struct ord_list {
    ord_item *head, *tail;
    size_t n;
} ord_list;

void ord_list_push(ord_list *l, ord_item *it);
ord_item *ord_list_pop(ord_list *l);
/* Appends every item of src to dst, in order; src ends empty. */
void ord_list_splice(ord_list *dst, ord_list *src);

/* A shard's waiting items, one FIFO per operation, since a transaction
 * carries items of one operation only. */
typedef struct ord_queue {
    ord_list ops[ORD_OP_MAX];
} ord_queue;

size_t ord_queue_len(const ord_queue *q);
size_t ord_queue_len_op(const ord_queue *q, int op);

/* Appends it to the FIFO of its operation, stamped with now_ms. */
void ord_queue_push(ord_queue *q, ord_item *it, long long now_ms);

/* Takes the next batch: up to max items (1..MSG_MAX_BATCH) of the operation
 * whose oldest item has waited longest (cancels on a tie), in arrival order,
 * into out. Returns the count (0 when empty) and the operation in *op. */
size_t ord_queue_take(ord_queue *q, size_t max, ord_item **out, int *op);

/* Returns items of one operation taken earlier, undecided, to the front of
 * their FIFO in the same order, keeping their stamps, so they go first again. */
void ord_queue_put_back(ord_queue *q, ord_item *const *items, size_t n);

/* While the shard is unreachable (down_since_ms > 0), moves into out every
 * create that has waited give_up_ms since it was queued or the shard went
 * down, whichever came later, and whose commit outcome is not unknown, and
 * marks it failed / shard_unavailable. Cancels are never given up. Returns
 * the number moved. */
size_t ord_queue_give_up(ord_queue *q, long long now_ms, long long down_since_ms,
                         long long give_up_ms, ord_list *out);

/* When the next create would be given up under the same rule, or -1 when
 * none can be (no creates, or only ones with an unknown commit). */
long long ord_queue_next_give_up(const ord_queue *q, long long down_since_ms,
                                 long long give_up_ms);

/* Moves every item of both FIFOs into out (shutdown). */
void ord_queue_drain(ord_queue *q, ord_list *out);

/* Sets the outcome of a settled create batch: barred items failed/barred,
 * the others created. */
void ord_items_settle_create(ord_item *const *items, size_t n);
/* A settled cancel batch: every item cancelled. */
void ord_items_settle_cancel(ord_item *const *items, size_t n);

/* Marks barred every item of the batch whose saga id is saga_id (a row of
 * the barrier query); returns how many matched. */
size_t ord_items_mark_barred(ord_item *const *items, size_t n, const char *saga_id);

/* The reply result of a decided outcome ("created", ...), NULL for none. */
const char *ord_outcome_result(int outcome);

#endif
