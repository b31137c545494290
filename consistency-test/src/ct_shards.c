/* ct_shards.c - reads of the order shards; see ct_shards.h. */
#include "ct_shards.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"

int ct_shards_open(const ct_conf *conf, ct_shards *s, cg_error *err)
{
    int status;

    memset(s, 0, sizeof(*s));
    status = ct_conf_shards(conf, s->addr, CT_MAX_SHARDS, &s->n, err);
    if (status != CG_OK)
        return status;
    for (int i = 0; i < s->n; i++) {
        status = db_connect(&s->addr[i].db, &s->conn[i], err);
        if (status == CG_OK)
            status = db_exec(s->conn[i], "SET time_zone = '+00:00'", NULL, err);
        /* consistent reads of rows and counts need it (ct_shard_begin),
         * whatever the server's default */
        if (status == CG_OK)
            status = db_exec(s->conn[i], "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
                             NULL, err);
        if (status != CG_OK) {
            ct_shards_close(s);
            return status;
        }
    }
    return CG_OK;
}

void ct_shards_close(ct_shards *s)
{
    for (int i = 0; i < s->n; i++) {
        db_close(s->conn[i]);
        s->conn[i] = NULL;
    }
}

int ct_db_select(MYSQL *conn, const char *sql, ct_db_row_cb cb, void *arg, cg_error *err)
{
    MYSQL_RES *res = NULL;
    MYSQL_ROW row;
    int status = CG_OK;

    if (mysql_real_query(conn, sql, strlen(sql)) != 0) {
        status = cg_error_set(err, mysql_errno(conn) >= 2000 ? CG_ERR_IO : CG_ERR_INVALID,
                              "mariadb: \"%.60s\": %s (%u)", sql, mysql_error(conn), mysql_errno(conn));
        goto done;
    }
    res = mysql_store_result(conn);
    if (res == NULL) {
        status = cg_error_set(err, CG_ERR_IO, "mariadb: \"%.60s\": %s (%u)", sql,
                              mysql_errno(conn) ? mysql_error(conn) : "no result set",
                              mysql_errno(conn));
        goto done;
    }
    while ((row = mysql_fetch_row(res)) != NULL) {
        status = cb(row, mysql_fetch_lengths(res), mysql_num_fields(res), arg);
        if (status != CG_OK) {
            cg_error_set(err, status, "mariadb: \"%.60s\": a row could not be taken", sql);
            break;
        }
    }
done:
    if (res != NULL)
        mysql_free_result(res);
    return status;
}

static int ct_ll(const char *s, long long *out)
{
    char *end;

    if (s == NULL || *s == '\0')
        return CG_ERR_INVALID;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno == 0 && *end == '\0' ? CG_OK : CG_ERR_INVALID;
}

int ct_row_parse(MYSQL_ROW row, unsigned int n, int shard, ct_row *out)
{
    long long status = 0;

    memset(out, 0, sizeof(*out));
    if (n < 7 || row[1] == NULL)
        return CG_ERR_INVALID;
    snprintf(out->saga_id, sizeof(out->saga_id), "%s", row[1]);
    if (ct_ll(row[0], &out->result_id) != CG_OK || ct_ll(row[2], &out->user_id) != CG_OK ||
        ct_ll(row[3], &out->coupon_id) != CG_OK || ct_ll(row[4], &out->room_id) != CG_OK ||
        ct_ll(row[5], &status) != CG_OK || ct_ll(row[6], &out->grab_time_ms) != CG_OK)
        return CG_ERR_INVALID;
    out->grab_status = (int)status;
    out->shard = shard;
    return CG_OK;
}

/* Reads of one shard that must see one commit point: a read-only
 * transaction WITH CONSISTENT SNAPSHOT under REPEATABLE READ (set on
 * connect) makes every plain SELECT in it read the same InnoDB read view,
 * so the rows and the order_counts read inside it are exactly as some
 * commit left them, whatever commits meanwhile. */
