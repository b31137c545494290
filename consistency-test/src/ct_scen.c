/* ct_scen.c - the scenarios; see ct_scen.h.
 *
 * Common path: ct_scen_coupon() creates a coupon through the admin API and
 * checks its stock arrived in Redis; ct_scen_send() fires the grabs through
 * the concurrent HTTP driver; ct_scen_settle() waits until quiet and
 * resolves open answers; ct_scen_verify() runs the invariant checks and I4
 * and keeps the snapshot for the scenario's own assertions. */
#include "ct_scen.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "ct_check.h"
#include "ct_fp.h"
#include "ct_grab.h"
#include "ct_http.h"
#include "ct_mq.h"
#include "ct_quiet.h"
#include "ct_redis.h"
#include "ct_run.h"
#include "ct_stack.h"
#include "keys.h"
#include "log.h"
#include "msg.h"

#define CT_SCEN_COUPONS 4
#define CT_MQ_TIMEOUT_MS 15000

typedef struct ct_scen {
    ct_env *env;
    const char *name;
    uint64_t rng;
    char tag[24];                       /* this run, in idempotency keys and coupon names */
    long long coupon[CT_SCEN_COUPONS];  /* the coupons it created */
    size_t n_coupons;
    ct_grab *grabs;
    size_t n_grabs;
    long long load_ms;
    int timed_out;                      /* a quiet wait gave up: later ones are short */
    ct_snapshot snap;                   /* after ct_scen_verify */
} ct_scen;

#define CT_QUIET_AFTER_TIMEOUT_MS 10000

typedef void (*ct_scen_fn)(ct_scen *s);

/* ---- helpers -------------------------------------------------------------- */

static uint64_t ct_rand(ct_scen *s)
{
    /* xorshift64*: reproducible from the printed seed */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * UINT64_C(2685821657736338717);
}

static void ct_http_opts_of(const ct_env *env, ct_http_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->host = env->conf->orch_host;
    o->port = ct_conf_orch_port(env->conf);
    o->concurrency = (int)env->conf->concurrency;
    o->timeout_ms = env->conf->http_timeout_ms;
}

/* One request, blocking; the caller frees req->resp. */
static int ct_http_one(const ct_env *env, ct_http_req *req)
{
    ct_http_opts o;
    cg_error err = {0};

    ct_http_opts_of(env, &o);
    if (ct_http_run(&o, req, 1, &err) != CG_OK) {
        snprintf(req->error, sizeof(req->error), "%.63s", err.msg);
        return CG_ERR_IO;
    }
    return CG_OK;
}

/* A Redis string value as an integer; -1 when missing or bad. */
static long long ct_redis_get_ll(ct_env *env, const char *key)
{
    cg_error err = {0};
    redisContext *rc = ct_env_redis(env, &err);
    redisReply *r = NULL;
    long long v = -1;

    if (rc == NULL || ct_redis_cmd(rc, &r, &err, "GET %s", key) != CG_OK) {
        ct_env_redis_failed(env);
        return -1;
    }
    if (r->type == REDIS_REPLY_STRING)
        v = strtoll(r->str, NULL, 10);
    freeReplyObject(r);
    return v;
}

/* POST /admin/coupons; checks the answer and that the stock is in Redis. */
static int ct_scen_coupon(ct_scen *s, long long room, long long stock, long long *id)
{
    ct_http_req req;
    json_t *root = NULL;
    char body[256], key[KEY_MAX];
    long long got_stock = -2, got_total = -2, got_room = -2;
    int ok = 0;

    *id = 0;
    memset(&req, 0, sizeof(req));
    snprintf(body, sizeof(body), "{\"room_id\":%lld,\"coupon_name\":\"ct %s %s\",\"total_stock\":%lld}",
             room, s->name, s->tag, stock);
    req.method = CT_HTTP_POST;
    snprintf(req.path, sizeof(req.path), "/admin/coupons");
    req.body = body;
    if (ct_http_one(s->env, &req) == CG_OK && req.status == 201 && req.resp != NULL) {
        root = json_loads(req.resp, 0, NULL);
        if (json_is_integer(json_object_get(root, "coupon_id")))
            *id = (long long)json_integer_value(json_object_get(root, "coupon_id"));
    }
    if (*id > 0) {
        snprintf(key, sizeof(key), KEY_STOCK_FMT, *id);
        got_stock = ct_redis_get_ll(s->env, key);
        snprintf(key, sizeof(key), KEY_STOCK_TOTAL_FMT, *id);
        got_total = ct_redis_get_ll(s->env, key);
        snprintf(key, sizeof(key), KEY_STOCK_ROOM_FMT, *id);
        got_room = ct_redis_get_ll(s->env, key);
        ok = got_stock == stock && got_total == stock && got_room == room;
    }
    ct_assert(&s->env->rep, ok, "setup: coupon %lld in room %lld with %lld stock (POST /admin/coupons "
              "HTTP %d; Redis stock %lld, total %lld, room %lld)", *id, room, stock, req.status,
              got_stock, got_total, got_room);
    if (!ok && req.status != 201)
        ct_detail(&s->env->rep, "answer: %.200s%s", req.resp ? req.resp : "", req.error);
    if (ok && s->n_coupons < CT_SCEN_COUPONS)
        s->coupon[s->n_coupons++] = *id;
    json_decref(root);
    free(req.resp);
    return ok ? CG_OK : CG_ERR_STATE;
}

/* Allocates n grabs of coupon (users filled in by the caller). With keyed
 * set, each request carries its own Idempotency-Key, so that a request lost
 * to a crash can be traced to its saga (idem:<key>); keyed requests skip the
 * orchestrator's local sold-out flag, so the other scenarios send none and
 * exercise that path too. */
static int ct_scen_alloc(ct_scen *s, size_t n, long long coupon, long long room, int keyed)
{
    s->grabs = calloc(n, sizeof(*s->grabs));
    if (s->grabs == NULL)
        return CG_ERR_NOMEM;
    s->n_grabs = n;
    for (size_t i = 0; i < n; i++) {
        s->grabs[i].coupon_id = coupon;
        s->grabs[i].room_id = room;
        if (keyed)
            snprintf(s->grabs[i].idem_key, sizeof(s->grabs[i].idem_key), "ct-%s-%s-%zu", s->tag,
                     s->name, i);
    }
    return CG_OK;
}

