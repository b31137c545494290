/* ct_redis.c - blocking Redis reads through Sentinel; see ct_redis.h. */
#include "ct_redis.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "rds_sync.h"

#define CT_PIPELINE 512   /* commands appended before their replies are read */

static int ct_redis_vcmd(redisContext *rc, redisReply **reply, cg_error *err, const char *fmt,
                         va_list ap)
{
    *reply = redisvCommand(rc, fmt, ap);
    if (*reply == NULL)
        return cg_error_set(err, CG_ERR_IO, "redis: %s", rc->errstr[0] ? rc->errstr : "no reply");
    return CG_OK;
}

int ct_redis_cmd(redisContext *rc, redisReply **reply, cg_error *err, const char *fmt, ...)
{
    va_list ap;
    int status;

    va_start(ap, fmt);
    status = ct_redis_vcmd(rc, reply, err, fmt, ap);
    va_end(ap);
    return status;
}

int ct_redis_connect(const ct_conf *conf, redisContext **out, char *master, size_t master_len,
                     cg_error *err)
{
    /* one round over the sentinels, as a check is a snapshot */
    rds_sync_opts o = {conf->sentinel_addrs, conf->sentinel_master_name,
                       (int)conf->redis_timeout_ms, 0, conf->redis_password, LOG_LEVEL_INFO};

    return rds_sync_master(&o, out, master, master_len, NULL, err);
}

/* Parses an integer reply or bulk string; CT_VALUE_MISSING for nil. */
static enum ct_value_state ct_redis_int(const redisReply *r, long long *out)
{
    char *end;

    if (r == NULL || r->type == REDIS_REPLY_NIL)
        return CT_VALUE_MISSING;
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
        return CT_VALUE_OK;
    }
    if (r->type != REDIS_REPLY_STRING || r->len == 0)
        return CT_VALUE_BAD;
    errno = 0;
    *out = strtoll(r->str, &end, 10);
    return (errno == 0 && *end == '\0') ? CT_VALUE_OK : CT_VALUE_BAD;
}

