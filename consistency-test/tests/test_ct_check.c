/* test_ct_check.c - the invariant checker fails on broken states.
 *
 * A consistent snapshot (stock, holders, reservations, rows on their
 * shards, their order_counts, finished sagas) passes every check; then each
 * test breaks one thing the way a real bug would (an extra row, a holder
 * without a row, a negative stock, a row on the wrong shard, a user twice,
 * an unfinished saga, a read model off the rows, ...) and requires the
 * check that guards it to say FAIL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/ct_check.h"
#include "../src/ct_report.h"
#include "../src/ct_snap.h"
#include "testhelp.h"

#define ROOM 6
#define T0 1795000000000LL   /* grab time, ms */

static char out_buf[1 << 16];

static const char *saga(int i)
{
    static char ids[16][33];

    snprintf(ids[i], sizeof(ids[i]), "%032x", 0xa000 + i);
    return ids[i];
}

static void add_row(ct_snapshot *s, ct_coupon *c, int saga_no, long long user, int shard_delta)
{
    ct_row w;

    memset(&w, 0, sizeof(w));
    snprintf(w.saga_id, sizeof(w.saga_id), "%s", saga(saga_no));
    w.result_id = saga_no;
    w.user_id = user;
    w.coupon_id = c->coupon_id;
    w.room_id = ROOM;
    w.grab_status = 1;
    w.grab_time_ms = T0;
    w.shard = (sr_shard_of(&s->map, user, ROOM, T0 / 1000) + shard_delta) % s->map.n_shards;
    if (ct_coupon_add_row(c, &w) != CG_OK)
        abort();
}

/* The read model as the triggers would keep it: one order_counts row per
 * (shard, room) of the coupon's rows, counting them. */
static void add_counts(ct_coupon *c)
{
    for (size_t k = 0; k < c->n_rows; k++) {
        const ct_row *w = &c->rows[k];
        size_t j = 0;

        while (j < c->n_counts && (c->counts[j].shard != w->shard || c->counts[j].room_id != w->room_id))
            j++;
        if (j == c->n_counts) {
            ct_count n = {w->room_id, c->coupon_id, 0, w->shard};

            if (ct_coupon_add_count(c, &n) != CG_OK)
                abort();
        }
        c->counts[j].orders++;
    }
}

/* The count of the coupon's (shard, room), or NULL. */
static ct_count *count_of(ct_coupon *c, int shard, long long room)
{
    for (size_t j = 0; j < c->n_counts; j++) {
        if (c->counts[j].shard == shard && c->counts[j].room_id == room)
            return &c->counts[j];
    }
    return NULL;
}

/* Coupon 7: total 10, three granted (users 1-3, sagas 1-3), one rejected
 * (saga 4), one compensated after release (saga 5). */
static ct_coupon *build_good(ct_snapshot *s)
{
    ct_coupon *c;
    int ok = CG_OK;

    ct_snapshot_init(s);
    if (sr_map_build(&s->map, SR_HASH, 4, NULL, NULL) != CG_OK)
        abort();
    c = ct_snapshot_add_coupon(s, 7);
    c->stock_state = c->total_state = c->room_state = CT_VALUE_OK;
    c->total = 10;
    c->stock = 7;
    c->room = ROOM;
    for (int u = 1; u <= 3; u++) {
        ok |= ct_coupon_add_holder(c, u);
        ok |= ct_coupon_add_outcome(c, saga(u), "R");
        add_row(s, c, u, u, 0);
        ok |= ct_coupon_add_saga(c, saga(u), CT_STATE_COMPLETED, 1);
    }
    ok |= ct_coupon_add_outcome(c, saga(4), "J:out_of_stock");
    ok |= ct_coupon_add_saga(c, saga(4), CT_STATE_COMPENSATED, 1);
    ok |= ct_coupon_add_outcome(c, saga(5), "L");
    ok |= ct_coupon_add_saga(c, saga(5), CT_STATE_COMPENSATED, 1);
    if (ok != CG_OK)
        abort();
    add_counts(c);
    ct_coupon_sort(c);
    return c;
}

