/* ct_snap.c - snapshot storage and lookups; see ct_snap.h. */
#include "ct_snap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Grows *arr (of elem bytes each) so that one more fits. */
static int ct_grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    void *p;
    size_t want;

    if (n < *cap)
        return CG_OK;
    want = *cap ? *cap * 2 : 16;
    p = realloc(*arr, want * elem);
    if (p == NULL)
        return CG_ERR_NOMEM;
    *arr = p;
    *cap = want;
    return CG_OK;
}

/* Capacities are not kept in the public structs: arrays grow by powers of
 * two from 16, so the capacity follows from the count. */
static size_t ct_cap_of(size_t n)
{
    size_t cap = 16;

    if (n == 0)
        return 0;
    while (cap < n)
        cap *= 2;
    return cap;
}

#define CT_APPEND(arr, n, value)                                                   \
    do {                                                                           \
        size_t cap_ = ct_cap_of(n);                                                \
        void *p_ = (arr);                                                          \
        if (ct_grow(&p_, &cap_, (n), sizeof(*(arr))) != CG_OK)                    \
            return CG_ERR_NOMEM;                                                   \
        (arr) = p_;                                                                \
        (arr)[(n)++] = (value);                                                    \
    } while (0)

void ct_snapshot_init(ct_snapshot *s)
{
    memset(s, 0, sizeof(*s));
}

static void ct_coupon_free(ct_coupon *c)
{
    free(c->holders);
    free(c->outcomes);
    free(c->rows);
    free(c->counts);
    free(c->sagas);
}

void ct_snapshot_free(ct_snapshot *s)
{
    for (size_t i = 0; i < s->n_coupons; i++)
        ct_coupon_free(&s->coupons[i]);
    free(s->coupons);
    free(s->stray_rows);
    free(s->stray_counts);
    free(s->stray_tallies);
    ct_snapshot_init(s);
}

ct_coupon *ct_snapshot_add_coupon(ct_snapshot *s, long long coupon_id)
{
    size_t cap = ct_cap_of(s->n_coupons);
    void *p = s->coupons;
    ct_coupon *c;

    if (ct_grow(&p, &cap, s->n_coupons, sizeof(ct_coupon)) != CG_OK)
        return NULL;
    s->coupons = p;
    c = &s->coupons[s->n_coupons++];
    memset(c, 0, sizeof(*c));
    c->coupon_id = coupon_id;
    return c;
}

ct_coupon *ct_snapshot_find(const ct_snapshot *s, long long coupon_id)
{
    for (size_t i = 0; i < s->n_coupons; i++) {
        if (s->coupons[i].coupon_id == coupon_id)
            return &s->coupons[i];
    }
    return NULL;
}

int ct_coupon_add_holder(ct_coupon *c, long long user_id)
{
    CT_APPEND(c->holders, c->n_holders, user_id);
    return CG_OK;
}

int ct_coupon_add_outcome(ct_coupon *c, const char *saga_id, const char *value)
{
    ct_outcome o;

    memset(&o, 0, sizeof(o));
    snprintf(o.saga_id, sizeof(o.saga_id), "%s", saga_id);
    snprintf(o.value, sizeof(o.value), "%s", value);
    CT_APPEND(c->outcomes, c->n_outcomes, o);
    return CG_OK;
}

int ct_coupon_add_row(ct_coupon *c, const ct_row *row)
{
    CT_APPEND(c->rows, c->n_rows, *row);
    return CG_OK;
}

int ct_coupon_add_saga(ct_coupon *c, const char *saga_id, const char *state, int found)
{
    ct_saga g;

    memset(&g, 0, sizeof(g));
    snprintf(g.saga_id, sizeof(g.saga_id), "%s", saga_id);
    snprintf(g.state, sizeof(g.state), "%s", state != NULL ? state : "");
    g.found = found;
    CT_APPEND(c->sagas, c->n_sagas, g);
    return CG_OK;
}

int ct_coupon_add_count(ct_coupon *c, const ct_count *count)
{
    CT_APPEND(c->counts, c->n_counts, *count);
    return CG_OK;
}

