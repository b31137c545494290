/* mq_thread.c - the I/O thread of an mq_client (see mq.h, mq_internal.h).
 *
 * librabbitmq is blocking, so one thread per client owns the
 * amqp_connection_state_t and is the only code that touches it. It runs a
 * small state machine: CONNECTING (socket, login, channel 1 in confirm mode,
 * qos, topology, consumers) -> UP (poll the socket and the wakeup eventfd,
 * send queued publishes and acks, read frames) -> BACKOFF (jittered, doubling,
 * interruptible by shutdown) -> CONNECTING ..., until mq_client_free asks it
 * to stop. Publishes carry confirm sequence numbers (1, 2, ... per
 * connection) and wait on an in-order in-flight list until basic.ack/nack;
 * when the connection dies the in-flight ones are reported UNKNOWN while
 * the not-yet-sent ones stay queued for the next connection. Deliveries
 * (basic.deliver, content header, body frames) are assembled into one
 * allocation and handed to the loop as events, in batches: one post (and at
 * most one wakeup) per round of the loop below, however many events.
 * Queue-depth requests (mq_queue_stats) run as passive queue.declares on a
 * second channel opened for the request and closed after it: a declare of a
 * missing queue makes the broker close its channel (404), which on channel 1
 * would cancel every consumer, requeue the unacked deliveries (their tags die
 * with the channel) and lose the confirms of the publishes in flight. While
 * these RPCs wait, librabbitmq queues the frames of channel 1, and the reader
 * below takes them in order afterwards. */
#include "mq_internal.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define MQ_CHANNEL 1
#define MQ_STATS_CHANNEL 2      /* short-lived channel of the passive declares (mq_queue_stats) */
#define MQ_FRAME_MAX 131072     /* librabbitmq's default frame size */
#define MQ_SEND_BATCH 512       /* publishes sent between two reads of the socket */
#define MQ_FRAME_BATCH 4096     /* frames read before looking at commands again */
#define MQ_TICK_MS 200          /* longest poll: bounds heartbeat and shutdown latency */

/* Connection state of the thread. */
enum mq_conn_state {
    MQ_CONN_CONNECTING = 0, /* opening socket, login, channel, topology, consumers */
    MQ_CONN_UP,             /* connected: publishing, reading confirms and deliveries */
    MQ_CONN_BACKOFF,        /* waiting before the next connect attempt */
    MQ_CONN_STOPPED,        /* shutdown requested: the thread exits */
    MQ_CONN_MAX
};

/* Where the reader is within one delivery: basic.deliver, then one content
 * header, then body frames until body_size bytes have come. */
enum mq_rx_state {
    MQ_RX_IDLE = 0,         /* between deliveries */
    MQ_RX_HEADER,           /* got basic.deliver, waiting for its content header */
    MQ_RX_BODY,             /* got the header, copying body frames into rx_msg */
    MQ_RX_DISCARD,          /* skipping the body of a delivery already nacked */
    MQ_RX_MAX
};

static const char *const mq_conn_state_names[MQ_CONN_MAX] = {
    "connecting", "up", "backoff", "stopped"};
static const char *const mq_rx_state_names[MQ_RX_MAX] = {"idle", "header", "body", "discard"};

typedef struct mq_io {
    mq_client *c;
    const char *id;                 /* connection name, the id of every log line */
    int conn_state;                 /* enum mq_conn_state */
    amqp_connection_state_t conn;   /* NULL when there is no connection */
    int conn_open, chan_open;       /* what a polite close still has to close */
    uint64_t epoch;                 /* number of the current connection, from 1 */
    uint64_t next_seq;              /* confirm sequence number of the next publish */
    mq_list unsent;                 /* publishes taken from the loop, not yet sent */
    mq_list inflight;               /* sent, waiting for basic.ack/nack, by seq */
    size_t n_inflight;
    mq_list out;                    /* events not yet posted to the loop */
    mq_consumer **consumers;        /* every consumer, index = consumer tag number */
    size_t n_consumers, cap_consumers;
    int stop;                       /* copy of c->stop */
    int attempt;                    /* failed connects in a row, for the backoff */
    uint32_t rng;                   /* xorshift state for the jitter */

    /* The delivery being assembled. */
    int rx_state;                   /* enum mq_rx_state */
    uint64_t rx_tag;
    int rx_redelivered;
    mq_consumer *rx_consumer;
    mq_item *rx_item;               /* event to post, holding rx_msg */
    mq_message *rx_msg;
    size_t rx_need, rx_have;        /* body bytes announced, received */
    char rx_exchange[256];          /* shortstr: at most 255 bytes */
    char rx_routing_key[256];
} mq_io;

static int64_t mq_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval mq_tv_ms(int ms)
{
    struct timeval tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}

static void io_set_conn_state(mq_io *io, int to)
{
    assert(to >= 0 && to < MQ_CONN_MAX);
    log_debug(io->id, "mq: connection %s -> %s", mq_conn_state_names[io->conn_state],
              mq_conn_state_names[to]);
    io->conn_state = to;
}

static void io_set_rx_state(mq_io *io, int to)
{
    assert(to >= 0 && to < MQ_RX_MAX);
    log_debug(io->id, "mq: rx %s -> %s", mq_rx_state_names[io->rx_state], mq_rx_state_names[to]);
    io->rx_state = to;
}

/* ---- events to the loop ------------------------------------------------------ */

static void io_flush(mq_io *io)
{
    mq_post_events(io->c, &io->out);
}

static void io_resolve(mq_io *io, mq_item *it, int result)
{
    it->kind = MQ_ITEM_CONFIRM;
    it->u.pub.result = result;
    mq_list_push(&io->out, it);
}

static void io_emit_state(mq_io *io, int up)
{
    mq_item *it = calloc(1, sizeof(*it));

    if (it == NULL) {
        log_error(io->id, "mq: out of memory: connection %s not reported", up ? "up" : "down");
    } else {
        it->kind = MQ_ITEM_STATE;
        it->u.up = up;
        mq_list_push(&io->out, it);
    }
}

