/* it_read_kit.h - what the read API's integration tests (it_read_*.c) share:
 * a blocking HTTP client on a private event_base, the shards and Redis read
 * directly, order-svc restarted under a sharding strategy, the test's own
 * row set inserted on the shards its strategy names, and the reference
 * answers computed here with plain SQL to compare the API's answers with.
 *
 * The rows: users ITR_USER_BASE.. (far past the seeded 1..100000), rooms
 * ITR_ROOM_BASE.. plus three rows in the seeded room 1 (coupons 1 and 2, so
 * that a room has both Redis stock and orders), saga ids ITR_SAGA_PREFIX + the
 * row number (ITR_MINE selects them).
 * Everything the tests insert is removed by itr_rows_delete (DELETE: the
 * triggers keep order_counts right) before and after.
 *
 * Cross-shard order, as shard-router/src/sr_query.h promises: newest
 * grab_time first; on equal times the lower shard first, then the shard's
 * own order (result_id descending). The reference sorts the same way.
 *
 * Functions are static inline so that each test uses what it needs. */
#ifndef IT_READ_KIT_H
#define IT_READ_KIT_H

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <hiredis/hiredis.h>
#include <jansson.h>

#include "db.h"
#include "itkit.h"
#include "log.h"
#include "rds_sync.h"
#include "sr_map.h"
#include "testhelp.h"

#define ITR_SHARDS 4
#define ITR_ADDR_BUF 256
#define ITR_USER_BASE 5000000LL
#define ITR_USER_END 5000999LL     /* every user id of the test is below this */
#define ITR_ROOM_BASE 910000LL
#define ITR_ROOM_END 910999LL
#define ITR_COUPON_BASE 9100000LL
#define ITR_SAGA_PREFIX "feedfeedfeed0000"   /* + 16 digits: no random saga id looks so */
/* The test's rows, and only them (SQL). */
#define ITR_MINE "saga_id LIKE 'feedfeedfeed0000%' AND user_id BETWEEN 5000000 AND 5000999"
#define ITR_N_USERS 16             /* ITR_N_USERS / 4 per shard under the default hash map */
#define ITR_N_ROOMS 8
#define ITR_N_MAIN 64              /* rows in the test's rooms */
#define ITR_N_ROWS (ITR_N_MAIN + 3)   /* + 3 in the seeded room 1 */
#define ITR_BIG_ROWS 32            /* rows 0..31 are in the big room */
#define ITR_HTTP_TIMEOUT_S 10
#define ITR_READY_MS 15000         /* bound on order-svc answering after a restart */
#define ITR_REF_MAX 4096           /* reference rows kept (4 shards x limit 500 fits) */
#define ITR_DAY_MS 86400000LL
#define ITR_TIME_BUF 96          /* a time as text (room for any int fields) */

/* The range-room map: the seeded rooms as the brief's example, then the
 * test's rooms two per shard (ITR_ROOM_BASE + 0/1 -> 0, + 10/11 -> 1, ...). */
#define ITR_RANGE_ROOM_MAP "1:0,26:1,51:2,76:3,910000:0,910010:1,910020:2,910030:3"

/* One row of the test's set. */
typedef struct itr_row {
    char saga[40];
    long long user, room, coupon;
    long long t_ms;    /* grab_time, UTC */
    int shard;         /* where the current strategy puts it */
} itr_row;

/* One row as read from a shard. */
typedef struct itr_ref {
    int shard;
    long long result_id, user, room, coupon;
    char saga[40];
    char time[32];     /* "YYYY-MM-DD hh:mm:ss.fff" */
} itr_ref;

typedef struct itr_refs {
    itr_ref r[ITR_REF_MAX];
    size_t n;
} itr_refs;

/* An HTTP answer. */
typedef struct itr_res {
    int done;
    int status;        /* -1: no answer */
    json_t *json;      /* NULL when the body is not JSON */
    char *body;        /* NUL-terminated */
    char allow[64];    /* the Allow header */
    long long ms;
    long long t0;
} itr_res;

static struct {
    const char *suite;
    struct event_base *base;
    int port;                      /* the orchestrator */
    int qport;                     /* order-svc's query API */
    char shard_spec[ITR_SHARDS][ITR_ADDR_BUF];
    char shard_buf[ITR_SHARDS][ITR_ADDR_BUF];
    db_config shard_cfg[ITR_SHARDS];
    MYSQL *conn[ITR_SHARDS];
    char db_password[256];
    redisContext *redis;
    char redis_addr[RDS_SYNC_ADDR_MAX];   /* the master's "ip:port" */
    enum sr_strategy strategy;
    char map_spec[512];
    sr_map map;
    int map_ready;                 /* order-svc runs under map */
    sr_map hash_map;               /* the default hash map (picks the users) */
    long long users[ITR_N_USERS];  /* users[j] is on shard j % 4 under hash */
    long long rooms[ITR_N_ROOMS];
    itr_row rows[ITR_N_ROWS];
    int started[3];                /* stock-svc, order-svc, orchestrator started by us */
    int s1_killed;                 /* mariadb-s1 must be started again */
} itr;

/* ---- time -------------------------------------------------------------------------------- */

static inline long long itr_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* UTC ms -> "YYYY-MM-DD hh:mm:ss.fff" (iso: "YYYY-MM-DDThh:mm:ss.fffZ"); out has
 * ITR_TIME_BUF bytes. */
static inline void itr_time_text(long long ms, int iso, char *out, size_t len)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&secs, &tm);
    snprintf(out, len, "%04d-%02d-%02d%c%02d:%02d:%02d.%03d%s", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, iso ? 'T' : ' ', tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ms % 1000), iso ? "Z" : "");
}

