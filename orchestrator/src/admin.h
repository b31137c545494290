/* admin.h - POST /admin/coupons: a new coupon row in the main database
 * (on the MariaDB worker thread), then its stock loaded into Redis in one
 * MULTI/EXEC, then 201 with its coupon_id. */
#ifndef ORCH_ADMIN_H
#define ORCH_ADMIN_H

#include "orch.h"

struct evhttp_request;

void admin_handle_coupon(orch *o, struct evhttp_request *req);

#endif