/* Sends every grab at once (bounded by the concurrency setting). */
static int ct_scen_send(ct_scen *s, ct_http_progress_cb progress, void *arg)
{
    ct_http_req *reqs = calloc(s->n_grabs, sizeof(*reqs));
    char (*bodies)[160] = calloc(s->n_grabs, sizeof(*bodies));
    ct_http_opts o;
    cg_error err = {0};
    long long t0;
    int status;

    if (reqs == NULL || bodies == NULL) {
        free(reqs);
        free(bodies);
        return CG_ERR_NOMEM;
    }
    for (size_t i = 0; i < s->n_grabs; i++) {
        const ct_grab *g = &s->grabs[i];

        snprintf(bodies[i], sizeof(bodies[i]), "{\"user_id\":%lld,\"coupon_id\":%lld,\"room_id\":%lld}",
                 g->user_id, g->coupon_id, g->room_id);
        reqs[i].method = CT_HTTP_POST;
        snprintf(reqs[i].path, sizeof(reqs[i].path), "/api/coupon/grab");
        reqs[i].body = bodies[i];
        snprintf(reqs[i].idem_key, sizeof(reqs[i].idem_key), "%s", g->idem_key);
    }
    ct_http_opts_of(s->env, &o);
    o.progress = progress;
    o.progress_arg = arg;
    t0 = ct_now_ms();
    status = ct_http_run(&o, reqs, s->n_grabs, &err);
    s->load_ms = ct_now_ms() - t0;
    if (status != CG_OK)
        ct_assert(&s->env->rep, 0, "sending the grabs: %s", err.msg);
    for (size_t i = 0; i < s->n_grabs; i++) {
        ct_grab_parse(&s->grabs[i], reqs[i].status, reqs[i].resp, reqs[i].error);
        s->grabs[i].latency_ms = reqs[i].done_ms - reqs[i].sent_ms;
    }
    ct_http_reqs_free(reqs, s->n_grabs);
    free(reqs);
    free(bodies);
    return status;
}

/* The saga id of a lost request, from its Idempotency-Key; only when that
 * saga was logged: a key bound just before a crash names a saga that never
 * started (idem_orphan), which granted nothing. Returns how many were found. */
static size_t ct_scen_resolve_idem(ct_scen *s)
{
    size_t found = 0, asked = 0, orphans = 0;

    for (size_t i = 0; i < s->n_grabs; i++) {
        ct_grab *g = &s->grabs[i];
        cg_error err = {0};
        redisContext *rc;
        redisReply *r = NULL, *e = NULL;

        if (g->saga_id[0] != '\0' || g->idem_key[0] == '\0' || g->idem_orphan)
            continue;
        asked++;
        rc = ct_env_redis(s->env, &err);
        if (rc == NULL || ct_redis_cmd(rc, &r, &err, "GET " KEY_IDEMPOTENCY_FMT, g->idem_key) != CG_OK) {
            ct_env_redis_failed(s->env);
            continue;
        }
        if (r->type == REDIS_REPLY_STRING && msg_saga_id_valid(r->str)) {
            if (ct_redis_cmd(rc, &e, &err, "EXISTS " KEY_SAGA_FMT, r->str) != CG_OK) {
                ct_env_redis_failed(s->env);
            } else if (e->type == REDIS_REPLY_INTEGER && e->integer == 1) {
                snprintf(g->saga_id, sizeof(g->saga_id), "%s", r->str);
                g->saga_from_idem = 1;
                found++;
            } else {
                snprintf(g->idem_saga, sizeof(g->idem_saga), "%s", r->str);
                g->idem_orphan = 1;
                orphans++;
            }
        }
        if (e != NULL)
            freeReplyObject(e);
        freeReplyObject(r);
    }
    if (asked > 0)
        ct_say(&s->env->rep, "   %zu requests without a saga id: %zu traced through idem:<key> to their "
               "saga, %zu keys name a saga that was never logged", asked, found, orphans);
    return found;
}

/* GET /api/grab/{id} of every grab with a saga id. */
static void ct_scen_read_states(ct_scen *s)
{
    ct_http_req *reqs = calloc(s->n_grabs, sizeof(*reqs));
    size_t *of = calloc(s->n_grabs, sizeof(*of)), n = 0;
    ct_http_opts o;
    cg_error err = {0};

    if (reqs == NULL || of == NULL)
        goto done;
    for (size_t i = 0; i < s->n_grabs; i++) {
        if (s->grabs[i].saga_id[0] == '\0')
            continue;
        reqs[n].method = CT_HTTP_GET;
        snprintf(reqs[n].path, sizeof(reqs[n].path), "/api/grab/%s", s->grabs[i].saga_id);
        of[n++] = i;
    }
    ct_http_opts_of(s->env, &o);
    if (ct_http_run(&o, reqs, n, &err) != CG_OK)
        ct_detail(&s->env->rep, "reading saga states: %s", err.msg);
    for (size_t k = 0; k < n; k++) {
        ct_grab *g = &s->grabs[of[k]];

        g->read_status = reqs[k].status;
        if (reqs[k].status != 200 ||
            ct_grab_parse_state(reqs[k].resp, g->final_state, sizeof(g->final_state)) != CG_OK)
            g->final_state[0] = '\0';
    }
    ct_http_reqs_free(reqs, n);
done:
    free(of);
    free(reqs);
}

/* The bound of the next quiet wait: once one has given up, the system is
 * known not to settle, and the rest of the scenario only needs a look. */
static long long ct_scen_quiet_bound(const ct_scen *s)
{
    long long t = s->env->conf->quiet_timeout_ms;

    return s->timed_out && t > CT_QUIET_AFTER_TIMEOUT_MS ? CT_QUIET_AFTER_TIMEOUT_MS : t;
}

/* The saga ids the grabs know, into ids, and their grabs into of (both
 * n_grabs long). */
