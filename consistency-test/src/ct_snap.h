/* ct_snap.h - a snapshot of what the invariants are checked against.
 *
 * One ct_coupon per coupon: its Redis keys (stock, total, holders, the
 * per-saga outcomes stock-svc recorded, room), its order rows gathered from
 * every shard, and the saga-log state of every saga that either mentions.
 * The checker (ct_check.h) only reads a snapshot, so unit tests can hand it
 * deliberately broken ones; ct_collect.h fills one from the live system. */
#ifndef CT_SNAP_H
#define CT_SNAP_H

#include <stddef.h>

#include "sr_map.h"
#include "status.h"

#define CT_SAGA_ID_LEN 32
#define CT_SAGA_STATE_MAX 32
#define CT_OUTCOME_MAX 48

/* Terminal saga states (docs/design.md I5): a saga ends in one of these. */
#define CT_STATE_COMPLETED "COMPLETED"
#define CT_STATE_COMPENSATED "COMPENSATED"
/* The states on the way (the orchestrator's saga log). */
#define CT_STATE_STARTED "STARTED"
#define CT_STATE_RESERVED "RESERVED"
#define CT_STATE_COMPENSATING "COMPENSATING"

/* Presence of a Redis value. */
enum ct_value_state {
    CT_VALUE_MISSING = 0,   /* the key does not exist */
    CT_VALUE_OK = 1,        /* an integer */
    CT_VALUE_BAD = 2        /* exists but is not an integer */
};

/* One coupon_results row. */
typedef struct ct_row {
    char saga_id[CT_SAGA_ID_LEN + 1];
    long long result_id;
    long long user_id;
    long long coupon_id;
    long long room_id;
    int grab_status;
    long long grab_time_ms;  /* UTC milliseconds since the epoch */
    int shard;               /* the shard it was read from */
} ct_row;

/* One (shard, room, coupon) count: an order_counts row as read, or the
 * shard's own COUNT(*) of its coupon_results rows (ct_snapshot.stray_tallies). */
typedef struct ct_count {
    long long room_id;
    long long coupon_id;
    long long orders;
    int shard;               /* the shard it was read from */
} ct_count;

/* One field of stock:{C}:sagas: "R", "J:<reason>" or "L". */
typedef struct ct_outcome {
    char saga_id[CT_SAGA_ID_LEN + 1];
    char value[CT_OUTCOME_MAX];
} ct_outcome;

/* A saga's state in the saga log; found = 0 when saga:<id> does not exist. */
typedef struct ct_saga {
    char saga_id[CT_SAGA_ID_LEN + 1];
    char state[CT_SAGA_STATE_MAX];
    int found;
} ct_saga;

typedef struct ct_coupon {
    long long coupon_id;
    enum ct_value_state stock_state, total_state, room_state;
    long long stock, total, room;
    long long *holders;          /* sorted; non-integer members are counted in bad_holders */
    size_t n_holders;
    size_t bad_holders;
    ct_outcome *outcomes;        /* sorted by saga id */
    size_t n_outcomes;
    ct_row *rows;                /* every shard's rows of this coupon, sorted by saga id */
    size_t n_rows;
    ct_count *counts;            /* every shard's order_counts rows of this coupon, each
                                    shard's read in one transaction with its rows */
    size_t n_counts;
    ct_saga *sagas;              /* sorted by saga id */
    size_t n_sagas;
} ct_coupon;

typedef struct ct_snapshot {
    ct_coupon *coupons;
    size_t n_coupons;
    long long active_sagas;      /* entries over every sagas:active:* set (of the
                                    snapshot's coupons, unless full) */
    char active_sample[CT_SAGA_ID_LEN + 64];   /* one of them, for the message */
    ct_row *stray_rows;          /* rows of coupons not in the snapshot (full checks only) */
    size_t n_stray_rows;
    /* Full checks only, for coupons not in the snapshot, each shard's read in
     * one transaction: its order_counts rows, and its rows counted per room. */
    ct_count *stray_counts;
    size_t n_stray_counts;
    ct_count *stray_tallies;
    size_t n_stray_tallies;
    int full;                    /* every coupon in the `coupons` set was read */
    sr_map map;                  /* where rows belong */
} ct_snapshot;

void ct_snapshot_init(ct_snapshot *s);
void ct_snapshot_free(ct_snapshot *s);

/* Appends a zeroed coupon; NULL when out of memory. */
ct_coupon *ct_snapshot_add_coupon(ct_snapshot *s, long long coupon_id);
ct_coupon *ct_snapshot_find(const ct_snapshot *s, long long coupon_id);

int ct_coupon_add_holder(ct_coupon *c, long long user_id) CG_MUSTCHECK;
int ct_coupon_add_outcome(ct_coupon *c, const char *saga_id, const char *value) CG_MUSTCHECK;
int ct_coupon_add_row(ct_coupon *c, const ct_row *row) CG_MUSTCHECK;
int ct_coupon_add_saga(ct_coupon *c, const char *saga_id, const char *state, int found) CG_MUSTCHECK;
int ct_coupon_add_count(ct_coupon *c, const ct_count *count) CG_MUSTCHECK;
int ct_snapshot_add_stray(ct_snapshot *s, const ct_row *row) CG_MUSTCHECK;
int ct_snapshot_add_stray_count(ct_snapshot *s, const ct_count *count) CG_MUSTCHECK;
int ct_snapshot_add_stray_tally(ct_snapshot *s, const ct_count *tally) CG_MUSTCHECK;

/* Sorts the arrays so that the lookups below work; call after adding. */
void ct_coupon_sort(ct_coupon *c);

const ct_outcome *ct_coupon_outcome(const ct_coupon *c, const char *saga_id);
const ct_saga *ct_coupon_saga(const ct_coupon *c, const char *saga_id);
/* The number of rows with that saga id (0, 1, or more when broken);
 * *first (may be NULL) gets the first. */
size_t ct_coupon_rows_of(const ct_coupon *c, const char *saga_id, const ct_row **first);
int ct_coupon_has_holder(const ct_coupon *c, long long user_id);

int ct_state_terminal(const char *state);

/* 1 when a saga seen in state `from` may later be seen in state `to` (I7:
 * states only move forward; polls may skip states in between):
 * STARTED -> RESERVED -> COMPLETED, STARTED|RESERVED -> COMPENSATING ->
 * COMPENSATED, STARTED -> COMPENSATED; a terminal state never changes. A
 * state name outside these is never ok. */
int ct_state_step_ok(const char *from, const char *to);

#endif