int ct_redis_read_coupon(redisContext *rc, ct_coupon *c, cg_error *err)
{
    redisReply *r = NULL, *ex;
    void *tmp = NULL;
    long long id = c->coupon_id, v;
    char k_stock[KEY_MAX], k_total[KEY_MAX], k_holders[KEY_MAX], k_sagas[KEY_MAX], k_room[KEY_MAX];
    int status = CG_OK;

    snprintf(k_stock, sizeof(k_stock), KEY_STOCK_FMT, id);
    snprintf(k_total, sizeof(k_total), KEY_STOCK_TOTAL_FMT, id);
    snprintf(k_holders, sizeof(k_holders), KEY_STOCK_HOLDERS_FMT, id);
    snprintf(k_sagas, sizeof(k_sagas), KEY_STOCK_SAGAS_FMT, id);
    snprintf(k_room, sizeof(k_room), KEY_STOCK_ROOM_FMT, id);
    if (redisAppendCommand(rc, "MULTI") != REDIS_OK || redisAppendCommand(rc, "GET %s", k_stock) != REDIS_OK ||
        redisAppendCommand(rc, "GET %s", k_total) != REDIS_OK ||
        redisAppendCommand(rc, "SMEMBERS %s", k_holders) != REDIS_OK ||
        redisAppendCommand(rc, "HGETALL %s", k_sagas) != REDIS_OK ||
        redisAppendCommand(rc, "GET %s", k_room) != REDIS_OK || redisAppendCommand(rc, "EXEC") != REDIS_OK)
        return cg_error_set(err, CG_ERR_NOMEM, "redis: cannot queue commands");
    /* MULTI and the five QUEUED answers, then EXEC's array. */
    for (int i = 0; i < 7; i++) {
        if (redisGetReply(rc, &tmp) != REDIS_OK) {
            status = cg_error_set(err, CG_ERR_IO, "redis: %s", rc->errstr);
            goto done;
        }
        if (i < 6) {
            redisReply *q = tmp;
            int bad = q->type == REDIS_REPLY_ERROR;

            if (bad)
                cg_error_set(err, CG_ERR_PROTOCOL, "redis: reading coupon %lld: %s", id, q->str);
            freeReplyObject(tmp);
            tmp = NULL;
            if (bad) {
                status = CG_ERR_PROTOCOL;
                /* keep reading so the connection stays in step */
            }
        }
    }
    r = tmp;
    if (status != CG_OK)
        goto done;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 5) {
        status = cg_error_set(err, CG_ERR_PROTOCOL, "redis: coupon %lld: EXEC did not answer 5 replies",
                              id);
        goto done;
    }
    c->stock_state = ct_redis_int(r->element[0], &c->stock);
    c->total_state = ct_redis_int(r->element[1], &c->total);
    c->room_state = ct_redis_int(r->element[4], &c->room);
    ex = r->element[2];
    if (ex->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < ex->elements; i++) {
            if (ct_redis_int(ex->element[i], &v) == CT_VALUE_OK) {
                if ((status = ct_coupon_add_holder(c, v)) != CG_OK)
                    goto nomem;
            } else {
                c->bad_holders++;
            }
        }
    } else if (ex->type == REDIS_REPLY_ERROR) {
        status = cg_error_set(err, CG_ERR_PROTOCOL, "redis: %s: %s", k_holders, ex->str);
        goto done;
    }
    ex = r->element[3];
    if (ex->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < ex->elements; i += 2) {
            if ((status = ct_coupon_add_outcome(c, ex->element[i]->str, ex->element[i + 1]->str)) != CG_OK)
                goto nomem;
        }
    } else if (ex->type == REDIS_REPLY_ERROR) {
        status = cg_error_set(err, CG_ERR_PROTOCOL, "redis: %s: %s", k_sagas, ex->str);
        goto done;
    }
    ct_coupon_sort(c);
    status = CG_OK;
    goto done;
nomem:
    status = cg_error_set(err, CG_ERR_NOMEM, "out of memory");
done:
    if (r != NULL)
        freeReplyObject(r);
    return status;
}

static int ct_cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;

    return (x > y) - (x < y);
}

