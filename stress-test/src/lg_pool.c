/* lg_pool.c - the connection layer on libevent's evhttp client; see lg_pool.h.
 *
 * Each slot holds one evhttp_connection (retries off, keep-alive by
 * HTTP/1.1 default). A send only records the path and activates the slot's
 * kick event: the request is made from the loop, never from inside evhttp's
 * own callback, so that a broken connection can be freed safely before its
 * replacement is opened. The whole-request bound is lg_pool_sweep(), which
 * frees the connection (evhttp then drops the request without calling back)
 * and reports the timeout itself; evhttp's own read/write timeout is only a
 * backstop. */
#include "lg_pool.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "lg_tmpl.h"
#include "log.h"

/* evhttp's own (inactivity) timeout is this much longer than the request
 * timeout: a backstop, so that lg_pool_sweep() is what normally ends a
 * request that takes too long, the same way whatever phase it is in. */
#define LG_POOL_BACKSTOP_MS 1000

/* Where a slot is. */
enum lg_slot_state {
    LG_SLOT_IDLE = 0,     /* nothing to do; may be sent on */
    LG_SLOT_QUEUED = 1,   /* a path waits for the kick event */
    LG_SLOT_SENT = 2,     /* a request is on the connection */
    LG_SLOT_MAX
};

static const char *const lg_slot_state_names[LG_SLOT_MAX] = {"idle", "queued", "sent"};

typedef struct lg_slot {
    lg_pool *pool;
    int idx;
    enum lg_slot_state state;
    struct evhttp_connection *conn;
    int broken;                      /* close conn before the next request */
    int connected;                   /* the request in flight opened conn */
    struct event *kick;
    long long sent_us;
    enum lg_xerr err_kind;           /* from the request's error callback */
    const char *err_what;
    char path[LG_PATH_MAX];
} lg_slot;

struct lg_pool {
    lg_pool_opts opts;
    struct event_base *base;
    lg_pool_cb cb;
    void *arg;
    lg_slot *slots;
    int busy;
};

long long lg_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static void lg_slot_set_state(lg_slot *s, enum lg_slot_state to)
{
    assert(to >= 0 && to < LG_SLOT_MAX);
    assert(s->state >= 0 && s->state < LG_SLOT_MAX);
    log_debug("-", "pool: slot %d: %s -> %s", s->idx, lg_slot_state_names[s->state],
              lg_slot_state_names[to]);
    switch (to) {
    case LG_SLOT_IDLE:
        s->pool->busy--;
        break;
    case LG_SLOT_QUEUED:
        s->pool->busy++;
        break;
    case LG_SLOT_SENT:
        break;
    default:
        log_error("-", "pool: slot %d: bad state %d", s->idx, (int)to);
        abort();
    }
    s->state = to;
}

/* Ends the slot's request and tells the owner. */
static void lg_slot_finish(lg_slot *s, lg_result *res, long long now_us)
{
    lg_pool *p = s->pool;

    res->latency_us = now_us - s->sent_us;
    res->connected = s->connected;
    if (res->xerr != LG_XERR_NONE)
        s->broken = 1;
    lg_slot_set_state(s, LG_SLOT_IDLE);
    p->cb(s->idx, res, p->arg);
}

static void lg_slot_fail(lg_slot *s, enum lg_xerr kind, const char *what, long long now_us)
{
    lg_result res;

    memset(&res, 0, sizeof(res));
    res.xerr = kind;
    res.what = what;
    lg_slot_finish(s, &res, now_us);
}

static void lg_pool_on_error(enum evhttp_request_error e, void *arg)
{
    lg_slot *s = arg;

    s->err_kind = e == EVREQ_HTTP_TIMEOUT ? LG_XERR_TIMEOUT : LG_XERR_TRANSPORT;
    switch (e) {
    case EVREQ_HTTP_TIMEOUT:
        s->err_what = "timeout";
        break;
    case EVREQ_HTTP_EOF:
        s->err_what = "connection closed";
        break;
    case EVREQ_HTTP_INVALID_HEADER:
        s->err_what = "invalid answer";
        break;
    case EVREQ_HTTP_BUFFER_ERROR:
        s->err_what = "connection failed";
        break;
    case EVREQ_HTTP_DATA_TOO_LONG:
        s->err_what = "answer too long";
        break;
    default:
        s->err_what = "transport error";
        break;
    }
}

/* evhttp's completion: req is NULL (or has no status) on failure. */
static void lg_pool_on_done(struct evhttp_request *req, void *arg)
{
    lg_slot *s = arg;
    long long now = lg_now_us();
    lg_result res;

    if (s->state != LG_SLOT_SENT)
        return;   /* not ours to report: lg_pool_sweep() already did */
    memset(&res, 0, sizeof(res));
    res.what = "";
    if (req == NULL || evhttp_request_get_response_code(req) == 0) {
        res.xerr = s->err_kind != LG_XERR_NONE ? s->err_kind : LG_XERR_TRANSPORT;
        /* a refused connect reaches here without the error callback */
        res.what = s->err_what != NULL ? s->err_what : "connect failed or no answer";
    } else {
        res.status = evhttp_request_get_response_code(req);
        if (s->pool->opts.want_body) {
            struct evbuffer *in = evhttp_request_get_input_buffer(req);

            res.body_len = evbuffer_get_length(in);
            res.body = res.body_len > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
            if (res.body == NULL)
                res.body_len = 0;
        }
    }
    lg_slot_finish(s, &res, now);
}

