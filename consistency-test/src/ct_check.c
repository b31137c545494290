/* ct_check.c - invariant checks over a snapshot; see ct_check.h.
 *
 * Each check walks every coupon, counts what it looked at and keeps the
 * first offenders; then one line says PASS or FAIL with the figures. */
#include "ct_check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first offenders of one check, printed under its line. */
typedef struct ct_offenders {
    char line[CT_DETAIL_MAX][240];
    size_t shown;
    size_t total;
} ct_offenders;

static void ct_offend(ct_offenders *o, const char *fmt, ...) CG_PRINTF(2, 3);
static void ct_offend(ct_offenders *o, const char *fmt, ...)
{
    va_list ap;

    o->total++;
    if (o->shown >= CT_DETAIL_MAX)
        return;
    va_start(ap, fmt);
    vsnprintf(o->line[o->shown++], sizeof(o->line[0]), fmt, ap);
    va_end(ap);
}

static int ct_finish(ct_report *r, const ct_offenders *o, const char *what)
{
    int ok = o->total == 0;

    ct_assert(r, ok, "%s", what);
    for (size_t i = 0; i < o->shown; i++)
        ct_detail(r, "%s", o->line[i]);
    if (o->total > o->shown)
        ct_detail(r, "... and %zu more", o->total - o->shown);
    return ok;
}

void ct_coupon_count(const ct_coupon *c, ct_coupon_counts *out)
{
    memset(out, 0, sizeof(*out));
    out->rows = c->n_rows;
    for (size_t i = 0; i < c->n_outcomes; i++) {
        const char *v = c->outcomes[i].value;

        if (strcmp(v, "R") == 0) {
            out->reserved++;
            if (ct_coupon_rows_of(c, c->outcomes[i].saga_id, NULL) == 0)
                out->reserved_no_row++;
        } else if (strncmp(v, "J:", 2) == 0) {
            out->rejected++;
        } else if (strcmp(v, "L") == 0) {
            out->released++;
        }
    }
}

static const char *ct_value_name(enum ct_value_state v)
{
    return v == CT_VALUE_MISSING ? "missing" : v == CT_VALUE_BAD ? "not an integer" : "ok";
}

/* I1: granted rows per coupon <= its total stock; no row for a coupon
 * without stock (full checks). */
static int ct_check_oversell(const ct_snapshot *s, ct_report *r)
{
    ct_offenders o = {0};
    size_t rows = 0;
    long long total = 0;
    char what[256];

    for (size_t i = 0; i < s->n_coupons; i++) {
        const ct_coupon *c = &s->coupons[i];

        rows += c->n_rows;
        if (c->total_state != CT_VALUE_OK) {
            ct_offend(&o, "coupon %lld: stock:{%lld}:total %s", c->coupon_id, c->coupon_id,
                      ct_value_name(c->total_state));
            continue;
        }
        total += c->total;
        if ((long long)c->n_rows > c->total)
            ct_offend(&o, "coupon %lld: %zu granted rows > total stock %lld", c->coupon_id,
                      c->n_rows, c->total);
    }
    for (size_t i = 0; i < s->n_stray_rows; i++) {
        const ct_row *w = &s->stray_rows[i];

        ct_offend(&o, "row of saga %s on shard %d: coupon %lld has no stock loaded", w->saga_id,
                  w->shard, w->coupon_id);
    }
    snprintf(what, sizeof(what), "I1 no oversell: %zu coupons, %zu granted rows, total stock %lld%s",
             s->n_coupons, rows, total, s->full ? ", no rows of unknown coupons" : "");
    return ct_finish(r, &o, what);
}

/* I2 (Redis alone, true at any instant): total = stock + |holders|, and
 * every holder has exactly one "R" reservation. */
static int ct_check_conservation(const ct_snapshot *s, ct_report *r)
{
    ct_offenders o = {0};
    long long stock = 0, holders = 0, reserved = 0;
    char what[256];

    for (size_t i = 0; i < s->n_coupons; i++) {
        const ct_coupon *c = &s->coupons[i];
        ct_coupon_counts k;
        long long h = (long long)(c->n_holders + c->bad_holders);

        ct_coupon_count(c, &k);
        holders += h;
        reserved += (long long)k.reserved;
        if (c->stock_state != CT_VALUE_OK || c->total_state != CT_VALUE_OK) {
            ct_offend(&o, "coupon %lld: stock %s, total %s", c->coupon_id,
                      ct_value_name(c->stock_state), ct_value_name(c->total_state));
            continue;
        }
        stock += c->stock;
        if (c->total != c->stock + h)
            ct_offend(&o, "coupon %lld: total %lld != stock %lld + holders %lld", c->coupon_id,
                      c->total, c->stock, h);
        if ((long long)k.reserved != h)
            ct_offend(&o, "coupon %lld: %zu reservations (R) != %lld holders", c->coupon_id,
                      k.reserved, h);
        if (c->bad_holders > 0)
            ct_offend(&o, "coupon %lld: %zu holders are not user ids", c->coupon_id, c->bad_holders);
    }
    snprintf(what, sizeof(what),
             "I2 conservation: total = stock %lld + holders %lld, reservations %lld = holders",
             stock, holders, reserved);
    return ct_finish(r, &o, what);
}

