/* http_route.c - the routing table; see http_route.h. */
#include "http_route.h"

#include <string.h>

#include "httpq.h"

#define GRAB_STATUS_PREFIX "/api/grab/"

/* '#' stands for an id segment (httpq_path_match); id_name names it in a 400. */
static const struct {
    const char *pattern;
    enum http_method method;
    enum http_route route;
    const char *id_name;
} http_routes[] = {
    {"/api/coupon/grab", HTTP_M_POST, ROUTE_GRAB, NULL},
    {"/admin/coupons", HTTP_M_POST, ROUTE_ADMIN_COUPONS, NULL},
    {"/healthz", HTTP_M_GET, ROUTE_HEALTHZ, NULL},
    {"/readyz", HTTP_M_GET, ROUTE_READYZ, NULL},
    {"/api/user/#/coupons", HTTP_M_GET, ROUTE_USER_COUPONS, "user_id"},
    {"/api/coupon/#/stock", HTTP_M_GET, ROUTE_COUPON_STOCK, "coupon_id"},
    {"/api/room/#/stats", HTTP_M_GET, ROUTE_ROOM_STATS, "room_id"},
    {"/api/room/#/orders", HTTP_M_GET, ROUTE_ROOM_ORDERS, "room_id"},
    {"/api/orders/recent", HTTP_M_GET, ROUTE_RECENT_ORDERS, NULL},
    {"/api/statistics/global", HTTP_M_GET, ROUTE_GLOBAL_STATS, NULL},
    {"/admin/stats", HTTP_M_GET, ROUTE_ADMIN_STATS, NULL},
    {"/admin/shards/status", HTTP_M_GET, ROUTE_SHARDS_STATUS, NULL},
    {"/metrics", HTTP_M_GET, ROUTE_METRICS, NULL},
};

static const char *const http_route_names[ROUTE_MAX] = {
    "none", "grab", "grab_status", "admin_coupons", "healthz", "readyz", "user_coupons",
    "coupon_stock", "room_stats", "room_orders", "recent_orders", "global_stats",
    "admin_stats", "shards_status", "metrics",
};

const char *http_route_name(enum http_route r)
{
    return (r >= 0 && r < ROUTE_MAX) ? http_route_names[r] : "?";
}

static const char *method_name(enum http_method m)
{
    return m == HTTP_M_GET ? "GET" : "POST";
}

enum route_result http_route_match(enum http_method method, const char *path, route_match *out)
{
    size_t plen = strlen(GRAB_STATUS_PREFIX);

    memset(out, 0, sizeof(*out));
    if (path == NULL)
        return ROUTE_NOT_FOUND;
    for (size_t i = 0; i < sizeof(http_routes) / sizeof(http_routes[0]); i++) {
        enum httpq_match m = httpq_path_match(path, http_routes[i].pattern, &out->id);

        if (m == HTTPQ_NO_MATCH)
            continue;
        out->route = http_routes[i].route;
        out->allow = method_name(http_routes[i].method);
        if (method != http_routes[i].method)
            return ROUTE_BAD_METHOD;
        if (m == HTTPQ_BAD_ID) {
            out->bad_field = http_routes[i].id_name;
            return ROUTE_BAD_PARAM;
        }
        return ROUTE_OK;
    }
    if (strncmp(path, GRAB_STATUS_PREFIX, plen) == 0 && path[plen] != '\0' &&
        strchr(path + plen, '/') == NULL) {
        out->route = ROUTE_GRAB_STATUS;
        out->allow = "GET";
        if (method != HTTP_M_GET)
            return ROUTE_BAD_METHOD;
        if (strlen(path + plen) != MSG_SAGA_ID_LEN || !msg_saga_id_valid(path + plen)) {
            out->bad_field = "saga_id";
            return ROUTE_BAD_PARAM;
        }
        memcpy(out->saga_id, path + plen, MSG_SAGA_ID_LEN + 1);
        return ROUTE_OK;
    }
    return ROUTE_NOT_FOUND;
}