/* Opens the slot's connection when it has none (or only a broken one). */
static int lg_slot_connect(lg_slot *s)
{
    const lg_pool_opts *o = &s->pool->opts;
    long long backstop_ms = o->timeout_ms + LG_POOL_BACKSTOP_MS;
    struct timeval tv = {(time_t)(backstop_ms / 1000), (suseconds_t)((backstop_ms % 1000) * 1000)};

    if (s->conn != NULL && s->broken) {
        evhttp_connection_free(s->conn);
        s->conn = NULL;
    }
    s->broken = 0;
    s->connected = 0;
    if (s->conn != NULL)
        return CG_OK;
    s->conn = evhttp_connection_base_new(s->pool->base, NULL, o->host, (unsigned short)o->port);
    if (s->conn == NULL)
        return CG_ERR_NOMEM;
    evhttp_connection_set_retries(s->conn, 0);
    evhttp_connection_set_timeout_tv(s->conn, &tv);
    evhttp_connection_set_max_body_size(s->conn, (ev_ssize_t)o->max_body);
    evhttp_connection_set_max_headers_size(s->conn, LG_POOL_HEADERS_MAX);
    s->connected = 1;
    return CG_OK;
}

static void lg_slot_kick(evutil_socket_t fd, short what, void *arg)
{
    lg_slot *s = arg;
    struct evhttp_request *req;

    (void)fd;
    (void)what;
    if (s->state != LG_SLOT_QUEUED)
        return;
    s->err_kind = LG_XERR_NONE;
    s->err_what = NULL;
    s->sent_us = lg_now_us();
    if (lg_slot_connect(s) != CG_OK) {
        lg_slot_fail(s, LG_XERR_TRANSPORT, "cannot create a connection", lg_now_us());
        return;
    }
    req = evhttp_request_new(lg_pool_on_done, s);
    if (req == NULL) {
        lg_slot_fail(s, LG_XERR_TRANSPORT, "out of memory", lg_now_us());
        return;
    }
    evhttp_request_set_error_cb(req, lg_pool_on_error);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", s->pool->opts.host_header);
    lg_slot_set_state(s, LG_SLOT_SENT);
    /* the time the request is handed over: latency includes a connect, if any */
    s->sent_us = lg_now_us();
    /* on failure evhttp_make_request frees req itself; a connect refused at
     * once has already called lg_pool_on_done from inside it */
    if (evhttp_make_request(s->conn, req, EVHTTP_REQ_GET, s->path) != 0 && s->state == LG_SLOT_SENT)
        lg_slot_fail(s, LG_XERR_TRANSPORT, "could not send", lg_now_us());
}

int lg_pool_new(struct event_base *base, const lg_pool_opts *opts, lg_pool_cb cb, void *arg,
                lg_pool **out, cg_error *err)
{
    lg_pool *p = NULL;
    int rc = CG_OK;

    *out = NULL;
    if (opts->size < 1 || opts->timeout_ms < 1 || opts->host == NULL || opts->host_header == NULL)
        return cg_error_set(err, CG_ERR_INVALID, "pool: bad options");
    p = calloc(1, sizeof(*p));
    if (p == NULL || (p->slots = calloc((size_t)opts->size, sizeof(*p->slots))) == NULL) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "pool: out of memory");
        goto err;
    }
    p->opts = *opts;
    p->base = base;
    p->cb = cb;
    p->arg = arg;
    for (int i = 0; i < opts->size; i++) {
        lg_slot *s = &p->slots[i];

        s->pool = p;
        s->idx = i;
        s->state = LG_SLOT_IDLE;
        s->kick = event_new(base, -1, 0, lg_slot_kick, s);
        if (s->kick == NULL) {
            rc = cg_error_set(err, CG_ERR_NOMEM, "pool: out of memory");
            goto err;
        }
    }
    *out = p;
    return CG_OK;
err:
    lg_pool_free(p);
    return rc;
}

int lg_pool_send(lg_pool *p, int slot, const char *path)
{
    lg_slot *s;
    size_t len = strlen(path);

    if (slot < 0 || slot >= p->opts.size)
        return CG_ERR_INVALID;
    s = &p->slots[slot];
    if (s->state != LG_SLOT_IDLE)
        return CG_ERR_STATE;
    if (len >= sizeof(s->path))
        return CG_ERR_INVALID;
    memcpy(s->path, path, len + 1);
    lg_slot_set_state(s, LG_SLOT_QUEUED);
    event_active(s->kick, EV_TIMEOUT, 1);
    return CG_OK;
}

void lg_pool_sweep(lg_pool *p, long long now_us)
{
    long long limit_us = p->opts.timeout_ms * 1000;

    for (int i = 0; i < p->opts.size; i++) {
        lg_slot *s = &p->slots[i];

        if (s->state != LG_SLOT_SENT || now_us - s->sent_us < limit_us)
            continue;
        /* frees the request in flight without calling lg_pool_on_done */
        evhttp_connection_free(s->conn);
        s->conn = NULL;
        lg_slot_fail(s, LG_XERR_TIMEOUT, "timeout", now_us);
    }
}

int lg_pool_busy(const lg_pool *p)
{
    return p->busy;
}

int lg_pool_size(const lg_pool *p)
{
    return p->opts.size;
}

void lg_pool_free(lg_pool *p)
{
    if (p == NULL)
        return;
    for (int i = 0; p->slots != NULL && i < p->opts.size; i++) {
        if (p->slots[i].conn != NULL)
            evhttp_connection_free(p->slots[i].conn);
        if (p->slots[i].kick != NULL)
            event_free(p->slots[i].kick);
    }
    free(p->slots);
    free(p);
}