static size_t ct_scen_ids(ct_scen *s, const char **ids, ct_grab **of)
{
    size_t n = 0;

    for (size_t i = 0; ids != NULL && of != NULL && i < s->n_grabs; i++) {
        if (s->grabs[i].saga_id[0] == '\0')
            continue;
        of[n] = &s->grabs[i];
        ids[n++] = s->grabs[i].saga_id;
    }
    return n;
}

/* I7: every polled state of a saga follows the one seen before it. */
static void ct_scen_observe(size_t i, const char *state, int found, void *arg)
{
    ct_grab *g = ((ct_grab **)arg)[i];
    const char *now = found ? (state[0] ? state : "(no state)") : "(no saga log)";

    g->observations++;
    if (!found && g->seen_state[0] == '\0')
        return;   /* not logged yet */
    if (g->seen_state[0] != '\0' && !g->went_back &&
        (!found || !ct_state_step_ok(g->seen_state, now))) {
        g->went_back = 1;
        snprintf(g->back, sizeof(g->back), "%s -> %s", g->seen_state, now);
    }
    if (found && g->seen_state[0] == '\0' && ct_state_step_ok(CT_STATE_STARTED, now) == 0) {
        g->went_back = 1;
        snprintf(g->back, sizeof(g->back), "unknown state %s", now);
    }
    snprintf(g->seen_state, sizeof(g->seen_state), "%s", now);
}

/* Waits until quiet, then resolves the answers; prints the figures. */
static void ct_scen_settle(ct_scen *s)
{
    const char **ids = calloc(s->n_grabs + 1, sizeof(*ids));
    ct_grab **of = calloc(s->n_grabs + 1, sizeof(*of));
    ct_quiet_status st;
    ct_grab_stats gs;
    cg_error err = {0};
    long long waited = 0;
    size_t n;
    int status;

    long long bound = ct_scen_quiet_bound(s);

    n = ct_scen_ids(s, ids, of);
    status = ct_wait_quiet(s->env, ids, n, bound, &st, ct_scen_observe, of, &err);
    waited = st.waited_ms;
    s->timed_out |= status != CG_OK;
    /* Lost requests traced to their sagas: those must end too. */
    if (ct_scen_resolve_idem(s) > 0) {
        int again;

        n = ct_scen_ids(s, ids, of);
        again = ct_wait_quiet(s->env, ids, n, ct_scen_quiet_bound(s), &st, ct_scen_observe, of,
                              status == CG_OK ? &err : NULL);
        waited += st.waited_ms;
        s->timed_out |= again != CG_OK;
        if (status == CG_OK)
            status = again;
    }
    ct_assert(&s->env->rep, status == CG_OK, "I5 quiet within %lld ms: every one of %zu known "
              "sagas finished, no saga active, nothing ready or unacknowledged in the command and "
              "reply queues (waited %lld ms)%s%s", bound, n, waited, status == CG_OK ? "" : ": ",
              status == CG_OK ? "" : err.msg);
    ct_scen_read_states(s);
    ct_grab_stats_of(s->grabs, s->n_grabs, &gs);
    ct_grab_print(&s->env->rep, &gs, s->load_ms);
    free(of);
    free(ids);
}

/* I7, as far as polling shows it: no saga's state went backwards. */
static void ct_scen_assert_forward(ct_scen *s)
{
    size_t obs = 0, sagas = 0, back = 0;

    for (size_t i = 0; i < s->n_grabs; i++) {
        obs += s->grabs[i].observations;
        sagas += s->grabs[i].observations > 0;
        back += s->grabs[i].went_back;
    }
    ct_assert(&s->env->rep, back == 0, "I7 saga states only moved forward: %zu polls of %zu sagas, %zu "
              "went back", obs, sagas, back);
    for (size_t i = 0, shown = 0; i < s->n_grabs && shown < CT_DETAIL_MAX; i++) {
        if (s->grabs[i].went_back && ++shown)
            ct_detail(&s->env->rep, "saga %s: %s", s->grabs[i].saga_id, s->grabs[i].back);
    }
}

/* Runs the invariant checks on the scenario's coupons and I4; keeps the snapshot. */
static void ct_scen_verify(ct_scen *s)
{
    ct_extra_saga *extra = calloc(s->n_grabs + 1, sizeof(*extra));
    size_t n = 0;

    for (size_t i = 0; extra != NULL && i < s->n_grabs; i++) {
        if (s->grabs[i].saga_id[0] == '\0')
            continue;
        extra[n].coupon_id = s->grabs[i].coupon_id;
        snprintf(extra[n].saga_id, sizeof(extra[n].saga_id), "%s", s->grabs[i].saga_id);
        n++;
    }
    ct_snapshot_free(&s->snap);
    ct_env_check(s->env, s->coupon, s->n_coupons, extra, n, 1, &s->snap);
    ct_grab_check(&s->env->rep, &s->snap, s->grabs, s->n_grabs);
    ct_scen_assert_forward(s);
    free(extra);
}

static void ct_scen_assert_answers(ct_scen *s, const ct_grab_stats *gs, int allow_transport)
{
    ct_report *r = &s->env->rep;

    ct_assert(r, gs->kind[CT_GRAB_MALFORMED] == 0, "every 200/202 answer well-formed: %zu malformed",
              gs->kind[CT_GRAB_MALFORMED]);
    for (size_t i = 0, shown = 0; i < s->n_grabs && shown < CT_DETAIL_MAX; i++) {
        if (s->grabs[i].kind == CT_GRAB_MALFORMED && ++shown)
            ct_detail(r, "user %lld: %s", s->grabs[i].user_id, s->grabs[i].problem);
    }
    if (!allow_transport) {
        ct_assert(r, gs->kind[CT_GRAB_TRANSPORT] == 0 && gs->kind[CT_GRAB_HTTP_ERROR] == 0,
                  "every grab answered 200 or 202: %zu transport errors, %zu HTTP errors",
                  gs->kind[CT_GRAB_TRANSPORT], gs->kind[CT_GRAB_HTTP_ERROR]);
        for (size_t i = 0, shown = 0; i < s->n_grabs && shown < 3; i++) {
            if ((s->grabs[i].kind == CT_GRAB_TRANSPORT || s->grabs[i].kind == CT_GRAB_HTTP_ERROR) && ++shown)
                ct_detail(r, "user %lld: %s", s->grabs[i].user_id, s->grabs[i].problem);
        }
    }
}