/* Runs the checks; returns the failed count, the output in out_buf. */
static int run(ct_snapshot *s, int quiet, ct_report *r)
{
    FILE *f = fmemopen(out_buf, sizeof(out_buf), "w");
    int failed;

    if (f == NULL)
        abort();
    for (size_t i = 0; i < s->n_coupons; i++)
        ct_coupon_sort(&s->coupons[i]);
    ct_report_init(r, f);
    failed = ct_check_run(s, quiet, r);
    fclose(f);
    return failed;
}

static int has_line(const char *prefix)
{
    const char *p = out_buf;

    for (;;) {
        if (strncmp(p, prefix, strlen(prefix)) == 0)
            return 1;
        p = strchr(p, '\n');
        if (p == NULL)
            return 0;
        p++;
    }
}

#define EXPECT_FAIL(prefix)                                                     \
    do {                                                                        \
        if (!has_line("FAIL " prefix))                                          \
            TH_FAIL_AT("expected a FAIL %s line; output:\n%s", prefix, out_buf); \
    } while (0)

static void test_good_passes(void)
{
    ct_snapshot s;
    ct_report r;

    build_good(&s);
    TH_CHECK_INT(run(&s, 1, &r), 0);
    TH_CHECK_INT(r.failed, 0);
    TH_CHECK_INT(r.passed, 8);
    TH_CHECK(has_line("PASS R1 read model: order_counts equals the rows per shard, room and coupon: "
                      "3 entries, 3 counted = 3 rows"));
    TH_CHECK_INT(run(&s, 0, &r), 0);
    TH_CHECK_INT(r.passed, 6);
    ct_snapshot_free(&s);
}

static void test_extra_row(void)
{
    ct_snapshot s;
    ct_report r;
    ct_coupon *c = build_good(&s);

    /* An order row no reservation stands behind (granted without stock). */
    add_row(&s, c, 6, 4, 0);
    TH_CHECK(run(&s, 1, &r) > 0);
    EXPECT_FAIL("I2 quiet");
    EXPECT_FAIL("I3 one per user");
    EXPECT_FAIL("I5 every saga finished");
    ct_snapshot_free(&s);
}

static void test_oversell(void)
{
    ct_snapshot s;
    ct_report r;
    ct_coupon *c = build_good(&s);

    c->total = 2;
    c->stock = 0;
    TH_CHECK(run(&s, 1, &r) > 0);
    EXPECT_FAIL("I1 no oversell");
    EXPECT_FAIL("I2 conservation");
    ct_snapshot_free(&s);
}

static void test_holder_without_row(void)
{
    ct_snapshot s;
    ct_report r;
    ct_coupon *c = build_good(&s);

    /* Redis is self-consistent (stock taken, holder and R recorded), but the
     * order never came and nobody released: an orphaned reservation. */
    c->stock = 6;
    TH_REQUIRE(ct_coupon_add_holder(c, 9) == CG_OK);
    TH_REQUIRE(ct_coupon_add_outcome(c, saga(7), "R") == CG_OK);
    TH_CHECK(run(&s, 1, &r) > 0);
    EXPECT_FAIL("I2 quiet");
    EXPECT_FAIL("I3 one per user");
    TH_CHECK(has_line("PASS I2 conservation"));
    /* While busy the same state is a reservation in flight: allowed. */
    TH_CHECK_INT(run(&s, 0, &r), 0);
    ct_snapshot_free(&s);
}

static void test_conservation(void)
{
    ct_snapshot s;
    ct_report r;
    ct_coupon *c = build_good(&s);

    c->stock = 8;   /* a release applied twice */
    TH_CHECK(run(&s, 0, &r) > 0);
    EXPECT_FAIL("I2 conservation");
    ct_snapshot_free(&s);
}

static void test_reservation_count(void)
{
    ct_snapshot s;
    ct_report r;
    ct_coupon *c = build_good(&s);

    /* A released saga whose holder stayed behind. */
    TH_REQUIRE(ct_coupon_add_outcome(c, saga(8), "L") == CG_OK);
    c->holders[0] = 1;
    TH_REQUIRE(ct_coupon_add_holder(c, 11) == CG_OK);
    c->stock = 6;
    TH_CHECK(run(&s, 0, &r) > 0);
    EXPECT_FAIL("I2 conservation");
    ct_snapshot_free(&s);
}

