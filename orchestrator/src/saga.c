/* saga.c - saga states and transitions; see saga.h. */
#include "saga.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const char *const saga_state_names[SAGA_STATE_MAX] = {
    "STARTED", "RESERVED", "COMPLETED", "COMPENSATING", "COMPENSATED",
};

static const char *const saga_step_names[SAGA_STEP_MAX] = {
    "none", "log", "reserve", "create", "cancel", "release",
};

static const char *const saga_comp_names[SAGA_COMP_MAX] = {"none", "cancel", "release"};

const char *saga_state_name(enum saga_state s)
{
    return (s >= 0 && s < SAGA_STATE_MAX) ? saga_state_names[s] : "?";
}

int saga_state_parse(const char *name, enum saga_state *out)
{
    for (int i = 0; i < SAGA_STATE_MAX; i++) {
        if (name != NULL && strcmp(name, saga_state_names[i]) == 0) {
            *out = (enum saga_state)i;
            return CG_OK;
        }
    }
    return CG_ERR_INVALID;
}

const char *saga_step_name(enum saga_step s)
{
    return (s >= 0 && s < SAGA_STEP_MAX) ? saga_step_names[s] : "?";
}

const char *saga_comp_name(enum saga_comp c)
{
    return (c >= 0 && c < SAGA_COMP_MAX) ? saga_comp_names[c] : "?";
}

int saga_comp_parse(const char *name, enum saga_comp *out)
{
    for (int i = 0; i < SAGA_COMP_MAX; i++) {
        if (name != NULL && strcmp(name, saga_comp_names[i]) == 0) {
            *out = (enum saga_comp)i;
            return CG_OK;
        }
    }
    return CG_ERR_INVALID;
}

int saga_state_terminal(enum saga_state s)
{
    switch (s) {
    case SAGA_STARTED:
    case SAGA_RESERVED:
    case SAGA_COMPENSATING:
        return 0;
    case SAGA_COMPLETED:
    case SAGA_COMPENSATED:
        return 1;
    default:
        log_error("-", "saga state %d out of range", (int)s);
        abort();
    }
}

int saga_transition_ok(enum saga_state from, enum saga_state to)
{
    if (from < 0 || from >= SAGA_STATE_MAX || to < 0 || to >= SAGA_STATE_MAX)
        return 0;
    if (from == to)
        return 1;   /* a rewrite of the same state (retried write, new deadline) */
    switch (from) {
    case SAGA_STARTED:
        /* COMPENSATED directly: a definite rejection leaves nothing to undo */
        return to == SAGA_RESERVED || to == SAGA_COMPENSATING || to == SAGA_COMPENSATED;
    case SAGA_RESERVED:
        return to == SAGA_COMPLETED || to == SAGA_COMPENSATING;
    case SAGA_COMPENSATING:
        return to == SAGA_COMPENSATED;
    case SAGA_COMPLETED:
    case SAGA_COMPENSATED:
        return 0;
    default:
        abort();
    }
}

int saga_state_outcome(enum saga_state s)
{
    switch (s) {
    case SAGA_STARTED:
    case SAGA_RESERVED:
        return -1;
    case SAGA_COMPLETED:
        return 1;
    case SAGA_COMPENSATING:
    case SAGA_COMPENSATED:
        return 0;
    default:
        log_error("-", "saga state %d out of range", (int)s);
        abort();
    }
}

void saga_set_state(saga *s, enum saga_state to)
{
    assert(to >= 0 && to < SAGA_STATE_MAX);
    assert(saga_transition_ok(s->state, to));
    log_debug(s->id, "state %s -> %s", saga_state_name(s->state), saga_state_name(to));
    s->state = to;
}

void saga_set_step(saga *s, enum saga_step to)
{
    assert(to >= 0 && to < SAGA_STEP_MAX);
    if (s->step != to) {
        log_debug(s->id, "step %s -> %s", saga_step_name(s->step), saga_step_name(to));
        s->step = to;
        s->attempts = 0;
        s->free_resend = 0;
    }
}

enum msg_kind saga_step_command(enum saga_step step)
{
    switch (step) {
    case SAGA_STEP_NONE:
    case SAGA_STEP_LOG:
        return MSG_KIND_MAX;
    case SAGA_STEP_RESERVE:
        return MSG_STOCK_RESERVE;
    case SAGA_STEP_CREATE:
        return MSG_ORDER_CREATE;
    case SAGA_STEP_CANCEL:
        return MSG_ORDER_CANCEL;
    case SAGA_STEP_RELEASE:
        return MSG_STOCK_RELEASE;
    default:
        log_error("-", "saga step %d out of range", (int)step);
        abort();
    }
}
