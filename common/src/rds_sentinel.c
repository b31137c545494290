/* rds_sentinel.c - the rds client's side of Redis Sentinel.
 *
 * Two links talk to the sentinels. The query link asks them in turn, one
 * short connection each (bounded by the connect and command deadlines),
 * "SENTINEL get-master-addr-by-name <name>"; the first answer wins and the
 * client goes on to connect and verify it (rds.c). In replica mode the same
 * connection first asks "SENTINEL replicas <name>" (pipelined: still one
 * round trip), keeps the replicas that sentinel sees healthy and ranks them;
 * rds.c verifies them in that order and falls back to the master.
 *
 * The ranking is rendezvous hashing: each replica weighs hash(process seed,
 * "ip:port") and the heaviest comes first. It is stable for a process as long
 * as the replica set is (a reconnect returns to the same replica, so reads
 * do not jump between replicas that lag differently), it spreads processes
 * evenly, and a replica that leaves or joins moves only the processes that
 * rank it first.
 *
 * The subscription link stays SUBSCRIBEd to +switch-master on one sentinel;
 * a message for our master moves the pool at once (in replica mode: drops it
 * and chooses again, the replica set changed), and a lost subscription moves
 * to the next sentinel and asks again, since a switch may have been missed
 * meanwhile. */
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

    rds_log_round(c, "asking sentinel %s:%d for the %s", s->host, s->port,
                  c->mode == RDS_ROLE_REPLICA ? "replicas and the master" : "master");
    c->ask_started = 1;
    c->ask_done = 0;
    c->ask_ok = 0;
    c->n_cands = c->n_replicas = c->n_healthy = 0;
    if (rds_link_connect(&c->ask, s->host, s->port) != CG_OK) {
        log_warn(c->name, "sentinel %s:%d: %s", s->host, s->port, c->ask.why);
        c->ask_done = 1;
        rds_kick(c);
    }
}

static void ask_finish(rds_client *c)
{
    if (c->ask_ok || c->n_cands > 0) {
        c->ask_first = c->ask_idx;   /* start the next round with the one that answered */
        if (c->mode == RDS_ROLE_REPLICA)
            rds_replica_round_done(c);
        else
            rds_server_found(c, c->ask_host, c->ask_port);
    } else if (++c->ask_tries >= c->n_sentinels) {
        rds_enter_wait(c, "no sentinel gave the master address");
    } else {
        c->ask_idx = (c->ask_idx + 1) % c->n_sentinels;
        ask_start_one(c);
    }
}

void rds_ask_round_start(rds_client *c, int quiet)
{
    /* A query or probe still running belongs to an older round: drop it, ignore its answer. */
    rds_link_mark_closing(&c->ask, CG_ERR_IO, "superseded by a new round");
    rds_link_mark_closing(&c->probe, CG_ERR_IO, "superseded by a new round");
    c->quiet = quiet;
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
        if (!c->ask_ok)
            log_warn(c->name, "sentinel %s:%d: %s", l->host, l->port, why);
        else if (c->mode == RDS_ROLE_REPLICA)
            rds_log_round(c, "sentinel %s:%d says the master is %s:%d; %d replica(s), %d healthy",
                          l->host, l->port, c->ask_host, c->ask_port, c->n_replicas,
                          c->n_healthy);
        else
            log_info(c->name, "sentinel %s:%d says the master is %s:%d", l->host, l->port,
                     c->ask_host, c->ask_port);
        rds_link_mark_closing(l, CG_ERR_IO, "query done");
    }
}

/* ---- replica mode: the sentinel's replicas, healthy ones ranked ---------------- */

/* A field of one SENTINEL replicas entry (a flat array: name, value, ...). */
static const char *entry_field(const redisReply *e, const char *name)
{
    for (size_t k = 0; k + 1 < e->elements; k += 2) {
        const redisReply *key = e->element[k], *val = e->element[k + 1];

        if (key->type == REDIS_REPLY_STRING && val->type == REDIS_REPLY_STRING &&
            strcmp(key->str, name) == 0)
            return val->str;
    }
    return NULL;
}

/* 1 when the comma-separated flags hold flag. */
static int has_flag(const char *flags, const char *flag)
{
    size_t n = strlen(flag);
    const char *p = flags;
    int hit = 0;

    while (!hit && p != NULL) {
        hit = strncmp(p, flag, n) == 0 && (p[n] == ',' || p[n] == '\0');
        p = strchr(p, ',');
        if (p != NULL)
            p++;
    }
    return hit;
}

