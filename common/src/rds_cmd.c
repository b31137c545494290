/* rds_cmd.c - the rds client's command API: shared commands, leases, and the
 * completion of every command.
 *
 * Commands are formatted here (hiredis format strings or argv) so that the
 * command name can be checked: shared connections refuse what would change
 * their state for other users (WATCH, MULTI, SELECT, SUBSCRIBE, ...), and a
 * lease records what its holder left open (WATCH, MULTI) to clean it up on
 * release. Every completion passes through rds_cmd_finish(), which keeps the
 * stats, reacts to replies that mean "this is no longer the master" (in
 * replica mode READONLY is not one of them: it is what a replica answers a
 * caller's write), and calls the callback. */
#include "rds_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

#define RDS_NAME_MAX 24

/* Commands that change a connection's state for whoever uses it next. */
static const char *const refused_always[] = {
    "SELECT", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE",
    "SUNSUBSCRIBE", "MONITOR", "QUIT", "RESET", "HELLO",
};
/* Transaction commands: only on a lease. */
static const char *const lease_only[] = {"WATCH", "UNWATCH", "MULTI", "EXEC", "DISCARD"};

/* Error replies after which the connection's server is not a usable master. */
static const char *const failover_errors[] = {"READONLY", "MASTERDOWN", "LOADING"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static int in_list(const char *name, const char *const *list, size_t n)
{
    size_t i = 0;

    while (i < n && strcasecmp(name, list[i]) != 0)
        i++;
    return i < n;
}

/* Copies the first argument of a formatted command ("*N\r\n$L\r\nNAME\r\n...")
 * into name; "" when it is missing or too long to be a command we check. */
static void command_name(const char *buf, size_t len, char *name, size_t size)
{
    const char *p = memchr(buf, '\n', len), *end = buf + len;
    long n = 0;

    name[0] = '\0';
    if (len < 4 || buf[0] != '*' || p == NULL || p + 1 >= end || p[1] != '$')
        return;
    n = strtol(p + 2, NULL, 10);
    p = memchr(p + 1, '\n', (size_t)(end - p - 1));
    if (p != NULL && n > 0 && (size_t)n < size && p + 1 + n <= end) {
        memcpy(name, p + 1, (size_t)n);
        name[n] = '\0';
    }
}

static int pick_link(rds_client *c, rds_link **out)
{
    int rc = CG_ERR_STATE;

    for (int i = 0; i < c->pool_size && rc != CG_OK; i++) {
        int idx = (c->rr + i) % c->pool_size;
        rds_link *l = &c->pool[idx];

        if (l->state != RDS_LINK_READY)
            continue;
        if (l->lease != NULL || l->pending >= c->max_pending) {
            rc = CG_ERR_FULL;
            continue;
        }
        c->rr = (idx + 1) % c->pool_size;
        *out = l;
        rc = CG_OK;
    }
    return rc;
}

static void lease_track(rds_link *l, const char *name)
{
    if (strcasecmp(name, "WATCH") == 0) {
        l->watching = 1;
    } else if (strcasecmp(name, "UNWATCH") == 0) {
        l->watching = 0;
    } else if (strcasecmp(name, "MULTI") == 0) {
        l->in_multi = 1;
    } else if (strcasecmp(name, "EXEC") == 0 || strcasecmp(name, "DISCARD") == 0) {
        l->in_multi = 0;   /* EXEC and DISCARD end the transaction and every WATCH */
        l->watching = 0;
    }
}

/* lease NULL: any shared connection. */
static int submit(rds_client *c, rds_lease *lease, rds_reply_cb cb, void *arg, const char *buf,
                  int len)
{
    char name[RDS_NAME_MAX];
    rds_link *l = NULL;
    int rc;

    if (len < 0) {
        rc = CG_ERR_INVALID;   /* hiredis could not format it */
        goto done;
    }
    command_name(buf, (size_t)len, name, sizeof(name));
    if (c->closing) {
        rc = CG_ERR_STATE;
    } else if (in_list(name, refused_always, COUNT(refused_always)) ||
               (lease == NULL && in_list(name, lease_only, COUNT(lease_only)))) {
        rc = CG_ERR_INVALID;
    } else if (lease != NULL) {
        l = lease->link;
        rc = l != NULL ? CG_OK : CG_ERR_STATE;   /* NULL: its connection was lost */
    } else {
        rc = pick_link(c, &l);
    }
    if (rc == CG_OK)
        rc = rds_link_send(l, cb, arg, buf, (size_t)len, 1);
    if (rc == CG_OK && lease != NULL)
        lease_track(l, name);
done:
    if (rc == CG_OK)
        c->stats.commands++;
    else
        c->stats.rejected++;
    return rc;
}

int rds_vcommand(rds_client *c, rds_reply_cb cb, void *arg, const char *fmt, va_list ap)
{
    char *buf = NULL;
    int len, rc;

    len = redisvFormatCommand(&buf, fmt, ap);
    rc = submit(c, NULL, cb, arg, buf, len);
    redisFreeCommand(buf);
    return rc;
}

int rds_command(rds_client *c, rds_reply_cb cb, void *arg, const char *fmt, ...)
{
    int rc;
    va_list ap;

    va_start(ap, fmt);
    rc = rds_vcommand(c, cb, arg, fmt, ap);
    va_end(ap);
    return rc;
}

int rds_command_argv(rds_client *c, rds_reply_cb cb, void *arg, int argc, const char **argv,
                     const size_t *argvlen)
{
    char *buf = NULL;
    int len, rc;

    len = argc > 0 ? redisFormatCommandArgv(&buf, argc, argv, argvlen) : -1;
    rc = submit(c, NULL, cb, arg, buf, len);
    redisFreeCommand(buf);
    return rc;
}

int rds_lease_vcommand(rds_lease *lease, rds_reply_cb cb, void *arg, const char *fmt,
                       va_list ap)
{
    char *buf = NULL;
    int len, rc;

    len = redisvFormatCommand(&buf, fmt, ap);
    rc = submit(lease->client, lease, cb, arg, buf, len);
    redisFreeCommand(buf);
    return rc;
}

int rds_lease_command(rds_lease *lease, rds_reply_cb cb, void *arg, const char *fmt, ...)
{
    int rc;
    va_list ap;

    va_start(ap, fmt);
    rc = rds_lease_vcommand(lease, cb, arg, fmt, ap);
    va_end(ap);
    return rc;
}

int rds_lease_command_argv(rds_lease *lease, rds_reply_cb cb, void *arg, int argc,
                           const char **argv, const size_t *argvlen)
{
    char *buf = NULL;
    int len, rc;

    len = argc > 0 ? redisFormatCommandArgv(&buf, argc, argv, argvlen) : -1;
    rc = submit(lease->client, lease, cb, arg, buf, len);
    redisFreeCommand(buf);
    return rc;
}

/* ---- completion --------------------------------------------------------------------- */

static void check_failover_error(rds_link *l, const redisReply *r)
{
    rds_client *c = l->client;
    const char *hit = NULL;

    for (size_t i = 0; i < COUNT(failover_errors) && hit == NULL; i++) {
        size_t n = strlen(failover_errors[i]);

        if (r->type == REDIS_REPLY_ERROR && r->len >= n &&
            strncmp(r->str, failover_errors[i], n) == 0)
            hit = failover_errors[i];
    }
    /* A replica refusing a write: the caller's business, the server is fine. */
    if (hit != NULL && c->mode == RDS_ROLE_REPLICA && strcmp(hit, "READONLY") == 0)
        hit = NULL;
    if (hit != NULL && l->kind == RDS_LINK_POOL && l->state != RDS_LINK_CLOSING) {
        log_warn(c->name, "%s:%d answered \"%s\": dropping its links", l->host, l->port,
                 r->str);
        rds_pool_condemn(c, hit);
        /* READONLY: a failover demoted it, find the new master now. LOADING,
         * MASTERDOWN: it may come back as it is; give it time first. */
        if (strcmp(hit, "READONLY") == 0)
            c->rediscover = 1;
        else
            c->hold_off = 1;
        rds_kick(c);
    }
}

void rds_cmd_finish(rds_cmd *cmd, int status, redisReply *reply)
{
    rds_client *c = cmd->link->client;

    /* Before the callback: a command it sends must not reach the old master. */
    if (status == CG_OK)
        check_failover_error(cmd->link, reply);
    if (cmd->user) {
        if (status == CG_OK)
            c->stats.replies++;
        if (status == CG_OK && reply->type == REDIS_REPLY_ERROR)
            c->stats.error_replies++;
        else if (status == CG_ERR_TIMEOUT)
            c->stats.timeouts++;
        else if (status != CG_OK)
            c->stats.errors++;
    }
    if (cmd->cb != NULL) {
        c->cb_depth++;
        cmd->cb(c, status, status == CG_OK ? reply : NULL, cmd->arg);
        c->cb_depth--;
    }
    free(cmd);
}

/* ---- leases ----------------------------------------------------------------------------- */

rds_lease *rds_lease_acquire(rds_client *c)
{
    rds_lease *lease = NULL;
    rds_link *best = NULL;
    int unleased = 0;

    /* Replica mode: transactions belong to the master. */
    for (int i = 0; i < c->pool_size && !c->closing && c->mode == RDS_ROLE_MASTER; i++) {
        rds_link *l = &c->pool[i];

        if (l->state != RDS_LINK_READY || l->lease != NULL)
            continue;
        unleased++;
        if (best == NULL || l->pending < best->pending)
            best = l;
    }
    /* Keep one link for rds_command. */
    if (best != NULL && (unleased > 1 || c->pool_size == 1))
        lease = calloc(1, sizeof(*lease));
    if (lease != NULL) {
        lease->client = c;
        lease->link = best;
        best->lease = lease;
        best->watching = best->in_multi = 0;
        lease->next = c->leases;
        if (c->leases != NULL)
            c->leases->prev = lease;
        c->leases = lease;
    }
    return lease;
}

void rds_lease_release(rds_lease *lease)
{
    rds_link *l;
    rds_client *c;
    const char *cleanup = NULL;

    if (lease == NULL)
        return;
    l = lease->link;
    c = lease->client;
    if (l != NULL) {
        /* DISCARD also forgets the WATCHes. Pipelined ahead of the next user. */
        cleanup = l->in_multi ? "DISCARD" : l->watching ? "UNWATCH" : NULL;
        if (cleanup != NULL) {
            log_debug(c->name, "lease on link %d released mid-transaction: %s", l->slot, cleanup);
            if (rds_link_sendf(l, NULL, NULL, "%s", cleanup) != CG_OK)
                rds_link_mark_closing(l, CG_ERR_IO, "cannot clean up a released lease");
        }
        l->watching = l->in_multi = 0;
        l->lease = NULL;
    }
    if (lease->prev != NULL)
        lease->prev->next = lease->next;
    else
        c->leases = lease->next;
    if (lease->next != NULL)
        lease->next->prev = lease->prev;
    free(lease);
}

void rds_lease_detach(rds_link *l)
{
    if (l->lease != NULL) {
        l->lease->link = NULL;
        l->lease = NULL;
    }
    l->watching = l->in_multi = 0;
}

void rds_leases_free(rds_client *c)
{
    rds_lease *next;

    for (rds_lease *lease = c->leases; lease != NULL; lease = next) {
        next = lease->next;
        if (lease->link != NULL)
            lease->link->lease = NULL;
        free(lease);
    }
    c->leases = NULL;
}
