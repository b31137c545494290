/* http_api.h - the HTTP front: routing, request checks, admission control,
 * the grab endpoint with its waiting requests, saga status reads, health.
 * Every request ends in exactly one reply, on every path (docs/saga.md). */
#ifndef ORCH_HTTP_API_H
#define ORCH_HTTP_API_H

#include "orch.h"

struct evbuffer;

/* Binds the listener and installs the handlers. */
int http_api_start(orch *o, cg_error *err) CG_MUSTCHECK;
/* Answers 202 to waiters whose deadline passed; polls the log for remote ones. */
void http_api_tick(orch *o, long long now_ms);
/* Answers every waiting request (202 with its saga id), for shutdown. */
void http_api_answer_all(orch *o);

/* Called by the engine: the saga's outcome is decided (COMPLETED,
 * COMPENSATING or COMPENSATED), answer its waiters. */
void http_saga_decided(orch *o, saga *s);
/* Called by the engine: the saga leaves memory undecided; its waiters go on
 * following it through the log until their deadline. */
void http_saga_detach(orch *o, saga *s);
/* Called by the engine: s was not logged because its Idempotency-Key names
 * the saga `bound`; its waiters follow that saga instead (as a repeated key
 * does: its outcome, 202 at the deadline, or 422 for another user/coupon). */
void http_saga_rebound(orch *o, saga *s, const char *bound);

#endif
