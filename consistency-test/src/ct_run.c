/* ct_run.c - shared plumbing of the commands; see ct_run.h. */
#include "ct_run.h"

#include <string.h>

#include "ct_check.h"
#include "ct_redis.h"
#include "ct_shards.h"
#include "log.h"

int ct_env_init(ct_env *env, const ct_conf *conf, FILE *out, cg_error *err)
{
    ct_shard_addr addr[CT_MAX_SHARDS];

    memset(env, 0, sizeof(*env));
    env->conf = conf;
    ct_report_init(&env->rep, out);
    if (ct_conf_shards(conf, addr, CT_MAX_SHARDS, &env->n_shards, err) != CG_OK)
        return err ? err->code : CG_ERR_INVALID;
    return ct_conf_map(conf, env->n_shards, &env->map, err);
}

void ct_env_close(ct_env *env)
{
    if (env->rc != NULL)
        redisFree(env->rc);
    env->rc = NULL;
}

redisContext *ct_env_redis(ct_env *env, cg_error *err)
{
    if (env->rc != NULL && env->rc->err != 0)
        ct_env_redis_failed(env);
    if (env->rc == NULL &&
        ct_redis_connect(env->conf, &env->rc, env->master, sizeof(env->master), err) != CG_OK)
        env->rc = NULL;
    return env->rc;
}

void ct_env_redis_failed(ct_env *env)
{
    if (env->rc != NULL)
        redisFree(env->rc);
    env->rc = NULL;
}

int ct_env_check(ct_env *env, const long long *coupons, size_t n, const ct_extra_saga *extra,
                 size_t n_extra, int quiet, ct_snapshot *snap)
{
    ct_shards sh;
    ct_snapshot local;
    cg_error err = {0};
    redisContext *rc;
    int failed = 0, status;

    ct_snapshot_init(&local);
    memset(&sh, 0, sizeof(sh));
    rc = ct_env_redis(env, &err);
    status = rc != NULL ? CG_OK : CG_ERR_IO;
    if (status == CG_OK)
        status = ct_shards_open(env->conf, &sh, &err);
    if (status == CG_OK)
        status = ct_collect(env->conf, rc, &sh, coupons, n, extra, n_extra, &local, &err);
    if (status != CG_OK) {
        ct_env_redis_failed(env);
        ct_assert(&env->rep, 0, "collecting the state to check: %s", err.msg);
        failed = 1;
        goto done;
    }
    failed = ct_check_run(&local, quiet, &env->rep);
    if (snap != NULL) {
        *snap = local;
        ct_snapshot_init(&local);
    }
done:
    ct_snapshot_free(&local);
    ct_shards_close(&sh);
    return failed;
}

int ct_run_check(const ct_conf *conf, const long long *coupons, size_t n, int quiet)
{
    ct_env env;
    cg_error err = {0};
    int failed;

    if (ct_env_init(&env, conf, stdout, &err) != CG_OK) {
        fprintf(stderr, "consistency-test: %s\n", err.msg);
        return 2;
    }
    ct_say(&env.rep, "== check: %s, %s (Redis through sentinels %s, %d shards, %s)",
           n == 0 ? "every coupon" : "the given coupons", quiet ? "quiet" : "busy",
           conf->sentinel_addrs, env.n_shards, sr_strategy_name(env.map.strategy));
    failed = ct_env_check(&env, coupons, n, NULL, 0, quiet, NULL);
    ct_report_summary(&env.rep);
    ct_env_close(&env);
    return failed == 0 && env.rep.failed == 0 ? 0 : 1;
}
