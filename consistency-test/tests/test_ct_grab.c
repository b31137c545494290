/* test_ct_grab.c - grab answers are read strictly, and invariant I4 fails
 * when an answer and the database disagree. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/ct_grab.h"
#include "../src/ct_report.h"
#include "../src/ct_snap.h"
#include "testhelp.h"

#define S1 "0123456789abcdef0123456789abcdef"
#define S2 "11111111111111111111111111111111"
#define S3 "22222222222222222222222222222222"

static char out_buf[1 << 15];

static void asked(ct_grab *g, long long user)
{
    memset(g, 0, sizeof(*g));
    g->user_id = user;
    g->coupon_id = 7;
    g->room_id = 6;
}

static void test_parse_granted(void)
{
    ct_grab g;

    asked(&g, 5);
    ct_grab_parse(&g, 200, "{\"grab_status\":1,\"saga_id\":\"" S1 "\",\"user_id\":5,\"coupon_id\":7,"
                  "\"room_id\":6}", NULL);
    TH_CHECK_INT(g.kind, CT_GRAB_GRANTED);
    TH_CHECK_STR(g.saga_id, S1);
    TH_CHECK_INT(ct_grab_outcome(&g), 1);
}

static void test_parse_rejected(void)
{
    ct_grab g;

    asked(&g, 5);
    ct_grab_parse(&g, 200, "{\"grab_status\":0,\"saga_id\":\"" S1 "\",\"user_id\":5,\"coupon_id\":7,"
                  "\"room_id\":6,\"fail_reason\":\"out_of_stock\"}", NULL);
    TH_CHECK_INT(g.kind, CT_GRAB_REJECTED);
    TH_CHECK_STR(g.fail_reason, "out_of_stock");
    TH_CHECK_INT(ct_grab_outcome(&g), 0);
}

static void test_parse_malformed(void)
{
    static const char *const bodies[] = {
        /* no fail_reason */
        "{\"grab_status\":0,\"saga_id\":\"" S1 "\",\"user_id\":5,\"coupon_id\":7,\"room_id\":6}",
        /* another user */
        "{\"grab_status\":1,\"saga_id\":\"" S1 "\",\"user_id\":6,\"coupon_id\":7,\"room_id\":6}",
        /* another coupon */
        "{\"grab_status\":1,\"saga_id\":\"" S1 "\",\"user_id\":5,\"coupon_id\":8,\"room_id\":6}",
        /* another room */
        "{\"grab_status\":1,\"saga_id\":\"" S1 "\",\"user_id\":5,\"coupon_id\":7,\"room_id\":9}",
        /* grab_status 2 */
        "{\"grab_status\":2,\"saga_id\":\"" S1 "\",\"user_id\":5,\"coupon_id\":7,\"room_id\":6}",
        /* grab_status as a string */
        "{\"grab_status\":\"1\",\"saga_id\":\"" S1 "\",\"user_id\":5,\"coupon_id\":7,\"room_id\":6}",
        /* upper-case saga id */
        "{\"grab_status\":1,\"saga_id\":\"0123456789ABCDEF0123456789ABCDEF\",\"user_id\":5,"
        "\"coupon_id\":7,\"room_id\":6}",
        /* granted with a fail_reason */
        "{\"grab_status\":1,\"saga_id\":\"" S1 "\",\"user_id\":5,\"coupon_id\":7,\"room_id\":6,"
        "\"fail_reason\":\"duplicate\"}",
        "not json",
        "[1]",
    };

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        ct_grab g;

        asked(&g, 5);
        ct_grab_parse(&g, 200, bodies[i], NULL);
        if (g.kind != CT_GRAB_MALFORMED)
            TH_FAIL_AT("body %zu read as %s: %s", i, ct_grab_kind_name(g.kind), bodies[i]);
    }
}

static void test_parse_sold_out_flag(void)
{
    ct_grab g;

    /* The local sold-out flag: no saga, only with out_of_stock. */
    asked(&g, 5);
    ct_grab_parse(&g, 200, "{\"grab_status\":0,\"saga_id\":null,\"user_id\":5,\"coupon_id\":7,"
                  "\"room_id\":6,\"fail_reason\":\"out_of_stock\"}", NULL);
    TH_CHECK_INT(g.kind, CT_GRAB_REJECTED);
    TH_CHECK_INT(g.no_saga, 1);
    TH_CHECK_INT(ct_grab_outcome(&g), 0);
    ct_grab_parse(&g, 200, "{\"grab_status\":0,\"saga_id\":null,\"user_id\":5,\"coupon_id\":7,"
                  "\"room_id\":6,\"fail_reason\":\"duplicate\"}", NULL);
    TH_CHECK_INT(g.kind, CT_GRAB_MALFORMED);
    ct_grab_parse(&g, 200, "{\"grab_status\":1,\"saga_id\":null,\"user_id\":5,\"coupon_id\":7,"
                  "\"room_id\":6}", NULL);
    TH_CHECK_INT(g.kind, CT_GRAB_MALFORMED);
}

