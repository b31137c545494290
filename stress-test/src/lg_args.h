/* lg_args.h - the options of `stress-test read`.
 *
 * The scalar settings are one cfg table (cfg.h): flags --name value, or
 * STRESS_NAME in the environment, or a --config file. --endpoint NAME=TEMPLATE
 * may be repeated, so it is taken out of argv before cfg_load sees the rest;
 * without any, the default endpoint set (the read API of docs/design.md) is
 * measured. The target is a URL, http://HOST[:PORT], without a path. */
#ifndef LG_ARGS_H
#define LG_ARGS_H

#include "cfg.h"
#include "lg_tmpl.h"
#include "status.h"

#define LG_MAX_ENDPOINTS 64
#define LG_NAME_MAX 64             /* endpoint name, including its NUL */
#define LG_HOST_MAX 256
#define LG_DEFAULT_REQUESTS 1000   /* per endpoint, when neither --requests nor --duration */
#define LG_MAX_CONCURRENCY 4096

typedef struct lg_read_conf {
    char *target;              /* http://HOST[:PORT] */
    long long concurrency;     /* connections, one request in flight each */
    long long requests;        /* measured requests per endpoint (0: no count bound) */
    long long duration;        /* seconds per endpoint (0: no time bound) */
    long long warmup;          /* requests per endpoint before measuring, not counted */
    long long timeout_ms;      /* bound on one request, connect to full answer */
    long long users, rooms, coupons, hot_rooms;   /* placeholder ranges, 1..N */
    long long seed;
    char *json;                /* results file ("" none) */
    char *log_level;
} lg_read_conf;

typedef struct lg_target {
    char host[LG_HOST_MAX];           /* as connected to (no brackets) */
    int port;
    char authority[LG_HOST_MAX + 16]; /* the Host header: host[:port] as given */
} lg_target;

typedef struct lg_endpoint {
    char name[LG_NAME_MAX];
    lg_tmpl tmpl;              /* tmpl.text is the template as given */
} lg_endpoint;

typedef struct lg_read_opts {
    lg_read_conf conf;
    lg_target target;
    lg_endpoint *endpoints;    /* owned, n_endpoints of them, in measuring order */
    int n_endpoints;
    int default_endpoints;     /* 1 when none was given */
    lg_ranges ranges;
    long long requests;        /* effective count bound per endpoint (0: none) */
    long long duration_ms;     /* effective time bound per endpoint (0: none) */
} lg_read_opts;

/* The default endpoint set, "NAME=TEMPLATE" each. */
extern const char *const lg_default_endpoints[];
extern const int lg_n_default_endpoints;

extern const cfg_spec lg_read_spec;

/* Parses the options after "read" (argv[0] is the program's name) into o,
 * which it zeroes first. CG_ERR_EXIT when --help or --check-config was
 * handled; on any return lg_args_free() releases what was allocated. */
int lg_args_read(int argc, char **argv, lg_read_opts *o, cg_error *err) CG_MUSTCHECK;
void lg_args_free(lg_read_opts *o);

int lg_target_parse(const char *url, lg_target *t, cg_error *err) CG_MUSTCHECK;
/* "NAME=TEMPLATE"; NAME of letters, digits, '_', '-', '.'. */
int lg_endpoint_parse(const char *spec, lg_endpoint *e, cg_error *err) CG_MUSTCHECK;

#endif
