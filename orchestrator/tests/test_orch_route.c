/* test_orch_route.c - unit tests of the orchestrator's HTTP routing table. */
#include <string.h>

#include "../src/http_route.h"
#include "testhelp.h"

static void test_routes(void)
{
    static const struct {
        enum http_method m;
        const char *path;
        enum route_result want;
        enum http_route route;
    } cases[] = {
        {HTTP_M_POST, "/api/coupon/grab", ROUTE_OK, ROUTE_GRAB},
        {HTTP_M_GET, "/api/coupon/grab", ROUTE_BAD_METHOD, ROUTE_GRAB},
        {HTTP_M_OTHER, "/api/coupon/grab", ROUTE_BAD_METHOD, ROUTE_GRAB},
        {HTTP_M_POST, "/admin/coupons", ROUTE_OK, ROUTE_ADMIN_COUPONS},
        {HTTP_M_GET, "/admin/coupons", ROUTE_BAD_METHOD, ROUTE_ADMIN_COUPONS},
        {HTTP_M_GET, "/healthz", ROUTE_OK, ROUTE_HEALTHZ},
        {HTTP_M_GET, "/readyz", ROUTE_OK, ROUTE_READYZ},
        {HTTP_M_POST, "/readyz", ROUTE_BAD_METHOD, ROUTE_READYZ},
        {HTTP_M_GET, "/api/grab/0123456789abcdef0123456789abcdef", ROUTE_OK, ROUTE_GRAB_STATUS},
        {HTTP_M_POST, "/api/grab/0123456789abcdef0123456789abcdef", ROUTE_BAD_METHOD,
         ROUTE_GRAB_STATUS},
        {HTTP_M_GET, "/api/grab/0123456789ABCDEF0123456789abcdef", ROUTE_BAD_PARAM, ROUTE_GRAB_STATUS},
        {HTTP_M_GET, "/api/grab/abc", ROUTE_BAD_PARAM, ROUTE_GRAB_STATUS},
        {HTTP_M_GET, "/api/grab/0123456789abcdef0123456789abcdef0", ROUTE_BAD_PARAM,
         ROUTE_GRAB_STATUS},
        {HTTP_M_GET, "/api/grab/", ROUTE_NOT_FOUND, ROUTE_NONE},
        {HTTP_M_GET, "/api/grab/0123456789abcdef0123456789abcdef/x", ROUTE_NOT_FOUND, ROUTE_NONE},
        {HTTP_M_POST, "/api/coupon/grab/", ROUTE_NOT_FOUND, ROUTE_NONE},
        {HTTP_M_GET, "/", ROUTE_NOT_FOUND, ROUTE_NONE},
        {HTTP_M_GET, "", ROUTE_NOT_FOUND, ROUTE_NONE},
        {HTTP_M_GET, NULL, ROUTE_NOT_FOUND, ROUTE_NONE},
        {HTTP_M_GET, "/HEALTHZ", ROUTE_NOT_FOUND, ROUTE_NONE},
        {HTTP_M_GET, "/api/user/7/coupons", ROUTE_OK, ROUTE_USER_COUPONS},
        {HTTP_M_POST, "/api/user/7/coupons", ROUTE_BAD_METHOD, ROUTE_USER_COUPONS},
        {HTTP_M_GET, "/api/user/x/coupons", ROUTE_BAD_PARAM, ROUTE_USER_COUPONS},
        {HTTP_M_GET, "/api/user/0/coupons", ROUTE_BAD_PARAM, ROUTE_USER_COUPONS},
        {HTTP_M_GET, "/api/user/7/8/coupons", ROUTE_NOT_FOUND, ROUTE_NONE},
        {HTTP_M_GET, "/api/coupon/500/stock", ROUTE_OK, ROUTE_COUPON_STOCK},
        {HTTP_M_GET, "/api/room/1/stats", ROUTE_OK, ROUTE_ROOM_STATS},
        {HTTP_M_GET, "/api/room/1/orders", ROUTE_OK, ROUTE_ROOM_ORDERS},
        {HTTP_M_GET, "/api/room/-1/orders", ROUTE_BAD_PARAM, ROUTE_ROOM_ORDERS},
        {HTTP_M_GET, "/api/orders/recent", ROUTE_OK, ROUTE_RECENT_ORDERS},
        {HTTP_M_GET, "/api/statistics/global", ROUTE_OK, ROUTE_GLOBAL_STATS},
        {HTTP_M_GET, "/admin/stats", ROUTE_OK, ROUTE_ADMIN_STATS},
        {HTTP_M_GET, "/admin/shards/status", ROUTE_OK, ROUTE_SHARDS_STATUS},
        {HTTP_M_POST, "/admin/shards/status", ROUTE_BAD_METHOD, ROUTE_SHARDS_STATUS},
        {HTTP_M_GET, "/metrics", ROUTE_OK, ROUTE_METRICS},
    };

    for (size_t i = 0; i < TH_TABLE_LEN(cases); i++) {
        route_match rm;
        enum route_result got = http_route_match(cases[i].m, cases[i].path, &rm);

        if (got != cases[i].want || rm.route != cases[i].route)
            TH_FAIL_AT("%s: result %d route %s (want %d %s)",
                       cases[i].path ? cases[i].path : "(null)", (int)got,
                       http_route_name(rm.route), (int)cases[i].want,
                       http_route_name(cases[i].route));
    }
}

static void test_params_and_allow(void)
{
    route_match rm;

    TH_REQUIRE(http_route_match(HTTP_M_GET, "/api/grab/00000000000000000000000000000abc", &rm) ==
               ROUTE_OK);
    TH_CHECK_STR(rm.saga_id, "00000000000000000000000000000abc");
    TH_REQUIRE(http_route_match(HTTP_M_GET, "/api/grab/abc", &rm) == ROUTE_BAD_PARAM);
    TH_CHECK_STR(rm.bad_field, "saga_id");
    TH_REQUIRE(http_route_match(HTTP_M_GET, "/api/room/42/orders", &rm) == ROUTE_OK);
    TH_CHECK_INT(rm.id, 42);
    TH_REQUIRE(http_route_match(HTTP_M_GET, "/api/coupon/07/stock", &rm) == ROUTE_BAD_PARAM);
    TH_CHECK_STR(rm.bad_field, "coupon_id");
    TH_REQUIRE(http_route_match(HTTP_M_GET, "/api/coupon/grab", &rm) == ROUTE_BAD_METHOD);
    TH_CHECK_STR(rm.allow, "POST");
    TH_REQUIRE(http_route_match(HTTP_M_POST, "/healthz", &rm) == ROUTE_BAD_METHOD);
    TH_CHECK_STR(rm.allow, "GET");
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"method and path table", test_routes},
        {"saga id parameter and Allow", test_params_and_allow},
    };

    return th_main("orch_route", tests, TH_TABLE_LEN(tests), argc, argv);
}
