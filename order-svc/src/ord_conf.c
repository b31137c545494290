/* ord_conf.c - order-svc's cfg table and cross-field checks; see ord_conf.h. */
#include "ord_conf.h"

#include <stddef.h>
#include <stdio.h>

#include "msg.h"
#include "sr_map.h"

#define ORD_STR_(x) #x
#define ORD_STR(x) ORD_STR_(x)

static const cfg_param ord_conf_params[] = {
    SVC_CONF_PARAMS(ord_conf, svc),
    {"batch_max", CFG_INT, offsetof(ord_conf, batch_max), "256", 1, MSG_MAX_BATCH,
     "items per shard transaction (1.." ORD_STR(MSG_MAX_BATCH) ")"},
    {"shard_queue_max", CFG_INT, offsetof(ord_conf, shard_queue_max), "16384", MSG_MAX_BATCH,
     10000000, "items queued or running per shard; a full shard holds further commands back"},
    {"pending_max", CFG_INT, offsetof(ord_conf, pending_max), "65536", MSG_MAX_BATCH, 100000000,
     "items taken in and not yet acked, over all shards"},
    {"create_give_up_ms", CFG_INT, offsetof(ord_conf, create_give_up_ms), "3000", 100, 3600000,
     "a create that never reached COMMIT fails (shard_unavailable) after its shard was "
     "unreachable this long"},
    {"txn_retries", CFG_INT, offsetof(ord_conf, txn_retries), "3", 0, 100,
     "re-runs of a batch after a deadlock or lock wait timeout, before item by item"},
    {"reconnect_min_ms", CFG_INT, offsetof(ord_conf, reconnect_min_ms), "100", 1, 60000,
     "first shard reconnect delay"},
    {"reconnect_max_ms", CFG_INT, offsetof(ord_conf, reconnect_max_ms), "2000", 1, 600000,
     "largest shard reconnect delay"},
    {"reply_retry_max_ms", CFG_INT, offsetof(ord_conf, reply_retry_max_ms), "2000", 10, 600000,
     "largest delay before re-publishing a reply or dead letter the broker refused"},
    {"shutdown_timeout_ms", CFG_INT, offsetof(ord_conf, shutdown_timeout_ms), "10000", 100,
     600000, "SIGTERM/SIGINT: longest wait for in-flight transactions and replies"},
    {"query_bind", CFG_STRING, offsetof(ord_conf, query_bind), "127.0.0.1", 0, 0,
     "address of the query API the orchestrator reads orders from"},
    {"query_port", CFG_INT, offsetof(ord_conf, query_port), "8081", 1, 65535,
     "port of the query API"},
    {"query_pools", CFG_INT, offsetof(ord_conf, query_pools), "2", 1, 16,
     "read connections per shard (each with its own worker thread)"},
    {"query_timeout_ms", CFG_INT, offsetof(ord_conf, query_timeout_ms), "1000", 10, 60000,
     "longest wait for the shards of one read; later shards are reported missing"},
    {"query_inflight_max", CFG_INT, offsetof(ord_conf, query_inflight_max), "512", 1, 100000,
     "reads in flight at once; more are answered 503"},
};

static int ord_conf_validate(const void *p, cg_error *err)
{
    const ord_conf *c = p;
    enum sr_strategy strategy;
    sr_map map;
    int n = svc_conf_shard_count(&c->svc);

    if (n < 1 || n > SR_MAX_SHARDS)
        return cg_error_set(err, CG_ERR_INVALID, "setting 'shards': %d shards, expected 1..%d", n,
                            SR_MAX_SHARDS);
    if (c->svc.shard_strategy == NULL || sr_strategy_parse(c->svc.shard_strategy, &strategy) != CG_OK)
        return cg_error_set(err, CG_ERR_INVALID,
                            "setting 'shard_strategy': '%s' is not hash, range-room or range-day",
                            c->svc.shard_strategy ? c->svc.shard_strategy : "");
    if (sr_map_build(&map, strategy, n, c->svc.shard_map, err) != CG_OK) {
        char why[CG_ERROR_MSG_MAX];

        snprintf(why, sizeof(why), "%s", err != NULL ? err->msg : "");
        return cg_error_set(err, CG_ERR_INVALID, "setting 'shard_map' (%s): %s",
                            c->svc.shard_strategy, why);
    }
    if (c->reconnect_max_ms < c->reconnect_min_ms)
        return cg_error_set(err, CG_ERR_INVALID,
                            "setting 'reconnect_max_ms': below reconnect_min_ms");
    return CG_OK;
}

const cfg_spec ord_conf_spec = {
    "order-svc", "ORDER_", ord_conf_params, sizeof(ord_conf_params) / sizeof(ord_conf_params[0]),
    ord_conf_validate,
};