/* "YYYY-MM-DDThh:mm:ss.fffZ" -> UTC ms; -1 when malformed. */
static inline long long itr_parse_iso(const char *s)
{
    struct tm tm;
    int ms = 0, n;

    memset(&tm, 0, sizeof(tm));
    if (s == NULL ||
        sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
               &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &n) != 7 || s[n] != '\0')
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (long long)timegm(&tm) * 1000 + ms;
}

/* The UTC day `days_back` days before today, "YYYY-MM-DD". */
static inline void itr_day_text(long long days_back, char *out, size_t len)
{
    long long day = itr_wall_ms() / ITR_DAY_MS - days_back;
    char full[ITR_TIME_BUF];

    itr_time_text(day * ITR_DAY_MS, 0, full, sizeof(full));
    snprintf(out, len, "%.10s", full);
}

/* ---- HTTP -------------------------------------------------------------------------------- */

static inline void itr_res_clear(itr_res *r)
{
    json_decref(r->json);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static inline void itr_on_http(struct evhttp_request *req, void *arg)
{
    itr_res *r = arg;
    struct evbuffer *in;
    const char *allow;
    size_t len;
    json_error_t jerr;

    r->done = 1;
    r->ms = itk_now_ms() - r->t0;
    event_base_loopbreak(itr.base);   /* back to the waiter now, not at its next tick */
    r->status = req != NULL ? evhttp_request_get_response_code(req) : -1;
    if (r->status <= 0) {
        r->status = -1;
        return;
    }
    in = evhttp_request_get_input_buffer(req);
    len = evbuffer_get_length(in);
    r->body = malloc(len + 1);
    if (r->body != NULL) {
        evbuffer_copyout(in, r->body, len);
        r->body[len] = '\0';
        r->json = json_loadb(r->body, len, 0, &jerr);
    }
    allow = evhttp_find_header(evhttp_request_get_input_headers(req), "Allow");
    snprintf(r->allow, sizeof(r->allow), "%s", allow != NULL ? allow : "");
}

static inline int itr_res_done(void *arg)
{
    return ((itr_res *)arg)->done;
}

/* One request on a new connection, waited for (bounded); returns the status. */
static inline int itr_http(int port, enum evhttp_cmd_type method, const char *path, itr_res *r)
{
    struct evhttp_connection *c =
        evhttp_connection_base_new(itr.base, NULL, "127.0.0.1", (unsigned short)port);
    struct evhttp_request *req = NULL;
    char host[64];

    memset(r, 0, sizeof(*r));
    r->status = -1;
    r->t0 = itk_now_ms();
    if (c != NULL)
        req = evhttp_request_new(itr_on_http, r);
    if (req == NULL) {
        if (c != NULL)
            evhttp_connection_free(c);
        return -1;
    }
    evhttp_connection_set_timeout(c, ITR_HTTP_TIMEOUT_S);
    snprintf(host, sizeof(host), "127.0.0.1:%d", port);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", host);
    if (evhttp_make_request(c, req, method, path) == 0)
        itk_run_until(itr.base, itr_res_done, r, (ITR_HTTP_TIMEOUT_S + 5) * 1000);
    evhttp_connection_free(c);
    return r->status;
}

/* A GET of the orchestrator's API. */
static inline int itr_get(const char *path, itr_res *r)
{
    return itr_http(itr.port, EVHTTP_REQ_GET, path, r);
}

/* ---- JSON -------------------------------------------------------------------------------- */

static inline json_t *itr_jget(const json_t *o, const char *key)
{
    return json_is_object(o) ? json_object_get(o, key) : NULL;
}

/* An integer field; LLONG_MIN when absent or not an integer (null included). */
static inline long long itr_jint(const json_t *o, const char *key)
{
    json_t *v = itr_jget(o, key);

    return json_is_integer(v) ? (long long)json_integer_value(v) : (long long)INT64_MIN;
}

static inline const char *itr_jstr(const json_t *o, const char *key)
{
    json_t *v = itr_jget(o, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* 1 true, 0 false, -1 absent or not a boolean. */
static inline int itr_jbool(const json_t *o, const char *key)
{
    json_t *v = itr_jget(o, key);

    return json_is_boolean(v) ? json_is_true(v) : -1;
}

/* A list of shard numbers as a mask; UINT64_MAX when it is not one. */
static inline uint64_t itr_jmask(const json_t *o, const char *key)
{
    json_t *a = itr_jget(o, key), *v;
    uint64_t mask = 0;
    size_t i;

    if (!json_is_array(a))
        return UINT64_MAX;
    json_array_foreach(a, i, v) {
        long long s = json_is_integer(v) ? (long long)json_integer_value(v) : -1;

        if (s < 0 || s >= ITR_SHARDS || (mask >> s & 1))
            return UINT64_MAX;   /* out of range or repeated */
        if (i > 0 && s < (long long)json_integer_value(json_array_get(a, i - 1)))
            return UINT64_MAX;   /* not rising */
        mask |= UINT64_C(1) << s;
    }
    return mask;
}

static inline uint64_t itr_all(void)
{
    return (UINT64_C(1) << ITR_SHARDS) - 1;
}

/* The fields every answer involving shards carries: the strategy, the shards
 * asked (exactly `asked`), the missing ones, partial. */
static inline void itr_check_shard_fields(const char *what, const json_t *o, uint64_t asked,
                                          uint64_t missing)
{
    const char *st = itr_jstr(o, "strategy");
    uint64_t got_asked = itr_jmask(o, "shards_asked"), got_missing = itr_jmask(o, "missing_shards");

    if (st == NULL || strcmp(st, sr_strategy_name(itr.strategy)) != 0)
        TH_FAIL_AT("%s: strategy \"%s\", want \"%s\"", what, st ? st : "(none)",
                   sr_strategy_name(itr.strategy));
    if (got_asked != asked)
        TH_FAIL_AT("%s: shards_asked mask 0x%llx, want 0x%llx", what,
                   (unsigned long long)got_asked, (unsigned long long)asked);
    if (got_missing != missing)
        TH_FAIL_AT("%s: missing_shards mask 0x%llx, want 0x%llx", what,
                   (unsigned long long)got_missing, (unsigned long long)missing);
    if (itr_jbool(o, "partial") != (missing != 0))
        TH_FAIL_AT("%s: partial %d, want %d", what, itr_jbool(o, "partial"), missing != 0);
}

/* A sample's value in Prometheus text ("name value", name with its labels);
 * -1 when absent. */
static inline long long itr_metric(const char *text, const char *name)
{
    size_t len = strlen(name);

    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, name, len) == 0 && p[len] == ' ')
            return atoll(p + len + 1);
        p = strchr(p, '\n');
        p = p != NULL ? p + 1 : NULL;
    }
    return -1;
}

