/* test_sr_map.c - fixed-value tests of shard routing: these values are part
 * of the data format (an order must stay findable), so a change that moves
 * them must fail here. */
#include "sr_map.h"
#include "testhelp.h"

static sr_map map;

static void test_hash_fixed_values(void)
{
    /* splitmix64's published first output for seed 0 */
    TH_CHECK(sr_hash(0) == UINT64_C(0xe220a8397b1dcdaf));
    TH_CHECK(sr_hash(1) == UINT64_C(0x910a2dec89025cc1));
    TH_CHECK(sr_hash(42) == UINT64_C(0xbdd732262feb6e95));
    TH_CHECK_INT(sr_bucket_of_user(1), 193);
    TH_CHECK_INT(sr_bucket_of_user(2), 718);
    TH_CHECK_INT(sr_bucket_of_user(3), 1005);
    TH_CHECK_INT(sr_bucket_of_user(100000), 852);
    TH_CHECK_INT(sr_bucket_of_user(123456789), 633);
}

static void test_hash_default_map(void)
{
    cg_error err;

    TH_REQUIRE(sr_map_build(&map, SR_HASH, 4, NULL, &err) == CG_OK);
    TH_CHECK_INT(sr_shard_of(&map, 1, 99, 0), 0);      /* bucket 193 */
    TH_CHECK_INT(sr_shard_of(&map, 2, 99, 0), 2);      /* bucket 718 */
    TH_CHECK_INT(sr_shard_of(&map, 3, 1, 0), 3);       /* bucket 1005 */
    TH_CHECK_INT(sr_shard_of(&map, 42, 1, 0), 2);      /* bucket 661 */
    TH_CHECK_INT(sr_shard_of_user(&map, 100000), 3);   /* bucket 852 */
    TH_CHECK_INT(map.bucket_shard[255], 0);
    TH_CHECK_INT(map.bucket_shard[256], 1);
    TH_CHECK_INT(map.bucket_shard[1023], 3);
}

static void test_hash_balance(void)
{
    cg_error err;
    int count[4] = {0};

    TH_REQUIRE(sr_map_build(&map, SR_HASH, 4, NULL, &err) == CG_OK);
    for (int64_t u = 1; u <= 100000; u++)
        count[sr_shard_of_user(&map, u)]++;
    /* 25,000 each on average; a mix this good stays within 2% */
    for (int s = 0; s < 4; s++)
        TH_CHECK(count[s] > 24500 && count[s] < 25500);
}

static void test_hash_explicit_map(void)
{
    cg_error err;

    /* shard 1 taken out of the middle: buckets moved to shards 0 and 2 */
    TH_REQUIRE(sr_map_build(&map, SR_HASH, 3, "0-599:0,600-799:1,800-1023:2", &err) == CG_OK);
    TH_CHECK_INT(sr_shard_of_user(&map, 1), 0);    /* bucket 193 */
    TH_CHECK_INT(sr_shard_of_user(&map, 42), 1);   /* bucket 661 */
    TH_CHECK_INT(sr_shard_of_user(&map, 2), 1);    /* bucket 718 */
    TH_CHECK_INT(sr_shard_of_user(&map, 3), 2);    /* bucket 1005 */
    TH_CHECK_INT(sr_map_build(&map, SR_HASH, 2, "0-511:0,511-1023:1", &err), CG_ERR_INVALID);
    TH_CHECK(strstr(err.msg, "twice") != NULL);
    TH_CHECK_INT(sr_map_build(&map, SR_HASH, 2, "0-511:0,513-1023:1", &err), CG_ERR_INVALID);
    TH_CHECK(strstr(err.msg, "512") != NULL);
    TH_CHECK_INT(sr_map_build(&map, SR_HASH, 3, "0-511:0,512-1023:1", &err), CG_ERR_INVALID);
    TH_CHECK(strstr(err.msg, "shard 2") != NULL);
    TH_CHECK_INT(sr_map_build(&map, SR_HASH, 2, "0-1023:5", &err), CG_ERR_INVALID);
    TH_CHECK_INT(sr_map_build(&map, SR_HASH, 2, "0-2000:0", &err), CG_ERR_INVALID);
    TH_CHECK_INT(sr_map_build(&map, SR_HASH, 0, NULL, &err), CG_ERR_INVALID);
}

