/* test_orch_saga.c - unit tests of the saga state machine (saga.c), the
 * in-memory table and deadline heap (saga_table.c) and the parsing of saga
 * log entries and write answers (saga_log.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/saga.h"
#include "../src/saga_log.h"
#include "../src/saga_table.h"
#include "testhelp.h"

static void test_transitions(void)
{
    /* allowed[from][to]: the whole table, so that any change to it is seen */
    static const int allowed[SAGA_STATE_MAX][SAGA_STATE_MAX] = {
        /*               STARTED RESERVED COMPLETED COMPENSATING COMPENSATED */
        /* STARTED */      {1,      1,       0,        1,           1},
        /* RESERVED */     {0,      1,       1,        1,           0},
        /* COMPLETED */    {0,      0,       1,        0,           0},
        /* COMPENSATING */ {0,      0,       0,        1,           1},
        /* COMPENSATED */  {0,      0,       0,        0,           1},
    };

    for (int f = 0; f < SAGA_STATE_MAX; f++) {
        for (int t = 0; t < SAGA_STATE_MAX; t++) {
            if (saga_transition_ok((enum saga_state)f, (enum saga_state)t) != allowed[f][t])
                TH_FAIL_AT("%s -> %s: got %d", saga_state_name((enum saga_state)f),
                           saga_state_name((enum saga_state)t), !allowed[f][t]);
        }
    }
    TH_CHECK(!saga_transition_ok(SAGA_STATE_MAX, SAGA_STARTED));
    TH_CHECK(!saga_transition_ok(SAGA_STARTED, SAGA_STATE_MAX));
}

static void test_states(void)
{
    enum saga_state st;
    enum saga_comp c;

    TH_CHECK(!saga_state_terminal(SAGA_STARTED));
    TH_CHECK(!saga_state_terminal(SAGA_RESERVED));
    TH_CHECK(!saga_state_terminal(SAGA_COMPENSATING));
    TH_CHECK(saga_state_terminal(SAGA_COMPLETED));
    TH_CHECK(saga_state_terminal(SAGA_COMPENSATED));
    TH_CHECK_INT(saga_state_outcome(SAGA_STARTED), -1);
    TH_CHECK_INT(saga_state_outcome(SAGA_RESERVED), -1);
    TH_CHECK_INT(saga_state_outcome(SAGA_COMPLETED), 1);
    TH_CHECK_INT(saga_state_outcome(SAGA_COMPENSATING), 0);
    TH_CHECK_INT(saga_state_outcome(SAGA_COMPENSATED), 0);
    for (int i = 0; i < SAGA_STATE_MAX; i++) {
        TH_CHECK_INT(saga_state_parse(saga_state_name((enum saga_state)i), &st), CG_OK);
        TH_CHECK_INT(st, i);
    }
    TH_CHECK_INT(saga_state_parse("started", &st), CG_ERR_INVALID);
    TH_CHECK_INT(saga_state_parse(NULL, &st), CG_ERR_INVALID);
    TH_CHECK_STR(saga_state_name(SAGA_STATE_MAX), "?");
    TH_CHECK_INT(saga_comp_parse("cancel", &c), CG_OK);
    TH_CHECK_INT(c, SAGA_COMP_CANCEL);
    TH_CHECK_INT(saga_comp_parse("release", &c), CG_OK);
    TH_CHECK_INT(c, SAGA_COMP_RELEASE);
    TH_CHECK_INT(saga_comp_parse("later", &c), CG_ERR_INVALID);
    TH_CHECK_INT(saga_step_command(SAGA_STEP_RESERVE), MSG_STOCK_RESERVE);
    TH_CHECK_INT(saga_step_command(SAGA_STEP_CREATE), MSG_ORDER_CREATE);
    TH_CHECK_INT(saga_step_command(SAGA_STEP_CANCEL), MSG_ORDER_CANCEL);
    TH_CHECK_INT(saga_step_command(SAGA_STEP_RELEASE), MSG_STOCK_RELEASE);
    TH_CHECK_INT(saga_step_command(SAGA_STEP_LOG), MSG_KIND_MAX);
}

