/* rds.c - the rds client: configuration, the discovery state machine, the
 * replica probe, the pool of server connections, and the one timer that
 * drives them.
 *
 * Everything that changes the client's state happens in client_step(), run
 * by the persistent timer (every RDS_TICK_MS, for deadlines and retries) and
 * by the kick event (soon after a hiredis callback recorded something). The
 * step expires deadlines, frees CLOSING links, then moves the state machine:
 * WAIT -> ASK (rds_sentinel.c) -> CONNECT (open idle pool links, AUTH, ROLE
 * must say master) -> STEADY, back to ASK when a link is lost and to WAIT
 * (backoff) when a round fails. In replica mode ASK is followed by PROBE: one
 * connection checks the sentinel's best-ranked healthy replicas in turn
 * (ROLE: a connected replica, or a master), and the pool goes to the first
 * that passes or, failing all, to the master; STEADY on a master starts a
 * quiet round every reconnect_max_ms. Probing on a side connection first
 * means that a retry which finds no usable replica leaves the pool on the
 * master untouched. The pool is usable whenever at least one of its links is
 * verified and ready, in whatever state the machine is. */
#include "rds_int.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"

static const char *const state_names[RDS_ST_MAX] = {"wait", "ask", "probe", "connect", "steady"};

/* What a pool link is to, for logs: in replica mode a replica or a master. */
static const char *pool_noun(const rds_client *c)
{
    return c->mode == RDS_ROLE_MASTER ? "master" : "server";
}

static const char *role_name(int role)
{
    return role == RDS_ROLE_MASTER ? "master" : role == RDS_ROLE_REPLICA ? "replica" : "none";
}

void rds_config_defaults(rds_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->connect_timeout_ms = 1000;
    cfg->command_timeout_ms = 1000;
    cfg->reconnect_min_ms = 100;
    cfg->reconnect_max_ms = 5000;
    cfg->pool_size = 4;
    cfg->max_pending = 10000;
}

static int config_check(const rds_config *cfg, cg_error *err)
{
    int rc = CG_OK;

    if (cfg->sentinels == NULL || cfg->sentinels[0] == '\0')
        rc = cg_error_set(err, CG_ERR_INVALID, "sentinels: empty");
    else if (cfg->master_name == NULL || cfg->master_name[0] == '\0' ||
             strlen(cfg->master_name) >= RDS_HOST_MAX || strchr(cfg->master_name, ' ') != NULL)
        rc = cg_error_set(err, CG_ERR_INVALID, "master_name: empty, too long or has a space");
    else if (cfg->connect_timeout_ms <= 0 || cfg->command_timeout_ms <= 0)
        rc = cg_error_set(err, CG_ERR_INVALID, "connect/command timeouts must be > 0");
    else if (cfg->reconnect_min_ms <= 0 || cfg->reconnect_max_ms < cfg->reconnect_min_ms)
        rc = cg_error_set(err, CG_ERR_INVALID,
                          "reconnect_min_ms must be > 0 and <= reconnect_max_ms");
    else if (cfg->pool_size < 1 || cfg->pool_size > 1024)
        rc = cg_error_set(err, CG_ERR_INVALID, "pool_size must be 1..1024");
    else if (cfg->max_pending < 1)
        rc = cg_error_set(err, CG_ERR_INVALID, "max_pending must be > 0");
    else if (cfg->role != RDS_ROLE_MASTER && cfg->role != RDS_ROLE_REPLICA)
        rc = cg_error_set(err, CG_ERR_INVALID, "role must be RDS_ROLE_MASTER or RDS_ROLE_REPLICA");
    return rc;
}

void rds_set_state(rds_client *c, int state)
{
    assert(state >= 0 && state < RDS_ST_MAX);
    assert(c->state >= 0 && c->state < RDS_ST_MAX);
    if (state != c->state) {
        log_debug(c->name, "client: %s -> %s", state_names[c->state], state_names[state]);
        c->state = state;
        rds_kick(c);
    }
}

