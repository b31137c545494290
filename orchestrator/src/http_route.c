/* http_route.c - the routing table; see http_route.h. */
#include "http_route.h"

#include <string.h>

#define GRAB_STATUS_PREFIX "/api/grab/"

static const struct {
    const char *path;
    enum http_method method;
    enum http_route route;
} http_routes[] = {
    {"/api/coupon/grab", HTTP_M_POST, ROUTE_GRAB},
    {"/admin/coupons", HTTP_M_POST, ROUTE_ADMIN_COUPONS},
    {"/healthz", HTTP_M_GET, ROUTE_HEALTHZ},
    {"/readyz", HTTP_M_GET, ROUTE_READYZ},
};

static const char *const http_route_names[ROUTE_MAX] = {
    "none", "grab", "grab_status", "admin_coupons", "healthz", "readyz",
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
        if (strcmp(path, http_routes[i].path) != 0)
            continue;
        out->route = http_routes[i].route;
        out->allow = method_name(http_routes[i].method);
        return method == http_routes[i].method ? ROUTE_OK : ROUTE_BAD_METHOD;
    }
    if (strncmp(path, GRAB_STATUS_PREFIX, plen) == 0 && path[plen] != '\0' &&
        strchr(path + plen, '/') == NULL) {
        out->route = ROUTE_GRAB_STATUS;
        out->allow = "GET";
        if (method != HTTP_M_GET)
            return ROUTE_BAD_METHOD;
        if (strlen(path + plen) != MSG_SAGA_ID_LEN || !msg_saga_id_valid(path + plen))
            return ROUTE_BAD_PARAM;
        memcpy(out->saga_id, path + plen, MSG_SAGA_ID_LEN + 1);
        return ROUTE_OK;
    }
    return ROUTE_NOT_FOUND;
}
