/* ct_mq.c - queue depths and command round trips; see ct_mq.h. */
#include "ct_mq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <event2/event.h>

#include "ct_http.h"
#include "log.h"
#include "mq.h"

#define CT_MQ_INBOX_MAX 64   /* replies kept while waiting for the one asked for */

/* ---- queue depths through a plain connection ------------------------------ */

static amqp_connection_state_t ct_amqp_open(const ct_conf *conf, cg_error *err)
{
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *sock = conn != NULL ? amqp_tcp_socket_new(conn) : NULL;
    struct timeval tv = {5, 0};
    amqp_rpc_reply_t r;

    if (sock == NULL) {
        cg_error_set(err, CG_ERR_NOMEM, "amqp: out of memory");
        goto fail;
    }
    if (amqp_socket_open_noblock(sock, conf->rabbitmq_host, (int)conf->rabbitmq_port, &tv) != AMQP_STATUS_OK) {
        cg_error_set(err, CG_ERR_IO, "amqp %s:%lld: cannot connect", conf->rabbitmq_host,
                     conf->rabbitmq_port);
        goto fail;
    }
    amqp_set_rpc_timeout(conn, &tv);
    r = amqp_login(conn, conf->rabbitmq_vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
                   conf->rabbitmq_user, conf->rabbitmq_password ? conf->rabbitmq_password : "");
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        cg_error_set(err, CG_ERR_IO, "amqp %s:%lld: login failed", conf->rabbitmq_host, conf->rabbitmq_port);
        goto fail;
    }
    return conn;
fail:
    if (conn != NULL)
        amqp_destroy_connection(conn);
    return NULL;
}

int ct_mq_queue_depths(const ct_conf *conf, const char *const *queues, size_t n, long *depths,
                       cg_error *err)
{
    amqp_connection_state_t conn = ct_amqp_open(conf, err);
    int status = CG_OK;

    if (conn == NULL)
        return CG_ERR_IO;
    for (size_t i = 0; i < n && status == CG_OK; i++) {
        amqp_queue_declare_ok_t *ok;

        /* One channel per queue: a passive declare of a missing queue closes it. */
        amqp_channel_open(conn, (amqp_channel_t)(i + 1));
        if (amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL) {
            status = cg_error_set(err, CG_ERR_IO, "amqp: cannot open a channel");
            break;
        }
        ok = amqp_queue_declare(conn, (amqp_channel_t)(i + 1), amqp_cstring_bytes(queues[i]), 1, 0, 0, 0,
                                amqp_empty_table);
        if (ok == NULL) {
            amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);

            if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
                r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
                amqp_channel_close_ok_t close_ok;

                amqp_send_method(conn, (amqp_channel_t)(i + 1), AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok);
                depths[i] = -1;
                continue;
            }
            status = cg_error_set(err, CG_ERR_IO, "amqp: declaring %s failed", queues[i]);
            break;
        }
        depths[i] = (long)ok->message_count;
        amqp_channel_close(conn, (amqp_channel_t)(i + 1), AMQP_REPLY_SUCCESS);
    }
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
    return status;
}

/* ---- command round trips through the project's mq client ------------------ */

struct ct_mq_session {
    struct event_base *base;
    mq_client *client;
    char queue[96];
    mq_message *inbox[CT_MQ_INBOX_MAX];
    size_t n_inbox;
    int confirmed;               /* 0 waiting, -1 once a publish was nacked or unknown */
    int acked;                   /* publishes the broker confirmed */
    msg_batch *scratch;          /* decoding space for replies (large) */
};

static void ct_mq_on_delivery(mq_client *c, mq_message *msg, void *arg)
{
    ct_mq_session *s = arg;

    if (mq_ack(c, msg->id, 0) != CG_OK)
        log_warn("-", "ack of a reply failed");
    if (s->n_inbox < CT_MQ_INBOX_MAX) {
        s->inbox[s->n_inbox++] = msg;
    } else {
        log_warn("-", "reply inbox full, dropping a reply");
        mq_message_free(msg);
    }
}

static void ct_mq_on_confirm(mq_client *c, int result, void *arg)
{
    ct_mq_session *s = arg;

    (void)c;
    if (result == MQ_PUBLISH_ACKED)
        s->acked++;
    else
        s->confirmed = -1;
}

static void ct_mq_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

/* Runs the loop for up to ms (a few milliseconds at a time). */
static void ct_mq_spin(ct_mq_session *s, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    event_base_once(s->base, -1, EV_TIMEOUT, ct_mq_tick, s->base, &tv);
    event_base_dispatch(s->base);
}

