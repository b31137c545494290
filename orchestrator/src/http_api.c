/* http_api.c - the HTTP front; see http_api.h and docs/saga.md "HTTP".
 *
 * A grab goes: size and body checks, readiness and admission, the coupon's
 * room (memory, else Redis), the local sold-out flag (unkeyed requests
 * only), then a saga, on which the request waits as a `waiter` until the
 * outcome is decided or http_deadline_ms passes (202). The saga's first log
 * write binds the Idempotency-Key too; a repeated key makes the engine drop
 * the new saga unlogged and the waiter follows the earlier one. Every path
 * ends in exactly one reply: the Redis callbacks answer on errors too (also
 * when the client is freed at shutdown), and the waiter list is answered
 * before the server goes away. evhttp keeps a request whose client hung up
 * until we reply (it detaches it from the connection and frees it in
 * evhttp_send_reply), so holding the pointer until the deadline is safe. */
#include "http_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "admin.h"
#include "admin_stats.h"
#include "engine.h"
#include "http_req.h"
#include "httpj.h"
#include "http_route.h"
#include "keys.h"
#include "log.h"
#include "read_api.h"
#include "saga_log.h"

#define REMOTE_POLL_MS 50          /* how often a remote waiter reads the log */
#define IDEM_HEADER "Idempotency-Key"

_Static_assert(SAGA_IDEM_MAX >= REQ_IDEM_KEY_MAX, "a saga holds the whole Idempotency-Key");

/* ---- replies ------------------------------------------------------------------ */

static void reply_unavailable(struct evhttp_request *req, const char *why)
{
    httpj_error(req, 503, "unavailable", NULL, why);
}

/* The answer of a grab whose outcome is known. saga_id NULL: decided
 * without a saga (unknown coupon, local sold-out flag). */
static json_t *grab_answer(int granted, const char *saga_id, long long user_id, long long coupon_id,
                           long long room_id, const char *reason)
{
    json_t *j = json_pack("{s:i, s:o, s:I, s:I, s:o}", "grab_status", granted ? 1 : 0, "saga_id",
                          saga_id ? json_string(saga_id) : json_null(), "user_id",
                          (json_int_t)user_id, "coupon_id", (json_int_t)coupon_id, "room_id",
                          room_id > 0 ? json_integer(room_id) : json_null());

    if (j != NULL && !granted)
        json_object_set_new(j, "fail_reason", json_string(reason && reason[0] ? reason : "unknown"));
    return j;
}

static json_t *pending_answer(const char *saga_id)
{
    return json_pack("{s:s, s:s}", "saga_id", saga_id, "status", "pending");
}

/* 422: the Idempotency-Key names a grab of another user or coupon. */
static json_t *key_reused_answer(const char *saga_id)
{
    return json_pack("{s:s, s:s, s:s}", "error", "idempotency_key_reused", "saga_id", saga_id,
                     "message", "the key belongs to a grab of another user or coupon");
}

/* ---- waiters -------------------------------------------------------------------- */

static void waiter_unlink(orch *o, waiter *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else if (o->wait_head == w)
        o->wait_head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else if (o->wait_tail == w)
        o->wait_tail = w->prev;
    w->prev = w->next = NULL;
    o->n_waiters--;
    if (w->remote) {
        if (w->rprev != NULL)
            w->rprev->rnext = w->rnext;
        else if (o->remote_head == w)
            o->remote_head = w->rnext;
        if (w->rnext != NULL)
            w->rnext->rprev = w->rprev;
        w->rprev = w->rnext = NULL;
        w->remote = 0;
    }
    if (w->saga != NULL) {
        waiter **pp = &w->saga->waiters;

        while (*pp != NULL && *pp != w)
            pp = &(*pp)->snext;
        if (*pp == w)
            *pp = w->snext;
        w->saga = NULL;
    }
}

/* Sends the one reply of a waiting request and forgets the request. */
static void waiter_answer(waiter *w, int code, json_t *body)
{
    orch *o = w->o;

    waiter_unlink(o, w);
    httpj_reply(w->req, code, body);
    w->req = NULL;
    w->answered = 1;
    if (!w->poll_inflight)
        free(w);
}