/* Every sent but unconfirmed publish: the broker may or may not have it. */
static void io_fail_inflight(mq_io *io)
{
    mq_item *it;

    while ((it = mq_list_pop(&io->inflight)) != NULL)
        io_resolve(io, it, MQ_PUBLISH_UNKNOWN);
    io->n_inflight = 0;
}

/* ---- RPC results -------------------------------------------------------------- */

/* Answers a close started by the broker, so that it logs a clean close. */
static void io_answer_close(mq_io *io, amqp_channel_t channel, amqp_method_number_t id)
{
    if (id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_ok_t ok;

        memset(&ok, 0, sizeof(ok));
        amqp_send_method(io->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        io->conn_open = io->chan_open = 0;
    } else if (id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_ok_t ok;

        memset(&ok, 0, sizeof(ok));
        amqp_send_method(io->conn, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
        io->chan_open = 0;
    }
}

/* Logs why the broker closed the connection or channel. */
static void io_log_close(mq_io *io, const char *what, const amqp_method_t *m)
{
    if (m->id == AMQP_CONNECTION_CLOSE_METHOD) {
        const amqp_connection_close_t *cl = m->decoded;

        log_warn(io->id, "mq: %s: connection closed by the broker: %u %.*s", what,
                 (unsigned)cl->reply_code, (int)cl->reply_text.len, (const char *)cl->reply_text.bytes);
    } else if (m->id == AMQP_CHANNEL_CLOSE_METHOD) {
        const amqp_channel_close_t *cl = m->decoded;

        log_warn(io->id, "mq: %s: channel closed by the broker: %u %.*s", what,
                 (unsigned)cl->reply_code, (int)cl->reply_text.len, (const char *)cl->reply_text.bytes);
    } else {
        log_warn(io->id, "mq: %s: unexpected method 0x%08x", what, (unsigned)m->id);
    }
}

/* Checks the result of the last RPC; logs and returns CG_ERR_IO when it failed. */
static int io_check_rpc(mq_io *io, const char *what)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(io->conn);
    int rc = CG_ERR_IO;

    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        rc = CG_OK;
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        io_log_close(io, what, &r.reply);
        io_answer_close(io, MQ_CHANNEL, r.reply.id);
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        log_warn(io->id, "mq: %s: %s", what, amqp_error_string2(r.library_error));
        /* The socket is gone or out of step: a polite close would only wait. */
        io->conn_open = io->chan_open = 0;
        break;
    default:
        log_warn(io->id, "mq: %s: no reply", what);
        io->conn_open = io->chan_open = 0;
        break;
    }
    return rc;
}

/* ---- connection ---------------------------------------------------------------- */

/* Closes what is still open (bounded by the RPC timeout) and frees the connection. */
static void io_close_conn(mq_io *io)
{
    amqp_rpc_reply_t r;

    if (io->conn == NULL)
        goto done;
    if (io->conn_open && io->chan_open) {
        r = amqp_channel_close(io->conn, MQ_CHANNEL, AMQP_REPLY_SUCCESS);
        if (r.reply_type != AMQP_RESPONSE_NORMAL)
            io->conn_open = 0;
    }
    if (io->conn_open)
        amqp_connection_close(io->conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(io->conn);
    io->conn = NULL;
    io->conn_open = io->chan_open = 0;
done:
    return;
}

static void io_rx_reset(mq_io *io)
{
    mq_item_free(io->rx_item);    /* frees rx_msg with it */
    io->rx_item = NULL;
    io->rx_msg = NULL;
    if (io->rx_state != MQ_RX_IDLE)
        io_set_rx_state(io, MQ_RX_IDLE);
}

/* After the connection died or was closed: settle what depended on it. */
static void io_lost(mq_io *io)
{
    io_fail_inflight(io);
    io_rx_reset(io);
    if (io->conn_state == MQ_CONN_UP)
        io_emit_state(io, 0);
    io_close_conn(io);
    io_flush(io);
}

static int io_start_consumer(mq_io *io, mq_consumer *cons, size_t index)
{
    char tag[32];
    int rc;

    snprintf(tag, sizeof(tag), "mq.%zu", index);
    amqp_basic_consume(io->conn, MQ_CHANNEL, amqp_cstring_bytes(cons->queue), amqp_cstring_bytes(tag),
                       0, 0, 0, amqp_empty_table);
    rc = io_check_rpc(io, "basic.consume");
    if (rc == CG_OK)
        log_debug(io->id, "mq: consuming %s as %s", cons->queue, tag);
    return rc;
}

static int io_declare_queue(mq_io *io, const mq_queue_decl *q)
{
    amqp_table_entry_t e[4];
    amqp_table_t args;
    int n = 0;

    if (q->dead_letter_exchange) {
        e[n].key = amqp_cstring_bytes("x-dead-letter-exchange");
        e[n].value.kind = AMQP_FIELD_KIND_UTF8;
        e[n++].value.value.bytes = amqp_cstring_bytes(q->dead_letter_exchange);
    }
    if (q->dead_letter_routing_key) {
        e[n].key = amqp_cstring_bytes("x-dead-letter-routing-key");
        e[n].value.kind = AMQP_FIELD_KIND_UTF8;
        e[n++].value.value.bytes = amqp_cstring_bytes(q->dead_letter_routing_key);
    }
    if (q->max_length > 0) {
        /* reject-publish: a full queue nacks the publisher instead of
         * silently dropping its oldest message. */
        e[n].key = amqp_cstring_bytes("x-max-length");
        e[n].value.kind = AMQP_FIELD_KIND_I64;
        e[n++].value.value.i64 = q->max_length;
        e[n].key = amqp_cstring_bytes("x-overflow");
        e[n].value.kind = AMQP_FIELD_KIND_UTF8;
        e[n++].value.value.bytes = amqp_cstring_bytes("reject-publish");
    }
    args.num_entries = n;
    args.entries = e;
    amqp_queue_declare(io->conn, MQ_CHANNEL, amqp_cstring_bytes(q->name), 0, !q->exclusive,
                       q->exclusive ? 1 : 0, q->exclusive ? 1 : 0, args);
    return io_check_rpc(io, "queue.declare");
}

/* Exchanges (durable), then queues, then bindings; stops at the first failure. */
static int io_declare_topology(mq_io *io)
{
    const mq_topology *t = &io->c->topo;
    int rc = CG_OK;

    for (size_t i = 0; i < t->n_exchanges && rc == CG_OK; i++) {
        amqp_exchange_declare(io->conn, MQ_CHANNEL, amqp_cstring_bytes(t->exchanges[i].name),
                              amqp_cstring_bytes(t->exchanges[i].type), 0, 1, 0, 0, amqp_empty_table);
        rc = io_check_rpc(io, "exchange.declare");
    }
    for (size_t i = 0; i < t->n_queues && rc == CG_OK; i++)
        rc = io_declare_queue(io, &t->queues[i]);
    for (size_t i = 0; i < t->n_bindings && rc == CG_OK; i++) {
        const mq_binding_decl *b = &t->bindings[i];

        amqp_queue_bind(io->conn, MQ_CHANNEL, amqp_cstring_bytes(b->queue),
                        amqp_cstring_bytes(b->exchange), amqp_cstring_bytes(b->routing_key),
                        amqp_empty_table);
        rc = io_check_rpc(io, "queue.bind");
    }
    return rc;
}

static int io_login(mq_io *io)
{
    const mq_config *cfg = &io->c->cfg;
    amqp_table_entry_t caps[2], props[2];
    amqp_table_t client_props;
    amqp_rpc_reply_t r;
    int rc = CG_OK;

    /* consumer_cancel_notify: learn of a deleted queue (basic.cancel) instead
     * of waiting forever; connection.blocked: log broker memory/disk alarms. */
    caps[0].key = amqp_cstring_bytes("consumer_cancel_notify");
    caps[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[0].value.value.boolean = 1;
    caps[1].key = amqp_cstring_bytes("connection.blocked");
    caps[1].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[1].value.value.boolean = 1;
    props[0].key = amqp_cstring_bytes("connection_name");
    props[0].value.kind = AMQP_FIELD_KIND_UTF8;
    props[0].value.value.bytes = amqp_cstring_bytes(cfg->name);
    props[1].key = amqp_cstring_bytes("capabilities");
    props[1].value.kind = AMQP_FIELD_KIND_TABLE;
    props[1].value.value.table.num_entries = 2;
    props[1].value.value.table.entries = caps;
    client_props.num_entries = 2;
    client_props.entries = props;
    r = amqp_login_with_properties(io->conn, cfg->vhost, 0, MQ_FRAME_MAX, cfg->heartbeat_s,
                                   &client_props, AMQP_SASL_METHOD_PLAIN, cfg->user, cfg->password);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        io->conn_open = 1;
    } else if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION) {
        io_log_close(io, "login", &r.reply);
        io_answer_close(io, 0, r.reply.id);
        rc = CG_ERR_IO;
    } else {
        log_warn(io->id, "mq: login to %s:%d: %s", cfg->host, cfg->port,
                 r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION ? amqp_error_string2(r.library_error)
                                                                 : "no reply");
        rc = CG_ERR_IO;
    }
    return rc;
}

