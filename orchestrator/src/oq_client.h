/* oq_client.h - the orchestrator's client of order-svc's query API
 * (order-svc/src/ord_http.h): HTTP GETs over a few keep-alive connections
 * (libevent's evhttp client), round robin, each request bounded by a
 * timeout and the whole client by a cap on requests in flight.
 *
 * Reads of order data go to the service that owns it, as the design says,
 * and over HTTP rather than the broker: a read is a request/response that
 * must answer in milliseconds, and it must not queue behind the saga's
 * commands (docs/read-api.md). */
#ifndef ORCH_OQ_CLIENT_H
#define ORCH_OQ_CLIENT_H

#include <stdint.h>

#include "status.h"

struct event_base;
struct evbuffer;
typedef struct oq_client oq_client;

/* Exactly once per accepted oq_get, on the loop, never from inside oq_get:
 * status CG_OK with the answer's HTTP code and body (valid during the call
 * only), or CG_ERR_IO / CG_ERR_TIMEOUT (no answer; code 0, body NULL), or
 * CG_ERR_STATE when the client is freed first. */
typedef void (*oq_cb)(int status, int code, struct evbuffer *body, void *arg);

typedef struct oq_stats {
    uint64_t requests, answers, errors, timeouts, refused;
    int inflight;
} oq_stats;

/* addr: "ip:port". */
int oq_new(struct event_base *base, const char *addr, int conns, int timeout_ms,
           int max_inflight, oq_client **out, cg_error *err) CG_MUSTCHECK;

/* uri: path and query ("/api/room/7/orders?limit=5"). CG_ERR_FULL beyond
 * max_inflight; CG_ERR_NOMEM. On error cb is never called. */
int oq_get(oq_client *c, const char *uri, oq_cb cb, void *arg) CG_MUSTCHECK;

/* Calls back every request in flight with CG_ERR_STATE, then closes. */
void oq_free(oq_client *c);

void oq_get_stats(const oq_client *c, oq_stats *out);

#endif
