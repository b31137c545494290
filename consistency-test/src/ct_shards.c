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

int ct_shards_read_rows(ct_shards *s, ct_coupon *c, cg_error *err)
{
    char sql[512];
    int status = CG_OK;

    snprintf(sql, sizeof(sql), "SELECT " CT_ROW_COLUMNS " FROM coupon_results WHERE coupon_id = %lld",
             c->coupon_id);
    for (int i = 0; i < s->n && status == CG_OK; i++) {
        ct_rows_arg a = {c, i};

        status = ct_db_select(s->conn[i], sql, ct_take_row, &a, err);
        if (status != CG_OK && err != NULL) {
            char msg[CG_ERROR_MSG_MAX];

            snprintf(msg, sizeof(msg), "%s", err->msg);
            cg_error_set(err, status, "shard %d (%s/%s): %s", i, s->addr[i].server,
                         s->addr[i].db.database, msg);
        }
    }
    ct_coupon_sort(c);
    return status;
}

typedef struct ct_ids_arg {
    long long *ids;
    size_t n, cap;
} ct_ids_arg;

static int ct_take_id(MYSQL_ROW row, const unsigned long *lens, unsigned int n, void *arg)
{
    ct_ids_arg *a = arg;
    long long v;

    (void)lens;
    if (n < 1 || ct_ll(row[0], &v) != CG_OK)
        return CG_ERR_INVALID;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        long long *p = realloc(a->ids, cap * sizeof(*p));

        if (p == NULL)
            return CG_ERR_NOMEM;
        a->ids = p;
        a->cap = cap;
    }
    a->ids[a->n++] = v;
    return CG_OK;
}

typedef struct ct_stray_arg {
    ct_snapshot *snap;
    int shard;
} ct_stray_arg;

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

int ct_shards_read_strays(ct_shards *s, ct_snapshot *snap, size_t max, cg_error *err)
{
    char sql[512];
    int status = CG_OK;

    for (int i = 0; i < s->n && status == CG_OK; i++) {
        ct_ids_arg ids = {NULL, 0, 0};

        status = ct_db_select(s->conn[i], "SELECT DISTINCT coupon_id FROM coupon_results", ct_take_id,
                              &ids, err);
        for (size_t k = 0; k < ids.n && status == CG_OK; k++) {
            ct_stray_arg a = {snap, i};

            if (ct_snapshot_find(snap, ids.ids[k]) != NULL)
                continue;
            snprintf(sql, sizeof(sql), "SELECT " CT_ROW_COLUMNS " FROM coupon_results "
                     "WHERE coupon_id = %lld LIMIT %zu", ids.ids[k], max);
            status = ct_db_select(s->conn[i], sql, ct_take_stray, &a, err);
        }
        free(ids.ids);
    }
    return status;
}
