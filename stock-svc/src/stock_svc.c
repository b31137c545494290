/* stock_svc.c - the stock service's process-wide parts: the broker and Redis
 * clients, the intake of deliveries, the timer, the graceful stop, stats.
 *
 * A delivery is decoded as it arrives. A message that cannot be (unknown
 * type, no reply_to, a body msg_decode refuses) goes to grab.dead with the
 * reason and is acked once that publish is confirmed. A good one waits on
 * the held list until its items fit under max_pending and every coupon it
 * touches is under max_coupon_pending (unacked deliveries are bounded by the
 * prefetch count), then its items join their coupons' queues. */
#include "stock_svc.h"

#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "stock_int.h"
#include "svc_conf.h"

int64_t stock_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void stock_kick(stock_svc *svc)
{
    if (!svc->closing && svc->kick != NULL)
        event_active(svc->kick, EV_TIMEOUT, 0);
}

long long stock_jitter(stock_svc *svc, long long lo, long long hi)
{
    uint64_t x = svc->rng;

    /* xorshift64: plenty for spreading retries. */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    svc->rng = x;
    return hi <= lo ? lo : lo + (long long)(x % (uint64_t)(hi - lo + 1));
}

void stock_redis_health(stock_svc *svc, int ok, const char *why)
{
    if (svc->closing || ok == !svc->redis_failing)
        return;
    svc->redis_failing = !ok;
    if (ok)
        log_info("-", "redis: transactions work again");
    else
        log_warn("-", "redis: %s; items wait and are retried with backoff", why ? why : "failed");
}

void stock_wait_health(stock_svc *svc, int ok, const char *id, const char *why)
{
    if (!ok)
        svc->stats.wait_short++;
    if (svc->closing || ok == !svc->wait_short)
        return;
    svc->wait_short = !ok;
    if (ok)
        log_info(id, "redis: WAIT sees the replicas again");
    else
        log_warn(id, "redis: %s; answering anyway (logged again when it recovers)", why);
}

/* ---- stats ------------------------------------------------------------------------ */

static void stock_stats_log(stock_svc *svc, const char *when)
{
    const stock_stats *s = &svc->stats;

    log_info("-", "stats%s: deliveries=%llu items=%llu reserved=%llu rejected=%llu "
             "released=%llu cheap=%llu tx=%llu conflicts=%llu requeued=%llu dead=%llu "
             "replies=%llu republished=%llu redis_failures=%llu wait_short=%llu pending=%zu "
             "coupons=%zu", when, (unsigned long long)s->deliveries,
             (unsigned long long)s->items, (unsigned long long)s->reserved,
             (unsigned long long)s->rejected, (unsigned long long)s->released,
             (unsigned long long)s->cheap, (unsigned long long)s->tx,
             (unsigned long long)s->conflicts, (unsigned long long)s->requeued,
             (unsigned long long)s->dead, (unsigned long long)s->replies,
             (unsigned long long)s->republished, (unsigned long long)s->redis_failures,
             (unsigned long long)s->wait_short, svc->n_pending, svc->n_coupons);
    svc->stats_logged = svc->stats;
}

static void stock_stats_tick(stock_svc *svc, int64_t now_us)
{
    if (now_us - svc->stats_at_us < svc->conf->stats_interval_ms * 1000)
        return;
    svc->stats_at_us = now_us;
    if (memcmp(&svc->stats, &svc->stats_logged, sizeof(svc->stats)) != 0)
        stock_stats_log(svc, "");
}

/* ---- intake ----------------------------------------------------------------------- */

static stock_delivery *stock_dlv_new(stock_svc *svc, mq_message *msg, size_t n)
{
    stock_delivery *d = calloc(1, sizeof(*d) + n * sizeof(d->items[0]));

    if (d == NULL)
        return NULL;
    d->svc = svc;
    d->msg = msg;
    d->kind = -1;
    d->n_items = n;
    stock_list_init(&d->link);
    stock_list_push_back(&svc->all, &d->all);
    svc->n_deliveries++;
    return d;
}

/* Out of memory for a delivery: the broker keeps it for later. */
static void stock_intake_nomem(stock_svc *svc, mq_message *msg)
{
    const char *id = msg->message_id ? msg->message_id : "-";

    log_error(id, "out of memory: requeueing the command");
    if (mq_nack(svc->mq, msg->id, 1) != CG_OK)
        log_warn(id, "cannot nack; the broker redelivers it when the connection closes");
    mq_message_free(msg);
}

