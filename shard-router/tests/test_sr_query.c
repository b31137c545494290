/* test_sr_query.c - unit tests of the cross-shard merge (sr_merge_desc) and
 * value order (sr_value_cmp), and of the request checks that need no server:
 * fixed per-shard lists in, the expected newest-first order and limit out. */
#include <stdlib.h>
#include <string.h>

#include "sr_query.h"
#include "testhelp.h"

#define MAX_ROWS 16

/* A shard's rows built from "time|id" strings: column 0 the time, 1 the id. */
typedef struct fixture {
    sr_list lists[4];
    char **rows[4][MAX_ROWS];
    char *cells[4][MAX_ROWS][2];
} fixture;

static void fixture_build(fixture *f, int n, const char *const spec[][MAX_ROWS])
{
    memset(f, 0, sizeof(*f));
    for (int s = 0; s < n; s++) {
        size_t r = 0;

        for (; spec[s][r] != NULL; r++) {
            const char *bar = strchr(spec[s][r], '|');

            f->cells[s][r][0] = strndup(spec[s][r], (size_t)(bar - spec[s][r]));
            f->cells[s][r][1] = strdup(bar + 1);
            if (strcmp(f->cells[s][r][0], "NULL") == 0) {
                free(f->cells[s][r][0]);
                f->cells[s][r][0] = NULL;
            }
            f->rows[s][r] = f->cells[s][r];
        }
        f->lists[s].rows = r > 0 ? f->rows[s] : NULL;
        f->lists[s].n_rows = r;
        f->lists[s].n_cols = 2;
    }
}

static void fixture_free(fixture *f)
{
    for (int s = 0; s < 4; s++)
        for (int r = 0; r < MAX_ROWS; r++) {
            free(f->cells[s][r][0]);
            free(f->cells[s][r][1]);
        }
}

/* The ids of the merged rows, comma-separated. */
static void ids_of(char ***out, size_t n, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            strncat(buf, ",", len - strlen(buf) - 1);
        strncat(buf, out[i][1], len - strlen(buf) - 1);
    }
}

static const char *merge_ids(fixture *f, int n, size_t limit, char *buf, size_t len, int *rc)
{
    char **out[64];
    size_t n_out = 99;
    int bad;
    cg_error err = {0, ""};

    *rc = sr_merge_desc(f->lists, n, 0, limit, out, &n_out, &bad, &err);
    if (*rc != CG_OK)
        return "";
    ids_of(out, n_out, buf, len);
    return buf;
}

static void test_merge_order_and_limit(void)
{
    static const char *const spec[][MAX_ROWS] = {
        {"2026-01-01 10:00:09.000|a9", "2026-01-01 10:00:05.000|a5", "2026-01-01 10:00:01.000|a1"},
        {"2026-01-01 10:00:08.000|b8", "2026-01-01 10:00:07.000|b7", "2026-01-01 09:59:59.999|b0"},
        {"2026-01-01 10:00:06.500|c6"},
        {"2026-01-02 00:00:00.000|d1", "2025-12-31 23:59:59.999|d0"},
    };
    fixture f;
    char buf[256];
    int rc;

    fixture_build(&f, 4, spec);
    TH_CHECK_STR(merge_ids(&f, 4, 100, buf, sizeof(buf), &rc), "d1,a9,b8,b7,c6,a5,a1,b0,d0");
    TH_CHECK_INT(rc, CG_OK);
    TH_CHECK_STR(merge_ids(&f, 4, 4, buf, sizeof(buf), &rc), "d1,a9,b8,b7");
    TH_CHECK_STR(merge_ids(&f, 4, 1, buf, sizeof(buf), &rc), "d1");
    TH_CHECK_STR(merge_ids(&f, 4, 0, buf, sizeof(buf), &rc), "");
    TH_CHECK_STR(merge_ids(&f, 2, 2, buf, sizeof(buf), &rc), "a9,b8");
    fixture_free(&f);
}

static void test_merge_ties_keep_shard_order(void)
{
    static const char *const spec[][MAX_ROWS] = {
        {"2026-01-01 10:00:00.000|s0x", "2026-01-01 10:00:00.000|s0y"},
        {"2026-01-01 10:00:00.000|s1x"},
        {"2026-01-01 10:00:01.000|s2x", "2026-01-01 10:00:00.000|s2y"},
    };
    fixture f;
    char buf[256];
    int rc;

    fixture_build(&f, 3, spec);
    TH_CHECK_STR(merge_ids(&f, 3, 10, buf, sizeof(buf), &rc), "s2x,s0x,s0y,s1x,s2y");
    TH_CHECK_STR(merge_ids(&f, 3, 3, buf, sizeof(buf), &rc), "s2x,s0x,s0y");
    fixture_free(&f);
}

static void test_merge_empty_shards(void)
{
    static const char *const spec[][MAX_ROWS] = {
        {NULL},
        {"5|x5", "3|x3"},
        {NULL},
        {"4|y4"},
    };
    static const char *const none[][MAX_ROWS] = {{NULL}, {NULL}};
    fixture f;
    char buf[256];
    int rc;

    fixture_build(&f, 4, spec);
    TH_CHECK_STR(merge_ids(&f, 4, 10, buf, sizeof(buf), &rc), "x5,y4,x3");
    TH_CHECK_INT(rc, CG_OK);
    fixture_free(&f);
    fixture_build(&f, 2, none);
    TH_CHECK_STR(merge_ids(&f, 2, 10, buf, sizeof(buf), &rc), "");
    TH_CHECK_INT(rc, CG_OK);
    TH_CHECK_STR(merge_ids(&f, 0, 10, buf, sizeof(buf), &rc), "");
    TH_CHECK_INT(rc, CG_OK);
    fixture_free(&f);
}

