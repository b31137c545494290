/* lg_stats.h - what one endpoint's measured phase counted.
 *
 * Every measured request ends in exactly one of: an HTTP answer (counted by
 * status, 2xx or not, its latency in the histogram), a transport error or a
 * timeout (counted, latency not recorded: it measures the failure, not the
 * endpoint). Answers whose JSON says "partial": true are counted besides. */
#ifndef LG_STATS_H
#define LG_STATS_H

#include <stddef.h>

#include "lg_hist.h"
#include "lg_pool.h"

#define LG_STATUS_MAX 600          /* status[] covers 100..599; anything else lands in status[0] */
#define LG_ERROR_TEXT_MAX 64

typedef struct lg_ep_stats {
    long long requests;            /* measured requests ended */
    long long ok;                  /* 2xx answers */
    long long non_2xx;             /* other answers */
    long long status[LG_STATUS_MAX];
    long long transport_errors;    /* refused, reset, malformed, ... (not timeouts) */
    long long timeouts;
    long long partial;             /* answers with "partial": true */
    long long connects;            /* requests that had to open a connection */
    long long first_us, last_us;   /* phase start and last completion, monotonic */
    char first_error[LG_ERROR_TEXT_MAX];
    lg_hist hist;                  /* latency of every HTTP answer, any status */
} lg_ep_stats;

/* Zeroes st and notes the phase start. */
void lg_stats_start(lg_ep_stats *st, long long now_us);
/* Counts one ended request. */
void lg_stats_record(lg_ep_stats *st, const lg_result *r, long long now_us);
/* Seconds from the phase start to the last completion. */
double lg_stats_seconds(const lg_ep_stats *st);
/* Requests ended per second over the phase (0 when none). */
double lg_stats_rps(const lg_ep_stats *st);

/* True when the JSON text holds a key "partial" whose value is true
 * (a byte scan, not a parse: any nesting level counts). */
int lg_body_partial(const char *body, size_t len);

#endif
