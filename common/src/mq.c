/* mq.c - the loop side of the RabbitMQ client (see mq.h).
 *
 * Everything here runs on the libevent loop thread and never blocks on the
 * broker: mq_publish/mq_ack/... copy their arguments into an item, append it
 * to the client's command list under a mutex and, when the list was empty,
 * poke the I/O thread's eventfd (mq_thread.c does the AMQP work). The thread
 * answers with events on a second list and pokes an eventfd watched by the
 * loop; on_events() drains the whole list at once and runs the callbacks.
 * Counters, the up flag and the outbound and queue-stats bounds live here,
 * touched by the loop thread only, so they need no locking. */
#include "mq_internal.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"

#define MQ_DEFAULT_CONTENT_TYPE "application/json"

void mq_config_defaults(mq_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->heartbeat_s = 10;
    cfg->connect_timeout_ms = 3000;
    cfg->prefetch = 256;
    cfg->max_outbound = 65536;
    cfg->reconnect_min_ms = 100;
    cfg->reconnect_max_ms = 5000;
    cfg->max_body = 1024 * 1024;
}

void mq_message_free(mq_message *msg)
{
    /* One allocation holds the struct, its strings and the body (mq_thread.c). */
    free(msg);
}

void mq_item_free(mq_item *it)
{
    if (it == NULL)
        return;
    if (it->kind == MQ_ITEM_DELIVERY)
        mq_message_free(it->u.dlv.msg);
    free(it);
}

/* Writes to an eventfd; a full counter (EAGAIN) already means "wake up". */
static void mq_poke(int fd)
{
    uint64_t one = 1;
    ssize_t n;

    do
        n = write(fd, &one, sizeof(one));
    while (n < 0 && errno == EINTR);
}

/* ---- copies of the configuration and topology ---------------------------- */

/* strdup that keeps NULL; *ok is cleared when an allocation fails. */
static char *mq_strdup(const char *s, int *ok)
{
    char *d = NULL;

    if (s != NULL && (d = strdup(s)) == NULL)
        *ok = 0;
    return d;
}

static void mq_free_config(mq_config *cfg)
{
    free((char *)cfg->host);
    free((char *)cfg->user);
    if (cfg->password) {
        /* Do not leave the secret in freed memory. */
        explicit_bzero((char *)cfg->password, strlen(cfg->password));
        free((char *)cfg->password);
    }
    free((char *)cfg->vhost);
    free((char *)cfg->name);
}

static void mq_free_topology(mq_topology *t)
{
    for (size_t i = 0; i < t->n_exchanges; i++) {
        free((char *)t->exchanges[i].name);
        free((char *)t->exchanges[i].type);
    }
    for (size_t i = 0; i < t->n_queues; i++) {
        free((char *)t->queues[i].name);
        free((char *)t->queues[i].dead_letter_exchange);
        free((char *)t->queues[i].dead_letter_routing_key);
    }
    for (size_t i = 0; i < t->n_bindings; i++) {
        free((char *)t->bindings[i].queue);
        free((char *)t->bindings[i].exchange);
        free((char *)t->bindings[i].routing_key);
    }
    free((void *)t->exchanges);
    free((void *)t->queues);
    free((void *)t->bindings);
    memset(t, 0, sizeof(*t));
}

static int mq_check_config(const mq_config *cfg, cg_error *err)
{
    if (cfg->host == NULL || cfg->user == NULL || cfg->password == NULL)
        return cg_error_set(err, CG_ERR_INVALID, "mq: host, user and password are required");
    if (cfg->port <= 0 || cfg->port > 65535)
        return cg_error_set(err, CG_ERR_INVALID, "mq: port %d out of range", cfg->port);
    if (cfg->heartbeat_s < 0 || cfg->heartbeat_s > 65535)
        return cg_error_set(err, CG_ERR_INVALID, "mq: heartbeat_s %d out of range", cfg->heartbeat_s);
    if (cfg->connect_timeout_ms <= 0)
        return cg_error_set(err, CG_ERR_INVALID, "mq: connect_timeout_ms must be > 0");
    if (cfg->prefetch < 0 || cfg->prefetch > 65535)
        return cg_error_set(err, CG_ERR_INVALID, "mq: prefetch %d out of range", cfg->prefetch);
    if (cfg->max_outbound == 0 || cfg->max_body == 0)
        return cg_error_set(err, CG_ERR_INVALID, "mq: max_outbound and max_body must be > 0");
    if (cfg->reconnect_min_ms <= 0 || cfg->reconnect_max_ms < cfg->reconnect_min_ms)
        return cg_error_set(err, CG_ERR_INVALID,
                            "mq: need 0 < reconnect_min_ms <= reconnect_max_ms");
    return CG_OK;
}