/* I2 (quiet): every row has its reservation, and no reservation is left
 * without a row, so |holders| = granted rows. */
static int ct_check_no_inflight(const ct_snapshot *s, ct_report *r)
{
    ct_offenders o = {0};
    size_t rows = 0, orphans = 0, holders = 0;
    char what[256];

    for (size_t i = 0; i < s->n_coupons; i++) {
        const ct_coupon *c = &s->coupons[i];

        rows += c->n_rows;
        holders += c->n_holders + c->bad_holders;
        for (size_t k = 0; k < c->n_rows; k++) {
            const ct_outcome *oc = ct_coupon_outcome(c, c->rows[k].saga_id);

            if (oc == NULL || strcmp(oc->value, "R") != 0)
                ct_offend(&o, "coupon %lld: row of saga %s (user %lld) has no reservation "
                          "(stock outcome %s)", c->coupon_id, c->rows[k].saga_id,
                          c->rows[k].user_id, oc != NULL ? oc->value : "none");
        }
        for (size_t k = 0; k < c->n_outcomes; k++) {
            if (strcmp(c->outcomes[k].value, "R") == 0 &&
                ct_coupon_rows_of(c, c->outcomes[k].saga_id, NULL) == 0) {
                orphans++;
                ct_offend(&o, "coupon %lld: saga %s holds a reservation but has no row",
                          c->coupon_id, c->outcomes[k].saga_id);
            }
        }
        if (c->n_holders + c->bad_holders != c->n_rows)
            ct_offend(&o, "coupon %lld: %zu holders != %zu granted rows", c->coupon_id,
                      c->n_holders + c->bad_holders, c->n_rows);
    }
    snprintf(what, sizeof(what), "I2 quiet: holders %zu = granted rows %zu, %zu reservations "
             "without a row", holders, rows, orphans);
    return ct_finish(r, &o, what);
}

static int ct_cmp_user_saga(const void *a, const void *b)
{
    const ct_row *x = *(const ct_row *const *)a, *y = *(const ct_row *const *)b;

    if (x->user_id != y->user_id)
        return (x->user_id > y->user_id) - (x->user_id < y->user_id);
    return strcmp(x->saga_id, y->saga_id);
}

static int ct_cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;

    return (x > y) - (x < y);
}

/* Every holder has a row (the users of the rows, sorted, searched). */
static void ct_check_holders_have_rows(const ct_coupon *c, ct_offenders *o)
{
    long long *users = NULL;

    if (c->n_holders == 0)
        return;
    if (c->n_rows > 0) {
        users = malloc(c->n_rows * sizeof(*users));
        if (users == NULL) {
            ct_offend(o, "coupon %lld: out of memory", c->coupon_id);
            return;
        }
        for (size_t k = 0; k < c->n_rows; k++)
            users[k] = c->rows[k].user_id;
        qsort(users, c->n_rows, sizeof(*users), ct_cmp_ll);
    }
    for (size_t k = 0; k < c->n_holders; k++) {
        if (users == NULL || bsearch(&c->holders[k], users, c->n_rows, sizeof(*users), ct_cmp_ll) == NULL)
            ct_offend(o, "coupon %lld: holder %lld has no row", c->coupon_id, c->holders[k]);
    }
    free(users);
}

/* I3: at most one row per (user, coupon) and per saga id over all shards;
 * when quiet, the holders are exactly the users of the rows. */
