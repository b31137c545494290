/* test_ord_batch.c - unit tests of order-svc's batching: the per-shard queue
 * (grouping, order, put-back, giving up creates) and the statement text of
 * the shard transactions, with fixed expected values. No servers. */
#include <stdio.h>
#include <string.h>

#include "../src/ord_queue.h"
#include "../src/ord_sql.h"
#include "testhelp.h"

#define N_ITEMS 1100

static ord_item pool[N_ITEMS];

/* Item i: saga id "0000...<i in hex>", user 100+i, coupon 7, room 3. */
static ord_item *item(int i, int op)
{
    ord_item *it = &pool[i];

    memset(it, 0, sizeof(*it));
    snprintf(it->in.saga_id, sizeof(it->in.saga_id), "%032x", (unsigned)i);
    it->in.user_id = 100 + i;
    it->in.coupon_id = 7;
    it->in.room_id = 3;
    it->in.grab_time = 1700000000123LL + i;
    it->op = op;
    return it;
}

static void test_list(void)
{
    ord_list a = {NULL, NULL, 0}, b = {NULL, NULL, 0};

    ord_list_push(&a, item(0, ORD_OP_CREATE));
    ord_list_push(&a, item(1, ORD_OP_CREATE));
    ord_list_push(&b, item(2, ORD_OP_CREATE));
    ord_list_splice(&a, &b);
    TH_CHECK_INT(a.n, 3);
    TH_CHECK_INT(b.n, 0);
    TH_CHECK(b.head == NULL && b.tail == NULL);
    TH_CHECK(ord_list_pop(&a) == &pool[0]);
    TH_CHECK(ord_list_pop(&a) == &pool[1]);
    TH_CHECK(ord_list_pop(&a) == &pool[2]);
    TH_CHECK(ord_list_pop(&a) == NULL);
    TH_CHECK_INT(a.n, 0);
    TH_CHECK(a.tail == NULL);
}

static void test_take_groups_by_op_and_bounds(void)
{
    ord_queue q;
    ord_item *out[MSG_MAX_BATCH];
    int op = -1;
    size_t n;

    memset(&q, 0, sizeof(q));
    TH_CHECK_INT(ord_queue_take(&q, 10, out, &op), 0);
    /* creates at t=10..14, cancels at t=12, 13 */
    for (int i = 0; i < 5; i++)
        ord_queue_push(&q, item(i, ORD_OP_CREATE), 10 + i);
    ord_queue_push(&q, item(5, ORD_OP_CANCEL), 12);
    ord_queue_push(&q, item(6, ORD_OP_CANCEL), 13);
    TH_CHECK_INT(ord_queue_len(&q), 7);
    TH_CHECK_INT(ord_queue_len_op(&q, ORD_OP_CANCEL), 2);

    /* oldest head first: the creates (t=10), at most 3 */
    n = ord_queue_take(&q, 3, out, &op);
    TH_CHECK_INT(n, 3);
    TH_CHECK_INT(op, ORD_OP_CREATE);
    TH_CHECK(out[0] == &pool[0] && out[1] == &pool[1] && out[2] == &pool[2]);
    /* now create head t=13, cancel head t=12: the cancels, all of them */
    n = ord_queue_take(&q, 10, out, &op);
    TH_CHECK_INT(n, 2);
    TH_CHECK_INT(op, ORD_OP_CANCEL);
    TH_CHECK(out[0] == &pool[5] && out[1] == &pool[6]);
    n = ord_queue_take(&q, 10, out, &op);
    TH_CHECK_INT(n, 2);
    TH_CHECK_INT(op, ORD_OP_CREATE);
    TH_CHECK_INT(ord_queue_len(&q), 0);

    /* a tie goes to the cancel */
    ord_queue_push(&q, item(7, ORD_OP_CREATE), 50);
    ord_queue_push(&q, item(8, ORD_OP_CANCEL), 50);
    n = ord_queue_take(&q, 10, out, &op);
    TH_CHECK_INT(n, 1);
    TH_CHECK_INT(op, ORD_OP_CANCEL);
    n = ord_queue_take(&q, 10, out, &op);
    TH_CHECK_INT(op, ORD_OP_CREATE);

    /* never more than MSG_MAX_BATCH, whatever max says */
    for (int i = 0; i < N_ITEMS; i++)
        ord_queue_push(&q, item(i, ORD_OP_CREATE), 100);
    n = ord_queue_take(&q, 100000, out, &op);
    TH_CHECK_INT(n, MSG_MAX_BATCH);
    TH_CHECK(out[0] == &pool[0] && out[MSG_MAX_BATCH - 1] == &pool[MSG_MAX_BATCH - 1]);
    TH_CHECK_INT(ord_queue_len(&q), N_ITEMS - MSG_MAX_BATCH);
}