static const ct_coupon *ct_scen_coupon_snap(const ct_scen *s, size_t i)
{
    return i < s->n_coupons ? ct_snapshot_find(&s->snap, s->coupon[i]) : NULL;
}

/* ---- 1. classic --------------------------------------------------------- */

#define CT_CLASSIC_STOCK 100
#define CT_CLASSIC_USERS 1000
#define CT_CLASSIC_GRABS 1000

static void ct_scen_classic(ct_scen *s)
{
    const ct_conf *conf = s->env->conf;
    ct_report *r = &s->env->rep;
    const ct_coupon *c;
    ct_grab_stats gs;
    long long coupon;

    if (ct_scen_coupon(s, conf->room, CT_CLASSIC_STOCK, &coupon) != CG_OK)
        return;
    if (ct_scen_alloc(s, CT_CLASSIC_GRABS, coupon, conf->room, 0) != CG_OK)
        return;
    for (size_t i = 0; i < s->n_grabs; i++)
        s->grabs[i].user_id = conf->user_base + (long long)(ct_rand(s) % CT_CLASSIC_USERS);
    ct_say(r, "   %d grabs by random users of %d, %lld connections at once", CT_CLASSIC_GRABS,
           CT_CLASSIC_USERS, conf->concurrency);
    (void)ct_scen_send(s, NULL, NULL);
    ct_scen_settle(s);
    ct_scen_verify(s);
    ct_grab_stats_of(s->grabs, s->n_grabs, &gs);
    ct_scen_assert_answers(s, &gs, 0);
    c = ct_scen_coupon_snap(s, 0);
    ct_assert(r, gs.granted_final == CT_CLASSIC_STOCK, "exactly %d granted: %zu answers granted "
              "(%zu at once, the rest after 202)", CT_CLASSIC_STOCK, gs.granted_final,
              gs.kind[CT_GRAB_GRANTED]);
    ct_assert(r, c != NULL && c->stock_state == CT_VALUE_OK && c->stock == 0, "stock 0: Redis says %lld",
              c != NULL ? c->stock : -1);
    ct_assert(r, c != NULL && c->n_rows == CT_CLASSIC_STOCK, "%d order rows: %zu over every shard",
              CT_CLASSIC_STOCK, c != NULL ? c->n_rows : 0);
}

/* ---- 2. same-user ------------------------------------------------------- */

#define CT_SAME_STOCK 10
#define CT_SAME_GRABS 100

static void ct_scen_same_user(ct_scen *s)
{
    const ct_conf *conf = s->env->conf;
    ct_report *r = &s->env->rep;
    const ct_coupon *c;
    ct_grab_stats gs;
    long long coupon, user = conf->user_base + 500;

    if (ct_scen_coupon(s, conf->room, CT_SAME_STOCK, &coupon) != CG_OK)
        return;
    if (ct_scen_alloc(s, CT_SAME_GRABS, coupon, conf->room, 0) != CG_OK)
        return;
    for (size_t i = 0; i < s->n_grabs; i++)
        s->grabs[i].user_id = user;
    ct_say(r, "   user %lld sends %d grabs at once (stock %d, so only the one-per-user rule can refuse)",
           user, CT_SAME_GRABS, CT_SAME_STOCK);
    (void)ct_scen_send(s, NULL, NULL);
    ct_scen_settle(s);
    ct_scen_verify(s);
    ct_grab_stats_of(s->grabs, s->n_grabs, &gs);
    ct_scen_assert_answers(s, &gs, 0);
    c = ct_scen_coupon_snap(s, 0);
    ct_assert(r, gs.granted_final == 1, "exactly one granted: %zu", gs.granted_final);
    ct_assert(r, c != NULL && c->n_rows == 1 && c->stock == CT_SAME_STOCK - 1 && c->n_holders == 1,
              "one row, one holder, stock %d: %zu rows, %zu holders, stock %lld", CT_SAME_STOCK - 1,
              c != NULL ? c->n_rows : 0, c != NULL ? c->n_holders : 0, c != NULL ? c->stock : -1);
}

/* ---- 3. order-fails ----------------------------------------------------- */

#define CT_FAIL_STOCK 50
#define CT_FAIL_GRABS 20

/* The stack's name of the MariaDB server at port, "" when none. */
static const char *ct_mariadb_name(const ct_conf *conf, int port)
{
    if (port == conf->stack_port_base + 31)
        return "mariadb-s0";
    if (port == conf->stack_port_base + 32)
        return "mariadb-s1";
    return "";
}