static void test_negative_stock(void)
{
    ct_snapshot s;
    ct_report r;
    ct_coupon *c = build_good(&s);

    c->stock = -1;
    c->total = 2;
    TH_CHECK(run(&s, 0, &r) > 0);
    EXPECT_FAIL("I7 stock never negative");
    ct_snapshot_free(&s);
}

static void test_wrong_shard(void)
{
    ct_snapshot s;
    ct_report r;
    ct_coupon *c = build_good(&s);

    c->rows[1].shard = (c->rows[1].shard + 1) % 4;
    TH_CHECK(run(&s, 0, &r) > 0);
    EXPECT_FAIL("I7 placement");
    ct_snapshot_free(&s);
}

static void test_wrong_room_and_status(void)
{
    ct_snapshot s;
    ct_report r;
    ct_coupon *c = build_good(&s);

    c->rows[0].grab_status = 0;
    TH_CHECK(run(&s, 0, &r) > 0);
    EXPECT_FAIL("I7 placement");
    c->rows[0].grab_status = 1;
    c->rows[2].room_id = ROOM + 1;   /* hash placement ignores the room */
    TH_CHECK(run(&s, 0, &r) > 0);
    EXPECT_FAIL("I7 placement");
    ct_snapshot_free(&s);
}

static void test_user_twice(void)
{
    ct_snapshot s;
    ct_report r;
    ct_coupon *c = build_good(&s);

    /* User 2 granted twice, with stock and reservations to match. */
    c->stock = 6;
    TH_REQUIRE(ct_coupon_add_holder(c, 2) == CG_OK);
    TH_REQUIRE(ct_coupon_add_outcome(c, saga(9), "R") == CG_OK);
    TH_REQUIRE(ct_coupon_add_saga(c, saga(9), CT_STATE_COMPLETED, 1) == CG_OK);
    add_row(&s, c, 9, 2, 0);
    TH_CHECK(run(&s, 0, &r) > 0);
    EXPECT_FAIL("I3 one per user");
    ct_snapshot_free(&s);
}

static void test_saga_on_two_shards(void)
{
    ct_snapshot s;
    ct_report r;
    ct_coupon *c = build_good(&s);

    add_row(&s, c, 1, 1, 1);
    TH_CHECK(run(&s, 0, &r) > 0);
    EXPECT_FAIL("I3 one per user");
    ct_snapshot_free(&s);
}

static void test_unfinished_saga(void)
{
    ct_snapshot s;
    ct_report r;
    ct_coupon *c = build_good(&s);

    snprintf(c->sagas[0].state, sizeof(c->sagas[0].state), "ORDERING");
    TH_CHECK(run(&s, 1, &r) > 0);
    EXPECT_FAIL("I5 every saga finished");
    /* Busy checks do not look at saga states. */
    TH_CHECK_INT(run(&s, 0, &r), 0);
    ct_snapshot_free(&s);
}

static void test_missing_saga_log(void)
{
    ct_snapshot s;
    ct_report r;
    ct_coupon *c = build_good(&s);

    c->sagas[4].found = 0;
    c->sagas[4].state[0] = '\0';
    TH_CHECK(run(&s, 1, &r) > 0);
    EXPECT_FAIL("I5 every saga finished");
    ct_snapshot_free(&s);
}

static void test_active_sagas(void)
{
    ct_snapshot s;
    ct_report r;

    build_good(&s);
    s.active_sagas = 2;
    snprintf(s.active_sample, sizeof(s.active_sample), "sagas:active:orchestrator x");
    TH_CHECK(run(&s, 1, &r) > 0);
    EXPECT_FAIL("I5 every saga finished");
    ct_snapshot_free(&s);
}

