/* ct_conf.h - the consistency test's settings.
 *
 * The test reads the stack's own variable names (stack.env, as exported by
 * scripts/run-tests: SENTINEL_ADDRS, MARIADB_SHARDS, MARIADB_PASSWORD_FILE,
 * RABBITMQ_*, STACK_PORT_BASE, REPO_DIR) so that it runs against any stack
 * with no mapping of its own: the cfg table has an empty environment prefix.
 * The settings the services share with it (SHARD_STRATEGY, SHARD_MAP,
 * ORCH_HTTP_PORT) are spelled as scripts/services spells them; the test's
 * own knobs start with ct_ (CT_CONCURRENCY, --ct-concurrency=...). */
#ifndef CT_CONF_H
#define CT_CONF_H

#include "cfg.h"
#include "db.h"
#include "sr_map.h"
#include "status.h"

#define CT_MAX_SHARDS SR_MAX_SHARDS
#define CT_ADDR_MAX 256

typedef struct ct_conf {
    char *log_level;             /* CT_LOG_LEVEL */
    char *repo_dir;              /* where scripts/stack and scripts/services live */
    char *sentinel_addrs;        /* "ip:port,..." */
    char *sentinel_master_name;
    char *redis_password;        /* secret; unset in the local stack */
    long long redis_timeout_ms;
    char *mariadb_user;
    char *mariadb_password;      /* secret (MARIADB_PASSWORD_FILE) */
    char *mariadb_shards;        /* "host:port/db,..." in shard order */
    long long db_timeout_ms;
    char *shard_strategy;
    char *shard_map;
    char *rabbitmq_host;
    long long rabbitmq_port;
    char *rabbitmq_user;
    char *rabbitmq_password;     /* secret (RABBITMQ_PASSWORD_FILE) */
    char *rabbitmq_vhost;
    char *orch_host;
    long long orch_http_port;    /* 0: STACK_PORT_BASE + 80, as scripts/services */
    long long stack_port_base;
    long long concurrency;       /* HTTP connections in flight at once */
    long long http_timeout_ms;   /* per HTTP request */
    long long quiet_timeout_ms;  /* bound on waiting until the system is quiet */
    long long room;              /* room of the coupons the scenarios create */
    long long user_base;         /* scenario users are user_base + 0 .. */
    long long seed;              /* random seed of the scenarios (0: from the clock) */
    int manage_services;         /* start the services if down, stop what was started */
} ct_conf;

extern const cfg_spec ct_conf_spec;

/* One shard's address, parsed from mariadb_shards. */
typedef struct ct_shard_addr {
    db_config db;                /* strings point into buf */
    char buf[CT_ADDR_MAX];
    char server[CT_ADDR_MAX];    /* "host:port", to tell which shards share a server */
} ct_shard_addr;

/* Parses mariadb_shards into out[0..*n-1] (db user/password/timeouts set). */
int ct_conf_shards(const ct_conf *c, ct_shard_addr *out, int max, int *n,
                   cg_error *err) CG_MUSTCHECK;

/* The shard map the services use (same strategy, map and shard count). */
int ct_conf_map(const ct_conf *c, int n_shards, sr_map *out, cg_error *err) CG_MUSTCHECK;

/* The orchestrator's HTTP port. */
int ct_conf_orch_port(const ct_conf *c);

#endif
