/* read_api.c - the read endpoints; see read_api.h and docs/read-api.md.
 *
 * A read is a read_ctx with one or two parts out at once (an order-svc
 * answer, a Redis chain); the last part to finish builds the answer, so
 * every read ends in exactly one reply whatever order the parts come back
 * in, and also when the clients are freed under it (their callbacks then
 * run with CG_ERR_STATE and the read answers 503 or partial). */
#include "read_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>

#include "httpj.h"
#include "httpq.h"
#include "keys.h"
#include "log.h"
#include "oq_client.h"
#include "rds.h"

#define READ_COUPONS_MAX 10000   /* coupons one stock read covers (a set larger is cut) */
#define READ_TOP_ROOMS 10        /* rooms listed by /api/statistics/global */
#define READ_BODY_MAX (4 << 20)  /* an order-svc answer larger than this is refused */

/* The stock of a set of coupons (a room's, or all), read in two steps:
 * SMEMBERS of the set, then one MGET of every coupon's remaining and total. */
typedef struct stock_set {
    size_t n;
    long long *ids;          /* rising */
    long long *remaining;    /* -1: key missing */
    long long *total;
    int truncated;           /* the set held more than READ_COUPONS_MAX */
} stock_set;

typedef struct read_ctx {
    orch *o;
    struct evhttp_request *req;         /* NULL for an internal read (stock totals) */
    enum http_route route;
    long long id;
    int pending;                        /* parts still out */
    /* order-svc's part */
    int oq_status, oq_code;
    json_t *orders;                     /* its decoded answer (room stats, global) */
    char oq_error[160];
    /* Redis's part */
    int rds_status;
    char set_key[KEY_MAX];
    stock_set stock;
    long long holders;                  /* coupon stock: SCARD of the holders */
    read_stock_totals_cb totals_cb;     /* internal read: whom to tell */
    void *totals_arg;
} read_ctx;

static void read_finish(read_ctx *c);

/* ---- helpers --------------------------------------------------------------------- */

static long long reply_ll(const redisReply *r)
{
    char *end;
    long long v;

    if (r == NULL || r->type != REDIS_REPLY_STRING || r->len == 0)
        return r != NULL && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    v = strtoll(r->str, &end, 10);
    return *end == '\0' ? v : -1;
}

static const char *stock_source(const orch *o)
{
    return o->rds_read != NULL && rds_server_role(o->rds_read) == RDS_ROLE_REPLICA ? "replica"
                                                                                   : "master";
}

static void read_ctx_free(read_ctx *c)
{
    json_decref(c->orders);
    free(c->stock.ids);
    free(c->stock.remaining);
    free(c->stock.total);
    free(c);
}

static read_ctx *read_ctx_new(orch *o, struct evhttp_request *req, enum http_route route,
                              long long id)
{
    read_ctx *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->o = o;
    c->req = req;
    c->route = route;
    c->id = id;
    c->oq_status = CG_ERR_STATE;
    c->rds_status = CG_ERR_STATE;
    if (req != NULL)
        o->reads.inflight++;
    return c;
}

static void part_done(read_ctx *c)
{
    if (--c->pending == 0)
        read_finish(c);
}

static void reply(read_ctx *c, int code, json_t *body)
{
    if (code >= 500)
        c->o->reads.errors++;
    httpj_reply(c->req, code, body);
}

static void reply_error(read_ctx *c, int code, const char *error, const char *message)
{
    if (code >= 500)
        c->o->reads.errors++;
    httpj_error(c->req, code, error, NULL, message);
}

/* ---- order-svc's part --------------------------------------------------------------- */

/* Relayed answers go out as they came: status and JSON body. */
static void on_relay(int status, int code, struct evbuffer *body, void *arg)
{
    read_ctx *c = arg;
    struct evbuffer *out;

    c->o->reads.inflight--;
    if (status != CG_OK || code == 0) {
        reply_error(c, status == CG_ERR_TIMEOUT ? 504 : 503, "unavailable",
                    status == CG_ERR_TIMEOUT ? "order-svc did not answer in time"
                                             : "order-svc is not reachable");
        goto done;
    }
    if (evbuffer_search(body, "\"partial\":true", 14, NULL).pos >= 0)
        c->o->reads.partial++;
    if (code >= 500)
        c->o->reads.errors++;
    out = evbuffer_new();
    if (out == NULL) {
        reply_error(c, 503, "unavailable", "out of memory");
        goto done;
    }
    evbuffer_add_buffer(out, body);
    evhttp_add_header(evhttp_request_get_output_headers(c->req), "Content-Type",
                      "application/json");
    evhttp_send_reply(c->req, code, httpj_reason(code), out);
    evbuffer_free(out);

done:
    read_ctx_free(c);
}

