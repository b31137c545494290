/* admin_stats.c - /admin/stats and /metrics; see admin_stats.h.
 *
 * /admin/stats gathers two remote parts at once (the stock totals from
 * Redis, the queue depths from the broker) and answers when both are back,
 * each part null with an error string when its server did not answer: an
 * operator looks at this page precisely when something is down. /metrics
 * only reads memory, so a scrape never waits on a server. */
#include "admin_stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>

#include "httpj.h"
#include "log.h"
#include "msg.h"
#include "oq_client.h"
#include "read_api.h"

typedef struct stats_ctx {
    orch *o;
    struct evhttp_request *req;
    int pending;
    json_t *stock;            /* NULL: not answered */
    json_t *queues;
    char stock_error[64], queue_error[64];
} stats_ctx;

/* ---- rates ------------------------------------------------------------------------- */

void admin_stats_tick(orch *o, long long now_ms)
{
    orch_rates *r = &o->rates;
    long long s = now_ms / 1000;

    if (r->filled > 0 && s == r->last_s)
        return;
    /* A stalled loop skips seconds: the samples taken stay one per tick
     * second, and the rate divides by the seconds really covered. */
    r->pos = r->filled == 0 ? 0 : (r->pos + 1) % ORCH_RATE_SLOTS;
    r->grabs[r->pos] = o->stats.grabs;
    r->completed[r->pos] = o->stats.completed;
    r->compensated[r->pos] = o->stats.compensated;
    if (r->filled < ORCH_RATE_SLOTS)
        r->filled++;
    r->last_s = s;
}

/* Per second over the last `secs` samples (fewer when not yet taken). */
static double rate_over(const orch_rates *r, const unsigned long long *v, int secs)
{
    int back = secs < r->filled - 1 ? secs : r->filled - 1;
    int from = (r->pos - back + ORCH_RATE_SLOTS) % ORCH_RATE_SLOTS;

    return back > 0 ? (double)(v[r->pos] - v[from]) / back : 0.0;
}

static json_t *rates_json(const orch_rates *r, const unsigned long long *v)
{
    return json_pack("{s:f, s:f, s:f}", "1s", rate_over(r, v, 1), "10s", rate_over(r, v, 10),
                     "60s", rate_over(r, v, 60));
}

/* ---- sagas in memory ----------------------------------------------------------------- */

static void count_sagas(const orch *o, size_t *by_state, size_t *by_step)
{
    for (size_t b = 0; b < o->sagas.n_buckets; b++) {
        for (const saga *s = o->sagas.buckets[b]; s != NULL; s = s->hnext) {
            by_state[s->state]++;
            by_step[s->step]++;
        }
    }
}

static json_t *sagas_json(const orch *o)
{
    size_t by_state[SAGA_STATE_MAX] = {0}, by_step[SAGA_STEP_MAX] = {0};
    json_t *states = json_object(), *steps = json_object();

    count_sagas(o, by_state, by_step);
    for (int i = 0; i < SAGA_STATE_MAX; i++)
        json_object_set_new(states, saga_state_name(i), json_integer((json_int_t)by_state[i]));
    for (int i = 0; i < SAGA_STEP_MAX; i++)
        json_object_set_new(steps, saga_step_name(i), json_integer((json_int_t)by_step[i]));
    return json_pack("{s:I, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I}",
                     "in_memory", (json_int_t)o->sagas.count, "by_state", states, "by_step", steps,
                     "started_total", (json_int_t)o->stats.started,
                     "completed_total", (json_int_t)o->stats.completed,
                     "compensated_total", (json_int_t)o->stats.compensated,
                     "recovered_total", (json_int_t)o->stats.recovered,
                     "adopted_total", (json_int_t)o->stats.adopted,
                     "step_timeouts_total", (json_int_t)o->stats.step_timeouts);
}

static json_t *reads_json(const orch *o)
{
    json_t *by_route = json_object();

    for (int r = 0; r < ROUTE_MAX; r++) {
        if (o->reads.requests[r] > 0)
            json_object_set_new(by_route, http_route_name(r),
                                json_integer((json_int_t)o->reads.requests[r]));
    }
    return json_pack("{s:o, s:I, s:I, s:i}", "requests", by_route, "errors_total",
                     (json_int_t)o->reads.errors, "partial_total", (json_int_t)o->reads.partial,
                     "inflight", o->reads.inflight);
}

