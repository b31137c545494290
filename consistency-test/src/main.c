/* main.c - consistency-test: checks the invariants of docs/design.md
 * against the running system, alone (`check`) or after driving a scenario
 * against it (`scenario NAME`, `all`). See docs/consistency.md. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "ct_conf.h"
#include "ct_run.h"
#include "ct_scen.h"
#include "log.h"

#define CT_MAX_COUPONS_ARG 1024

static void ct_usage(FILE *out)
{
    fprintf(out,
            "usage: consistency-test check [--coupon C ...] [--busy] [--setting=value ...]\n"
            "       consistency-test scenario NAME [--setting=value ...]\n"
            "       consistency-test all [--setting=value ...]\n"
            "       consistency-test list\n"
            "       consistency-test --help   (the settings, from stack.env names)\n");
}

/* Splits our own options (--coupon, --busy) from the settings, which go
 * to cfg_load in cargv. */
static int ct_parse_args(int argc, char **argv, int first, char **cargv, int *cargc,
                         long long *coupons, size_t *n_coupons, int *busy)
{
    *cargc = 0;
    cargv[(*cargc)++] = argv[0];
    for (int i = first; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        char *end;

        if (strcmp(a, "--busy") == 0) {
            *busy = 1;
            continue;
        }
        if (strcmp(a, "--coupon") == 0 && i + 1 < argc)
            v = argv[++i];
        else if (strncmp(a, "--coupon=", 9) == 0)
            v = a + 9;
        if (v != NULL) {
            if (*n_coupons >= CT_MAX_COUPONS_ARG) {
                fprintf(stderr, "consistency-test: more than %d --coupon\n", CT_MAX_COUPONS_ARG);
                return -1;
            }
            coupons[*n_coupons] = strtoll(v, &end, 10);
            if (*v == '\0' || *end != '\0' || coupons[*n_coupons] <= 0) {
                fprintf(stderr, "consistency-test: --coupon %s: expected a coupon id\n", v);
                return -1;
            }
            (*n_coupons)++;
            continue;
        }
        cargv[(*cargc)++] = argv[i];
    }
    cargv[*cargc] = NULL;
    return 0;
}

int main(int argc, char **argv)
{
    static long long coupons[CT_MAX_COUPONS_ARG];
    static char help_flag[] = "--help";
    ct_conf conf;
    cg_error err = {0};
    char **cargv = NULL;
    const char *cmd = argc > 1 ? argv[1] : "";
    size_t n_coupons = 0;
    int cargc = 0, busy = 0, level, rc = 2, status;

    memset(&conf, 0, sizeof(conf));
    log_set_program("consistency-test");
    /* A peer that closes first must not kill us with SIGPIPE (evhttp writes). */
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        ct_usage(stdout);
        cmd = "--help";
    } else if (strcmp(cmd, "list") == 0) {
        ct_scen_list(stdout);
        return 0;
    } else if (strcmp(cmd, "check") != 0 && strcmp(cmd, "scenario") != 0 && strcmp(cmd, "all") != 0) {
        ct_usage(stderr);
        return 2;
    }
    cargv = calloc((size_t)argc + 2, sizeof(*cargv));
    if (cargv == NULL)
        return 2;
    if (strcmp(cmd, "--help") == 0) {
        cargv[0] = argv[0];
        cargv[1] = help_flag;
        cargc = 2;
    } else if (ct_parse_args(argc, argv, strcmp(cmd, "scenario") == 0 ? 3 : 2, cargv, &cargc, coupons,
                             &n_coupons, &busy) != 0) {
        goto done;
    }
    status = cfg_load(&ct_conf_spec, &conf, cargc, cargv, &err);
    if (status == CG_ERR_EXIT) {
        rc = 0;
        goto done;
    }
    if (status != CG_OK) {
        fprintf(stderr, "consistency-test: %s\n", err.msg);
        goto done;
    }
    if (log_level_parse(conf.log_level, &level) != CG_OK) {
        fprintf(stderr, "consistency-test: setting 'ct_log_level': '%s' is not a level\n", conf.log_level);
        goto done;
    }
    log_set_level(level);
    if (strcmp(cmd, "check") == 0) {
        rc = ct_run_check(&conf, coupons, n_coupons, !busy);
    } else if (strcmp(cmd, "scenario") == 0) {
        if (argc < 3 || argv[2][0] == '-') {
            ct_usage(stderr);
            goto done;
        }
        rc = ct_run_scenarios(&conf, argv[2]);
    } else {
        rc = ct_run_scenarios(&conf, NULL);
    }
done:
    cfg_free(&ct_conf_spec, &conf);
    free(cargv);
    return rc;
}
