/* test_orch_admission.c - unit tests of the rate limit and coupon cache
 * (admission.c) and of the orchestrator's config table (orch_conf.c). */
#include <stdlib.h>
#include <string.h>

#include "../src/admission.h"
#include "../src/orch_conf.h"
#include "testhelp.h"

static void test_bucket(void)
{
    token_bucket tb;
    int ok = 0;

    token_bucket_init(&tb, 0, 0, 0);
    for (int i = 0; i < 100000; i++)
        ok += token_bucket_take(&tb, 0);
    TH_CHECK_INT(ok, 100000);   /* 0: unlimited */

    token_bucket_init(&tb, 1000, 10, 0);   /* 1 per ms, burst 10 */
    ok = 0;
    for (int i = 0; i < 50; i++)
        ok += token_bucket_take(&tb, 0);
    TH_CHECK_INT(ok, 10);
    ok = 0;
    for (int i = 0; i < 50; i++)
        ok += token_bucket_take(&tb, 5);   /* 5 ms later: 5 tokens */
    TH_CHECK_INT(ok, 5);
    ok = 0;
    for (int i = 0; i < 50; i++)
        ok += token_bucket_take(&tb, 1000);   /* refill is capped at the burst */
    TH_CHECK_INT(ok, 10);
    TH_CHECK_INT(token_bucket_take(&tb, 999), 0);   /* time going backwards adds nothing */
}

static void test_coupon_cache(void)
{
    coupon_cache c;
    coupon_entry *e;

    TH_REQUIRE(coupon_cache_init(&c, 16) == CG_OK);
    TH_CHECK(coupon_cache_find(&c, 5) == NULL);
    e = coupon_cache_get(&c, 5);
    TH_REQUIRE(e != NULL);
    e->room_id = 1;
    TH_CHECK(coupon_cache_get(&c, 5) == e);
    TH_CHECK(!coupon_cache_sold_out(&c, 5, 100));
    e->sold_out_until = 200;
    TH_CHECK(coupon_cache_sold_out(&c, 5, 199));
    TH_CHECK(!coupon_cache_sold_out(&c, 5, 200));
    TH_CHECK(!coupon_cache_sold_out(&c, 6, 0));
    for (long long id = 100; id < 116; id++)
        TH_REQUIRE(coupon_cache_get(&c, id) != NULL);
    /* the bound (16) was passed: the cache was emptied and refilled */
    TH_CHECK(c.count <= 16);
    TH_CHECK(coupon_cache_find(&c, 5) == NULL);
    TH_CHECK(coupon_cache_find(&c, 115) != NULL);
    coupon_cache_destroy(&c);
}

static void test_conf(void)
{
    orch_conf conf;
    cg_error err;
    const char *argv_ok[] = {"orchestrator", "--instance-id=orchestrator-2", "--http-port=8001"};
    const char *argv_bad[] = {"orchestrator", "--instance-id=bad id"};
    const char *argv_hb[] = {"orchestrator", "--heartbeat-ttl-s=2", "--heartbeat-interval-ms=2000"};

    memset(&conf, 0, sizeof(conf));
    TH_REQUIRE(cfg_load(&orch_conf_spec, &conf, 3, (char **)argv_ok, &err) == CG_OK);
    TH_CHECK_STR(conf.instance_id, "orchestrator-2");
    TH_CHECK_INT(conf.http_port, 8001);
    TH_CHECK_INT(conf.step_timeout_ms, 1000);
    TH_CHECK_INT(conf.step_retries, 3);
    TH_CHECK_INT(conf.http_deadline_ms, 2000);
    cfg_free(&orch_conf_spec, &conf);
    memset(&conf, 0, sizeof(conf));
    TH_CHECK_INT(cfg_load(&orch_conf_spec, &conf, 2, (char **)argv_bad, &err), CG_ERR_INVALID);
    TH_CHECK(strstr(err.msg, "instance_id") != NULL);
    cfg_free(&orch_conf_spec, &conf);
    memset(&conf, 0, sizeof(conf));
    TH_CHECK_INT(cfg_load(&orch_conf_spec, &conf, 3, (char **)argv_hb, &err), CG_ERR_INVALID);
    cfg_free(&orch_conf_spec, &conf);
    TH_CHECK(orch_conf_instance_valid("orchestrator"));
    TH_CHECK(!orch_conf_instance_valid(""));
    TH_CHECK(!orch_conf_instance_valid("a:b"));
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"token bucket", test_bucket},
        {"coupon cache and sold-out flag", test_coupon_cache},
        {"config table", test_conf},
    };

    return th_main("orch_admission", tests, TH_TABLE_LEN(tests), argc, argv);
}
