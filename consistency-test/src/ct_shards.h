/* ct_shards.h - blocking reads of the order shards for the checker.
 *
 * One connection per shard database (db.h), opened with the stack's
 * credentials; sessions run in UTC so that grab_time reads back as the UTC
 * milliseconds the orchestrator stamped. Rows are read with plain SELECTs:
 * the checker only reads, except in the tests that plant broken states.
 * What is compared per shard (a coupon's rows and its order_counts; the
 * stray pass) is read in one read-only transaction WITH CONSISTENT SNAPSHOT
 * (REPEATABLE READ), so both sides are the same commit point of that shard. */
#ifndef CT_SHARDS_H
#define CT_SHARDS_H

#include <stddef.h>

#include <mysql.h>

#include "ct_conf.h"
#include "ct_snap.h"
#include "status.h"

typedef struct ct_shards {
    int n;
    MYSQL *conn[CT_MAX_SHARDS];
    ct_shard_addr addr[CT_MAX_SHARDS];
} ct_shards;

/* Connects to every shard; fails (closing what it opened) when one fails. */
int ct_shards_open(const ct_conf *conf, ct_shards *s, cg_error *err) CG_MUSTCHECK;
void ct_shards_close(ct_shards *s);

/* Called per result row: fields, their lengths and the count. A non-zero
 * return stops the walk and becomes the call's status. */
typedef int (*ct_db_row_cb)(MYSQL_ROW row, const unsigned long *lens, unsigned int n, void *arg);

/* Runs a query and hands every row to cb. */
int ct_db_select(MYSQL *conn, const char *sql, ct_db_row_cb cb, void *arg, cg_error *err) CG_MUSTCHECK;

/* Adds every shard's rows of the coupon to c (with their shard index), and
 * its order_counts rows of the coupon, read in the same transaction. */
int ct_shards_read_rows(ct_shards *s, ct_coupon *c, cg_error *err) CG_MUSTCHECK;

/* For coupons that are not in the snapshot, per shard in one transaction:
 * adds to snap->stray_tallies its rows counted per (room, coupon), to
 * snap->stray_counts its order_counts rows, and to snap->stray_rows the
 * first rows (up to max per coupon and shard). */
int ct_shards_read_strays(ct_shards *s, ct_snapshot *snap, size_t max, cg_error *err) CG_MUSTCHECK;

/* Parses one coupon_results row selected with CT_ROW_COLUMNS. */
int ct_row_parse(MYSQL_ROW row, unsigned int n, int shard, ct_row *out) CG_MUSTCHECK;

#define CT_ROW_COLUMNS                                                                  \
    "result_id, saga_id, user_id, coupon_id, room_id, grab_status, "                    \
    "CAST(ROUND(UNIX_TIMESTAMP(grab_time) * 1000) AS SIGNED)"

#endif
