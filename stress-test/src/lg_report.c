/* lg_report.c - the table and the JSON file; see lg_report.h. */
#include "lg_report.h"

#include <string.h>

#include <jansson.h>

static const double lg_report_pcts[] = {50.0, 95.0, 99.0};

void lg_report_statuses(const lg_ep_stats *st, char *buf, size_t len)
{
    size_t used = 0;

    if (len == 0)
        return;
    buf[0] = '\0';
    for (int s = 0; s < LG_STATUS_MAX; s++) {
        int n;

        if (st->status[s] == 0 || (s >= 200 && s < 300))
            continue;
        /* status[0] holds anything outside 100..599 */
        n = s == 0 ? snprintf(buf + used, len - used, "%sother:%lld", used ? "," : "", st->status[s])
                   : snprintf(buf + used, len - used, "%s%d:%lld", used ? "," : "", s, st->status[s]);
        if (n < 0 || (size_t)n >= len - used) {
            buf[used] = '\0';
            break;
        }
        used += (size_t)n;
    }
    if (used == 0)
        snprintf(buf, len, "-");
}

static void lg_report_ms(char *buf, size_t len, const lg_ep_stats *st, long long us)
{
    if (st->hist.n == 0)
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, "%.3f", (double)us / 1000.0);
}

void lg_report_table(FILE *out, const lg_read_opts *o, const lg_ep_stats *stats)
{
    int w = (int)strlen("endpoint");

    for (int i = 0; i < o->n_endpoints; i++) {
        int l = (int)strlen(o->endpoints[i].name);

        w = l > w ? l : w;
    }
    fprintf(out, "%-*s %9s %9s %7s %7s %8s %7s %9s %9s %9s %9s %9s  %s\n", w, "endpoint", "requests",
            "2xx", "non2xx", "errors", "timeouts", "partial", "req/s", "p50_ms", "p95_ms", "p99_ms",
            "max_ms", "non2xx_by_status");
    for (int i = 0; i < o->n_endpoints; i++) {
        const lg_ep_stats *st = &stats[i];
        char pct[3][32], max[32], statuses[256];

        for (int k = 0; k < 3; k++)
            lg_report_ms(pct[k], sizeof(pct[k]), st, lg_hist_percentile(&st->hist, lg_report_pcts[k]));
        lg_report_ms(max, sizeof(max), st, (long long)st->hist.max_us);
        lg_report_statuses(st, statuses, sizeof(statuses));
        fprintf(out, "%-*s %9lld %9lld %7lld %7lld %8lld %7lld %9.1f %9s %9s %9s %9s  %s\n", w,
                o->endpoints[i].name, st->requests, st->ok, st->non_2xx, st->transport_errors,
                st->timeouts, st->partial, lg_stats_rps(st), pct[0], pct[1], pct[2], max, statuses);
    }
    fflush(out);
}

/* Adds value to obj under key, taking the reference; counts a failure. */
static void lg_set(json_t *obj, const char *key, json_t *value, int *failed)
{
    if (value == NULL || json_object_set_new(obj, key, value) != 0)
        *failed = 1;
}

