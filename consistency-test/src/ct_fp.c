/* ct_fp.c - coupon fingerprints for the duplicate scenario; see ct_fp.h. */
#include "ct_fp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct_redis.h"
#include "ct_shards.h"
#include "keys.h"

typedef struct ct_buf {
    char *s;
    size_t len, cap;
    int failed;
} ct_buf;

static void ct_buf_add(ct_buf *b, const char *fmt, ...) CG_PRINTF(2, 3);
static void ct_buf_add(ct_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->failed)
        return;
    for (;;) {
        size_t room = b->cap - b->len;

        va_start(ap, fmt);
        n = vsnprintf(b->s != NULL ? b->s + b->len : NULL, b->s != NULL ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if (b->s != NULL && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        {
            size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
            char *p = realloc(b->s, cap);

            if (p == NULL) {
                b->failed = 1;
                return;
            }
            b->s = p;
            b->cap = cap;
        }
    }
}

static int ct_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Appends the elements of an array reply sorted (pairs kept together when
 * pairs is set: hash field/value), one per line, after prefix. */
static void ct_buf_sorted(ct_buf *b, const char *prefix, const redisReply *r, int pairs)
{
    size_t step = pairs ? 2 : 1, n;
    char **lines;

    if (r->type != REDIS_REPLY_ARRAY) {
        ct_buf_add(b, "%s (type %d)\n", prefix, r->type);
        return;
    }
    n = r->elements / step;
    lines = calloc(n + 1, sizeof(*lines));
    if (lines == NULL) {
        b->failed = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *k = r->element[i * step];
        const redisReply *v = pairs ? r->element[i * step + 1] : NULL;
        size_t len = (k->str ? k->len : 0) + (v && v->str ? v->len : 0) + 4;

        lines[i] = malloc(len);
        if (lines[i] == NULL) {
            b->failed = 1;
            break;
        }
        snprintf(lines[i], len, "%s%s%s", k->str ? k->str : "", v ? "=" : "", v && v->str ? v->str : "");
    }
    if (!b->failed) {
        qsort(lines, n, sizeof(*lines), ct_cmp_str);
        for (size_t i = 0; i < n; i++)
            ct_buf_add(b, "%s %s\n", prefix, lines[i]);
    }
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

static int ct_fp_redis(redisContext *rc, long long c, const char *const *sagas, size_t n, ct_buf *b,
                       cg_error *err)
{
    char keys[3][KEY_MAX], key[KEY_MAX];
    redisReply *r = NULL;
    int status = CG_OK;

    snprintf(keys[0], sizeof(keys[0]), KEY_STOCK_FMT, c);
    snprintf(keys[1], sizeof(keys[1]), KEY_STOCK_TOTAL_FMT, c);
    snprintf(keys[2], sizeof(keys[2]), KEY_STOCK_ROOM_FMT, c);
    for (size_t i = 0; i < 3 && status == CG_OK; i++) {
        status = ct_redis_cmd(rc, &r, err, "GET %s", keys[i]);
        if (status == CG_OK) {
            ct_buf_add(b, "redis %s %s\n", keys[i], r->type == REDIS_REPLY_STRING ? r->str : "(nil)");
            freeReplyObject(r);
        }
    }
    if (status == CG_OK) {
        snprintf(key, sizeof(key), KEY_STOCK_HOLDERS_FMT, c);
        status = ct_redis_cmd(rc, &r, err, "SMEMBERS %s", key);
        if (status == CG_OK) {
            ct_buf_sorted(b, key, r, 0);
            freeReplyObject(r);
        }
    }
    if (status == CG_OK) {
        snprintf(key, sizeof(key), KEY_STOCK_SAGAS_FMT, c);
        status = ct_redis_cmd(rc, &r, err, "HGETALL %s", key);
        if (status == CG_OK) {
            ct_buf_sorted(b, key, r, 1);
            freeReplyObject(r);
        }
    }
    for (size_t i = 0; i < n && status == CG_OK; i++) {
        snprintf(key, sizeof(key), KEY_SAGA_FMT, sagas[i]);
        status = ct_redis_cmd(rc, &r, err, "HGETALL %s", key);
        if (status == CG_OK) {
            ct_buf_sorted(b, key, r, 1);
            freeReplyObject(r);
        }
    }
    return status;
}

typedef struct ct_fp_arg {
    ct_buf *b;
    int shard;
    const char *what;
} ct_fp_arg;

static int ct_fp_row(MYSQL_ROW row, const unsigned long *lens, unsigned int n, void *arg)
{
    ct_fp_arg *a = arg;

    (void)lens;
    ct_buf_add(a->b, "shard %d %s", a->shard, a->what);
    for (unsigned int i = 0; i < n; i++)
        ct_buf_add(a->b, " %s", row[i] != NULL ? row[i] : "NULL");
    ct_buf_add(a->b, "\n");
    return a->b->failed ? CG_ERR_NOMEM : CG_OK;
}

static int ct_fp_shards(ct_shards *sh, long long c, const char *const *sagas, size_t n, ct_buf *b,
                        cg_error *err)
{
    char sql[512];
    ct_buf in = {0};
    int status = CG_OK;

    snprintf(sql, sizeof(sql), "SELECT result_id, saga_id, user_id, coupon_id, room_id, grab_status, "
             "fail_reason, grab_time, use_status, use_time, order_amount FROM coupon_results "
             "WHERE coupon_id = %lld ORDER BY result_id", c);
    for (int i = 0; i < sh->n && status == CG_OK; i++) {
        ct_fp_arg a = {b, i, "row"};

        status = ct_db_select(sh->conn[i], sql, ct_fp_row, &a, err);
    }
    /* the read model the triggers keep: a duplicate must not move it either */
    snprintf(sql, sizeof(sql), "SELECT room_id, coupon_id, orders FROM order_counts "
             "WHERE coupon_id = %lld ORDER BY room_id", c);
    for (int i = 0; i < sh->n && status == CG_OK; i++) {
        ct_fp_arg a = {b, i, "count"};

        status = ct_db_select(sh->conn[i], sql, ct_fp_row, &a, err);
    }
    if (n == 0 || status != CG_OK)
        return status;
    ct_buf_add(&in, "SELECT saga_id, created_at FROM saga_barriers WHERE saga_id IN (");
    for (size_t k = 0; k < n; k++)
        ct_buf_add(&in, "%s'%s'", k ? "," : "", sagas[k]);   /* checked hex saga ids */
    ct_buf_add(&in, ") ORDER BY saga_id");
    if (in.failed) {
        free(in.s);
        return cg_error_set(err, CG_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < sh->n && status == CG_OK; i++) {
        ct_fp_arg a = {b, i, "barrier"};

        status = ct_db_select(sh->conn[i], in.s, ct_fp_row, &a, err);
    }
    free(in.s);
    return status;
}

int ct_fingerprint(ct_env *env, long long coupon_id, const char *const *sagas, size_t n, char **out,
                   cg_error *err)
{
    ct_buf b = {0};
    ct_shards sh;
    redisContext *rc;
    int status;

    *out = NULL;
    memset(&sh, 0, sizeof(sh));
    rc = ct_env_redis(env, err);
    if (rc == NULL)
        return CG_ERR_IO;
    status = ct_fp_redis(rc, coupon_id, sagas, n, &b, err);
    if (status != CG_OK)
        ct_env_redis_failed(env);
    if (status == CG_OK)
        status = ct_shards_open(env->conf, &sh, err);
    if (status == CG_OK)
        status = ct_fp_shards(&sh, coupon_id, sagas, n, &b, err);
    ct_shards_close(&sh);
    if (status == CG_OK && b.failed)
        status = cg_error_set(err, CG_ERR_NOMEM, "out of memory");
    if (status != CG_OK) {
        free(b.s);
        return status;
    }
    if (b.s == NULL)
        ct_buf_add(&b, "%s", "");
    *out = b.s;
    return b.failed ? CG_ERR_NOMEM : CG_OK;
}

/* The next line of *p (up to the newline) into line; 0 at the end. */
static int ct_next_line(const char **p, char *line, size_t len)
{
    const char *nl;

    if (**p == '\0')
        return 0;
    nl = strchr(*p, '\n');
    if (nl == NULL)
        nl = *p + strlen(*p);
    snprintf(line, len, "%.*s", (int)(nl - *p), *p);
    *p = *nl ? nl + 1 : nl;
    return 1;
}

size_t ct_fingerprint_diff(ct_report *r, const char *a, const char *b, size_t max)
{
    char la[512], lb[512];
    size_t diffs = 0, shown = 0;

    for (;;) {
        int ha = ct_next_line(&a, la, sizeof(la)), hb = ct_next_line(&b, lb, sizeof(lb));

        if (!ha && !hb)
            break;
        if (ha && hb && strcmp(la, lb) == 0)
            continue;
        diffs++;
        if (shown++ < max)
            ct_detail(r, "before: %s | after: %s", ha ? la : "(nothing)", hb ? lb : "(nothing)");
    }
    return diffs;
}