static int ct_check_one_per_user(const ct_snapshot *s, int quiet, ct_report *r)
{
    ct_offenders o = {0};
    size_t rows = 0;
    char what[256];

    for (size_t i = 0; i < s->n_coupons; i++) {
        const ct_coupon *c = &s->coupons[i];
        const ct_row **by_user = NULL;

        rows += c->n_rows;
        for (size_t k = 1; k < c->n_rows; k++) {
            if (strcmp(c->rows[k].saga_id, c->rows[k - 1].saga_id) == 0)
                ct_offend(&o, "coupon %lld: saga %s has rows on shards %d and %d", c->coupon_id,
                          c->rows[k].saga_id, c->rows[k - 1].shard, c->rows[k].shard);
        }
        if (c->n_rows > 1) {
            by_user = malloc(c->n_rows * sizeof(*by_user));
            if (by_user == NULL) {
                ct_offend(&o, "coupon %lld: out of memory", c->coupon_id);
                continue;
            }
            for (size_t k = 0; k < c->n_rows; k++)
                by_user[k] = &c->rows[k];
            qsort(by_user, c->n_rows, sizeof(*by_user), ct_cmp_user_saga);
            for (size_t k = 1; k < c->n_rows; k++) {
                if (by_user[k]->user_id == by_user[k - 1]->user_id)
                    ct_offend(&o, "coupon %lld: user %lld has two rows (sagas %s, %s)",
                              c->coupon_id, by_user[k]->user_id, by_user[k - 1]->saga_id,
                              by_user[k]->saga_id);
            }
            free(by_user);
        }
        if (!quiet)
            continue;
        for (size_t k = 0; k < c->n_rows; k++) {
            if (!ct_coupon_has_holder(c, c->rows[k].user_id))
                ct_offend(&o, "coupon %lld: user %lld has a row (saga %s) but is no holder",
                          c->coupon_id, c->rows[k].user_id, c->rows[k].saga_id);
        }
        ct_check_holders_have_rows(c, &o);
    }
    snprintf(what, sizeof(what), "I3 one per user: %zu rows, no user or saga twice%s", rows,
             quiet ? ", holders = row users" : "");
    return ct_finish(r, &o, what);
}

/* I5 (quiet): no saga is still active, every saga of the checked coupons is
 * COMPLETED or COMPENSATED, and its end agrees with the data: COMPLETED has
 * its row and reservation, COMPENSATED has neither. */
static int ct_check_sagas(const ct_snapshot *s, ct_report *r)
{
    ct_offenders o = {0};
    size_t n = 0, completed = 0, compensated = 0;
    char what[256];

    if (s->active_sagas != 0)
        ct_offend(&o, "%lld sagas still in sagas:active:* (e.g. %s)", s->active_sagas,
                  s->active_sample);
    for (size_t i = 0; i < s->n_coupons; i++) {
        const ct_coupon *c = &s->coupons[i];

        /* Every saga a row or a reservation names must have been looked up. */
        for (size_t k = 0; k < c->n_rows; k++) {
            if (ct_coupon_saga(c, c->rows[k].saga_id) == NULL)
                ct_offend(&o, "coupon %lld: the row of saga %s has no saga log", c->coupon_id,
                          c->rows[k].saga_id);
        }
        for (size_t k = 0; k < c->n_outcomes; k++) {
            if (ct_coupon_saga(c, c->outcomes[k].saga_id) == NULL)
                ct_offend(&o, "coupon %lld: saga %s (stock outcome %s) has no saga log", c->coupon_id,
                          c->outcomes[k].saga_id, c->outcomes[k].value);
        }
        for (size_t k = 0; k < c->n_sagas; k++) {
            const ct_saga *g = &c->sagas[k];
            const ct_outcome *oc = ct_coupon_outcome(c, g->saga_id);
            size_t nrows = ct_coupon_rows_of(c, g->saga_id, NULL);
            int reserved = oc != NULL && strcmp(oc->value, "R") == 0;

            n++;
            if (!g->found) {
                ct_offend(&o, "coupon %lld: saga %s has no saga log (saga:%s)", c->coupon_id,
                          g->saga_id, g->saga_id);
            } else if (strcmp(g->state, CT_STATE_COMPLETED) == 0) {
                completed++;
                if (nrows != 1 || !reserved)
                    ct_offend(&o, "coupon %lld: saga %s is COMPLETED with %zu rows and stock "
                              "outcome %s", c->coupon_id, g->saga_id, nrows,
                              oc != NULL ? oc->value : "none");
            } else if (strcmp(g->state, CT_STATE_COMPENSATED) == 0) {
                compensated++;
                if (nrows != 0 || reserved)
                    ct_offend(&o, "coupon %lld: saga %s is COMPENSATED with %zu rows and stock "
                              "outcome %s", c->coupon_id, g->saga_id, nrows,
                              oc != NULL ? oc->value : "none");
            } else {
                ct_offend(&o, "coupon %lld: saga %s is %s, not finished", c->coupon_id,
                          g->saga_id, g->state[0] ? g->state : "(no state)");
            }
        }
    }
    snprintf(what, sizeof(what), "I5 every saga finished: %lld active, %zu sagas: %zu COMPLETED, "
             "%zu COMPENSATED, agreeing with rows and reservations", s->active_sagas, n, completed,
             compensated);
    return ct_finish(r, &o, what);
}

