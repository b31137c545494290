/* rds_sentinel.c - the rds client's side of Redis Sentinel.
 *
 * Two links talk to the sentinels. The query link asks them in turn, one
 * short connection each (bounded by the connect and command deadlines),
 * "SENTINEL get-master-addr-by-name <name>"; the first answer wins and the
 * client goes on to connect and verify it (rds.c). The subscription link
 * stays SUBSCRIBEd to +switch-master on one sentinel; a message for our
 * master moves the pool at once, and a lost subscription moves to the next
 * sentinel and asks again, since a switch may have been missed meanwhile. */
#include "rds_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

/* ---- the sentinel list ----------------------------------------------------- */

static int parse_one(rds_addr *a, const char *item, size_t len)
{
    char buf[RDS_ADDR_MAX];
    char *colon, *end;
    long port;
    int rc = CG_ERR_INVALID;

    if (len == 0 || len >= sizeof(buf))
        goto done;
    memcpy(buf, item, len);
    buf[len] = '\0';
    colon = strrchr(buf, ':');
    if (colon == NULL || colon == buf || (size_t)(colon - buf) >= sizeof(a->host))
        goto done;
    *colon = '\0';
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || end == colon + 1 || port <= 0 || port > 65535)
        goto done;
    memcpy(a->host, buf, (size_t)(colon - buf) + 1);
    a->port = (int)port;
    rc = CG_OK;
done:
    return rc;
}

int rds_sentinels_parse(rds_client *c, const char *list, cg_error *err)
{
    const char *p = list, *comma;
    int n = 1, rc = CG_OK;

    for (const char *q = list; *q != '\0'; q++)
        n += (*q == ',');
    c->sentinels = calloc((size_t)n, sizeof(*c->sentinels));
    if (c->sentinels == NULL) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (c->n_sentinels = 0; c->n_sentinels < n; c->n_sentinels++) {
        comma = strchr(p, ',');
        if (comma == NULL)
            comma = p + strlen(p);
        if (parse_one(&c->sentinels[c->n_sentinels], p, (size_t)(comma - p)) != CG_OK) {
            rc = cg_error_set(err, CG_ERR_INVALID,
                              "sentinels: bad address \"%.*s\" (want host:port)",
                              (int)(comma - p), p);
            goto done;
        }
        p = *comma != '\0' ? comma + 1 : comma;
    }
done:
    return rc;
}

/* ---- asking for the master --------------------------------------------------- */

static void ask_start_one(rds_client *c)
{
    const rds_addr *s = &c->sentinels[c->ask_idx];

    log_info(c->name, "asking sentinel %s:%d for the master", s->host, s->port);
    c->ask_started = 1;
    c->ask_done = 0;
    c->ask_ok = 0;
    if (rds_link_connect(&c->ask, s->host, s->port) != CG_OK) {
        log_warn(c->name, "sentinel %s:%d: %s", s->host, s->port, c->ask.why);
        c->ask_done = 1;
        rds_kick(c);
    }
}

static void ask_finish(rds_client *c)
{
    if (c->ask_ok) {
        c->ask_first = c->ask_idx;   /* start the next round with the one that answered */
        rds_master_found(c, c->ask_host, c->ask_port);
    } else if (++c->ask_tries >= c->n_sentinels) {
        rds_enter_wait(c, "no sentinel gave the master address");
    } else {
        c->ask_idx = (c->ask_idx + 1) % c->n_sentinels;
        ask_start_one(c);
    }
}

void rds_ask_round_start(rds_client *c)
{
    /* A query still running belongs to an older round: drop it, ignore its answer. */
    rds_link_mark_closing(&c->ask, CG_ERR_IO, "superseded by a new round");
    c->ask_idx = c->ask_first;
    c->ask_tries = 0;
    c->ask_started = c->ask_done = c->ask_ok = 0;
    c->connect_failures = 0;
    c->stale = 0;
    rds_set_state(c, RDS_ST_ASK);
    rds_ask_step(c);
}

