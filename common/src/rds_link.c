/* rds_link.c - one hiredis async connection of an rds client.
 *
 * A link wraps a redisAsyncContext attached to the client's libevent loop and
 * adds what hiredis 0.14 lacks: a connect deadline, a deadline per command
 * (checked from the client's one timer, not a timer per command), a bound on
 * pending commands, and a teardown that gives every pending command exactly
 * one callback. Commands are kept in a FIFO in sending order: replies on a
 * connection come back in that order, so only the oldest deadline matters,
 * and a missed one means the connection is stuck: it is dropped whole.
 *
 * hiredis runs every registered callback exactly once, with the reply or,
 * when the context is freed, with NULL; our trampoline turns NULL into the
 * link's fail_status. See rds_int.h for the rule on freeing contexts. */
#include "rds_int.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>

#include "log.h"

static const char *const link_state_names[RDS_LINK_STATE_MAX] = {
    "idle", "connecting", "handshake", "ready", "closing",
};

int64_t rds_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void rds_kick(rds_client *c)
{
    if (!c->closing && c->kick != NULL)
        event_active(c->kick, EV_TIMEOUT, 1);
}

const char *rds_link_kind_name(int kind)
{
    switch (kind) {
    case RDS_LINK_POOL: return "pool";
    case RDS_LINK_ASK: return "sentinel query";
    case RDS_LINK_SUB: return "sentinel subscription";
    case RDS_LINK_PROBE: return "replica probe";
    default: return "?";
    }
}

void rds_link_init(rds_link *l, rds_client *c, int kind, int slot)
{
    memset(l, 0, sizeof(*l));
    l->client = c;
    l->kind = kind;
    l->slot = slot;
    l->state = RDS_LINK_IDLE;
    l->fail_status = CG_ERR_IO;
}

void rds_link_set_state(rds_link *l, int state)
{
    rds_client *c = l->client;

    assert(state >= 0 && state < RDS_LINK_STATE_MAX);
    assert(l->state >= 0 && l->state < RDS_LINK_STATE_MAX);
    if (state != l->state) {
        log_debug(c->name, "%s link %d (%s:%d): %s -> %s", rds_link_kind_name(l->kind), l->slot,
                  l->host, l->port, link_state_names[l->state], link_state_names[state]);
        if (l->kind == RDS_LINK_POOL && l->state == RDS_LINK_READY)
            c->ready_count--;
        if (l->kind == RDS_LINK_POOL && state == RDS_LINK_READY)
            c->ready_count++;
        if (state == RDS_LINK_READY)
            l->was_ready = 1;
        l->state = state;
        /* Every change may unblock the client's state machine. */
        rds_kick(c);
    }
}

void rds_link_mark_closing(rds_link *l, int status, const char *why)
{
    /* The first reason wins: it is the cause, later ones are consequences. */
    if (l->state != RDS_LINK_IDLE && l->state != RDS_LINK_CLOSING) {
        l->fail_status = status;
        snprintf(l->why, sizeof(l->why), "%s", why);
        rds_lease_detach(l);
        rds_link_set_state(l, RDS_LINK_CLOSING);
    }
}

/* hiredis is freeing l->ac right now (error, EOF, or our own redisAsyncFree). */
void rds_link_lost(rds_link *l, const char *why)
{
    rds_link_mark_closing(l, CG_ERR_IO, why);
    l->ac = NULL;
}

static const char *ac_error(const redisAsyncContext *ac, const char *fallback)
{
    return (ac->c.err != 0 && ac->c.errstr[0] != '\0') ? ac->c.errstr : fallback;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    rds_link *l = ac->data;
    rds_client *c = l->client;

    if (status != REDIS_OK) {
        /* hiredis frees the context right after this returns. */
        rds_link_lost(l, ac_error(ac, "connect failed"));
    } else if (l->state == RDS_LINK_CONNECTING) {
        l->deadline_us = rds_now_us() + (int64_t)c->command_timeout_ms * 1000;
        rds_link_set_state(l, RDS_LINK_HANDSHAKE);
        rds_link_on_connected(l);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    rds_link *l = ac->data;

    rds_link_lost(l, status == REDIS_OK ? "closed" : ac_error(ac, "connection lost"));
}

/* The hiredis callback of every FIFO command. */
static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    rds_cmd *cmd = privdata;
    rds_link *l = cmd->link;
    int status = CG_OK;

    assert(l->head == cmd);
    l->head = cmd->next;
    if (l->head == NULL)
        l->tail = NULL;
    l->pending--;
    if (r == NULL) {
        rds_link_lost(l, ac_error(ac, "connection lost"));
        status = l->fail_status;
    }
    rds_cmd_finish(cmd, status, r);
}