/* A decoded part (room counts, totals). */
static void on_orders(int status, int code, struct evbuffer *body, void *arg)
{
    read_ctx *c = arg;
    size_t len = body != NULL ? evbuffer_get_length(body) : 0;
    json_error_t jerr;

    c->oq_status = status;
    c->oq_code = code;
    if (status != CG_OK) {
        snprintf(c->oq_error, sizeof(c->oq_error), "order-svc: %s", cg_status_name(status));
    } else if (code != 200 || len > READ_BODY_MAX) {
        snprintf(c->oq_error, sizeof(c->oq_error), "order-svc answered %d", code);
        c->oq_status = CG_ERR_PROTOCOL;
    } else {
        c->orders = json_loadb((const char *)evbuffer_pullup(body, -1), len, 0, &jerr);
        if (c->orders == NULL || !json_is_object(c->orders)) {
            snprintf(c->oq_error, sizeof(c->oq_error), "order-svc: unreadable answer");
            c->oq_status = CG_ERR_PROTOCOL;
        }
    }
    part_done(c);
}

static int ask_orders(read_ctx *c, const char *uri, oq_cb cb)
{
    int rc = c->o->oq != NULL ? oq_get(c->o->oq, uri, cb, c) : CG_ERR_STATE;

    if (rc != CG_OK)
        snprintf(c->oq_error, sizeof(c->oq_error), "order-svc: %s", cg_status_name(rc));
    return rc;
}

/* ---- Redis's part: a set of coupons and their stock ---------------------------------- */

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;

    return (x > y) - (x < y);
}

static void on_stock_mget(rds_client *rc, int status, redisReply *r, void *arg)
{
    read_ctx *c = arg;

    (void)rc;
    c->rds_status = status;
    if (status == CG_OK && (r->type != REDIS_REPLY_ARRAY || r->elements != 2 * c->stock.n))
        c->rds_status = CG_ERR_PROTOCOL;
    for (size_t i = 0; c->rds_status == CG_OK && i < c->stock.n; i++) {
        c->stock.remaining[i] = reply_ll(r->element[2 * i]);
        c->stock.total[i] = reply_ll(r->element[2 * i + 1]);
    }
    part_done(c);
}

static int stock_mget(read_ctx *c)
{
    size_t n = c->stock.n, argc = 1 + 2 * n;
    const char **argv = calloc(argc, sizeof(*argv));
    char *keys = calloc(2 * n, KEY_MAX);
    int rc = CG_ERR_NOMEM;

    if (argv == NULL || keys == NULL)
        goto done;
    argv[0] = "MGET";
    for (size_t i = 0; i < n; i++) {
        char *k1 = keys + 2 * i * KEY_MAX, *k2 = k1 + KEY_MAX;

        snprintf(k1, KEY_MAX, KEY_STOCK_FMT, c->stock.ids[i]);
        snprintf(k2, KEY_MAX, KEY_STOCK_TOTAL_FMT, c->stock.ids[i]);
        argv[1 + 2 * i] = k1;
        argv[2 + 2 * i] = k2;
    }
    /* hiredis copies the arguments into its output buffer at once. */
    rc = rds_command_argv(c->o->rds_read, on_stock_mget, c, (int)argc, argv, NULL);

done:
    free(argv);
    free(keys);
    return rc;
}