int ct_snapshot_add_stray(ct_snapshot *s, const ct_row *row)
{
    CT_APPEND(s->stray_rows, s->n_stray_rows, *row);
    return CG_OK;
}

int ct_snapshot_add_stray_count(ct_snapshot *s, const ct_count *count)
{
    CT_APPEND(s->stray_counts, s->n_stray_counts, *count);
    return CG_OK;
}

int ct_snapshot_add_stray_tally(ct_snapshot *s, const ct_count *tally)
{
    CT_APPEND(s->stray_tallies, s->n_stray_tallies, *tally);
    return CG_OK;
}

static int ct_cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;

    return (x > y) - (x < y);
}

/* Every element type starts with its saga id. */
static int ct_cmp_saga_id(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

void ct_coupon_sort(ct_coupon *c)
{
    if (c->n_holders > 1)
        qsort(c->holders, c->n_holders, sizeof(*c->holders), ct_cmp_ll);
    if (c->n_outcomes > 1)
        qsort(c->outcomes, c->n_outcomes, sizeof(*c->outcomes), ct_cmp_saga_id);
    if (c->n_rows > 1)
        qsort(c->rows, c->n_rows, sizeof(*c->rows), ct_cmp_saga_id);
    if (c->n_sagas > 1)
        qsort(c->sagas, c->n_sagas, sizeof(*c->sagas), ct_cmp_saga_id);
}

const ct_outcome *ct_coupon_outcome(const ct_coupon *c, const char *saga_id)
{
    if (c->n_outcomes == 0)
        return NULL;
    return bsearch(saga_id, c->outcomes, c->n_outcomes, sizeof(*c->outcomes), ct_cmp_saga_id);
}

const ct_saga *ct_coupon_saga(const ct_coupon *c, const char *saga_id)
{
    if (c->n_sagas == 0)
        return NULL;
    return bsearch(saga_id, c->sagas, c->n_sagas, sizeof(*c->sagas), ct_cmp_saga_id);
}

size_t ct_coupon_rows_of(const ct_coupon *c, const char *saga_id, const ct_row **first)
{
    const ct_row *hit;
    size_t lo, n = 0;

    if (first != NULL)
        *first = NULL;
    if (c->n_rows == 0)
        return 0;
    hit = bsearch(saga_id, c->rows, c->n_rows, sizeof(*c->rows), ct_cmp_saga_id);
    if (hit == NULL)
        return 0;
    /* Equal ids are adjacent after sorting: walk back to the first one. */
    lo = (size_t)(hit - c->rows);
    while (lo > 0 && strcmp(c->rows[lo - 1].saga_id, saga_id) == 0)
        lo--;
    if (first != NULL)
        *first = &c->rows[lo];
    while (lo + n < c->n_rows && strcmp(c->rows[lo + n].saga_id, saga_id) == 0)
        n++;
    return n;
}

int ct_coupon_has_holder(const ct_coupon *c, long long user_id)
{
    if (c->n_holders == 0)
        return 0;
    return bsearch(&user_id, c->holders, c->n_holders, sizeof(*c->holders), ct_cmp_ll) != NULL;
}

int ct_state_terminal(const char *state)
{
    return strcmp(state, CT_STATE_COMPLETED) == 0 || strcmp(state, CT_STATE_COMPENSATED) == 0;
}

/* The rank of a state on its way to the end; -1 for an unknown name. */
static int ct_state_rank(const char *s)
{
    if (strcmp(s, CT_STATE_STARTED) == 0)
        return 0;
    if (strcmp(s, CT_STATE_RESERVED) == 0)
        return 1;
    if (strcmp(s, CT_STATE_COMPENSATING) == 0)
        return 2;
    if (ct_state_terminal(s))
        return 3;
    return -1;
}

int ct_state_step_ok(const char *from, const char *to)
{
    int a = ct_state_rank(from), b = ct_state_rank(to);

    if (a < 0 || b < 0)
        return 0;
    if (a == 3)
        return strcmp(from, to) == 0;
    /* once compensating, the outcome is "not granted" for good */
    if (a == 2 && strcmp(to, CT_STATE_COMPLETED) == 0)
        return 0;
    return b >= a;
}
