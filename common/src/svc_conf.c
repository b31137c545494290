/* svc_conf.c - shared connection settings; see svc_conf.h. */
#include "svc_conf.h"

#include <string.h>

#include "log.h"

int svc_conf_apply_log_level(const svc_conf *c, cg_error *err)
{
    int level;

    if (c->log_level == NULL || log_level_parse(c->log_level, &level) != CG_OK)
        return cg_error_set(err, CG_ERR_INVALID, "setting 'log_level': '%s' is not one of "
                            "debug, info, warn, error", c->log_level ? c->log_level : "");
    log_set_level(level);
    return CG_OK;
}

void svc_conf_mq(const svc_conf *c, const char *connection_name, mq_config *out)
{
    mq_config_defaults(out);
    out->host = c->amqp_host;
    out->port = (int)c->amqp_port;
    out->user = c->amqp_user;
    out->password = c->amqp_password;
    out->vhost = c->amqp_vhost;
    out->name = connection_name;
    out->prefetch = (int)c->amqp_prefetch;
}

void svc_conf_rds(const svc_conf *c, rds_config *out)
{
    rds_config_defaults(out);
    out->sentinels = c->sentinels;
    out->master_name = c->sentinel_master;
    out->connect_timeout_ms = (int)c->redis_timeout_ms;
    out->command_timeout_ms = (int)c->redis_timeout_ms;
}

int svc_conf_shard_count(const svc_conf *c)
{
    int n = 1;

    if (c->shards == NULL || c->shards[0] == '\0')
        return 0;
    for (const char *p = c->shards; *p != '\0'; p++)
        n += *p == ',';
    return n;
}

static void svc_conf_db_common(const svc_conf *c, db_config *out)
{
    db_config_defaults(out);
    out->user = c->db_user;
    out->password = c->db_password;
    out->connect_timeout_ms = (int)c->db_timeout_ms;
    out->read_timeout_ms = (int)c->db_timeout_ms;
    out->write_timeout_ms = (int)c->db_timeout_ms;
}

int svc_conf_shard_db(const svc_conf *c, int i, db_config *out, char *buf, size_t buflen,
                      cg_error *err)
{
    const char *p = c->shards, *end;
    char spec[512];

    if (i < 0 || i >= svc_conf_shard_count(c))
        return cg_error_set(err, CG_ERR_INVALID, "setting 'shards': no shard %d", i);
    for (int k = 0; k < i; k++)
        p = strchr(p, ',') + 1;
    end = strchr(p, ',');
    if (end == NULL)
        end = p + strlen(p);
    if ((size_t)(end - p) >= sizeof(spec))
        return cg_error_set(err, CG_ERR_INVALID, "setting 'shards': entry %d too long", i);
    memcpy(spec, p, (size_t)(end - p));
    spec[end - p] = '\0';
    svc_conf_db_common(c, out);
    return db_parse_addr(spec, out, buf, buflen, err);
}

int svc_conf_main_db(const svc_conf *c, db_config *out, char *buf, size_t buflen, cg_error *err)
{
    svc_conf_db_common(c, out);
    return db_parse_addr(c->main_db ? c->main_db : "", out, buf, buflen, err);
}
