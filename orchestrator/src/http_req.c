/* http_req.c - request decoding; see http_req.h. */
#include "http_req.h"

#include <string.h>

static const jv_field grab_fields[] = {
    JV_INT_FIELD(grab_req, user_id, 1, 1, REQ_ID_MAX),
    JV_INT_FIELD(grab_req, coupon_id, 1, 1, REQ_ID_MAX),
    JV_INT_FIELD(grab_req, room_id, 0, 1, REQ_ID_MAX),
};

static const jv_field coupon_fields[] = {
    JV_INT_FIELD(coupon_req, room_id, 1, 1, REQ_ID_MAX),
    JV_STR_FIELD(coupon_req, coupon_name, 1, 1),
    JV_INT_FIELD(coupon_req, total_stock, 1, 0, 100000000),
    JV_INT_FIELD(coupon_req, coupon_type, 0, 1, 2),
    JV_INT_FIELD(coupon_req, discount_amount, 0, 0, 99999999),
    JV_STR_FIELD(coupon_req, description, 0, 0),
};

int grab_req_decode(const char *buf, size_t len, size_t max_len, grab_req *out, jv_error *err)
{
    memset(out, 0, sizeof(*out));
    return jv_decode(buf, len, max_len, grab_fields, sizeof(grab_fields) / sizeof(grab_fields[0]),
                     out, NULL, err);
}

int coupon_req_decode(const char *buf, size_t len, size_t max_len, coupon_req *out,
                      jv_error *err)
{
    memset(out, 0, sizeof(*out));
    out->coupon_type = 1;
    return jv_decode(buf, len, max_len, coupon_fields,
                     sizeof(coupon_fields) / sizeof(coupon_fields[0]), out, NULL, err);
}

int idem_key_valid(const char *key)
{
    size_t n = key != NULL ? strlen(key) : 0;

    if (n == 0 || n > REQ_IDEM_KEY_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = key[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return 0;
    }
    return 1;
}
