/* admin.c - coupon creation; see admin.h. */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "db_worker.h"
#include "http_api.h"
#include "http_req.h"
#include "keys.h"
#include "httpj.h"
#include "log.h"

#define LEASE_TRIES 200        /* x 10 ms: waiting for a free Redis connection */

typedef struct coupon_job {
    dbw_job job;               /* first: the worker hands this pointer back */
    orch *o;
    struct evhttp_request *req;
    coupon_req c;
    int status;                /* of the database work */
    char err[CG_ERROR_MSG_MAX];
    long long coupon_id;
    int lease_tries;
    rds_lease *lease;
} coupon_job;

/* ---- on the worker thread --------------------------------------------------------- */

/* Appends s, escaped for a quoted SQL literal, to out (size >= 2*len+1). */
static void sql_escape(MYSQL *conn, char *out, const char *s)
{
    mysql_real_escape_string(conn, out, s, (unsigned long)strlen(s));
}

static void coupon_run(dbw_job *job, MYSQL **conn, const db_config *cfg)
{
    coupon_job *j = (coupon_job *)job;
    char name[sizeof(j->c.coupon_name) * 2 + 1], desc[sizeof(j->c.description) * 2 + 1];
    char sql[sizeof(desc) + 512];
    cg_error err = {0, ""};
    int64_t id = 0;
    int rc = CG_OK, in_tx = 0;

    if (*conn == NULL && (rc = db_connect(cfg, conn, &err)) != CG_OK)
        goto done;
    sql_escape(*conn, name, j->c.coupon_name);
    sql_escape(*conn, desc, j->c.description);
    if ((rc = db_exec(*conn, "START TRANSACTION", NULL, &err)) != CG_OK)
        goto done;
    in_tx = 1;
    snprintf(sql, sizeof(sql),
             "INSERT INTO coupons (room_id, coupon_name, coupon_type, discount_amount, total_stock)"
             " VALUES (%lld, '%s', %lld, %lld, %lld)",
             j->c.room_id, name, j->c.coupon_type, j->c.discount_amount, j->c.total_stock);
    if ((rc = db_exec(*conn, sql, NULL, &err)) != CG_OK)
        goto done;
    if ((rc = db_query_int64(*conn, "SELECT LAST_INSERT_ID()", &id, &err)) != CG_OK)
        goto done;
    snprintf(sql, sizeof(sql),
             "INSERT INTO coupon_details (coupon_id, description, usage_rules) VALUES (%lld, '%s', '')",
             (long long)id, desc);
    if ((rc = db_exec(*conn, sql, NULL, &err)) != CG_OK)
        goto done;
    snprintf(sql, sizeof(sql),
             "INSERT INTO stock_logs (coupon_id, change_type, change_amount, stock_after, note)"
             " VALUES (%lld, 'load', %lld, %lld, 'POST /admin/coupons')",
             (long long)id, j->c.total_stock, j->c.total_stock);
    if ((rc = db_exec(*conn, sql, NULL, &err)) != CG_OK)
        goto done;
    rc = db_exec(*conn, "COMMIT", NULL, &err);
    in_tx = rc != CG_OK;
done:
    if (rc != CG_OK && *conn != NULL) {
        if (rc == CG_ERR_IO || rc == CG_ERR_TIMEOUT) {
            db_close(*conn);   /* broken: the next job reconnects */
            *conn = NULL;
        } else if (in_tx) {
            cg_error ignored;

            if (db_exec(*conn, "ROLLBACK", NULL, &ignored) != CG_OK)
                log_warn("-", "ROLLBACK failed: %s", ignored.msg);
        }
    }
    j->status = rc;
    j->coupon_id = (long long)id;
    snprintf(j->err, sizeof(j->err), "%s", err.msg);
}

/* ---- back on the loop --------------------------------------------------------------- */

static void coupon_reply(coupon_job *j, int code, json_t *body)
{
    httpj_reply(j->req, code, body);
    if (j->lease != NULL)
        rds_lease_release(j->lease);
    free(j);
}

static void on_exec(rds_client *c, int status, redisReply *r, void *arg)
{
    coupon_job *j = arg;
    int loaded;

    (void)c;
    if (status != CG_OK || r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 5) {
        log_error("-", "coupon %lld: loading its stock into Redis failed (%s%s)", j->coupon_id,
                  cg_status_name(status), r != NULL && r->type == REDIS_REPLY_ERROR ? r->str : "");
        coupon_reply(j, 503, json_pack("{s:s, s:I, s:s}", "error", "unavailable", "coupon_id",
                                       (json_int_t)j->coupon_id, "message",
                                       "coupon created, but its stock was not loaded into Redis"));
        return;
    }
    /* SET NX answers nil when the key existed: then the stock already there stays. */
    loaded = r->element[0]->type == REDIS_REPLY_STATUS;
    if (!loaded)
        log_warn("-", "coupon %lld: stock keys existed already; left as they were", j->coupon_id);
    log_info("-", "coupon %lld created in room %lld with stock %lld", j->coupon_id, j->c.room_id,
             j->c.total_stock);
    coupon_reply(j, 201, json_pack("{s:I, s:I, s:s, s:I, s:I, s:I, s:b}", "coupon_id",
                                   (json_int_t)j->coupon_id, "room_id", (json_int_t)j->c.room_id,
                                   "coupon_name", j->c.coupon_name, "total_stock",
                                   (json_int_t)j->c.total_stock, "coupon_type",
                                   (json_int_t)j->c.coupon_type, "discount_amount",
                                   (json_int_t)j->c.discount_amount, "stock_loaded", loaded));
}