static void ct_scen_order_fails(ct_scen *s)
{
    const ct_conf *conf = s->env->conf;
    const sr_map *map = &s->env->map;
    ct_report *r = &s->env->rep;
    ct_shard_addr addr[CT_MAX_SHARDS];
    int n_shards = 0, target, on_server[CT_MAX_SHARDS] = {0}, killed;
    const char *server;
    char args[128], shards_txt[64] = "";
    const ct_coupon *c;
    ct_grab_stats gs;
    cg_error err = {0};
    long long coupon, room = conf->room, now = (long long)time(NULL);
    size_t got = 0;

    if (ct_conf_shards(conf, addr, CT_MAX_SHARDS, &n_shards, &err) != CG_OK || n_shards < 2) {
        ct_assert(r, 0, "setup: at least two shards to kill one server of: %s", err.msg);
        return;
    }
    /* The server of shard 1 (as in the stack: mariadb-s1 holds shards 1 and
     * 3); under range-day the orders of today go where they go, so that
     * shard's server is the one to kill. */
    target = map->strategy == SR_RANGE_DAY ? sr_shard_of(map, 1, room, now) : 1;
    server = ct_mariadb_name(conf, addr[target].db.port);
    for (int i = 0; i < n_shards; i++) {
        on_server[i] = strcmp(addr[i].server, addr[target].server) == 0;
        if (on_server[i])
            snprintf(shards_txt + strlen(shards_txt), sizeof(shards_txt) - strlen(shards_txt), "%s%d",
                     shards_txt[0] ? "," : "", i);
    }
    if (server[0] == '\0') {
        ct_assert(r, 0, "setup: shard %d's server %s is not a server of this stack", target,
                  addr[target].server);
        return;
    }
    if (map->strategy == SR_RANGE_ROOM) {
        for (room = 1; room < 100000 && !on_server[sr_shard_of(map, 1, room, now)]; room++)
            ;
    }
    if (ct_scen_coupon(s, room, CT_FAIL_STOCK, &coupon) != CG_OK)
        return;
    if (ct_scen_alloc(s, CT_FAIL_GRABS, coupon, room, 0) != CG_OK)
        return;
    for (long long u = conf->user_base; got < s->n_grabs && u < conf->user_base + 1000000; u++) {
        if (on_server[sr_shard_of(map, u, room, now)])
            s->grabs[got++].user_id = u;
    }
    if (!ct_assert(r, got == s->n_grabs, "setup: %zu users whose orders route (%s) to shards %s on %s",
                   got, sr_strategy_name(map->strategy), shards_txt, server))
        return;
    snprintf(args, sizeof(args), "kill %s", server);
    killed = ct_script(conf, "stack", args) == 0;
    if (ct_assert(r, killed, "scripts/stack %s", args)) {
        (void)ct_scen_send(s, NULL, NULL);
        ct_grab_stats_of(s->grabs, s->n_grabs, &gs);
        ct_say(r, "   answers while %s is down: granted %zu, rejected %zu, 202 %zu, errors %zu", server,
               gs.kind[CT_GRAB_GRANTED], gs.kind[CT_GRAB_REJECTED], gs.kind[CT_GRAB_PENDING],
               gs.kind[CT_GRAB_TRANSPORT] + gs.kind[CT_GRAB_HTTP_ERROR]);
        ct_assert(r, gs.kind[CT_GRAB_GRANTED] == 0, "nothing granted while the orders' shards are "
                  "down: %zu granted answers", gs.kind[CT_GRAB_GRANTED]);
    }
    /* Always bring the server back, whatever happened above. */
    snprintf(args, sizeof(args), "start-one %s", server);
    ct_assert(r, ct_script(conf, "stack", args) == 0, "scripts/stack %s", args);
    if (!killed)
        return;
    ct_scen_settle(s);
    ct_scen_verify(s);
    ct_grab_stats_of(s->grabs, s->n_grabs, &gs);
    ct_scen_assert_answers(s, &gs, 0);
    c = ct_scen_coupon_snap(s, 0);
    ct_assert(r, gs.rejected_final == s->n_grabs, "every saga compensated: %zu of %zu ended "
              "COMPENSATED (%zu answered 0 at once, %zu after 202)", gs.rejected_final, s->n_grabs,
              gs.kind[CT_GRAB_REJECTED], gs.rejected_final - gs.kind[CT_GRAB_REJECTED]);
    ct_assert(r, c != NULL && c->stock == CT_FAIL_STOCK && c->n_rows == 0 && c->n_holders == 0,
              "stock back to %d, no rows, no holders: stock %lld, %zu rows, %zu holders", CT_FAIL_STOCK,
              c != NULL ? c->stock : -1, c != NULL ? c->n_rows : 0, c != NULL ? c->n_holders : 0);
}

/* ---- 4. orchestrator-kill ---------------------------------------------- */

#define CT_KILL_STOCK 300
#define CT_KILL_GRABS 1000

typedef struct ct_kill {
    ct_scen *s;
    size_t at;                 /* kill once this many answers are in */
    int started;
    size_t done_at;
    pid_t kill_pid, start_pid; /* the scripts, run beside the burst */
    int kill_rc, start_rc;
    long long t_kill, t_up;    /* when the kill was started, and the restart finished */
} ct_kill;

/* Runs beside the burst, between completions: starts the kill without
 * waiting for it (the driver keeps its connections busy, so the SIGKILL
 * lands on sagas in flight), then the restart once the kill has ended. */
static void ct_kill_progress(size_t done, size_t total, void *arg)
{
    ct_kill *k = arg;
    const ct_conf *conf = k->s->env->conf;

    (void)total;
    if (!k->started && done >= k->at) {
        k->started = 1;
        k->done_at = done;
        k->t_kill = ct_now_ms();
        k->kill_pid = ct_script_spawn(conf, "services", "kill orchestrator");
        return;
    }
    if (k->kill_pid > 0 && (k->kill_rc = ct_script_reap(k->kill_pid, 0)) != CT_SCRIPT_RUNNING) {
        k->kill_pid = 0;
        k->start_pid = ct_script_spawn(conf, "services", "start orchestrator");
    }
    if (k->start_pid > 0 && (k->start_rc = ct_script_reap(k->start_pid, 0)) != CT_SCRIPT_RUNNING) {
        k->start_pid = 0;
        k->t_up = ct_now_ms();
    }
}

/* After the burst: lets the kill and the restart finish (both bounded). */
static void ct_kill_finish(ct_kill *k)
{
    const ct_conf *conf = k->s->env->conf;

    if (k->kill_pid > 0) {
        k->kill_rc = ct_script_reap(k->kill_pid, 1);
        k->kill_pid = 0;
        k->start_pid = ct_script_spawn(conf, "services", "start orchestrator");
    }
    if (k->start_pid > 0) {
        k->start_rc = ct_script_reap(k->start_pid, 1);
        k->start_pid = 0;
        k->t_up = ct_now_ms();
    }
}

/* Retries, as a client would, every request that got no answer, with the
 * same Idempotency-Key: the contract says a repeated key returns the first
 * request's saga. The retry's answer stands for the lost one from then on. */