static waiter *waiter_new(orch *o, struct evhttp_request *req, const char *saga_id,
                          long long deadline_ms, long long user_id, long long coupon_id)
{
    waiter *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return NULL;
    w->o = o;
    w->req = req;
    memcpy(w->saga_id, saga_id, MSG_SAGA_ID_LEN + 1);
    w->deadline_ms = deadline_ms;
    w->user_id = user_id;
    w->coupon_id = coupon_id;
    /* Deadlines are arrival + a constant, so a new waiter almost always goes
     * last; one that waited on Redis first may have to step back a little. */
    w->prev = o->wait_tail;
    while (w->prev != NULL && w->prev->deadline_ms > deadline_ms)
        w->prev = w->prev->prev;
    w->next = w->prev != NULL ? w->prev->next : o->wait_head;
    if (w->prev != NULL)
        w->prev->next = w;
    else
        o->wait_head = w;
    if (w->next != NULL)
        w->next->prev = w;
    else
        o->wait_tail = w;
    o->n_waiters++;
    return w;
}

static void waiter_make_remote(orch *o, waiter *w)
{
    if (w->remote)
        return;
    w->remote = 1;
    w->saga = NULL;
    w->next_poll_ms = orch_now_ms();
    w->rprev = NULL;
    w->rnext = o->remote_head;
    if (o->remote_head != NULL)
        o->remote_head->rprev = w;
    o->remote_head = w;
}

void http_saga_decided(orch *o, saga *s)
{
    waiter *w;
    int outcome = saga_state_outcome(s->state);

    (void)o;
    while ((w = s->waiters) != NULL) {
        waiter_answer(w, 200, grab_answer(outcome == 1, s->id, s->user_id, s->coupon_id,
                                          s->room_id, s->reason));
    }
}

void http_saga_detach(orch *o, saga *s)
{
    waiter *w;

    while ((w = s->waiters) != NULL) {
        s->waiters = w->snext;
        w->snext = NULL;
        w->saga = NULL;
        waiter_make_remote(o, w);
    }
}

/* A waiter of a repeated Idempotency-Key follows the saga w->saga_id: from
 * memory when this instance runs it, else through the log (remote). */
static void waiter_follow(orch *o, waiter *w)
{
    saga *s = saga_table_find(&o->sagas, w->saga_id);
    int outcome = s != NULL && !s->log_new ? saga_state_outcome(s->state) : -1;

    log_debug(w->saga_id, "Idempotency-Key repeated: following the saga");
    if (s != NULL && (s->user_id != w->user_id || s->coupon_id != w->coupon_id))
        waiter_answer(w, 422, key_reused_answer(w->saga_id));
    else if (outcome >= 0)
        waiter_answer(w, 200, grab_answer(outcome, s->id, s->user_id, s->coupon_id, s->room_id,
                                          s->reason));
    else if (s != NULL)
        engine_attach_waiter(s, w);
    else
        waiter_make_remote(o, w);
}

void http_saga_rebound(orch *o, saga *s, const char *bound)
{
    waiter *w;

    while ((w = s->waiters) != NULL) {
        s->waiters = w->snext;
        w->snext = NULL;
        w->saga = NULL;
        memcpy(w->saga_id, bound, MSG_SAGA_ID_LEN + 1);
        waiter_follow(o, w);
    }
}

static void on_poll(int status, int found, int mine, const saga_record *rec, void *arg)
{
    waiter *w = arg;
    int outcome;

    (void)mine;
    w->poll_inflight = 0;
    if (w->answered) {
        free(w);
        return;
    }
    w->next_poll_ms = orch_now_ms() + REMOTE_POLL_MS;
    if (status != CG_OK || !found)
        return;   /* not logged yet, or Redis is away: ask again until the deadline */
    if (rec->user_id != w->user_id || rec->coupon_id != w->coupon_id) {
        waiter_answer(w, 422, key_reused_answer(w->saga_id));
        return;
    }
    outcome = saga_state_outcome(rec->state);
    if (outcome >= 0)
        waiter_answer(w, 200, grab_answer(outcome, rec->id, rec->user_id, rec->coupon_id,
                                          rec->room_id, rec->reason));
}

void http_api_tick(orch *o, long long now_ms)
{
    waiter *w, *next;

    while ((w = o->wait_head) != NULL && w->deadline_ms <= now_ms) {
        o->stats.answered_202++;
        log_debug(w->saga_id, "deadline: answering 202");
        waiter_answer(w, 202, pending_answer(w->saga_id));
    }
    for (w = o->remote_head; w != NULL; w = next) {
        next = w->rnext;
        if (w->poll_inflight || w->next_poll_ms > now_ms)
            continue;
        if (saga_log_load(o->rds, o->conf.instance_id, w->saga_id, on_poll, w) == CG_OK)
            w->poll_inflight = 1;
        else
            w->next_poll_ms = now_ms + REMOTE_POLL_MS;
    }
}

