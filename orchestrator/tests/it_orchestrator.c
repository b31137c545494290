/* it_orchestrator.c - integration tests of the orchestrator against the real
 * stack with the real stock-svc and order-svc (scripts/services), through its
 * HTTP API: a grant end to end, business failures, bad input that changes
 * nothing, Idempotency-Key repeats (also of a key left bound to a saga that
 * was never logged), 202 while stock-svc is down, compensation
 * when a shard server dies, recovery after SIGKILL in the middle of a burst,
 * two orchestrators at once, and adoption of a dead instance's sagas.
 *
 * The runner exports the stack's stack.env, STACK_DIR and REPO_DIR. The test
 * applies the schema (`scripts/stack migrate` when the stack has it, else the
 * mariadb client), starts the services it needs, and brings back whatever it
 * kills. HTTP goes through evhttp_connection on the test's own loop; Redis
 * and MariaDB checks are blocking (this is a test, not a service). Every wait
 * polls with a deadline. */
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "db.h"
#include "itkit.h"
#include "keys.h"
#include "log.h"
#include "msg.h"
#include "rds_sync.h"
#include "sr_map.h"
#include "testhelp.h"

#define MAX_SHARDS 16
#define ADDR_BUF 256
#define HTTP_TIMEOUT_S 10
#define SETTLE_MS 60000          /* bound for every saga of a scenario to finish */
#define DEADLINE_SLACK_MS 1500   /* an answer may come this much after http_deadline_ms */
#define HTTP_DEADLINE_MS 2000    /* the orchestrator's default */

static struct event_base *base;
static const char *repo_dir, *db_user;
static char db_password[256];
static char shard_specs[MAX_SHARDS][ADDR_BUF];
static int n_shards;
static int port1, port2;              /* orchestrator, orchestrator-2 */
static redisContext *rc;              /* the Redis master */
static int shard_server_killed;       /* mariadb-s0 must come back */
static int stock_svc_stopped;
static int order_svc_stopped;

/* ---- stack helpers ---------------------------------------------------------------- */

static int services(const char *action, const char *names)
{
    return itk_script("services", "%s %s", action, names);
}

/* Runs `scripts/services ACTION NAME` in a child while the loop keeps the
 * test's requests flowing, so that a kill lands in the middle of a burst;
 * returns its exit status (-1 on failure or after timeout_ms). */
static int services_async(const char *action, const char *name, int timeout_ms)
{
    char cmd[1024];
    long long end = itk_now_ms() + timeout_ms;
    pid_t pid;
    int st = 0;

    snprintf(cmd, sizeof(cmd), "\"%s/scripts/services\" %s %s >&2", itk_env("REPO_DIR", "."),
             action, name);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    for (;;) {
        pid_t w = waitpid(pid, &st, WNOHANG);

        if (w == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        if (w < 0 || itk_now_ms() >= end)
            return -1;
        itk_run_for(base, 2);
    }
}

static void bring_back(void)
{
    if (shard_server_killed && itk_script("stack", "start-one mariadb-s0") == 0)
        shard_server_killed = 0;
    if (stock_svc_stopped && services("start", "stock-svc") == 0)
        stock_svc_stopped = 0;
    if (order_svc_stopped && services("start", "order-svc") == 0)
        order_svc_stopped = 0;
}

/* A new connection to the master the sentinels give (one round, ROLE
 * checked); blocking, for checks. */
static int redis_connect(void)
{
    rds_sync_opts o = {itk_env("SENTINEL_ADDRS", ""), itk_env("SENTINEL_MASTER_NAME", "grab"),
                       2000, 0, NULL, LOG_LEVEL_DEBUG};
    cg_error err;

    if (rc != NULL) {
        redisFree(rc);
        rc = NULL;
    }
    return rds_sync_master(&o, &rc, NULL, 0, NULL, &err) == CG_OK ? 0 : -1;
}

static redisReply *rq(const char *fmt, ...)
{
    redisReply *r = NULL;
    va_list ap;

    for (int attempt = 0; attempt < 2 && r == NULL; attempt++) {
        if (rc == NULL || rc->err)
            redis_connect();
        if (rc == NULL)
            break;
        va_start(ap, fmt);
        r = redisvCommand(rc, fmt, ap);
        va_end(ap);
        if (r == NULL) {
            redisFree(rc);
            rc = NULL;
        }
    }
    return r;
}

/* An integer command's answer (GET of a number, SCARD, ZCARD, DBSIZE); -1 on
 * no answer, -2 on nil. */
static long long rint_(const char *fmt, ...)
{
    redisReply *r = NULL;
    long long v = -1;
    va_list ap;

    if (rc == NULL || rc->err)
        redis_connect();
    if (rc != NULL) {
        va_start(ap, fmt);
        r = redisvCommand(rc, fmt, ap);
        va_end(ap);
    }
    if (r != NULL && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r != NULL && r->type == REDIS_REPLY_STRING)
        v = atoll(r->str);
    else if (r != NULL && r->type == REDIS_REPLY_NIL)
        v = -2;
    freeReplyObject(r);
    return v;
}

static long long stock_of(long long c)
{
    return rint_("GET stock:{%lld}", c);
}

static long long holders_of(long long c)
{
    return rint_("SCARD stock:{%lld}:holders", c);
}

/* The saga's state in the log, "" when absent. */
static void saga_state(const char *id, char *out, size_t size)
{
    redisReply *r = rq("HGET saga:%s state", id);

    snprintf(out, size, "%s", r != NULL && r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
}

/* ---- MariaDB ----------------------------------------------------------------------- */

static MYSQL *shard_connect(int i)
{
    db_config cfg;
    char buf[ADDR_BUF];
    cg_error err = {0, ""};
    MYSQL *conn = NULL;

    db_config_defaults(&cfg);
    if (db_parse_addr(shard_specs[i], &cfg, buf, sizeof(buf), &err) != CG_OK)
        return NULL;
    cfg.user = db_user;
    cfg.password = db_password;
    cfg.connect_timeout_ms = 2000;
    if (db_connect(&cfg, &conn, &err) != CG_OK)
        return NULL;
    return conn;
}

/* The sum of one count query over every shard; -1 when a shard cannot answer. */
static long long shards_count(const char *fmt, ...)
{
    char sql[512];
    long long total = 0;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    for (int i = 0; i < n_shards; i++) {
        MYSQL *conn = shard_connect(i);
        cg_error err = {0, ""};
        int64_t n = 0;

        if (conn == NULL || db_query_int64(conn, sql, &n, &err) != CG_OK) {
            db_close(conn);
            return -1;
        }
        total += n;
        db_close(conn);
    }
    return total;
}

static long long rows_of_coupon(long long c)
{
    return shards_count("SELECT COUNT(*) FROM coupon_results WHERE coupon_id = %lld", c);
}

static long long rows_of_saga(const char *id)
{
    return shards_count("SELECT COUNT(*) FROM coupon_results WHERE saga_id = '%s'", id);
}

static int apply_schema(void)
{
    char cmd[2048], main_addr[ADDR_BUF];
    const char *pwfile = itk_env("MARIADB_PASSWORD_FILE", "");
    int status;

    if (itk_script("stack", "migrate") == 0)
        return 0;
    fprintf(stderr, "(no scripts/stack migrate: applying the schema with the mariadb client)\n");
    snprintf(main_addr, sizeof(main_addr), "%s", itk_env("MARIADB_MAIN", ""));
    for (int i = -1; i < n_shards; i++) {
        const char *spec = i < 0 ? main_addr : shard_specs[i];
        char host[128] = "", db[128] = "";
        int port = 0;

        if (sscanf(spec, "%127[^:]:%d/%127s", host, &port, db) != 3)
            return -1;
        snprintf(cmd, sizeof(cmd), "mariadb -h%s -P%d -u%s -p\"$(cat '%s')\" %s < '%s/schema/%s.sql'",
                 host, port, db_user, pwfile, db, repo_dir, i < 0 ? "main" : "shard");
        status = system(cmd);
        if (status != 0)
            return -1;
    }
    return 0;
}

/* ---- HTTP ------------------------------------------------------------------------- */

typedef struct hres {
    int done;
    int status;          /* HTTP status; -1: no answer (connection error) */
    json_t *json;        /* the parsed body, NULL when not JSON */
    long long ms;        /* how long it took */
    long long t0;
} hres;

static void hres_clear(hres *h)
{
    json_decref(h->json);
    memset(h, 0, sizeof(*h));
}

static void on_http(struct evhttp_request *req, void *arg)
{
    hres *h = arg;

    h->done = 1;
    h->ms = itk_now_ms() - h->t0;
    h->status = req != NULL ? evhttp_request_get_response_code(req) : -1;
    if (h->status == 0)
        h->status = -1;
    if (req != NULL && h->status > 0) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(in);
        json_error_t jerr;

        h->json = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &jerr);
    }
}

