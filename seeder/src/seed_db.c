/* seed_db.c - multi-row INSERTs of the seed data set; see seed_db.h.
 *
 * Every generated string is built from fixed formats and numbers, so none
 * needs escaping; the statements are assembled in one growable buffer that
 * is reused from batch to batch. */
#include "seed_db.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "db.h"
#include "log.h"

/* ---- a growable statement buffer -------------------------------------------- */

typedef struct seed_sql {
    char *buf;
    size_t len, cap;
} seed_sql;

static int seed_sql_reserve(seed_sql *s, size_t more)
{
    size_t cap = s->cap ? s->cap : 64 * 1024;
    char *nb;

    if (s->len + more + 1 <= s->cap)
        return CG_OK;
    while (cap < s->len + more + 1)
        cap *= 2;
    nb = realloc(s->buf, cap);
    if (nb == NULL)
        return CG_ERR_NOMEM;
    s->buf = nb;
    s->cap = cap;
    return CG_OK;
}

static int seed_sql_appendf(seed_sql *s, const char *fmt, ...) CG_PRINTF(2, 3);
static int seed_sql_appendf(seed_sql *s, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || seed_sql_reserve(s, (size_t)n) != CG_OK)
        return CG_ERR_NOMEM;
    va_start(ap, fmt);
    vsnprintf(s->buf + s->len, s->cap - s->len, fmt, ap);
    va_end(ap);
    s->len += (size_t)n;
    return CG_OK;
}

static void seed_sql_free(seed_sql *s)
{
    free(s->buf);
    s->buf = NULL;
    s->len = s->cap = 0;
}

/* ---- one table, batch by batch --------------------------------------------- */

/* Appends the value tuple of row id, "(...)". */
typedef int (*seed_row_fn)(seed_sql *s, const seed_plan *p, long long id);

typedef struct seed_table {
    const char *name;
    const char *head;   /* "INSERT INTO t (cols) VALUES " */
    const char *tail;   /* " ON DUPLICATE KEY UPDATE k = k" */
    seed_row_fn row;
} seed_table;

/* Rows first..last of the table, batch_rows per statement. */
static int seed_db_table(MYSQL *db, const seed_table *t, const seed_plan *p, long long first,
                         long long last, seed_table_stats *st, cg_error *err)
{
    seed_sql s = {NULL, 0, 0};
    long long id = first, end, n;
    uint64_t affected;
    int rc = CG_OK;

    memset(st, 0, sizeof(*st));
    while (id <= last) {
        end = last - id + 1 > p->batch_rows ? id + p->batch_rows - 1 : last;
        s.len = 0;
        rc = seed_sql_appendf(&s, "%s", t->head);
        for (long long i = id; i <= end && rc == CG_OK; i++) {
            if (i > id)
                rc = seed_sql_appendf(&s, ",");
            if (rc == CG_OK)
                rc = t->row(&s, p, i);
        }
        if (rc == CG_OK)
            rc = seed_sql_appendf(&s, "%s", t->tail);
        if (rc != CG_OK) {
            rc = cg_error_set(err, rc, "%s: out of memory building a statement", t->name);
            goto done;
        }
        rc = db_exec(db, s.buf, &affected, err);
        if (rc != CG_OK)
            goto done;
        n = end - id + 1;
        st->rows += n;
        /* A no-op "k = k" update counts 0: affected rows are the new ones. */
        st->inserted += (long long)affected;
        st->statements++;
        log_debug("-", "%s: rows %lld-%lld sent, %llu new", t->name, id, end,
                  (unsigned long long)affected);
        id = end + 1;
    }
    st->kept = st->rows - st->inserted;

done:
    seed_sql_free(&s);
    return rc;
}

/* ---- the tables -------------------------------------------------------------- */

static int seed_row_user(seed_sql *s, const seed_plan *p, long long id)
{
    return seed_sql_appendf(s, "(%lld,'user%06lld',%d)", id, id, seed_user_level(p->seed, id));
}

static int seed_row_room(seed_sql *s, const seed_plan *p, long long id)
{
    return seed_sql_appendf(s, "(%lld,'Live room %lld','anchor%04lld',%d)", id, id, id,
                            seed_room_is_hot(id, p->hot_rooms));
}

static int seed_row_coupon(seed_sql *s, const seed_plan *p, long long id)
{
    seed_coupon c;

    seed_coupon_make(p->seed, id, p->hot_rooms, &c);
    return seed_sql_appendf(s, "(%lld,%lld,'Room %lld coupon %lld',%d,%d.%02d,%d.%02d,%lld,"
                            "'2020-01-01 00:00:00','2099-12-31 23:59:59',1)",
                            c.coupon_id, c.room_id, c.room_id,
                            (c.coupon_id - 1) % SEED_COUPONS_PER_ROOM + 1, c.coupon_type,
                            c.discount_cents / 100, c.discount_cents % 100,
                            c.min_order_cents / 100, c.min_order_cents % 100, c.total_stock);
}

static int seed_row_detail(seed_sql *s, const seed_plan *p, long long id)
{
    seed_coupon c;

    seed_coupon_make(p->seed, id, p->hot_rooms, &c);
    return seed_sql_appendf(
        s, "(%lld,'%s %d.%02d%s for viewers of live room %lld. Grab it while the stream is on: "
           "stock is limited to %lld.','One per user. Valid on orders of at least %d.%02d in "
           "the room''s shop until 2099-12-31. Not combinable with other coupons of the same "
           "room.','https://img.example.com/coupons/%lld.png')",
        c.coupon_id, c.coupon_type == 1 ? "Save" : "Take", c.discount_cents / 100,
        c.discount_cents % 100, c.coupon_type == 1 ? " off" : "% off", c.room_id, c.total_stock,
        c.min_order_cents / 100, c.min_order_cents % 100, c.coupon_id);
}