void rds_enter_wait(rds_client *c, const char *why)
{
    log_info(c->name, "%s; asking the sentinels again in %d ms", why, c->backoff_ms);
    c->wait_until_us = rds_now_us() + (int64_t)c->backoff_ms * 1000;
    c->backoff_ms = c->backoff_ms * 2 > c->reconnect_max_ms ? c->reconnect_max_ms
                                                             : c->backoff_ms * 2;
    c->quiet = 0;
    rds_set_state(c, RDS_ST_WAIT);
}

void rds_pool_condemn(rds_client *c, const char *why)
{
    for (int i = 0; i < c->pool_size; i++)
        rds_link_mark_closing(&c->pool[i], CG_ERR_IO, why);
}

void rds_server_found(rds_client *c, const char *host, int port)
{
    if (strcmp(host, c->server_host) != 0 || port != c->server_port) {
        if (c->server_addr[0] != '\0') {
            log_warn(c->name, "%s moved from %s to %s:%d", pool_noun(c), c->server_addr, host,
                     port);
            c->stats.failovers++;
            rds_pool_condemn(c, c->mode == RDS_ROLE_MASTER ? "master moved" : "server moved");
        }
        c->quiet = 0;   /* a move is news */
        snprintf(c->server_host, sizeof(c->server_host), "%s", host);
        c->server_port = port;
        snprintf(c->server_addr, sizeof(c->server_addr), "%s:%d", host, port);
    }
    rds_set_state(c, RDS_ST_CONNECT);
}

/* ROLE's answer: *role RDS_ROLE_MASTER or RDS_ROLE_REPLICA and, for a
 * replica, *repl_state its link to the master ("connected", "sync", ...;
 * NULL when missing). 0 when the reply is not a ROLE answer. */
static int role_parse(const redisReply *r, int *role, const char **repl_state)
{
    const char *name = NULL;

    *role = RDS_ROLE_NONE;
    *repl_state = NULL;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_STRING)
        name = r->element[0]->str;
    if (name != NULL && strcmp(name, "master") == 0) {
        *role = RDS_ROLE_MASTER;
    } else if (name != NULL && (strcmp(name, "slave") == 0 || strcmp(name, "replica") == 0)) {
        *role = RDS_ROLE_REPLICA;
        if (r->elements >= 4 && r->element[3]->type == REDIS_REPLY_STRING)
            *repl_state = r->element[3]->str;
    }
    return *role != RDS_ROLE_NONE;
}

/* ---- pool links: connect, AUTH, ROLE ------------------------------------------ */

static void pool_auth_reply(rds_client *c, int status, redisReply *r, void *arg)
{
    rds_link *l = arg;
    char why[RDS_WHY_MAX];

    /* A failed link was already marked CLOSING; the step reports it. */
    if (status == CG_OK && l->state == RDS_LINK_HANDSHAKE && r->type == REDIS_REPLY_ERROR) {
        log_error(c->name, "master %s:%d refused AUTH: %s", l->host, l->port, r->str);
        snprintf(why, sizeof(why), "AUTH: %s", r->str);
        rds_link_mark_closing(l, CG_ERR_IO, why);
    }
}

static void pool_role_reply(rds_client *c, int status, redisReply *r, void *arg)
{
    rds_link *l = arg;
    const char *repl = NULL;
    char why[RDS_WHY_MAX];
    int role = RDS_ROLE_NONE;

    if (status != CG_OK || l->state != RDS_LINK_HANDSHAKE) {
        /* A failed link was already marked CLOSING; the step reports it. */
    } else if (!role_parse(r, &role, &repl)) {
        snprintf(why, sizeof(why), "ROLE: %s", r->type == REDIS_REPLY_ERROR ? r->str
                                                                            : "unexpected reply");
        rds_link_mark_closing(l, CG_ERR_IO, why);
    } else if (role == RDS_ROLE_MASTER || c->mode == RDS_ROLE_REPLICA) {
        /* Replica mode reads from either: the probe chose, ROLE says which. */
        c->server_role = role;
        rds_link_set_state(l, RDS_LINK_READY);
    } else {
        log_warn(c->name, "%s:%d says it is a replica: the sentinel's view is stale", l->host,
                 l->port);
        c->stale = 1;
        rds_pool_condemn(c, "the address is a replica");
    }
}

