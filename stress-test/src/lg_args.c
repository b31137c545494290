/* lg_args.c - the options of `stress-test read`; see lg_args.h. */
#include "lg_args.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const lg_default_endpoints[] = {
    "user_coupons=/api/user/{user}/coupons",
    "coupon_stock=/api/coupon/{coupon}/stock",
    "room_stats=/api/room/{room}/stats",
    "room_orders=/api/room/{room}/orders?limit=20",
    "hot_room_orders=/api/room/{hot_room}/orders?limit=20",
    "recent_orders=/api/orders/recent?hours=24&limit=50",
    "global_stats=/api/statistics/global",
    "admin_stats=/admin/stats",
    "shards_status=/admin/shards/status",
};
const int lg_n_default_endpoints = (int)(sizeof(lg_default_endpoints) / sizeof(lg_default_endpoints[0]));

#define LG_ROW(member, kind, def, lo, hi, help) \
    {#member, kind, offsetof(lg_read_conf, member), def, lo, hi, help}

static const cfg_param lg_read_params[] = {
    LG_ROW(target, CFG_STRING, "http://127.0.0.1:8000", 0, 0, "the orchestrator, http://HOST[:PORT]"),
    LG_ROW(concurrency, CFG_INT, "8", 1, LG_MAX_CONCURRENCY,
           "connections (keep-alive), one request in flight on each"),
    LG_ROW(requests, CFG_INT, "0", 0, 1000000000LL,
           "measured requests per endpoint (0: bounded by --duration; neither: 1000)"),
    LG_ROW(duration, CFG_INT, "0", 0, 86400, "seconds per endpoint (0: bounded by --requests)"),
    LG_ROW(warmup, CFG_INT, "100", 0, 1000000000LL, "requests per endpoint before measuring, not counted"),
    LG_ROW(timeout_ms, CFG_INT, "5000", 1, 600000, "bound on one request, from sending to the full answer"),
    LG_ROW(users, CFG_INT, "100000", 1, 1000000000000LL, "{user} is uniform in 1..users"),
    LG_ROW(rooms, CFG_INT, "100", 1, 1000000000000LL, "{room} is uniform in 1..rooms"),
    LG_ROW(coupons, CFG_INT, "500", 1, 1000000000000LL, "{coupon} is uniform in 1..coupons"),
    LG_ROW(hot_rooms, CFG_INT, "5", 1, 1000000000000LL, "{hot_room} is uniform in 1..hot_rooms"),
    LG_ROW(seed, CFG_INT, "1", 0, 0x7fffffffffffffffLL, "the paths are a function of seed and endpoint name"),
    LG_ROW(json, CFG_STRING, "", 0, 0, "also write the results as JSON to this file"),
    LG_ROW(log_level, CFG_STRING, "info", 0, 0, "debug|info|warn|error (stderr)"),
};

static int lg_read_validate(const void *conf, cg_error *err)
{
    const lg_read_conf *c = conf;
    lg_target t;

    if (c->hot_rooms > c->rooms)
        return cg_error_set(err, CG_ERR_INVALID, "setting 'hot_rooms': %lld is more than the %lld rooms",
                            c->hot_rooms, c->rooms);
    return lg_target_parse(c->target, &t, err);
}

const cfg_spec lg_read_spec = {
    "stress-test read", "STRESS_", lg_read_params, sizeof(lg_read_params) / sizeof(lg_read_params[0]),
    lg_read_validate,
};

int lg_target_parse(const char *url, lg_target *t, cg_error *err)
{
    const char *p, *host, *host_end;
    size_t hlen;
    long port = 80;

    memset(t, 0, sizeof(*t));
    if (url == NULL || strncmp(url, "http://", 7) != 0)
        return cg_error_set(err, CG_ERR_INVALID, "target '%s': expected http://HOST[:PORT]",
                            url != NULL ? url : "");
    host = url + 7;
    if (*host == '[') {   /* [v6 address] */
        host_end = strchr(host, ']');
        if (host_end == NULL)
            return cg_error_set(err, CG_ERR_INVALID, "target '%s': unclosed '['", url);
        p = host_end + 1;
        host++;
    } else {
        host_end = host + strcspn(host, ":/?#");
        p = host_end;
    }
    hlen = (size_t)(host_end - host);
    if (hlen == 0 || hlen >= sizeof(t->host))
        return cg_error_set(err, CG_ERR_INVALID, "target '%s': bad host", url);
    if (*p == ':') {
        char *end = NULL;

        errno = 0;
        port = strtol(p + 1, &end, 10);
        if (errno != 0 || end == p + 1 || port < 1 || port > 65535)
            return cg_error_set(err, CG_ERR_INVALID, "target '%s': bad port", url);
        p = end;
    }
    if (strcmp(p, "") != 0 && strcmp(p, "/") != 0)
        return cg_error_set(err, CG_ERR_INVALID, "target '%s': no path, query or anything after "
                            "the port (endpoints carry the paths)", url);
    memcpy(t->host, host, hlen);
    t->host[hlen] = '\0';
    t->port = (int)port;
    /* the Host header: the authority as written, without a trailing '/' */
    snprintf(t->authority, sizeof(t->authority), "%.*s", (int)(p - (url + 7)), url + 7);
    return CG_OK;
}

int lg_endpoint_parse(const char *spec, lg_endpoint *e, cg_error *err)
{
    const char *eq = spec != NULL ? strchr(spec, '=') : NULL;
    size_t len;

    memset(e, 0, sizeof(*e));
    if (eq == NULL)
        return cg_error_set(err, CG_ERR_INVALID, "endpoint '%s': expected NAME=PATH_TEMPLATE",
                            spec != NULL ? spec : "");
    len = (size_t)(eq - spec);
    if (len == 0 || len >= sizeof(e->name))
        return cg_error_set(err, CG_ERR_INVALID, "endpoint '%s': the name must have 1..%d characters",
                            spec, LG_NAME_MAX - 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)spec[i];

        if (!isalnum(c) && c != '_' && c != '-' && c != '.')
            return cg_error_set(err, CG_ERR_INVALID, "endpoint '%s': the name may hold letters, "
                                "digits, '_', '-' and '.'", spec);
    }
    memcpy(e->name, spec, len);
    e->name[len] = '\0';
    return lg_tmpl_compile(&e->tmpl, eq + 1, err);
}