void http_api_answer_all(orch *o)
{
    waiter *w;

    while ((w = o->wait_head) != NULL)
        waiter_answer(w, 202, pending_answer(w->saga_id));
}

/* ---- the grab ------------------------------------------------------------------- */

typedef struct grab_ctx {
    orch *o;
    struct evhttp_request *req;
    grab_req g;
    long long room_id;                   /* the coupon's room */
    char idem[REQ_IDEM_KEY_MAX + 1];     /* "" when no Idempotency-Key */
    char saga_id[MSG_SAGA_ID_LEN + 1];   /* the id to start (a repeated key follows another) */
    long long t0_ms;                     /* arrival; the deadline counts from here */
} grab_ctx;

static void grab_done(grab_ctx *g)
{
    free(g);
}

static void grab_start(grab_ctx *g)
{
    orch *o = g->o;
    waiter *w;
    int rc;

    if (!orch_ready(o) || o->stopping) {
        reply_unavailable(g->req, o->stopping ? "shutting down" : "not ready");
        return;
    }
    if (o->sagas.count >= (size_t)o->conf.max_inflight_sagas) {
        reply_unavailable(g->req, "too many sagas in flight");
        return;
    }
    w = waiter_new(o, g->req, g->saga_id, g->t0_ms + o->conf.http_deadline_ms, g->g.user_id,
                   g->g.coupon_id);
    if (w == NULL) {
        reply_unavailable(g->req, "out of memory");
        return;
    }
    /* A key is bound by the STARTED write itself (saga_log.c): a repeat
     * finds it there and follows the earlier saga (http_saga_rebound). */
    rc = engine_start(o, g->saga_id, g->idem, g->g.user_id, g->g.coupon_id, g->room_id, w);
    if (rc != CG_OK) {
        log_warn(g->saga_id, "cannot start the saga: %s", cg_status_name(rc));
        waiter_answer(w, 503, json_pack("{s:s, s:s}", "error", "unavailable", "message",
                                        "the saga log is not reachable"));
    }
}

/* The coupon's room is known: check it, then the sold-out flag, then start. */
static void grab_with_room(grab_ctx *g)
{
    orch *o = g->o;
    char msg[128];

    if (g->g.room_id != 0 && g->g.room_id != g->room_id) {
        snprintf(msg, sizeof(msg), "coupon %lld belongs to room %lld", g->g.coupon_id, g->room_id);
        httpj_error(g->req, 400, "bad_request", "room_id", msg);
        goto done;
    }
    /* Keyed requests skip the sold-out flag: their answer is the saga's. */
    if (g->idem[0] == '\0' && coupon_cache_sold_out(&o->coupons, g->g.coupon_id, orch_now_ms())) {
        o->stats.local_sold_out++;
        httpj_reply(g->req, 200, grab_answer(0, NULL, g->g.user_id, g->g.coupon_id, g->room_id,
                                                 MSG_REASON_OUT_OF_STOCK));
        goto done;
    }
    grab_start(g);
done:
    grab_done(g);
}

static void on_room(rds_client *c, int status, redisReply *r, void *arg)
{
    grab_ctx *g = arg;
    coupon_entry *e;
    char *end;
    long long room;

    (void)c;
    if (status != CG_OK || r == NULL || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)) {
        reply_unavailable(g->req, "Redis is not reachable");
        grab_done(g);
        return;
    }
    if (r->type == REDIS_REPLY_NIL) {
        /* Decided without a saga: there is nothing to reserve. */
        httpj_reply(g->req, 200, grab_answer(0, NULL, g->g.user_id, g->g.coupon_id, 0,
                                                 MSG_REASON_UNKNOWN_COUPON));
        grab_done(g);
        return;
    }
    room = strtoll(r->str, &end, 10);
    if (*end != '\0' || room <= 0) {
        log_error("-", "stock:{%lld}:room holds '%s'", g->g.coupon_id, r->str);
        reply_unavailable(g->req, "the coupon's room is malformed");
        grab_done(g);
        return;
    }
    if ((e = coupon_cache_get(&g->o->coupons, g->g.coupon_id)) != NULL)
        e->room_id = room;   /* immutable: cached for good */
    g->room_id = room;
    grab_with_room(g);
}