static void ct_scen_retry_lost(ct_scen *s)
{
    ct_report *r = &s->env->rep;
    ct_grab *orig = s->grabs, *retry = NULL;
    size_t n0 = s->n_grabs, n = 0, k = 0, same = 0, differ = 0, was_known = 0;
    long long burst_ms = s->load_ms;
    size_t *idx = NULL;
    ct_grab_stats gs;

    for (size_t i = 0; i < n0; i++)
        n += orig[i].kind == CT_GRAB_TRANSPORT || orig[i].kind == CT_GRAB_HTTP_ERROR;
    if (n == 0) {
        ct_say(r, "   no request was lost: nothing to retry");
        return;
    }
    retry = calloc(n, sizeof(*retry));
    idx = calloc(n, sizeof(*idx));
    if (retry == NULL || idx == NULL)
        goto done;
    for (size_t i = 0; i < n0; i++) {
        if (orig[i].kind != CT_GRAB_TRANSPORT && orig[i].kind != CT_GRAB_HTTP_ERROR)
            continue;
        retry[k].user_id = orig[i].user_id;
        retry[k].coupon_id = orig[i].coupon_id;
        retry[k].room_id = orig[i].room_id;
        snprintf(retry[k].idem_key, sizeof(retry[k].idem_key), "%s", orig[i].idem_key);
        idx[k++] = i;
    }
    s->grabs = retry;
    s->n_grabs = n;
    (void)ct_scen_send(s, NULL, NULL);
    ct_grab_stats_of(retry, n, &gs);
    ct_say(r, "   retried %zu lost requests with their Idempotency-Key:", n);
    ct_grab_print(r, &gs, s->load_ms);
    s->grabs = orig;
    s->n_grabs = n0;
    s->load_ms = burst_ms;
    for (k = 0; k < n; k++) {
        ct_grab *g = &orig[idx[k]];

        if (g->saga_id[0] != '\0') {
            was_known++;
            if (strcmp(g->saga_id, retry[k].saga_id) == 0)
                same++;
            else if (differ++ < CT_DETAIL_MAX)
                ct_detail(r, "key %s: first saga %s, the retry answered saga %s (%s)", g->idem_key,
                          g->saga_id, retry[k].saga_id[0] ? retry[k].saga_id : "none",
                          ct_grab_kind_name(retry[k].kind));
        }
        *g = retry[k];
    }
    ct_assert(r, differ == 0, "Idempotency-Key: the retry of each of %zu lost requests whose saga was "
              "logged returns that saga: %zu of %zu", was_known, same, was_known);
done:
    free(idx);
    free(retry);
}

static void ct_scen_orch_kill(ct_scen *s)
{
    const ct_conf *conf = s->env->conf;
    ct_report *r = &s->env->rep;
    ct_kill k = {s, CT_KILL_GRABS / 6, 0, 0, 0, 0, -1, -1, 0, 0};
    const ct_coupon *c;
    ct_grab_stats gs;
    size_t with_id = 0, orphans = 0;
    long long coupon;

    if (ct_scen_coupon(s, conf->room, CT_KILL_STOCK, &coupon) != CG_OK)
        return;
    if (ct_scen_alloc(s, CT_KILL_GRABS, coupon, conf->room, 1) != CG_OK)
        return;
    for (size_t i = 0; i < s->n_grabs; i++)
        s->grabs[i].user_id = conf->user_base + 2000 + (long long)i;
    ct_say(r, "   %d grabs by distinct users, each with its Idempotency-Key; SIGKILL of the "
           "orchestrator after %zu answers, then restart", CT_KILL_GRABS, k.at);
    (void)ct_scen_send(s, ct_kill_progress, &k);
    ct_kill_finish(&k);
    ct_assert(r, k.started && k.kill_rc == 0, "orchestrator killed with SIGKILL after %zu of %d answers, "
              "while the burst went on", k.done_at, CT_KILL_GRABS);
    if (!k.started || k.start_rc != 0)
        k.start_rc = ct_script(conf, "services", "start orchestrator");
    ct_assert(r, k.start_rc == 0, "orchestrator restarted and ready (%lld ms after the kill began)",
              k.t_up > 0 ? k.t_up - k.t_kill : -1);
    /* First the sagas as the crash left them (and recovery finished them). */
    ct_scen_settle(s);
    ct_grab_stats_of(s->grabs, s->n_grabs, &gs);
    for (size_t i = 0; i < s->n_grabs; i++) {
        with_id += s->grabs[i].saga_id[0] != '\0';
        orphans += s->grabs[i].idem_orphan;
    }
    ct_assert(r, gs.unresolved == gs.unknown_transport, "every saga with an id (answered, or traced "
              "through its key) ended COMPLETED or COMPENSATED: %zu of %zu",
              with_id - (gs.unresolved - gs.unknown_transport), with_id);
    if (orphans > 0)
        ct_say(r, "   %zu requests lost in the crash had their key bound but their saga never logged",
               orphans);
    /* Then the lost requests retried, and everything checked. */
    ct_scen_retry_lost(s);
    ct_scen_settle(s);
    ct_scen_verify(s);
    ct_grab_stats_of(s->grabs, s->n_grabs, &gs);
    ct_scen_assert_answers(s, &gs, 0);
    c = ct_scen_coupon_snap(s, 0);
    ct_assert(r, c != NULL && c->n_rows == gs.granted_final && c->n_rows <= CT_KILL_STOCK,
              "granted rows %zu = granted answers %zu (<= %d)", c != NULL ? c->n_rows : 0,
              gs.granted_final, CT_KILL_STOCK);
}

/* ---- 5. duplicate -------------------------------------------------------- */

#define CT_DUP_USERS 3

static void ct_dup_item(msg_batch *b, enum msg_kind kind, const char *saga, long long user, long long coupon,
                        long long room, long long grab_time)
{
    memset(b, 0, sizeof(*b));
    b->kind = kind;
    b->n = 1;
    snprintf(b->items[0].saga_id, sizeof(b->items[0].saga_id), "%s", saga);
    b->items[0].user_id = user;
    b->items[0].coupon_id = coupon;
    b->items[0].room_id = room;
    b->items[0].grab_time = grab_time;
}

/* Publishes cmd twice, one copy after the other's reply, then two copies
 * at once; every reply must be result/reason, the first answer. */
