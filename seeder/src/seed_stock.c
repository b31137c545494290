/* seed_stock.c - stock into Redis through Sentinel, blocking; see seed_stock.h. */
#include "seed_stock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "keys.h"
#include "log.h"

#define SEED_RETRY_PAUSE_MS 200
#define SEED_STR_(x) #x
#define SEED_STR(x) SEED_STR_(x)
#define SEED_IP_MAX 48           /* an IPv6 address with room to spare */
#define SEED_MISMATCH_SHOWN 10   /* per-coupon warnings before only the count is told */

static long long seed_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void seed_pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static struct timeval seed_tv(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    return tv;
}

/* A hiredis context's failure as a status and message. A blocking socket
 * whose SO_RCVTIMEO passed reports EAGAIN. */
static int seed_redis_fail(redisContext *c, const char *addr, const char *what, cg_error *err)
{
    int timeout = c != NULL && c->err == REDIS_ERR_IO &&
                  (errno == EAGAIN || errno == EWOULDBLOCK ||
                   strstr(c->errstr, "temporarily unavailable") != NULL);

    return cg_error_set(err, timeout ? CG_ERR_TIMEOUT : CG_ERR_IO, "redis %s: %s: %s", addr, what,
                        c == NULL ? "cannot allocate a context"
                                  : timeout ? "timed out" : c->errstr);
}