static int mq_copy_config(mq_config *dst, const mq_config *src)
{
    int ok = 1;

    *dst = *src;
    dst->host = mq_strdup(src->host, &ok);
    dst->user = mq_strdup(src->user, &ok);
    dst->password = mq_strdup(src->password, &ok);
    dst->vhost = mq_strdup(src->vhost ? src->vhost : "/", &ok);
    dst->name = mq_strdup(src->name ? src->name : "mq", &ok);
    return ok ? CG_OK : CG_ERR_NOMEM;
}

static int mq_check_topology(const mq_topology *t, cg_error *err)
{
    for (size_t i = 0; i < t->n_exchanges; i++)
        if (t->exchanges[i].name == NULL || t->exchanges[i].type == NULL)
            return cg_error_set(err, CG_ERR_INVALID, "mq: exchange %zu needs a name and type", i);
    for (size_t i = 0; i < t->n_queues; i++)
        if (t->queues[i].name == NULL || t->queues[i].name[0] == '\0' || t->queues[i].max_length < 0)
            return cg_error_set(err, CG_ERR_INVALID, "mq: queue %zu needs a name and max_length >= 0",
                                i);
    for (size_t i = 0; i < t->n_bindings; i++)
        if (t->bindings[i].queue == NULL || t->bindings[i].exchange == NULL)
            return cg_error_set(err, CG_ERR_INVALID, "mq: binding %zu needs a queue and exchange", i);
    return CG_OK;
}

static int mq_copy_topology(mq_topology *dst, const mq_topology *src)
{
    mq_exchange_decl *ex = NULL;
    mq_queue_decl *q = NULL;
    mq_binding_decl *b = NULL;
    int ok = 1;

    memset(dst, 0, sizeof(*dst));
    if (src == NULL)
        goto done;
    ex = calloc(src->n_exchanges + 1, sizeof(*ex));
    q = calloc(src->n_queues + 1, sizeof(*q));
    b = calloc(src->n_bindings + 1, sizeof(*b));
    /* Attach first, so that mq_free_topology frees a half-made copy. */
    dst->exchanges = ex;
    dst->queues = q;
    dst->bindings = b;
    if (ex == NULL || q == NULL || b == NULL) {
        ok = 0;
        goto done;
    }
    for (size_t i = 0; i < src->n_exchanges; i++, dst->n_exchanges++) {
        ex[i].name = mq_strdup(src->exchanges[i].name, &ok);
        ex[i].type = mq_strdup(src->exchanges[i].type, &ok);
    }
    for (size_t i = 0; i < src->n_queues; i++, dst->n_queues++) {
        q[i] = src->queues[i];
        q[i].name = mq_strdup(src->queues[i].name, &ok);
        q[i].dead_letter_exchange = mq_strdup(src->queues[i].dead_letter_exchange, &ok);
        q[i].dead_letter_routing_key = mq_strdup(src->queues[i].dead_letter_routing_key, &ok);
    }
    for (size_t i = 0; i < src->n_bindings; i++, dst->n_bindings++) {
        b[i].queue = mq_strdup(src->bindings[i].queue, &ok);
        b[i].exchange = mq_strdup(src->bindings[i].exchange, &ok);
        b[i].routing_key = mq_strdup(src->bindings[i].routing_key ? src->bindings[i].routing_key : "",
                                     &ok);
    }
done:
    return ok ? CG_OK : CG_ERR_NOMEM;
}

