/* recovery.c - heartbeat, recovery, adoption and orphan sweeps; see recovery.h. */
#include "recovery.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "keys.h"
#include "log.h"
#include "saga_log.h"

#define SCAN_COUNT 200           /* ZSCAN page, and the loads in flight per page */
#define ADOPT_BATCH 200          /* sagas moved per adoption script run */
#define RECOVERY_RETRY_MS 1000

enum load_purpose {
    LOAD_RECOVERY = 0,   /* startup: every saga of our set */
    LOAD_ADOPTED = 1,    /* just moved to our set from a dead instance */
    LOAD_ORPHAN = 2,     /* in our set, past its deadline, not in memory */
    LOAD_PURPOSE_MAX
};

typedef struct load_ctx {
    orch *o;
    enum load_purpose purpose;
} load_ctx;

static void recovery_step(orch *o);
static void sweep_done_one(orch *o);

static const char *const recovery_names[RECOVERY_MAX] = {"idle", "scanning", "done"};

/* The one setter of the startup recovery's state. */
static void recovery_set(orch *o, enum orch_recovery to)
{
    assert(to >= 0 && to < RECOVERY_MAX);
    log_debug("-", "recovery %s -> %s", recovery_names[o->recovery], recovery_names[to]);
    switch (to) {
    case RECOVERY_IDLE:
    case RECOVERY_SCANNING:
    case RECOVERY_DONE:
        o->recovery = to;
        break;
    default:
        log_error("-", "recovery state %d out of range", (int)to);
        abort();
    }
}

/* ---- heartbeat --------------------------------------------------------------- */

static void on_heartbeat(rds_client *c, int status, redisReply *r, void *arg)
{
    (void)c;
    (void)arg;
    if (status != CG_OK || r == NULL || r->type == REDIS_REPLY_ERROR)
        log_warn("-", "heartbeat not written (%s)", status != CG_OK ? cg_status_name(status)
                                                                    : r ? r->str : "?");
}

static void heartbeat(orch *o)
{
    char key[KEY_MAX];

    snprintf(key, sizeof(key), KEY_ORCH_ALIVE_FMT, o->conf.instance_id);
    /* The heartbeat first: from then on nobody adopts our set. */
    if (rds_command(o->rds, on_heartbeat, NULL, "SET %s %d EX %lld", key, (int)getpid(),
                    o->conf.heartbeat_ttl_s) != CG_OK ||
        rds_command(o->rds, on_heartbeat, NULL, "SADD %s %s", KEY_ORCH_INSTANCES,
                    o->conf.instance_id) != CG_OK)
        log_warn("-", "heartbeat not sent: Redis is not reachable");
}

typedef struct bye_ctx {
    void (*cb)(void *arg);
    void *arg;
} bye_ctx;

static void on_bye(rds_client *c, int status, redisReply *r, void *arg)
{
    bye_ctx *b = arg;

    (void)c;
    (void)r;
    (void)status;
    b->cb(b->arg);
    free(b);
}

int recovery_say_goodbye(orch *o, void (*cb)(void *arg), void *arg)
{
    char key[KEY_MAX];
    bye_ctx *b = malloc(sizeof(*b));
    int rc;

    if (b == NULL)
        return CG_ERR_NOMEM;
    b->cb = cb;
    b->arg = arg;
    snprintf(key, sizeof(key), KEY_ORCH_ALIVE_FMT, o->conf.instance_id);
    rc = rds_command(o->rds, on_bye, b, "DEL %s", key);
    if (rc != CG_OK)
        free(b);
    return rc;
}

/* ---- loading sagas ------------------------------------------------------------- */

static void on_loaded(int status, int found, int mine, const saga_record *rec, void *arg)
{
    load_ctx *l = arg;
    orch *o = l->o;
    enum load_purpose purpose = l->purpose;

    free(l);
    if (o->rds == NULL)
        return;   /* shutting down */
    if (status == CG_OK && found && mine && !saga_state_terminal(rec->state) &&
        saga_table_find(&o->sagas, rec->id) == NULL) {
        if (purpose == LOAD_RECOVERY)
            o->stats.recovered++;
        else if (purpose == LOAD_ADOPTED)
            o->stats.adopted++;
        else
            log_warn(rec->id, "saga of this instance found outside memory: resuming it");
        engine_resume(o, rec);
    }
    if (purpose == LOAD_RECOVERY) {
        if (status != CG_OK)
            o->recovery_failed = 1;
        o->loads_inflight--;
        recovery_step(o);
    } else {
        sweep_done_one(o);
    }
}

