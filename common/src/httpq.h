/* httpq.h - strict parsing of what a GET carries in its URI: an id in the
 * path ("/api/user/42/coupons") and integer query parameters ("?limit=20").
 *
 * Shared by the orchestrator's public API and order-svc's query API, so that
 * both refuse the same bad input the same way: an id is 1..HTTPQ_ID_MAX in
 * plain decimal (no sign, no leading zero, no spaces); a parameter is known,
 * given once, and an integer within its range. Errors name the parameter,
 * for a 400 that says what to fix. Pure (libevent only decodes the percent
 * escapes), so it is unit-tested on its own. */
#ifndef CG_HTTPQ_H
#define CG_HTTPQ_H

#include "status.h"

#define HTTPQ_ID_MAX 9000000000000000000LL   /* fits BIGINT UNSIGNED and JSON integers */
#define HTTPQ_PARAMS_MAX 8                  /* parameters kept from one query string */
#define HTTPQ_QUERY_MAX 1024                /* longest query string accepted */

enum httpq_match {
    HTTPQ_NO_MATCH = 0,   /* the path has another shape */
    HTTPQ_MATCH = 1,      /* the shape and the id are good */
    HTTPQ_BAD_ID = 2      /* the shape matches but the id is malformed or out of range */
};

/* pattern: a path with at most one '#' standing for an id segment, e.g.
 * "/api/room/#/orders". *id gets the id (0 when the pattern has none). */
enum httpq_match httpq_path_match(const char *path, const char *pattern, long long *id);

/* One integer parameter a handler accepts. */
typedef struct httpq_int_spec {
    const char *name;
    long long def;        /* when absent */
    long long min, max;   /* inclusive */
} httpq_int_spec;

/* Parses query (may be NULL or "") against specs[0..n): out[i] gets the
 * value of specs[i] or its default. CG_ERR_INVALID names the parameter that
 * is unknown, repeated, empty, not an integer or out of range; *bad_param
 * (may be NULL) points at the spec's name or, for an unknown one, at "query". */
int httpq_parse_ints(const char *query, const httpq_int_spec *specs, int n, long long *out,
                     const char **bad_param, cg_error *err) CG_MUSTCHECK;

#endif
