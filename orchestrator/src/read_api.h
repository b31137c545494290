/* read_api.h - the read endpoints of the public API (docs/read-api.md):
 *
 *   GET /api/user/{id}/coupons, /api/room/{id}/orders, /api/orders/recent
 *       relayed to order-svc's query API, which owns the orders;
 *   GET /api/coupon/{id}/stock          Redis (a replica by default);
 *   GET /api/room/{id}/stats            Redis stock + order-svc's counts;
 *   GET /api/statistics/global          order-svc's totals + Redis stock totals;
 *   GET /admin/shards/status            order-svc's per-shard status;
 *   GET /admin/stats, /metrics          this instance's numbers (admin_stats.c).
 *
 * None of them touches the saga's path: no saga log, no broker, and stock
 * reads go to a Redis replica when there is a healthy one. Every read is
 * bounded (read_inflight_max at once, 503 beyond) and answers exactly once,
 * also when the process stops with reads in flight. */
#ifndef ORCH_READ_API_H
#define ORCH_READ_API_H

#include "http_route.h"
#include "orch.h"

struct evhttp_request;

/* Creates the stock-read Redis client and the order-svc client. */
int read_api_start(orch *o, cg_error *err) CG_MUSTCHECK;
/* Frees them: reads in flight are answered 503 first. */
void read_api_stop(orch *o);

/* Serves a read route (rm from http_route_match, ROUTE_OK). */
void read_api_handle(orch *o, struct evhttp_request *req, const route_match *rm);

/* 1 when req's URI has no query parameters; else answers 400 naming the
 * first and returns 0 (for the endpoints that take none). */
int read_no_params(struct evhttp_request *req);

/* The stock totals of every coupon in Redis, for /admin/stats too: calls
 * done(o, status, json {coupons, stock_total, stock_remaining}, arg) once. */
typedef void (*read_stock_totals_cb)(orch *o, int status, void *json, void *arg);
int read_stock_totals(orch *o, read_stock_totals_cb done, void *arg) CG_MUSTCHECK;

#endif