static void on_stock_members(rds_client *rc, int status, redisReply *r, void *arg)
{
    read_ctx *c = arg;
    size_t n;

    (void)rc;
    c->rds_status = status;
    if (status != CG_OK || r->type != REDIS_REPLY_ARRAY) {
        if (status == CG_OK)
            c->rds_status = CG_ERR_PROTOCOL;
        goto done;
    }
    n = r->elements < READ_COUPONS_MAX ? r->elements : READ_COUPONS_MAX;
    c->stock.truncated = r->elements > READ_COUPONS_MAX;
    if (n == 0)
        goto done;
    c->stock.ids = calloc(n, sizeof(long long));
    c->stock.remaining = calloc(n, sizeof(long long));
    c->stock.total = calloc(n, sizeof(long long));
    if (c->stock.ids == NULL || c->stock.remaining == NULL || c->stock.total == NULL) {
        c->rds_status = CG_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        long long id = reply_ll(r->element[i]);

        if (id > 0)
            c->stock.ids[c->stock.n++] = id;
    }
    qsort(c->stock.ids, c->stock.n, sizeof(long long), cmp_ll);
    if (c->stock.n == 0)
        goto done;
    c->rds_status = stock_mget(c);
    if (c->rds_status == CG_OK)
        return;   /* on_stock_mget finishes the part */

done:
    part_done(c);
}

static int ask_stock_set(read_ctx *c)
{
    int rc = c->o->rds_read != NULL
                 ? rds_command(c->o->rds_read, on_stock_members, c, "SMEMBERS %s", c->set_key)
                 : CG_ERR_STATE;

    c->rds_status = rc;
    return rc;
}

/* Sums of the set's stock into out. */
static void stock_sums(const stock_set *s, json_t *out)
{
    long long remaining = 0, total = 0;

    for (size_t i = 0; i < s->n; i++) {
        remaining += s->remaining[i] > 0 ? s->remaining[i] : 0;
        total += s->total[i] > 0 ? s->total[i] : 0;
    }
    json_object_set_new(out, "stock_total", json_integer(total));
    json_object_set_new(out, "stock_remaining", json_integer(remaining));
    json_object_set_new(out, "stock_taken", json_integer(total - remaining));
}

/* ---- answers ----------------------------------------------------------------------- */

/* The order part's sharding fields, copied into the answer. */
static void copy_shard_fields(read_ctx *c, json_t *out)
{
    static const char *const fields[] = {"strategy", "shards_asked", "missing_shards"};
    json_t *partial = c->orders != NULL ? json_object_get(c->orders, "partial") : NULL;

    for (size_t i = 0; c->orders != NULL && i < sizeof(fields) / sizeof(fields[0]); i++) {
        json_t *v = json_object_get(c->orders, fields[i]);

        if (v != NULL)
            json_object_set(out, fields[i], v);
    }
    if (c->oq_status != CG_OK) {
        json_object_set_new(out, "partial", json_true());
        json_object_set_new(out, "orders_error", json_string(c->oq_error));
    } else {
        json_object_set_new(out, "partial", json_boolean(json_is_true(partial)));
    }
    if (json_is_true(json_object_get(out, "partial")))
        c->o->reads.partial++;
}

/* One coupon of a room: its stock (NULLs when Redis has none) and orders
 * (NULL when order-svc did not answer). */
static json_t *room_coupon(long long id, const stock_set *st, size_t si, json_t *orders)
{
    int has_stock = si < st->n && st->ids[si] == id;
    /* a key missing (-1) is unknown, not a number */
    long long remaining = has_stock ? st->remaining[si] : -1;
    long long total = has_stock ? st->total[si] : -1;

    return json_pack("{s:I, s:o, s:o, s:o}", "coupon_id", (json_int_t)id, "remaining",
                     remaining >= 0 ? json_integer(remaining) : json_null(), "total",
                     total >= 0 ? json_integer(total) : json_null(), "orders",
                     orders != NULL ? json_incref(orders) : json_null());
}

/* Merges the room's coupons in Redis (rising ids) with order-svc's counts
 * (rising ids): a coupon known to either side is listed. */