static json_t *lg_report_endpoint(const lg_endpoint *e, const lg_ep_stats *st, int *failed)
{
    json_t *ep = json_object(), *by = json_object(), *lat = json_object();

    if (ep == NULL || by == NULL || lat == NULL) {
        json_decref(ep);
        json_decref(by);
        json_decref(lat);
        *failed = 1;
        return NULL;
    }
    for (int s = 0; s < LG_STATUS_MAX; s++) {
        char key[16];

        if (st->status[s] == 0 || (s >= 200 && s < 300))
            continue;
        if (s == 0)
            snprintf(key, sizeof(key), "other");
        else
            snprintf(key, sizeof(key), "%d", s);
        lg_set(by, key, json_integer(st->status[s]), failed);
    }
    lg_set(ep, "name", json_string(e->name), failed);
    lg_set(ep, "path", json_string(e->tmpl.text), failed);
    lg_set(ep, "requests", json_integer(st->requests), failed);
    lg_set(ep, "ok_2xx", json_integer(st->ok), failed);
    lg_set(ep, "non_2xx", json_integer(st->non_2xx), failed);
    lg_set(ep, "non_2xx_by_status", by, failed);
    lg_set(ep, "transport_errors", json_integer(st->transport_errors), failed);
    lg_set(ep, "timeouts", json_integer(st->timeouts), failed);
    lg_set(ep, "first_error", st->first_error[0] ? json_string(st->first_error) : json_null(), failed);
    lg_set(ep, "partial", json_integer(st->partial), failed);
    lg_set(ep, "connects", json_integer(st->connects), failed);
    lg_set(ep, "seconds", json_real(lg_stats_seconds(st)), failed);
    lg_set(ep, "throughput_rps", json_real(lg_stats_rps(st)), failed);
    lg_set(lat, "answers", json_integer((json_int_t)st->hist.n), failed);
    lg_set(lat, "min", json_integer((json_int_t)st->hist.min_us), failed);
    lg_set(lat, "mean", json_real(lg_hist_mean(&st->hist)), failed);
    lg_set(lat, "p50", json_integer(lg_hist_percentile(&st->hist, 50.0)), failed);
    lg_set(lat, "p90", json_integer(lg_hist_percentile(&st->hist, 90.0)), failed);
    lg_set(lat, "p95", json_integer(lg_hist_percentile(&st->hist, 95.0)), failed);
    lg_set(lat, "p99", json_integer(lg_hist_percentile(&st->hist, 99.0)), failed);
    lg_set(lat, "p999", json_integer(lg_hist_percentile(&st->hist, 99.9)), failed);
    lg_set(lat, "max", json_integer((json_int_t)st->hist.max_us), failed);
    lg_set(ep, "latency_us", lat, failed);
    return ep;
}

int lg_report_json(const char *path, const lg_read_opts *o, const lg_ep_stats *stats,
                   int interrupted, cg_error *err)
{
    json_t *root = json_object(), *eps = json_array(), *ranges = json_object();
    int failed = root == NULL || eps == NULL || ranges == NULL, rc = CG_OK;

    if (failed) {
        json_decref(eps);
        json_decref(ranges);
        goto done;
    }
    lg_set(ranges, "users", json_integer(o->conf.users), &failed);
    lg_set(ranges, "rooms", json_integer(o->conf.rooms), &failed);
    lg_set(ranges, "hot_rooms", json_integer(o->conf.hot_rooms), &failed);
    lg_set(ranges, "coupons", json_integer(o->conf.coupons), &failed);
    lg_set(root, "tool", json_string("stress-test read"), &failed);
    lg_set(root, "target", json_string(o->conf.target), &failed);
    lg_set(root, "concurrency", json_integer(o->conf.concurrency), &failed);
    lg_set(root, "requests_per_endpoint", o->requests > 0 ? json_integer(o->requests) : json_null(),
           &failed);
    lg_set(root, "duration_s_per_endpoint", o->duration_ms > 0 ? json_integer(o->duration_ms / 1000)
                                                               : json_null(), &failed);
    lg_set(root, "warmup_per_endpoint", json_integer(o->conf.warmup), &failed);
    lg_set(root, "timeout_ms", json_integer(o->conf.timeout_ms), &failed);
    lg_set(root, "seed", json_integer(o->conf.seed), &failed);
    lg_set(root, "ranges", ranges, &failed);
    lg_set(root, "interrupted", json_boolean(interrupted), &failed);
    lg_set(root, "latency_note", json_string("microseconds, every HTTP answer of any status; "
                                             "log-linear histogram of 1024 sub-buckets per power "
                                             "of two: percentiles at most 0.1% above the true value"),
           &failed);
    for (int i = 0; i < o->n_endpoints; i++) {
        json_t *ep = lg_report_endpoint(&o->endpoints[i], &stats[i], &failed);

        if (ep == NULL || json_array_append_new(eps, ep) != 0)
            failed = 1;
    }
    lg_set(root, "endpoints", eps, &failed);
done:
    if (failed)
        rc = cg_error_set(err, CG_ERR_NOMEM, "json: out of memory");
    else if (json_dump_file(root, path, JSON_INDENT(2)) != 0)
        rc = cg_error_set(err, CG_ERR_IO, "json: cannot write %s", path);
    json_decref(root);
    return rc;
}