static void test_state_contradicts_data(void)
{
    ct_snapshot s;
    ct_report r;
    ct_coupon *c;

    /* COMPENSATED, yet its row is still there. */
    c = build_good(&s);
    for (size_t i = 0; i < c->n_sagas; i++) {
        if (strcmp(c->sagas[i].saga_id, saga(2)) == 0)
            snprintf(c->sagas[i].state, sizeof(c->sagas[i].state), CT_STATE_COMPENSATED);
    }
    TH_CHECK(run(&s, 1, &r) > 0);
    EXPECT_FAIL("I5 every saga finished");
    ct_snapshot_free(&s);
    /* COMPLETED without a row. */
    c = build_good(&s);
    for (size_t i = 0; i < c->n_sagas; i++) {
        if (strcmp(c->sagas[i].saga_id, saga(4)) == 0)
            snprintf(c->sagas[i].state, sizeof(c->sagas[i].state), CT_STATE_COMPLETED);
    }
    TH_CHECK(run(&s, 1, &r) > 0);
    EXPECT_FAIL("I5 every saga finished");
    ct_snapshot_free(&s);
}

static void test_missing_keys(void)
{
    ct_snapshot s;
    ct_report r;
    ct_coupon *c = build_good(&s);

    c->total_state = CT_VALUE_MISSING;
    c->stock_state = CT_VALUE_BAD;
    TH_CHECK(run(&s, 0, &r) > 0);
    EXPECT_FAIL("I1 no oversell");
    EXPECT_FAIL("I2 conservation");
    EXPECT_FAIL("I7 stock never negative");
    ct_snapshot_free(&s);
}

static void test_stray_row(void)
{
    ct_snapshot s;
    ct_report r;
    ct_row w;

    build_good(&s);
    s.full = 1;
    memset(&w, 0, sizeof(w));
    snprintf(w.saga_id, sizeof(w.saga_id), "%s", saga(12));
    w.coupon_id = 99;
    w.user_id = 5;
    TH_REQUIRE(ct_snapshot_add_stray(&s, &w) == CG_OK);
    TH_CHECK(run(&s, 0, &r) > 0);
    EXPECT_FAIL("I1 no oversell");
    ct_snapshot_free(&s);
}

/* The count of the first row's (shard, room) is one too high, as a
 * trigger that fired twice or a row deleted around it would leave it. */
static void test_read_model_off(void)
{
    ct_snapshot s;
    ct_report r;
    ct_coupon *c = build_good(&s);
    ct_count *k = count_of(c, c->rows[0].shard, ROOM);
    char line[160];

    TH_REQUIRE(k != NULL);
    k->orders++;
    TH_CHECK_INT(run(&s, 1, &r), 1);   /* nothing else is wrong */
    EXPECT_FAIL("R1 read model");
    TH_CHECK(has_line("FAIL R1 read model: order_counts equals the rows per shard, room and coupon: "
                      "3 entries, 4 counted = 3 rows"));
    snprintf(line, sizeof(line), "shard %d, room %d, coupon 7: order_counts says %lld, %lld rows",
             k->shard, ROOM, k->orders, k->orders - 1);
    TH_CHECK(strstr(out_buf, line) != NULL);
    TH_CHECK_INT(run(&s, 0, &r), 1);   /* it holds at any instant */
    k->orders--;
    TH_CHECK_INT(run(&s, 1, &r), 0);
    /* Negative (a delete counted twice) is off too. */
    k->orders = -1;
    TH_CHECK(run(&s, 0, &r) > 0);
    EXPECT_FAIL("R1 read model");
    ct_snapshot_free(&s);
}

/* A row the read model does not count: its order_counts row is missing. */
static void test_read_model_missing(void)
{
    ct_snapshot s;
    ct_report r;
    ct_coupon *c = build_good(&s);
    char line[160];
    int shard;

    c->n_counts--;   /* drops the last count */
    shard = c->counts[c->n_counts].shard;
    TH_CHECK_INT(run(&s, 0, &r), 1);
    EXPECT_FAIL("R1 read model");
    snprintf(line, sizeof(line), "shard %d, room %d, coupon 7: no order_counts row", shard, ROOM);
    TH_CHECK(strstr(out_buf, line) != NULL);
    ct_snapshot_free(&s);
}

/* Counts for a room the coupon has no rows in: wrong unless 0 (what the
 * delete trigger leaves behind). */
