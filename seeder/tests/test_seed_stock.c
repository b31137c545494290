/* test_seed_stock.c - unit tests of the seeder's Sentinel address check
 * (seed_stock.h); the loading itself is covered by it_seeder.c. */
#include "../src/seed_stock.h"
#include "testhelp.h"

static void test_check_sentinels(void)
{
    static const char *const good[] = {"127.0.0.1:26379", "127.0.0.1:1,10.0.0.2:65535"};
    static const char *const bad[] = {"", "127.0.0.1", "127.0.0.1:", ":26379", "127.0.0.1:x",
                                      "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:1,",
                                      "127.0.0.1:1,,127.0.0.1:2", "127.0.0.1:1 "};
    cg_error err = {0, ""};

    for (size_t i = 0; i < TH_TABLE_LEN(good); i++) {
        if (seed_redis_check_sentinels(good[i], &err) != CG_OK)
            TH_FAIL_AT("\"%s\" refused: %s", good[i], err.msg);
    }
    for (size_t i = 0; i < TH_TABLE_LEN(bad); i++) {
        if (seed_redis_check_sentinels(bad[i], &err) != CG_ERR_INVALID)
            TH_FAIL_AT("\"%s\" accepted", bad[i]);
        else
            TH_CHECK(strstr(err.msg, "sentinels") != NULL);
    }
    TH_CHECK_INT(seed_redis_check_sentinels(NULL, &err), CG_ERR_INVALID);
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"sentinel addresses are ip:port,...", test_check_sentinels},
    };

    return th_main("seed_stock", tests, TH_TABLE_LEN(tests), argc, argv);
}