static void finish_room_stats(read_ctx *c)
{
    json_t *out, *coupons, *counts = NULL;
    long long orders_total = 0;
    size_t si = 0, ci = 0, nc;

    if (c->rds_status != CG_OK) {
        reply_error(c, 503, "unavailable", "Redis is not reachable");
        return;
    }
    if (c->oq_status == CG_OK)
        counts = json_object_get(c->orders, "coupons");
    nc = json_array_size(counts);
    if (c->stock.n == 0 && counts == NULL) {
        /* no stock here, and the orders could not be asked: unknown, not absent */
        reply_error(c, 503, "unavailable", c->oq_error);
        return;
    }
    if (c->stock.n == 0 && nc == 0) {
        httpj_error(c->req, 404, "not_found", "room_id", "no coupons in this room");
        return;
    }
    coupons = json_array();
    while (coupons != NULL && (si < c->stock.n || ci < nc)) {
        json_t *e = ci < nc ? json_array_get(counts, ci) : NULL;
        long long cid = e != NULL ? json_integer_value(json_object_get(e, "coupon_id")) : -1;
        long long sid = si < c->stock.n ? c->stock.ids[si] : -1;
        long long id = sid < 0 || (cid >= 0 && cid < sid) ? cid : sid;
        json_t *orders = cid == id ? json_object_get(e, "orders") : NULL;
        json_t *zero = json_integer(0);

        if (orders == NULL && counts != NULL)
            orders = zero;   /* order-svc answered: no row is 0 orders */
        orders_total += json_integer_value(orders);
        json_array_append_new(coupons, room_coupon(id, &c->stock, si, orders));
        json_decref(zero);
        si += sid == id;
        ci += cid == id;
    }
    out = json_pack("{s:I, s:o}", "room_id", (json_int_t)c->id, "coupons", coupons);
    if (out == NULL) {
        reply_error(c, 500, "internal", "out of memory");
        return;
    }
    stock_sums(&c->stock, out);
    json_object_set_new(out, "orders",
                        c->oq_status == CG_OK ? json_integer(orders_total) : json_null());
    json_object_set_new(out, "stock_source", json_string(stock_source(c->o)));
    copy_shard_fields(c, out);
    reply(c, 200, out);
}

/* The READ_TOP_ROOMS rooms with the most orders, from order-svc's list. */
static json_t *top_rooms(json_t *rooms)
{
    json_t *top = json_array();
    size_t n = json_array_size(rooms);
    char *taken = calloc(n + 1, 1);

    for (int k = 0; top != NULL && taken != NULL && k < READ_TOP_ROOMS; k++) {
        long long best = -1;
        size_t at = n;

        for (size_t i = 0; i < n; i++) {
            long long v = json_integer_value(json_object_get(json_array_get(rooms, i), "orders"));

            if (!taken[i] && v > best) {
                best = v;
                at = i;
            }
        }
        if (at == n)
            break;
        taken[at] = 1;
        json_array_append(top, json_array_get(rooms, at));
    }
    free(taken);
    return top;
}

static void finish_global(read_ctx *c)
{
    json_t *out = json_object();

    if (out == NULL) {
        reply_error(c, 500, "internal", "out of memory");
        return;
    }
    if (c->oq_status == CG_OK) {
        json_object_set(out, "orders", json_object_get(c->orders, "orders"));
        json_object_set_new(out, "top_rooms", top_rooms(json_object_get(c->orders, "rooms")));
        json_object_set(out, "per_shard", json_object_get(c->orders, "per_shard"));
    } else {
        json_object_set_new(out, "orders", json_null());
    }
    if (c->rds_status == CG_OK) {
        json_object_set_new(out, "coupons", json_integer((json_int_t)c->stock.n));
        stock_sums(&c->stock, out);
        json_object_set_new(out, "stock_source", json_string(stock_source(c->o)));
    } else {
        json_object_set_new(out, "coupons", json_null());
        json_object_set_new(out, "stock_error", json_string("Redis is not reachable"));
    }
    copy_shard_fields(c, out);
    if (c->oq_status != CG_OK && c->rds_status != CG_OK) {
        json_decref(out);
        reply_error(c, 503, "unavailable", "neither order-svc nor Redis answered");
        return;
    }
    reply(c, 200, out);
}

static void finish_totals(read_ctx *c)
{
    json_t *out = NULL;

    if (c->rds_status == CG_OK) {
        out = json_pack("{s:I, s:b}", "coupons", (json_int_t)c->stock.n, "truncated",
                        c->stock.truncated);
        if (out != NULL)
            stock_sums(&c->stock, out);
    }
    c->totals_cb(c->o, out != NULL ? CG_OK : c->rds_status, out, c->totals_arg);
}

