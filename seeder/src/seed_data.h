/* seed_data.h - the seed data set as pure functions of (seed, id).
 *
 * Every value the seeder writes is computed from the seed and the row's own
 * id, never from the row counts or from a running random state, so that a
 * re-run, a run with other --users/--coupons, or a test that recomputes a
 * value all see the same data for the same id. The design's shape:
 * users split 70% normal (level 0), 25% VIP (1), 5% SVIP (2), exactly so in
 * every block of SEED_LEVEL_BLOCK consecutive user ids; coupon c lives in
 * room (c-1)/5+1; rooms 1..hot_rooms are hot and their coupons get
 * 5,000-20,000 stock, the others 500-5,000. */
#ifndef SEED_DATA_H
#define SEED_DATA_H

#include <stdint.h>

#define SEED_DEFAULT_SEED 20261122LL
#define SEED_COUPONS_PER_ROOM 5

/* Levels are dealt in blocks of 20 user ids: 14 normal, 5 VIP, 1 SVIP,
 * shuffled per block by the seed. */
#define SEED_LEVEL_BLOCK 20
#define SEED_LEVEL_NORMAL_PER_BLOCK 14
#define SEED_LEVEL_VIP_PER_BLOCK 5
#define SEED_LEVEL_SVIP_PER_BLOCK 1

enum seed_level {
    SEED_LEVEL_NORMAL = 0,   /* 70% */
    SEED_LEVEL_VIP = 1,      /* 25% */
    SEED_LEVEL_SVIP = 2,     /* 5% */
    SEED_LEVEL_MAX
};

/* Stock ranges, inclusive. */
#define SEED_HOT_STOCK_MIN 5000
#define SEED_HOT_STOCK_MAX 20000
#define SEED_STOCK_MIN 500
#define SEED_STOCK_MAX 5000

/* What a coupon row holds; strings are not kept here (see seed_db.c). */
typedef struct seed_coupon {
    long long coupon_id;
    long long room_id;
    long long total_stock;
    int coupon_type;          /* 1 amount off, 2 percent off */
    int discount_cents;       /* amount off in cents, or percent * 100 */
    int min_order_cents;
} seed_coupon;

/* A 64-bit hash of (seed, stream, id) (splitmix64 finaliser); stream keeps
 * the draws of different columns independent. */
uint64_t seed_hash(long long seed, unsigned stream, long long id);

/* The level of user_id (>= 1). */
int seed_user_level(long long seed, long long user_id);

/* The room of coupon_id (>= 1): (c-1)/5+1. */
long long seed_coupon_room(long long coupon_id);

/* 1 when room_id is one of the hot rooms 1..hot_rooms. */
int seed_room_is_hot(long long room_id, long long hot_rooms);

/* Fills *out for coupon_id. */
void seed_coupon_make(long long seed, long long coupon_id, long long hot_rooms, seed_coupon *out);

#endif
