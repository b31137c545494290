/* recovery.h - the orchestrator's periodic duties around ownership of sagas
 * (docs/saga.md "Recovery"): the heartbeat orch:alive:<instance>; the startup
 * recovery that loads every saga of sagas:active:<instance> and resumes it
 * before /readyz turns 200 (and before the reply queue is consumed); the
 * sweep that adopts the sagas of instances whose heartbeat expired; and the
 * orphan sweep that takes back a saga of our own set that is not in memory
 * (a log write whose outcome was unknown). */
#ifndef ORCH_RECOVERY_H
#define ORCH_RECOVERY_H

#include "orch.h"

/* Called from the one timer. */
void recovery_tick(orch *o, long long now_ms);

/* On shutdown: drops the heartbeat so that other instances adopt what is
 * left at once; cb(arg) runs when Redis answered (or could not). */
int recovery_say_goodbye(orch *o, void (*cb)(void *arg), void *arg) CG_MUSTCHECK;

#endif