static void test_merge_integers_and_nulls(void)
{
    /* 10 > 9 as integers (a byte compare would say otherwise); NULL last. */
    static const char *const spec[][MAX_ROWS] = {
        {"10|a10", "9|a9", "NULL|an"},
        {"100|b100", "-1|bm1"},
        {"18446744073709551615|cmax"},
    };
    fixture f;
    char buf[256];
    int rc;

    fixture_build(&f, 3, spec);
    TH_CHECK_STR(merge_ids(&f, 3, 10, buf, sizeof(buf), &rc), "cmax,b100,a10,a9,bm1,an");
    fixture_free(&f);
}

static void test_merge_refuses_unsorted(void)
{
    static const char *const spec[][MAX_ROWS] = {
        {"3|a3", "1|a1"},
        {"1|b1", "2|b2"},   /* ascending: the SQL lacked ORDER BY ... DESC */
    };
    fixture f;
    char **out[8];
    size_t n_out;
    int bad = -1;
    cg_error err = {0, ""};

    fixture_build(&f, 2, spec);
    TH_CHECK_INT(sr_merge_desc(f.lists, 2, 0, 10, out, &n_out, &bad, &err), CG_ERR_INVALID);
    TH_CHECK_INT(bad, 1);
    TH_CHECK(strstr(err.msg, "not sorted") != NULL);
    /* Beyond the limit the order is not looked at (those rows are not used). */
    TH_CHECK_INT(sr_merge_desc(f.lists, 2, 0, 1, out, &n_out, &bad, &err), CG_OK);
    TH_CHECK_INT(n_out, 1);
    TH_CHECK_STR(out[0][1], "a3");
    /* A column that does not exist. */
    TH_CHECK_INT(sr_merge_desc(f.lists, 2, 2, 10, out, &n_out, &bad, &err), CG_ERR_INVALID);
    fixture_free(&f);
}

static void test_value_cmp(void)
{
    TH_CHECK(sr_value_cmp("2", "10") < 0);
    TH_CHECK(sr_value_cmp("-2", "-10") > 0);
    TH_CHECK(sr_value_cmp("-2", "1") < 0);
    TH_CHECK(sr_value_cmp("007", "7") == 0);
    TH_CHECK(sr_value_cmp("abc", "abd") < 0);
    TH_CHECK(sr_value_cmp("2026-01-01 00:00:00.001", "2026-01-01 00:00:00.000") > 0);
    TH_CHECK(sr_value_cmp(NULL, "0") < 0);
    TH_CHECK(sr_value_cmp(NULL, NULL) == 0);
    TH_CHECK(sr_value_cmp("1", NULL) > 0);
}

/* Requests refused before any thread is asked (the pool never connects:
 * workers connect on their first query). */
static void test_request_checks(void)
{
    db_config cfg[2];
    sr_pool *pool = NULL;
    sr_result res;
    sr_request req;
    cg_error err = {0, ""};

    db_config_defaults(&cfg[0]);
    db_config_defaults(&cfg[1]);
    cfg[0].port = cfg[1].port = 1;
    TH_REQUIRE(sr_pool_new(cfg, 2, &pool, &err) == CG_OK);
    TH_CHECK_INT(sr_pool_shards(pool), 2);
    memset(&req, 0, sizeof(req));
    req.sql = "SELECT 1";
    req.limit = 10;
    req.timeout_ms = 100;
    req.shards = 4;   /* shard 2 of 2 */
    TH_CHECK_INT(sr_scatter(pool, &req, &res, &err), CG_ERR_INVALID);
    req.shards = 0;
    req.limit = 0;
    TH_CHECK_INT(sr_scatter(pool, &req, &res, &err), CG_ERR_INVALID);
    req.limit = SR_LIMIT_MAX + 1;
    TH_CHECK_INT(sr_scatter(pool, &req, &res, &err), CG_ERR_INVALID);
    req.limit = 10;
    req.timeout_ms = 0;
    TH_CHECK_INT(sr_scatter(pool, &req, &res, &err), CG_ERR_INVALID);
    req.timeout_ms = 100;
    req.sql = NULL;
    TH_CHECK_INT(sr_scatter(pool, &req, &res, &err), CG_ERR_INVALID);
    /* Nothing listens on port 1: both shards missing, quickly, no hang. */
    req.sql = "SELECT 1";
    TH_CHECK_INT(sr_scatter(pool, &req, &res, &err), CG_OK);
    TH_CHECK_INT(res.partial, 1);
    TH_CHECK_INT(res.n_missing, 2);
    TH_CHECK_INT(res.n_rows, 0);
    TH_CHECK(res.elapsed_ms <= 200);
    sr_result_free(&res);
    sr_pool_free(pool);
}

int main(int argc, char **argv)
{
    static const struct th_test tests[] = {
        {"merge_order_and_limit", test_merge_order_and_limit},
        {"merge_ties_keep_shard_order", test_merge_ties_keep_shard_order},
        {"merge_empty_shards", test_merge_empty_shards},
        {"merge_integers_and_nulls", test_merge_integers_and_nulls},
        {"merge_refuses_unsorted", test_merge_refuses_unsorted},
        {"value_cmp", test_value_cmp},
        {"request_checks", test_request_checks},
    };

    return th_main("test_sr_query", tests, TH_TABLE_LEN(tests), argc, argv);
}
