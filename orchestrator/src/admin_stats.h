/* admin_stats.h - GET /admin/stats (JSON: sagas by state, queue depths,
 * grab rates, stock totals, read counters) and GET /metrics (the same
 * counters in Prometheus' text format), both about this orchestrator
 * instance plus what it reads from Redis and the broker. */
#ifndef ORCH_ADMIN_STATS_H
#define ORCH_ADMIN_STATS_H

#include "orch.h"

struct evhttp_request;

void admin_stats_handle(orch *o, struct evhttp_request *req);
void admin_metrics_handle(orch *o, struct evhttp_request *req);

/* Samples the counters once a second for the rates; called by the timer. */
void admin_stats_tick(orch *o, long long now_ms);

#endif
