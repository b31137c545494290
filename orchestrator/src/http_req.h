/* http_req.h - strict decoding of the orchestrator's request bodies and
 * headers (jv tables): a 400 names the field at fault. Pure, unit-tested. */
#ifndef ORCH_HTTP_REQ_H
#define ORCH_HTTP_REQ_H

#include <stddef.h>

#include "jv.h"

#define REQ_ID_MAX 9000000000000000000LL   /* ids fit MariaDB BIGINT UNSIGNED and msg.c */
#define REQ_IDEM_KEY_MAX 64                /* Idempotency-Key length */

typedef struct grab_req {
    long long user_id;
    long long coupon_id;
    long long room_id;       /* 0 when absent */
} grab_req;

typedef struct coupon_req {
    long long room_id;
    char coupon_name[129];
    long long total_stock;
    long long coupon_type;       /* 1 amount off (default), 2 percent off */
    long long discount_amount;   /* whole currency units (or percent) */
    char description[4001];
} coupon_req;

int grab_req_decode(const char *buf, size_t len, size_t max_len, grab_req *out,
                    jv_error *err) CG_MUSTCHECK;
int coupon_req_decode(const char *buf, size_t len, size_t max_len, coupon_req *out,
                      jv_error *err) CG_MUSTCHECK;

/* 1 when key is an acceptable Idempotency-Key: 1..REQ_IDEM_KEY_MAX of
 * [A-Za-z0-9._:-] (it becomes part of a Redis key). */
int idem_key_valid(const char *key);

#endif