static void ct_dup_send(ct_scen *s, ct_mq_session *mq, msg_batch *cmd, msg_item *replies,
                        const char *result, const char *reason)
{
    static const struct {
        int copies;
        const char *how;
    } rounds[] = {{1, "copy 1"}, {1, "copy 2"}, {2, "copies 3 and 4 at once"}};
    ct_report *r = &s->env->rep;

    for (size_t k = 0; k < sizeof(rounds) / sizeof(rounds[0]); k++) {
        cg_error err = {0};
        int status = ct_mq_roundtrip(mq, cmd, rounds[k].copies, replies, CT_MQ_TIMEOUT_MS, &err);
        int ok = status == CG_OK;
        char got[96] = "";

        for (int i = 0; ok && i < rounds[k].copies; i++) {
            const msg_item *it = &replies[i];

            ok = strcmp(it->result, result) == 0 && strcmp(it->reason, reason) == 0;
            snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s%s%s", i ? ", " : "", it->result,
                     it->reason[0] ? "/" : "", it->reason);
        }
        ct_assert(r, ok, "I6 duplicate %s of saga %s (%s) answered %s%s%s as the first time: %s",
                  msg_kind_name(cmd->kind), cmd->items[0].saga_id, rounds[k].how, result, reason[0] ? "/" : "",
                  reason, status == CG_OK ? got : err.msg);
    }
}

static void ct_scen_duplicate(ct_scen *s)
{
    const ct_conf *conf = s->env->conf;
    ct_report *r = &s->env->rep;
    const ct_grab *won = NULL, *lost = NULL;
    const ct_row *row = NULL;
    const ct_outcome *oc_won, *oc_lost;
    const ct_coupon *c;
    const char *ids[CT_DUP_USERS];
    ct_mq_session *mq = NULL;
    msg_batch *cmd = NULL;
    msg_item reply[2];
    char *before = NULL, *after = NULL, reason[40] = "";
    cg_error err = {0};
    ct_quiet_status st;
    size_t n_ids = 0;
    long long coupon;
    int quiet;

    if (ct_scen_coupon(s, conf->room, 1, &coupon) != CG_OK)
        return;
    if (ct_scen_alloc(s, CT_DUP_USERS, coupon, conf->room, 1) != CG_OK)
        return;
    for (size_t i = 0; i < s->n_grabs; i++)
        s->grabs[i].user_id = conf->user_base + 700 + (long long)i;
    (void)ct_scen_send(s, NULL, NULL);
    ct_scen_settle(s);
    ct_scen_verify(s);
    for (size_t i = 0; i < s->n_grabs; i++) {
        int o = ct_grab_outcome(&s->grabs[i]);

        if (s->grabs[i].saga_id[0] != '\0')
            ids[n_ids++] = s->grabs[i].saga_id;
        if (o == 1 && won == NULL)
            won = &s->grabs[i];
        if (o == 0 && lost == NULL)
            lost = &s->grabs[i];
    }
    c = ct_scen_coupon_snap(s, 0);
    if (c != NULL && won != NULL)
        ct_coupon_rows_of(c, won->saga_id, &row);
    oc_won = c != NULL && won != NULL ? ct_coupon_outcome(c, won->saga_id) : NULL;
    oc_lost = c != NULL && lost != NULL ? ct_coupon_outcome(c, lost->saga_id) : NULL;
    if (!ct_assert(r, row != NULL && oc_won != NULL && oc_lost != NULL && strncmp(oc_lost->value, "J:", 2) == 0,
                   "setup: one granted saga with its row and one rejected saga (stock outcomes %s, %s)",
                   oc_won ? oc_won->value : "none", oc_lost ? oc_lost->value : "none"))
        return;
    snprintf(reason, sizeof(reason), "%s", oc_lost->value + 2);
    if (ct_fingerprint(s->env, coupon, ids, n_ids, &before, &err) != CG_OK) {
        ct_assert(r, 0, "fingerprint before the duplicates: %s", err.msg);
        goto done;
    }
    cmd = malloc(sizeof(*cmd));
    if (cmd == NULL ||
        !ct_assert(r, ct_mq_session_open(conf, CT_MQ_TIMEOUT_MS, &mq, &err) == CG_OK,
                   "connected to the broker with an own reply queue%s%s", err.msg[0] ? ": " : "", err.msg))
        goto done;
    ct_dup_item(cmd, MSG_STOCK_RESERVE, won->saga_id, won->user_id, coupon, 0, 0);
    ct_dup_send(s, mq, cmd, reply, MSG_RESULT_RESERVED, "");
    ct_dup_item(cmd, MSG_STOCK_RESERVE, lost->saga_id, lost->user_id, coupon, 0, 0);
    ct_dup_send(s, mq, cmd, reply, MSG_RESULT_REJECTED, reason);
    ct_dup_item(cmd, MSG_ORDER_CREATE, won->saga_id, won->user_id, coupon, row->room_id, row->grab_time_ms);
    ct_dup_send(s, mq, cmd, reply, MSG_RESULT_CREATED, "");
    quiet = ct_wait_quiet(s->env, ids, n_ids, ct_scen_quiet_bound(s), &st, NULL, NULL, &err) == CG_OK;
    s->timed_out |= !quiet;
    ct_assert(r, quiet, "quiet again after the duplicates (waited %lld ms)%s%s", st.waited_ms,
              quiet ? "" : ": ", quiet ? "" : err.msg);
    if (ct_fingerprint(s->env, coupon, ids, n_ids, &after, &err) != CG_OK) {
        ct_assert(r, 0, "fingerprint after the duplicates: %s", err.msg);
        goto done;
    }
    {
        size_t diffs = ct_fingerprint_diff(r, before, after, 0);

        ct_assert(r, diffs == 0, "I6 nothing changed in Redis (stock, holders, outcomes, saga log) or the "
                  "shards (rows, barriers): %zu differing lines", diffs);
        if (diffs > 0)
            (void)ct_fingerprint_diff(r, before, after, CT_DETAIL_MAX);
    }
    ct_scen_verify(s);
done:
    ct_mq_session_close(mq);
    free(cmd);
    free(before);
    free(after);
}

/* ---- the table and the runner ------------------------------------------- */

