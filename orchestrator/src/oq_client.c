/* oq_client.c - evhttp client pool for order-svc's query API; see oq_client.h.
 *
 * evhttp queues the requests of one connection and sends them one after
 * another; several connections let reads of different shards overlap.
 *
 * The client keeps its own deadlines and connection health rather than
 * evhttp's: with evhttp's connect retries on, a connection that failed to
 * connect while order-svc was down was left unable to send again, its later
 * requests never answered and never timed out (reproduced: stop order-svc,
 * read, start it, half the reads hung). So: no evhttp retries (a refused
 * connect fails at once), a timer per request that cancels it at its
 * deadline, and a connection that failed or timed out is marked broken and
 * replaced by a fresh one once no request of ours is on it (never from inside
 * its own callbacks). A request that fails on a reused keep-alive connection
 * (the server may have closed it while idle) is sent once more on another:
 * the reads are idempotent.
 *
 * A request's context stays on the client's list until its callback ran, so
 * that oq_free can answer the ones still out: it cancels each one first
 * (evhttp_cancel_request drops it without its done callback, and may call its
 * error callback while the context still exists). */
#include "oq_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "log.h"

#define OQ_CONNS_MAX 64
#define OQ_URI_MAX 2048

typedef struct oq_conn {
    struct evhttp_connection *evcon;
    int inflight;          /* our requests on it */
    int broken;            /* a request failed on it: replace when idle */
    int used;              /* it answered before: a failure may be a stale keep-alive */
} oq_conn;

typedef struct oq_req {
    struct oq_req *prev, *next;
    oq_client *c;
    oq_cb cb;
    void *arg;
    struct evhttp_request *req;
    struct event *deadline;
    int conn;              /* index of the connection carrying it */
    int attempts;
    int failed;            /* evhttp's error callback ran */
    enum evhttp_request_error error;
    char uri[OQ_URI_MAX];
} oq_req;

struct oq_client {
    struct event_base *base;
    oq_conn conns[OQ_CONNS_MAX];
    int n_conns, next;
    int max_inflight;
    int timeout_ms;
    char host[64];
    int port;
    oq_req *reqs;
    oq_stats stats;
};

static int oq_send(oq_client *c, oq_req *r);

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

/* Answers r once and frees it. */
static void oq_finish(oq_client *c, oq_req *r, int status, int code, struct evbuffer *body)
{
    oq_unlink(c, r);
    if (r->deadline != NULL)
        event_free(r->deadline);
    if (status == CG_OK)
        c->stats.answers++;
    else if (status == CG_ERR_TIMEOUT)
        c->stats.timeouts++;
    else
        c->stats.errors++;
    r->cb(status, code, body, r->arg);
    free(r);
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
    oq_conn *conn = &c->conns[r->conn];
    int code = req != NULL ? evhttp_request_get_response_code(req) : 0;
    int reused = conn->used;

    conn->inflight--;
    r->req = NULL;   /* evhttp frees it after this callback */
    if (!r->failed && code != 0) {
        conn->used = 1;
        oq_finish(c, r, CG_OK, code, evhttp_request_get_input_buffer(req));
        return;
    }
    conn->broken = 1;
    if (reused && r->attempts == 1 && oq_send(c, r) == CG_OK)
        return;   /* once more, on another connection */
    log_debug("-", "order-svc query %s failed on connection %d (%s)", r->uri, r->conn,
              r->failed ? "transport error" : "no status");
    oq_finish(c, r, CG_ERR_IO, 0, NULL);
}

static void oq_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    oq_req *r = arg;
    oq_client *c = r->c;

    (void)fd;
    (void)what;
    if (r->req != NULL) {
        c->conns[r->conn].broken = 1;
        c->conns[r->conn].inflight--;
        evhttp_cancel_request(r->req);
        r->req = NULL;
    }
    log_warn("-", "order-svc query %s: no answer within %d ms", r->uri, c->timeout_ms);
    oq_finish(c, r, CG_ERR_TIMEOUT, 0, NULL);
}

static int oq_conn_open(oq_client *c, int i)
{
    oq_conn *conn = &c->conns[i];

    memset(conn, 0, sizeof(*conn));
    conn->evcon = evhttp_connection_base_new(c->base, NULL, c->host, (ev_uint16_t)c->port);
    if (conn->evcon == NULL)
        return CG_ERR_NOMEM;
    /* Our own deadlines and retry; evhttp's timeout only as a backstop. */
    evhttp_connection_set_retries(conn->evcon, 0);
    evhttp_connection_set_timeout(conn->evcon, c->timeout_ms / 1000 + 2);
    return CG_OK;
}