static void test_put_back_keeps_order_and_stamps(void)
{
    ord_queue q;
    ord_item *out[MSG_MAX_BATCH];
    int op;
    size_t n;

    memset(&q, 0, sizeof(q));
    for (int i = 0; i < 6; i++)
        ord_queue_push(&q, item(i, ORD_OP_CREATE), 10 + i);
    n = ord_queue_take(&q, 4, out, &op);
    TH_REQUIRE(n == 4);
    ord_queue_push(&q, item(6, ORD_OP_CREATE), 99);
    /* items 1 and 3 could not be decided: they go first again, in order */
    out[0] = &pool[1];
    out[1] = &pool[3];
    ord_queue_put_back(&q, out, 2);
    TH_CHECK_INT(ord_queue_len(&q), 5);
    TH_CHECK_INT(pool[1].queued_ms, 11);
    n = ord_queue_take(&q, 10, out, &op);
    TH_REQUIRE(n == 5);
    TH_CHECK(out[0] == &pool[1]);
    TH_CHECK(out[1] == &pool[3]);
    TH_CHECK(out[2] == &pool[4]);
    TH_CHECK(out[3] == &pool[5]);
    TH_CHECK(out[4] == &pool[6]);
    /* into an empty list as well */
    ord_queue_put_back(&q, out, 2);
    TH_CHECK_INT(ord_queue_len_op(&q, ORD_OP_CREATE), 2);
    TH_CHECK(q.ops[ORD_OP_CREATE].tail == &pool[3]);
}

static void test_give_up_creates_only(void)
{
    ord_queue q;
    ord_list out = {NULL, NULL, 0};

    memset(&q, 0, sizeof(q));
    ord_queue_push(&q, item(0, ORD_OP_CREATE), 1000);   /* queued before the shard went down */
    ord_queue_push(&q, item(1, ORD_OP_CREATE), 5000);   /* queued while it was down */
    ord_queue_push(&q, item(2, ORD_OP_CREATE), 1000);
    pool[2].commit_unknown = 1;                          /* may be committed: never given up */
    ord_queue_push(&q, item(3, ORD_OP_CANCEL), 1000);   /* cancels wait for the shard */

    /* shard up: nothing happens */
    TH_CHECK_INT(ord_queue_give_up(&q, 100000, 0, 3000, &out), 0);
    TH_CHECK_INT(ord_queue_next_give_up(&q, 0, 3000), -1);
    /* down since t=2000: item 0 is due at 5000, item 1 at 8000 */
    TH_CHECK_INT(ord_queue_next_give_up(&q, 2000, 3000), 5000);
    TH_CHECK_INT(ord_queue_give_up(&q, 4999, 2000, 3000, &out), 0);
    TH_CHECK_INT(ord_queue_give_up(&q, 5000, 2000, 3000, &out), 1);
    TH_CHECK(out.head == &pool[0]);
    TH_CHECK_INT(pool[0].outcome, ORD_OUT_FAILED);
    TH_CHECK_STR(pool[0].reason, ORD_REASON_SHARD_UNAVAILABLE);
    TH_CHECK_INT(ord_queue_next_give_up(&q, 2000, 3000), 8000);
    TH_CHECK_INT(ord_queue_give_up(&q, 60000, 2000, 3000, &out), 1);
    TH_CHECK_INT(out.n, 2);
    TH_CHECK_INT(pool[1].outcome, ORD_OUT_FAILED);
    /* left: the unknown commit and the cancel */
    TH_CHECK_INT(pool[2].outcome, ORD_OUT_NONE);
    TH_CHECK_INT(pool[3].outcome, ORD_OUT_NONE);
    TH_CHECK_INT(ord_queue_len(&q), 2);
    TH_CHECK_INT(ord_queue_next_give_up(&q, 2000, 3000), -1);
    TH_CHECK(q.ops[ORD_OP_CREATE].head == &pool[2] && q.ops[ORD_OP_CREATE].tail == &pool[2]);
}