static void finish_coupon_stock(read_ctx *c)
{
    long long remaining = c->stock.n == 1 ? c->stock.remaining[0] : -1;
    long long total = c->stock.n == 1 ? c->stock.total[0] : -1;

    if (c->rds_status != CG_OK) {
        reply_error(c, 503, "unavailable", "Redis is not reachable");
        return;
    }
    if (total < 0) {
        httpj_error(c->req, 404, "not_found", "coupon_id", "no stock loaded for this coupon");
        return;
    }
    reply(c, 200, json_pack("{s:I, s:I, s:I, s:I, s:I, s:b, s:s}", "coupon_id", (json_int_t)c->id,
                            "remaining", (json_int_t)(remaining > 0 ? remaining : 0), "total",
                            (json_int_t)total, "taken",
                            (json_int_t)(total - (remaining > 0 ? remaining : 0)), "holders",
                            (json_int_t)c->holders, "sold_out", remaining <= 0, "stock_source",
                            stock_source(c->o)));
}

static void read_finish(read_ctx *c)
{
    if (c->req != NULL)
        c->o->reads.inflight--;
    switch (c->route) {
    case ROUTE_ROOM_STATS:
        finish_room_stats(c);
        break;
    case ROUTE_GLOBAL_STATS:
        finish_global(c);
        break;
    case ROUTE_COUPON_STOCK:
        finish_coupon_stock(c);
        break;
    case ROUTE_ADMIN_STATS:
        finish_totals(c);
        break;
    default:
        log_error("-", "read route %s has no finish", http_route_name(c->route));
        abort();
    }
    read_ctx_free(c);
}

/* ---- coupon stock: MGET of remaining and total (one snapshot), SCARD of the
 * holders (pipelined on the same connection: one round trip) ---------------- */

static void on_coupon_mget(rds_client *rc, int status, redisReply *r, void *arg)
{
    read_ctx *c = arg;

    (void)rc;
    if (status != CG_OK || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        c->rds_status = status != CG_OK ? status : CG_ERR_PROTOCOL;
    } else if (c->rds_status == CG_OK) {
        c->stock.n = 1;
        c->stock.remaining[0] = reply_ll(r->element[0]);
        c->stock.total[0] = reply_ll(r->element[1]);
    }
    part_done(c);
}

static void on_coupon_holders(rds_client *rc, int status, redisReply *r, void *arg)
{
    read_ctx *c = arg;

    (void)rc;
    if (status != CG_OK || r->type != REDIS_REPLY_INTEGER)
        c->rds_status = status != CG_OK ? status : CG_ERR_PROTOCOL;
    else
        c->holders = r->integer;
    part_done(c);
}

static int ask_coupon_stock(read_ctx *c)
{
    char k_stock[KEY_MAX], k_total[KEY_MAX], k_holders[KEY_MAX];
    int rc;

    c->stock.ids = calloc(1, sizeof(long long));
    c->stock.remaining = calloc(1, sizeof(long long));
    c->stock.total = calloc(1, sizeof(long long));
    if (c->stock.ids == NULL || c->stock.remaining == NULL || c->stock.total == NULL)
        return CG_ERR_NOMEM;
    if (c->o->rds_read == NULL)
        return CG_ERR_STATE;
    c->stock.ids[0] = c->id;
    snprintf(k_stock, sizeof(k_stock), KEY_STOCK_FMT, c->id);
    snprintf(k_total, sizeof(k_total), KEY_STOCK_TOTAL_FMT, c->id);
    snprintf(k_holders, sizeof(k_holders), KEY_STOCK_HOLDERS_FMT, c->id);
    c->rds_status = CG_OK;
    rc = rds_command(c->o->rds_read, on_coupon_mget, c, "MGET %s %s", k_stock, k_total);
    if (rc != CG_OK)
        return rc;
    c->pending = 1;
    if (rds_command(c->o->rds_read, on_coupon_holders, c, "SCARD %s", k_holders) == CG_OK)
        c->pending++;
    else
        c->rds_status = CG_ERR_STATE;   /* the MGET's callback answers 503 */
    return CG_OK;
}

/* ---- dispatch ---------------------------------------------------------------------- */

int read_no_params(struct evhttp_request *req)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *bad = NULL;
    cg_error err = {0, ""};
    long long unused;

    if (httpq_parse_ints(uri != NULL ? evhttp_uri_get_query(uri) : NULL, NULL, 0, &unused, &bad,
                         &err) == CG_OK)
        return 1;
    httpj_error(req, 400, "bad_request", bad, err.msg);
    return 0;
}

