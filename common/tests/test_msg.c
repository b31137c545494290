/* test_msg.c - unit tests of the saga message codec. */
#include <stdlib.h>

#include "msg.h"
#include "testhelp.h"

static msg_batch batch, back;

static const char *sid = "0123456789abcdef0123456789abcdef";

static void test_kind_names(void)
{
    enum msg_kind k;

    TH_CHECK_STR(msg_kind_name(MSG_ORDER_CANCEL), "order.cancel");
    TH_CHECK_INT(msg_kind_parse("stock.reply", &k), CG_OK);
    TH_CHECK_INT(k, MSG_STOCK_REPLY);
    TH_CHECK_INT(msg_kind_parse("stock.steal", &k), CG_ERR_INVALID);
    TH_CHECK_INT(msg_kind_parse(NULL, &k), CG_ERR_INVALID);
}

static void test_saga_ids(void)
{
    char id[MSG_SAGA_ID_LEN + 1], other[MSG_SAGA_ID_LEN + 1];

    TH_REQUIRE(msg_saga_id_new(id) == CG_OK);
    TH_REQUIRE(msg_saga_id_new(other) == CG_OK);
    TH_CHECK(msg_saga_id_valid(id));
    TH_CHECK(strcmp(id, other) != 0);
    TH_CHECK(msg_saga_id_valid(sid));
    TH_CHECK(!msg_saga_id_valid("0123456789ABCDEF0123456789abcdef"));
    TH_CHECK(!msg_saga_id_valid("0123456789abcdef0123456789abcde"));
    TH_CHECK(!msg_saga_id_valid("0123456789abcdef0123456789abcdef0"));
}

static void test_round_trip(void)
{
    char *body = NULL;
    size_t len = 0;
    jv_error err;

    memset(&batch, 0, sizeof(batch));
    batch.kind = MSG_ORDER_CREATE;
    batch.n = 3;
    for (int i = 0; i < 3; i++) {
        snprintf(batch.items[i].saga_id, sizeof(batch.items[i].saga_id), "%031x%d", i, i);
        batch.items[i].user_id = 1000 + i;
        batch.items[i].coupon_id = 7;
        batch.items[i].room_id = 2;
        batch.items[i].grab_time = 1795000000000LL + i;
    }
    TH_REQUIRE(msg_encode_new(&batch, &body, &len) == CG_OK);
    TH_CHECK_INT(len, strlen(body));
    TH_CHECK_INT(msg_decode(MSG_ORDER_CREATE, body, len, &back, &err), CG_OK);
    TH_CHECK_INT(back.n, 3);
    TH_CHECK(memcmp(batch.items, back.items, sizeof(msg_item) * 3) == 0);
    free(body);
    /* replies keep their optional reason */
    memset(&batch, 0, sizeof(batch));
    batch.kind = MSG_STOCK_REPLY;
    batch.n = 2;
    strcpy(batch.items[0].saga_id, sid);
    strcpy(batch.items[0].result, MSG_RESULT_RESERVED);
    strcpy(batch.items[1].saga_id, sid);
    strcpy(batch.items[1].result, MSG_RESULT_REJECTED);
    strcpy(batch.items[1].reason, MSG_REASON_OUT_OF_STOCK);
    TH_REQUIRE(msg_encode_new(&batch, &body, &len) == CG_OK);
    TH_CHECK_INT(msg_decode(MSG_STOCK_REPLY, body, len, &back, &err), CG_OK);
    TH_CHECK_STR(back.items[1].reason, "out_of_stock");
    TH_CHECK_STR(back.items[0].reason, "");
    free(body);
}

static void expect_bad(enum msg_kind kind, const char *body, const char *field)
{
    jv_error err;
    int rc;

    memset(&err, 0, sizeof(err));
    rc = msg_decode(kind, body, strlen(body), &back, &err);
    if (rc != CG_ERR_INVALID || strcmp(err.field, field) != 0)
        TH_FAIL_AT("%s: rc=%d field='%s' (%s), expected field '%s'", body, rc, err.field, err.msg,
                   field);
}

