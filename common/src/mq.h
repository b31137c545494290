/* mq.h - RabbitMQ client for a libevent program (librabbitmq underneath).
 *
 * librabbitmq is a blocking library, so each mq_client owns one I/O thread
 * that alone touches the AMQP connection: it connects with heartbeats,
 * declares the topology, publishes with publisher confirms, consumes with
 * manual acks under a prefetch limit, and reconnects with backoff (and
 * redeclares everything) after the broker restarts. The libevent loop never
 * blocks on the broker: calls below only queue work for the thread, and every
 * outcome (confirm, delivery, connection change) comes back as a callback run
 * on the loop thread, woken through an eventfd watched by the loop.
 *
 * All functions are called from the loop thread only. */
#ifndef CG_MQ_H
#define CG_MQ_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

struct event_base;
typedef struct mq_client mq_client;

/* ---- configuration ---------------------------------------------------- */

typedef struct mq_config {
    const char *host;             /* broker address, e.g. "127.0.0.1" */
    int port;                     /* AMQP port */
    const char *user;
    const char *password;         /* from the environment or a file, never argv */
    const char *vhost;
    const char *name;             /* connection name, shown in logs and the broker UI */
    int heartbeat_s;              /* AMQP heartbeat, 0 disables (default 10) */
    int connect_timeout_ms;       /* TCP connect + AMQP handshake bound (default 3000) */
    int prefetch;                 /* basic.qos prefetch count for consumers (default 256) */
    size_t max_outbound;          /* bound on queued + unconfirmed publishes (default 65536) */
    int reconnect_min_ms;         /* first reconnect delay, doubled up to the max (default 100) */
    int reconnect_max_ms;         /* (default 5000) */
    size_t max_body;              /* larger deliveries are nacked without requeue (so
                                     dead-lettered) instead of buffered (default 1 MiB) */
} mq_config;

/* Fills the defaults named above; host/port/user/password/vhost/name stay
 * NULL/0 (a NULL vhost means "/", a NULL name "mq"). */
void mq_config_defaults(mq_config *cfg);

/* ---- topology, redeclared after every reconnect ------------------------ */

typedef struct mq_exchange_decl {
    const char *name;
    const char *type;             /* "direct", "topic", "fanout" */
} mq_exchange_decl;

typedef struct mq_queue_decl {
    const char *name;
    const char *dead_letter_exchange;     /* NULL: no dead-lettering */
    const char *dead_letter_routing_key;  /* NULL: keep the original key */
    long max_length;              /* 0: unbounded; else x-max-length with reject-publish
                                     overflow, so a full queue nacks the publisher */
    int exclusive;                /* 1: a per-process queue (auto-delete, not durable);
                                     name it uniquely: server-named queues would change
                                     name on every reconnect, so they are not offered */
} mq_queue_decl;

typedef struct mq_binding_decl {
    const char *queue;
    const char *exchange;
    const char *routing_key;
} mq_binding_decl;

typedef struct mq_topology {
    const mq_exchange_decl *exchanges; size_t n_exchanges;
    const mq_queue_decl *queues;       size_t n_queues;
    const mq_binding_decl *bindings;   size_t n_bindings;
} mq_topology;

/* ---- messages ----------------------------------------------------------- */

/* Optional AMQP basic properties; NULL fields are not sent. */
typedef struct mq_props {
    const char *message_id;
    const char *correlation_id;   /* the saga id */
    const char *reply_to;
    const char *type;             /* e.g. "stock.reserve" */
    const char *content_type;     /* NULL: "application/json" */
    int transient;                /* 0 (default): delivery_mode 2, persistent */
} mq_props;

/* Identifies a delivery for ack/nack; tags are only valid on the connection
 * that delivered them, so the connection epoch is part of the id and an ack
 * of a delivery from a dead connection is dropped (the broker redelivers). */
typedef struct mq_delivery_id {
    uint64_t epoch;
    uint64_t tag;
} mq_delivery_id;

/* A received message. Given to the consumer callback, which owns it from
 * then on and frees it with mq_message_free(); strings are NUL-terminated
 * and NULL when the property was absent. */
typedef struct mq_message {
    mq_delivery_id id;
    int redelivered;
    char *exchange;
    char *routing_key;
    char *message_id;
    char *correlation_id;
    char *reply_to;
    char *type;
    char *content_type;
    char *body;                   /* body_len bytes plus a terminating NUL */
    size_t body_len;
} mq_message;

void mq_message_free(mq_message *msg);

/* ---- callbacks (all run on the loop thread) ----------------------------- */

/* The broker's answer for one publish. */
enum mq_publish_result {
    MQ_PUBLISH_ACKED = 0,     /* confirmed: the broker has taken responsibility */
    MQ_PUBLISH_NACKED = 1,    /* not delivered: refused by the broker (e.g. queue full),
                                 or never sent because the client was freed first */
    MQ_PUBLISH_UNKNOWN = 2    /* the connection died after sending, before the confirm:
                                 it may or may not have been delivered */
};
typedef void (*mq_confirm_cb)(mq_client *c, int result, void *arg);

/* Takes ownership of msg. */
typedef void (*mq_delivery_cb)(mq_client *c, mq_message *msg, void *arg);

/* Called on every connection change: up = 1 when connected and the topology
 * and consumers are in place, 0 when the connection was lost. */
typedef void (*mq_state_cb)(mq_client *c, int up, void *arg);

