/* msg.h - the messages of the grab saga: names, broker topology, batch codec.
 *
 * Every command and reply is a batch: an AMQP message whose `type` property
 * names the kind (msg_kind_name) and whose JSON body is {"items":[...]},
 * each item carrying its own saga id, so that broker, Redis and database
 * costs are paid per batch, not per grab (docs/messages.md). Commands go to
 * the direct exchange "grab.cmd"; replies go through the default exchange
 * to the queue named in the command's reply_to (one per orchestrator). */
#ifndef CG_MSG_H
#define CG_MSG_H

#include <stddef.h>

#include "jv.h"
#include "mq.h"
#include "status.h"

#define MSG_EXCHANGE_CMD   "grab.cmd"      /* direct: commands to participants */
#define MSG_EXCHANGE_DLX   "grab.dlx"      /* direct: dead letters */
#define MSG_KEY_STOCK      "stock"         /* routing key of stock commands */
#define MSG_KEY_ORDER      "order"         /* routing key of order commands */
#define MSG_KEY_DEAD       "dead"          /* routing key of dead letters */
#define MSG_QUEUE_STOCK    "stock.cmd"
#define MSG_QUEUE_ORDER    "order.cmd"
#define MSG_QUEUE_DEAD     "grab.dead"
#define MSG_REPLY_PREFIX   "orch.reply."   /* + orchestrator instance id */
#define MSG_QUEUE_MAX_LEN  1000000         /* x-max-length of each command and reply queue */

#define MSG_SAGA_ID_LEN    32              /* 128 random bits in lower-case hex */
#define MSG_MAX_BATCH      512             /* items per message */
#define MSG_MAX_BODY       (256 * 1024)    /* bytes per message body */
#define MSG_MAX_INSTANCE   64              /* length of an orchestrator instance id */

enum msg_kind {
    MSG_STOCK_RESERVE = 0,  /* orchestrator -> stock-svc: reserve one coupon for a user */
    MSG_STOCK_RELEASE = 1,  /* orchestrator -> stock-svc: give back a saga's reservation */
    MSG_STOCK_REPLY = 2,    /* stock-svc -> orchestrator: reserved | rejected | released */
    MSG_ORDER_CREATE = 3,   /* orchestrator -> order-svc: write the granted order */
    MSG_ORDER_CANCEL = 4,   /* orchestrator -> order-svc: remove it, or bar a late create */
    MSG_ORDER_REPLY = 5,    /* order-svc -> orchestrator: created | failed | cancelled */
    MSG_KIND_MAX
};

/* Item results carried by replies; unique across operations so that a reply
 * item says by itself which step it answers. */
#define MSG_RESULT_RESERVED  "reserved"   /* stock taken and recorded under the saga id */
#define MSG_RESULT_REJECTED  "rejected"   /* definitely not reserved; reason says why */
#define MSG_RESULT_RELEASED  "released"   /* no reservation left (given back, or never made
                                             and now barred) */
#define MSG_RESULT_CREATED   "created"    /* the order row is committed */
#define MSG_RESULT_FAILED    "failed"     /* definitely no row (barred, or refused) */
#define MSG_RESULT_CANCELLED "cancelled"  /* barrier committed; any row removed */

/* Reasons of rejected/failed items (also the HTTP fail_reason). */
#define MSG_REASON_OUT_OF_STOCK   "out_of_stock"
#define MSG_REASON_DUPLICATE      "duplicate"
#define MSG_REASON_UNKNOWN_COUPON "unknown_coupon"
#define MSG_REASON_RELEASED       "released"      /* a release barrier beat the reserve */
#define MSG_REASON_BARRED         "barred"        /* a cancel barrier beat the create */

/* One item of any kind; the fields a kind does not use stay zero. */
typedef struct msg_item {
    char saga_id[MSG_SAGA_ID_LEN + 1];
    long long user_id;
    long long coupon_id;
    long long room_id;
    long long grab_time;    /* milliseconds since the epoch, UTC; set by the orchestrator */
    char result[16];        /* replies */
    char reason[32];        /* replies, optional */
} msg_item;

typedef struct msg_batch {
    enum msg_kind kind;
    size_t n;               /* items used */
    msg_item items[MSG_MAX_BATCH];
} msg_batch;

const char *msg_kind_name(enum msg_kind kind);   /* "stock.reserve", ... */
int msg_kind_parse(const char *name, enum msg_kind *out) CG_MUSTCHECK;

/* Decodes a body of the given kind into batch (which the caller owns; it is
 * large, so allocate it rather than put it on a small stack). Every item is
 * checked strictly: known keys, types, ranges, a well-formed saga id; the
 * first problem is reported with its field, as "items[3].user_id". */
int msg_decode(enum msg_kind kind, const char *body, size_t len, msg_batch *batch,
               jv_error *err) CG_MUSTCHECK;

/* Encodes batch into a new NUL-terminated buffer (free() it). */
int msg_encode_new(const msg_batch *batch, char **body, size_t *len) CG_MUSTCHECK;

/* 1 when s is MSG_SAGA_ID_LEN lower-case hex digits. */
int msg_saga_id_valid(const char *s);
/* Writes a fresh random saga id (getrandom) into out[MSG_SAGA_ID_LEN + 1]. */
int msg_saga_id_new(char *out) CG_MUSTCHECK;

/* The whole broker topology: both exchanges, the command queues (durable,
 * bounded, dead-lettering to grab.dlx) and the dead-letter queue. With
 * reply_queue non-NULL, also that orchestrator's durable reply queue. The
 * result points into static storage or into reply_queue. */
void msg_topology(mq_topology *out, const char *reply_queue);

/* Sends msg to the dead-letter queue with the reason recorded, as a JSON
 * envelope {"reason","queue","type","message_id","body"} (the body kept as a
 * string when it is UTF-8, else hex-encoded as "body_hex"); on_confirm runs
 * when the broker has it, and only then may the caller ack msg. */
int msg_dead_letter(mq_client *c, const mq_message *msg, const char *queue, const char *reason,
                    mq_confirm_cb on_confirm, void *arg) CG_MUSTCHECK;

#endif
