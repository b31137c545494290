/* cli_status.c - `status` and `counts` of the operator CLI (cli_status.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_status.h"

#define CLI_SQL_MAX 256

static sr_request cli_request(const cli_ctx *ctx, enum sr_mode mode, uint64_t shards)
{
    sr_request req;

    memset(&req, 0, sizeof(req));
    req.mode = mode;
    req.shards = shards;
    req.timeout_ms = (int)ctx->conf.timeout_ms;
    return req;
}

/* Reports every asked shard the result lists as missing; returns how many. */
static int cli_report_missing(const cli_ctx *ctx, const sr_result *res, const char *what)
{
    for (int k = 0; k < res->n_missing; k++) {
        int i = res->missing[k];

        fprintf(stderr, "shard-router: shard %d (%s) down: %s failed (%s)\n", i, ctx->addr[i],
                what, cg_status_name(res->shard_status[i]));
    }
    if (res->n_missing > 0 && res->error[0] != '\0')
        fprintf(stderr, "shard-router: first error: %s\n", res->error);
    return res->n_missing;
}

int cli_probe(cli_ctx *ctx, uint64_t *up, sr_result *ping, cg_error *err)
{
    sr_request req = cli_request(ctx, SR_SUM, cli_all_shards(ctx));
    int rc;

    *up = 0;
    req.sql = "SELECT 1";
    rc = sr_scatter(ctx->pool, &req, ping, err);
    if (rc != CG_OK)
        return rc;
    *up = cli_all_shards(ctx);
    for (int k = 0; k < ping->n_missing; k++)
        *up &= ~((uint64_t)1 << ping->missing[k]);
    cli_report_missing(ctx, ping, "connect or SELECT 1");
    return CG_OK;
}

double cli_balance(const int64_t *counts, int n)
{
    int64_t max = 0, sum = 0;

    for (int i = 0; i < n; i++) {
        sum += counts[i];
        if (counts[i] > max)
            max = counts[i];
    }
    return (n == 0 || sum == 0) ? 1.0 : (double)max * n / (double)sum;
}

/* Asks the shards in mask for COUNT(*) in one parallel scatter; each shard's
 * row carries its index so the merged rows say whose count they are. On a
 * missing shard its bit leaves *mask. */
static int cli_row_counts(cli_ctx *ctx, uint64_t *mask, int64_t *counts, cg_error *err)
{
    char sql[SR_MAX_SHARDS][CLI_SQL_MAX];
    const char *per[SR_MAX_SHARDS];
    sr_request req = cli_request(ctx, SR_ROWS, *mask);
    sr_result res;
    int rc;

    memset(&res, 0, sizeof(res));
    for (int i = 0; i < ctx->n_shards; i++) {
        snprintf(sql[i], sizeof(sql[i]), "SELECT %d, COUNT(*) FROM coupon_results", i);
        per[i] = sql[i];
        counts[i] = 0;
    }
    req.sql_per_shard = per;
    req.limit = (size_t)ctx->n_shards;
    req.order_col = 0;
    rc = sr_scatter(ctx->pool, &req, &res, err);
    if (rc != CG_OK)
        goto done;
    for (int k = 0; k < res.n_missing; k++)
        *mask &= ~((uint64_t)1 << res.missing[k]);
    cli_report_missing(ctx, &res, "COUNT(*)");
    for (size_t r = 0; r < res.n_rows; r++) {
        long long shard, n;

        if (res.n_cols < 2 || cli_parse_i64(res.rows[r][0], &shard) != CG_OK ||
            cli_parse_i64(res.rows[r][1], &n) != CG_OK || shard < 0 || shard >= ctx->n_shards) {
            rc = cg_error_set(err, CG_ERR_PROTOCOL, "unexpected COUNT(*) answer");
            goto done;
        }
        counts[shard] = n;
    }
done:
    sr_result_free(&res);
    return rc;
}

/* Prints the balance line over the shards in mask. */
static void cli_print_balance(const cli_ctx *ctx, uint64_t mask, const int64_t *counts)
{
    int64_t answered[SR_MAX_SHARDS], total = 0;
    int n = 0;

    for (int i = 0; i < ctx->n_shards; i++) {
        if ((mask >> i & 1) == 0)
            continue;
        answered[n++] = counts[i];
        total += counts[i];
    }
    printf("total %" PRId64 " rows on %d of %d shards\n", total, n, ctx->n_shards);
    printf("balance %.3f (max/mean rows per shard, 1.000 = even)%s\n", cli_balance(answered, n),
           n < ctx->n_shards ? " partial: down shards left out" : "");
}

