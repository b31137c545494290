/* ord_conf.h - order-svc's settings: the shared service rows (svc_conf.h)
 * plus its own bounds and timings, one cfg table, env prefix ORDER_. */
#ifndef ORD_CONF_H
#define ORD_CONF_H

#include "cfg.h"
#include "svc_conf.h"

typedef struct ord_conf {
    svc_conf svc;
    long long batch_max;            /* items per shard transaction, <= MSG_MAX_BATCH */
    long long shard_queue_max;      /* items queued or running per shard */
    long long pending_max;          /* items taken in and not yet acked, all shards */
    long long create_give_up_ms;    /* creates wait this long for an unreachable shard */
    long long txn_retries;          /* re-runs after deadlock / lock wait before item by item */
    long long reconnect_min_ms;     /* shard reconnect backoff, doubled up to the max */
    long long reconnect_max_ms;
    long long reply_retry_max_ms;   /* backoff cap for re-publishing refused replies */
    long long shutdown_timeout_ms;  /* bound on the graceful stop */
    char *query_bind;               /* the query API (ord_http.h) */
    long long query_port;
    long long query_pools;          /* connections per shard for reads */
    long long query_timeout_ms;     /* longest wait for the shards of one read */
    long long query_inflight_max;   /* reads at once; 503 beyond */
} ord_conf;

extern const cfg_spec ord_conf_spec;

#endif