static struct evhttp_connection *conn_new(int port)
{
    struct evhttp_connection *c = evhttp_connection_base_new(base, NULL, "127.0.0.1",
                                                             (unsigned short)port);

    if (c != NULL)
        evhttp_connection_set_timeout(c, HTTP_TIMEOUT_S);
    return c;
}

/* Queues a request on conn; h is filled when it completes. */
static int http_send(struct evhttp_connection *conn, int port, enum evhttp_cmd_type method,
                     const char *path, const char *body, const char *idem, hres *h)
{
    struct evhttp_request *req = evhttp_request_new(on_http, h);
    struct evkeyvalq *hdr;
    char host[64];

    memset(h, 0, sizeof(*h));
    h->t0 = itk_now_ms();
    if (req == NULL)
        return -1;
    hdr = evhttp_request_get_output_headers(req);
    snprintf(host, sizeof(host), "127.0.0.1:%d", port);
    evhttp_add_header(hdr, "Host", host);
    if (body != NULL) {
        evhttp_add_header(hdr, "Content-Type", "application/json");
        evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
    }
    if (idem != NULL)
        evhttp_add_header(hdr, "Idempotency-Key", idem);
    return evhttp_make_request(conn, req, method, path);
}

static int hres_done(void *arg)
{
    return ((hres *)arg)->done;
}

/* One request, waited for. */
static int http_call(int port, enum evhttp_cmd_type method, const char *path, const char *body,
                     const char *idem, hres *h)
{
    struct evhttp_connection *c = conn_new(port);

    if (c == NULL || http_send(c, port, method, path, body, idem, h) != 0) {
        if (c != NULL)
            evhttp_connection_free(c);
        h->status = -1;
        return -1;
    }
    itk_run_until(base, hres_done, h, (HTTP_TIMEOUT_S + 5) * 1000);
    evhttp_connection_free(c);
    return h->status;
}