int cli_status(cli_ctx *ctx)
{
    int64_t counts[SR_MAX_SHARDS];
    sr_result ping, lat;
    sr_request req;
    uint64_t up = 0, counted;
    cg_error err = {0, ""};
    int rc = CLI_EXIT_DOWN;

    memset(&ping, 0, sizeof(ping));
    memset(&lat, 0, sizeof(lat));
    if (cli_probe(ctx, &up, &ping, &err) != CG_OK)
        goto fail;
    /* The probe paid for the connects; this one measures the query alone. */
    req = cli_request(ctx, SR_SUM, up);
    req.sql = "SELECT 1";
    if (up != 0 && sr_scatter(ctx->pool, &req, &lat, &err) != CG_OK)
        goto fail;
    counted = up;
    if (up != 0 && cli_row_counts(ctx, &counted, counts, &err) != CG_OK)
        goto fail;
    printf("%-5s %-40s %-5s %10s %12s\n", "shard", "address", "state", "latency_ms", "rows");
    for (int i = 0; i < ctx->n_shards; i++) {
        int is_up = (up >> i & 1) && (counted >> i & 1);
        char ms[16] = "-", rows[24] = "-";

        if (is_up) {
            if (lat.shard_status[i] == CG_OK)
                snprintf(ms, sizeof(ms), "%.2f", (double)lat.shard_us[i] / 1000.0);
            snprintf(rows, sizeof(rows), "%" PRId64, counts[i]);
        }
        printf("%-5d %-40s %-5s %10s %12s\n", i, ctx->addr[i], is_up ? "up" : "down", ms, rows);
    }
    cli_print_balance(ctx, counted, counts);
    rc = counted == cli_all_shards(ctx) ? CLI_EXIT_OK : CLI_EXIT_DOWN;
    goto done;
fail:
    fprintf(stderr, "shard-router: status: %s\n", err.msg);
done:
    sr_result_free(&lat);
    sr_result_free(&ping);
    return rc;
}

/* counts --by coupon|room: one scatter, each shard sorted by the key
 * descending so the merge puts a key's shards next to each other. */
static int cli_counts_by(cli_ctx *ctx, uint64_t *mask)
{
    const char *col = strcmp(ctx->conf.by, "coupon") == 0 ? "coupon_id" : "room_id";
    char sql[SR_MAX_SHARDS][CLI_SQL_MAX];
    const char *per[SR_MAX_SHARDS];
    sr_request req = cli_request(ctx, SR_ROWS, *mask);
    sr_result res;
    cg_error err = {0, ""};
    int rc = CLI_EXIT_DOWN;

    memset(&res, 0, sizeof(res));
    for (int i = 0; i < ctx->n_shards; i++) {
        snprintf(sql[i], sizeof(sql[i]),
                 "SELECT %s, %d, COUNT(*) FROM coupon_results GROUP BY %s ORDER BY %s DESC LIMIT %d",
                 col, i, col, col, SR_LIMIT_MAX);
        per[i] = sql[i];
    }
    req.sql_per_shard = per;
    req.limit = SR_LIMIT_MAX;
    req.order_col = 0;
    if (sr_scatter(ctx->pool, &req, &res, &err) != CG_OK) {
        fprintf(stderr, "shard-router: counts: %s\n", err.msg);
        goto done;
    }
    for (int k = 0; k < res.n_missing; k++)
        *mask &= ~((uint64_t)1 << res.missing[k]);
    cli_report_missing(ctx, &res, "GROUP BY");
    printf("%-12s %5s %12s\n", col, "shard", "rows");
    for (size_t r = 0; r < res.n_rows; r++)
        printf("%-12s %5s %12s\n", res.rows[r][0], res.rows[r][1], res.rows[r][2]);
    if (res.n_rows == SR_LIMIT_MAX)
        printf("truncated at %d lines (the smallest %s ids are left out)\n", SR_LIMIT_MAX, col);
    rc = CLI_EXIT_OK;
done:
    sr_result_free(&res);
    return rc;
}

int cli_counts(cli_ctx *ctx)
{
    int64_t counts[SR_MAX_SHARDS];
    sr_result ping;
    uint64_t up = 0, counted;
    cg_error err = {0, ""};
    int rc = CLI_EXIT_DOWN;

    memset(&ping, 0, sizeof(ping));
    if (cli_probe(ctx, &up, &ping, &err) != CG_OK)
        goto fail;
    counted = up;
    if (ctx->conf.by[0] != '\0') {
        rc = up != 0 ? cli_counts_by(ctx, &counted) : CLI_EXIT_OK;
        if (rc != CLI_EXIT_OK)
            goto done;
    }
    if (up != 0 && cli_row_counts(ctx, &counted, counts, &err) != CG_OK)
        goto fail;
    printf("%-5s %12s\n", "shard", "rows");
    for (int i = 0; i < ctx->n_shards; i++) {
        if (counted >> i & 1)
            printf("%-5d %12" PRId64 "\n", i, counts[i]);
        else
            printf("%-5d %12s\n", i, "down");
    }
    cli_print_balance(ctx, counted, counts);
    rc = counted == cli_all_shards(ctx) ? CLI_EXIT_OK : CLI_EXIT_DOWN;
    goto done;
fail:
    fprintf(stderr, "shard-router: counts: %s\n", err.msg);
done:
    sr_result_free(&ping);
    return rc;
}
