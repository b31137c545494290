/* test_svc_conf.c - unit tests of the shared service settings. */
#include <stdlib.h>

#include "svc_conf.h"
#include "testhelp.h"

typedef struct demo_service {
    long long http_port;
    svc_conf svc;
} demo_service;

static const cfg_param demo_params[] = {
    {"http_port", CFG_INT, offsetof(demo_service, http_port), "8000", 1, 65535, "port"},
    SVC_CONF_PARAMS(demo_service, svc),
};
static const cfg_spec demo_spec = {"demo", "DEMO_", demo_params, TH_TABLE_LEN(demo_params), NULL};

static void test_rows_and_shards(void)
{
    demo_service conf;
    cg_error err;
    db_config db;
    char buf[256];
    const char *argv[] = {"demo", "--shards", "127.0.0.1:17031/grab_shard0,127.0.0.1:17032/grab_shard1",
                          "--amqp-port=17020"};

    memset(&conf, 0, sizeof(conf));
    setenv("DEMO_DB_PASSWORD", "pw", 1);
    TH_REQUIRE(cfg_load(&demo_spec, &conf, 4, (char **)argv, &err) == CG_OK);
    TH_CHECK_INT(conf.svc.amqp_port, 17020);
    TH_CHECK_STR(conf.svc.sentinel_master, "grab");
    TH_CHECK_INT(svc_conf_shard_count(&conf.svc), 2);
    TH_REQUIRE(svc_conf_shard_db(&conf.svc, 1, &db, buf, sizeof(buf), &err) == CG_OK);
    TH_CHECK_INT(db.port, 17032);
    TH_CHECK_STR(db.database, "grab_shard1");
    TH_CHECK_STR(db.password, "pw");
    TH_CHECK_INT(svc_conf_shard_db(&conf.svc, 2, &db, buf, sizeof(buf), &err), CG_ERR_INVALID);
    TH_CHECK_INT(svc_conf_apply_log_level(&conf.svc, &err), CG_OK);
    free(conf.svc.log_level);
    conf.svc.log_level = strdup("loud");
    TH_CHECK_INT(svc_conf_apply_log_level(&conf.svc, &err), CG_ERR_INVALID);
    cfg_free(&demo_spec, &conf);
    unsetenv("DEMO_DB_PASSWORD");
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"shared rows and shard list", test_rows_and_shards},
    };

    return th_main("svc_conf", tests, TH_TABLE_LEN(tests), argc, argv);
}
