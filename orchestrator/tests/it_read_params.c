/* it_read_params.c - bad requests to the read API, through the
 * orchestrator's public HTTP API against the real stack (docs/read-api.md,
 * "Limits"): limits and windows out of range, unknown, repeated, empty and
 * non-integer parameters, malformed ids in paths, a query on an endpoint
 * without parameters: 400 naming the field; other methods than GET: 405 with
 * Allow: GET; unknown paths: 404. The limits' edges answer 200, and a 400 of
 * a relayed endpoint is the same from the orchestrator as from order-svc.
 * No rows are needed: every request is refused before any shard is asked,
 * or asks for ids without orders. */
#include "it_read_kit.h"

typedef struct bad_case {
    enum evhttp_cmd_type method;
    const char *path;
    int code;
    const char *field;    /* 400: the field named */
    const char *mention;  /* 400: words the message must contain; NULL: the field */
} bad_case;

#define GET EVHTTP_REQ_GET
#define POST EVHTTP_REQ_POST

static const char *method_name(enum evhttp_cmd_type m)
{
    return m == GET ? "GET" : m == POST ? "POST" : m == EVHTTP_REQ_PUT ? "PUT" : "DELETE";
}

static void run_cases(const bad_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const bad_case *c = &cases[i];
        const char *field, *msg, *want_error;
        itr_res r;

        itr_http(itr.port, c->method, c->path, &r);
        field = itr_jstr(r.json, "field");
        msg = itr_jstr(r.json, "message");
        want_error = c->code == 400   ? "bad_request"
                     : c->code == 404 ? "not_found"
                     : c->code == 405 ? "method_not_allowed"
                                      : NULL;
        if (r.status != c->code) {
            TH_FAIL_AT("%s %s: %d, want %d (%.200s)", method_name(c->method), c->path, r.status,
                       c->code, r.body ? r.body : "");
        } else if (want_error != NULL &&
                   (itr_jstr(r.json, "error") == NULL ||
                    strcmp(itr_jstr(r.json, "error"), want_error) != 0)) {
            TH_FAIL_AT("%s %s: error %s, want %s", method_name(c->method), c->path,
                       r.body ? r.body : "", want_error);
        } else if (c->code == 400 && (field == NULL || strcmp(field, c->field) != 0)) {
            TH_FAIL_AT("%s %s: field \"%s\", want \"%s\"", method_name(c->method), c->path,
                       field ? field : "(none)", c->field);
        } else if (c->code == 400 &&
                   (msg == NULL || strstr(msg, c->mention ? c->mention : c->field) == NULL)) {
            TH_FAIL_AT("%s %s: message \"%s\" does not name %s", method_name(c->method), c->path,
                       msg ? msg : "(none)", c->mention ? c->mention : c->field);
        } else if (c->code == 405 && strcmp(r.allow, "GET") != 0) {
            TH_FAIL_AT("%s %s: Allow \"%s\", want GET", method_name(c->method), c->path, r.allow);
        }
        itr_res_clear(&r);
    }
}

