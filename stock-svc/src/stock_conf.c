/* stock_conf.c - stock-svc's settings table; see stock_conf.h. */
#include "stock_conf.h"

#include <stddef.h>

#include "msg.h"

#define STOCK_ROW(member, def, lo, hi, help) \
    {#member, CFG_INT, offsetof(stock_conf, member), def, lo, hi, help}

static const cfg_param stock_conf_params[] = {
    SVC_CONF_PARAMS(stock_conf, svc),
    STOCK_ROW(max_watch_retries, "10", 0, 1000,
              "conflicting EXECs of a batch before its deliveries are requeued"),
    STOCK_ROW(watch_backoff_ms, "2", 0, 10000, "first backoff after a WATCH conflict (doubles)"),
    STOCK_ROW(wait_replicas, "0", 0, 16, "WAIT for this many replicas after EXEC (0: off)"),
    STOCK_ROW(wait_timeout_ms, "100", 1, 60000, "WAIT timeout; below redis_timeout_ms"),
    STOCK_ROW(batch_max, "512", 1, MSG_MAX_BATCH, "items per transaction"),
    STOCK_ROW(max_pending, "65536", 1, 10000000, "items in work, all coupons"),
    STOCK_ROW(max_coupon_pending, "8192", 1, 10000000, "items in work for one coupon"),
    STOCK_ROW(redis_pool, "8", 2, 256, "Redis connections (one stays unleased)"),
    STOCK_ROW(retry_min_ms, "50", 1, 60000, "first backoff after a Redis failure"),
    STOCK_ROW(retry_max_ms, "2000", 1, 600000, "largest backoff after Redis failures"),
    STOCK_ROW(max_error_attempts, "5", 1, 1000,
              "Redis error replies for a batch before its deliveries are dead-lettered"),
    STOCK_ROW(reply_retry_ms, "200", 1, 60000, "pause before republishing refused replies"),
    STOCK_ROW(tick_ms, "5", 1, 1000, "period of the timer that runs retries and backoffs"),
    STOCK_ROW(stats_interval_ms, "10000", 100, 3600000, "stats line period (when changed)"),
    STOCK_ROW(shutdown_timeout_ms, "10000", 100, 600000, "bound on the graceful stop"),
};

int stock_conf_validate(const void *conf, cg_error *err)
{
    const stock_conf *c = conf;

    if (c->wait_replicas > 0 && c->wait_timeout_ms >= c->svc.redis_timeout_ms)
        return cg_error_set(err, CG_ERR_INVALID,
                            "setting 'wait_timeout_ms' (%lld) must be below 'redis_timeout_ms' "
                            "(%lld): rds drops a connection whose command runs longer",
                            c->wait_timeout_ms, c->svc.redis_timeout_ms);
    if (c->retry_min_ms > c->retry_max_ms)
        return cg_error_set(err, CG_ERR_INVALID, "setting 'retry_min_ms' (%lld) is above "
                            "'retry_max_ms' (%lld)", c->retry_min_ms, c->retry_max_ms);
    if (c->max_coupon_pending > c->max_pending)
        return cg_error_set(err, CG_ERR_INVALID, "setting 'max_coupon_pending' (%lld) is above "
                            "'max_pending' (%lld)", c->max_coupon_pending, c->max_pending);
    return CG_OK;
}

const cfg_spec stock_conf_spec = {
    "stock-svc", "STOCK_", stock_conf_params,
    sizeof(stock_conf_params) / sizeof(stock_conf_params[0]), stock_conf_validate,
};