/* Starts a load; returns 1 when it is under way. */
static int load(orch *o, const char *id, enum load_purpose purpose)
{
    load_ctx *l = malloc(sizeof(*l));

    if (l == NULL)
        return 0;
    l->o = o;
    l->purpose = purpose;
    if (saga_log_load(o->rds, o->conf.instance_id, id, on_loaded, l) != CG_OK) {
        free(l);
        return 0;
    }
    return 1;
}

/* ---- startup recovery ------------------------------------------------------------ */

static void recovery_failed(orch *o, const char *why)
{
    log_warn("-", "recovery pass failed (%s): retrying", why);
    recovery_set(o, RECOVERY_IDLE);
    o->recovery_retry_ms = orch_now_ms() + RECOVERY_RETRY_MS;
}

static void recovery_finish(orch *o)
{
    recovery_set(o, RECOVERY_DONE);
    log_info("-", "recovery done: %llu saga(s) of instance %s resumed", o->stats.recovered,
             o->conf.instance_id);
    if (!o->consuming) {
        /* Only now: a reply must find its saga in memory, or in the log as not ours. */
        if (mq_consume(o->mq, o->reply_queue, engine_on_delivery, o) != CG_OK)
            log_error("-", "cannot consume %s", o->reply_queue);
        else
            o->consuming = 1;
    }
}

static void on_scan(rds_client *c, int status, redisReply *r, void *arg)
{
    orch *o = arg;

    (void)c;
    o->scan_inflight = 0;
    if (o->rds == NULL)
        return;
    if (status != CG_OK || r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
        recovery_failed(o, status != CG_OK ? cg_status_name(status) : "unexpected ZSCAN reply");
        return;
    }
    snprintf(o->scan_cursor, sizeof(o->scan_cursor), "%s", r->element[0]->str);
    for (size_t i = 0; i + 1 < r->element[1]->elements; i += 2) {
        const redisReply *m = r->element[1]->element[i];

        if (m->type != REDIS_REPLY_STRING || !msg_saga_id_valid(m->str) ||
            saga_table_find(&o->sagas, m->str) != NULL)
            continue;
        if (load(o, m->str, LOAD_RECOVERY))
            o->loads_inflight++;
        else
            o->recovery_failed = 1;
    }
    recovery_step(o);
}

/* Next move of the recovery pass, once the loads of a page are back. */
static void recovery_step(orch *o)
{
    char key[KEY_MAX];

    if (o->recovery != RECOVERY_SCANNING || o->loads_inflight > 0 || o->scan_inflight)
        return;
    if (o->recovery_failed) {
        recovery_failed(o, "a saga could not be read");
        return;
    }
    if (o->scan_started && strcmp(o->scan_cursor, "0") == 0) {
        recovery_finish(o);
        return;
    }
    o->scan_started = 1;
    snprintf(key, sizeof(key), KEY_SAGAS_ACTIVE_FMT, o->conf.instance_id);
    if (rds_command(o->rds, on_scan, o, "ZSCAN %s %s COUNT %d", key, o->scan_cursor, SCAN_COUNT) != CG_OK) {
        recovery_failed(o, "Redis is not reachable");
        return;
    }
    o->scan_inflight = 1;
}

static void recovery_start(orch *o)
{
    log_info("-", "recovery: loading the unfinished sagas of instance %s", o->conf.instance_id);
    heartbeat(o);
    o->next_heartbeat_ms = orch_now_ms() + o->conf.heartbeat_interval_ms;
    recovery_set(o, RECOVERY_SCANNING);
    o->recovery_failed = 0;
    o->scan_started = 0;
    snprintf(o->scan_cursor, sizeof(o->scan_cursor), "0");
    recovery_step(o);
}

/* ---- sweeps: adoption and orphans ------------------------------------------------------ */

static void sweep_done_one(orch *o)
{
    if (o->sweep_inflight > 0)
        o->sweep_inflight--;
}

typedef struct adopt_ctx {
    orch *o;
    char dead[MSG_MAX_INSTANCE + 1];
} adopt_ctx;

static void adopt(orch *o, const char *dead);