static void test_read_model_no_rows(void)
{
    ct_snapshot s;
    ct_report r;
    ct_coupon *c = build_good(&s);
    ct_count bogus = {ROOM + 1, 7, 2, 0};

    TH_REQUIRE(ct_coupon_add_count(c, &bogus) == CG_OK);
    TH_CHECK_INT(run(&s, 1, &r), 1);
    EXPECT_FAIL("R1 read model");
    TH_CHECK(strstr(out_buf, "shard 0, room 7, coupon 7: order_counts says 2, 0 rows") != NULL);
    c->counts[c->n_counts - 1].orders = 0;
    TH_CHECK_INT(run(&s, 1, &r), 0);
    ct_snapshot_free(&s);
}

/* Right in sum but on the wrong shard, or in the wrong room: the check is
 * per shard and room, not per coupon. */
static void test_read_model_per_key(void)
{
    ct_snapshot s;
    ct_report r;
    ct_coupon *c = build_good(&s);
    ct_count moved;

    TH_REQUIRE(c->n_counts > 0);
    moved = c->counts[0];
    moved.shard = (moved.shard + 1) % 4;
    while (count_of(c, moved.shard, ROOM) != NULL)
        moved.shard = (moved.shard + 1) % 4;
    c->counts[0].orders--;
    moved.orders = 1;
    TH_REQUIRE(ct_coupon_add_count(c, &moved) == CG_OK);
    TH_CHECK_INT(run(&s, 0, &r), 1);
    EXPECT_FAIL("R1 read model");
    TH_CHECK(has_line("FAIL R1 read model: order_counts equals the rows per shard, room and coupon: "
                      "4 entries, 3 counted = 3 rows"));
    ct_snapshot_free(&s);
    c = build_good(&s);
    c->counts[0].room_id = ROOM + 1;
    TH_CHECK_INT(run(&s, 0, &r), 1);
    EXPECT_FAIL("R1 read model");
    ct_snapshot_free(&s);
}

/* Equal keys on a side are summed (two partial counts of one key agree
 * with the rows), and the snapshot's order of counts does not matter. */
static void test_read_model_sums(void)
{
    ct_snapshot s;
    ct_report r;
    ct_coupon *c = build_good(&s);
    ct_count half;

    for (size_t j = 0; j < c->n_counts; j++) {
        if (c->counts[j].orders < 2)
            continue;
        half = c->counts[j];
        half.orders = 1;
        c->counts[j].orders--;
        TH_REQUIRE(ct_coupon_add_count(c, &half) == CG_OK);
        break;
    }
    for (size_t j = 0; j + 1 < c->n_counts; j += 2) {
        ct_count t = c->counts[j];

        c->counts[j] = c->counts[j + 1];
        c->counts[j + 1] = t;
    }
    TH_CHECK_INT(run(&s, 1, &r), 0);
    ct_snapshot_free(&s);
}

/* Full checks: coupons outside the snapshot are compared by the shards'
 * own row counts; a count without rows there fails, a 0 left behind does
 * not, and a partial snapshot does not look at them. */
static void test_read_model_strays(void)
{
    ct_snapshot s;
    ct_report r;
    ct_count bogus = {ROOM, 99, 3, 2}, zero = {ROOM, 98, 0, 1}, tally = {ROOM, 97, 2, 3};

    build_good(&s);
    s.full = 1;
    TH_REQUIRE(ct_snapshot_add_stray_count(&s, &zero) == CG_OK);
    TH_CHECK_INT(run(&s, 0, &r), 0);
    TH_CHECK(has_line("PASS R1 read model: order_counts equals the rows per shard, room and coupon: "
                      "4 entries, 3 counted = 3 rows, coupons without stock included"));
    TH_REQUIRE(ct_snapshot_add_stray_count(&s, &bogus) == CG_OK);
    TH_CHECK_INT(run(&s, 0, &r), 1);   /* only the read model: there are no rows */
    EXPECT_FAIL("R1 read model");
    TH_CHECK(strstr(out_buf, "shard 2, room 6, coupon 99 (no stock loaded): order_counts says 3, 0 rows") != NULL);
    s.full = 0;
    TH_CHECK_INT(run(&s, 0, &r), 0);
    s.full = 1;
    s.n_stray_counts--;
    /* rows the read model does not count (I1 fails on them too, in the rows) */
    TH_REQUIRE(ct_snapshot_add_stray_tally(&s, &tally) == CG_OK);
    TH_CHECK_INT(run(&s, 0, &r), 1);
    TH_CHECK(strstr(out_buf, "shard 3, room 6, coupon 97 (no stock loaded): no order_counts row, 2 rows") != NULL);
    TH_REQUIRE(ct_snapshot_add_stray_count(&s, &tally) == CG_OK);   /* counted right */
    TH_CHECK_INT(run(&s, 0, &r), 0);
    ct_snapshot_free(&s);
}

