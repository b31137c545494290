/* main.c - stress-test: the native load generator.
 *
 *   stress-test read [--target URL] [--endpoint NAME=TEMPLATE ...] [settings]
 *
 * `read` measures the latency of the read API one endpoint at a time
 * (lg_read.h) and prints one table (lg_report.h), optionally JSON too.
 * Exit: 0 the run went through (whatever the answers); 1 it failed or no
 * request got any HTTP answer; 2 usage or configuration error; 130 stopped
 * by a signal. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "lg_args.h"
#include "lg_read.h"
#include "lg_report.h"
#include "log.h"

#define LG_EXIT_OK 0
#define LG_EXIT_FAILED 1
#define LG_EXIT_USAGE 2
#define LG_EXIT_SIGNAL 130
#define LG_FDS_SPARE 64     /* descriptors besides the connections */

static void lg_usage(FILE *out)
{
    fprintf(out,
            "usage: stress-test read [--target http://HOST:PORT] [--endpoint NAME=PATH_TEMPLATE ...]\n"
            "                        [--concurrency N] [--requests N] [--duration S] [--warmup N]\n"
            "                        [--timeout-ms MS] [--users N] [--rooms N] [--coupons N]\n"
            "                        [--hot-rooms N] [--seed N] [--json FILE]\n"
            "       stress-test read --help   (every setting, its STRESS_* variable and default)\n"
            "\n"
            "read: closed-loop HTTP GET load, one endpoint after another (warm-up, then the\n"
            "measured requests), --concurrency keep-alive connections with one request in\n"
            "flight each. Per endpoint: requests, 2xx, non-2xx by status, transport errors,\n"
            "timeouts, answers with \"partial\": true, requests/s, latency p50/p95/p99/max.\n"
            "\n"
            "  PATH_TEMPLATE placeholders, uniform and seeded (--seed): {user} 1..users,\n"
            "  {room} 1..rooms, {hot_room} 1..hot-rooms, {coupon} 1..coupons.\n"
            "  Without --endpoint, the read API of docs/design.md:\n");
    for (int i = 0; i < lg_n_default_endpoints; i++)
        fprintf(out, "    %s\n", lg_default_endpoints[i]);
    fprintf(out,
            "\n"
            "  Latency: every HTTP answer (any status) from handing the request to the\n"
            "  connection to the last byte, in a log-linear histogram (fixed memory; values\n"
            "  at most 0.1%% high). Exit: 0 done, 1 failed or nothing answered, 2 usage,\n"
            "  130 interrupted.\n\n");
}

/* Enough descriptors for the connections: raises the soft limit if needed. */
static int lg_check_fds(long long conns, cg_error *err)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)conns + LG_FDS_SPARE;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return CG_OK;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
        return cg_error_set(err, CG_ERR_INVALID, "--concurrency %lld needs %llu open files; the "
                            "limit is %llu (ulimit -n)", conns, (unsigned long long)want,
                            (unsigned long long)rl.rlim_max);
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        return cg_error_set(err, CG_ERR_IO, "cannot raise the open-file limit to %llu",
                            (unsigned long long)want);
    return CG_OK;
}

/* "1000 requests", "5 s" or "up to 1000 requests within 5 s". */
static void lg_describe_bounds(const lg_read_opts *o, char *buf, size_t len)
{
    if (o->requests > 0 && o->duration_ms > 0)
        snprintf(buf, len, "up to %lld requests within %lld s", o->requests, o->duration_ms / 1000);
    else if (o->requests > 0)
        snprintf(buf, len, "%lld requests", o->requests);
    else
        snprintf(buf, len, "%lld s of requests", o->duration_ms / 1000);
}

static long long lg_answered(const lg_read_opts *o, const lg_ep_stats *stats)
{
    long long n = 0;

    for (int i = 0; i < o->n_endpoints; i++)
        n += (long long)stats[i].hist.n;
    return n;
}

static int lg_cmd_read(int argc, char **argv)
{
    lg_read_opts o;
    lg_ep_stats *stats = NULL;
    cg_error err = {0, ""};
    char bounds[96];
    int rc = LG_EXIT_USAGE, level, interrupted = 0, status;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            lg_usage(stdout);
    }
    status = lg_args_read(argc, argv, &o, &err);
    if (status == CG_ERR_EXIT) {
        rc = LG_EXIT_OK;
        goto done;
    }
    if (status != CG_OK) {
        fprintf(stderr, "stress-test read: %s\n", err.msg);
        goto done;
    }
    if (log_level_parse(o.conf.log_level, &level) != CG_OK) {
        fprintf(stderr, "stress-test read: setting 'log_level': '%s' is not a level\n", o.conf.log_level);
        goto done;
    }
    log_set_level(level);
    if (lg_check_fds(o.conf.concurrency, &err) != CG_OK) {
        fprintf(stderr, "stress-test read: %s\n", err.msg);
        goto done;
    }
    stats = calloc((size_t)o.n_endpoints, sizeof(*stats));
    if (stats == NULL) {
        fprintf(stderr, "stress-test read: out of memory\n");
        rc = LG_EXIT_FAILED;
        goto done;
    }
    lg_describe_bounds(&o, bounds, sizeof(bounds));
    log_info("-", "read: %s, %d endpoints, %lld connections, per endpoint %lld warm-up requests, "
             "then %s; timeout %lld ms, seed %lld", o.conf.target, o.n_endpoints, o.conf.concurrency,
             o.conf.warmup, bounds, o.conf.timeout_ms, o.conf.seed);
    if (lg_read_run(&o, stats, &interrupted, &err) != CG_OK) {
        fprintf(stderr, "stress-test read: %s\n", err.msg);
        rc = LG_EXIT_FAILED;
        goto done;
    }
    lg_report_table(stdout, &o, stats);
    rc = interrupted ? LG_EXIT_SIGNAL : LG_EXIT_OK;
    if (o.conf.json[0] != '\0' && lg_report_json(o.conf.json, &o, stats, interrupted, &err) != CG_OK) {
        fprintf(stderr, "stress-test read: %s\n", err.msg);
        rc = LG_EXIT_FAILED;
    }
    if (rc == LG_EXIT_OK && lg_answered(&o, stats) == 0) {
        fprintf(stderr, "stress-test read: no request got an HTTP answer from %s\n", o.conf.target);
        rc = LG_EXIT_FAILED;
    }
done:
    free(stats);
    lg_args_free(&o);
    return rc;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";

    log_set_program("stress-test");
    /* a peer closing first must not kill us with SIGPIPE (evhttp writes) */
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(cmd, "read") == 0) {
        /* argv[1] ("read") becomes the program name cfg_load skips */
        return lg_cmd_read(argc - 1, argv + 1);
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        lg_usage(stdout);
        return LG_EXIT_OK;
    }
    lg_usage(stderr);
    return LG_EXIT_USAGE;
}
