/* http_route.h - maps an HTTP method and path to one of the orchestrator's
 * endpoints, and says 404 or 405 otherwise. Pure (no libevent), so that the
 * routing table is unit-tested on its own. */
#ifndef ORCH_HTTP_ROUTE_H
#define ORCH_HTTP_ROUTE_H

#include "msg.h"

enum http_method {
    HTTP_M_GET = 0,
    HTTP_M_POST = 1,
    HTTP_M_OTHER = 2,       /* HEAD, PUT, DELETE, ...: no endpoint takes them */
    HTTP_M_MAX
};

enum http_route {
    ROUTE_NONE = 0,         /* unknown path: 404 */
    ROUTE_GRAB,             /* POST /api/coupon/grab */
    ROUTE_GRAB_STATUS,      /* GET /api/grab/{saga_id} */
    ROUTE_ADMIN_COUPONS,    /* POST /admin/coupons */
    ROUTE_HEALTHZ,          /* GET /healthz */
    ROUTE_READYZ,           /* GET /readyz */
    ROUTE_USER_COUPONS,     /* GET /api/user/{id}/coupons */
    ROUTE_COUPON_STOCK,     /* GET /api/coupon/{id}/stock */
    ROUTE_ROOM_STATS,       /* GET /api/room/{id}/stats */
    ROUTE_ROOM_ORDERS,      /* GET /api/room/{id}/orders */
    ROUTE_RECENT_ORDERS,    /* GET /api/orders/recent */
    ROUTE_GLOBAL_STATS,     /* GET /api/statistics/global */
    ROUTE_ADMIN_STATS,      /* GET /admin/stats */
    ROUTE_SHARDS_STATUS,    /* GET /admin/shards/status */
    ROUTE_METRICS,          /* GET /metrics */
    ROUTE_MAX
};

enum route_result {
    ROUTE_OK = 0,           /* route and method match */
    ROUTE_NOT_FOUND = 1,    /* 404 */
    ROUTE_BAD_METHOD = 2,   /* 405: the path exists with another method (allow says which) */
    ROUTE_BAD_PARAM = 3     /* 400: the path's parameter is malformed (bad_field names it) */
};

typedef struct route_match {
    enum http_route route;
    const char *allow;                       /* the method the path takes, for Allow: */
    char saga_id[MSG_SAGA_ID_LEN + 1];       /* ROUTE_GRAB_STATUS */
    long long id;                            /* the user, coupon or room id of the path */
    const char *bad_field;                   /* ROUTE_BAD_PARAM: "saga_id", "user_id", ... */
} route_match;

/* path: the URI's path, without query string (not percent-decoded: none of
 * the routes needs decoding, and an encoded id is malformed anyway). */
enum route_result http_route_match(enum http_method method, const char *path, route_match *out);

const char *http_route_name(enum http_route r);

#endif
