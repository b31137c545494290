/* test_orch_req.c - unit tests of the orchestrator's request decoding
 * (http_req.c): strict bodies whose 400 names the field, and the
 * Idempotency-Key charset. */
#include <string.h>

#include "../src/http_req.h"
#include "testhelp.h"

#define LIMIT 4096

static int grab(const char *body, grab_req *g, jv_error *err)
{
    memset(err, 0, sizeof(*err));
    return grab_req_decode(body, strlen(body), LIMIT, g, err);
}

static void test_grab_ok(void)
{
    grab_req g;
    jv_error err;

    TH_REQUIRE(grab("{\"user_id\":42,\"coupon_id\":7}", &g, &err) == CG_OK);
    TH_CHECK_INT(g.user_id, 42);
    TH_CHECK_INT(g.coupon_id, 7);
    TH_CHECK_INT(g.room_id, 0);
    TH_REQUIRE(grab("{\"coupon_id\":7,\"room_id\":2,\"user_id\":9000000000000000000}", &g, &err) ==
               CG_OK);
    TH_CHECK_INT(g.room_id, 2);
    TH_CHECK_INT(g.user_id, 9000000000000000000LL);
}

static void test_grab_names_the_field(void)
{
    static const struct {
        const char *body;
        const char *field;   /* "" when the document as a whole is wrong */
    } cases[] = {
        {"{\"coupon_id\":7}", "user_id"},
        {"{\"user_id\":1}", "coupon_id"},
        {"{\"user_id\":\"1\",\"coupon_id\":7}", "user_id"},
        {"{\"user_id\":1.0,\"coupon_id\":7}", "user_id"},
        {"{\"user_id\":0,\"coupon_id\":7}", "user_id"},
        {"{\"user_id\":-5,\"coupon_id\":7}", "user_id"},
        {"{\"user_id\":1,\"coupon_id\":7,\"room_id\":0}", "room_id"},
        {"{\"user_id\":1,\"coupon_id\":7,\"room_id\":null}", "room_id"},
        {"{\"user_id\":1,\"coupon_id\":9000000000000000001}", "coupon_id"},
        {"{\"user_id\":1,\"coupon_id\":7,\"extra\":true}", "extra"},
        {"{\"user_id\":1,\"user_id\":2,\"coupon_id\":7}", ""},
        {"[1,2]", ""},
        {"", ""},
        {"{\"user_id\":1,", ""},
        {"null", ""},
    };
    grab_req g;
    jv_error err;

    for (size_t i = 0; i < TH_TABLE_LEN(cases); i++) {
        int rc = grab(cases[i].body, &g, &err);

        if (rc != CG_ERR_INVALID || strcmp(err.field, cases[i].field) != 0)
            TH_FAIL_AT("body %s: rc %d field '%s' (want '%s')", cases[i].body, rc, err.field,
                       cases[i].field);
    }
}

static void test_grab_size_limit(void)
{
    char body[200];
    grab_req g;
    jv_error err;

    snprintf(body, sizeof(body), "{\"user_id\":1,\"coupon_id\":2}%*s", 100, "");
    TH_CHECK_INT(grab_req_decode(body, strlen(body), 64, &g, &err), CG_ERR_FULL);
}

static void test_coupon_req(void)
{
    coupon_req c;
    jv_error err;
    const char *ok = "{\"room_id\":3,\"coupon_name\":\"10 off\",\"total_stock\":100,"
                     "\"discount_amount\":10,\"description\":\"it's\"}";
    const char *bad_type = "{\"room_id\":3,\"coupon_name\":\"x\",\"total_stock\":1,\"coupon_type\":3}";
    const char *no_name = "{\"room_id\":3,\"total_stock\":1}";
    const char *empty_name = "{\"room_id\":3,\"coupon_name\":\"\",\"total_stock\":1}";
    const char *neg = "{\"room_id\":3,\"coupon_name\":\"x\",\"total_stock\":-1}";

    TH_REQUIRE(coupon_req_decode(ok, strlen(ok), LIMIT, &c, &err) == CG_OK);
    TH_CHECK_INT(c.room_id, 3);
    TH_CHECK_STR(c.coupon_name, "10 off");
    TH_CHECK_INT(c.total_stock, 100);
    TH_CHECK_INT(c.coupon_type, 1);
    TH_CHECK_STR(c.description, "it's");
    TH_CHECK_INT(coupon_req_decode(bad_type, strlen(bad_type), LIMIT, &c, &err), CG_ERR_INVALID);
    TH_CHECK_STR(err.field, "coupon_type");
    TH_CHECK_INT(coupon_req_decode(no_name, strlen(no_name), LIMIT, &c, &err), CG_ERR_INVALID);
    TH_CHECK_STR(err.field, "coupon_name");
    TH_CHECK_INT(coupon_req_decode(empty_name, strlen(empty_name), LIMIT, &c, &err), CG_ERR_INVALID);
    TH_CHECK_STR(err.field, "coupon_name");
    TH_CHECK_INT(coupon_req_decode(neg, strlen(neg), LIMIT, &c, &err), CG_ERR_INVALID);
    TH_CHECK_STR(err.field, "total_stock");
}

static void test_idem_key(void)
{
    char long_key[80];

    TH_CHECK(idem_key_valid("abc-123_X.y:z"));
    TH_CHECK(!idem_key_valid(""));
    TH_CHECK(!idem_key_valid(NULL));
    TH_CHECK(!idem_key_valid("has space"));
    TH_CHECK(!idem_key_valid("star*"));
    TH_CHECK(!idem_key_valid("brace{1}"));
    TH_CHECK(!idem_key_valid("caf\xc3\xa9"));
    memset(long_key, 'k', sizeof(long_key));
    long_key[64] = '\0';
    TH_CHECK(idem_key_valid(long_key));
    long_key[64] = 'k';
    long_key[65] = '\0';
    TH_CHECK(!idem_key_valid(long_key));
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"grab body accepted", test_grab_ok},
        {"grab body errors name the field", test_grab_names_the_field},
        {"grab body size limit", test_grab_size_limit},
        {"admin coupon body", test_coupon_req},
        {"Idempotency-Key charset and length", test_idem_key},
    };

    return th_main("orch_req", tests, TH_TABLE_LEN(tests), argc, argv);
}