static void handle_grab(orch *o, struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *idem = evhttp_find_header(evhttp_request_get_input_headers(req), IDEM_HEADER);
    const coupon_entry *e;
    grab_ctx *g = NULL;
    jv_error err;
    char key[KEY_MAX];
    grab_req gr;

    if (len > (size_t)o->conf.body_limit) {
        httpj_error(req, 413, "payload_too_large", NULL, "request body exceeds body_limit");
        return;
    }
    if (len == 0) {
        httpj_error(req, 400, "bad_request", NULL, "the request body is empty");
        return;
    }
    memset(&err, 0, sizeof(err));
    if (grab_req_decode((const char *)evbuffer_pullup(in, -1), len, (size_t)o->conf.body_limit, &gr,
                        &err) != CG_OK) {
        httpj_error(req, 400, "bad_request", err.field, err.msg);
        return;
    }
    if (idem != NULL && !idem_key_valid(idem)) {
        httpj_error(req, 400, "bad_request", IDEM_HEADER,
                         "1..64 characters of A-Z a-z 0-9 . _ : -");
        return;
    }
    if (!orch_ready(o) || o->stopping) {
        reply_unavailable(req, o->stopping ? "shutting down" : "not ready");
        return;
    }
    if (!token_bucket_take(&o->bucket, orch_now_ms())) {
        httpj_error(req, 429, "rate_limited", NULL, "too many grabs; retry later");
        return;
    }
    if (o->sagas.count >= (size_t)o->conf.max_inflight_sagas) {
        reply_unavailable(req, "too many sagas in flight");
        return;
    }
    g = calloc(1, sizeof(*g));
    if (g == NULL || msg_saga_id_new(g->saga_id) != CG_OK) {
        free(g);
        reply_unavailable(req, "out of memory");
        return;
    }
    o->stats.grabs++;
    g->o = o;
    g->req = req;
    g->g = gr;
    g->t0_ms = orch_now_ms();
    if (idem != NULL)
        snprintf(g->idem, sizeof(g->idem), "%s", idem);
    e = coupon_cache_find(&o->coupons, gr.coupon_id);
    if (e != NULL && e->room_id > 0) {
        g->room_id = e->room_id;
        grab_with_room(g);
        return;
    }
    snprintf(key, sizeof(key), KEY_STOCK_ROOM_FMT, gr.coupon_id);
    if (rds_command(o->rds, on_room, g, "GET %s", key) != CG_OK) {
        reply_unavailable(req, "Redis is not reachable");
        grab_done(g);
    }
}

/* ---- GET /api/grab/{id} ----------------------------------------------------------- */

typedef struct status_ctx {
    orch *o;
    struct evhttp_request *req;
} status_ctx;

static json_t *status_json(const char *id, enum saga_state state, long long user_id,
                           long long coupon_id, long long room_id, long long grab_time,
                           const char *reason, const char *owner)
{
    int outcome = saga_state_outcome(state);
    json_t *j = json_pack("{s:s, s:s, s:o, s:I, s:I, s:I, s:I, s:s}", "saga_id", id, "state",
                          saga_state_name(state), "grab_status",
                          outcome >= 0 ? json_integer(outcome) : json_null(), "user_id",
                          (json_int_t)user_id, "coupon_id", (json_int_t)coupon_id, "room_id",
                          (json_int_t)room_id, "grab_time", (json_int_t)grab_time, "owner", owner);

    if (j != NULL && outcome == 0)
        json_object_set_new(j, "fail_reason", json_string(reason && reason[0] ? reason : "unknown"));
    return j;
}

static void on_status(int status, int found, int mine, const saga_record *rec, void *arg)
{
    status_ctx *sc = arg;

    (void)mine;
    if (status != CG_OK)
        reply_unavailable(sc->req, "the saga log is not reachable");
    else if (!found)
        httpj_error(sc->req, 404, "not_found", NULL, "no such saga");
    else
        httpj_reply(sc->req, 200, status_json(rec->id, rec->state, rec->user_id, rec->coupon_id,
                                                  rec->room_id, rec->grab_time, rec->reason,
                                                  rec->owner));
    free(sc);
}

static void handle_status(orch *o, struct evhttp_request *req, const char *id)
{
    saga *s = saga_table_find(&o->sagas, id);
    status_ctx *sc;

    if (s != NULL) {
        /* memory holds what the log holds (plus a write in flight) */
        httpj_reply(req, 200, status_json(s->id, s->state, s->user_id, s->coupon_id, s->room_id,
                                              s->grab_time, s->reason, o->conf.instance_id));
        return;
    }
    sc = malloc(sizeof(*sc));
    if (sc == NULL) {
        reply_unavailable(req, "out of memory");
        return;
    }
    sc->o = o;
    sc->req = req;
    if (o->rds == NULL || saga_log_load(o->rds, o->conf.instance_id, id, on_status, sc) != CG_OK) {
        free(sc);
        reply_unavailable(req, "the saga log is not reachable");
    }
}

