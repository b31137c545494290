/* stock_int.h - the structures stock-svc's modules share; not an API.
 *
 * stock_svc.c     the process: broker and Redis clients, intake of deliveries
 *                 (decode, dead-letter, admission under the limits), the timer,
 *                 the graceful stop, the stats line.
 * stock_coupon.c  per coupon: a queue of pending items and one job at a time
 *                 (the cheap read, then WATCH/MULTI/EXEC on a lease).
 * stock_reply.c   answers: reply batches per reply_to, publisher confirms,
 *                 acks, and giving deliveries back (nack, dead-letter, drop).
 * stock_decide.c  the pure decisions (stock_decide.h).
 *
 * Ownership: a delivery owns its items (one allocation) and its message.
 * An item is on at most one list at a time (its coupon's queue or the
 * answered list) or referenced by one job or one reply publish; a delivery
 * is freed once every item is DONE and no dead-letter publish is pending. */
#ifndef STOCK_INT_H
#define STOCK_INT_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "mq.h"
#include "msg.h"
#include "rds.h"
#include "stock_conf.h"
#include "stock_decide.h"

struct event_base;
struct event;

/* ---- an intrusive circular doubly linked list ------------------------------- */

typedef struct stock_link {
    struct stock_link *prev, *next;
} stock_link;

#define STOCK_OF(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static inline void stock_list_init(stock_link *h)
{
    h->prev = h->next = h;
}

static inline int stock_list_empty(const stock_link *h)
{
    return h->next == h;
}

static inline void stock_list_insert(stock_link *before, stock_link *n)
{
    n->prev = before->prev;
    n->next = before;
    before->prev->next = n;
    before->prev = n;
}

static inline void stock_list_push_back(stock_link *h, stock_link *n)
{
    stock_list_insert(h, n);
}

static inline void stock_list_push_front(stock_link *h, stock_link *n)
{
    stock_list_insert(h->next, n);
}