/* The happy path and both compensation paths, through the one setter. */
static void test_paths(void)
{
    saga s;

    memset(&s, 0, sizeof(s));
    snprintf(s.id, sizeof(s.id), "%032d", 1);
    saga_set_state(&s, SAGA_RESERVED);
    saga_set_state(&s, SAGA_COMPLETED);
    TH_CHECK_INT(s.state, SAGA_COMPLETED);
    s.state = SAGA_STARTED;
    saga_set_state(&s, SAGA_COMPENSATED);           /* definite rejection */
    s.state = SAGA_STARTED;
    saga_set_state(&s, SAGA_COMPENSATING);          /* reserve timed out */
    saga_set_state(&s, SAGA_COMPENSATED);
    s.state = SAGA_RESERVED;
    saga_set_state(&s, SAGA_COMPENSATING);          /* order failed */
    saga_set_state(&s, SAGA_COMPENSATED);
    TH_CHECK_INT(s.state, SAGA_COMPENSATED);
    /* a step change resets the attempt count */
    s.step = SAGA_STEP_RESERVE;
    s.attempts = 3;
    s.free_resend = 1;
    saga_set_step(&s, SAGA_STEP_RESERVE);
    TH_CHECK_INT(s.attempts, 3);
    saga_set_step(&s, SAGA_STEP_CREATE);
    TH_CHECK_INT(s.attempts, 0);
    TH_CHECK_INT(s.free_resend, 0);
}

static saga *mk(int i, long long deadline)
{
    saga *s = calloc(1, sizeof(*s));

    snprintf(s->id, sizeof(s->id), "%032x", (unsigned)i * 2654435761u);
    s->deadline_ms = deadline;
    s->heap_idx = SAGA_HEAP_NONE;
    return s;
}

static void test_table(void)
{
    enum { N = 5000 };
    saga_table t;
    saga **all = calloc(N, sizeof(*all));
    long long last = -1;
    size_t popped = 0;
    saga *s;

    TH_REQUIRE(all != NULL);
    TH_REQUIRE(saga_table_init(&t, 16) == CG_OK);
    srand(7);
    for (int i = 0; i < N; i++) {
        all[i] = mk(i, 0);
        TH_REQUIRE(saga_table_add(&t, all[i]) == CG_OK);
        TH_REQUIRE(saga_table_schedule(&t, all[i], rand() % 100000) == CG_OK);
    }
    TH_CHECK_INT(t.count, N);
    TH_CHECK(t.n_buckets >= N);
    for (int i = 0; i < N; i += 97)
        TH_CHECK(saga_table_find(&t, all[i]->id) == all[i]);
    TH_CHECK(saga_table_find(&t, "ffffffffffffffffffffffffffffffff") == NULL);
    /* move some deadlines, unschedule others, remove a few */
    for (int i = 0; i < N; i += 3)
        TH_REQUIRE(saga_table_schedule(&t, all[i], rand() % 100000) == CG_OK);
    for (int i = 1; i < N; i += 10)
        saga_table_unschedule(&t, all[i]);
    for (int i = 2; i < N; i += 50)
        saga_table_remove(&t, all[i]);
    TH_CHECK(saga_table_find(&t, all[2]->id) == NULL);
    TH_CHECK(saga_table_find(&t, all[3]->id) == all[3]);
    TH_CHECK(saga_table_pop_expired(&t, -1) == NULL);
    while ((s = saga_table_pop_expired(&t, 50000)) != NULL) {
        if (s->deadline_ms < last)
            TH_FAIL_AT("heap order: %lld after %lld", s->deadline_ms, last);
        TH_CHECK(s->deadline_ms <= 50000);
        TH_CHECK(s->heap_idx == SAGA_HEAP_NONE);
        last = s->deadline_ms;
        popped++;
    }
    TH_CHECK(popped > 0);
    while ((s = saga_table_pop_expired(&t, 1LL << 40)) != NULL) {
        TH_CHECK(s->deadline_ms >= last);
        last = s->deadline_ms;
        popped++;
    }
    TH_CHECK_INT(t.heap_len, 0);
    /* scheduled = N - unscheduled (500) - removed and not already unscheduled */
    TH_CHECK(popped > N - 700 && popped < N);
    for (int i = 0; i < N; i++)
        free(all[i]);
    free(all);
    saga_table_destroy(&t);
}

