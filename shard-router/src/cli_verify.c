/* cli_verify.c - `verify`: the placement check (cli_verify.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_status.h"
#include "cli_verify.h"

#define CLI_SQL_MAX 512

/* Columns of a batch; the first is the order column of the scatter. Seconds
 * come from TIMESTAMPDIFF, not UNIX_TIMESTAMP, so the session time zone
 * cannot shift a day boundary (grab_time is UTC). */
enum { V_RESULT_ID, V_SAGA, V_USER, V_ROOM, V_SECONDS, V_TIME, V_COLS };
#define V_SELECT "SELECT result_id, saga_id, user_id, room_id, " \
                 "TIMESTAMPDIFF(SECOND, '1970-01-01', grab_time), grab_time FROM coupon_results "

typedef struct cli_tally {
    int64_t rows;
    int64_t misplaced;
} cli_tally;

/* Checks one row; prints it when misplaced and still within max_list. */
static int cli_check_row(cli_ctx *ctx, int shard, char **v, cli_tally *t)
{
    long long user, room, secs;
    int want;

    if (cli_parse_i64(v[V_USER], &user) != CG_OK || cli_parse_i64(v[V_ROOM], &room) != CG_OK ||
        cli_parse_i64(v[V_SECONDS], &secs) != CG_OK)
        return CG_ERR_PROTOCOL;
    t->rows++;
    want = sr_shard_of(ctx->map, user, room, secs);
    if (want == shard)
        return CG_OK;
    if (t->misplaced++ < ctx->conf.max_list)
        printf("misplaced shard %d result_id %s saga_id %s user_id %s room_id %s grab_time '%s' "
               "belongs on shard %d\n", shard, v[V_RESULT_ID], v[V_SAGA], v[V_USER], v[V_ROOM],
               v[V_TIME], want);
    return CG_OK;
}

/* Walks one shard in batches below a falling result_id cursor. */
static int cli_verify_shard(cli_ctx *ctx, int shard, cli_tally *t)
{
    char sql[CLI_SQL_MAX], cursor[32] = "";
    sr_request req;
    sr_result res;
    cg_error err = {0, ""};
    int rc = CLI_EXIT_OK;

    memset(&res, 0, sizeof(res));
    memset(&req, 0, sizeof(req));
    req.mode = SR_ROWS;
    req.shards = (uint64_t)1 << shard;
    req.sql = sql;
    req.limit = (size_t)ctx->conf.batch;
    req.order_col = V_RESULT_ID;
    req.timeout_ms = (int)ctx->conf.timeout_ms;
    for (;;) {
        size_t n;

        snprintf(sql, sizeof(sql), V_SELECT "%s%s ORDER BY result_id DESC LIMIT %lld",
                 cursor[0] ? "WHERE result_id < " : "", cursor, ctx->conf.batch);
        if (sr_scatter(ctx->pool, &req, &res, &err) != CG_OK) {
            fprintf(stderr, "shard-router: verify: shard %d (%s): %s\n", shard, ctx->addr[shard],
                    err.msg);
            rc = CLI_EXIT_USAGE;
            break;
        }
        if (res.partial) {
            fprintf(stderr, "shard-router: shard %d (%s) down during verify: %s\n", shard,
                    ctx->addr[shard], res.error);
            rc = CLI_EXIT_DOWN;
            break;
        }
        if (res.n_rows > 0 && res.n_cols != V_COLS) {
            fprintf(stderr, "shard-router: verify: shard %d: unexpected columns\n", shard);
            rc = CLI_EXIT_USAGE;
            break;
        }
        for (size_t r = 0; r < res.n_rows && rc == CLI_EXIT_OK; r++)
            if (cli_check_row(ctx, shard, res.rows[r], t) != CG_OK) {
                fprintf(stderr, "shard-router: verify: shard %d: bad row result_id %s\n", shard,
                        res.rows[r][V_RESULT_ID]);
                rc = CLI_EXIT_USAGE;
            }
        n = res.n_rows;
        if (n > 0)
            snprintf(cursor, sizeof(cursor), "%s", res.rows[n - 1][V_RESULT_ID]);
        sr_result_free(&res);
        if (rc != CLI_EXIT_OK || n < (size_t)ctx->conf.batch)
            break;
    }
    sr_result_free(&res);
    return rc;
}

int cli_verify(cli_ctx *ctx)
{
    sr_result ping;
    uint64_t up = 0;
    cli_tally t = {0, 0};
    cg_error err = {0, ""};
    int rc = CLI_EXIT_DOWN;

    memset(&ping, 0, sizeof(ping));
    /* Every shard must answer first: a check of some shards proves nothing. */
    if (cli_probe(ctx, &up, &ping, &err) != CG_OK) {
        fprintf(stderr, "shard-router: verify: %s\n", err.msg);
        goto done;
    }
    if (up != cli_all_shards(ctx)) {
        fprintf(stderr, "shard-router: verify: not run, %d of %d shards unreachable\n",
                ping.n_missing, ctx->n_shards);
        goto done;
    }
    for (int i = 0; i < ctx->n_shards; i++) {
        rc = cli_verify_shard(ctx, i, &t);
        if (rc != CLI_EXIT_OK)
            goto done;
    }
    printf("checked %" PRId64 " rows on %d shards (%s): %" PRId64 " misplaced%s\n", t.rows,
           ctx->n_shards, sr_strategy_name(ctx->map->strategy), t.misplaced,
           t.misplaced > ctx->conf.max_list ? " (list cut at max_list)" : "");
    rc = t.misplaced > 0 ? CLI_EXIT_MISPLACED : CLI_EXIT_OK;
done:
    sr_result_free(&ping);
    return rc;
}