/* One connect attempt, up to consumers in place; CG_OK leaves io->conn open. */
static int io_connect(mq_io *io)
{
    const mq_config *cfg = &io->c->cfg;
    struct timeval tv = mq_tv_ms(cfg->connect_timeout_ms);
    amqp_socket_t *sock;
    int rc = CG_ERR_IO;
    int st;

    io->epoch++;
    io->next_seq = 1;
    io->conn = amqp_new_connection();
    if (io->conn == NULL) {
        log_warn(io->id, "mq: amqp_new_connection: out of memory");
        goto err;
    }
    sock = amqp_tcp_socket_new(io->conn);
    if (sock == NULL) {
        log_warn(io->id, "mq: amqp_tcp_socket_new: out of memory");
        goto err;
    }
    /* Bounded handshake and RPCs: a half-dead broker cannot hang a declare. */
    amqp_set_handshake_timeout(io->conn, &tv);
    amqp_set_rpc_timeout(io->conn, &tv);
    st = amqp_socket_open_noblock(sock, cfg->host, cfg->port, &tv);
    if (st != AMQP_STATUS_OK) {
        log_warn(io->id, "mq: connect to %s:%d: %s", cfg->host, cfg->port, amqp_error_string2(st));
        goto err;
    }
    if (io_login(io) != CG_OK)
        goto err;
    amqp_channel_open(io->conn, MQ_CHANNEL);
    if (io_check_rpc(io, "channel.open") != CG_OK)
        goto err;
    io->chan_open = 1;
    amqp_confirm_select(io->conn, MQ_CHANNEL);
    if (io_check_rpc(io, "confirm.select") != CG_OK)
        goto err;
    amqp_basic_qos(io->conn, MQ_CHANNEL, 0, (uint16_t)cfg->prefetch, 0);
    if (io_check_rpc(io, "basic.qos") != CG_OK || io_declare_topology(io) != CG_OK)
        goto err;
    for (size_t i = 0; i < io->n_consumers; i++)
        if (io_start_consumer(io, io->consumers[i], i) != CG_OK)
            goto err;
    log_info(io->id, "mq: connected to %s:%d vhost %s (connection %" PRIu64 ")", cfg->host,
             cfg->port, cfg->vhost, io->epoch);
    rc = CG_OK;
    goto done;
err:
    io_close_conn(io);
done:
    return rc;
}

/* ---- commands from the loop ------------------------------------------------------ */