/* ---- MariaDB, one cached connection per shard -------------------------------------------- */

static inline MYSQL *itr_db(int s)
{
    cg_error err = {0, ""};

    if (itr.conn[s] == NULL && db_connect(&itr.shard_cfg[s], &itr.conn[s], &err) != CG_OK)
        itr.conn[s] = NULL;
    return itr.conn[s];
}

static inline void itr_db_drop(int s)
{
    db_close(itr.conn[s]);
    itr.conn[s] = NULL;
}

/* Runs a statement on shard s (one reconnect when the cached connection
 * broke); 0 on success, -1 (and a failure recorded) otherwise. */
static inline int itr_db_exec(int s, const char *sql)
{
    cg_error err = {0, ""};

    for (int attempt = 0; attempt < 2; attempt++) {
        MYSQL *c = itr_db(s);

        if (c != NULL && db_exec(c, sql, NULL, &err) == CG_OK)
            return 0;
        itr_db_drop(s);
    }
    TH_FAIL_AT("shard %d: %.200s: %s", s, sql, err.msg[0] ? err.msg : "cannot connect");
    return -1;
}

static inline int itr_db_rows(int s, const char *sql, db_row_cb cb, void *arg)
{
    cg_error err = {0, ""};

    for (int attempt = 0; attempt < 2; attempt++) {
        MYSQL *c = itr_db(s);

        if (c != NULL && db_query_rows(c, sql, cb, arg, NULL, &err) == CG_OK)
            return 0;
        if (c != NULL && err.code != CG_ERR_IO && err.code != CG_ERR_TIMEOUT)
            break;   /* the statement, not the connection */
        itr_db_drop(s);
    }
    TH_FAIL_AT("shard %d: %.200s: %s", s, sql, err.msg[0] ? err.msg : "cannot connect");
    return -1;
}

