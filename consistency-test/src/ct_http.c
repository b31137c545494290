/* ct_http.c - the concurrent HTTP client; see ct_http.h.
 *
 * Each slot owns one evhttp connection and walks the shared request list.
 * libevent runs the request callback from inside the connection's own code,
 * so the callback only records the answer; freeing a failed connection and
 * starting the slot's next request happen in a deferred event. */
#include "ct_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "log.h"

struct ct_http_batch;

typedef struct ct_http_slot {
    struct ct_http_batch *run;
    struct evhttp_connection *conn;
    ct_http_req *cur;
    int failed;                   /* the last request failed: re-open the connection */
    struct event *next_ev;
} ct_http_slot;

typedef struct ct_http_batch {
    const ct_http_opts *opts;
    struct event_base *base;
    ct_http_req *reqs;
    size_t n, next, done;
    ct_http_slot *slots;
    int n_slots;
} ct_http_batch;

long long ct_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *ct_http_error_name(enum evhttp_request_error e)
{
    switch (e) {
    case EVREQ_HTTP_TIMEOUT:
        return "timeout";
    case EVREQ_HTTP_EOF:
        return "connection closed";
    case EVREQ_HTTP_INVALID_HEADER:
        return "invalid header";
    case EVREQ_HTTP_BUFFER_ERROR:
        return "connection failed";
    case EVREQ_HTTP_REQUEST_CANCEL:
        return "cancelled";
    case EVREQ_HTTP_DATA_TOO_LONG:
        return "answer too long";
    default:
        return "transport error";
    }
}

static void ct_http_on_error(enum evhttp_request_error e, void *arg)
{
    ct_http_slot *s = arg;

    if (s->cur != NULL && s->cur->error[0] == '\0')
        snprintf(s->cur->error, sizeof(s->cur->error), "%s", ct_http_error_name(e));
}

static void ct_http_on_done(struct evhttp_request *req, void *arg)
{
    ct_http_slot *s = arg;
    ct_http_req *r = s->cur;
    struct timeval zero = {0, 0};

    r->done_ms = ct_now_ms();
    if (req == NULL || evhttp_request_get_response_code(req) == 0) {
        r->status = 0;
        if (r->error[0] == '\0')
            snprintf(r->error, sizeof(r->error), "no answer");
        s->failed = 1;
    } else {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(in);

        r->status = evhttp_request_get_response_code(req);
        if (len > CT_HTTP_BODY_MAX)
            len = CT_HTTP_BODY_MAX;
        r->resp = malloc(len + 1);
        if (r->resp != NULL) {
            evbuffer_copyout(in, r->resp, len);
            r->resp[len] = '\0';
            r->resp_len = len;
        }
    }
    s->cur = NULL;
    s->run->done++;
    event_add(s->next_ev, &zero);
}

/* Sends the next request on the slot, or leaves it idle. */
static void ct_http_start(ct_http_slot *s)
{
    ct_http_batch *run = s->run;
    const ct_http_opts *o = run->opts;
    struct evhttp_request *req;
    struct evkeyvalq *h;
    ct_http_req *r;
    char host[300];

    if (run->next >= run->n)
        return;
    r = &run->reqs[run->next++];
    s->cur = r;
    r->status = 0;
    r->error[0] = '\0';
    r->sent_ms = ct_now_ms();
    if (s->conn == NULL) {
        struct timeval tv = {(time_t)(o->timeout_ms / 1000), (suseconds_t)(o->timeout_ms % 1000) * 1000};

        s->conn = evhttp_connection_base_new(run->base, NULL, o->host, (unsigned short)o->port);
        if (s->conn == NULL)
            goto fail;
        evhttp_connection_set_retries(s->conn, 0);
        evhttp_connection_set_timeout_tv(s->conn, &tv);
    }
    req = evhttp_request_new(ct_http_on_done, s);
    if (req == NULL)
        goto fail;
    evhttp_request_set_error_cb(req, ct_http_on_error);
    h = evhttp_request_get_output_headers(req);
    snprintf(host, sizeof(host), "%s:%d", o->host, o->port);
    evhttp_add_header(h, "Host", host);
    if (r->idem_key[0] != '\0')
        evhttp_add_header(h, "Idempotency-Key", r->idem_key);
    if (r->body != NULL) {
        evhttp_add_header(h, "Content-Type", "application/json");
        evbuffer_add(evhttp_request_get_output_buffer(req), r->body, strlen(r->body));
    }
    /* On failure evhttp_make_request frees req itself. */
    if (evhttp_make_request(s->conn, req, r->method == CT_HTTP_POST ? EVHTTP_REQ_POST : EVHTTP_REQ_GET,
                            r->path) != 0)
        goto fail;
    return;
fail:
    snprintf(r->error, sizeof(r->error), "could not send");
    r->done_ms = ct_now_ms();
    s->cur = NULL;
    s->failed = 1;
    run->done++;
    {
        struct timeval zero = {0, 0};

        event_add(s->next_ev, &zero);
    }
}

static void ct_http_next(evutil_socket_t fd, short what, void *arg)
{
    ct_http_slot *s = arg;
    ct_http_batch *run = s->run;

    (void)fd;
    (void)what;
    if (s->failed && s->conn != NULL) {
        evhttp_connection_free(s->conn);
        s->conn = NULL;
    }
    s->failed = 0;
    if (run->opts->progress != NULL)
        run->opts->progress(run->done, run->n, run->opts->progress_arg);
    if (run->done >= run->n) {
        event_base_loopexit(run->base, NULL);
        return;
    }
    ct_http_start(s);
}

int ct_http_run(const ct_http_opts *opts, ct_http_req *reqs, size_t n, cg_error *err)
{
    ct_http_batch run;
    int status = CG_OK;

    memset(&run, 0, sizeof(run));
    if (n == 0)
        return CG_OK;
    run.opts = opts;
    run.reqs = reqs;
    run.n = n;
    run.n_slots = opts->concurrency < 1 ? 1 : opts->concurrency;
    if ((size_t)run.n_slots > n)
        run.n_slots = (int)n;
    run.base = event_base_new();
    run.slots = calloc((size_t)run.n_slots, sizeof(*run.slots));
    if (run.base == NULL || run.slots == NULL) {
        status = cg_error_set(err, CG_ERR_NOMEM, "http: out of memory");
        goto done;
    }
    for (int i = 0; i < run.n_slots; i++) {
        run.slots[i].run = &run;
        run.slots[i].next_ev = event_new(run.base, -1, 0, ct_http_next, &run.slots[i]);
        if (run.slots[i].next_ev == NULL) {
            status = cg_error_set(err, CG_ERR_NOMEM, "http: out of memory");
            goto done;
        }
    }
    for (int i = 0; i < run.n_slots; i++)
        ct_http_start(&run.slots[i]);
    /* Every request ends by itself (its timeout bounds it), and the last
     * completion stops the loop. */
    event_base_dispatch(run.base);
    if (run.done < run.n)
        status = cg_error_set(err, CG_ERR_STATE, "http: the loop stopped with %zu of %zu done",
                              run.done, run.n);
done:
    for (int i = 0; run.slots != NULL && i < run.n_slots; i++) {
        if (run.slots[i].conn != NULL)
            evhttp_connection_free(run.slots[i].conn);
        if (run.slots[i].next_ev != NULL)
            event_free(run.slots[i].next_ev);
    }
    free(run.slots);
    if (run.base != NULL)
        event_base_free(run.base);
    return status;
}

void ct_http_reqs_free(ct_http_req *reqs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(reqs[i].resp);
        reqs[i].resp = NULL;
        reqs[i].resp_len = 0;
    }
}
