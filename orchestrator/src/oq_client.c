/* oq_client.c - evhttp client pool for order-svc's query API; see oq_client.h.
 *
 * evhttp queues the requests of one connection and sends them one after
 * another; several connections let reads of different shards overlap. A
 * request's context stays on the client's list until its callback ran, so
 * that oq_free can answer the ones still out: it cancels each one first
 * (evhttp_cancel_request drops it without its done callback, and may call
 * its error callback while the context still exists). */
#include "oq_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "log.h"

#define OQ_CONNS_MAX 64

typedef struct oq_req {
    struct oq_req *prev, *next;
    oq_client *c;
    oq_cb cb;
    void *arg;
    struct evhttp_request *req;
    enum evhttp_request_error error;
    int failed;
} oq_req;

struct oq_client {
    struct event_base *base;
    struct evhttp_connection *conns[OQ_CONNS_MAX];
    int n_conns, next;
    int max_inflight;
    int closing;
    char host[64];
    int port;
    oq_req *reqs;
    oq_stats stats;
};

static void oq_unlink(oq_client *c, oq_req *r)
{
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    c->stats.inflight--;
}

/* Runs before the done callback when a request fails. */
static void oq_on_error(enum evhttp_request_error error, void *arg)
{
    oq_req *r = arg;

    r->failed = 1;
    r->error = error;
}

static void oq_on_done(struct evhttp_request *req, void *arg)
{
    oq_req *r = arg;
    oq_client *c = r->c;
    int code = req != NULL ? evhttp_request_get_response_code(req) : 0;
    int status = CG_OK;

    if (c->closing)
        return;   /* oq_free answers it */
    oq_unlink(c, r);
    if (r->failed || code == 0) {
        status = r->failed && r->error == EVREQ_HTTP_TIMEOUT ? CG_ERR_TIMEOUT : CG_ERR_IO;
        if (status == CG_ERR_TIMEOUT)
            c->stats.timeouts++;
        else
            c->stats.errors++;
        r->cb(status, 0, NULL, r->arg);
    } else {
        c->stats.answers++;
        r->cb(CG_OK, code, evhttp_request_get_input_buffer(req), r->arg);
    }
    free(r);
}

int oq_new(struct event_base *base, const char *addr, int conns, int timeout_ms,
           int max_inflight, oq_client **out, cg_error *err)
{
    oq_client *c = calloc(1, sizeof(*c));
    const char *colon = addr != NULL ? strrchr(addr, ':') : NULL;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int rc = CG_OK;

    *out = NULL;
    if (c == NULL)
        return cg_error_set(err, CG_ERR_NOMEM, "out of memory");
    if (colon == NULL || (size_t)(colon - addr) >= sizeof(c->host) || colon == addr ||
        (c->port = atoi(colon + 1)) <= 0 || c->port > 65535 || conns < 1 ||
        conns > OQ_CONNS_MAX) {
        rc = cg_error_set(err, CG_ERR_INVALID, "order query address '%s': expected ip:port",
                          addr != NULL ? addr : "");
        goto err;
    }
    memcpy(c->host, addr, (size_t)(colon - addr));
    c->base = base;
    c->max_inflight = max_inflight;
    c->n_conns = conns;
    for (int i = 0; i < conns; i++) {
        c->conns[i] = evhttp_connection_base_new(base, NULL, c->host, (ev_uint16_t)c->port);
        if (c->conns[i] == NULL) {
            rc = cg_error_set(err, CG_ERR_NOMEM, "cannot create an HTTP connection");
            goto err;
        }
        evhttp_connection_set_timeout_tv(c->conns[i], &tv);
        /* One retry: a keep-alive connection the server closed while idle
         * fails the first send; the reads are idempotent. */
        evhttp_connection_set_retries(c->conns[i], 1);
    }
    *out = c;
    return CG_OK;

err:
    oq_free(c);
    return rc;
}

int oq_get(oq_client *c, const char *uri, oq_cb cb, void *arg)
{
    oq_req *r;
    struct evhttp_request *req;
    struct evhttp_connection *conn;

    if (c->stats.inflight >= c->max_inflight) {
        c->stats.refused++;
        return CG_ERR_FULL;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return CG_ERR_NOMEM;
    req = evhttp_request_new(oq_on_done, r);
    if (req == NULL) {
        free(r);
        return CG_ERR_NOMEM;
    }
    evhttp_request_set_error_cb(req, oq_on_error);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", c->host);
    r->c = c;
    r->cb = cb;
    r->arg = arg;
    r->req = req;
    conn = c->conns[c->next];
    c->next = (c->next + 1) % c->n_conns;
    /* On failure evhttp_make_request frees req itself. */
    if (evhttp_make_request(conn, req, EVHTTP_REQ_GET, uri) != 0) {
        free(r);
        return CG_ERR_IO;
    }
    r->next = c->reqs;
    if (c->reqs != NULL)
        c->reqs->prev = r;
    c->reqs = r;
    c->stats.inflight++;
    c->stats.requests++;
    return CG_OK;
}

void oq_free(oq_client *c)
{
    if (c == NULL)
        return;
    c->closing = 1;
    while (c->reqs != NULL) {
        oq_req *r = c->reqs;

        evhttp_cancel_request(r->req);
        oq_unlink(c, r);
        r->cb(CG_ERR_STATE, 0, NULL, r->arg);
        free(r);
    }
    for (int i = 0; i < c->n_conns; i++) {
        if (c->conns[i] != NULL)
            evhttp_connection_free(c->conns[i]);
    }
    free(c);
}

void oq_get_stats(const oq_client *c, oq_stats *out)
{
    *out = c->stats;
}