static const seed_table seed_users_table = {
    "users", "INSERT INTO users (user_id, username, user_level) VALUES ",
    " ON DUPLICATE KEY UPDATE user_id = user_id", seed_row_user};
static const seed_table seed_rooms_table = {
    "live_rooms", "INSERT INTO live_rooms (room_id, room_name, anchor_name, is_hot) VALUES ",
    " ON DUPLICATE KEY UPDATE room_id = room_id", seed_row_room};
static const seed_table seed_coupons_table = {
    "coupons",
    "INSERT INTO coupons (coupon_id, room_id, coupon_name, coupon_type, discount_amount, "
    "min_order, total_stock, start_time, end_time, status) VALUES ",
    " ON DUPLICATE KEY UPDATE coupon_id = coupon_id", seed_row_coupon};
static const seed_table seed_details_table = {
    "coupon_details", "INSERT INTO coupon_details (coupon_id, description, usage_rules, "
                      "image_url) VALUES ",
    " ON DUPLICATE KEY UPDATE coupon_id = coupon_id", seed_row_detail};

int seed_db_users(MYSQL *db, const seed_plan *p, seed_table_stats *st, cg_error *err)
{
    return seed_db_table(db, &seed_users_table, p, 1, p->users, st, err);
}

int seed_db_rooms(MYSQL *db, const seed_plan *p, seed_table_stats *st, cg_error *err)
{
    return seed_db_table(db, &seed_rooms_table, p, 1, p->rooms, st, err);
}

int seed_db_coupons(MYSQL *db, const seed_plan *p, seed_table_stats *st, cg_error *err)
{
    return seed_db_table(db, &seed_coupons_table, p, 1, p->coupons, st, err);
}

int seed_db_coupon_details(MYSQL *db, const seed_plan *p, seed_table_stats *st, cg_error *err)
{
    return seed_db_table(db, &seed_details_table, p, 1, p->coupons, st, err);
}

/* ---- reading coupons back ------------------------------------------------------ */

static int seed_parse_ll(const char *s, long long *out)
{
    char *end = NULL;

    if (s == NULL)
        return CG_ERR_INVALID;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return (end != s && *end == '\0' && errno == 0) ? CG_OK : CG_ERR_INVALID;
}

int seed_db_read_coupons(MYSQL *db, const seed_plan *p, seed_coupon **out, cg_error *err)
{
    char sql[256];
    MYSQL_RES *res = NULL;
    MYSQL_ROW row;
    seed_coupon *cs = NULL;
    long long n = 0, expect = 1;
    int rc;

    *out = NULL;
    cs = calloc((size_t)(p->coupons > 0 ? p->coupons : 1), sizeof(*cs));
    if (cs == NULL) {
        rc = cg_error_set(err, CG_ERR_NOMEM, "coupons: out of memory");
        goto done;
    }
    snprintf(sql, sizeof(sql), "SELECT coupon_id, room_id, total_stock FROM coupons "
             "WHERE coupon_id BETWEEN 1 AND %lld ORDER BY coupon_id", p->coupons);
    if (mysql_real_query(db, sql, strlen(sql)) != 0 || (res = mysql_store_result(db)) == NULL) {
        rc = cg_error_set(err, CG_ERR_IO, "mariadb %s: reading coupons back: %s (%u)",
                          mysql_get_host_info(db), mysql_error(db), mysql_errno(db));
        goto done;
    }
    while ((row = mysql_fetch_row(res)) != NULL && n < p->coupons) {
        seed_coupon *c = &cs[n];

        if (seed_parse_ll(row[0], &c->coupon_id) != CG_OK ||
            seed_parse_ll(row[1], &c->room_id) != CG_OK ||
            seed_parse_ll(row[2], &c->total_stock) != CG_OK) {
            rc = cg_error_set(err, CG_ERR_PROTOCOL, "coupons: row %lld is not three integers", n);
            goto done;
        }
        if (c->coupon_id != expect)
            break;
        n++;
        expect++;
    }
    if (n != p->coupons) {
        rc = cg_error_set(err, CG_ERR_NOTFOUND, "coupons: coupon %lld is missing after the insert",
                          expect);
        goto done;
    }
    *out = cs;
    cs = NULL;
    rc = CG_OK;

done:
    if (res != NULL)
        mysql_free_result(res);
    free(cs);
    return rc;
}

/* ---- stock_logs ------------------------------------------------------------------ */

int seed_db_stock_logs(MYSQL *db, const seed_plan *p, const seed_stock_log *logs, long long n,
                       cg_error *err)
{
    seed_sql s = {NULL, 0, 0};
    int rc = CG_OK;

    for (long long i = 0; i < n && rc == CG_OK; i += p->batch_rows) {
        long long end = n - i > p->batch_rows ? i + p->batch_rows : n;

        s.len = 0;
        rc = seed_sql_appendf(&s, "INSERT INTO stock_logs (coupon_id, change_type, change_amount, "
                                  "stock_after, note) VALUES ");
        for (long long k = i; k < end && rc == CG_OK; k++)
            rc = seed_sql_appendf(&s, "%s(%lld,'load',%lld,%lld,'%s')", k > i ? "," : "",
                                  logs[k].coupon_id, logs[k].change_amount, logs[k].stock_after,
                                  logs[k].note);
        if (rc != CG_OK) {
            rc = cg_error_set(err, rc, "stock_logs: out of memory building a statement");
            break;
        }
        rc = db_exec(db, s.buf, NULL, err);
    }
    seed_sql_free(&s);
    return rc;
}
