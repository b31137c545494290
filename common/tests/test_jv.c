/* test_jv.c - unit tests of strict JSON decoding: types, unknown keys,
 * duplicates, ranges, size limits, and an allocator that fails. */
#include <stdlib.h>

#include "jv.h"
#include "testhelp.h"

typedef struct grab_req {
    long long user_id;
    long long coupon_id;
    long long room_id;
    char note[8];
    int vip;
} grab_req;

static const jv_field grab_fields[] = {
    JV_INT_FIELD(grab_req, user_id, 1, 1, 1000000000LL),
    JV_INT_FIELD(grab_req, coupon_id, 1, 1, 1000000LL),
    JV_INT_FIELD(grab_req, room_id, 0, 1, 1000000LL),
    JV_STR_FIELD(grab_req, note, 0, 1),
    JV_BOOL_FIELD(grab_req, vip, 0),
};

static int decode(const char *text, grab_req *out, uint64_t *present, jv_error *err)
{
    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    return jv_decode(text, strlen(text), 256, grab_fields, TH_TABLE_LEN(grab_fields), out,
                     present, err);
}

static void test_valid(void)
{
    grab_req r;
    jv_error err;
    uint64_t present = 0;

    TH_CHECK_INT(decode("{\"user_id\":42,\"coupon_id\":7,\"room_id\":2,\"note\":\"hi\",\"vip\":true}",
                        &r, &present, &err), CG_OK);
    TH_CHECK_INT(r.user_id, 42);
    TH_CHECK_INT(r.coupon_id, 7);
    TH_CHECK_INT(r.room_id, 2);
    TH_CHECK_STR(r.note, "hi");
    TH_CHECK_INT(r.vip, 1);
    TH_CHECK_INT(present, 0x1f);
    /* optional fields may be absent and keep their value */
    TH_CHECK_INT(decode("{\"coupon_id\":7,\"user_id\":1}", &r, &present, &err), CG_OK);
    TH_CHECK_INT(present, 0x3);
    TH_CHECK_INT(r.room_id, 0);
}

/* Each bad document must fail with CG_ERR_INVALID and name the given field. */
static void expect_invalid(const char *text, const char *field)
{
    grab_req r;
    jv_error err;
    int rc = decode(text, &r, NULL, &err);

    if (rc != CG_ERR_INVALID || strcmp(err.field, field) != 0)
        TH_FAIL_AT("%s: rc=%d field='%s' msg='%s', expected field '%s'", text, rc, err.field,
                   err.msg, field);
}

static void test_bad_types(void)
{
    expect_invalid("{\"user_id\":\"42\",\"coupon_id\":7}", "user_id");
    expect_invalid("{\"user_id\":42.0,\"coupon_id\":7}", "user_id");
    expect_invalid("{\"user_id\":true,\"coupon_id\":7}", "user_id");
    expect_invalid("{\"user_id\":null,\"coupon_id\":7}", "user_id");
    expect_invalid("{\"user_id\":[1],\"coupon_id\":7}", "user_id");
    expect_invalid("{\"user_id\":1,\"coupon_id\":7,\"note\":5}", "note");
    expect_invalid("{\"user_id\":1,\"coupon_id\":7,\"vip\":1}", "vip");
}

static void test_ranges_and_lengths(void)
{
    expect_invalid("{\"user_id\":0,\"coupon_id\":7}", "user_id");
    expect_invalid("{\"user_id\":-5,\"coupon_id\":7}", "user_id");
    expect_invalid("{\"user_id\":1,\"coupon_id\":1000001}", "coupon_id");
    expect_invalid("{\"user_id\":1,\"coupon_id\":7,\"note\":\"\"}", "note");
    expect_invalid("{\"user_id\":1,\"coupon_id\":7,\"note\":\"12345678\"}", "note");
}

static void test_unknown_and_missing(void)
{
    expect_invalid("{\"user_id\":1,\"coupon_id\":7,\"admin\":true}", "admin");
    expect_invalid("{\"user_id\":1}", "coupon_id");
    expect_invalid("{}", "user_id");
}