/* ---- lifecycle ---------------------------------------------------------- */

/* Returns a new client that starts connecting at once (in its thread); the
 * strings in cfg and topo (may be NULL) are copied. NULL on failure, with
 * err set. */
mq_client *mq_client_new(struct event_base *base, const mq_config *cfg,
                         const mq_topology *topo, mq_state_cb on_state, void *state_arg,
                         cg_error *err);
/* Stops the thread, closes the connection and frees everything. Publishes
 * not yet sent are not sent any more; for those already sent it first waits
 * for their confirms (at most connect_timeout_ms; a connect attempt, a
 * queue-stats request or the polite close under way is bounded by the same
 * timeout per step). Then the
 * callback of every publish still pending runs before it returns: sent but
 * unconfirmed ones as MQ_PUBLISH_UNKNOWN, never-sent ones as
 * MQ_PUBLISH_NACKED. Deliveries not yet handed over are dropped (the broker
 * redelivers them). Must not be called from inside this client's callbacks. */
void mq_client_free(mq_client *c);

int mq_client_is_up(const mq_client *c);

/* ---- work ---------------------------------------------------------------- */

/* Queues a publish (exchange NULL or "": the default exchange; routing_key
 * required); everything is copied. on_confirm (may be NULL) runs once with
 * its outcome. Publishes not yet sent when the connection drops are kept and
 * sent after the reconnect; ones sent but not confirmed are reported
 * MQ_PUBLISH_UNKNOWN.
 * CG_ERR_FULL when max_outbound publishes are already queued or unconfirmed. */
int mq_publish(mq_client *c, const char *exchange, const char *routing_key,
               const mq_props *props, const void *body, size_t len,
               mq_confirm_cb on_confirm, void *arg) CG_MUSTCHECK;

/* Starts consuming queue with manual acks; re-established after reconnects. */
int mq_consume(mq_client *c, const char *queue, mq_delivery_cb on_delivery,
               void *arg) CG_MUSTCHECK;

/* Acknowledges one delivery, or every one up to it when multiple is set.
 * Acking or nacking a delivery twice is an AMQP channel error: the broker
 * closes the channel, the client reconnects and the unacked ones come again.
 * Both return CG_OK, CG_ERR_NOMEM, or CG_ERR_STATE inside mq_client_free. */
int mq_ack(mq_client *c, mq_delivery_id id, int multiple);
/* Rejects one delivery; requeue = 0 sends it to the queue's dead-letter
 * exchange when it has one (and drops it otherwise). */
int mq_nack(mq_client *c, mq_delivery_id id, int requeue);

/* Counters for /admin/stats and logs. */
typedef struct mq_stats {
    uint64_t published, acked, nacked, unknown, delivered, reconnects;
    size_t outbound;              /* queued + unconfirmed now */
} mq_stats;
void mq_get_stats(const mq_client *c, mq_stats *out);

/* ---- queue depths, asked of the broker ------------------------------------ */

#define MQ_STATS_MAX_QUEUES 16    /* queues per mq_queue_stats call */
#define MQ_STATS_MAX_PENDING 4    /* calls whose callback has not run yet, per client */

/* One queue's answer. */
typedef struct mq_queue_info {
    const char *name;             /* as asked */
    long long messages;           /* ready messages (not counting delivered, unacked ones) */
    long long consumers;          /* consumers attached to the queue */
    int status;                   /* CG_OK (counts valid); CG_ERR_NOTFOUND: no such queue;
                                     CG_ERR_PROTOCOL: the broker refused to tell (e.g. another
                                     connection's exclusive queue); when the whole call failed,
                                     the call's status (counts 0) */
} mq_queue_info;

/* status: CG_OK when the broker answered for every queue (see each
 * queues[i].status); CG_ERR_STATE when not connected or inside
 * mq_client_free; CG_ERR_TIMEOUT when the broker did not answer within
 * connect_timeout_ms (librabbitmq then drops the connection, which
 * reconnects); CG_ERR_IO when the connection failed otherwise;
 * CG_ERR_PROTOCOL when the broker refused to open the channel. queues (n
 * entries, in the order asked) is valid only during the callback. */
typedef void (*mq_queue_stats_cb)(mq_client *c, int status, const mq_queue_info *queues, int n,
                                  void *arg);

/* Asks the broker for the depth and consumer count of n queues (1 <= n <=
 * MQ_STATS_MAX_QUEUES; names are copied) with passive queue.declares, sent by
 * the I/O thread on a short-lived channel of their own: the broker closes a
 * channel whose passive declare names a missing queue (404), and on the main
 * channel that would cancel the consumers, requeue unacked deliveries and
 * lose pending confirms. On CG_OK, cb runs exactly once, later, on the loop
 * thread (never from inside this call); every other return means it never
 * runs: CG_ERR_INVALID (bad arguments, names empty or over 255 bytes),
 * CG_ERR_STATE (not connected, or inside mq_client_free), CG_ERR_FULL
 * (MQ_STATS_MAX_PENDING calls unanswered), CG_ERR_NOMEM. Every callback
 * still pending when mq_client_free runs gets CG_ERR_STATE before it
 * returns. The I/O thread is busy for one round trip per queue, plus two
 * for the channel (and one more after each missing queue). */
int mq_queue_stats(mq_client *c, const char *const *queues, int n, mq_queue_stats_cb cb,
                   void *arg) CG_MUSTCHECK;

#endif