/* One integer from shard s; -1 (and a failure recorded) on error. */
static inline long long itr_db_int(int s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline long long itr_db_int(int s, const char *fmt, ...)
{
    char sql[1024];
    cg_error err = {0, ""};
    int64_t v = 0;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    for (int attempt = 0; attempt < 2; attempt++) {
        MYSQL *c = itr_db(s);

        if (c != NULL && db_query_int64(c, sql, &v, &err) == CG_OK)
            return v;
        itr_db_drop(s);
    }
    TH_FAIL_AT("shard %d: %.200s: %s", s, sql, err.msg[0] ? err.msg : "cannot connect");
    return -1;
}

/* (key, value) pairs read from a shard, keys unique. */
typedef struct itr_kv {
    long long key[512];
    long long val[512];
    int n;
} itr_kv;

static inline long long *itr_kv_slot(itr_kv *kv, long long key)
{
    for (int i = 0; i < kv->n; i++)
        if (kv->key[i] == key)
            return &kv->val[i];
    if (kv->n == (int)(sizeof(kv->key) / sizeof(kv->key[0])))
        return NULL;
    kv->key[kv->n] = key;
    kv->val[kv->n] = 0;
    return &kv->val[kv->n++];
}

static inline long long itr_kv_get(const itr_kv *kv, long long key)
{
    for (int i = 0; i < kv->n; i++)
        if (kv->key[i] == key)
            return kv->val[i];
    return 0;
}

static inline int itr_on_kv(void *arg, unsigned int n, char **v)
{
    long long *slot;

    if (n < 2 || v[0] == NULL)
        return CG_ERR_INVALID;
    slot = itr_kv_slot(arg, atoll(v[0]));
    if (slot == NULL)
        return CG_ERR_FULL;
    *slot += v[1] != NULL ? atoll(v[1]) : 0;
    return CG_OK;
}

/* Adds up "SELECT key, value ..." over the shards in mask into kv. */
static inline int itr_db_kv(uint64_t mask, const char *sql, itr_kv *kv)
{
    for (int s = 0; s < ITR_SHARDS; s++)
        if ((mask >> s & 1) && itr_db_rows(s, sql, itr_on_kv, kv) != 0)
            return -1;
    return 0;
}

/* ---- the reference: rows read directly --------------------------------------------------- */

typedef struct itr_ref_ctx {
    itr_refs *out;
    int shard;
} itr_ref_ctx;

static inline int itr_on_ref(void *arg, unsigned int n, char **v)
{
    itr_ref_ctx *c = arg;
    itr_ref *r;

    if (n != 6 || c->out->n >= ITR_REF_MAX)
        return CG_ERR_FULL;
    r = &c->out->r[c->out->n++];
    r->shard = c->shard;
    snprintf(r->saga, sizeof(r->saga), "%s", v[0]);
    r->user = atoll(v[1]);
    r->coupon = atoll(v[2]);
    r->room = atoll(v[3]);
    snprintf(r->time, sizeof(r->time), "%s", v[4]);
    r->result_id = atoll(v[5]);
    return CG_OK;
}

static inline int itr_ref_cmp(const void *pa, const void *pb)
{
    const itr_ref *a = pa, *b = pb;
    int c = strcmp(b->time, a->time);

    if (c != 0)
        return c;
    if (a->shard != b->shard)
        return a->shard - b->shard;
    return (b->result_id > a->result_id) - (b->result_id < a->result_id);
}

/* Each shard in mask's newest `limit` rows matching where, merged and cut
 * to `limit`: what a read of those shards owes. */
static inline int itr_ref_from(const char *where, long long limit, uint64_t mask, itr_refs *out)
{
    char sql[1024];

    out->n = 0;
    for (int s = 0; s < ITR_SHARDS; s++) {
        itr_ref_ctx c = {out, s};

        if (!(mask >> s & 1))
            continue;
        snprintf(sql, sizeof(sql),
                 "SELECT saga_id, user_id, coupon_id, room_id, grab_time, result_id FROM "
                 "coupon_results WHERE %s ORDER BY grab_time DESC, result_id DESC LIMIT %lld",
                 where, limit);
        if (itr_db_rows(s, sql, itr_on_ref, &c) != 0)
            return -1;
    }
    qsort(out->r, out->n, sizeof(out->r[0]), itr_ref_cmp);
    if (out->n > (size_t)limit)
        out->n = (size_t)limit;
    return 0;
}

/* The answer the API owes for "WHERE where ... LIMIT limit" when it asks the
 * shards in `asked`, computed over every shard: the asked shards' rows as
 * above, and the shards not asked must hold none of the test's rows that
 * match (they would be lost); other rows there (other tests', written under
 * another strategy) are counted in *foreign. */
static inline int itr_ref_load(const char *where, long long limit, uint64_t asked, itr_refs *out,
                               long long *foreign)
{
    if (foreign != NULL)
        *foreign = 0;
    for (int s = 0; s < ITR_SHARDS; s++) {
        long long mine, all;

        if (asked >> s & 1)
            continue;
        mine = itr_db_int(s, "SELECT COUNT(*) FROM coupon_results WHERE (%s) AND %s", where,
                          ITR_MINE);
        all = itr_db_int(s, "SELECT COUNT(*) FROM coupon_results WHERE %s", where);
        if (mine != 0)
            TH_FAIL_AT("shard %d (not asked) holds %lld test rows where %s", s, mine, where);
        if (foreign != NULL && all > 0)
            *foreign += all - (mine > 0 ? mine : 0);
    }
    return itr_ref_from(where, limit, asked, out);
}

/* Compares an answer's "orders" (and "count") with the reference, row by
 * row: saga id, shard, time, user, room, coupon. Reports the first
 * difference. */
static inline void itr_check_orders(const char *what, const json_t *o, const itr_refs *ref)
{
    json_t *orders = itr_jget(o, "orders");
    size_t n = json_array_size(orders);

    if (!json_is_array(orders)) {
        TH_FAIL_AT("%s: no orders array", what);
        return;
    }
    if (itr_jint(o, "count") != (long long)n)
        TH_FAIL_AT("%s: count %lld but %zu orders", what, itr_jint(o, "count"), n);
    if (n != ref->n)
        TH_FAIL_AT("%s: %zu orders, want %zu", what, n, ref->n);
    for (size_t i = 0; i < n && i < ref->n; i++) {
        const json_t *e = json_array_get(orders, i);
        const itr_ref *r = &ref->r[i];
        const char *saga = itr_jstr(e, "saga_id"), *when = itr_jstr(e, "grab_time");
        char iso[40];

        snprintf(iso, sizeof(iso), "%.10sT%sZ", r->time, r->time + 11);
        if (saga == NULL || strcmp(saga, r->saga) != 0 || when == NULL ||
            strcmp(when, iso) != 0 || itr_jint(e, "shard") != r->shard ||
            itr_jint(e, "user_id") != r->user || itr_jint(e, "room_id") != r->room ||
            itr_jint(e, "coupon_id") != r->coupon || itr_jint(e, "grab_status") != 1) {
            TH_FAIL_AT("%s: order %zu is %s %s shard %lld user %lld, want %s %s shard %d "
                       "user %lld", what, i, saga ? saga : "?", when ? when : "?",
                       itr_jint(e, "shard"), itr_jint(e, "user_id"), r->saga, iso, r->shard,
                       r->user);
            return;
        }
    }
}

/* ---- Redis (the master, blocking) -------------------------------------------------------- */

static inline int itr_redis_connect(void)
{
    rds_sync_opts o = {itk_env("SENTINEL_ADDRS", ""), itk_env("SENTINEL_MASTER_NAME", "grab"),
                       2000, 5000, NULL, LOG_LEVEL_WARN};
    cg_error err = {0, ""};

    if (itr.redis != NULL)
        redisFree(itr.redis);
    itr.redis = NULL;
    return rds_sync_master(&o, &itr.redis, itr.redis_addr, sizeof(itr.redis_addr), NULL, &err) ==
                   CG_OK
               ? 0
               : -1;
}

static inline redisReply *itr_redis(const char *fmt, ...)
{
    redisReply *r = NULL;
    va_list ap;

    for (int attempt = 0; attempt < 2 && r == NULL; attempt++) {
        if ((itr.redis == NULL || itr.redis->err) && itr_redis_connect() != 0)
            break;
        va_start(ap, fmt);
        r = redisvCommand(itr.redis, fmt, ap);
        va_end(ap);
        if (r == NULL) {
            redisFree(itr.redis);
            itr.redis = NULL;
        }
    }
    return r;
}

/* A reply as a number (GET of a number, SCARD), freed; -1 no answer, -2 nil. */
static inline long long itr_reply_int(redisReply *r)
{
    long long v = -1;

    if (r != NULL && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r != NULL && r->type == REDIS_REPLY_STRING)
        v = atoll(r->str);
    else if (r != NULL && r->type == REDIS_REPLY_NIL)
        v = -2;
    freeReplyObject(r);
    return v;
}

/* The sorted members of a set of ids (SMEMBERS); their count, -1 on error. */
static inline int itr_redis_ids(const char *key, long long *ids, int max)
{
    redisReply *r = itr_redis("SMEMBERS %s", key);
    int n = 0;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return -1;
    }
    for (size_t i = 0; i < r->elements && n < max; i++)
        ids[n++] = atoll(r->element[i]->str);
    freeReplyObject(r);
    for (int i = 1; i < n; i++)   /* insertion sort: sets are small */
        for (int j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            long long t = ids[j];

            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    return n;
}

/* ---- shared checks ----------------------------------------------------------------------- */

static inline int itr_popcount(uint64_t m)
{
    int n = 0;

    for (; m != 0; m &= m - 1)
        n++;
    return n;
}

/* GET path, expecting 200 with a JSON object; NULL (and a failure) otherwise. */
static inline json_t *itr_get_ok(const char *path, itr_res *r)
{
    if (itr_get(path, r) != 200 || !json_is_object(r->json)) {
        TH_FAIL_AT("GET %s: status %d, body %.300s", path, r->status, r->body ? r->body : "");
        return NULL;
    }
    return r->json;
}

static inline uint64_t itr_room_shards(long long room)
{
    int s = sr_shard_of_room(&itr.map, room);

    return s >= 0 ? UINT64_C(1) << s : itr_all();
}

/* One room's stats: Redis' coupons and stock, the asked shards' counts. */
static inline void itr_check_room_stats(long long room)
{
    long long ids[64], want_orders = 0, stock_total = 0, stock_rem = 0;
    itr_kv counts = {{0}, {0}, 0}, counters = {{0}, {0}, 0};
    uint64_t asked = itr_room_shards(room);
    int n_ids = 0, k = 0;
    char path[96], sql[256], key[64];
    itr_res r;
    json_t *o, *coupons, *e;

    snprintf(path, sizeof(path), "/api/room/%lld/stats", room);
    snprintf(key, sizeof(key), "room:{%lld}:coupons", room);
    n_ids = itr_redis_ids(key, ids, 64);
    TH_REQUIRE(n_ids >= 0);
    snprintf(sql, sizeof(sql), "SELECT coupon_id, COUNT(*) FROM coupon_results WHERE room_id = "
             "%lld GROUP BY coupon_id", room);
    TH_REQUIRE(itr_db_kv(asked, sql, &counts) == 0);
    snprintf(sql, sizeof(sql), "SELECT coupon_id, orders FROM order_counts WHERE room_id = %lld",
             room);
    TH_REQUIRE(itr_db_kv(asked, sql, &counters) == 0);
    for (int s = 0; s < ITR_SHARDS; s++)   /* the shards not asked hold none of it */
        if (!(asked >> s & 1))
            TH_CHECK_INT(itr_db_int(s, "SELECT COUNT(*) FROM coupon_results WHERE room_id = "
                                       "%lld AND %s", room, ITR_MINE), 0);
    if ((o = itr_get_ok(path, &r)) == NULL)
        goto done;
    if (itr.strategy == SR_RANGE_ROOM)
        TH_CHECK_INT(itr_popcount(asked), 1);
    itr_check_shard_fields(path, o, asked, 0);
    TH_CHECK_INT(itr_jint(o, "room_id"), room);
    TH_CHECK_STR(itr_jstr(o, "stock_source"), "replica");
    coupons = itr_jget(o, "coupons");
    TH_CHECK(json_is_array(coupons));
    /* Expected: the union of Redis' coupons and the counters' coupons, rising. */
    for (long long next = -1;; k++) {
        long long best = INT64_MAX;

        for (int j = 0; j < n_ids; j++)
            best = ids[j] > next && ids[j] < best ? ids[j] : best;
        for (int j = 0; j < counters.n; j++)
            best = counters.key[j] > next && counters.key[j] < best ? counters.key[j] : best;
        if (best == INT64_MAX)
            break;
        next = best;
        e = json_array_get(coupons, (size_t)k);
        if (itr_jint(e, "coupon_id") != best) {
            TH_FAIL_AT("%s: coupon %d is %lld, want %lld", path, k, itr_jint(e, "coupon_id"), best);
            goto done;
        }
        TH_CHECK_INT(itr_jint(e, "orders"), itr_kv_get(&counts, best));
        want_orders += itr_kv_get(&counts, best);
        for (int j = 0; j < n_ids; j++) {
            long long rem, tot;

            if (ids[j] != best)
                continue;
            rem = itr_reply_int(itr_redis("GET stock:{%lld}", best));
            tot = itr_reply_int(itr_redis("GET stock:{%lld}:total", best));
            /* a missing key is null, not a number */
            if (rem >= 0)
                TH_CHECK_INT(itr_jint(e, "remaining"), rem);
            else
                TH_CHECK(json_is_null(itr_jget(e, "remaining")));
            if (tot >= 0)
                TH_CHECK_INT(itr_jint(e, "total"), tot);
            else
                TH_CHECK(json_is_null(itr_jget(e, "total")));
            stock_total += tot > 0 ? tot : 0;
            stock_rem += rem > 0 ? rem : 0;
        }
        if (itr_kv_get(&counts, best) != itr_kv_get(&counters, best))
            TH_FAIL_AT("%s: coupon %lld: order_counts %lld, COUNT(*) %lld", path, best,
                       itr_kv_get(&counters, best), itr_kv_get(&counts, best));
        if (!json_is_null(itr_jget(e, "remaining")) || !json_is_null(itr_jget(e, "total"))) {
            int in_redis = 0;

            for (int j = 0; j < n_ids; j++)
                in_redis |= ids[j] == best;
            if (!in_redis)
                TH_FAIL_AT("%s: coupon %lld has stock fields but no stock in Redis", path, best);
        }
    }
    TH_CHECK_INT(json_array_size(coupons), k);
    TH_CHECK_INT(itr_jint(o, "orders"), want_orders);
    TH_CHECK_INT(itr_jint(o, "stock_total"), stock_total);
    TH_CHECK_INT(itr_jint(o, "stock_remaining"), stock_rem);
    TH_CHECK_INT(itr_jint(o, "stock_taken"), stock_total - stock_rem);
    fprintf(stdout, "    %s: %d coupons (%d with stock), %lld orders\n", path, k, n_ids,
            want_orders);

done:
    itr_res_clear(&r);
}

/* ---- services ---------------------------------------------------------------------------- */

static inline int itr_services(const char *action, const char *names)
{
    return itk_script("services", "%s %s", action, names);
}

/* Whether `scripts/services status` lists the service up. */
static inline int itr_service_up(const char *name)
{
    char cmd[1024], line[256], n[64], pid[32], state[32];
    FILE *p;
    int up = 0;

    snprintf(cmd, sizeof(cmd), "\"%s/scripts/services\" status 2>/dev/null",
             itk_env("REPO_DIR", "."));
    p = popen(cmd, "r");
    while (p != NULL && fgets(line, sizeof(line), p) != NULL)
        if (sscanf(line, "%63s %31s %31s", n, pid, state) == 3 && strcmp(n, name) == 0)
            up = strcmp(state, "up") == 0;
    if (p != NULL)
        pclose(p);
    return up;
}

/* The strategy order-svc reports through the orchestrator, "" when no read
 * answers 200. */
static inline void itr_served_strategy(char *out, size_t len)
{
    itr_res r;

    out[0] = '\0';
    if (itr_get("/api/orders/recent?hours=1&limit=1", &r) == 200 && itr_jstr(r.json, "strategy"))
        snprintf(out, len, "%s", itr_jstr(r.json, "strategy"));
    itr_res_clear(&r);
}

/* Restarts order-svc under a strategy (spec NULL: the strategy's default
 * map) and waits, bounded, until reads through the orchestrator report it. */
static inline int itr_order_svc_restart(enum sr_strategy st, const char *spec)
{
    cg_error err = {0, ""};
    long long deadline;
    char got[32] = "";
    int rc;

    itr.map_ready = 0;
    if (sr_map_build(&itr.map, st, ITR_SHARDS, spec != NULL ? spec : "", &err) != CG_OK) {
        TH_FAIL_AT("map %s \"%s\": %s", sr_strategy_name(st), spec ? spec : "", err.msg);
        return -1;
    }
    itr.strategy = st;
    snprintf(itr.map_spec, sizeof(itr.map_spec), "%s", spec != NULL ? spec : "");
    if (itr_services("stop", "order-svc") != 0)
        return -1;
    /* The caller's ORDER_* would win over SHARD_*: the test decides here. */
    unsetenv("ORDER_SHARD_STRATEGY");
    unsetenv("ORDER_SHARD_MAP");
    setenv("SHARD_STRATEGY", sr_strategy_name(st), 1);
    setenv("SHARD_MAP", itr.map_spec, 1);
    rc = itr_services("start", "order-svc");
    unsetenv("SHARD_STRATEGY");
    unsetenv("SHARD_MAP");
    if (rc != 0) {
        TH_FAIL_AT("order-svc did not start under %s", sr_strategy_name(st));
        return -1;
    }
    deadline = itk_now_ms() + ITR_READY_MS;
    while (itk_now_ms() < deadline) {
        itr_served_strategy(got, sizeof(got));
        if (strcmp(got, sr_strategy_name(st)) == 0)
            break;
        itk_run_for(itr.base, 100);   /* a poll interval, bounded by the deadline */
    }
    if (strcmp(got, sr_strategy_name(st)) != 0) {
        TH_FAIL_AT("reads report strategy \"%s\", want \"%s\"", got, sr_strategy_name(st));
        return -1;
    }
    itr.map_ready = 1;
    return 0;
}

/* ---- the test's rows --------------------------------------------------------------------- */

/* The users: 4 per shard under the default hash map, users[j] on j % 4, so
 * that any 4 consecutive rows (row i has users[i % 16]) cover every shard. */
static inline int itr_pick_users(void)
{
    int per[ITR_SHARDS] = {0}, n = 0;

    for (long long u = ITR_USER_BASE; u < ITR_USER_END && n < ITR_N_USERS; u++) {
        int s = sr_shard_of_user(&itr.hash_map, u);

        if (s < 0 || s >= ITR_SHARDS || per[s] >= ITR_N_USERS / ITR_SHARDS)
            continue;
        itr.users[s + ITR_SHARDS * per[s]++] = u;
        n++;
    }
    return n == ITR_N_USERS ? 0 : -1;
}

/* Builds the rows relative to now. Row i: users[i % 16]; rows 0..31 in the
 * big room, the others over 7 rooms, 3 coupons per room; the time group
 * (i + i / 4 + i / 16) % 4 so that every group has every user's hash shard
 * and every user has rows in every group (day shard); the 3 last rows
 * in the seeded room 1. Ties: in each group some rows repeat an earlier
 * row's time exactly (across shards under hash, within a shard under range). */
static inline void itr_rows_make(void)
{
    static const long long room_off[ITR_N_ROOMS] = {0, 10, 20, 30, 1, 11, 21, 31};
    long long now = itr_wall_ms(), today = now / ITR_DAY_MS * ITR_DAY_MS;
    int k_of[4] = {0, 0, 0, 0};
    long long first_t[4][32];

    for (int r = 0; r < ITR_N_ROOMS; r++)
        itr.rooms[r] = ITR_ROOM_BASE + room_off[r];
    for (int i = 0; i < ITR_N_ROWS; i++) {
        itr_row *w = &itr.rows[i];
        int g = i < ITR_N_MAIN ? (i + i / 4 + i / 16) % 4 : 3, k = k_of[g]++;
        int ri = i < ITR_BIG_ROWS ? 0 : 1 + (i - ITR_BIG_ROWS) % (ITR_N_ROOMS - 1);
        long long ms = (i * 37) % 1000;

        snprintf(w->saga, sizeof(w->saga), ITR_SAGA_PREFIX "%016d", i);
        w->user = itr.users[i % ITR_N_USERS];
        w->room = i < ITR_N_MAIN ? itr.rooms[ri] : 1;
        w->coupon = i < ITR_N_MAIN ? ITR_COUPON_BASE + ri * 10 + i % 3 : 1 + (i > ITR_N_MAIN);
        switch (g) {
        case 0:   /* the last 48 h: the 8 newest a second apart (newer than the
                   * rows of tests run before), then from 10 min back every 3 h */
            w->t_ms = k < 8 ? now - (1 + k) * 1000LL - ms
                            : now - (10 + (k - 8) * 180) * 60000LL - ms;
            if (k % 4 == 1)
                w->t_ms = first_t[g][k - 1];
            break;
        case 1:   /* 3 to 5 days ago */
        case 2:   /* 6 to 8 days ago */
            w->t_ms = today - (g * 3 + k % 3) * ITR_DAY_MS + 3600000LL + k * 13 * 60000LL + ms;
            if (k % 6 == 3)
                w->t_ms = first_t[g][k - 3];
            break;
        default:  /* 9 to 25 days ago */
            w->t_ms = today - (9 + k) * ITR_DAY_MS + 7200000LL + k * 11 * 60000LL + ms;
            break;
        }
        if (k < 32)
            first_t[g][k] = w->t_ms;
    }
}

/* Where the current strategy puts each row. */
static inline void itr_rows_place(void)
{
    for (int i = 0; i < ITR_N_ROWS; i++) {
        itr_row *w = &itr.rows[i];

        w->shard = sr_shard_of(&itr.map, w->user, w->room, w->t_ms / 1000);
    }
}

/* Removes every row of the test (and the zero counters its rooms leave in
 * order_counts, which the triggers keep at 0 rather than delete). */
static inline int itr_rows_delete(void)
{
    int rc = 0;

    for (int s = 0; s < ITR_SHARDS; s++) {
        if (itr_db_exec(s, "DELETE FROM coupon_results WHERE " ITR_MINE) != 0 ||
            itr_db_exec(s, "DELETE FROM order_counts WHERE orders = 0 AND (room_id BETWEEN "
                           "910000 AND 910999 OR (room_id = 1 AND coupon_id IN (1, 2)))") != 0)
            rc = -1;
    }
    return rc;
}

/* Makes, places and inserts the rows (one statement per shard), then checks
 * that each shard holds exactly the rows the strategy gives it. */
static inline int itr_rows_insert(void)
{
    char *sql = malloc(64 * 1024);
    int rc = 0;

    if (sql == NULL || itr_rows_delete() != 0) {
        free(sql);
        return -1;
    }
    itr_rows_make();
    itr_rows_place();
    for (int s = 0; s < ITR_SHARDS && rc == 0; s++) {
        size_t len = (size_t)snprintf(sql, 256, "INSERT INTO coupon_results (saga_id, user_id, "
                                      "coupon_id, room_id, grab_status, grab_time) VALUES ");
        int n = 0;

        for (int i = 0; i < ITR_N_ROWS; i++) {
            const itr_row *w = &itr.rows[i];
            char when[ITR_TIME_BUF];

            if (w->shard != s)
                continue;
            itr_time_text(w->t_ms, 0, when, sizeof(when));
            len += (size_t)snprintf(sql + len, 64 * 1024 - len, "%s('%s',%lld,%lld,%lld,1,'%s')",
                                    n++ ? "," : "", w->saga, w->user, w->coupon, w->room, when);
        }
        if (n > 0 && itr_db_exec(s, sql) != 0)
            rc = -1;
        if (rc == 0 && itr_db_int(s, "SELECT COUNT(*) FROM coupon_results WHERE %s", ITR_MINE) !=
                           n) {
            TH_FAIL_AT("shard %d does not hold its %d test rows", s, n);
            rc = -1;
        }
    }
    free(sql);
    return rc;
}

/* The shards the current strategy gives the test's rows matching pred. */
static inline uint64_t itr_rows_shards(int (*pred)(const itr_row *, long long), long long arg)
{
    uint64_t mask = 0;

    for (int i = 0; i < ITR_N_ROWS; i++)
        if (pred(&itr.rows[i], arg))
            mask |= UINT64_C(1) << itr.rows[i].shard;
    return mask;
}

/* ---- setup and teardown ------------------------------------------------------------------ */

/* Reads the stack's environment, connects, starts the services that are
 * down and puts order-svc under the default hash map. 0 on success. */
static inline int itr_setup(const char *suite)
{
    static const char *const names[3] = {"stock-svc", "order-svc", "orchestrator"};
    const char *shards = itk_env("MARIADB_SHARDS", NULL), *http = getenv("ORCH_HTTP_PORT");
    const char *qport = getenv("ORDER_QUERY_PORT");
    int base_port = atoi(itk_env("STACK_PORT_BASE", "17000")), n = 0;
    cg_error err = {0, ""};
    char list[4096], *save = NULL, got[32];

    itr.suite = suite;
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_LEVEL_WARN);
    itr.base = event_base_new();
    itr.port = http != NULL && http[0] ? atoi(http) : base_port + 80;
    itr.qport = qport != NULL && qport[0] ? atoi(qport) : base_port + 79;
    if (itr.base == NULL || shards == NULL || itk_env("REPO_DIR", NULL) == NULL ||
        itk_read_secret(getenv("MARIADB_PASSWORD_FILE"), itr.db_password,
                        sizeof(itr.db_password)) != 0) {
        fprintf(stdout, "%s: needs the stack environment (stack.env) and REPO_DIR\n", suite);
        return -1;
    }
    snprintf(list, sizeof(list), "%s", shards);
    for (char *s = strtok_r(list, ",", &save); s != NULL && n < ITR_SHARDS;
         s = strtok_r(NULL, ",", &save), n++) {
        snprintf(itr.shard_spec[n], ITR_ADDR_BUF, "%s", s);
        db_config_defaults(&itr.shard_cfg[n]);
        if (db_parse_addr(itr.shard_spec[n], &itr.shard_cfg[n], itr.shard_buf[n], ITR_ADDR_BUF,
                          &err) != CG_OK)
            return -1;
        itr.shard_cfg[n].user = itk_env("MARIADB_USER", "grab");
        itr.shard_cfg[n].password = itr.db_password;
        itr.shard_cfg[n].connect_timeout_ms = 1000;
        itr.shard_cfg[n].read_timeout_ms = 10000;
    }
    if (n != ITR_SHARDS || strtok_r(NULL, ",", &save) != NULL) {
        fprintf(stdout, "%s: MARIADB_SHARDS must list %d shards\n", suite, ITR_SHARDS);
        return -1;
    }
    if (sr_map_build(&itr.hash_map, SR_HASH, ITR_SHARDS, "", &err) != CG_OK ||
        itr_pick_users() != 0 || itr_redis_connect() != 0) {
        fprintf(stdout, "%s: no hash map, users or Redis\n", suite);
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        itr.started[i] = !itr_service_up(names[i]);
        if (itr.started[i] && itr_services("start", names[i]) != 0)
            return -1;
    }
    /* order-svc under the default map (a run that died may have left another). */
    itr_served_strategy(got, sizeof(got));
    if (strcmp(got, "hash") == 0) {
        itr.strategy = SR_HASH;
        itr.map = itr.hash_map;
        itr.map_ready = 1;
        return 0;
    }
    return itr_order_svc_restart(SR_HASH, NULL);
}

