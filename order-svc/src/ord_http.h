/* ord_http.h - order-svc's query API: a small HTTP server (evhttp) on the
 * service's loop that answers the orchestrator's order reads (ord_read.h)
 * with the shard-router's parallel scatter-gather.
 *
 * Reads never share a connection with the writes: they run on their own
 * sr_pools (one worker thread and MariaDB connection per shard and pool), so
 * a slow cross-shard read cannot hold an order.create back, and the broker
 * (the saga's path) is not involved at all. Bounded: at most
 * query_inflight_max reads at once (503 beyond), each waits at most
 * query_timeout_ms for its shards (then answers partial: true with the
 * missing shards), and each shard queue holds SR_QUEUE_MAX reads per pool. */
#ifndef ORD_HTTP_H
#define ORD_HTTP_H

#include <stdint.h>

#include "ord_conf.h"
#include "sr_map.h"
#include "status.h"

struct event_base;
typedef struct ord_http ord_http;

typedef struct ord_http_stats {
    uint64_t requests;        /* answered, any code */
    uint64_t partial;         /* 200 answers with a shard missing */
    uint64_t refused;         /* 4xx */
    uint64_t overloaded;      /* 503: in-flight bound or a scatter refused */
    int inflight;
} ord_http_stats;

/* Listens on conf->query_bind:query_port; map is borrowed (it outlives h). */
int ord_http_new(struct event_base *base, const ord_conf *conf, const sr_map *map,
                 ord_http **out, cg_error *err) CG_MUSTCHECK;

/* Drops the reads in flight unanswered (their connections close), stops the
 * listener and joins the pools' workers. NULL is allowed. */
void ord_http_free(ord_http *h);

void ord_http_get_stats(const ord_http *h, ord_http_stats *out);

#endif