static void io_drain_wake(mq_io *io)
{
    uint64_t n;

    if (read(io->c->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN && errno != EINTR)
        log_warn(io->id, "mq: reading the wakeup fd: %s", strerror(errno));
}

static int io_send_ack(mq_io *io, const mq_item *it)
{
    const char *what = it->kind == MQ_ITEM_ACK ? "ack" : "nack";
    int st, rc = CG_OK;

    if (io->conn == NULL || io->conn_state != MQ_CONN_UP || it->u.ack.id.epoch != io->epoch) {
        /* The delivery came on an earlier connection: the broker has
         * already put it back, and its tag means nothing here. */
        log_debug(io->id, "mq: dropping %s of tag %" PRIu64 " from connection %" PRIu64, what,
                  it->u.ack.id.tag, it->u.ack.id.epoch);
        goto done;
    }
    if (it->kind == MQ_ITEM_ACK)
        st = amqp_basic_ack(io->conn, MQ_CHANNEL, it->u.ack.id.tag, it->u.ack.flag);
    else
        st = amqp_basic_nack(io->conn, MQ_CHANNEL, it->u.ack.id.tag, 0, it->u.ack.flag);
    if (st != AMQP_STATUS_OK) {
        log_warn(io->id, "mq: sending %s: %s", what, amqp_error_string2(st));
        io->conn_open = io->chan_open = 0;
        rc = CG_ERR_IO;
    }
done:
    return rc;
}

static int io_add_consumer(mq_io *io, mq_consumer *cons)
{
    int rc = CG_OK;

    if (io->n_consumers == io->cap_consumers) {
        size_t cap = io->cap_consumers ? io->cap_consumers * 2 : 8;
        mq_consumer **a = realloc(io->consumers, cap * sizeof(*a));

        if (a == NULL) {
            log_error(io->id, "mq: out of memory: not consuming %s", cons->queue);
            rc = CG_ERR_NOMEM;
            goto done;
        }
        io->consumers = a;
        io->cap_consumers = cap;
    }
    io->consumers[io->n_consumers++] = cons;
done:
    return rc;
}

/* Sorts out reply r of an RPC on the stats channel (what and queue, which
 * may be NULL, are for the log). CG_OK; CG_ERR_NOTFOUND (404) or
 * CG_ERR_PROTOCOL when the broker closed only that channel: the close is
 * answered and *chan_open cleared, channel 1 is untouched; CG_ERR_TIMEOUT or
 * CG_ERR_IO when the connection is gone (on an RPC timeout librabbitmq has
 * already closed the socket). */
static int io_qstats_reply(mq_io *io, amqp_rpc_reply_t r, const char *what, const char *queue,
                           int *chan_open)
{
    amqp_channel_close_ok_t ok;
    int rc = CG_ERR_IO;

    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        rc = CG_OK;
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id != AMQP_CHANNEL_CLOSE_METHOD) {
            io_log_close(io, what, &r.reply);
            io_answer_close(io, 0, r.reply.id);
            io->conn_open = io->chan_open = 0;
            break;
        }
        *chan_open = 0;
        if (((const amqp_channel_close_t *)r.reply.decoded)->reply_code == AMQP_NOT_FOUND) {
            log_debug(io->id, "mq: %s%s%s: no such queue", what, queue ? " " : "",
                      queue ? queue : "");
            rc = CG_ERR_NOTFOUND;
        } else {
            io_log_close(io, what, &r.reply);
            rc = CG_ERR_PROTOCOL;
        }
        memset(&ok, 0, sizeof(ok));
        if (amqp_send_method(io->conn, MQ_STATS_CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) !=
            AMQP_STATUS_OK) {
            log_warn(io->id, "mq: %s: cannot answer the channel close", what);
            io->conn_open = io->chan_open = 0;
            rc = CG_ERR_IO;
        }
        break;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        log_warn(io->id, "mq: %s%s%s: %s", what, queue ? " " : "", queue ? queue : "",
                 amqp_error_string2(r.library_error));
        rc = r.library_error == AMQP_STATUS_TIMEOUT ? CG_ERR_TIMEOUT : CG_ERR_IO;
        io->conn_open = io->chan_open = 0;
        break;
    default:
        log_warn(io->id, "mq: %s: no reply", what);
        io->conn_open = io->chan_open = 0;
        break;
    }
    return rc;
}

static int io_conn_failed(int rc)
{
    return rc == CG_ERR_TIMEOUT || rc == CG_ERR_IO;
}

/* Answers one queue-depth request on MQ_STATS_CHANNEL, reopened after each
 * missing queue and closed at the end. Returns CG_ERR_IO when the connection
 * failed on the way (qs then carries CG_ERR_TIMEOUT or CG_ERR_IO), else CG_OK
 * (qs->status CG_OK, or CG_ERR_PROTOCOL when the broker refused the channel). */
static int io_queue_stats(mq_io *io, mq_qstats *qs)
{
    amqp_queue_declare_ok_t *ok;
    int64_t t0 = mq_now_ms();
    int chan_open = 0, st = CG_OK, rc;

    for (int i = 0; i < qs->n && st == CG_OK; i++) {
        mq_queue_info *q = &qs->q[i];

        if (!chan_open) {
            amqp_channel_open(io->conn, MQ_STATS_CHANNEL);
            st = io_qstats_reply(io, amqp_get_rpc_reply(io->conn), "channel.open", NULL,
                                 &chan_open);
            if (st != CG_OK)
                break;
            chan_open = 1;
        }
        ok = amqp_queue_declare(io->conn, MQ_STATS_CHANNEL, amqp_cstring_bytes(q->name), 1, 0, 0, 0,
                                amqp_empty_table);
        rc = io_qstats_reply(io, amqp_get_rpc_reply(io->conn), "passive queue.declare", q->name,
                             &chan_open);
        if (rc == CG_OK) {
            q->messages = ok->message_count;
            q->consumers = ok->consumer_count;
        }
        if (io_conn_failed(rc))
            st = rc;
        else
            q->status = rc;
    }
    if (chan_open && st == CG_OK) {
        /* The answers are in: only a connection failure still matters. */
        rc = io_qstats_reply(io, amqp_channel_close(io->conn, MQ_STATS_CHANNEL, AMQP_REPLY_SUCCESS),
                             "channel.close", NULL, &chan_open);
        if (io_conn_failed(rc))
            st = rc;
    }
    amqp_maybe_release_buffers_on_channel(io->conn, MQ_STATS_CHANNEL);
    if (st != CG_OK)
        mq_qstats_fail(qs, st);
    else
        qs->status = CG_OK;
    log_debug(io->id, "mq: queue stats for %d queues: %s in %" PRId64 " ms", qs->n,
              cg_status_name(qs->status), mq_now_ms() - t0);
    return io_conn_failed(st) ? CG_ERR_IO : CG_OK;
}

