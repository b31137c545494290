/* admission.h - cheap decisions made before a saga starts: a token-bucket
 * rate limit (429), and a per-coupon cache of what never changes (the
 * coupon's room) and of what may be stale for a moment on purpose (the local
 * sold-out flag, set when a reserve comes back out_of_stock: further grabs
 * of that coupon are answered out_of_stock at once until it expires, which
 * sheds the load of a sold-out flash sale; docs/saga.md). Pure, unit-tested. */
#ifndef ORCH_ADMISSION_H
#define ORCH_ADMISSION_H

#include <stddef.h>

#include "status.h"

typedef struct token_bucket {
    double rate_per_ms;     /* 0: unlimited */
    double burst;
    double tokens;
    long long last_ms;
} token_bucket;

void token_bucket_init(token_bucket *tb, long long rate_per_s, long long burst, long long now_ms);
/* Takes one token: 1 when allowed, 0 when the request should get 429. */
int token_bucket_take(token_bucket *tb, long long now_ms);

typedef struct coupon_entry {
    long long coupon_id;
    long long room_id;          /* 0: unknown (not cached) */
    long long sold_out_until;   /* monotonic ms; 0: not flagged */
    struct coupon_entry *next;
} coupon_entry;

typedef struct coupon_cache {
    coupon_entry **buckets;
    size_t n_buckets, count, max;
} coupon_cache;

int coupon_cache_init(coupon_cache *c, size_t max) CG_MUSTCHECK;
void coupon_cache_destroy(coupon_cache *c);
/* The entry of a coupon, NULL when not cached. */
coupon_entry *coupon_cache_find(const coupon_cache *c, long long coupon_id);
/* The entry, created when missing; when the cache is full it is emptied
 * first (simple, and rare: there are far fewer coupons than the bound).
 * NULL only when out of memory. */
coupon_entry *coupon_cache_get(coupon_cache *c, long long coupon_id);
/* 1 when the coupon is flagged sold out at now_ms. */
int coupon_cache_sold_out(const coupon_cache *c, long long coupon_id, long long now_ms);

#endif