void read_api_handle(orch *o, struct evhttp_request *req, const route_match *rm)
{
    read_ctx *c = NULL;
    char uri[64];
    int rc = CG_OK;

    o->reads.requests[rm->route]++;
    if (rm->route == ROUTE_USER_COUPONS || rm->route == ROUTE_ROOM_ORDERS ||
        rm->route == ROUTE_RECENT_ORDERS) {
        /* order-svc checks the parameters of its own queries */
    } else if (!read_no_params(req)) {
        return;
    }
    if (o->reads.inflight >= o->conf.read_inflight_max) {
        httpj_error(req, 503, "overloaded", NULL, "too many reads in flight");
        return;
    }
    c = read_ctx_new(o, req, rm->route, rm->id);
    if (c == NULL) {
        httpj_error(req, 503, "overloaded", NULL, "out of memory");
        return;
    }
    switch (rm->route) {
    case ROUTE_USER_COUPONS:
    case ROUTE_ROOM_ORDERS:
    case ROUTE_RECENT_ORDERS:
        rc = ask_orders(c, evhttp_request_get_uri(req), on_relay);
        break;
    case ROUTE_SHARDS_STATUS:
        rc = ask_orders(c, "/internal/shards", on_relay);
        break;
    case ROUTE_COUPON_STOCK:
        rc = ask_coupon_stock(c);
        break;
    case ROUTE_ROOM_STATS:
        snprintf(c->set_key, sizeof(c->set_key), KEY_ROOM_COUPONS_FMT, rm->id);
        snprintf(uri, sizeof(uri), "/internal/room/%lld/counts", rm->id);
        if ((rc = ask_stock_set(c)) == CG_OK)
            c->pending++;
        if (ask_orders(c, uri, on_orders) == CG_OK)
            c->pending++;
        rc = c->pending > 0 ? CG_OK : rc;
        break;
    case ROUTE_GLOBAL_STATS:
        snprintf(c->set_key, sizeof(c->set_key), "%s", KEY_COUPONS);
        if ((rc = ask_stock_set(c)) == CG_OK)
            c->pending++;
        if (ask_orders(c, "/internal/totals", on_orders) == CG_OK)
            c->pending++;
        rc = c->pending > 0 ? CG_OK : rc;
        break;
    default:
        log_error("-", "route %s is not a read", http_route_name(rm->route));
        abort();
    }
    if (rc != CG_OK) {
        o->reads.inflight--;
        o->reads.errors++;
        httpj_error(req, 503, rc == CG_ERR_FULL ? "overloaded" : "unavailable", NULL,
                    rc == CG_ERR_FULL               ? "too many reads in flight"
                    : rm->route == ROUTE_COUPON_STOCK ? "Redis is not reachable"
                                                      : "order-svc is not reachable");
        read_ctx_free(c);
    }
}

int read_stock_totals(orch *o, read_stock_totals_cb done, void *arg)
{
    read_ctx *c = read_ctx_new(o, NULL, ROUTE_ADMIN_STATS, 0);
    int rc;

    if (c == NULL)
        return CG_ERR_NOMEM;
    c->totals_cb = done;
    c->totals_arg = arg;
    snprintf(c->set_key, sizeof(c->set_key), "%s", KEY_COUPONS);
    rc = ask_stock_set(c);
    if (rc != CG_OK) {
        read_ctx_free(c);
        return rc;
    }
    c->pending = 1;
    return CG_OK;
}

/* ---- life cycle -------------------------------------------------------------------- */

int read_api_start(orch *o, cg_error *err)
{
    rds_config rcfg;
    int rc;

    if (strcmp(o->conf.stock_read_from, "replica") == 0) {
        svc_conf_rds(&o->conf.svc, &rcfg);
        rcfg.role = RDS_ROLE_REPLICA;
        rcfg.pool_size = 2;
        if ((rc = rds_client_new(o->base, &rcfg, NULL, NULL, &o->rds_read, err)) != CG_OK)
            return rc;
    } else {
        o->rds_read = o->rds;
    }
    return oq_new(o->base, o->conf.order_query, (int)o->conf.order_query_conns,
                  (int)o->conf.order_query_timeout_ms, (int)o->conf.read_inflight_max, &o->oq,
                  err);
}

void read_api_stop(orch *o)
{
    struct oq_client *q = o->oq;
    rds_client *r = o->rds_read;

    o->oq = NULL;
    oq_free(q);
    o->rds_read = NULL;
    if (r != o->rds)
        rds_client_free(r);
}