static void test_bad_messages(void)
{
    char body[512];

    expect_bad(MSG_STOCK_RESERVE, "{\"items\":[]}", "items");
    expect_bad(MSG_STOCK_RESERVE, "{\"items\":{}}", "items");
    expect_bad(MSG_STOCK_RESERVE, "{\"items\":[{}],\"extra\":1}", "items");
    expect_bad(MSG_STOCK_RESERVE, "{\"items\":[1]}", "items[0]");
    snprintf(body, sizeof(body), "{\"items\":[{\"saga_id\":\"%s\",\"coupon_id\":1,\"user_id\":2},"
             "{\"saga_id\":\"%s\",\"coupon_id\":1,\"user_id\":\"2\"}]}", sid, sid);
    expect_bad(MSG_STOCK_RESERVE, body, "items[1].user_id");
    snprintf(body, sizeof(body), "{\"items\":[{\"saga_id\":\"%.31sX\",\"coupon_id\":1,\"user_id\":2}]}", sid);
    expect_bad(MSG_STOCK_RESERVE, body, "items[0].saga_id");
    snprintf(body, sizeof(body), "{\"items\":[{\"saga_id\":\"%s\",\"coupon_id\":1,\"user_id\":2,"
             "\"room_id\":3}]}", sid);
    expect_bad(MSG_STOCK_RESERVE, body, "items[0].room_id");
    snprintf(body, sizeof(body), "{\"items\":[{\"saga_id\":\"%s\",\"user_id\":1,\"coupon_id\":1,"
             "\"room_id\":3,\"grab_time\":5}]}", sid);
    expect_bad(MSG_ORDER_CREATE, body, "items[0].grab_time");
    snprintf(body, sizeof(body), "{\"items\":[{\"saga_id\":\"%s\",\"result\":\"created\"}]}", sid);
    expect_bad(MSG_STOCK_REPLY, body, "items[0].result");
    snprintf(body, sizeof(body), "{\"items\":[{\"saga_id\":\"%s\",\"result\":\"created\"}]}", sid);
    {
        jv_error ok_err;

        TH_CHECK_INT(msg_decode(MSG_ORDER_REPLY, body, strlen(body), &back, &ok_err), CG_OK);
    }
}

static void test_batch_limit(void)
{
    size_t cap = 128 * (MSG_MAX_BATCH + 2);
    char *body = malloc(cap);
    size_t len = 0;
    jv_error err;

    TH_REQUIRE(body != NULL);
    len += (size_t)snprintf(body + len, cap - len, "{\"items\":[");
    for (int i = 0; i <= MSG_MAX_BATCH; i++)
        len += (size_t)snprintf(body + len, cap - len, "%s{\"saga_id\":\"%s\",\"result\":\"released\"}",
                                i ? "," : "", sid);
    len += (size_t)snprintf(body + len, cap - len, "]}");
    TH_CHECK_INT(msg_decode(MSG_STOCK_REPLY, body, len, &back, &err), CG_ERR_INVALID);
    TH_CHECK_STR(err.field, "items");
    free(body);
    batch.n = 0;
    TH_CHECK_INT(msg_encode_new(&batch, &body, &len), CG_ERR_INVALID);
}

static void test_topology(void)
{
    mq_topology t;

    msg_topology(&t, NULL);
    TH_CHECK_INT(t.n_queues, 3);
    TH_CHECK_STR(t.queues[0].dead_letter_exchange, MSG_EXCHANGE_DLX);
    msg_topology(&t, "orch.reply.a");
    TH_CHECK_INT(t.n_queues, 4);
    TH_CHECK_STR(t.queues[3].name, "orch.reply.a");
    TH_CHECK_INT(t.queues[3].exclusive, 0); /* replies must outlive a crash */
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"kind names", test_kind_names},
        {"saga ids", test_saga_ids},
        {"encode/decode round trip", test_round_trip},
        {"bad messages name the item and field", test_bad_messages},
        {"batch size limit", test_batch_limit},
        {"topology", test_topology},
    };

    return th_main("msg", tests, TH_TABLE_LEN(tests), argc, argv);
}
