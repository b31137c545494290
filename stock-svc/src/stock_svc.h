/* stock_svc.h - the stock service: consumes stock.cmd and owns coupon stock
 * in Redis (docs/messages.md).
 *
 * stock_svc_new() connects to the broker and, through Sentinel, to Redis,
 * and starts consuming; the caller runs the event loop. SIGTERM or SIGINT
 * starts a graceful stop (stop taking work, finish the transactions in
 * flight, publish their replies, hand every other delivery back), after
 * which the loop exits; then stock_svc_free() closes everything. */
#ifndef STOCK_SVC_H
#define STOCK_SVC_H

#include "status.h"
#include "stock_conf.h"

struct event_base;
typedef struct stock_svc stock_svc;

/* conf must outlive the service. On error *out stays NULL and err says why. */
int stock_svc_new(struct event_base *base, const stock_conf *conf, stock_svc **out,
                  cg_error *err) CG_MUSTCHECK;

/* Starts the graceful stop (what SIGTERM does). */
void stock_svc_stop(stock_svc *svc);

/* Closes the clients (unacked deliveries go back to the broker) and frees
 * everything; logs the final stats line. NULL is a no-op. */
void stock_svc_free(stock_svc *svc);

#endif
