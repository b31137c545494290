/* test_lg_hist.c - the latency histogram: layout, precision, percentiles. */
#include <stdlib.h>

#include "../src/lg_hist.h"
#include "testhelp.h"

/* Every value below 2 * LG_HIST_SUB has a counter of its own. */
static void test_exact_below_two_sub(void)
{
    for (long long v = 0; v < 2 * LG_HIST_SUB; v++) {
        int i = lg_hist_index(v);

        TH_CHECK_INT(i, v);
        TH_CHECK_INT(lg_hist_lowest(i), v);
        TH_CHECK_INT(lg_hist_highest(i), v);
    }
}

/* Counters are contiguous, each one's range follows the previous one's, and
 * no range is wider than 1/LG_HIST_SUB of its values. */
static void test_layout_contiguous(void)
{
    long long prev_high = -1;
    int bad = 0;

    for (int i = 0; i < LG_HIST_COUNTS && bad < 5; i++) {
        long long lo = lg_hist_lowest(i), hi = lg_hist_highest(i);

        if (lo != prev_high + 1 || hi < lo || lg_hist_index(lo) != i || lg_hist_index(hi) != i ||
            (lo >= 2 * LG_HIST_SUB && (hi - lo + 1) * LG_HIST_SUB > lo)) {
            TH_FAIL_AT("counter %d holds %lld..%lld after %lld", i, lo, hi, prev_high);
            bad++;
        }
        prev_high = hi;
    }
    TH_CHECK_INT(prev_high, LG_HIST_MAX_US);
}

static void test_fixed_indexes(void)
{
    TH_CHECK_INT(lg_hist_index(2047), 2047);
    TH_CHECK_INT(lg_hist_index(2048), 2048);
    TH_CHECK_INT(lg_hist_index(2049), 2048);   /* 2048..2049 share a counter */
    TH_CHECK_INT(lg_hist_index(2050), 2049);
    TH_CHECK_INT(lg_hist_index(4095), 3071);
    TH_CHECK_INT(lg_hist_index(4096), 3072);
    TH_CHECK_INT(lg_hist_highest(3072), 4099);
    TH_CHECK_INT(lg_hist_index(-5), 0);
    TH_CHECK_INT(lg_hist_index(LG_HIST_MAX_US + 1000), LG_HIST_COUNTS - 1);
}

static void test_empty(void)
{
    lg_hist *h = malloc(sizeof(*h));

    TH_REQUIRE(h != NULL);
    lg_hist_reset(h);
    TH_CHECK_INT(lg_hist_percentile(h, 50.0), 0);
    TH_CHECK_INT(lg_hist_percentile(h, 100.0), 0);
    TH_CHECK(lg_hist_mean(h) == 0.0);
    free(h);
}

/* 1..10000 us once each: pN is N% of 10000 within the 0.1% precision, never
 * below the true value, p100 and max exact. */
static void test_percentiles_uniform(void)
{
    static const double pcts[] = {1.0, 50.0, 90.0, 95.0, 99.0, 99.9};
    lg_hist *h = malloc(sizeof(*h));

    TH_REQUIRE(h != NULL);
    lg_hist_reset(h);
    for (long long v = 1; v <= 10000; v++)
        lg_hist_record(h, v);
    TH_CHECK_INT(h->n, 10000);
    TH_CHECK_INT(h->min_us, 1);
    TH_CHECK_INT(h->max_us, 10000);
    TH_CHECK(lg_hist_mean(h) > 5000.4 && lg_hist_mean(h) < 5000.6);
    for (size_t k = 0; k < sizeof(pcts) / sizeof(pcts[0]); k++) {
        long long want = (long long)(pcts[k] * 100.0 + 0.5), got = lg_hist_percentile(h, pcts[k]);

        if (got < want || (double)(got - want) > (double)want / LG_HIST_SUB + 1.0)
            TH_FAIL_AT("p%g: %lld, want %lld (+0.1%%)", pcts[k], got, want);
    }
    TH_CHECK_INT(lg_hist_percentile(h, 100.0), 10000);
    free(h);
}

/* A skewed sample: 990 fast answers and 10 slow ones. */
static void test_percentiles_tail(void)
{
    lg_hist *h = malloc(sizeof(*h));

    TH_REQUIRE(h != NULL);
    lg_hist_reset(h);
    for (int i = 0; i < 990; i++)
        lg_hist_record(h, 200);
    for (int i = 0; i < 10; i++)
        lg_hist_record(h, 150000);
    TH_CHECK_INT(lg_hist_percentile(h, 50.0), 200);
    TH_CHECK_INT(lg_hist_percentile(h, 99.0), 200);     /* rank 990 is still fast */
    TH_CHECK(lg_hist_percentile(h, 99.1) >= 150000);    /* rank 991 is slow */
    TH_CHECK(lg_hist_percentile(h, 99.1) <= 150000 + 150000 / LG_HIST_SUB);
    TH_CHECK_INT(lg_hist_percentile(h, 100.0), 150000); /* capped at the exact max */
    free(h);
}

/* One value: every percentile is that value (the bucket's top is capped). */
static void test_single_value(void)
{
    lg_hist *h = malloc(sizeof(*h));

    TH_REQUIRE(h != NULL);
    lg_hist_reset(h);
    lg_hist_record(h, 123457);
    TH_CHECK_INT(lg_hist_percentile(h, 0.1), 123457);
    TH_CHECK_INT(lg_hist_percentile(h, 50.0), 123457);
    TH_CHECK_INT(lg_hist_percentile(h, 99.0), 123457);
    TH_CHECK_INT(h->min_us, 123457);
    free(h);
}

static void test_clamps(void)
{
    lg_hist *h = malloc(sizeof(*h));

    TH_REQUIRE(h != NULL);
    lg_hist_reset(h);
    lg_hist_record(h, LG_HIST_MAX_US * 4);
    lg_hist_record(h, -3);
    TH_CHECK_INT(h->max_us, LG_HIST_MAX_US);
    TH_CHECK_INT(h->min_us, 0);
    TH_CHECK_INT(h->counts[LG_HIST_COUNTS - 1], 1);
    TH_CHECK_INT(h->counts[0], 1);
    TH_CHECK_INT(lg_hist_percentile(h, 100.0), LG_HIST_MAX_US);
    free(h);
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"exact_below_two_sub", test_exact_below_two_sub},
        {"layout_contiguous", test_layout_contiguous},
        {"fixed_indexes", test_fixed_indexes},
        {"empty", test_empty},
        {"percentiles_uniform", test_percentiles_uniform},
        {"percentiles_tail", test_percentiles_tail},
        {"single_value", test_single_value},
        {"clamps", test_clamps},
    };

    return th_main("lg_hist", tests, TH_TABLE_LEN(tests), argc, argv);
}