static void test_settle_and_barred(void)
{
    ord_item *b[4] = {item(0, ORD_OP_CREATE), item(1, ORD_OP_CREATE), item(2, ORD_OP_CREATE),
                      item(3, ORD_OP_CREATE)};

    /* the same saga twice in one batch: both barred */
    memcpy(b[3]->in.saga_id, b[1]->in.saga_id, sizeof(b[1]->in.saga_id));
    TH_CHECK_INT(ord_items_mark_barred(b, 4, b[1]->in.saga_id), 2);
    TH_CHECK_INT(ord_items_mark_barred(b, 4, "ffffffffffffffffffffffffffffffff"), 0);
    ord_items_settle_create(b, 4);
    TH_CHECK_INT(b[0]->outcome, ORD_OUT_CREATED);
    TH_CHECK(b[0]->reason == NULL);
    TH_CHECK_INT(b[1]->outcome, ORD_OUT_FAILED);
    TH_CHECK_STR(b[1]->reason, MSG_REASON_BARRED);
    TH_CHECK_INT(b[3]->outcome, ORD_OUT_FAILED);
    TH_CHECK_STR(ord_outcome_result(b[0]->outcome), "created");
    TH_CHECK_STR(ord_outcome_result(b[1]->outcome), "failed");
    ord_items_settle_cancel(b, 2);
    TH_CHECK_STR(ord_outcome_result(b[1]->outcome), "cancelled");
    TH_CHECK(b[1]->reason == NULL);
    TH_CHECK(ord_outcome_result(ORD_OUT_NONE) == NULL);
}

static void test_sql_time(void)
{
    char buf[40];

    TH_REQUIRE(ord_sql_time(1700000000123LL, buf, sizeof(buf)) == CG_OK);
    TH_CHECK_STR(buf, "'2023-11-14 22:13:20.123'");
    TH_REQUIRE(ord_sql_time(946684800000LL, buf, sizeof(buf)) == CG_OK);
    TH_CHECK_STR(buf, "'2000-01-01 00:00:00.000'");
    TH_REQUIRE(ord_sql_time(951825599999LL, buf, sizeof(buf)) == CG_OK);   /* leap day */
    TH_CHECK_STR(buf, "'2000-02-29 11:59:59.999'");
    TH_CHECK_INT(ord_sql_time(-1, buf, sizeof(buf)), CG_ERR_INVALID);
    TH_CHECK_INT(ord_sql_time(0, buf, 10), CG_ERR_FULL);
}

static void test_sql_create(void)
{
    static char sql[ORD_SQL_MAX];
    ord_item *b[3] = {item(1, ORD_OP_CREATE), item(2, ORD_OP_CREATE), item(3, ORD_OP_CREATE)};
    size_t rows = 99;

    TH_REQUIRE(ord_sql_barrier_select(b, 2, sql, sizeof(sql)) == CG_OK);
    TH_CHECK_STR(sql, "SELECT saga_id FROM saga_barriers WHERE saga_id IN "
                      "('00000000000000000000000000000001','00000000000000000000000000000002') "
                      "LOCK IN SHARE MODE");
    b[1]->barred = 1;
    TH_REQUIRE(ord_sql_create_insert(b, 3, sql, sizeof(sql), &rows) == CG_OK);
    TH_CHECK_INT(rows, 2);
    TH_CHECK_STR(sql, "INSERT INTO coupon_results "
                      "(saga_id,user_id,coupon_id,room_id,grab_status,grab_time) VALUES "
                      "('00000000000000000000000000000001',101,7,3,1,'2023-11-14 22:13:20.124'),"
                      "('00000000000000000000000000000003',103,7,3,1,'2023-11-14 22:13:20.126') "
                      "ON DUPLICATE KEY UPDATE saga_id = saga_id");
    /* all barred: nothing to insert */
    b[0]->barred = b[2]->barred = 1;
    TH_REQUIRE(ord_sql_create_insert(b, 3, sql, sizeof(sql), &rows) == CG_OK);
    TH_CHECK_INT(rows, 0);
    TH_CHECK_STR(sql, "");
}