static const struct {
    const char *name;
    ct_scen_fn fn;
    const char *what;
} ct_scenarios[] = {
    {"classic", ct_scen_classic, "100 stock, 1,000 concurrent grabs by random users of 1,000"},
    {"same-user", ct_scen_same_user, "one user sends 100 concurrent grabs: exactly one granted"},
    {"order-fails", ct_scen_order_fails, "the orders' shard server killed: every saga compensated"},
    {"orchestrator-kill", ct_scen_orch_kill, "SIGKILL of the orchestrator mid-burst, restart: sagas end"},
    {"duplicate", ct_scen_duplicate, "stock.reserve and order.create delivered twice change nothing"},
};

#define CT_N_SCENARIOS (sizeof(ct_scenarios) / sizeof(ct_scenarios[0]))

void ct_scen_list(FILE *out)
{
    for (size_t i = 0; i < CT_N_SCENARIOS; i++)
        fprintf(out, "%-18s %s\n", ct_scenarios[i].name, ct_scenarios[i].what);
}

static const char *const ct_services[] = {"stock-svc", "order-svc", "orchestrator"};

/* Starts the services that are down; started[i] says which were. */
static void ct_services_up(ct_env *env, int *started)
{
    char args[64];

    for (size_t i = 0; i < 3; i++) {
        started[i] = 0;
        if (!env->conf->manage_services || ct_service_up(env->conf, ct_services[i]))
            continue;
        snprintf(args, sizeof(args), "start %s", ct_services[i]);
        started[i] = ct_script(env->conf, "services", args) == 0;
    }
}

static void ct_services_down(ct_env *env, const int *started)
{
    char args[64];

    for (size_t i = 3; i-- > 0;) {
        if (!started[i])
            continue;
        snprintf(args, sizeof(args), "stop %s", ct_services[i]);
        (void)ct_script(env->conf, "services", args);
    }
}

/* Messages in the dead-letter queue; -1 when it cannot be read. */
static long ct_dead_letters(ct_env *env)
{
    static const char *const q[] = {MSG_QUEUE_DEAD};
    long depth = -1;
    cg_error err = {0};

    if (ct_mq_queue_depths(env->conf, q, 1, &depth, &err) != CG_OK) {
        ct_detail(&env->rep, "reading %s: %s", MSG_QUEUE_DEAD, err.msg);
        return -1;
    }
    return depth < 0 ? 0 : depth;   /* not declared yet: nothing dead-lettered */
}

static int ct_orch_ready(ct_env *env)
{
    ct_http_req req;
    int ok;

    memset(&req, 0, sizeof(req));
    req.method = CT_HTTP_GET;
    snprintf(req.path, sizeof(req.path), "/readyz");
    ok = ct_http_one(env, &req) == CG_OK && req.status == 200;
    free(req.resp);
    return ok;
}

int ct_run_scenarios(const ct_conf *conf, const char *name)
{
    ct_env env;
    cg_error err = {0};
    int started[3] = {0, 0, 0}, ran = 0, scen_passed = 0;
    uint64_t seed;

    if (ct_env_init(&env, conf, stdout, &err) != CG_OK) {
        fprintf(stderr, "consistency-test: %s\n", err.msg);
        return 2;
    }
    if (name != NULL) {
        size_t i;

        for (i = 0; i < CT_N_SCENARIOS && strcmp(ct_scenarios[i].name, name) != 0; i++)
            ;
        if (i == CT_N_SCENARIOS) {
            fprintf(stderr, "consistency-test: no scenario '%s'; one of:\n", name);
            ct_scen_list(stderr);
            return 2;
        }
    }
    seed = conf->seed > 0 ? (uint64_t)conf->seed : ((uint64_t)time(NULL) << 16) ^ (uint64_t)getpid();
    ct_say(&env.rep, "== consistency-test: orchestrator http://%s:%d, %d shards (%s), seed %" PRIu64
           " (--ct-seed=%" PRIu64 " repeats it)", conf->orch_host, ct_conf_orch_port(conf), env.n_shards,
           sr_strategy_name(env.map.strategy), seed, seed);
    ct_services_up(&env, started);
    if (!ct_assert(&env.rep, ct_orch_ready(&env), "services ready: GET /readyz answers 200"))
        goto done;
    for (size_t i = 0; i < CT_N_SCENARIOS; i++) {
        ct_scen s;
        int failed_before = env.rep.failed;
        long dead0, dead1;
        long long t0 = ct_now_ms();

        if (name != NULL && strcmp(ct_scenarios[i].name, name) != 0)
            continue;
        memset(&s, 0, sizeof(s));
        s.env = &env;
        s.name = ct_scenarios[i].name;
        s.rng = seed + i * UINT64_C(0x9e3779b97f4a7c15);
        if (s.rng == 0)
            s.rng = 1;
        snprintf(s.tag, sizeof(s.tag), "%" PRIx64, (seed ^ (uint64_t)ct_now_ms()) & UINT64_C(0xffffffffff));
        ct_say(&env.rep, "== scenario %s: %s", s.name, ct_scenarios[i].what);
        dead0 = ct_dead_letters(&env);
        if (ct_quiet_baseline(&env, &err) != CG_OK)
            ct_detail(&env.rep, "%s", err.msg);
        for (size_t k = 0; k < env.n_held; k++)
            ct_say(&env.rep, "   held before this scenario (not counted against it): %s %ld messages",
                   env.held_name[k], env.held_base[k]);
        ct_scenarios[i].fn(&s);
        dead1 = ct_dead_letters(&env);
        ct_assert(&env.rep, dead0 >= 0 && dead1 == dead0, "no message dead-lettered: %s holds %ld "
                  "before, %ld after", MSG_QUEUE_DEAD, dead0, dead1);
        ran++;
        scen_passed += env.rep.failed == failed_before;
        ct_say(&env.rep, "== scenario %s: %s in %.1f s", s.name, env.rep.failed == failed_before ? "PASS" : "FAIL",
               (double)(ct_now_ms() - t0) / 1000.0);
        ct_snapshot_free(&s.snap);
        free(s.grabs);
    }
    ct_say(&env.rep, "scenarios passed: %d of %d (the count below is per assertion)", scen_passed, ran);
done:
    ct_services_down(&env, started);
    ct_report_summary(&env.rep);
    ct_env_close(&env);
    return env.rep.failed == 0 ? 0 : 1;
}
