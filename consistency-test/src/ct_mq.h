/* ct_mq.h - the broker, seen from the test.
 *
 * Two uses: the depth of the command queues (a quiet system has nothing
 * waiting in stock.cmd and order.cmd), read with a plain blocking
 * librabbitmq connection and a passive declare; and the duplicate scenario,
 * which publishes saga commands itself through the project's mq client, to
 * grab.cmd with reply_to naming its own exclusive queue, and waits for the
 * participants' replies there. */
#ifndef CT_MQ_H
#define CT_MQ_H

#include <stddef.h>

#include "ct_conf.h"
#include "msg.h"
#include "status.h"

/* Ready messages in each queue; a queue that does not exist counts -1. */
int ct_mq_queue_depths(const ct_conf *conf, const char *const *queues, size_t n, long *depths,
                       cg_error *err) CG_MUSTCHECK;

typedef struct ct_mq_session ct_mq_session;

/* Connects (bounded by timeout_ms) and starts consuming a fresh exclusive
 * reply queue. */
int ct_mq_session_open(const ct_conf *conf, long long timeout_ms, ct_mq_session **out,
                       cg_error *err) CG_MUSTCHECK;
void ct_mq_session_close(ct_mq_session *s);

/* Publishes `copies` identical copies of a one-item command back to back
 * (persistent, confirmed, each with its own message id, correlation id =
 * the saga id), so that with copies > 1 they are in flight at once, and
 * waits up to timeout_ms for as many reply items naming that saga, however
 * the participant batched them into reply messages; they go to
 * replies[0..copies-1]. Replies about other sagas are dropped. */
int ct_mq_roundtrip(ct_mq_session *s, const msg_batch *cmd, int copies, msg_item *replies,
                    long long timeout_ms, cg_error *err) CG_MUSTCHECK;

#endif
