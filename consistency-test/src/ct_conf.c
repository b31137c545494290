/* ct_conf.c - the consistency test's settings; see ct_conf.h. */
#include "ct_conf.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define CT_ROW(member, kind, def, lo, hi, help) \
    {#member, kind, offsetof(ct_conf, member), def, lo, hi, help}
#define CT_OWN(name, member, kind, def, lo, hi, help) \
    {name, kind, offsetof(ct_conf, member), def, lo, hi, help}

static const cfg_param ct_conf_params[] = {
    CT_OWN("ct_log_level", log_level, CFG_STRING, "warn", 0, 0, "debug|info|warn|error"),
    CT_ROW(repo_dir, CFG_STRING, ".", 0, 0, "repository root (scripts/stack, scripts/services)"),
    CT_ROW(sentinel_addrs, CFG_STRING, "127.0.0.1:17010,127.0.0.1:17011,127.0.0.1:17012", 0, 0,
           "Redis Sentinel addresses, ip:port,..."),
    CT_ROW(sentinel_master_name, CFG_STRING, "grab", 0, 0, "master group the sentinels watch"),
    CT_ROW(redis_password, CFG_SECRET, NULL, 0, 0, "Redis AUTH password (none by default)"),
    CT_OWN("ct_redis_timeout_ms", redis_timeout_ms, CFG_INT, "3000", 10, 600000,
           "Redis connect and command timeout"),
    CT_ROW(mariadb_user, CFG_STRING, "grab", 0, 0, "MariaDB user"),
    CT_ROW(mariadb_password, CFG_SECRET, NULL, 0, 0, "MariaDB password"),
    CT_ROW(mariadb_shards, CFG_STRING, "127.0.0.1:17031/grab_shard0,127.0.0.1:17032/grab_shard1,"
           "127.0.0.1:17031/grab_shard2,127.0.0.1:17032/grab_shard3", 0, 0,
           "order shards in shard order, host:port/db,..."),
    CT_OWN("ct_db_timeout_ms", db_timeout_ms, CFG_INT, "5000", 100, 600000,
           "MariaDB connect/read/write timeout"),
    CT_ROW(shard_strategy, CFG_STRING, "hash", 0, 0, "hash | range-room | range-day (as the services)"),
    CT_ROW(shard_map, CFG_STRING, "", 0, 0, "bucket or range map (as the services)"),
    CT_ROW(rabbitmq_host, CFG_STRING, "127.0.0.1", 0, 0, "RabbitMQ address"),
    CT_ROW(rabbitmq_port, CFG_INT, "17020", 1, 65535, "RabbitMQ port"),
    CT_ROW(rabbitmq_user, CFG_STRING, "grab", 0, 0, "RabbitMQ user"),
    CT_ROW(rabbitmq_password, CFG_SECRET, NULL, 0, 0, "RabbitMQ password"),
    CT_ROW(rabbitmq_vhost, CFG_STRING, "grab", 0, 0, "RabbitMQ vhost"),
    CT_ROW(orch_host, CFG_STRING, "127.0.0.1", 0, 0, "orchestrator address"),
    CT_ROW(orch_http_port, CFG_INT, "0", 0, 65535, "orchestrator port (0: STACK_PORT_BASE + 80)"),
    CT_ROW(stack_port_base, CFG_INT, "17000", 1, 65535, "the stack's port base"),
    CT_OWN("ct_concurrency", concurrency, CFG_INT, "200", 1, 4096,
           "HTTP requests in flight at once (one connection each)"),
    CT_OWN("ct_http_timeout_ms", http_timeout_ms, CFG_INT, "30000", 100, 600000,
           "bound on one HTTP request"),
    CT_OWN("ct_quiet_timeout_ms", quiet_timeout_ms, CFG_INT, "60000", 1000, 3600000,
           "bound on waiting until every saga is finished"),
    CT_OWN("ct_room", room, CFG_INT, "6", 1, 1000000000, "room of the coupons the scenarios create"),
    CT_OWN("ct_user_base", user_base, CFG_INT, "1", 1, 1000000000000LL,
           "first user id the scenarios use"),
    CT_OWN("ct_seed", seed, CFG_INT, "0", 0, 1000000000000LL,
           "random seed of the scenarios (0: from the clock)"),
    CT_OWN("ct_manage_services", manage_services, CFG_BOOL, "true", 0, 1,
           "scenarios start stopped services and stop them again at the end"),
};

static int ct_conf_validate(const void *conf, cg_error *err)
{
    const ct_conf *c = conf;
    ct_shard_addr shards[CT_MAX_SHARDS];
    sr_map map;
    int n = 0, rc;

    rc = ct_conf_shards(c, shards, CT_MAX_SHARDS, &n, err);
    if (rc == CG_OK)
        rc = ct_conf_map(c, n, &map, err);
    return rc;
}

const cfg_spec ct_conf_spec = {
    "consistency-test", "", ct_conf_params, sizeof(ct_conf_params) / sizeof(ct_conf_params[0]),
    ct_conf_validate,
};

int ct_conf_shards(const ct_conf *c, ct_shard_addr *out, int max, int *n, cg_error *err)
{
    const char *p = c->mariadb_shards, *end;
    char spec[CT_ADDR_MAX];
    int i = 0, rc;

    *n = 0;
    if (p == NULL || *p == '\0')
        return cg_error_set(err, CG_ERR_INVALID, "setting 'mariadb_shards' is empty");
    for (;;) {
        end = strchr(p, ',');
        if (end == NULL)
            end = p + strlen(p);
        if (i >= max)
            return cg_error_set(err, CG_ERR_INVALID, "setting 'mariadb_shards': more than %d", max);
        if ((size_t)(end - p) >= sizeof(spec))
            return cg_error_set(err, CG_ERR_INVALID, "setting 'mariadb_shards': entry %d too long", i);
        memcpy(spec, p, (size_t)(end - p));
        spec[end - p] = '\0';
        db_config_defaults(&out[i].db);
        rc = db_parse_addr(spec, &out[i].db, out[i].buf, sizeof(out[i].buf), err);
        if (rc != CG_OK)
            return rc;
        out[i].db.user = c->mariadb_user;
        out[i].db.password = c->mariadb_password;
        out[i].db.connect_timeout_ms = (int)c->db_timeout_ms;
        out[i].db.read_timeout_ms = (int)c->db_timeout_ms;
        out[i].db.write_timeout_ms = (int)c->db_timeout_ms;
        snprintf(out[i].server, sizeof(out[i].server), "%s:%d", out[i].db.host, out[i].db.port);
        i++;
        if (*end == '\0')
            break;
        p = end + 1;
    }
    *n = i;
    return CG_OK;
}

int ct_conf_map(const ct_conf *c, int n_shards, sr_map *out, cg_error *err)
{
    enum sr_strategy s;

    if (c->shard_strategy == NULL || sr_strategy_parse(c->shard_strategy, &s) != CG_OK)
        return cg_error_set(err, CG_ERR_INVALID, "setting 'shard_strategy': '%s' is not one of "
                            "hash, range-room, range-day",
                            c->shard_strategy ? c->shard_strategy : "");
    return sr_map_build(out, s, n_shards, c->shard_map, err);
}

int ct_conf_orch_port(const ct_conf *c)
{
    return c->orch_http_port > 0 ? (int)c->orch_http_port : (int)c->stack_port_base + 80;
}
