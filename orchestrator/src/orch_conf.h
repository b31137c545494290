/* orch_conf.h - the orchestrator's settings: one cfg table (prefix ORCH_)
 * embedding the shared service settings (svc_conf.h), plus the HTTP,
 * saga-timing and admission-control knobs described in docs/saga.md. */
#ifndef ORCH_CONF_H
#define ORCH_CONF_H

#include "cfg.h"
#include "svc_conf.h"

typedef struct orch_conf {
    svc_conf svc;
    char *http_bind;                 /* listen address */
    long long http_port;
    char *instance_id;               /* names the reply queue, active set and heartbeat */
    long long step_timeout_ms;       /* a step without a reply after this is re-sent */
    long long step_retries;          /* re-sends before the step's outcome counts as unknown */
    long long http_deadline_ms;      /* a grab waits this long for its outcome, then 202 */
    long long max_inflight_sagas;    /* sagas in memory beyond which grabs get 503 */
    long long rate_limit_rps;        /* token bucket refill per second; 0: no limit */
    long long rate_limit_burst;      /* bucket size; 0: the same as rate_limit_rps */
    long long body_limit;            /* request body bytes; larger gets 413 */
    long long sold_out_ttl_ms;       /* local sold-out flag lifetime; 0 disables the flag */
    long long comp_backoff_max_ms;   /* longest wait between compensation re-sends */
    long long heartbeat_ttl_s;       /* orch:alive:<instance> lifetime */
    long long heartbeat_interval_ms; /* how often it is refreshed */
    long long adopt_interval_ms;     /* how often dead instances' sagas are looked for */
    long long saga_ttl_s;            /* lifetime of a finished saga's log hash */
    long long idem_ttl_s;            /* lifetime of an Idempotency-Key binding */
    long long http_idle_timeout_s;   /* idle keep-alive connections are closed after this */
    long long coupon_cache_max;      /* coupons remembered (room, sold-out flag) */
    long long shutdown_grace_ms;     /* on SIGTERM, how long in-flight sagas may finish */
    long long tick_ms;               /* period of the one persistent timer */
    char *order_query;               /* order-svc's query API, ip:port */
    long long order_query_conns;
    long long order_query_timeout_ms;
    long long read_inflight_max;     /* read requests at once (read_api.c) */
    char *stock_read_from;           /* "replica" | "master" */
} orch_conf;

extern const cfg_spec orch_conf_spec;

/* 1 when s is a usable instance id: 1..MSG_MAX_INSTANCE of [A-Za-z0-9._-]. */
int orch_conf_instance_valid(const char *s);

#endif
