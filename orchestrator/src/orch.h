/* orch.h - the orchestrator's process-wide context, shared by its modules:
 * the HTTP front (http_api.c, admin.c), the saga engine (engine.c), the saga
 * log (saga_log.c), recovery and adoption (recovery.c) and the MariaDB
 * worker (db_worker.c). Everything here is touched on the loop thread only,
 * except what db_worker.c says it owns. */
#ifndef ORCH_ORCH_H
#define ORCH_ORCH_H

#include <stdint.h>

#include "admission.h"
#include "http_route.h"
#include "mq.h"
#include "msg.h"
#include "orch_conf.h"
#include "rds.h"
#include "saga.h"
#include "saga_table.h"

struct event_base;
struct event;
struct evhttp;
struct evhttp_request;
struct dbw;
struct oq_client;

typedef struct orch orch;

/* An HTTP grab request waiting for its saga's outcome (or for the deadline,
 * then 202). Attached to a saga in memory, or "remote": following a saga of
 * another instance through the log (an Idempotency-Key repeat), by polling. */
typedef struct waiter {
    orch *o;
    struct evhttp_request *req;
    char saga_id[MSG_SAGA_ID_LEN + 1];
    saga *saga;                   /* NULL when remote */
    struct waiter *snext;         /* next waiter of the same saga */
    struct waiter *prev, *next;   /* o's list, in deadline order */
    struct waiter *rprev, *rnext; /* o's list of remote waiters */
    long long deadline_ms;
    int remote;
    long long next_poll_ms;
    int poll_inflight;            /* a log read is out: free only after it returns */
    int answered;                 /* the reply was sent */
    long long user_id, coupon_id; /* what was asked, to refuse a reused Idempotency-Key */
} waiter;

/* A reply delivery, acked once every saga-log write it caused is done. */
typedef struct dref {
    orch *o;
    mq_delivery_id id;
    int refs;
} dref;

typedef struct orch_stats {
    unsigned long long grabs;           /* grab requests accepted for processing */
    unsigned long long started;         /* sagas started here */
    unsigned long long completed, compensated;
    unsigned long long local_sold_out;  /* answered from the sold-out flag */
    unsigned long long replies, replies_ignored, replies_looked_up;
    unsigned long long resends, step_timeouts, nacked;
    unsigned long long log_writes, log_retries, log_refused;
    unsigned long long recovered, adopted, answered_202;
    unsigned long long batches, batch_items;  /* commands published, and their items */
} orch_stats;

#define ORCH_RATE_SLOTS 61   /* one per second: rates over the last 1, 10 and 60 s */

/* Counters sampled once a second, for the rates of /admin/stats. */
typedef struct orch_rates {
    long long last_s;                      /* monotonic second of the newest sample */
    int pos;                               /* the newest sample's slot */
    int filled;                            /* samples taken, up to ORCH_RATE_SLOTS */
    unsigned long long grabs[ORCH_RATE_SLOTS];
    unsigned long long completed[ORCH_RATE_SLOTS];
    unsigned long long compensated[ORCH_RATE_SLOTS];
} orch_rates;

typedef struct orch_read_stats {
    unsigned long long requests[ROUTE_MAX];  /* by enum http_route */
    unsigned long long errors;             /* 5xx answers of read endpoints */
    unsigned long long partial;            /* answers with partial: true */
    int inflight;
} orch_read_stats;

enum orch_recovery {
    RECOVERY_IDLE = 0,      /* not started (Redis not up yet) or to be retried */
    RECOVERY_SCANNING = 1,  /* walking sagas:active:<me> and loading each saga */
    RECOVERY_DONE = 2,      /* every saga left by the last run is back in memory */
    RECOVERY_MAX
};

struct orch {
    orch_conf conf;
    struct event_base *base;
    struct evhttp *http;
    struct event *tick_ev;        /* the one persistent timer */
    struct event *flush_ev;       /* runs once per loop iteration when commands are queued */
    struct event *sig_ev[2];
    rds_client *rds;
    rds_client *rds_read;         /* stock reads: replicas (or rds itself, by config) */
    struct oq_client *oq;         /* order-svc's query API */
    mq_client *mq;
    struct dbw *db;
    char reply_queue[sizeof(MSG_REPLY_PREFIX) + MSG_MAX_INSTANCE];
    long long boot_wall_ms;       /* part of message ids */
    unsigned long long msg_seq;

    saga_table sagas;
    msg_batch *outbox[MSG_KIND_MAX];   /* queued command items, per kind */
    msg_batch *inbox;                  /* decoding buffer for replies */
    waiter *wait_head, *wait_tail;
    size_t n_waiters;
    waiter *remote_head;          /* the remote ones, polled by the timer */

    token_bucket bucket;
    coupon_cache coupons;

    enum orch_recovery recovery;
    long long recovery_retry_ms;
    char scan_cursor[32];
    int scan_started;             /* the first ZSCAN page was asked for */
    int recovery_failed;          /* a read of this pass failed: start over */
    int loads_inflight;           /* recovery loads still out */
    int scan_inflight;
    int consuming;                /* mq_consume on the reply queue was called */
    int announced_ready;
    long long next_heartbeat_ms, next_sweep_ms;
    int sweep_inflight;           /* adoption / orphan sweep requests out */
    char sweep_cursor[32];

    int stopping;                 /* SIGTERM seen */
    long long stop_deadline_ms;
    orch_stats stats;
    orch_rates rates;
    orch_read_stats reads;
};

long long orch_now_ms(void);      /* monotonic */
long long orch_wall_ms(void);     /* epoch ms, UTC */
int orch_ready(const orch *o);

#endif