/* A connection to ip:port with both timeouts set; NULL and err on failure. */
static redisContext *seed_connect(const char *ip, int port, int timeout_ms, cg_error *err)
{
    char addr[SEED_STOCK_ADDR_MAX];
    redisContext *c;

    snprintf(addr, sizeof(addr), "%s:%d", ip, port);
    c = redisConnectWithTimeout(ip, port, seed_tv(timeout_ms));
    if (c == NULL || c->err != 0 || redisSetTimeout(c, seed_tv(timeout_ms)) != REDIS_OK) {
        seed_redis_fail(c, addr, "connect", err);
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    return c;
}

/* Splits "ip:port" into host (SEED_STOCK_ADDR_MAX bytes) and *port. */
static int seed_parse_addr(const char *addr, char *host, int *port, cg_error *err)
{
    char *colon = NULL, *end = NULL;
    long p = 0;

    if (strlen(addr) < SEED_STOCK_ADDR_MAX) {
        snprintf(host, SEED_STOCK_ADDR_MAX, "%s", addr);
        colon = strrchr(host, ':');
    }
    if (colon != NULL) {
        *colon = '\0';
        p = strtol(colon + 1, &end, 10);
    }
    if (colon == NULL || colon == host || *end != '\0' || p < 1 || p > 65535)
        return cg_error_set(err, CG_ERR_INVALID, "setting 'sentinels': \"%s\" is not ip:port", addr);
    *port = (int)p;
    return CG_OK;
}

int seed_redis_check_sentinels(const char *sentinels, cg_error *err)
{
    char host[SEED_STOCK_ADDR_MAX], one[SEED_STOCK_ADDR_MAX + 1];
    int port, rc = CG_OK;

    if (sentinels == NULL || sentinels[0] == '\0')
        return cg_error_set(err, CG_ERR_INVALID, "setting 'sentinels' is empty");
    for (const char *p = sentinels; rc == CG_OK; p++) {
        size_t len = strcspn(p, ",");

        snprintf(one, sizeof(one), "%.*s", (int)(len < sizeof(one) - 1 ? len : sizeof(one) - 1), p);
        rc = len < sizeof(one) - 1 ? seed_parse_addr(one, host, &port, err)
                                   : cg_error_set(err, CG_ERR_INVALID, "setting 'sentinels': an "
                                                  "entry is too long");
        p += len;
        if (*p == '\0')
            break;
    }
    return rc;
}

/* Asks one sentinel; fills ip/port of the master it names. */
static int seed_ask_sentinel(const char *sentinel, const char *master_name, int timeout_ms,
                             char *ip, size_t iplen, int *port, cg_error *err)
{
    char host[SEED_STOCK_ADDR_MAX];
    redisContext *c = NULL;
    redisReply *rep = NULL;
    int sport = 0, rc;

    if ((rc = seed_parse_addr(sentinel, host, &sport, err)) != CG_OK)
        goto done;
    if ((c = seed_connect(host, sport, timeout_ms, err)) == NULL) {
        rc = err != NULL ? err->code : CG_ERR_IO;
        goto done;
    }
    rep = redisCommand(c, "SENTINEL get-master-addr-by-name %s", master_name);
    if (rep == NULL) {
        rc = seed_redis_fail(c, sentinel, "SENTINEL get-master-addr-by-name", err);
        goto done;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING || rep->element[1]->type != REDIS_REPLY_STRING) {
        rc = cg_error_set(err, CG_ERR_NOTFOUND, "sentinel %s does not know master '%s'%s%s",
                          sentinel, master_name, rep->type == REDIS_REPLY_ERROR ? ": " : "",
                          rep->type == REDIS_REPLY_ERROR ? rep->str : "");
        goto done;
    }
    snprintf(ip, iplen, "%s", rep->element[0]->str);
    *port = atoi(rep->element[1]->str);
    rc = CG_OK;

done:
    if (rep != NULL)
        freeReplyObject(rep);
    if (c != NULL)
        redisFree(c);
    return rc;
}

/* Connects to ip:port and keeps the connection when ROLE says master. */
static int seed_try_master(seed_redis *r, const char *ip, int port, cg_error *err)
{
    redisContext *c = NULL;
    redisReply *rep = NULL;
    int rc;

    snprintf(r->addr, sizeof(r->addr), "%s:%d", ip, port);
    if ((c = seed_connect(ip, port, r->timeout_ms, err)) == NULL) {
        rc = err != NULL ? err->code : CG_ERR_IO;
        goto done;
    }
    if ((rep = redisCommand(c, "ROLE")) == NULL) {
        rc = seed_redis_fail(c, r->addr, "ROLE", err);
        goto done;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        rep->element[0]->type != REDIS_REPLY_STRING || strcmp(rep->element[0]->str, "master") != 0) {
        rc = cg_error_set(err, CG_ERR_STATE, "redis %s: the sentinels name it master, ROLE says %s",
                          r->addr, rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
                                       rep->element[0]->type == REDIS_REPLY_STRING
                                   ? rep->element[0]->str : "something else");
        goto done;
    }
    r->replicas = rep->elements >= 3 && rep->element[2]->type == REDIS_REPLY_ARRAY
                      ? (int)rep->element[2]->elements : 0;
    r->ctx = c;
    c = NULL;
    rc = CG_OK;

done:
    if (rep != NULL)
        freeReplyObject(rep);
    if (c != NULL)
        redisFree(c);
    return rc;
}

int seed_redis_connect(const char *sentinels, const char *master_name, int timeout_ms,
                       seed_redis *r, cg_error *err)
{
    long long deadline = seed_now_ms() + SEED_STOCK_DISCOVER_MS;
    char *list = NULL, *save = NULL, *s, ip[SEED_IP_MAX];
    const char *why = "gave up after " SEED_STR(SEED_STOCK_DISCOVER_MS) " ms";
    int port = 0, rc = CG_ERR_INVALID, round = 0;

    memset(r, 0, sizeof(*r));
    r->timeout_ms = timeout_ms;
    if (sentinels == NULL || sentinels[0] == '\0' || master_name == NULL)
        return cg_error_set(err, CG_ERR_INVALID, "settings 'sentinels' and 'sentinel_master' are required");
    for (;;) {
        int asked = 0, unknown = 0;

        free(list);
        if ((list = strdup(sentinels)) == NULL) {
            rc = cg_error_set(err, CG_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (s = strtok_r(list, ",", &save); s != NULL; s = strtok_r(NULL, ",", &save)) {
            rc = seed_ask_sentinel(s, master_name, timeout_ms, ip, sizeof(ip), &port, err);
            asked++;
            unknown += rc == CG_ERR_NOTFOUND;
            if (rc == CG_ERR_INVALID)
                goto done;
            if (rc != CG_OK) {
                /* told once; the retries say it at debug level */
                log_at(round == 0 ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG, "-", "%s",
                       err != NULL ? err->msg : "sentinel failed");
                continue;
            }
            rc = seed_try_master(r, ip, port, err);
            if (rc == CG_OK) {
                log_info("-", "redis: master %s (named by sentinel %s), %d replica%s", r->addr, s,
                         r->replicas, r->replicas == 1 ? "" : "s");
                goto done;
            }
            log_at(round == 0 ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG, "-", "%s",
                   err != NULL ? err->msg : "master check failed");
        }
        round++;
        /* Every sentinel answers and none knows the name: a wrong name, not a failover. */
        if (asked > 0 && unknown == asked) {
            why = "none knows the name";
            break;
        }
        if (seed_now_ms() + SEED_RETRY_PAUSE_MS >= deadline)
            break;
        seed_pause_ms(SEED_RETRY_PAUSE_MS);
    }
    {
        char last[CG_ERROR_MSG_MAX];

        snprintf(last, sizeof(last), "%s", err != NULL ? err->msg : "?");
        rc = cg_error_set(err, rc != CG_OK ? rc : CG_ERR_STATE,
                          "no Redis master for '%s' through sentinels %s (%s; last: %s)",
                          master_name, sentinels, why, last);
    }

done:
    free(list);
    return rc;
}

void seed_redis_close(seed_redis *r)
{
    if (r->ctx != NULL)
        redisFree(r->ctx);
    r->ctx = NULL;
}

/* ---- loading ------------------------------------------------------------------ */

/* Commands queued inside each MULTI (between MULTI and EXEC). */
#define SEED_LOAD_QUEUED 5
#define SEED_RESET_QUEUED 6

static int seed_append(seed_redis *r, int argc, const char **argv, cg_error *err)
{
    if (redisAppendCommandArgv(r->ctx, argc, argv, NULL) != REDIS_OK)
        return cg_error_set(err, CG_ERR_NOMEM, "redis %s: cannot queue a command", r->addr);
    return CG_OK;
}

/* Appends one coupon's transaction to the output buffer. */
static int seed_append_coupon(seed_redis *r, const seed_coupon *c, int reset, cg_error *err)
{
    char stock[KEY_MAX], total[KEY_MAX], room[KEY_MAX], holders[KEY_MAX], sagas[KEY_MAX];
    char n[24], rid[24], cid[24];
    const char *nx = reset ? NULL : "NX";
    int argc = reset ? 3 : 4, rc;

    snprintf(stock, sizeof(stock), KEY_STOCK_FMT, c->coupon_id);
    snprintf(total, sizeof(total), KEY_STOCK_TOTAL_FMT, c->coupon_id);
    snprintf(room, sizeof(room), KEY_STOCK_ROOM_FMT, c->coupon_id);
    snprintf(holders, sizeof(holders), KEY_STOCK_HOLDERS_FMT, c->coupon_id);
    snprintf(sagas, sizeof(sagas), KEY_STOCK_SAGAS_FMT, c->coupon_id);
    snprintf(n, sizeof(n), "%lld", c->total_stock);
    snprintf(rid, sizeof(rid), "%lld", c->room_id);
    snprintf(cid, sizeof(cid), "%lld", c->coupon_id);
    {
        const char *multi[] = {"MULTI"};
        const char *get[] = {"GET", stock};
        const char *set_stock[] = {"SET", stock, n, nx};
        const char *set_total[] = {"SET", total, n, nx};
        const char *set_room[] = {"SET", room, rid, nx};
        const char *del[] = {"DEL", holders, sagas};
        const char *sadd[] = {"SADD", KEY_COUPONS, cid};
        const char *mget[] = {"MGET", total, room};
        const char *exec[] = {"EXEC"};

        if ((rc = seed_append(r, 1, multi, err)) != CG_OK ||
            (reset && (rc = seed_append(r, 2, get, err)) != CG_OK) ||
            (rc = seed_append(r, argc, set_stock, err)) != CG_OK ||
            (rc = seed_append(r, argc, set_total, err)) != CG_OK ||
            (rc = seed_append(r, argc, set_room, err)) != CG_OK ||
            (reset && (rc = seed_append(r, 3, del, err)) != CG_OK) ||
            (rc = seed_append(r, 3, sadd, err)) != CG_OK ||
            (!reset && (rc = seed_append(r, 3, mget, err)) != CG_OK) ||
            (rc = seed_append(r, 1, exec, err)) != CG_OK)
            return rc;
    }
    return CG_OK;
}

/* An integer from a bulk string reply; -1 for nil or garbage. */
static long long seed_reply_ll(const redisReply *rep)
{
    char *end = NULL;
    long long v;

    if (rep == NULL || rep->type != REDIS_REPLY_STRING)
        return -1;
    v = strtoll(rep->str, &end, 10);
    return end != rep->str && *end == '\0' ? v : -1;
}

/* Checks the EXEC reply of coupon c and fills *out. */
static int seed_check_exec(seed_redis *r, const seed_coupon *c, int reset, const redisReply *rep,
                           seed_stock_outcome *out, cg_error *err)
{
    size_t want = reset ? SEED_RESET_QUEUED : SEED_LOAD_QUEUED;

    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != want)
        return cg_error_set(err, CG_ERR_PROTOCOL, "redis %s: coupon %lld: EXEC answered %s%s",
                            r->addr, c->coupon_id,
                            rep->type == REDIS_REPLY_ERROR ? "" : "not the expected array",
                            rep->type == REDIS_REPLY_ERROR ? rep->str : "");
    for (size_t i = 0; i < rep->elements; i++) {
        if (rep->element[i]->type == REDIS_REPLY_ERROR)
            return cg_error_set(err, CG_ERR_PROTOCOL, "redis %s: coupon %lld: command %zu of its "
                                "transaction failed: %s", r->addr, c->coupon_id, i + 1,
                                rep->element[i]->str);
    }
    memset(out, 0, sizeof(*out));
    if (reset) {
        out->action = SEED_STOCK_RESET;
        out->previous = seed_reply_ll(rep->element[0]);
        return CG_OK;
    }
    /* element 0: SET stock NX answers OK when it set, nil when the key existed */
    out->action = rep->element[0]->type == REDIS_REPLY_STATUS ? SEED_STOCK_LOADED : SEED_STOCK_KEPT;
    out->previous = -1;
    {
        const redisReply *mget = rep->element[4];

        if (mget->type != REDIS_REPLY_ARRAY || mget->elements != 2)
            return cg_error_set(err, CG_ERR_PROTOCOL, "redis %s: coupon %lld: MGET answered "
                                "no pair", r->addr, c->coupon_id);
        out->mismatch = seed_reply_ll(mget->element[0]) != c->total_stock ||
                        seed_reply_ll(mget->element[1]) != c->room_id;
    }
    return CG_OK;
}

/* Reads one coupon's replies: +OK for MULTI, +QUEUED per command, EXEC's array. */
static int seed_read_coupon(seed_redis *r, const seed_coupon *c, int reset,
                            seed_stock_outcome *out, cg_error *err)
{
    int queued = reset ? SEED_RESET_QUEUED : SEED_LOAD_QUEUED, rc = CG_OK;
    void *vp = NULL;
    redisReply *rep;

    for (int i = 0; i < queued + 2 && rc == CG_OK; i++) {
        if (redisGetReply(r->ctx, &vp) != REDIS_OK || vp == NULL)
            return seed_redis_fail(r->ctx, r->addr, "reading the stock transactions' replies", err);
        rep = vp;
        if (i == queued + 1)
            rc = seed_check_exec(r, c, reset, rep, out, err);
        else if (rep->type != REDIS_REPLY_STATUS)
            rc = cg_error_set(err, CG_ERR_PROTOCOL, "redis %s: coupon %lld: %s answered %s",
                              r->addr, c->coupon_id, i == 0 ? "MULTI" : "a queued command",
                              rep->type == REDIS_REPLY_ERROR ? rep->str : "no status");
        freeReplyObject(rep);
    }
    return rc;
}

int seed_stock_load(seed_redis *r, const seed_coupon *cs, long long n, int reset,
                    seed_stock_outcome *out, cg_error *err)
{
    long long shown = 0;
    int rc = CG_OK;

    for (long long i = 0; i < n && rc == CG_OK; i += SEED_STOCK_CHUNK) {
        long long end = n - i > SEED_STOCK_CHUNK ? i + SEED_STOCK_CHUNK : n;

        for (long long k = i; k < end && rc == CG_OK; k++)
            rc = seed_append_coupon(r, &cs[k], reset, err);
        /* Every reply is read even after a failure, or the connection would be out of step;
         * it is closed on error anyway, so stop at the first. */
        for (long long k = i; k < end && rc == CG_OK; k++) {
            rc = seed_read_coupon(r, &cs[k], reset, &out[k], err);
            if (rc == CG_OK && out[k].mismatch && shown++ < SEED_MISMATCH_SHOWN)
                log_warn("-", "coupon %lld: Redis keeps a total or room that differs from the "
                         "database's (total %lld, room %lld); --reset-stock overwrites it",
                         cs[k].coupon_id, cs[k].total_stock, cs[k].room_id);
        }
    }
    return rc;
}

int seed_stock_wait_replicas(seed_redis *r, int timeout_ms, long long *acked, cg_error *err)
{
    redisReply *rep;
    int rc;

    *acked = 0;
    /* The server holds the answer up to timeout_ms: the socket must wait longer. */
    if (redisSetTimeout(r->ctx, seed_tv(timeout_ms + r->timeout_ms)) != REDIS_OK)
        return seed_redis_fail(r->ctx, r->addr, "setting the WAIT timeout", err);
    rep = redisCommand(r->ctx, "WAIT %d %d", r->replicas, timeout_ms);
    if (rep == NULL)
        return seed_redis_fail(r->ctx, r->addr, "WAIT", err);
    if (redisSetTimeout(r->ctx, seed_tv(r->timeout_ms)) != REDIS_OK) {
        freeReplyObject(rep);
        return seed_redis_fail(r->ctx, r->addr, "setting the timeout back", err);
    }
    if (rep->type == REDIS_REPLY_INTEGER) {
        *acked = rep->integer;
        rc = CG_OK;
    } else {
        rc = cg_error_set(err, CG_ERR_PROTOCOL, "redis %s: WAIT answered %s", r->addr,
                          rep->type == REDIS_REPLY_ERROR ? rep->str : "no integer");
    }
    freeReplyObject(rep);
    return rc;
}