static void test_counts(void)
{
    ct_snapshot s;
    ct_coupon_counts k;
    ct_coupon *c = build_good(&s);

    TH_REQUIRE(ct_coupon_add_outcome(c, saga(10), "R") == CG_OK);
    ct_coupon_sort(c);
    ct_coupon_count(c, &k);
    TH_CHECK_INT(k.rows, 3);
    TH_CHECK_INT(k.reserved, 4);
    TH_CHECK_INT(k.reserved_no_row, 1);
    TH_CHECK_INT(k.rejected, 1);
    TH_CHECK_INT(k.released, 1);
    ct_snapshot_free(&s);
}

static void test_state_steps(void)
{
    static const struct {
        const char *from, *to;
        int ok;
    } cases[] = {
        {"STARTED", "STARTED", 1},        {"STARTED", "RESERVED", 1},
        {"STARTED", "COMPLETED", 1},      {"STARTED", "COMPENSATED", 1},
        {"RESERVED", "COMPENSATING", 1},  {"RESERVED", "COMPLETED", 1},
        {"COMPENSATING", "COMPENSATED", 1},
        {"RESERVED", "STARTED", 0},       {"COMPENSATING", "RESERVED", 0},
        {"COMPENSATING", "COMPLETED", 0}, {"COMPLETED", "COMPENSATED", 0},
        {"COMPENSATED", "COMPLETED", 0},  {"COMPLETED", "RESERVED", 0},
        {"COMPLETED", "COMPLETED", 1},    {"STARTED", "DONE", 0},
        {"FAILED", "COMPENSATED", 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (ct_state_step_ok(cases[i].from, cases[i].to) != cases[i].ok)
            TH_FAIL_AT("%s -> %s: expected %d", cases[i].from, cases[i].to, cases[i].ok);
    }
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"good state passes", test_good_passes},
        {"extra row fails", test_extra_row},
        {"oversell fails", test_oversell},
        {"holder without row fails when quiet", test_holder_without_row},
        {"stock + holders != total fails", test_conservation},
        {"holder without reservation fails", test_reservation_count},
        {"negative stock fails", test_negative_stock},
        {"row on the wrong shard fails", test_wrong_shard},
        {"row not granted or in another room fails", test_wrong_room_and_status},
        {"user granted twice fails", test_user_twice},
        {"saga on two shards fails", test_saga_on_two_shards},
        {"unfinished saga fails when quiet", test_unfinished_saga},
        {"missing saga log fails", test_missing_saga_log},
        {"active sagas fail when quiet", test_active_sagas},
        {"saga state contradicting the data fails", test_state_contradicts_data},
        {"missing or bad keys fail", test_missing_keys},
        {"row of an unknown coupon fails", test_stray_row},
        {"read model off by one fails", test_read_model_off},
        {"read model missing a count fails", test_read_model_missing},
        {"read model counting a room without rows fails", test_read_model_no_rows},
        {"read model on the wrong shard or room fails", test_read_model_per_key},
        {"read model entries of one key are summed", test_read_model_sums},
        {"read model of coupons without stock (full)", test_read_model_strays},
        {"coupon counts", test_counts},
        {"saga states move forward only", test_state_steps},
    };

    return th_main("ct_check", tests, TH_TABLE_LEN(tests), argc, argv);
}