/* Adds one endpoint, refusing a second of the same name. */
static int lg_args_add_endpoint(lg_read_opts *o, const char *spec, cg_error *err)
{
    lg_endpoint *e;
    int rc;

    if (o->n_endpoints >= LG_MAX_ENDPOINTS)
        return cg_error_set(err, CG_ERR_INVALID, "more than %d endpoints", LG_MAX_ENDPOINTS);
    e = &o->endpoints[o->n_endpoints];
    if ((rc = lg_endpoint_parse(spec, e, err)) != CG_OK)
        return rc;
    for (int i = 0; i < o->n_endpoints; i++) {
        if (strcmp(o->endpoints[i].name, e->name) == 0)
            return cg_error_set(err, CG_ERR_INVALID, "endpoint '%s' given twice", e->name);
    }
    o->n_endpoints++;
    return CG_OK;
}

/* Moves every --endpoint out of argv (into o) and the rest into cargv. */
static int lg_args_split(int argc, char **argv, lg_read_opts *o, char **cargv, int *cargc,
                         cg_error *err)
{
    int rc = CG_OK;

    *cargc = 0;
    cargv[(*cargc)++] = argv[0];
    for (int i = 1; i < argc && rc == CG_OK; i++) {
        const char *a = argv[i];

        if (strcmp(a, "--endpoint") == 0) {
            if (i + 1 >= argc)
                return cg_error_set(err, CG_ERR_INVALID, "flag --endpoint needs NAME=PATH_TEMPLATE");
            rc = lg_args_add_endpoint(o, argv[++i], err);
        } else if (strncmp(a, "--endpoint=", 11) == 0) {
            rc = lg_args_add_endpoint(o, a + 11, err);
        } else {
            cargv[(*cargc)++] = argv[i];
        }
    }
    cargv[*cargc] = NULL;
    return rc;
}

int lg_args_read(int argc, char **argv, lg_read_opts *o, cg_error *err)
{
    char **cargv = NULL;
    int cargc = 0, rc;

    memset(o, 0, sizeof(*o));
    o->endpoints = calloc(LG_MAX_ENDPOINTS, sizeof(*o->endpoints));
    cargv = calloc((size_t)argc + 2, sizeof(*cargv));
    if (o->endpoints == NULL || cargv == NULL) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((rc = lg_args_split(argc, argv, o, cargv, &cargc, err)) != CG_OK)
        goto done;
    if ((rc = cfg_load(&lg_read_spec, &o->conf, cargc, cargv, err)) != CG_OK)
        goto done;
    if ((rc = lg_target_parse(o->conf.target, &o->target, err)) != CG_OK)
        goto done;
    if (o->n_endpoints == 0) {
        o->default_endpoints = 1;
        for (int i = 0; i < lg_n_default_endpoints && rc == CG_OK; i++)
            rc = lg_args_add_endpoint(o, lg_default_endpoints[i], err);
        if (rc != CG_OK)
            goto done;
    }
    o->ranges.max[LG_VAR_USER] = o->conf.users;
    o->ranges.max[LG_VAR_ROOM] = o->conf.rooms;
    o->ranges.max[LG_VAR_HOT_ROOM] = o->conf.hot_rooms;
    o->ranges.max[LG_VAR_COUPON] = o->conf.coupons;
    o->requests = o->conf.requests;
    o->duration_ms = o->conf.duration * 1000;
    if (o->requests == 0 && o->duration_ms == 0)
        o->requests = LG_DEFAULT_REQUESTS;
done:
    free(cargv);
    return rc;
}

void lg_args_free(lg_read_opts *o)
{
    cfg_free(&lg_read_spec, &o->conf);
    free(o->endpoints);
    o->endpoints = NULL;
    o->n_endpoints = 0;
}
