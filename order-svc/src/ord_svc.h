/* ord_svc.h - order-svc on its event loop: commands in, replies out.
 *
 * Consumes order.cmd, decodes each delivery into items routed by the shard
 * map, hands them to the shard workers (ord_shard.h) within the configured
 * bounds, and answers each reply_to with order.reply batches. A delivery is
 * acked only once every one of its items is decided and the replies carrying
 * them are confirmed by the broker; a message that cannot be decoded goes to
 * grab.dead with the reason, and is acked once that publish is confirmed. */
#ifndef ORD_SVC_H
#define ORD_SVC_H

#include "ord_conf.h"
#include "status.h"

struct event_base;
typedef struct ord_svc ord_svc;

/* Builds the shard map, starts the shard workers and the broker client (which
 * connects in the background); logs " ready" once consuming. The config must
 * outlive the service. NULL on failure with err set. */
ord_svc *ord_svc_new(struct event_base *base, const ord_conf *conf, cg_error *err);

/* Starts the graceful stop: no new commands, in-flight transactions finish,
 * their replies are confirmed and their deliveries acked; then the loop is
 * broken, at the latest after shutdown_timeout_ms. */
void ord_svc_stop(ord_svc *svc);

/* 1 when the stop finished everything in time, 0 when the timeout cut it. */
int ord_svc_stopped_cleanly(const ord_svc *svc);

/* Frees everything (the loop must not be running). Deliveries not acked go
 * back to the queue when the broker connection closes. */
void ord_svc_free(ord_svc *svc);

#endif
