/* test_lg_tmpl.c - path templates: compiling, expanding, ranges, determinism. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/lg_tmpl.h"
#include "testhelp.h"

static const lg_ranges ranges = {{100000, 100, 5, 500}};

static void test_compile_parts(void)
{
    lg_tmpl t;
    cg_error err = {0, ""};

    TH_REQUIRE(lg_tmpl_compile(&t, "/api/room/{room}/orders?limit=20", &err) == CG_OK);
    TH_CHECK_INT(t.n_parts, 3);
    TH_CHECK_INT(t.parts[0].var, -1);
    TH_CHECK_INT(t.parts[1].var, LG_VAR_ROOM);
    TH_CHECK_INT(t.parts[2].var, -1);
    TH_REQUIRE(lg_tmpl_compile(&t, "/{user}{coupon}", &err) == CG_OK);
    TH_CHECK_INT(t.n_parts, 3);
    TH_CHECK_INT(t.parts[1].var, LG_VAR_USER);
    TH_CHECK_INT(t.parts[2].var, LG_VAR_COUPON);
    TH_REQUIRE(lg_tmpl_compile(&t, "/healthz", &err) == CG_OK);
    TH_CHECK_INT(t.n_parts, 1);
}

static void test_compile_rejects(void)
{
    static const char *const bad[] = {
        "", "api/user/{user}", "/api/{users}", "/api/{user", "/a b", "/a\tb", "/{}", "/caf\xc3\xa9",
        "/{Room}",
    };
    lg_tmpl t;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cg_error err = {0, ""};

        if (lg_tmpl_compile(&t, bad[i], &err) != CG_ERR_INVALID || err.msg[0] == '\0')
            TH_FAIL_AT("template '%s' accepted", bad[i]);
    }
    {
        char *big = malloc(LG_TMPL_MAX + 1);
        cg_error err = {0, ""};

        TH_REQUIRE(big != NULL);
        memset(big, 'a', LG_TMPL_MAX);
        big[0] = '/';
        big[LG_TMPL_MAX] = '\0';
        TH_CHECK(lg_tmpl_compile(&t, big, &err) == CG_ERR_INVALID);
        free(big);
    }
}

/* Literal text is kept as it is and every placeholder is in its range. */
static void test_expand_ranges(void)
{
    lg_tmpl t;
    lg_rng rng;
    cg_error err = {0, ""};
    char out[LG_PATH_MAX];
    int seen_hot[6] = {0}, bad = 0;

    TH_REQUIRE(lg_tmpl_compile(&t, "/u/{user}/r/{room}/h/{hot_room}/c/{coupon}?x=1&y={}z", &err) ==
               CG_ERR_INVALID);
    TH_REQUIRE(lg_tmpl_compile(&t, "/u/{user}/r/{room}/h/{hot_room}/c/{coupon}?x=1&y=z", &err) == CG_OK);
    lg_rng_seed(&rng, 7, "ep");
    for (int i = 0; i < 20000 && bad < 5; i++) {
        long long u, r, h, c;
        char tail[16];

        TH_REQUIRE(lg_tmpl_expand(&t, &ranges, &rng, out, sizeof(out)) > 0);
        if (sscanf(out, "/u/%lld/r/%lld/h/%lld/c/%lld?%15s", &u, &r, &h, &c, tail) != 5 ||
            strcmp(tail, "x=1&y=z") != 0 || u < 1 || u > 100000 || r < 1 || r > 100 || h < 1 || h > 5 ||
            c < 1 || c > 500) {
            TH_FAIL_AT("expanded to '%s'", out);
            bad++;
            continue;
        }
        seen_hot[h]++;
    }
    for (int h = 1; h <= 5; h++) {
        /* uniform: each of the 5 hot rooms near 4000 of 20000 */
        if (seen_hot[h] < 3600 || seen_hot[h] > 4400)
            TH_FAIL_AT("hot room %d drawn %d times of 20000", h, seen_hot[h]);
    }
}