static void test_parse_pending_and_errors(void)
{
    ct_grab g;

    asked(&g, 5);
    ct_grab_parse(&g, 202, "{\"saga_id\":\"" S1 "\",\"status\":\"pending\"}", NULL);
    TH_CHECK_INT(g.kind, CT_GRAB_PENDING);
    TH_CHECK_STR(g.saga_id, S1);
    TH_CHECK_INT(ct_grab_outcome(&g), -1);
    snprintf(g.final_state, sizeof(g.final_state), "COMPLETED");
    TH_CHECK_INT(ct_grab_outcome(&g), 1);
    ct_grab_parse(&g, 202, "{\"saga_id\":\"" S1 "\",\"status\":\"done\"}", NULL);
    TH_CHECK_INT(g.kind, CT_GRAB_MALFORMED);
    ct_grab_parse(&g, 0, NULL, "connection closed");
    TH_CHECK_INT(g.kind, CT_GRAB_TRANSPORT);
    TH_CHECK_STR(g.problem, "connection closed");
    ct_grab_parse(&g, 429, "{\"error\":\"rate limited\"}", NULL);
    TH_CHECK_INT(g.kind, CT_GRAB_HTTP_ERROR);
}

static void test_parse_state(void)
{
    char st[32];

    TH_CHECK_INT(ct_grab_parse_state("{\"saga_id\":\"x\",\"state\":\"COMPLETED\"}", st, sizeof(st)), CG_OK);
    TH_CHECK_STR(st, "COMPLETED");
    TH_CHECK_INT(ct_grab_parse_state("{\"status\":\"COMPENSATED\"}", st, sizeof(st)), CG_OK);
    TH_CHECK_STR(st, "COMPENSATED");
    TH_CHECK(ct_grab_parse_state("{\"status\":\"pending\"}", st, sizeof(st)) != CG_OK);
    TH_CHECK(ct_grab_parse_state("{}", st, sizeof(st)) != CG_OK);
    TH_CHECK(ct_grab_parse_state(NULL, st, sizeof(st)) != CG_OK);
}

/* Coupon 7 with one row: saga S1 of user 5. */
static void build(ct_snapshot *s)
{
    ct_coupon *c;
    ct_row w;

    ct_snapshot_init(s);
    c = ct_snapshot_add_coupon(s, 7);
    memset(&w, 0, sizeof(w));
    snprintf(w.saga_id, sizeof(w.saga_id), S1);
    w.user_id = 5;
    w.coupon_id = 7;
    w.room_id = 6;
    w.grab_status = 1;
    if (ct_coupon_add_row(c, &w) != CG_OK)
        abort();
    ct_coupon_sort(c);
}

static void granted(ct_grab *g, const char *saga, long long user)
{
    asked(g, user);
    g->kind = CT_GRAB_GRANTED;
    snprintf(g->saga_id, sizeof(g->saga_id), "%s", saga);
    g->read_status = 200;
    snprintf(g->final_state, sizeof(g->final_state), "COMPLETED");
}

static void rejected(ct_grab *g, const char *saga, long long user)
{
    asked(g, user);
    g->kind = CT_GRAB_REJECTED;
    snprintf(g->saga_id, sizeof(g->saga_id), "%s", saga);
    snprintf(g->fail_reason, sizeof(g->fail_reason), "out_of_stock");
    g->read_status = 200;
    snprintf(g->final_state, sizeof(g->final_state), "COMPENSATED");
}

static int check(const ct_snapshot *s, const ct_grab *g, size_t n)
{
    ct_report r;
    FILE *f = fmemopen(out_buf, sizeof(out_buf), "w");
    int failed;

    if (f == NULL)
        abort();
    ct_report_init(&r, f);
    failed = ct_grab_check(&r, s, g, n);
    fclose(f);
    return failed;
}

static void test_i4_agrees(void)
{
    ct_snapshot s;
    ct_grab g[2];

    build(&s);
    granted(&g[0], S1, 5);
    rejected(&g[1], S2, 6);
    TH_CHECK_INT(check(&s, g, 2), 0);
    ct_snapshot_free(&s);
}

static void test_i4_granted_without_row(void)
{
    ct_snapshot s;
    ct_grab g[2];

    build(&s);
    granted(&g[0], S1, 5);
    granted(&g[1], S2, 6);   /* told granted, no row */
    TH_CHECK(check(&s, g, 2) > 0);
    TH_CHECK(strstr(out_buf, "FAIL I4 answers agree") != NULL);
    ct_snapshot_free(&s);
}

