/* stock_decide.h - what a batch of reserves or releases of one coupon does,
 * as pure functions of what Redis held when the batch was WATCHed.
 *
 * stock-svc reads a coupon's stock, the recorded outcome of each saga of the
 * batch (stock:{C}:sagas) and whether each user already holds the coupon,
 * then asks these functions what to answer and what to write inside MULTI/
 * EXEC. Keeping the rules here, free of I/O, lets unit tests pin them down
 * with fixed cases (stock-svc/tests/test_stock_decide.c).
 *
 * Recorded outcomes (docs/messages.md): "R" reserved, "J:<reason>" rejected,
 * "L" released (also the barrier left by a release that came first). */
#ifndef STOCK_DECIDE_H
#define STOCK_DECIDE_H

#include <stddef.h>

#include "status.h"

#define STOCK_DECIDE_MAX 512           /* items per batch these functions take */
#define STOCK_REASON_MAX 32            /* a reason's size, NUL included */
#define STOCK_RECORD_MAX (STOCK_REASON_MAX + 2)   /* "J:" + reason, NUL included */

/* What the sagas hash holds for one saga. */
enum stock_rec {
    STOCK_REC_NONE = 0,       /* nothing recorded: the saga is new to this coupon */
    STOCK_REC_RESERVED,       /* "R": one unit taken, the user is a holder */
    STOCK_REC_REJECTED,       /* "J:<reason>": answered rejected, nothing taken */
    STOCK_REC_RELEASED,       /* "L": given back, or barred before any reserve */
    STOCK_REC_MAX
};

typedef struct stock_outcome {
    int rec;                          /* enum stock_rec */
    char reason[STOCK_REASON_MAX];    /* STOCK_REC_REJECTED only */
} stock_outcome;

/* Parses a recorded value (len bytes, not NUL-terminated). CG_ERR_INVALID
 * for anything but "R", "L" and "J:" + 1..31 of [a-z0-9_]. */
int stock_outcome_parse(const char *s, size_t len, stock_outcome *out) CG_MUSTCHECK;
/* The value to record for o ("R", "L", "J:reason") into buf; CG_ERR_INVALID
 * for STOCK_REC_NONE or a reason that would not parse back. */
int stock_outcome_format(const stock_outcome *o, char *buf, size_t size) CG_MUSTCHECK;
/* The reply a reserve of that outcome gets: result "reserved" or "rejected"
 * and its reason ("released" for L); reason is "" when there is none. */
void stock_outcome_reply(const stock_outcome *o, const char **result, const char **reason);

/* ---- reserve ------------------------------------------------------------------ */

typedef struct stock_rsv_in {
    const char *saga_id;      /* NUL-terminated */
    long long user_id;
    stock_outcome recorded;   /* HMGET stock:{C}:sagas */
    int holds;                /* SMISMEMBER stock:{C}:holders: the user holds the coupon */
} stock_rsv_in;

typedef struct stock_rsv_out {
    stock_outcome outcome;    /* the answer */
    int record;               /* 1: a new decision, HSET it in the sagas hash */
    int take;                 /* 1: takes one unit (DECRBY) and adds the user to holders */
} stock_rsv_out;

/* Decides a batch of reserves, item by item in order:
 *   1. an outcome recorded for the saga is answered again (nothing written);
 *   2. a saga seen earlier in this batch gets that item's answer (nothing more);
 *   3. no stock key: rejected unknown_coupon, not recorded (the coupon may be
 *      loaded later);
 *   4. the user holds the coupon, or an earlier item of the batch took one
 *      for the same user: rejected duplicate;
 *   5. stock left (a negative stock counts as none): reserved, one unit taken;
 *   6. otherwise rejected out_of_stock.
 * *taken gets the number of units taken. CG_ERR_INVALID when n is above
 * STOCK_DECIDE_MAX. */
int stock_decide_reserve(long long stock, int stock_exists, const stock_rsv_in *in, size_t n,
                         stock_rsv_out *out, long long *taken) CG_MUSTCHECK;

/* ---- release ------------------------------------------------------------------ */

typedef struct stock_rel_in {
    const char *saga_id;
    long long user_id;
    stock_outcome recorded;
} stock_rel_in;

typedef struct stock_rel_out {
    int give_back;            /* 1: INCR stock, SREM the user from holders */
    int record;               /* 1: HSET the saga to "L" */
} stock_rel_out;

/* Decides a batch of releases (each is answered "released"): a reserved
 * saga gives its unit back and becomes L; an L or J saga changes nothing;
 * an unknown saga is recorded L, the barrier that rejects a late reserve.
 * A saga repeated in the batch acts once. *given gets the units given back.
 * CG_ERR_INVALID when n is above STOCK_DECIDE_MAX. */
int stock_decide_release(const stock_rel_in *in, size_t n, stock_rel_out *out,
                         long long *given) CG_MUSTCHECK;

#endif