void rds_pool_on_connected(rds_link *l)
{
    rds_client *c = l->client;
    int rc = CG_OK;

    /* Pipelined: one round trip. */
    if (c->password != NULL)
        rc = rds_link_sendf(l, pool_auth_reply, l, "AUTH %s", c->password);
    if (rc == CG_OK)
        rc = rds_link_sendf(l, pool_role_reply, l, "ROLE");
    if (rc != CG_OK)
        rds_link_mark_closing(l, rc, "cannot send AUTH/ROLE");
}

void rds_pool_on_closed(rds_link *l)
{
    rds_client *c = l->client;
    int current = strcmp(l->host, c->server_host) == 0 && l->port == c->server_port;

    if (l->was_ready)
        log_warn(c->name, "%s link %d to %s:%d lost: %s", pool_noun(c), l->slot, l->host,
                 l->port, l->why);
    else
        log_warn(c->name, "%s link %d to %s:%d failed: %s", pool_noun(c), l->slot, l->host,
                 l->port, l->why);
    /* Links to a former master were closed on purpose; only the current one counts. */
    if (c->state == RDS_ST_CONNECT && current)
        c->connect_failures++;
}

static void pool_connect_idle(rds_client *c)
{
    int started = 0;

    for (int i = 0; i < c->pool_size; i++) {
        rds_link *l = &c->pool[i];

        if (l->state != RDS_LINK_IDLE)
            continue;
        c->stats.connects++;
        started++;
        if (rds_link_connect(l, c->server_host, c->server_port) != CG_OK) {
            log_warn(c->name, "%s link %d to %s: %s", pool_noun(c), i, c->server_addr, l->why);
            c->connect_failures++;
        }
    }
    if (started > 0)
        rds_log_round(c, "connecting %d %s link(s) to %s", started, pool_noun(c),
                      c->server_addr);
}

static void pool_connect_step(rds_client *c)
{
    if (c->stale) {
        c->stale = 0;
        /* That sentinel's view is behind: start the next round with another. */
        c->ask_first = (c->ask_first + 1) % c->n_sentinels;
        rds_enter_wait(c, "the sentinel's master is a replica");
    } else if (c->connect_failures > 0) {
        rds_enter_wait(c, c->mode == RDS_ROLE_MASTER ? "cannot connect to the master"
                                                     : "cannot connect to the server");
    } else {
        pool_connect_idle(c);
        if (c->connect_failures == 0 && c->ready_count == c->pool_size) {
            rds_log_round(c, "%s %s verified; %d link(s) ready", role_name(c->server_role),
                          c->server_addr, c->pool_size);
            c->backoff_ms = c->reconnect_min_ms;
            c->retry_replica_us = rds_now_us() + (int64_t)c->reconnect_max_ms * 1000;
            c->quiet = 0;   /* the round is over */
            rds_set_state(c, RDS_ST_STEADY);
        }
    }
}

/* ---- replica mode: the probe, and the fallback to the master ------------------------ */

/* No replica is usable: read from the master the sentinel named in this
 * round. Said once per stay on the master, not at every retry. */
static void fall_back(rds_client *c, const char *why)
{
    if (!c->ask_ok) {
        rds_enter_wait(c, "no usable replica and no master address");
    } else {
        if (!c->on_fallback) {
            log_warn(c->name, "%s; reading from the master %s:%d until a replica is usable", why,
                     c->ask_host, c->ask_port);
            c->on_fallback = 1;
            c->stats.fallbacks++;
        } else {
            rds_log_round(c, "%s; staying on the master %s:%d", why, c->ask_host, c->ask_port);
        }
        rds_server_found(c, c->ask_host, c->ask_port);
    }
}

