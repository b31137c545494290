/* ord_http.c - the query API's server side; see ord_http.h.
 *
 * One request: parse (400/404/405 at once) -> plan -> an async scatter on
 * the next pool (round robin) -> its callback, on the loop, answers 200 with
 * the JSON of ord_read.c, partial or not. The request's context lives on a
 * list so that shutdown can cancel the scatters still out. */
#include "ord_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "httpj.h"
#include "log.h"
#include "ord_read.h"
#include "sr_query.h"

#define ORD_HTTP_POOLS_MAX 16

typedef struct ord_read_ctx {
    struct ord_read_ctx *prev, *next;
    ord_http *h;
    struct evhttp_request *req;
    sr_handle *scatter;
    ordq q;
    ordq_plan plan;
} ord_read_ctx;

struct ord_http {
    const ord_conf *conf;
    const sr_map *map;
    struct event_base *base;
    struct evhttp *http;
    sr_pool *pools[ORD_HTTP_POOLS_MAX];
    int n_pools, next_pool;
    char addr[SR_MAX_SHARDS][256];      /* "host:port/db" per shard, for the status */
    const char *addr_ptr[SR_MAX_SHARDS];
    ord_read_ctx *reads;                /* in flight */
    ord_http_stats stats;
};

static long long ord_http_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ord_read_unlink(ord_http *h, ord_read_ctx *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        h->reads = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    h->stats.inflight--;
}

static void ord_http_error(ord_http *h, struct evhttp_request *req, int code, const char *error,
                           const char *field, const char *message)
{
    if (code == 503)
        h->stats.overloaded++;
    else if (code >= 400 && code < 500)
        h->stats.refused++;
    h->stats.requests++;
    if (code == 405)
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
    httpj_error(req, code, error, field, message);
}

static void ord_on_scatter(int status, sr_result *res, const cg_error *err, void *arg)
{
    ord_read_ctx *c = arg;
    ord_http *h = c->h;
    json_t *answer;

    ord_read_unlink(h, c);
    if (status != CG_OK) {
        log_warn("-", "read %s failed: %s", ordq_kind_name(c->q.kind),
                 err != NULL ? err->msg : cg_status_name(status));
        ord_http_error(h, c->req, 500, "internal", NULL, "the shards' answer was unusable");
        goto done;
    }
    answer = ordq_answer(&c->q, h->map, &c->plan, res, h->addr_ptr);
    if (res->partial) {
        h->stats.partial++;
        log_warn("-", "read %s answered partial: %s", ordq_kind_name(c->q.kind), res->error);
    }
    h->stats.requests++;
    httpj_reply(c->req, answer != NULL ? 200 : 500, answer);

done:
    free(c);
}

static void ord_on_request(struct evhttp_request *req, void *arg)
{
    ord_http *h = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    ord_read_ctx *c = NULL;
    ordq_refusal why;
    cg_error err = {0, ""};

    if (h->stats.inflight >= h->conf->query_inflight_max) {
        ord_http_error(h, req, 503, "overloaded", NULL, "too many reads in flight");
        goto done;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        ord_http_error(h, req, 503, "overloaded", NULL, "out of memory");
        goto done;
    }
    if (ordq_parse(evhttp_request_get_command(req) == EVHTTP_REQ_GET,
                   uri != NULL ? evhttp_uri_get_path(uri) : NULL,
                   uri != NULL ? evhttp_uri_get_query(uri) : NULL, ord_http_wall_ms(), &c->q,
                   &why) != CG_OK) {
        ord_http_error(h, req, why.code,
                       why.code == 400   ? "bad_request"
                       : why.code == 405 ? "method_not_allowed"
                                         : "not_found",
                       why.field, why.message);
        goto done;
    }
    if (ordq_plan_build(&c->q, h->map, (int)h->conf->query_timeout_ms, &c->plan, &err) !=
        CG_OK) {
        ord_http_error(h, req, 500, "internal", NULL, err.msg);
        goto done;
    }
    c->h = h;
    c->req = req;
    if (sr_scatter_start(h->pools[h->next_pool], h->base, &c->plan.req, ord_on_scatter, c,
                         &c->scatter, &err) != CG_OK) {
        ord_http_error(h, req, 503, "overloaded", NULL, err.msg);
        goto done;
    }
    h->next_pool = (h->next_pool + 1) % h->n_pools;
    c->next = h->reads;
    if (h->reads != NULL)
        h->reads->prev = c;
    h->reads = c;
    h->stats.inflight++;
    c = NULL;

done:
    free(c);
}

int ord_http_new(struct event_base *base, const ord_conf *conf, const sr_map *map,
                 ord_http **out, cg_error *err)
{
    ord_http *h = calloc(1, sizeof(*h));
    db_config shards[SR_MAX_SHARDS];
    char bufs[SR_MAX_SHARDS][256];
    int rc;

    *out = NULL;
    if (h == NULL)
        return cg_error_set(err, CG_ERR_NOMEM, "out of memory");
    h->conf = conf;
    h->map = map;
    h->base = base;
    for (int s = 0; s < map->n_shards; s++) {
        rc = svc_conf_shard_db(&conf->svc, s, &shards[s], bufs[s], sizeof(bufs[s]), err);
        if (rc != CG_OK)
            goto err;
        snprintf(h->addr[s], sizeof(h->addr[s]), "%s:%d/%s", shards[s].host, shards[s].port,
                 shards[s].database != NULL ? shards[s].database : "");
        h->addr_ptr[s] = h->addr[s];
    }
    h->n_pools = (int)conf->query_pools;
    for (int p = 0; p < h->n_pools; p++) {
        rc = sr_pool_new(shards, map->n_shards, &h->pools[p], err);
        if (rc != CG_OK)
            goto err;
    }
    h->http = evhttp_new(base);
    if (h->http == NULL) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "evhttp_new failed");
        goto err;
    }
    evhttp_set_max_body_size(h->http, 4096);   /* queries are GETs */
    evhttp_set_max_headers_size(h->http, 16384);
    evhttp_set_timeout(h->http, 60);
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_gencb(h->http, ord_on_request, h);
    if (evhttp_bind_socket_with_handle(h->http, conf->query_bind, (ev_uint16_t)conf->query_port) ==
        NULL) {
        rc = cg_error_set(err, CG_ERR_IO, "cannot listen on %s:%lld", conf->query_bind,
                          conf->query_port);
        goto err;
    }
    log_info("-", "query API on %s:%lld: %d pools x %d shards, timeout %lld ms, at most %lld "
             "in flight", conf->query_bind, conf->query_port, h->n_pools, map->n_shards,
             conf->query_timeout_ms, conf->query_inflight_max);
    *out = h;
    return CG_OK;

err:
    ord_http_free(h);
    return rc;
}

void ord_http_free(ord_http *h)
{
    if (h == NULL)
        return;
    while (h->reads != NULL) {
        ord_read_ctx *c = h->reads;

        sr_scatter_cancel(c->scatter);
        ord_read_unlink(h, c);
        free(c);
    }
    /* Frees the connections and with them the requests never answered. */
    if (h->http != NULL)
        evhttp_free(h->http);
    for (int p = 0; p < h->n_pools; p++)
        sr_pool_free(h->pools[p]);
    free(h);
}

void ord_http_get_stats(const ord_http *h, ord_http_stats *out)
{
    *out = h->stats;
}