void rds_ask_step(rds_client *c)
{
    if (!c->ask_started && c->ask.state == RDS_LINK_IDLE)
        ask_start_one(c);
    else if (c->ask_started && c->ask_done && c->ask.state == RDS_LINK_IDLE)
        ask_finish(c);
}

static int ask_parse(rds_client *c, const redisReply *r, char *why, size_t size)
{
    long port = 0;
    char *end = NULL;
    int ok = 0;

    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING) {
        port = strtol(r->element[1]->str, &end, 10);
        ok = *end == '\0' && port > 0 && port <= 65535 && r->element[0]->len < RDS_HOST_MAX;
    }
    if (ok) {
        snprintf(c->ask_host, sizeof(c->ask_host), "%s", r->element[0]->str);
        c->ask_port = (int)port;
    } else if (r->type == REDIS_REPLY_NIL) {
        snprintf(why, size, "does not know a master named \"%s\"", c->name);
    } else if (r->type == REDIS_REPLY_ERROR) {
        snprintf(why, size, "%s", r->str);
    } else {
        snprintf(why, size, "unexpected reply type %d", r->type);
    }
    return ok;
}

static void ask_reply(rds_client *c, int status, redisReply *r, void *arg)
{
    rds_link *l = arg;
    char why[RDS_WHY_MAX] = "";

    /* Failures (timeout, lost link) are reported by rds_ask_on_closed; a
     * CLOSING link is a superseded query. */
    if (status == CG_OK && l->state == RDS_LINK_HANDSHAKE && !c->closing) {
        c->ask_ok = ask_parse(c, r, why, sizeof(why));
        c->ask_done = 1;
        if (c->ask_ok)
            log_info(c->name, "sentinel %s:%d says the master is %s:%d", l->host, l->port,
                     c->ask_host, c->ask_port);
        else
            log_warn(c->name, "sentinel %s:%d: %s", l->host, l->port, why);
        rds_link_mark_closing(l, CG_ERR_IO, "query done");
    }
}

void rds_ask_on_connected(rds_link *l)
{
    rds_client *c = l->client;

    if (rds_link_sendf(l, ask_reply, l, "SENTINEL get-master-addr-by-name %s", c->name) != CG_OK)
        rds_link_mark_closing(l, CG_ERR_IO, "cannot send the query");
}

void rds_ask_on_closed(rds_link *l)
{
    rds_client *c = l->client;

    if (c->state == RDS_ST_ASK && c->ask_started && !c->ask_done) {
        log_warn(c->name, "sentinel %s:%d: %s", l->host, l->port, l->why);
        c->ask_done = 1;
        c->ask_ok = 0;
    }
}

/* ---- the +switch-master subscription ---------------------------------------- */

/* One attempt failed: go on with the next sentinel, and after a whole round
 * of failures back off before the next round. */
static void sub_failed(rds_client *c)
{
    int64_t delay_ms = 0;

    c->sub_idx = (c->sub_idx + 1) % c->n_sentinels;
    if (++c->sub_tries % c->n_sentinels == 0) {
        delay_ms = c->sub_backoff_ms;
        c->sub_backoff_ms = c->sub_backoff_ms * 2 > c->reconnect_max_ms ? c->reconnect_max_ms
                                                                           : c->sub_backoff_ms * 2;
        log_info(c->name, "no sentinel took the subscription; trying again in %d ms",
                 (int)delay_ms);
    }
    c->sub_next_us = rds_now_us() + delay_ms * 1000;
}

void rds_sub_step(rds_client *c, int64_t now)
{
    const rds_addr *s = &c->sentinels[c->sub_idx];

    if (c->sub.state == RDS_LINK_IDLE && now >= c->sub_next_us) {
        log_info(c->name, "subscribing to +switch-master on sentinel %s:%d", s->host, s->port);
        if (rds_link_connect(&c->sub, s->host, s->port) != CG_OK) {
            log_warn(c->name, "sentinel %s:%d: %s", s->host, s->port, c->sub.why);
            sub_failed(c);
        }
    }
}