/* Takes every queued command: publishes join the unsent list, acks and
 * consumers go out at once when connected, queue-depth requests are answered
 * at once (CG_ERR_STATE when not connected or stopping). CG_ERR_IO when the
 * connection failed meanwhile (the remaining commands are still taken). */
static int io_take_cmds(mq_io *io)
{
    mq_list batch = {NULL, NULL};
    mq_item *it;
    int rc = CG_OK;

    pthread_mutex_lock(&io->c->lock);
    mq_list_splice(&batch, &io->c->cmds);
    io->stop = io->c->stop;
    pthread_mutex_unlock(&io->c->lock);
    while ((it = mq_list_pop(&batch)) != NULL) {
        switch (it->kind) {
        case MQ_ITEM_PUBLISH:
            mq_list_push(&io->unsent, it);
            break;
        case MQ_ITEM_ACK:
        case MQ_ITEM_NACK:
            if (rc == CG_OK && io_send_ack(io, it) != CG_OK)
                rc = CG_ERR_IO;
            mq_item_free(it);
            break;
        case MQ_ITEM_CONSUME:
            if (io_add_consumer(io, it->u.consumer) == CG_OK && rc == CG_OK &&
                io->conn_state == MQ_CONN_UP &&
                io_start_consumer(io, it->u.consumer, io->n_consumers - 1) != CG_OK)
                rc = CG_ERR_IO;
            mq_item_free(it);
            break;
        case MQ_ITEM_QSTATS:
            if (rc != CG_OK || io->stop || io->conn_state != MQ_CONN_UP)
                mq_qstats_fail(&it->u.qstats, CG_ERR_STATE);
            else if (io_queue_stats(io, &it->u.qstats) != CG_OK)
                rc = CG_ERR_IO;
            it->kind = MQ_ITEM_QSTATS_DONE;
            mq_list_push(&io->out, it);
            break;
        default:
            log_error(io->id, "mq: unexpected command kind %d", it->kind);
            abort();
        }
    }
    return rc;
}

/* Sends up to max queued publishes. amqp_basic_publish may block in send()
 * while the socket buffer is full: that only stalls this thread, never the
 * loop, and is the back-pressure that fills max_outbound. */
static int io_send_publishes(mq_io *io, int max)
{
    amqp_basic_properties_t p;
    mq_item *it;
    int st, rc = CG_OK;

    for (int n = 0; n < max && rc == CG_OK && (it = mq_list_pop(&io->unsent)) != NULL; n++) {
        const mq_pub *pub = &it->u.pub;
        amqp_bytes_t body;

        memset(&p, 0, sizeof(p));
        p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
        p.delivery_mode = pub->transient ? 1 : 2;
        p.content_type = amqp_cstring_bytes(pub->content_type);
        if (pub->message_id) {
            p._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
            p.message_id = amqp_cstring_bytes(pub->message_id);
        }
        if (pub->correlation_id) {
            p._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
            p.correlation_id = amqp_cstring_bytes(pub->correlation_id);
        }
        if (pub->reply_to) {
            p._flags |= AMQP_BASIC_REPLY_TO_FLAG;
            p.reply_to = amqp_cstring_bytes(pub->reply_to);
        }
        if (pub->type) {
            p._flags |= AMQP_BASIC_TYPE_FLAG;
            p.type = amqp_cstring_bytes(pub->type);
        }
        body.len = pub->len;
        body.bytes = (void *)pub->body;
        st = amqp_basic_publish(io->conn, MQ_CHANNEL, amqp_cstring_bytes(pub->exchange),
                                amqp_cstring_bytes(pub->routing_key), 0, 0, &p, body);
        /* Numbered and in flight even when the send failed: part of it may
         * have reached the broker, so its outcome is unknown, not "unsent". */
        it->u.pub.seq = io->next_seq++;
        mq_list_push(&io->inflight, it);
        io->n_inflight++;
        if (st != AMQP_STATUS_OK) {
            log_warn(io->id, "mq: publish: %s", amqp_error_string2(st));
            io->conn_open = io->chan_open = 0;
            rc = CG_ERR_IO;
        }
    }
    return rc;
}

/* ---- frames from the broker ---------------------------------------------------------- */

/* basic.ack / basic.nack: resolves seq == tag, or every seq <= tag if multiple. */
static void io_on_confirm(mq_io *io, uint64_t tag, int multiple, int result)
{
    mq_item *prev = NULL, *it = io->inflight.head;

    if (multiple) {
        while (io->inflight.head && io->inflight.head->u.pub.seq <= tag) {
            io_resolve(io, mq_list_pop(&io->inflight), result);
            io->n_inflight--;
        }
        goto done;
    }
    /* Usually the head; the broker may confirm out of order across queues. */
    while (it && it->u.pub.seq != tag) {
        prev = it;
        it = it->next;
    }
    if (it == NULL) {
        log_debug(io->id, "mq: confirm for unknown tag %" PRIu64, tag);
        goto done;
    }
    if (prev)
        prev->next = it->next;
    else
        io->inflight.head = it->next;
    if (io->inflight.tail == it)
        io->inflight.tail = prev;
    io_resolve(io, it, result);
    io->n_inflight--;
done:
    return;
}

static mq_consumer *io_find_consumer(mq_io *io, amqp_bytes_t tag)
{
    mq_consumer *cons = NULL;
    char buf[32];
    char *end;
    unsigned long idx;

    /* Our tags are "mq.<index>" (io_start_consumer). */
    if (tag.len >= 4 && tag.len < sizeof(buf) && memcmp(tag.bytes, "mq.", 3) == 0) {
        memcpy(buf, tag.bytes, tag.len);
        buf[tag.len] = '\0';
        idx = strtoul(buf + 3, &end, 10);
        if (*end == '\0' && idx < io->n_consumers)
            cons = io->consumers[idx];
    }
    return cons;
}