static void test_record_parse(void)
{
    const char *id = "0123456789abcdef0123456789abcdef";
    const char *full[] = {"state", "COMPENSATING", "user_id", "12", "coupon_id", "34",
                          "room_id", "5", "grab_time", "1795000000000", "owner", "orchestrator-2",
                          "reason", "timeout", "comp", "release", "created_ms", "1795000000000",
                          "started_ms", "1795000000000"};
    const char *no_comp[] = {"state", "COMPENSATING", "user_id", "1", "coupon_id", "2",
                             "room_id", "3", "grab_time", "1795000000000"};
    const char *bad_state[] = {"state", "DONE", "user_id", "1", "coupon_id", "2", "room_id", "3",
                               "grab_time", "4"};
    const char *bad_int[] = {"state", "STARTED", "user_id", "1x", "coupon_id", "2", "room_id", "3",
                             "grab_time", "4"};
    const char *missing[] = {"state", "STARTED", "user_id", "1", "coupon_id", "2"};
    saga_record r;

    TH_REQUIRE(saga_record_parse(id, full, TH_TABLE_LEN(full), &r) == CG_OK);
    TH_CHECK_STR(r.id, id);
    TH_CHECK_INT(r.state, SAGA_COMPENSATING);
    TH_CHECK_INT(r.user_id, 12);
    TH_CHECK_INT(r.coupon_id, 34);
    TH_CHECK_INT(r.room_id, 5);
    TH_CHECK_INT(r.grab_time, 1795000000000LL);
    TH_CHECK_STR(r.owner, "orchestrator-2");
    TH_CHECK_STR(r.reason, "timeout");
    TH_CHECK_INT(r.comp, SAGA_COMP_RELEASE);
    /* unknown progress of a compensation starts with the cancel */
    TH_REQUIRE(saga_record_parse(id, no_comp, TH_TABLE_LEN(no_comp), &r) == CG_OK);
    TH_CHECK_INT(r.comp, SAGA_COMP_CANCEL);
    TH_CHECK_INT(saga_record_parse(id, bad_state, TH_TABLE_LEN(bad_state), &r), CG_ERR_INVALID);
    TH_CHECK_INT(saga_record_parse(id, bad_int, TH_TABLE_LEN(bad_int), &r), CG_ERR_INVALID);
    TH_CHECK_INT(saga_record_parse(id, missing, TH_TABLE_LEN(missing), &r), CG_ERR_INVALID);
    TH_CHECK_INT(saga_record_parse(id, NULL, 0, &r), CG_ERR_NOTFOUND);
}

static void test_put_result_parse(void)
{
    const char *id = "0123456789abcdef0123456789abcdef";
    char bound[MSG_SAGA_ID_LEN + 1], answer[64];

    TH_CHECK_INT(saga_put_result_parse("ok", bound), SAGA_PUT_OK);
    TH_CHECK_STR(bound, "");
    TH_CHECK_INT(saga_put_result_parse("not_owner", bound), SAGA_PUT_NOT_OWNER);
    TH_CHECK_INT(saga_put_result_parse("stale", bound), SAGA_PUT_STALE);
    TH_CHECK_INT(saga_put_result_parse("missing", bound), SAGA_PUT_MISSING);
    snprintf(answer, sizeof(answer), "bound:%s", id);
    TH_CHECK_INT(saga_put_result_parse(answer, bound), SAGA_PUT_BOUND);
    TH_CHECK_STR(bound, id);
    /* a binding that is not a saga id is no answer: the write is retried */
    TH_CHECK_INT(saga_put_result_parse("bound:", bound), SAGA_PUT_UNKNOWN);
    TH_CHECK_INT(saga_put_result_parse("bound:xyz", bound), SAGA_PUT_UNKNOWN);
    TH_CHECK_STR(bound, "");
    TH_CHECK_INT(saga_put_result_parse("OK", bound), SAGA_PUT_UNKNOWN);
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"transition table", test_transitions},
        {"state names, outcomes, step commands", test_states},
        {"granted and compensation paths", test_paths},
        {"table by id and deadline heap", test_table},
        {"saga log entry parsing", test_record_parse},
        {"saga log write answers", test_put_result_parse},
    };

    return th_main("orch_saga", tests, TH_TABLE_LEN(tests), argc, argv);
}