/* Sends an undecodable message to grab.dead; it is acked once confirmed. */
static void stock_intake_bad(stock_svc *svc, mq_message *msg, const char *reason)
{
    stock_delivery *d = stock_dlv_new(svc, msg, 0);

    log_warn(msg->message_id ? msg->message_id : "-", "bad command (type %s): %s; "
             "dead-lettering it", msg->type ? msg->type : "none", reason);
    if (d == NULL) {
        stock_intake_nomem(svc, msg);
        return;
    }
    stock_dlv_set_state(d, STOCK_DLV_ACTIVE);
    stock_dlv_give_back(svc, d, STOCK_GIVE_DEAD, reason);
}

static void stock_on_delivery(mq_client *c, mq_message *msg, void *arg)
{
    stock_svc *svc = arg;
    msg_batch *b = svc->scratch;
    enum msg_kind kind = MSG_KIND_MAX;
    stock_delivery *d;
    jv_error jerr;
    char reason[320];

    (void)c;
    svc->stats.deliveries++;
    if (svc->stopping) {
        /* Not ours any more: unacked, it goes back when the connection closes. */
        mq_message_free(msg);
        return;
    }
    memset(&jerr, 0, sizeof(jerr));
    if (msg->type == NULL) {
        stock_intake_bad(svc, msg, "no type property");
        return;
    }
    if (msg_kind_parse(msg->type, &kind) != CG_OK ||
        (kind != MSG_STOCK_RESERVE && kind != MSG_STOCK_RELEASE)) {
        snprintf(reason, sizeof(reason), "unknown type '%.64s' (stock.cmd takes %s and %s)",
                 msg->type, msg_kind_name(MSG_STOCK_RESERVE), msg_kind_name(MSG_STOCK_RELEASE));
        stock_intake_bad(svc, msg, reason);
        return;
    }
    if (msg->reply_to == NULL || msg->reply_to[0] == '\0') {
        stock_intake_bad(svc, msg, "no reply_to property");
        return;
    }
    if (msg_decode(kind, msg->body, msg->body_len, b, &jerr) != CG_OK) {
        snprintf(reason, sizeof(reason), "%s%s%s", jerr.field, jerr.field[0] ? ": " : "",
                 jerr.msg);
        stock_intake_bad(svc, msg, reason);
        return;
    }
    d = stock_dlv_new(svc, msg, b->n);
    if (d == NULL) {
        stock_intake_nomem(svc, msg);
        return;
    }
    d->kind = kind;
    d->open = b->n;
    for (size_t i = 0; i < b->n; i++) {
        d->items[i].dlv = d;
        d->items[i].state = STOCK_ITEM_HELD;
        stock_list_init(&d->items[i].link);
        d->items[i].m = b->items[i];
    }
    log_debug(b->n == 1 ? b->items[0].saga_id : "-", "%s of %zu item(s), message %s%s",
              msg->type, b->n, msg->message_id ? msg->message_id : "-",
              msg->redelivered ? " (redelivered)" : "");
    stock_list_push_back(&svc->held, &d->link);
    stock_kick(svc);
}

/* 1 when d's items fit under the limits now. */
static int stock_fits(stock_svc *svc, const stock_delivery *d)
{
    const stock_conf *conf = svc->conf;

    if (svc->n_pending > 0 && svc->n_pending + d->n_items > (size_t)conf->max_pending)
        return 0;
    for (size_t i = 0; i < d->n_items; i++) {
        const stock_coupon *cp = stock_coupon_find(svc, d->items[i].m.coupon_id);

        if (cp != NULL && cp->n_queued + cp->job.n >= (size_t)conf->max_coupon_pending)
            return 0;
    }
    return 1;
}

static void stock_admit(stock_svc *svc)
{
    while (!svc->stopping && !stock_list_empty(&svc->held)) {
        stock_delivery *d = STOCK_OF(svc->held.next, stock_delivery, link);

        if (!stock_fits(svc, d))
            break;   /* in order: the oldest first */
        stock_list_remove(&d->link);
        stock_dlv_set_state(d, STOCK_DLV_ACTIVE);
        svc->stats.items += d->n_items;
        for (size_t i = 0; i < d->n_items; i++) {
            if (stock_coupon_enqueue(svc, &d->items[i]) != CG_OK) {
                log_error(d->items[i].m.saga_id, "out of memory: requeueing the command");
                stock_dlv_give_back(svc, d, STOCK_GIVE_REQUEUE, NULL);
                break;
            }
        }
    }
}

