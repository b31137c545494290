/* ct_grab.h - what one grab asked, what the API answered, and whether the
 * answer tells the truth about the database (invariant I4).
 *
 * An answer is read strictly: a 200 must carry grab_status 0 or 1, a
 * well-formed saga id, the user and coupon asked for, the coupon's room,
 * and a fail_reason when grab_status is 0; a 202 a saga id and status
 * "pending". The one exception is the orchestrator's local sold-out flag,
 * which answers 200 out_of_stock with a null saga_id without starting a
 * saga (requests with an Idempotency-Key never take that path). Anything
 * else is counted as malformed and fails the scenario.
 * Answers that do not settle the outcome (202, transport errors) are
 * resolved after the system is quiet: the saga id of a lost request from
 * its Idempotency-Key (idem:<key> in Redis), then the saga's final state
 * from GET /api/grab/{saga_id}. */
#ifndef CT_GRAB_H
#define CT_GRAB_H

#include <stddef.h>

#include "ct_report.h"
#include "ct_snap.h"

enum ct_grab_kind {
    CT_GRAB_GRANTED = 0,      /* 200, grab_status 1 */
    CT_GRAB_REJECTED = 1,     /* 200, grab_status 0 */
    CT_GRAB_PENDING = 2,      /* 202 */
    CT_GRAB_TRANSPORT = 3,    /* no answer: connection failed, closed or timed out */
    CT_GRAB_HTTP_ERROR = 4,   /* 4xx or 5xx */
    CT_GRAB_MALFORMED = 5,    /* 200/202 that breaks the contract */
    CT_GRAB_KIND_MAX
};

typedef struct ct_grab {
    /* asked */
    long long user_id;
    long long coupon_id;
    long long room_id;        /* the coupon's room (expected in the answer) */
    char idem_key[80];
    /* answered */
    enum ct_grab_kind kind;
    int http_status;
    char saga_id[CT_SAGA_ID_LEN + 1];   /* "" when none is known */
    int no_saga;              /* a 200 out_of_stock from the local sold-out flag: no saga */
    char fail_reason[32];
    char problem[160];        /* why MALFORMED, or the transport error */
    long long latency_ms;
    /* resolved after quiet */
    int saga_from_idem;       /* saga_id came from the Idempotency-Key */
    int idem_orphan;          /* the key names a saga that was never logged (idem_saga) */
    char idem_saga[CT_SAGA_ID_LEN + 1];
    int read_status;          /* HTTP status of GET /api/grab/{id}; 0 when not read */
    char final_state[CT_SAGA_STATE_MAX];   /* the state that GET answered */
    /* the saga log as polled while waiting for quiet (I7: forward only) */
    char seen_state[CT_SAGA_STATE_MAX];
    size_t observations;
    int went_back;
    char back[80];            /* "RESERVED -> STARTED", when it went back */
} ct_grab;

const char *ct_grab_kind_name(enum ct_grab_kind k);

/* Classifies an answer (http_status 0: transport error, with problem). */
void ct_grab_parse(ct_grab *g, int http_status, const char *body, const char *problem);

/* Reads the saga state out of a GET /api/grab/{id} answer into state;
 * CG_ERR_PROTOCOL when the answer carries none. */
int ct_grab_parse_state(const char *body, char *state, size_t len) CG_MUSTCHECK;

/* The outcome the grab must have in the database, once resolved:
 * 1 granted (one row), 0 not granted (no row), -1 unknown (no saga id, or
 * a saga that did not end). */
int ct_grab_outcome(const ct_grab *g);

/* Figures over a set of grabs. */
typedef struct ct_grab_stats {
    size_t n;
    size_t kind[CT_GRAB_KIND_MAX];
    size_t granted_final;     /* outcome 1 after resolution */
    size_t rejected_final;    /* outcome 0 after resolution */
    size_t unresolved;        /* outcome -1 */
    size_t unknown_transport; /* transport errors with no saga id at all */
    size_t no_saga;           /* rejected by the sold-out flag, no saga started */
    char reasons[8][32];      /* fail_reason values seen ... */
    size_t reason_n[8];       /* ... and how often */
    size_t n_reasons;
    size_t reasons_other;
    long long p50_ms, p99_ms, max_ms;
} ct_grab_stats;

void ct_grab_stats_of(const ct_grab *g, size_t n, ct_grab_stats *out);
void ct_grab_print(ct_report *r, const ct_grab_stats *st, long long elapsed_ms);

/* I4: every grab whose outcome is known matches the rows of its coupon in
 * snap (granted: exactly one row, of that user; not granted: none); every
 * row of the grabs' coupons belongs to a known saga, except at most
 * `unknown_transport` rows for requests whose saga is unknown. Also that
 * GET /api/grab agrees with every definite answer. Counted lines. */
int ct_grab_check(ct_report *r, const ct_snapshot *snap, const ct_grab *g, size_t n);

#endif