static void test_range_room(void)
{
    cg_error err;

    TH_REQUIRE(sr_map_build(&map, SR_RANGE_ROOM, 4, "1:0,26:1,51:2,76:3", &err) == CG_OK);
    TH_CHECK_INT(sr_shard_of(&map, 7, 1, 0), 0);
    TH_CHECK_INT(sr_shard_of(&map, 7, 25, 0), 0);
    TH_CHECK_INT(sr_shard_of(&map, 7, 26, 0), 1);
    TH_CHECK_INT(sr_shard_of(&map, 7, 75, 0), 2);
    TH_CHECK_INT(sr_shard_of(&map, 7, 76, 0), 3);
    TH_CHECK_INT(sr_shard_of(&map, 7, 1000000, 0), 3);
    TH_CHECK_INT(sr_shard_of_user(&map, 7), -1);
    TH_CHECK_INT(sr_shard_of_room(&map, 26), 1);
    TH_CHECK_INT(sr_shard_of_room(&map, 100), 3);
    TH_CHECK_INT(sr_shards_of_window(&map, 0, 1), 0xf);   /* time says nothing here */
    TH_CHECK_INT(sr_map_build(&map, SR_RANGE_ROOM, 2, NULL, &err), CG_ERR_INVALID);
    TH_CHECK_INT(sr_map_build(&map, SR_RANGE_ROOM, 2, "2:0,50:1", &err), CG_ERR_INVALID);
    TH_CHECK_INT(sr_map_build(&map, SR_RANGE_ROOM, 2, "1:0,50:1,40:0", &err), CG_ERR_INVALID);
    TH_CHECK_INT(sr_map_build(&map, SR_RANGE_ROOM, 2, "1:0,x:1", &err), CG_ERR_INVALID);
    TH_CHECK_INT(sr_map_build(&map, SR_RANGE_ROOM, 2, "1:0,50", &err), CG_ERR_INVALID);
}

static void test_range_day(void)
{
    cg_error err;
    const int64_t nov1 = 1793491200;  /* 2026-11-01T00:00:00Z */

    TH_REQUIRE(sr_map_build(&map, SR_RANGE_DAY, 2, "2026-11-01:0,2026-11-15:1", &err) == CG_OK);
    TH_CHECK_INT(map.ranges[0].from, 20758);   /* days from 1970-01-01 */
    TH_CHECK_INT(sr_shard_of(&map, 1, 1, nov1 - 1), 0);      /* before the first range */
    TH_CHECK_INT(sr_shard_of(&map, 1, 1, nov1 + 14 * 86400 - 1), 0);
    TH_CHECK_INT(sr_shard_of(&map, 1, 1, nov1 + 14 * 86400), 1);
    TH_CHECK_INT(sr_shard_of_room(&map, 1), -1);
    /* Windows: only the shards whose days meet [from, to]. */
    TH_CHECK_INT(sr_shards_of_window(&map, nov1 - 86400 * 30, nov1 - 86400 * 29), 1);
    TH_CHECK_INT(sr_shards_of_window(&map, nov1 + 13 * 86400, nov1 + 14 * 86400 - 1), 1);
    TH_CHECK_INT(sr_shards_of_window(&map, nov1 + 14 * 86400 - 1, nov1 + 14 * 86400), 3);
    TH_CHECK_INT(sr_shards_of_window(&map, nov1 + 20 * 86400, nov1 + 400 * 86400), 2);
    TH_CHECK_INT(sr_shards_of_window(&map, nov1 + 2, nov1 + 1), 0);
    TH_CHECK_INT(sr_map_build(&map, SR_RANGE_DAY, 2, "2026-13-01:0,2026-11-15:1", &err),
                 CG_ERR_INVALID);
}

static void test_hash_windows(void)
{
    cg_error err;

    TH_REQUIRE(sr_map_build(&map, SR_HASH, 4, NULL, &err) == CG_OK);
    TH_CHECK_INT(sr_shards_of_window(&map, 0, 86400 * 365), 0xf);
    TH_CHECK_INT(sr_shard_of_room(&map, 3), -1);
    TH_CHECK(sr_shard_of_user(&map, 3) >= 0);
    TH_REQUIRE(sr_map_build(&map, SR_HASH, 1, NULL, &err) == CG_OK);
    TH_CHECK_INT(sr_all_shards(&map), 1);
}

static void test_strategy_names(void)
{
    enum sr_strategy s;

    TH_CHECK_INT(sr_strategy_parse("range-room", &s), CG_OK);
    TH_CHECK_INT(s, SR_RANGE_ROOM);
    TH_CHECK_INT(sr_strategy_parse("modulo", &s), CG_ERR_INVALID);
    TH_CHECK_STR(sr_strategy_name(SR_HASH), "hash");
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"hash fixed values", test_hash_fixed_values},
        {"hash default map", test_hash_default_map},
        {"hash balance over 100,000 users", test_hash_balance},
        {"hash explicit map", test_hash_explicit_map},
        {"range by room", test_range_room},
        {"range by day", test_range_day},
        {"hash: every shard for rooms and windows", test_hash_windows},
        {"strategy names", test_strategy_names},
    };

    return th_main("sr_map", tests, TH_TABLE_LEN(tests), argc, argv);
}