static void probe_start_one(rds_client *c)
{
    const rds_addr *a = &c->cands[c->cand_idx].addr;

    rds_log_round(c, "verifying replica %s:%d", a->host, a->port);
    c->probe_started = 1;
    c->probe_done = c->probe_ok = 0;
    c->probe_role = RDS_ROLE_NONE;
    c->probe_why[0] = '\0';
    if (rds_link_connect(&c->probe, a->host, a->port) != CG_OK) {
        snprintf(c->probe_why, sizeof(c->probe_why), "%s", c->probe.why);
        c->probe_done = 1;
        rds_kick(c);
    }
}

static void probe_finish(rds_client *c)
{
    const rds_addr *a = &c->cands[c->cand_idx].addr;
    char why[RDS_WHY_MAX + RDS_ADDR_MAX + 32];

    if (c->probe_ok) {
        if (c->probe_role == RDS_ROLE_MASTER)
            rds_log_round(c, "replica %s:%d answers as a master (promoted): reading from it",
                          a->host, a->port);
        else if (c->on_fallback)
            log_info(c->name, "replica %s:%d is usable again: reads move off the master",
                     a->host, a->port);
        if (c->probe_role == RDS_ROLE_REPLICA)
            c->on_fallback = 0;
        rds_server_found(c, a->host, a->port);
    } else if (c->cand_idx + 1 < c->n_cands) {
        rds_log_round(c, "replica %s:%d is not usable: %s; trying the next", a->host, a->port,
                      c->probe_why);
        c->cand_idx++;
        probe_start_one(c);
    } else {
        snprintf(why, sizeof(why), "no usable replica (%s:%d: %s)", a->host, a->port,
                 c->probe_why);
        fall_back(c, why);
    }
}

static void probe_step(rds_client *c)
{
    if (!c->probe_started && c->probe.state == RDS_LINK_IDLE)
        probe_start_one(c);
    else if (c->probe_started && c->probe_done && c->probe.state == RDS_LINK_IDLE)
        probe_finish(c);
}

void rds_replica_round_done(rds_client *c)
{
    if (c->n_cands == 0) {
        fall_back(c, c->n_replicas == 0 ? "the sentinel lists no replica"
                                        : "the sentinel sees no healthy replica");
    } else {
        c->cand_idx = 0;
        c->probe_started = 0;
        rds_set_state(c, RDS_ST_PROBE);
        probe_step(c);
    }
}

