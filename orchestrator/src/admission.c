/* admission.c - rate limit and coupon cache; see admission.h. */
#include "admission.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void token_bucket_init(token_bucket *tb, long long rate_per_s, long long burst, long long now_ms)
{
    tb->rate_per_ms = (double)rate_per_s / 1000.0;
    tb->burst = (double)(burst > 0 ? burst : rate_per_s);
    tb->tokens = tb->burst;
    tb->last_ms = now_ms;
}

int token_bucket_take(token_bucket *tb, long long now_ms)
{
    if (tb->rate_per_ms <= 0)
        return 1;
    if (now_ms > tb->last_ms) {
        tb->tokens += (double)(now_ms - tb->last_ms) * tb->rate_per_ms;
        if (tb->tokens > tb->burst)
            tb->tokens = tb->burst;
        tb->last_ms = now_ms;
    }
    if (tb->tokens < 1.0)
        return 0;
    tb->tokens -= 1.0;
    return 1;
}

static size_t coupon_slot(const coupon_cache *c, long long id)
{
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ULL;

    return (size_t)(h >> 17) & (c->n_buckets - 1);
}

int coupon_cache_init(coupon_cache *c, size_t max)
{
    size_t n = 64;

    memset(c, 0, sizeof(*c));
    while (n < max && n < ((size_t)1 << 24))
        n <<= 1;
    c->buckets = calloc(n, sizeof(*c->buckets));
    if (c->buckets == NULL)
        return CG_ERR_NOMEM;
    c->n_buckets = n;
    c->max = max;
    return CG_OK;
}

static void coupon_cache_clear(coupon_cache *c)
{
    for (size_t i = 0; i < c->n_buckets; i++) {
        coupon_entry *e = c->buckets[i], *next;

        for (; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
        c->buckets[i] = NULL;
    }
    c->count = 0;
}

void coupon_cache_destroy(coupon_cache *c)
{
    if (c->buckets != NULL)
        coupon_cache_clear(c);
    free(c->buckets);
    memset(c, 0, sizeof(*c));
}

coupon_entry *coupon_cache_find(const coupon_cache *c, long long coupon_id)
{
    coupon_entry *e = c->buckets[coupon_slot(c, coupon_id)];

    while (e != NULL && e->coupon_id != coupon_id)
        e = e->next;
    return e;
}

coupon_entry *coupon_cache_get(coupon_cache *c, long long coupon_id)
{
    coupon_entry *e = coupon_cache_find(c, coupon_id);
    size_t i;

    if (e != NULL)
        return e;
    if (c->count >= c->max)
        coupon_cache_clear(c);
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->coupon_id = coupon_id;
    i = coupon_slot(c, coupon_id);
    e->next = c->buckets[i];
    c->buckets[i] = e;
    c->count++;
    return e;
}

int coupon_cache_sold_out(const coupon_cache *c, long long coupon_id, long long now_ms)
{
    const coupon_entry *e = coupon_cache_find(c, coupon_id);

    return e != NULL && e->sold_out_until > now_ms;
}