/* ---- events from the thread ----------------------------------------------- */

void mq_post_events(mq_client *c, mq_list *batch)
{
    int was_empty;

    if (batch->head != NULL) {
        pthread_mutex_lock(&c->lock);
        was_empty = c->events.head == NULL;
        mq_list_splice(&c->events, batch);
        pthread_mutex_unlock(&c->lock);
        /* A non-empty list means a wakeup is already pending (see on_events). */
        if (was_empty)
            mq_poke(c->event_fd);
    }
}

static void mq_on_confirm(mq_client *c, mq_item *it)
{
    mq_confirm_cb cb = it->u.pub.on_confirm;
    void *arg = it->u.pub.arg;
    int result = it->u.pub.result;

    c->stats.outbound--;
    switch (result) {
    case MQ_PUBLISH_ACKED: c->stats.acked++; break;
    case MQ_PUBLISH_NACKED: c->stats.nacked++; break;
    default: c->stats.unknown++; break;
    }
    mq_item_free(it);
    if (cb)
        cb(c, result, arg);
}

static void mq_on_state(mq_client *c, mq_item *it)
{
    int up = it->u.up;

    mq_item_free(it);
    if (up && c->was_up)
        c->stats.reconnects++;
    c->was_up |= up;
    c->up = up;
    if (c->on_state && !c->closing)
        c->on_state(c, up, c->state_arg);
}

static void mq_on_delivery(mq_client *c, mq_item *it)
{
    mq_consumer *cons = it->u.dlv.consumer;
    mq_message *msg = it->u.dlv.msg;

    it->u.dlv.msg = NULL;
    mq_item_free(it);
    if (c->closing) {
        /* Not acked: the broker redelivers it to the next consumer. */
        mq_message_free(msg);
    } else {
        c->stats.delivered++;
        cons->on_delivery(c, msg, cons->arg);
    }
}

static void mq_on_qstats(mq_client *c, mq_item *it)
{
    mq_qstats *qs = &it->u.qstats;

    c->n_qstats--;
    /* Inside mq_client_free every unanswered call gets STATE, also one
     * whose answer had just come back: one rule for the caller to handle. */
    if (c->closing)
        mq_qstats_fail(qs, CG_ERR_STATE);
    qs->cb(c, qs->status, qs->q, qs->n, qs->arg);
    mq_item_free(it);
}

static void mq_dispatch(mq_client *c, mq_item *it)
{
    switch (it->kind) {
    case MQ_ITEM_CONFIRM:
        mq_on_confirm(c, it);
        break;
    case MQ_ITEM_DELIVERY:
        mq_on_delivery(c, it);
        break;
    case MQ_ITEM_STATE:
        mq_on_state(c, it);
        break;
    case MQ_ITEM_QSTATS_DONE:
        mq_on_qstats(c, it);
        break;
    default:
        log_error(c->cfg.name, "mq: unexpected event kind %d", it->kind);
        abort();
    }
}

/* Takes every pending event and runs its callback. */
static void mq_drain_events(mq_client *c)
{
    mq_list batch = {NULL, NULL};
    mq_item *it;

    pthread_mutex_lock(&c->lock);
    mq_list_splice(&batch, &c->events);
    pthread_mutex_unlock(&c->lock);
    while ((it = mq_list_pop(&batch)) != NULL)
        mq_dispatch(c, it);
}

static void on_events(evutil_socket_t fd, short what, void *arg)
{
    mq_client *c = arg;
    uint64_t n;

    (void)what;
    /* Reset the counter before taking the list: an event posted after the
     * take finds the list empty and pokes again, so none is left behind. */
    if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN && errno != EINTR)
        log_warn(c->cfg.name, "mq: reading the event fd: %s", strerror(errno));
    mq_drain_events(c);
}

/* ---- commands to the thread ------------------------------------------------- */

