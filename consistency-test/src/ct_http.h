/* ct_http.h - a bounded, concurrent HTTP client on one libevent loop.
 *
 * The load driver of the scenarios: up to `concurrency` evhttp connections
 * each carry one request at a time (kept alive and reused, re-opened after a
 * failure), all on one loop, so a burst reaches the orchestrator truly at
 * once. A request is never retried (a grab is not idempotent without its
 * key): a failure is recorded as a transport error (status 0) for the
 * scenario to resolve later. The call blocks until every request has ended. */
#ifndef CT_HTTP_H
#define CT_HTTP_H

#include <stddef.h>

#include "status.h"

#define CT_HTTP_BODY_MAX (64 * 1024)   /* longest answer kept */

enum ct_http_method {
    CT_HTTP_GET = 0,
    CT_HTTP_POST = 1
};

typedef struct ct_http_req {
    /* in */
    enum ct_http_method method;
    char path[160];
    const char *body;             /* JSON, not owned; NULL: none */
    char idem_key[80];            /* Idempotency-Key header; "" for none */
    /* out */
    int status;                   /* HTTP status, 0 on a transport error */
    char *resp;                   /* answer body, NUL-terminated (ct_http_reqs_free) */
    size_t resp_len;
    char error[64];               /* the transport error, when status is 0 */
    long long sent_ms, done_ms;   /* monotonic */
} ct_http_req;

/* Called on the loop between requests, after each completion, with the
 * number done so far; it may block (the orchestrator-kill scenario kills
 * and restarts the server from here). */
typedef void (*ct_http_progress_cb)(size_t done, size_t total, void *arg);

typedef struct ct_http_opts {
    const char *host;
    int port;
    int concurrency;
    long long timeout_ms;         /* per request, from send to full answer */
    ct_http_progress_cb progress; /* may be NULL */
    void *progress_arg;
} ct_http_opts;

/* Runs every request; CG_OK once all have ended (each with its own status). */
int ct_http_run(const ct_http_opts *opts, ct_http_req *reqs, size_t n, cg_error *err) CG_MUSTCHECK;

/* Frees the answers (not the array). */
void ct_http_reqs_free(ct_http_req *reqs, size_t n);

long long ct_now_ms(void);

#endif
