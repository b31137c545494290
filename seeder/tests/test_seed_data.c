/* test_seed_data.c - unit tests of the seed data set (seed_data.h): fixed
 * expected values for the default seed, so that an accidental change of the
 * data set shows, and the shape the design asks for over many ids. */
#include <stdlib.h>

#include "../src/seed_data.h"
#include "testhelp.h"

#define SEED SEED_DEFAULT_SEED

static void test_fixed_levels(void)
{
    static const int first40[40] = {0, 0, 0, 0, 1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 1,
                                    1, 0, 0, 1, 0, 0, 0, 0, 1, 2, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};

    for (int i = 0; i < 40; i++)
        TH_CHECK_INT(seed_user_level(SEED, i + 1), first40[i]);
}

static void test_fixed_coupons(void)
{
    static const struct { long long id, room, stock; int type, disc, min; } want[] = {
        {1, 1, 14731, 1, 2200, 10000},  {2, 1, 10792, 1, 3800, 30000},
        {25, 5, 9393, 2, 1800, 35000},  {26, 6, 974, 2, 1900, 10000},
        {27, 6, 1252, 2, 500, 5000},    {500, 100, 3123, 2, 1200, 40000},
    };

    for (size_t i = 0; i < TH_TABLE_LEN(want); i++) {
        seed_coupon c;

        seed_coupon_make(SEED, want[i].id, 5, &c);
        TH_CHECK_INT(c.coupon_id, want[i].id);
        TH_CHECK_INT(c.room_id, want[i].room);
        TH_CHECK_INT(c.total_stock, want[i].stock);
        TH_CHECK_INT(c.coupon_type, want[i].type);
        TH_CHECK_INT(c.discount_cents, want[i].disc);
        TH_CHECK_INT(c.min_order_cents, want[i].min);
    }
}

/* Exactly 14/5/1 in every block of 20, so 70/25/5% of any multiple of 20,
 * and at most one block's worth off for any other count. */
static void test_level_split(void)
{
    long long n[SEED_LEVEL_MAX] = {0, 0, 0}, bad_blocks = 0;

    for (long long block = 0; block < 5000; block++) {
        int b[SEED_LEVEL_MAX] = {0, 0, 0};

        for (long long u = block * 20 + 1; u <= block * 20 + 20; u++) {
            int level = seed_user_level(SEED, u);

            TH_REQUIRE(level >= 0 && level < SEED_LEVEL_MAX);
            b[level]++;
            n[level]++;
        }
        bad_blocks += b[0] != 14 || b[1] != 5 || b[2] != 1;
    }
    TH_CHECK_INT(bad_blocks, 0);
    TH_CHECK_INT(n[SEED_LEVEL_NORMAL], 70000);
    TH_CHECK_INT(n[SEED_LEVEL_VIP], 25000);
    TH_CHECK_INT(n[SEED_LEVEL_SVIP], 5000);
}

/* The shuffle really shuffles: SVIP users do not sit at one position. */
static void test_level_positions_vary(void)
{
    int seen[SEED_LEVEL_BLOCK] = {0}, positions = 0;

    for (long long u = 1; u <= 20000; u++) {
        if (seed_user_level(SEED, u) == SEED_LEVEL_SVIP)
            seen[(u - 1) % SEED_LEVEL_BLOCK] = 1;
    }
    for (int i = 0; i < SEED_LEVEL_BLOCK; i++)
        positions += seen[i];
    TH_CHECK_INT(positions, SEED_LEVEL_BLOCK);
}

static void test_seed_changes_data(void)
{
    int differ = 0;

    for (long long u = 1; u <= 200; u++)
        differ += seed_user_level(SEED, u) != seed_user_level(SEED + 1, u);
    TH_CHECK(differ > 0);
    TH_CHECK(seed_hash(1, 1, 1) != seed_hash(2, 1, 1));
    TH_CHECK(seed_hash(1, 1, 1) != seed_hash(1, 2, 1));
    TH_CHECK(seed_hash(1, 1, 1) == seed_hash(1, 1, 1));
}

static void test_room_of_coupon(void)
{
    TH_CHECK_INT(seed_coupon_room(1), 1);
    TH_CHECK_INT(seed_coupon_room(5), 1);
    TH_CHECK_INT(seed_coupon_room(6), 2);
    TH_CHECK_INT(seed_coupon_room(25), 5);
    TH_CHECK_INT(seed_coupon_room(26), 6);
    TH_CHECK_INT(seed_coupon_room(500), 100);
    TH_CHECK(seed_room_is_hot(1, 5));
    TH_CHECK(seed_room_is_hot(5, 5));
    TH_CHECK(!seed_room_is_hot(6, 5));
    TH_CHECK(!seed_room_is_hot(0, 5));
    TH_CHECK(!seed_room_is_hot(1, 0));
}

/* Over many coupons both ranges are respected and nearly filled. */
static void test_stock_ranges(void)
{
    long long hot_min = 1LL << 40, hot_max = 0, min = 1LL << 40, max = 0, outside = 0;

    for (long long id = 1; id <= 100000; id++) {
        seed_coupon c;

        seed_coupon_make(SEED, id, 10000, &c);   /* rooms 1..10000 hot: ids 1..50000 */
        if (c.room_id <= 10000) {
            outside += c.total_stock < SEED_HOT_STOCK_MIN || c.total_stock > SEED_HOT_STOCK_MAX;
            hot_min = c.total_stock < hot_min ? c.total_stock : hot_min;
            hot_max = c.total_stock > hot_max ? c.total_stock : hot_max;
        } else {
            outside += c.total_stock < SEED_STOCK_MIN || c.total_stock > SEED_STOCK_MAX;
            min = c.total_stock < min ? c.total_stock : min;
            max = c.total_stock > max ? c.total_stock : max;
        }
        TH_CHECK(c.coupon_type == 1 || c.coupon_type == 2);
    }
    TH_CHECK_INT(outside, 0);
    TH_CHECK(hot_min < SEED_HOT_STOCK_MIN + 50 && hot_max > SEED_HOT_STOCK_MAX - 50);
    TH_CHECK(min < SEED_STOCK_MIN + 50 && max > SEED_STOCK_MAX - 50);
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"fixed levels of users 1-40", test_fixed_levels},
        {"fixed coupons", test_fixed_coupons},
        {"70/25/5 split in every block of 20", test_level_split},
        {"levels are shuffled within blocks", test_level_positions_vary},
        {"the seed changes the data, nothing else does", test_seed_changes_data},
        {"coupon c in room (c-1)/5+1, hot rooms", test_room_of_coupon},
        {"stock ranges", test_stock_ranges},
    };

    return th_main("seed_data", tests, TH_TABLE_LEN(tests), argc, argv);
}
