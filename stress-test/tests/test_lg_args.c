/* test_lg_args.c - `stress-test read` options, and the pure parts of the
 * results: the "partial" scan, the status list, the per-endpoint counts. */
#include <stdlib.h>
#include <string.h>

#include "../src/lg_args.h"
#include "../src/lg_report.h"
#include "../src/lg_stats.h"
#include "testhelp.h"

/* Runs lg_args_read on a NULL-terminated list after "read". */
static int parse(lg_read_opts *o, cg_error *err, const char *const *args)
{
    char *argv[64];
    int argc = 0;

    argv[argc++] = (char *)"read";
    for (int i = 0; args[i] != NULL && argc < 63; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    return lg_args_read(argc, argv, o, err);
}

static void test_defaults(void)
{
    static const char *const args[] = {NULL};
    lg_read_opts o;
    cg_error err = {0, ""};

    TH_REQUIRE_OR_DONE(parse(&o, &err, args) == CG_OK);
    TH_CHECK_STR(o.target.host, "127.0.0.1");
    TH_CHECK_INT(o.target.port, 8000);
    TH_CHECK_INT(o.conf.concurrency, 8);
    TH_CHECK_INT(o.requests, LG_DEFAULT_REQUESTS);
    TH_CHECK_INT(o.duration_ms, 0);
    TH_CHECK_INT(o.conf.warmup, 100);
    TH_CHECK_INT(o.conf.timeout_ms, 5000);
    TH_CHECK_INT(o.ranges.max[LG_VAR_USER], 100000);
    TH_CHECK_INT(o.ranges.max[LG_VAR_ROOM], 100);
    TH_CHECK_INT(o.ranges.max[LG_VAR_HOT_ROOM], 5);
    TH_CHECK_INT(o.ranges.max[LG_VAR_COUPON], 500);
    TH_CHECK_INT(o.default_endpoints, 1);
    TH_CHECK_INT(o.n_endpoints, lg_n_default_endpoints);
    TH_CHECK_INT(o.n_endpoints, 9);
    TH_CHECK_STR(o.endpoints[0].name, "user_coupons");
    TH_CHECK_STR(o.endpoints[0].tmpl.text, "/api/user/{user}/coupons");
    TH_CHECK_STR(o.endpoints[4].name, "hot_room_orders");
    TH_CHECK_STR(o.endpoints[4].tmpl.text, "/api/room/{hot_room}/orders?limit=20");
    TH_CHECK_STR(o.endpoints[8].name, "shards_status");
done:
    lg_args_free(&o);
}

static void test_all_options(void)
{
    static const char *const args[] = {
        "--target", "http://localhost:19680/", "--endpoint", "health=/healthz",
        "--endpoint=status=/api/grab/00000000000000000000000000000000", "--concurrency=64",
        "--requests", "500", "--duration", "3", "--warmup", "7", "--timeout-ms", "250",
        "--users", "10", "--rooms", "20", "--coupons", "30", "--hot-rooms", "2", "--seed", "99",
        "--json", "/tmp/x.json", NULL};
    lg_read_opts o;
    cg_error err = {0, ""};

    TH_REQUIRE_OR_DONE(parse(&o, &err, args) == CG_OK);
    TH_CHECK_STR(o.target.host, "localhost");
    TH_CHECK_INT(o.target.port, 19680);
    TH_CHECK_STR(o.target.authority, "localhost:19680");
    TH_CHECK_INT(o.default_endpoints, 0);
    TH_REQUIRE_OR_DONE(o.n_endpoints == 2);
    TH_CHECK_STR(o.endpoints[0].name, "health");
    TH_CHECK_STR(o.endpoints[1].name, "status");
    TH_CHECK_STR(o.endpoints[1].tmpl.text, "/api/grab/00000000000000000000000000000000");
    TH_CHECK_INT(o.conf.concurrency, 64);
    TH_CHECK_INT(o.requests, 500);
    TH_CHECK_INT(o.duration_ms, 3000);
    TH_CHECK_INT(o.conf.warmup, 7);
    TH_CHECK_INT(o.conf.timeout_ms, 250);
    TH_CHECK_INT(o.ranges.max[LG_VAR_USER], 10);
    TH_CHECK_INT(o.ranges.max[LG_VAR_ROOM], 20);
    TH_CHECK_INT(o.ranges.max[LG_VAR_COUPON], 30);
    TH_CHECK_INT(o.ranges.max[LG_VAR_HOT_ROOM], 2);
    TH_CHECK_INT(o.conf.seed, 99);
    TH_CHECK_STR(o.conf.json, "/tmp/x.json");
done:
    lg_args_free(&o);
}

/* --duration alone: no count bound. */
static void test_duration_only(void)
{
    static const char *const args[] = {"--duration", "2", NULL};
    lg_read_opts o;
    cg_error err = {0, ""};

    TH_REQUIRE_OR_DONE(parse(&o, &err, args) == CG_OK);
    TH_CHECK_INT(o.requests, 0);
    TH_CHECK_INT(o.duration_ms, 2000);
done:
    lg_args_free(&o);
}

static void test_rejects(void)
{
    const char *const *const bad[] = {
        (const char *const[]){"--endpoint", NULL},
        (const char *const[]){"--endpoint", "noequals", NULL},
        (const char *const[]){"--endpoint", "=/x", NULL},
        (const char *const[]){"--endpoint", "a b=/x", NULL},
        (const char *const[]){"--endpoint", "a=x", NULL},
        (const char *const[]){"--endpoint", "a=/x/{nope}", NULL},
        (const char *const[]){"--endpoint", "a=/x", "--endpoint", "a=/y", NULL},
        (const char *const[]){"--concurrency", "0", NULL},
        (const char *const[]){"--concurrency", "5000", NULL},
        (const char *const[]){"--timeout-ms", "0", NULL},
        (const char *const[]){"--requests", "-1", NULL},
        (const char *const[]){"--hot-rooms", "200", NULL},
        (const char *const[]){"--users", "0", NULL},
        (const char *const[]){"--target", "https://x:1", NULL},
        (const char *const[]){"--target", "http://x:0", NULL},
        (const char *const[]){"--target", "http://x:1/api", NULL},
        (const char *const[]){"--target", "http://:80", NULL},
        (const char *const[]){"--bogus", "1", NULL},
        (const char *const[]){"positional", NULL},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        lg_read_opts o;
        cg_error err = {0, ""};
        int rc = parse(&o, &err, bad[i]);

        if (rc != CG_ERR_INVALID || err.msg[0] == '\0')
            TH_FAIL_AT("case %zu (%s %s) gave %d", i, bad[i][0], bad[i][1] ? bad[i][1] : "", rc);
        lg_args_free(&o);
    }
}

static void test_too_many_endpoints(void)
{
    static char specs[LG_MAX_ENDPOINTS + 1][32];
    char *argv[2 * (LG_MAX_ENDPOINTS + 1) + 2];
    int argc = 0;
    lg_read_opts o;
    cg_error err = {0, ""};

    argv[argc++] = (char *)"read";
    for (int i = 0; i <= LG_MAX_ENDPOINTS; i++) {
        snprintf(specs[i], sizeof(specs[i]), "e%d=/x", i);
        argv[argc++] = (char *)"--endpoint";
        argv[argc++] = specs[i];
    }
    argv[argc] = NULL;
    TH_CHECK_INT(lg_args_read(argc, argv, &o, &err), CG_ERR_INVALID);
    lg_args_free(&o);
    /* exactly the maximum is fine */
    argc -= 2;
    argv[argc] = NULL;
    TH_CHECK_INT(lg_args_read(argc, argv, &o, &err), CG_OK);
    TH_CHECK_INT(o.n_endpoints, LG_MAX_ENDPOINTS);
    lg_args_free(&o);
}

static void test_target(void)
{
    lg_target t;
    cg_error err = {0, ""};

    TH_REQUIRE(lg_target_parse("http://127.0.0.1:17080", &t, &err) == CG_OK);
    TH_CHECK_STR(t.host, "127.0.0.1");
    TH_CHECK_INT(t.port, 17080);
    TH_CHECK_STR(t.authority, "127.0.0.1:17080");
    TH_REQUIRE(lg_target_parse("http://example.org", &t, &err) == CG_OK);
    TH_CHECK_INT(t.port, 80);
    TH_CHECK_STR(t.authority, "example.org");
    TH_REQUIRE(lg_target_parse("http://[::1]:9000/", &t, &err) == CG_OK);
    TH_CHECK_STR(t.host, "::1");
    TH_CHECK_INT(t.port, 9000);
    TH_CHECK_STR(t.authority, "[::1]:9000");
    TH_CHECK(lg_target_parse("http://[::1:9000", &t, &err) == CG_ERR_INVALID);
    TH_CHECK(lg_target_parse("http://h:99999", &t, &err) == CG_ERR_INVALID);
    TH_CHECK(lg_target_parse("http://h:12x", &t, &err) == CG_ERR_INVALID);
    TH_CHECK(lg_target_parse(NULL, &t, &err) == CG_ERR_INVALID);
}

static void test_partial_scan(void)
{
    static const struct {
        const char *body;
        int want;
    } cases[] = {
        {"{\"partial\":true}", 1},
        {"{\"orders\":[],\"partial\" : true,\"missing_shards\":[2]}", 1},
        {"{\"partial\":\n\ttrue}", 1},
        {"{\"partial\":false}", 0},
        {"{\"orders\":[]}", 0},
        {"{\"note\":\"partial\",\"x\":true}", 0},
        {"{\"partial\":trueish}", 0},
        {"{\"a\":\"partial\",\"partial\":true}", 1},
        {"{\"partial\":", 0},
        {"\"partial\":true", 1},
        {"", 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (lg_body_partial(cases[i].body, strlen(cases[i].body)) != cases[i].want)
            TH_FAIL_AT("'%s': want %d", cases[i].body, cases[i].want);
    }
    /* the length bounds the scan: no NUL needed */
    TH_CHECK_INT(lg_body_partial("{\"partial\":truex", 15), 1);
    TH_CHECK_INT(lg_body_partial("{\"partial\":true", 14), 0);
}

static void test_stats_and_statuses(void)
{
    lg_ep_stats *st = calloc(1, sizeof(*st));
    lg_result r;
    char buf[64];

    TH_REQUIRE(st != NULL);
    lg_stats_start(st, 1000000);
    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.latency_us = 500;
    r.body = "{\"partial\":true}";
    r.body_len = strlen(r.body);
    lg_stats_record(st, &r, 1100000);
    r.body = NULL;
    r.body_len = 0;
    r.status = 404;
    r.connected = 1;
    lg_stats_record(st, &r, 1200000);
    lg_stats_record(st, &r, 1300000);
    r.status = 503;
    lg_stats_record(st, &r, 1400000);
    r.status = 0;
    r.xerr = LG_XERR_TIMEOUT;
    r.what = "timeout";
    r.latency_us = 5000000;
    lg_stats_record(st, &r, 1500000);
    r.xerr = LG_XERR_TRANSPORT;
    r.what = "connection closed";
    lg_stats_record(st, &r, 2000000);
    TH_CHECK_INT(st->requests, 6);
    TH_CHECK_INT(st->ok, 1);
    TH_CHECK_INT(st->non_2xx, 3);
    TH_CHECK_INT(st->status[404], 2);
    TH_CHECK_INT(st->timeouts, 1);
    TH_CHECK_INT(st->transport_errors, 1);
    TH_CHECK_INT(st->partial, 1);
    TH_CHECK_INT(st->connects, 5);
    TH_CHECK_STR(st->first_error, "timeout");
    TH_CHECK_INT(st->hist.n, 4);                 /* failures have no latency */
    TH_CHECK_INT(st->hist.max_us, 500);
    TH_CHECK(lg_stats_seconds(st) > 0.999 && lg_stats_seconds(st) < 1.001);
    TH_CHECK(lg_stats_rps(st) > 5.99 && lg_stats_rps(st) < 6.01);
    lg_report_statuses(st, buf, sizeof(buf));
    TH_CHECK_STR(buf, "404:2,503:1");
    r.xerr = LG_XERR_NONE;
    r.status = 999;
    lg_stats_record(st, &r, 2000000);
    lg_report_statuses(st, buf, sizeof(buf));
    TH_CHECK_STR(buf, "other:1,404:2,503:1");
    lg_report_statuses(st, buf, 8);               /* cut at a whole entry */
    TH_CHECK_STR(buf, "other:1");
    lg_stats_start(st, 0);
    lg_report_statuses(st, buf, sizeof(buf));
    TH_CHECK_STR(buf, "-");
    TH_CHECK(lg_stats_rps(st) == 0.0);
    free(st);
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"defaults", test_defaults},
        {"all_options", test_all_options},
        {"duration_only", test_duration_only},
        {"rejects", test_rejects},
        {"too_many_endpoints", test_too_many_endpoints},
        {"target", test_target},
        {"partial_scan", test_partial_scan},
        {"stats_and_statuses", test_stats_and_statuses},
    };

    /* the settings must come from the flags alone */
    static const char *const vars[] = {"STRESS_TARGET", "STRESS_CONCURRENCY", "STRESS_REQUESTS",
                                       "STRESS_DURATION", "STRESS_WARMUP", "STRESS_CONFIG"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    return th_main("lg_args", tests, TH_TABLE_LEN(tests), argc, argv);
}
