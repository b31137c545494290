/* lg_pool.h - the connection layer: keep-alive HTTP/1.1 GETs to one target.
 *
 * A pool owns `size` slots; each slot is one connection carrying at most one
 * request at a time (closed loop: the owner sends the next one from the
 * completion callback). Everything the load driver needs from the network is
 * in this header, so a faster client (raw sockets, pipelining, several loops)
 * can replace lg_pool.c without touching the driver.
 *
 * Guarantees: every lg_pool_send() ends in exactly one callback for its slot:
 * an HTTP answer of any status, a transport error, or a timeout once the
 * request is older than timeout_ms (lg_pool_sweep() enforces it; call it
 * from a periodic timer). A connection that failed or timed out is closed
 * and a new one is opened for the slot's next request. Answers larger than
 * max_body fail as transport errors. */
#ifndef LG_POOL_H
#define LG_POOL_H

#include <stddef.h>

#include "status.h"

struct event_base;

#define LG_POOL_HEADERS_MAX (64 * 1024)   /* largest answer header block accepted */

/* How a request ended. */
enum lg_xerr {
    LG_XERR_NONE = 0,        /* an HTTP answer, any status */
    LG_XERR_TIMEOUT = 1,     /* no full answer within timeout_ms */
    LG_XERR_TRANSPORT = 2,   /* refused, reset, closed early, malformed or too long */
    LG_XERR_MAX
};

typedef struct lg_result {
    int status;               /* HTTP status; 0 unless xerr is LG_XERR_NONE */
    enum lg_xerr xerr;
    const char *what;         /* a static description of a transport error, or "" */
    const char *body;         /* with want_body: the answer, valid during the callback only,
                                 not NUL-terminated; else NULL */
    size_t body_len;
    long long latency_us;     /* from handing the request to the connection to its end */
    int connected;            /* this request opened a new connection */
} lg_result;

/* Called on the loop when a slot's request ends. It may call lg_pool_send()
 * (for any slot) but not lg_pool_free(). */
typedef void (*lg_pool_cb)(int slot, const lg_result *res, void *arg);

typedef struct lg_pool_opts {
    const char *host;         /* connected to; borrowed */
    int port;
    const char *host_header;  /* the Host header; borrowed */
    int size;                 /* slots (connections), >= 1 */
    long long timeout_ms;     /* per request, >= 1 */
    size_t max_body;          /* largest answer body accepted */
    int want_body;            /* hand the body to the callback */
} lg_pool_opts;

typedef struct lg_pool lg_pool;

/* A new pool on base; connections open lazily, at each slot's first send. */
int lg_pool_new(struct event_base *base, const lg_pool_opts *opts, lg_pool_cb cb, void *arg,
                lg_pool **out, cg_error *err) CG_MUSTCHECK;

/* Queues a GET of path (copied) on an idle slot; it goes out from the loop.
 * CG_ERR_STATE when the slot is busy, CG_ERR_INVALID when path is too long. */
int lg_pool_send(lg_pool *p, int slot, const char *path) CG_MUSTCHECK;

/* Ends every request older than the timeout as LG_XERR_TIMEOUT. */
void lg_pool_sweep(lg_pool *p, long long now_us);

/* Slots with a request queued or in flight. */
int lg_pool_busy(const lg_pool *p);
int lg_pool_size(const lg_pool *p);

/* Closes every connection, dropping requests in flight without callbacks. */
void lg_pool_free(lg_pool *p);

/* CLOCK_MONOTONIC in microseconds. */
long long lg_now_us(void);

#endif