static void load_stock(coupon_job *j);

static void on_lease_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    load_stock(arg);
}

/* MULTI; SET stock NX; SET total NX; SET room NX; SADD coupons; SADD the
 * room's coupons; EXEC. */
static void load_stock(coupon_job *j)
{
    orch *o = j->o;
    long long c = j->coupon_id;
    char k_stock[KEY_MAX], k_total[KEY_MAX], k_room[KEY_MAX];
    struct timeval tv = {0, 10000};
    int rc;

    if (o->rds == NULL) {
        coupon_reply(j, 503, json_pack("{s:s, s:I}", "error", "unavailable", "coupon_id", (json_int_t)c));
        return;
    }
    j->lease = rds_lease_acquire(o->rds);
    if (j->lease == NULL) {
        if (++j->lease_tries < LEASE_TRIES && !o->stopping &&
            event_base_once(o->base, -1, EV_TIMEOUT, on_lease_retry, j, &tv) == 0)
            return;
        coupon_reply(j, 503, json_pack("{s:s, s:I, s:s}", "error", "unavailable", "coupon_id",
                                       (json_int_t)c, "message", "Redis is not reachable; "
                                       "coupon created without stock"));
        return;
    }
    snprintf(k_stock, sizeof(k_stock), KEY_STOCK_FMT, c);
    snprintf(k_total, sizeof(k_total), KEY_STOCK_TOTAL_FMT, c);
    snprintf(k_room, sizeof(k_room), KEY_STOCK_ROOM_FMT, c);
    rc = rds_lease_command(j->lease, NULL, NULL, "MULTI");
    if (rc == CG_OK)
        rc = rds_lease_command(j->lease, NULL, NULL, "SET %s %lld NX", k_stock, j->c.total_stock);
    if (rc == CG_OK)
        rc = rds_lease_command(j->lease, NULL, NULL, "SET %s %lld NX", k_total, j->c.total_stock);
    if (rc == CG_OK)
        rc = rds_lease_command(j->lease, NULL, NULL, "SET %s %lld NX", k_room, j->c.room_id);
    if (rc == CG_OK)
        rc = rds_lease_command(j->lease, NULL, NULL, "SADD %s %lld", KEY_COUPONS, c);
    if (rc == CG_OK)
        rc = rds_lease_command(j->lease, NULL, NULL, "SADD " KEY_ROOM_COUPONS_FMT " %lld",
                               j->c.room_id, c);
    if (rc == CG_OK)
        rc = rds_lease_command(j->lease, on_exec, j, "EXEC");
    if (rc != CG_OK) {
        /* the lease's connection was lost: start over on another */
        rds_lease_release(j->lease);
        j->lease = NULL;
        if (++j->lease_tries < LEASE_TRIES && !o->stopping &&
            event_base_once(o->base, -1, EV_TIMEOUT, on_lease_retry, j, &tv) == 0)
            return;
        coupon_reply(j, 503, json_pack("{s:s, s:I}", "error", "unavailable", "coupon_id", (json_int_t)c));
    }
}

static void coupon_done(dbw_job *job, int cancelled)
{
    coupon_job *j = (coupon_job *)job;

    if (cancelled) {
        coupon_reply(j, 503, json_pack("{s:s, s:s}", "error", "unavailable", "message",
                                       "shutting down"));
    } else if (j->status != CG_OK) {
        log_warn("-", "coupon insert failed: %s", j->err);
        coupon_reply(j, j->status == CG_ERR_INVALID ? 400 : 503,
                     json_pack("{s:s, s:s}", "error", j->status == CG_ERR_INVALID ? "bad_request"
                                                                                   : "unavailable",
                               "message", j->err));
    } else {
        load_stock(j);
    }
}

void admin_handle_coupon(orch *o, struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    coupon_job *j;
    jv_error err;
    int rc;

    if (len > (size_t)o->conf.body_limit) {
        httpj_error(req, 413, "payload_too_large", NULL, "request body exceeds body_limit");
        return;
    }
    j = calloc(1, sizeof(*j));
    if (j == NULL) {
        httpj_error(req, 503, "unavailable", NULL, "out of memory");
        return;
    }
    if (len == 0) {
        httpj_error(req, 400, "bad_request", NULL, "the request body is empty");
        free(j);
        return;
    }
    memset(&err, 0, sizeof(err));
    if (coupon_req_decode((const char *)evbuffer_pullup(in, -1), len, (size_t)o->conf.body_limit,
                          &j->c, &err) != CG_OK) {
        httpj_error(req, 400, "bad_request", err.field, err.msg);
        free(j);
        return;
    }
    if (o->db == NULL || !rds_client_is_up(o->rds)) {
        httpj_error(req, 503, "unavailable", NULL, "database or Redis not available");
        free(j);
        return;
    }
    j->job.run = coupon_run;
    j->job.done = coupon_done;
    j->o = o;
    j->req = req;
    rc = dbw_submit(o->db, &j->job);
    if (rc != CG_OK) {
        httpj_error(req, 503, "unavailable", NULL, rc == CG_ERR_FULL ? "too many coupon "
                         "creations queued" : "shutting down");
        free(j);
    }
}
