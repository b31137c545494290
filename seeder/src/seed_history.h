/* seed_history.h - a large, deterministic history of past grabs in the shards.
 *
 * For the read-path measurements (issue 4): row i of n (0 <= i < n) is a pure
 * function of (seed, i) and the plan, so the same n and seed give the same
 * rows. Its saga_id is SEED_HISTORY_PREFIX followed by 8 hex digits of a seed
 * tag and 16 hex digits of a bijective 64-bit mix of i: unique per row, the
 * same on a re-run, and recognisable (live sagas are 128 random bits, so only
 * one in 2^32 starts with the prefix; delete history with
 * "saga_id LIKE '00000000%'"). Pairs (user, coupon) never repeat: half of
 * the rows (when they fit) take a hot-room coupon, and within the hot and the
 * other coupons row k of the group maps to pair (k*A + B) mod (users *
 * group coupons) with A coprime to that size, a permutation. grab_time is
 * spread over the history_days days before end_time (UTC midnight of the
 * run's day by default: a re-run on a later day places rows at other times,
 * which under range-day can land on another shard). Every row goes to the
 * shard sr_shard_of() names, in multi-row INSERT ... ON DUPLICATE KEY UPDATE
 * saga_id = saga_id, one thread and connection per shard. Redis is never
 * touched: history is not stock. */
#ifndef SEED_HISTORY_H
#define SEED_HISTORY_H

#include <stdint.h>

#include "sr_map.h"
#include "status.h"
#include "svc_conf.h"

#define SEED_HISTORY_PREFIX "00000000"
#define SEED_HISTORY_SAGA_LEN 32
#define SEED_HISTORY_HOT_PERCENT 50     /* share of rows on the hot rooms' coupons */

typedef struct seed_history_plan {
    long long seed;
    long long rows;        /* n */
    long long users;       /* user ids 1..users */
    long long coupons;     /* coupon ids 1..coupons */
    long long hot_rooms;   /* rooms 1..hot_rooms are hot */
    long long days;        /* grab_time within the days before end_time */
    int64_t end_time;      /* seconds since the epoch, UTC */
    int batch_rows;        /* rows per INSERT */
} seed_history_plan;

/* Derived once from a plan by seed_history_init. */
typedef struct seed_history_gen {
    seed_history_plan plan;
    long long n_hot;                  /* rows 0..n_hot-1 take a hot coupon */
    long long hot_coupons;            /* coupons 1..hot_coupons are in hot rooms */
    uint64_t size[2], mul[2], add[2]; /* per group (0 hot, 1 other): the permutation */
    uint64_t saga_key;
    char saga_tag[9];
} seed_history_gen;

typedef struct seed_history_row {
    long long user_id, coupon_id, room_id;
    int64_t grab_ms;                            /* epoch milliseconds */
    char saga_id[SEED_HISTORY_SAGA_LEN + 1];
} seed_history_row;

/* CG_ERR_INVALID when the rows do not fit users x coupons distinct pairs or
 * a setting is out of range. */
int seed_history_init(seed_history_gen *g, const seed_history_plan *p,
                      cg_error *err) CG_MUSTCHECK;

/* Row i (0 <= i < rows). */
void seed_history_make(const seed_history_gen *g, long long i, seed_history_row *out);

/* The UTC midnight at or before t. */
int64_t seed_history_day_start(int64_t t);

/* The outcome of a load. */
typedef struct seed_history_stats {
    long long rows[SR_MAX_SHARDS];       /* rows sent to each shard */
    long long inserted[SR_MAX_SHARDS];   /* of which new */
    long long total_rows, total_inserted;
    double seconds;
} seed_history_stats;

/* Loads every row onto its shard (shards from svc), one thread per shard,
 * a progress line on stderr about every second. */
int seed_history_load(const seed_history_gen *g, const svc_conf *svc, const sr_map *map,
                      seed_history_stats *st, cg_error *err) CG_MUSTCHECK;

#endif