/* ---- the loop's work -------------------------------------------------------------- */

static void stock_check_stopped(stock_svc *svc)
{
    if (!svc->stopping || svc->n_busy > 0 || svc->n_publishing > 0 ||
        !stock_list_empty(&svc->answered) || !stock_list_empty(&svc->dead))
        return;
    log_info("-", "stopped: every transaction finished and its replies confirmed");
    event_base_loopexit(svc->base, NULL);
}

static void stock_work(stock_svc *svc, int64_t now_us)
{
    stock_admit(svc);
    stock_coupons_run(svc);
    stock_replies_flush(svc, now_us);
    stock_dead_flush(svc, now_us);
    stock_check_stopped(svc);
}

static void stock_on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    stock_work(arg, stock_now_us());
}

static void stock_on_tick(evutil_socket_t fd, short what, void *arg)
{
    stock_svc *svc = arg;
    int64_t now = stock_now_us();

    (void)fd;
    (void)what;
    stock_coupons_tick(svc, now);
    stock_work(svc, now);
    stock_stats_tick(svc, now);
    if (svc->stopping && now >= svc->stop_deadline_us) {
        log_warn("-", "stop: %lld ms passed with %zu job(s) and %zu publish(es) in flight; "
                 "closing anyway (unacked commands go back to the broker)",
                 svc->conf->shutdown_timeout_ms, svc->n_busy, svc->n_publishing);
        event_base_loopexit(svc->base, NULL);
    }
}

/* ---- connection states ----------------------------------------------------------- */

static void stock_maybe_ready(stock_svc *svc)
{
    if (svc->ready_logged || !svc->mq_up || !svc->rds_up)
        return;
    svc->ready_logged = 1;
    log_info("-", "stock-svc ready: consuming %s, redis master %s", MSG_QUEUE_STOCK,
             rds_master_addr(svc->rds));
}

static void stock_on_mq_state(mq_client *c, int up, void *arg)
{
    stock_svc *svc = arg;
    stock_link *l, *next;
    size_t n = 0;

    (void)c;
    svc->mq_up = up;
    if (up) {
        stock_maybe_ready(svc);
        stock_kick(svc);
        return;
    }
    /* Every unacked delivery of the lost connection comes again on the next
     * one; what is left of them here will never be acked. */
    for (l = svc->all.next; l != &svc->all; l = next) {
        stock_delivery *d = STOCK_OF(l, stock_delivery, all);

        next = l->next;
        if (d->state != STOCK_DLV_ABANDONED) {
            n++;
            stock_dlv_give_back(svc, d, STOCK_GIVE_DROP, NULL);
        }
    }
    log_warn("-", "broker connection lost: %zu unacked command(s) left to the broker", n);
}

static void stock_on_rds_state(rds_client *c, int up, void *arg)
{
    stock_svc *svc = arg;

    (void)c;
    svc->rds_up = up;
    if (up)
        stock_maybe_ready(svc);
    stock_kick(svc);
}

/* ---- stop ------------------------------------------------------------------------ */

void stock_svc_stop(stock_svc *svc)
{
    stock_link *l, *next;
    size_t given = 0;

    if (svc->stopping)
        return;
    svc->stopping = 1;
    svc->stop_deadline_us = stock_now_us() + svc->conf->shutdown_timeout_ms * 1000;
    /* Hand back every delivery with an item not yet in a job. */
    for (l = svc->all.next; l != &svc->all; l = next) {
        stock_delivery *d = STOCK_OF(l, stock_delivery, all);
        int waiting = d->state == STOCK_DLV_HELD;

        next = l->next;
        for (size_t i = 0; i < d->n_items && !waiting && d->state == STOCK_DLV_ACTIVE; i++)
            waiting = d->items[i].state == STOCK_ITEM_QUEUED;
        if (waiting) {
            given++;
            stock_dlv_give_back(svc, d, STOCK_GIVE_DROP, NULL);
        }
    }
    stock_coupons_stop(svc);
    log_info("-", "stopping: %zu job(s) in flight, %zu command(s) handed back to the broker",
             svc->n_busy, given);
    stock_kick(svc);
}

static void stock_on_signal(evutil_socket_t sig, short what, void *arg)
{
    stock_svc *svc = arg;

    (void)what;
    if (svc->stopping) {
        log_warn("-", "%s again: closing now", strsignal((int)sig));
        event_base_loopexit(svc->base, NULL);
        return;
    }
    log_info("-", "%s: stopping gracefully", strsignal((int)sig));
    stock_svc_stop(svc);
}

