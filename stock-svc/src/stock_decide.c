/* stock_decide.c - reserve and release decisions of one coupon's batch; see
 * stock_decide.h. No I/O, no allocation: the batch's saga ids and users are
 * looked up in small open-addressing tables on the stack, so that a batch of
 * 512 costs 512 lookups rather than 512 * 512 comparisons. */
#include "stock_decide.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "msg.h"

#define STOCK_SLOTS (2 * STOCK_DECIDE_MAX)   /* power of two, at most half full */

/* An open-addressing table of item indexes (+1, 0 = empty). */
typedef struct stock_seen {
    uint16_t slot[STOCK_SLOTS];
} stock_seen;

static uint32_t stock_hash_str(const char *s)
{
    uint32_t h = 2166136261u;   /* FNV-1a */

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static uint32_t stock_hash_ll(long long v)
{
    uint64_t x = (uint64_t)v;   /* splitmix64's finaliser */

    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return (uint32_t)x;
}

/* The first earlier item whose saga id equals ids[i], or -1 (then i is
 * recorded as the first of its saga). */
static int stock_seen_saga(stock_seen *t, const char *const *ids, size_t i)
{
    uint32_t s = stock_hash_str(ids[i]) & (STOCK_SLOTS - 1);

    while (t->slot[s] != 0) {
        size_t j = t->slot[s] - 1u;

        if (strcmp(ids[j], ids[i]) == 0)
            return (int)j;
        s = (s + 1) & (STOCK_SLOTS - 1);
    }
    t->slot[s] = (uint16_t)(i + 1);
    return -1;
}

/* 1 when user is in the table of users (values in users[]). */
static int stock_seen_user(const stock_seen *t, const long long *users, long long user)
{
    uint32_t s = stock_hash_ll(user) & (STOCK_SLOTS - 1);

    while (t->slot[s] != 0) {
        if (users[t->slot[s] - 1u] == user)
            return 1;
        s = (s + 1) & (STOCK_SLOTS - 1);
    }
    return 0;
}

static void stock_add_user(stock_seen *t, long long *users, size_t *n, long long user)
{
    uint32_t s = stock_hash_ll(user) & (STOCK_SLOTS - 1);

    while (t->slot[s] != 0)
        s = (s + 1) & (STOCK_SLOTS - 1);
    users[*n] = user;
    t->slot[s] = (uint16_t)(++*n);
}

static int stock_reason_valid(const char *r, size_t len)
{
    if (len == 0 || len >= STOCK_REASON_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = r[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
            return 0;
    }
    return 1;
}

int stock_outcome_parse(const char *s, size_t len, stock_outcome *out)
{
    memset(out, 0, sizeof(*out));
    if (len == 1 && s[0] == 'R') {
        out->rec = STOCK_REC_RESERVED;
    } else if (len == 1 && s[0] == 'L') {
        out->rec = STOCK_REC_RELEASED;
    } else if (len > 2 && s[0] == 'J' && s[1] == ':' && stock_reason_valid(s + 2, len - 2)) {
        out->rec = STOCK_REC_REJECTED;
        memcpy(out->reason, s + 2, len - 2);
        out->reason[len - 2] = '\0';
    } else {
        return CG_ERR_INVALID;
    }
    return CG_OK;
}

int stock_outcome_format(const stock_outcome *o, char *buf, size_t size)
{
    int n;

    switch (o->rec) {
    case STOCK_REC_RESERVED:
        n = snprintf(buf, size, "R");
        break;
    case STOCK_REC_RELEASED:
        n = snprintf(buf, size, "L");
        break;
    case STOCK_REC_REJECTED:
        if (!stock_reason_valid(o->reason, strnlen(o->reason, sizeof(o->reason))))
            return CG_ERR_INVALID;
        n = snprintf(buf, size, "J:%s", o->reason);
        break;
    default:
        return CG_ERR_INVALID;
    }
    return n > 0 && (size_t)n < size ? CG_OK : CG_ERR_INVALID;
}

void stock_outcome_reply(const stock_outcome *o, const char **result, const char **reason)
{
    *reason = "";
    switch (o->rec) {
    case STOCK_REC_RESERVED:
        *result = MSG_RESULT_RESERVED;
        break;
    case STOCK_REC_RELEASED:
        *result = MSG_RESULT_REJECTED;
        *reason = MSG_REASON_RELEASED;
        break;
    default:
        *result = MSG_RESULT_REJECTED;
        *reason = o->reason;
        break;
    }
}

static void stock_set_rejected(stock_outcome *o, const char *reason)
{
    o->rec = STOCK_REC_REJECTED;
    snprintf(o->reason, sizeof(o->reason), "%s", reason);
}

int stock_decide_reserve(long long stock, int stock_exists, const stock_rsv_in *in, size_t n,
                         stock_rsv_out *out, long long *taken)
{
    stock_seen sagas, takers;
    const char *ids[STOCK_DECIDE_MAX];
    long long users[STOCK_DECIDE_MAX];
    size_t n_users = 0;
    long long left = stock > 0 ? stock : 0;

    *taken = 0;
    if (n > STOCK_DECIDE_MAX)
        return CG_ERR_INVALID;
    memset(&sagas, 0, sizeof(sagas));
    memset(&takers, 0, sizeof(takers));
    for (size_t i = 0; i < n; i++) {
        stock_rsv_out *o = &out[i];
        int first;

        ids[i] = in[i].saga_id;
        first = stock_seen_saga(&sagas, ids, i);

        memset(o, 0, sizeof(*o));
        if (in[i].recorded.rec != STOCK_REC_NONE) {
            o->outcome = in[i].recorded;
        } else if (first >= 0) {
            o->outcome = out[first].outcome;
        } else if (!stock_exists) {
            stock_set_rejected(&o->outcome, MSG_REASON_UNKNOWN_COUPON);
        } else if (in[i].holds || stock_seen_user(&takers, users, in[i].user_id)) {
            stock_set_rejected(&o->outcome, MSG_REASON_DUPLICATE);
            o->record = 1;
        } else if (left > 0) {
            o->outcome.rec = STOCK_REC_RESERVED;
            o->record = o->take = 1;
            left--;
            (*taken)++;
            stock_add_user(&takers, users, &n_users, in[i].user_id);
        } else {
            stock_set_rejected(&o->outcome, MSG_REASON_OUT_OF_STOCK);
            o->record = 1;
        }
    }
    return CG_OK;
}

int stock_decide_release(const stock_rel_in *in, size_t n, stock_rel_out *out, long long *given)
{
    stock_seen sagas;
    const char *ids[STOCK_DECIDE_MAX];

    *given = 0;
    if (n > STOCK_DECIDE_MAX)
        return CG_ERR_INVALID;
    memset(&sagas, 0, sizeof(sagas));
    for (size_t i = 0; i < n; i++) {
        stock_rel_out *o = &out[i];
        int first;

        ids[i] = in[i].saga_id;
        first = stock_seen_saga(&sagas, ids, i);

        memset(o, 0, sizeof(*o));
        if (first >= 0)
            continue;   /* the first of its saga in the batch acted for it */
        switch (in[i].recorded.rec) {
        case STOCK_REC_RESERVED:
            o->give_back = o->record = 1;
            (*given)++;
            break;
        case STOCK_REC_NONE:
            o->record = 1;   /* the barrier */
            break;
        case STOCK_REC_REJECTED:
        case STOCK_REC_RELEASED:
            break;
        default:
            return CG_ERR_INVALID;
        }
    }
    return CG_OK;
}
