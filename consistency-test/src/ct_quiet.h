/* ct_quiet.h - waiting, bounded, until the system is quiet.
 *
 * Quiet means: no saga in any sagas:active:* set, every saga the scenario
 * knows of in a terminal state in the saga log, and nothing waiting in the
 * command queues; seen on two polls in a row, so that a state read between
 * two steps of a saga does not count. Then, once, nothing ready or
 * unacknowledged in the command and reply queues (`scripts/stack queues`):
 * a consumer that holds a message is not at rest, and a message it holds
 * would be delivered again, maybe much later. The invariants are checked only
 * after this, never waited for: a violation must not be waited away. */
#ifndef CT_QUIET_H
#define CT_QUIET_H

#include <stddef.h>

#include "ct_run.h"
#include "status.h"

typedef struct ct_quiet_status {
    long long active;          /* sagas in sagas:active:* */
    size_t not_finished;       /* known sagas not COMPLETED/COMPENSATED */
    char sample[128];          /* one of those, with its state */
    long depth_stock;          /* ready messages in stock.cmd */
    long depth_order;          /* ready messages in order.cmd */
    char held[160];            /* queues with unacknowledged messages, at the last look */
    long long waited_ms;
} ct_quiet_status;

/* Records what the command and reply queues hold now, as the level later
 * waits compare against: a scenario is judged on what it left held, not
 * on what an earlier one did (which already failed that one). */
int ct_quiet_baseline(ct_env *env, cg_error *err) CG_MUSTCHECK;

/* Called for every saga state a poll reads: the index into ids, the state
 * ("" when none) and whether the saga log exists; for I7 (forward only). */
typedef void (*ct_state_obs)(size_t i, const char *state, int found, void *arg);

/* CG_OK once quiet, CG_ERR_TIMEOUT after timeout_ms (st says what was still
 * busy), or a connection error that lasted until the deadline. obs may be
 * NULL. */
int ct_wait_quiet(ct_env *env, const char *const *ids, size_t n, long long timeout_ms,
                  ct_quiet_status *st, ct_state_obs obs, void *obs_arg, cg_error *err) CG_MUSTCHECK;

#endif