/* ---- lifecycle ---------------------------------------------------------------------- */

int stock_svc_new(struct event_base *base, const stock_conf *conf, stock_svc **out,
                  cg_error *err)
{
    stock_svc *svc = NULL;
    struct timeval tick = {conf->tick_ms / 1000, (conf->tick_ms % 1000) * 1000};
    rds_config rcfg;
    mq_config mcfg;
    mq_topology topo;
    int rc = CG_OK;

    *out = NULL;
    svc = calloc(1, sizeof(*svc));
    if (svc == NULL) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "out of memory");
        goto done;
    }
    svc->base = base;
    svc->conf = conf;
    svc->rng = (uint64_t)stock_now_us() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ULL;
    stock_list_init(&svc->all);
    stock_list_init(&svc->held);
    stock_list_init(&svc->dead);
    stock_list_init(&svc->answered);
    stock_list_init(&svc->runnable);
    stock_list_init(&svc->lease_wait);
    stock_list_init(&svc->backoff);
    svc->scratch = malloc(sizeof(*svc->scratch));
    svc->tick = event_new(base, -1, EV_PERSIST, stock_on_tick, svc);
    svc->kick = event_new(base, -1, 0, stock_on_kick, svc);
    svc->sig_term = evsignal_new(base, SIGTERM, stock_on_signal, svc);
    svc->sig_int = evsignal_new(base, SIGINT, stock_on_signal, svc);
    if (svc->scratch == NULL || svc->tick == NULL || svc->kick == NULL || svc->sig_term == NULL ||
        svc->sig_int == NULL || event_add(svc->tick, &tick) != 0 ||
        event_add(svc->sig_term, NULL) != 0 || event_add(svc->sig_int, NULL) != 0) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "cannot set up the event loop's events");
        goto done;
    }
    svc_conf_rds(&conf->svc, &rcfg);
    rcfg.pool_size = (int)conf->redis_pool;
    rc = rds_client_new(base, &rcfg, stock_on_rds_state, svc, &svc->rds, err);
    if (rc != CG_OK)
        goto done;
    msg_topology(&topo, NULL);
    svc_conf_mq(&conf->svc, "stock-svc", &mcfg);
    svc->mq = mq_client_new(base, &mcfg, &topo, stock_on_mq_state, svc, err);
    if (svc->mq == NULL) {
        rc = err->code != CG_OK ? err->code : CG_ERR_INVALID;
        goto done;
    }
    rc = mq_consume(svc->mq, MSG_QUEUE_STOCK, stock_on_delivery, svc);
    if (rc != CG_OK) {
        cg_error_set(err, rc, "cannot consume %s", MSG_QUEUE_STOCK);
        goto done;
    }
    svc->stats_at_us = stock_now_us();
    log_info("-", "stock-svc starting: batch_max %lld, max_watch_retries %lld, wait_replicas "
             "%lld, redis pool %lld, prefetch %lld", conf->batch_max, conf->max_watch_retries,
             conf->wait_replicas, conf->redis_pool, conf->svc.amqp_prefetch);
    *out = svc;
    svc = NULL;
done:
    stock_svc_free(svc);
    return rc;
}

void stock_svc_free(stock_svc *svc)
{
    stock_link *l, *next;

    if (svc == NULL)
        return;
    if (svc->mq != NULL)
        stock_stats_log(svc, " (final)");
    svc->closing = 1;
    if (svc->tick != NULL)
        event_free(svc->tick);
    if (svc->kick != NULL)
        event_free(svc->kick);
    if (svc->sig_term != NULL)
        event_free(svc->sig_term);
    if (svc->sig_int != NULL)
        event_free(svc->sig_int);
    svc->tick = svc->kick = svc->sig_term = svc->sig_int = NULL;
    /* Redis first: jobs still in flight end (their items dropped) while the
     * broker client still exists; then the broker client, which sends the
     * acks queued so far and settles every publish. */
    rds_client_free(svc->rds);
    svc->rds = NULL;
    mq_client_free(svc->mq);
    svc->mq = NULL;
    for (l = svc->all.next; l != &svc->all; l = next) {
        next = l->next;
        stock_dlv_free(svc, STOCK_OF(l, stock_delivery, all));
    }
    stock_coupons_free(svc);
    free(svc->scratch);
    free(svc);
}
