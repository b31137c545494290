/* lg_hist.c - the log-linear latency histogram; see lg_hist.h.
 *
 * Counter layout (S = LG_HIST_SUB): values below 2S sit at their own index;
 * a larger value v with its top bit at position S_BITS + b (b >= 1) sits at
 * b*S + (v >> b), whose v >> b lies in [S, 2S): every power of two above 2S
 * takes S consecutive counters after the previous one. */
#include "lg_hist.h"

#include <string.h>

void lg_hist_reset(lg_hist *h)
{
    memset(h, 0, sizeof(*h));
}

/* b: how far the value is shifted right to fit [S, 2S) (0 below 2S). */
static int lg_hist_shift(uint64_t v)
{
    int top = 63 - __builtin_clzll(v | (uint64_t)(2 * LG_HIST_SUB - 1));

    return top - LG_HIST_SUB_BITS;
}

int lg_hist_index(long long us)
{
    uint64_t v = us < 0 ? 0 : (uint64_t)us;
    int b;

    if (v > (uint64_t)LG_HIST_MAX_US)
        v = (uint64_t)LG_HIST_MAX_US;
    b = lg_hist_shift(v);
    return b * LG_HIST_SUB + (int)(v >> b);
}

/* The shift and sub-bucket of a counter: the inverse of lg_hist_index. */
static void lg_hist_split(int index, int *b, uint64_t *sub)
{
    *b = index < 2 * LG_HIST_SUB ? 0 : index / LG_HIST_SUB - 1;
    *sub = (uint64_t)(index - *b * LG_HIST_SUB);
}

long long lg_hist_lowest(int index)
{
    uint64_t sub;
    int b;

    lg_hist_split(index, &b, &sub);
    return (long long)(sub << b);
}

long long lg_hist_highest(int index)
{
    uint64_t sub;
    int b;

    lg_hist_split(index, &b, &sub);
    return (long long)(((sub + 1) << b) - 1);
}

void lg_hist_record(lg_hist *h, long long us)
{
    uint64_t v = us < 0 ? 0 : (uint64_t)us;

    if (v > (uint64_t)LG_HIST_MAX_US)
        v = (uint64_t)LG_HIST_MAX_US;
    h->counts[lg_hist_index((long long)v)]++;
    if (h->n == 0 || v < h->min_us)
        h->min_us = v;
    if (v > h->max_us)
        h->max_us = v;
    h->sum_us += (double)v;
    h->n++;
}

long long lg_hist_percentile(const lg_hist *h, double p)
{
    uint64_t rank, seen = 0;
    double want;

    if (h->n == 0)
        return 0;
    if (p > 100.0)
        p = 100.0;
    /* the rank as HdrHistogram rounds it (nearest, at least 1): immune to
     * 0.99 * 1000 landing a hair above 990 */
    want = p / 100.0 * (double)h->n + 0.5;
    rank = want < 1.0 ? 1 : (uint64_t)want;
    if (rank > h->n)
        rank = h->n;
    for (int i = 0; i < LG_HIST_COUNTS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            long long v = lg_hist_highest(i);

            return v > (long long)h->max_us ? (long long)h->max_us : v;
        }
    }
    return (long long)h->max_us;
}

double lg_hist_mean(const lg_hist *h)
{
    return h->n == 0 ? 0.0 : h->sum_us / (double)h->n;
}