static void test_duplicates(void)
{
    grab_req r;
    jv_error err;

    TH_CHECK_INT(decode("{\"user_id\":1,\"coupon_id\":7,\"user_id\":2}", &r, NULL, &err),
                 CG_ERR_INVALID);
    TH_CHECK(strstr(err.msg, "duplicate") != NULL);
}

static void test_document_shape(void)
{
    grab_req r;
    jv_error err;

    TH_CHECK_INT(decode("[1,2]", &r, NULL, &err), CG_ERR_INVALID);
    TH_CHECK_STR(err.field, "");
    TH_CHECK_INT(decode("42", &r, NULL, &err), CG_ERR_INVALID);
    TH_CHECK_INT(decode("", &r, NULL, &err), CG_ERR_INVALID);
    TH_CHECK_INT(decode("{\"user_id\":1,", &r, NULL, &err), CG_ERR_INVALID);
    TH_CHECK_INT(decode("{\"user_id\":1,\"coupon_id\":7} trailing", &r, NULL, &err),
                 CG_ERR_INVALID);
    /* the parser refuses NUL inside strings (no JSON_ALLOW_NUL) */
    TH_CHECK_INT(decode("{\"user_id\":1,\"coupon_id\":7,\"note\":\"a\\u0000b\"}", &r, NULL, &err),
                 CG_ERR_INVALID);
    TH_CHECK_INT(decode("{\"user_id\":99999999999999999999999,\"coupon_id\":7}", &r, NULL, &err),
                 CG_ERR_INVALID);
}

static void test_oversize(void)
{
    char big[400];
    grab_req r;
    jv_error err;

    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "{\"user_id\":1,\"coupon_id\":7}", 27);
    TH_CHECK_INT(decode(big, &r, NULL, &err), CG_ERR_FULL);
    TH_CHECK(strstr(err.msg, "limit") != NULL);
}

static void test_batch_items(void)
{
    const char *text = "{\"items\":[{\"user_id\":1,\"coupon_id\":2},{\"user_id\":3}]}";
    json_t *root = NULL, *items;
    grab_req r;
    jv_error err;

    TH_REQUIRE(jv_parse_object_new(text, strlen(text), 1024, &root, &err) == CG_OK);
    items = json_object_get(root, "items");
    TH_CHECK_INT(jv_decode_object(json_array_get(items, 0), grab_fields,
                                  TH_TABLE_LEN(grab_fields), &r, NULL, &err), CG_OK);
    TH_CHECK_INT(r.coupon_id, 2);
    TH_CHECK_INT(jv_decode_object(json_array_get(items, 1), grab_fields,
                                  TH_TABLE_LEN(grab_fields), &r, NULL, &err), CG_ERR_INVALID);
    TH_CHECK_STR(err.field, "coupon_id");
    json_decref(root);
}

/* A failing allocator: every path must report an error, none may crash. */
static int alloc_budget;

static void *failing_malloc(size_t size)
{
    if (alloc_budget-- <= 0)
        return NULL;
    return malloc(size);
}

static void test_failing_allocator(void)
{
    grab_req r;
    jv_error err;
    int ok = 0, nomem = 0;

    json_set_alloc_funcs(failing_malloc, free);
    for (int budget = 0; budget < 40; budget++) {
        int rc;

        alloc_budget = budget;
        rc = decode("{\"user_id\":42,\"coupon_id\":7,\"note\":\"hello\"}", &r, NULL, &err);
        if (rc == CG_OK)
            ok++;
        else if (rc == CG_ERR_NOMEM || rc == CG_ERR_INVALID)
            nomem++;
        else
            TH_FAIL_AT("budget %d: unexpected rc %d", budget, rc);
    }
    json_set_alloc_funcs(malloc, free);
    TH_CHECK(nomem > 0); /* small budgets must fail */
    TH_CHECK(ok > 0);    /* and a large one must succeed */
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"valid documents", test_valid},
        {"bad types name the field", test_bad_types},
        {"ranges and lengths", test_ranges_and_lengths},
        {"unknown and missing keys", test_unknown_and_missing},
        {"duplicate keys rejected", test_duplicates},
        {"document shape", test_document_shape},
        {"size limit", test_oversize},
        {"batch items", test_batch_items},
        {"failing allocator", test_failing_allocator},
    };

    return th_main("jv", tests, TH_TABLE_LEN(tests), argc, argv);
}