/* I7: stock within [0, total]. */
static int ct_check_stock_range(const ct_snapshot *s, ct_report *r)
{
    ct_offenders o = {0};
    long long lowest = 0;
    int any = 0;
    char what[256];

    for (size_t i = 0; i < s->n_coupons; i++) {
        const ct_coupon *c = &s->coupons[i];

        if (c->stock_state != CT_VALUE_OK) {
            ct_offend(&o, "coupon %lld: stock:{%lld} %s", c->coupon_id, c->coupon_id,
                      ct_value_name(c->stock_state));
            continue;
        }
        if (!any || c->stock < lowest)
            lowest = c->stock;
        any = 1;
        if (c->stock < 0)
            ct_offend(&o, "coupon %lld: stock %lld is negative", c->coupon_id, c->stock);
        if (c->total_state == CT_VALUE_OK && c->stock > c->total)
            ct_offend(&o, "coupon %lld: stock %lld > total %lld", c->coupon_id, c->stock, c->total);
        if (c->total_state == CT_VALUE_OK && c->total < 0)
            ct_offend(&o, "coupon %lld: total %lld is negative", c->coupon_id, c->total);
    }
    snprintf(what, sizeof(what), "I7 stock never negative: lowest stock %lld", lowest);
    return ct_finish(r, &o, what);
}

/* I7: every row is a granted order of its coupon's room, on the shard its
 * strategy names. */
static int ct_check_placement(const ct_snapshot *s, ct_report *r)
{
    ct_offenders o = {0};
    size_t rows = 0;
    char what[256];

    for (size_t i = 0; i < s->n_coupons; i++) {
        const ct_coupon *c = &s->coupons[i];

        for (size_t k = 0; k < c->n_rows; k++) {
            const ct_row *w = &c->rows[k];
            int want = sr_shard_of(&s->map, w->user_id, w->room_id, w->grab_time_ms / 1000);

            rows++;
            if (w->shard != want)
                ct_offend(&o, "coupon %lld: row of saga %s (user %lld, room %lld) is on shard %d, "
                          "%s says shard %d", c->coupon_id, w->saga_id, w->user_id, w->room_id,
                          w->shard, sr_strategy_name(s->map.strategy), want);
            if (w->grab_status != 1)
                ct_offend(&o, "coupon %lld: row of saga %s has grab_status %d (rows are grants)",
                          c->coupon_id, w->saga_id, w->grab_status);
            if (c->room_state == CT_VALUE_OK && w->room_id != c->room)
                ct_offend(&o, "coupon %lld: row of saga %s has room %lld, the coupon's room is %lld",
                          c->coupon_id, w->saga_id, w->room_id, c->room);
        }
    }
    snprintf(what, sizeof(what), "I7 placement: %zu rows on their %s shard, granted, in their "
             "coupon's room", rows, sr_strategy_name(s->map.strategy));
    return ct_finish(r, &o, what);
}

/* R1's figures. */
typedef struct ct_model_sums {
    size_t entries;          /* (shard, room, coupon) keys seen on either side */
    long long counted;       /* order_counts over them */
    long long rows;          /* rows over them */
} ct_model_sums;

static int ct_cmp_count_key(const void *a, const void *b)
{
    const ct_count *x = a, *y = b;

    if (x->shard != y->shard)
        return (x->shard > y->shard) - (x->shard < y->shard);
    if (x->coupon_id != y->coupon_id)
        return (x->coupon_id > y->coupon_id) - (x->coupon_id < y->coupon_id);
    return (x->room_id > y->room_id) - (x->room_id < y->room_id);
}

/* Sums the run of entries with the key of a[*i] and moves *i past it. */
static long long ct_count_run(const ct_count *a, size_t n, size_t *i)
{
    const ct_count *key = &a[*i];
    long long sum = 0;

    while (*i < n && ct_cmp_count_key(&a[*i], key) == 0)
        sum += a[(*i)++].orders;
    return sum;
}

/* Compares the read model with the rows counted, key by key (both sorted
 * here; equal keys are summed). A key missing on one side is 0 there: the
 * delete trigger leaves an order_counts row at 0 behind, which is right. */