/* Brings back what the test broke, removes its rows and leaves order-svc
 * under the default strategy; failures count (run it as the last test). */
static inline void itr_restore(void)
{
    char got[32] = "";

    if (itr.s1_killed && itk_script("stack", "start-one mariadb-s1") == 0)
        itr.s1_killed = 0;
    TH_CHECK(!itr.s1_killed);
    TH_CHECK(itr_rows_delete() == 0);
    for (int s = 0; s < ITR_SHARDS; s++)
        TH_CHECK_INT(itr_db_int(s, "SELECT COUNT(*) FROM coupon_results WHERE %s", ITR_MINE), 0);
    if (!itr.map_ready || itr.strategy != SR_HASH || strcmp(itr.map_spec, "") != 0)
        TH_CHECK(itr_order_svc_restart(SR_HASH, NULL) == 0);
    itr_served_strategy(got, sizeof(got));
    TH_CHECK_STR(got, "hash");
}

/* Stops the services the test started (order-svc stays up, under hash) and
 * frees the connections. */
static inline void itr_free(void)
{
    if (itr.started[2])
        itr_services("stop", "orchestrator");
    if (itr.started[0])
        itr_services("stop", "stock-svc");
    for (int s = 0; s < ITR_SHARDS; s++)
        itr_db_drop(s);
    if (itr.redis != NULL)
        redisFree(itr.redis);
    itr.redis = NULL;
    if (itr.base != NULL)
        event_base_free(itr.base);
    itr.base = NULL;
}

/* Runs the tests, then (when a filter skipped it) the restore, then frees. */
static inline int itr_main(const char *suite, const struct th_test *tests, size_t n, int argc,
                           char **argv)
{
    int status;

    if (itr_setup(suite) != 0) {
        fprintf(stdout, "0 passed, 1 failed\n");
        itr_free();
        return 1;
    }
    status = th_main(itr.suite, tests, n, argc, argv);
    if (argc > 1) {   /* a filter may have skipped the restore */
        th_current_failures = 0;
        itr_restore();
    }
    itr_free();
    return status;
}

#endif