/* "<name> <old-ip> <old-port> <new-ip> <new-port>" */
static void sub_switch(rds_client *c, const rds_link *l, const char *msg)
{
    char name[RDS_HOST_MAX], old_ip[RDS_HOST_MAX], new_ip[RDS_HOST_MAX];
    int old_port = 0, new_port = 0;

    if (sscanf(msg, "%255s %255s %d %255s %d", name, old_ip, &old_port, new_ip, &new_port) != 5) {
        log_warn(c->name, "sentinel %s:%d: cannot parse +switch-master \"%s\"", l->host, l->port,
                 msg);
    } else if (strcmp(name, c->name) != 0) {
        log_debug(c->name, "+switch-master for another master: %s", msg);
    } else if (strcmp(new_ip, c->master_host) == 0 && new_port == c->master_port) {
        log_info(c->name, "+switch-master to %s:%d: already there", new_ip, new_port);
    } else {
        log_info(c->name, "+switch-master from sentinel %s:%d: %s:%d -> %s:%d; following",
                 l->host, l->port, old_ip, old_port, new_ip, new_port);
        /* No more writes to the old master: it is about to become a replica. */
        rds_pool_condemn(c, "+switch-master");
        c->rediscover = 1;
        rds_kick(c);
    }
}

/* Called for the SUBSCRIBE confirmation, for each message, and with NULL
 * once when hiredis frees the context. */
static void sub_message(redisAsyncContext *ac, void *reply, void *privdata)
{
    rds_link *l = privdata;
    rds_client *c = l->client;
    const redisReply *r = reply;

    (void)ac;
    if (r == NULL) {
        rds_link_lost(l, "subscription closed");
    } else if (l->state == RDS_LINK_CLOSING || c->closing || r->type != REDIS_REPLY_ARRAY ||
               r->elements < 3 || r->element[0]->type != REDIS_REPLY_STRING) {
        /* nothing to act on */
    } else if (strcasecmp(r->element[0]->str, "subscribe") == 0) {
        log_info(c->name, "subscribed to +switch-master on sentinel %s:%d", l->host, l->port);
        rds_link_set_state(l, RDS_LINK_READY);
        c->sub_tries = 0;
        c->sub_backoff_ms = c->reconnect_min_ms;
        if (c->sub_ever)
            c->rediscover = 1;   /* a switch may have happened while unsubscribed */
        c->sub_ever = 1;
    } else if (strcasecmp(r->element[0]->str, "message") == 0 &&
               r->element[2]->type == REDIS_REPLY_STRING) {
        sub_switch(c, l, r->element[2]->str);
    }
}

void rds_sub_on_connected(rds_link *l)
{
    /* Not a FIFO command: hiredis keeps this callback for every message. The
     * link's handshake deadline bounds the wait for the confirmation. */
    if (redisAsyncCommand(l->ac, sub_message, l, "SUBSCRIBE +switch-master") != REDIS_OK)
        rds_link_mark_closing(l, CG_ERR_IO, "cannot send SUBSCRIBE");
}

void rds_sub_on_closed(rds_link *l)
{
    rds_client *c = l->client;

    if (l->was_ready) {
        log_warn(c->name, "subscription on sentinel %s:%d lost (%s); moving to the next sentinel "
                 "and asking for the master again", l->host, l->port, l->why);
        c->rediscover = 1;
        c->sub_tries = 0;
        c->sub_idx = (c->sub_idx + 1) % c->n_sentinels;
        c->sub_next_us = rds_now_us();
    } else {
        log_warn(c->name, "subscription on sentinel %s:%d failed: %s", l->host, l->port, l->why);
        sub_failed(c);
    }
}
