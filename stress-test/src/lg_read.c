/* lg_read.c - the closed-loop read driver; see lg_read.h.
 *
 * One loop, one pool (lg_pool.h), one persistent timer. The run is a state
 * machine over the endpoints: WARMUP -> MEASURE for each, then DONE. Within
 * a phase, `closing` is set once its count or time bound is reached: no
 * request is sent after it, and the phase ends when the pool is idle. */
#include "lg_read.h"

#include <assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "log.h"

/* Where the run is. */
enum lg_run_state {
    LG_RUN_WARMUP = 0,    /* the endpoint's warm-up requests, not counted */
    LG_RUN_MEASURE = 1,   /* the endpoint's measured requests */
    LG_RUN_DONE = 2,      /* every endpoint done (or stopped): the loop exits */
    LG_RUN_MAX
};

static const char *const lg_run_state_names[LG_RUN_MAX] = {"warmup", "measure", "done"};

typedef struct lg_run {
    const lg_read_opts *o;
    lg_ep_stats *stats;
    struct event_base *base;
    lg_pool *pool;
    struct event *tick;
    struct event *sig_int, *sig_term;
    enum lg_run_state state;
    int ep;                    /* the endpoint being run */
    lg_rng rng;                /* its path stream */
    long long issued;          /* requests sent in this phase */
    long long limit;           /* count bound of this phase (0: none) */
    long long deadline_us;     /* time bound of this phase (0: none) */
    int closing;               /* the phase sends no more */
    int signals;               /* SIGINT/SIGTERM seen */
    int rc;
    cg_error *err;
} lg_run;

static void lg_run_phase(lg_run *r, int ep, enum lg_run_state state);

static void lg_run_set_state(lg_run *r, enum lg_run_state to)
{
    assert(to >= 0 && to < LG_RUN_MAX);
    assert(r->state >= 0 && r->state < LG_RUN_MAX);
    log_debug("-", "read: %s: %s -> %s", r->o->endpoints[r->ep].name, lg_run_state_names[r->state],
              lg_run_state_names[to]);
    r->state = to;
}

static void lg_run_fail(lg_run *r, int code, const char *what)
{
    if (r->rc == CG_OK)
        r->rc = cg_error_set(r->err, code, "read: %s", what);
    lg_run_set_state(r, LG_RUN_DONE);
    event_base_loopbreak(r->base);
}

/* Sends the phase's next request on slot, or closes the phase. */
static void lg_run_issue(lg_run *r, int slot)
{
    char path[LG_PATH_MAX];

    if (r->closing)
        return;
    if (r->limit > 0 && r->issued >= r->limit) {
        r->closing = 1;
        return;
    }
    if (lg_tmpl_expand(&r->o->endpoints[r->ep].tmpl, &r->o->ranges, &r->rng, path, sizeof(path)) < 0) {
        lg_run_fail(r, CG_ERR_INVALID, "an expanded path is too long");
        return;
    }
    if (lg_pool_send(r->pool, slot, path) != CG_OK) {
        lg_run_fail(r, CG_ERR_STATE, "a connection was asked for two requests at once");
        return;
    }
    r->issued++;
}

/* The phase's bound was reached and nothing is in flight: the next phase. */
static void lg_run_phase_end(lg_run *r)
{
    const lg_endpoint *e = &r->o->endpoints[r->ep];
    const lg_ep_stats *st = &r->stats[r->ep];

    switch (r->state) {
    case LG_RUN_WARMUP:
        lg_run_phase(r, r->ep, r->signals > 0 ? LG_RUN_DONE : LG_RUN_MEASURE);
        break;
    case LG_RUN_MEASURE:
        log_info("-", "read: %s: %lld requests in %.2f s (%lld 2xx, %lld non-2xx, %lld errors, "
                 "%lld timeouts), p50 %.3f ms", e->name, st->requests, lg_stats_seconds(st), st->ok,
                 st->non_2xx, st->transport_errors, st->timeouts,
                 (double)lg_hist_percentile(&st->hist, 50.0) / 1000.0);
        if (r->signals > 0 || r->ep + 1 >= r->o->n_endpoints)
            lg_run_phase(r, r->ep, LG_RUN_DONE);
        else
            lg_run_phase(r, r->ep + 1, LG_RUN_WARMUP);
        break;
    case LG_RUN_DONE:
        break;
    default:
        log_error("-", "read: bad state %d", (int)r->state);
        abort();
    }
}