static void ct_counts_compare(ct_count *model, size_t n_model, ct_count *rows, size_t n_rows,
                              const char *note, ct_offenders *o, ct_model_sums *t)
{
    size_t i = 0, j = 0;

    if (n_model > 1)
        qsort(model, n_model, sizeof(*model), ct_cmp_count_key);
    if (n_rows > 1)
        qsort(rows, n_rows, sizeof(*rows), ct_cmp_count_key);
    while (i < n_model || j < n_rows) {
        int cmp = i == n_model ? 1 : j == n_rows ? -1 : ct_cmp_count_key(&model[i], &rows[j]);
        ct_count key = cmp <= 0 ? model[i] : rows[j];
        long long counted = cmp <= 0 ? ct_count_run(model, n_model, &i) : 0;
        long long found = cmp >= 0 ? ct_count_run(rows, n_rows, &j) : 0;

        t->entries++;
        t->counted += counted;
        t->rows += found;
        if (counted == found)
            continue;
        if (cmp > 0)
            ct_offend(o, "shard %d, room %lld, coupon %lld%s: no order_counts row, %lld rows",
                      key.shard, key.room_id, key.coupon_id, note, found);
        else
            ct_offend(o, "shard %d, room %lld, coupon %lld%s: order_counts says %lld, %lld rows",
                      key.shard, key.room_id, key.coupon_id, note, counted, found);
    }
}

/* Copies n counts (NULL when n is 0 or out of memory: *oom says which). */
static ct_count *ct_counts_copy(const ct_count *src, size_t n, int *oom)
{
    ct_count *p;

    if (n == 0)
        return NULL;
    p = malloc(n * sizeof(*p));
    if (p == NULL)
        *oom = 1;
    else
        memcpy(p, src, n * sizeof(*p));
    return p;
}

/* R1 for one coupon of the snapshot: each row is a count of 1 at its key. */
static void ct_check_coupon_counts(const ct_coupon *c, ct_offenders *o, ct_model_sums *t)
{
    int oom = 0;
    ct_count *model = ct_counts_copy(c->counts, c->n_counts, &oom);
    ct_count *rows = c->n_rows > 0 ? calloc(c->n_rows, sizeof(*rows)) : NULL;

    if (oom || (c->n_rows > 0 && rows == NULL)) {
        ct_offend(o, "coupon %lld: out of memory", c->coupon_id);
        goto done;
    }
    for (size_t k = 0; k < c->n_rows; k++) {
        rows[k].shard = c->rows[k].shard;
        rows[k].room_id = c->rows[k].room_id;
        rows[k].coupon_id = c->rows[k].coupon_id;
        rows[k].orders = 1;
    }
    ct_counts_compare(model, c->n_counts, rows, c->n_rows, "", o, t);
done:
    free(rows);
    free(model);
}

/* R1 (any instant): the read model order_counts equals the rows, per shard,
 * room and coupon. Each shard's two sides come from one transaction
 * (ct_shards.h), and the triggers change both in the writer's transaction,
 * so no commit in between can make a correct system fail. Full checks also
 * compare the coupons outside the snapshot, by the shards' own counts. */
static int ct_check_read_model(const ct_snapshot *s, ct_report *r)
{
    ct_offenders o = {0};
    ct_model_sums t = {0, 0, 0};
    char what[256];

    for (size_t i = 0; i < s->n_coupons; i++)
        ct_check_coupon_counts(&s->coupons[i], &o, &t);
    if (s->full) {
        int oom = 0;
        ct_count *model = ct_counts_copy(s->stray_counts, s->n_stray_counts, &oom);
        ct_count *rows = ct_counts_copy(s->stray_tallies, s->n_stray_tallies, &oom);

        if (oom)
            ct_offend(&o, "coupons without stock: out of memory");
        else
            ct_counts_compare(model, s->n_stray_counts, rows, s->n_stray_tallies,
                              " (no stock loaded)", &o, &t);
        free(rows);
        free(model);
    }
    snprintf(what, sizeof(what), "R1 read model: order_counts equals the rows per shard, room and "
             "coupon: %zu entries, %lld counted = %lld rows%s", t.entries, t.counted, t.rows,
             s->full ? ", coupons without stock included" : "");
    return ct_finish(r, &o, what);
}

int ct_check_run(const ct_snapshot *s, int quiet, ct_report *r)
{
    int failed = 0;

    failed += !ct_check_oversell(s, r);
    failed += !ct_check_conservation(s, r);
    if (quiet)
        failed += !ct_check_no_inflight(s, r);
    failed += !ct_check_one_per_user(s, quiet, r);
    if (quiet)
        failed += !ct_check_sagas(s, r);
    failed += !ct_check_stock_range(s, r);
    failed += !ct_check_placement(s, r);
    failed += !ct_check_read_model(s, r);
    return failed;
}
