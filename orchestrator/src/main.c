/* main.c - the orchestrator: the public HTTP API and the grab saga's driver
 * (docs/design.md, docs/saga.md). One libevent loop runs everything: HTTP
 * (evhttp), Redis (rds, async), RabbitMQ (mq, its own I/O thread behind an
 * eventfd), one persistent timer for every deadline and periodic duty, and
 * a worker thread for the rare MariaDB call (POST /admin/coupons).
 *
 * SIGTERM/SIGINT: new grabs get 503, sagas in flight get shutdown_grace_ms
 * to finish, waiting requests get 202, the heartbeat is deleted so that
 * another instance adopts what is left at once, then everything is freed;
 * unacked replies return to the queue. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>
#include <event2/http.h>

#include "admin_stats.h"
#include "db_worker.h"
#include "engine.h"
#include "http_api.h"
#include "log.h"
#include "orch.h"
#include "read_api.h"
#include "recovery.h"

static void on_bye(void *arg)
{
    orch *o = arg;

    event_base_loopbreak(o->base);
}

static void stop_now(orch *o)
{
    o->stopping = 2;
    http_api_answer_all(o);
    log_info("-", "stopping: %zu saga(s) left to adoption or the next start", o->sagas.count);
    if (o->rds == NULL || recovery_say_goodbye(o, on_bye, o) != CG_OK)
        event_base_loopbreak(o->base);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    orch *o = arg;
    long long now = orch_now_ms();

    (void)fd;
    (void)what;
    engine_tick(o, now);
    http_api_tick(o, now);
    recovery_tick(o, now);
    admin_stats_tick(o, now);
    if (!o->announced_ready && orch_ready(o)) {
        o->announced_ready = 1;
        log_info("-", "orchestrator %s ready: http %s:%lld, replies on %s", o->conf.instance_id,
                 o->conf.http_bind, o->conf.http_port, o->reply_queue);
    }
    if (o->stopping == 1 && (o->sagas.count == 0 || now >= o->stop_deadline_ms))
        stop_now(o);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    orch *o = arg;

    (void)what;
    if (o->stopping) {
        log_info("-", "signal %d again: stopping at once", (int)sig);
        event_base_loopbreak(o->base);
        return;
    }
    log_info("-", "signal %d: stopping (%zu saga(s) in flight)", (int)sig, o->sagas.count);
    o->stopping = 1;
    o->stop_deadline_ms = orch_now_ms() + o->conf.shutdown_grace_ms;
}

static void on_rds_state(rds_client *c, int up, void *arg)
{
    (void)c;
    (void)arg;
    log_info("-", "Redis master %s", up ? "reachable" : "lost");
}

static void on_mq_state(mq_client *c, int up, void *arg)
{
    (void)c;
    (void)arg;
    log_info("-", "broker %s", up ? "connected" : "lost");
}

static int setup(orch *o, cg_error *err)
{
    rds_config rcfg;
    mq_config mcfg;
    mq_topology topo;
    db_config dcfg;
    char dbuf[512];
    struct timeval tick = {0, (int)o->conf.tick_ms * 1000};
    int rc;

    o->boot_wall_ms = orch_wall_ms();
    snprintf(o->reply_queue, sizeof(o->reply_queue), MSG_REPLY_PREFIX "%s", o->conf.instance_id);
    o->base = event_base_new();
    if (o->base == NULL)
        return cg_error_set(err, CG_ERR_NOMEM, "cannot create the event loop");
    token_bucket_init(&o->bucket, o->conf.rate_limit_rps, o->conf.rate_limit_burst, orch_now_ms());
    if ((rc = coupon_cache_init(&o->coupons, (size_t)o->conf.coupon_cache_max)) != CG_OK ||
        (rc = engine_init(o)) != CG_OK)
        return cg_error_set(err, rc, "out of memory");
    svc_conf_rds(&o->conf.svc, &rcfg);
    if ((rc = rds_client_new(o->base, &rcfg, on_rds_state, o, &o->rds, err)) != CG_OK)
        return rc;
    svc_conf_mq(&o->conf.svc, o->conf.instance_id, &mcfg);
    msg_topology(&topo, o->reply_queue);
    o->mq = mq_client_new(o->base, &mcfg, &topo, on_mq_state, o, err);
    if (o->mq == NULL)
        return err->code ? err->code : CG_ERR_INVALID;
    if ((rc = svc_conf_main_db(&o->conf.svc, &dcfg, dbuf, sizeof(dbuf), err)) != CG_OK ||
        (rc = dbw_new(o->base, &dcfg, 64, &o->db, err)) != CG_OK)
        return rc;
    if ((rc = read_api_start(o, err)) != CG_OK || (rc = http_api_start(o, err)) != CG_OK)
        return rc;
    o->tick_ev = event_new(o->base, -1, EV_PERSIST, on_tick, o);
    o->sig_ev[0] = evsignal_new(o->base, SIGTERM, on_signal, o);
    o->sig_ev[1] = evsignal_new(o->base, SIGINT, on_signal, o);
    if (o->tick_ev == NULL || o->sig_ev[0] == NULL || o->sig_ev[1] == NULL ||
        event_add(o->tick_ev, &tick) != 0 || event_add(o->sig_ev[0], NULL) != 0 ||
        event_add(o->sig_ev[1], NULL) != 0)
        return cg_error_set(err, CG_ERR_NOMEM, "cannot add the timer or signal events");
    return CG_OK;
}

static void teardown(orch *o)
{
    mq_client *m = o->mq;
    rds_client *r = o->rds;

    if (o->base != NULL && o->flush_ev != NULL)
        http_api_answer_all(o);
    dbw_free(o->db);   /* its unfinished jobs answer 503 */
    o->db = NULL;
    read_api_stop(o);  /* reads in flight answer 503 */
    /* Clients go before the sagas: their callbacks see mq/rds NULL and only
     * clean up (replies not acked go back to the queue). */
    o->mq = NULL;
    if (m != NULL)
        mq_client_free(m);
    o->rds = NULL;
    rds_client_free(r);
    engine_destroy(o);
    if (o->http != NULL)
        evhttp_free(o->http);
    for (int i = 0; i < 2; i++) {
        if (o->sig_ev[i] != NULL)
            event_free(o->sig_ev[i]);
    }
    if (o->tick_ev != NULL)
        event_free(o->tick_ev);
    coupon_cache_destroy(&o->coupons);
    if (o->base != NULL)
        event_base_free(o->base);
}

