/* orch_conf.c - the orchestrator's config table; see orch_conf.h. */
#include "orch_conf.h"

#include <string.h>

#include "msg.h"

#define ROW(member, kind, def, lo, hi, help) \
    {#member, kind, offsetof(orch_conf, member), def, lo, hi, help}

static const cfg_param orch_conf_params[] = {
    SVC_CONF_PARAMS(orch_conf, svc),
    ROW(http_bind, CFG_STRING, "0.0.0.0", 0, 0, "HTTP listen address"),
    ROW(http_port, CFG_INT, "8000", 1, 65535, "HTTP port"),
    ROW(instance_id, CFG_STRING, "orchestrator", 0, 0,
        "instance name: reply queue orch.reply.<id>, saga set, heartbeat"),
    ROW(step_timeout_ms, CFG_INT, "1000", 10, 600000, "wait for a step's reply before re-sending"),
    ROW(step_retries, CFG_INT, "3", 0, 100, "re-sends before a step counts as unknown"),
    ROW(http_deadline_ms, CFG_INT, "2000", 10, 600000, "grab answer deadline, then 202"),
    ROW(max_inflight_sagas, CFG_INT, "20000", 1, 10000000, "sagas in flight before 503"),
    ROW(rate_limit_rps, CFG_INT, "0", 0, 100000000, "grabs per second (token bucket); 0: off"),
    ROW(rate_limit_burst, CFG_INT, "0", 0, 100000000, "token bucket size; 0: rate_limit_rps"),
    ROW(body_limit, CFG_INT, "4096", 64, 1048576, "request body bytes; more gets 413"),
    ROW(sold_out_ttl_ms, CFG_INT, "1000", 0, 3600000,
        "answer out_of_stock locally this long after a rejection; 0: off"),
    ROW(comp_backoff_max_ms, CFG_INT, "5000", 10, 600000, "longest compensation re-send backoff"),
    ROW(heartbeat_ttl_s, CFG_INT, "10", 2, 3600, "heartbeat lifetime"),
    ROW(heartbeat_interval_ms, CFG_INT, "2000", 100, 600000, "heartbeat refresh period"),
    ROW(adopt_interval_ms, CFG_INT, "3000", 100, 600000,
        "period of the sweep for dead instances' and orphaned sagas"),
    ROW(saga_ttl_s, CFG_INT, "604800", 60, 315360000, "finished saga log lifetime"),
    ROW(idem_ttl_s, CFG_INT, "86400", 1, 315360000, "Idempotency-Key lifetime"),
    ROW(http_idle_timeout_s, CFG_INT, "30", 1, 3600, "idle HTTP connection timeout"),
    ROW(coupon_cache_max, CFG_INT, "100000", 16, 100000000, "coupons cached in memory"),
    ROW(shutdown_grace_ms, CFG_INT, "3000", 0, 600000, "SIGTERM: time for in-flight sagas"),
    ROW(tick_ms, CFG_INT, "10", 1, 1000, "period of the timeout timer"),
    ROW(order_query, CFG_STRING, "127.0.0.1:8081", 0, 0,
        "order-svc's query API, ip:port (the read endpoints' order data)"),
    ROW(order_query_conns, CFG_INT, "8", 1, 64, "keep-alive connections to the query API"),
    ROW(order_query_timeout_ms, CFG_INT, "2000", 10, 600000,
        "longest wait for the query API (keep above order-svc's query_timeout_ms, so that "
        "a missing shard comes back as a partial answer rather than a timeout)"),
    ROW(read_inflight_max, CFG_INT, "1024", 1, 1000000, "reads at once; more are answered 503"),
    ROW(stock_read_from, CFG_STRING, "replica", 0, 0,
        "where stock reads go: replica (Redis replicas, the master when none is healthy) "
        "or master"),
};

int orch_conf_instance_valid(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;

    if (n == 0 || n > MSG_MAX_INSTANCE)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

static int orch_conf_validate(const void *p, cg_error *err)
{
    const orch_conf *c = p;

    if (!orch_conf_instance_valid(c->instance_id))
        return cg_error_set(err, CG_ERR_INVALID, "setting 'instance_id': '%s' must be 1..%d of "
                            "[A-Za-z0-9._-]", c->instance_id ? c->instance_id : "",
                            MSG_MAX_INSTANCE);
    if (c->heartbeat_interval_ms >= c->heartbeat_ttl_s * 1000)
        return cg_error_set(err, CG_ERR_INVALID, "setting 'heartbeat_interval_ms' must be below "
                            "heartbeat_ttl_s");
    if (c->http_bind == NULL || c->http_bind[0] == '\0')
        return cg_error_set(err, CG_ERR_INVALID, "setting 'http_bind' is empty");
    if (c->stock_read_from == NULL || (strcmp(c->stock_read_from, "replica") != 0 &&
                                       strcmp(c->stock_read_from, "master") != 0))
        return cg_error_set(err, CG_ERR_INVALID, "setting 'stock_read_from': '%s' is not "
                            "replica or master", c->stock_read_from ? c->stock_read_from : "");
    return svc_conf_apply_log_level(&c->svc, err);
}

const cfg_spec orch_conf_spec = {
    "orchestrator", "ORCH_", orch_conf_params,
    sizeof(orch_conf_params) / sizeof(orch_conf_params[0]), orch_conf_validate,
};
