/* test_seed_history.c - unit tests of the history's pure part (seed_history.h):
 * determinism, distinct pairs and saga ids, the hot share, the time window,
 * and the skew range-room placement shows. Loading is covered by it_seeder.c. */
#include <stdlib.h>
#include <string.h>

#include "../src/seed_data.h"
#include "../src/seed_history.h"
#include "sr_map.h"
#include "testhelp.h"

#define U 10000
#define C 500
#define N 200000
#define DAY 86400LL
#define END 1795824000LL   /* 2026-11-28 00:00:00 UTC */

static seed_history_plan plan(long long seed, long long rows)
{
    seed_history_plan p = {seed, rows, U, C, 5, 30, END, 1000};

    return p;
}

static int cmp_saga(const void *a, const void *b)
{
    return memcmp(a, b, SEED_HISTORY_SAGA_LEN);
}

static void test_rows(void)
{
    seed_history_plan p = plan(SEED_DEFAULT_SEED, N);
    seed_history_gen g, g2;
    seed_history_row r, r2;
    cg_error err = {0, ""};
    unsigned char *seen = calloc((size_t)U * C, 1);
    char (*sagas)[SEED_HISTORY_SAGA_LEN] = calloc(N, SEED_HISTORY_SAGA_LEN);
    long long hot = 0, dup_pairs = 0, dup_sagas = 0, bad = 0;

    TH_REQUIRE(seen != NULL && sagas != NULL);
    TH_REQUIRE(seed_history_init(&g, &p, &err) == CG_OK);
    TH_REQUIRE(seed_history_init(&g2, &p, &err) == CG_OK);
    for (long long i = 0; i < N; i++) {
        seed_history_make(&g, i, &r);
        seed_history_make(&g2, i, &r2);
        bad += r.user_id != r2.user_id || r.coupon_id != r2.coupon_id ||
               r.grab_ms != r2.grab_ms || strcmp(r.saga_id, r2.saga_id) != 0;
        bad += r.user_id < 1 || r.user_id > U || r.coupon_id < 1 || r.coupon_id > C;
        bad += r.room_id != seed_coupon_room(r.coupon_id);
        bad += r.grab_ms >= END * 1000 || r.grab_ms < (END - 30 * DAY) * 1000;
        bad += strlen(r.saga_id) != SEED_HISTORY_SAGA_LEN ||
               strspn(r.saga_id, "0123456789abcdef") != SEED_HISTORY_SAGA_LEN ||
               strncmp(r.saga_id, SEED_HISTORY_PREFIX, strlen(SEED_HISTORY_PREFIX)) != 0;
        hot += r.room_id <= 5;
        dup_pairs += seen[(r.user_id - 1) * C + r.coupon_id - 1]++ > 0;
        memcpy(sagas[i], r.saga_id, SEED_HISTORY_SAGA_LEN);
    }
    qsort(sagas, N, SEED_HISTORY_SAGA_LEN, cmp_saga);
    for (long long i = 1; i < N; i++)
        dup_sagas += memcmp(sagas[i - 1], sagas[i], SEED_HISTORY_SAGA_LEN) == 0;
    TH_CHECK_INT(bad, 0);
    TH_CHECK_INT(dup_pairs, 0);
    TH_CHECK_INT(dup_sagas, 0);
    TH_CHECK_INT(hot, N * SEED_HISTORY_HOT_PERCENT / 100);
    free(sagas);
    free(seen);
}

static void test_seed_changes_rows(void)
{
    seed_history_plan p1 = plan(1, 10), p2 = plan(2, 10);
    seed_history_gen g1, g2;
    seed_history_row r1, r2;
    cg_error err = {0, ""};
    int same = 0;

    TH_REQUIRE(seed_history_init(&g1, &p1, &err) == CG_OK);
    TH_REQUIRE(seed_history_init(&g2, &p2, &err) == CG_OK);
    for (long long i = 0; i < 10; i++) {
        seed_history_make(&g1, i, &r1);
        seed_history_make(&g2, i, &r2);
        same += strcmp(r1.saga_id, r2.saga_id) == 0;
    }
    TH_CHECK_INT(same, 0);
}

static void test_capacity(void)
{
    seed_history_plan p = plan(1, (long long)U * C);
    seed_history_gen g;
    seed_history_row r;
    cg_error err = {0, ""};
    unsigned char *seen = calloc((size_t)U * C, 1);
    long long dup = 0;

    TH_REQUIRE(seen != NULL);
    /* every pair exactly once when the rows fill them all */
    TH_REQUIRE(seed_history_init(&g, &p, &err) == CG_OK);
    for (long long i = 0; i < p.rows; i++) {
        seed_history_make(&g, i, &r);
        dup += seen[(r.user_id - 1) * C + r.coupon_id - 1]++ > 0;
    }
    TH_CHECK_INT(dup, 0);
    p.rows++;
    TH_CHECK_INT(seed_history_init(&g, &p, &err), CG_ERR_INVALID);
    TH_CHECK(strstr(err.msg, "history") != NULL);
    free(seen);
}

static void test_range_room_skew(void)
{
    seed_history_plan p = plan(SEED_DEFAULT_SEED, 100000);
    seed_history_gen g;
    seed_history_row r;
    sr_map map, hash;
    cg_error err = {0, ""};
    long long room[4] = {0}, by_user[4] = {0};

    TH_REQUIRE(seed_history_init(&g, &p, &err) == CG_OK);
    TH_REQUIRE(sr_map_build(&map, SR_RANGE_ROOM, 4, "1:0,26:1,51:2,76:3", &err) == CG_OK);
    TH_REQUIRE(sr_map_build(&hash, SR_HASH, 4, NULL, &err) == CG_OK);
    for (long long i = 0; i < p.rows; i++) {
        seed_history_make(&g, i, &r);
        room[sr_shard_of(&map, r.user_id, r.room_id, r.grab_ms / 1000)]++;
        by_user[sr_shard_of(&hash, r.user_id, r.room_id, r.grab_ms / 1000)]++;
    }
    /* hot rooms 1-5 (half the rows) all land on shard 0 */
    for (int s = 1; s < 4; s++) {
        TH_CHECK(room[0] > 2 * room[s]);
        TH_CHECK(by_user[s] > p.rows / 4 * 8 / 10 && by_user[s] < p.rows / 4 * 12 / 10);
    }
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"rows: deterministic, distinct pairs and saga ids, hot half, window", test_rows},
        {"another seed, other saga ids", test_seed_changes_rows},
        {"all pairs once at capacity, one more refused", test_capacity},
        {"range-room skews to the hot rooms' shard, hash is even", test_range_room_skew},
    };

    return th_main("seed_history", tests, TH_TABLE_LEN(tests), argc, argv);
}