/* The same seed and stream name give the same paths; another seed or name,
 * others. */
static void test_deterministic(void)
{
    lg_tmpl t;
    lg_rng a, b, c, d;
    cg_error err = {0, ""};
    char pa[LG_PATH_MAX], pb[LG_PATH_MAX], pc[LG_PATH_MAX], pd[LG_PATH_MAX];
    int same_c = 0, same_d = 0;

    TH_REQUIRE(lg_tmpl_compile(&t, "/api/user/{user}/coupons", &err) == CG_OK);
    lg_rng_seed(&a, 42, "user_coupons");
    lg_rng_seed(&b, 42, "user_coupons");
    lg_rng_seed(&c, 43, "user_coupons");
    lg_rng_seed(&d, 42, "other");
    for (int i = 0; i < 100; i++) {
        TH_REQUIRE(lg_tmpl_expand(&t, &ranges, &a, pa, sizeof(pa)) > 0);
        TH_REQUIRE(lg_tmpl_expand(&t, &ranges, &b, pb, sizeof(pb)) > 0);
        TH_REQUIRE(lg_tmpl_expand(&t, &ranges, &c, pc, sizeof(pc)) > 0);
        TH_REQUIRE(lg_tmpl_expand(&t, &ranges, &d, pd, sizeof(pd)) > 0);
        TH_CHECK_STR(pa, pb);
        same_c += strcmp(pa, pc) == 0;
        same_d += strcmp(pa, pd) == 0;
    }
    TH_CHECK(same_c < 5);
    TH_CHECK(same_d < 5);
    /* a fixed value, so that a change of the generator is noticed */
    lg_rng_seed(&a, 1, "x");
    TH_REQUIRE(lg_tmpl_expand(&t, &ranges, &a, pa, sizeof(pa)) > 0);
    lg_rng_seed(&b, 1, "x");
    TH_CHECK_INT(lg_rng_uniform(&b, 1, 100000), atoll(pa + strlen("/api/user/")));
}

static void test_expand_small_buffer(void)
{
    lg_tmpl t;
    lg_rng rng;
    cg_error err = {0, ""};
    char out[12];

    TH_REQUIRE(lg_tmpl_compile(&t, "/api/user/{user}", &err) == CG_OK);
    lg_rng_seed(&rng, 1, "s");
    TH_CHECK_INT(lg_tmpl_expand(&t, &ranges, &rng, out, 5), -1);
    TH_CHECK_INT(lg_tmpl_expand(&t, &ranges, &rng, out, 11), -1);   /* "/api/user/" + digits */
    TH_REQUIRE(lg_tmpl_compile(&t, "/healthz", &err) == CG_OK);
    TH_CHECK_INT(lg_tmpl_expand(&t, &ranges, &rng, out, 9), 8);
    TH_CHECK_STR(out, "/healthz");
    TH_CHECK_INT(lg_tmpl_expand(&t, &ranges, &rng, out, 8), -1);
}

static void test_uniform_bounds(void)
{
    lg_rng rng;
    int lo = 0, hi = 0;

    lg_rng_seed(&rng, 3, "u");
    for (int i = 0; i < 10000; i++) {
        long long v = lg_rng_uniform(&rng, 1, 3);

        TH_REQUIRE(v >= 1 && v <= 3);
        lo += v == 1;
        hi += v == 3;
    }
    TH_CHECK(lo > 3000 && hi > 3000);
    TH_CHECK_INT(lg_rng_uniform(&rng, 5, 5), 5);
    TH_CHECK_INT(lg_rng_uniform(&rng, 5, 4), 5);
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"compile_parts", test_compile_parts},
        {"compile_rejects", test_compile_rejects},
        {"expand_ranges", test_expand_ranges},
        {"deterministic", test_deterministic},
        {"expand_small_buffer", test_expand_small_buffer},
        {"uniform_bounds", test_uniform_bounds},
    };

    return th_main("lg_tmpl", tests, TH_TABLE_LEN(tests), argc, argv);
}
