/* lg_report.h - the results of `stress-test read`: one aligned table, and JSON.
 *
 * Table columns (one row per endpoint, in measuring order; latencies in ms
 * with microsecond resolution, "-" when the endpoint got no answer):
 *   endpoint requests 2xx non2xx errors timeouts partial req/s
 *   p50_ms p95_ms p99_ms max_ms non2xx_by_status
 * non2xx_by_status reads "404:1000,503:2" (or "-"): no spaces, so every
 * column splits on blanks. */
#ifndef LG_REPORT_H
#define LG_REPORT_H

#include <stdio.h>

#include "lg_args.h"
#include "lg_stats.h"
#include "status.h"

void lg_report_table(FILE *out, const lg_read_opts *o, const lg_ep_stats *stats);

/* Writes the settings and every endpoint's counts and latencies (us). */
int lg_report_json(const char *path, const lg_read_opts *o, const lg_ep_stats *stats,
                   int interrupted, cg_error *err) CG_MUSTCHECK;

/* "404:1000,503:2" into buf; "-" when there is no non-2xx answer. */
void lg_report_statuses(const lg_ep_stats *st, char *buf, size_t len);

#endif
