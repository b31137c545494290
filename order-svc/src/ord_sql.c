/* ord_sql.c - statement text of the shard transactions; see ord_sql.h. */
#include "ord_sql.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* A bounded text buffer; the first overflow sticks. */
typedef struct ord_buf {
    char *p;
    size_t len, used;
    int full;
} ord_buf;

static void ord_buf_init(ord_buf *b, char *p, size_t len)
{
    b->p = p;
    b->len = len;
    b->used = 0;
    b->full = len == 0;
    if (len > 0)
        p[0] = '\0';
}

static void ord_buf_add(ord_buf *b, const char *fmt, ...) CG_PRINTF(2, 3);
static void ord_buf_add(ord_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->full)
        return;
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->used, b->len - b->used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->len - b->used) {
        b->full = 1;
        b->p[b->used] = '\0';
        return;
    }
    b->used += (size_t)n;
}

static int ord_buf_status(const ord_buf *b)
{
    return b->full ? CG_ERR_FULL : CG_OK;
}

int ord_sql_time(long long ms, char *buf, size_t len)
{
    time_t secs;
    struct tm tm;
    int n;

    if (ms < 0)
        return CG_ERR_INVALID;
    secs = (time_t)(ms / 1000);
    if (gmtime_r(&secs, &tm) == NULL)
        return CG_ERR_INVALID;
    n = snprintf(buf, len, "'%04d-%02d-%02d %02d:%02d:%02d.%03d'", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    return n > 0 && (size_t)n < len ? CG_OK : CG_ERR_FULL;
}

/* Every saga id must be safe to put between quotes as is. */
static int ord_check_ids(ord_item *const *items, size_t n)
{
    if (n == 0 || n > MSG_MAX_BATCH)
        return CG_ERR_INVALID;
    for (size_t i = 0; i < n; i++) {
        if (!msg_saga_id_valid(items[i]->in.saga_id))
            return CG_ERR_INVALID;
    }
    return CG_OK;
}

/* "'id1','id2',..." */
static void ord_buf_id_list(ord_buf *b, ord_item *const *items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ord_buf_add(b, "%s'%s'", i ? "," : "", items[i]->in.saga_id);
}

int ord_sql_barrier_select(ord_item *const *items, size_t n, char *buf, size_t len)
{
    ord_buf b;
    int rc = ord_check_ids(items, n);

    if (rc != CG_OK)
        return rc;
    ord_buf_init(&b, buf, len);
    ord_buf_add(&b, "SELECT saga_id FROM saga_barriers WHERE saga_id IN (");
    ord_buf_id_list(&b, items, n);
    ord_buf_add(&b, ") LOCK IN SHARE MODE");
    return ord_buf_status(&b);
}

int ord_sql_create_insert(ord_item *const *items, size_t n, char *buf, size_t len, size_t *rows)
{
    char when[32];
    ord_buf b;
    size_t k = 0;
    int rc = ord_check_ids(items, n);

    *rows = 0;
    if (rc != CG_OK)
        return rc;
    ord_buf_init(&b, buf, len);
    for (size_t i = 0; i < n; i++) {
        const msg_item *in = &items[i]->in;

        if (items[i]->barred)
            continue;
        rc = ord_sql_time(in->grab_time, when, sizeof(when));
        if (rc != CG_OK)
            return rc;
        if (k == 0)
            ord_buf_add(&b, "INSERT INTO coupon_results "
                            "(saga_id,user_id,coupon_id,room_id,grab_status,grab_time) VALUES ");
        ord_buf_add(&b, "%s('%s',%lld,%lld,%lld,1,%s)", k ? "," : "", in->saga_id, in->user_id,
                    in->coupon_id, in->room_id, when);
        k++;
    }
    /* A saga that has its row already keeps it untouched: redelivery is a no-op. */
    if (k > 0)
        ord_buf_add(&b, " ON DUPLICATE KEY UPDATE saga_id = saga_id");
    rc = ord_buf_status(&b);
    if (rc == CG_OK)
        *rows = k;
    return rc;
}

int ord_sql_cancel_barriers(ord_item *const *items, size_t n, char *buf, size_t len)
{
    ord_buf b;
    int rc = ord_check_ids(items, n);

    if (rc != CG_OK)
        return rc;
    ord_buf_init(&b, buf, len);
    ord_buf_add(&b, "INSERT IGNORE INTO saga_barriers (saga_id) VALUES ");
    for (size_t i = 0; i < n; i++)
        ord_buf_add(&b, "%s('%s')", i ? "," : "", items[i]->in.saga_id);
    return ord_buf_status(&b);
}

int ord_sql_cancel_delete(ord_item *const *items, size_t n, char *buf, size_t len)
{
    ord_buf b;
    int rc = ord_check_ids(items, n);

    if (rc != CG_OK)
        return rc;
    ord_buf_init(&b, buf, len);
    ord_buf_add(&b, "DELETE FROM coupon_results WHERE saga_id IN (");
    ord_buf_id_list(&b, items, n);
    ord_buf_add(&b, ")");
    return ord_buf_status(&b);
}