static const char *jstr(const hres *h, const char *key)
{
    json_t *v = h->json != NULL ? json_object_get(h->json, key) : NULL;

    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* An integer field; -1 when absent or not an integer (null included). */
static long long jint(const hres *h, const char *key)
{
    json_t *v = h->json != NULL ? json_object_get(h->json, key) : NULL;

    return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

static int grab(int port, long long user, long long coupon, const char *idem, hres *h)
{
    char body[160];

    snprintf(body, sizeof(body), "{\"user_id\":%lld,\"coupon_id\":%lld}", user, coupon);
    return http_call(port, EVHTTP_REQ_POST, "/api/coupon/grab", body, idem, h);
}

/* Creates a coupon in room `room` with `stock`; its id, or -1. */
static long long create_coupon(long long room, long long stock)
{
    char body[200];
    hres h;
    long long id;

    snprintf(body, sizeof(body), "{\"room_id\":%lld,\"coupon_name\":\"it %lld\",\"total_stock\":%lld,"
             "\"discount_amount\":5,\"description\":\"it_orchestrator\"}", room, stock, stock);
    if (http_call(port1, EVHTTP_REQ_POST, "/admin/coupons", body, NULL, &h) != 201) {
        TH_FAIL_AT("POST /admin/coupons: status %d", h.status);
        hres_clear(&h);
        return -1;
    }
    id = jint(&h, "coupon_id");
    if (id <= 0 || stock_of(id) != stock)
        TH_FAIL_AT("coupon %lld: stock %lld in Redis, want %lld", id, stock_of(id), stock);
    hres_clear(&h);
    return id;
}

/* A burst: n grabs of coupon by users user0.., spread over `conns`
 * connections to the given ports (alternating), all in flight at once. */
typedef struct burst {
    int n;
    hres *res;
    long long *users;
    int *ports;
    struct evhttp_connection **conns;
    int n_conns;
} burst;

static int burst_all_done(void *arg)
{
    burst *b = arg;

    for (int i = 0; i < b->n; i++)
        if (!b->res[i].done)
            return 0;
    return 1;
}

static int burst_count_done(const burst *b)
{
    int k = 0;

    for (int i = 0; i < b->n; i++)
        k += b->res[i].done;
    return k;
}

static void burst_start(burst *b, int n, long long user0, long long coupon, const int *ports,
                        int n_ports, int conns)
{
    memset(b, 0, sizeof(*b));
    b->n = n;
    b->res = calloc((size_t)n, sizeof(*b->res));
    b->users = calloc((size_t)n, sizeof(*b->users));
    b->ports = calloc((size_t)n, sizeof(*b->ports));
    b->conns = calloc((size_t)conns, sizeof(*b->conns));
    b->n_conns = conns;
    for (int k = 0; k < conns; k++)
        b->conns[k] = conn_new(ports[k % n_ports]);
    for (int i = 0; i < n; i++) {
        char body[160];
        int k = i % conns;

        b->users[i] = user0 + i;
        b->ports[i] = ports[k % n_ports];
        snprintf(body, sizeof(body), "{\"user_id\":%lld,\"coupon_id\":%lld}", b->users[i], coupon);
        if (b->conns[k] == NULL ||
            http_send(b->conns[k], b->ports[i], EVHTTP_REQ_POST, "/api/coupon/grab", body, NULL,
                      &b->res[i]) != 0) {
            b->res[i].done = 1;
            b->res[i].status = -1;
        }
    }
}

static void burst_free(burst *b)
{
    for (int k = 0; k < b->n_conns; k++)
        if (b->conns[k] != NULL)
            evhttp_connection_free(b->conns[k]);
    for (int i = 0; i < b->n; i++)
        hres_clear(&b->res[i]);
    free(b->res);
    free(b->users);
    free(b->ports);
    free(b->conns);
}

/* ---- invariants ---------------------------------------------------------------------- */

/* Every saga of coupon c in the log is terminal (the system is quiet for it),
 * waited for up to timeout_ms; returns the number of sagas not terminal. */
typedef struct coupon_sagas {
    int total, completed, compensated, other;
} coupon_sagas;

static void count_sagas(long long c, coupon_sagas *cs)
{
    char cursor[32] = "0";

    memset(cs, 0, sizeof(*cs));
    do {
        redisReply *r = rq("SCAN %s MATCH saga:* COUNT 1000", cursor);

        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            freeReplyObject(r);
            cs->other = -1;
            return;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            redisReply *h = rq("HMGET %s coupon_id state", r->element[1]->element[i]->str);

            if (h != NULL && h->type == REDIS_REPLY_ARRAY && h->elements == 2 &&
                h->element[0]->type == REDIS_REPLY_STRING && atoll(h->element[0]->str) == c) {
                const char *st = h->element[1]->type == REDIS_REPLY_STRING ? h->element[1]->str : "";

                cs->total++;
                if (strcmp(st, "COMPLETED") == 0)
                    cs->completed++;
                else if (strcmp(st, "COMPENSATED") == 0)
                    cs->compensated++;
                else
                    cs->other++;
            }
            freeReplyObject(h);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
}

static int wait_quiet(long long c, int timeout_ms, coupon_sagas *cs)
{
    long long end = itk_now_ms() + timeout_ms;

    for (;;) {
        count_sagas(c, cs);
        if (cs->other == 0)
            return 1;
        if (itk_now_ms() >= end)
            return 0;
        itk_run_for(base, 200);
    }
}

/* Conservation for one coupon once it is quiet: total = stock + holders,
 * holders = order rows = completed sagas. */
static void check_conservation(long long c, long long total, const coupon_sagas *cs)
{
    long long stock = stock_of(c), holders = holders_of(c), rows = rows_of_coupon(c);

    TH_CHECK(stock >= 0);
    if (stock + holders != total)
        TH_FAIL_AT("coupon %lld: stock %lld + holders %lld != total %lld", c, stock, holders, total);
    if (holders != rows)
        TH_FAIL_AT("coupon %lld: holders %lld != order rows %lld", c, holders, rows);
    if (cs != NULL && rows != cs->completed)
        TH_FAIL_AT("coupon %lld: order rows %lld != completed sagas %d", c, rows, cs->completed);
}

/* Every answer agrees with the database: 1 has its row, a definite 0 none. */
static void check_answers(const burst *b, int *granted, int *refused, int *other)
{
    *granted = *refused = *other = 0;
    for (int i = 0; i < b->n; i++) {
        const hres *h = &b->res[i];
        const char *id = jstr(h, "saga_id");
        long long gs = jint(h, "grab_status");

        if (h->status == 200 && gs == 1) {
            (*granted)++;
            if (id == NULL || rows_of_saga(id) != 1)
                TH_FAIL_AT("user %lld granted (saga %s) without exactly one row", b->users[i],
                           id ? id : "?");
        } else if (h->status == 200 && gs == 0) {
            (*refused)++;
            if (id != NULL && rows_of_saga(id) != 0)
                TH_FAIL_AT("user %lld refused (saga %s) but has a row", b->users[i], id);
        } else {
            (*other)++;
        }
    }
}

/* Polls GET /api/grab/{id} until the saga is terminal; its state. */
static void wait_saga(int port, const char *id, int timeout_ms, char *state, size_t size)
{
    long long end = itk_now_ms() + timeout_ms;
    char path[80];

    snprintf(path, sizeof(path), "/api/grab/%s", id);
    state[0] = '\0';
    for (;;) {
        hres h;

        if (http_call(port, EVHTTP_REQ_GET, path, NULL, NULL, &h) == 200 && jstr(&h, "state"))
            snprintf(state, size, "%s", jstr(&h, "state"));
        hres_clear(&h);
        if (strcmp(state, "COMPLETED") == 0 || strcmp(state, "COMPENSATED") == 0 ||
            itk_now_ms() >= end)
            return;
        itk_run_for(base, 200);
    }
}

static int wait_zcard_zero(const char *instance, int timeout_ms)
{
    long long end = itk_now_ms() + timeout_ms;

    for (;;) {
        long long n = rint_("ZCARD sagas:active:%s", instance);

        if (n == 0)
            return 1;
        if (itk_now_ms() >= end)
            return 0;
        itk_run_for(base, 200);
    }
}

static void print_log_tail(const char *name)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "tail -n 30 '%s/logs/%s.log' >&2", itk_env("STACK_DIR", "."), name);
    if (system(cmd) != 0)
        fprintf(stderr, "(no log for %s)\n", name);
}

/* ---- tests -------------------------------------------------------------------------- */

static void test_health(void)
{
    hres h;

    TH_CHECK_INT(http_call(port1, EVHTTP_REQ_GET, "/healthz", NULL, NULL, &h), 200);
    hres_clear(&h);
    TH_CHECK_INT(http_call(port1, EVHTTP_REQ_GET, "/readyz", NULL, NULL, &h), 200);
    TH_CHECK_STR(jstr(&h, "status"), "ready");
    hres_clear(&h);
}

static void test_grant(void)
{
    long long c = create_coupon(11, 5);
    char state[32], id[MSG_SAGA_ID_LEN + 1] = "";
    hres h;

    TH_REQUIRE(c > 0);
    TH_CHECK_INT(grab(port1, 1001, c, NULL, &h), 200);
    TH_CHECK_INT(jint(&h, "grab_status"), 1);
    TH_CHECK_INT(jint(&h, "user_id"), 1001);
    TH_CHECK_INT(jint(&h, "coupon_id"), c);
    TH_CHECK_INT(jint(&h, "room_id"), 11);
    TH_CHECK(jstr(&h, "fail_reason") == NULL);
    if (jstr(&h, "saga_id") != NULL)
        snprintf(id, sizeof(id), "%s", jstr(&h, "saga_id"));
    hres_clear(&h);
    TH_REQUIRE(msg_saga_id_valid(id));
    TH_CHECK_INT(stock_of(c), 4);
    TH_CHECK_INT(rows_of_saga(id), 1);
    TH_CHECK_INT(shards_count("SELECT COUNT(*) FROM coupon_results WHERE saga_id = '%s' AND "
                              "user_id = 1001 AND coupon_id = %lld AND room_id = 11 AND "
                              "grab_status = 1", id, c), 1);
    saga_state(id, state, sizeof(state));
    TH_CHECK_STR(state, "COMPLETED");
    TH_CHECK_INT(rint_("ZSCORE sagas:active:orchestrator %s", id), -2);
    /* the read API */
    {
        char path[80];

        snprintf(path, sizeof(path), "/api/grab/%s", id);
        TH_CHECK_INT(http_call(port1, EVHTTP_REQ_GET, path, NULL, NULL, &h), 200);
        TH_CHECK_STR(jstr(&h, "state"), "COMPLETED");
        TH_CHECK_INT(jint(&h, "grab_status"), 1);
        TH_CHECK_INT(jint(&h, "user_id"), 1001);
        hres_clear(&h);
    }
}

static void test_refusals(void)
{
    long long c = create_coupon(12, 2);
    hres h;

    TH_REQUIRE(c > 0);
    TH_CHECK_INT(grab(port1, 2001, c, NULL, &h), 200);
    TH_CHECK_INT(jint(&h, "grab_status"), 1);
    hres_clear(&h);
    TH_CHECK_INT(grab(port1, 2001, c, NULL, &h), 200);   /* the same user again */
    TH_CHECK_INT(jint(&h, "grab_status"), 0);
    TH_CHECK_STR(jstr(&h, "fail_reason"), "duplicate");
    hres_clear(&h);
    TH_CHECK_INT(grab(port1, 2002, c, NULL, &h), 200);
    TH_CHECK_INT(jint(&h, "grab_status"), 1);
    hres_clear(&h);
    TH_CHECK_INT(grab(port1, 2003, c, NULL, &h), 200);   /* sold out */
    TH_CHECK_INT(jint(&h, "grab_status"), 0);
    TH_CHECK_STR(jstr(&h, "fail_reason"), "out_of_stock");
    hres_clear(&h);
    TH_CHECK_INT(grab(port1, 2004, c, NULL, &h), 200);   /* from the sold-out flag or a saga */
    TH_CHECK_INT(jint(&h, "grab_status"), 0);
    TH_CHECK_STR(jstr(&h, "fail_reason"), "out_of_stock");
    hres_clear(&h);
    TH_CHECK_INT(grab(port1, 2005, 999999999, NULL, &h), 200);   /* no such coupon */
    TH_CHECK_INT(jint(&h, "grab_status"), 0);
    TH_CHECK_STR(jstr(&h, "fail_reason"), "unknown_coupon");
    hres_clear(&h);
    TH_CHECK_INT(stock_of(c), 0);
    TH_CHECK_INT(rows_of_coupon(c), 2);
    TH_CHECK_INT(holders_of(c), 2);
}

/* Copies tmpl with '@' replaced by the coupon id. */
static void fill_coupon(char *out, size_t size, const char *tmpl, long long c)
{
    size_t n = 0;

    for (const char *p = tmpl; *p != '\0' && n + 24 < size; p++) {
        if (*p == '@')
            n += (size_t)snprintf(out + n, size - n, "%lld", c);
        else
            out[n++] = *p;
    }
    out[n] = '\0';
}

static void test_bad_input(void)
{
    static const struct {
        enum evhttp_cmd_type method;
        const char *path;
        const char *body;        /* "@": the coupon id */
        const char *idem;
        int status;
        const char *field;       /* NULL: not checked */
    } cases[] = {
        {EVHTTP_REQ_POST, "/api/coupon/grab", "{\"coupon_id\":@}", NULL, 400, "user_id"},
        {EVHTTP_REQ_POST, "/api/coupon/grab", "{\"user_id\":\"7\",\"coupon_id\":@}", NULL, 400,
         "user_id"},
        {EVHTTP_REQ_POST, "/api/coupon/grab", "{\"user_id\":7,\"coupon_id\":@,\"vip\":true}",
         NULL, 400, "vip"},
        {EVHTTP_REQ_POST, "/api/coupon/grab", "{\"user_id\":7,\"coupon_id\":@,\"room_id\":99}",
         NULL, 400, "room_id"},
        {EVHTTP_REQ_POST, "/api/coupon/grab", "{\"user_id\":0,\"coupon_id\":@}", NULL, 400,
         "user_id"},
        {EVHTTP_REQ_POST, "/api/coupon/grab", "not json @", NULL, 400, NULL},
        {EVHTTP_REQ_POST, "/api/coupon/grab", "{\"user_id\":7,\"coupon_id\":@}", "bad key!", 400,
         "Idempotency-Key"},
        {EVHTTP_REQ_GET, "/api/coupon/grab", NULL, NULL, 405, NULL},
        {EVHTTP_REQ_PUT, "/api/coupon/grab", "{\"user_id\":7,\"coupon_id\":@}", NULL, 405, NULL},
        {EVHTTP_REQ_POST, "/api/coupon/grabs", "{\"user_id\":7,\"coupon_id\":@}", NULL, 404, NULL},
        {EVHTTP_REQ_GET, "/api/grab/not-a-saga-id", NULL, NULL, 400, "saga_id"},
        {EVHTTP_REQ_GET, "/api/grab/ffffffffffffffffffffffffffffffff", NULL, NULL, 404, NULL},
        {EVHTTP_REQ_POST, "/admin/coupons", "{\"room_id\":1,\"total_stock\":@}", NULL, 400,
         "coupon_name"},
    };
    long long c = create_coupon(13, 10), dbsize, rows;
    char body[8192];
    hres h;

    TH_REQUIRE(c > 0);
    itk_run_for(base, 300);   /* let the heartbeat and sweeps settle */
    dbsize = rint_("DBSIZE");
    rows = shards_count("SELECT COUNT(*) FROM coupon_results");
    for (size_t i = 0; i < TH_TABLE_LEN(cases); i++) {
        char b[256];

        if (cases[i].body != NULL)
            fill_coupon(b, sizeof(b), cases[i].body, c);
        http_call(port1, cases[i].method, cases[i].path, cases[i].body ? b : NULL, cases[i].idem, &h);
        if (h.status != cases[i].status)
            TH_FAIL_AT("%s %s: status %d, want %d", cases[i].path, cases[i].body ? b : "",
                       h.status, cases[i].status);
        if (h.json == NULL || jstr(&h, "error") == NULL)
            TH_FAIL_AT("%s: not a JSON error", cases[i].path);
        if (cases[i].field != NULL && (jstr(&h, "field") == NULL ||
                                       strcmp(jstr(&h, "field"), cases[i].field) != 0))
            TH_FAIL_AT("%s %s: field '%s', want '%s'", cases[i].path, cases[i].body ? b : "",
                       jstr(&h, "field") ? jstr(&h, "field") : "(none)", cases[i].field);
        hres_clear(&h);
    }
    /* 413: a body just over the limit (4096) gets a JSON answer */
    memset(body, ' ', sizeof(body));
    snprintf(body, 64, "{\"user_id\":7,\"coupon_id\":%lld", c);
    body[strlen(body)] = ' ';
    memcpy(body + 5000, "}", 2);
    TH_CHECK_INT(http_call(port1, EVHTTP_REQ_POST, "/api/coupon/grab", body, NULL, &h), 413);
    TH_CHECK_STR(jstr(&h, "error"), "payload_too_large");
    hres_clear(&h);
    /* nothing changed */
    TH_CHECK_INT(stock_of(c), 10);
    TH_CHECK_INT(holders_of(c), 0);
    TH_CHECK_INT(shards_count("SELECT COUNT(*) FROM coupon_results"), rows);
    TH_CHECK_INT(rint_("DBSIZE"), dbsize);
}

static void test_idempotency(void)
{
    long long c = create_coupon(14, 10);
    char first[MSG_SAGA_ID_LEN + 1] = "", key[64];
    hres h;

    TH_REQUIRE(c > 0);
    snprintf(key, sizeof(key), "it-%lld-%ld", c, (long)time(NULL));
    TH_CHECK_INT(grab(port1, 3001, c, key, &h), 200);
    TH_CHECK_INT(jint(&h, "grab_status"), 1);
    if (jstr(&h, "saga_id") != NULL)
        snprintf(first, sizeof(first), "%s", jstr(&h, "saga_id"));
    hres_clear(&h);
    TH_REQUIRE(first[0] != '\0');
    for (int i = 0; i < 3; i++) {
        TH_CHECK_INT(grab(port1, 3001, c, key, &h), 200);
        TH_CHECK_INT(jint(&h, "grab_status"), 1);
        TH_CHECK_STR(jstr(&h, "saga_id"), first);
        hres_clear(&h);
    }
    /* the same key for another user's grab is refused */
    TH_CHECK_INT(grab(port1, 3002, c, key, &h), 422);
    hres_clear(&h);
    TH_CHECK_INT(stock_of(c), 9);
    TH_CHECK_INT(rows_of_coupon(c), 1);
    /* two keyed requests at once: one saga */
    {
        struct evhttp_connection *a = conn_new(port1), *b = conn_new(port1);
        hres ha, hb;
        char body[160], key2[80];
        struct {
            hres *x, *y;
        } both = {&ha, &hb};

        snprintf(key2, sizeof(key2), "%s-concurrent", key);
        snprintf(body, sizeof(body), "{\"user_id\":3003,\"coupon_id\":%lld}", c);
        TH_REQUIRE(a != NULL && b != NULL);
        TH_REQUIRE(http_send(a, port1, EVHTTP_REQ_POST, "/api/coupon/grab", body, key2, &ha) == 0);
        TH_REQUIRE(http_send(b, port1, EVHTTP_REQ_POST, "/api/coupon/grab", body, key2, &hb) == 0);
        (void)both;
        itk_run_until(base, hres_done, &ha, 15000);
        itk_run_until(base, hres_done, &hb, 15000);
        TH_CHECK_INT(ha.status, 200);
        TH_CHECK_INT(hb.status, 200);
        TH_CHECK(jstr(&ha, "saga_id") != NULL && jstr(&hb, "saga_id") != NULL &&
                 strcmp(jstr(&ha, "saga_id"), jstr(&hb, "saga_id")) == 0);
        TH_CHECK_INT(jint(&ha, "grab_status"), 1);
        TH_CHECK_INT(jint(&hb, "grab_status"), 1);
        hres_clear(&ha);
        hres_clear(&hb);
        evhttp_connection_free(a);
        evhttp_connection_free(b);
    }
    TH_CHECK_INT(stock_of(c), 8);
    TH_CHECK_INT(rows_of_coupon(c), 2);
}

/* A key bound to a saga that was never logged, as a crash between binding
 * the key and the STARTED write used to leave it (consistency-test
 * orchestrator-kill): the retry must get a saga that exists, not 202 with
 * the phantom's id forever (and 404 from GET /api/grab). */
static void test_idempotency_unlogged_key(void)
{
    long long c = create_coupon(21, 10);
    char phantom[MSG_SAGA_ID_LEN + 1], got[MSG_SAGA_ID_LEN + 1] = "", key[64], ikey[KEY_MAX];
    char path[128], state[32];
    redisReply *r;
    hres h;

    TH_REQUIRE(c > 0);
    TH_REQUIRE(msg_saga_id_new(phantom) == CG_OK);
    snprintf(key, sizeof(key), "it-phantom-%lld-%ld", c, (long)time(NULL));
    snprintf(ikey, sizeof(ikey), KEY_IDEMPOTENCY_FMT, key);
    freeReplyObject(rq("SET %s %s EX 600", ikey, phantom));
    TH_REQUIRE(rint_("EXISTS %s", ikey) == 1);
    TH_REQUIRE(rint_("EXISTS saga:%s", phantom) == 0);

    TH_CHECK_INT(grab(port1, 3101, c, key, &h), 200);
    TH_CHECK_INT(jint(&h, "grab_status"), 1);
    if (jstr(&h, "saga_id") != NULL)
        snprintf(got, sizeof(got), "%s", jstr(&h, "saga_id"));
    hres_clear(&h);
    TH_REQUIRE(msg_saga_id_valid(got));
    TH_CHECK(strcmp(got, phantom) != 0);
    saga_state(got, state, sizeof(state));
    TH_CHECK_STR(state, "COMPLETED");
    snprintf(path, sizeof(path), "/api/grab/%s", got);
    TH_CHECK_INT(http_call(port1, EVHTTP_REQ_GET, path, NULL, NULL, &h), 200);
    TH_CHECK_INT(jint(&h, "grab_status"), 1);
    hres_clear(&h);
    /* the key now names the logged saga */
    r = rq("GET %s", ikey);
    TH_CHECK(r != NULL && r->type == REDIS_REPLY_STRING && strcmp(r->str, got) == 0);
    freeReplyObject(r);
    /* and behaves as any key: a repeat answers that saga, another user 422 */
    TH_CHECK_INT(grab(port1, 3101, c, key, &h), 200);
    TH_CHECK_STR(jstr(&h, "saga_id"), got);
    TH_CHECK_INT(jint(&h, "grab_status"), 1);
    hres_clear(&h);
    TH_CHECK_INT(grab(port1, 3102, c, key, &h), 422);
    hres_clear(&h);
    TH_CHECK_INT(stock_of(c), 9);
    TH_CHECK_INT(rows_of_coupon(c), 1);
}

static void test_pending_when_stock_down(void)
{
    long long c = create_coupon(15, 10);
    char id[MSG_SAGA_ID_LEN + 1] = "", state[32];
    coupon_sagas cs;
    hres h;

    TH_REQUIRE(c > 0);
    TH_REQUIRE(services("stop", "stock-svc") == 0);
    stock_svc_stopped = 1;
    TH_CHECK_INT(grab(port1, 4001, c, NULL, &h), 202);
    TH_CHECK_STR(jstr(&h, "status"), "pending");
    TH_CHECK(h.ms >= HTTP_DEADLINE_MS - 100 && h.ms <= HTTP_DEADLINE_MS + DEADLINE_SLACK_MS);
    if (jstr(&h, "saga_id") != NULL)
        snprintf(id, sizeof(id), "%s", jstr(&h, "saga_id"));
    hres_clear(&h);
    TH_REQUIRE(msg_saga_id_valid(id));
    saga_state(id, state, sizeof(state));
    TH_CHECK(strcmp(state, "STARTED") == 0 || strcmp(state, "COMPENSATING") == 0);
    /* a client that hangs up while its grab waits: the orchestrator answers
     * into the void at the deadline and stays healthy */
    {
        struct evhttp_connection *gone = conn_new(port1);
        hres hg;
        char body[160];

        snprintf(body, sizeof(body), "{\"user_id\":4002,\"coupon_id\":%lld}", c);
        TH_REQUIRE(gone != NULL);
        TH_REQUIRE(http_send(gone, port1, EVHTTP_REQ_POST, "/api/coupon/grab", body, NULL, &hg) == 0);
        itk_run_for(base, 200);
        evhttp_connection_free(gone);   /* closes the socket; the request is cancelled */
        itk_run_for(base, HTTP_DEADLINE_MS + 500);
        TH_CHECK_INT(http_call(port1, EVHTTP_REQ_GET, "/healthz", NULL, NULL, &h), 200);
        hres_clear(&h);
        hres_clear(&hg);
    }
    TH_REQUIRE(services("start", "stock-svc") == 0);
    stock_svc_stopped = 0;
    wait_saga(port1, id, SETTLE_MS, state, sizeof(state));
    TH_CHECK(strcmp(state, "COMPLETED") == 0 || strcmp(state, "COMPENSATED") == 0);
    TH_CHECK_INT(rows_of_saga(id), strcmp(state, "COMPLETED") == 0 ? 1 : 0);
    TH_CHECK(wait_quiet(c, SETTLE_MS, &cs));
    TH_CHECK_INT(cs.total, 2);
    check_conservation(c, 10, &cs);
    fprintf(stdout, "    saga %s ended %s\n", id, state);
}

/* Users of the shards that live on mariadb-s0 (the server of shard 0). */
static int users_on_server0(long long user0, long long *out, int want)
{
    sr_map map;
    cg_error err = {0, ""};
    enum sr_strategy st;
    char server0[ADDR_BUF];
    int on0[MAX_SHARDS] = {0}, k = 0;

    if (sr_strategy_parse(itk_env("SHARD_STRATEGY", "hash"), &st) != CG_OK ||
        sr_map_build(&map, st, n_shards, itk_env("SHARD_MAP", ""), &err) != CG_OK)
        return 0;
    snprintf(server0, sizeof(server0), "%s", shard_specs[0]);
    *strchr(server0, '/') = '\0';
    for (int i = 0; i < n_shards; i++)
        on0[i] = strncmp(shard_specs[i], server0, strlen(server0)) == 0 &&
                 shard_specs[i][strlen(server0)] == '/';
    for (long long u = user0; k < want && u < user0 + 100000; u++) {
        int s = sr_shard_of(&map, u, 16, (long long)time(NULL) * 1000);

        if (s >= 0 && s < n_shards && on0[s])
            out[k++] = u;
    }
    return k;
}

static int pid_alive_of(const char *name)
{
    return itk_stack_pid(name) > 0;
}

static void test_compensation_shard_down(void)
{
    enum { N = 8 };
    long long c = create_coupon(16, 20), users[N];
    char ids[N][MSG_SAGA_ID_LEN + 1], state[32];
    int compensated = 0, n = users_on_server0(5000, users, N);
    coupon_sagas cs;

    TH_REQUIRE(c > 0);
    TH_REQUIRE(n == N);
    TH_REQUIRE(itk_script("stack", "kill mariadb-s0") == 0);
    shard_server_killed = 1;
    TH_CHECK(!pid_alive_of("mariadb-s0"));
    for (int i = 0; i < N; i++) {
        hres h;
        int st = grab(port1, users[i], c, NULL, &h);

        ids[i][0] = '\0';
        if (jstr(&h, "saga_id") != NULL)
            snprintf(ids[i], sizeof(ids[i]), "%s", jstr(&h, "saga_id"));
        /* not granted: 200 with grab_status 0, or 202 while it is decided */
        if (!(st == 202 || (st == 200 && jint(&h, "grab_status") == 0)))
            TH_FAIL_AT("user %lld on a dead shard: status %d grab_status %lld", users[i], st,
                       jint(&h, "grab_status"));
        hres_clear(&h);
    }
    /* every saga gets to COMPENSATING (order-svc gives the create up, or our
     * retries run out) and stays there: its cancel waits for the shard */
    {
        long long end = itk_now_ms() + 20000;
        int n_comp = 0;

        while (n_comp < N && itk_now_ms() < end) {
            n_comp = 0;
            for (int i = 0; i < N; i++) {
                saga_state(ids[i], state, sizeof(state));
                n_comp += strcmp(state, "COMPENSATING") == 0;
            }
            if (n_comp < N)
                itk_run_for(base, 200);
        }
        if (n_comp != N)
            TH_FAIL_AT("%d of %d sagas COMPENSATING while their shard is down", n_comp, N);
    }
    /* a crash in the middle of compensations: the restarted instance goes on */
    TH_REQUIRE(services("kill", "orchestrator") == 0);
    TH_REQUIRE(services("start", "orchestrator") == 0);
    TH_CHECK(rint_("ZCARD sagas:active:orchestrator") >= N);
    TH_REQUIRE(itk_script("stack", "start-one mariadb-s0") == 0);
    shard_server_killed = 0;
    for (int i = 0; i < N; i++) {
        wait_saga(port1, ids[i], SETTLE_MS, state, sizeof(state));
        TH_CHECK_STR(state, "COMPENSATED");
        compensated += strcmp(state, "COMPENSATED") == 0;
        TH_CHECK_INT(rows_of_saga(ids[i]), 0);
    }
    {
        redisReply *r = rq("HGET saga:%s reason", ids[0]);

        fprintf(stdout, "    %d of %d compensated, reason of the first: %s\n", compensated, N,
                r != NULL && r->type == REDIS_REPLY_STRING ? r->str : "?");
        freeReplyObject(r);
    }
    TH_CHECK(wait_quiet(c, SETTLE_MS, &cs));
    TH_CHECK_INT(stock_of(c), 20);   /* back to its initial value */
    TH_CHECK_INT(rows_of_coupon(c), 0);
    check_conservation(c, 20, &cs);
}

/* While the burst flows: order-svc stops, so that sagas pile up unfinished
 * (RESERVED, then COMPENSATING), and then `name` is SIGKILLed. Returns how
 * many of its sagas were left in its active set (-1 on failure). The caller
 * starts order-svc again. */
static long long pile_up_and_kill(burst *b, const char *name)
{
    long long end = itk_now_ms() + 10000, left;

    while (burst_count_done(b) < b->n / 20 && itk_now_ms() < end)
        itk_run_for(base, 2);
    if (services_async("stop", "order-svc", 30000) != 0)
        return -1;
    order_svc_stopped = 1;
    end = itk_now_ms() + 10000;
    while (rint_("ZCARD sagas:active:%s", name) < 20 && itk_now_ms() < end)
        itk_run_for(base, 5);
    if (services_async("kill", name, 10000) != 0)
        return -1;
    left = rint_("ZCARD sagas:active:%s", name);
    fprintf(stdout, "    killed %s with %d of %d answered, %lld sagas left active\n", name,
            burst_count_done(b), b->n, left);
    return left;
}

static void test_recovery_after_sigkill(void)
{
    enum { N = 1500, STOCK = 500 };
    long long c = create_coupon(17, STOCK);
    int ports[1] = {port1}, granted, refused, other;
    coupon_sagas cs;
    burst b;

    TH_REQUIRE(c > 0);
    burst_start(&b, N, 100000, c, ports, 1, 48);
    TH_CHECK(pile_up_and_kill(&b, "orchestrator") > 0);   /* there is something to recover */
    itk_run_until(base, burst_all_done, &b, 20000);
    TH_REQUIRE(services("start", "orchestrator order-svc") == 0);
    order_svc_stopped = 0;
    if (!wait_zcard_zero("orchestrator", SETTLE_MS)) {
        TH_FAIL_AT("sagas still active after recovery");
        print_log_tail("orchestrator");
    }
    TH_CHECK(wait_quiet(c, SETTLE_MS, &cs));
    check_answers(&b, &granted, &refused, &other);
    fprintf(stdout, "    answers: %d granted, %d refused, %d lost with the process; sagas: %d "
            "completed, %d compensated\n", granted, refused, other, cs.completed, cs.compensated);
    TH_CHECK(other > 0);   /* the kill did hit requests in flight */
    TH_CHECK(cs.completed <= STOCK);
    check_conservation(c, STOCK, &cs);
    burst_free(&b);
}

static void test_two_orchestrators(void)
{
    enum { N = 400, STOCK = 150 };
    long long c = create_coupon(18, STOCK);
    int ports[2] = {port1, port2}, granted, refused, other, per_port[2] = {0, 0}, owner_ok = 0;
    coupon_sagas cs;
    burst b;

    TH_REQUIRE(c > 0);
    TH_REQUIRE(services("start", "orchestrator-2") == 0);
    burst_start(&b, N, 200000, c, ports, 2, 32);
    TH_CHECK(itk_run_until(base, burst_all_done, &b, 60000));
    check_answers(&b, &granted, &refused, &other);
    fprintf(stdout, "    answers: %d granted, %d refused, %d other\n", granted, refused, other);
    /* every request answered with an outcome within the deadline: each
     * instance got its own replies */
    TH_CHECK_INT(other, 0);
    TH_CHECK_INT(granted, STOCK);
    for (int i = 0; i < N; i++) {
        const char *id = jstr(&b.res[i], "saga_id");
        redisReply *r;

        per_port[b.ports[i] == port2] += b.res[i].status == 200;
        if (id == NULL)
            continue;
        r = rq("HGET saga:%s owner", id);
        if (r != NULL && r->type == REDIS_REPLY_STRING &&
            strcmp(r->str, b.ports[i] == port2 ? "orchestrator-2" : "orchestrator") == 0)
            owner_ok++;
        freeReplyObject(r);
    }
    TH_CHECK(per_port[0] > 0 && per_port[1] > 0);
    TH_CHECK(owner_ok > 0);
    TH_CHECK(wait_quiet(c, SETTLE_MS, &cs));
    check_conservation(c, STOCK, &cs);
    burst_free(&b);
}

/* orchestrator-2 dies for good in the middle of a burst: orchestrator
 * adopts its sagas once its heartbeat expires. */
static void test_adoption(void)
{
    enum { N = 1500, STOCK = 400 };
    long long c = create_coupon(19, STOCK);
    int ports[1] = {port2}, granted, refused, other;
    coupon_sagas cs;
    burst b;

    TH_REQUIRE(c > 0);
    TH_REQUIRE(services("start", "orchestrator-2") == 0);
    burst_start(&b, N, 300000, c, ports, 1, 48);
    TH_CHECK(pile_up_and_kill(&b, "orchestrator-2") > 0);
    TH_REQUIRE(services("start", "order-svc") == 0);
    order_svc_stopped = 0;
    itk_run_until(base, burst_all_done, &b, 20000);
    /* heartbeat TTL 10 s + a sweep every 3 s */
    if (!wait_zcard_zero("orchestrator-2", 40000)) {
        TH_FAIL_AT("orchestrator-2's sagas were not adopted");
        print_log_tail("orchestrator");
    }
    TH_CHECK(wait_quiet(c, SETTLE_MS, &cs));
    check_answers(&b, &granted, &refused, &other);
    fprintf(stdout, "    answers: %d granted, %d refused, %d lost; sagas: %d completed, %d "
            "compensated\n", granted, refused, other, cs.completed, cs.compensated);
    check_conservation(c, STOCK, &cs);
    burst_free(&b);
}

/* orchestrator-3 with a small rate limit and in-flight bound: 503 beyond
 * max_inflight_sagas, 429 past the bucket; both change nothing. */
static void test_admission(void)
{
    long long c = create_coupon(20, 10), stock_before;
    int port3 = port1 + 2;
    struct evhttp_connection *a = NULL, *b = NULL;
    hres ha, hb, h;
    coupon_sagas cs;
    char body[160];

    TH_REQUIRE(c > 0);
    setenv("ORCH_RATE_LIMIT_RPS", "2", 1);
    setenv("ORCH_RATE_LIMIT_BURST", "3", 1);
    setenv("ORCH_MAX_INFLIGHT_SAGAS", "2", 1);
    TH_REQUIRE(services("start", "orchestrator-3") == 0);
    unsetenv("ORCH_RATE_LIMIT_RPS");
    unsetenv("ORCH_RATE_LIMIT_BURST");
    unsetenv("ORCH_MAX_INFLIGHT_SAGAS");
    TH_REQUIRE(services("stop", "stock-svc") == 0);
    stock_svc_stopped = 1;
    stock_before = stock_of(c);
    /* two sagas that cannot finish while stock-svc is away */
    a = conn_new(port3);
    b = conn_new(port3);
    TH_REQUIRE(a != NULL && b != NULL);
    snprintf(body, sizeof(body), "{\"user_id\":6001,\"coupon_id\":%lld}", c);
    TH_REQUIRE(http_send(a, port3, EVHTTP_REQ_POST, "/api/coupon/grab", body, NULL, &ha) == 0);
    snprintf(body, sizeof(body), "{\"user_id\":6002,\"coupon_id\":%lld}", c);
    TH_REQUIRE(http_send(b, port3, EVHTTP_REQ_POST, "/api/coupon/grab", body, NULL, &hb) == 0);
    itk_run_for(base, 300);
    TH_CHECK_INT(grab(port3, 6003, c, NULL, &h), 503);   /* third token, no room */
    TH_CHECK_STR(jstr(&h, "error"), "unavailable");
    hres_clear(&h);
    TH_CHECK_INT(grab(port3, 6004, c, NULL, &h), 429);   /* the bucket is empty */
    TH_CHECK_STR(jstr(&h, "error"), "rate_limited");
    hres_clear(&h);
    itk_run_until(base, hres_done, &ha, 10000);
    itk_run_until(base, hres_done, &hb, 10000);
    TH_CHECK_INT(ha.status, 202);
    TH_CHECK_INT(hb.status, 202);
    TH_REQUIRE(services("start", "stock-svc") == 0);
    stock_svc_stopped = 0;
    TH_CHECK(wait_quiet(c, SETTLE_MS, &cs));
    TH_CHECK_INT(cs.total, 2);   /* the refused requests started nothing */
    check_conservation(c, 10, &cs);
    TH_CHECK(stock_before == 10);
    hres_clear(&ha);
    hres_clear(&hb);
    evhttp_connection_free(a);
    evhttp_connection_free(b);
    services("stop", "orchestrator-3");
}

/* ---- setup ------------------------------------------------------------------------------ */

static int setup(void)
{
    char list[4096], *save = NULL;
    int base_port = atoi(itk_env("STACK_PORT_BASE", "17000"));
    const char *http = getenv("ORCH_HTTP_PORT");

    repo_dir = itk_env("REPO_DIR", ".");
    db_user = itk_env("MARIADB_USER", "grab");
    if (itk_read_secret(getenv("MARIADB_PASSWORD_FILE"), db_password, sizeof(db_password)) != 0)
        return -1;
    snprintf(list, sizeof(list), "%s", itk_env("MARIADB_SHARDS", ""));
    for (char *s = strtok_r(list, ",", &save); s != NULL && n_shards < MAX_SHARDS;
         s = strtok_r(NULL, ",", &save))
        snprintf(shard_specs[n_shards++], ADDR_BUF, "%s", s);
    port1 = http != NULL && http[0] ? atoi(http) : base_port + 80;
    port2 = port1 + 1;
    if (n_shards == 0 || redis_connect() != 0) {
        fprintf(stderr, "no shards or no Redis: source the stack's stack.env\n");
        return -1;
    }
    if (apply_schema() != 0) {
        fprintf(stderr, "cannot apply the schema\n");
        return -1;
    }
    if (services("start", "stock-svc order-svc orchestrator") != 0) {
        fprintf(stderr, "cannot start the services\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"healthz and readyz", test_health},
        {"a grab granted end to end", test_grant},
        {"duplicate, out of stock, unknown coupon", test_refusals},
        {"bad input answers 400/404/405/413 and changes nothing", test_bad_input},
        {"Idempotency-Key repeats return the first saga", test_idempotency},
        {"a key bound to an unlogged saga gets a real saga", test_idempotency_unlogged_key},
        {"202 while stock-svc is down, then the saga finishes", test_pending_when_stock_down},
        {"a dead shard: order failed, compensated, stock back", test_compensation_shard_down},
        {"SIGKILL mid-burst, restart: every saga finishes", test_recovery_after_sigkill},
        {"two orchestrators at once", test_two_orchestrators},
        {"a dead instance's sagas are adopted", test_adoption},
        {"admission control: 503 and 429", test_admission},
    };
    int status;

    log_set_level(LOG_LEVEL_WARN);
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    if (base == NULL || setup() != 0) {
        fprintf(stdout, "0 passed, 1 failed\n");
        return 1;
    }
    status = th_main("it_orchestrator", tests, TH_TABLE_LEN(tests), argc, argv);
    bring_back();
    if (status != 0) {
        print_log_tail("orchestrator");
        print_log_tail("stock-svc");
        print_log_tail("order-svc");
    }
    services("stop", "orchestrator-3 orchestrator-2 orchestrator stock-svc order-svc");
    if (rc != NULL)
        redisFree(rc);
    event_base_free(base);
    return status;
}