int rds_link_connect(rds_link *l, const char *host, int port)
{
    rds_client *c = l->client;
    redisAsyncContext *ac = NULL;
    int rc = CG_OK;

    assert(l->state == RDS_LINK_IDLE && l->ac == NULL && l->head == NULL);
    snprintf(l->host, sizeof(l->host), "%s", host);
    l->port = port;
    l->was_ready = 0;
    l->fail_status = CG_ERR_IO;
    l->why[0] = '\0';
    l->watching = l->in_multi = 0;

    ac = redisAsyncConnect(host, port);
    if (ac == NULL) {
        snprintf(l->why, sizeof(l->why), "out of memory");
        rc = CG_ERR_NOMEM;
        goto done;
    }
    if (ac->err != 0) {
        snprintf(l->why, sizeof(l->why), "%s", ac_error(ac, "connect failed"));
        rc = CG_ERR_IO;
        goto done;
    }
    if (redisLibeventAttach(ac, c->base) != REDIS_OK) {
        snprintf(l->why, sizeof(l->why), "cannot attach to the event loop");
        rc = CG_ERR_IO;
        goto done;
    }
    ac->data = l;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* Finds a dead peer even on a link that never sends (the subscription). */
    (void)redisEnableKeepAlive(&ac->c);
    l->ac = ac;
    ac = NULL;
    l->deadline_us = rds_now_us() + (int64_t)c->connect_timeout_ms * 1000;
    rds_link_set_state(l, RDS_LINK_CONNECTING);

done:
    if (ac != NULL)
        redisAsyncFree(ac);   /* never attached, never connected: no callbacks */
    return rc;
}

int rds_link_send(rds_link *l, rds_reply_cb cb, void *arg, const char *buf, size_t len, int user)
{
    rds_client *c = l->client;
    rds_cmd *cmd = NULL;
    int rc = CG_OK;

    if (l->ac == NULL || (l->state != RDS_LINK_HANDSHAKE && l->state != RDS_LINK_READY)) {
        rc = CG_ERR_STATE;
        goto done;
    }
    if (l->pending >= c->max_pending) {
        rc = CG_ERR_FULL;
        goto done;
    }
    cmd = calloc(1, sizeof(*cmd));
    if (cmd == NULL) {
        rc = CG_ERR_NOMEM;
        goto done;
    }
    cmd->link = l;
    cmd->cb = cb;
    cmd->arg = arg;
    cmd->user = user;
    cmd->deadline_us = rds_now_us() + (int64_t)c->command_timeout_ms * 1000;
    /* hiredis only buffers here; it never calls back from inside this call. */
    if (redisAsyncFormattedCommand(l->ac, on_reply, cmd, buf, len) != REDIS_OK) {
        rc = CG_ERR_STATE;
        goto done;
    }
    if (l->tail != NULL)
        l->tail->next = cmd;
    else
        l->head = cmd;
    l->tail = cmd;
    l->pending++;
    cmd = NULL;

done:
    free(cmd);
    return rc;
}

int rds_link_sendf(rds_link *l, rds_reply_cb cb, void *arg, const char *fmt, ...)
{
    char *buf = NULL;
    int len, rc;
    va_list ap;

    va_start(ap, fmt);
    len = redisvFormatCommand(&buf, fmt, ap);
    va_end(ap);
    if (len < 0)
        rc = CG_ERR_NOMEM;
    else
        rc = rds_link_send(l, cb, arg, buf, (size_t)len, 0);
    redisFreeCommand(buf);
    return rc;
}

void rds_link_check(rds_link *l, int64_t now)
{
    rds_client *c = l->client;
    char why[RDS_WHY_MAX];

    switch (l->state) {
    case RDS_LINK_IDLE:
    case RDS_LINK_CLOSING:
        break;
    case RDS_LINK_CONNECTING:
        if (now >= l->deadline_us) {
            snprintf(why, sizeof(why), "connect timed out after %d ms", c->connect_timeout_ms);
            rds_link_mark_closing(l, CG_ERR_TIMEOUT, why);
        }
        break;
    case RDS_LINK_HANDSHAKE:
    case RDS_LINK_READY:
        /* The oldest command is the first to expire: replies come in order. */
        if ((l->state == RDS_LINK_HANDSHAKE && now >= l->deadline_us) ||
            (l->head != NULL && now >= l->head->deadline_us)) {
            snprintf(why, sizeof(why), "no reply within %d ms", c->command_timeout_ms);
            rds_link_mark_closing(l, CG_ERR_TIMEOUT, why);
        }
        break;
    default:
        log_error(c->name, "link in impossible state %d", l->state);
        abort();
    }
}

void rds_link_close(rds_link *l)
{
    redisAsyncContext *ac = l->ac;

    assert(l->state == RDS_LINK_CLOSING);
    l->ac = NULL;
    if (ac != NULL)
        redisAsyncFree(ac);   /* runs the pending callbacks now, with l->fail_status */
    assert(l->head == NULL && l->pending == 0);
    rds_link_set_state(l, RDS_LINK_IDLE);
}