static void test_limits(void)
{
    static const bad_case cases[] = {
        {GET, "/api/user/5000999/coupons?limit=0", 400, "limit", NULL},
        {GET, "/api/user/5000999/coupons?limit=501", 400, "limit", NULL},
        {GET, "/api/user/5000999/coupons?limit=-1", 400, "limit", NULL},
        {GET, "/api/user/5000999/coupons?limit=abc", 400, "limit", NULL},
        {GET, "/api/user/5000999/coupons?limit=", 400, "limit", NULL},
        {GET, "/api/user/5000999/coupons?limit=1.5", 400, "limit", NULL},
        {GET, "/api/user/5000999/coupons?limit=99999999999999999999", 400, "limit", NULL},
        {GET, "/api/user/5000999/coupons?limit=1", 200, NULL, NULL},
        {GET, "/api/user/5000999/coupons?limit=500", 200, NULL, NULL},
        {GET, "/api/room/910999/orders?limit=0", 400, "limit", NULL},
        {GET, "/api/room/910999/orders?limit=501", 400, "limit", NULL},
        {GET, "/api/room/910999/orders?limit=500", 200, NULL, NULL},
        {GET, "/api/orders/recent?hours=0", 400, "hours", NULL},
        {GET, "/api/orders/recent?hours=721", 400, "hours", NULL},
        {GET, "/api/orders/recent?hours=-3", 400, "hours", NULL},
        {GET, "/api/orders/recent?hours=x", 400, "hours", NULL},
        {GET, "/api/orders/recent?hours=1&limit=0", 400, "limit", NULL},
        {GET, "/api/orders/recent?hours=1&limit=501", 400, "limit", NULL},
        {GET, "/api/orders/recent?hours=720&limit=1", 200, NULL, NULL},
        {GET, "/api/orders/recent?limit=500&hours=1", 200, NULL, NULL},
    };

    run_cases(cases, TH_TABLE_LEN(cases));
}

static void test_unknown_and_repeated(void)
{
    static const bad_case cases[] = {
        {GET, "/api/user/5000999/coupons?foo=1", 400, "query", "foo"},
        {GET, "/api/user/5000999/coupons?limit=5&limit=6", 400, "limit", NULL},
        {GET, "/api/user/5000999/coupons?limit=5&hours=1", 400, "query", "hours"},
        {GET, "/api/room/910999/orders?hours=2", 400, "query", "hours"},
        {GET, "/api/room/910999/orders?limit=5&limit=5", 400, "limit", NULL},
        {GET, "/api/orders/recent?hours=1&hours=2", 400, "hours", NULL},
        {GET, "/api/orders/recent?x=1", 400, "query", "x"},
        {GET, "/api/orders/recent?user=1&limit=5", 400, "query", "user"},
    };

    run_cases(cases, TH_TABLE_LEN(cases));
}

static void test_bad_ids(void)
{
    static const bad_case cases[] = {
        {GET, "/api/user/0/coupons", 400, "user_id", "integer id"},
        {GET, "/api/user/abc/coupons", 400, "user_id", "integer id"},
        {GET, "/api/user/-5/coupons", 400, "user_id", "integer id"},
        {GET, "/api/user/007/coupons", 400, "user_id", "integer id"},
        {GET, "/api/user/1x/coupons", 400, "user_id", "integer id"},
        {GET, "/api/user/+7/coupons", 400, "user_id", "integer id"},
        {GET, "/api/user/9000000000000000001/coupons", 400, "user_id", "integer id"},
        {GET, "/api/user/99999999999999999999/coupons", 400, "user_id", "integer id"},
        {GET, "/api/user/9000000000000000000/coupons", 200, NULL, NULL},
        {GET, "/api/room/0/orders", 400, "room_id", "integer id"},
        {GET, "/api/room/r1/orders?limit=5", 400, "room_id", "integer id"},
        {GET, "/api/room/x/stats", 400, "room_id", "integer id"},
        {GET, "/api/room/-1/stats", 400, "room_id", "integer id"},
        {GET, "/api/coupon/0/stock", 400, "coupon_id", "integer id"},
        {GET, "/api/coupon/1e3/stock", 400, "coupon_id", "integer id"},
        {GET, "/api/coupon/18446744073709551616/stock", 400, "coupon_id", "integer id"},
    };

    run_cases(cases, TH_TABLE_LEN(cases));
}

static void test_no_params_api(void)
{
    static const bad_case cases[] = {
        {GET, "/api/coupon/1/stock?limit=5", 400, "query", "limit"},
        {GET, "/api/coupon/1/stock?x", 400, "query", "query"},   /* no "=": malformed */
        {GET, "/api/room/1/stats?limit=5", 400, "query", "limit"},
        {GET, "/api/statistics/global?limit=1", 400, "query", "limit"},
        {GET, "/api/statistics/global?hours=1", 400, "query", "hours"},
    };

    run_cases(cases, TH_TABLE_LEN(cases));
}