/* The next connection fit to carry a request: healthy, or broken and idle
 * (then replaced now: none of its callbacks is running, since requests are
 * only sent from outside them or for another connection). */
static int oq_pick(oq_client *c, int avoid)
{
    for (int k = 0; k < c->n_conns; k++) {
        int i = (c->next + k) % c->n_conns;
        oq_conn *conn = &c->conns[i];

        if (i == avoid)
            continue;   /* the one that just failed: we may be inside its callback */
        if (conn->broken && conn->inflight == 0) {
            evhttp_connection_free(conn->evcon);
            conn->evcon = NULL;
            if (oq_conn_open(c, i) != CG_OK)
                continue;
        }
        if (!conn->broken) {
            c->next = (i + 1) % c->n_conns;
            return i;
        }
    }
    return -1;
}

static int oq_send(oq_client *c, oq_req *r)
{
    int i = oq_pick(c, r->attempts > 0 ? r->conn : -1);
    struct evhttp_request *req;

    if (i < 0)
        return CG_ERR_FULL;   /* every connection is broken and busy */
    req = evhttp_request_new(oq_on_done, r);
    if (req == NULL)
        return CG_ERR_NOMEM;
    evhttp_request_set_error_cb(req, oq_on_error);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", c->host);
    r->failed = 0;
    r->conn = i;
    r->attempts++;
    /* On failure evhttp_make_request frees req itself. */
    if (evhttp_make_request(c->conns[i].evcon, req, EVHTTP_REQ_GET, r->uri) != 0) {
        c->conns[i].broken = 1;
        return CG_ERR_IO;
    }
    r->req = req;
    c->conns[i].inflight++;
    return CG_OK;
}

int oq_new(struct event_base *base, const char *addr, int conns, int timeout_ms,
           int max_inflight, oq_client **out, cg_error *err)
{
    oq_client *c = calloc(1, sizeof(*c));
    const char *colon = addr != NULL ? strrchr(addr, ':') : NULL;
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
    c->timeout_ms = timeout_ms;
    c->n_conns = conns;
    for (int i = 0; i < conns; i++) {
        if (oq_conn_open(c, i) != CG_OK) {
            rc = cg_error_set(err, CG_ERR_NOMEM, "cannot create an HTTP connection");
            goto err;
        }
    }
    *out = c;
    return CG_OK;

err:
    oq_free(c);
    return rc;
}

int oq_get(oq_client *c, const char *uri, oq_cb cb, void *arg)
{
    struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
    oq_req *r;
    int rc;

    if (c->stats.inflight >= c->max_inflight) {
        c->stats.refused++;
        return CG_ERR_FULL;
    }
    if (strlen(uri) >= OQ_URI_MAX)
        return CG_ERR_INVALID;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return CG_ERR_NOMEM;
    r->c = c;
    r->cb = cb;
    r->arg = arg;
    snprintf(r->uri, sizeof(r->uri), "%s", uri);
    r->deadline = evtimer_new(c->base, oq_on_deadline, r);
    if (r->deadline == NULL || evtimer_add(r->deadline, &tv) != 0) {
        rc = CG_ERR_NOMEM;
        goto err;
    }
    rc = oq_send(c, r);
    if (rc != CG_OK)
        goto err;
    r->next = c->reqs;
    if (c->reqs != NULL)
        c->reqs->prev = r;
    c->reqs = r;
    c->stats.inflight++;
    c->stats.requests++;
    return CG_OK;

err:
    if (r->deadline != NULL)
        event_free(r->deadline);
    free(r);
    return rc;
}

void oq_free(oq_client *c)
{
    if (c == NULL)
        return;
    while (c->reqs != NULL) {
        oq_req *r = c->reqs;

        if (r->req != NULL)
            evhttp_cancel_request(r->req);
        r->req = NULL;
        oq_finish(c, r, CG_ERR_STATE, 0, NULL);
    }
    for (int i = 0; i < c->n_conns; i++) {
        if (c->conns[i].evcon != NULL)
            evhttp_connection_free(c->conns[i].evcon);
    }
    free(c);
}

void oq_get_stats(const oq_client *c, oq_stats *out)
{
    *out = c->stats;
}