static void stats_answer(stats_ctx *c)
{
    orch *o = c->o;
    json_t *out = json_pack(
        "{s:s, s:b, s:o, s:{s:I, s:I, s:I, s:I, s:I}, s:{s:o, s:o, s:o}, s:o}",
        "instance", o->conf.instance_id, "ready", orch_ready(o), "sagas", sagas_json(o),
        "grabs", "accepted_total", (json_int_t)o->stats.grabs, "local_sold_out_total",
        (json_int_t)o->stats.local_sold_out, "answered_202_total",
        (json_int_t)o->stats.answered_202, "waiting", (json_int_t)o->n_waiters, "batches_total",
        (json_int_t)o->stats.batches,
        "rates_per_s", "grabs", rates_json(&o->rates, o->rates.grabs), "completed",
        rates_json(&o->rates, o->rates.completed), "compensated",
        rates_json(&o->rates, o->rates.compensated),
        "reads", reads_json(o));

    if (out == NULL) {
        httpj_error(c->req, 500, "internal", NULL, "out of memory");
        goto done;
    }
    json_object_set_new(out, "stock", c->stock != NULL ? json_incref(c->stock) : json_null());
    if (c->stock == NULL)
        json_object_set_new(out, "stock_error", json_string(c->stock_error));
    json_object_set_new(out, "queues", c->queues != NULL ? json_incref(c->queues) : json_null());
    if (c->queues == NULL)
        json_object_set_new(out, "queues_error", json_string(c->queue_error));
    json_object_set_new(out, "redis_master", json_string(o->rds != NULL ? rds_master_addr(o->rds)
                                                                        : ""));
    httpj_reply(c->req, 200, out);

done:
    json_decref(c->stock);
    json_decref(c->queues);
    free(c);
}

static void stats_part_done(stats_ctx *c)
{
    if (--c->pending == 0)
        stats_answer(c);
}

static void on_stock_totals(orch *o, int status, void *json, void *arg)
{
    stats_ctx *c = arg;

    (void)o;
    c->stock = json;
    if (json == NULL)
        snprintf(c->stock_error, sizeof(c->stock_error), "Redis: %s", cg_status_name(status));
    stats_part_done(c);
}

static void on_queue_stats(mq_client *m, int status, const mq_queue_info *q, int n, void *arg)
{
    stats_ctx *c = arg;

    (void)m;
    if (status != CG_OK) {
        snprintf(c->queue_error, sizeof(c->queue_error), "broker: %s", cg_status_name(status));
    } else {
        c->queues = json_object();
        for (int i = 0; c->queues != NULL && i < n; i++) {
            json_object_set_new(c->queues, q[i].name,
                                q[i].status == CG_OK
                                    ? json_pack("{s:I, s:I}", "messages", (json_int_t)q[i].messages,
                                                "consumers", (json_int_t)q[i].consumers)
                                    : json_pack("{s:s}", "error", cg_status_name(q[i].status)));
        }
    }
    stats_part_done(c);
}

void admin_stats_handle(orch *o, struct evhttp_request *req)
{
    stats_ctx *c = calloc(1, sizeof(*c));
    const char *queues[] = {MSG_QUEUE_STOCK, MSG_QUEUE_ORDER, MSG_QUEUE_DEAD, o->reply_queue};
    int rc;

    o->reads.requests[ROUTE_ADMIN_STATS]++;
    if (!read_no_params(req)) {
        free(c);
        return;
    }
    if (c == NULL) {
        httpj_error(req, 503, "overloaded", NULL, "out of memory");
        return;
    }
    c->o = o;
    c->req = req;
    c->pending = 1;   /* held until both parts are asked */
    rc = read_stock_totals(o, on_stock_totals, c);
    if (rc == CG_OK)
        c->pending++;
    else
        snprintf(c->stock_error, sizeof(c->stock_error), "Redis: %s", cg_status_name(rc));
    rc = o->mq != NULL ? mq_queue_stats(o->mq, queues, 4, on_queue_stats, c) : CG_ERR_STATE;
    if (rc == CG_OK)
        c->pending++;
    else
        snprintf(c->queue_error, sizeof(c->queue_error), "broker: %s", cg_status_name(rc));
    stats_part_done(c);
}

/* ---- /metrics --------------------------------------------------------------------------- */

