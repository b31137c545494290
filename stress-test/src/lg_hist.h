/* lg_hist.h - a log-linear latency histogram in microseconds (HDR-like).
 *
 * Values 0..2*LG_HIST_SUB-1 us are counted exactly; above, every power of two
 * is split into LG_HIST_SUB equal sub-buckets, so a recorded value is known to
 * within 1/LG_HIST_SUB (about 0.1%) whatever its size. Memory is fixed
 * (LG_HIST_COUNTS counters, about 184 KiB) however many samples arrive, unlike
 * keeping every sample; values above LG_HIST_MAX_US are counted as that value.
 * Percentiles answer the highest value of the sub-bucket holding the rank
 * (never below the true value, as HdrHistogram does), capped at the exact
 * maximum; min, max and sum are exact. */
#ifndef LG_HIST_H
#define LG_HIST_H

#include <stdint.h>

#define LG_HIST_SUB_BITS 10
#define LG_HIST_SUB (1 << LG_HIST_SUB_BITS)        /* sub-buckets per power of two */
#define LG_HIST_MAX_BITS 32
#define LG_HIST_MAX_US ((1LL << LG_HIST_MAX_BITS) - 1)   /* about 71 minutes */
#define LG_HIST_COUNTS ((LG_HIST_MAX_BITS - LG_HIST_SUB_BITS + 1) * LG_HIST_SUB)

typedef struct lg_hist {
    uint64_t counts[LG_HIST_COUNTS];
    uint64_t n;          /* samples recorded */
    uint64_t min_us;     /* exact; 0 when empty */
    uint64_t max_us;     /* exact (after clamping) */
    double sum_us;       /* for the mean */
} lg_hist;

void lg_hist_reset(lg_hist *h);
void lg_hist_record(lg_hist *h, long long us);

/* The value at percentile p (0 < p <= 100); 0 when empty. */
long long lg_hist_percentile(const lg_hist *h, double p);
double lg_hist_mean(const lg_hist *h);

/* The counter of a value, and the lowest and highest value a counter holds
 * (exposed for the tests). */
int lg_hist_index(long long us);
long long lg_hist_lowest(int index);
long long lg_hist_highest(int index);

#endif
