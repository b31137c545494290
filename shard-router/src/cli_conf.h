/* cli_conf.h - the operator CLI's settings and the shards it talks to.
 *
 * One cfg table (env prefix SR_) embeds the shared service settings, so
 * SR_SHARDS, SR_DB_USER, SR_DB_PASSWORD_FILE, SR_SHARD_STRATEGY and
 * SR_SHARD_MAP mean what they mean to the services; flags override them.
 * A cli_ctx holds the loaded settings, the strategy's map and a pool of
 * shard workers (sr_query.h) so that every command asks the shards in
 * parallel with a bounded timeout. */
#ifndef CLI_CONF_H
#define CLI_CONF_H

#include <stdint.h>

#include "sr_map.h"
#include "sr_query.h"
#include "status.h"
#include "svc_conf.h"

/* Exit statuses of the commands. */
enum cli_exit {
    CLI_EXIT_OK = 0,          /* done; verify: every row is in place */
    CLI_EXIT_MISPLACED = 1,   /* verify found rows on the wrong shard */
    CLI_EXIT_USAGE = 2,       /* bad command line or configuration */
    CLI_EXIT_DOWN = 3         /* a shard did not answer (named on stderr) */
};

#define CLI_ADDR_MAX 256   /* longest "host:port/db" shown */

typedef struct cli_conf {
    svc_conf svc;
    char *by;                 /* counts: "" | coupon | room */
    long long timeout_ms;     /* bound on each parallel read */
    long long batch;          /* verify: rows read per shard and round trip */
    long long max_list;       /* verify: misplaced rows printed at most */
} cli_conf;

typedef struct cli_ctx {
    cli_conf conf;
    sr_map *map;
    sr_pool *pool;
    int n_shards;
    char addr[SR_MAX_SHARDS][CLI_ADDR_MAX];   /* shard i as configured */
} cli_ctx;

/* Loads the settings from argv (argv[0] is the command's name), builds the
 * map and starts the pool. CG_ERR_EXIT after --help or --check-config. On
 * any return cli_close() releases what was made. ctx is zeroed here. */
int cli_open(cli_ctx *ctx, int argc, char **argv, cg_error *err) CG_MUSTCHECK;
void cli_close(cli_ctx *ctx);

/* The bitmask of every configured shard. */
uint64_t cli_all_shards(const cli_ctx *ctx);

/* Parses a decimal integer; CG_ERR_INVALID unless the whole string is one. */
int cli_parse_i64(const char *s, long long *out) CG_MUSTCHECK;

#endif