int main(int argc, char **argv)
{
    orch *o = calloc(1, sizeof(*o));
    cg_error err = {0, ""};
    int rc, status = 1;

    log_set_program("orchestrator");
    if (o == NULL)
        return 1;
    rc = cfg_load(&orch_conf_spec, &o->conf, argc, argv, &err);
    if (rc == CG_ERR_EXIT) {
        status = 0;
        goto done;
    }
    if (rc != CG_OK) {
        fprintf(stderr, "orchestrator: %s\n", err.msg);
        status = 2;
        goto done;
    }
    signal(SIGPIPE, SIG_IGN);
    rc = setup(o, &err);
    if (rc != CG_OK) {
        log_error("-", "cannot start: %s", err.msg);
        goto out;
    }
    log_info("-", "orchestrator %s starting: http %s:%lld, step timeout %lld ms x %lld re-sends, "
             "answer deadline %lld ms", o->conf.instance_id, o->conf.http_bind, o->conf.http_port,
             o->conf.step_timeout_ms, o->conf.step_retries, o->conf.http_deadline_ms);
    event_base_dispatch(o->base);
    status = 0;
    log_info("-", "stopped: %llu saga(s) started, %llu completed, %llu compensated, %llu "
             "recovered, %llu adopted; %llu command(s) in %llu batch(es); %llu answered 202",
             o->stats.started, o->stats.completed, o->stats.compensated, o->stats.recovered,
             o->stats.adopted, o->stats.batch_items, o->stats.batches, o->stats.answered_202);
out:
    teardown(o);
done:
    cfg_free(&orch_conf_spec, &o->conf);
    free(o);
    return status;
}