/* ---- health ----------------------------------------------------------------------- */

static void handle_readyz(orch *o, struct evhttp_request *req)
{
    json_t *missing = json_array();

    if (!rds_client_is_up(o->rds))
        json_array_append_new(missing, json_string("redis"));
    if (!mq_client_is_up(o->mq))
        json_array_append_new(missing, json_string("broker"));
    if (o->recovery != RECOVERY_DONE)
        json_array_append_new(missing, json_string("recovery"));
    if (o->stopping)
        json_array_append_new(missing, json_string("shutting_down"));
    if (json_array_size(missing) == 0) {
        json_decref(missing);
        httpj_reply(req, 200, json_pack("{s:s, s:s, s:I}", "status", "ready", "instance",
                                            o->conf.instance_id, "sagas",
                                            (json_int_t)o->sagas.count));
    } else {
        httpj_reply(req, 503, json_pack("{s:s, s:o}", "status", "not_ready", "missing", missing));
    }
}

/* ---- dispatch ----------------------------------------------------------------------- */

static void on_request(struct evhttp_request *req, void *arg)
{
    orch *o = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    enum http_method m = cmd == EVHTTP_REQ_GET ? HTTP_M_GET
                       : cmd == EVHTTP_REQ_POST ? HTTP_M_POST
                                                : HTTP_M_OTHER;
    route_match rm;

    switch (http_route_match(m, path, &rm)) {
    case ROUTE_NOT_FOUND:
        httpj_error(req, 404, "not_found", NULL, "no such endpoint");
        return;
    case ROUTE_BAD_METHOD: {
        char allowed[96];

        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", rm.allow);
        snprintf(allowed, sizeof(allowed), "allowed: %s", rm.allow);
        httpj_error(req, 405, "method_not_allowed", NULL, allowed);
        return;
    }
    case ROUTE_BAD_PARAM:
        httpj_error(req, 400, "bad_request", rm.bad_field,
                    rm.route == ROUTE_GRAB_STATUS
                        ? "expected 32 lower-case hex digits"
                        : "expected an integer id in 1..9000000000000000000");
        return;
    case ROUTE_OK:
        break;
    }
    switch (rm.route) {
    case ROUTE_GRAB:
        handle_grab(o, req);
        break;
    case ROUTE_GRAB_STATUS:
        handle_status(o, req, rm.saga_id);
        break;
    case ROUTE_ADMIN_COUPONS:
        admin_handle_coupon(o, req);
        break;
    case ROUTE_HEALTHZ:
        httpj_reply(req, 200, json_pack("{s:s}", "status", "ok"));
        break;
    case ROUTE_READYZ:
        handle_readyz(o, req);
        break;
    case ROUTE_ADMIN_STATS:
        admin_stats_handle(o, req);
        break;
    case ROUTE_METRICS:
        admin_metrics_handle(o, req);
        break;
    case ROUTE_USER_COUPONS:
    case ROUTE_COUPON_STOCK:
    case ROUTE_ROOM_STATS:
    case ROUTE_ROOM_ORDERS:
    case ROUTE_RECENT_ORDERS:
    case ROUTE_GLOBAL_STATS:
    case ROUTE_SHARDS_STATUS:
        read_api_handle(o, req, &rm);
        break;
    default:
        log_error("-", "route %d has no handler", (int)rm.route);
        abort();
    }
}

int http_api_start(orch *o, cg_error *err)
{
    long long evhttp_body_max = o->conf.body_limit * 4;

    o->http = evhttp_new(o->base);
    if (o->http == NULL)
        return cg_error_set(err, CG_ERR_NOMEM, "evhttp_new failed");
    /* Bodies a little over body_limit still reach the handler for a JSON 413;
     * evhttp itself refuses (with its own 413) anything past 4x. */
    evhttp_set_max_body_size(o->http, evhttp_body_max);
    evhttp_set_max_headers_size(o->http, 16384);
    evhttp_set_timeout(o->http, (int)o->conf.http_idle_timeout_s);
    evhttp_set_allowed_methods(o->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(o->http, on_request, o);
    if (evhttp_bind_socket_with_handle(o->http, o->conf.http_bind, (ev_uint16_t)o->conf.http_port) == NULL)
        return cg_error_set(err, CG_ERR_IO, "cannot listen on %s:%lld", o->conf.http_bind,
                            o->conf.http_port);
    return CG_OK;
}