/* Starts a phase: every idle connection gets a request. */
static void lg_run_phase(lg_run *r, int ep, enum lg_run_state state)
{
    const lg_read_opts *o = r->o;
    long long now = lg_now_us();

    if (ep != r->ep || state == LG_RUN_WARMUP)
        lg_rng_seed(&r->rng, (uint64_t)o->conf.seed, o->endpoints[ep].name);
    r->ep = ep;
    if (state == LG_RUN_WARMUP && o->conf.warmup == 0)
        state = LG_RUN_MEASURE;
    lg_run_set_state(r, state);
    r->issued = 0;
    r->closing = 0;
    r->deadline_us = 0;
    switch (state) {
    case LG_RUN_WARMUP:
        r->limit = o->conf.warmup;
        log_info("-", "read: %s: %lld warm-up requests of %s", o->endpoints[ep].name, r->limit,
                 o->endpoints[ep].tmpl.text);
        break;
    case LG_RUN_MEASURE:
        r->limit = o->requests;
        if (o->duration_ms > 0)
            r->deadline_us = now + o->duration_ms * 1000;
        lg_stats_start(&r->stats[ep], now);
        break;
    case LG_RUN_DONE:
        event_base_loopbreak(r->base);
        return;
    default:
        log_error("-", "read: bad state %d", (int)state);
        abort();
    }
    for (int i = 0; i < lg_pool_size(r->pool) && r->state == state; i++)
        lg_run_issue(r, i);
}

static void lg_run_on_result(int slot, const lg_result *res, void *arg)
{
    lg_run *r = arg;
    long long now = lg_now_us();

    if (r->state == LG_RUN_DONE)
        return;
    if (r->state == LG_RUN_MEASURE) {
        lg_ep_stats *st = &r->stats[r->ep];

        if (res->xerr != LG_XERR_NONE && st->first_error[0] == '\0')
            log_warn("-", "read: %s: first failure: %s", r->o->endpoints[r->ep].name, res->what);
        lg_stats_record(st, res, now);
    }
    lg_run_issue(r, slot);
    if (r->closing && lg_pool_busy(r->pool) == 0)
        lg_run_phase_end(r);
}

static void lg_run_on_tick(evutil_socket_t fd, short what, void *arg)
{
    lg_run *r = arg;
    long long now = lg_now_us();

    (void)fd;
    (void)what;
    lg_pool_sweep(r->pool, now);
    if (r->state == LG_RUN_DONE)
        return;
    if (r->deadline_us > 0 && now >= r->deadline_us)
        r->closing = 1;
    if (r->closing && lg_pool_busy(r->pool) == 0)
        lg_run_phase_end(r);
}

static void lg_run_on_signal(evutil_socket_t sig, short what, void *arg)
{
    lg_run *r = arg;

    (void)what;
    r->signals++;
    if (r->signals > 1) {
        log_warn("-", "read: signal %d again: stopping now", (int)sig);
        lg_run_set_state(r, LG_RUN_DONE);
        event_base_loopbreak(r->base);
        return;
    }
    log_warn("-", "read: signal %d: finishing the requests in flight, then stopping", (int)sig);
    r->closing = 1;
}

int lg_read_run(const lg_read_opts *o, lg_ep_stats *stats, int *interrupted, cg_error *err)
{
    struct timeval tick = {0, LG_READ_TICK_MS * 1000};
    lg_pool_opts po;
    lg_run r;

    memset(&r, 0, sizeof(r));
    *interrupted = 0;
    r.o = o;
    r.stats = stats;
    r.err = err;
    r.rc = CG_OK;
    if (o->n_endpoints < 1)
        return cg_error_set(err, CG_ERR_INVALID, "read: no endpoints");
    memset(&po, 0, sizeof(po));
    po.host = o->target.host;
    po.port = o->target.port;
    po.host_header = o->target.authority;
    po.size = (int)o->conf.concurrency;
    po.timeout_ms = o->conf.timeout_ms;
    po.max_body = LG_READ_MAX_BODY;
    po.want_body = 1;
    r.base = event_base_new();
    if (r.base == NULL) {
        r.rc = cg_error_set(err, CG_ERR_NOMEM, "read: cannot create the event loop");
        goto done;
    }
    if ((r.rc = lg_pool_new(r.base, &po, lg_run_on_result, &r, &r.pool, err)) != CG_OK)
        goto done;
    r.tick = event_new(r.base, -1, EV_PERSIST, lg_run_on_tick, &r);
    r.sig_int = evsignal_new(r.base, SIGINT, lg_run_on_signal, &r);
    r.sig_term = evsignal_new(r.base, SIGTERM, lg_run_on_signal, &r);
    if (r.tick == NULL || r.sig_int == NULL || r.sig_term == NULL || event_add(r.tick, &tick) != 0 ||
        event_add(r.sig_int, NULL) != 0 || event_add(r.sig_term, NULL) != 0) {
        r.rc = cg_error_set(err, CG_ERR_NOMEM, "read: cannot set up the timer and signals");
        goto done;
    }
    lg_run_phase(&r, 0, LG_RUN_WARMUP);
    if (r.state != LG_RUN_DONE)
        event_base_dispatch(r.base);
    *interrupted = r.signals > 0;
done:
    if (r.sig_term != NULL)
        event_free(r.sig_term);
    if (r.sig_int != NULL)
        event_free(r.sig_int);
    if (r.tick != NULL)
        event_free(r.tick);
    lg_pool_free(r.pool);
    if (r.base != NULL)
        event_base_free(r.base);
    return r.rc;
}