int ct_mq_session_open(const ct_conf *conf, long long timeout_ms, ct_mq_session **out,
                       cg_error *err)
{
    ct_mq_session *s = calloc(1, sizeof(*s));
    mq_topology base_topo, topo;
    mq_queue_decl queues[8];
    mq_config cfg;
    char rnd[MSG_SAGA_ID_LEN + 1];
    long long deadline = ct_now_ms() + timeout_ms;
    int status;

    *out = NULL;
    if (s == NULL || (s->base = event_base_new()) == NULL ||
        (s->scratch = malloc(sizeof(*s->scratch))) == NULL) {
        status = cg_error_set(err, CG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (msg_saga_id_new(rnd) != CG_OK)
        snprintf(rnd, sizeof(rnd), "%d", (int)getpid());
    snprintf(s->queue, sizeof(s->queue), "ct.reply.%d.%.8s", (int)getpid(), rnd);
    /* The saga topology as the services declare it (same arguments, so
     * redeclaring is harmless), plus an exclusive queue for our replies. */
    msg_topology(&base_topo, NULL);
    topo = base_topo;
    memcpy(queues, base_topo.queues, base_topo.n_queues * sizeof(queues[0]));
    queues[base_topo.n_queues] = (mq_queue_decl){s->queue, NULL, NULL, 1000, 1};
    topo.queues = queues;
    topo.n_queues = base_topo.n_queues + 1;
    mq_config_defaults(&cfg);
    cfg.host = conf->rabbitmq_host;
    cfg.port = (int)conf->rabbitmq_port;
    cfg.user = conf->rabbitmq_user;
    cfg.password = conf->rabbitmq_password;
    cfg.vhost = conf->rabbitmq_vhost;
    cfg.name = "consistency-test";
    s->client = mq_client_new(s->base, &cfg, &topo, NULL, NULL, err);
    if (s->client == NULL) {
        status = err ? err->code : CG_ERR_IO;
        goto fail;
    }
    status = mq_consume(s->client, s->queue, ct_mq_on_delivery, s);
    if (status != CG_OK) {
        cg_error_set(err, status, "amqp: cannot consume %s", s->queue);
        goto fail;
    }
    while (!mq_client_is_up(s->client) && ct_now_ms() < deadline)
        ct_mq_spin(s, 20);
    if (!mq_client_is_up(s->client)) {
        status = cg_error_set(err, CG_ERR_TIMEOUT, "amqp %s:%lld: not connected within %lld ms",
                              conf->rabbitmq_host, conf->rabbitmq_port, timeout_ms);
        goto fail;
    }
    *out = s;
    return CG_OK;
fail:
    ct_mq_session_close(s);
    return status;
}

void ct_mq_session_close(ct_mq_session *s)
{
    if (s == NULL)
        return;
    if (s->client != NULL)
        mq_client_free(s->client);
    for (size_t i = 0; i < s->n_inbox; i++)
        mq_message_free(s->inbox[i]);
    if (s->base != NULL)
        event_base_free(s->base);
    free(s->scratch);
    free(s);
}

/* Moves the reply items about saga (of the wanted kind) from the inbox
 * into replies[*got..max-1]; every inbox message is consumed. */
static void ct_mq_take_items(ct_mq_session *s, const char *saga, enum msg_kind kind, msg_item *replies,
                             int max, int *got)
{
    for (size_t i = 0; i < s->n_inbox; i++) {
        mq_message *m = s->inbox[i];
        enum msg_kind k;
        jv_error jerr;

        if (m->type != NULL && msg_kind_parse(m->type, &k) == CG_OK && k == kind &&
            msg_decode(kind, m->body, m->body_len, s->scratch, &jerr) == CG_OK) {
            for (size_t j = 0; j < s->scratch->n; j++) {
                if (strcmp(s->scratch->items[j].saga_id, saga) != 0)
                    continue;
                if (*got < max)
                    replies[*got] = s->scratch->items[j];
                (*got)++;
            }
        }
        mq_message_free(m);
    }
    s->n_inbox = 0;
}

int ct_mq_roundtrip(ct_mq_session *s, const msg_batch *cmd, int copies, msg_item *replies,
                    long long timeout_ms, cg_error *err)
{
    int is_stock = cmd->kind == MSG_STOCK_RESERVE || cmd->kind == MSG_STOCK_RELEASE;
    enum msg_kind want = is_stock ? MSG_STOCK_REPLY : MSG_ORDER_REPLY;
    long long deadline = ct_now_ms() + timeout_ms;
    char mid[MSG_SAGA_ID_LEN + 1];
    mq_props props;
    char *body = NULL;
    size_t len = 0;
    int status, got = 0;

    if (cmd->n != 1)
        return cg_error_set(err, CG_ERR_INVALID, "ct_mq_roundtrip: one item per command");
    /* Replies still in the inbox answer earlier rounds. */
    ct_mq_take_items(s, "", want, replies, 0, &got);
    got = 0;
    status = msg_encode_new(cmd, &body, &len);
    if (status != CG_OK)
        return cg_error_set(err, status, "encoding %s failed", msg_kind_name(cmd->kind));
    memset(&props, 0, sizeof(props));
    props.correlation_id = cmd->items[0].saga_id;
    props.reply_to = s->queue;
    props.type = msg_kind_name(cmd->kind);
    s->confirmed = 0;
    s->acked = 0;
    for (int i = 0; i < copies && status == CG_OK; i++) {
        if (msg_saga_id_new(mid) != CG_OK)
            snprintf(mid, sizeof(mid), "ct%d-%d", (int)getpid(), i);
        props.message_id = mid;
        status = mq_publish(s->client, MSG_EXCHANGE_CMD, is_stock ? MSG_KEY_STOCK : MSG_KEY_ORDER, &props,
                            body, len, ct_mq_on_confirm, s);
    }
    free(body);
    if (status != CG_OK)
        return cg_error_set(err, status, "publishing %s failed", msg_kind_name(cmd->kind));
    while (s->acked < copies && s->confirmed == 0 && ct_now_ms() < deadline)
        ct_mq_spin(s, 5);
    if (s->acked < copies)
        return cg_error_set(err, CG_ERR_IO, "%s: the broker confirmed %d of %d publishes",
                            msg_kind_name(cmd->kind), s->acked, copies);
    while (got < copies && ct_now_ms() < deadline) {
        ct_mq_spin(s, 5);
        ct_mq_take_items(s, cmd->items[0].saga_id, want, replies, copies, &got);
    }
    if (got != copies)
        return cg_error_set(err, got < copies ? CG_ERR_TIMEOUT : CG_ERR_PROTOCOL,
                            "%s: %d reply items for %d copies within %lld ms", msg_kind_name(cmd->kind),
                            got, copies, timeout_ms);
    return CG_OK;
}