static void mq_push_cmd(mq_client *c, mq_item *it)
{
    int was_empty;

    pthread_mutex_lock(&c->lock);
    was_empty = c->cmds.head == NULL;
    mq_list_push(&c->cmds, it);
    pthread_mutex_unlock(&c->lock);
    if (was_empty)
        mq_poke(c->wake_fd);
}

/* Copies s (may be NULL) to *p, advancing it; returns the copy. */
static const char *mq_put_str(char **p, const char *s)
{
    char *d = NULL;
    size_t n;

    if (s != NULL) {
        d = *p;
        n = strlen(s) + 1;
        memcpy(d, s, n);
        *p += n;
    }
    return d;
}

static size_t mq_str_size(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

int mq_publish(mq_client *c, const char *exchange, const char *routing_key,
               const mq_props *props, const void *body, size_t len,
               mq_confirm_cb on_confirm, void *arg)
{
    static const mq_props no_props;
    mq_item *it = NULL;
    char *p;
    size_t size;
    int rc = CG_OK;

    if (c->closing) {
        rc = CG_ERR_STATE;
        goto done;
    }
    if (routing_key == NULL || (body == NULL && len > 0)) {
        rc = CG_ERR_INVALID;
        goto done;
    }
    if (c->stats.outbound >= c->cfg.max_outbound) {
        rc = CG_ERR_FULL;
        goto done;
    }
    if (exchange == NULL)
        exchange = "";
    if (props == NULL)
        props = &no_props;
    /* One allocation for the item, its strings and the body: a publish costs
     * one malloc, and the item comes back as its own confirm event. */
    size = sizeof(*it) + mq_str_size(exchange) + mq_str_size(routing_key) +
           mq_str_size(props->message_id) + mq_str_size(props->correlation_id) +
           mq_str_size(props->reply_to) + mq_str_size(props->type) +
           mq_str_size(props->content_type) + len;
    it = malloc(size);
    if (it == NULL) {
        rc = CG_ERR_NOMEM;
        goto done;
    }
    memset(it, 0, sizeof(*it));
    it->kind = MQ_ITEM_PUBLISH;
    p = (char *)(it + 1);
    it->u.pub.exchange = mq_put_str(&p, exchange);
    it->u.pub.routing_key = mq_put_str(&p, routing_key);
    it->u.pub.message_id = mq_put_str(&p, props->message_id);
    it->u.pub.correlation_id = mq_put_str(&p, props->correlation_id);
    it->u.pub.reply_to = mq_put_str(&p, props->reply_to);
    it->u.pub.type = mq_put_str(&p, props->type);
    it->u.pub.content_type = props->content_type ? mq_put_str(&p, props->content_type)
                                                 : MQ_DEFAULT_CONTENT_TYPE;
    if (len > 0)
        memcpy(p, body, len);
    it->u.pub.body = p;
    it->u.pub.len = len;
    it->u.pub.transient = props->transient;
    it->u.pub.on_confirm = on_confirm;
    it->u.pub.arg = arg;
    c->stats.outbound++;
    c->stats.published++;
    mq_push_cmd(c, it);
done:
    return rc;
}

int mq_consume(mq_client *c, const char *queue, mq_delivery_cb on_delivery, void *arg)
{
    mq_consumer *cons = NULL;
    mq_item *it = NULL;
    int rc = CG_OK;

    if (c->closing) {
        rc = CG_ERR_STATE;
        goto err;
    }
    if (queue == NULL || queue[0] == '\0' || on_delivery == NULL) {
        rc = CG_ERR_INVALID;
        goto err;
    }
    cons = calloc(1, sizeof(*cons));
    it = calloc(1, sizeof(*it));
    if (cons == NULL || it == NULL || (cons->queue = strdup(queue)) == NULL) {
        rc = CG_ERR_NOMEM;
        goto err;
    }
    cons->on_delivery = on_delivery;
    cons->arg = arg;
    /* The loop owns the consumer (freed in mq_client_free); the thread keeps
     * a pointer to restart it after every reconnect. */
    cons->next = c->consumers;
    c->consumers = cons;
    it->kind = MQ_ITEM_CONSUME;
    it->u.consumer = cons;
    mq_push_cmd(c, it);
    goto done;
err:
    if (cons)
        free(cons->queue);
    free(cons);
    free(it);
done:
    return rc;
}

static int mq_push_ack(mq_client *c, int kind, mq_delivery_id id, int flag)
{
    mq_item *it = NULL;
    int rc = CG_OK;

    if (c->closing)
        rc = CG_ERR_STATE;
    else if ((it = calloc(1, sizeof(*it))) == NULL)
        rc = CG_ERR_NOMEM;
    if (rc == CG_OK) {
        it->kind = kind;
        it->u.ack.id = id;
        it->u.ack.flag = flag;
        mq_push_cmd(c, it);
    }
    return rc;
}

int mq_ack(mq_client *c, mq_delivery_id id, int multiple)
{
    return mq_push_ack(c, MQ_ITEM_ACK, id, multiple);
}

int mq_nack(mq_client *c, mq_delivery_id id, int requeue)
{
    return mq_push_ack(c, MQ_ITEM_NACK, id, requeue);
}

/* Queue names are AMQP short strings: 1..255 bytes here (an empty name would
 * mean "the last queue declared on the channel"). */
static int mq_check_qstats_args(const char *const *queues, int n, mq_queue_stats_cb cb)
{
    int rc = CG_OK;

    if (queues == NULL || cb == NULL || n < 1 || n > MQ_STATS_MAX_QUEUES)
        rc = CG_ERR_INVALID;
    for (int i = 0; i < n && rc == CG_OK; i++)
        if (queues[i] == NULL || queues[i][0] == '\0' || strlen(queues[i]) > 255)
            rc = CG_ERR_INVALID;
    return rc;
}

int mq_queue_stats(mq_client *c, const char *const *queues, int n, mq_queue_stats_cb cb,
                   void *arg)
{
    mq_item *it = NULL;
    size_t size, info_at;
    char *p;
    int rc;

    rc = mq_check_qstats_args(queues, n, cb);
    if (rc != CG_OK)
        goto done;
    /* Not connected as far as the loop knows: answer now rather than make
     * the thread say so (it still does when the connection dropped since). */
    if (c->closing || !c->up) {
        rc = CG_ERR_STATE;
        goto done;
    }
    if (c->n_qstats >= MQ_STATS_MAX_PENDING) {
        rc = CG_ERR_FULL;
        goto done;
    }
    /* One allocation: the item, the answers, then the names. */
    info_at = (sizeof(*it) + _Alignof(mq_queue_info) - 1) / _Alignof(mq_queue_info) *
              _Alignof(mq_queue_info);
    size = info_at + (size_t)n * sizeof(mq_queue_info);
    for (int i = 0; i < n; i++)
        size += strlen(queues[i]) + 1;
    it = malloc(size);
    if (it == NULL) {
        rc = CG_ERR_NOMEM;
        goto done;
    }
    memset(it, 0, size);
    it->kind = MQ_ITEM_QSTATS;
    it->u.qstats.q = (mq_queue_info *)((char *)it + info_at);
    it->u.qstats.n = n;
    it->u.qstats.cb = cb;
    it->u.qstats.arg = arg;
    p = (char *)(it->u.qstats.q + n);
    for (int i = 0; i < n; i++)
        it->u.qstats.q[i].name = mq_put_str(&p, queues[i]);
    c->n_qstats++;
    mq_push_cmd(c, it);
done:
    return rc;
}

/* ---- lifecycle -------------------------------------------------------------- */

/* Starts the I/O thread with every signal blocked, so that signals (SIGTERM,
 * SIGPIPE from a dead socket) are handled by the loop thread, never by it. */
static int mq_start_thread(mq_client *c)
{
    sigset_t all, old;
    int rc;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&c->thread, NULL, mq_thread_main, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        c->thread_started = 1;
    return rc;
}

mq_client *mq_client_new(struct event_base *base, const mq_config *cfg,
                         const mq_topology *topo, mq_state_cb on_state, void *state_arg,
                         cg_error *err)
{
    mq_client *c = NULL;
    int rc;

    if (base == NULL || cfg == NULL) {
        cg_error_set(err, CG_ERR_INVALID, "mq: base and cfg are required");
        goto err;
    }
    if (mq_check_config(cfg, err) != CG_OK || (topo && mq_check_topology(topo, err) != CG_OK))
        goto err;
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        cg_error_set(err, CG_ERR_NOMEM, "mq: out of memory");
        goto err;
    }
    c->wake_fd = c->event_fd = -1;
    c->base = base;
    c->on_state = on_state;
    c->state_arg = state_arg;
    if (mq_copy_config(&c->cfg, cfg) != CG_OK || mq_copy_topology(&c->topo, topo) != CG_OK) {
        cg_error_set(err, CG_ERR_NOMEM, "mq: out of memory");
        goto err;
    }
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        cg_error_set(err, CG_ERR_NOMEM, "mq: pthread_mutex_init failed");
        goto err;
    }
    c->lock_ready = 1;
    c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    c->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->wake_fd < 0 || c->event_fd < 0) {
        cg_error_set(err, CG_ERR_IO, "mq: eventfd: %s", strerror(errno));
        goto err;
    }
    c->ev = event_new(base, c->event_fd, EV_READ | EV_PERSIST, on_events, c);
    if (c->ev == NULL || event_add(c->ev, NULL) != 0) {
        cg_error_set(err, CG_ERR_NOMEM, "mq: cannot register the event fd");
        goto err;
    }
    rc = mq_start_thread(c);
    if (rc != 0) {
        cg_error_set(err, CG_ERR_NOMEM, "mq: pthread_create: %s", strerror(rc));
        goto err;
    }
    goto done;
