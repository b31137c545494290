/* svc_conf.h - the connection settings every service shares.
 *
 * Each program embeds a svc_conf in its own config struct and adds the rows
 * of SVC_CONF_PARAMS(program_type, member) to its cfg table, so that every
 * service spells the broker, Sentinel and database settings the same way
 * (PREFIX_AMQP_HOST, PREFIX_SENTINELS, PREFIX_SHARDS, ...), and
 * scripts/services can map the stack's addresses onto all of them. */
#ifndef CG_SVC_CONF_H
#define CG_SVC_CONF_H

#include <stddef.h>

#include "cfg.h"
#include "db.h"
#include "mq.h"
#include "rds.h"

typedef struct svc_conf {
    char *log_level;
    char *amqp_host;
    long long amqp_port;
    char *amqp_user;
    char *amqp_password;          /* secret */
    char *amqp_vhost;
    long long amqp_prefetch;
    char *sentinels;              /* "ip:port,ip:port,..." */
    char *sentinel_master;
    long long redis_timeout_ms;
    char *db_user;
    char *db_password;            /* secret */
    char *main_db;                /* "host:port/database" */
    char *shards;                 /* "host:port/db,..." in shard order */
    char *shard_strategy;         /* hash | range-room | range-day */
    char *shard_map;              /* see sr_map_build(); empty: the strategy's default */
    long long db_timeout_ms;
} svc_conf;

#define SVC_CONF_ROW(type, member, field, kind, def, lo, hi, help) \
    {#field, kind, offsetof(type, member.field), def, lo, hi, help}

/* The rows to put in a program's cfg table. */
#define SVC_CONF_PARAMS(type, member)                                                          \
    SVC_CONF_ROW(type, member, log_level, CFG_STRING, "info", 0, 0, "debug|info|warn|error"),  \
    SVC_CONF_ROW(type, member, amqp_host, CFG_STRING, "127.0.0.1", 0, 0, "RabbitMQ address"),  \
    SVC_CONF_ROW(type, member, amqp_port, CFG_INT, "5672", 1, 65535, "RabbitMQ port"),         \
    SVC_CONF_ROW(type, member, amqp_user, CFG_STRING, "grab", 0, 0, "RabbitMQ user"),          \
    SVC_CONF_ROW(type, member, amqp_password, CFG_SECRET, NULL, 0, 0, "RabbitMQ password"),    \
    SVC_CONF_ROW(type, member, amqp_vhost, CFG_STRING, "grab", 0, 0, "RabbitMQ vhost"),        \
    SVC_CONF_ROW(type, member, amqp_prefetch, CFG_INT, "512", 1, 65535,                        \
                 "unacked deliveries per consumer"),                                           \
    SVC_CONF_ROW(type, member, sentinels, CFG_STRING, "127.0.0.1:26379", 0, 0,                 \
                 "Redis Sentinel addresses, ip:port,..."),                                     \
    SVC_CONF_ROW(type, member, sentinel_master, CFG_STRING, "grab", 0, 0,                      \
                 "master group name the sentinels watch"),                                     \
    SVC_CONF_ROW(type, member, redis_timeout_ms, CFG_INT, "1000", 10, 60000,                   \
                 "Redis connect and command timeout"),                                         \
    SVC_CONF_ROW(type, member, db_user, CFG_STRING, "grab", 0, 0, "MariaDB user"),             \
    SVC_CONF_ROW(type, member, db_password, CFG_SECRET, NULL, 0, 0, "MariaDB password"),       \
    SVC_CONF_ROW(type, member, main_db, CFG_STRING, "127.0.0.1:3306/grab_main", 0, 0,          \
                 "main database, host:port/db"),                                               \
    SVC_CONF_ROW(type, member, shards, CFG_STRING, "127.0.0.1:3306/grab_shard0", 0, 0,         \
                 "order shards in shard order, host:port/db,..."),                             \
    SVC_CONF_ROW(type, member, shard_strategy, CFG_STRING, "hash", 0, 0,                       \
                 "hash | range-room | range-day"),                                             \
    SVC_CONF_ROW(type, member, shard_map, CFG_STRING, "", 0, 0,                                \
                 "bucket or range map (empty: the strategy's default)"),                       \
    SVC_CONF_ROW(type, member, db_timeout_ms, CFG_INT, "3000", 100, 600000,                    \
                 "MariaDB connect/read/write timeout")

/* Applies log_level; CG_ERR_INVALID names a bad level. */
int svc_conf_apply_log_level(const svc_conf *c, cg_error *err) CG_MUSTCHECK;

/* Fill library configs from the shared settings (strings are borrowed). */
void svc_conf_mq(const svc_conf *c, const char *connection_name, mq_config *out);
void svc_conf_rds(const svc_conf *c, rds_config *out);

/* The number of comma-separated entries in shards. */
int svc_conf_shard_count(const svc_conf *c);
/* Shard i's database config; buf (at least 256 bytes) holds its strings. */
int svc_conf_shard_db(const svc_conf *c, int i, db_config *out, char *buf, size_t buflen,
                      cg_error *err) CG_MUSTCHECK;
int svc_conf_main_db(const svc_conf *c, db_config *out, char *buf, size_t buflen,
                     cg_error *err) CG_MUSTCHECK;

#endif