static void io_copy_shortstr(char *dst, amqp_bytes_t s)
{
    size_t n = s.len < 255 ? s.len : 255;

    memcpy(dst, s.bytes, n);
    dst[n] = '\0';
}

static void io_on_deliver(mq_io *io, const amqp_basic_deliver_t *d)
{
    io->rx_tag = d->delivery_tag;
    io->rx_redelivered = d->redelivered;
    io->rx_consumer = io_find_consumer(io, d->consumer_tag);
    io_copy_shortstr(io->rx_exchange, d->exchange);
    io_copy_shortstr(io->rx_routing_key, d->routing_key);
    io_set_rx_state(io, MQ_RX_HEADER);
}

/* Copies a property into the message block; NULL when absent. */
static char *io_put_prop(char **p, const amqp_basic_properties_t *props, amqp_flags_t flag,
                         amqp_bytes_t v)
{
    char *d = NULL;

    if (props->_flags & flag) {
        d = *p;
        memcpy(d, v.bytes, v.len);
        d[v.len] = '\0';
        *p += v.len + 1;
    }
    return d;
}

static size_t io_prop_size(const amqp_basic_properties_t *props, amqp_flags_t flag, amqp_bytes_t v)
{
    return (props->_flags & flag) ? v.len + 1 : 0;
}

/* Allocates the message (struct, strings and body in one block, freed by
 * mq_message_free) and the event that will carry it. */
static int io_new_delivery(mq_io *io, const amqp_basic_properties_t *pr, size_t body_size)
{
    size_t size = sizeof(mq_message) + strlen(io->rx_exchange) + 1 + strlen(io->rx_routing_key) + 1 +
                  io_prop_size(pr, AMQP_BASIC_MESSAGE_ID_FLAG, pr->message_id) +
                  io_prop_size(pr, AMQP_BASIC_CORRELATION_ID_FLAG, pr->correlation_id) +
                  io_prop_size(pr, AMQP_BASIC_REPLY_TO_FLAG, pr->reply_to) +
                  io_prop_size(pr, AMQP_BASIC_TYPE_FLAG, pr->type) +
                  io_prop_size(pr, AMQP_BASIC_CONTENT_TYPE_FLAG, pr->content_type) + body_size + 1;
    mq_message *m = malloc(size);
    mq_item *it = calloc(1, sizeof(*it));
    char *p;
    int rc = CG_OK;

    if (m == NULL || it == NULL) {
        rc = CG_ERR_NOMEM;
        goto err;
    }
    memset(m, 0, sizeof(*m));
    m->id.epoch = io->epoch;
    m->id.tag = io->rx_tag;
    m->redelivered = io->rx_redelivered;
    p = (char *)(m + 1);
    m->exchange = strcpy(p, io->rx_exchange);
    p += strlen(p) + 1;
    m->routing_key = strcpy(p, io->rx_routing_key);
    p += strlen(p) + 1;
    m->message_id = io_put_prop(&p, pr, AMQP_BASIC_MESSAGE_ID_FLAG, pr->message_id);
    m->correlation_id = io_put_prop(&p, pr, AMQP_BASIC_CORRELATION_ID_FLAG, pr->correlation_id);
    m->reply_to = io_put_prop(&p, pr, AMQP_BASIC_REPLY_TO_FLAG, pr->reply_to);
    m->type = io_put_prop(&p, pr, AMQP_BASIC_TYPE_FLAG, pr->type);
    m->content_type = io_put_prop(&p, pr, AMQP_BASIC_CONTENT_TYPE_FLAG, pr->content_type);
    m->body = p;
    m->body_len = body_size;
    m->body[body_size] = '\0';
    it->kind = MQ_ITEM_DELIVERY;
    it->u.dlv.consumer = io->rx_consumer;
    it->u.dlv.msg = m;
    io->rx_item = it;
    io->rx_msg = m;
    goto done;
err:
    free(m);
    free(it);
done:
    return rc;
}

static void io_delivery_done(mq_io *io)
{
    mq_list_push(&io->out, io->rx_item);
    io->rx_item = NULL;
    io->rx_msg = NULL;
    io_set_rx_state(io, MQ_RX_IDLE);
}

/* Refuses the delivery being read; its body frames are then skipped. */
static int io_refuse(mq_io *io, int requeue, size_t body_size)
{
    int st = amqp_basic_nack(io->conn, MQ_CHANNEL, io->rx_tag, 0, requeue);
    int rc = CG_OK;

    if (st != AMQP_STATUS_OK) {
        log_warn(io->id, "mq: sending nack: %s", amqp_error_string2(st));
        io->conn_open = io->chan_open = 0;
        rc = CG_ERR_IO;
    } else {
        io_set_rx_state(io, body_size > 0 ? MQ_RX_DISCARD : MQ_RX_IDLE);
    }
    return rc;
}

static int io_on_header(mq_io *io, const amqp_frame_t *f)
{
    uint64_t body_size = f->payload.properties.body_size;
    int rc = CG_OK;

    if (io->rx_state != MQ_RX_HEADER) {
        log_warn(io->id, "mq: content header in rx state %s", mq_rx_state_names[io->rx_state]);
        rc = CG_ERR_PROTOCOL;
        goto done;
    }
    io->rx_need = (size_t)body_size;
    io->rx_have = 0;
    if (body_size > io->c->cfg.max_body) {
        /* Never buffer without bound: dead-letter it for a human to look at. */
        log_warn(io->id, "mq: delivery of %" PRIu64 " bytes from %s/%s exceeds max_body %zu: "
                 "rejected without requeue", body_size, io->rx_exchange, io->rx_routing_key,
                 io->c->cfg.max_body);
        rc = io_refuse(io, 0, io->rx_need);
    } else if (io->rx_consumer == NULL) {
        log_warn(io->id, "mq: delivery for an unknown consumer: requeued");
        rc = io_refuse(io, 1, io->rx_need);
    } else if (io_new_delivery(io, f->payload.properties.decoded, io->rx_need) != CG_OK) {
        log_error(io->id, "mq: out of memory for a delivery of %zu bytes: requeued", io->rx_need);
        rc = io_refuse(io, 1, io->rx_need);
    } else if (io->rx_need == 0) {
        io_delivery_done(io);
    } else {
        io_set_rx_state(io, MQ_RX_BODY);
    }
done:
    return rc;
}