static void metric(struct evbuffer *b, const char *name, const char *type, const char *help,
                   unsigned long long v)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
                        v);
}

void admin_metrics_handle(orch *o, struct evhttp_request *req)
{
    struct evbuffer *b = evbuffer_new();
    size_t by_state[SAGA_STATE_MAX] = {0}, by_step[SAGA_STEP_MAX] = {0};
    rds_stats rs;
    mq_stats ms;
    oq_stats qs;

    o->reads.requests[ROUTE_METRICS]++;
    if (!read_no_params(req)) {
        if (b != NULL)
            evbuffer_free(b);
        return;
    }
    if (b == NULL) {
        httpj_error(req, 503, "overloaded", NULL, "out of memory");
        return;
    }
    count_sagas(o, by_state, by_step);
    metric(b, "grab_requests_total", "counter", "grab requests taken in", o->stats.grabs);
    metric(b, "grab_sagas_started_total", "counter", "sagas started here", o->stats.started);
    metric(b, "grab_sagas_completed_total", "counter", "sagas ended granted",
           o->stats.completed);
    metric(b, "grab_sagas_compensated_total", "counter", "sagas ended not granted",
           o->stats.compensated);
    metric(b, "grab_local_sold_out_total", "counter", "grabs answered by the sold-out flag",
           o->stats.local_sold_out);
    metric(b, "grab_answered_202_total", "counter", "grabs answered pending at the deadline",
           o->stats.answered_202);
    metric(b, "grab_step_timeouts_total", "counter", "saga steps re-sent after a timeout",
           o->stats.step_timeouts);
    metric(b, "grab_sagas_recovered_total", "counter", "sagas resumed from the log",
           o->stats.recovered + o->stats.adopted);
    metric(b, "grab_command_batches_total", "counter", "command messages published",
           o->stats.batches);
    evbuffer_add_printf(b, "# HELP grab_sagas_in_memory sagas held by this instance\n"
                           "# TYPE grab_sagas_in_memory gauge\n");
    for (int i = 0; i < SAGA_STATE_MAX; i++)
        evbuffer_add_printf(b, "grab_sagas_in_memory{state=\"%s\"} %zu\n", saga_state_name(i),
                            by_state[i]);
    metric(b, "grab_waiting_requests", "gauge", "HTTP grabs waiting for their outcome",
           o->n_waiters);
    evbuffer_add_printf(b, "# HELP grab_read_requests_total read requests by endpoint\n"
                           "# TYPE grab_read_requests_total counter\n");
    for (int r = 0; r < ROUTE_MAX; r++) {
        if (o->reads.requests[r] > 0)
            evbuffer_add_printf(b, "grab_read_requests_total{endpoint=\"%s\"} %llu\n",
                                http_route_name(r), o->reads.requests[r]);
    }
    metric(b, "grab_read_errors_total", "counter", "5xx answers of read endpoints",
           o->reads.errors);
    metric(b, "grab_read_partial_total", "counter", "read answers missing a shard",
           o->reads.partial);
    if (o->rds != NULL) {
        rds_client_stats(o->rds, &rs);
        metric(b, "grab_redis_commands_total", "counter", "Redis commands sent", rs.commands);
        metric(b, "grab_redis_timeouts_total", "counter", "Redis commands timed out",
               rs.timeouts);
        metric(b, "grab_redis_failovers_total", "counter", "moves to another Redis master",
               rs.failovers);
        metric(b, "grab_redis_up", "gauge", "1 when a Redis master connection is ready",
               (unsigned long long)rds_client_is_up(o->rds));
    }
    if (o->mq != NULL) {
        mq_get_stats(o->mq, &ms);
        metric(b, "grab_broker_published_total", "counter", "messages published", ms.published);
        metric(b, "grab_broker_delivered_total", "counter", "messages delivered", ms.delivered);
        metric(b, "grab_broker_reconnects_total", "counter", "broker reconnects", ms.reconnects);
        metric(b, "grab_broker_up", "gauge", "1 when the broker connection is up",
               (unsigned long long)mq_client_is_up(o->mq));
    }
    if (o->oq != NULL) {
        oq_get_stats(o->oq, &qs);
        metric(b, "grab_order_queries_total", "counter", "reads sent to order-svc", qs.requests);
        metric(b, "grab_order_query_errors_total", "counter",
               "order-svc reads without an answer", qs.errors + qs.timeouts);
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}