/* Rendezvous weight: FNV-1a over the seed and "ip:port", then the splitmix64
 * finaliser so that close seeds and ports still spread. */
static uint64_t rank_weight(uint64_t seed, const char *host, int port)
{
    char addr[RDS_ADDR_MAX];
    uint64_t h = 14695981039346656037ULL;
    int n = snprintf(addr, sizeof(addr), "%s:%d", host, port);

    for (int i = 0; i < 8; i++) {
        h ^= (seed >> (8 * i)) & 0xff;
        h *= 1099511628211ULL;
    }
    for (int i = 0; i < n && i < (int)sizeof(addr) - 1; i++) {
        h ^= (unsigned char)addr[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

/* Keeps the RDS_REPLICA_CANDIDATES heaviest, heaviest first. */
static void cand_insert(rds_client *c, const char *host, int port)
{
    uint64_t w = rank_weight(c->rank_seed, host, port);
    int i = c->n_cands < RDS_REPLICA_CANDIDATES ? c->n_cands++ : RDS_REPLICA_CANDIDATES;

    while (i > 0 && c->cands[i - 1].weight < w) {
        if (i < RDS_REPLICA_CANDIDATES)
            c->cands[i] = c->cands[i - 1];
        i--;
    }
    if (i < RDS_REPLICA_CANDIDATES) {
        snprintf(c->cands[i].addr.host, sizeof(c->cands[i].addr.host), "%s", host);
        c->cands[i].addr.port = port;
        c->cands[i].weight = w;
    }
}

/* Healthy: the sentinel reaches it (no s_down, o_down, disconnected) and it
 * reaches the master (master-link-status ok), so its data is current. */
static int replica_healthy(const redisReply *e, const char **ip, long *port)
{
    const char *flags, *link, *port_s;
    char *end = NULL;

    if (e->type != REDIS_REPLY_ARRAY)
        return 0;
    *ip = entry_field(e, "ip");
    port_s = entry_field(e, "port");
    flags = entry_field(e, "flags");
    link = entry_field(e, "master-link-status");
    if (*ip == NULL || port_s == NULL || flags == NULL || link == NULL ||
        strlen(*ip) >= RDS_HOST_MAX)
        return 0;
    *port = strtol(port_s, &end, 10);
    return *end == '\0' && *port > 0 && *port <= 65535 && !has_flag(flags, "s_down") &&
           !has_flag(flags, "o_down") && !has_flag(flags, "disconnected") &&
           strcmp(link, "ok") == 0;
}

static void replicas_reply(rds_client *c, int status, redisReply *r, void *arg)
{
    rds_link *l = arg;
    const char *ip = NULL;
    long port = 0;

    if (status != CG_OK || l->state != RDS_LINK_HANDSHAKE || c->closing) {
        /* reported by ask_reply or rds_ask_on_closed */
    } else if (r->type != REDIS_REPLY_ARRAY) {
        log_warn(c->name, "sentinel %s:%d: SENTINEL replicas: %s", l->host, l->port,
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    } else {
        for (size_t i = 0; i < r->elements; i++) {
            c->n_replicas++;
            if (replica_healthy(r->element[i], &ip, &port)) {
                c->n_healthy++;
                cand_insert(c, ip, (int)port);
            }
        }
    }
}

void rds_ask_on_connected(rds_link *l)
{
    rds_client *c = l->client;
    int rc = CG_OK;

    /* Pipelined: one round trip; the master is the fallback. */
    if (c->mode == RDS_ROLE_REPLICA)
        rc = rds_link_sendf(l, replicas_reply, l, "SENTINEL replicas %s", c->name);
    if (rc == CG_OK)
        rc = rds_link_sendf(l, ask_reply, l, "SENTINEL get-master-addr-by-name %s", c->name);
    if (rc != CG_OK)
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
    } else if (c->mode == RDS_ROLE_REPLICA) {
        log_info(c->name, "+switch-master from sentinel %s:%d: %s:%d -> %s:%d; the replicas "
                 "change: choosing again", l->host, l->port, old_ip, old_port, new_ip, new_port);
        /* Whatever the pool reads from changed role or master; verify again. */
        rds_pool_condemn(c, "+switch-master");
        c->rediscover = 1;
        rds_kick(c);
    } else if (strcmp(new_ip, c->server_host) == 0 && new_port == c->server_port) {
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