static int io_on_body(mq_io *io, const amqp_frame_t *f)
{
    size_t len = f->payload.body_fragment.len;
    int rc = CG_OK;

    if ((io->rx_state != MQ_RX_BODY && io->rx_state != MQ_RX_DISCARD) ||
        len > io->rx_need - io->rx_have) {
        log_warn(io->id, "mq: unexpected body frame (%zu bytes) in rx state %s", len,
                 mq_rx_state_names[io->rx_state]);
        rc = CG_ERR_PROTOCOL;
        goto done;
    }
    if (io->rx_state == MQ_RX_BODY)
        memcpy(io->rx_msg->body + io->rx_have, f->payload.body_fragment.bytes, len);
    io->rx_have += len;
    if (io->rx_have == io->rx_need) {
        if (io->rx_state == MQ_RX_BODY)
            io_delivery_done(io);
        else
            io_set_rx_state(io, MQ_RX_IDLE);
    }
done:
    return rc;
}

static int io_on_method(mq_io *io, amqp_channel_t channel, const amqp_method_t *m)
{
    int rc = CG_OK;

    if (io->rx_state != MQ_RX_IDLE && channel == MQ_CHANNEL) {
        /* Content frames of one delivery are never interleaved with methods. */
        log_warn(io->id, "mq: method 0x%08x in rx state %s", (unsigned)m->id,
                 mq_rx_state_names[io->rx_state]);
        rc = CG_ERR_PROTOCOL;
        goto done;
    }
    switch (m->id) {
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *a = m->decoded;

        io_on_confirm(io, a->delivery_tag, a->multiple, MQ_PUBLISH_ACKED);
        break;
    }
    case AMQP_BASIC_NACK_METHOD: {
        const amqp_basic_nack_t *a = m->decoded;

        io_on_confirm(io, a->delivery_tag, a->multiple, MQ_PUBLISH_NACKED);
        break;
    }
    case AMQP_BASIC_DELIVER_METHOD:
        io_on_deliver(io, m->decoded);
        break;
    case AMQP_CONNECTION_CLOSE_METHOD:
    case AMQP_CHANNEL_CLOSE_METHOD:
        io_log_close(io, "reading", m);
        io_answer_close(io, channel, m->id);
        rc = CG_ERR_IO;
        break;
    case AMQP_BASIC_CANCEL_METHOD: {
        const amqp_basic_cancel_t *cn = m->decoded;

        /* Its queue was deleted: reconnecting redeclares it (when it is in
         * the topology) and restarts every consumer. */
        log_warn(io->id, "mq: consumer %.*s cancelled by the broker", (int)cn->consumer_tag.len,
                 (const char *)cn->consumer_tag.bytes);
        rc = CG_ERR_IO;
        break;
    }
    case AMQP_CONNECTION_BLOCKED_METHOD:
        log_warn(io->id, "mq: the broker blocks publishing (resource alarm)");
        break;
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        log_info(io->id, "mq: the broker accepts publishing again");
        break;
    default:
        log_debug(io->id, "mq: ignoring method 0x%08x on channel %u", (unsigned)m->id,
                  (unsigned)channel);
        break;
    }
done:
    return rc;
}

static int io_on_frame(mq_io *io, const amqp_frame_t *f)
{
    int rc = CG_OK;

    switch (f->frame_type) {
    case AMQP_FRAME_METHOD:
        rc = io_on_method(io, f->channel, &f->payload.method);
        break;
    case AMQP_FRAME_HEADER:
        rc = io_on_header(io, f);
        break;
    case AMQP_FRAME_BODY:
        rc = io_on_body(io, f);
        break;
    default:
        break;          /* heartbeats are consumed inside librabbitmq */
    }
    return rc;
}

/* Reads every frame already available, never waiting. Each zero-timeout
 * wait also sends a heartbeat when one is due and fails with
 * AMQP_STATUS_HEARTBEAT_TIMEOUT when the broker has been silent too long. */
static int io_read_frames(mq_io *io)
{
    struct timeval zero = {0, 0};
    amqp_frame_t f;
    int st, rc = CG_OK;

    for (int n = 0; n < MQ_FRAME_BATCH && rc == CG_OK; n++) {
        st = amqp_simple_wait_frame_noblock(io->conn, &f, &zero);
        if (st == AMQP_STATUS_TIMEOUT)
            break;
        if (st != AMQP_STATUS_OK) {
            log_warn(io->id, "mq: connection lost: %s", amqp_error_string2(st));
            io->conn_open = io->chan_open = 0;
            rc = CG_ERR_IO;
            break;
        }
        rc = io_on_frame(io, &f);
    }
    /* Frames are decoded into per-channel pools; recycle them once nothing
     * of theirs is queued or half-read (librabbitmq checks both). */
    amqp_maybe_release_buffers_on_channel(io->conn, 0);
    amqp_maybe_release_buffers_on_channel(io->conn, MQ_CHANNEL);
    return rc;
}

/* ---- the states ---------------------------------------------------------------------- */

static int io_poll_ms(const mq_io *io)
{
    int hb_ms = io->c->cfg.heartbeat_s * 500;

    return (hb_ms > 0 && hb_ms < MQ_TICK_MS) ? hb_ms : MQ_TICK_MS;
}

/* MQ_CONN_UP: runs until the connection fails or a stop request finds no
 * publish awaiting its confirm (or waited connect_timeout_ms for them).
 * Returns the next state; the connection is closed. */