/* Unlinks n (which then forms an empty list of its own). */
static inline void stock_list_remove(stock_link *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

/* ---- items and deliveries ----------------------------------------------------- */

/* Where one item of a command is. */
enum stock_item_state {
    STOCK_ITEM_HELD = 0,      /* decoded; its delivery waits for admission */
    STOCK_ITEM_QUEUED,        /* in its coupon's queue */
    STOCK_ITEM_WORKING,       /* in its coupon's job: Redis is being asked */
    STOCK_ITEM_ANSWERED,      /* outcome known; on the answered list, to be published */
    STOCK_ITEM_PUBLISHING,    /* in a reply publish awaiting the broker's confirm */
    STOCK_ITEM_DONE,          /* reply confirmed, or dropped with its given-back delivery */
    STOCK_ITEM_STATE_MAX
};

typedef struct stock_delivery stock_delivery;

typedef struct stock_item {
    stock_link link;          /* coupon queue or answered list */
    stock_delivery *dlv;
    int state;                /* enum stock_item_state; changed by stock_item_set_state */
    msg_item m;               /* saga_id, coupon_id, user_id; result and reason once answered */
} stock_item;

/* What became of a delivery. */
enum stock_dlv_state {
    STOCK_DLV_HELD = 0,       /* decoded, waiting for room under the pending limits */
    STOCK_DLV_ACTIVE,         /* items admitted; acked once every reply is confirmed */
    STOCK_DLV_DEAD,           /* going to grab.dead; acked once that publish is confirmed */
    STOCK_DLV_ABANDONED,      /* never acked here: nacked with requeue, or its connection
                                 or this process is going away (the broker redelivers) */
    STOCK_DLV_STATE_MAX
};

/* Its dead-letter publish. */
enum stock_dl_state {
    STOCK_DL_NONE = 0,        /* none pending */
    STOCK_DL_DUE,             /* to publish at dl_due_us (on the svc's dead list) */
    STOCK_DL_SENT,            /* published, confirm awaited */
    STOCK_DL_STATE_MAX
};

struct stock_delivery {
    stock_link all;           /* every live delivery, for the final free */
    stock_link link;          /* the held list or the dead list */
    struct stock_svc *svc;
    mq_message *msg;
    int kind;                 /* MSG_STOCK_RESERVE or MSG_STOCK_RELEASE; -1 when undecodable */
    int state;                /* enum stock_dlv_state; changed by stock_dlv_set_state */
    int dl;                   /* enum stock_dl_state */
    int64_t dl_due_us;
    char reason[320];         /* dead-letter reason */
    size_t open;              /* items not DONE */
    size_t n_items;
    stock_item items[];
};

/* ---- coupons and their jobs --------------------------------------------------- */

/* What a coupon is doing. */
enum stock_coupon_state {
    STOCK_CP_IDLE = 0,        /* no job, nothing queued (freed at once) */
    STOCK_CP_RUNNABLE,        /* on the run list: a job starts at the next pass */
    STOCK_CP_CHECK,           /* cheap path: GET stock + HMGET sagas in flight */
    STOCK_CP_MARK,            /* cheap path: HSETNX J:out_of_stock in flight */
    STOCK_CP_LEASE_WAIT,      /* its job waits for a free lease (on the lease-wait list) */
    STOCK_CP_WATCH,           /* WATCH + reads in flight on its lease */
    STOCK_CP_EXEC,            /* MULTI ... EXEC in flight */
    STOCK_CP_WAIT,            /* WAIT for replicas in flight */
    STOCK_CP_BACKOFF,         /* on the backoff list until not_before_us */
    STOCK_CP_STATE_MAX
};

typedef struct stock_coupon stock_coupon;

/* The argument of one HSETNX of the cheap path. */
typedef struct stock_mark {
    stock_coupon *cp;
    size_t idx;
} stock_mark;

/* One batch in work; its arrays are allocated per job. */
typedef struct stock_job {
    int kind;                 /* MSG_STOCK_RESERVE or MSG_STOCK_RELEASE */
    size_t n;                 /* items in the batch */
    stock_item **items;
    stock_outcome *recorded;  /* HMGET stock:{C}:sagas */
    unsigned char *holds;     /* SMISMEMBER stock:{C}:holders */
    unsigned char *marked;    /* HSETNX answered 1 */
    stock_rsv_out *rsv;
    stock_rel_out *rel;
    stock_mark *marks;
    char (*users)[24];        /* user ids as text, for argv */
    const char **argv;
    size_t *argvlen;
    rds_lease *lease;
    int outstanding;          /* replies awaited */
    int status;               /* first transport failure (timeout, I/O, not up), else CG_OK */
    int bad;                  /* an error reply or a value that does not parse */
    char why[200];            /* what went wrong, for the log */
    int stock_exists;
    long long stock;
    int conflict;             /* EXEC answered nil */
    long long delta;          /* units taken or given back */
} stock_job;

struct stock_coupon {
    stock_coupon *hnext;      /* hash chain */
    stock_link link;          /* run list, lease-wait list or backoff list */
    struct stock_svc *svc;
    long long id;
    int state;                /* enum stock_coupon_state; changed by stock_coupon_set_state */
    stock_link queue;         /* QUEUED items, oldest first */
    size_t n_queued;
    int conflicts;            /* consecutive nil EXECs */
    int failures;             /* consecutive transport failures */
    int errors;               /* consecutive error replies */
    int64_t not_before_us;
    stock_job job;
    char key_stock[KEY_MAX], key_holders[KEY_MAX], key_sagas[KEY_MAX];
};

/* ---- the service ---------------------------------------------------------------- */

typedef struct stock_stats {
    uint64_t deliveries;      /* commands received */
    uint64_t items;           /* items admitted */
    uint64_t reserved, rejected, released;   /* answers */
    uint64_t cheap;           /* items answered without a transaction */
    uint64_t tx;              /* EXECs that applied */
    uint64_t conflicts;       /* EXECs that answered nil */
    uint64_t requeued;        /* deliveries nacked after max_watch_retries */
    uint64_t dead;            /* deliveries dead-lettered (confirmed) */
    uint64_t replies;         /* reply messages confirmed */
    uint64_t republished;     /* reply items published again after a nack/unknown */
    uint64_t redis_failures;  /* jobs that failed on a timeout, I/O or Redis down */
    uint64_t wait_short;      /* WAITs that saw fewer replicas than asked */
} stock_stats;

typedef struct stock_svc {
    struct event_base *base;
    const stock_conf *conf;
    mq_client *mq;
    rds_client *rds;
    struct event *tick, *kick, *sig_term, *sig_int;
    int mq_up, rds_up, ready_logged;
    int stopping;             /* SIGTERM/SIGINT seen: no new work */
    int closing;              /* inside stock_svc_free: callbacks only drop */
    int64_t stop_deadline_us;
    stock_link all;           /* every live delivery */
    stock_link held;          /* deliveries waiting for admission, oldest first */
    stock_link dead;          /* deliveries whose dead-letter publish is due */
    stock_link answered;      /* items to publish, oldest first */
    stock_link runnable;      /* coupons */
    stock_link lease_wait;    /* coupons */
    stock_link backoff;       /* coupons */
    stock_coupon **table;     /* coupon id -> coupon, chained */
    size_t table_size, n_coupons;
    size_t n_pending;         /* items QUEUED or WORKING */
    size_t n_busy;            /* coupons with a job in flight */
    size_t n_publishing;      /* reply and dead-letter publishes awaiting a confirm */
    size_t n_deliveries;
    int64_t reply_hold_until_us;
    int redis_failing;        /* a job failed since the last one that worked */
    int wait_short;           /* the last WAIT saw fewer replicas than asked */
    int replies_refused;      /* the last reply publish was nacked or unconfirmed */
    uint64_t rng;
    msg_batch *scratch;       /* decode and encode buffer */
    stock_stats stats, stats_logged;
    int64_t stats_at_us;
} stock_svc;

/* stock_svc.c */
int64_t stock_now_us(void);
void stock_kick(stock_svc *svc);
/* A random number in [lo, hi]. */
long long stock_jitter(stock_svc *svc, long long lo, long long hi);
/* Logs a Redis problem once when it starts (ok = 0) and once when it ends. */
void stock_redis_health(stock_svc *svc, int ok, const char *why);
/* Likewise for WAIT coming back short (counted in the stats each time). */
void stock_wait_health(stock_svc *svc, int ok, const char *id, const char *why);

/* stock_coupon.c */
const char *stock_coupon_state_name(int state);
stock_coupon *stock_coupon_find(stock_svc *svc, long long id);
/* Queues an admitted item on its coupon (created on demand). CG_ERR_NOMEM. */
int stock_coupon_enqueue(stock_svc *svc, stock_item *it) CG_MUSTCHECK;
/* Unlinks a QUEUED item from its coupon's queue (a delivery given back). */
void stock_coupon_unqueue(stock_svc *svc, stock_item *it);
/* Starts the jobs of runnable coupons and hands free leases to waiting ones. */
void stock_coupons_run(stock_svc *svc);
/* From the timer: coupons whose backoff ended become runnable. */
void stock_coupons_tick(stock_svc *svc, int64_t now_us);
/* At the stop: jobs that have sent nothing yet give their items back. */
void stock_coupons_stop(stock_svc *svc);
void stock_coupons_free(stock_svc *svc);

/* stock_reply.c */
const char *stock_item_state_name(int state);
void stock_item_set_state(stock_item *it, int state);
void stock_dlv_set_state(stock_delivery *d, int state);
/* Records the answer and puts the item on the answered list (or drops it
 * when its delivery was given back meanwhile). */
void stock_item_answer(stock_svc *svc, stock_item *it, const char *result, const char *reason);
/* The item needs nothing more: counts it off its delivery, which is acked
 * and freed when it was the last. */
void stock_item_done(stock_svc *svc, stock_item *it);
/* 1 when the item's delivery will not be acked here (its result is moot). */
int stock_item_moot(const stock_item *it);

enum stock_give_back {
    STOCK_GIVE_DROP = 0,      /* say nothing: the connection or the process is going */
    STOCK_GIVE_REQUEUE,       /* basic.nack with requeue */
    STOCK_GIVE_DEAD           /* dead-letter with a reason, then ack */
};
/* Gives a delivery back: its queued and answered items are dropped at once,
 * items in a job or a publish when they come back. */
void stock_dlv_give_back(stock_svc *svc, stock_delivery *d, int how, const char *reason);
/* Frees d when nothing refers to it any more. */
void stock_dlv_maybe_free(stock_svc *svc, stock_delivery *d);
void stock_dlv_free(stock_svc *svc, stock_delivery *d);
/* Publishes the answered items, one batch per reply_to of up to
 * MSG_MAX_BATCH items. */
void stock_replies_flush(stock_svc *svc, int64_t now_us);
/* Publishes the dead letters that are due. */
void stock_dead_flush(stock_svc *svc, int64_t now_us);

#endif