static void on_adopted(int status, const char *const *ids, size_t n, void *arg)
{
    adopt_ctx *a = arg;
    orch *o = a->o;

    if (o->rds != NULL && status == CG_OK && n > 0) {
        log_warn("-", "instance %s stopped its heartbeat: adopting %zu of its saga(s)", a->dead, n);
        for (size_t i = 0; i < n; i++) {
            if (ids[i] != NULL && msg_saga_id_valid(ids[i]) && load(o, ids[i], LOAD_ADOPTED))
                o->sweep_inflight++;
        }
        if (n == ADOPT_BATCH)
            adopt(o, a->dead);   /* there may be more */
    }
    if (o->rds != NULL)
        sweep_done_one(o);
    free(a);
}

static void adopt(orch *o, const char *dead)
{
    adopt_ctx *a = malloc(sizeof(*a));

    if (a == NULL)
        return;
    a->o = o;
    snprintf(a->dead, sizeof(a->dead), "%s", dead);
    if (saga_log_adopt(o->rds, dead, o->conf.instance_id, ADOPT_BATCH, on_adopted, a) != CG_OK) {
        free(a);
        return;
    }
    o->sweep_inflight++;
}

static void on_instances(rds_client *c, int status, redisReply *r, void *arg)
{
    orch *o = arg;

    (void)c;
    if (o->rds == NULL)
        return;
    if (status == CG_OK && r != NULL && r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *e = r->element[i];

            if (e->type == REDIS_REPLY_STRING && strcmp(e->str, o->conf.instance_id) != 0 &&
                orch_conf_instance_valid(e->str))
                adopt(o, e->str);
        }
    }
    sweep_done_one(o);
}

static void on_orphan_scan(rds_client *c, int status, redisReply *r, void *arg)
{
    orch *o = arg;
    long long now_wall = orch_wall_ms();
    char key[KEY_MAX];

    (void)c;
    if (o->rds == NULL)
        return;
    if (status == CG_OK && r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_ARRAY) {
        const redisReply *page = r->element[1];

        for (size_t i = 0; i + 1 < page->elements; i += 2) {
            const redisReply *m = page->element[i], *sc = page->element[i + 1];

            /* Past its deadline and not in memory: its owner (us) lost track. */
            if (m->type == REDIS_REPLY_STRING && sc->type == REDIS_REPLY_STRING &&
                msg_saga_id_valid(m->str) && atoll(sc->str) < now_wall &&
                saga_table_find(&o->sagas, m->str) == NULL && load(o, m->str, LOAD_ORPHAN))
                o->sweep_inflight++;
        }
        if (strcmp(r->element[0]->str, "0") != 0) {
            snprintf(key, sizeof(key), KEY_SAGAS_ACTIVE_FMT, o->conf.instance_id);
            if (rds_command(o->rds, on_orphan_scan, o, "ZSCAN %s %s COUNT %d", key,
                            r->element[0]->str, SCAN_COUNT) == CG_OK)
                return;   /* still in flight: the count stays */
        }
    }
    sweep_done_one(o);
}

static void sweep(orch *o)
{
    char key[KEY_MAX];

    if (rds_command(o->rds, on_instances, o, "SMEMBERS %s", KEY_ORCH_INSTANCES) == CG_OK)
        o->sweep_inflight++;
    snprintf(key, sizeof(key), KEY_SAGAS_ACTIVE_FMT, o->conf.instance_id);
    if (rds_command(o->rds, on_orphan_scan, o, "ZSCAN %s 0 COUNT %d", key, SCAN_COUNT) == CG_OK)
        o->sweep_inflight++;
}

/* ---- the timer's entry ------------------------------------------------------------------ */

void recovery_tick(orch *o, long long now_ms)
{
    if (!rds_client_is_up(o->rds))
        return;
    if (o->recovery == RECOVERY_IDLE && now_ms >= o->recovery_retry_ms && o->loads_inflight == 0 &&
        !o->scan_inflight) {
        recovery_start(o);
        return;
    }
    if (now_ms >= o->next_heartbeat_ms) {
        heartbeat(o);
        o->next_heartbeat_ms = now_ms + o->conf.heartbeat_interval_ms;
    }
    if (o->recovery == RECOVERY_DONE && !o->stopping && o->sweep_inflight == 0 &&
        now_ms >= o->next_sweep_ms) {
        o->next_sweep_ms = now_ms + o->conf.adopt_interval_ms;
        sweep(o);
    }
}