static void probe_role_reply(rds_client *c, int status, redisReply *r, void *arg)
{
    rds_link *l = arg;
    const char *repl = NULL;
    int role = RDS_ROLE_NONE;

    /* Failures and superseded probes: rds_probe_on_closed. */
    if (status != CG_OK || l->state != RDS_LINK_HANDSHAKE || c->closing)
        return;
    if (!role_parse(r, &role, &repl))
        snprintf(c->probe_why, sizeof(c->probe_why), "ROLE: %s",
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    else if (role == RDS_ROLE_REPLICA && (repl == NULL || strcmp(repl, "connected") != 0))
        snprintf(c->probe_why, sizeof(c->probe_why), "its link to the master is %s",
                 repl != NULL ? repl : "unknown");
    else
        c->probe_ok = 1;
    c->probe_role = role;
    c->probe_done = 1;
    rds_link_mark_closing(l, CG_ERR_IO, "probe done");
}

static void probe_auth_reply(rds_client *c, int status, redisReply *r, void *arg)
{
    rds_link *l = arg;
    char why[RDS_WHY_MAX];

    (void)c;
    if (status == CG_OK && l->state == RDS_LINK_HANDSHAKE && r->type == REDIS_REPLY_ERROR) {
        snprintf(why, sizeof(why), "AUTH: %s", r->str);
        rds_link_mark_closing(l, CG_ERR_IO, why);
    }
}

void rds_probe_on_connected(rds_link *l)
{
    rds_client *c = l->client;
    int rc = CG_OK;

    if (c->password != NULL)
        rc = rds_link_sendf(l, probe_auth_reply, l, "AUTH %s", c->password);
    if (rc == CG_OK)
        rc = rds_link_sendf(l, probe_role_reply, l, "ROLE");
    if (rc != CG_OK)
        rds_link_mark_closing(l, rc, "cannot send AUTH/ROLE");
}

void rds_probe_on_closed(rds_link *l)
{
    rds_client *c = l->client;

    if (c->state == RDS_ST_PROBE && c->probe_started && !c->probe_done) {
        snprintf(c->probe_why, sizeof(c->probe_why), "%s", l->why);
        c->probe_done = 1;
        c->probe_ok = 0;
    }
}

/* ---- the step ----------------------------------------------------------------------- */

void rds_link_on_connected(rds_link *l)
{
    switch (l->kind) {
    case RDS_LINK_POOL: rds_pool_on_connected(l); break;
    case RDS_LINK_ASK: rds_ask_on_connected(l); break;
    case RDS_LINK_SUB: rds_sub_on_connected(l); break;
    case RDS_LINK_PROBE: rds_probe_on_connected(l); break;
    default: abort();
    }
}

void rds_link_on_closed(rds_link *l)
{
    switch (l->kind) {
    case RDS_LINK_POOL: rds_pool_on_closed(l); break;
    case RDS_LINK_ASK: rds_ask_on_closed(l); break;
    case RDS_LINK_SUB: rds_sub_on_closed(l); break;
    case RDS_LINK_PROBE: rds_probe_on_closed(l); break;
    default: abort();
    }
}

static void link_maintain(rds_link *l, int64_t now)
{
    rds_link_check(l, now);
    if (l->state == RDS_LINK_CLOSING) {
        rds_link_close(l);
        rds_link_on_closed(l);
    }
}

static void report_up(rds_client *c)
{
    int up = c->ready_count > 0;

    if (up != c->reported_up) {
        c->reported_up = up;
        if (up)
            log_info(c->name, "up: %s %s", role_name(c->server_role), c->server_addr);
        else
            log_warn(c->name, "down: no ready %s link", pool_noun(c));
        if (c->on_state != NULL) {
            c->cb_depth++;
            c->on_state(c, up, c->state_arg);
            c->cb_depth--;
        }
    }
}

static void client_step(rds_client *c)
{
    int64_t now = rds_now_us();

    for (int i = 0; i < c->pool_size; i++)
        link_maintain(&c->pool[i], now);
    link_maintain(&c->ask, now);
    link_maintain(&c->sub, now);
    link_maintain(&c->probe, now);

    if (c->hold_off) {
        c->hold_off = c->rediscover = 0;
        rds_enter_wait(c, c->mode == RDS_ROLE_MASTER ? "the master is not serving"
                                                     : "the server is not serving");
    } else if (c->rediscover) {
        c->rediscover = 0;
        rds_ask_round_start(c, 0);
    }
    switch (c->state) {
    case RDS_ST_WAIT:
        if (now >= c->wait_until_us)
            rds_ask_round_start(c, 0);
        break;
    case RDS_ST_ASK:
        rds_ask_step(c);
        break;
    case RDS_ST_PROBE:
        probe_step(c);
        break;
    case RDS_ST_CONNECT:
        pool_connect_step(c);
        break;
    case RDS_ST_STEADY:
        if (c->ready_count < c->pool_size) {
            log_info(c->name, "%d of %d %s links ready; asking the sentinels again",
                     c->ready_count, c->pool_size, pool_noun(c));
            rds_ask_round_start(c, 0);
        } else if (c->mode == RDS_ROLE_REPLICA && c->server_role == RDS_ROLE_MASTER &&
                   now >= c->retry_replica_us) {
            /* Reading from a master: is a replica usable again? */
            rds_ask_round_start(c, 1);
        }
        break;
    default:
        log_error(c->name, "client in impossible state %d", c->state);
        abort();
    }
    rds_sub_step(c, now);
    report_up(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    client_step(arg);
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static int client_init(rds_client *c, struct event_base *base, const rds_config *cfg,
                       cg_error *err)
{
    struct timeval tick = {0, RDS_TICK_MS * 1000};
    int rc;

    c->base = base;
    c->connect_timeout_ms = cfg->connect_timeout_ms;
    c->command_timeout_ms = cfg->command_timeout_ms;
    c->reconnect_min_ms = c->backoff_ms = c->sub_backoff_ms = cfg->reconnect_min_ms;
    c->reconnect_max_ms = cfg->reconnect_max_ms;
    c->max_pending = cfg->max_pending;
    c->pool_size = cfg->pool_size;
    c->mode = cfg->role;
    c->rank_seed = (uint64_t)getpid();
    c->server_role = RDS_ROLE_NONE;
    c->state = RDS_ST_WAIT;   /* wait_until_us 0: ask at the first step */
    rds_link_init(&c->ask, c, RDS_LINK_ASK, 0);
    rds_link_init(&c->sub, c, RDS_LINK_SUB, 0);
    rds_link_init(&c->probe, c, RDS_LINK_PROBE, 0);

    c->name = strdup(cfg->master_name);
    c->password = cfg->password != NULL ? strdup(cfg->password) : NULL;
    c->pool = calloc((size_t)c->pool_size, sizeof(*c->pool));
    if (c->name == NULL || (cfg->password != NULL && c->password == NULL) || c->pool == NULL) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < c->pool_size; i++)
        rds_link_init(&c->pool[i], c, RDS_LINK_POOL, i);
    rc = rds_sentinels_parse(c, cfg->sentinels, err);
    if (rc != CG_OK)
        goto done;
    c->tick = event_new(base, -1, EV_PERSIST, on_timer, c);
    c->kick = event_new(base, -1, 0, on_timer, c);
    if (c->tick == NULL || c->kick == NULL || event_add(c->tick, &tick) != 0) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "cannot create the client's events");
        goto done;
    }
    rds_kick(c);
done:
    return rc;
}

