/* cli_conf.c - settings, map and shard pool of the operator CLI (cli_conf.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli_conf.h"
#include "log.h"

static int cli_validate(const void *conf, cg_error *err);

static const cfg_param cli_params[] = {
    SVC_CONF_PARAMS(cli_conf, svc),
    {"by", CFG_STRING, offsetof(cli_conf, by), "", 0, 0,
     "counts: group rows per shard by coupon | room (empty: totals only)"},
    {"timeout_ms", CFG_INT, offsetof(cli_conf, timeout_ms), "3000", 10, 600000,
     "longest wait for the shards of one parallel read"},
    {"batch", CFG_INT, offsetof(cli_conf, batch), "10000", 1, SR_LIMIT_MAX,
     "verify: rows read per shard and round trip"},
    {"max_list", CFG_INT, offsetof(cli_conf, max_list), "20", 0, 1000000,
     "verify: misplaced rows printed at most (all are counted)"},
};

static const cfg_spec cli_spec = {
    "shard-router", "SR_", cli_params, sizeof(cli_params) / sizeof(cli_params[0]), cli_validate,
};

static int cli_validate(const void *conf, cg_error *err)
{
    const cli_conf *c = conf;
    enum sr_strategy strategy;
    int n = svc_conf_shard_count(&c->svc);

    if (sr_strategy_parse(c->svc.shard_strategy, &strategy) != CG_OK)
        return cg_error_set(err, CG_ERR_INVALID, "setting 'shard_strategy': unknown strategy '%s'",
                            c->svc.shard_strategy);
    if (n < 1 || n > SR_MAX_SHARDS)
        return cg_error_set(err, CG_ERR_INVALID, "setting 'shards': %d shards, want 1..%d", n,
                            SR_MAX_SHARDS);
    if (c->by[0] != '\0' && strcmp(c->by, "coupon") != 0 && strcmp(c->by, "room") != 0)
        return cg_error_set(err, CG_ERR_INVALID, "setting 'by': '%s', want coupon or room", c->by);
    return CG_OK;
}

int cli_parse_i64(const char *s, long long *out)
{
    char *end = NULL;

    errno = 0;
    *out = s != NULL ? strtoll(s, &end, 10) : 0;
    return (s != NULL && end != s && *end == '\0' && errno == 0) ? CG_OK : CG_ERR_INVALID;
}

uint64_t cli_all_shards(const cli_ctx *ctx)
{
    return ctx->n_shards >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << ctx->n_shards) - 1;
}

/* Copies shard i's "host:port/db" out of the shards setting for display. */
static void cli_copy_addr(cli_ctx *ctx, int i)
{
    const char *p = ctx->conf.svc.shards;
    size_t len;

    for (int k = 0; k < i && p != NULL; k++) {
        p = strchr(p, ',');
        p = p != NULL ? p + 1 : NULL;
    }
    if (p == NULL)
        p = "?";
    len = strcspn(p, ",");
    if (len >= CLI_ADDR_MAX)
        len = CLI_ADDR_MAX - 1;
    memcpy(ctx->addr[i], p, len);
    ctx->addr[i][len] = '\0';
}

/* Builds the db configs and starts one pool worker per shard. */
static int cli_start_pool(cli_ctx *ctx, cg_error *err)
{
    db_config *dbs = NULL;
    char (*bufs)[CLI_ADDR_MAX] = NULL;
    int rc = CG_ERR_NOMEM;

    dbs = calloc((size_t)ctx->n_shards, sizeof(*dbs));
    bufs = calloc((size_t)ctx->n_shards, sizeof(*bufs));
    if (dbs == NULL || bufs == NULL) {
        cg_error_set(err, rc, "out of memory");
        goto done;
    }
    for (int i = 0; i < ctx->n_shards; i++) {
        cli_copy_addr(ctx, i);
        rc = svc_conf_shard_db(&ctx->conf.svc, i, &dbs[i], bufs[i], CLI_ADDR_MAX, err);
        if (rc != CG_OK)
            goto done;
        /* A dead shard must not hold a command beyond its bound. */
        if (dbs[i].connect_timeout_ms > ctx->conf.timeout_ms)
            dbs[i].connect_timeout_ms = (int)ctx->conf.timeout_ms;
    }
    rc = sr_pool_new(dbs, ctx->n_shards, &ctx->pool, err);
done:
    free(bufs);
    free(dbs);
    return rc;
}

int cli_open(cli_ctx *ctx, int argc, char **argv, cg_error *err)
{
    enum sr_strategy strategy;
    int rc;

    memset(ctx, 0, sizeof(*ctx));
    log_set_program("shard-router");
    rc = cfg_load(&cli_spec, &ctx->conf, argc, argv, err);
    if (rc != CG_OK)
        return rc;
    rc = svc_conf_apply_log_level(&ctx->conf.svc, err);
    if (rc != CG_OK)
        return rc;
    ctx->n_shards = svc_conf_shard_count(&ctx->conf.svc);
    if (sr_strategy_parse(ctx->conf.svc.shard_strategy, &strategy) != CG_OK)
        return cg_error_set(err, CG_ERR_INVALID, "unknown strategy '%s'", ctx->conf.svc.shard_strategy);
    ctx->map = malloc(sizeof(*ctx->map));
    if (ctx->map == NULL)
        return cg_error_set(err, CG_ERR_NOMEM, "out of memory");
    rc = sr_map_build(ctx->map, strategy, ctx->n_shards, ctx->conf.svc.shard_map, err);
    if (rc != CG_OK)
        return rc;
    return cli_start_pool(ctx, err);
}

void cli_close(cli_ctx *ctx)
{
    sr_pool_free(ctx->pool);
    ctx->pool = NULL;
    free(ctx->map);
    ctx->map = NULL;
    cfg_free(&cli_spec, &ctx->conf);
}
