/* seed_data.c - the seed data set as pure functions; see seed_data.h. */
#include "seed_data.h"

/* Streams: one per kind of draw. */
enum seed_stream {
    SEED_STREAM_LEVEL_BLOCK = 1,
    SEED_STREAM_STOCK = 2,
    SEED_STREAM_COUPON_TYPE = 3,
    SEED_STREAM_DISCOUNT = 4,
    SEED_STREAM_MIN_ORDER = 5
};

static uint64_t seed_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t seed_hash(long long seed, unsigned stream, long long id)
{
    return seed_mix(seed_mix((uint64_t)seed ^ ((uint64_t)stream << 56)) ^ (uint64_t)id);
}

/* An integer in [lo, hi]; the modulo bias (< 2^-40 here) does not matter. */
static long long seed_range(uint64_t h, long long lo, long long hi)
{
    return lo + (long long)(h % (uint64_t)(hi - lo + 1));
}

int seed_user_level(long long seed, long long user_id)
{
    int deck[SEED_LEVEL_BLOCK];
    long long block = (user_id - 1) / SEED_LEVEL_BLOCK;
    int pos = (int)((user_id - 1) % SEED_LEVEL_BLOCK), i;
    uint64_t h = seed_hash(seed, SEED_STREAM_LEVEL_BLOCK, block);

    for (i = 0; i < SEED_LEVEL_BLOCK; i++) {
        if (i < SEED_LEVEL_NORMAL_PER_BLOCK)
            deck[i] = SEED_LEVEL_NORMAL;
        else if (i < SEED_LEVEL_NORMAL_PER_BLOCK + SEED_LEVEL_VIP_PER_BLOCK)
            deck[i] = SEED_LEVEL_VIP;
        else
            deck[i] = SEED_LEVEL_SVIP;
    }
    /* Fisher-Yates, drawing from the block's hash chain; stops at pos since
     * the cards after it do not change what lands there. */
    for (i = SEED_LEVEL_BLOCK - 1; i >= pos && i > 0; i--) {
        int j, t;

        h = seed_mix(h);
        j = (int)(h % (uint64_t)(i + 1));
        t = deck[i];
        deck[i] = deck[j];
        deck[j] = t;
    }
    return deck[pos];
}

long long seed_coupon_room(long long coupon_id)
{
    return (coupon_id - 1) / SEED_COUPONS_PER_ROOM + 1;
}

int seed_room_is_hot(long long room_id, long long hot_rooms)
{
    return room_id >= 1 && room_id <= hot_rooms;
}

void seed_coupon_make(long long seed, long long coupon_id, long long hot_rooms, seed_coupon *out)
{
    uint64_t h = seed_hash(seed, SEED_STREAM_STOCK, coupon_id);

    out->coupon_id = coupon_id;
    out->room_id = seed_coupon_room(coupon_id);
    if (seed_room_is_hot(out->room_id, hot_rooms))
        out->total_stock = seed_range(h, SEED_HOT_STOCK_MIN, SEED_HOT_STOCK_MAX);
    else
        out->total_stock = seed_range(h, SEED_STOCK_MIN, SEED_STOCK_MAX);
    out->coupon_type = (int)seed_range(seed_hash(seed, SEED_STREAM_COUPON_TYPE, coupon_id), 1, 2);
    h = seed_hash(seed, SEED_STREAM_DISCOUNT, coupon_id);
    if (out->coupon_type == 1)   /* 5.00 to 50.00 off, whole units */
        out->discount_cents = (int)seed_range(h, 5, 50) * 100;
    else                         /* 5% to 30% off */
        out->discount_cents = (int)seed_range(h, 5, 30) * 100;
    /* a minimum order of 0, 50, 100, ... 500 */
    out->min_order_cents =
        (int)seed_range(seed_hash(seed, SEED_STREAM_MIN_ORDER, coupon_id), 0, 10) * 5000;
}
