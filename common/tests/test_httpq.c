/* test_httpq.c - path ids and query parameters (httpq.h). */
#include "httpq.h"
#include "testhelp.h"

static void test_path_ids(void)
{
    long long id = -1;

    TH_CHECK_INT(httpq_path_match("/api/user/42/coupons", "/api/user/#/coupons", &id), HTTPQ_MATCH);
    TH_CHECK_INT(id, 42);
    TH_CHECK_INT(httpq_path_match("/api/coupon/9000000000000000000/stock", "/api/coupon/#/stock",
                                  &id), HTTPQ_MATCH);
    TH_CHECK_INT(id, 9000000000000000000LL);
    TH_CHECK_INT(httpq_path_match("/api/coupon/9000000000000000001/stock", "/api/coupon/#/stock",
                                  &id), HTTPQ_BAD_ID);
    TH_CHECK_INT(httpq_path_match("/api/user/0/coupons", "/api/user/#/coupons", &id), HTTPQ_BAD_ID);
    TH_CHECK_INT(httpq_path_match("/api/user/007/coupons", "/api/user/#/coupons", &id), HTTPQ_BAD_ID);
    TH_CHECK_INT(httpq_path_match("/api/user/-1/coupons", "/api/user/#/coupons", &id), HTTPQ_BAD_ID);
    TH_CHECK_INT(httpq_path_match("/api/user/1x/coupons", "/api/user/#/coupons", &id), HTTPQ_BAD_ID);
    TH_CHECK_INT(httpq_path_match("/api/user//coupons", "/api/user/#/coupons", &id), HTTPQ_BAD_ID);
    TH_CHECK_INT(httpq_path_match("/api/user/99999999999999999999/coupons", "/api/user/#/coupons",
                                  &id), HTTPQ_BAD_ID);
    TH_CHECK_INT(httpq_path_match("/api/user/1/2/coupons", "/api/user/#/coupons", &id),
                 HTTPQ_NO_MATCH);
    TH_CHECK_INT(httpq_path_match("/api/user/1/orders", "/api/user/#/coupons", &id), HTTPQ_NO_MATCH);
    TH_CHECK_INT(httpq_path_match("/api/users/1/coupons", "/api/user/#/coupons", &id),
                 HTTPQ_NO_MATCH);
    TH_CHECK_INT(httpq_path_match("/api/user/coupons", "/api/user/#/coupons", &id), HTTPQ_NO_MATCH);
    TH_CHECK_INT(httpq_path_match("/admin/stats", "/admin/stats", &id), HTTPQ_MATCH);
    TH_CHECK_INT(id, 0);
    TH_CHECK_INT(httpq_path_match("/admin/stats/", "/admin/stats", &id), HTTPQ_NO_MATCH);
    TH_CHECK_INT(httpq_path_match(NULL, "/admin/stats", &id), HTTPQ_NO_MATCH);
}

static const httpq_int_spec specs[] = {
    {"hours", 1, 1, 720},
    {"limit", 50, 1, 500},
};

static void test_query_ints(void)
{
    long long v[2];
    const char *bad = "x";
    cg_error err = {0, ""};

    TH_CHECK_INT(httpq_parse_ints(NULL, specs, 2, v, &bad, &err), CG_OK);
    TH_CHECK_INT(v[0], 1);
    TH_CHECK_INT(v[1], 50);
    TH_CHECK(bad == NULL);
    TH_CHECK_INT(httpq_parse_ints("limit=500&hours=24", specs, 2, v, &bad, &err), CG_OK);
    TH_CHECK_INT(v[0], 24);
    TH_CHECK_INT(v[1], 500);
    TH_CHECK_INT(httpq_parse_ints("limit=%32%30", specs, 2, v, &bad, &err), CG_OK);
    TH_CHECK_INT(v[1], 20);
}

static void test_query_errors(void)
{
    static const struct {
        const char *query, *bad, *msg_part;
    } cases[] = {
        {"limit=501", "limit", "1..500"},
        {"limit=0", "limit", "1..500"},
        {"limit=-5", "limit", "1..500"},
        {"limit=", "limit", "integer"},
        {"limit=ten", "limit", "integer"},
        {"limit=5x", "limit", "integer"},
        {"limit=+5", "limit", "integer"},
        {"limit=99999999999999999999", "limit", "integer"},
        {"limit=5&limit=6", "limit", "more than once"},
        {"hours=0", "hours", "1..720"},
        {"offset=3", "query", "unknown parameter 'offset'"},
        {"limit", "query", "malformed"},
    };
    long long v[2];
    const char *bad;
    cg_error err;

    for (size_t i = 0; i < TH_TABLE_LEN(cases); i++) {
        bad = NULL;
        err.code = 0;
        err.msg[0] = '\0';
        TH_CHECK_INT(httpq_parse_ints(cases[i].query, specs, 2, v, &bad, &err), CG_ERR_INVALID);
        if (bad == NULL || strcmp(bad, cases[i].bad) != 0)
            TH_FAIL_AT("%s: bad param %s, expected %s", cases[i].query, bad ? bad : "(null)",
                       cases[i].bad);
        if (strstr(err.msg, cases[i].msg_part) == NULL)
            TH_FAIL_AT("%s: message '%s' lacks '%s'", cases[i].query, err.msg, cases[i].msg_part);
    }
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"ids in paths", test_path_ids},
        {"integer parameters", test_query_ints},
        {"bad parameters name themselves", test_query_errors},
    };

    return th_main("httpq", tests, TH_TABLE_LEN(tests), argc, argv);
}