static void test_i4_rejected_with_row(void)
{
    ct_snapshot s;
    ct_grab g[1];

    build(&s);
    rejected(&g[0], S1, 5);   /* told not granted, but the row is there */
    TH_CHECK(check(&s, g, 1) > 0);
    TH_CHECK(strstr(out_buf, "FAIL I4 answers agree") != NULL);
    ct_snapshot_free(&s);
}

static void test_i4_row_of_another_user(void)
{
    ct_snapshot s;
    ct_grab g[1];

    build(&s);
    granted(&g[0], S1, 9);
    TH_CHECK(check(&s, g, 1) > 0);
    ct_snapshot_free(&s);
}

static void test_i4_unexplained_row(void)
{
    ct_snapshot s;
    ct_grab g[2];

    build(&s);
    rejected(&g[0], S2, 6);
    TH_CHECK(check(&s, g, 1) > 0);
    TH_CHECK(strstr(out_buf, "FAIL I4 no grant without an answer") != NULL);
    /* A request lost without a saga id may account for it. */
    asked(&g[1], 5);
    g[1].kind = CT_GRAB_TRANSPORT;
    TH_CHECK_INT(check(&s, g, 2), 0);
    ct_snapshot_free(&s);
}

static void test_i4_unresolved(void)
{
    ct_snapshot s;
    ct_grab g[2];

    build(&s);
    granted(&g[0], S1, 5);
    asked(&g[1], 6);
    g[1].kind = CT_GRAB_PENDING;
    snprintf(g[1].saga_id, sizeof(g[1].saga_id), S3);
    snprintf(g[1].final_state, sizeof(g[1].final_state), "RESERVING");
    TH_CHECK(check(&s, g, 2) > 0);
    TH_CHECK(strstr(out_buf, "never resolved") != NULL);
    snprintf(g[1].final_state, sizeof(g[1].final_state), "COMPENSATED");
    TH_CHECK_INT(check(&s, g, 2), 0);
    snprintf(g[1].final_state, sizeof(g[1].final_state), "COMPLETED");   /* but no row */
    TH_CHECK(check(&s, g, 2) > 0);
    ct_snapshot_free(&s);
}

static void test_i4_read_api_disagrees(void)
{
    ct_snapshot s;
    ct_grab g[1];

    build(&s);
    granted(&g[0], S1, 5);
    snprintf(g[0].final_state, sizeof(g[0].final_state), "COMPENSATED");
    TH_CHECK(check(&s, g, 1) > 0);
    TH_CHECK(strstr(out_buf, "FAIL I4 GET /api/grab agrees") != NULL);
    ct_snapshot_free(&s);
}

static void test_stats(void)
{
    ct_grab g[4];
    ct_grab_stats st;

    granted(&g[0], S1, 5);
    rejected(&g[1], S2, 6);
    rejected(&g[2], S3, 7);
    snprintf(g[2].fail_reason, sizeof(g[2].fail_reason), "duplicate");
    asked(&g[3], 8);
    g[3].kind = CT_GRAB_TRANSPORT;
    for (int i = 0; i < 4; i++)
        g[i].latency_ms = 10 * (i + 1);
    ct_grab_stats_of(g, 4, &st);
    TH_CHECK_INT(st.kind[CT_GRAB_GRANTED], 1);
    TH_CHECK_INT(st.kind[CT_GRAB_REJECTED], 2);
    TH_CHECK_INT(st.granted_final, 1);
    TH_CHECK_INT(st.rejected_final, 2);
    TH_CHECK_INT(st.unresolved, 1);
    TH_CHECK_INT(st.unknown_transport, 1);
    TH_CHECK_INT(st.n_reasons, 2);
    TH_CHECK_INT(st.max_ms, 40);
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"200 granted", test_parse_granted},
        {"200 rejected", test_parse_rejected},
        {"malformed 200s", test_parse_malformed},
        {"200 from the sold-out flag", test_parse_sold_out_flag},
        {"202, transport and HTTP errors", test_parse_pending_and_errors},
        {"saga state of GET /api/grab", test_parse_state},
        {"I4 passes when answers match rows", test_i4_agrees},
        {"I4 fails: granted without a row", test_i4_granted_without_row},
        {"I4 fails: rejected with a row", test_i4_rejected_with_row},
        {"I4 fails: the row is another user's", test_i4_row_of_another_user},
        {"I4 fails: a row no answer explains", test_i4_unexplained_row},
        {"I4 fails: an unresolved 202", test_i4_unresolved},
        {"I4 fails: the read API disagrees", test_i4_read_api_disagrees},
        {"figures", test_stats},
    };

    return th_main("ct_grab", tests, TH_TABLE_LEN(tests), argc, argv);
}
