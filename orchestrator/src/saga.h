/* saga.h - one grab saga: its states, the steps it waits on, and the rules
 * for moving between states (docs/saga.md).
 *
 * The state is what the saga log in Redis says; it changes only after the
 * log write that records it is acknowledged (saga_set_state() is called
 * from that acknowledgement), so that memory never runs ahead of the log.
 * The step says what the saga waits for at the moment: a reply to a command
 * it sent, or its own log write. Everything here is pure: the engine
 * (engine.c) drives it. */
#ifndef ORCH_SAGA_H
#define ORCH_SAGA_H

#include <stddef.h>

#include "msg.h"

enum saga_state {
    SAGA_STARTED = 0,       /* logged; stock.reserve is being sent or awaited */
    SAGA_RESERVED = 1,      /* stock reserved; order.create is being sent or awaited */
    SAGA_COMPLETED = 2,     /* the order row exists: granted (terminal) */
    SAGA_COMPENSATING = 3,  /* undoing: order.cancel (when create may have run), then
                               stock.release; the outcome is already "not granted" */
    SAGA_COMPENSATED = 4,   /* nothing granted, nothing reserved (terminal) */
    SAGA_STATE_MAX
};

enum saga_step {
    SAGA_STEP_NONE = 0,     /* nothing under way (just created, or finished) */
    SAGA_STEP_LOG = 1,      /* a saga-log write is in flight (or waits to be retried) */
    SAGA_STEP_RESERVE = 2,  /* stock.reserve sent, waiting for stock.reply */
    SAGA_STEP_CREATE = 3,   /* order.create sent, waiting for order.reply */
    SAGA_STEP_CANCEL = 4,   /* order.cancel sent, waiting for `cancelled` */
    SAGA_STEP_RELEASE = 5,  /* stock.release sent, waiting for `released` */
    SAGA_STEP_MAX
};

/* What a compensation still has to do first. */
enum saga_comp {
    SAGA_COMP_NONE = 0,     /* not compensating */
    SAGA_COMP_CANCEL = 1,   /* order.create was (maybe) sent: cancel it, then release */
    SAGA_COMP_RELEASE = 2,  /* only the reservation (or its barrier) is left to release */
    SAGA_COMP_MAX
};

#define SAGA_REASON_MAX 32
#define SAGA_IDEM_MAX 64          /* Idempotency-Key length (REQ_IDEM_KEY_MAX) */
#define SAGA_HEAP_NONE ((size_t)-1)

struct waiter;
struct dref;

typedef struct saga {
    char id[MSG_SAGA_ID_LEN + 1];
    long long user_id, coupon_id, room_id;
    long long grab_time;          /* ms, fixed at start; routes order.create/cancel */
    long long created_ms;         /* wall clock at start */
    enum saga_state state;        /* as logged */
    enum saga_step step;
    enum saga_comp comp;
    char reason[SAGA_REASON_MAX]; /* fail_reason once compensating */
    int attempts;                 /* sends of the current step */
    int free_resend;              /* the next re-send does not count (publish was nacked) */
    /* the log write in flight (step == SAGA_STEP_LOG) */
    enum saga_state log_to;       /* the state being written */
    int log_new;                  /* it creates the saga (the STARTED write) */
    int log_inflight;             /* a write is out; 0 while waiting to retry */
    int log_failures;
    char idem[SAGA_IDEM_MAX + 1]; /* the STARTED write binds this Idempotency-Key ("" none) */
    long long deadline_ms;        /* when the step times out (monotonic ms) */
    size_t heap_idx;              /* position in the deadline heap, SAGA_HEAP_NONE outside */
    struct saga *hnext;           /* hash chain */
    struct waiter *waiters;       /* HTTP requests waiting for the outcome */
    struct dref *ack;             /* reply delivery to ack once the log write is done */
    int recovered;                /* loaded from the log (recovery or adoption) */
    void *ctx;                    /* the engine's context (struct orch) */
} saga;

const char *saga_state_name(enum saga_state s);
int saga_state_parse(const char *name, enum saga_state *out);
const char *saga_step_name(enum saga_step s);
const char *saga_comp_name(enum saga_comp c);
int saga_comp_parse(const char *name, enum saga_comp *out);

int saga_state_terminal(enum saga_state s);
/* 1 when the log may move from `from` to `to` (a same-state rewrite included). */
int saga_transition_ok(enum saga_state from, enum saga_state to);
/* The HTTP outcome of a state: 1 granted, 0 not granted, -1 not decided yet. */
int saga_state_outcome(enum saga_state s);

/* The one setter: asserts the transition and logs "from -> to" at debug. */
void saga_set_state(saga *s, enum saga_state to);
void saga_set_step(saga *s, enum saga_step to);

/* The command kind a step sends, MSG_KIND_MAX for none. */
enum msg_kind saga_step_command(enum saga_step step);

#endif
