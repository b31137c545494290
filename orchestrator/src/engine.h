/* engine.h - the saga engine: starts sagas, sends their commands in
 * batches, matches replies, re-sends on timeouts, compensates, and resumes
 * sagas loaded from the log (docs/saga.md). Runs on the loop thread. */
#ifndef ORCH_ENGINE_H
#define ORCH_ENGINE_H

#include "orch.h"
#include "saga_log.h"

int engine_init(orch *o) CG_MUSTCHECK;
/* Frees every saga still in memory without touching the log (they stay in
 * the active set for the next run or for adoption) and the engine's buffers. */
void engine_destroy(orch *o);

/* Starts a saga with a fresh id: logs STARTED, then sends stock.reserve.
 * idem (NULL or "" for none) is the request's Idempotency-Key, bound to the
 * saga by the STARTED write itself; when the key already names another
 * logged saga, this one is dropped unlogged and its waiters follow that one
 * (http_saga_rebound). w (may be NULL) is attached to it. An error means
 * nothing was logged (the write was not accepted): the caller answers the
 * request itself. */
int engine_start(orch *o, const char *id, const char *idem, long long user_id,
                 long long coupon_id, long long room_id, waiter *w) CG_MUSTCHECK;

/* Takes over a saga loaded from the log (recovery, adoption, a reply for a
 * saga not in memory) and re-sends its current step. No-op when the saga is
 * already in memory or finished. */
void engine_resume(orch *o, const saga_record *rec);

/* Handles every step deadline that has passed. */
void engine_tick(orch *o, long long now_ms);

/* The reply queue's consumer (mq_delivery_cb). */
void engine_on_delivery(mq_client *c, mq_message *msg, void *arg);

void engine_attach_waiter(saga *s, waiter *w);

/* Sends every queued command now (also run once per loop iteration). */
void engine_flush(orch *o);

#endif