static int ct_shard_begin(MYSQL *conn, cg_error *err)
{
    return db_exec(conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY", NULL, err);
}

/* Ends the transaction; its own failure becomes the status only when the
 * reads succeeded (after a broken connection it fails too, and says less). */
static int ct_shard_end(MYSQL *conn, int status, cg_error *err)
{
    cg_error end_err = {0};
    int end = db_exec(conn, "COMMIT", NULL, &end_err);

    if (status == CG_OK && end != CG_OK) {
        if (err != NULL)
            *err = end_err;
        status = end;
    }
    return status;
}

/* Prefixes err's message with the shard it came from. */
static void ct_shard_blame(const ct_shards *s, int i, int status, cg_error *err)
{
    char msg[CG_ERROR_MSG_MAX];

    if (status == CG_OK || err == NULL)
        return;
    snprintf(msg, sizeof(msg), "%s", err->msg);
    cg_error_set(err, status, "shard %d (%s/%s): %s", i, s->addr[i].server, s->addr[i].db.database, msg);
}

/* Parses "room_id, coupon_id, n" into a count of the given shard. */
static int ct_count_parse(MYSQL_ROW row, unsigned int n, int shard, ct_count *out)
{
    memset(out, 0, sizeof(*out));
    if (n < 3 || ct_ll(row[0], &out->room_id) != CG_OK || ct_ll(row[1], &out->coupon_id) != CG_OK ||
        ct_ll(row[2], &out->orders) != CG_OK)
        return CG_ERR_INVALID;
    out->shard = shard;
    return CG_OK;
}

typedef struct ct_rows_arg {
    ct_coupon *c;
    int shard;
} ct_rows_arg;

static int ct_take_row(MYSQL_ROW row, const unsigned long *lens, unsigned int n, void *arg)
{
    ct_rows_arg *a = arg;
    ct_row w;
    int status;

    (void)lens;
    status = ct_row_parse(row, n, a->shard, &w);
    if (status == CG_OK)
        status = ct_coupon_add_row(a->c, &w);
    return status;
}

static int ct_take_count(MYSQL_ROW row, const unsigned long *lens, unsigned int n, void *arg)
{
    ct_rows_arg *a = arg;
    ct_count k;
    int status;

    (void)lens;
    status = ct_count_parse(row, n, a->shard, &k);
    if (status == CG_OK)
        status = ct_coupon_add_count(a->c, &k);
    return status;
}

int ct_shards_read_rows(ct_shards *s, ct_coupon *c, cg_error *err)
{
    char rows_sql[512], counts_sql[256];
    int status = CG_OK;

    snprintf(rows_sql, sizeof(rows_sql), "SELECT " CT_ROW_COLUMNS " FROM coupon_results "
             "WHERE coupon_id = %lld", c->coupon_id);
    snprintf(counts_sql, sizeof(counts_sql), "SELECT room_id, coupon_id, orders FROM order_counts "
             "WHERE coupon_id = %lld", c->coupon_id);
    for (int i = 0; i < s->n && status == CG_OK; i++) {
        ct_rows_arg a = {c, i};

        status = ct_shard_begin(s->conn[i], err);
        if (status != CG_OK) {
            ct_shard_blame(s, i, status, err);
            break;
        }
        status = ct_db_select(s->conn[i], rows_sql, ct_take_row, &a, err);
        if (status == CG_OK)
            status = ct_db_select(s->conn[i], counts_sql, ct_take_count, &a, err);
        status = ct_shard_end(s->conn[i], status, err);
        ct_shard_blame(s, i, status, err);
    }
    ct_coupon_sort(c);
    return status;
}

/* What the stray pass gathers of one shard. */
typedef struct ct_stray_arg {
    ct_snapshot *snap;
    int shard;
    long long *ids;          /* coupons outside the snapshot that have rows here */
    size_t n_ids, cap_ids;
} ct_stray_arg;

/* A (room, coupon, COUNT(*)) of the shard: kept as a tally, and its coupon
 * remembered, when the coupon is not in the snapshot. */
static int ct_take_tally(MYSQL_ROW row, const unsigned long *lens, unsigned int n, void *arg)
{
    ct_stray_arg *a = arg;
    ct_count k;
    int status;

    (void)lens;
    status = ct_count_parse(row, n, a->shard, &k);
    if (status != CG_OK || ct_snapshot_find(a->snap, k.coupon_id) != NULL)
        return status;
    status = ct_snapshot_add_stray_tally(a->snap, &k);
    if (status == CG_OK && (a->n_ids == 0 || a->ids[a->n_ids - 1] != k.coupon_id)) {
        if (a->n_ids == a->cap_ids) {
            size_t cap = a->cap_ids ? a->cap_ids * 2 : 64;
            long long *p = realloc(a->ids, cap * sizeof(*p));

            if (p == NULL)
                return CG_ERR_NOMEM;
            a->ids = p;
            a->cap_ids = cap;
        }
        a->ids[a->n_ids++] = k.coupon_id;
    }
    return status;
}

static int ct_take_stray_count(MYSQL_ROW row, const unsigned long *lens, unsigned int n, void *arg)
{
    ct_stray_arg *a = arg;
    ct_count k;
    int status;

    (void)lens;
    status = ct_count_parse(row, n, a->shard, &k);
    if (status == CG_OK && ct_snapshot_find(a->snap, k.coupon_id) == NULL)
        status = ct_snapshot_add_stray_count(a->snap, &k);
    return status;
}

static int ct_take_stray(MYSQL_ROW row, const unsigned long *lens, unsigned int n, void *arg)
{
    ct_stray_arg *a = arg;
    ct_row w;
    int status;

    (void)lens;
    status = ct_row_parse(row, n, a->shard, &w);
    if (status == CG_OK)
        status = ct_snapshot_add_stray(a->snap, &w);
    return status;
}

/* One shard's part of the stray pass, inside its consistent transaction:
 * the rows counted per (room, coupon) - coupon-ordered, so that each stray
 * coupon is remembered once -, its order_counts, and the first rows of each
 * stray coupon. */
static int ct_shard_strays(ct_shards *s, int i, ct_snapshot *snap, size_t max, cg_error *err)
{
    ct_stray_arg a = {snap, i, NULL, 0, 0};
    char sql[512];
    int status;

    status = ct_db_select(s->conn[i], "SELECT room_id, coupon_id, COUNT(*) FROM coupon_results "
                          "GROUP BY coupon_id, room_id ORDER BY coupon_id, room_id", ct_take_tally, &a, err);
    if (status == CG_OK)
        status = ct_db_select(s->conn[i], "SELECT room_id, coupon_id, orders FROM order_counts",
                              ct_take_stray_count, &a, err);
    for (size_t k = 0; k < a.n_ids && status == CG_OK; k++) {
        snprintf(sql, sizeof(sql), "SELECT " CT_ROW_COLUMNS " FROM coupon_results "
                 "WHERE coupon_id = %lld LIMIT %zu", a.ids[k], max);
        status = ct_db_select(s->conn[i], sql, ct_take_stray, &a, err);
    }
    free(a.ids);
    return status;
}

int ct_shards_read_strays(ct_shards *s, ct_snapshot *snap, size_t max, cg_error *err)
{
    int status = CG_OK;

    for (int i = 0; i < s->n && status == CG_OK; i++) {
        status = ct_shard_begin(s->conn[i], err);
        if (status == CG_OK)
            status = ct_shard_end(s->conn[i], ct_shard_strays(s, i, snap, max, err), err);
        ct_shard_blame(s, i, status, err);
    }
    return status;
}