int ct_redis_coupon_ids(redisContext *rc, long long **ids, size_t *n, cg_error *err)
{
    redisReply *r = NULL;
    long long *out = NULL;
    size_t k = 0;
    int status;

    *ids = NULL;
    *n = 0;
    status = ct_redis_cmd(rc, &r, err, "SMEMBERS %s", KEY_COUPONS);
    if (status != CG_OK)
        return status;
    if (r->type != REDIS_REPLY_ARRAY) {
        status = cg_error_set(err, CG_ERR_PROTOCOL, "redis: SMEMBERS %s: not a set", KEY_COUPONS);
        goto done;
    }
    out = malloc((r->elements + 1) * sizeof(*out));
    if (out == NULL) {
        status = cg_error_set(err, CG_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < r->elements; i++) {
        long long v;

        if (ct_redis_int(r->element[i], &v) != CT_VALUE_OK) {
            status = cg_error_set(err, CG_ERR_PROTOCOL, "redis: %s holds '%s', not a coupon id",
                                  KEY_COUPONS, r->element[i]->str ? r->element[i]->str : "?");
            goto done;
        }
        out[k++] = v;
    }
    qsort(out, k, sizeof(*out), ct_cmp_ll);
    *ids = out;
    *n = k;
    out = NULL;
    status = CG_OK;
done:
    free(out);
    freeReplyObject(r);
    return status;
}

/* 1 when the active saga id belongs to one of the coupons (or has no log). */
static int ct_redis_saga_of(redisContext *rc, const char *id, const long long *coupons, size_t n,
                            int *match, cg_error *err)
{
    redisReply *r = NULL;
    long long c = 0;
    int status = ct_redis_cmd(rc, &r, err, "HGET " KEY_SAGA_FMT " coupon_id", id);

    *match = 0;
    if (status != CG_OK)
        return status;
    if (ct_redis_int(r, &c) != CT_VALUE_OK) {
        *match = 1;
    } else {
        for (size_t i = 0; i < n && !*match; i++)
            *match = coupons[i] == c;
    }
    freeReplyObject(r);
    return CG_OK;
}

int ct_redis_active_sagas(redisContext *rc, const long long *coupons, size_t n_coupons,
                          long long *count, char *sample, size_t sample_len, cg_error *err)
{
    char cursor[32] = "0";
    int status = CG_OK;

    *count = 0;
    if (sample != NULL && sample_len > 0)
        sample[0] = '\0';
    do {
        redisReply *r = NULL;

        status = ct_redis_cmd(rc, &r, err, "SCAN %s MATCH sagas:active:* COUNT 1000", cursor);
        if (status != CG_OK)
            return status;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            return cg_error_set(err, CG_ERR_PROTOCOL, "redis: unexpected SCAN reply");
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements && status == CG_OK; i++) {
            const char *key = r->element[1]->element[i]->str;
            redisReply *z = NULL;

            status = ct_redis_cmd(rc, &z, err, "ZRANGE %s 0 -1", key);
            if (status != CG_OK)
                break;
            if (z->type == REDIS_REPLY_ARRAY) {
                for (size_t k = 0; k < z->elements && status == CG_OK; k++) {
                    int match = 1;

                    if (n_coupons > 0)
                        status = ct_redis_saga_of(rc, z->element[k]->str, coupons, n_coupons, &match, err);
                    if (status != CG_OK || !match)
                        continue;
                    if (sample != NULL && sample[0] == '\0')
                        snprintf(sample, sample_len, "%s %s", key, z->element[k]->str);
                    (*count)++;
                }
            } else if (z->type == REDIS_REPLY_ERROR) {
                status = cg_error_set(err, CG_ERR_PROTOCOL, "redis: ZRANGE %s: %s", key, z->str);
            }
            freeReplyObject(z);
        }
        freeReplyObject(r);
    } while (status == CG_OK && strcmp(cursor, "0") != 0);
    return status;
}

int ct_redis_saga_states(redisContext *rc, const char *const *ids, size_t n,
                         char (*states)[CT_SAGA_STATE_MAX], int *found, cg_error *err)
{
    size_t done = 0;

    while (done < n) {
        size_t batch = n - done < CT_PIPELINE ? n - done : CT_PIPELINE;
        int status = CG_OK;

        for (size_t i = 0; i < batch; i++) {
            if (redisAppendCommand(rc, "EXISTS saga:%s", ids[done + i]) != REDIS_OK ||
                redisAppendCommand(rc, "HGET saga:%s %s", ids[done + i], CT_SAGA_STATE_FIELD) != REDIS_OK)
                return cg_error_set(err, CG_ERR_NOMEM, "redis: cannot queue commands");
        }
        for (size_t i = 0; i < 2 * batch; i++) {
            void *tmp = NULL;
            redisReply *r;
            size_t k = done + i / 2;

            if (redisGetReply(rc, &tmp) != REDIS_OK)
                return cg_error_set(err, CG_ERR_IO, "redis: %s", rc->errstr);
            r = tmp;
            if (r->type == REDIS_REPLY_ERROR) {
                if (status == CG_OK)
                    status = cg_error_set(err, CG_ERR_PROTOCOL, "redis: saga:%s: %s", ids[k], r->str);
            } else if (i % 2 == 0) {
                found[k] = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
            } else {
                snprintf(states[k], CT_SAGA_STATE_MAX, "%s",
                         r->type == REDIS_REPLY_STRING ? r->str : "");
            }
            freeReplyObject(r);
        }
        if (status != CG_OK)
            return status;
        done += batch;
    }
    return CG_OK;
}