/* docs/read-api.md: the read endpoints without parameters refuse any, the
 * admin ones included; /healthz and /readyz ignore a query string. */
static void test_no_params_admin(void)
{
    static const bad_case cases[] = {
        {GET, "/admin/shards/status?limit=1", 400, "query", "limit"},
        {GET, "/admin/stats?x=1", 400, "query", "x"},
        {GET, "/metrics?x=1", 400, "query", "x"},
        {GET, "/healthz?x=1", 200, NULL, NULL},
        {GET, "/readyz?x=1", 200, NULL, NULL},
    };

    run_cases(cases, TH_TABLE_LEN(cases));
}

static void test_methods(void)
{
    static const bad_case cases[] = {
        {POST, "/api/user/1/coupons", 405, NULL, NULL},
        {POST, "/api/room/1/orders", 405, NULL, NULL},
        {POST, "/api/orders/recent", 405, NULL, NULL},
        {POST, "/api/orders/recent?hours=1", 405, NULL, NULL},
        {POST, "/api/coupon/1/stock", 405, NULL, NULL},
        {POST, "/api/room/1/stats", 405, NULL, NULL},
        {POST, "/api/statistics/global", 405, NULL, NULL},
        {POST, "/admin/shards/status", 405, NULL, NULL},
        {POST, "/admin/stats", 405, NULL, NULL},
        {POST, "/metrics", 405, NULL, NULL},
        {EVHTTP_REQ_PUT, "/api/orders/recent", 405, NULL, NULL},
        {EVHTTP_REQ_DELETE, "/api/user/1/coupons", 405, NULL, NULL},
        {GET, "/api/orders/nope", 404, NULL, NULL},
        {GET, "/api/user/1/coupon", 404, NULL, NULL},
        {GET, "/api/room/1", 404, NULL, NULL},
    };

    run_cases(cases, TH_TABLE_LEN(cases));
}

/* The orchestrator relays order-svc's answers unchanged: the same status
 * and body from either. */
static void test_relay_same(void)
{
    static const char *const paths[] = {
        "/api/user/5000999/coupons?limit=0",
        "/api/orders/recent?hours=721",
        "/api/room/910999/orders?foo=1",
        "/api/user/5000999/coupons?limit=3",
        "/api/room/910999/orders",
    };

    for (size_t i = 0; i < TH_TABLE_LEN(paths); i++) {
        itr_res a, b;

        itr_get(paths[i], &a);
        itr_http(itr.qport, GET, paths[i], &b);
        TH_CHECK(a.status > 0);
        TH_CHECK_INT(a.status, b.status);
        if (a.body == NULL || b.body == NULL || strcmp(a.body, b.body) != 0)
            TH_FAIL_AT("%s: orchestrator %s, order-svc %s", paths[i], a.body ? a.body : "",
                       b.body ? b.body : "");
        itr_res_clear(&a);
        itr_res_clear(&b);
    }
}

static void test_restore(void)
{
    itr_restore();
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"limits and windows: 400 outside, 200 at the edges", test_limits},
        {"unknown and repeated parameters: 400", test_unknown_and_repeated},
        {"malformed ids in paths: 400 naming the id", test_bad_ids},
        {"a query on an API endpoint without parameters: 400", test_no_params_api},
        {"a query on an admin endpoint: 400, health ignores it", test_no_params_admin},
        {"other methods 405 with Allow: GET, unknown paths 404", test_methods},
        {"a relayed answer is order-svc's own", test_relay_same},
        {"restore: no rows, order-svc under hash", test_restore},
    };

    return itr_main("it_read_params", tests, TH_TABLE_LEN(tests), argc, argv);
}