static void test_sql_cancel(void)
{
    char sql[512];
    ord_item *b[2] = {item(10, ORD_OP_CANCEL), item(11, ORD_OP_CANCEL)};

    TH_REQUIRE(ord_sql_cancel_barriers(b, 2, sql, sizeof(sql)) == CG_OK);
    TH_CHECK_STR(sql, "INSERT IGNORE INTO saga_barriers (saga_id) VALUES "
                      "('0000000000000000000000000000000a'),('0000000000000000000000000000000b')");
    TH_REQUIRE(ord_sql_cancel_delete(b, 2, sql, sizeof(sql)) == CG_OK);
    TH_CHECK_STR(sql, "DELETE FROM coupon_results WHERE saga_id IN "
                      "('0000000000000000000000000000000a','0000000000000000000000000000000b')");
}

static void test_sql_refuses_bad_input(void)
{
    static char sql[ORD_SQL_MAX];
    ord_item *b[MSG_MAX_BATCH + 1];
    size_t rows;

    /* a saga id that is not 32 hex digits never reaches the SQL text */
    b[0] = item(0, ORD_OP_CANCEL);
    memcpy(b[0]->in.saga_id, "0000000000000000000000000000'--x", 33);
    TH_CHECK_INT(ord_sql_cancel_barriers(b, 1, sql, sizeof(sql)), CG_ERR_INVALID);
    TH_CHECK_INT(ord_sql_cancel_delete(b, 1, sql, sizeof(sql)), CG_ERR_INVALID);
    TH_CHECK_INT(ord_sql_barrier_select(b, 1, sql, sizeof(sql)), CG_ERR_INVALID);
    TH_CHECK_INT(ord_sql_create_insert(b, 1, sql, sizeof(sql), &rows), CG_ERR_INVALID);
    TH_CHECK_INT(ord_sql_cancel_delete(b, 0, sql, sizeof(sql)), CG_ERR_INVALID);
    /* a small buffer is reported, not overrun */
    b[0] = item(0, ORD_OP_CANCEL);
    TH_CHECK_INT(ord_sql_cancel_delete(b, 1, sql, 20), CG_ERR_FULL);
    /* the largest batch fits ORD_SQL_MAX, with the largest values */
    for (int i = 0; i < MSG_MAX_BATCH; i++) {
        b[i] = item(i, ORD_OP_CREATE);
        b[i]->in.user_id = b[i]->in.coupon_id = b[i]->in.room_id = 9000000000000000000LL;
        b[i]->in.grab_time = 7258118400000LL;
    }
    TH_CHECK_INT(ord_sql_create_insert(b, MSG_MAX_BATCH, sql, sizeof(sql), &rows), CG_OK);
    TH_CHECK_INT(rows, MSG_MAX_BATCH);
    TH_CHECK_INT(ord_sql_barrier_select(b, MSG_MAX_BATCH, sql, sizeof(sql)), CG_OK);
    TH_CHECK_INT(ord_sql_cancel_barriers(b, MSG_MAX_BATCH, sql, sizeof(sql)), CG_OK);
    b[MSG_MAX_BATCH] = item(MSG_MAX_BATCH, ORD_OP_CREATE);
    TH_CHECK_INT(ord_sql_barrier_select(b, MSG_MAX_BATCH + 1, sql, sizeof(sql)), CG_ERR_INVALID);
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"item lists", test_list},
        {"take: one operation, oldest first, bounded", test_take_groups_by_op_and_bounds},
        {"put back: first again, same order and stamps", test_put_back_keeps_order_and_stamps},
        {"give up: only creates without an unknown commit", test_give_up_creates_only},
        {"settle outcomes and barred items", test_settle_and_barred},
        {"sql: UTC time literal", test_sql_time},
        {"sql: create transaction", test_sql_create},
        {"sql: cancel transaction", test_sql_cancel},
        {"sql: bad ids, small buffers, largest batch", test_sql_refuses_bad_input},
    };

    return th_main("ord_batch", tests, TH_TABLE_LEN(tests), argc, argv);
}