int rds_client_new(struct event_base *base, const rds_config *cfg, rds_state_cb on_state,
                   void *state_arg, rds_client **out, cg_error *err)
{
    rds_client *c = NULL;
    int rc;

    *out = NULL;
    rc = config_check(cfg, err);
    if (rc != CG_OK)
        goto done;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "out of memory");
        goto done;
    }
    c->on_state = on_state;
    c->state_arg = state_arg;
    rc = client_init(c, base, cfg, err);
    if (rc != CG_OK)
        goto done;
    log_info(c->name, "starting: sentinels %s, %d %s link(s)%s", cfg->sentinels, c->pool_size,
             pool_noun(c), c->mode == RDS_ROLE_REPLICA ? ", replica mode" : "");
    *out = c;
    c = NULL;
done:
    rds_client_free(c);
    return rc;
}

static void link_free(rds_link *l)
{
    if (l->state != RDS_LINK_IDLE) {
        rds_link_mark_closing(l, CG_ERR_STATE, "client closed");
        l->fail_status = CG_ERR_STATE;   /* also for a link condemned earlier */
        rds_link_close(l);
    }
}

void rds_client_free(rds_client *c)
{
    if (c == NULL)
        return;
    /* Freeing from inside a callback would pull hiredis' context from under it. */
    assert(c->cb_depth == 0);
    if (c->tick != NULL)   /* it started */
        log_info(c->name, "closing");
    c->closing = 1;
    if (c->tick != NULL)
        event_free(c->tick);
    if (c->kick != NULL)
        event_free(c->kick);
    c->tick = c->kick = NULL;
    for (int i = 0; c->pool != NULL && i < c->pool_size; i++)
        link_free(&c->pool[i]);
    link_free(&c->ask);
    link_free(&c->sub);
    link_free(&c->probe);
    rds_leases_free(c);
    free(c->pool);
    free(c->sentinels);
    free(c->password);
    free(c->name);
    free(c);
}

int rds_client_is_up(const rds_client *c)
{
    return c->ready_count > 0;
}

rds_role rds_server_role(const rds_client *c)
{
    return c->ready_count > 0 ? (rds_role)c->server_role : RDS_ROLE_NONE;
}

const char *rds_server_addr(const rds_client *c)
{
    return c->server_addr;
}

const char *rds_master_addr(const rds_client *c)
{
    return c->server_addr;
}

void rds_client_stats(const rds_client *c, rds_stats *out)
{
    *out = c->stats;
}