err:
    mq_client_free(c);
    c = NULL;
done:
    return c;
}

/* Fails the commands the thread never took (only when it never ran). */
static void mq_fail_cmds(mq_client *c)
{
    mq_list left = {NULL, NULL};
    mq_list out = {NULL, NULL};
    mq_item *it;

    mq_list_splice(&left, &c->cmds);
    while ((it = mq_list_pop(&left)) != NULL) {
        if (it->kind == MQ_ITEM_PUBLISH) {
            it->kind = MQ_ITEM_CONFIRM;
            it->u.pub.result = MQ_PUBLISH_NACKED;
            mq_list_push(&out, it);
        } else if (it->kind == MQ_ITEM_QSTATS) {
            it->kind = MQ_ITEM_QSTATS_DONE;
            mq_qstats_fail(&it->u.qstats, CG_ERR_STATE);
            mq_list_push(&out, it);
        } else {
            mq_item_free(it);
        }
    }
    mq_list_splice(&c->events, &out);
}

void mq_client_free(mq_client *c)
{
    mq_consumer *cons;

    if (c == NULL)
        goto done;
    c->closing = 1;
    if (c->thread_started) {
        pthread_mutex_lock(&c->lock);
        c->stop = 1;
        pthread_mutex_unlock(&c->lock);
        mq_poke(c->wake_fd);
        /* The thread finishes a connect attempt or waits for in-flight
         * confirms first, each bounded by connect_timeout_ms. */
        pthread_join(c->thread, NULL);
        c->thread_started = 0;
    }
    if (c->ev)
        event_free(c->ev);
    if (c->lock_ready) {
        /* The thread has posted everything it held; report it now. */
        mq_fail_cmds(c);
        mq_drain_events(c);
        pthread_mutex_destroy(&c->lock);
    }
    while ((cons = c->consumers) != NULL) {
        c->consumers = cons->next;
        free(cons->queue);
        free(cons);
    }
    if (c->wake_fd >= 0)
        close(c->wake_fd);
    if (c->event_fd >= 0)
        close(c->event_fd);
    mq_free_topology(&c->topo);
    mq_free_config(&c->cfg);
    free(c);
done:
    return;
}

int mq_client_is_up(const mq_client *c)
{
    return c->up;
}

void mq_get_stats(const mq_client *c, mq_stats *out)
{
    *out = c->stats;
}
