/* rds_sync.c - blocking Redis through Sentinel, for CLIs and tests; see rds_sync.h. */
#include "rds_sync.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "log.h"

#define RDS_SYNC_IP_MAX 48   /* an IPv6 address with room to spare */

static long long rds_sync_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void rds_sync_pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

struct timeval rds_sync_tv(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    return tv;
}

/* A blocking socket whose SO_RCVTIMEO passed reports EAGAIN. */
int rds_sync_fail(redisContext *c, const char *addr, const char *what, cg_error *err)
{
    int timeout = c != NULL && c->err == REDIS_ERR_IO &&
                  (errno == EAGAIN || errno == EWOULDBLOCK ||
                   strstr(c->errstr, "temporarily unavailable") != NULL);

    return cg_error_set(err, timeout ? CG_ERR_TIMEOUT : CG_ERR_IO, "redis %s: %s: %s", addr, what,
                        c == NULL ? "cannot allocate a context"
                                  : timeout ? "timed out" : c->errstr);
}

redisContext *rds_sync_open(const char *ip, int port, int timeout_ms, cg_error *err)
{
    char addr[RDS_SYNC_ADDR_MAX];
    redisContext *c;

    snprintf(addr, sizeof(addr), "%s:%d", ip, port);
    c = redisConnectWithTimeout(ip, port, rds_sync_tv(timeout_ms));
    if (c == NULL || c->err != 0 || redisSetTimeout(c, rds_sync_tv(timeout_ms)) != REDIS_OK) {
        rds_sync_fail(c, addr, "connect", err);
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    return c;
}

redisReply *rds_sync_query(const char *host, int port, int timeout_ms, const char *fmt, ...)
{
    redisContext *c = rds_sync_open(host, port, timeout_ms, NULL);
    redisReply *r = NULL;
    va_list ap;

    if (c != NULL) {
        va_start(ap, fmt);
        r = redisvCommand(c, fmt, ap);
        va_end(ap);
        redisFree(c);
    }
    return r;
}

int rds_sync_parse_addr(const char *addr, char *host, int *port, cg_error *err)
{
    char *colon = NULL, *end = NULL;
    long p = 0;

    if (strlen(addr) < RDS_SYNC_ADDR_MAX) {
        snprintf(host, RDS_SYNC_ADDR_MAX, "%s", addr);
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

int rds_sync_check_sentinels(const char *sentinels, cg_error *err)
{
    char host[RDS_SYNC_ADDR_MAX], one[RDS_SYNC_ADDR_MAX + 1];
    int port, rc = CG_OK;

    if (sentinels == NULL || sentinels[0] == '\0')
        return cg_error_set(err, CG_ERR_INVALID, "setting 'sentinels' is empty");
    for (const char *p = sentinels; rc == CG_OK; p++) {
        size_t len = strcspn(p, ",");

        snprintf(one, sizeof(one), "%.*s", (int)(len < sizeof(one) - 1 ? len : sizeof(one) - 1), p);
        rc = len < sizeof(one) - 1 ? rds_sync_parse_addr(one, host, &port, err)
                                   : cg_error_set(err, CG_ERR_INVALID, "setting 'sentinels': an "
                                                  "entry is too long");
        p += len;
        if (*p == '\0')
            break;
    }
    return rc;
}

/* Asks one sentinel; fills ip/port of the master it names. */
static int rds_sync_ask(const char *sentinel, const char *master_name, int timeout_ms, char *ip,
                        size_t iplen, int *port, cg_error *err)
{
    char host[RDS_SYNC_ADDR_MAX];
    redisContext *c = NULL;
    redisReply *rep = NULL;
    int sport = 0, rc;

    if ((rc = rds_sync_parse_addr(sentinel, host, &sport, err)) != CG_OK)
        goto done;
    if ((c = rds_sync_open(host, sport, timeout_ms, err)) == NULL) {
        rc = err != NULL ? err->code : CG_ERR_IO;
        goto done;
    }
    rep = redisCommand(c, "SENTINEL get-master-addr-by-name %s", master_name);
    if (rep == NULL) {
        rc = rds_sync_fail(c, sentinel, "SENTINEL get-master-addr-by-name", err);
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

int rds_sync_sentinel_view(const char *sentinels, const char *master_name, int timeout_ms,
                           char *ip, size_t iplen, int *port, cg_error *err)
{
    char *list = NULL, *save = NULL, *s;
    int rc = cg_error_set(err, CG_ERR_NOTFOUND, "no sentinel names master '%s'", master_name);

    if (sentinels == NULL || sentinels[0] == '\0')
        return rc;
    if ((list = strdup(sentinels)) == NULL)
        return cg_error_set(err, CG_ERR_NOMEM, "out of memory");
    for (s = strtok_r(list, ",", &save); s != NULL; s = strtok_r(NULL, ",", &save)) {
        if ((rc = rds_sync_ask(s, master_name, timeout_ms, ip, iplen, port, err)) == CG_OK)
            break;
    }
    free(list);
    return rc == CG_OK ? CG_OK : CG_ERR_NOTFOUND;
}

/* AUTH when a password is set; CG_OK or the failure in err. */
static int rds_sync_auth(redisContext *c, const char *addr, const char *password, cg_error *err)
{
    redisReply *rep;
    int rc = CG_OK;

    if (password == NULL)
        return CG_OK;
    if ((rep = redisCommand(c, "AUTH %s", password)) == NULL)
        return rds_sync_fail(c, addr, "AUTH", err);
    if (rep->type == REDIS_REPLY_ERROR)
        rc = cg_error_set(err, CG_ERR_INVALID, "redis %s: AUTH: %s", addr, rep->str);
    freeReplyObject(rep);
    return rc;
}

/* Connects to ip:port and keeps the connection when ROLE says master. */
static int rds_sync_try_master(const rds_sync_opts *o, const char *ip, int port,
                               redisContext **out, int *replicas, cg_error *err)
{
    char addr[RDS_SYNC_ADDR_MAX];
    redisContext *c = NULL;
    redisReply *rep = NULL;
    int rc;

    snprintf(addr, sizeof(addr), "%s:%d", ip, port);
    if ((c = rds_sync_open(ip, port, o->timeout_ms, err)) == NULL) {
        rc = err != NULL ? err->code : CG_ERR_IO;
        goto done;
    }
    if ((rc = rds_sync_auth(c, addr, o->password, err)) != CG_OK)
        goto done;
    if ((rep = redisCommand(c, "ROLE")) == NULL) {
        rc = rds_sync_fail(c, addr, "ROLE", err);
        goto done;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        rep->element[0]->type != REDIS_REPLY_STRING || strcmp(rep->element[0]->str, "master") != 0) {
        rc = cg_error_set(err, CG_ERR_STATE, "redis %s: the sentinels name it master, ROLE says %s",
                          addr, rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
                                    rep->element[0]->type == REDIS_REPLY_STRING
                                ? rep->element[0]->str : "something else");
        goto done;
    }
    *replicas = rep->elements >= 3 && rep->element[2]->type == REDIS_REPLY_ARRAY
                    ? (int)rep->element[2]->elements : 0;
    *out = c;
    c = NULL;
    rc = CG_OK;

done:
    if (rep != NULL)
        freeReplyObject(rep);
    if (c != NULL)
        redisFree(c);
    return rc;
}

/* One round over the sentinels; *asked and *unknown count the answers. */
static int rds_sync_round(const rds_sync_opts *o, int level, redisContext **out, char *addr,
                          size_t addrlen, int *replicas, int *asked, int *unknown, cg_error *err)
{
    char *list = NULL, *save = NULL, *s, ip[RDS_SYNC_IP_MAX];
    int port = 0, rc = cg_error_set(err, CG_ERR_INVALID, "no sentinel in \"%s\"", o->sentinels);

    if ((list = strdup(o->sentinels)) == NULL)
        return cg_error_set(err, CG_ERR_NOMEM, "out of memory");
    for (s = strtok_r(list, ",", &save); s != NULL; s = strtok_r(NULL, ",", &save)) {
        rc = rds_sync_ask(s, o->master_name, o->timeout_ms, ip, sizeof(ip), &port, err);
        /* a malformed entry is told and skipped; the others may still answer */
        *asked += rc != CG_ERR_INVALID;
        *unknown += rc == CG_ERR_NOTFOUND;
        if (rc == CG_OK) {
            rc = rds_sync_try_master(o, ip, port, out, replicas, err);
            if (rc == CG_OK) {
                snprintf(addr, addrlen, "%s:%d", ip, port);
                break;
            }
        }
        log_at(level, "-", "%s", err != NULL ? err->msg : "redis: no master from a sentinel");
    }
    free(list);
    return rc;
}

int rds_sync_master(const rds_sync_opts *o, redisContext **out, char *addr, size_t addrlen,
                    int *replicas, cg_error *err)
{
    long long deadline = rds_sync_now_ms() + o->discover_ms;
    char last[CG_ERROR_MSG_MAX], where[RDS_SYNC_ADDR_MAX];
    const char *why = "gave up";
    int rc, round = 0, nrep = 0;

    *out = NULL;
    if (o->sentinels == NULL || o->sentinels[0] == '\0' || o->master_name == NULL)
        return cg_error_set(err, CG_ERR_INVALID, "settings 'sentinels' and 'sentinel_master' are required");
    for (;;) {
        int asked = 0, unknown = 0;

        rc = rds_sync_round(o, round == 0 ? o->log_level : LOG_LEVEL_DEBUG, out, where,
                            sizeof(where), &nrep, &asked, &unknown, err);
        if (rc == CG_OK || rc == CG_ERR_NOMEM)
            goto done;
        round++;
        if (asked == 0) {
            why = "no entry is ip:port";
            break;
        }
        /* Every sentinel answers and none knows the name: a wrong name, not a failover. */
        if (unknown == asked) {
            why = "none knows the name";
            break;
        }
        if (rds_sync_now_ms() + RDS_SYNC_RETRY_PAUSE_MS >= deadline)
            break;
        rds_sync_pause_ms(RDS_SYNC_RETRY_PAUSE_MS);
    }
    snprintf(last, sizeof(last), "%s", err != NULL ? err->msg : "?");
    rc = cg_error_set(err, rc != CG_OK ? rc : CG_ERR_STATE,
                      "no Redis master for '%s' through sentinels %s (%s after %d round%s; last: %s)",
                      o->master_name, o->sentinels, why, round, round == 1 ? "" : "s", last);

done:
    if (rc == CG_OK) {
        if (addr != NULL)
            snprintf(addr, addrlen, "%s", where);
        if (replicas != NULL)
            *replicas = nrep;
    }
    return rc;
}