static int io_run(mq_io *io)
{
    struct pollfd pfd[2];
    int64_t stop_deadline = 0;
    int rc = CG_OK;

    for (;;) {
        rc = io_take_cmds(io);
        if (rc != CG_OK)
            break;
        if (io->stop) {
            /* Stop sending; give what was sent a chance to be confirmed. */
            if (stop_deadline == 0)
                stop_deadline = mq_now_ms() + io->c->cfg.connect_timeout_ms;
            if (io->n_inflight == 0 || mq_now_ms() >= stop_deadline)
                break;
        } else if ((rc = io_send_publishes(io, MQ_SEND_BATCH)) != CG_OK) {
            break;
        }
        if ((rc = io_read_frames(io)) != CG_OK)
            break;
        io_flush(io);
        if (amqp_frames_enqueued(io->conn) || amqp_data_in_buffer(io->conn))
            continue;
        pfd[0].fd = amqp_get_sockfd(io->conn);
        pfd[0].events = POLLIN;
        pfd[1].fd = io->c->wake_fd;
        pfd[1].events = POLLIN;
        pfd[0].revents = pfd[1].revents = 0;
        if (poll(pfd, 2, (io->unsent.head && !io->stop) ? 0 : io_poll_ms(io)) < 0 && errno != EINTR) {
            log_warn(io->id, "mq: poll: %s", strerror(errno));
            rc = CG_ERR_IO;
            break;
        }
        if (pfd[1].revents & POLLIN)
            io_drain_wake(io);
    }
    if (rc != CG_OK)
        log_warn(io->id, "mq: connection %" PRIu64 " lost; %zu publishes unconfirmed, %s",
                 io->epoch, io->n_inflight, io->stop ? "stopping" : "reconnecting");
    io_lost(io);
    return io->stop ? MQ_CONN_STOPPED : MQ_CONN_BACKOFF;
}

static uint32_t io_random(mq_io *io)
{
    uint32_t x = io->rng;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return io->rng = x;
}

/* MQ_CONN_BACKOFF: waits min_ms * 2^attempt (at most max_ms), jittered to
 * [d/2, d] so that many clients do not reconnect in lockstep after a broker
 * restart. Keeps taking commands, so shutdown interrupts the wait. */
static int io_backoff(mq_io *io)
{
    const mq_config *cfg = &io->c->cfg;
    int64_t d = cfg->reconnect_min_ms, deadline, left;
    struct pollfd pfd;
    int next = MQ_CONN_CONNECTING;

    for (int i = 0; i < io->attempt && d < cfg->reconnect_max_ms; i++)
        d *= 2;
    if (d > cfg->reconnect_max_ms)
        d = cfg->reconnect_max_ms;
    d = d / 2 + io_random(io) % (uint32_t)(d / 2 + 1);
    io->attempt++;
    log_info(io->id, "mq: reconnecting in %" PRId64 " ms", d);
    deadline = mq_now_ms() + d;
    for (;;) {
        io_take_cmds(io);       /* not connected: queues publishes, fails queue stats */
        io_flush(io);
        if (io->stop) {
            next = MQ_CONN_STOPPED;
            break;
        }
        left = deadline - mq_now_ms();
        if (left <= 0)
            break;
        pfd.fd = io->c->wake_fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, (int)left) > 0)
            io_drain_wake(io);
    }
    return next;
}

/* MQ_CONN_CONNECTING: one attempt. */
static int io_connecting(mq_io *io)
{
    int next = MQ_CONN_STOPPED;

    pthread_mutex_lock(&io->c->lock);
    io->stop = io->c->stop;
    pthread_mutex_unlock(&io->c->lock);
    if (!io->stop) {
        if (io_connect(io) == CG_OK) {
            io->attempt = 0;
            io_emit_state(io, 1);
            io_flush(io);
            next = MQ_CONN_UP;
        } else {
            next = MQ_CONN_BACKOFF;
        }
    }
    return next;
}

/* After the last state: every publish left was never sent, every queue-depth
 * request left is answered CG_ERR_STATE. */
static void io_finish(mq_io *io)
{
    mq_item *it;
    size_t unsent = 0;

    pthread_mutex_lock(&io->c->lock);
    mq_list_splice(&io->unsent, &io->c->cmds);
    pthread_mutex_unlock(&io->c->lock);
    while ((it = mq_list_pop(&io->unsent)) != NULL) {
        if (it->kind == MQ_ITEM_PUBLISH) {
            io_resolve(io, it, MQ_PUBLISH_NACKED);
            unsent++;
        } else if (it->kind == MQ_ITEM_QSTATS) {
            it->kind = MQ_ITEM_QSTATS_DONE;
            mq_qstats_fail(&it->u.qstats, CG_ERR_STATE);
            mq_list_push(&io->out, it);
        } else {
            mq_item_free(it);
        }
    }
    io_fail_inflight(io);
    io_flush(io);
    free(io->consumers);
    log_info(io->id, "mq: stopped; %zu publishes were never sent", unsent);
}

void *mq_thread_main(void *arg)
{
    mq_io io;

    memset(&io, 0, sizeof(io));
    io.c = arg;
    io.id = io.c->cfg.name;
    io.rng = (uint32_t)(mq_now_ms() ^ ((uint64_t)getpid() << 16) ^ (uintptr_t)&io) | 1u;
    io.conn_state = MQ_CONN_CONNECTING;
    while (io.conn_state != MQ_CONN_STOPPED) {
        switch (io.conn_state) {
        case MQ_CONN_CONNECTING:
            io_set_conn_state(&io, io_connecting(&io));
            break;
        case MQ_CONN_UP:
            io_set_conn_state(&io, io_run(&io));
            break;
        case MQ_CONN_BACKOFF:
            io_set_conn_state(&io, io_backoff(&io));
            break;
        default:
            log_error(io.id, "mq: bad connection state %d", io.conn_state);
            abort();
        }
    }
    io_finish(&io);
    return NULL;
}
