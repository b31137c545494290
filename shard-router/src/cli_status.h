/* cli_status.h - the operator CLI's read-only views: `status` (per shard:
 * address, up/down, latency of a trivial query, rows, and the balance score)
 * and `counts` (rows per shard, optionally grouped by coupon or room). Both
 * ask every shard at once through the pool, so a down shard costs at most
 * the timeout and is reported, not waited on. */
#ifndef CLI_STATUS_H
#define CLI_STATUS_H

#include <stdint.h>

#include "cli_conf.h"

/* Pings every shard in parallel ("SELECT 1"); *up gets a bit per shard that
 * answered. Shards that did not are printed to stderr with the reason. */
int cli_probe(cli_ctx *ctx, uint64_t *up, sr_result *ping, cg_error *err) CG_MUSTCHECK;

/* The balance score of n row counts: max / mean (1.00 = perfectly even,
 * k = the fullest shard holds k times its share); 1.0 when every count is 0
 * or n is 0. */
double cli_balance(const int64_t *counts, int n);

/* The commands; they return an enum cli_exit. */
int cli_status(cli_ctx *ctx);
int cli_counts(cli_ctx *ctx);

#endif
